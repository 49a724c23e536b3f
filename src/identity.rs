//! Who a credential belongs to ([`Identity`], its claims, the [`NamePool`] that shares
//! role names), and the one table of identity headers ([`IDENTITY_HEADERS`]) that the
//! encoder, the alias refusal, `copy_headers` and the authgear reader all use, with the
//! rules for lists and aliases.
//!
//! Takes: nothing from the rest of verdict but how CGI-style applications fold a header
//! name. Returns: plain data and the header table. Must never: import a later stage
//! (every stage imports this leaf), or let a list item or an alias read as something
//! else in an application.

use std::collections::HashSet;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::request::cgi_folded;

/// A verified token's claims.
pub type Claims = serde_json::Map<String, Value>;

/// Who the credential belongs to. Field formats follow Authgear's resolver headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub user_id: Box<str>,
    /// The Cesbo session name (`X-Session-Name`) when it is not the user id: most are, and
    /// a cached identity should not hold the same text twice. Read it with
    /// [`Identity::session_name`].
    pub session_name: Option<Box<str>>,
    pub email: Box<str>,
    /// Role names, shared with every identity that has the same role where the
    /// authorizer pools them ([`NamePool`]).
    pub roles: Box<[Arc<str>]>,
    /// Authentication method references, e.g. `pwd`, `mfa`.
    pub amr: Box<[Arc<str>]>,
    /// When the user authenticated, Unix seconds.
    pub authenticated_at: Option<NonZeroU64>,
    pub verified: bool,
    pub anonymous: bool,
    pub can_reauthenticate: bool,
    /// Backend headers passed on to the proxy with the allow (`http` `copy_headers`).
    pub extra_headers: Box<[(Box<str>, Box<str>)]>,
    /// The verified token's claims (`jwt`), kept only when an `http` authorizer reads them
    /// (`claims_from`, for `${claim.NAME}`): a cached decision stays small otherwise.
    pub claims: Option<Arc<Claims>>,
    /// When the credential expires (a token's `exp`), Unix seconds.
    pub expires_at: Option<NonZeroU64>,
    /// What a revocation names this credential by: a JWT's `jti`, a static token's
    /// SHA-256 (hex). Never the credential itself.
    pub token_id: Option<Box<str>>,
    /// The last moment the credential can have been issued, Unix milliseconds: a JWT's
    /// `iat` (else `auth_time`) to the end of its second, or when an `http` backend said
    /// allow. A "log out everywhere" refuses what was issued up to its time; none known
    /// counts as issued before it.
    pub issued_at: Option<NonZeroU64>,
}

impl Identity {
    /// The Cesbo session name: the one the authorizer found, else the user id.
    pub fn session_name(&self) -> &str {
        self.session_name.as_deref().unwrap_or(&self.user_id)
    }

    /// Sets the session name, keeping none when it is the user id.
    pub fn set_session_name(&mut self, name: &str) {
        self.session_name = (name != &*self.user_id).then(|| name.into());
    }
}

/// Role and `amr` names shared between identities: each cached decision points at a name
/// many tokens carry instead of holding its own copy. Bounded: past [`NamePool::LIMIT`]
/// distinct names a new one is not pooled, so an issuer that mints a name per token costs
/// memory per token, never a pool that only grows.
#[derive(Debug, Default)]
pub struct NamePool(Mutex<HashSet<Arc<str>>>);

impl NamePool {
    pub const LIMIT: usize = 4096;

    /// The pooled copy of `name`.
    pub fn name(&self, name: &str) -> Arc<str> {
        let Ok(mut pool) = self.0.lock() else {
            return Arc::from(name);
        };
        if let Some(pooled) = pool.get(name) {
            return pooled.clone();
        }
        let name: Arc<str> = Arc::from(name);
        if pool.len() < Self::LIMIT {
            pool.insert(name.clone());
        }
        name
    }
}

/// A claim by name, or by a dotted path into nested objects (`realm_access.roles`).
pub fn claim<'a>(claims: &'a Claims, path: &str) -> Option<&'a Value> {
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

/// The value of `x-authgear-session-valid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// No credential was presented: the header is sent empty.
    Absent,
    Valid,
    Invalid,
}

/// A family of identity headers, switched on as a whole in `[headers]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderFamily {
    /// Authgear's resolver headers.
    Authgear,
    /// Cesbo's `X-Session-Name`.
    SessionName,
    /// Authelia-style `Remote-*`.
    RemoteUser,
    /// oauth2-proxy-style `X-Auth-Request-*`.
    AuthRequest,
}

impl HeaderFamily {
    /// The prefix every name of the family shares, if any.
    pub fn prefix(self) -> Option<&'static str> {
        match self {
            HeaderFamily::Authgear => Some("x-authgear-"),
            HeaderFamily::SessionName => None,
            HeaderFamily::RemoteUser => Some("remote-"),
            HeaderFamily::AuthRequest => Some("x-auth-request-"),
        }
    }

    /// Whether verdict owns every name under the prefix, not only the ones it sends.
    /// Authgear's namespace is verdict's on the request path; `remote-addr` or
    /// `x-auth-request-id` are other tools' and CGI's, and stay free.
    pub fn owns_prefix(self) -> bool {
        self == HeaderFamily::Authgear
    }
}

/// Which identity header families an allow carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderSets {
    pub authgear: bool,
    pub session_name: bool,
    pub remote_user: bool,
    pub auth_request: bool,
}

impl HeaderSets {
    pub fn has(self, family: HeaderFamily) -> bool {
        match family {
            HeaderFamily::Authgear => self.authgear,
            HeaderFamily::SessionName => self.session_name,
            HeaderFamily::RemoteUser => self.remote_user,
            HeaderFamily::AuthRequest => self.auth_request,
        }
    }
}

/// Which part of the decision a header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityField {
    SessionValid,
    UserId,
    Anonymous,
    Verified,
    CanReauthenticate,
    Roles,
    Amr,
    AuthenticatedAt,
    SessionName,
    Email,
}

/// How a header's value is written (and read back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    /// `true` / `false`.
    Flag,
    /// A list joined with `,`.
    CommaList,
    /// A list joined with a space.
    SpaceList,
    /// Unix seconds; empty when unknown.
    UnixSeconds,
}

/// One identity header: its wire name, its family, what it carries and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityHeader {
    pub name: &'static str,
    pub family: HeaderFamily,
    pub field: IdentityField,
    pub format: Format,
}

const fn header(
    name: &'static str,
    family: HeaderFamily,
    field: IdentityField,
    format: Format,
) -> IdentityHeader {
    IdentityHeader {
        name,
        family,
        field,
        format,
    }
}

/// One identity header's value: a constant, text the identity holds, or text made for
/// this answer (a joined list, a number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderText<'a> {
    Constant(&'static str),
    Held(&'a str),
    Made(String),
}

impl HeaderText<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            HeaderText::Constant(text) | HeaderText::Held(text) => text,
            HeaderText::Made(text) => text,
        }
    }
}

/// Every identity header verdict can send, in the order it sends them.
pub const IDENTITY_HEADERS: [IdentityHeader; 16] = {
    use Format::*;
    use HeaderFamily::*;
    use IdentityField as F;
    [
        header("x-authgear-session-valid", Authgear, F::SessionValid, Flag),
        header("x-authgear-user-id", Authgear, F::UserId, Text),
        header("x-authgear-user-anonymous", Authgear, F::Anonymous, Flag),
        header("x-authgear-user-verified", Authgear, F::Verified, Flag),
        header(
            "x-authgear-user-can-reauthenticate",
            Authgear,
            F::CanReauthenticate,
            Flag,
        ),
        header("x-authgear-user-roles", Authgear, F::Roles, CommaList),
        header("x-authgear-session-amr", Authgear, F::Amr, SpaceList),
        header(
            "x-authgear-session-authenticated-at",
            Authgear,
            F::AuthenticatedAt,
            UnixSeconds,
        ),
        header("x-session-name", SessionName, F::SessionName, Text),
        header("remote-user", RemoteUser, F::UserId, Text),
        header("remote-groups", RemoteUser, F::Roles, CommaList),
        header("remote-email", RemoteUser, F::Email, Text),
        header("remote-name", RemoteUser, F::SessionName, Text),
        header("x-auth-request-user", AuthRequest, F::UserId, Text),
        header("x-auth-request-email", AuthRequest, F::Email, Text),
        header("x-auth-request-groups", AuthRequest, F::Roles, CommaList),
    ]
};

/// The names of one family's headers, in table order.
pub fn family_names(family: HeaderFamily) -> impl Iterator<Item = &'static str> {
    IDENTITY_HEADERS
        .iter()
        .filter(move |h| h.family == family)
        .map(|h| h.name)
}

impl IdentityHeader {
    /// The value sent for this header. Every enabled header is sent, empty when it does
    /// not apply, so a proxy always overwrites a client-sent copy. Borrowed wherever it
    /// can be: the answer copies a held text once into the response, never a constant.
    pub fn text<'a>(
        &self,
        identity: Option<&'a Identity>,
        session: SessionState,
    ) -> HeaderText<'a> {
        use HeaderText::{Constant, Held, Made};
        if self.field == IdentityField::SessionValid {
            return Constant(match session {
                SessionState::Absent => "",
                SessionState::Valid => "true",
                SessionState::Invalid => "false",
            });
        }
        let Some(id) = identity else {
            return Constant("");
        };
        let flag = |b: bool| Constant(if b { "true" } else { "false" });
        let list = |items: &'a [Arc<str>]| match items {
            [] => Constant(""),
            [one] => Held(one),
            _ => Made(match self.format {
                Format::SpaceList => items.join(" "),
                _ => items.join(","),
            }),
        };
        match self.field {
            IdentityField::SessionValid => Constant(""),
            IdentityField::UserId => Held(&id.user_id),
            IdentityField::Anonymous => flag(id.anonymous),
            IdentityField::Verified => flag(id.verified),
            IdentityField::CanReauthenticate => flag(id.can_reauthenticate),
            IdentityField::Roles => list(&id.roles),
            IdentityField::Amr => list(&id.amr),
            IdentityField::AuthenticatedAt => match id.authenticated_at {
                Some(at) => Made(at.to_string()),
                None => Constant(""),
            },
            IdentityField::SessionName => Held(id.session_name()),
            IdentityField::Email => Held(&id.email),
        }
    }

    /// Reads a value of this header (as another resolver sent it) into `identity`.
    pub fn read_into(&self, identity: &mut Identity, value: &str) {
        let flag = value == "true";
        let list = || -> Box<[Arc<str>]> {
            let separator = if self.format == Format::SpaceList {
                ' '
            } else {
                ','
            };
            value
                .split(separator)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Arc::from)
                .collect()
        };
        match self.field {
            IdentityField::SessionValid => {}
            IdentityField::UserId => identity.user_id = value.into(),
            IdentityField::Anonymous => identity.anonymous = flag,
            IdentityField::Verified => identity.verified = flag,
            IdentityField::CanReauthenticate => identity.can_reauthenticate = flag,
            IdentityField::Roles => identity.roles = list(),
            IdentityField::Amr => identity.amr = list(),
            IdentityField::AuthenticatedAt => identity.authenticated_at = value.parse().ok(),
            IdentityField::SessionName => identity.set_session_name(value),
            IdentityField::Email => identity.email = value.into(),
        }
    }
}

/// Which identity lists the enabled headers send, and how strictly their items must be
/// checked: worked out once from the table for the enabled families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListRules {
    /// `Some(true)` when some enabled header joins roles with `,`; `None` when none sends them.
    roles: Option<bool>,
    amr: Option<bool>,
}

impl ListRules {
    pub fn for_sets(sets: HeaderSets) -> ListRules {
        let mut rules = ListRules::default();
        for h in IDENTITY_HEADERS.iter().filter(|h| sets.has(h.family)) {
            let comma = h.format == Format::CommaList;
            let slot = match h.field {
                IdentityField::Roles => &mut rules.roles,
                IdentityField::Amr => &mut rules.amr,
                _ => continue,
            };
            *slot = Some(slot.unwrap_or(false) || comma);
        }
        rules
    }

    /// Whether every list item of `identity` can be sent without an application reading
    /// it as several: a role holding `,` or whitespace (`reader,admin`) or an `amr` value
    /// holding whitespace would. Such an identity is never sent as-is.
    pub fn allow(&self, identity: &Identity) -> bool {
        let sendable = |items: &[Arc<str>], rule: Option<bool>| match rule {
            None => true,
            Some(comma) => items.iter().all(|item| {
                let ambiguous = item.is_empty()
                    || item.chars().any(char::is_whitespace)
                    || (comma && item.contains(','));
                !ambiguous
            }),
        };
        sendable(&identity.roles, self.roles) && sendable(&identity.amr, self.amr)
    }
}

/// Whether a lower-case dash-form name is one verdict speaks for: a name in the table, or
/// any name under a prefix verdict owns.
pub fn is_identity_header(name: &str) -> bool {
    IDENTITY_HEADERS.iter().any(|h| h.name == name)
        || IDENTITY_HEADERS.iter().any(|h| {
            h.family.owns_prefix() && h.family.prefix().is_some_and(|p| name.starts_with(p))
        })
}

/// Whether `name` is not itself an identity header but reads as one once every
/// character other than a letter or digit becomes `-` and letters are folded, as
/// CGI-style backends (PHP, WSGI) read header names.
pub fn is_identity_alias(name: &str) -> bool {
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    is_identity_header(&cgi_folded(name))
}

/// Whether a backend may hand this header (lower-case) to the proxy with an allow: never
/// an identity header, an alias of one, or a name in an identity family's namespace.
pub fn is_reserved_for_identity(name: &str) -> bool {
    is_identity_header(name)
        || is_identity_alias(name)
        || IDENTITY_HEADERS
            .iter()
            .any(|h| h.family.prefix().is_some_and(|p| name.starts_with(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_pool_shares_one_copy_and_stops_growing_at_its_limit() {
        let pool = NamePool::default();
        let (a, b) = (pool.name("reader"), pool.name("reader"));
        assert!(Arc::ptr_eq(&a, &b), "one copy for every identity");
        for i in 0..NamePool::LIMIT + 10 {
            let name = format!("role-{i}");
            assert_eq!(&*pool.name(&name), name.as_str());
        }
        let held = pool.0.lock().map(|p| p.len()).unwrap_or_default();
        assert_eq!(held, NamePool::LIMIT, "bounded");
        assert!(
            Arc::ptr_eq(&pool.name("reader"), &a),
            "pooled names stay pooled"
        );
    }

    #[test]
    fn identity_header_aliases_are_recognised() {
        for alias in [
            "x_authgear_user_id",
            "x.session.name",
            "x-authgear_user-id",
            "remote_user",
            "x~auth~request~user",
            "x_session_name",
        ] {
            assert!(is_identity_alias(alias), "{alias}");
        }
        for plain in [
            "x-authgear-user-id",
            "x-session-name",
            "remote-user",
            "remote_addr",
            "x_auth_request_id",
            "x_custom",
            "user_agent",
            "x.forwarded.for",
            "authorization",
        ] {
            assert!(!is_identity_alias(plain), "{plain}");
        }
    }

    #[test]
    fn reserved_names_cover_every_family_namespace() {
        for name in [
            "x-authgear-user-id",
            "x-authgear-anything",
            "x-session-name",
            "x_session_name",
            "remote-user",
            "remote-whatever",
            "x-auth-request-user",
            "x-auth-request-token",
        ] {
            assert!(is_reserved_for_identity(name), "{name}");
        }
        for name in ["x-custom", "x-request-id", "cache-control"] {
            assert!(!is_reserved_for_identity(name), "{name}");
        }
    }

    #[test]
    fn rendering_and_reading_round_trip() {
        let identity = Identity {
            user_id: "u-1".into(),
            roles: vec!["a".into(), "b".into()].into(),
            amr: vec!["pwd".into(), "mfa".into()].into(),
            authenticated_at: NonZeroU64::new(1136171045),
            verified: true,
            ..Identity::default()
        };
        let mut read = Identity::default();
        for h in IDENTITY_HEADERS
            .iter()
            .filter(|h| h.family == HeaderFamily::Authgear)
        {
            h.read_into(
                &mut read,
                h.text(Some(&identity), SessionState::Valid).as_str(),
            );
        }
        assert_eq!(read, identity);
        let names: Vec<&str> = family_names(HeaderFamily::Authgear).collect();
        assert_eq!(names.len(), 8);
    }

    #[test]
    fn list_items_holding_their_separator_are_not_sendable() {
        let all = HeaderSets {
            authgear: true,
            session_name: true,
            remote_user: true,
            auth_request: true,
        };
        let with = |roles: &[&str], amr: &[&str]| Identity {
            roles: roles.iter().map(|r| Arc::from(*r)).collect(),
            amr: amr.iter().map(|a| Arc::from(*a)).collect(),
            ..Identity::default()
        };
        assert!(ListRules::for_sets(all).allow(&with(&["reader", "admin"], &["pwd", "mfa"])));
        // a family that does not send amr does not check it
        let roles_only = HeaderSets {
            authgear: false,
            ..all
        };
        assert!(ListRules::for_sets(roles_only).allow(&with(&["reader"], &["pwd mfa"])));
        for bad in [
            with(&["reader,admin"], &[]),
            with(&["reader admin"], &[]),
            with(&["reader\tadmin"], &[]),
            with(&[""], &[]),
            with(&[], &["pwd mfa"]),
        ] {
            assert!(!ListRules::for_sets(all).allow(&bad), "{bad:?}");
        }
    }

    #[test]
    fn claims_reach_into_objects() {
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "sub": "u",
            "realm_access": {"roles": ["a"]},
            "a.b": 1
        }))
        .unwrap();
        assert_eq!(claim(&claims, "sub"), Some(&Value::from("u")));
        assert_eq!(
            claim(&claims, "realm_access.roles"),
            Some(&serde_json::json!(["a"]))
        );
        assert_eq!(claim(&claims, "a.b"), Some(&Value::from(1)));
        assert_eq!(claim(&claims, ""), None);
        assert_eq!(claim(&claims, "realm_access.missing"), None);
    }
}
