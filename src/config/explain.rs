//! Explaining a configuration problem: the `config` crate's message turned into one line
//! that names the key, the environment variable when one is to blame, and the usual fix.
//!
//! Takes: the message and the `VERDICT__…` overrides in force. Returns: a [`ConfigError`].
//! Must never: print a value (it may be a secret), or span more than one line.

use super::ENV_PREFIX;
use crate::settings::ConfigError;

/// The environment variable that set `key` (or a table above it), if one did.
fn variable_for<'a>(key: &str, overrides: &'a [(String, String)]) -> Option<&'a str> {
    overrides
        .iter()
        .map(|(name, _)| name.as_str())
        .find(|name| {
            let Some(rest) = name.strip_prefix(&format!("{ENV_PREFIX}__")) else {
                return false;
            };
            let dotted = rest.to_ascii_lowercase().replace("__", ".");
            key == dotted || key.starts_with(&format!("{dotted}."))
        })
}

/// A validation error that names the environment variable its value came from.
pub(super) fn name_the_variable(error: ConfigError, overrides: &[(String, String)]) -> ConfigError {
    match error {
        ConfigError::Invalid { key, problem } => match variable_for(&key, overrides) {
            Some(variable) => ConfigError::Invalid {
                problem: format!("{problem} (set by the environment variable {variable})"),
                key,
            },
            None => ConfigError::Invalid { key, problem },
        },
        other => other,
    }
}

/// The top-level sections of a configuration, for suggesting the variable meant.
pub(super) const SECTIONS: [&str; 10] = [
    "server",
    "headers",
    "cache",
    "authorizers",
    "route",
    "default_route",
    "log",
    "topic_rule",
    "topics",
    "mqtt",
];

/// The `config` crate's message as one line that names the key (`route[0].access`, not
/// `route[0]access`), the environment variable when one is to blame, and the usual fix.
pub(super) fn explain(text: &str, overrides: &[(String, String)]) -> ConfigError {
    let text = one_line(text);
    let (body, key) = match text.rsplit_once(" for key `") {
        // the key ends at its closing backtick; "in the environment" or a file name may
        // follow, and the variable is named below anyway
        Some((body, rest)) => (body, key_path(rest.split('`').next().unwrap_or_default())),
        None => (text.as_str(), String::new()),
    };
    let mut problem = plain(body);
    if key == "route" && problem.contains("expected a sequence") {
        problem.push_str(": write [[route]] (one table per route), not [route]");
    }
    if let Some(field) = problem
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        let unknown = if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        };
        if let Some(variable) = variable_for(&unknown, overrides) {
            let problem = match suggestion(variable) {
                Some(meant) => format!(
                    "names no key ({unknown}): sections and keys are separated by two underscores; did you mean {meant}?"
                ),
                None => format!("names no key ({unknown}): {problem}"),
            };
            return ConfigError::Invalid {
                key: format!("environment variable {variable}"),
                problem,
            };
        }
    }
    if key.is_empty() {
        return ConfigError::Load(problem);
    }
    name_the_variable(ConfigError::invalid(key, problem), overrides)
}

/// `route[0]access` as `route[0].access`.
fn key_path(raw: &str) -> String {
    let mut key = String::with_capacity(raw.len() + 4);
    let mut previous = ' ';
    for c in raw.chars() {
        if previous == ']' && c != '.' && c != '[' {
            key.push('.');
        }
        key.push(c);
        previous = c;
    }
    key
}

/// serde's wording in an operator's: a string where a list goes, a word where a number
/// goes; and no internal key (`demo`) among the ones a file may use.
fn plain(problem: &str) -> String {
    let problem = problem.replace("`demo`, ", "");
    if let Some(value) = problem
        .strip_prefix("invalid type: string ")
        .and_then(|rest| rest.strip_suffix(", expected a sequence"))
    {
        return format!("{value} is one value where a list goes: write [{value}]");
    }
    if let Some(value) = problem
        .strip_prefix("invalid type: string ")
        .and_then(|rest| {
            ["an integer", "u64", "usize", "u16", "u32", "u8"]
                .iter()
                .find_map(|t| rest.strip_suffix(&format!(", expected {t}")))
        })
    {
        return format!("{value} is not a whole number");
    }
    if let Some(value) = problem
        .strip_prefix("invalid type: string ")
        .and_then(|rest| rest.strip_suffix(", expected a boolean"))
    {
        return format!("{value} is not true or false");
    }
    problem
}

/// The variable an operator probably meant for one whose sections and keys are joined by
/// single underscores: `VERDICT__SERVER_LISTEN` or `VERDICT_SERVER_LISTEN` as
/// `VERDICT__SERVER__LISTEN`.
pub(super) fn suggestion(variable: &str) -> Option<String> {
    let rest = variable
        .strip_prefix(&format!("{ENV_PREFIX}__"))
        .or_else(|| variable.strip_prefix(&format!("{ENV_PREFIX}_")))?;
    let lower = rest.to_ascii_lowercase();
    let section = SECTIONS
        .iter()
        .filter(|s| lower.starts_with(&format!("{s}_")) && !lower.starts_with(&format!("{s}__")))
        .max_by_key(|s| s.len())?;
    let key = &rest[section.len() + 1..];
    Some(format!(
        "{ENV_PREFIX}__{}__{}",
        section.to_ascii_uppercase(),
        key
    ))
}

/// An error from deserializing a table on its own (`[authorizers.NAME]`, read by its
/// `type`), whose key path is relative to the table at `prefix`.
pub(super) fn explain_inside(
    prefix: &str,
    text: &str,
    overrides: &[(String, String)],
) -> ConfigError {
    let text = one_line(text);
    match text.rsplit_once(" for key `") {
        Some((body, rest)) => explain(&format!("{body} for key `{prefix}.{rest}"), overrides),
        None => name_the_variable(ConfigError::invalid(prefix, text), overrides),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
