//! verdict: a forward-auth decision service.
//!
//! A reverse proxy asks verdict about every client request; verdict answers `200` with
//! identity headers, or `401`/`403`. The flow, one module per stage:
//!
//! ```text
//! proxy subrequest
//!   └─► dialect::normalize      which headers are trusted, from whom; canonical target
//!         └─► ForwardedRequest   method, scheme, host, path, query, client ip, credentials
//!               └─► policy::route       first matching route: access + authorizer chain
//!                     └─► cache::get_or_decide   per-authorizer results, TTL, coalesced misses
//!                           └─► authorizer::decide   jwt | static tokens
//!                                 └─► Verdict  Allow(Identity) | Deny(Denial) | Abstain
//!               ◄── policy::apply re-checks access and roles on every request (never cached)
//!   ◄── dialect::encode         status + identity headers in the caller's dialect
//! ```
//!
//! Takes: a validated [`config::Config`]. Returns: running listeners ([`server::bind`]).
//! Must never: let an error, an unknown fact or an unparsable input end in an allow.

pub mod authorizer;
pub mod cache;
pub mod config;
pub mod dialect;
pub mod metrics;
pub mod policy;
pub mod request;
pub mod server;

/// Pins the process-wide crypto providers (rustls and jsonwebtoken) to aws-lc. Call first
/// in `main` and in every test that verifies tokens or makes TLS connections: with no
/// provider, or two, both libraries panic at first use.
pub fn init_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
}
