//! Property tests of the parsers verdict writes by hand because they decide trust: the
//! target parser and its readings, MQTT filter matching, the template renderer, and the
//! cookie, query and field readers. `cargo test` runs each with proptest's default case
//! count; `scripts/properties [seconds]` runs them with many more cases for a bounded
//! time. A case they find becomes a named test in `regression.rs`.

use std::net::IpAddr;

use proptest::prelude::*;
use verdict::dialect::{build_target, fields_as_query};
use verdict::fields;
use verdict::policy::topics::covers;
use verdict::request::{
    Caller, FormBody, ForwardedRequest, Header, canonical_path, query_param, readings, resolve_dots,
};
use verdict::template::{RenderContext, RequestTemplate};

/// A raw path from the bytes that make parsers disagree: dots, slashes, escapes of
/// them, `;`, backslashes, raw UTF-8.
fn raw_path() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "/", ".", "..", "a", "B", "%2e", "%2E", "%2f", "%2F", "%25", "%5c", "%41", ";", ";x=1",
        "\\", "~", "-", "é", "%C3%A9", "%00", "//", "%", "%z",
    ]);
    prop::collection::vec(pieces, 0..12).prop_map(|p| format!("/{}", p.concat()))
}

/// A path as a client would send the canonical one: `%` itself escaped, nothing else.
fn sent_as(canonical: &str) -> String {
    canonical.replace('%', "%25")
}

/// An MQTT filter or topic from a small alphabet of levels, `+` and `#` where valid.
fn filter(wildcards: bool) -> impl Strategy<Value = String> {
    let level = if wildcards {
        prop::sample::select(vec!["a", "b", "$SYS", "", "+"])
    } else {
        prop::sample::select(vec!["a", "b", "$SYS", ""])
    };
    (
        prop::collection::vec(level, 1..5),
        if wildcards {
            any::<bool>().boxed()
        } else {
            Just(false).boxed()
        },
    )
        .prop_map(|(levels, hash)| {
            let mut text = levels.join("/");
            if hash {
                text.push_str("/#");
            }
            text
        })
}

fn request_with(headers: Vec<Header<'static>>) -> ForwardedRequest<'static> {
    let target = build_target(
        Some(b"GET"),
        Some(b"https"),
        Some(b"app.example.com"),
        Some(b"/play/a001/x?token=t"),
    )
    .expect("target");
    ForwardedRequest::new(
        target,
        IpAddr::from([203, 0, 113, 7]),
        headers,
        Caller::default(),
    )
}

proptest! {
    /// A canonical path read again, as a client would send it, is unchanged: decoding
    /// happens once and dot-segments are gone.
    #[test]
    fn a_canonical_path_read_again_is_unchanged(raw in raw_path()) {
        if let Ok(canonical) = canonical_path(raw.as_bytes()) {
            prop_assert_eq!(resolve_dots(&canonical), canonical.clone());
            prop_assert_eq!(canonical_path(sent_as(&canonical).as_bytes()), Ok(canonical));
        }
    }

    /// A target that is canonical as sent has no other reading: every reading of it
    /// routes like the canonical one, because there is none to route otherwise.
    #[test]
    fn a_canonical_target_has_no_other_reading(raw in raw_path()) {
        if let Ok(canonical) = canonical_path(raw.as_bytes()) {
            // (an upper-case letter has a reading of its own: applications that compare
            // paths without regard to case)
            let plain = canonical
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/-_~".contains(&b));
            if plain {
                let target = build_target(Some(b"GET"), Some(b"https"), Some(b"h"),
                    Some(canonical.as_bytes())).expect("target");
                prop_assert_eq!(readings(&target, &[], FormBody::Absent), Ok(Vec::new()));
            }
        }
    }

    /// Every other reading of a target is another one: a path an application could see
    /// that is not the canonical one (or the same path compared without case), never a
    /// copy of the canonical reading and never a relative path.
    #[test]
    fn every_reading_differs_from_the_canonical_one(raw in raw_path()) {
        if let Ok(target) = build_target(Some(b"GET"), Some(b"https"), Some(b"h"),
            Some(raw.as_bytes()))
            && let Ok(others) = readings(&target, &[], FormBody::Absent)
        {
            for reading in others {
                let path = reading.path.clone().unwrap_or_default();
                prop_assert!(path.starts_with('/'), "{path}");
                prop_assert!(
                    reading.fold_case
                        || Some(&path) != target.path.as_ref()
                        || reading.method.as_deref() != Some("GET"),
                    "{raw}: {reading:?}"
                );
            }
        }
    }

    /// A filter covers itself, and covering is transitive: a rule that covers a
    /// subscription covers every topic that subscription matches.
    #[test]
    fn a_filter_covers_what_it_matches(
        rule in filter(true),
        asked in filter(true),
        topic in filter(false),
    ) {
        prop_assert!(covers(&rule, &rule), "{rule}");
        if covers(&rule, &asked) && covers(&asked, &topic) {
            prop_assert!(covers(&rule, &topic), "{rule} covers {asked} covers {topic}");
        }
        // a `$` topic is never reached through a leading wildcard
        if topic.starts_with('$') && (rule.starts_with('+') || rule.starts_with('#')) {
            prop_assert!(!covers(&rule, &topic), "{rule} reaches {topic}");
        }
    }

    /// A placeholder's value is never read as a template again, whatever it holds.
    #[test]
    fn a_value_is_never_rendered_again(
        value in prop::collection::vec(
            prop::sample::select(vec!["${", "}", "$", "{", "header.x", "client_ip", "a", " "]),
            0..10,
        ).prop_map(|p| p.concat()),
    ) {
        let request = request_with(vec![Header::owned("x-v", value.clone().into_bytes())]);
        let template = RequestTemplate::parse("<${header.x-v}>").expect("template");
        let rendered = template.render(&RenderContext {
            request: &request,
            session_id: "${client_ip}",
            claims: None,
        });
        prop_assert_eq!(rendered, format!("<{value}>"));
    }

    /// Fields written as a query read back as they were: names and values survive `+`,
    /// `&`, `=`, `%` and non-ASCII, and a query parameter reads its one value.
    #[test]
    fn fields_written_as_a_query_read_back(
        values in prop::collection::vec(".{0,12}", 1..5),
    ) {
        let written: Vec<(String, String)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("f{i}+&="), v.clone()))
            .collect();
        let query = fields_as_query(&written);
        prop_assert_eq!(fields::form(&query), Ok(written.clone()));
        for (name, value) in &written {
            let read = query_param(&query, name);
            prop_assert_eq!(read.as_deref(), (!value.is_empty()).then_some(value.as_str()));
        }
    }

    /// A cookie reads its one value; sent twice with different values, it reads as absent.
    #[test]
    fn a_cookie_reads_its_one_value(
        values in prop::collection::vec("[A-Za-z0-9._-]{1,8}", 1..4),
        twice in "[A-Za-z0-9._-]{1,8}",
    ) {
        let line: Vec<String> =
            values.iter().enumerate().map(|(i, v)| format!("c{i}={v}")).collect();
        let request = request_with(vec![Header::owned("cookie", line.join("; ").into_bytes())]);
        for (i, value) in values.iter().enumerate() {
            prop_assert_eq!(request.cookie(&format!("c{i}")), Some(value.as_str()));
        }
        let again = request_with(vec![
            Header::owned("cookie", line.join("; ").into_bytes()),
            Header::owned("cookie", format!("c0={twice}").into_bytes()),
        ]);
        let expected = (twice == values[0]).then_some(values[0].as_str());
        prop_assert_eq!(again.cookie("c0"), expected);
    }
}
