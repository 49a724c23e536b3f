//! Revocations and the local denylist every decision checks.
//!
//! Takes: revocation entries (from the store's log once their seal verified, or made
//! here by `verdict revoke` and the admin listener), and, per decision, the deciding
//! authorizer's name, the identity it allowed and when that allow was made. Returns:
//! whether that allow is revoked, with a reason for the log line. Must never: hold a
//! credential (a static token is named by its SHA-256, a JWT by its `jti`), treat a
//! missing issue time as "issued after" a log-out, or keep an entry past the moment the
//! credential it names can no longer be valid (its expiry), so the list stays bounded.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::identity::Identity;

/// What a revocation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RevocationKind {
    /// A static token, by its SHA-256 (64 hex digits): `verdict token digest`.
    #[serde(rename = "token")]
    Token,
    /// A JWT, by its `jti`.
    #[serde(rename = "jti")]
    Jti,
    /// Every credential of a user (`sub`, or an `http` backend's session name) issued up
    /// to `before`: "log out everywhere".
    #[serde(rename = "subject")]
    Subject,
    /// Every decision an authorizer made up to `before` (a backend's policy changed).
    #[serde(rename = "authorizer")]
    Authorizer,
}

impl RevocationKind {
    pub fn name(self) -> &'static str {
        match self {
            RevocationKind::Token => "token",
            RevocationKind::Jti => "jti",
            RevocationKind::Subject => "subject",
            RevocationKind::Authorizer => "authorizer",
        }
    }

    /// The reason a refused decision's log line gives.
    fn reason(self) -> &'static str {
        match self {
            RevocationKind::Token => "revoked: the token was revoked",
            RevocationKind::Jti => "revoked: the token's jti was revoked",
            RevocationKind::Subject => "revoked: the user was logged out everywhere",
            RevocationKind::Authorizer => {
                "revoked: the authorizer's earlier decisions were revoked"
            }
        }
    }
}

/// One revocation, as it travels in the store's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    #[serde(rename = "k")]
    pub kind: RevocationKind,
    /// The digest (hex), `jti`, subject or authorizer name.
    #[serde(rename = "v")]
    pub value: String,
    /// Only decisions of this authorizer; `None`: any.
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub authorizer: Option<String>,
    /// For a subject or an authorizer: what was issued (decided) up to this moment, Unix
    /// milliseconds, is revoked.
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// When the entry can be forgotten, Unix milliseconds.
    #[serde(rename = "x")]
    pub expires_at: u64,
    /// When it was made, Unix milliseconds.
    #[serde(rename = "t")]
    pub made_at: u64,
}

impl Revocation {
    /// Why the entry cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.value.is_empty() || self.value.len() > 1024 {
            return Some("the value must be 1 to 1024 bytes".into());
        }
        match self.kind {
            RevocationKind::Token
                if self.value.len() != 64
                    || !self
                        .value
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
            {
                Some("a token is named by its SHA-256: 64 lower-case hex digits (`verdict token digest`)".into())
            }
            RevocationKind::Subject | RevocationKind::Authorizer if self.before.is_none() => {
                Some(format!("a {} revocation needs its \"before\" time", self.kind.name()))
            }
            _ => None,
        }
    }

    /// What the entry revokes, in a log line: never a credential (a token is its digest,
    /// shortened).
    pub fn describe(&self) -> String {
        let value = match self.kind {
            RevocationKind::Token => format!("sha256 {}…", &self.value[..self.value.len().min(12)]),
            _ => format!("{:?}", self.value),
        };
        let scope = self
            .authorizer
            .as_deref()
            .map(|a| format!(" of authorizer {a}"))
            .unwrap_or_default();
        format!("{} {value}{scope}", self.kind.name())
    }

    /// Whether it revokes an allow of `authorizer` for `identity`, made at `decided_at`.
    fn revokes(&self, authorizer: &str, identity: &Identity, decided_at: u64) -> bool {
        if self.authorizer.as_deref().is_some_and(|a| a != authorizer) {
            return false;
        }
        match self.kind {
            RevocationKind::Token | RevocationKind::Jti => {
                identity.token_id.as_deref() == Some(self.value.as_str())
            }
            RevocationKind::Subject => {
                *identity.user_id == *self.value
                    // Trust decision: a credential that does not say when it was issued
                    // may have been issued before the log-out: it is revoked too
                    && identity
                        .issued_at
                        .is_none_or(|at| at.get() <= self.before.unwrap_or(u64::MAX))
            }
            RevocationKind::Authorizer => {
                self.value == authorizer && decided_at <= self.before.unwrap_or(u64::MAX)
            }
        }
    }
}

/// The revocations in force here, by what they name.
#[derive(Debug, Default)]
pub struct Denylist {
    lists: RwLock<Lists>,
    /// Entries held: checked first, so an empty list costs a decision one load.
    held: AtomicUsize,
    /// Revocations applied so far: an answer memoized under another count is not reused.
    epoch: AtomicU64,
}

/// One map per kind, keyed by the name the entry revokes: a check looks up borrowed
/// names, with nothing allocated.
#[derive(Debug, Default)]
struct Lists([HashMap<String, Vec<Revocation>>; 4]);

impl Lists {
    fn of(&self, kind: RevocationKind) -> &HashMap<String, Vec<Revocation>> {
        &self.0[kind as usize]
    }

    fn of_mut(&mut self, kind: RevocationKind) -> &mut HashMap<String, Vec<Revocation>> {
        &mut self.0[kind as usize]
    }
}

impl Denylist {
    /// Adds an entry (one already held is not added twice). Returns whether it is new.
    pub fn apply(&self, revocation: Revocation) -> bool {
        // a writer that panicked left the lists whole: a revocation is never dropped
        let mut lists = self
            .lists
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let same = lists
            .of_mut(revocation.kind)
            .entry(revocation.value.clone())
            .or_default();
        if same.contains(&revocation) {
            return false;
        }
        same.push(revocation);
        self.held.fetch_add(1, Ordering::Relaxed);
        // after the entry is in: whoever reads the new epoch also sees the entry
        self.epoch.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// How many revocations were applied so far.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Forgets the entries expired at `now`.
    pub fn purge(&self, now: u64) {
        let Ok(mut lists) = self.lists.write() else {
            return;
        };
        let mut held = 0;
        for map in &mut lists.0 {
            map.retain(|_, same| {
                same.retain(|r| r.expires_at > now);
                !same.is_empty()
            });
            held += map.values().map(Vec::len).sum::<usize>();
        }
        self.held.store(held, Ordering::Relaxed);
    }

    /// Entries held (expired ones until the next purge).
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries still in force at `now`, for republishing into a store that lost them.
    pub fn live(&self, now: u64) -> Vec<Revocation> {
        let Ok(lists) = self.lists.read() else {
            return Vec::new();
        };
        lists
            .0
            .iter()
            .flat_map(HashMap::values)
            .flatten()
            .filter(|r| r.expires_at > now)
            .cloned()
            .collect()
    }

    /// Why an allow of `authorizer` for `identity`, made at `decided_at`, is revoked;
    /// `None` when nothing in force names it. `now` is read only when an entry names it.
    pub fn check(
        &self,
        authorizer: &str,
        identity: &Identity,
        decided_at: u64,
        now: impl Fn() -> u64,
    ) -> Option<&'static str> {
        if self.is_empty() {
            return None;
        }
        let lists = match self.lists.read() {
            Ok(lists) => lists,
            // a writer panicked: the list is still whole
            Err(poisoned) => poisoned.into_inner(),
        };
        let token_id = identity.token_id.as_deref();
        let names = [
            (RevocationKind::Subject, Some(&*identity.user_id)),
            (RevocationKind::Authorizer, Some(authorizer)),
            (RevocationKind::Token, token_id),
            (RevocationKind::Jti, token_id),
        ];
        for (kind, value) in names {
            let Some(same) = value.and_then(|v| lists.of(kind).get(v)) else {
                continue;
            };
            let now = now();
            if let Some(hit) = same
                .iter()
                .find(|r| r.expires_at > now && r.revokes(authorizer, identity, decided_at))
            {
                return Some(hit.kind.reason());
            }
        }
        None
    }

    /// Whether a cached allow for `identity` (whichever authorizer made it) is named by
    /// `revocation`: what an eviction drops. Authorizer-wide entries evict nothing (a
    /// cache entry does not say whose it is); the check refuses them on every read.
    pub fn evicts(revocation: &Revocation, identity: &Identity) -> bool {
        match revocation.kind {
            RevocationKind::Authorizer => false,
            _ => {
                let scope = revocation.authorizer.as_deref().unwrap_or("");
                Revocation {
                    authorizer: None,
                    ..revocation.clone()
                }
                .revokes(scope, identity, 0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU64;

    fn entry(kind: RevocationKind, value: &str, before: Option<u64>) -> Revocation {
        Revocation {
            kind,
            value: value.into(),
            authorizer: None,
            before,
            expires_at: 10_000,
            made_at: 1,
        }
    }

    fn user(id: &str, token_id: Option<&str>, issued_at: Option<u64>) -> Identity {
        Identity {
            user_id: id.into(),
            token_id: token_id.map(Into::into),
            issued_at: issued_at.and_then(NonZeroU64::new),
            ..Identity::default()
        }
    }

    #[test]
    fn an_empty_list_revokes_nothing() {
        let list = Denylist::default();
        assert_eq!(list.check("a", &user("u", Some("j"), None), 1, || 2), None);
    }

    #[test]
    fn a_token_or_jti_revokes_that_credential_only() {
        let list = Denylist::default();
        list.apply(entry(RevocationKind::Jti, "jti-1", None));
        assert!(
            list.check("idp", &user("u", Some("jti-1"), Some(5)), 1, || 2)
                .is_some()
        );
        assert!(
            list.check("idp", &user("u", Some("jti-2"), Some(5)), 1, || 2)
                .is_none()
        );
        assert!(
            list.check("idp", &user("u", None, Some(5)), 1, || 2)
                .is_none()
        );
    }

    #[test]
    fn log_out_everywhere_refuses_what_was_issued_up_to_its_time() {
        let list = Denylist::default();
        list.apply(entry(RevocationKind::Subject, "u", Some(1000)));
        assert!(
            list.check("idp", &user("u", None, Some(999)), 1, || 2)
                .is_some()
        );
        assert!(
            list.check("idp", &user("u", None, Some(1000)), 1, || 2)
                .is_some()
        );
        assert!(
            list.check("idp", &user("u", None, Some(1001)), 1, || 2)
                .is_none()
        );
        assert!(
            list.check("idp", &user("v", None, Some(1)), 1, || 2)
                .is_none()
        );
        // a missing fact never admits: no issue time counts as issued before
        assert!(
            list.check("keys", &user("u", None, None), 1, || 2)
                .is_some()
        );
    }

    #[test]
    fn an_authorizer_revocation_refuses_its_decisions_made_up_to_its_time() {
        let list = Denylist::default();
        list.apply(entry(RevocationKind::Authorizer, "backend", Some(1000)));
        assert!(
            list.check("backend", &user("u", None, None), 1000, || 1)
                .is_some()
        );
        assert!(
            list.check("backend", &user("u", None, None), 1001, || 1)
                .is_none()
        );
        assert!(
            list.check("other", &user("u", None, None), 10, || 1)
                .is_none()
        );
    }

    #[test]
    fn a_scoped_entry_names_one_authorizer() {
        let list = Denylist::default();
        let mut scoped = entry(RevocationKind::Subject, "u", Some(1000));
        scoped.authorizer = Some("idp".into());
        list.apply(scoped);
        assert!(
            list.check("idp", &user("u", None, Some(1)), 1, || 2)
                .is_some()
        );
        assert!(
            list.check("keys", &user("u", None, Some(1)), 1, || 2)
                .is_none()
        );
    }

    #[test]
    fn entries_expire_and_are_purged() {
        let list = Denylist::default();
        assert!(list.apply(entry(RevocationKind::Jti, "j", None)));
        assert!(
            !list.apply(entry(RevocationKind::Jti, "j", None)),
            "held once"
        );
        assert!(
            list.check("a", &user("u", Some("j"), None), 1, || 9_999)
                .is_some()
        );
        assert!(
            list.check("a", &user("u", Some("j"), None), 1, || 10_000)
                .is_none()
        );
        assert_eq!(list.live(10_000).len(), 0);
        list.purge(10_000);
        assert!(list.is_empty());
    }

    #[test]
    fn an_entry_that_cannot_be_used_says_why() {
        assert!(
            entry(RevocationKind::Token, "abc", None)
                .problem()
                .is_some()
        );
        assert!(
            entry(RevocationKind::Token, &"a".repeat(64), None)
                .problem()
                .is_none()
        );
        assert!(
            entry(RevocationKind::Subject, "u", None)
                .problem()
                .is_some()
        );
        assert!(entry(RevocationKind::Jti, "", None).problem().is_some());
        let token = entry(RevocationKind::Token, &"ab".repeat(32), None);
        assert!(
            !token.describe().contains(&"ab".repeat(32)),
            "never the whole digest"
        );
    }
    #[test]
    fn a_revocation_after_a_writer_panicked_was_dropped() {
        let list = std::sync::Arc::new(Denylist::default());
        let poisoner = list.clone();
        let _ = std::thread::spawn(move || {
            let _held = poisoner.lists.write();
            panic!("a writer panics while holding the lists");
        })
        .join();
        assert!(list.lists.is_poisoned());
        let before = list.epoch();
        assert!(list.apply(entry(RevocationKind::Subject, "u-1", None)));
        assert!(
            list.epoch() > before,
            "answers memoized before it are dropped"
        );
        assert!(
            list.check("any", &user("u-1", None, None), 0, || 1)
                .is_some(),
            "the revocation is in force"
        );
    }
}

/// A revocation as an operator asks for it (`verdict revoke`, `POST /revoke`), before its
/// times are worked out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationRequest {
    /// `token`, `jti`, `jwt` (the token itself: its `jti` and `exp` are read, unverified,
    /// since a revocation can only refuse), `subject` or `authorizer`.
    pub kind: String,
    /// The digest, `jti`, subject or authorizer name (not for `jwt`).
    #[serde(default)]
    pub value: Option<String>,
    /// For `jwt`: the token. Read only for its `jti` and `exp`; never stored or logged.
    #[serde(default)]
    pub token: Option<String>,
    /// Only this authorizer's decisions.
    #[serde(default)]
    pub authorizer: Option<String>,
    /// For `subject` and `authorizer`: Unix seconds; default now.
    #[serde(default)]
    pub before: Option<u64>,
    /// When the entry may be forgotten, Unix seconds; default the token's `exp` where
    /// known, else now plus `shared.revocation_ttl`.
    #[serde(default)]
    pub until: Option<u64>,
}

impl RevocationRequest {
    /// The entry, at `now` (Unix ms), with entries kept `ttl` unless they say otherwise.
    pub fn entry(self, now: u64, ttl: std::time::Duration) -> Result<Revocation, String> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let secs = |s: u64| s.saturating_mul(1000);
        let (kind, value, token_exp) = match self.kind.as_str() {
            "token" => (RevocationKind::Token, self.value, None),
            "jti" => (RevocationKind::Jti, self.value, None),
            "subject" => (RevocationKind::Subject, self.value, None),
            "authorizer" => (RevocationKind::Authorizer, self.value, None),
            "jwt" => {
                let token = self.token.ok_or("kind \"jwt\" needs the token")?;
                let (jti, exp) = jwt_id(&token)?;
                (RevocationKind::Jti, Some(jti), exp)
            }
            other => {
                return Err(format!(
                    "{other:?} is not one of token, jti, jwt, subject, authorizer"
                ));
            }
        };
        let value = value.ok_or_else(|| format!("kind {:?} needs a value", kind.name()))?;
        let before = match kind {
            // up to the end of the given second, like a token's own times
            RevocationKind::Subject | RevocationKind::Authorizer => {
                Some(self.before.map_or(now, |b| secs(b).saturating_add(999)))
            }
            _ => None,
        };
        let expires_at = match (self.until, token_exp) {
            (Some(until), _) => secs(until),
            (None, Some(exp)) => secs(exp).saturating_add(1000),
            (None, None) => before.unwrap_or(now).max(now).saturating_add(ttl_ms),
        };
        if expires_at <= now {
            return Err("it would expire at once: `until` is in the past".into());
        }
        let value = match kind {
            RevocationKind::Token => value.to_ascii_lowercase(),
            _ => value,
        };
        let revocation = Revocation {
            kind,
            value,
            authorizer: self.authorizer,
            before,
            expires_at,
            made_at: now,
        };
        match revocation.problem() {
            Some(problem) => Err(problem),
            None => Ok(revocation),
        }
    }
}

/// A JWT's `jti` and `exp`, read without verifying it (a revocation can only refuse).
fn jwt_id(token: &str) -> Result<(String, Option<u64>), String> {
    use base64::Engine;
    let payload = token
        .trim()
        .split('.')
        .nth(1)
        .ok_or("not a JWT (header.payload.signature)")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "not a JWT: its payload is not base64url".to_string())?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| "not a JWT: its payload is not JSON")?;
    let jti = match claims.get("jti") {
        Some(serde_json::Value::String(jti)) if !jti.is_empty() => jti.clone(),
        _ => {
            return Err(
                "the token has no jti: revoke its subject instead (kind subject)".to_string(),
            );
        }
    };
    Ok((jti, claims.get("exp").and_then(serde_json::Value::as_u64)))
}

#[cfg(test)]
mod request_tests {
    use super::*;
    use std::time::Duration;

    fn request(kind: &str, value: Option<&str>) -> RevocationRequest {
        RevocationRequest {
            kind: kind.into(),
            value: value.map(Into::into),
            token: None,
            authorizer: None,
            before: None,
            until: None,
        }
    }

    #[test]
    fn a_subject_revocation_is_before_now_and_kept_the_ttl() {
        let entry = request("subject", Some("u1"))
            .entry(50_000, Duration::from_secs(10))
            .unwrap();
        assert_eq!(entry.before, Some(50_000));
        assert_eq!(entry.expires_at, 60_000);
    }

    #[test]
    fn a_jwt_is_revoked_by_its_jti_until_its_exp() {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"u1","jti":"abc","exp":100}"#);
        let mut asked = request("jwt", None);
        asked.token = Some(format!("e30.{payload}.sig"));
        let entry = asked.entry(50_000, Duration::from_secs(10)).unwrap();
        assert_eq!(
            (entry.kind, entry.value.as_str()),
            (RevocationKind::Jti, "abc")
        );
        assert_eq!(entry.expires_at, 101_000);
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"u1"}"#);
        let mut no_jti = request("jwt", None);
        no_jti.token = Some(format!("e30.{payload}.sig"));
        assert!(
            no_jti
                .entry(1, Duration::from_secs(1))
                .unwrap_err()
                .contains("jti")
        );
    }

    #[test]
    fn unusable_requests_say_why() {
        let ttl = Duration::from_secs(10);
        assert!(request("nope", Some("x")).entry(1, ttl).is_err());
        assert!(request("jti", None).entry(1, ttl).is_err());
        assert!(
            request("token", Some("not-a-digest"))
                .entry(1, ttl)
                .is_err()
        );
        let mut past = request("jti", Some("j"));
        past.until = Some(1);
        assert!(past.entry(50_000, ttl).is_err());
    }
}
