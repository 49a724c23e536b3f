//! Topic rules for MQTT callers, modelled on EMQX's file ACL: ordered, first match wins,
//! no match decides by `[topics] no_match` (deny by default).
//!
//! Takes: the broker's facts about one publish or subscribe (username, clientid, client
//! address, topic or filter, qos, retain) and the roles of a verified token, if any.
//! Returns: allow or deny (or ignore, where the operator asks for it), and which rule
//! decided. Must never: let a leading `+` or `#` match a `$` topic, let a subscription
//! filter through a rule that covers only some of the topics it can match, expand a
//! `${username}`/`${clientid}` that is empty or holds `+`, `#` or `/` (a user named `#`
//! would otherwise get everything), read an expanded value as a template again, or let a
//! fact the broker did not send satisfy a matcher: a rule whose matcher needs a missing
//! fact never matches as `allow` or `ignore`, and always matches as `deny`.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;

use crate::decision::Outcome;
use crate::request::{Action, MqttAccess};
use crate::settings::{ConfigError, StringList, choices};
use crate::template::Template;

/// What a matching rule says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Permission {
    Allow,
    #[default]
    Deny,
    /// Not verdict's to say: the broker asks its next source (EMQX only).
    Ignore,
}

choices!(Permission {
    "allow" => Allow,
    "deny" => Deny,
    "ignore" => Ignore,
});

/// Which actions a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actions {
    Publish,
    Subscribe,
    All,
}

choices!(Actions {
    "publish" => Publish,
    "subscribe" => Subscribe,
    "all" => All,
});

/// One `[[topic_rule]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicRuleSettings {
    pub permission: Permission,
    #[serde(default)]
    pub action: Option<Actions>,
    /// MQTT filters; `eq FILTER` is a literal filter (wildcards not expanded).
    pub topics: StringList,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub clientid: Option<String>,
    #[serde(default)]
    pub client_ip: Option<StringList>,
    #[serde(default)]
    pub roles: Option<StringList>,
    #[serde(default)]
    pub qos: Option<Vec<u8>>,
    #[serde(default)]
    pub retain: Option<bool>,
}

/// `[topics]`: what happens when no rule matches.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    #[serde(default = "deny")]
    pub no_match: Permission,
}

fn deny() -> Permission {
    Permission::Deny
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            no_match: Permission::Deny,
        }
    }
}

#[derive(Debug, Clone)]
enum Filter {
    /// `eq …`: matched as written.
    Literal(String),
    /// Levels, with `${username}`/`${clientid}` parsed once and expanded per request.
    Pattern(Template<TopicVar>),
}

/// The placeholders a topic filter may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopicVar {
    Username,
    ClientId,
}

fn topic_var(name: &str) -> Result<TopicVar, String> {
    match name {
        "username" => Ok(TopicVar::Username),
        "clientid" => Ok(TopicVar::ClientId),
        other => Err(format!(
            "unknown placeholder ${{{other}}} in a topic filter (username, clientid)"
        )),
    }
}

/// Whether a rule holds for one access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applies {
    Yes,
    No,
    /// Every known fact matches, but a matcher needs a fact the broker did not send (or
    /// a value that may not stand in a filter): an `allow` cannot rest on it, a `deny`
    /// must.
    Unknown,
}

#[derive(Debug, Clone)]
enum NameRule {
    Exact(String),
    Glob(glob::Pattern),
}

impl NameRule {
    fn matches(&self, value: &str) -> bool {
        match self {
            NameRule::Exact(exact) => exact == value,
            NameRule::Glob(pattern) => pattern.matches(value),
        }
    }
}

/// A compiled topic rule.
#[derive(Debug, Clone)]
struct TopicRule {
    permission: Permission,
    actions: Actions,
    filters: Vec<Filter>,
    username: Option<NameRule>,
    clientid: Option<NameRule>,
    client_ip: Option<Vec<IpNet>>,
    roles: Vec<String>,
    qos: Option<Vec<u8>>,
    retain: Option<bool>,
}

/// The compiled rules, in order.
#[derive(Debug, Default)]
pub struct TopicRules {
    rules: Vec<TopicRule>,
    no_match: Permission,
}

impl TopicRules {
    pub fn compile(
        settings: Vec<TopicRuleSettings>,
        topics: TopicSettings,
    ) -> Result<TopicRules, ConfigError> {
        let mut rules = Vec::with_capacity(settings.len());
        for (index, raw) in settings.into_iter().enumerate() {
            let key = format!("topic_rule[{index}]");
            if raw.topics.0.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{key}.topics"),
                    "needs at least one filter",
                ));
            }
            let mut filters = Vec::new();
            for text in &raw.topics.0 {
                let filter = match text.strip_prefix("eq ") {
                    Some(literal) => Filter::Literal(literal.to_string()),
                    None => {
                        if !valid_filter(text) {
                            return Err(ConfigError::invalid(
                                format!("{key}.topics"),
                                format!(
                                    "{text:?} is not an MQTT filter (`#` only as the last level, `+` alone in its level)"
                                ),
                            ));
                        }
                        let template = Template::parse_with(text, topic_var)
                            .map_err(|e| ConfigError::invalid(format!("{key}.topics"), e))?;
                        Filter::Pattern(template)
                    }
                };
                filters.push(filter);
            }
            let name_rule = |field: &str,
                             value: Option<String>|
             -> Result<Option<NameRule>, ConfigError> {
                match value {
                    None => Ok(None),
                    Some(v) if v.contains(['*', '?', '[']) => glob::Pattern::new(&v)
                        .map(|p| Some(NameRule::Glob(p)))
                        .map_err(|e| ConfigError::invalid(format!("{key}.{field}"), e.to_string())),
                    Some(v) => Ok(Some(NameRule::Exact(v))),
                }
            };
            let client_ip = match raw.client_ip {
                None => None,
                Some(list) => Some(
                    list.0
                        .iter()
                        .map(|t| {
                            t.parse::<IpNet>()
                                .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                                .map(|n| n.trunc())
                                .map_err(|_| {
                                    ConfigError::invalid(
                                        format!("{key}.client_ip"),
                                        format!("{t:?} is not a CIDR or an IP address"),
                                    )
                                })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            if raw.qos.as_ref().is_some_and(|q| q.iter().any(|q| *q > 2)) {
                return Err(ConfigError::invalid(
                    format!("{key}.qos"),
                    "QoS is 0, 1 or 2",
                ));
            }
            rules.push(TopicRule {
                permission: raw.permission,
                actions: raw.action.unwrap_or(Actions::All),
                filters,
                username: name_rule("username", raw.username)?,
                clientid: name_rule("clientid", raw.clientid)?,
                client_ip,
                roles: raw.roles.map(|l| l.0).unwrap_or_default(),
                qos: raw.qos,
                retain: raw.retain,
            });
        }
        Ok(TopicRules {
            rules,
            no_match: topics.no_match,
        })
    }

    /// What the rules make of an allowed access: `None` to let the allow stand, or the
    /// outcome that replaces it (a deny, an ignore) with its reason. A read-write access
    /// (the broker contract's `acc = 3`) stands only if reading and writing each do.
    /// `roles` is `None` when no token was verified (not the same as a token with none).
    pub fn rule(
        &self,
        access: &MqttAccess,
        client_ip: IpAddr,
        roles: Option<&[Arc<str>]>,
    ) -> Option<(Outcome, Cow<'static, str>)> {
        let actions: &[Action] = match access.action {
            Action::ReadWrite => &[Action::Publish, Action::Subscribe],
            Action::Publish => &[Action::Publish],
            Action::Subscribe => &[Action::Subscribe],
        };
        for action in actions {
            let one = MqttAccess {
                action: *action,
                ..access.clone()
            };
            let (permission, rule) = self.decide(&one, client_ip, roles);
            let which = match rule {
                Some(index) => format!("topic_rule[{index}]"),
                None => "no topic rule matched".to_string(),
            };
            match permission {
                Permission::Allow => {}
                Permission::Deny => {
                    return Some((Outcome::Forbidden, Cow::Owned(format!("{which} denies"))));
                }
                Permission::Ignore => {
                    return Some((Outcome::Ignore, Cow::Owned(format!("{which} says ignore"))));
                }
            }
        }
        None
    }

    /// The permission for one access, and the index of the rule that gave it (`None`:
    /// no rule matched). `roles` is `None` when no token was verified (not the same as a
    /// token with no roles).
    pub fn decide(
        &self,
        access: &MqttAccess,
        client_ip: IpAddr,
        roles: Option<&[Arc<str>]>,
    ) -> (Permission, Option<usize>) {
        for (index, rule) in self.rules.iter().enumerate() {
            match rule.applies(access, client_ip, roles) {
                Applies::Yes => return (rule.permission, Some(index)),
                Applies::No => {}
                // Trust decision: a missing fact could make this rule match; a deny must
                // then hold (fail closed), an allow or ignore must not rest on a guess.
                Applies::Unknown if rule.permission == Permission::Deny => {
                    return (Permission::Deny, Some(index));
                }
                Applies::Unknown => {}
            }
        }
        (self.no_match, None)
    }
}

impl TopicRule {
    fn applies(
        &self,
        access: &MqttAccess,
        client_ip: IpAddr,
        roles: Option<&[Arc<str>]>,
    ) -> Applies {
        // (a read-write access is decided as a publish and a subscribe, one by one)
        let action = matches!(
            (self.actions, access.action),
            (Actions::All, _)
                | (Actions::Publish, Action::Publish)
                | (Actions::Subscribe, Action::Subscribe)
        );
        if !action {
            return Applies::No;
        }
        let mut unknown = false;
        // One matcher against one fact: a known fact that fails ends the rule; a missing
        // one leaves it undecided.
        let mut check = |fact: Option<bool>| match fact {
            Some(holds) => holds,
            None => {
                unknown = true;
                true
            }
        };
        if let Some(rule) = &self.username
            && !check(Some(rule.matches(&access.username)))
        {
            return Applies::No;
        }
        if let Some(rule) = &self.clientid
            && !check(access.clientid.as_deref().map(|c| rule.matches(c)))
        {
            return Applies::No;
        }
        if let Some(networks) = &self.client_ip {
            let ip = client_ip.to_canonical();
            if !check(Some(networks.iter().any(|n| n.contains(&ip)))) {
                return Applies::No;
            }
        }
        if !self.roles.is_empty() {
            let held = roles.map(|roles| {
                self.roles
                    .iter()
                    .all(|r| roles.iter().any(|have| **have == **r))
            });
            if !check(held) {
                return Applies::No;
            }
        }
        // qos and retain are facts of a publish only (documented): a subscription is not
        // missing them
        if access.action == Action::Publish {
            if let Some(allowed) = &self.qos
                && !check(access.qos.map(|qos| allowed.contains(&qos)))
            {
                return Applies::No;
            }
            if let Some(retain) = self.retain
                && !check(access.retain.map(|r| r == retain))
            {
                return Applies::No;
            }
        }
        let mut topic = Applies::No;
        for filter in &self.filters {
            match filter {
                Filter::Literal(literal) if *literal == access.topic => {
                    return Applies::Yes.and(unknown);
                }
                Filter::Literal(_) => {}
                Filter::Pattern(pattern) => match expand(pattern, access) {
                    // a publish names one topic; a subscription is allowed only if the
                    // rule covers every topic its filter can match: `covers` handles both
                    Some(filter) if covers(&filter, &access.topic) => {
                        return Applies::Yes.and(unknown);
                    }
                    Some(_) => {}
                    // a value missing or unfit for a filter: this filter might have matched
                    None => topic = Applies::Unknown,
                },
            }
        }
        topic
    }
}

impl Applies {
    /// `Yes`, unless a matcher's fact was missing.
    fn and(self, unknown: bool) -> Applies {
        if unknown { Applies::Unknown } else { self }
    }
}

/// A filter with `${username}` and `${clientid}` expanded, in one pass over the parsed
/// template (a value is never read as a template again). `None` when a value is missing,
/// empty, or holds `+`, `#` or `/` (it would widen the filter).
fn expand(pattern: &Template<TopicVar>, access: &MqttAccess) -> Option<String> {
    let mut out = String::new();
    pattern.render_with(&mut out, |var, out| {
        let value = match var {
            TopicVar::Username => Some(access.username.as_str()),
            TopicVar::ClientId => access.clientid.as_deref(),
        }?;
        if value.is_empty() || value.contains(['+', '#', '/']) {
            return None;
        }
        out.push_str(value);
        Some(())
    })?;
    Some(out)
}

/// Whether a rule's filter `rule` matches every topic that `asked` (a topic name, or a
/// subscription filter) stands for.
pub fn covers(rule: &str, asked: &str) -> bool {
    let mut rule_levels = rule.split('/');
    let mut asked_levels = asked.split('/').peekable();
    // `$SYS/…` and other `$` topics are never matched by a leading wildcard
    let dollar = asked.starts_with('$');
    let mut first = true;
    loop {
        match (rule_levels.next(), asked_levels.peek().copied()) {
            (Some("#"), _) => return !(first && dollar),
            (Some("+"), Some(level)) => {
                if (first && dollar) || level == "#" {
                    return false;
                }
                asked_levels.next();
            }
            (Some(literal), Some(level)) => {
                if literal != level {
                    return false;
                }
                asked_levels.next();
            }
            (None, None) => return true,
            _ => return false,
        }
        first = false;
    }
}

/// An MQTT filter: `#` only as the whole last level, `+` only as a whole level.
fn valid_filter(filter: &str) -> bool {
    let levels: Vec<&str> = filter.split('/').collect();
    !filter.is_empty()
        && levels.iter().enumerate().all(|(i, level)| {
            (!level.contains('#') || (*level == "#" && i == levels.len() - 1))
                && (!level.contains('+') || *level == "+")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(toml: &str) -> TopicRules {
        #[derive(Deserialize)]
        struct Wrap {
            topic_rule: Vec<TopicRuleSettings>,
        }
        let wrap: Wrap = config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("parse");
        TopicRules::compile(wrap.topic_rule, TopicSettings::default()).expect("compile")
    }

    fn access(user: &str, action: Action, topic: &str) -> MqttAccess {
        MqttAccess {
            username: user.into(),
            clientid: Some(format!("c-{user}")),
            action,
            topic: topic.into(),
            qos: Some(0),
            retain: Some(false),
        }
    }

    /// No verified token.
    const NONE: Option<&[Arc<str>]> = None;

    fn ip() -> IpAddr {
        "10.1.2.3".parse().unwrap()
    }

    #[test]
    fn wildcards_match_levels() {
        assert!(covers("a/+/c", "a/b/c"));
        assert!(!covers("a/+/c", "a/b/d/c"));
        assert!(covers("a/#", "a"));
        assert!(covers("a/#", "a/b/c"));
        assert!(covers("#", "anything/at/all"));
        assert!(!covers("a/b", "a/b/c"));
    }

    #[test]
    fn dollar_topics_escape_leading_wildcards() {
        assert!(!covers("#", "$SYS/brokers"));
        assert!(!covers("+/brokers", "$SYS/brokers"));
        assert!(covers("$SYS/#", "$SYS/brokers"));
    }

    #[test]
    fn subscriptions_are_checked_filter_against_filter() {
        assert!(covers("a/+/c", "a/+/c"));
        assert!(covers("a/#", "a/+/c"));
        assert!(
            !covers("a/b/c", "a/+/c"),
            "the rule covers one topic of many"
        );
        assert!(!covers("a/+", "a/#"));
        assert!(covers("a/#", "a/#"));
    }

    #[test]
    fn placeholders_with_hostile_values_never_match() {
        let r =
            rules("[[topic_rule]]\npermission = \"allow\"\ntopics = [\"users/${username}/#\"]\n");
        assert_eq!(
            r.decide(
                &access("alice", Action::Publish, "users/alice/x"),
                ip(),
                NONE
            )
            .0,
            Permission::Allow
        );
        assert_eq!(
            r.decide(&access("alice", Action::Publish, "users/bob/x"), ip(), NONE)
                .0,
            Permission::Deny
        );
        for hostile in ["#", "+", "a/b", ""] {
            let a = access(hostile, Action::Subscribe, "users/#");
            assert_eq!(r.decide(&a, ip(), NONE).0, Permission::Deny, "{hostile:?}");
        }
    }

    #[test]
    fn rules_are_ordered_and_eq_is_literal() {
        let r = rules(
            "[[topic_rule]]\npermission = \"deny\"\naction = \"subscribe\"\ntopics = [\"eq sensors/#\"]\n\
             [[topic_rule]]\npermission = \"allow\"\ntopics = [\"sensors/#\"]\n",
        );
        assert_eq!(
            r.decide(&access("u", Action::Subscribe, "sensors/#"), ip(), NONE),
            (Permission::Deny, Some(0))
        );
        assert_eq!(
            r.decide(&access("u", Action::Subscribe, "sensors/a"), ip(), NONE),
            (Permission::Allow, Some(1))
        );
        assert_eq!(
            r.decide(&access("u", Action::Publish, "other"), ip(), NONE),
            (Permission::Deny, None)
        );
    }

    #[test]
    fn matchers_all_hold() {
        let r = rules(
            "[[topic_rule]]\npermission = \"allow\"\naction = \"publish\"\ntopics = [\"cmd/#\"]\nusername = \"ops-*\"\nclient_ip = [\"10.0.0.0/8\"]\nroles = [\"operator\"]\nqos = [0, 1]\nretain = false\n",
        );
        let roles: Box<[Arc<str>]> = Box::new(["operator".into()]);
        let ok = access("ops-1", Action::Publish, "cmd/restart");
        assert_eq!(r.decide(&ok, ip(), Some(&roles)).0, Permission::Allow);
        assert_eq!(r.decide(&ok, ip(), NONE).0, Permission::Deny, "no role");
        assert_eq!(
            r.decide(&ok, "192.0.2.1".parse().unwrap(), Some(&roles)).0,
            Permission::Deny
        );
        assert_eq!(
            r.decide(
                &access("dev-1", Action::Publish, "cmd/x"),
                ip(),
                Some(&roles)
            )
            .0,
            Permission::Deny
        );
        let qos2 = MqttAccess {
            qos: Some(2),
            ..ok.clone()
        };
        assert_eq!(r.decide(&qos2, ip(), Some(&roles)).0, Permission::Deny);
        let retained = MqttAccess {
            retain: Some(true),
            ..ok.clone()
        };
        assert_eq!(r.decide(&retained, ip(), Some(&roles)).0, Permission::Deny);
        let subscribe = MqttAccess {
            action: Action::Subscribe,
            ..ok
        };
        assert_eq!(
            r.decide(&subscribe, ip(), Some(&roles)).0,
            Permission::Deny,
            "publish only"
        );
    }

    #[test]
    fn an_expanded_value_is_never_expanded_again() {
        let r =
            rules("[[topic_rule]]\npermission = \"allow\"\ntopics = [\"sensors/${username}/#\"]\n");
        let a = MqttAccess {
            username: "${clientid}".into(),
            clientid: Some("c1".into()),
            ..access("x", Action::Publish, "sensors/c1/temp")
        };
        assert_eq!(r.decide(&a, ip(), NONE).0, Permission::Deny);
        let literal = MqttAccess {
            topic: "sensors/${clientid}/temp".into(),
            ..a
        };
        assert_eq!(r.decide(&literal, ip(), NONE).0, Permission::Allow);
    }

    #[test]
    fn a_missing_fact_never_makes_an_allow_match_and_always_a_deny() {
        let allow = rules(
            "[[topic_rule]]\npermission = \"allow\"\ntopics = [\"t/#\"]\nqos = [0, 1]\nretain = false\n\
             [[topic_rule]]\npermission = \"allow\"\ntopics = [\"c/${clientid}\"]\n\
             [[topic_rule]]\npermission = \"allow\"\ntopics = [\"r/#\"]\nroles = [\"reader\"]\n\
             [[topic_rule]]\npermission = \"allow\"\ntopics = [\"k/#\"]\nclientid = \"c-*\"\n",
        );
        let base = access("u", Action::Publish, "t/1");
        assert_eq!(allow.decide(&base, ip(), NONE).0, Permission::Allow);
        for missing in [
            MqttAccess {
                qos: None,
                ..base.clone()
            },
            MqttAccess {
                retain: None,
                ..base.clone()
            },
            MqttAccess {
                clientid: None,
                topic: "c/x".into(),
                ..base.clone()
            },
            MqttAccess {
                clientid: None,
                topic: "k/x".into(),
                ..base.clone()
            },
        ] {
            assert_eq!(
                allow.decide(&missing, ip(), NONE),
                (Permission::Deny, None),
                "{missing:?}"
            );
        }
        let reader: Box<[Arc<str>]> = Box::new(["reader".into()]);
        let r = access("u", Action::Publish, "r/1");
        assert_eq!(allow.decide(&r, ip(), Some(&reader)).0, Permission::Allow);
        assert_eq!(
            allow.decide(&r, ip(), NONE),
            (Permission::Deny, None),
            "no token"
        );

        let deny = rules(
            "[[topic_rule]]\npermission = \"deny\"\ntopics = [\"#\"]\nclientid = \"blocked-*\"\n\
             [[topic_rule]]\npermission = \"deny\"\ntopics = [\"#\"]\nqos = [2]\n\
             [[topic_rule]]\npermission = \"deny\"\ntopics = [\"p/${clientid}/#\"]\n\
             [[topic_rule]]\npermission = \"deny\"\ntopics = [\"#\"]\nroles = [\"banned\"]\n\
             [[topic_rule]]\npermission = \"allow\"\ntopics = [\"#\"]\n",
        );
        let ok = access("u", Action::Publish, "x");
        assert_eq!(
            deny.decide(&ok, ip(), Some(&reader)),
            (Permission::Allow, Some(4))
        );
        let no_client = MqttAccess {
            clientid: None,
            ..ok.clone()
        };
        assert_eq!(
            deny.decide(&no_client, ip(), Some(&reader)),
            (Permission::Deny, Some(0))
        );
        let no_qos = MqttAccess {
            qos: None,
            ..ok.clone()
        };
        assert_eq!(
            deny.decide(&no_qos, ip(), Some(&reader)),
            (Permission::Deny, Some(1))
        );
        assert_eq!(
            deny.decide(&ok, ip(), NONE),
            (Permission::Deny, Some(3)),
            "roles unknown"
        );
        // qos and retain are publish matchers: a subscription has none to miss, and the
        // rule holds for it as written (qos = [2] does not restrict subscriptions)
        let subscribe = MqttAccess {
            action: Action::Subscribe,
            qos: None,
            retain: None,
            ..ok
        };
        assert_eq!(
            deny.decide(&subscribe, ip(), Some(&reader)),
            (Permission::Deny, Some(1))
        );
    }

    #[test]
    fn unknown_topic_placeholders_are_refused() {
        #[derive(Deserialize)]
        struct Wrap {
            topic_rule: Vec<TopicRuleSettings>,
        }
        let text = "[[topic_rule]]\npermission = \"allow\"\ntopics = [\"a/${peerhost}\"]\n";
        let wrap: Wrap = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("parse");
        let error = TopicRules::compile(wrap.topic_rule, TopicSettings::default())
            .expect_err("unknown placeholder");
        assert!(error.to_string().contains("peerhost"), "{error}");
    }

    #[test]
    fn bad_filters_are_refused() {
        for bad in ["a/#/b", "a/b#", "a/+b"] {
            let text = format!("[[topic_rule]]\npermission = \"allow\"\ntopics = [\"{bad}\"]\n");
            #[derive(Deserialize)]
            struct Wrap {
                topic_rule: Vec<TopicRuleSettings>,
            }
            let wrap: Wrap = config::Config::builder()
                .add_source(config::File::from_str(&text, config::FileFormat::Toml))
                .build()
                .and_then(|c| c.try_deserialize())
                .expect("parse");
            assert!(
                TopicRules::compile(wrap.topic_rule, TopicSettings::default()).is_err(),
                "{bad}"
            );
        }
    }
}
