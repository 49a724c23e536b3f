//! Unit tests of routes and access rules.

use std::borrow::Cow;

use super::*;
use crate::decision::{Denial, Outcome};
use crate::identity::SessionState;
use crate::request::Anonymous;
use crate::request::readings::kind;

fn route(toml_fields: &str) -> Result<Route, ConfigError> {
    #[derive(Deserialize)]
    struct Wrap {
        r: RouteSettings,
    }
    let text = format!("[r]\n{toml_fields}\n");
    let wrap: Wrap = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    compile_route(wrap.r, "route[0]", &["jwt", "keys"], kind::ALL)
}

/// A request from a proxy on loopback, for routing.
fn request_of(target: Target) -> ForwardedRequest<'static> {
    ForwardedRequest::new(
        target,
        "203.0.113.7".parse().unwrap(),
        Vec::new(),
        Caller {
            dialect: "auth-request",
            ..Caller::default()
        },
    )
}

fn target(method: &str, host: &str, path: &str) -> Target {
    Target {
        method: Some(method.into()),
        scheme: "https".into(),
        host: Some(host.into()),
        path: Some(path.into()),
        query: None,
        raw_uri: Some(path.into()),
        readings: Vec::new(),
    }
}

#[test]
fn prefix_matches_whole_segments() {
    let r = route("path = \"/api\"\naccess = \"public\"").unwrap();
    assert!(
        r.matches(RouteFacts::canonical(&target("GET", "h", "/api")))
            .unwrap()
    );
    assert!(
        r.matches(RouteFacts::canonical(&target("GET", "h", "/api/x")))
            .unwrap()
    );
    assert!(
        !r.matches(RouteFacts::canonical(&target("GET", "h", "/apix")))
            .unwrap()
    );
    let r = route("path = \"/static/\"\naccess = \"public\"").unwrap();
    assert!(
        r.matches(RouteFacts::canonical(&target("GET", "h", "/static/a.css")))
            .unwrap()
    );
    assert!(
        !r.matches(RouteFacts::canonical(&target("GET", "h", "/static")))
            .unwrap()
    );
}

#[test]
fn globs_respect_segments() {
    let r = route("path_glob = \"/api/*/items\"\naccess = \"public\"").unwrap();
    assert!(
        r.matches(RouteFacts::canonical(&target("GET", "h", "/api/v1/items")))
            .unwrap()
    );
    assert!(
        !r.matches(RouteFacts::canonical(&target(
            "GET",
            "h",
            "/api/v1/x/items"
        )))
        .unwrap()
    );
    let r = route("path_glob = \"/files/**\"\naccess = \"public\"").unwrap();
    assert!(
        r.matches(RouteFacts::canonical(&target("GET", "h", "/files/a/b/c")))
            .unwrap()
    );
}

#[test]
fn hosts_exact_and_wildcard() {
    assert!(route("host = \"evil.com/x\"\naccess = \"public\"").is_err());
    let r = route("host = \"App.Example.com\"\naccess = \"public\"").unwrap();
    assert!(
        r.matches(RouteFacts::canonical(&target(
            "GET",
            "app.example.com",
            "/"
        )))
        .unwrap()
    );
    assert!(
        !r.matches(RouteFacts::canonical(&target("GET", "evil.com", "/")))
            .unwrap()
    );
    let r = route("host = \"*.example.com\"\naccess = \"public\"").unwrap();
    assert!(
        r.matches(RouteFacts::canonical(&target("GET", "a.example.com", "/")))
            .unwrap()
    );
    assert!(
        r.matches(RouteFacts::canonical(&target(
            "GET",
            "a.b.example.com:8443",
            "/"
        )))
        .unwrap()
    );
    assert!(
        !r.matches(RouteFacts::canonical(&target("GET", "example.com", "/")))
            .unwrap()
    );
    assert!(
        !r.matches(RouteFacts::canonical(&target(
            "GET",
            "evilexample.com",
            "/"
        )))
        .unwrap()
    );
}

#[test]
fn methods_and_unknown_facts() {
    let r = route("methods = [\"post\", \"PUT\"]\npath = \"/api\"\naccess = \"authenticated\"")
        .unwrap();
    assert!(
        r.matches(RouteFacts::canonical(&target("POST", "h", "/api")))
            .unwrap()
    );
    assert!(
        !r.matches(RouteFacts::canonical(&target("GET", "h", "/api")))
            .unwrap()
    );
    let unknown = Target {
        method: None,
        ..target("GET", "h", "/api")
    };
    assert_eq!(r.matches(RouteFacts::canonical(&unknown)), Err(NO_METHOD));
    let no_path = Target {
        path: None,
        ..target("POST", "h", "/")
    };
    assert_eq!(r.matches(RouteFacts::canonical(&no_path)), Err(NO_PATH));
}

#[test]
fn policy_takes_the_first_match_and_stops_at_undecidable() {
    let settings: Vec<RouteSettings> = vec![
        RouteSettings {
            path: Some("/admin".into()),
            ..RouteSettings::default_route(Access::Deny, None, OnError::Deny)
        },
        RouteSettings {
            path: Some("/".into()),
            ..RouteSettings::default_route(Access::Public, None, OnError::Deny)
        },
    ];
    let default = RouteSettings::default_route(
        Access::Authenticated,
        Some(vec!["jwt".into()]),
        OnError::Deny,
    );
    let policy = Policy::compile(settings, default, &["jwt"], kind::ALL).unwrap();
    assert!(
        matches!(policy.route(&target("GET", "h", "/admin/x")), RouteChoice::Matched(r) if r.access == Access::Deny)
    );
    assert!(
        matches!(policy.route(&target("GET", "h", "/x")), RouteChoice::Matched(r) if r.access == Access::Public)
    );
    let unknown = Target {
        path: None,
        ..target("GET", "h", "/")
    };
    assert!(matches!(
        policy.route(&unknown),
        RouteChoice::Undecidable {
            missing: NO_PATH,
            ..
        }
    ));
}

#[test]
fn bad_routes_are_rejected() {
    assert!(
        route("path = \"/a/../b\"\naccess = \"public\"")
            .unwrap_err()
            .to_string()
            .contains("not canonical")
    );
    assert!(route("path = \"api\"\naccess = \"public\"").is_err());
    assert!(
        route("path = \"/a\"\npath_glob = \"/b\"\naccess = \"public\"")
            .unwrap_err()
            .to_string()
            .contains("not both")
    );
    assert!(
        route("access = \"authenticated\"\nauthorizers = [\"nope\"]")
            .unwrap_err()
            .to_string()
            .contains("nope")
    );
    assert!(
        route("access = \"public\"\nroles = [\"x\"]")
            .unwrap_err()
            .to_string()
            .contains("roles")
    );
    assert!(route("access = \"sometimes\"").is_err());
    assert!(route("access = \"public\"\nmethods = []").is_err());
}

/// A proxy's answer can say "nobody" (`x-authgear-session-valid`).
const PROXY: Anonymous = Anonymous::Expressible;

/// Every rule of `route` applied to `chain`, for a request from a caller of `anonymous`.
fn apply(route: &Route, chain: ChainResult, anonymous: Anonymous) -> Ruling {
    let mut request = request_of(target("GET", "h", "/"));
    request.caller_mut().anonymous = anonymous;
    access::apply(
        route,
        chain,
        &request,
        &topics::TopicRules::default(),
        std::time::Duration::ZERO,
    )
}

#[test]
fn access_levels_apply_after_the_chain() {
    let authenticated = route("access = \"authenticated\"\nroles = [\"admin\"]").unwrap();
    let admin = Arc::new(Identity {
        user_id: "a".into(),
        roles: vec!["admin".into()].into(),
        ..Identity::default()
    });
    let plain = Arc::new(Identity {
        user_id: "b".into(),
        ..Identity::default()
    });
    assert!(matches!(
        apply(&authenticated, ChainResult::Allowed(admin.clone()), PROXY).outcome,
        Outcome::Allow { .. }
    ));
    assert_eq!(
        apply(&authenticated, ChainResult::Allowed(plain.clone()), PROXY),
        Ruling {
            outcome: Outcome::Forbidden,
            reason: Some(Cow::Borrowed(MISSING_ROLE))
        }
    );
    assert_eq!(
        apply(
            &authenticated,
            ChainResult::Denied(Denial::InvalidCredential("x")),
            PROXY
        )
        .outcome,
        Outcome::Unauthenticated {
            credential_presented: true
        }
    );
    assert_eq!(
        apply(
            &authenticated,
            ChainResult::NoneApplied {
                credential_presented: false
            },
            PROXY
        )
        .outcome,
        Outcome::Unauthenticated {
            credential_presented: false
        }
    );
    assert_eq!(
        apply(&authenticated, ChainResult::Failed, PROXY).outcome,
        Outcome::Unavailable
    );

    let identify = route("access = \"identify\"").unwrap();
    assert_eq!(
        apply(
            &identify,
            ChainResult::Denied(Denial::InvalidCredential("x")),
            PROXY
        )
        .outcome,
        Outcome::allow(None, SessionState::Invalid)
    );
    assert_eq!(
        apply(
            &identify,
            ChainResult::NoneApplied {
                credential_presented: false
            },
            PROXY
        )
        .outcome,
        Outcome::allow(None, SessionState::Absent)
    );
    assert_eq!(
        apply(&identify, ChainResult::Failed, PROXY).outcome,
        Outcome::Unavailable
    );

    let deny = route("access = \"deny\"").unwrap();
    assert_eq!(
        apply(&deny, ChainResult::Allowed(admin), PROXY).outcome,
        Outcome::Forbidden
    );
}

#[test]
fn an_identify_allow_for_nobody_reaches_only_callers_that_can_say_nobody() {
    let identify = route("access = \"identify\"").unwrap();
    let public = route("access = \"public\"").unwrap();
    let nobody = ChainResult::NoneApplied {
        credential_presented: false,
    };
    let unrecognised = ChainResult::NoneApplied {
        credential_presented: true,
    };
    let invalid = ChainResult::Denied(Denial::InvalidCredential("bad signature"));
    let someone = ChainResult::Allowed(Arc::new(Identity {
        user_id: "u".into(),
        ..Identity::default()
    }));
    let allowed = |r: &Ruling| matches!(r.outcome, Outcome::Allow { .. });
    // (caller, no credential, an unrecognised one, an invalid one)
    for (caller, none, unknown, bad) in [
        (Anonymous::Expressible, true, true, true),
        (Anonymous::ClientKnown, true, false, false),
        (Anonymous::Never, false, false, false),
    ] {
        let says = |chain: ChainResult| allowed(&apply(&identify, chain, caller));
        assert_eq!(says(nobody.clone()), none, "{caller:?}: no credential");
        assert_eq!(
            says(unrecognised.clone()),
            unknown,
            "{caller:?}: unrecognised"
        );
        assert_eq!(says(invalid.clone()), bad, "{caller:?}: invalid");
        assert!(says(someone.clone()), "{caller:?}: a verified identity");
        assert!(
            allowed(&apply(&public, nobody.clone(), caller)),
            "{caller:?}: a public route stays an allow"
        );
    }
    assert_eq!(
        apply(&identify, nobody, Anonymous::Never),
        Ruling {
            outcome: Outcome::Unauthenticated {
                credential_presented: false
            },
            reason: Some(Cow::Borrowed(NO_IDENTITY))
        }
    );
}

#[test]
fn host_rules_ignore_the_port_unless_they_name_one() {
    let r = route("host = \"admin.example.com\"\naccess = \"deny\"").unwrap();
    for host in ["admin.example.com", "admin.example.com:8443"] {
        assert!(
            r.matches(RouteFacts::canonical(&target("GET", host, "/")))
                .unwrap(),
            "{host}"
        );
    }
    // the canonical host is lower-cased without a trailing dot already; rules are too
    let r = route("host = \"Admin.Example.com.\"\naccess = \"deny\"").unwrap();
    assert!(
        r.matches(RouteFacts::canonical(&target(
            "GET",
            "admin.example.com:1",
            "/"
        )))
        .unwrap()
    );
    let r = route("host = \"admin.example.com:8443\"\naccess = \"deny\"").unwrap();
    assert!(
        r.matches(RouteFacts::canonical(&target(
            "GET",
            "admin.example.com:8443",
            "/"
        )))
        .unwrap()
    );
    assert!(
        !r.matches(RouteFacts::canonical(&target(
            "GET",
            "admin.example.com:9443",
            "/"
        )))
        .unwrap()
    );
    assert!(
        !r.matches(RouteFacts::canonical(&target(
            "GET",
            "admin.example.com",
            "/"
        )))
        .unwrap()
    );
    // a rule naming the scheme's default port matches a target that dropped it
    let r = route("host = \"admin.example.com:443\"\naccess = \"deny\"").unwrap();
    assert!(
        r.matches(RouteFacts::canonical(&target(
            "GET",
            "admin.example.com",
            "/"
        )))
        .unwrap()
    );
    let r = route("host = \"*.example.com:8443\"\naccess = \"deny\"").unwrap();
    assert!(
        r.matches(RouteFacts::canonical(&target(
            "GET",
            "a.example.com:8443",
            "/"
        )))
        .unwrap()
    );
    assert!(
        !r.matches(RouteFacts::canonical(&target("GET", "a.example.com", "/")))
            .unwrap()
    );
}

#[test]
fn a_missing_fact_matters_only_when_the_other_rules_match() {
    let r = route("host = \"admin.example.com\"\npath = \"/admin\"\naccess = \"deny\"").unwrap();
    let no_host = Target {
        host: None,
        ..target("GET", "h", "/public")
    };
    assert_eq!(
        r.matches(RouteFacts::canonical(&no_host)),
        Ok(false),
        "the path already fails"
    );
    let no_host = Target {
        host: None,
        ..target("GET", "h", "/admin")
    };
    assert_eq!(r.matches(RouteFacts::canonical(&no_host)), Err(NO_HOST));
}

#[test]
fn folded_readings_match_rules_without_regard_to_case() {
    let r = route("path = \"/Admin\"\naccess = \"deny\"").unwrap();
    let t = target("GET", "h", "/admin/x");
    assert!(!r.matches(RouteFacts::canonical(&t)).unwrap());
    let folded = RouteFacts {
        fold_case: true,
        ..RouteFacts::canonical(&t)
    };
    assert!(r.matches(folded).unwrap());
    let r = route("path_glob = \"/API/*/items\"\naccess = \"deny\"").unwrap();
    let t = target("GET", "h", "/api/v1/items");
    assert!(
        r.matches(RouteFacts {
            fold_case: true,
            ..RouteFacts::canonical(&t)
        })
        .unwrap()
    );
}

#[test]
fn every_reading_is_routed_and_routes_can_narrow_them() {
    let settings: Vec<RouteSettings> = vec![RouteSettings {
        path: Some("/admin".into()),
        ..RouteSettings::default_route(Access::Deny, None, OnError::Deny)
    }];
    let default = RouteSettings::default_route(Access::Public, None, OnError::Deny);
    let policy = Policy::compile(settings.clone(), default.clone(), &[], kind::ALL).unwrap();
    let mut t = target("GET", "h", "/public");
    t.readings = vec![Reading {
        kinds: kind::PATH_PARAMETERS,
        method: Some("GET".into()),
        path: Some("/admin".into()),
        fold_case: false,
    }];
    let Routing { route, others } = policy.route_readings(&request_of(t.clone()));
    assert_eq!(route.name, "default");
    assert_eq!(others.len(), 1);
    assert_eq!(others[0].0.access, Access::Deny);
    assert_eq!(others[0].1, "the target read as path-parameters");
    // an operator who knows the application does not strip `;` parameters
    let narrowed = RouteSettings {
        readings: Some(StringList(vec!["case".into()])),
        ..default
    };
    let policy = Policy::compile(settings, narrowed, &[], kind::ALL).unwrap();
    assert!(
        policy
            .route_readings(&request_of(t.clone()))
            .others
            .is_empty()
    );
}

#[test]
fn a_route_that_needs_a_missing_fact_is_one_more_candidate() {
    let settings: Vec<RouteSettings> = vec![
        RouteSettings {
            name: Some("admin".into()),
            host: Some("admin.example.com".into()),
            ..RouteSettings::default_route(Access::Deny, None, OnError::Deny)
        },
        RouteSettings {
            name: Some("api".into()),
            methods: Some(StringList(vec!["POST".into()])),
            path: Some("/api".into()),
            ..RouteSettings::default_route(
                Access::Authenticated,
                Some(vec!["jwt".into()]),
                OnError::Deny,
            )
        },
    ];
    let default = RouteSettings::default_route(
        Access::Authenticated,
        Some(vec!["jwt".into()]),
        OnError::Deny,
    );
    let policy = Policy::compile(settings, default, &["jwt"], kind::ALL).unwrap();
    // Authgear's own nginx snippet sends no X-Original-*: nothing but the credential
    let nothing = Target {
        method: None,
        host: None,
        path: None,
        ..target("GET", "h", "/")
    };
    let Routing { route, others } = policy.route_readings(&request_of(nothing.clone()));
    assert_eq!(route.name, "default");
    let names: Vec<&str> = others.iter().map(|(r, _)| r.name.as_str()).collect();
    assert_eq!(names, ["admin", "api"]);
    assert_eq!(
        others[0].1,
        "proxy sent no original host, so route admin may apply"
    );
    // with the host known and another, the host route is out; the API route still may be
    let no_method = Target {
        method: None,
        ..target("GET", "app.example.com", "/api")
    };
    let Routing { others, .. } = policy.route_readings(&request_of(no_method.clone()));
    let names: Vec<&str> = others.iter().map(|(r, _)| r.name.as_str()).collect();
    assert_eq!(names, ["api"]);
}

#[test]
fn routes_match_the_dialect_the_client_network_and_the_channel() {
    let r = route(
        "dialects = [\"cesbo\"]\nchannels = [\"a001\"]\nclient_ip = [\"10.0.0.0/8\"]\naccess = \"deny\"",
    )
    .unwrap();
    let mut request = request_of(target("GET", "h", "/"));
    assert!(
        !r.matches(RouteFacts::of_request(&request)).unwrap(),
        "another dialect"
    );
    request.caller_mut().dialect = "cesbo";
    assert!(
        !r.matches(RouteFacts::of_request(&request)).unwrap(),
        "another network: the missing channel does not matter"
    );
    request.set_client_ip("10.1.2.3".parse().unwrap());
    assert_eq!(r.matches(RouteFacts::of_request(&request)), Err(NO_CHANNEL));
    request.caller_mut().channel = Some("a001".into());
    assert!(r.matches(RouteFacts::of_request(&request)).unwrap());
    request.caller_mut().channel = Some("a002".into());
    assert!(
        !r.matches(RouteFacts::of_request(&request)).unwrap(),
        "another channel"
    );
    assert!(route("client_ip = [\"10.0.0.0/33\"]\naccess = \"deny\"").is_err());
    assert!(route("dialects = []\naccess = \"deny\"").is_err());
}

#[test]
fn a_deny_location_sends_refused_clients_elsewhere() {
    let r = route(
        "access = \"authenticated\"\nroles = [\"a001\"]\ndeny_location = \"http://promo.example.com/p\"",
    )
    .unwrap();
    let viewer = Arc::new(Identity {
        user_id: "v".into(),
        ..Identity::default()
    });
    for chain in [
        ChainResult::Allowed(viewer),
        ChainResult::NoneApplied {
            credential_presented: false,
        },
    ] {
        assert_eq!(
            apply(&r, chain, PROXY).outcome,
            Outcome::Redirect(Arc::from("http://promo.example.com/p"))
        );
    }
    assert_eq!(
        apply(&r, ChainResult::Failed, PROXY).outcome,
        Outcome::Unavailable
    );
    assert!(route("access = \"deny\"\ndeny_location = \"/relative\"").is_err());
}
