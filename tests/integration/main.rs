//! The hermetic test binary: `cargo test` runs it on any machine with only Rust. verdict
//! in-process on port 0 (or its binary, where a test reads the log or sends a signal),
//! fake backends on port 0; no proxy, no Python, no root. The real programs are in the
//! `e2e` binary (`tests/e2e`), which `scripts/test` runs after this one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod backend;
mod cache;
mod callers;
mod cli;
mod dialects;
mod properties;
mod readme;
mod regression;
mod shipped;
mod status;
#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;
mod transport;
mod trust;
