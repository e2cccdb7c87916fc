//! Task runner: cargo xtask test|ci.
