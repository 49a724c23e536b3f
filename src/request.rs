//! The proxy-neutral view of one client request: [`ForwardedRequest`], its canonical
//! [`Target`] and the credential look-ups authorizers use.
//!
//! Takes: facts a dialect has already chosen to trust (raw method, scheme, host, URI,
//! client IP) and a copy of the headers. Returns: a canonical target (path decoded once,
//! dot-segments removed, slashes merged; host lower-cased with a default port dropped) or
//! a [`TargetError`]. Must never: decode twice, guess a missing fact, or hand an
//! authorizer anything actix-shaped.

use std::borrow::Cow;
use std::net::IpAddr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode};

pub use self::readings::{FormBody, Reading, readings};

pub mod readings;

/// Characters left as they are when a value is put into a URL: RFC 3986 unreserved.
/// Everything else, `+ / & = ? # %` and spaces included, is percent-encoded (a space as
/// `%20`, never `+`), and non-ASCII as its UTF-8 bytes.
pub const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A header name as CGI-style applications (PHP, WSGI, Rack behind CGI) read it: every
/// character but a letter or digit becomes `-`, letters lower-cased. `X.HTTP.Method` and
/// `x_http_method` both read as `x-http-method`.
pub fn cgi_folded(name: &str) -> Cow<'_, str> {
    if name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Cow::Borrowed(name);
    }
    Cow::Owned(
        name.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect(),
    )
}

/// Why the original target could not be understood. Any of these ends in a deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the original URI is not an origin-form path")]
    NotOriginForm,
    #[error("the original path decodes to invalid UTF-8 or a control character")]
    BadPathBytes,
    #[error("the original target holds an invalid percent-escape")]
    BadEscape,
    #[error("the original host is not a valid host[:port]")]
    BadHost,
    #[error("the original scheme is not http, https, ws or wss")]
    BadScheme,
    #[error("the original method is not a valid token")]
    BadMethod,
    #[error("the client address is not an IP address")]
    BadClientIp,
    #[error("two headers name different original URLs")]
    Conflicting,
}

/// Why what a caller sent could not be read: its description of the original target, its
/// headers or its body. Any of these ends in a refusal before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("a header is an alias of an identity header (CGI-style backends would read it as one)")]
    IdentityHeaderAlias,
    #[error("the caller's body is not a request verdict understands")]
    BadBody,
    #[error("the caller's body is over 64 KiB")]
    BodyTooLarge,
    #[error("the caller's body did not arrive in time")]
    SlowBody,
}

impl ReadError {
    /// Whether the caller's body, not its description of the target, was at fault.
    pub fn is_body(&self) -> bool {
        matches!(
            self,
            ReadError::BadBody | ReadError::BodyTooLarge | ReadError::SlowBody
        )
    }
}

/// The original request's target, canonical where it is known. A field is `None` when
/// the proxy did not send it; policy treats "unknown" as "cannot decide", never as "/".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// Upper-case method token, e.g. `GET`.
    pub method: Option<String>,
    /// `http` or `https` (`ws`/`wss` are folded into these).
    pub scheme: String,
    /// Lower-case host, default port dropped, e.g. `app.example.com:8443`.
    pub host: Option<String>,
    /// Canonical path: decoded once, dot-segments removed, slashes merged.
    pub path: Option<String>,
    /// The raw query (after `?`, before any `#`), exactly as received.
    pub query: Option<String>,
    /// The raw path and query as received, for building the login redirect.
    pub raw_uri: Option<String>,
    /// Other readings an application could make of the method and path, when they differ
    /// from the canonical one (empty for an already canonical target). See [`readings()`].
    pub readings: Vec<Reading>,
}

impl Target {
    /// The original absolute URL (canonical host, raw path and query), when known.
    pub fn original_url(&self) -> Option<String> {
        let host = self.host.as_deref()?;
        let uri = self.raw_uri.as_deref()?;
        Some(format!("{}://{}{}", self.scheme, host, uri))
    }
}

/// One header as received: lower-case name, raw value bytes (may be non-UTF-8). Borrowed
/// from the caller's request where it came as it is (no copy per header per request),
/// owned where a dialect made it from the caller's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: Cow<'a, str>,
    pub value: Cow<'a, [u8]>,
}

impl Header<'_> {
    /// A header made here rather than read from the request.
    pub fn owned(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Header<'static> {
        Header {
            name: Cow::Owned(name.into()),
            value: Cow::Owned(value.into()),
        }
    }
}

/// Everything an authorizer may look at. Built once per request by the read stage
/// (`dialect::read`), borrowing the request's headers for as long as the decision runs;
/// read-only after that: every later stage sees exactly what was read.
#[derive(Debug, Clone)]
pub struct ForwardedRequest<'a> {
    target: Target,
    client_ip: IpAddr,
    headers: Vec<Header<'a>>,
    caller: Caller,
}

/// The facts of the asking caller itself: its dialect, and for streaming servers the
/// channel and session their viewer is on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The dialect's name (`auth-request`, `cesbo`, …): routes can match on it.
    pub dialect: &'static str,
    /// The channel (Cesbo `X-Channel-ID`).
    pub channel: Option<String>,
    /// The caller's session id for this client (Cesbo `X-Session-ID`).
    pub session: Option<String>,
    /// The client's User-Agent as the caller states it (Cesbo `X-Real-UA`, Icecast
    /// `agent`): the caller's own `User-Agent` header is the caller's, not its client's.
    /// `None` from a proxy, which forwards its client's header as it is.
    pub user_agent: Option<String>,
    /// What an MQTT broker asks about (a publish or subscribe), for the topic rules.
    pub mqtt: Option<MqttAccess>,
    /// The username the caller authenticated: a token presented alongside must name it.
    pub username: Option<String>,
    /// The request has no HTTP target (EMQX): routes with method, host or path rules do
    /// not apply to it.
    pub targetless: bool,
    /// What an allow without a verified identity means to this caller (its dialect
    /// declares it).
    pub anonymous: Anonymous,
    /// Whose clients the caller asks about (its dialect declares it).
    pub audience: Audience,
}

/// Whose clients a caller asks about. A credential is issued for one audience (a web
/// application's users, a streamer's viewers, a broker's devices); a route that names
/// no authorizers does not take it for another audience's caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Audience {
    /// Users of web applications behind a proxy.
    #[default]
    Web,
    /// Viewers of a Cesbo Astra or Alta stream.
    Viewers,
    /// Listeners of an Icecast mount.
    Listeners,
    /// Clients of an MQTT broker.
    MqttClients,
}

impl Audience {
    pub const ALL: [Audience; 4] = [
        Audience::Web,
        Audience::Viewers,
        Audience::Listeners,
        Audience::MqttClients,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Audience::Web => "web applications",
            Audience::Viewers => "stream viewers",
            Audience::Listeners => "Icecast listeners",
            Audience::MqttClients => "MQTT clients",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of audiences, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Audiences(u8);

impl Audiences {
    pub fn every() -> Audiences {
        Audience::ALL.into_iter().collect()
    }
    pub fn contains(self, audience: Audience) -> bool {
        self.0 & audience.bit() != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn union(self, other: Audiences) -> Audiences {
        Audiences(self.0 | other.0)
    }
    pub fn is_subset(self, of: Audiences) -> bool {
        self.0 & !of.0 == 0
    }
    /// The audiences' names, for a warning.
    pub fn describe(self) -> String {
        if self == Audiences::every() {
            return "every caller".to_string();
        }
        Audience::ALL
            .into_iter()
            .filter(|a| self.contains(*a))
            .map(Audience::name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl FromIterator<Audience> for Audiences {
    fn from_iter<I: IntoIterator<Item = Audience>>(items: I) -> Audiences {
        Audiences(items.into_iter().fold(0, |bits, a| bits | a.bit()))
    }
}

/// What an allow without a verified identity means to a caller. Every dialect declares
/// it, so that none can forget: an `identify` route's allow for nobody is a deny to a
/// caller that cannot tell anonymous from authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Anonymous {
    /// The answer says whether there is an identity (the proxies'
    /// `x-authgear-session-valid`): an `identify` route allows either way, and the
    /// application decides.
    #[default]
    Expressible,
    /// The caller authenticated its client itself (a broker's authorization check): an
    /// allow without a credential is fine, and the topic rules decide; a credential that
    /// fails is a deny.
    ClientKnown,
    /// Any allow admits the client as authenticated (a streamer plays the stream, Icecast
    /// admits the listener, a broker logs the client in): no verified identity, no allow,
    /// except on a `public` route.
    Never,
}

/// What the client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Publish,
    Subscribe,
    /// Both at once (the broker contract's `acc = 3`): allowed only if each is.
    ReadWrite,
}

/// One publish or subscribe, as the broker describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttAccess {
    pub username: String,
    /// `None` when the broker sent none (or sent it empty): a missing fact, which no
    /// allow rule may rest on.
    pub clientid: Option<String>,
    pub action: Action,
    /// The topic of a publish, the filter of a subscribe.
    pub topic: String,
    pub qos: Option<u8>,
    pub retain: Option<bool>,
}

impl<'a> ForwardedRequest<'a> {
    /// The request the read stage made of what a trusted caller sent.
    pub fn new(
        target: Target,
        client_ip: IpAddr,
        headers: Vec<Header<'a>>,
        caller: Caller,
    ) -> ForwardedRequest<'a> {
        ForwardedRequest {
            target,
            client_ip,
            headers,
            caller,
        }
    }

    /// The original request's canonical target and its other readings.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The client's address.
    pub fn client_ip(&self) -> IpAddr {
        self.client_ip
    }

    /// The headers as received (plus the facts a caller sends as credentials).
    pub fn headers(&self) -> &[Header<'a>] {
        &self.headers
    }

    /// Who asked, and what a caller that is not a proxy says of its client.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The client's User-Agent: as its caller states it when the caller is a server
    /// asking about its own client (Cesbo, Icecast), else the forwarded header. Empty
    /// when unknown.
    pub fn client_user_agent(&self) -> &str {
        match self.caller.user_agent.as_deref() {
            // Trust decision: a server's own User-Agent names the server, never the
            // viewer; only the fact it states about its client is the client's.
            Some(agent) => agent,
            // a proxy forwards its client's headers; any other caller's are its own
            None if self.caller.audience != Audience::Web => "",
            None => self.header("user-agent").unwrap_or_default(),
        }
    }

    /// The caller's facts, for tests that vary one of them.
    #[cfg(test)]
    pub fn caller_mut(&mut self) -> &mut Caller {
        &mut self.caller
    }

    /// The client's address, for tests that vary it.
    #[cfg(test)]
    pub fn set_client_ip(&mut self, client_ip: IpAddr) {
        self.client_ip = client_ip;
    }
}

impl ForwardedRequest<'_> {
    /// All values of a header (name compared case-insensitively), raw bytes.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| &*h.value)
    }

    /// The value of a header as UTF-8 text. Trust decision: copies with different values
    /// (two `Authorization` headers) are read as no value at all, since verdict and the
    /// application could each take another copy; a credential read that way is absent,
    /// never the first copy of two.
    pub fn header(&self, name: &str) -> Option<&str> {
        one_value(
            self.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| &*h.value),
        )
        .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }

    /// A cookie's value by name, from every `Cookie` header. Trust decision: a cookie
    /// sent twice with different values is read as absent (servers disagree on which copy
    /// wins), like a header.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        one_value(
            self.header_values("cookie")
                .filter_map(|v| std::str::from_utf8(v).ok())
                .flat_map(|line| line.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .filter(|(key, _)| *key == name)
                .map(|(_, value)| value.trim_matches('"'))
                .filter(|value| !value.is_empty()),
        )
    }

    /// A query parameter of the original URI, percent-decoded once (`+` stays `+`).
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_param(self.target.query.as_deref()?, name)
    }
}

/// A query parameter from a raw query string, percent-decoded once: its non-empty value.
/// `+` is kept literal: tokens and EMQX topics use it as a character, never as a space.
/// Trust decision: a parameter with two different non-empty values (`?token=a&token=b`)
/// is read as absent, since applications differ on which copy counts.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    one_value(query_params(query, name).filter(|value| !value.is_empty()))
}

/// The one value of several copies: `None` when there are none, or copies that differ.
fn one_value<T: PartialEq>(mut copies: impl Iterator<Item = T>) -> Option<T> {
    let first = copies.next()?;
    copies.all(|other| other == first).then_some(first)
}

/// Every value of a query parameter, in order, names and values percent-decoded once
/// (`%5Fmethod` is `_method`). Pairs that do not decode as UTF-8 are skipped.
pub fn query_params<'a>(query: &'a str, name: &'a str) -> impl Iterator<Item = String> + 'a {
    query.split('&').filter_map(move |pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key.as_bytes()).decode_utf8().ok()?;
        if key != name {
            return None;
        }
        percent_decode(value.as_bytes())
            .decode_utf8()
            .ok()
            .map(|v| v.into_owned())
    })
}

/// Splits a raw request URI into path and query (fragment dropped) and canonicalises the
/// path. Bytes are taken raw: nginx's `$request_uri` may hold raw UTF-8.
pub fn split_uri(raw: &[u8]) -> Result<(String, Option<String>, String), TargetError> {
    let without_fragment = match raw.iter().position(|&b| b == b'#') {
        Some(i) => &raw[..i],
        None => raw,
    };
    // Two parsers disagree on what `%zz` or a lone `%` means (kept, dropped, an error):
    // refuse the target rather than pick one reading of it.
    check_escapes(without_fragment)?;
    let (path, query) = match without_fragment.iter().position(|&b| b == b'?') {
        Some(i) => (&without_fragment[..i], Some(&without_fragment[i + 1..])),
        None => (without_fragment, None),
    };
    let canonical = canonical_path(path)?;
    let query = match query {
        Some(q) => Some(String::from_utf8(q.to_vec()).map_err(|_| TargetError::BadPathBytes)?),
        None => None,
    };
    let raw_uri =
        String::from_utf8(without_fragment.to_vec()).map_err(|_| TargetError::BadPathBytes)?;
    Ok((canonical, query, raw_uri))
}

/// Every `%` must start a two-hex-digit escape.
pub fn check_escapes(raw: &[u8]) -> Result<(), TargetError> {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let valid = raw.len() > i + 2
                && raw[i + 1].is_ascii_hexdigit()
                && raw[i + 2].is_ascii_hexdigit();
            if !valid {
                return Err(TargetError::BadEscape);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Canonical form of a raw path: percent-decoded exactly once, then dot-segments removed
/// and repeated slashes merged. `%2e%2e` therefore climbs like `..` does in nginx's own
/// routing, and `%252e` stays the literal `%2e` (decoded once, not twice).
pub fn canonical_path(raw: &[u8]) -> Result<String, TargetError> {
    if raw.first() != Some(&b'/') {
        return Err(TargetError::NotOriginForm);
    }
    check_escapes(raw)?;
    Ok(resolve_dots(&decode_path(raw)?))
}

/// A raw path percent-decoded exactly once, as UTF-8 without control bytes.
pub fn decode_path(raw: &[u8]) -> Result<String, TargetError> {
    let decoded: Vec<u8> = percent_decode(raw).collect();
    // A decoded control byte (NUL, CR, LF, DEL…) has no business in a path and is a
    // classic way to make two parsers disagree: refuse rather than guess.
    if decoded.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(TargetError::BadPathBytes);
    }
    String::from_utf8(decoded).map_err(|_| TargetError::BadPathBytes)
}

/// RFC 3986 dot-segment removal on a decoded path, with repeated slashes merged.
pub fn resolve_dots(text: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = text.split('/').skip(1).peekable();
    let mut trailing_slash = false;
    while let Some(segment) = parts.next() {
        let last = parts.peek().is_none();
        match segment {
            // merged slash, or `.`: an empty or dot last segment means a trailing '/'
            "" | "." => trailing_slash |= last,
            ".." => {
                segments.pop();
                trailing_slash |= last;
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(text.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

/// Canonical scheme: lower-case; `ws`/`wss` fold into `http`/`https`.
pub fn canonical_scheme(raw: &str) -> Result<String, TargetError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "http" | "ws" => Ok("http".into()),
        "https" | "wss" => Ok("https".into()),
        _ => Err(TargetError::BadScheme),
    }
}

/// Canonical host: lower-cased, trailing dot removed, the scheme's default port dropped.
/// Only DNS names, IPv4 and bracketed IPv6 literals with an optional port are accepted.
pub fn canonical_host(raw: &[u8], scheme: &str) -> Result<String, TargetError> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| TargetError::BadHost)?
        .trim();
    let lower = text.to_ascii_lowercase();
    let (name, port) = if let Some(rest) = lower.strip_prefix('[') {
        let end = rest.find(']').ok_or(TargetError::BadHost)?;
        let literal = &rest[..end];
        literal
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| TargetError::BadHost)?;
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(TargetError::BadHost)?),
        };
        (format!("[{literal}]"), port)
    } else {
        let (name, port) = match lower.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (lower.as_str(), None),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(TargetError::BadHost);
        }
        (name.to_string(), port)
    };
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().map_err(|_| TargetError::BadHost)?),
    };
    Ok(match port {
        Some(p) if p != default_port(scheme) => format!("{name}:{p}"),
        _ => name,
    })
}

/// The default port of a canonical scheme.
pub fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// A canonical host split into its name and explicit port (`[::1]:8443` → `[::1]`, 8443).
pub fn split_host_port(host: &str) -> (&str, Option<u16>) {
    let split_at = if host.starts_with('[') {
        host.find(']').map(|end| end + 1)
    } else {
        host.rfind(':')
    };
    match split_at {
        Some(at) if host[at..].starts_with(':') => match host[at + 1..].parse::<u16>() {
            Ok(port) => (&host[..at], Some(port)),
            Err(_) => (host, None),
        },
        _ => (host, None),
    }
}

/// Canonical method: an HTTP token, upper-cased.
pub fn canonical_method(raw: &[u8]) -> Result<String, TargetError> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| TargetError::BadMethod)?
        .trim();
    let valid = !text.is_empty()
        && text.len() <= 32
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if valid {
        Ok(text.to_ascii_uppercase())
    } else {
        Err(TargetError::BadMethod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> Result<String, TargetError> {
        canonical_path(raw.as_bytes())
    }

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(path("/app/a/../b/./c").unwrap(), "/app/b/c");
        assert_eq!(path("/../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(path("/a/b/..").unwrap(), "/a/");
        assert_eq!(path("/a/.").unwrap(), "/a/");
    }

    #[test]
    fn encoded_dot_segments_climb_like_nginx_routes() {
        assert_eq!(path("/app/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(path("/app/%2E%2E/admin").unwrap(), "/admin");
        assert_eq!(path("/app/.%2e/admin").unwrap(), "/admin");
    }

    #[test]
    fn decoding_happens_exactly_once() {
        // %252e%252e decodes to the literal text %2e%2e, which is not a dot-segment
        assert_eq!(path("/app/%252e%252e/admin").unwrap(), "/app/%2e%2e/admin");
        assert_eq!(path("/a%20b").unwrap(), "/a b");
    }

    #[test]
    fn slashes_are_merged() {
        assert_eq!(path("//app//b").unwrap(), "/app/b");
        assert_eq!(path("/app%2F%2Fb").unwrap(), "/app/b");
        assert_eq!(path("/").unwrap(), "/");
        assert_eq!(path("///").unwrap(), "/");
    }

    #[test]
    fn raw_utf8_is_accepted_and_bad_bytes_refused() {
        assert_eq!(
            canonical_path("/caf\u{e9}".as_bytes()).unwrap(),
            "/caf\u{e9}"
        );
        assert_eq!(path("/caf%C3%A9").unwrap(), "/caf\u{e9}");
        assert_eq!(path("/bad%FF"), Err(TargetError::BadPathBytes));
        assert_eq!(path("/nul%00x"), Err(TargetError::BadPathBytes));
        assert_eq!(
            path("/crlf%0d%0aSet-Cookie"),
            Err(TargetError::BadPathBytes)
        );
        assert_eq!(path("relative"), Err(TargetError::NotOriginForm));
        assert_eq!(path("http://evil/"), Err(TargetError::NotOriginForm));
        assert_eq!(path(""), Err(TargetError::NotOriginForm));
    }

    #[test]
    fn uri_splits_into_path_and_raw_query() {
        let (p, q, raw) = split_uri(b"/app/../page?x=1&y=%2F#frag").unwrap();
        assert_eq!(p, "/page");
        assert_eq!(q.as_deref(), Some("x=1&y=%2F"));
        assert_eq!(raw, "/app/../page?x=1&y=%2F");
        let (p, q, _) = split_uri(b"/a?").unwrap();
        assert_eq!((p.as_str(), q.as_deref()), ("/a", Some("")));
    }

    #[test]
    fn hosts_are_lower_cased_and_default_ports_dropped() {
        assert_eq!(
            canonical_host(b"App.Example.COM", "http").unwrap(),
            "app.example.com"
        );
        assert_eq!(
            canonical_host(b"app.example.com:80", "http").unwrap(),
            "app.example.com"
        );
        assert_eq!(
            canonical_host(b"app.example.com:443", "https").unwrap(),
            "app.example.com"
        );
        assert_eq!(
            canonical_host(b"app.example.com:443", "http").unwrap(),
            "app.example.com:443"
        );
        assert_eq!(
            canonical_host(b"app.example.com:8443", "https").unwrap(),
            "app.example.com:8443"
        );
        assert_eq!(
            canonical_host(b"app.example.com.", "https").unwrap(),
            "app.example.com"
        );
        assert_eq!(canonical_host(b"[::1]:8080", "http").unwrap(), "[::1]:8080");
        assert_eq!(canonical_host(b"[::1]:80", "http").unwrap(), "[::1]");
        for bad in [
            &b"evil.com/x"[..],
            b"a b",
            b"",
            b"host:99999",
            b"host:x",
            b"[zz]",
            b"a..b",
            b"h\xc3\xa9",
        ] {
            assert_eq!(
                canonical_host(bad, "http"),
                Err(TargetError::BadHost),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn schemes_and_methods() {
        assert_eq!(canonical_scheme("HTTPS").unwrap(), "https");
        assert_eq!(canonical_scheme("wss").unwrap(), "https");
        assert_eq!(canonical_scheme("ftp"), Err(TargetError::BadScheme));
        assert_eq!(canonical_method(b"post").unwrap(), "POST");
        assert_eq!(canonical_method(b"GET /x"), Err(TargetError::BadMethod));
        assert_eq!(canonical_method(b""), Err(TargetError::BadMethod));
    }

    fn request(headers: &[(&str, &str)], query: Option<&str>) -> ForwardedRequest<'static> {
        ForwardedRequest {
            caller: Caller::default(),
            target: Target {
                query: query.map(str::to_owned),
                ..Target::default()
            },
            client_ip: IpAddr::from([127, 0, 0, 1]),
            headers: headers
                .iter()
                .map(|(n, v)| Header::owned(n.to_ascii_lowercase(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn credentials_are_found_where_they_are() {
        let req = request(
            &[
                ("Authorization", "bearer abc.def"),
                ("Cookie", "a=1; session=s3cr3t; b=2"),
            ],
            Some("access_token=q%2Bt&x=1"),
        );
        assert_eq!(req.bearer_token(), Some("abc.def"));
        assert_eq!(req.cookie("session"), Some("s3cr3t"));
        assert_eq!(req.cookie("missing"), None);
        assert_eq!(req.query_param("access_token").as_deref(), Some("q+t"));
        let basic = request(&[("Authorization", "Basic Zm9vOmJhcg==")], None);
        assert_eq!(basic.bearer_token(), None);
        let empty = request(&[("Authorization", "Bearer ")], None);
        assert_eq!(empty.bearer_token(), None);
    }
}
