//! Unit tests of routes and access rules.

use super::*;

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
    compile_route(wrap.r, "route[0]", &["jwt", "keys"])
}

fn target(method: &str, host: &str, path: &str) -> Target {
    Target {
        method: Some(method.into()),
        scheme: "https".into(),
        host: Some(host.into()),
        path: Some(path.into()),
        query: None,
        raw_uri: Some(path.into()),
    }
}

#[test]
fn prefix_matches_whole_segments() {
    let r = route("path = \"/api\"\naccess = \"public\"").unwrap();
    assert!(r.matches(&target("GET", "h", "/api")).unwrap());
    assert!(r.matches(&target("GET", "h", "/api/x")).unwrap());
    assert!(!r.matches(&target("GET", "h", "/apix")).unwrap());
    let r = route("path = \"/static/\"\naccess = \"public\"").unwrap();
    assert!(r.matches(&target("GET", "h", "/static/a.css")).unwrap());
    assert!(!r.matches(&target("GET", "h", "/static")).unwrap());
}

#[test]
fn globs_respect_segments() {
    let r = route("path_glob = \"/api/*/items\"\naccess = \"public\"").unwrap();
    assert!(r.matches(&target("GET", "h", "/api/v1/items")).unwrap());
    assert!(!r.matches(&target("GET", "h", "/api/v1/x/items")).unwrap());
    let r = route("path_glob = \"/files/**\"\naccess = \"public\"").unwrap();
    assert!(r.matches(&target("GET", "h", "/files/a/b/c")).unwrap());
}

#[test]
fn hosts_exact_and_wildcard() {
    assert!(route("host = \"evil.com/x\"\naccess = \"public\"").is_err());
    let r = route("host = \"App.Example.com\"\naccess = \"public\"").unwrap();
    assert!(r.matches(&target("GET", "app.example.com", "/")).unwrap());
    assert!(!r.matches(&target("GET", "evil.com", "/")).unwrap());
    let r = route("host = \"*.example.com\"\naccess = \"public\"").unwrap();
    assert!(r.matches(&target("GET", "a.example.com", "/")).unwrap());
    assert!(
        r.matches(&target("GET", "a.b.example.com:8443", "/"))
            .unwrap()
    );
    assert!(!r.matches(&target("GET", "example.com", "/")).unwrap());
    assert!(!r.matches(&target("GET", "evilexample.com", "/")).unwrap());
}

#[test]
fn methods_and_unknown_facts() {
    let r = route("methods = [\"post\", \"PUT\"]\npath = \"/api\"\naccess = \"authenticated\"")
        .unwrap();
    assert!(r.matches(&target("POST", "h", "/api")).unwrap());
    assert!(!r.matches(&target("GET", "h", "/api")).unwrap());
    let unknown = Target {
        method: None,
        ..target("GET", "h", "/api")
    };
    assert_eq!(r.matches(&unknown), Err(NO_METHOD));
    let no_path = Target {
        path: None,
        ..target("POST", "h", "/")
    };
    assert_eq!(r.matches(&no_path), Err(NO_PATH));
}

#[test]
fn policy_takes_the_first_match_and_stops_at_undecidable() {
    let settings: Vec<RouteSettings> = vec![
        RouteSettings {
            path: Some("/admin".into()),
            ..RouteSettings::default_route(Access::Deny, vec![], OnError::Deny)
        },
        RouteSettings {
            path: Some("/".into()),
            ..RouteSettings::default_route(Access::Public, vec![], OnError::Deny)
        },
    ];
    let default =
        RouteSettings::default_route(Access::Authenticated, vec!["jwt".into()], OnError::Deny);
    let policy = Policy::compile(settings, default, &["jwt"]).unwrap();
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

#[test]
fn access_levels_apply_after_the_chain() {
    let authenticated = route("access = \"authenticated\"\nroles = [\"admin\"]").unwrap();
    let admin = Arc::new(Identity {
        user_id: "a".into(),
        roles: vec!["admin".into()],
        ..Identity::default()
    });
    let plain = Arc::new(Identity {
        user_id: "b".into(),
        ..Identity::default()
    });
    assert!(matches!(
        apply(&authenticated, ChainResult::Allowed(admin.clone())).outcome,
        Outcome::Allow { .. }
    ));
    assert_eq!(
        apply(&authenticated, ChainResult::Allowed(plain.clone())),
        Ruling {
            outcome: Outcome::Forbidden,
            reason: Some(MISSING_ROLE)
        }
    );
    assert_eq!(
        apply(
            &authenticated,
            ChainResult::Denied(Denial::InvalidCredential("x"))
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
            }
        )
        .outcome,
        Outcome::Unauthenticated {
            credential_presented: false
        }
    );
    assert_eq!(
        apply(&authenticated, ChainResult::Failed).outcome,
        Outcome::Unavailable
    );

    let identify = route("access = \"identify\"").unwrap();
    assert_eq!(
        apply(
            &identify,
            ChainResult::Denied(Denial::InvalidCredential("x"))
        )
        .outcome,
        Outcome::Allow {
            identity: None,
            session: SessionState::Invalid
        }
    );
    assert_eq!(
        apply(
            &identify,
            ChainResult::NoneApplied {
                credential_presented: false
            }
        )
        .outcome,
        Outcome::Allow {
            identity: None,
            session: SessionState::Absent
        }
    );
    assert_eq!(
        apply(&identify, ChainResult::Failed).outcome,
        Outcome::Unavailable
    );

    let deny = route("access = \"deny\"").unwrap();
    assert_eq!(
        apply(&deny, ChainResult::Allowed(admin)).outcome,
        Outcome::Forbidden
    );
}
