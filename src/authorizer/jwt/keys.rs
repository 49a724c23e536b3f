//! Keys pinned to algorithms: loading PEM files and HMAC secrets, and choosing the keys
//! a token may be verified with.
//!
//! Takes: `[[authorizers.NAME.keys]]` entries (and JWKS keys, through [`PinnedKey`]).
//! Returns: [`PinnedKey`]s, each pinned to algorithms of one family, and for a token the
//! candidate keys that match its `kid` and algorithm. Must never: pair an HMAC algorithm
//! with a PEM key (the public key would become a forging secret), accept `none`, or
//! print key material.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;

use crate::settings::{ConfigError, StringList};

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

/// A verification key with the algorithms it is pinned to.
#[derive(Clone)]
pub struct PinnedKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
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

pub fn parse_algorithms(key: &str, list: &StringList) -> Result<Vec<Algorithm>, ConfigError> {
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

pub fn load_key(
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

/// Keys that match the token's `kid` (or, without one, keys without one) and are
/// pinned to the token's algorithm.
pub fn candidates(kid: Option<&str>, alg: Algorithm, keys: &[PinnedKey]) -> Vec<PinnedKey> {
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
