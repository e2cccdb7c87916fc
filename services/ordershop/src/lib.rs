//! The `ordershop` binary: the same executable (and container image) runs
//! every role, as Grafana Loki's single binary does (`ordershop customer`,
//! `ordershop api-gateway`, ...), plus `ordershop local`, the developer's
//! all-in-one run.
#![deny(warnings)]

mod backlog_metrics;
mod chaos;
pub mod cli;
mod dead_letters;
mod listeners;
mod local;
mod parent_watch;
mod roles;
mod shutdown;
mod telemetry;
mod trace;
