//! Credentials: where a token is looked for in a request ([`TokenSource`]), written
//! `bearer`, `basic`, `cookie:NAME`, `query:NAME` or `header:NAME` in the configuration.
//!
//! Takes: a [`ForwardedRequest`] and the configured sources. Returns: the first credential
//! found, borrowed from the request where possible. Must never: read the `Authorization`
//! header raw (only through `bearer`, which checks the scheme), or log what it finds.

use std::borrow::Cow;

use serde::Deserialize;

use crate::request::ForwardedRequest;
use crate::settings::{ConfigError, StringList};

/// Where a token is looked for, written `bearer`, `cookie:NAME`, `query:NAME` or
/// `header:NAME` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Bearer,
    /// `Authorization: Basic …`: the decoded `user:password`.
    Basic,
    Cookie(String),
    Query(String),
    Header(String),
}

impl<'de> Deserialize<'de> for TokenSource {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        TokenSource::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "token source {text:?} is not bearer, basic, cookie:NAME, query:NAME or header:NAME"
            ))
        })
    }
}

impl TokenSource {
    pub fn parse(text: &str) -> Option<TokenSource> {
        if text == "bearer" {
            return Some(TokenSource::Bearer);
        }
        if text == "basic" {
            return Some(TokenSource::Basic);
        }
        let (kind, name) = text.split_once(':')?;
        let name = name.trim();
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid_name {
            return None;
        }
        match kind {
            "cookie" => Some(TokenSource::Cookie(name.to_string())),
            "query" => Some(TokenSource::Query(name.to_string())),
            "header" => {
                let lower = name.to_ascii_lowercase();
                // A token read from the Authorization header must go through `bearer`,
                // which checks the scheme; reading the raw header would take "Basic …".
                (lower != "authorization").then_some(TokenSource::Header(lower))
            }
            _ => None,
        }
    }

    /// The request header this source reads, lower-case; `None` for the query.
    pub fn header(&self) -> Option<String> {
        match self {
            TokenSource::Bearer | TokenSource::Basic => Some("authorization".into()),
            TokenSource::Cookie(_) => Some("cookie".into()),
            TokenSource::Query(_) => None,
            TokenSource::Header(name) => Some(name.clone()),
        }
    }

    /// The first credential found in this source.
    pub fn find<'r>(&self, request: &'r ForwardedRequest<'r>) -> Option<Cow<'r, str>> {
        match self {
            TokenSource::Bearer => request.bearer_token().map(Cow::Borrowed),
            TokenSource::Basic => basic_of(request).map(Cow::Owned),
            TokenSource::Cookie(name) => request.cookie(name).map(Cow::Borrowed),
            TokenSource::Query(name) => request.query_param(name).map(Cow::Owned),
            TokenSource::Header(name) => request
                .header(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(Cow::Borrowed),
        }
    }
}

/// A user name and password: `Authorization: Basic`, else the caller's own fields for the
/// callers that send them as facts: Icecast's `user`/`pass` (the `icecast-user` and
/// `icecast-pass` the icecast dialect sets), an MQTT broker's `username`/`password`.
fn basic_of(request: &ForwardedRequest<'_>) -> Option<String> {
    if let Some(credential) = request.header("authorization").and_then(basic_credential) {
        return Some(credential);
    }
    // Trust decision: these names are read only from the callers that set them as their
    // own facts; through a proxy they would be any client's header or query
    let (user, password) = match request.caller().dialect {
        "icecast" => (
            request.header("icecast-user")?.to_string(),
            request.header("icecast-pass")?.to_string(),
        ),
        "mqtt" | "emqx" | "emqx4" | "emqx-authn" => (
            request.query_param("username")?,
            request.query_param("password")?,
        ),
        _ => return None,
    };
    (!user.is_empty() && !user.contains(':')).then(|| format!("{user}:{password}"))
}

/// The `user:password` of an `Authorization: Basic` value (RFC 7617): the scheme in any
/// case, standard base64, UTF-8, a colon; anything else is no credential.
fn basic_credential(value: &str) -> Option<String> {
    use base64::Engine as _;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, _) = text.split_once(':')?;
    (!user.is_empty()).then_some(text)
}

/// The first credential found, trying the sources in their configured order.
pub fn find_token<'r>(
    sources: &[TokenSource],
    request: &'r ForwardedRequest<'r>,
) -> Option<Cow<'r, str>> {
    sources.iter().find_map(|s| s.find(request))
}

/// Parses token sources from the configuration, defaulting to `bearer`.
pub fn parse_sources(
    key: &str,
    sources: Option<&StringList>,
) -> Result<Vec<TokenSource>, ConfigError> {
    let Some(list) = sources else {
        return Ok(vec![TokenSource::Bearer]);
    };
    if list.0.is_empty() {
        return Err(ConfigError::invalid(key, "needs at least one token source"));
    }
    list.0
        .iter()
        .map(|text| {
            TokenSource::parse(text).ok_or_else(|| {
                ConfigError::invalid(
                    key,
                    format!(
                        "{text:?} is not bearer, basic, cookie:NAME, query:NAME or header:NAME"
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_sources_parse() {
        assert_eq!(TokenSource::parse("bearer"), Some(TokenSource::Bearer));
        assert_eq!(
            TokenSource::parse("cookie:session"),
            Some(TokenSource::Cookie("session".into()))
        );
        assert_eq!(
            TokenSource::parse("header:X-Api-Key"),
            Some(TokenSource::Header("x-api-key".into()))
        );
        assert_eq!(
            TokenSource::parse("query:access_token"),
            Some(TokenSource::Query("access_token".into()))
        );
        assert_eq!(TokenSource::parse("header:Authorization"), None);
        assert_eq!(TokenSource::parse("cookie:"), None);
        assert_eq!(TokenSource::parse("cookie:a b"), None);
        assert_eq!(TokenSource::parse("form:x"), None);
    }
}
