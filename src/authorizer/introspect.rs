//! The `introspect` authorizer: opaque access tokens checked by OAuth 2.0 token
//! introspection (RFC 7662) at the issuer (Keycloak, Ory Hydra, Okta, Auth0, Authgear).
//!
//! Takes: a token from its sources and the per-worker clients. Asks: `POST` the
//! introspection URL, form-encoded `token=…` (and `token_type_hint`), authenticated as the
//! client (`Basic client_id:client_secret`, RFC 6749 §2.3.1). Returns: an allow whose
//! identity the claims name (the same mapping as the `jwt` authorizer's), valid no longer
//! than the token's `exp` and `allow_ttl`; a deny for `active: false` or no `active`, an
//! expired or not-yet-valid token, another issuer or audience, a missing scope; an error
//! when the issuer cannot be asked. Must never: log the token or the client secret, take
//! a token for active without `"active": true`, or keep an allow long after the issuer
//! could have revoked it (`allow_ttl`, short by default).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

use super::Fetcher;
use super::http::Transport;
use super::jwt::ClaimNames;
use crate::credential::{TokenSource, parse_sources};
use crate::decision::{AuthError, Decision, Denial, Verdict};
use crate::identity::{Claims, NamePool};
use crate::settings::{ConfigError, HumanDuration, StringList};

/// `[authorizers.NAME]` with `type = "introspect"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectSettings {
    pub url: String,
    #[serde(default)]
    pub token_sources: Option<StringList>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Client authentication by a bearer token instead (some issuers, e.g. Keycloak's
    /// older endpoints or a gateway in front of one, take an access token of the caller).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    #[serde(default)]
    pub token_type_hint: Option<String>,
    #[serde(default)]
    pub issuers: Option<StringList>,
    #[serde(default)]
    pub audiences: Option<StringList>,
    /// Every one of these scopes is required of the token.
    #[serde(default)]
    pub scopes: Option<StringList>,
    #[serde(default)]
    pub claims: ClaimNames,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub connect_timeout: Option<HumanDuration>,
    #[serde(default)]
    pub request_timeout: Option<HumanDuration>,
    #[serde(default)]
    pub pool_size: Option<usize>,
    /// How long an active answer is reused (never past `exp`): a token revoked at the
    /// issuer works at most this long after. Default 5 s.
    #[serde(default)]
    pub allow_ttl: Option<HumanDuration>,
    #[serde(default)]
    pub deny_ttl: Option<HumanDuration>,
}

impl IntrospectSettings {
    /// The files it names (a CA bundle, the client secret), for fingerprints and watches.
    pub fn files(&self) -> Vec<&PathBuf> {
        self.ca_file
            .iter()
            .chain(self.client_secret_file.iter())
            .chain(self.bearer_token_file.iter())
            .collect()
    }
}

/// A secret value whose `Debug` never shows it.
struct Redacted(String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(redacted)")
    }
}

/// A secret from a file (its first line's end trimmed) or an environment variable, each
/// named by its setting; neither is `None`, both an error.
fn read_secret(
    key: &str,
    (file_key, file): (&str, Option<&PathBuf>),
    (env_key, variable): (&str, Option<&str>),
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    match (file, variable) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            format!("{key}.{file_key}"),
            format!("give {file_key} or {env_key}, not both"),
        )),
        (Some(file), None) => {
            let path = base_dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::invalid(
                    format!("{key}.{file_key}"),
                    format!("{}: {e}", path.display()),
                )
            })?;
            let secret = text.trim_end_matches(['\r', '\n']);
            if secret.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{key}.{file_key}"),
                    format!("{} is empty", path.display()),
                ));
            }
            Ok(Some(secret.to_string()))
        }
        (None, Some(variable)) => match env(variable) {
            Some(value) if !value.is_empty() => Ok(Some(value)),
            _ => Err(ConfigError::invalid(
                format!("{key}.{env_key}"),
                format!("the variable {variable} is not set"),
            )),
        },
        (None, None) => Ok(None),
    }
}

/// A ready `introspect` authorizer.
#[derive(Debug)]
pub struct IntrospectAuthorizer {
    url: String,
    sources: Vec<TokenSource>,
    /// The `Authorization` header of every request (client authentication), if any.
    client_auth: Option<Redacted>,
    token_type_hint: Option<String>,
    issuers: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
    scopes: Vec<String>,
    claims: ClaimNames,
    names: NamePool,
    pub keep_claims: bool,
    pub transport: Transport,
    allow_ttl: Duration,
    deny_ttl: Option<Duration>,
}

impl IntrospectAuthorizer {
    pub fn build(
        name: &str,
        settings: IntrospectSettings,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<IntrospectAuthorizer, ConfigError> {
        let key = format!("authorizers.{name}");
        let parsed = url::Url::parse(&settings.url)
            .map_err(|e| ConfigError::invalid(format!("{key}.url"), e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError::invalid(
                format!("{key}.url"),
                "an http:// or https:// introspection endpoint",
            ));
        }
        let sources = parse_sources(
            &format!("{key}.token_sources"),
            settings.token_sources.as_ref(),
        )?;
        let secret = read_secret(
            &key,
            ("client_secret_file", settings.client_secret_file.as_ref()),
            ("client_secret_env", settings.client_secret_env.as_deref()),
            base_dir,
            env,
        )?;
        let bearer = read_secret(
            &key,
            ("bearer_token_file", settings.bearer_token_file.as_ref()),
            ("bearer_token_env", settings.bearer_token_env.as_deref()),
            base_dir,
            env,
        )?;
        let client_auth = match (&settings.client_id, secret) {
            (Some(_), Some(_)) if bearer.is_some() => {
                return Err(ConfigError::invalid(
                    format!("{key}.bearer_token_file"),
                    "authenticate to the issuer one way: client_id and a secret, or a bearer token",
                ));
            }
            (Some(id), Some(secret)) => {
                use base64::Engine as _;
                // RFC 6749 §2.3.1: each part form-urlencoded, then Basic
                let encode = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let pair = format!("{}:{}", encode(id), encode(&secret));
                Some(Redacted(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )))
            }
            (None, None) => match bearer {
                // a header value: visible ASCII only, or the request could not be sent
                Some(token) if !token.bytes().all(|b| b.is_ascii_graphic()) => {
                    return Err(ConfigError::invalid(
                        format!("{key}.bearer_token_file"),
                        "the bearer token holds a space or a control character",
                    ));
                }
                token => token.map(|token| Redacted(format!("Bearer {token}"))),
            },
            _ => {
                return Err(ConfigError::invalid(
                    format!("{key}.client_id"),
                    "client_id and a client secret go together (the issuer authenticates who asks)",
                ));
            }
        };
        let tls = match &settings.ca_file {
            Some(file) => Some(super::http::load_ca(
                &format!("{key}.ca_file"),
                &base_dir.join(file),
            )?),
            None => None,
        };
        let duration =
            |v: &Option<HumanDuration>, default: Duration| v.as_ref().map_or(default, |d| d.0);
        Ok(IntrospectAuthorizer {
            url: settings.url,
            sources,
            client_auth,
            token_type_hint: settings.token_type_hint,
            issuers: settings.issuers.map(|l| l.0),
            audiences: settings.audiences.map(|l| l.0),
            scopes: settings.scopes.map(|l| l.0).unwrap_or_default(),
            claims: settings.claims,
            names: NamePool::default(),
            keep_claims: false,
            transport: Transport {
                connect_timeout: duration(&settings.connect_timeout, Duration::from_secs(1)),
                request_timeout: duration(&settings.request_timeout, Duration::from_secs(2)),
                pool_size: settings.pool_size.unwrap_or(32),
                tls,
            },
            allow_ttl: duration(&settings.allow_ttl, Duration::from_secs(5)),
            deny_ttl: settings.deny_ttl.map(|d| d.0),
        })
    }

    pub fn token_sources(&self) -> &[TokenSource] {
        &self.sources
    }

    /// The issuer's answer about `token`.
    pub async fn decide(
        &self,
        token: &str,
        name: &str,
        fetcher: &Fetcher,
    ) -> Result<Decision, AuthError> {
        let fail = |message: String| AuthError::Upstream {
            url: self.url.clone(),
            message,
        };
        if fetcher.offline {
            return Err(fail("a dry run asks no issuer".into()));
        }
        let client = fetcher
            .backend_clients(name)
            .first()
            .ok_or_else(|| AuthError::Internal("no introspection client".into()))?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token);
        if let Some(hint) = &self.token_type_hint {
            form.append_pair("token_type_hint", hint);
        }
        let body = form.finish();
        let started = std::time::Instant::now();
        let exchange = async {
            let mut request = client
                .post(&self.url)
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .insert_header(("accept", "application/json"));
            if let Some(auth) = &self.client_auth {
                request = request.insert_header(("authorization", auth.0.as_str()));
            }
            let mut response = request
                .send_body(body)
                .await
                .map_err(|e| fail(format!("request failed: {e}")))?;
            let status = response.status().as_u16();
            if status != 200 {
                return Err(fail(format!("answered {status}")));
            }
            response
                .body()
                .limit(256 * 1024)
                .await
                .map_err(|e| fail(format!("body: {e}")))
        };
        let answer = actix_web::rt::time::timeout(self.transport.request_timeout, exchange)
            .await
            .map_err(|_| fail("timed out".into()))
            .and_then(|r| r);
        if let Some(metrics) = &fetcher.metrics {
            metrics.backend(
                name,
                &self.url,
                started.elapsed().as_secs_f64(),
                answer.is_err(),
            );
        }
        let claims: Claims = match serde_json::from_slice(&answer?) {
            Ok(Value::Object(claims)) => claims,
            _ => return Err(fail("the answer is not a JSON object".into())),
        };
        let mut decision = self.judge(&claims, unix_now());
        decision.ttl = match decision.verdict {
            Verdict::Allow(_) => Some(self.allow_ttl),
            _ => self.deny_ttl,
        };
        Ok(decision)
    }

    /// What an introspection answer means, at `now` (Unix seconds).
    fn judge(&self, claims: &Claims, now: u64) -> Decision {
        let deny = |why: &'static str| Decision::deny(Denial::InvalidCredential(why));
        // Trust decision: only an explicit `"active": true` is an active token; false, a
        // missing field or anything else is not (RFC 7662 §2.2)
        if claims.get("active") != Some(&Value::Bool(true)) {
            return deny("the issuer says the token is not active");
        }
        let number = |name: &str| claims.get(name).and_then(Value::as_u64);
        if number("exp").is_some_and(|exp| exp <= now) {
            return deny("token expired");
        }
        if number("nbf").is_some_and(|nbf| nbf > now) {
            return deny("token not yet valid");
        }
        if let Some(issuers) = &self.issuers {
            let issuer = claims.get("iss").and_then(Value::as_str);
            if !issuer.is_some_and(|iss| issuers.iter().any(|i| i == iss)) {
                return deny("token issued by another issuer");
            }
        }
        if let Some(audiences) = &self.audiences {
            let granted: Vec<&str> = match claims.get("aud") {
                Some(Value::String(aud)) => vec![aud.as_str()],
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !granted.iter().any(|aud| audiences.iter().any(|a| a == aud)) {
                return deny("token meant for another audience");
            }
        }
        if !self.scopes.is_empty() {
            let granted: Vec<&str> = claims
                .get("scope")
                .and_then(Value::as_str)
                .map(|s| s.split_ascii_whitespace().collect())
                .unwrap_or_default();
            if self.scopes.iter().any(|s| !granted.contains(&s.as_str())) {
                return Decision::deny(Denial::Forbidden("token lacks a required scope"));
            }
        }
        super::jwt::identity_from_claims(&self.claims, &self.names, self.keep_claims, claims)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn authorizer(extra: &str) -> IntrospectAuthorizer {
        let text = format!("url = \"https://idp.example.com/introspect\"\n{extra}");
        let settings: IntrospectSettings = config::Config::builder()
            .add_source(config::File::from_str(&text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        IntrospectAuthorizer::build("opaque", settings, Path::new("."), &|_| None).unwrap()
    }

    fn claims(value: Value) -> Claims {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn only_an_explicit_active_true_is_active() {
        let a = authorizer("");
        for answer in [
            json!({"active": false, "sub": "u"}),
            json!({"sub": "u"}),
            json!({"active": "true", "sub": "u"}),
        ] {
            assert!(matches!(
                a.judge(&claims(answer), 100).verdict,
                Verdict::Deny(_)
            ));
        }
        assert!(matches!(
            a.judge(&claims(json!({"active": true, "sub": "u"})), 100)
                .verdict,
            Verdict::Allow(_)
        ));
    }

    #[test]
    fn times_issuer_audience_and_scope_are_checked_like_a_jwts() {
        let a = authorizer(
            "issuers = [\"https://idp.example.com\"]\naudiences = [\"api\"]\nscopes = [\"read\"]",
        );
        let good = json!({"active": true, "sub": "u", "iss": "https://idp.example.com", "aud": ["x", "api"], "scope": "openid read", "exp": 200, "nbf": 50});
        assert!(matches!(
            a.judge(&claims(good.clone()), 100).verdict,
            Verdict::Allow(_)
        ));
        for (field, value) in [
            ("exp", json!(100)),
            ("nbf", json!(150)),
            ("iss", json!("https://evil.example.com")),
            ("aud", json!("other")),
            ("scope", json!("openid")),
        ] {
            let mut bad = good.clone();
            bad[field] = value;
            assert!(
                matches!(a.judge(&claims(bad), 100).verdict, Verdict::Deny(_)),
                "{field}"
            );
        }
        for missing in ["iss", "aud", "scope"] {
            let mut bad = good.clone();
            bad.as_object_mut().unwrap().remove(missing);
            assert!(
                matches!(a.judge(&claims(bad), 100).verdict, Verdict::Deny(_)),
                "no {missing}"
            );
        }
    }

    #[test]
    fn keycloaks_and_hydras_documented_answers_map_to_an_identity() {
        // Keycloak: roles under realm_access.roles
        let keycloak = authorizer("[claims]\nroles = \"realm_access.roles\"\nemail = \"email\"");
        let answer = json!({"active": true, "sub": "f:1", "email": "a@example.com", "realm_access": {"roles": ["admin", "user"]}, "client_id": "app", "username": "alice", "token_type": "Bearer", "exp": 4_000_000_000u64});
        let Verdict::Allow(identity) = keycloak.judge(&claims(answer), 100).verdict else {
            panic!("allowed");
        };
        assert_eq!(&*identity.user_id, "f:1");
        assert_eq!(&*identity.email, "a@example.com");
        assert_eq!(identity.roles.len(), 2);
        // Ory Hydra: sub, scope, client_id, ext
        let hydra = authorizer("");
        let answer = json!({"active": true, "sub": "user-7", "scope": "offline openid", "client_id": "app", "token_type": "Bearer", "token_use": "access_token", "exp": 4_000_000_000u64, "iat": 1_700_000_000u64, "iss": "https://hydra.example.com/"});
        let decision = hydra.judge(&claims(answer), 100);
        let Verdict::Allow(identity) = decision.verdict else {
            panic!("allowed");
        };
        assert_eq!(&*identity.user_id, "user-7");
        assert!(decision.valid_for.is_some(), "valid until its exp");
    }

    #[test]
    fn client_authentication_is_basic_with_each_part_form_encoded() {
        let a = IntrospectAuthorizer::build(
            "opaque",
            config::Config::builder()
                .add_source(config::File::from_str(
                    "url = \"https://idp/x\"\nclient_id = \"my app\"\nclient_secret_env = \"S\"",
                    config::FileFormat::Toml,
                ))
                .build()
                .unwrap()
                .try_deserialize()
                .unwrap(),
            Path::new("."),
            &|name| (name == "S").then(|| "p:ss".to_string()),
        )
        .unwrap();
        use base64::Engine as _;
        let expected = base64::engine::general_purpose::STANDARD.encode("my+app:p%3Ass");
        assert_eq!(
            a.client_auth.as_ref().map(|r| r.0.as_str()),
            Some(format!("Basic {expected}").as_str())
        );
        assert!(!format!("{a:?}").contains(&expected), "the secret in Debug");
    }

    fn built(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<IntrospectAuthorizer, ConfigError> {
        IntrospectAuthorizer::build(
            "opaque",
            config::Config::builder()
                .add_source(config::File::from_str(text, config::FileFormat::Toml))
                .build()
                .unwrap()
                .try_deserialize()
                .unwrap(),
            Path::new("."),
            env,
        )
    }

    #[test]
    fn client_authentication_by_a_bearer_token_and_only_one_way() {
        let env = |name: &str| match name {
            "T" => Some("caller-token".to_string()),
            "S" => Some("secret".to_string()),
            "BAD" => Some("two words".to_string()),
            _ => None,
        };
        let a = built("url = \"https://idp/x\"\nbearer_token_env = \"T\"", &env).unwrap();
        assert_eq!(
            a.client_auth.as_ref().map(|r| r.0.as_str()),
            Some("Bearer caller-token")
        );
        assert!(
            !format!("{a:?}").contains("caller-token"),
            "the token in Debug"
        );
        for refused in [
            "url = \"https://idp/x\"\nbearer_token_env = \"T\"\nclient_id = \"a\"\nclient_secret_env = \"S\"",
            "url = \"https://idp/x\"\nbearer_token_env = \"MISSING\"",
            "url = \"https://idp/x\"\nbearer_token_env = \"BAD\"",
            "url = \"https://idp/x\"\nbearer_token_env = \"T\"\nbearer_token_file = \"t\"",
        ] {
            let error = built(refused, &env).unwrap_err().to_string();
            assert!(!error.contains("caller-token"), "{error}");
        }
    }
}
