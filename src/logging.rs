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
        if let Some(number) = value.to_u64() {
            write!(self.0, " {key}={number}")?;
            return Ok(());
        }
        match value.to_borrowed_str() {
            Some(text) => write_plain_text(self.0, key.as_str(), text)?,
            None => write_plain_text(self.0, key.as_str(), &value.to_string())?,
        }
        Ok(())
    }
}

/// ` key=text`, quoted where the text could be read as more than one value (and `path`
/// always); nothing for an empty text.
fn write_plain_text<W: Write>(out: &mut W, key: &str, text: &str) -> std::io::Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    out.write_all(b" ")?;
    out.write_all(key.as_bytes())?;
    out.write_all(b"=")?;
    // one record, one line: a control character never reaches the output raw
    if key == "path" || text.contains(|c: char| matches!(c, ' ' | '"' | '=') || c.is_control()) {
        write!(out, "{text:?}")
    } else {
        out.write_all(text.as_bytes())
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

/// What waits to be written: log lines as text, and after them decision records as the
/// request threads handed them over (compact, unformatted). One lock for both, so a line
/// written after a decision never overtakes it: a text line first turns the records
/// before it into text.
struct Pending {
    text: Vec<u8>,
    records: Vec<u8>,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    text: Vec::new(),
    records: Vec::new(),
});

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

/// The format of this process's lines, once [`init`] ran (0: not installed, so decision
/// records go through `log` as any other record).
static FORMAT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

impl Pending {
    fn held(&self) -> usize {
        self.text.len() + self.records.len()
    }
}

/// After a line or records were added holding `held` bytes in all: wake the writer, or
/// write now when it is not keeping up.
fn added(held: usize) {
    if held >= WRITE_INLINE_AT {
        flush();
    } else if held >= FLUSH_AT {
        BATCH_FULL.notify_one();
    }
}

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
            if !pending.records.is_empty() {
                // the decisions before this line, in their place
                let records = std::mem::take(&mut pending.records);
                format_records(&records, &mut pending.text);
            }
            pending.text.extend_from_slice(bytes);
            pending.held()
        };
        added(held);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes every pending line now. Called by the writer thread every 100 ms and when
/// 64 KiB are pending, by a logging thread past 4 MiB, and before
/// the process exits for any reason (no line is lost on
/// SIGTERM). The batch is taken out of the buffer first (and its decision records
/// formatted after), so a slow standard error never holds up a request that logs.
pub fn flush() {
    // one writer at a time, so batches reach standard error in the order they were taken
    let _writing = WRITING.lock();
    let (mut batch, records) = match PENDING.lock() {
        Ok(mut pending) if pending.held() > 0 => (
            std::mem::take(&mut pending.text),
            std::mem::take(&mut pending.records),
        ),
        _ => return,
    };
    format_records(&records, &mut batch);
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(&batch);
    let _ = stderr.flush();
}

/// One decision's log record, as the request thread hands it over: the fields verbatim,
/// nothing formatted (the writer thread formats them).
#[derive(Debug)]
pub struct DecisionRecord<'a> {
    pub level: log::Level,
    pub target: &'a str,
    pub message: &'a str,
    /// The fields in the order the line shows them (an empty text is left out).
    pub fields: &'a [(&'a str, Field<'a>)],
}

/// The most fields a handed-over record carries (a decision has 15).
const MAX_FIELDS: usize = 32;

/// One field of a [`DecisionRecord`].
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    Text(&'a str),
    Number(u64),
    Address(Option<std::net::IpAddr>),
    /// A text as the writer reads it back (never handed over).
    Bytes(&'a [u8]),
}

/// Logs a decision's record: handed to the writer thread, which formats it, when this
/// process's logger is [`init`]'s; else through `log` as any record.
pub fn decision(record: &DecisionRecord<'_>) {
    if !hand_over(record) {
        let texts: Vec<String> = record
            .fields
            .iter()
            .filter_map(|(_, f)| match f {
                Field::Address(ip) => Some(ip.map_or_else(|| "-".to_string(), |ip| ip.to_string())),
                _ => None,
            })
            .collect();
        let mut addresses = texts.iter();
        let values: Vec<(&str, log::kv::Value<'_>)> = record
            .fields
            .iter()
            .map(|(name, field)| {
                let value = match field {
                    Field::Text(text) => log::kv::Value::from(*text),
                    Field::Bytes(bytes) => {
                        log::kv::Value::from(std::str::from_utf8(bytes).unwrap_or(""))
                    }
                    Field::Number(number) => log::kv::Value::from(*number),
                    Field::Address(_) => {
                        log::kv::Value::from(addresses.next().map_or("-", String::as_str))
                    }
                };
                (*name, value)
            })
            .collect();
        log::logger().log(
            &log::Record::builder()
                .args(format_args!("{}", record.message))
                .level(record.level)
                .target(record.target)
                .key_values(&values)
                .build(),
        );
    }
}

/// Hands a decision's record to the writer thread; `false` when no writer is installed.
fn hand_over(record: &DecisionRecord<'_>) -> bool {
    if FORMAT.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        return false;
    }
    let at = now_micros();
    push_record(|out| encode(out, record, at))
}

/// Appends one handed-over record to the pending ones, under the one lock; `false` when
/// the lock is poisoned (the caller logs another way).
fn push_record(write: impl FnOnce(&mut Vec<u8>)) -> bool {
    let held = {
        let Ok(mut pending) = PENDING.lock() else {
            return false;
        };
        write(&mut pending.records);
        pending.held()
    };
    added(held);
    true
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    let length = u32::try_from(text.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&text.as_bytes()[..length as usize]);
}

/// The compact form: time, level, target, message, field count, then each field's name
/// and tagged value.
fn encode(out: &mut Vec<u8>, record: &DecisionRecord<'_>, at: u64) {
    out.push(FULL);
    out.extend_from_slice(&at.to_le_bytes());
    out.push(record.level as u8);
    put_text(out, record.target);
    put_text(out, record.message);
    let fields = &record.fields[..record.fields.len().min(MAX_FIELDS)];
    out.push(u8::try_from(fields.len()).unwrap_or(u8::MAX));
    for (name, value) in fields {
        put_text(out, name);
        match value {
            Field::Text(text) => {
                out.push(0);
                put_text(out, text);
            }
            Field::Bytes(bytes) => {
                out.push(0);
                put_text(out, &String::from_utf8_lossy(bytes));
            }
            Field::Number(number) => {
                out.push(1);
                out.extend_from_slice(&number.to_le_bytes());
            }
            Field::Address(None) => out.push(2),
            Field::Address(Some(std::net::IpAddr::V4(ip))) => {
                out.push(3);
                out.extend_from_slice(&ip.octets());
            }
            Field::Address(Some(std::net::IpAddr::V6(ip))) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
            }
        }
    }
}

/// Reads the compact form back, a record at a time.
struct Decoder<'a>(&'a [u8]);

impl<'a> Decoder<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }
    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.raw_text()?).ok()
    }
    /// A text's bytes, not checked again (the encoder took them from a `&str`).
    fn raw_text(&mut self) -> Option<&'a [u8]> {
        let length = u32::from_le_bytes(self.bytes(4)?.try_into().ok()?);
        self.bytes(length as usize)
    }
}

/// Writes ` name=` and gives the line back for the value.
fn field_start<'o>(out: &'o mut Vec<u8>, name: &[u8]) -> &'o mut Vec<u8> {
    out.push(b' ');
    out.extend_from_slice(name);
    out.push(b'=');
    out
}

/// Whether a text must be quoted in a plain line: a space, a quote, an `=` or a control
/// character (C0, DEL, or C1 as UTF-8 writes it) would otherwise read as more than one
/// value or break the line. The same rule as [`write_plain_text`], on bytes.
fn needs_quotes(text: &[u8]) -> bool {
    text.iter()
        .any(|&b| matches!(b, b' ' | b'"' | b'=' | 0x7f) || b < 0x20)
        || text
            .windows(2)
            .any(|pair| pair[0] == 0xc2 && (0x80..=0x9f).contains(&pair[1]))
}

thread_local! {
    /// The last whole second a line was stamped with, and its text up to the seconds.
    static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
}

/// `at` (Unix microseconds) as RFC 3339 with microseconds, as `env_logger` writes it; the
/// date part formatted once per second.
fn write_timestamp(out: &mut Vec<u8>, at: u64) {
    write_time_text(out, at);
    out.push(b'Z');
}

/// `at` as [`write_timestamp`] writes it, without the `Z` (26 bytes).
fn write_time_text(out: &mut Vec<u8>, at: u64) {
    let (second, micros) = (at / 1_000_000, at % 1_000_000);
    let prefix = SECOND.with(|cell| {
        let (cached, text) = cell.get();
        if cached == second {
            return text;
        }
        let formatted =
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(second))
                .to_string();
        let mut text = [0u8; 19];
        let bytes = formatted.as_bytes();
        let n = bytes.len().min(19);
        text[..n].copy_from_slice(&bytes[..n]);
        cell.set((second, text));
        text
    });
    out.extend_from_slice(&prefix);
    out.push(b'.');
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(micros).as_bytes();
    out.extend(std::iter::repeat_n(
        b'0',
        6usize.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits);
}

/// A handed-over record's kind: every field ([`encode`]), or a [`PreparedLine`] with its
/// time and latency ([`decision_again`]).
const FULL: u8 = 0;
const AGAIN: u8 = 1;

/// The line of a decision made again, byte for byte the same as an earlier one but for
/// its time and its latency: formatted once, by the writer's own code, into three pieces
/// around those two values. A memo hit hands over the two numbers and copies the pieces;
/// the writer copies them into the batch.
#[derive(Debug, Clone)]
pub struct PreparedLine {
    /// `[time first: u8][piece length: u32, piece] × 3`, as the record stream carries it
    template: Box<[u8]>,
}

/// Two times whose formatted texts differ in their first and their last digit (the
/// fixed-width RFC 3339 form, `Z` excluded), and two latencies of ten digits that differ
/// in every one: formatting a record with each shows where the values are in its line.
const PROBE_AT: [u64; 2] = [1_000_000_000_000_000, 1];
const PROBE_LATENCY: [u64; 2] = [1_111_111_111, 2_222_222_222];
/// The length of a formatted time without its `Z`.
const TIME_LENGTH: usize = 26;

/// The part of `line` that differs from `other`, which differs from it only there.
fn differing(line: &[u8], other: &[u8]) -> Option<std::ops::Range<usize>> {
    if line.len() != other.len() {
        return None;
    }
    let start = line.iter().zip(other).position(|(a, b)| a != b)?;
    let end = line.len()
        - line
            .iter()
            .rev()
            .zip(other.iter().rev())
            .position(|(a, b)| a != b)?;
    Some(start..end)
}

/// Prepares the line `record` makes, for [`decision_again`]: `None` when decision records
/// are not this process's logger's to format, or the record has no `latency_us` number.
pub fn prepare(record: &DecisionRecord<'_>) -> Option<PreparedLine> {
    if FORMAT.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        return None;
    }
    prepare_line(record)
}

fn prepare_line(record: &DecisionRecord<'_>) -> Option<PreparedLine> {
    let mut fields: Vec<(&str, Field<'_>)> = record.fields.to_vec();
    let latency = fields
        .iter()
        .position(|(name, value)| *name == "latency_us" && matches!(value, Field::Number(_)))?;
    let mut line = |at: u64, micros: u64| {
        fields[latency].1 = Field::Number(micros);
        let mut compact = Vec::new();
        encode(
            &mut compact,
            &DecisionRecord {
                fields: &fields,
                ..*record
            },
            at,
        );
        let mut out = Vec::new();
        format_records(&compact, &mut out);
        out
    };
    let first = line(PROBE_AT[0], PROBE_LATENCY[0]);
    let time = differing(&first, &line(PROBE_AT[1], PROBE_LATENCY[0]))?;
    let micros = differing(&first, &line(PROBE_AT[0], PROBE_LATENCY[1]))?;
    // the two places are the values themselves and nothing else, or nothing is prepared
    let expected_time = humantime::format_rfc3339_micros(
        std::time::UNIX_EPOCH + Duration::from_micros(PROBE_AT[0]),
    )
    .to_string();
    let expected_micros = PROBE_LATENCY[0].to_string();
    if time.len() != TIME_LENGTH
        || first.get(time.clone())? != &expected_time.as_bytes()[..TIME_LENGTH]
        || first.get(micros.clone())? != expected_micros.as_bytes()
        || (time.start < micros.end && micros.start < time.end)
    {
        return None;
    }
    let time_first = time.start < micros.start;
    let (a, b) = if time_first {
        (time.clone(), micros.clone())
    } else {
        (micros.clone(), time.clone())
    };
    let mut template = vec![u8::from(time_first)];
    for piece in [&first[..a.start], &first[a.end..b.start], &first[b.end..]] {
        template.extend_from_slice(&u32::try_from(piece.len()).ok()?.to_le_bytes());
        template.extend_from_slice(piece);
    }
    Some(PreparedLine {
        template: template.into_boxed_slice(),
    })
}

/// Logs a decision whose line `line` prepared, at this time and with `latency_us`;
/// `false` when it could not be handed over (the caller logs the record itself).
pub fn decision_again(line: &PreparedLine, latency_us: u64) -> bool {
    let at = now_micros();
    push_record(|out| {
        out.push(AGAIN);
        out.extend_from_slice(&at.to_le_bytes());
        out.extend_from_slice(&latency_us.to_le_bytes());
        out.extend_from_slice(&line.template);
    })
}

fn format_again(decoder: &mut Decoder<'_>, out: &mut Vec<u8>) -> Option<()> {
    let at = decoder.u64()?;
    let latency = decoder.u64()?;
    let time_first = decoder.u8()? == 1;
    let pieces = [
        decoder.raw_text()?,
        decoder.raw_text()?,
        decoder.raw_text()?,
    ];
    out.extend_from_slice(pieces[0]);
    let mut values = [Slot::Time, Slot::Latency];
    if !time_first {
        values.swap(0, 1);
    }
    for (value, piece) in values.iter().zip(&pieces[1..]) {
        match value {
            Slot::Time => write_time_text(out, at),
            Slot::Latency => out.extend_from_slice(itoa::Buffer::new().format(latency).as_bytes()),
        }
        out.extend_from_slice(piece);
    }
    Some(())
}

/// The two values of a prepared line, in the order they are written.
enum Slot {
    Time,
    Latency,
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The decision records in `records`, formatted as every other line is, appended to `out`.
fn format_records(records: &[u8], out: &mut Vec<u8>) {
    let mut decoder = Decoder(records);
    while !decoder.0.is_empty() {
        if format_one(&mut decoder, out).is_none() {
            // never: the encoder wrote these bytes; were it to, no half line is written
            return;
        }
    }
}

fn format_one(decoder: &mut Decoder<'_>, out: &mut Vec<u8>) -> Option<()> {
    match decoder.u8()? {
        FULL => {}
        AGAIN => return format_again(decoder, out),
        _ => return None,
    }
    let at = decoder.u64()?;
    let level = match decoder.u8()? {
        1 => log::Level::Error,
        2 => log::Level::Warn,
        3 => log::Level::Info,
        4 => log::Level::Debug,
        _ => log::Level::Trace,
    };
    let target = decoder.text()?;
    let message = decoder.text()?;
    let count = usize::from(decoder.u8()?).min(MAX_FIELDS);
    let mut fields: [(&[u8], Field<'_>); MAX_FIELDS] = [(b"", Field::Address(None)); MAX_FIELDS];
    for slot in fields.iter_mut().take(count) {
        // names are the record's own static texts: read back as bytes, not checked again
        let name = decoder.raw_text()?;
        let value = match decoder.u8()? {
            0 => Field::Bytes(decoder.raw_text()?),
            1 => Field::Number(decoder.u64()?),
            2 => Field::Address(None),
            3 => {
                let octets: [u8; 4] = decoder.bytes(4)?.try_into().ok()?;
                Field::Address(Some(std::net::IpAddr::from(octets)))
            }
            4 => {
                let octets: [u8; 16] = decoder.bytes(16)?.try_into().ok()?;
                Field::Address(Some(std::net::IpAddr::from(octets)))
            }
            _ => return None,
        };
        *slot = (name, value);
    }
    let fields = &fields[..count];
    let timestamp =
        humantime::format_rfc3339_micros(std::time::UNIX_EPOCH + Duration::from_micros(at));
    if FORMAT.load(std::sync::atomic::Ordering::Relaxed) == 2 {
        let addresses: Vec<String> = fields
            .iter()
            .filter_map(|(_, f)| match f {
                Field::Address(ip) => Some(ip.map_or_else(|| "-".to_string(), |ip| ip.to_string())),
                _ => None,
            })
            .collect();
        let mut addresses = addresses.iter();
        let texts: Vec<std::borrow::Cow<'_, str>> = fields
            .iter()
            .filter_map(|(_, f)| match f {
                Field::Bytes(bytes) => Some(String::from_utf8_lossy(bytes)),
                _ => None,
            })
            .collect();
        let mut texts = texts.iter();
        let values: Vec<(&str, Value<'_>)> = fields
            .iter()
            .map(|(name, field)| {
                let name = std::str::from_utf8(name).unwrap_or("field");
                let value = match field {
                    Field::Text(text) => Value::from(*text),
                    Field::Bytes(_) => Value::from(texts.next().map_or("", |t| t.as_ref())),
                    Field::Number(number) => Value::from(*number),
                    Field::Address(_) => Value::from(addresses.next().map_or("-", String::as_str)),
                };
                (name, value)
            })
            .collect();
        let line = json_line(
            &log::Record::builder()
                .args(format_args!("{message}"))
                .level(level)
                .target(target)
                .key_values(&values)
                .build(),
            &timestamp.to_string(),
        );
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        return Some(());
    }
    // the plain line, as the logger writes every other record, straight into the batch
    out.push(b'[');
    write_timestamp(out, at);
    let _ = write!(out, " {level:<5} ");
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b"] ");
    if message.contains(['\r', '\n']) {
        out.extend_from_slice(message.replace(['\r', '\n'], " ").as_bytes());
    } else {
        out.extend_from_slice(message.as_bytes());
    }
    for (name, field) in fields {
        match field {
            Field::Bytes([]) => {}
            Field::Bytes(bytes) if needs_quotes(bytes) || *name == b"path" => {
                let _ = write!(
                    out,
                    " {}={:?}",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(bytes)
                );
            }
            Field::Bytes(bytes) => field_start(out, name).extend_from_slice(bytes),
            Field::Text(text) => {
                let _ = write_plain_text(out, &String::from_utf8_lossy(name), text);
            }
            Field::Number(number) => {
                field_start(out, name)
                    .extend_from_slice(itoa::Buffer::new().format(*number).as_bytes());
            }
            Field::Address(None) => field_start(out, name).push(b'-'),
            Field::Address(Some(ip)) => {
                let _ = write!(field_start(out, name), "{ip}");
            }
        }
    }
    out.push(b'\n');
    Some(())
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
                            .wait_timeout_while(pending, FLUSH_EVERY, |p| p.held() < FLUSH_AT);
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
        // the same RFC 3339 microseconds the writer thread prints (env_logger's own
        // timestamp would bring a second date library into the build)
        let timestamp = humantime::format_rfc3339_micros(std::time::SystemTime::now());
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
    if builder.try_init().is_ok() {
        let code = match format {
            LogFormat::Plain => 1,
            LogFormat::Json => 2,
        };
        FORMAT.store(code, std::sync::atomic::Ordering::Relaxed);
    }
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
    fn with_fields(kvs: &[(&str, &dyn log::kv::ToValue)], mut check: impl FnMut(&log::Record<'_>)) {
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

    fn sample_fields() -> Vec<(&'static str, Field<'static>)> {
        vec![
            ("dialect", Field::Text("auth-request")),
            ("status", Field::Number(200)),
            ("path", Field::Text("/a b")),
            (
                "client_ip",
                Field::Address(Some("10.0.0.7".parse().unwrap())),
            ),
            ("user", Field::Text("u\u{1b}x")),
            ("reason", Field::Text("")),
            ("other_ip", Field::Address(None)),
        ]
    }

    #[test]
    fn a_handed_over_record_is_the_line_a_direct_one_would_be() {
        let fields = sample_fields();
        let record = DecisionRecord {
            level: log::Level::Info,
            target: "verdict::decision",
            message: "decision",
            fields: &fields,
        };
        let mut compact = Vec::new();
        encode(&mut compact, &record, 1_796_556_374_647_888);
        encode(&mut compact, &record, 1_796_556_374_647_889);
        let mut out = Vec::new();
        format_records(&compact, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(
            lines[0],
            "[2026-12-06T11:26:14.647888Z INFO  verdict::decision] decision dialect=auth-request status=200 path=\"/a b\" client_ip=10.0.0.7 user=\"u\\u{1b}x\" other_ip=-"
        );
        assert!(lines[1].starts_with("[2026-12-06T11:26:14.647889Z INFO "));
        // a truncated buffer writes no half line
        let mut out = Vec::new();
        format_records(&compact[..compact.len() - 3], &mut out);
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
    }

    #[test]
    fn a_prepared_line_is_the_line_the_record_makes() {
        let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        let cases: Vec<Vec<(&str, Field<'_>)>> = vec![
            vec![
                ("dialect", Field::Text("auth-request")),
                ("latency_us", Field::Number(7)),
                (
                    "path",
                    Field::Text("/1111111111/2001-09-09T01:46:40.000000"),
                ),
                ("user", Field::Text("a b \"q\"")),
                ("client_ip", Field::Address(Some(v6))),
            ],
            vec![
                ("latency_us", Field::Number(0)),
                ("host", Field::Text("2222222222")),
                ("client_ip", Field::Address(None)),
                ("reason", Field::Text("")),
            ],
        ];
        for fields in cases {
            let record = DecisionRecord {
                level: log::Level::Info,
                target: "verdict::decision",
                message: "decision",
                fields: &fields,
            };
            let line = prepare_line(&record).expect("prepared");
            for (at, latency) in [
                (1_796_556_374_647_888, 5),
                (1_000_000, 123_456_789_012),
                (0, 0),
            ] {
                let mut expected_fields = fields.clone();
                for field in &mut expected_fields {
                    if field.0 == "latency_us" {
                        field.1 = Field::Number(latency);
                    }
                }
                let mut compact = Vec::new();
                encode(
                    &mut compact,
                    &DecisionRecord {
                        fields: &expected_fields,
                        ..record
                    },
                    at,
                );
                let mut expected = Vec::new();
                format_records(&compact, &mut expected);
                let mut again = vec![AGAIN];
                again.extend_from_slice(&at.to_le_bytes());
                again.extend_from_slice(&latency.to_le_bytes());
                again.extend_from_slice(&line.template);
                let mut out = Vec::new();
                format_records(&again, &mut out);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    String::from_utf8(expected).unwrap()
                );
            }
        }
        // no latency, nothing prepared
        let fields = [("dialect", Field::Text("x"))];
        let record = DecisionRecord {
            level: log::Level::Info,
            target: "verdict::decision",
            message: "decision",
            fields: &fields,
        };
        assert!(prepare_line(&record).is_none());
    }

    #[test]
    fn handed_over_values_are_quoted_as_direct_ones_are() {
        for value in [
            "a b",
            "x=y",
            "q\"",
            "c1\u{85}",
            "é",
            "plain",
            "",
            "tab\t",
            "del\u{7f}",
        ] {
            let fields = [("user", Field::Text(value)), ("path", Field::Text("/p"))];
            let record = DecisionRecord {
                level: log::Level::Warn,
                target: "verdict::decision",
                message: "decision",
                fields: &fields,
            };
            let mut compact = Vec::new();
            encode(&mut compact, &record, 1_000_000);
            let mut out = Vec::new();
            format_records(&compact, &mut out);
            let handed = String::from_utf8(out).unwrap();
            let body = handed.split_once("] ").unwrap().1.trim_end();
            let mut direct = Vec::new();
            with_fields(&[("user", &value), ("path", &"/p")], |r| {
                write_plain(&mut direct, r).unwrap();
            });
            assert_eq!(body, String::from_utf8(direct).unwrap(), "{value:?}");
            assert!(
                handed.starts_with("[1970-01-01T00:00:01.000000Z WARN  "),
                "{handed}"
            );
        }
    }
}
