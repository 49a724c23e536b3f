//! Unit tests of loading and validating configurations.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// One authorizer, so that the default route has a chain.
const KEYS: &str = "[authorizers.keys]\ntype = \"static\"\n[[authorizers.keys.tokens]]\ntoken = \"key-0123456\"\nuser_id = \"u\"\n";

fn error_of(text: &str) -> String {
    Config::from_toml(&format!("{text}\n{KEYS}"))
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn demo_config_loads_and_says_it_is_a_demo() {
    let config = Config::load(&Source {
        file: None,
        env: env(&[]),
    })
    .expect("demo loads");
    assert!(config.demo);
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.server.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(config.authorizers.len(), 1);
    assert_eq!(config.cache.allow_ttl, Duration::from_secs(60));
}

#[test]
fn environment_overrides_the_file() {
    let config = Config::load(&Source {
        file: None,
        env: env(&[
            ("VERDICT__SERVER__LISTEN", "127.0.0.1:18080"),
            ("VERDICT__CACHE__ALLOW_TTL", "2m"),
            ("VERDICT__SERVER__TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
            // single underscore: belongs to the CLI, never to the file keys
            ("VERDICT_CONFIG", "/nonexistent"),
        ]),
    })
    .expect("overrides apply");
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:18080");
    assert_eq!(config.cache.allow_ttl, Duration::from_secs(120));
    assert_eq!(config.server.trusted_proxies.len(), 2);
}

#[test]
fn unknown_environment_key_is_rejected() {
    let err = Config::load(&Source {
        file: None,
        env: env(&[("VERDICT__SERVER__LISTEM", "127.0.0.1:1")]),
    })
    .expect_err("typo must be rejected");
    assert!(err.to_string().contains("listem"), "{err}");
}

#[test]
fn unknown_file_key_is_rejected() {
    let err = error_of("[server]\nlisten_port = 80\n");
    assert!(err.contains("listen_port"), "{err}");
    let err = error_of("[cache]\nmax = 1\n");
    assert!(err.contains("max"), "{err}");
}

#[test]
fn bad_values_name_their_key() {
    assert!(error_of("[server]\nlisten = \"nope\"\n").starts_with("server.listen:"));
    assert!(
        error_of("[server]\nresolve_dialect = \"traefik\"\n")
            .starts_with("server.resolve_dialect:")
    );
    assert!(
        error_of("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n")
            .starts_with("server.trusted_proxies:")
    );
    assert!(error_of("[server]\nlogin_url = \"/login\"\n").starts_with("server.login_url:"));
    assert!(
        error_of("[cache]\nallow_ttl = \"1s\"\ndeny_ttl = \"5s\"\n").starts_with("cache.deny_ttl:")
    );
    assert!(error_of("[cache]\nallow_ttl = \"lots\"\n").contains("is not a duration"));
    let same = "[server]\nlisten = \"127.0.0.1:8080\"\nadmin_listen = \"127.0.0.1:8080\"\n";
    assert!(error_of(same).starts_with("server.admin_listen:"));
}

#[test]
fn route_naming_an_unknown_authorizer_is_rejected() {
    let err = error_of(
        "[[route]]\npath = \"/\"\naccess = \"authenticated\"\nauthorizers = [\"ghost\"]\n",
    );
    assert!(err.contains("ghost"), "{err}");
}

#[test]
fn durations_accept_humantime_and_seconds() {
    let config = Config::from_toml(&format!(
        "[cache]\nallow_ttl = \"1m 30s\"\ndeny_ttl = 2\n{KEYS}"
    ))
    .expect("ok");
    assert_eq!(config.cache.allow_ttl, Duration::from_secs(90));
    assert_eq!(config.cache.deny_ttl, Duration::from_secs(2));
}

#[test]
fn no_authorizer_for_the_default_route_is_rejected() {
    let err = Config::from_toml("")
        .expect_err("nothing to authenticate with")
        .to_string();
    assert!(err.starts_with("default_route.authorizers:"), "{err}");
    let public = Config::from_toml("[default_route]\naccess = \"public\"\n");
    assert!(public.is_ok());
}

#[test]
fn errors_name_the_key_the_valid_values_and_the_usual_fix() {
    assert_eq!(
        error_of("[[route]]\naccess = \"authenticate\"\n"),
        "route[0].access: \"authenticate\" is not one of public, authenticated, identify, deny"
    );
    assert!(
        error_of("[[route]]\naccess = \"public\"\non_error = \"x\"\n")
            .contains("is not one of deny, allow, abstain")
    );
    assert!(error_of("[route]\naccess = \"public\"\n").contains("write [[route]]"));
    assert!(error_of("[log]\nformat = \"xml\"\n").contains("is not one of plain, json"));
}

#[test]
fn errors_from_the_environment_name_the_variable() {
    let err = Config::load(&Source {
        file: None,
        env: env(&[("VERDICT__SERVER__LISTN", "127.0.0.1:1")]),
    })
    .expect_err("typo")
    .to_string();
    assert!(
        err.starts_with("environment variable VERDICT__SERVER__LISTN: names no key (server.listn): unknown field `listn`"),
        "{err}"
    );
    let err = Config::load(&Source {
        file: None,
        env: env(&[("VERDICT__SERVER__LISTEN", "nope")]),
    })
    .expect_err("bad value")
    .to_string();
    assert!(
        err.contains("set by the environment variable VERDICT__SERVER__LISTEN"),
        "{err}"
    );
}

#[test]
fn errors_are_one_line() {
    let err = error_of("[server\nlisten = 1");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn yaml_files_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("verdict.yaml");
    std::fs::write(
        &path,
        "server:\n  listen: 127.0.0.1:18081\nauthorizers:\n  keys:\n    type: static\n    tokens:\n      - token: abcdefghij\n        user_id: u1\n",
    )
    .expect("write");
    let config = Config::load(&Source {
        file: Some(path),
        env: env(&[]),
    })
    .expect("yaml loads");
    assert_eq!(config.server.listen.port(), 18081);
    assert!(!config.demo);
    assert_eq!(config.authorizers[0].name, "keys");
}
