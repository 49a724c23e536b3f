//! The `static` authorizer: API keys and tokens listed in the configuration or a file.
//!
//! Takes: a presented token. Returns: `Allow(identity)` when its SHA-256 digest is a
//! configured one (a hash-map look-up: O(1) whatever the number of tokens), otherwise
//! `Abstain` (the token may belong to a later authorizer; an
//! all-abstain chain with a credential is answered 401 `invalid_token`). Must never:
//! compare a presented secret with a stored one byte by byte (only SHA-256 digests are
//! compared), keep a plain-text token after start-up, or log a token.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::credential::{TokenSource, parse_sources};
use crate::decision::Decision;
use crate::digest::sha256;
use crate::identity::{Identity, NamePool};
use crate::settings::{ConfigError, StringList};

/// `[authorizers.NAME]` with `type = "static"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSettings {
    /// Where to look for the token, in order. Default: `["bearer"]`.
    #[serde(default)]
    pub token_sources: Option<StringList>,
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    /// A TOML or YAML file holding more `[[tokens]]` entries.
    #[serde(default)]
    pub tokens_file: Option<PathBuf>,
}

/// One accepted token and who it stands for. Give exactly one of `token` (plain text)
/// or `sha256` (hex digest of the token).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    pub user_id: String,
    #[serde(default)]
    pub session_name: Option<String>,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub amr: Vec<String>,
    #[serde(default)]
    pub verified: bool,
    #[serde(default)]
    pub anonymous: bool,
    #[serde(default)]
    pub authenticated_at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

/// A ready static authorizer: digests and identities, no plain text.
#[derive(Debug)]
pub struct StaticTokens {
    sources: Vec<TokenSource>,
    /// By SHA-256 digest of the token: a look-up costs the same for 10 or 100,000. The
    /// identity is shared with every decision (and cache entry) made for the token.
    entries: HashMap<[u8; 32], Arc<Identity>>,
}

impl StaticTokens {
    pub fn build(
        name: &str,
        settings: StaticSettings,
        base_dir: &Path,
    ) -> Result<StaticTokens, ConfigError> {
        let key = format!("authorizers.{name}");
        let sources = parse_sources(
            &format!("{key}.token_sources"),
            settings.token_sources.as_ref(),
        )?;
        let mut raw_entries = settings.tokens;
        if let Some(file) = &settings.tokens_file {
            let path = base_dir.join(file);
            let parsed: TokensFile = config::Config::builder()
                .add_source(config::File::from(path.as_path()).required(true))
                .build()
                .and_then(|c| c.try_deserialize())
                .map_err(|e| {
                    ConfigError::invalid(
                        format!("{key}.tokens_file"),
                        format!("{}: {}", path.display(), e.to_string().replace('\n', " ")),
                    )
                })?;
            raw_entries.extend(parsed.tokens);
        }
        if raw_entries.is_empty() {
            return Err(ConfigError::invalid(
                key,
                "a static authorizer needs at least one token",
            ));
        }
        let mut entries = HashMap::with_capacity(raw_entries.len());
        // one copy of each role and amr name for the whole table
        let names = NamePool::default();
        for (index, entry) in raw_entries.into_iter().enumerate() {
            let entry_key = format!("{key}.tokens[{index}]");
            let digest = match (&entry.token, &entry.sha256) {
                (Some(token), None) => {
                    if token.len() < 8 {
                        return Err(ConfigError::invalid(
                            entry_key,
                            "token must be at least 8 characters",
                        ));
                    }
                    sha256(token.as_bytes())
                }
                (None, Some(hex_digest)) => {
                    let bytes = hex::decode(hex_digest.trim())
                        .ok()
                        .filter(|b| b.len() == 32)
                        .ok_or_else(|| {
                            ConfigError::invalid(&entry_key, "sha256 must be 64 hex digits")
                        })?;
                    let mut out = [0u8; 32];
                    out.copy_from_slice(&bytes);
                    out
                }
                _ => {
                    return Err(ConfigError::invalid(
                        entry_key,
                        "give exactly one of token or sha256",
                    ));
                }
            };
            if entry.user_id.is_empty() {
                return Err(ConfigError::invalid(entry_key, "user_id must not be empty"));
            }
            if entries.contains_key(&digest) {
                return Err(ConfigError::invalid(
                    entry_key,
                    "the same token is listed twice",
                ));
            }
            let mut identity = Identity {
                session_name: None,
                user_id: entry.user_id.into(),
                email: entry.email.into(),
                roles: entry.roles.iter().map(|r| names.name(r)).collect(),
                amr: entry.amr.iter().map(|a| names.name(a)).collect(),
                authenticated_at: entry.authenticated_at.and_then(NonZeroU64::new),
                verified: entry.verified,
                anonymous: entry.anonymous,
                can_reauthenticate: false,
                extra_headers: Box::default(),
                claims: None,
                expires_at: None,
                // a revocation names a static token by the digest `verdict token digest`
                // prints, never by the token
                token_id: Some(hex::encode(digest).into()),
                issued_at: None,
            };
            if let Some(name) = &entry.session_name {
                identity.set_session_name(name);
            }
            entries.insert(digest, Arc::new(identity));
        }
        Ok(StaticTokens { sources, entries })
    }

    pub fn token_sources(&self) -> &[TokenSource] {
        &self.sources
    }

    /// Judges a presented token.
    pub fn decide(&self, token: &str) -> Decision {
        // Why a hash look-up is safe here, where a `==` on the tokens themselves would not
        // be: the presented token is first hashed with SHA-256, in time that depends only
        // on its length. Everything after (the bucket chosen, the comparison of stored
        // digests with the presented one, where it stops) depends on digest bytes only.
        // Timing can at most tell an attacker how many leading bytes of the digest of a
        // token *they chose* match a stored digest, and turning that into a token needs a
        // preimage of an unknown SHA-256 digest: no signal about a stored token's bytes.
        // The map's hasher is randomly keyed (SipHash), so buckets are not chosen by them.
        let presented = sha256(token.as_bytes());
        let found = self.entries.get(&presented);
        match found {
            Some(identity) => Decision::allow_shared(Arc::clone(identity), None),
            None => Decision::abstain(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Verdict;

    fn build(toml: &str) -> Result<StaticTokens, ConfigError> {
        #[derive(Deserialize)]
        struct Wrap {
            a: StaticSettings,
        }
        let wrap: Wrap = config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("settings parse");
        StaticTokens::build("a", wrap.a, Path::new("."))
    }

    #[test]
    fn plain_and_digest_tokens_both_match() {
        let digest = hex::encode(sha256(b"second-token"));
        let tokens = build(&format!(
            "[[a.tokens]]\ntoken = \"first-token\"\nuser_id = \"u1\"\nroles = [\"admin\"]\n[[a.tokens]]\nsha256 = \"{digest}\"\nuser_id = \"u2\"\n"
        ))
        .expect("builds");
        match tokens.decide("first-token").verdict {
            Verdict::Allow(id) => {
                assert_eq!(&*id.user_id, "u1");
                assert_eq!(id.roles, ["admin"].map(Arc::from).into());
                assert_eq!(id.session_name(), "u1");
            }
            other => panic!("expected allow, got {other:?}"),
        }
        assert!(
            matches!(tokens.decide("second-token").verdict, Verdict::Allow(id) if &*id.user_id == "u2")
        );
        assert_eq!(tokens.decide("first-tokeN").verdict, Verdict::Abstain);
        assert_eq!(tokens.decide("").verdict, Verdict::Abstain);
    }

    #[test]
    fn decisions_for_one_token_share_its_identity() {
        let tokens =
            build("[[a.tokens]]\ntoken = \"first-token\"\nuser_id = \"u1\"\n").expect("builds");
        match (
            tokens.decide("first-token").verdict,
            tokens.decide("first-token").verdict,
        ) {
            (Verdict::Allow(a), Verdict::Allow(b)) => assert!(Arc::ptr_eq(&a, &b)),
            other => panic!("expected two allows, got {other:?}"),
        }
    }

    #[test]
    fn bad_entries_are_rejected() {
        assert!(
            build("[[a.tokens]]\nuser_id = \"u\"\n")
                .unwrap_err()
                .to_string()
                .contains("exactly one")
        );
        assert!(
            build("[[a.tokens]]\ntoken = \"short\"\nuser_id = \"u\"\n")
                .unwrap_err()
                .to_string()
                .contains("8 characters")
        );
        assert!(
            build("[[a.tokens]]\nsha256 = \"abc\"\nuser_id = \"u\"\n")
                .unwrap_err()
                .to_string()
                .contains("64 hex")
        );
        assert!(
            build("[[a.tokens]]\ntoken = \"long-enough\"\nuser_id = \"\"\n")
                .unwrap_err()
                .to_string()
                .contains("user_id")
        );
        let twice = "[[a.tokens]]\ntoken = \"long-enough\"\nuser_id = \"u\"\n[[a.tokens]]\ntoken = \"long-enough\"\nuser_id = \"v\"\n";
        assert!(build(twice).unwrap_err().to_string().contains("twice"));
        assert!(
            build("[a]\ntokens = []\n")
                .unwrap_err()
                .to_string()
                .contains("at least one token")
        );
        let no_sources =
            "[a]\ntoken_sources = []\n[[a.tokens]]\ntoken = \"long-enough\"\nuser_id = \"u\"\n";
        assert!(
            build(no_sources)
                .unwrap_err()
                .to_string()
                .contains("at least one token source")
        );
        let bad_source = "[a]\ntoken_sources = [\"form:x\"]\n[[a.tokens]]\ntoken = \"long-enough\"\nuser_id = \"u\"\n";
        assert!(
            build(bad_source)
                .unwrap_err()
                .to_string()
                .contains("form:x")
        );
    }

    #[test]
    fn tokens_file_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("keys.toml");
        std::fs::write(
            &file,
            "[[tokens]]\ntoken = \"from-the-file\"\nuser_id = \"filer\"\n",
        )
        .expect("write");
        let tokens = build(&format!(
            "[a]\ntokens_file = {:?}\n",
            file.display().to_string()
        ))
        .expect("builds");
        assert!(
            matches!(tokens.decide("from-the-file").verdict, Verdict::Allow(id) if &*id.user_id == "filer")
        );
        let missing = build("[a]\ntokens_file = \"/nonexistent/keys.toml\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("authorizers.a.tokens_file:"),
            "{missing}"
        );
    }
}
