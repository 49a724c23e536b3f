//! The `jwt` authorizer: signed tokens checked against pinned keys.
//!
//! Takes: a presented token; keys from PEM files, inline HMAC secrets or a JWKS URL
//! (fetched at start, refreshed when older than `jwks_refresh`, refetched on an unknown
//! `kid` at most once per `jwks_min_refetch`). Returns: `Allow(identity)` with the cache
//! lifetime capped at `exp`; `Deny(InvalidCredential)` for every verification failure;
//! `Abstain` when the credential is not a JWT at all; an error when keys cannot be had.
//! Must never: accept `alg: none`, let a token choose an algorithm its key is not pinned
//! to (HMAC against a public key), accept a symmetric key from a URL, or log a token.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::static_tokens::parse_sources;
use super::{AuthError, Decision, Denial, Fetcher, Identity, TokenSource};
use crate::config::{ConfigError, HumanDuration, StringList};

/// `[authorizers.NAME]` with `type = "jwt"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    #[serde(default)]
    pub token_sources: Option<StringList>,
    #[serde(default)]
    pub issuers: Option<StringList>,
    #[serde(default)]
    pub audiences: Option<StringList>,
    #[serde(default)]
    pub leeway: Option<HumanDuration>,
    /// Tokens without `exp` are refused unless this is false.
    #[serde(default = "yes")]
    pub require_exp: bool,
    #[serde(default)]
    pub keys: Vec<KeySettings>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Algorithms accepted from JWKS keys. Required with `jwks_url`.
    #[serde(default)]
    pub jwks_algorithms: Option<StringList>,
    #[serde(default)]
    pub jwks_refresh: Option<HumanDuration>,
    #[serde(default)]
    pub jwks_min_refetch: Option<HumanDuration>,
    #[serde(default)]
    pub jwks_timeout: Option<HumanDuration>,
    #[serde(default)]
    pub claims: ClaimNames,
}

fn yes() -> bool {
    true
}

/// One pinned key. Give exactly one of `pem_file`, `secret`, `secret_base64`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    #[serde(default)]
    pub kid: Option<String>,
    pub algorithms: StringList,
    #[serde(default)]
    pub pem_file: Option<PathBuf>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_base64: Option<String>,
}

/// Which claim feeds which identity field. Dotted names reach into objects
/// (`realm_access.roles`). An empty name switches the field off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimNames {
    pub user_id: String,
    pub session_name: String,
    pub email: String,
    pub roles: String,
    pub amr: String,
    pub auth_time: String,
    pub verified: String,
    pub anonymous: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            user_id: "sub".into(),
            session_name: "preferred_username".into(),
            email: "email".into(),
            roles: "roles".into(),
            amr: "amr".into(),
            auth_time: "auth_time".into(),
            verified: "email_verified".into(),
            anonymous: String::new(),
        }
    }
}

/// A verification key with the algorithms it is pinned to.
#[derive(Clone)]
struct PinnedKey {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print key material
        f.debug_struct("PinnedKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// Keys from one JWKS document, by `kid`.
#[derive(Debug, Default)]
struct KeySet {
    keys: Vec<PinnedKey>,
}

#[derive(Debug, Default)]
struct JwksState {
    keys: Arc<KeySet>,
    fetched_at: Option<Instant>,
    last_failure: Option<Instant>,
}

/// A JWKS endpoint with its last good key set.
#[derive(Debug)]
struct JwksSource {
    /// The authorizer's name, for metrics.
    authorizer: String,
    url: String,
    algorithms: Vec<Algorithm>,
    refresh: Duration,
    min_refetch: Duration,
    timeout: Duration,
    state: RwLock<JwksState>,
    /// Holds the last fetch for `min_refetch`: concurrent callers share one fetch, and
    /// nobody fetches again sooner than that.
    gate: moka::future::Cache<(), Arc<KeySet>>,
    fetches: AtomicU64,
}

/// A ready JWT authorizer.
#[derive(Debug)]
pub struct JwtAuthorizer {
    sources: Vec<TokenSource>,
    static_keys: Vec<PinnedKey>,
    jwks: Option<JwksSource>,
    validations: HashMap<Algorithm, Validation>,
    claims: ClaimNames,
}

fn parse_algorithms(key: &str, list: &StringList) -> Result<Vec<Algorithm>, ConfigError> {
    if list.0.is_empty() {
        return Err(ConfigError::invalid(key, "needs at least one algorithm"));
    }
    let mut out: Vec<Algorithm> = Vec::new();
    for name in &list.0 {
        let alg: Algorithm = name.parse().map_err(|_| {
            ConfigError::invalid(
                key,
                format!("{name:?} is not one of HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA"),
            )
        })?;
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    let family = out[0].family();
    if out.iter().any(|a| a.family() != family) {
        return Err(ConfigError::invalid(
            key,
            "one key's algorithms must all be of one family (HMAC, RSA, EC or EdDSA)",
        ));
    }
    Ok(out)
}

fn load_key(
    key_name: &str,
    settings: &KeySettings,
    base_dir: &Path,
) -> Result<PinnedKey, ConfigError> {
    let algorithms = parse_algorithms(&format!("{key_name}.algorithms"), &settings.algorithms)?;
    let family = algorithms[0].family();
    let key = match (
        &settings.pem_file,
        &settings.secret,
        &settings.secret_base64,
    ) {
        (Some(file), None, None) => {
            let path = base_dir.join(file);
            let pem = std::fs::read(&path).map_err(|e| {
                ConfigError::invalid(
                    format!("{key_name}.pem_file"),
                    format!("{}: {e}", path.display()),
                )
            })?;
            let parsed = match family {
                // Pinning: an HMAC algorithm on a PEM key would let anyone who has the
                // public key forge tokens with it as the HMAC secret.
                AlgorithmFamily::Hmac => {
                    return Err(ConfigError::invalid(
                        format!("{key_name}.algorithms"),
                        "HMAC algorithms take a secret, never a PEM key",
                    ));
                }
                AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem),
                AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem),
                AlgorithmFamily::Ed => DecodingKey::from_ed_pem(&pem),
            };
            parsed.map_err(|e| {
                ConfigError::invalid(
                    format!("{key_name}.pem_file"),
                    format!("{} is not a {family:?} public key: {e}", path.display()),
                )
            })?
        }
        (None, secret, secret_base64) if secret.is_some() != secret_base64.is_some() => {
            if family != AlgorithmFamily::Hmac {
                return Err(ConfigError::invalid(
                    format!("{key_name}.algorithms"),
                    "a secret can only be used with HS256/384/512",
                ));
            }
            let bytes = match (secret, secret_base64) {
                (Some(s), _) => s.as_bytes().to_vec(),
                (_, Some(b)) => base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .map_err(|_| {
                        ConfigError::invalid(format!("{key_name}.secret_base64"), "is not base64")
                    })?,
                _ => Vec::new(),
            };
            if bytes.len() < 32 {
                return Err(ConfigError::invalid(
                    key_name,
                    "an HMAC secret must be at least 32 bytes",
                ));
            }
            DecodingKey::from_secret(&bytes)
        }
        _ => {
            return Err(ConfigError::invalid(
                key_name,
                "give exactly one of pem_file, secret, secret_base64",
            ));
        }
    };
    Ok(PinnedKey {
        kid: settings.kid.clone(),
        key,
        algorithms,
    })
}

impl JwtAuthorizer {
    pub fn build(
        name: &str,
        settings: JwtSettings,
        base_dir: &Path,
    ) -> Result<JwtAuthorizer, ConfigError> {
        let key = format!("authorizers.{name}");
        let sources = parse_sources(
            &format!("{key}.token_sources"),
            settings.token_sources.as_ref(),
        )?;
        let mut static_keys = Vec::new();
        for (index, key_settings) in settings.keys.iter().enumerate() {
            static_keys.push(load_key(
                &format!("{key}.keys[{index}]"),
                key_settings,
                base_dir,
            )?);
        }
        let jwks = match &settings.jwks_url {
            None => {
                if settings.jwks_algorithms.is_some() {
                    return Err(ConfigError::invalid(
                        format!("{key}.jwks_algorithms"),
                        "needs jwks_url",
                    ));
                }
                None
            }
            Some(url) => {
                let lower = url.to_ascii_lowercase();
                if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                    return Err(ConfigError::invalid(
                        format!("{key}.jwks_url"),
                        "must be an http(s) URL",
                    ));
                }
                let algorithms = parse_algorithms(
                    &format!("{key}.jwks_algorithms"),
                    settings.jwks_algorithms.as_ref().ok_or_else(|| {
                        ConfigError::invalid(
                            format!("{key}.jwks_algorithms"),
                            "is required with jwks_url (pin the algorithms your issuer signs with)",
                        )
                    })?,
                )?;
                if algorithms[0].family() == AlgorithmFamily::Hmac {
                    return Err(ConfigError::invalid(
                        format!("{key}.jwks_algorithms"),
                        "symmetric keys are never taken from a URL",
                    ));
                }
                let refresh = settings
                    .jwks_refresh
                    .map_or(Duration::from_secs(300), |d| d.0);
                let min_refetch = settings
                    .jwks_min_refetch
                    .map_or(Duration::from_secs(30), |d| d.0);
                if min_refetch > refresh || min_refetch.is_zero() {
                    return Err(ConfigError::invalid(
                        format!("{key}.jwks_min_refetch"),
                        "must be above zero and at most jwks_refresh",
                    ));
                }
                Some(JwksSource {
                    authorizer: name.to_string(),
                    url: url.clone(),
                    algorithms,
                    refresh,
                    min_refetch,
                    timeout: settings
                        .jwks_timeout
                        .map_or(Duration::from_secs(5), |d| d.0),
                    state: RwLock::new(JwksState::default()),
                    gate: moka::future::Cache::builder()
                        .max_capacity(1)
                        .time_to_live(min_refetch)
                        .build(),
                    fetches: AtomicU64::new(0),
                })
            }
        };
        if static_keys.is_empty() && jwks.is_none() {
            return Err(ConfigError::invalid(
                key,
                "a jwt authorizer needs keys or jwks_url",
            ));
        }
        let issuers = settings.issuers.map(|l| l.0).unwrap_or_default();
        let audiences = settings.audiences.map(|l| l.0).unwrap_or_default();
        let leeway = settings.leeway.map_or(Duration::from_secs(30), |d| d.0);
        if leeway > Duration::from_secs(600) {
            return Err(ConfigError::invalid(
                format!("{key}.leeway"),
                "must be at most 10m",
            ));
        }
        if settings.claims.user_id.is_empty() {
            return Err(ConfigError::invalid(
                format!("{key}.claims.user_id"),
                "must name a claim",
            ));
        }
        let mut all_algorithms: Vec<Algorithm> = static_keys
            .iter()
            .flat_map(|k| k.algorithms.clone())
            .collect();
        if let Some(j) = &jwks {
            all_algorithms.extend(j.algorithms.iter().copied());
        }
        let mut validations = HashMap::new();
        for alg in all_algorithms {
            let mut v = Validation::new(alg);
            v.leeway = leeway.as_secs();
            v.validate_nbf = true;
            v.validate_exp = true;
            let mut required: Vec<&str> = Vec::new();
            if settings.require_exp {
                required.push("exp");
            }
            // iss/aud that fail to parse are skipped unless required: require what we check.
            if !issuers.is_empty() {
                v.set_issuer(&issuers);
                required.push("iss");
            }
            if audiences.is_empty() {
                v.validate_aud = false;
            } else {
                v.set_audience(&audiences);
                required.push("aud");
            }
            v.set_required_spec_claims(&required);
            validations.insert(alg, v);
        }
        Ok(JwtAuthorizer {
            sources,
            static_keys,
            jwks,
            validations,
            claims: settings.claims,
        })
    }

    pub fn token_sources(&self) -> &[TokenSource] {
        &self.sources
    }

    /// How many JWKS fetches were attempted; for tests and metrics.
    pub fn jwks_fetches(&self) -> u64 {
        self.jwks
            .as_ref()
            .map_or(0, |j| j.fetches.load(Ordering::Relaxed))
    }

    /// How often the JWKS (if any) should be fetched again.
    pub fn jwks_refresh_interval(&self) -> Option<Duration> {
        self.jwks.as_ref().map(|j| j.refresh)
    }

    /// Whether the JWKS (if any) has been fetched successfully at least once.
    pub fn jwks_ready(&self) -> bool {
        self.jwks.as_ref().is_none_or(|j| {
            j.state
                .read()
                .map(|s| s.fetched_at.is_some())
                .unwrap_or(false)
        })
    }

    /// Fetches the JWKS once at start-up, so the first requests do not wait for it.
    pub async fn prefetch(&self, fetcher: &Fetcher) -> Result<(), AuthError> {
        match &self.jwks {
            Some(jwks) => jwks.refresh(fetcher).await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// Verifies a token.
    pub async fn decide(&self, token: &str, fetcher: &Fetcher) -> Result<Decision, AuthError> {
        // The header is parsed once on the way to a verdict; only a header jsonwebtoken
        // refuses is looked at again, to tell "not a JWT" (abstain) from a bad one.
        let header = match jsonwebtoken::decode_header(token) {
            Ok(header) => header,
            Err(_) => {
                return Ok(match jwt_alg(token) {
                    // Not a JWT at all (an API key, an opaque session id): not ours to judge.
                    None => Decision::abstain(),
                    Some(alg) if alg.eq_ignore_ascii_case("none") => {
                        Decision::deny(Denial::InvalidCredential("unsigned token"))
                    }
                    Some(_) => Decision::deny(Denial::InvalidCredential("malformed token")),
                });
            }
        };
        let kid = header.kid.as_deref();
        let mut candidates = self.candidates(kid, header.alg, &self.static_keys);
        if let Some(jwks) = &self.jwks {
            let keys = jwks.keys_for(fetcher, kid).await?;
            candidates.extend(self.candidates(kid, header.alg, &keys.keys));
        }
        if candidates.is_empty() {
            return Ok(Decision::deny(Denial::InvalidCredential(
                "unknown key or algorithm",
            )));
        }
        let Some(validation) = self.validations.get(&header.alg) else {
            return Ok(Decision::deny(Denial::InvalidCredential(
                "algorithm not allowed",
            )));
        };
        // Several keys can share a kid (or have none): the token is valid if one of them
        // verifies it; the answer otherwise is the last key's reason.
        let mut failure = "bad signature";
        for key in &candidates {
            match jsonwebtoken::decode::<serde_json::Map<String, Value>>(
                token, &key.key, validation,
            ) {
                Ok(data) => return Ok(self.identity_from(&data.claims)),
                Err(e) => failure = describe(e.kind()),
            }
        }
        Ok(Decision::deny(Denial::InvalidCredential(failure)))
    }

    /// Keys that match the token's `kid` (or, without one, keys without one) and are
    /// pinned to the token's algorithm.
    fn candidates(&self, kid: Option<&str>, alg: Algorithm, keys: &[PinnedKey]) -> Vec<PinnedKey> {
        keys.iter()
            .filter(|k| match kid {
                Some(kid) => k.kid.as_deref() == Some(kid),
                None => k.kid.is_none() || keys.len() == 1,
            })
            // Pinning: the token's header never chooses an algorithm its key was not
            // configured (or published) for.
            .filter(|k| k.algorithms.contains(&alg))
            .cloned()
            .collect()
    }

    fn identity_from(&self, claims: &serde_json::Map<String, Value>) -> Decision {
        let names = &self.claims;
        let Some(user_id) = claim(claims, &names.user_id)
            .and_then(value_text)
            .filter(|s| !s.is_empty())
        else {
            return Decision::deny(Denial::InvalidCredential("token names no user"));
        };
        let session_name = claim(claims, &names.session_name)
            .and_then(value_text)
            .unwrap_or_else(|| user_id.clone());
        let identity = Identity {
            session_name,
            email: claim(claims, &names.email)
                .and_then(value_text)
                .unwrap_or_default(),
            roles: claim(claims, &names.roles)
                .map(value_list)
                .unwrap_or_default(),
            amr: claim(claims, &names.amr)
                .map(value_list)
                .unwrap_or_default(),
            authenticated_at: claim(claims, &names.auth_time).and_then(Value::as_u64),
            verified: claim(claims, &names.verified).is_some_and(value_true),
            anonymous: claim(claims, &names.anonymous).is_some_and(value_true),
            can_reauthenticate: false,
            user_id,
            extra_headers: Vec::new(),
            claims: Some(Arc::new(claims.clone())),
        };
        let valid_for = claims.get("exp").and_then(Value::as_u64).map(|exp| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            Duration::from_secs(exp.saturating_sub(now))
        });
        Decision::allow(identity, valid_for)
    }
}

/// The `alg` of a token if it is shaped like a JWS (three base64url parts, a JSON header
/// with an `alg` string).
fn jwt_alg(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let header = parts.next()?;
    parts.next()?;
    parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(str::to_owned)
}

fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "token expired",
        K::ImmatureSignature => "token not yet valid",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::InvalidSignature => "bad signature",
        K::InvalidAlgorithm | K::InvalidKeyFormat => "algorithm not allowed for key",
        K::MissingRequiredClaim(_) => "required claim missing",
        K::InvalidClaimFormat(_) => "claim has the wrong type",
        _ => "malformed token",
    }
}

/// A claim by name, or by a dotted path into nested objects (`realm_access.roles`).
pub(crate) fn claim<'a>(
    claims: &'a serde_json::Map<String, Value>,
    path: &str,
) -> Option<&'a Value> {
    if path.is_empty() {
        return None;
    }
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.get(part)?;
    }
    Some(current)
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn value_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().filter_map(value_text).collect(),
        Value::String(s) => s
            .split([' ', ','])
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn value_true(v: &Value) -> bool {
    matches!(v, Value::Bool(true)) || matches!(v, Value::String(s) if s == "true")
}

impl JwksSource {
    /// The key set to verify a token with `kid`: the current one, refreshed when stale or
    /// when it lacks `kid` (at most once per `min_refetch`).
    async fn keys_for(
        &self,
        fetcher: &Fetcher,
        kid: Option<&str>,
    ) -> Result<Arc<KeySet>, AuthError> {
        let (keys, stale) = {
            let state = self
                .state
                .read()
                .map_err(|_| AuthError::Internal("jwks state poisoned".into()))?;
            let stale = state.fetched_at.is_none_or(|t| t.elapsed() >= self.refresh);
            (state.keys.clone(), stale)
        };
        let missing =
            kid.is_some_and(|kid| !keys.keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
        if !stale && !missing {
            return Ok(keys);
        }
        match self.refresh(fetcher).await {
            Ok(fresh) => Ok(fresh),
            Err(e) => {
                let state = self
                    .state
                    .read()
                    .map_err(|_| AuthError::Internal("jwks state poisoned".into()))?;
                if state.fetched_at.is_some() {
                    // keep serving the last good keys while the issuer is unreachable
                    Ok(state.keys.clone())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Fetches the document unless one was fetched (or failed) within `min_refetch`.
    /// Concurrent callers share one fetch.
    async fn refresh(&self, fetcher: &Fetcher) -> Result<Arc<KeySet>, AuthError> {
        {
            let state = self
                .state
                .read()
                .map_err(|_| AuthError::Internal("jwks state poisoned".into()))?;
            if state
                .last_failure
                .is_some_and(|t| t.elapsed() < self.min_refetch)
            {
                // Rate limit: a down issuer is not hammered by every request with a new kid.
                return Err(AuthError::Upstream {
                    url: self.url.clone(),
                    message: "recent JWKS fetch failed; waiting before the next try".into(),
                });
            }
        }
        let result = self
            .gate
            .try_get_with((), async {
                self.fetches.fetch_add(1, Ordering::Relaxed);
                let outcome = self.fetch(fetcher).await;
                if let Some(metrics) = &fetcher.metrics {
                    metrics.jwks_refresh(&self.authorizer, outcome.is_ok());
                }
                if let Ok(mut state) = self.state.write() {
                    match &outcome {
                        Ok(keys) => {
                            state.keys = keys.clone();
                            state.fetched_at = Some(Instant::now());
                            state.last_failure = None;
                        }
                        Err(_) => state.last_failure = Some(Instant::now()),
                    }
                }
                outcome
            })
            .await;
        result.map_err(|e| (*e).clone())
    }

    async fn fetch(&self, fetcher: &Fetcher) -> Result<Arc<KeySet>, AuthError> {
        let fail = |message: String| AuthError::Upstream {
            url: self.url.clone(),
            message,
        };
        let body = actix_web::rt::time::timeout(self.timeout, async {
            let mut response = fetcher
                .client
                .get(&self.url)
                .insert_header(("accept", "application/json"))
                .send()
                .await
                .map_err(|e| fail(format!("request failed: {e}")))?;
            if response.status().as_u16() != 200 {
                return Err(fail(format!("answered {}", response.status().as_u16())));
            }
            response
                .body()
                .limit(1024 * 1024)
                .await
                .map_err(|e| fail(format!("body: {e}")))
        })
        .await
        .map_err(|_| fail("timed out".into()))??;
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| fail(format!("not a JWKS: {e}")))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let family_algorithms: Vec<Algorithm> = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa.algorithms().to_vec(),
                AlgorithmParameters::EllipticCurve(p) => match p.curve {
                    EllipticCurve::P256 => vec![Algorithm::ES256],
                    EllipticCurve::P384 => vec![Algorithm::ES384],
                    _ => continue,
                },
                AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
                // symmetric or unknown key types are never accepted from a URL
                _ => continue,
            };
            let published: Option<Algorithm> = match jwk.common.key_algorithm {
                // KeyAlgorithm and Algorithm share their JOSE names; encryption
                // algorithms (RSA-OAEP…) have no Algorithm and the key is skipped.
                Some(ka) => match serde_json::to_value(ka)
                    .ok()
                    .and_then(|v| v.as_str()?.parse::<Algorithm>().ok())
                {
                    Some(alg) => Some(alg),
                    None => continue,
                },
                None => None,
            };
            let algorithms: Vec<Algorithm> = family_algorithms
                .into_iter()
                .filter(|a| self.algorithms.contains(a))
                .filter(|a| published.is_none_or(|p| p == *a))
                .collect();
            if algorithms.is_empty() {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                log::warn!("jwks {}: skipping a key that does not parse", self.url);
                continue;
            };
            keys.push(PinnedKey {
                kid: jwk.common.key_id.clone(),
                key,
                algorithms,
            });
        }
        log::info!("jwks {}: {} usable keys", self.url, keys.len());
        Ok(Arc::new(KeySet { keys }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::authorizer::Verdict;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    pub const SECRET: &str = "an-hmac-secret-that-is-32-bytes!!";

    pub fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// Builds authorizer `a` from TOML settings written under `[a]`.
    fn from_toml(text: &str) -> Result<JwtAuthorizer, ConfigError> {
        crate::init_crypto();
        #[derive(Deserialize)]
        struct Wrap {
            a: JwtSettings,
        }
        let wrap: Wrap = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("settings parse");
        JwtAuthorizer::build("a", wrap.a, Path::new("."))
    }

    fn authorizer(extra: &str) -> JwtAuthorizer {
        from_toml(&format!(
            "[a]\nissuers = [\"https://idp.test\"]\naudiences = [\"api\"]\n{extra}\n[[a.keys]]\nkid = \"hs\"\nalgorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\n"
        ))
        .expect("builds")
    }

    fn sign(claims: Value, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        encode(
            &header,
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn good_claims() -> Value {
        json!({"sub": "u-123", "iss": "https://idp.test", "aud": "api", "exp": now() + 600,
               "roles": ["admin", "dev"], "amr": ["pwd", "mfa"], "auth_time": 1136171045u64,
               "email_verified": true, "preferred_username": "alice"})
    }

    fn verdict(a: &JwtAuthorizer, token: &str) -> Decision {
        let fetcher = Fetcher::new(Duration::from_secs(1));
        futures_util::FutureExt::now_or_never(a.decide(token, &fetcher))
            .expect("static keys never wait")
            .expect("no error")
    }

    fn denial(a: &JwtAuthorizer, token: &str) -> &'static str {
        match verdict(a, token).verdict {
            Verdict::Deny(Denial::InvalidCredential(why)) => why,
            other => panic!("expected a deny, got {other:?}"),
        }
    }

    #[actix_web::test]
    async fn valid_token_maps_claims_to_identity() {
        let a = authorizer("");
        let decision = verdict(&a, &sign(good_claims(), Some("hs")));
        let Verdict::Allow(id) = decision.verdict else {
            panic!("not allowed")
        };
        assert_eq!(id.user_id, "u-123");
        assert_eq!(id.session_name, "alice");
        assert_eq!(id.roles, vec!["admin", "dev"]);
        assert_eq!(id.amr, vec!["pwd", "mfa"]);
        assert_eq!(id.authenticated_at, Some(1136171045));
        assert!(id.verified);
        let ttl = decision.valid_for.expect("exp caps ttl");
        assert!(ttl <= Duration::from_secs(600) && ttl >= Duration::from_secs(590));
    }

    #[actix_web::test]
    async fn expired_and_not_yet_valid_are_denied() {
        let a = authorizer("");
        let mut expired = good_claims();
        expired["exp"] = json!(now() - 120);
        assert_eq!(denial(&a, &sign(expired, Some("hs"))), "token expired");
        let mut within_leeway = good_claims();
        within_leeway["exp"] = json!(now() - 10);
        assert!(matches!(
            verdict(&a, &sign(within_leeway, Some("hs"))).verdict,
            Verdict::Allow(_)
        ));
        let mut future = good_claims();
        future["nbf"] = json!(now() + 300);
        assert_eq!(denial(&a, &sign(future, Some("hs"))), "token not yet valid");
    }

    #[actix_web::test]
    async fn wrong_issuer_and_audience_are_denied() {
        let a = authorizer("");
        let mut iss = good_claims();
        iss["iss"] = json!("https://evil.test");
        assert_eq!(denial(&a, &sign(iss, Some("hs"))), "wrong issuer");
        let mut aud = good_claims();
        aud["aud"] = json!("other");
        assert_eq!(denial(&a, &sign(aud, Some("hs"))), "wrong audience");
        let mut no_iss = good_claims();
        no_iss.as_object_mut().unwrap().remove("iss");
        assert_eq!(
            denial(&a, &sign(no_iss, Some("hs"))),
            "required claim missing"
        );
        let mut numeric_iss = good_claims();
        numeric_iss["iss"] = json!(42);
        assert!(matches!(
            verdict(&a, &sign(numeric_iss, Some("hs"))).verdict,
            Verdict::Deny(_)
        ));
    }

    #[actix_web::test]
    async fn bad_signature_is_denied() {
        let a = authorizer("");
        let token = sign(good_claims(), Some("hs"));
        let (rest, sig) = token.rsplit_once('.').unwrap();
        let first = if sig.starts_with('A') { 'B' } else { 'A' };
        let flipped = format!("{first}{}", &sig[1..]);
        assert_eq!(denial(&a, &format!("{rest}.{flipped}")), "bad signature");
        let other = encode(
            &Header::new(Algorithm::HS256),
            &good_claims(),
            &EncodingKey::from_secret(b"another-secret-of-32-bytes-length!"),
        )
        .unwrap();
        assert!(matches!(verdict(&a, &other).verdict, Verdict::Deny(_)));
    }

    #[actix_web::test]
    async fn alg_none_is_denied() {
        let a = authorizer("");
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        for alg in ["none", "None", "NONE"] {
            let token = format!(
                "{}.{}.",
                b64(&json!({"alg": alg, "kid": "hs"})),
                b64(&good_claims())
            );
            assert_eq!(denial(&a, &token), "unsigned token", "{alg}");
        }
    }

    #[actix_web::test]
    async fn hmac_with_a_public_key_is_denied() {
        crate::init_crypto();
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ec.pem");
        std::fs::write(&pem, TEST_EC_PUBLIC_PEM).unwrap();
        let text = format!(
            "[[a.keys]]\nkid = \"ec\"\nalgorithms = [\"ES256\"]\npem_file = {:?}\n",
            pem.display().to_string()
        );
        let a = from_toml(&text).unwrap();
        // the attacker signs HS256 using the public key text as the HMAC secret
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("ec".into());
        let forged = encode(
            &header,
            &json!({"sub": "admin", "exp": now() + 60}),
            &EncodingKey::from_secret(TEST_EC_PUBLIC_PEM.as_bytes()),
        )
        .unwrap();
        assert_eq!(denial(&a, &forged), "unknown key or algorithm");
        // and a PEM key can never be configured for HMAC at all
        let bad = format!(
            "[[a.keys]]\nalgorithms = [\"HS256\"]\npem_file = {:?}\n",
            pem.display().to_string()
        );
        let err = from_toml(&bad).unwrap_err().to_string();
        assert!(err.contains("never a PEM key"), "{err}");
    }

    #[actix_web::test]
    async fn valid_es256_token_verifies_with_the_pem_key() {
        crate::init_crypto();
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ec.pem");
        std::fs::write(&pem, TEST_EC_PUBLIC_PEM).unwrap();
        let text = format!(
            "[[a.keys]]\nalgorithms = [\"ES256\"]\npem_file = {:?}\n",
            pem.display().to_string()
        );
        let a = from_toml(&text).unwrap();
        let token = encode(
            &Header::new(Algorithm::ES256),
            &json!({"sub": "ec-user", "exp": now() + 60}),
            &EncodingKey::from_ec_pem(TEST_EC_PRIVATE_PEM.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(
            matches!(verdict(&a, &token).verdict, Verdict::Allow(id) if id.user_id == "ec-user")
        );
    }

    #[actix_web::test]
    async fn every_matching_key_is_tried() {
        let second = "a-second-hmac-secret-of-32-bytes!";
        let a = from_toml(&format!(
            "[[a.keys]]\nalgorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\n[[a.keys]]\nalgorithms = [\"HS256\"]\nsecret = \"{second}\"\n"
        ))
        .unwrap();
        let claims = json!({"sub": "rotated", "exp": now() + 60});
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(second.as_bytes()),
        )
        .unwrap();
        assert!(
            matches!(verdict(&a, &token).verdict, Verdict::Allow(id) if id.user_id == "rotated")
        );
        let other = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"a-third-secret-nobody-configured!"),
        )
        .unwrap();
        assert_eq!(denial(&a, &other), "bad signature");
    }

    #[actix_web::test]
    async fn unknown_kid_is_denied() {
        let a = authorizer("");
        assert_eq!(
            denial(&a, &sign(good_claims(), Some("other"))),
            "unknown key or algorithm"
        );
    }

    #[actix_web::test]
    async fn malformed_tokens_are_denied_or_not_ours() {
        let a = authorizer("");
        assert_eq!(verdict(&a, "demo-token").verdict, Verdict::Abstain);
        assert_eq!(verdict(&a, "a.b.c").verdict, Verdict::Abstain);
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let bad_header = format!("{}.{}.sig", b64("{\"alg\":\"HS256\",\"typ\":7}"), b64("{}"));
        assert_eq!(denial(&a, &bad_header), "malformed token");
        let garbage_payload = format!("{}.!!!.sig", b64("{\"alg\":\"HS256\",\"kid\":\"hs\"}"));
        assert!(matches!(
            verdict(&a, &garbage_payload).verdict,
            Verdict::Deny(_)
        ));
        let unknown_alg = format!("{}.{}.sig", b64("{\"alg\":\"XS999\"}"), b64("{}"));
        assert_eq!(denial(&a, &unknown_alg), "malformed token");
    }

    #[actix_web::test]
    async fn token_without_subject_is_denied() {
        let a = authorizer("");
        let mut claims = good_claims();
        claims.as_object_mut().unwrap().remove("sub");
        assert_eq!(denial(&a, &sign(claims, Some("hs"))), "token names no user");
    }

    #[test]
    fn config_rejects_unsafe_settings() {
        let build = |text: &str| from_toml(text).map(|_| ()).unwrap_err().to_string();
        assert!(build("[a]\n").contains("needs keys or jwks_url"));
        assert!(
            build("[[a.keys]]\nalgorithms = [\"HS256\"]\nsecret = \"short\"\n")
                .contains("at least 32 bytes")
        );
        assert!(build("[[a.keys]]\nalgorithms = [\"HS256\", \"RS256\"]\nsecret = \"an-hmac-secret-that-is-32-bytes!!\"\n").contains("one family"));
        assert!(build("[[a.keys]]\nalgorithms = [\"none\"]\nsecret = \"an-hmac-secret-that-is-32-bytes!!\"\n").contains("is not one of"));
        assert!(build("[a]\njwks_url = \"https://idp/jwks\"\n").contains("jwks_algorithms"));
        assert!(
            build("[a]\njwks_url = \"https://idp/jwks\"\njwks_algorithms = [\"HS256\"]\n")
                .contains("never taken from a URL")
        );
    }

    #[test]
    fn claims_reach_into_objects_and_accept_strings() {
        let claims = json!({"realm_access": {"roles": ["a", "b"]}, "scope": "read write"});
        let map = claims.as_object().unwrap();
        assert_eq!(
            claim(map, "realm_access.roles").map(value_list).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(
            claim(map, "scope").map(value_list).unwrap(),
            vec!["read", "write"]
        );
        assert!(claim(map, "missing.path").is_none());
    }

    pub const TEST_EC_PRIVATE_PEM: &str = include_str!("../../tests/fixtures/ec256.key.pem");
    pub const TEST_EC_PUBLIC_PEM: &str = include_str!("../../tests/fixtures/ec256.pub.pem");
}
