//! The end-to-end test binary: real programs, started by the tests on free loopback
//! ports with the configurations we ship. The proxies (nginx, Traefik, Caddy, Envoy) and a
//! real PHP application behind each, the amqtt broker and icecast2, the example backends,
//! the compose stack's files. `scripts/test` installs what they need and runs this binary
//! (`cargo test --test e2e`) after the hermetic ones; a missing program fails its test
//! unless `VERDICT_E2E=skip` asks for the skip explicitly.
//!
//! - `proxies`: the client-side suite through each real proxy, the nginx cache option,
//!   the compose stack's files, the README's run commands;
//! - `applications`: no user request runs an admin-only handler of a real application;
//! - `nginx`: nginx-specific behaviour (connection reuse, keep-alive, errors);
//! - `callers`: the real amqtt broker and icecast2;
//! - `examples`: the example backends;
//! - `fleet`: several instances on a real `redis-server` (standalone, Cluster, Sentinel),
//!   with the store down, killed, slow, cut off or holding forged values;
//! - `kubernetes`: the Kustomize base rendered by `kubectl kustomize`, and the gateway
//!   examples;
//! - `regression`: the fixed bugs that need a real program.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod applications;
mod callers;
mod examples;
mod fleet;
mod kubernetes;
mod nginx;
mod proxies;
mod regression;
#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;
