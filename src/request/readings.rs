//! Readings: the other ways an application could read the method and path of one target.
//! A proxy passes the raw target on, and applications read raw targets differently; a
//! decision holds only if it holds under every reading.
//!
//! Takes: a target whose canonical path (RFC 3986: decoded once, dot segments resolved,
//! slashes merged) is known, the request's headers (method overrides, and the
//! `Content-Type` of a body that may hold `_method`), and what verdict saw of a form body
//! ([`FormBody`]). Returns: every [`Reading`] that differs from the canonical one: each
//! method an application could dispatch the request to (an override header or one of its
//! aliases, `_method` in the query or a form body under every name PHP folds to it,
//! `HEAD` run as `GET`, or any method at all where a form body went unseen) crossed with
//! each path it could read, tagged with the transformations it applies, so an operator
//! can narrow the set. Must never: allocate for an already canonical target with no
//! override (the common case costs one byte scan), let an invalid override method pass as
//! "no override", or read a form body it did not see as one without `_method`.

use std::borrow::Cow;

use percent_encoding::percent_decode;

use super::{Header, Target, TargetError, canonical_method, cgi_folded, decode_path, resolve_dots};

/// The transformations an application may apply, one bit each.
pub mod kind {
    /// Percent-decoded, dot segments left alone (Express, WSGI).
    pub const UNRESOLVED_DOTS: u8 = 1;
    /// `;` path parameters stripped from each segment (Tomcat, Spring, Jetty).
    pub const PATH_PARAMETERS: u8 = 1 << 1;
    /// `\` read as `/` (IIS, ASP.NET).
    pub const BACKSLASH: u8 = 1 << 2;
    /// Trailing dots and spaces stripped from each segment (IIS, ASP.NET).
    pub const TRAILING_DOTS: u8 = 1 << 3;
    /// Paths compared without regard to case (Express by default, ASP.NET, IIS).
    pub const CASE: u8 = 1 << 4;
    /// The method taken from an override header (or an alias of one: PHP and CGI fold
    /// `X.HTTP.Method.Override` into it) or `_method` in the query, under every name PHP
    /// folds to it (Rails, Laravel, Symfony, Spring, Express `method-override`, …).
    pub const METHOD_OVERRIDE: u8 = 1 << 5;
    /// A `HEAD` run by the `GET` handler (Flask, Django, Express, PHP, Go, Tomcat).
    pub const HEAD_AS_GET: u8 = 1 << 6;
    /// The method taken from `_method` in a form body (Express `method-override`,
    /// Symfony, Spring's `HiddenHttpMethodFilter`, gorilla): read from the body where the
    /// proxy sends it, else any method at all, since verdict cannot see what it says.
    pub const FORM_METHOD_OVERRIDE: u8 = 1 << 7;
    /// Every transformation: the default.
    pub const ALL: u8 = u8::MAX;

    /// Each transformation's name in the configuration.
    pub const NAMES: [(&str, u8); 8] = [
        ("unresolved-dots", UNRESOLVED_DOTS),
        ("path-parameters", PATH_PARAMETERS),
        ("backslash", BACKSLASH),
        ("trailing-dots", TRAILING_DOTS),
        ("case", CASE),
        ("method-override", METHOD_OVERRIDE),
        ("head-as-get", HEAD_AS_GET),
        ("form-method-override", FORM_METHOD_OVERRIDE),
    ];
}

/// Headers an application may take the method from instead of the request line
/// (lower-case, dash form: a name that folds to one of these counts as it).
pub const METHOD_OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The query (or form) parameter frameworks take an overriding method from.
pub const METHOD_OVERRIDE_PARAM: &str = "_method";

/// What verdict saw of a body that may hold `_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormBody<'a> {
    /// No form body (`Content-Type` is not a form): nothing to read.
    Absent,
    /// A form body the proxy did not send (or sent in part, or as `multipart/form-data`,
    /// which verdict does not parse): it may name any method.
    Unseen,
    /// The whole `application/x-www-form-urlencoded` body, as the proxy sent it.
    Seen(&'a [u8]),
}

impl FormBody<'_> {
    /// Whether the request's `Content-Type` (any copy) says an application may parse its
    /// body as a form: `application/x-www-form-urlencoded` or `multipart/form-data`.
    pub fn declared(headers: &[Header<'_>]) -> Option<FormKind> {
        let mut found = None;
        for header in headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("content-type"))
        {
            let media = header
                .value
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            if media.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
                found = found.or(Some(FormKind::UrlEncoded));
            } else if media.eq_ignore_ascii_case(b"multipart/form-data") {
                // the stronger claim: a part verdict cannot read
                found = Some(FormKind::Multipart);
            }
        }
        found
    }
}

/// The kind of form body a request declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    UrlEncoded,
    Multipart,
}

/// One reading of the target that differs from the canonical one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Which transformations produce it ([`kind`] bits).
    pub kinds: u8,
    /// `None`: any method (a form body verdict did not see may name any).
    pub method: Option<String>,
    pub path: Option<String>,
    /// The application compares this path with its routes without regard to case.
    pub fold_case: bool,
}

impl Reading {
    /// The transformations' names, for the log line.
    pub fn describe(&self) -> String {
        kind::NAMES
            .iter()
            .filter(|(_, bit)| self.kinds & bit != 0)
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// The transformation bits of configured names; an unknown name is an error naming the
/// known ones.
pub fn kinds_from_names(names: &[String]) -> Result<u8, String> {
    let mut bits = 0;
    for name in names {
        let bit = kind::NAMES
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, bit)| *bit)
            .ok_or_else(|| {
                let known: Vec<&str> = kind::NAMES.iter().map(|(n, _)| *n).collect();
                format!("{name:?} is not one of {}", known.join(", "))
            })?;
        bits |= bit;
    }
    Ok(bits)
}

/// Every reading of `target` that differs from its canonical method and path: each
/// method an application could dispatch it to, crossed with each path it could read.
pub fn readings(
    target: &Target,
    headers: &[Header<'_>],
    form: FormBody<'_>,
) -> Result<Vec<Reading>, TargetError> {
    let other_methods = other_methods(target, headers, form)?;
    let variants = match (target.path.as_deref(), target.raw_uri.as_deref()) {
        (Some(canonical), Some(raw_uri)) => {
            let raw = raw_uri.split('?').next().unwrap_or_default().as_bytes();
            path_variants(raw, canonical)?
        }
        _ => Vec::new(),
    };
    // the common case: one method, one path, nothing allocated
    if other_methods.is_empty() && variants.is_empty() {
        return Ok(Vec::new());
    }
    let mut methods = vec![(0, target.method.clone())];
    methods.extend(other_methods);
    let mut paths: Vec<(u8, Option<String>, bool)> = vec![(0, target.path.clone(), false)];
    for (kinds, path) in variants {
        let folded = path.to_ascii_lowercase();
        if folded != path {
            paths.push((kinds | kind::CASE, Some(folded), true));
        }
        paths.push((kinds, Some(path), false));
    }
    let mut out: Vec<Reading> = Vec::new();
    for (method_kinds, method) in &methods {
        for (path_kinds, path, fold_case) in &paths {
            let reading = Reading {
                kinds: method_kinds | path_kinds,
                method: method.clone(),
                path: path.clone(),
                fold_case: *fold_case,
            };
            let canonical = reading.method == target.method
                && reading.path == target.path
                && !reading.fold_case;
            let seen = out.iter().any(|r| {
                r.method == reading.method
                    && r.path == reading.path
                    && r.fold_case == reading.fold_case
            });
            if !canonical && !seen {
                out.push(reading);
            }
        }
    }
    Ok(out)
}

/// Whether a raw path could read differently at all: the one scan the common case costs.
fn could_differ(raw: &[u8]) -> bool {
    let mut previous = 0u8;
    for &b in raw {
        let special = matches!(b, b'%' | b';' | b'\\' | b' ')
            || b.is_ascii_uppercase()
            || (b == b'/' && matches!(previous, b'.' | b'/'));
        if special {
            return true;
        }
        previous = b;
    }
    previous == b'.'
}

/// The path as each transformation (and the IIS pair of them) reads it, the canonical
/// path included so that its case can be folded too.
fn path_variants(raw: &[u8], canonical: &str) -> Result<Vec<(u8, String)>, TargetError> {
    if !could_differ(raw) {
        return Ok(Vec::new());
    }
    let decoded = decode_path(raw)?;
    let backslashed = decoded.replace('\\', "/");
    let without_parameters: Vec<u8> = raw
        .split(|&b| b == b'/')
        .map(|segment| match segment.iter().position(|&b| b == b';') {
            Some(at) => &segment[..at],
            None => segment,
        })
        .collect::<Vec<_>>()
        .join(&b'/');
    Ok(vec![
        (0, canonical.to_string()),
        (kind::UNRESOLVED_DOTS, decoded.clone()),
        (
            kind::PATH_PARAMETERS,
            resolve_dots(&decode_path(&without_parameters)?),
        ),
        (kind::BACKSLASH, resolve_dots(&backslashed)),
        (
            kind::TRAILING_DOTS,
            resolve_dots(&strip_trailing_dots(&decoded)),
        ),
        (
            kind::BACKSLASH | kind::TRAILING_DOTS,
            resolve_dots(&strip_trailing_dots(&backslashed)),
        ),
    ])
}

/// Each segment without its trailing dots and spaces (`admin.` and `admin ` are `admin`
/// to IIS); `.` and `..` stay what they are.
fn strip_trailing_dots(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment == "." || segment == ".." {
                segment
            } else {
                segment.trim_end_matches(['.', ' '])
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every other method an application could dispatch the request to, each with the
/// transformations that produce it (nothing allocated when there is none). An override
/// that is not a method token is refused: an application may still act on it.
fn other_methods(
    target: &Target,
    headers: &[Header<'_>],
    form: FormBody<'_>,
) -> Result<Vec<(u8, Option<String>)>, TargetError> {
    let mut methods: Vec<(u8, Option<String>)> = Vec::new();
    for header in headers {
        // `X.HTTP.Method.Override` reaches a PHP or CGI application as the override
        // itself: an alias counts as the header it folds to.
        let folded = cgi_folded(&header.name);
        if METHOD_OVERRIDE_HEADERS.contains(&&*folded) {
            let method = canonical_method(&header.value)?;
            methods.push((kind::METHOD_OVERRIDE, Some(method)));
        }
    }
    // Every `_method`, not one: frameworks disagree on which copy wins (Rack and PHP take
    // the last), and on how a name is spelled (PHP folds `.`, spaces and a cut at NUL).
    if let Some(query) = target.query.as_deref() {
        for value in override_params(query.as_bytes()) {
            methods.push((kind::METHOD_OVERRIDE, Some(canonical_method(&value)?)));
        }
    }
    match form {
        FormBody::Absent => {}
        FormBody::Seen(body) => {
            for value in override_params(body) {
                methods.push((kind::FORM_METHOD_OVERRIDE, Some(canonical_method(&value)?)));
            }
        }
        // Trust decision: a body verdict did not see may name any method; the request
        // must be allowed under each (a route's method rule is then a fact not sent).
        FormBody::Unseen => methods.push((kind::FORM_METHOD_OVERRIDE, None)),
    }
    // Every application here runs the GET handler for a HEAD, whatever named the HEAD
    // (the request line included).
    let heads: Vec<u8> = (target.method.as_deref() == Some("HEAD"))
        .then_some(0)
        .into_iter()
        .chain(
            methods
                .iter()
                .filter(|(_, m)| m.as_deref() == Some("HEAD"))
                .map(|(kinds, _)| *kinds),
        )
        .collect();
    for kinds in heads {
        methods.push((kinds | kind::HEAD_AS_GET, Some("GET".to_string())));
    }
    Ok(methods)
}

/// The values of every parameter of a query or form that an application reads as
/// `_method`: names decoded as a form decodes them (`+` a space, escapes once) and folded
/// as PHP folds them (leading spaces dropped, `.` and spaces read as `_`, the name cut at
/// NUL), values decoded likewise. Raw bytes: a value need not be UTF-8 to be refused.
fn override_params(text: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    // nothing folds into `_method` without "method" in it: the common case costs one
    // scan for it
    let possible =
        text.windows(6).any(|w| w.eq_ignore_ascii_case(b"method")) || text.contains(&b'%');
    let text = if possible { text } else { &text[..0] };
    text.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            (php_name(&form_decode(name)) == METHOD_OVERRIDE_PARAM.as_bytes())
                .then(|| form_decode(value).into_owned())
        })
        .filter(|value| !value.is_empty())
}

/// A form component decoded: `+` is a space, escapes decoded once.
fn form_decode(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.iter().any(|&b| matches!(b, b'+' | b'%')) {
        return Cow::Borrowed(raw);
    }
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    Cow::Owned(percent_decode(&spaced).collect())
}

/// A parameter name as PHP registers it: cut at NUL, leading spaces dropped, `.` and
/// spaces read as `_` (an array name `a[b]` is not a plain name and stays as it is).
fn php_name(name: &[u8]) -> Cow<'_, [u8]> {
    let name = match name.iter().position(|&b| b == 0) {
        Some(at) => &name[..at],
        None => name,
    };
    let start = name.iter().position(|&b| b != b' ').unwrap_or(name.len());
    let name = &name[start..];
    if !name.iter().any(|&b| matches!(b, b'.' | b' ')) {
        return Cow::Borrowed(name);
    }
    Cow::Owned(
        name.iter()
            .map(|&b| if matches!(b, b'.' | b' ') { b'_' } else { b })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::split_uri;

    fn target(method: &str, uri: &str) -> Target {
        let (path, query, raw_uri) = split_uri(uri.as_bytes()).expect("uri");
        Target {
            method: Some(method.into()),
            scheme: "https".into(),
            host: Some("app.example.com".into()),
            path: Some(path),
            query,
            raw_uri: Some(raw_uri),
            readings: Vec::new(),
        }
    }

    fn paths(uri: &str) -> Vec<(String, String)> {
        readings(&target("GET", uri), &[], FormBody::Absent)
            .expect("readings")
            .into_iter()
            .map(|r| (r.describe(), r.path.unwrap_or_default()))
            .collect()
    }

    fn has(uri: &str, kind: &str, path: &str) -> bool {
        paths(uri).iter().any(|(k, p)| k == kind && p == path)
    }

    #[test]
    fn canonical_targets_have_no_other_reading() {
        for uri in ["/", "/public/app.js", "/api/items?id=7", "/a-b_c~d/e.f/"] {
            assert!(paths(uri).is_empty(), "{uri}: {:?}", paths(uri));
        }
    }

    #[test]
    fn each_application_family_gets_its_reading() {
        assert!(has(
            "/admin/../public",
            "unresolved-dots",
            "/admin/../public"
        ));
        assert!(has(
            "/admin/%2e%2e/public",
            "unresolved-dots",
            "/admin/../public"
        ));
        assert!(has(
            "/admin%2f..%2fpublic",
            "unresolved-dots",
            "/admin/../public"
        ));
        assert!(has("/public/..;/admin", "path-parameters", "/admin"));
        assert!(has("/admin;x", "path-parameters", "/admin"));
        assert!(has("/admin\\panel", "backslash", "/admin/panel"));
        assert!(has("/admin./", "trailing-dots", "/admin/"));
        assert!(has("/admin%20/", "trailing-dots", "/admin/"));
        assert!(has("/ADMIN", "case", "/admin"));
        assert!(has("/Public\\..\\ADMIN", "backslash+case", "/admin"));
    }

    #[test]
    fn method_overrides_are_readings_and_must_be_methods() {
        let headers = [Header::owned("x-http-method-override", b"delete".to_vec())];
        let found =
            readings(&target("POST", "/api/items"), &headers, FormBody::Absent).expect("readings");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].method.as_deref(), Some("DELETE"));
        assert_eq!(found[0].kinds, kind::METHOD_OVERRIDE);
        let found = readings(
            &target("POST", "/api/items?_method=PUT"),
            &[],
            FormBody::Absent,
        )
        .expect("readings");
        assert_eq!(found[0].method.as_deref(), Some("PUT"));
        let bad = [Header::owned("x-http-method", b"DE LETE".to_vec())];
        assert_eq!(
            readings(&target("POST", "/api"), &bad, FormBody::Absent),
            Err(TargetError::BadMethod)
        );
    }

    fn methods_of(
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        form: FormBody<'_>,
    ) -> Vec<(String, Option<String>)> {
        let headers: Vec<Header<'static>> = headers
            .iter()
            .map(|(n, v)| Header::owned(n.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect();
        readings(&target(method, uri), &headers, form)
            .expect("readings")
            .into_iter()
            .map(|r| (r.describe(), r.method))
            .collect()
    }

    fn has_method(found: &[(String, Option<String>)], kinds: &str, method: Option<&str>) -> bool {
        found
            .iter()
            .any(|(k, m)| k == kinds && m.as_deref() == method)
    }

    #[test]
    fn a_head_is_also_read_as_a_get() {
        let found = methods_of("HEAD", "/app/export", &[], FormBody::Absent);
        assert_eq!(
            found,
            [("head-as-get".to_string(), Some("GET".to_string()))]
        );
        let found = methods_of("POST", "/x?_method=HEAD", &[], FormBody::Absent);
        assert!(has_method(&found, "method-override", Some("HEAD")));
        assert!(has_method(
            &found,
            "method-override+head-as-get",
            Some("GET")
        ));
        assert!(methods_of("GET", "/x", &[], FormBody::Absent).is_empty());
    }

    #[test]
    fn every_name_php_folds_to_the_override_parameter_counts() {
        for query in [
            "_method=DELETE",
            ".method=DELETE",
            "%20_method=DELETE",
            "+_method=DELETE",
            "++.method=DELETE",
            "_method%00=DELETE",
            "_method%00junk=DELETE",
            "%5Fmethod=DELETE",
            "a=1&_method=delete&b=2",
        ] {
            let found = methods_of(
                "POST",
                &format!("/api/items?{query}"),
                &[],
                FormBody::Absent,
            );
            assert!(
                has_method(&found, "method-override", Some("DELETE")),
                "{query}: {found:?}"
            );
        }
        for query in [
            "_method_=DELETE",
            "x_method=DELETE",
            "_methods=DELETE",
            "_method[]=DELETE",
        ] {
            let found = methods_of(
                "POST",
                &format!("/api/items?{query}"),
                &[],
                FormBody::Absent,
            );
            assert!(found.is_empty(), "{query}: {found:?}");
        }
    }

    #[test]
    fn an_alias_of_an_override_header_is_the_override() {
        for name in [
            "X.HTTP.Method.Override",
            "X_HTTP_Method_Override",
            "x~http~method",
            "X.Method.Override",
        ] {
            let found = methods_of("POST", "/api", &[(name, "DELETE")], FormBody::Absent);
            assert!(
                has_method(&found, "method-override", Some("DELETE")),
                "{name}"
            );
        }
    }

    #[test]
    fn a_form_body_is_read_when_seen_and_any_method_when_not() {
        let found = methods_of("POST", "/api", &[], FormBody::Seen(b"a=1&_method=PUT"));
        assert_eq!(
            found,
            [("form-method-override".to_string(), Some("PUT".to_string()))]
        );
        let found = methods_of("POST", "/api", &[], FormBody::Seen(b"a=1&b=2"));
        assert!(found.is_empty());
        let found = methods_of("POST", "/api", &[], FormBody::Unseen);
        assert_eq!(found, [("form-method-override".to_string(), None)]);
        let bad = readings(
            &target("POST", "/api"),
            &[],
            FormBody::Seen(b"_method=DE%20LETE"),
        );
        assert_eq!(bad, Err(TargetError::BadMethod));
    }

    #[test]
    fn methods_cross_paths() {
        let found = readings(
            &target("POST", "/Admin?_method=DELETE"),
            &[],
            FormBody::Absent,
        )
        .expect("readings");
        assert!(found.iter().any(|r| r.method.as_deref() == Some("DELETE")
            && r.path.as_deref() == Some("/admin")
            && r.describe() == "case+method-override"));
    }

    #[test]
    fn form_bodies_are_recognised_by_their_media_type() {
        let h = |v: &str| vec![Header::owned("content-type", v.as_bytes().to_vec())];
        assert_eq!(
            FormBody::declared(&h("application/x-www-form-urlencoded")),
            Some(FormKind::UrlEncoded)
        );
        assert_eq!(
            FormBody::declared(&h("Application/X-WWW-Form-Urlencoded; charset=UTF-8")),
            Some(FormKind::UrlEncoded)
        );
        assert_eq!(
            FormBody::declared(&h("multipart/form-data; boundary=x")),
            Some(FormKind::Multipart)
        );
        assert_eq!(FormBody::declared(&h("application/json")), None);
        assert_eq!(FormBody::declared(&[]), None);
    }

    #[test]
    fn names_parse_into_kinds() {
        assert_eq!(
            kinds_from_names(&["case".into(), "backslash".into()]),
            Ok(kind::CASE | kind::BACKSLASH)
        );
        assert!(
            kinds_from_names(&["dots".into()])
                .unwrap_err()
                .contains("unresolved-dots")
        );
    }
}
