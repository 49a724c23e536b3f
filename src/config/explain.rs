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

/// The `config` crate's message as one line that names the key (`route[0].access`, not
/// `route[0]access`), the environment variable when one is to blame, and the usual fix.
pub(super) fn explain(text: &str, overrides: &[(String, String)]) -> ConfigError {
    let text = one_line(text);
    let Some((body, rest)) = text.rsplit_once(" for key `") else {
        return ConfigError::Load(text);
    };
    let raw_key = rest.trim_end_matches('`');
    let mut key = String::with_capacity(raw_key.len() + 4);
    let mut previous = ' ';
    for c in raw_key.chars() {
        if previous == ']' && c != '.' && c != '[' {
            key.push('.');
        }
        key.push(c);
        previous = c;
    }
    let mut problem = body.to_string();
    if key == "route" && problem.contains("expected a sequence") {
        problem.push_str(": write [[route]] (one table per route), not [route]");
    }
    if let Some(field) = problem
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        let unknown = format!("{key}.{field}");
        if let Some(variable) = variable_for(&unknown, overrides) {
            return ConfigError::Invalid {
                key: format!("environment variable {variable}"),
                problem: format!("no key {unknown} ({problem})"),
            };
        }
    }
    name_the_variable(ConfigError::invalid(key, problem), overrides)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
