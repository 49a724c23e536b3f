//! Configuration: a TOML or YAML file (or the embedded demo) layered with
//! `VERDICT__SECTION__KEY` environment overrides, validated once into a ready [`Config`].
//!
//! Takes: an optional file path and an optional environment map (tests pass their own).
//! Returns: a [`Config`] whose routes are compiled, CIDRs parsed, keys loaded and token
//! digests computed, or a [`ConfigError`] that names the first problem in one line.
//! Must never: accept an unknown key, silently default a security setting to "open", or
//! leave anything config-shaped to be parsed per request.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::authorizer::basic::{BasicAuthorizer, BasicSettings};
use crate::authorizer::certificate::{CertificateAuthorizer, CertificateSettings};
use crate::authorizer::http::{HttpAuthorizer, HttpSettings};
use crate::authorizer::introspect::{IntrospectAuthorizer, IntrospectSettings};
use crate::authorizer::jwt::{JwtAuthorizer, JwtSettings};
use crate::authorizer::static_tokens::{StaticSettings, StaticTokens};
use crate::authorizer::{Authorizer, AuthorizerKind};
use crate::cache::CacheSettings;
use crate::dialect::answer::{AnswerSettings, Challenges};
use crate::dialect::{self, Dialect};
use crate::digest::sha256;
use crate::identity::{HeaderSets, ListRules};
use crate::logging::LogFormat;
use crate::policy::topics::{TopicRuleSettings, TopicRules, TopicSettings};
use crate::policy::{Access, OnError, Policy, RouteSettings};
use crate::request::Audiences;
use crate::request::readings::{kind, kinds_from_names};
use crate::settings::{ConfigError, HumanDuration, StringList};
use crate::shared::{RawShared, SharedSettings};
use crate::tracing::{RawTracing, TracingSettings};

mod audiences;
mod explain;

use self::explain::{explain, explain_inside, name_the_variable};

/// The demo configuration served when no file is given: loopback only, one static token.
pub const DEMO_CONFIG: &str = include_str!("config/demo.toml");

/// The starting configuration `verdict init` writes, with `@DIGEST@` for its token's.
pub const INIT_CONFIG: &str = include_str!("config/init.toml");

/// Environment variables starting with this prefix followed by `__` override file keys.
pub const ENV_PREFIX: &str = "VERDICT";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    demo: bool,
    server: RawServer,
    #[serde(default)]
    headers: RawHeaders,
    cache: RawCache,
    /// Read as values first, each then by its `type`: an internally tagged enum would
    /// lose the key path of an error inside it (`authorizers.keys` instead of
    /// `authorizers.keys.tokens[0].roles`).
    #[serde(default)]
    authorizers: BTreeMap<String, config::Value>,
    #[serde(default)]
    route: Vec<RouteSettings>,
    #[serde(default)]
    default_route: RawDefaultRoute,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    topic_rule: Vec<TopicRuleSettings>,
    #[serde(default)]
    topics: TopicSettings,
    #[serde(default)]
    mqtt: RawMqtt,
    #[serde(default)]
    shared: Option<RawShared>,
    #[serde(default)]
    tracing: Option<RawTracing>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    #[serde(default)]
    answer: MqttAnswer,
}

/// How the mqtt dialect answers: the broker plugin's `response_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum MqttAnswer {
    #[default]
    Status,
    Json,
}

crate::settings::choices!(MqttAnswer {
    "status" => Status,
    "json" => Json,
});

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    #[serde(default)]
    format: LogFormat,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    admin_listen: String,
    resolve_dialect: String,
    trusted_proxies: StringList,
    workers: usize,
    realm: String,
    #[serde(default)]
    login_url: Option<String>,
    login_redirect_param: String,
    max_response_header_bytes: usize,
    #[serde(default)]
    readings: Option<StringList>,
    drain_timeout: HumanDuration,
    request_head_timeout: HumanDuration,
    keep_alive: HumanDuration,
    max_connections: usize,
    watch: bool,
    #[serde(default)]
    grpc_listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaders {
    #[serde(default = "yes")]
    authgear: bool,
    #[serde(default = "yes")]
    session_name: bool,
    #[serde(default)]
    remote_user: bool,
    #[serde(default)]
    auth_request: bool,
    /// Header name → template over the verified identity.
    #[serde(default)]
    custom: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

impl Default for RawHeaders {
    fn default() -> Self {
        RawHeaders {
            authgear: true,
            session_name: true,
            remote_user: false,
            auth_request: false,
            custom: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    max_entries: u64,
    allow_ttl: HumanDuration,
    deny_ttl: HumanDuration,
}

#[derive(Debug)]
enum RawAuthorizer {
    Jwt(Box<JwtSettings>),
    Static(StaticSettings),
    Http(Box<HttpSettings>),
    Introspect(Box<IntrospectSettings>),
    Basic(Box<BasicSettings>),
    Certificate(Box<CertificateSettings>),
}

impl RawAuthorizer {
    /// One `[authorizers.NAME]` table, read by its `type`; an error names the key inside
    /// the table.
    fn read(
        name: &str,
        value: config::Value,
        overrides: &[(String, String)],
    ) -> Result<RawAuthorizer, ConfigError> {
        let key = format!("authorizers.{name}");
        let mut table = value
            .into_table()
            .map_err(|_| ConfigError::invalid(&key, "must be a table: [authorizers.NAME]"))?;
        let kinds = "jwt, static, http, introspect, basic, certificate";
        let kind = match table.remove("type") {
            None => {
                return Err(ConfigError::invalid(
                    format!("{key}.type"),
                    format!("missing: one of {kinds}"),
                ));
            }
            Some(kind) => kind.into_string().map_err(|_| {
                ConfigError::invalid(format!("{key}.type"), format!("must be one of {kinds}"))
            })?,
        };
        let rest = config::Value::new(None, config::ValueKind::Table(table));
        let inside = |e: config::ConfigError| explain_inside(&key, &e.to_string(), overrides);
        Ok(match kind.as_str() {
            "jwt" => RawAuthorizer::Jwt(Box::new(rest.try_deserialize().map_err(inside)?)),
            "static" => RawAuthorizer::Static(rest.try_deserialize().map_err(inside)?),
            "http" => RawAuthorizer::Http(Box::new(rest.try_deserialize().map_err(inside)?)),
            "basic" => RawAuthorizer::Basic(Box::new(rest.try_deserialize().map_err(inside)?)),
            "certificate" => {
                RawAuthorizer::Certificate(Box::new(rest.try_deserialize().map_err(inside)?))
            }
            "introspect" => {
                RawAuthorizer::Introspect(Box::new(rest.try_deserialize().map_err(inside)?))
            }
            other => {
                return Err(ConfigError::invalid(
                    format!("{key}.type"),
                    format!("{other:?} is not one of {kinds}"),
                ));
            }
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaultRoute {
    #[serde(default)]
    access: Option<Access>,
    #[serde(default)]
    authorizers: Option<StringList>,
    #[serde(default)]
    on_error: Option<OnError>,
}

/// The decision listener's settings, validated.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub resolve_dialect: &'static dyn Dialect,
    pub trusted_proxies: Vec<IpNet>,
    pub workers: usize,
    pub realm: String,
    pub login_url: Option<String>,
    pub login_redirect_param: String,
    pub max_response_header_bytes: usize,
    /// The readings of a target every route decides under unless it names its own.
    pub readings: u8,
    /// How long a stop waits for the decisions in flight.
    pub drain_timeout: Duration,
    /// How long a client may take to send a request head, every request of a connection.
    pub request_head_timeout: Duration,
    /// How long an idle kept-alive connection stays open.
    pub keep_alive: Duration,
    /// Open decision connections at most, across workers; 0: worked out from the
    /// open-file limit at start.
    pub max_connections: usize,
    /// Reload when the configuration file or a file it names changes.
    pub watch: bool,
    /// Envoy's gRPC authorization service (`ext-authz-grpc`), off without it.
    pub grpc_listen: Option<SocketAddr>,
}

/// The whole validated configuration: everything the request path needs, built once.
#[derive(Debug)]
pub struct Config {
    pub demo: bool,
    pub server: ServerSettings,
    /// How answers are written: realm, login redirect, identity header families.
    pub answer: AnswerSettings,
    pub cache: CacheSettings,
    pub authorizers: Vec<Authorizer>,
    pub policy: Policy,
    /// A short digest of the configuration text and its overrides.
    pub fingerprint: String,
    /// How log records are written.
    pub log_format: LogFormat,
    /// Valid but probably not meant: `verdict check` prints them, the log warns of them.
    pub warnings: Vec<String>,
    /// The fleet's shared store (`[shared]`); `None`: this instance stands alone.
    pub shared: Option<SharedSettings>,
    /// Every file the configuration names (keys, token lists, CA files, secrets), as
    /// read: what a watch on the configuration watches too.
    pub named_files: Vec<PathBuf>,
    /// Traces (`[tracing]`); `None`: off.
    pub tracing: Option<TracingSettings>,
}

/// Where the configuration comes from.
#[derive(Debug, Default, Clone)]
pub struct Source {
    /// A TOML/YAML file; `None` means the embedded demo.
    pub file: Option<PathBuf>,
    /// Environment overrides; `None` reads the process environment.
    pub env: Option<HashMap<String, String>>,
}

impl Config {
    /// Loads, layers and validates the configuration.
    pub fn load(source: &Source) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        match &source.file {
            Some(path) => {
                check_file(path)?;
                builder = builder.add_source(config::File::from(path.as_path()).required(true));
            }
            None => {
                builder = builder.add_source(config::File::from_str(
                    DEMO_CONFIG,
                    config::FileFormat::Toml,
                ));
            }
        }
        // Only `VERDICT__…` variables are read: `VERDICT_CONFIG` (single underscore, used by
        // the CLI) or an unrelated `VERDICT_X` never reaches the strict key check.
        let env = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(false)
            .source(source.env.clone());
        builder = builder.add_source(env);
        let mut overrides: Vec<(String, String)> = match &source.env {
            Some(env) => env.clone().into_iter().collect(),
            None => std::env::vars().collect(),
        };
        overrides.retain(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")));
        overrides.sort();
        let raw: RawConfig = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| match &source.file {
                Some(path) => explain_format(path, &e.to_string())
                    .unwrap_or_else(|| explain(&e.to_string(), &overrides)),
                None => explain(&e.to_string(), &overrides),
            })?;
        let base_dir = source
            .file
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let text = match &source.file {
            Some(path) => std::fs::read(path).unwrap_or_default(),
            None => DEMO_CONFIG.as_bytes().to_vec(),
        };
        let lookup = |name: &str| match &source.env {
            Some(env) => env.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        let mut config = validate(raw, &base_dir, &overrides, &lookup)
            .map_err(|e| name_the_variable(e, &overrides))?;
        let environment: Vec<String> = match &source.env {
            Some(env) => env.keys().cloned().collect(),
            None => std::env::vars_os()
                .filter_map(|(name, _)| name.into_string().ok())
                .collect(),
        };
        config.warnings.extend(unread_variables(&environment));
        config.fingerprint = text_fingerprint(&text, &overrides);
        Ok(config)
    }

    /// Parses a configuration from TOML text (tests and tools), with no environment.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| explain(&e.to_string(), &[]))?;
        let mut config = validate(raw, Path::new("."), &[], &|name| std::env::var(name).ok())?;
        config.fingerprint = text_fingerprint(text.as_bytes(), &[]);
        Ok(config)
    }
}

/// Variables that look meant for verdict but are never read: `VERDICT_SERVER_LISTEN` (one
/// underscore) is silently ignored by the layering, which reads only `VERDICT__…`.
fn unread_variables(names: &[String]) -> Vec<String> {
    let mut unread: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with(&format!("{ENV_PREFIX}_")))
        .filter(|n| !n.starts_with(&format!("{ENV_PREFIX}__")))
        .filter(|n| n.as_str() != CONFIG_VARIABLE)
        .collect();
    unread.sort();
    unread
        .into_iter()
        .map(|name| {
            let hint = explain::suggestion(name)
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            format!(
                "environment variable {name} is not read: overrides are {ENV_PREFIX}__SECTION__KEY, two underscores each{hint}"
            )
        })
        .collect()
}

/// The variable that names the configuration file (`--config`).
pub const CONFIG_VARIABLE: &str = "VERDICT_CONFIG";

/// Why a configuration file cannot be read at all, before its text is: it is missing,
/// a folder, or of a format verdict does not read.
fn check_file(path: &Path) -> Result<(), ConfigError> {
    let shown = path.display();
    if !path.exists() {
        return Err(ConfigError::Load(format!(
            "{shown} does not exist (`verdict init` writes a starting configuration)"
        )));
    }
    if path.is_dir() {
        return Err(ConfigError::Load(format!(
            "{shown} is a folder: give the configuration file in it (verdict.toml, say)"
        )));
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("toml" | "yaml" | "yml") => Ok(()),
        _ => Err(ConfigError::Load(format!(
            "{shown}: verdict reads .toml, .yaml and .yml files, and the extension says which; rename the file"
        ))),
    }
}

/// A parse error explained by what the file's text looks like: YAML in a `.toml` file,
/// TOML in a `.yaml` one. `None` when the text looks like what its extension says.
fn explain_format(path: &Path, error: &str) -> Option<ConfigError> {
    let text = std::fs::read_to_string(path).ok()?;
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    let yaml_like = !first.starts_with('[')
        && !first.contains('=')
        && first
            .split_once(':')
            .is_some_and(|(key, _)| !key.is_empty() && !key.contains([' ', '"']));
    let toml_like = first.starts_with('[') && first.ends_with(']') || first.contains(" = ");
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)?;
    let shown = path.display();
    let error = error.split_whitespace().collect::<Vec<_>>().join(" ");
    match extension.as_str() {
        "toml" if yaml_like && error.contains("TOML parse error") => {
            Some(ConfigError::Load(format!(
                "{shown} looks like YAML ({first:?}) but ends in .toml: rename it .yaml, or write TOML ([section], key = \"value\")"
            )))
        }
        "yaml" | "yml" if toml_like => Some(ConfigError::Load(format!(
            "{shown} looks like TOML ({first:?}) but ends in .{extension}: rename it .toml, or write YAML (section:, key: value)"
        ))),
        _ => None,
    }
}

/// Every default, in one place; `verdict.example.toml` documents the same values.
const DEFAULTS: &str = r#"
[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:9090"
resolve_dialect = "auth-request"
trusted_proxies = ["127.0.0.0/8", "::1/128"]
workers = 0
realm = "verdict"
login_redirect_param = "rd"
max_response_header_bytes = 4096
drain_timeout = "30s"
request_head_timeout = "10s"
keep_alive = "75s"
max_connections = 0
watch = false

[cache]
max_entries = 100000
allow_ttl = "60s"
deny_ttl = "5s"
"#;

fn validate(
    raw: RawConfig,
    base_dir: &Path,
    overrides: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut authorizer_settings = BTreeMap::new();
    for (name, value) in raw.authorizers {
        let settings = RawAuthorizer::read(&name, value, overrides)?;
        authorizer_settings.insert(name, settings);
    }
    let server = validate_server(raw.server)?;
    let cache = validate_cache(raw.cache)?;

    let mut warnings = Vec::new();
    for (name, settings) in &authorizer_settings {
        if let RawAuthorizer::Jwt(jwt) = settings {
            if jwt.issuers.is_none() && jwt.audiences.is_none() {
                warnings.push(format!(
                    "authorizers.{name}: neither issuers nor audiences: any token these keys signed is accepted, whoever it was issued to"
                ));
            }
            if let Some(url) = &jwt.jwks_url
                && url.to_ascii_lowercase().starts_with("http://")
            {
                warnings.push(format!(
                    "authorizers.{name}.jwks_url: plain http: whoever is on the path can swap the keys"
                ));
            }
        }
    }
    let mut authorizers = Vec::with_capacity(authorizer_settings.len());
    let mut named_files: Vec<PathBuf> = Vec::new();
    for (name, settings) in authorizer_settings {
        validate_name(&format!("authorizers.{name}"), &name)?;
        let fingerprint = fingerprint(&name, &settings, base_dir);
        named_files.extend(files_of(&settings).into_iter().map(|f| base_dir.join(f)));
        let kind = match settings {
            RawAuthorizer::Jwt(s) => {
                AuthorizerKind::Jwt(Box::new(JwtAuthorizer::build(&name, *s, base_dir)?))
            }
            RawAuthorizer::Static(s) => {
                AuthorizerKind::Static(StaticTokens::build(&name, s, base_dir)?)
            }
            RawAuthorizer::Http(s) => {
                AuthorizerKind::Http(Box::new(HttpAuthorizer::build(&name, *s, base_dir)?))
            }
            RawAuthorizer::Certificate(s) => AuthorizerKind::Certificate(Box::new(
                CertificateAuthorizer::build(&name, *s, base_dir)?,
            )),
            RawAuthorizer::Basic(s) => {
                AuthorizerKind::Basic(Box::new(BasicAuthorizer::build(&name, *s, base_dir)?))
            }
            RawAuthorizer::Introspect(s) => AuthorizerKind::Introspect(Box::new(
                IntrospectAuthorizer::build(&name, *s, base_dir, env)?,
            )),
        };
        authorizers.push(Authorizer {
            name,
            kind,
            claims_source: None,
            fingerprint,
            audiences: Audiences::default(),
        });
    }
    for index in 0..authorizers.len() {
        let AuthorizerKind::Http(http) = &authorizers[index].kind else {
            continue;
        };
        let Some(source) = http.claims_from.as_deref() else {
            continue;
        };
        let found = authorizers
            .iter()
            .position(|a| a.name == source && matches!(a.kind, AuthorizerKind::Jwt(_)));
        let Some(found) = found else {
            return Err(ConfigError::invalid(
                format!("authorizers.{}.claims_from", authorizers[index].name),
                format!("{source:?} is not a jwt authorizer"),
            ));
        };
        authorizers[index].claims_source = Some(found);
        let source = &mut authorizers[found];
        if let AuthorizerKind::Jwt(jwt) = &mut source.kind
            && !jwt.keep_claims
        {
            jwt.keep_claims = true;
            // Its cached decisions now carry the claims: a reload that adds or removes a
            // `claims_from` must not reuse decisions made without them (an http
            // authorizer would read a valid token as one without claims).
            let mut material = source.fingerprint.to_vec();
            material.extend_from_slice(b"\0keep_claims");
            source.fingerprint = sha256(&material);
        }
    }

    let default_route = RouteSettings::default_route(
        raw.default_route.access.unwrap_or(Access::Authenticated),
        raw.default_route.authorizers.map(|list| list.0),
        raw.default_route.on_error.unwrap_or(OnError::Deny),
    );
    for (index, route) in raw.route.iter().enumerate() {
        for name in route.dialects.iter().flat_map(|list| &list.0) {
            if dialect::by_name(name).is_none() {
                return Err(ConfigError::invalid(
                    format!("route[{index}].dialects"),
                    format!("{name:?} is not one of {}", dialect::names()),
                ));
            }
        }
    }
    // Trust decision: an authorizer that routes scoped to one audience name serves that
    // audience; a route that names no authorizers does not offer it to another's callers.
    for authorizer in &mut authorizers {
        authorizer.audiences = audiences::binding(&authorizer.name, &raw.route);
    }
    let names: Vec<&str> = authorizers.iter().map(|a| a.name.as_str()).collect();
    let bound: Vec<(&str, Audiences)> = authorizers
        .iter()
        .map(|a| (a.name.as_str(), a.audiences))
        .collect();
    let policy = Policy::compile(raw.route, default_route, &names, server.readings)?;
    warnings.extend(audiences::warnings(&policy, &bound));
    // A route with scope or claim rules reads the claims of the tokens its chain verifies:
    // those jwt authorizers keep them in their decisions
    for route in policy.routes().filter(|r| r.reads_claims()) {
        let mut gives_claims = false;
        for &index in &route.chain {
            let authorizer = &mut authorizers[index];
            let keep = match &mut authorizer.kind {
                AuthorizerKind::Jwt(jwt) => Some(&mut jwt.keep_claims),
                AuthorizerKind::Introspect(introspect) => Some(&mut introspect.keep_claims),
                _ => None,
            };
            if let Some(keep) = keep {
                gives_claims = true;
                if !*keep {
                    *keep = true;
                    // decisions made without the claims must not be reused with them
                    let mut material = authorizer.fingerprint.to_vec();
                    material.extend_from_slice(b"\0keep_claims");
                    authorizer.fingerprint = sha256(&material);
                }
            }
        }
        if !gives_claims {
            warnings.push(format!(
                "route {}: scopes or claims rules, but none of its authorizers is a jwt or introspect one, which alone give claims: every request there is refused",
                route.name
            ));
        }
    }
    let policy = policy.with_topics(TopicRules::compile(raw.topic_rule, raw.topics)?);

    let headers = HeaderSets {
        authgear: raw.headers.authgear,
        session_name: raw.headers.session_name,
        remote_user: raw.headers.remote_user,
        auth_request: raw.headers.auth_request,
    };
    if !(headers.authgear || headers.session_name || headers.remote_user || headers.auth_request) {
        return Err(ConfigError::invalid(
            "headers",
            "at least one identity header family must be on",
        ));
    }

    let custom = custom_headers(&raw.headers.custom)?;
    if custom.iter().any(|(_, t)| t.uses_claims()) {
        // the claims a custom header reads are kept in the decisions that verify them
        for authorizer in &mut authorizers {
            let keep = match &mut authorizer.kind {
                AuthorizerKind::Jwt(jwt) => Some(&mut jwt.keep_claims),
                AuthorizerKind::Introspect(introspect) => Some(&mut introspect.keep_claims),
                _ => None,
            };
            if let Some(keep) = keep
                && !*keep
            {
                *keep = true;
                let mut material = authorizer.fingerprint.to_vec();
                material.extend_from_slice(b"\0keep_claims");
                authorizer.fingerprint = sha256(&material);
            }
        }
    }
    let answer = AnswerSettings {
        custom,
        challenges: Challenges::for_schemes(
            &server.realm,
            authorizers
                .iter()
                .any(|a| matches!(a.kind, AuthorizerKind::Basic(_))),
        )
        .ok_or_else(|| ConfigError::invalid("server.realm", "is not a header value"))?,
        login_url: server.login_url.clone(),
        login_redirect_param: server.login_redirect_param.clone(),
        headers,
        lists: ListRules::for_sets(headers),
        mqtt_json: raw.mqtt.answer == MqttAnswer::Json,
        max_header_bytes: server.max_response_header_bytes,
    };
    let shared = match raw.shared {
        Some(raw) => {
            named_files.extend(raw.files().into_iter().map(|f| base_dir.join(f)));
            let settings = SharedSettings::build(raw, base_dir, env)?;
            for name in settings.cache_authorizers.iter().flatten() {
                if !authorizers.iter().any(|a| &a.name == name) {
                    return Err(ConfigError::invalid(
                        "shared.cache_authorizers",
                        format!("{name:?} is not an authorizer"),
                    ));
                }
            }
            Some(settings)
        }
        None => None,
    };
    let tracing = raw.tracing.map(TracingSettings::build).transpose()?;
    Ok(Config {
        tracing,
        demo: raw.demo,
        server,
        answer,
        cache,
        shared,
        named_files,
        authorizers,
        fingerprint: String::new(),
        log_format: raw.log.format,
        warnings: warnings
            .into_iter()
            .chain(policy.warnings.iter().cloned())
            .collect(),
        policy,
    })
}

/// A short digest of a configuration's text and its environment overrides, to tell which
/// configuration is in force (logs, metrics).
fn text_fingerprint(text: &[u8], env: &[(String, String)]) -> String {
    let mut material = text.to_vec();
    for (key, value) in env {
        material.push(0);
        material.extend_from_slice(key.as_bytes());
        material.push(b'=');
        material.extend_from_slice(value.as_bytes());
    }
    hex::encode(&sha256(&material)[..8])
}

/// What an authorizer's answers depend on besides the request: its name, its settings as
/// written and the contents of every file they name (keys, token lists, CA
/// certificates). Cached decisions are keyed on it, so a reload that changes any of these
/// never reuses a decision made under the old ones, and one that changes none keeps them.
fn fingerprint(name: &str, settings: &RawAuthorizer, base_dir: &Path) -> [u8; 32] {
    let mut material = format!("{name}\u{0}{settings:?}").into_bytes();
    for file in files_of(settings) {
        material.push(0);
        // An unreadable file fails the build right after; its fingerprint does not matter.
        material.extend(std::fs::read(base_dir.join(file)).unwrap_or_default());
    }
    sha256(&material)
}

/// The files an authorizer's settings name (keys, token lists, CA certificates).
fn files_of(settings: &RawAuthorizer) -> Vec<&PathBuf> {
    match settings {
        RawAuthorizer::Jwt(s) => s.keys.iter().filter_map(|k| k.pem_file.as_ref()).collect(),
        RawAuthorizer::Static(s) => s.tokens_file.iter().collect(),
        RawAuthorizer::Http(s) => s.ca_file.iter().collect(),
        RawAuthorizer::Introspect(s) => s.files(),
        RawAuthorizer::Basic(s) => s.htpasswd_file.iter().collect(),
        RawAuthorizer::Certificate(s) => s.ca_file.iter().collect(),
    }
}

/// `[headers.custom]`: names an application reads its identity from, each with the
/// template of its value. A name must not be one verdict or a proxy gives another meaning
/// (an identity family's, a fact's, a hop-by-hop or credential header), nor fold (as CGI
/// applications fold names) to another of them.
fn custom_headers(
    raw: &BTreeMap<String, String>,
) -> Result<
    Vec<(
        actix_web::http::header::HeaderName,
        crate::template::IdentityTemplate,
    )>,
    ConfigError,
> {
    const TAKEN: &[&str] = &[
        "authorization",
        "cookie",
        "set-cookie",
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "forwarded",
        "x-real-ip",
        "via",
        "cache-control",
        "x-accel-expires",
        "www-authenticate",
        "location",
        "retry-after",
    ];
    let mut custom = Vec::new();
    let mut folded = std::collections::HashSet::new();
    for (name, text) in raw {
        let key = format!("headers.custom.{name}");
        let lower = name.to_ascii_lowercase();
        let header = actix_web::http::header::HeaderName::from_bytes(lower.as_bytes())
            .map_err(|_| ConfigError::invalid(&key, "is not a header name"))?;
        if TAKEN.contains(&lower.as_str())
            || lower.starts_with("x-forwarded-")
            || lower.starts_with("x-original-")
            || crate::identity::is_reserved_for_identity(&lower)
            || crate::identity::is_identity_alias(&lower)
        {
            return Err(ConfigError::invalid(
                &key,
                "is a name verdict or a proxy already gives a meaning: pick another",
            ));
        }
        if !folded.insert(crate::request::cgi_folded(&lower).into_owned()) {
            return Err(ConfigError::invalid(
                &key,
                "folds (over '-', '_', '.') to the same name as another custom header",
            ));
        }
        let template = crate::template::IdentityTemplate::parse_identity(text)
            .map_err(|e| ConfigError::invalid(&key, e))?;
        custom.push((header, template));
    }
    Ok(custom)
}

fn validate_name(key: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            "names use lower-case letters, digits, '-' and '_'",
        ))
    }
}

fn validate_server(raw: RawServer) -> Result<ServerSettings, ConfigError> {
    let listen: SocketAddr = raw.listen.parse().map_err(|_| {
        ConfigError::invalid(
            "server.listen",
            format!("{:?} is not an ip:port", raw.listen),
        )
    })?;
    let admin_listen: SocketAddr = raw.admin_listen.parse().map_err(|_| {
        ConfigError::invalid(
            "server.admin_listen",
            format!("{:?} is not an ip:port", raw.admin_listen),
        )
    })?;
    let grpc_listen: Option<SocketAddr> = match &raw.grpc_listen {
        None => None,
        Some(text) => Some(text.parse().map_err(|_| {
            ConfigError::invalid("server.grpc_listen", format!("{text:?} is not an ip:port"))
        })?),
    };
    if let Some(grpc) = grpc_listen
        && grpc.port() != 0
        && (grpc == listen || grpc == admin_listen)
    {
        return Err(ConfigError::invalid(
            "server.grpc_listen",
            "must differ from server.listen and server.admin_listen",
        ));
    }
    if listen.port() != 0 && listen == admin_listen {
        return Err(ConfigError::invalid(
            "server.admin_listen",
            "must differ from server.listen (health and metrics stay off the decision port)",
        ));
    }
    let resolve_dialect = dialect::by_name(&raw.resolve_dialect).ok_or_else(|| {
        ConfigError::invalid(
            "server.resolve_dialect",
            format!(
                "{:?} is not one of {}",
                raw.resolve_dialect,
                dialect::names()
            ),
        )
    })?;
    let mut trusted_proxies = Vec::new();
    for text in &raw.trusted_proxies.0 {
        // A bare address means exactly that host; anything else must be a CIDR.
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| {
                ConfigError::invalid(
                    "server.trusted_proxies",
                    format!("{text:?} is not a CIDR or an IP address"),
                )
            })?;
        trusted_proxies.push(net.trunc());
    }
    if raw.realm.is_empty() || raw.realm.contains(['"', '\\', '\r', '\n']) {
        return Err(ConfigError::invalid(
            "server.realm",
            "must be non-empty and contain no quote, backslash or line break",
        ));
    }
    let login_url = match raw.login_url.filter(|u| !u.is_empty()) {
        None => None,
        Some(url) => {
            // Traefik rewrites a relative Location against its own address: only absolute URLs.
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://"))
                || url.bytes().any(|b| b.is_ascii_control() || b == b' ')
            {
                return Err(ConfigError::invalid(
                    "server.login_url",
                    "must be an absolute http(s) URL without spaces or control characters",
                ));
            }
            Some(url)
        }
    };
    if raw.login_redirect_param.is_empty()
        || !raw
            .login_redirect_param
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(ConfigError::invalid(
            "server.login_redirect_param",
            "must be a plain query parameter name",
        ));
    }
    if !(1024..=65536).contains(&raw.max_response_header_bytes) {
        return Err(ConfigError::invalid(
            "server.max_response_header_bytes",
            "must be between 1024 and 65536",
        ));
    }
    let readings = match &raw.readings {
        None => kind::ALL,
        Some(list) => kinds_from_names(&list.0)
            .map_err(|problem| ConfigError::invalid("server.readings", problem))?,
    };
    if raw.drain_timeout.0.is_zero() || raw.drain_timeout.0 > Duration::from_secs(600) {
        return Err(ConfigError::invalid(
            "server.drain_timeout",
            "must be between 1s and 10m",
        ));
    }
    if raw.request_head_timeout.0.is_zero() || raw.request_head_timeout.0 > Duration::from_secs(60)
    {
        return Err(ConfigError::invalid(
            "server.request_head_timeout",
            "must be between 1ms and 60s",
        ));
    }
    if raw.keep_alive.0 > Duration::from_secs(3600) {
        return Err(ConfigError::invalid(
            "server.keep_alive",
            "must be at most 1h (0s turns keep-alive off)",
        ));
    }
    Ok(ServerSettings {
        drain_timeout: raw.drain_timeout.0,
        request_head_timeout: raw.request_head_timeout.0,
        keep_alive: raw.keep_alive.0,
        max_connections: raw.max_connections,
        watch: raw.watch,
        grpc_listen,
        readings,
        listen,
        admin_listen,
        resolve_dialect,
        trusted_proxies,
        workers: raw.workers,
        realm: raw.realm,
        login_url,
        login_redirect_param: raw.login_redirect_param,
        max_response_header_bytes: raw.max_response_header_bytes,
    })
}

fn validate_cache(raw: RawCache) -> Result<CacheSettings, ConfigError> {
    if raw.deny_ttl.0 > raw.allow_ttl.0 {
        return Err(ConfigError::invalid(
            "cache.deny_ttl",
            "must not be longer than cache.allow_ttl",
        ));
    }
    if raw.allow_ttl.0 > Duration::from_secs(24 * 3600) {
        return Err(ConfigError::invalid(
            "cache.allow_ttl",
            "must be at most 24h",
        ));
    }
    Ok(CacheSettings {
        max_entries: raw.max_entries,
        allow_ttl: raw.allow_ttl.0,
        deny_ttl: raw.deny_ttl.0,
    })
}

#[cfg(test)]
mod tests;
