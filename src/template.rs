//! `${...}` templates: the one placeholder renderer, for every template verdict reads (the
//! `http` authorizer's URL, headers, body, session id and cache key; topic rules'
//! filters; anything added later).
//!
//! Takes: template text at start-up, parsed once against a vocabulary (an unknown
//! placeholder is a configuration error), and per request a function giving each
//! placeholder's value. Returns: the text with every placeholder replaced, in one pass
//! over the parsed parts; or nothing, when a value may not stand where it would go.
//! Must never: scan a value for placeholders (a username that is literally
//! `${clientid}` stays that text), evaluate anything but the vocabulary's fixed
//! placeholders, or leave a value un-encoded in a URL.

use percent_encoding::utf8_percent_encode;
use serde_json::Value;

use crate::identity::{Claims, claim};
use crate::request::{ForwardedRequest, URL_COMPONENT};

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part<V> {
    Literal(Box<str>),
    Var(V),
}

/// A parsed template over the placeholder vocabulary `V`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template<V> {
    parts: Vec<Part<V>>,
}

impl<V> Template<V> {
    /// Parses `text` once; `${` without a matching `}`, or a name `vocabulary` does not
    /// know, is an error.
    pub fn parse_with(
        text: &str,
        vocabulary: impl Fn(&str) -> Result<V, String>,
    ) -> Result<Template<V>, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].into()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed placeholder in {text:?}"))?;
            parts.push(Part::Var(vocabulary(after[..end].trim())?));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.into()));
        }
        Ok(Template { parts })
    }

    /// The placeholders, in order.
    pub fn vars(&self) -> impl Iterator<Item = &V> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(var) => Some(var),
            Part::Literal(_) => None,
        })
    }

    /// Whether the template holds no placeholder at all.
    pub fn is_literal(&self) -> bool {
        self.vars().next().is_none()
    }

    /// Renders in one pass: each literal copied, each placeholder replaced by what
    /// `value` writes for it. A value is written once and never read again, so a value
    /// that looks like a placeholder stays text. `value` returns `None` to refuse the
    /// whole rendering (a value that may not stand there).
    pub fn render_with(
        &self,
        out: &mut String,
        mut value: impl FnMut(&V, &mut String) -> Option<()>,
    ) -> Option<()> {
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(var) => value(var, out)?,
            }
        }
        Some(())
    }
}

/// A placeholder of a template that reads the request (the `http` authorizer's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestVar {
    ClientIp,
    Method,
    Scheme,
    Host,
    Path,
    /// 1-based segment of the canonical path: `${path.2}` of `/play/a001/x` is `a001`.
    PathSegment(usize),
    /// The whole raw query string.
    Query,
    QueryParam(String),
    Cookie(String),
    Header(String),
    SessionId,
    /// The client's User-Agent: as a streaming server states it (Cesbo `X-Real-UA`,
    /// Icecast `agent`), else the forwarded `User-Agent` header.
    UserAgent,
    /// The caller's channel (Cesbo `X-Channel-ID`), else the second path segment
    /// (`/play/<channel>/…`).
    Channel,
    /// A claim of the token the `claims_from` authorizer allowed (dotted paths reach in).
    Claim(String),
}

/// A template over the request's facts.
pub type RequestTemplate = Template<RequestVar>;

/// What a request template may read besides the request.
pub struct RenderContext<'a> {
    pub request: &'a ForwardedRequest<'a>,
    pub session_id: &'a str,
    pub claims: Option<&'a Claims>,
}

impl Template<RequestVar> {
    /// Parses a template over the request's facts.
    pub fn parse(text: &str) -> Result<RequestTemplate, String> {
        Template::parse_with(text, parse_var)
    }

    /// Whether a claim placeholder appears (the authorizer then needs `claims_from`).
    pub fn uses_claims(&self) -> bool {
        self.vars().any(|v| matches!(v, RequestVar::Claim(_)))
    }

    /// The request headers this template reads (lower-case; a cookie is read from
    /// `cookie`).
    pub fn request_headers(&self) -> impl Iterator<Item = &str> {
        self.vars().filter_map(|v| match v {
            RequestVar::Header(name) => Some(name.as_str()),
            RequestVar::Cookie(_) => Some("cookie"),
            RequestVar::UserAgent => Some("user-agent"),
            _ => None,
        })
    }

    /// Renders with values as they are (headers, JSON bodies, cache keys).
    pub fn render(&self, ctx: &RenderContext<'_>) -> String {
        let mut out = String::new();
        let _ = self.render_with(&mut out, |var, out| {
            out.push_str(&value_of(var, ctx));
            Some(())
        });
        out
    }

    /// Renders with every placeholder value percent-encoded (URLs); literals stay as
    /// written.
    pub fn render_url(&self, ctx: &RenderContext<'_>) -> String {
        let mut out = String::new();
        let _ = self.render_with(&mut out, |var, out| {
            out.extend(utf8_percent_encode(&value_of(var, ctx), URL_COMPONENT));
            Some(())
        });
        out
    }
}

fn parse_var(name: &str) -> Result<RequestVar, String> {
    let (head, arg) = match name.split_once('.') {
        Some((h, a)) => (h, Some(a)),
        None => (name, None),
    };
    let arg_name = |kind: &str| -> Result<String, String> {
        match arg {
            Some(a) if !a.is_empty() => Ok(a.to_string()),
            _ => Err(format!("${{{kind}.NAME}} needs a name")),
        }
    };
    Ok(match (head, arg) {
        ("client_ip", None) => RequestVar::ClientIp,
        ("method", None) => RequestVar::Method,
        ("scheme", None) => RequestVar::Scheme,
        ("host", None) => RequestVar::Host,
        ("path", None) => RequestVar::Path,
        ("path", Some(n)) => RequestVar::PathSegment(
            n.parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("${{path.{n}}}: segments count from 1"))?,
        ),
        ("query", None) => RequestVar::Query,
        ("query", Some(_)) => RequestVar::QueryParam(arg_name("query")?),
        ("cookie", Some(_)) => RequestVar::Cookie(arg_name("cookie")?),
        ("header", Some(_)) => RequestVar::Header(arg_name("header")?.to_ascii_lowercase()),
        ("session_id", None) => RequestVar::SessionId,
        ("user_agent", None) => RequestVar::UserAgent,
        ("channel", None) => RequestVar::Channel,
        ("claim", Some(_)) => RequestVar::Claim(arg_name("claim")?),
        _ => {
            return Err(format!(
                "unknown placeholder ${{{name}}} (client_ip, method, scheme, host, path, path.N, query, query.NAME, cookie.NAME, header.NAME, session_id, channel, claim.NAME)"
            ));
        }
    })
}

fn value_of(var: &RequestVar, ctx: &RenderContext<'_>) -> String {
    let request = ctx.request;
    let target = request.target();
    match var {
        RequestVar::ClientIp => request.client_ip().to_string(),
        RequestVar::Method => target.method.clone().unwrap_or_default(),
        RequestVar::Scheme => target.scheme.clone(),
        RequestVar::Host => target.host.clone().unwrap_or_default(),
        RequestVar::Path => target.path.clone().unwrap_or_default(),
        RequestVar::PathSegment(n) => target
            .path
            .as_deref()
            .and_then(|p| p.split('/').filter(|s| !s.is_empty()).nth(n - 1))
            .unwrap_or_default()
            .to_string(),
        RequestVar::Query => target.query.clone().unwrap_or_default(),
        RequestVar::QueryParam(name) => request.query_param(name).unwrap_or_default(),
        RequestVar::Cookie(name) => request.cookie(name).unwrap_or_default().to_string(),
        RequestVar::Header(name) => request.header(name).unwrap_or_default().to_string(),
        RequestVar::SessionId => ctx.session_id.to_string(),
        RequestVar::UserAgent => request.client_user_agent().to_string(),
        RequestVar::Channel => match request.caller().channel.as_deref() {
            Some(channel) => channel.to_string(),
            None => value_of(&RequestVar::PathSegment(2), ctx),
        },
        RequestVar::Claim(path) => ctx
            .claims
            .and_then(|claims| claim(claims, path))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .unwrap_or_default(),
    }
}

/// A placeholder of an identity header template (`[headers.custom]`): what the decision
/// verified, never the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityVar {
    UserId,
    Email,
    SessionName,
    /// The roles, comma-separated.
    Roles,
    /// A claim of the verified token (dotted paths reach in).
    Claim(String),
}

/// A template over a verified identity.
pub type IdentityTemplate = Template<IdentityVar>;

impl Template<IdentityVar> {
    /// Parses a template over the identity: `${identity.user_id}`, `${identity.email}`,
    /// `${identity.session_name}`, `${identity.roles}`, `${claim.PATH}`.
    pub fn parse_identity(text: &str) -> Result<IdentityTemplate, String> {
        Template::parse_with(text, |name| match name {
            "identity.user_id" => Ok(IdentityVar::UserId),
            "identity.email" => Ok(IdentityVar::Email),
            "identity.session_name" => Ok(IdentityVar::SessionName),
            "identity.roles" => Ok(IdentityVar::Roles),
            other => match other.strip_prefix("claim.") {
                Some(path) if !path.is_empty() => Ok(IdentityVar::Claim(path.to_string())),
                _ => Err(format!(
                    "${{{other}}} is not one of ${{identity.user_id}}, ${{identity.email}}, ${{identity.session_name}}, ${{identity.roles}}, ${{claim.NAME}}"
                )),
            },
        })
    }

    /// Whether a claim placeholder appears (the token's claims must then be kept).
    pub fn uses_claims(&self) -> bool {
        self.vars().any(|v| matches!(v, IdentityVar::Claim(_)))
    }

    /// The text for `identity`; `None` when a value it names is missing (a claim the
    /// token does not carry): the header is then not sent, never sent empty or partial.
    pub fn render_identity(&self, identity: &crate::identity::Identity) -> Option<String> {
        let mut out = String::new();
        self.render_with(&mut out, |var, out| {
            match var {
                IdentityVar::UserId => out.push_str(&identity.user_id),
                IdentityVar::Email if identity.email.is_empty() => return None,
                IdentityVar::Email => out.push_str(&identity.email),
                IdentityVar::SessionName => out.push_str(identity.session_name()),
                IdentityVar::Roles => {
                    let roles: Vec<&str> = identity.roles.iter().map(|r| &**r).collect();
                    out.push_str(&roles.join(","));
                }
                IdentityVar::Claim(path) => {
                    let value = claim(identity.claims.as_deref()?, path)?;
                    match value {
                        Value::String(text) => out.push_str(text),
                        Value::Number(n) => out.push_str(&n.to_string()),
                        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                        _ => return None,
                    }
                }
            }
            Some(())
        })?;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Header, Target};

    fn request() -> ForwardedRequest<'static> {
        request_with(Vec::new())
    }

    /// The test request, with `extra` headers after its own.
    fn request_with(extra: Vec<Header<'static>>) -> ForwardedRequest<'static> {
        let mut headers = vec![
            Header::owned("user-agent", b"VLC/3.0".to_vec()),
            Header::owned("cookie", b"sid=s1".to_vec()),
        ];
        headers.extend(extra);
        ForwardedRequest::new(
            Target {
                method: Some("GET".into()),
                scheme: "https".into(),
                host: Some("live.example.com".into()),
                path: Some("/play/a001/index.m3u8".into()),
                query: Some("token=a%2Bb&x=1".into()),
                raw_uri: Some("/play/a001/index.m3u8?token=a%2Bb&x=1".into()),
                readings: Vec::new(),
            },
            "203.0.113.7".parse().unwrap(),
            headers,
            Default::default(),
        )
    }

    fn render(text: &str, url: bool) -> String {
        let req = request();
        let claims = serde_json::json!({"sub": "u1", "org": {"id": 7}});
        let ctx = RenderContext {
            request: &req,
            session_id: "17",
            claims: claims.as_object(),
        };
        let t = Template::parse(text).unwrap();
        if url {
            t.render_url(&ctx)
        } else {
            t.render(&ctx)
        }
    }

    #[test]
    fn placeholders_render() {
        assert_eq!(
            render("${client_ip}|${method}|${scheme}|${host}|${path}", false),
            "203.0.113.7|GET|https|live.example.com|/play/a001/index.m3u8"
        );
        assert_eq!(render("${path.1}/${path.2}/${path.9}", false), "play/a001/");
        assert_eq!(render("${query}", false), "token=a%2Bb&x=1");
        assert_eq!(render("${query.token}", false), "a+b");
        assert_eq!(
            render("${cookie.sid}|${header.User-Agent}|${session_id}", false),
            "s1|VLC/3.0|17"
        );
        assert_eq!(
            render("${claim.sub}-${claim.org.id}-${claim.none}", false),
            "u1-7-"
        );
        assert_eq!(render("${header.missing}", false), "");
    }

    #[test]
    fn url_rendering_encodes_values_not_literals() {
        assert_eq!(
            render("http://auth/check?t=${query.token}&p=${path}", true),
            "http://auth/check?t=a%2Bb&p=%2Fplay%2Fa001%2Findex.m3u8"
        );
    }

    #[test]
    fn a_value_is_never_read_as_a_template() {
        let req = request_with(vec![Header::owned("x-user", b"${header.cookie}".to_vec())]);
        let ctx = RenderContext {
            request: &req,
            session_id: "${client_ip}",
            claims: None,
        };
        let t = Template::parse("${header.x-user}|${session_id}").unwrap();
        assert_eq!(t.render(&ctx), "${header.cookie}|${client_ip}");
        assert_eq!(
            t.render_url(&ctx),
            "%24%7Bheader.cookie%7D%7C%24%7Bclient_ip%7D".replace("%7C", "|")
        );
    }

    #[test]
    fn bad_templates_are_rejected() {
        assert!(Template::parse("${nope}").is_err());
        assert!(Template::parse("${path.0}").is_err());
        assert!(Template::parse("${cookie.}").is_err());
        assert!(Template::parse("${query.token").is_err());
        assert!(Template::parse("${claim.sub}").unwrap().uses_claims());
    }
}
