//! Log output: every record through `log` and `env_logger`, filtered by `RUST_LOG`
//! (default `info`), written plain or as one JSON object per line (`[log] format`).
//!
//! Takes: the configured format, once at start. Returns: nothing; it installs the logger,
//! whose lines reach standard error in batches (no system call per decision) and are all
//! written by [`flush`] before the process exits.
//! Decision records carry their fields as key-values (`crate::record`): the plain format
//! writes them as ` key=value` after the message (quoted where a value holds a space or
//! a quote), the JSON format as fields of the record's object. Must never: add a field
//! a record did not carry (credentials never reach a record in the first place), or
//! write a record over more than one line.

use std::io::Write;
use std::sync::{Mutex, Once};
use std::time::Duration;

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

/// Appends ` key=value` for each field of a record, without allocating per field and
/// without the formatting machinery for the strings that make up nearly every field.
struct PlainFields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for PlainFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        use std::fmt::Write as _;
        let line = &mut *self.0;
        if let Some(number) = value.to_u64() {
            line.push(' ');
            line.push_str(key.as_str());
            line.push('=');
            let _ = write!(line, "{number}");
            return Ok(());
        }
        let text = match value.to_borrowed_str() {
            Some(text) => std::borrow::Cow::Borrowed(text),
            None => std::borrow::Cow::Owned(value.to_string()),
        };
        if text.is_empty() {
            return Ok(());
        }
        line.push(' ');
        line.push_str(key.as_str());
        line.push('=');
        // one record, one line: a control character never reaches the output raw
        if key.as_str() == "path"
            || text.contains(|c: char| matches!(c, ' ' | '"' | '=') || c.is_control())
        {
            let _ = write!(line, "{text:?}");
        } else {
            line.push_str(&text);
        }
        Ok(())
    }
}

/// One record as a plain line (without the time and level prefix).
pub fn plain_line(record: &log::Record<'_>) -> String {
    let mut line = String::with_capacity(256);
    match record.args().as_str() {
        Some(message) => line.push_str(message),
        None => {
            use std::fmt::Write as _;
            let _ = write!(line, "{}", record.args());
        }
    }
    let _ = record.key_values().visit(&mut PlainFields(&mut line));
    // one record, one line, whatever a message holds
    if line.contains(['\r', '\n']) {
        line = line.replace(['\r', '\n'], " ");
    }
    line
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

/// Log lines waiting to be written, shared by the logger and the thread that writes them.
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Held while a batch is taken and written.
static WRITING: Mutex<()> = Mutex::new(());

/// How often pending lines are written: one `write(2)` for all of them.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Past this much, lines are written at once rather than waiting for the interval.
const FLUSH_AT: usize = 64 * 1024;

/// The logger's output: lines collect in memory and reach standard error in batches, so a
/// decision costs no system call. `env_logger` flushes its pipe after every record; here
/// that flush only hands the line over.
struct Batched;

impl Write for Batched {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut pending = PENDING
                .lock()
                .map_err(|_| std::io::Error::other("log buffer"))?;
            pending.extend_from_slice(bytes);
            pending.len() >= FLUSH_AT
        };
        if full {
            flush();
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes every pending line now. Called every [`FLUSH_EVERY`] by the writer thread, past
/// [`FLUSH_AT`], and before the process exits for any reason (no line is lost on
/// SIGTERM). The batch is taken out of the buffer first, so a slow standard error never
/// holds up a request that logs.
pub fn flush() {
    // one writer at a time, so batches reach standard error in the order they were taken
    let _writing = WRITING.lock();
    let batch = match PENDING.lock() {
        Ok(mut pending) if !pending.is_empty() => std::mem::take(&mut *pending),
        _ => return,
    };
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(&batch);
    let _ = stderr.flush();
}

/// Installs the logger: `RUST_LOG` filters (default `info`), `format` writes, lines reach
/// standard error in batches every 100 ms (and at once past 64 KiB, and at [`flush`]).
pub fn init(format: LogFormat) {
    static WRITER: Once = Once::new();
    WRITER.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    flush();
                }
            });
    });
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    builder.target(env_logger::Target::Pipe(Box::new(Batched)));
    builder.format(move |buf, record| {
        let timestamp = buf.timestamp_micros();
        match format {
            LogFormat::Plain => {
                write!(buf, "[{timestamp} {:<5} ", record.level())?;
                buf.write_all(record.target().as_bytes())?;
                buf.write_all(b"] ")?;
                let mut line = plain_line(record);
                line.push('\n');
                buf.write_all(line.as_bytes())
            }
            LogFormat::Json => writeln!(buf, "{}", json_line(record, &timestamp.to_string())),
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
    fn plain_lines_quote_control_characters() {
        let kvs: [(&str, &dyn log::kv::ToValue); 2] =
            [("host", &"a\u{1b}[31mb"), ("reason", &"one\ttwo")];
        let record = log::Record::builder()
            .args(format_args!("decision"))
            .level(log::Level::Info)
            .target("verdict::decision")
            .key_values(&kvs)
            .build();
        let line = plain_line(&record);
        assert_eq!(line, "decision host=\"a\\u{1b}[31mb\" reason=\"one\\ttwo\"");
        assert!(!line.contains(|c: char| c.is_control()));
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
