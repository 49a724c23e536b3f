//! The `jwt` authorizer: signed tokens checked against pinned keys.
//!
//! Takes: a presented token; keys from PEM files, inline HMAC secrets or a JWKS URL
//! (fetched at start, refreshed when older than `jwks_refresh`, refetched on an unknown
//! `kid` at most once per `jwks_min_refetch`). Returns: `Allow(identity)` with the cache
//! lifetime capped at `exp`; `Deny(InvalidCredential)` for every verification failure;
//! `Abstain` when the credential is not a JWT at all; an error when keys cannot be had.
//! Files: `keys` (pinning and loading), `jwks` (fetch, refresh, rate limit), `verify`
//! (verification and claims → identity).
//! Must never: accept `alg: none`, let a token choose an algorithm its key is not pinned
//! to (HMAC against a public key), accept a symmetric key from a URL, or log a token.

mod jwks;
mod keys;
pub mod provider;
#[cfg(test)]
mod tests;
mod verify;

pub(crate) use self::verify::identity_from_claims;

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;
use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use serde::Deserialize;

use self::jwks::{JwksSource, JwksState};
use self::keys::{KeySettings, PinnedKey, load_key, parse_algorithms};
use crate::authorizer::Fetcher;
use crate::credential::{TokenSource, parse_sources};
use crate::decision::AuthError;
use crate::flight::SingleFlight;
use crate::identity::NamePool;
use crate::settings::{ConfigError, HumanDuration, StringList};

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

/// Which claim feeds which identity field. Dotted names reach into objects
/// (`realm_access.roles`); a claim named with dots (a URL) is found first as it is. An
/// empty name switches the field off. Written as a table, a preset's name
/// (`claims = "authgear"`), or a table starting from a preset (`preset = "authgear"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub user_id: String,
    pub session_name: String,
    pub email: String,
    pub roles: String,
    pub amr: String,
    pub auth_time: String,
    pub verified: String,
    pub anonymous: String,
    pub can_reauthenticate: String,
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
            can_reauthenticate: String::new(),
        }
    }
}

/// The claims Authgear puts in its own access tokens.
const AUTHGEAR_CLAIMS: &str = "https://authgear.com/claims/user/";

impl ClaimNames {
    /// A named set of claim names, for tokens of a known issuer.
    fn preset(name: &str) -> Option<ClaimNames> {
        match name {
            "default" => Some(ClaimNames::default()),
            // Authgear's access tokens: the user's facts under its own claim names, so
            // that verdict sends the x-authgear-* headers its resolver would
            "authgear" => Some(ClaimNames {
                roles: format!("{AUTHGEAR_CLAIMS}roles"),
                anonymous: format!("{AUTHGEAR_CLAIMS}is_anonymous"),
                verified: format!("{AUTHGEAR_CLAIMS}is_verified"),
                can_reauthenticate: format!("{AUTHGEAR_CLAIMS}can_reauthenticate"),
                ..ClaimNames::default()
            }),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for ClaimNames {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            #[serde(default)]
            preset: Option<String>,
            user_id: Option<String>,
            session_name: Option<String>,
            email: Option<String>,
            roles: Option<String>,
            amr: Option<String>,
            auth_time: Option<String>,
            verified: Option<String>,
            anonymous: Option<String>,
            can_reauthenticate: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Preset(String),
            Table(Box<Table>),
        }
        let preset = |name: &str| {
            ClaimNames::preset(name).ok_or_else(|| {
                serde::de::Error::custom(format!("{name:?} is not one of default, authgear"))
            })
        };
        let table = match Raw::deserialize(deserializer)? {
            Raw::Preset(name) => return preset(&name),
            Raw::Table(table) => table,
        };
        let base = preset(table.preset.as_deref().unwrap_or("default"))?;
        Ok(ClaimNames {
            user_id: table.user_id.unwrap_or(base.user_id),
            session_name: table.session_name.unwrap_or(base.session_name),
            email: table.email.unwrap_or(base.email),
            roles: table.roles.unwrap_or(base.roles),
            amr: table.amr.unwrap_or(base.amr),
            auth_time: table.auth_time.unwrap_or(base.auth_time),
            verified: table.verified.unwrap_or(base.verified),
            anonymous: table.anonymous.unwrap_or(base.anonymous),
            can_reauthenticate: table.can_reauthenticate.unwrap_or(base.can_reauthenticate),
        })
    }
}

/// A ready JWT authorizer.
#[derive(Debug)]
pub struct JwtAuthorizer {
    sources: Vec<TokenSource>,
    static_keys: Vec<PinnedKey>,
    jwks: Option<JwksSource>,
    validations: HashMap<Algorithm, Validation>,
    claims: ClaimNames,
    /// Whether an `http` authorizer reads this one's claims (`claims_from`): only then are
    /// they kept with a cached allow.
    pub keep_claims: bool,
    /// Role and `amr` names, shared by the identities this authorizer allows.
    names: NamePool,
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
                    flight: SingleFlight::default(),
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
            keep_claims: false,
            names: NamePool::default(),
        })
    }

    pub fn token_sources(&self) -> &[TokenSource] {
        &self.sources
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
}
