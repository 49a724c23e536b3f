//! Compiling routes: from `[[route]]` as written to the rules matched per request, and the
//! warnings about routes that are valid but probably not meant.
//!
//! Takes: the route settings, the authorizer names and the default readings. Returns:
//! compiled [`Route`]s, or a [`ConfigError`] naming the key. Must never: store a rule in a
//! form that canonical targets cannot meet (an uncanonical prefix, a host with a trailing
//! dot), or leave anything to be parsed per request.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::{Access, HostRule, OnError, PathRule, Route, RouteSettings};
use crate::request::readings::{kind, kinds_from_names};
use crate::request::{canonical_host, canonical_method, canonical_path, split_host_port};
use crate::settings::{ConfigError, StringList};

/// Methods clients send; another one in a rule is probably a typo (`PSOT`).
const KNOWN_METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
    "SEARCH",
    "QUERY",
];

/// What a valid policy probably did not mean.
pub(super) fn warnings(routes: &[Route], default: &Route) -> Vec<String> {
    let mut out = Vec::new();
    for (j, route) in routes.iter().enumerate() {
        for method in route.methods.iter().flatten() {
            if !KNOWN_METHODS.contains(&method.as_str()) {
                out.push(format!(
                    "route {}: method {method:?} is not one clients send; a typo?",
                    route.name
                ));
            }
        }
        if let Some(earlier) = routes[..j].iter().find(|r| r.name == route.name) {
            out.push(format!(
                "route {}: the name is used twice; logs and metrics cannot tell them apart",
                earlier.name
            ));
        }
        if let Some(earlier) = routes[..j].iter().find(|r| r.covers(route)) {
            out.push(format!(
                "route {}: never matches; route {} before it matches everything it does",
                route.name, earlier.name
            ));
        }
    }
    // The routes the form-body reading decides more requests under: a form POST to their
    // paths may name their methods through `_method`, and where the proxy does not send
    // the body, it is refused unless they allow it too.
    for route in routes {
        if let Some(methods) = &route.methods
            && route.readings & kind::FORM_METHOD_OVERRIDE != 0
            && !methods.iter().any(|m| m == "POST")
        {
            out.push(format!(
                "route {}: a form POST to its paths must be allowed by it too (reading form-method-override: the body may name {} through _method, and verdict sees the body only where the proxy sends it); leave the reading out (server.readings or the route's readings) for an application that never takes _method from a body",
                route.name,
                methods.join(", ")
            ));
        }
    }
    for route in routes.iter().chain([default]) {
        if route.on_error == OnError::Allow {
            out.push(format!(
                "route {}: on_error = \"allow\" lets requests through unauthenticated whenever an authorizer cannot decide",
                route.name
            ));
        }
    }
    out
}

/// A host rule as written (`app.example.com`, `app.example.com:8443`, `*.example.com`),
/// stored in the canonical form targets use, with the port only when the rule names one.
fn compile_host(text: &str) -> Option<HostRule> {
    let lower = text.trim().to_ascii_lowercase();
    let (pattern, wildcard) = match lower.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (lower.as_str(), false),
    };
    // Validates the name and the port; the canonical form drops a trailing dot.
    canonical_host(pattern.as_bytes(), "http").ok()?;
    let (name, port) = split_host_port(pattern);
    let name = name.strip_suffix('.').unwrap_or(name).to_string();
    Some(if wildcard {
        HostRule::Suffix {
            suffix: format!(".{name}"),
            port,
        }
    } else {
        HostRule::Exact { name, port }
    })
}

pub(super) fn compile_route(
    raw: RouteSettings,
    key: &str,
    authorizers: &[&str],
    default_readings: u8,
) -> Result<Route, ConfigError> {
    let name = raw.name.clone().unwrap_or_else(|| key.to_string());
    let host = match raw.host.as_deref() {
        None => None,
        Some(h) => Some(compile_host(h).ok_or_else(|| {
            ConfigError::invalid(
                format!("{key}.host"),
                format!("{h:?} is not a host or a *.domain pattern, with an optional port"),
            )
        })?),
    };
    let path = match (raw.path.as_deref(), raw.path_glob.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                key,
                "give path or path_glob, not both",
            ));
        }
        (Some(prefix), None) => {
            let canonical = canonical_path(prefix.as_bytes())
                .map_err(|_| ConfigError::invalid(format!("{key}.path"), "must start with '/'"))?;
            // A prefix is compared with canonical paths, so it must be canonical itself,
            // or it could never match (or match less than its author thinks).
            if canonical != prefix && format!("{canonical}/") != prefix {
                return Err(ConfigError::invalid(
                    format!("{key}.path"),
                    format!("{prefix:?} is not canonical; write {canonical:?}"),
                ));
            }
            Some(PathRule::Prefix(prefix.to_string()))
        }
        (None, Some(pattern)) => {
            if !pattern.starts_with('/') {
                return Err(ConfigError::invalid(
                    format!("{key}.path_glob"),
                    "must start with '/'",
                ));
            }
            let compiled = glob::Pattern::new(pattern)
                .map_err(|e| ConfigError::invalid(format!("{key}.path_glob"), e.to_string()))?;
            Some(PathRule::Glob(compiled))
        }
        (None, None) => None,
    };
    let methods = match &raw.methods {
        None => None,
        Some(list) => {
            let mut out = Vec::new();
            for m in &list.0 {
                let canonical = canonical_method(m.as_bytes()).map_err(|_| {
                    ConfigError::invalid(format!("{key}.methods"), format!("{m:?} is not a method"))
                })?;
                out.push(canonical);
            }
            if out.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{key}.methods"),
                    "must not be empty (leave it out to match every method)",
                ));
            }
            Some(out)
        }
    };
    let list =
        |field: &str, value: &Option<StringList>| -> Result<Option<Vec<String>>, ConfigError> {
            match value {
                None => Ok(None),
                Some(list) if list.0.is_empty() => Err(ConfigError::invalid(
                    format!("{key}.{field}"),
                    "must not be empty (leave it out to match every request)",
                )),
                Some(list) => Ok(Some(list.0.clone())),
            }
        };
    let deny_location = match raw.deny_location.as_deref() {
        None => None,
        Some(url) => {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://"))
                || url.len() > 2048
                || url.bytes().any(|b| b <= 0x20 || b >= 0x7f)
            {
                return Err(ConfigError::invalid(
                    format!("{key}.deny_location"),
                    "must be an absolute http(s) URL of printable ASCII, at most 2 KiB",
                ));
            }
            Some(Arc::from(url))
        }
    };
    let dialects = list("dialects", &raw.dialects)?;
    let channels = list("channels", &raw.channels)?;
    let client_ip = match list("client_ip", &raw.client_ip)? {
        None => None,
        Some(texts) => Some(
            texts
                .iter()
                .map(|text| {
                    text.parse::<IpNet>()
                        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                        .map(|net| net.trunc())
                        .map_err(|_| {
                            ConfigError::invalid(
                                format!("{key}.client_ip"),
                                format!("{text:?} is not a CIDR or an IP address"),
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let chain_names: Vec<String> = match &raw.authorizers {
        Some(list) => list.0.clone(),
        None => authorizers.iter().map(|s| s.to_string()).collect(),
    };
    let mut chain = Vec::with_capacity(chain_names.len());
    for wanted in &chain_names {
        let index = authorizers
            .iter()
            .position(|a| a == wanted)
            .ok_or_else(|| {
                ConfigError::invalid(
                    format!("{key}.authorizers"),
                    format!("no authorizer named {wanted:?}"),
                )
            })?;
        chain.push(index);
    }
    let needs_chain = matches!(raw.access, Access::Authenticated | Access::Identify);
    if needs_chain && chain.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.authorizers"),
            format!("access = {:?} needs at least one authorizer", raw.access).to_lowercase(),
        ));
    }
    let roles = raw.roles.map(|l| l.0).unwrap_or_default();
    if !roles.is_empty() && raw.access != Access::Authenticated {
        return Err(ConfigError::invalid(
            format!("{key}.roles"),
            "roles only apply to access = \"authenticated\"",
        ));
    }
    let roles_any = match raw.roles_any {
        Some(list) if list.0.is_empty() => {
            return Err(ConfigError::invalid(
                format!("{key}.roles_any"),
                "an empty list can never be met: name at least one role, or leave it out",
            ));
        }
        Some(list) => list.0,
        None => Vec::new(),
    };
    let scopes = raw.scopes.map(|l| l.0).unwrap_or_default();
    let mut claims = Vec::new();
    for (path, values) in raw.claims.unwrap_or_default() {
        if path.is_empty() || values.0.is_empty() {
            return Err(ConfigError::invalid(
                format!("{key}.claims"),
                format!("{path:?}: name a claim and at least one value it may have"),
            ));
        }
        let mut patterns = Vec::new();
        for value in &values.0 {
            patterns.push(glob::Pattern::new(value).map_err(|e| {
                ConfigError::invalid(format!("{key}.claims.{path}"), format!("{value:?}: {e}"))
            })?);
        }
        claims.push((path, patterns));
    }
    if (!roles_any.is_empty() || !scopes.is_empty() || !claims.is_empty())
        && raw.access != Access::Authenticated
    {
        return Err(ConfigError::invalid(
            format!("{key}.access"),
            "roles_any, scopes and claims only apply to access = \"authenticated\"",
        ));
    }
    let readings = match &raw.readings {
        None => default_readings,
        Some(list) => kinds_from_names(&list.0)
            .map_err(|problem| ConfigError::invalid(format!("{key}.readings"), problem))?,
    };
    Ok(Route {
        name,
        host,
        path,
        methods,
        dialects,
        client_ip,
        channels,
        access: raw.access,
        roles,
        roles_any,
        scopes,
        claims,
        chain,
        implicit_chain: raw.authorizers.is_none(),
        on_error: raw.on_error.unwrap_or(OnError::Deny),
        readings,
        deny_location,
    })
}
