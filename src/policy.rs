//! Routes and access rules: which route a request falls under, and what its access level,
//! required roles and authorizer chain make of the authorizers' verdicts.
//!
//! Takes: the canonical [`Target`] and, per authorizer, a (possibly cached) `Decision`.
//! Returns: an `Outcome` that a dialect can encode. Must never: match a raw path, treat
//! an unknown method/host/path as matching a rule that needs it, skip the role check on a
//! cache hit, or turn an error into an allow unless the route says `on_error = "allow"`.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use serde::Deserialize;

use crate::identity::Identity;
use crate::request::readings::kind;
use crate::request::{Caller, ForwardedRequest, Reading, Target, default_port, split_host_port};
use crate::settings::{ConfigError, StringList, choices};

/// What a route demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential needed; always allowed, with empty identity headers.
    Public,
    /// A credential one authorizer allows, plus the required roles.
    Authenticated,
    /// Authgear's resolver: always 200, `x-authgear-session-valid` says what we found.
    Identify,
    /// Always refused.
    Deny,
}

/// What happens when an authorizer cannot decide (backend down, keys unavailable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Refuse with a 503-class answer (the default).
    Deny,
    /// Let the request through as anonymous. Logged at warn level every time.
    Allow,
    /// Treat the failed authorizer as having abstained and try the next one.
    Abstain,
}

choices!(Access {
    "public" => Public,
    "authenticated" => Authenticated,
    "identify" => Identify,
    "deny" => Deny,
});

choices!(OnError {
    "deny" => Deny,
    "allow" => Allow,
    "abstain" => Abstain,
});

/// One `[[route]]` as written in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    #[serde(default)]
    pub name: Option<String>,
    /// Exact host (`app.example.com`, `app.example.com:8443`) or `*.example.com`.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix, matched on whole segments (`/api` matches `/api` and `/api/x`, not
    /// `/apix`); a prefix ending in `/` matches anything under it.
    #[serde(default)]
    pub path: Option<String>,
    /// Path glob: `*` stays within a segment, `**` crosses segments.
    #[serde(default)]
    pub path_glob: Option<String>,
    #[serde(default)]
    pub methods: Option<StringList>,
    /// Only requests from these dialects (`cesbo`, `auth-request`, …): a streaming
    /// server's viewers or a broker's clients get routes of their own.
    #[serde(default)]
    pub dialects: Option<StringList>,
    /// Only clients in these networks (CIDRs or addresses): the client address the
    /// dialect established from a trusted peer.
    #[serde(default)]
    pub client_ip: Option<StringList>,
    /// Only these channels (Cesbo `X-Channel-ID`).
    #[serde(default)]
    pub channels: Option<StringList>,
    pub access: Access,
    /// Every one of these roles is required (missing one: 403).
    #[serde(default)]
    pub roles: Option<StringList>,
    /// At least one of these roles is required.
    #[serde(default)]
    pub roles_any: Option<StringList>,
    /// Every one of these OAuth scopes is required (the token's `scope`, space-separated,
    /// or `scp`).
    #[serde(default)]
    pub scopes: Option<StringList>,
    /// Claims the verified token must carry, by name or dotted path: one value or a list
    /// of which one must match, each exact or a glob (`*`, `?`).
    #[serde(default)]
    pub claims: Option<std::collections::BTreeMap<String, StringList>>,
    /// The authorizer chain, in order. Default (the implicit chain): every authorizer, by
    /// name, except, per request, those bound to another audience than the caller's
    /// ([`Route::implicit_chain`]).
    #[serde(default)]
    pub authorizers: Option<StringList>,
    #[serde(default)]
    pub on_error: Option<OnError>,
    /// Where to send a refused client instead (an absolute URL): Astra's promo redirect
    /// (`X-Location`), a `302` for browser-facing dialects.
    #[serde(default)]
    pub deny_location: Option<String>,
    /// The readings of the target that must all be allowed (default: `server.readings`,
    /// which defaults to every one). Narrow it only for an application whose way of
    /// reading paths and methods you know.
    #[serde(default)]
    pub readings: Option<StringList>,
}

impl RouteSettings {
    /// The route of requests no `[[route]]` matches; `authorizers: None` is the implicit
    /// chain.
    pub(crate) fn default_route(
        access: Access,
        authorizers: Option<Vec<String>>,
        on_error: OnError,
    ) -> RouteSettings {
        RouteSettings {
            name: Some("default".into()),
            host: None,
            path: None,
            path_glob: None,
            methods: None,
            dialects: None,
            client_ip: None,
            channels: None,
            access,
            roles: None,
            roles_any: None,
            scopes: None,
            claims: None,
            authorizers: authorizers.map(StringList),
            on_error: Some(on_error),
            deny_location: None,
            readings: None,
        }
    }
}

/// A host rule matches the host the proxy routes on: case-folded, trailing dot removed,
/// and the port ignored unless the rule names one (nginx, Traefik and Caddy pick the
/// virtual host by name alone, so `admin.example.com:8443` is still that host).
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    Exact {
        name: String,
        port: Option<u16>,
    },
    /// `*.example.com` stored as `.example.com`: one or more labels in front.
    Suffix {
        suffix: String,
        port: Option<u16>,
    },
}

impl HostRule {
    fn matches(&self, host: &str, scheme: &str) -> bool {
        let (name, port) = split_host_port(host);
        let wanted_port = match self {
            HostRule::Exact { port, .. } | HostRule::Suffix { port, .. } => *port,
        };
        if let Some(wanted) = wanted_port
            && port.unwrap_or_else(|| default_port(scheme)) != wanted
        {
            return false;
        }
        match self {
            HostRule::Exact { name: rule, .. } => rule == name,
            HostRule::Suffix { suffix, .. } => {
                name.len() > suffix.len() && name.ends_with(suffix.as_str())
            }
        }
    }
}

#[derive(Debug, Clone)]
enum PathRule {
    Prefix(String),
    Glob(glob::Pattern),
}

impl PathRule {
    /// Segment-aware prefix or glob; `fold_case` for a reading whose application ignores
    /// case.
    fn matches(&self, path: &str, fold_case: bool) -> bool {
        match self {
            PathRule::Prefix(prefix) => {
                let Some(head) = path.get(..prefix.len()) else {
                    return false;
                };
                let same = if fold_case {
                    head.eq_ignore_ascii_case(prefix)
                } else {
                    head == prefix
                };
                let rest = &path[prefix.len()..];
                same && (prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'))
            }
            PathRule::Glob(pattern) => pattern.matches_with(
                path,
                glob::MatchOptions {
                    case_sensitive: !fold_case,
                    require_literal_separator: true,
                    require_literal_leading_dot: false,
                },
            ),
        }
    }
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    host: Option<HostRule>,
    path: Option<PathRule>,
    methods: Option<Vec<String>>,
    /// Checked against the registered dialects by the configuration.
    pub dialects: Option<Vec<String>>,
    client_ip: Option<Vec<IpNet>>,
    channels: Option<Vec<String>>,
    pub access: Access,
    pub roles: Vec<String>,
    /// At least one of these, when not empty.
    pub roles_any: Vec<String>,
    pub scopes: Vec<String>,
    /// Claim path and the patterns one of which its value must match.
    pub claims: Vec<(String, Vec<glob::Pattern>)>,
    /// Indexes into the configured authorizers.
    pub chain: Vec<usize>,
    /// The route names no authorizers: its chain is every authorizer, and an authorizer
    /// bound to other audiences (named by routes scoped to their dialects) is skipped
    /// for a caller of another audience.
    pub implicit_chain: bool,
    pub on_error: OnError,
    /// The readings this route's requests are decided under ([`kind`] bits).
    pub readings: u8,
    /// Where a refused client is sent instead, if anywhere.
    pub deny_location: Option<Arc<str>>,
}

/// Why a route's rule could not be evaluated (also the log line's reason).
pub const NO_METHOD: &str = "proxy sent no original method";
pub const ANY_METHOD: &str = "a form body verdict cannot see may name any method (_method)";
pub const NO_HOST: &str = "proxy sent no original host";
pub const NO_PATH: &str = "proxy sent no original path";
pub const NO_CALLER: &str = "the caller is not known";
pub const NO_CHANNEL: &str = "caller sent no channel";

/// Which route applies.
#[derive(Debug, Clone, Copy)]
pub enum RouteChoice<'a> {
    Matched(&'a Route),
    /// A route's rule needs a fact the proxy did not send (method, host or path), so we
    /// cannot tell whether it applies. Answered with a deny.
    Undecidable {
        route: &'a str,
        missing: &'static str,
    },
}

/// All routes in order, plus the default.
#[derive(Debug)]
pub struct Policy {
    routes: Vec<Route>,
    default: Route,
    /// Whether a path rule holds an upper-case letter: then a case-insensitive
    /// application can serve it for an all-lower-case path, and that reading counts too.
    upper_case_rules: bool,
    /// Things that are valid but probably not meant (`verdict check` prints them).
    pub warnings: Vec<String>,
    /// What MQTT clients may publish and subscribe to.
    pub topics: TopicRules,
}

/// The routes a request must be allowed by: the route of the canonical reading, and every
/// other route that another reading picks or that a missing fact leaves possible.
#[derive(Debug)]
pub struct Routing<'a> {
    /// The route the canonical reading certainly falls under: its identity is the one
    /// sent and it names the decision.
    pub route: &'a Route,
    /// Other routes that may apply, each with why it may (for the log line).
    pub others: Vec<(&'a Route, String)>,
}

/// The routes one reading may fall under: the first that certainly matches, and before it
/// every route that could match but needs a fact the caller did not send.
struct Candidates<'a> {
    definite: &'a Route,
    undecided: Vec<(&'a Route, &'static str)>,
}

/// What route rules are matched against: one reading of the target.
#[derive(Debug, Clone, Copy)]
struct RouteFacts<'a> {
    method: Option<&'a str>,
    /// Why the method is unknown, when it is.
    no_method: &'static str,
    host: Option<&'a str>,
    scheme: &'a str,
    path: Option<&'a str>,
    fold_case: bool,
    /// Who asked and from which client; unknown when only a target is routed.
    caller: Option<&'a Caller>,
    client_ip: Option<IpAddr>,
}

impl<'a> RouteFacts<'a> {
    fn canonical(target: &'a Target) -> RouteFacts<'a> {
        RouteFacts {
            method: target.method.as_deref(),
            no_method: NO_METHOD,
            host: target.host.as_deref(),
            scheme: &target.scheme,
            path: target.path.as_deref(),
            fold_case: false,
            caller: None,
            client_ip: None,
        }
    }

    fn of_request(request: &'a ForwardedRequest<'a>) -> RouteFacts<'a> {
        RouteFacts {
            caller: Some(request.caller()),
            client_ip: Some(request.client_ip()),
            ..RouteFacts::canonical(request.target())
        }
    }

    fn of(request: &'a ForwardedRequest<'a>, reading: &'a Reading) -> RouteFacts<'a> {
        RouteFacts {
            method: reading.method.as_deref(),
            no_method: if reading.method.is_none() {
                ANY_METHOD
            } else {
                NO_METHOD
            },
            path: reading.path.as_deref(),
            fold_case: reading.fold_case,
            ..RouteFacts::of_request(request)
        }
    }
}

impl Policy {
    /// Compiles the routes; `readings` are the transformations every route decides
    /// under unless it names its own.
    pub fn compile(
        settings: Vec<RouteSettings>,
        default: RouteSettings,
        authorizers: &[&str],
        readings: u8,
    ) -> Result<Policy, ConfigError> {
        let mut routes = Vec::with_capacity(settings.len());
        for (index, route) in settings.into_iter().enumerate() {
            routes.push(compile_route(
                route,
                &format!("route[{index}]"),
                authorizers,
                readings,
            )?);
        }
        let default = compile_route(default, "default_route", authorizers, readings)?;
        let upper_case_rules = routes.iter().any(Route::has_upper_case_path);
        let warnings = warnings(&routes, &default);
        Ok(Policy {
            routes,
            default,
            upper_case_rules,
            warnings,
            topics: TopicRules::default(),
        })
    }

    /// The same policy with these topic rules.
    pub fn with_topics(self, topics: TopicRules) -> Policy {
        Policy { topics, ..self }
    }

    /// Every rule of `route` applied to its chain's result: the access level and roles,
    /// where a refused client is sent, the username a token must name, the topic rules.
    pub fn apply(
        &self,
        route: &Route,
        chain: ChainResult,
        request: &ForwardedRequest<'_>,
        cache_for: std::time::Duration,
    ) -> Ruling {
        access::apply(route, chain, request, &self.topics, cache_for)
    }

    /// Every route in order, then the default.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().chain([&self.default])
    }

    /// The canonical reading's route: the first whose rules all match; the default route
    /// when none does; `Undecidable` when a route before it needs a fact not sent.
    pub fn route(&self, target: &Target) -> RouteChoice<'_> {
        let candidates = self.candidates(RouteFacts::canonical(target));
        match candidates.undecided.first() {
            Some((route, missing)) => RouteChoice::Undecidable {
                route: &route.name,
                missing,
            },
            None => RouteChoice::Matched(candidates.definite),
        }
    }

    fn candidates(&self, facts: RouteFacts<'_>) -> Candidates<'_> {
        let mut undecided = Vec::new();
        for route in &self.routes {
            match route.matches(facts) {
                Ok(true) => {
                    return Candidates {
                        definite: route,
                        undecided,
                    };
                }
                Ok(false) => {}
                // Fail closed where it matters: the route may apply, so it must allow too;
                // where every route that may apply allows, the missing fact changes nothing.
                Err(missing) => undecided.push((route, missing)),
            }
        }
        Candidates {
            definite: &self.default,
            undecided,
        }
    }

    /// Every route the request must be allowed by. When every reading picks the canonical
    /// route and no fact is missing (the common case), `others` is empty and nothing more
    /// needs deciding.
    pub fn route_readings<'a>(&'a self, request: &ForwardedRequest<'_>) -> Routing<'a> {
        let target = request.target();
        let canonical = self.candidates(RouteFacts::of_request(request));
        let route = canonical.definite;
        let mut others: Vec<(&'a Route, String)> = Vec::new();
        let mut add = |candidates: Candidates<'a>, why: &dyn Fn() -> String| {
            let undecided = candidates
                .undecided
                .iter()
                .map(|(other, missing)| (*other, Some(*missing)));
            for (other, missing) in undecided.chain([(candidates.definite, None)]) {
                if std::ptr::eq(other, route)
                    || others.iter().any(|(seen, _)| std::ptr::eq(*seen, other))
                {
                    continue;
                }
                let why = match missing {
                    Some(missing) => format!("{missing}, so route {} may apply", other.name),
                    None => why(),
                };
                others.push((other, why));
            }
        };
        if !canonical.undecided.is_empty() {
            add(
                Candidates {
                    definite: route,
                    undecided: canonical.undecided,
                },
                &String::new,
            );
        }
        for reading in &target.readings {
            // Trust decision: a reading the route's operator ruled out is not considered.
            if reading.kinds & !route.readings != 0 {
                continue;
            }
            add(self.candidates(RouteFacts::of(request, reading)), &|| {
                format!("the target read as {}", reading.describe())
            });
        }
        // An all-lower-case path can still reach an upper-case rule in an application
        // that ignores case; the target alone cannot tell (its own readings fold only
        // paths that hold upper case).
        if self.upper_case_rules && route.readings & kind::CASE != 0 {
            let facts = RouteFacts {
                fold_case: true,
                ..RouteFacts::of_request(request)
            };
            add(self.candidates(facts), &|| {
                "the target read as case".to_string()
            });
        }
        Routing { route, others }
    }
}

impl Route {
    /// Whether every rule of this route holds for one reading of the target; `Err(fact)`
    /// when a rule needs a fact the caller did not send and no other rule already fails
    /// (a route that cannot match whatever the missing fact is, is simply skipped).
    fn matches(&self, facts: RouteFacts<'_>) -> Result<bool, &'static str> {
        // An MQTT access has no HTTP target: a rule on the method, host or path does not
        // apply to it (it is not a fact the broker failed to send).
        let targetless = facts.caller.is_some_and(|c| c.targetless);
        if targetless && (self.methods.is_some() || self.host.is_some() || self.path.is_some()) {
            return Ok(false);
        }
        let mut missing = None;
        if let Some(methods) = &self.methods {
            match facts.method {
                Some(method) if !methods.iter().any(|m| m == method) => return Ok(false),
                Some(_) => {}
                None => missing = missing.or(Some(facts.no_method)),
            }
        }
        if let Some(rule) = &self.host {
            match facts.host {
                Some(host) if !rule.matches(host, facts.scheme) => return Ok(false),
                Some(_) => {}
                None => missing = missing.or(Some(NO_HOST)),
            }
        }
        if let Some(rule) = &self.path {
            match facts.path {
                Some(path) if !rule.matches(path, facts.fold_case) => return Ok(false),
                Some(_) => {}
                None => missing = missing.or(Some(NO_PATH)),
            }
        }
        if let Some(dialects) = &self.dialects {
            match facts.caller {
                Some(caller) if !dialects.iter().any(|d| d == caller.dialect) => {
                    return Ok(false);
                }
                Some(_) => {}
                None => missing = missing.or(Some(NO_CALLER)),
            }
        }
        if let Some(networks) = &self.client_ip {
            match facts.client_ip {
                Some(ip) => {
                    let ip = ip.to_canonical();
                    if !networks.iter().any(|net| net.contains(&ip)) {
                        return Ok(false);
                    }
                }
                None => missing = missing.or(Some(NO_CALLER)),
            }
        }
        if let Some(channels) = &self.channels {
            match facts.caller.map(|c| c.channel.as_deref()) {
                Some(Some(channel)) if !channels.iter().any(|c| c == channel) => {
                    return Ok(false);
                }
                Some(Some(_)) => {}
                Some(None) => missing = missing.or(Some(NO_CHANNEL)),
                None => missing = missing.or(Some(NO_CALLER)),
            }
        }
        match missing {
            // Fail closed: the missing fact could make this route (a deny, say) match.
            Some(fact) => Err(fact),
            None => Ok(true),
        }
    }

    fn has_upper_case_path(&self) -> bool {
        match &self.path {
            Some(PathRule::Prefix(prefix)) => prefix.bytes().any(|b| b.is_ascii_uppercase()),
            Some(PathRule::Glob(pattern)) => {
                pattern.as_str().bytes().any(|b| b.is_ascii_uppercase())
            }
            None => false,
        }
    }

    /// Whether this route matches every request `later` matches (so `later`, after it,
    /// never does). Globs count only when written the same.
    fn covers(&self, later: &Route) -> bool {
        let methods = match (&self.methods, &later.methods) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs.iter().all(|m| mine.contains(m)),
        };
        let host = match (&self.host, &later.host) {
            (None, _) => true,
            (Some(mine), Some(theirs)) => mine == theirs,
            (Some(_), None) => false,
        };
        let path = match (&self.path, &later.path) {
            (None, _) => true,
            (Some(PathRule::Prefix(mine)), Some(PathRule::Prefix(theirs))) => {
                PathRule::Prefix(mine.clone()).matches(theirs.trim_end_matches('/'), false)
                    || PathRule::Prefix(mine.clone()).matches(theirs, false)
            }
            (Some(PathRule::Glob(mine)), Some(PathRule::Glob(theirs))) => {
                mine.as_str() == theirs.as_str()
            }
            _ => false,
        };
        let subset = |mine: &Option<Vec<String>>, theirs: &Option<Vec<String>>| match (mine, theirs)
        {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs.iter().all(|t| mine.contains(t)),
        };
        let networks = match (&self.client_ip, &later.client_ip) {
            (None, _) => true,
            (Some(mine), Some(theirs)) => mine == theirs,
            (Some(_), None) => false,
        };
        methods
            && host
            && path
            && subset(&self.dialects, &later.dialects)
            && subset(&self.channels, &later.channels)
            && networks
    }

    /// The route's rules, for a debug line: why a request fell under it.
    pub fn describe_rules(&self) -> String {
        let mut rules = Vec::new();
        if let Some(methods) = &self.methods {
            rules.push(format!("methods {}", methods.join(",")));
        }
        match &self.host {
            Some(HostRule::Exact { name, port }) => rules.push(match port {
                Some(port) => format!("host {name}:{port}"),
                None => format!("host {name}"),
            }),
            Some(HostRule::Suffix { suffix, .. }) => rules.push(format!("host *{suffix}")),
            None => {}
        }
        match &self.path {
            Some(PathRule::Prefix(prefix)) => rules.push(format!("path {prefix}")),
            Some(PathRule::Glob(glob)) => rules.push(format!("path_glob {}", glob.as_str())),
            None => {}
        }
        if let Some(dialects) = &self.dialects {
            rules.push(format!("dialects {}", dialects.join(",")));
        }
        if let Some(networks) = &self.client_ip {
            let networks: Vec<String> = networks.iter().map(ToString::to_string).collect();
            rules.push(format!("client_ip {}", networks.join(",")));
        }
        if let Some(channels) = &self.channels {
            rules.push(format!("channels {}", channels.join(",")));
        }
        if rules.is_empty() {
            "no rules: every request".to_string()
        } else {
            rules.join(", ")
        }
    }

    /// Whether what an authorizer says can change this route's answer: `public` and
    /// `deny` routes never ask (and so never cost a cache or backend call).
    pub fn asks_authorizers(&self) -> bool {
        matches!(self.access, Access::Authenticated | Access::Identify)
    }

    /// The roles of `identity` that this route requires but it lacks.
    pub fn missing_role(&self, identity: &Identity) -> Option<&str> {
        self.roles
            .iter()
            .find(|r| !identity.roles.iter().any(|have| **have == ***r))
            .map(String::as_str)
    }

    /// Whether the route asks anything of a token's claims (scopes, claim matchers).
    pub fn reads_claims(&self) -> bool {
        !self.scopes.is_empty() || !self.claims.is_empty()
    }

    /// The first of this route's rules on who the user is that `identity` does not meet:
    /// every role, one of the any-of roles, every scope, every claim. A fact the identity
    /// does not carry (no claims, no such claim) never meets a rule.
    pub fn unmet(&self, identity: &Identity) -> Option<&'static str> {
        if self.missing_role(identity).is_some() {
            return Some(MISSING_ROLE);
        }
        if !self.roles_any.is_empty()
            && !self
                .roles_any
                .iter()
                .any(|r| identity.roles.iter().any(|have| **have == **r))
        {
            return Some(NONE_OF_THE_ROLES);
        }
        if !self.reads_claims() {
            return None;
        }
        // Trust decision: rules on claims need the verified token's claims; an identity
        // without them (a static token, a backend's answer) meets none
        let Some(claims) = identity.claims.as_deref() else {
            return Some(NO_CLAIMS);
        };
        if !self.scopes.is_empty() {
            let granted = token_scopes(claims);
            if self.scopes.iter().any(|s| !granted.contains(&s.as_str())) {
                return Some(MISSING_SCOPE);
            }
        }
        for (path, patterns) in &self.claims {
            let Some(value) = crate::identity::claim(claims, path) else {
                return Some(MISSING_CLAIM);
            };
            let texts: Vec<String> = match value {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Number(n) => vec![n.to_string()],
                serde_json::Value::Bool(b) => vec![b.to_string()],
                // a list claim matches when one of its items does
                serde_json::Value::Array(items) => items
                    .iter()
                    .filter_map(|item| match item {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Number(n) => Some(n.to_string()),
                        serde_json::Value::Bool(b) => Some(b.to_string()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            if !texts
                .iter()
                .any(|text| patterns.iter().any(|p| p.matches(text)))
            {
                return Some(CLAIM_MISMATCH);
            }
        }
        None
    }
}

/// The scopes a token grants: `scope` (space-separated, RFC 8693/9068) or `scp` (a list
/// or a space-separated string).
fn token_scopes(claims: &crate::identity::Claims) -> Vec<&str> {
    let mut granted = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(serde_json::Value::String(s)) => granted.extend(s.split_ascii_whitespace()),
            Some(serde_json::Value::Array(items)) => {
                granted.extend(items.iter().filter_map(serde_json::Value::as_str))
            }
            _ => {}
        }
    }
    granted
}

mod access;
mod compile;
#[cfg(test)]
mod tests;
pub mod topics;

pub use self::access::{
    CLAIM_MISMATCH, COULD_NOT_DECIDE, ChainResult, FAILED_OPEN, MISSING_CLAIM, MISSING_ROLE,
    MISSING_SCOPE, NO_CLAIMS, NO_IDENTITY, NONE_OF_THE_ROLES, NOT_THE_USERNAME, Ruling,
    UNRECOGNISED,
};
use self::compile::{compile_route, warnings};
use self::topics::TopicRules;
