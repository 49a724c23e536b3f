//! The hermetic test binary: `cargo test` runs it on any machine with only Rust. verdict
//! in-process on port 0 (or its binary, where a test reads the log or sends a signal),
//! fake backends on port 0; no proxy, no Python, no root. The real programs are in the
//! `e2e` binary (`tests/e2e`), which `scripts/test` runs after this one.
//!
//! - `dialects`, `status`, `transport`: the proxy contract (what each proxy sends, the
//!   statuses and redirects it reads, what the wire may look like);
//! - `trust`: trusted peers, the canonical target and its readings, no credential logged;
//! - `callers`: Cesbo Astra and Alta, EMQX, the broker backends and Icecast, by their
//!   documented requests;
//! - `backend`, `cache`: the `http` authorizer against fake backends, and the decision
//!   cache on a clock the tests move;
//! - `basic`: Basic credentials against an htpasswd file;
//! - `claims`: any-of roles, scopes and claim matchers on routes;
//! - `admin`, `cli`: the admin listener and the `verdict` command (the built binary);
//! - `shipped`, `readme`: the shipped proxy configs and the README's snippets, as text
//!   and as configurations verdict loads;
//! - `properties`: property tests of the hand-written parsers;
//! - `custom_headers`: identity headers an application already reads;
//! - `dryrun`: `verdict explain` and `verdict test`;
//! - `grpc`: the gRPC listener, with a gRPC client of the test's own;
//! - `introspect`: RFC 7662 token introspection against a fake issuer;
//! - `shared`: `[shared]` settings, and an instance whose store is not there;
//! - `tracing`: spans per decision and backend call, exported to an OTLP receiver;
//! - `watch`: reloading on a change of the configuration's files (a ConfigMap swap);
//! - `regression`: one test per fixed bug.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod backend;
mod basic;
mod cache;
mod claims;
mod custom_headers;
mod callers;
mod cli;
mod dialects;
mod dryrun;
mod grpc;
mod introspect;
mod memo;
mod properties;
mod readme;
mod regression;
mod shared;
mod shipped;
mod status;
#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;
mod transport;
mod tracing;
mod trust;
mod watch;
