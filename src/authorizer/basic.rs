//! The `basic` authorizer: user names and password hashes (an htpasswd file, or inline),
//! checked against `Authorization: Basic` (the `basic` token source).
//!
//! Takes: `user:password` from the request. Returns: an allow for the user whose hash the
//! password matches, a deny otherwise (the same for an unknown user and a wrong password).
//! A hash is computed off the decision threads, at most `max_concurrent_hashes` at once
//! (waiting at most `hash_wait` for a turn, else an error), and the decision cache keeps
//! a verified credential by its digest, so a hash runs once per credential per TTL.
//! Failed attempts are counted per user name, per credential and per client network
//! (a /24, a /64), whichever endpoint they came through; past `max_failures` (per network
//! `max_failures_per_network`) within `failure_window` the next attempts are refused
//! without a hash, with `Retry-After`, until the window ends.
//! Must never: keep or log a password, accept a hash scheme that is broken (MD5-crypt
//! `$apr1$`, crypt(3) DES, unsalted `{SHA}`), or tell an unknown user from a wrong
//! password by its answer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::credential::{TokenSource, parse_sources};
use crate::decision::{AuthError, Decision, Denial};
use crate::identity::{Identity, NamePool};
use crate::settings::{ConfigError, HumanDuration, StringList};

/// One user written inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub username: String,
    /// bcrypt (`$2y$`, `$2b$`), SHA-crypt (`$5$`, `$6$`) or argon2id (`$argon2id$`).
    pub hash: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub email: String,
}

/// `[authorizers.NAME]` with `type = "basic"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicSettings {
    #[serde(default)]
    pub token_sources: Option<StringList>,
    #[serde(default)]
    pub htpasswd_file: Option<PathBuf>,
    #[serde(default)]
    pub users: Vec<UserEntry>,
    /// Password hashes computed at once at most (default: the machine's cores).
    #[serde(default)]
    pub max_concurrent_hashes: Option<usize>,
    /// How long a check waits for a turn before it is refused as an error.
    #[serde(default)]
    pub hash_wait: Option<HumanDuration>,
    /// Failed attempts per user name and per credential within `failure_window` before
    /// the next are refused (default 10; 0: no limit).
    #[serde(default)]
    pub max_failures: Option<u32>,
    /// Failed attempts per client network (a /24, a /64) (default 100; 0: no limit).
    #[serde(default)]
    pub max_failures_per_network: Option<u32>,
    #[serde(default)]
    pub failure_window: Option<HumanDuration>,
}

/// What failed attempts are counted by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Counted {
    User(String),
    Credential([u8; 32]),
    Network(ipnet::IpNet),
}

/// Failed attempts by key, each with when its window began; bounded in size.
#[derive(Debug, Default)]
struct Failures(std::sync::Mutex<HashMap<Counted, (u32, std::time::Instant)>>);

/// Keys tracked at most; past it, expired ones are dropped first.
const MAX_TRACKED: usize = 100_000;

/// The network a client address counts in: a /24 (IPv4) or a /64 (IPv6).
fn network_of(ip: std::net::IpAddr) -> ipnet::IpNet {
    let prefix = if ip.is_ipv4() { 24 } else { 64 };
    ipnet::IpNet::new(ip, prefix).map_or_else(|_| ipnet::IpNet::from(ip), |n| n.trunc())
}

/// A user's hash, parsed to its scheme, and who the user is.
#[derive(Debug)]
struct User {
    hash: Hash,
    identity: Arc<Identity>,
}

#[derive(Debug, Clone)]
enum Hash {
    Bcrypt(String),
    ShaCrypt(String),
    Argon2(String),
}

impl Hash {
    /// The hash of `text`, or why it is refused.
    fn parse(text: &str) -> Result<Hash, String> {
        let text = text.trim();
        if text.starts_with("$2y$") || text.starts_with("$2b$") || text.starts_with("$2a$") {
            Ok(Hash::Bcrypt(text.to_string()))
        } else if text.starts_with("$5$") || text.starts_with("$6$") {
            Ok(Hash::ShaCrypt(text.to_string()))
        } else if text.starts_with("$argon2id$") {
            Ok(Hash::Argon2(text.to_string()))
        } else if text.starts_with("$apr1$") || text.starts_with("$1$") {
            Err("MD5-crypt is broken: use bcrypt (htpasswd -B)".into())
        } else if text.starts_with("{SHA}") {
            Err("unsalted SHA-1 is broken: use bcrypt (htpasswd -B)".into())
        } else {
            Err("not a hash verdict accepts (bcrypt, SHA-crypt, argon2id); crypt(3) DES and plain text are refused".into())
        }
    }

    /// Whether `password` matches, in time that does not depend on where it differs.
    fn verify(&self, password: &str) -> bool {
        use sha_crypt::password_hash::PasswordVerifier;
        match self {
            Hash::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Hash::ShaCrypt(hash) => sha_crypt::ShaCrypt::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok(),
            Hash::Argon2(hash) => argon2::Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok(),
        }
    }
}

/// A ready `basic` authorizer.
#[derive(Debug)]
pub struct BasicAuthorizer {
    sources: Vec<TokenSource>,
    users: HashMap<String, User>,
    /// Hashes computed now, bounded.
    turns: Arc<tokio::sync::Semaphore>,
    hash_wait: Duration,
    /// Checked for a user that does not exist, so an unknown name costs a hash too.
    decoy: Hash,
    max_failures: u32,
    max_failures_per_network: u32,
    failure_window: Duration,
    failures: Failures,
}

/// A bcrypt hash of a random password, made at start: what an unknown user's password is
/// checked against (cost 10, as htpasswd -B).
fn decoy() -> Hash {
    let mut random = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
    Hash::Bcrypt(bcrypt::hash(hex::encode(random), 10).unwrap_or_default())
}

impl BasicAuthorizer {
    pub fn build(
        name: &str,
        settings: BasicSettings,
        base_dir: &Path,
    ) -> Result<BasicAuthorizer, ConfigError> {
        let key = format!("authorizers.{name}");
        let sources = match &settings.token_sources {
            None => vec![TokenSource::Basic],
            Some(_) => parse_sources(
                &format!("{key}.token_sources"),
                settings.token_sources.as_ref(),
            )?,
        };
        let names = NamePool::default();
        let mut entries: Vec<(String, UserEntry)> = Vec::new();
        if let Some(file) = &settings.htpasswd_file {
            let path = base_dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::invalid(
                    format!("{key}.htpasswd_file"),
                    format!("{}: {e}", path.display()),
                )
            })?;
            for (number, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (username, hash) = line.split_once(':').ok_or_else(|| {
                    ConfigError::invalid(
                        format!("{key}.htpasswd_file"),
                        format!("{} line {}: not user:hash", path.display(), number + 1),
                    )
                })?;
                entries.push((
                    format!("{key}.htpasswd_file line {}", number + 1),
                    UserEntry {
                        username: username.to_string(),
                        hash: hash.to_string(),
                        roles: Vec::new(),
                        email: String::new(),
                    },
                ));
            }
        }
        for (index, entry) in settings.users.into_iter().enumerate() {
            entries.push((format!("{key}.users[{index}]"), entry));
        }
        if entries.is_empty() {
            return Err(ConfigError::invalid(
                key,
                "no users: give htpasswd_file or users",
            ));
        }
        let mut users = HashMap::new();
        for (where_, entry) in entries {
            if entry.username.is_empty() || entry.username.contains(':') {
                return Err(ConfigError::invalid(
                    where_,
                    "a user name is not empty and has no ':'",
                ));
            }
            let hash =
                Hash::parse(&entry.hash).map_err(|why| ConfigError::invalid(&where_, why))?;
            let identity = Identity {
                user_id: entry.username.clone().into(),
                email: entry.email.into(),
                roles: entry.roles.iter().map(|r| names.name(r)).collect(),
                ..Identity::default()
            };
            if users
                .insert(
                    entry.username,
                    User {
                        hash,
                        identity: Arc::new(identity),
                    },
                )
                .is_some()
            {
                return Err(ConfigError::invalid(
                    where_,
                    "the same user is listed twice",
                ));
            }
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(BasicAuthorizer {
            sources,
            users,
            turns: Arc::new(tokio::sync::Semaphore::new(
                settings.max_concurrent_hashes.unwrap_or(cores).max(1),
            )),
            hash_wait: settings.hash_wait.map_or(Duration::from_secs(1), |d| d.0),
            decoy: decoy(),
            max_failures: settings.max_failures.unwrap_or(10),
            max_failures_per_network: settings.max_failures_per_network.unwrap_or(100),
            failure_window: settings
                .failure_window
                .map_or(Duration::from_secs(600), |d| d.0),
            failures: Failures::default(),
        })
    }

    pub fn token_sources(&self) -> &[TokenSource] {
        &self.sources
    }

    /// The keys an attempt counts under, with their limits.
    fn counted(
        &self,
        username: &str,
        credential: &str,
        client: std::net::IpAddr,
    ) -> [(Counted, u32); 3] {
        [
            (Counted::User(username.to_string()), self.max_failures),
            (
                Counted::Credential(crate::digest::sha256(credential.as_bytes())),
                self.max_failures,
            ),
            (
                Counted::Network(network_of(client)),
                self.max_failures_per_network,
            ),
        ]
    }

    /// Seconds until the last key over its limit opens again, if one is.
    fn locked(&self, keys: &[(Counted, u32)], now: std::time::Instant) -> Option<u64> {
        let failures = self.failures.0.lock().ok()?;
        keys.iter()
            .filter(|(_, limit)| *limit > 0)
            .filter_map(|(key, limit)| {
                let (count, since) = failures.get(key)?;
                let ends = *since + self.failure_window;
                (*count >= *limit && ends > now).then(|| (ends - now).as_secs().max(1))
            })
            .max()
    }

    /// Counts a failed attempt under every key.
    fn failed(&self, keys: &[(Counted, u32)], now: std::time::Instant) {
        let Ok(mut failures) = self.failures.0.lock() else {
            return;
        };
        if failures.len() >= MAX_TRACKED {
            let window = self.failure_window;
            failures.retain(|_, (_, since)| *since + window > now);
        }
        for (key, _) in keys {
            let entry = failures.entry(key.clone()).or_insert((0, now));
            if entry.1 + self.failure_window <= now {
                *entry = (0, now);
            }
            entry.0 = entry.0.saturating_add(1);
        }
    }

    /// The fleet's name of a key: its digest.
    fn fleet_key(key: &Counted) -> [u8; 32] {
        let text = match key {
            Counted::User(name) => format!("basic-user\0{name}"),
            Counted::Credential(digest) => format!("basic-credential\0{}", hex::encode(digest)),
            Counted::Network(net) => format!("basic-network\0{net}"),
        };
        crate::digest::sha256(text.as_bytes())
    }

    /// Seconds until the fleet's counts let the attempt through, if one is over its limit.
    async fn fleet_locked(
        &self,
        keys: &[(Counted, u32)],
        fleet: &dyn super::FleetCounter,
    ) -> Option<u64> {
        let mut longest = None;
        for (key, limit) in keys.iter().filter(|(_, limit)| *limit > 0) {
            if let Some((count, left)) = fleet.count(&Self::fleet_key(key)).await
                && count >= u64::from(*limit)
            {
                let seconds = left.as_secs().max(1);
                longest = Some(longest.map_or(seconds, |l: u64| l.max(seconds)));
            }
        }
        longest
    }

    /// Checks `user:password` from `client`; `fleet` counts failures across instances.
    pub async fn decide(
        &self,
        credential: &str,
        client: std::net::IpAddr,
        clock: &crate::clock::Clock,
        fleet: Option<&dyn super::FleetCounter>,
    ) -> Result<Decision, AuthError> {
        let denied = || Decision::deny(Denial::InvalidCredential("unknown user or wrong password"));
        let Some((username, password)) = credential.split_once(':') else {
            return Ok(denied());
        };
        let keys = self.counted(username, credential, client);
        // Trust decision: past the limit no hash is computed and nothing is admitted,
        // whichever endpoint the attempt came through (the count is the authorizer's)
        if let Some(retry_after) = self.locked(&keys, clock.now()) {
            return Ok(Decision::deny(Denial::Throttled(retry_after)));
        }
        // the fleet's counts can only add a refusal: a store that cannot answer leaves
        // this instance's own counts in force
        if let Some(fleet) = fleet
            && let Some(retry_after) = self.fleet_locked(&keys, fleet).await
        {
            return Ok(Decision::deny(Denial::Throttled(retry_after)));
        }
        let user = self.users.get(username);
        // Trust decision: an unknown user costs a hash too, so the time of the answer
        // does not tell which user names exist
        let hash = user.map_or_else(|| self.decoy.clone(), |u| u.hash.clone());
        let turn = actix_web::rt::time::timeout(self.hash_wait, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| AuthError::Internal("too many password checks at once".into()))?
            .map_err(|_| AuthError::Internal("password checks are closed".into()))?;
        let password = password.to_string();
        let matched = actix_web::rt::task::spawn_blocking(move || {
            let matched = hash.verify(&password);
            drop(turn);
            matched
        })
        .await
        .map_err(|_| AuthError::Internal("a password check failed".into()))?;
        match (user, matched) {
            (Some(user), true) => Ok(Decision::allow_shared(user.identity.clone(), None)),
            _ => {
                self.failed(&keys, clock.now());
                if let Some(fleet) = fleet {
                    for (key, _) in keys.iter().filter(|(_, limit)| *limit > 0) {
                        fleet.add(&Self::fleet_key(key), self.failure_window).await;
                    }
                }
                Ok(denied())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn build(text: &str) -> Result<BasicAuthorizer, ConfigError> {
        let settings: BasicSettings = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        BasicAuthorizer::build("users", settings, Path::new("."))
    }

    #[actix_web::test]
    async fn each_accepted_scheme_verifies_and_an_unknown_user_is_a_wrong_password() {
        let bcrypt = bcrypt::hash("pw-bcrypt", 4).unwrap();
        let sha = {
            use sha_crypt::PasswordHasher;
            sha_crypt::ShaCrypt::default()
                .hash_password(b"pw-sha")
                .unwrap()
                .to_string()
        };
        let argon = {
            use argon2::PasswordHasher;
            argon2::Argon2::default()
                .hash_password(b"pw-argon")
                .unwrap()
                .to_string()
        };
        let a = build(&format!(
            "[[users]]\nusername = \"b\"\nhash = \"{bcrypt}\"\nroles = [\"r\"]\n[[users]]\nusername = \"s\"\nhash = \"{sha}\"\n[[users]]\nusername = \"a\"\nhash = \"{argon}\"\n"
        ))
        .unwrap();
        let clock = crate::clock::Clock::manual();
        for (credential, allowed) in [
            ("b:pw-bcrypt", true),
            ("s:pw-sha", true),
            ("a:pw-argon", true),
            ("b:wrong", false),
            ("nobody:pw-bcrypt", false),
            ("no-colon", false),
        ] {
            let decision = a.decide(credential, LOCAL, &clock, None).await.unwrap();
            assert_eq!(
                matches!(decision.verdict, crate::decision::Verdict::Allow(_)),
                allowed,
                "{credential}"
            );
        }
        let wrong = a.decide("b:wrong", LOCAL, &clock, None).await.unwrap();
        let unknown = a.decide("nobody:x", LOCAL, &clock, None).await.unwrap();
        assert_eq!(wrong.verdict, unknown.verdict, "the same answer for both");
    }

    #[actix_web::test]
    async fn a_storm_of_checks_waits_its_turn_and_is_refused_past_the_wait() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let a = build(&format!(
            "max_concurrent_hashes = 1\nhash_wait = \"0s\"\n[[users]]\nusername = \"u\"\nhash = \"{hash}\"\n"
        ))
        .unwrap();
        // the one turn is taken: a check is refused at once, as an error (never an allow)
        let held = a.turns.clone().acquire_owned().await.unwrap();
        let clock = crate::clock::Clock::manual();
        assert!(a.decide("u:pw", LOCAL, &clock, None).await.is_err());
        drop(held);
        assert!(matches!(
            a.decide("u:pw", LOCAL, &clock, None).await.unwrap().verdict,
            crate::decision::Verdict::Allow(_)
        ));
    }

    #[actix_web::test]
    async fn failures_lock_a_user_a_credential_and_a_network_until_the_window_ends() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let a = build(&format!(
            "max_failures = 3\nmax_failures_per_network = 5\nfailure_window = \"60s\"\n[[users]]\nusername = \"u\"\nhash = \"{hash}\"\n[[users]]\nusername = \"v\"\nhash = \"{hash}\"\n"
        ))
        .unwrap();
        let clock = crate::clock::Clock::manual();
        let throttled = |d: &Decision| {
            matches!(
                d.verdict,
                crate::decision::Verdict::Deny(Denial::Throttled(_))
            )
        };
        for n in 0..3 {
            let d = a
                .decide(&format!("u:guess-{n}"), LOCAL, &clock, None)
                .await
                .unwrap();
            assert!(!throttled(&d), "attempt {n}");
        }
        // the user is locked, even with the right password, and no hash is computed
        let d = a.decide("u:pw", LOCAL, &clock, None).await.unwrap();
        assert!(matches!(
            d.verdict,
            crate::decision::Verdict::Deny(Denial::Throttled(s)) if s > 0 && s <= 60
        ));
        // another user from elsewhere is not
        let other: std::net::IpAddr = "203.0.113.9".parse().unwrap();
        assert!(matches!(
            a.decide("v:pw", other, &clock, None).await.unwrap().verdict,
            crate::decision::Verdict::Allow(_)
        ));
        // the network: two more failures from 127.0.0.0/24 for another user lock it too
        for n in 0..2 {
            let near: std::net::IpAddr = "127.0.0.7".parse().unwrap();
            a.decide(&format!("v:guess-{n}"), near, &clock, None)
                .await
                .unwrap();
        }
        assert!(
            throttled(&a.decide("v:pw", LOCAL, &clock, None).await.unwrap()),
            "the /24"
        );
        // the window ends: open again
        clock.advance(Duration::from_secs(61));
        assert!(matches!(
            a.decide("u:pw", LOCAL, &clock, None).await.unwrap().verdict,
            crate::decision::Verdict::Allow(_)
        ));
    }

    #[test]
    fn broken_schemes_are_refused_with_the_fix() {
        for (hash, says) in [
            ("$apr1$abc$def", "MD5"),
            ("{SHA}abc=", "SHA-1"),
            ("abcdefghijklm", "DES"),
            ("plain", "plain text"),
        ] {
            let error = build(&format!("[[users]]\nusername = \"u\"\nhash = \"{hash}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(error.contains(says), "{hash}: {error}");
        }
        assert!(build("").is_err(), "no users");
    }
}
