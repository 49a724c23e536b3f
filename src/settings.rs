//! The configuration vocabulary: the error every validation step returns, and the value
//! types that settings structs across the crate deserialize.
//!
//! Takes: raw values from the `config` crate (file or `VERDICT__…` environment).
//! Returns: [`ConfigError`] (one line, naming the key), [`HumanDuration`], [`StringList`].
//! Must never: import another verdict module (everything that reads settings imports
//! this file, so it stays a leaf).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Why a configuration could not be used. The message is one line and names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(String),
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

impl ConfigError {
    pub fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// A duration written as `"30s"`, `"5m"`, `"250ms"` (humantime syntax) or whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Seconds(secs) => Ok(HumanDuration(Duration::from_secs(secs))),
            Raw::Text(text) => {
                let trimmed = text.trim();
                if let Ok(secs) = trimmed.parse::<u64>() {
                    return Ok(HumanDuration(Duration::from_secs(secs)));
                }
                humantime::parse_duration(trimmed).map(HumanDuration).map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{text:?} is not a duration: write one like \"30s\", \"5m\", \"1h30m\" or \"250ms\" (ISO 8601 forms like PT30S are not read)"
                    ))
                })
            }
        }
    }
}

/// A list given either as a real list or, from an environment variable, as one
/// comma-separated string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<String>),
            Text(String),
        }
        Ok(StringList(match Raw::deserialize(deserializer)? {
            Raw::List(items) => items,
            Raw::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }))
    }
}

/// Reads a setting that takes one of a fixed set of names; the error lists them all.
pub fn one_of<'de, D: Deserializer<'de>, T: Copy>(
    deserializer: D,
    choices: &[(&str, T)],
) -> Result<T, D::Error> {
    let text = String::deserialize(deserializer)?;
    choices
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            serde::de::Error::custom(format!("{text:?} is not one of {}", names.join(", ")))
        })
}

/// `Deserialize` for an enum setting, by the names it is written with in configuration.
/// Not serde's enum derive: the `config` crate reads an enum through its own access,
/// whose error ("enum Access does not have variant constructor authenticate") drops the
/// valid names serde passes it; this one lists them.
macro_rules! choices {
    ($ty:ident { $($name:literal => $variant:ident),+ $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::settings::one_of(deserializer, &[$(($name, $ty::$variant)),+])
            }
        }
    };
}
pub(crate) use choices;
