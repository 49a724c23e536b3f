//! Readings: the other ways an application could read the method and path of one target.
//! A proxy passes the raw target on, and applications read raw targets differently; a
//! decision holds only if it holds under every reading.
//!
//! Takes: a target whose canonical path (RFC 3986: decoded once, dot segments resolved,
//! slashes merged) is known, and the request's headers (for method overrides). Returns:
//! every [`Reading`] that differs from the canonical one, each tagged with the
//! transformations it applies, so an operator can narrow the set. Must never: allocate
//! for an already canonical target (the common case costs one byte scan), or let an
//! invalid override method pass as "no override".

use super::{
    Header, Target, TargetError, canonical_method, decode_path, query_params, resolve_dots,
};

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
    /// The method taken from an override header or `_method` (Rails, Laravel, …).
    pub const METHOD_OVERRIDE: u8 = 1 << 5;
    /// Every transformation: the default.
    pub const ALL: u8 = (1 << 6) - 1;

    /// Each transformation's name in the configuration.
    pub const NAMES: [(&str, u8); 6] = [
        ("unresolved-dots", UNRESOLVED_DOTS),
        ("path-parameters", PATH_PARAMETERS),
        ("backslash", BACKSLASH),
        ("trailing-dots", TRAILING_DOTS),
        ("case", CASE),
        ("method-override", METHOD_OVERRIDE),
    ];
}

/// Headers an application may take the method from instead of the request line.
pub const METHOD_OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The query (or form) parameter frameworks take an overriding method from.
pub const METHOD_OVERRIDE_PARAM: &str = "_method";

/// One reading of the target that differs from the canonical one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Which transformations produce it ([`kind`] bits).
    pub kinds: u8,
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

/// Every reading of `target` that differs from its canonical method and path.
pub fn readings(target: &Target, headers: &[Header<'_>]) -> Result<Vec<Reading>, TargetError> {
    let mut out: Vec<Reading> = Vec::new();
    let push = |reading: Reading, out: &mut Vec<Reading>| {
        let same_as_canonical =
            reading.method == target.method && reading.path == target.path && !reading.fold_case;
        if !same_as_canonical
            && !out.iter().any(|r| {
                r.method == reading.method
                    && r.path == reading.path
                    && r.fold_case == reading.fold_case
            })
        {
            out.push(reading);
        }
    };
    if let (Some(canonical), Some(raw_uri)) = (target.path.as_deref(), target.raw_uri.as_deref()) {
        let raw = raw_uri.split('?').next().unwrap_or_default().as_bytes();
        for (kinds, path) in path_variants(raw, canonical)? {
            let folded = path.to_ascii_lowercase();
            let has_upper = folded != path;
            push(
                Reading {
                    kinds,
                    method: target.method.clone(),
                    path: Some(path),
                    fold_case: false,
                },
                &mut out,
            );
            if has_upper {
                push(
                    Reading {
                        kinds: kinds | kind::CASE,
                        method: target.method.clone(),
                        path: Some(folded),
                        fold_case: true,
                    },
                    &mut out,
                );
            }
        }
    }
    for method in override_methods(target, headers)? {
        push(
            Reading {
                kinds: kind::METHOD_OVERRIDE,
                method: Some(method),
                path: target.path.clone(),
                fold_case: false,
            },
            &mut out,
        );
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

/// Methods an override header or `_method` parameter names. An override that is not a
/// method token is refused: an application may still act on it.
fn override_methods(target: &Target, headers: &[Header<'_>]) -> Result<Vec<String>, TargetError> {
    let mut methods = Vec::new();
    for header in headers {
        if METHOD_OVERRIDE_HEADERS.contains(&&*header.name) {
            methods.push(canonical_method(&header.value)?);
        }
    }
    // Every `_method`, not one: frameworks disagree on which copy wins (Rack and PHP take
    // the last). Its name may be percent-encoded, so only a query without `%` can be
    // ruled out by a plain search.
    if let Some(query) = target.query.as_deref()
        && (query.contains('%') || query.contains(METHOD_OVERRIDE_PARAM))
    {
        for value in query_params(query, METHOD_OVERRIDE_PARAM).filter(|v| !v.is_empty()) {
            methods.push(canonical_method(value.as_bytes())?);
        }
    }
    Ok(methods)
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
        readings(&target("GET", uri), &[])
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
        let found = readings(&target("POST", "/api/items"), &headers).expect("readings");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].method.as_deref(), Some("DELETE"));
        assert_eq!(found[0].kinds, kind::METHOD_OVERRIDE);
        let found = readings(&target("POST", "/api/items?_method=PUT"), &[]).expect("readings");
        assert_eq!(found[0].method.as_deref(), Some("PUT"));
        let bad = [Header::owned("x-http-method", b"DE LETE".to_vec())];
        assert_eq!(
            readings(&target("POST", "/api"), &bad),
            Err(TargetError::BadMethod)
        );
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
