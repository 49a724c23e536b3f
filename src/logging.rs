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
use std::sync::{Condvar, Mutex, Once};
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

/// Writes ` key=value` for each field of a record straight into the line being built,
/// without allocating per field and without the formatting machinery for the strings
/// that make up nearly every field.
struct PlainFields<'a, W: Write>(&'a mut W);

impl<'kvs, W: Write> VisitSource<'kvs> for PlainFields<'_, W> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let out = &mut *self.0;
        if let Some(number) = value.to_u64() {
            write!(out, " {key}={number}")?;
            return Ok(());
        }
        let text = match value.to_borrowed_str() {
            Some(text) => std::borrow::Cow::Borrowed(text),
            None => std::borrow::Cow::Owned(value.to_string()),
        };
        if text.is_empty() {
            return Ok(());
        }
        out.write_all(b" ")?;
        out.write_all(key.as_str().as_bytes())?;
        out.write_all(b"=")?;
        // one record, one line: a control character never reaches the output raw
        if key.as_str() == "path"
            || text.contains(|c: char| matches!(c, ' ' | '"' | '=') || c.is_control())
        {
            write!(out, "{text:?}")?;
        } else {
            out.write_all(text.as_bytes())?;
        }
        Ok(())
    }
}

/// Writes one record as a plain line (without the time and level prefix, without the
/// newline): the message, on one line whatever it holds, then its fields.
fn write_plain<W: Write>(out: &mut W, record: &log::Record<'_>) -> std::io::Result<()> {
    let owned;
    let message = match record.args().as_str() {
        Some(message) => message,
        None => {
            owned = record.args().to_string();
            &owned
        }
    };
    if message.contains(['\r', '\n']) {
        out.write_all(message.replace(['\r', '\n'], " ").as_bytes())?;
    } else {
        out.write_all(message.as_bytes())?;
    }
    record
        .key_values()
        .visit(&mut PlainFields(out))
        .map_err(std::io::Error::other)
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

/// Wakes the writer thread early, when a batch is full.
static BATCH_FULL: Condvar = Condvar::new();

/// How often pending lines are written: one `write(2)` for all of them.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Past this much, the writer thread writes at once rather than waiting for the interval.
const FLUSH_AT: usize = 64 * 1024;

/// Past this much (standard error not keeping up), a logging thread writes the batch
/// itself: it waits rather than let the buffer grow without bound or drop a line.
const WRITE_INLINE_AT: usize = 4 * 1024 * 1024;

/// The logger's output: lines collect in memory and reach standard error in batches, so a
/// decision costs no system call. `env_logger` flushes its pipe after every record; here
/// that flush only hands the line over.
struct Batched;

impl Write for Batched {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let held = {
            let mut pending = PENDING
                .lock()
                .map_err(|_| std::io::Error::other("log buffer"))?;
            pending.extend_from_slice(bytes);
            pending.len()
        };
        if held >= WRITE_INLINE_AT {
            flush();
        } else if held >= FLUSH_AT {
            BATCH_FULL.notify_one();
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes every pending line now. Called by the writer thread every 100 ms and when
/// 64 KiB are pending, by a logging thread past 4 MiB, and before
/// the process exits for any reason (no line is lost on
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
/// standard error in batches from a writer thread every 100 ms (sooner past 64 KiB), and
/// at [`flush`].
pub fn init(format: LogFormat) {
    static WRITER: Once = Once::new();
    WRITER.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(|| {
                loop {
                    if let Ok(pending) = PENDING.lock() {
                        // until the interval is over or a batch is full
                        let _ = BATCH_FULL
                            .wait_timeout_while(pending, FLUSH_EVERY, |p| p.len() < FLUSH_AT);
                    } else {
                        std::thread::sleep(FLUSH_EVERY);
                    }
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
                write_plain(buf, record)?;
                buf.write_all(b"\n")
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

    /// One record as a plain line (without the time and level prefix).
    fn plain_line(record: &log::Record<'_>) -> String {
        let mut line = Vec::new();
        write_plain(&mut line, record).expect("written");
        String::from_utf8(line).expect("UTF-8")
    }

    /// A decision record carrying `kvs`.
    fn with_fields(kvs: &[(&str, &dyn log::kv::ToValue)], check: impl Fn(&log::Record<'_>)) {
        let record = log::Record::builder()
            .args(format_args!("decision"))
            .level(log::Level::Info)
            .target("verdict::decision")
            .key_values(&kvs)
            .build();
        check(&record);
    }

    fn with_record(check: impl Fn(&log::Record<'_>)) {
        with_fields(
            &[
                ("dialect", &"auth-request"),
                ("status", &200u16),
                ("path", &"/a b"),
                ("reason", &""),
            ],
            check,
        );
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
        with_fields(
            &[("host", &"a\u{1b}[31mb"), ("reason", &"one\ttwo")],
            |record| {
                let line = plain_line(record);
                assert_eq!(line, "decision host=\"a\\u{1b}[31mb\" reason=\"one\\ttwo\"");
                assert!(!line.contains(|c: char| c.is_control()));
            },
        );
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
