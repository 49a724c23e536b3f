//! Log output: every record through `log` and `env_logger`, filtered by `RUST_LOG`
//! (default `info`), written plain or as one JSON object per line (`[log] format`).
//!
//! Takes: the configured format, once at start. Returns: nothing; it installs the logger.
//! Decision records carry their fields as key-values (`crate::record`): the plain format
//! writes them as ` key=value` after the message (quoted where a value holds a space or
//! a quote), the JSON format as fields of the record's object. Must never: add a field
//! a record did not carry (credentials never reach a record in the first place), or
//! write a record over more than one line.

use std::io::Write;

use crate::settings::choices;
use log::kv::{Key, Value, VisitSource};

/// How log records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `[time LEVEL target] message key=value …`
    #[default]
    Plain,
    /// `{"ts": …, "level": …, "target": …, "msg": …, "key": value, …}`
    Json,
}

choices!(LogFormat {
    "plain" => Plain,
    "json" => Json,
});

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Plain => "plain",
            LogFormat::Json => "json",
        }
    }
}

/// The key-values of one record, in order; empty values are left out.
struct Fields(Vec<(String, serde_json::Value)>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let value = match value.to_u64() {
            Some(number) => serde_json::Value::from(number),
            None => {
                let text = value.to_string();
                if text.is_empty() {
                    return Ok(());
                }
                serde_json::Value::String(text)
            }
        };
        self.0.push((key.as_str().to_string(), value));
        Ok(())
    }
}

fn fields(record: &log::Record<'_>) -> Vec<(String, serde_json::Value)> {
    let mut fields = Fields(Vec::new());
    let _ = record.key_values().visit(&mut fields);
    fields.0
}

/// One record as a plain line (without the time and level prefix).
pub fn plain_line(record: &log::Record<'_>) -> String {
    let mut line = record.args().to_string();
    for (key, value) in fields(record) {
        match value {
            serde_json::Value::String(text)
                if key == "path" || text.contains([' ', '"', '=']) || text.is_empty() =>
            {
                line.push_str(&format!(" {key}={text:?}"));
            }
            serde_json::Value::String(text) => line.push_str(&format!(" {key}={text}")),
            other => line.push_str(&format!(" {key}={other}")),
        }
    }
    // one record, one line, whatever a message holds
    line.replace(['\r', '\n'], " ")
}

/// One record as a JSON object.
pub fn json_line(record: &log::Record<'_>, timestamp: &str) -> String {
    let mut object = serde_json::Map::new();
    object.insert("ts".into(), timestamp.into());
    object.insert("level".into(), record.level().as_str().into());
    object.insert("target".into(), record.target().into());
    object.insert("msg".into(), record.args().to_string().into());
    for (key, value) in fields(record) {
        object.insert(key, value);
    }
    serde_json::Value::Object(object).to_string()
}

/// Installs the logger: `RUST_LOG` filters (default `info`), `format` writes.
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    builder.format(move |buf, record| {
        let timestamp = buf.timestamp_micros().to_string();
        match format {
            LogFormat::Plain => writeln!(
                buf,
                "[{timestamp} {:<5} {}] {}",
                record.level(),
                record.target(),
                plain_line(record)
            ),
            LogFormat::Json => writeln!(buf, "{}", json_line(record, &timestamp)),
        }
    });
    // A second init (tests) keeps the first logger.
    let _ = builder.try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_record(check: impl Fn(&log::Record<'_>)) {
        let kvs: [(&str, &dyn log::kv::ToValue); 4] = [
            ("dialect", &"auth-request"),
            ("status", &200u16),
            ("path", &"/a b"),
            ("reason", &""),
        ];
        let record = log::Record::builder()
            .args(format_args!("decision"))
            .level(log::Level::Info)
            .target("verdict::decision")
            .key_values(&kvs)
            .build();
        check(&record);
    }

    #[test]
    fn plain_lines_carry_the_fields_as_pairs() {
        with_record(|record| {
            assert_eq!(
                plain_line(record),
                "decision dialect=auth-request status=200 path=\"/a b\""
            );
        });
    }

    #[test]
    fn json_lines_are_one_object_with_typed_fields() {
        with_record(|record| {
            let line = json_line(record, "2026-01-01T00:00:00Z");
            let value: serde_json::Value = serde_json::from_str(&line).expect("json");
            assert_eq!(value["msg"], "decision");
            assert_eq!(value["level"], "INFO");
            assert_eq!(value["status"], 200);
            assert_eq!(value["path"], "/a b");
            assert!(value.get("reason").is_none(), "empty fields are left out");
            assert!(!line.contains('\n'));
        });
    }
}
