//! verdict: a forward-auth decision service.
//!
//! A reverse proxy (nginx, Traefik, Caddy, Envoy, APISIX, HAProxy) or a server with an HTTP
//! auth hook (Cesbo Astra and Alta, EMQX and other MQTT brokers, Icecast) asks verdict
//! about every client; verdict answers in the caller's terms: `200` with identity
//! headers or `401`/`403` for proxies, `{"result": …}` for EMQX, and so on. The flow, one
//! module per stage:
//!
//! ```text
//! caller request
//!   └─► server::handle            the actix edge, one endpoint per dialect (grpc: Envoy's
//!         │                        gRPC check, on server.grpc_listen, to the same stages)
//!         ├─► memo                the worker's answer to these exact request bytes, while
//!         │                        the cached allow it stands for holds (else onward)
//!         └─► dialect::read       a TrustedPeer only; the dialect reads its own header
//!               │                  family (or body) once: Facts, or a notification
//!               └─► ForwardedRequest   (request) method, scheme, host, path, query,
//!                                      client ip, headers, the caller's own facts
//!                                      (channel, MQTT access); credentials (credential)
//!                     └─► resolver::decide    no actix: routing, the chain, access
//!                           ├─► policy::route_readings  the route of every reading of the
//!                           │                        target (request::readings) and of
//!                           │                        every missing fact: all must allow
//!                           ├─► cache::get_or_decide per-authorizer results, TTL, coalesced
//!                           │     ├─► shared::fetch  on a local miss: the fleet's sealed
//!                           │     │                  second level, one backend call per key
//!                           │     └─► authorizer     jwt/ | static_tokens | http/
//!                           │           └─► Verdict  Allow(Identity) | Deny | Abstain
//!                           ├─► shared::standing     every allow against the fleet's
//!                           │                        revocations (and the feed's health)
//!                           └─► policy::apply        every rule on the chain's result:
//!                                                    access, roles, username binding,
//!                                                    MQTT topic rules, cache_for
//!                                 └─► Decided        Outcome + route + the rule's reason
//!   ◄── Dialect::answer           the outcome in the caller's terms (dialect/answer)
//!   ◄── record::record            one decision log line, the decision metrics
//! ```
//!
//! With `[shared]`, `shared` keeps what a fleet shares in Redis or Valkey: `store` (the
//! connection, on a thread of its own), `seal` (the HMAC every stored value carries),
//! `wire` (a stored decision), `revocation` (entries and the local denylist) and `feed`
//! (the revocation log, read by every instance, and its staleness).
//!
//! The `http` authorizer asks the operator's backend: `authorizer/http/request` renders
//! the backend request (and its cache material), `transport` sends it with retries and
//! failover, `protocol` reads the answer (`status`, `json`, `authgear`).
//!
//! Modules are declared below in flow order, and each imports only modules declared
//! after it (downward). `config` builds everything once at start-up from the file;
//! `template` is the one `${...}` renderer (the `http` authorizer's requests, topic
//! filters), parsing once and substituting in one pass; the
//! shared nouns sit at the bottom: `decision` (verdicts, refusals, outcomes), `identity`
//! (identities, claims, the identity-header table), `request`, `fields` (a JSON or form
//! body's fields, a name sent twice refused), `tracing` (spans and their export),
//! `settings` (the config vocabulary),
//! `digest`, `clock` (every deadline's time), `flight` (single flight) and `metrics`.
//!
//! Takes: a validated [`config::Config`]. Returns: running listeners
//! ([`lifecycle::bind`]): the decision endpoints (`server`) and the admin ones (`admin`).
//! Must never: let an error, an unknown fact or an unparsable input end in an allow.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod dryrun;
pub mod lifecycle;
pub mod admin;
pub mod grpc;
pub mod server;
pub mod memo;
pub mod record;
pub mod reload;
pub mod resolver;
pub mod config;
pub mod dialect;
pub mod policy;
pub mod shared;
pub mod cache;
pub mod authorizer;
pub mod template;
pub mod credential;
pub mod decision;
pub mod identity;
pub mod request;
pub mod fields;
pub mod tracing;
pub mod settings;
pub mod digest;
pub mod clock;
pub mod flight;
pub mod logging;
pub mod metrics;

/// The certificates in the PEM file at `path` as trust anchors (`key` names the setting
/// in errors). A file with no certificate is an error, never an empty trust store.
pub(crate) fn load_roots(
    key: &str,
    path: &std::path::Path,
) -> Result<rustls::RootCertStore, settings::ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let fail = |e: &dyn std::fmt::Display| {
        settings::ConfigError::invalid(key, format!("{}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| fail(&e))?;
    if certs.is_empty() {
        return Err(fail(&"holds no certificate"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| fail(&e))?;
    }
    init_crypto();
    Ok(roots)
}

/// Pins the process-wide crypto providers (rustls and jsonwebtoken) to ring. Call first
/// in `main` and in every test that verifies tokens or makes TLS connections: with no
/// provider, or two, both libraries panic at first use.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &authorizer::jwt::provider::RING_PROVIDER,
    );
}
