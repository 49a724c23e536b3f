//! The integration test binary: verdict in-process on port 0, fake backends on port 0,
//! and end-to-end runs through real proxies started by the tests.

mod admin;
mod applications;
mod backend;
mod cache;
mod callers;
mod cli;
mod dialects;
mod nginx;
mod proxies;
mod readme;
mod regression;
mod shipped;
mod status;
mod support;
mod transport;
mod trust;
