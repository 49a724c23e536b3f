//! The exact-answer memo: per worker, the answer to a decision request whose every byte
//! the decision could read is the same as an earlier request's, for a request whose
//! answer is already known.
//!
//! Takes: a bodiless decision request (its dialect, TCP peer, HTTP version, method, whole
//! target and every header, compared exactly, not by a hash alone), the configuration
//! generation and the revocation epoch in force, and the decisions' clock; after a
//! decision, the allow it answered with. Returns: the stored answer (status, headers,
//! body) with its cache lifetime header counted down, and what the decision's log line
//! and metrics say of it. An answer is kept the second time its request is decided (the
//! first leaves only a hash), so requests that never repeat cost it next to nothing. Must never: serve an answer past the earliest expiry of the
//! cached decisions it rests on, across a reload or a revocation, while the revocation
//! feed is stale, for a request that differs in any byte (a header, its order among
//! values of one name, the peer), or hold more than its memory bound. Only allows whose
//! decisions are all cached are kept: a denial, an error or a throttle is decided anew
//! every time, so counters and backends see every attempt.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody as _;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderMap, HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};

use crate::decision::Outcome;
use crate::request::Target;
use crate::resolver::Decided;

/// The longest an answer is kept even when nothing it rests on expires (a public route).
const MAX_LIFETIME: Duration = Duration::from_secs(60);

/// The most a worker's memo holds, keys and answers counted; past it, it starts over.
const MAX_BYTES: usize = 8 * 1024 * 1024;

/// The most answers a worker's memo holds.
const MAX_ENTRIES: usize = 16 * 1024;

/// A request whose key would be longer is not memoized (nor looked up).
const MAX_KEY: usize = 16 * 1024;

/// Answers stored per period; a period whose stores were rarely used again (requests that
/// never repeat, a per-request header) switches the memo off for [`REST`] requests.
const PERIOD: u32 = 4096;
const REST: u32 = 64 * 1024;

/// The most requests remembered as seen once (a hash each); past it, the record starts
/// over. An answer is kept only for a request seen before: one that never repeats (a
/// client's one-off token) costs the memo eight bytes, not its answer.
const MAX_SEEN: usize = 16 * 1024;

/// `X-Accel-Expires`: the one header of an answer that counts time.
const X_ACCEL_EXPIRES: HeaderName = HeaderName::from_static("x-accel-expires");

/// One worker's memo (workers never share one: no lock on the request path).
#[derive(Default)]
pub struct AnswerMemo {
    inner: RefCell<Inner>,
}

impl std::fmt::Debug for AnswerMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnswerMemo")
    }
}

#[derive(Default)]
struct Inner {
    /// What the entries were made under; another value empties the memo.
    generation: u64,
    epoch: u64,
    entries: HashMap<Box<[u8]>, Memoized, foldhash::fast::RandomState>,
    /// Hashes of requests decided once and not kept (only a filter: an answer is still
    /// found by its exact bytes).
    seen: std::collections::HashSet<u64, foldhash::fast::RandomState>,
    bytes: usize,
    stored: u32,
    used: u32,
    resting: u32,
}

/// What a decision that is known again was, as its answer and its record say.
pub struct Memoized {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    expires_at: Instant,
    pub route: Option<Box<str>>,
    pub authorizer: Option<Box<str>>,
    pub outcome: Outcome,
    pub reason: Option<std::borrow::Cow<'static, str>>,
    pub target: Option<Target>,
    pub client_ip: Option<IpAddr>,
    /// Decision-cache look-ups the decision made (each a hit), counted again per answer.
    pub lookups: u32,
    /// Its log line, prepared by the first answer given again (crate::record::record_again).
    pub line: std::cell::OnceCell<Option<crate::logging::PreparedLine>>,
}

impl Memoized {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The record's view of it: the decision as it was made, from the cache.
    pub fn decided(&self) -> Decided<'_> {
        let identity = match &self.outcome {
            Outcome::Allow { identity, .. } => identity.clone(),
            _ => None,
        };
        Decided {
            outcome: self.outcome.clone(),
            route: self.route.as_deref(),
            authorizer: self.authorizer.as_deref(),
            cache: Some(crate::cache::CacheStatus::Hit),
            reason: self.reason.clone(),
            cache_for: Duration::ZERO,
            identity,
            error: None,
            lookups: self.lookups,
        }
    }

    /// The stored answer, its `X-Accel-Expires` counted down to what is left at `now`.
    fn response(&self, now: Instant) -> HttpResponse {
        let mut response = HttpResponse::build(self.status).body(self.body.clone());
        let headers = response.headers_mut();
        *headers = self.headers.clone();
        if headers.contains_key(X_ACCEL_EXPIRES) {
            // as the answer computes it: whole seconds, less one, never past the entry
            let left = self.expires_at.saturating_duration_since(now);
            let seconds = left.as_secs().saturating_sub(1);
            if seconds > 0 {
                headers.insert(X_ACCEL_EXPIRES, HeaderValue::from(seconds));
            } else {
                headers.remove(X_ACCEL_EXPIRES);
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
        }
        response
    }

    fn size(&self, key: usize) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        key + headers + self.body.len() + 256
    }
}

/// The exact bytes of everything a decision request could be decided on, in one buffer
/// (each part length-prefixed, so no two requests share one); `None` for a request with
/// a body (the dialects that read one decide on it) or a key past `MAX_KEY`.
pub fn key_of(request: &HttpRequest, dialect: &str, peer: IpAddr) -> Option<Vec<u8>> {
    let headers = request.headers();
    // a body, or a request that may have one, is decided on what it holds
    if headers.contains_key(actix_web::http::header::TRANSFER_ENCODING)
        || headers
            .get(actix_web::http::header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
    {
        return None;
    }
    let mut key = Vec::with_capacity(512);
    let mut part = |bytes: &[u8]| {
        key.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
        key.extend_from_slice(bytes);
    };
    part(dialect.as_bytes());
    match peer {
        IpAddr::V4(ip) => part(&ip.octets()),
        IpAddr::V6(ip) => part(&ip.octets()),
    }
    let version = request.version();
    let version: &[u8] = if version == actix_web::http::Version::HTTP_11 {
        b"1.1"
    } else if version == actix_web::http::Version::HTTP_10 {
        b"1.0"
    } else if version == actix_web::http::Version::HTTP_2 {
        b"2"
    } else {
        return None;
    };
    part(version);
    part(request.method().as_str().as_bytes());
    let uri = request.uri();
    part(uri.scheme_str().unwrap_or_default().as_bytes());
    part(uri.authority().map_or("", |a| a.as_str()).as_bytes());
    part(uri.path_and_query().map_or("", |p| p.as_str()).as_bytes());
    // every header, by name (the map's own order is not the request's), each name's
    // values in the order they came
    let mut names: Vec<&HeaderName> = headers.keys().collect();
    names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    for name in names {
        for value in headers.get_all(name) {
            part(name.as_str().as_bytes());
            part(value.as_bytes());
        }
    }
    (key.len() <= MAX_KEY).then_some(key)
}

impl AnswerMemo {
    /// The answer to the request `key` stands for, if one is known and still good at
    /// `now` under `generation` and `epoch` (`None`: the revocation feed is stale, so
    /// nothing is reused). Calls `with` with the stored decision for its record.
    pub fn answer(
        &self,
        key: &[u8],
        generation: u64,
        epoch: Option<u64>,
        now: Instant,
        with: impl FnOnce(&Memoized),
    ) -> Option<HttpResponse> {
        let mut inner = self.inner.borrow_mut();
        let epoch = match epoch {
            Some(epoch) => epoch,
            None => {
                inner.clear();
                return None;
            }
        };
        if inner.generation != generation || inner.epoch != epoch {
            inner.clear();
            inner.generation = generation;
            inner.epoch = epoch;
            return None;
        }
        if inner.resting > 0 {
            inner.resting -= 1;
            return None;
        }
        let expired = match inner.entries.get(key) {
            None => return None,
            Some(entry) if entry.expires_at > now => {
                with(entry);
                let response = entry.response(now);
                inner.used = inner.used.saturating_add(1);
                return Some(response);
            }
            Some(_) => true,
        };
        if expired && let Some((key, entry)) = inner.entries.remove_entry(key) {
            inner.bytes = inner.bytes.saturating_sub(entry.size(key.len()));
        }
        None
    }

    /// Keeps `response` as the answer to `key` when the decision behind it may stand for
    /// the next identical request: an allow, every decision it rests on cached (for
    /// `decided.cache_for`, the shortest), no failure on the way. Returns the response,
    /// rebuilt from what was kept when it was kept.
    #[allow(clippy::too_many_arguments)]
    pub fn keep(
        &self,
        key: Vec<u8>,
        generation: u64,
        epoch: Option<u64>,
        now: Instant,
        decided: &Decided<'_>,
        target: Option<&Target>,
        client_ip: Option<IpAddr>,
        response: HttpResponse,
    ) -> HttpResponse {
        let mut inner = self.inner.borrow_mut();
        // the lifetime the answer itself was given
        let lifetime = match &decided.outcome {
            Outcome::Allow { cache_for, .. } => (*cache_for).min(MAX_LIFETIME),
            _ => Duration::ZERO,
        };
        let keepable = !lifetime.is_zero()
            && decided.error.is_none()
            && epoch == Some(inner.epoch)
            && generation == inner.generation
            && inner.resting == 0;
        if !keepable {
            return response;
        }
        // kept from the second time it is asked: the first only leaves its hash
        let hash = inner.entries.hasher().hash_one(&key[..]);
        if !inner.seen.contains(&hash) {
            if inner.seen.len() >= MAX_SEEN {
                inner.seen.clear();
            }
            inner.seen.insert(hash);
            return response;
        }
        let (head, body) = response.into_parts();
        let body = match body.try_into_bytes() {
            Ok(bytes) => bytes,
            // a streamed body is not kept: answered as it is
            Err(body) => return head.set_body(body),
        };
        let entry = Memoized {
            status: head.status(),
            headers: head.headers().clone(),
            body: body.clone(),
            expires_at: now + lifetime,
            route: decided.route.map(Into::into),
            authorizer: decided.authorizer.map(Into::into),
            outcome: decided.outcome.clone(),
            reason: decided.reason.clone(),
            target: target.cloned(),
            client_ip,
            lookups: decided.lookups,
            line: std::cell::OnceCell::new(),
        };
        let size = entry.size(key.len());
        if inner.bytes + size > MAX_BYTES || inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
            inner.bytes = 0;
        }
        inner.bytes += size;
        if let Some(old) = inner.entries.insert(key.into_boxed_slice(), entry) {
            inner.bytes = inner.bytes.saturating_sub(old.size(0));
        }
        inner.stored += 1;
        if inner.stored >= PERIOD {
            // answers that are rarely asked for again cost more to keep than they save
            if inner.used < inner.stored / 4 {
                inner.clear();
                inner.resting = REST;
            }
            inner.stored = 0;
            inner.used = 0;
        }
        head.set_body(actix_web::body::BoxBody::new(body))
    }
}

impl Inner {
    fn clear(&mut self) {
        self.entries.clear();
        self.seen.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn key(request: TestRequest) -> Option<Vec<u8>> {
        key_of(&request.to_http_request(), "auth-request", PEER)
    }

    fn base() -> TestRequest {
        TestRequest::get()
            .uri("/_resolver/auth-request")
            .insert_header(("authorization", "Bearer t"))
            .insert_header(("x-original-uri", "/a"))
    }

    #[test]
    fn the_same_bytes_make_the_same_key_and_any_other_byte_another() {
        let same = key(base()).unwrap();
        assert_eq!(key(base()).unwrap(), same);
        // the headers in another order are the same request
        let reordered = TestRequest::get()
            .uri("/_resolver/auth-request")
            .insert_header(("x-original-uri", "/a"))
            .insert_header(("authorization", "Bearer t"));
        assert_eq!(key(reordered).unwrap(), same);
        let others = [
            base().insert_header(("x-original-uri", "/b")),
            base().insert_header(("x-extra", "")),
            base().uri("/_resolver/auth-request?x"),
            base().method(actix_web::http::Method::HEAD),
            base().version(actix_web::http::Version::HTTP_10),
        ];
        for other in others {
            assert_ne!(key(other).unwrap(), same);
        }
        let request = base().to_http_request();
        assert_ne!(
            key_of(&request, "auth-request", "10.0.0.1".parse().unwrap()).unwrap(),
            same,
            "another peer"
        );
        assert_ne!(key_of(&request, "forward-auth", PEER).unwrap(), same);
        // two values of one name: their order is the request's
        let ab = base()
            .append_header(("x-forwarded-for", "1.1.1.1"))
            .append_header(("x-forwarded-for", "2.2.2.2"));
        let ba = base()
            .append_header(("x-forwarded-for", "2.2.2.2"))
            .append_header(("x-forwarded-for", "1.1.1.1"));
        assert_ne!(key(ab).unwrap(), key(ba).unwrap());
        // a value split differently between two parts is not the same key
        let split_one = base().insert_header(("x-a", "bx-b"));
        let split_two = base()
            .insert_header(("x-a", "b"))
            .insert_header(("x-b", ""));
        assert_ne!(key(split_one).unwrap(), key(split_two).unwrap());
    }

    #[test]
    fn a_request_with_a_body_or_a_huge_head_has_no_key() {
        assert!(key(base().insert_header(("content-length", "5"))).is_none());
        assert!(key(base().insert_header(("transfer-encoding", "chunked"))).is_none());
        assert!(key(base().insert_header(("content-length", "0"))).is_some());
        let huge = "x".repeat(MAX_KEY);
        assert!(key(base().insert_header(("x-big", huge))).is_none());
    }
}
