//! `${...}` templates for the `http` authorizer's URL, headers, body and cache key.
//!
//! Takes: template text at start-up (parsed once; an unknown placeholder is a config
//! error) and, per request, the [`ForwardedRequest`] plus the session id and claims.
//! Returns: the rendered text; a missing value renders empty. Must never: evaluate
//! anything but the fixed placeholder set, or leave a placeholder un-encoded in a URL.

use percent_encoding::utf8_percent_encode;
use serde_json::Value;

use crate::decision::{Claims, claim};
use crate::request::{ForwardedRequest, URL_COMPONENT};

/// One placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
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
    /// The caller's channel (Cesbo `X-Channel-ID`), else the second path segment
    /// (`/play/<channel>/…`).
    Channel,
    /// A claim of the token the `claims_from` authorizer allowed (dotted paths reach in).
    Claim(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(Var),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template may read besides the request.
pub struct RenderContext<'a> {
    pub request: &'a ForwardedRequest<'a>,
    pub session_id: &'a str,
    pub claims: Option<&'a Claims>,
}

impl Template {
    /// Parses `text`; `${` without a matching `}` or an unknown name is an error.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed placeholder in {text:?}"))?;
            parts.push(Part::Var(parse_var(&after[..end])?));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Whether a claim placeholder appears (the authorizer then needs `claims_from`).
    pub fn uses_claims(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(Var::Claim(_))))
    }

    /// The request headers this template reads (lower-case; a cookie is read from
    /// `cookie`).
    pub fn request_headers(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(Var::Header(name)) => Some(name.as_str()),
            Part::Var(Var::Cookie(_)) => Some("cookie"),
            _ => None,
        })
    }

    /// Renders with values as they are (headers, JSON bodies, cache keys).
    pub fn render(&self, ctx: &RenderContext<'_>) -> String {
        self.render_with(ctx, false)
    }

    /// Renders with every placeholder value percent-encoded (URLs); literals stay as written.
    pub fn render_url(&self, ctx: &RenderContext<'_>) -> String {
        self.render_with(ctx, true)
    }

    fn render_with(&self, ctx: &RenderContext<'_>, encode: bool) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(var) => {
                    let value = value_of(var, ctx);
                    if encode {
                        out.extend(utf8_percent_encode(&value, URL_COMPONENT));
                    } else {
                        out.push_str(&value);
                    }
                }
            }
        }
        out
    }
}

fn parse_var(name: &str) -> Result<Var, String> {
    let name = name.trim();
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
        ("client_ip", None) => Var::ClientIp,
        ("method", None) => Var::Method,
        ("scheme", None) => Var::Scheme,
        ("host", None) => Var::Host,
        ("path", None) => Var::Path,
        ("path", Some(n)) => Var::PathSegment(
            n.parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("${{path.{n}}}: segments count from 1"))?,
        ),
        ("query", None) => Var::Query,
        ("query", Some(_)) => Var::QueryParam(arg_name("query")?),
        ("cookie", Some(_)) => Var::Cookie(arg_name("cookie")?),
        ("header", Some(_)) => Var::Header(arg_name("header")?.to_ascii_lowercase()),
        ("session_id", None) => Var::SessionId,
        ("channel", None) => Var::Channel,
        ("claim", Some(_)) => Var::Claim(arg_name("claim")?),
        _ => {
            return Err(format!(
                "unknown placeholder ${{{name}}} (client_ip, method, scheme, host, path, path.N, query, query.NAME, cookie.NAME, header.NAME, session_id, channel, claim.NAME)"
            ));
        }
    })
}

fn value_of(var: &Var, ctx: &RenderContext<'_>) -> String {
    let request = ctx.request;
    let target = &request.target;
    match var {
        Var::ClientIp => request.client_ip.to_string(),
        Var::Method => target.method.clone().unwrap_or_default(),
        Var::Scheme => target.scheme.clone(),
        Var::Host => target.host.clone().unwrap_or_default(),
        Var::Path => target.path.clone().unwrap_or_default(),
        Var::PathSegment(n) => target
            .path
            .as_deref()
            .and_then(|p| p.split('/').filter(|s| !s.is_empty()).nth(n - 1))
            .unwrap_or_default()
            .to_string(),
        Var::Query => target.query.clone().unwrap_or_default(),
        Var::QueryParam(name) => request.query_param(name).unwrap_or_default(),
        Var::Cookie(name) => request.cookie(name).unwrap_or_default().to_string(),
        Var::Header(name) => request.header(name).unwrap_or_default().to_string(),
        Var::SessionId => ctx.session_id.to_string(),
        Var::Channel => match request.caller.channel.as_deref() {
            Some(channel) => channel.to_string(),
            None => value_of(&Var::PathSegment(2), ctx),
        },
        Var::Claim(path) => ctx
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Header, Target};

    fn request() -> ForwardedRequest<'static> {
        ForwardedRequest {
            caller: Default::default(),
            target: Target {
                method: Some("GET".into()),
                scheme: "https".into(),
                host: Some("live.example.com".into()),
                path: Some("/play/a001/index.m3u8".into()),
                query: Some("token=a%2Bb&x=1".into()),
                raw_uri: Some("/play/a001/index.m3u8?token=a%2Bb&x=1".into()),
                readings: Vec::new(),
            },
            client_ip: "203.0.113.7".parse().unwrap(),
            headers: vec![
                Header::owned("user-agent", b"VLC/3.0".to_vec()),
                Header::owned("cookie", b"sid=s1".to_vec()),
            ],
        }
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
    fn bad_templates_are_rejected() {
        assert!(Template::parse("${nope}").is_err());
        assert!(Template::parse("${path.0}").is_err());
        assert!(Template::parse("${cookie.}").is_err());
        assert!(Template::parse("${query.token").is_err());
        assert!(Template::parse("${claim.sub}").unwrap().uses_claims());
    }
}
