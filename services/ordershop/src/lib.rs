//! The ordershop binary: one subcommand per service, plus the all-in-one local run.
