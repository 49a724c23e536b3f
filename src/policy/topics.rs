//! Topic rules for MQTT callers, modelled on EMQX's file ACL: ordered, first match wins,
//! no match decides by `[topics] no_match` (deny by default).
//!
//! Takes: the broker's facts about one publish or subscribe (username, clientid, client
//! address, topic or filter, qos, retain) and the roles of a verified token, if any.
//! Returns: allow or deny (or ignore, where the operator asks for it), and which rule
//! decided. Must never: let a leading `+` or `#` match a `$` topic, let a subscription
//! filter through a rule that covers only some of the topics it can match, or expand a
//! `${username}`/`${clientid}` that is empty or holds `+`, `#` or `/` (a user named `#`
//! would otherwise get everything).

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;

use crate::request::{Action, MqttAccess};
use crate::settings::{ConfigError, StringList, choices};

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
    /// Levels, with `${username}`/`${clientid}` left to expand per request.
    Pattern(String),
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
                        Filter::Pattern(text.clone())
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

    /// The permission for one access, and the index of the rule that gave it (`None`:
    /// no rule matched).
    pub fn decide(
        &self,
        access: &MqttAccess,
        client_ip: IpAddr,
        roles: &[Arc<str>],
    ) -> (Permission, Option<usize>) {
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.applies(access, client_ip, roles) {
                return (rule.permission, Some(index));
            }
        }
        (self.no_match, None)
    }
}

impl TopicRule {
    fn applies(&self, access: &MqttAccess, client_ip: IpAddr, roles: &[Arc<str>]) -> bool {
        // (a read-write access is decided as a publish and a subscribe, one by one)
        let action = matches!(
            (self.actions, access.action),
            (Actions::All, _)
                | (Actions::Publish, Action::Publish)
                | (Actions::Subscribe, Action::Subscribe)
        );
        if !action {
            return false;
        }
        if self
            .username
            .as_ref()
            .is_some_and(|r| !r.matches(&access.username))
            || self
                .clientid
                .as_ref()
                .is_some_and(|r| !r.matches(&access.clientid))
        {
            return false;
        }
        if let Some(networks) = &self.client_ip {
            let ip = client_ip.to_canonical();
            if !networks.iter().any(|n| n.contains(&ip)) {
                return false;
            }
        }
        if !self
            .roles
            .iter()
            .all(|r| roles.iter().any(|have| **have == **r))
        {
            return false;
        }
        if access.action == Action::Publish {
            if let (Some(allowed), Some(qos)) = (&self.qos, access.qos)
                && !allowed.contains(&qos)
            {
                return false;
            }
            if let Some(retain) = self.retain
                && access.retain.is_some_and(|r| r != retain)
            {
                return false;
            }
        }
        self.filters.iter().any(|filter| match filter {
            Filter::Literal(literal) => *literal == access.topic,
            Filter::Pattern(pattern) => match expand(pattern, access) {
                // a publish names one topic; a subscription is allowed only if the rule
                // covers every topic its filter can match: `covers` handles both
                Some(filter) => covers(&filter, &access.topic),
                None => false,
            },
        })
    }
}

/// `${username}` and `${clientid}` in a filter; `None` when a value is empty or holds
/// `+`, `#` or `/` (it would widen the filter).
fn expand(pattern: &str, access: &MqttAccess) -> Option<String> {
    let mut out = pattern.to_string();
    for (placeholder, value) in [
        ("${username}", &access.username),
        ("${clientid}", &access.clientid),
    ] {
        if out.contains(placeholder) {
            if value.is_empty() || value.contains(['+', '#', '/']) {
                return None;
            }
            out = out.replace(placeholder, value);
        }
    }
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
            clientid: format!("c-{user}"),
            action,
            topic: topic.into(),
            qos: Some(0),
            retain: Some(false),
        }
    }

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
                &[]
            )
            .0,
            Permission::Allow
        );
        assert_eq!(
            r.decide(&access("alice", Action::Publish, "users/bob/x"), ip(), &[])
                .0,
            Permission::Deny
        );
        for hostile in ["#", "+", "a/b", ""] {
            let a = access(hostile, Action::Subscribe, "users/#");
            assert_eq!(r.decide(&a, ip(), &[]).0, Permission::Deny, "{hostile:?}");
        }
    }

    #[test]
    fn rules_are_ordered_and_eq_is_literal() {
        let r = rules(
            "[[topic_rule]]\npermission = \"deny\"\naction = \"subscribe\"\ntopics = [\"eq sensors/#\"]\n\
             [[topic_rule]]\npermission = \"allow\"\ntopics = [\"sensors/#\"]\n",
        );
        assert_eq!(
            r.decide(&access("u", Action::Subscribe, "sensors/#"), ip(), &[]),
            (Permission::Deny, Some(0))
        );
        assert_eq!(
            r.decide(&access("u", Action::Subscribe, "sensors/a"), ip(), &[]),
            (Permission::Allow, Some(1))
        );
        assert_eq!(
            r.decide(&access("u", Action::Publish, "other"), ip(), &[]),
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
        assert_eq!(r.decide(&ok, ip(), &roles).0, Permission::Allow);
        assert_eq!(r.decide(&ok, ip(), &[]).0, Permission::Deny, "no role");
        assert_eq!(
            r.decide(&ok, "192.0.2.1".parse().unwrap(), &roles).0,
            Permission::Deny
        );
        assert_eq!(
            r.decide(&access("dev-1", Action::Publish, "cmd/x"), ip(), &roles)
                .0,
            Permission::Deny
        );
        let qos2 = MqttAccess {
            qos: Some(2),
            ..ok.clone()
        };
        assert_eq!(r.decide(&qos2, ip(), &roles).0, Permission::Deny);
        let retained = MqttAccess {
            retain: Some(true),
            ..ok.clone()
        };
        assert_eq!(r.decide(&retained, ip(), &roles).0, Permission::Deny);
        let subscribe = MqttAccess {
            action: Action::Subscribe,
            ..ok
        };
        assert_eq!(
            r.decide(&subscribe, ip(), &roles).0,
            Permission::Deny,
            "publish only"
        );
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
