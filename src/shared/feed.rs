//! The revocation feed: the fleet's ordered log of revocations (a Redis Stream), read by
//! every instance from where it stopped, and its health.
//!
//! Takes: the shared state (its store, seal, denylist and settings). Returns: nothing;
//! it applies every entry whose seal verifies to the denylist, replays the whole log at
//! start and after the store lost it (republishing the entries still in force here), and
//! keeps [`FeedHealth`] current: when the log was last read, and whether that is longer
//! ago than `shared.stale_after`. Must never: apply an entry that does not verify, call
//! the feed fresh without a read that succeeded, or log a transition more than once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::streams::StreamReadReply;

use super::revocation::Revocation;
use super::seal::{Purpose, Seal};
use super::store::{Connection, Store, StoreError};
use super::{Shared, SharedSettings};

/// When the revocation log was last read, and whether that is too long ago.
#[derive(Debug)]
pub struct FeedHealth {
    /// Unix ms of the last read that succeeded; 0: never.
    last_good: AtomicU64,
    /// Stale from the start: an instance that has not read the log knows no revocation.
    stale: AtomicBool,
    /// When the feed started (Unix ms): how long "never" has been.
    started: u64,
}

/// A change of the feed's state, logged once and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    BecameStale,
    Recovered,
}

impl FeedHealth {
    pub fn new(now: u64) -> FeedHealth {
        FeedHealth {
            last_good: AtomicU64::new(0),
            stale: AtomicBool::new(true),
            started: now,
        }
    }

    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    /// Unix ms of the last good read (0: never).
    pub fn last_good(&self) -> u64 {
        self.last_good.load(Ordering::Acquire)
    }

    /// How long since the last good read (since the start, if none yet).
    pub fn lag(&self, now: u64) -> Option<Duration> {
        match self.last_good() {
            0 => None,
            at => Some(Duration::from_millis(now.saturating_sub(at))),
        }
    }

    /// The log was read at `now`. `Some(Recovered)` when that ends a stale spell.
    pub fn read_at(&self, now: u64) -> Option<Transition> {
        self.last_good.fetch_max(now, Ordering::AcqRel);
        self.stale
            .swap(false, Ordering::AcqRel)
            .then_some(Transition::Recovered)
    }

    /// The time is `now`: `Some(BecameStale)` when the last good read (or the start) is
    /// more than `bound` ago and the feed was fresh until now.
    pub fn tick(&self, now: u64, bound: Duration) -> Option<Transition> {
        let since = match self.last_good() {
            0 => self.started,
            at => at,
        };
        let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(since) <= bound_ms {
            return None;
        }
        (!self.stale.swap(true, Ordering::AcqRel)).then_some(Transition::BecameStale)
    }
}

/// Logs and counts a transition.
fn report(shared: &Shared, transition: Transition) {
    match transition {
        Transition::BecameStale => {
            shared.metrics.feed_transition(true);
            match shared.settings.on_stale {
                super::StalePolicy::Closed => log::error!(
                    "shared store: revocation feed stale (not read for {:?}): cached allows made before the last good read are not reused; JWT and static-token allows are refused until it is read again; /readyz says not ready",
                    shared.settings.stale_after
                ),
                super::StalePolicy::Local => log::warn!(
                    "shared store: revocation feed stale (not read for {:?}): serving local decisions without the fleet's revocations (on_stale = \"local\")",
                    shared.settings.stale_after
                ),
            }
        }
        Transition::Recovered => {
            shared.metrics.feed_transition(false);
            log::info!(
                "shared store: revocation feed read ({} revocation(s) in force)",
                shared.denylist.len()
            );
        }
    }
}

/// Starts the feed and its watch on the store's thread. Both end with the shared state.
pub fn start(shared: &Arc<Shared>) {
    let weak = Arc::downgrade(shared);
    shared.store.spawn(watch(weak.clone()));
    shared.store.spawn(follow(weak));
}

/// Every 100 ms: whether the feed went stale, the lag metric, and expired entries purged
/// (every 10 s).
async fn watch(weak: Weak<Shared>) {
    let mut ticks: u64 = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let now = shared.clock.unix_ms();
        if let Some(transition) = shared.health.tick(now, shared.settings.stale_after) {
            report(&shared, transition);
        }
        shared.metrics.feed_lag(
            shared.health.lag(now).map(|l| l.as_secs_f64()),
            shared.health.is_stale(),
        );
        ticks += 1;
        if ticks.is_multiple_of(100) {
            shared.denylist.purge(now);
        }
    }
}

/// An entry id's two numbers, for ordering (`ms-seq`).
fn id_parts(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Reads the log for as long as the shared state lives: from the start, then from the
/// last entry read; on a lost connection, reconnects and goes on from there, or from the
/// start when the log is gone or was made anew (after republishing what is in force).
async fn follow(weak: Weak<Shared>) {
    let mut last_id = "0-0".to_string();
    let mut pause = Duration::from_millis(50);
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let store = shared.store.clone();
        let settings = shared.settings.clone();
        drop(shared);
        let mut connection = match store.dedicated().await {
            Ok(connection) => connection,
            Err(e) => {
                log::debug!("revocation feed: {e}; again in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        pause = Duration::from_millis(50);
        let stream = settings.stream_key();
        if let Some(shared) = weak.upgrade()
            && let Err(e) = check_log(&shared, &mut connection, &stream, &mut last_id).await
        {
            log::debug!("revocation feed: {e}");
            continue;
        }
        // the backlog first, without blocking; fresh only once caught up
        let mut caught_up = false;
        loop {
            let block_ms = u64::try_from(settings.block_for.as_millis()).unwrap_or(1000);
            let mut read = redis::cmd("XREAD");
            read.arg("COUNT").arg(READ_COUNT);
            if caught_up {
                read.arg("BLOCK").arg(block_ms);
            }
            read.arg("STREAMS").arg(&stream).arg(&last_id);
            let deadline =
                settings.block_for + settings.read_timeout.max(Duration::from_millis(500));
            let answer = tokio::time::timeout(
                deadline,
                read.query_async::<Option<StreamReadReply>>(&mut connection),
            )
            .await;
            let Some(shared) = weak.upgrade() else {
                return;
            };
            let reply = match answer {
                Ok(Ok(reply)) => reply,
                Ok(Err(e)) => {
                    log::debug!("revocation feed: {e}");
                    break;
                }
                Err(_) => {
                    log::debug!("revocation feed: no answer within {deadline:?}");
                    break;
                }
            };
            let mut read_now = 0;
            for key in reply.map(|r| r.keys).unwrap_or_default() {
                for entry in key.ids {
                    apply_entry(&shared, &stream, &entry.id, &entry.map);
                    last_id = entry.id;
                    read_now += 1;
                }
            }
            caught_up = read_now < READ_COUNT;
            if caught_up && let Some(transition) = shared.health.read_at(shared.clock.unix_ms()) {
                report(&shared, transition);
            }
        }
    }
}

/// Entries read at most per read of the log.
const READ_COUNT: usize = 1000;

/// On every (re)connection: whether the log is still the one read so far. A log that is
/// gone, or whose newest id is older than the last one read (the store restarted empty,
/// or another log took its place), is read again from the start, after the entries in
/// force here are appended to it again, so no instance loses them.
async fn check_log(
    shared: &Shared,
    connection: &mut Connection,
    stream: &str,
    last_id: &mut String,
) -> Result<(), StoreError> {
    let info: redis::RedisResult<redis::streams::StreamInfoStreamReply> = tokio::time::timeout(
        shared.settings.write_timeout,
        redis::cmd("XINFO")
            .arg("STREAM")
            .arg(stream)
            .query_async(connection),
    )
    .await
    .map_err(|_| StoreError::Timeout(shared.settings.write_timeout))?;
    let anew = match info {
        Ok(info) => id_parts(&info.last_generated_id) < id_parts(last_id),
        // no such key: the log is gone, or was never written
        Err(e) if e.to_string().to_ascii_lowercase().contains("no such key") => true,
        Err(e) => return Err(StoreError::Redis(e.to_string())),
    };
    if !anew {
        return Ok(());
    }
    let live = shared.denylist.live(shared.clock.unix_ms());
    if !live.is_empty() {
        log::warn!(
            "revocation feed: the store's log is gone or new; appending the {} revocation(s) in force here again",
            live.len()
        );
        for revocation in &live {
            publish_on(connection, &shared.settings, &shared.seal, revocation).await?;
        }
    }
    *last_id = "0-0".to_string();
    Ok(())
}

/// Applies one log entry, if its seal verifies and it can be used.
fn apply_entry(
    shared: &Shared,
    stream: &str,
    id: &str,
    fields: &std::collections::HashMap<String, redis::Value>,
) {
    let field = |name: &str| -> Option<Vec<u8>> {
        fields
            .get(name)
            .and_then(|v| redis::from_redis_value_ref::<Vec<u8>>(v).ok())
    };
    let (Some(record), Some(tag)) = (field("e"), field("m").and_then(|m| hex::decode(m).ok()))
    else {
        log::warn!("revocation feed: entry {id} is not a revocation; ignored");
        return;
    };
    // Trust decision: only entries sealed with the fleet's secret for this log count;
    // whoever can write to the store but lacks the secret cannot deny anyone through it
    if !shared
        .seal
        .verify(Purpose::Revocation, &[stream.as_bytes(), &record], &tag)
    {
        shared.metrics.shared_cache("rejected");
        log::warn!("revocation feed: entry {id} does not verify under the fleet's secret; ignored");
        return;
    }
    let Ok(revocation) = serde_json::from_slice::<Revocation>(&record) else {
        log::warn!("revocation feed: entry {id} cannot be read; ignored");
        return;
    };
    if let Some(problem) = revocation.problem() {
        log::warn!("revocation feed: entry {id}: {problem}; ignored");
        return;
    }
    if revocation.expires_at <= shared.clock.unix_ms() {
        return;
    }
    shared.apply(revocation);
}

/// The command that appends `revocation`, sealed, to the log.
fn append(settings: &SharedSettings, seal: &Seal, revocation: &Revocation) -> redis::Cmd {
    let stream = settings.stream_key();
    let record = serde_json::to_vec(revocation).unwrap_or_default();
    let tag = seal.tag(Purpose::Revocation, &[stream.as_bytes(), &record]);
    let mut add = redis::cmd("XADD");
    add.arg(&stream)
        .arg("MAXLEN")
        .arg("~")
        .arg(settings.stream_max_len)
        .arg("*")
        .arg("e")
        .arg(record)
        .arg("m")
        .arg(hex::encode(tag));
    add
}

/// Appends `revocation` on `connection`.
async fn publish_on(
    connection: &mut Connection,
    settings: &SharedSettings,
    seal: &Seal,
    revocation: &Revocation,
) -> Result<String, StoreError> {
    let add = append(settings, seal, revocation);
    tokio::time::timeout(
        settings.write_timeout,
        add.query_async::<String>(connection),
    )
    .await
    .map_err(|_| StoreError::Timeout(settings.write_timeout))?
    .map_err(|e| StoreError::Redis(e.to_string()))
}

/// Appends `revocation` to the log through the command connection.
pub async fn publish(
    store: &Arc<Store>,
    settings: &SharedSettings,
    seal: &Seal,
    revocation: &Revocation,
) -> Result<String, StoreError> {
    store
        .query(&append(settings, seal, revocation), settings.write_timeout)
        .await
}

/// Appends `revocation` through a connection made for it (a process that does not
/// serve has no command connection).
pub async fn publish_with(
    store: &Arc<Store>,
    settings: &SharedSettings,
    seal: &Seal,
    revocation: &Revocation,
) -> Result<String, StoreError> {
    let mut connection = store.dedicated().await?;
    publish_on(&mut connection, settings, seal, revocation).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_is_stale_until_read_and_after_the_bound_without_a_read() {
        let bound = Duration::from_millis(5000);
        let health = FeedHealth::new(1_000);
        assert!(health.is_stale(), "never read: stale from the start");
        assert_eq!(
            health.tick(2_000, bound),
            None,
            "already stale: no second line"
        );
        assert_eq!(health.read_at(2_000), Some(Transition::Recovered));
        assert!(!health.is_stale());
        assert_eq!(health.read_at(2_500), None, "one line per transition");
        assert_eq!(
            health.tick(7_500, bound),
            None,
            "5 s exactly is within the bound"
        );
        assert_eq!(health.tick(7_501, bound), Some(Transition::BecameStale));
        assert_eq!(health.tick(9_000, bound), None);
        assert!(health.is_stale());
        assert_eq!(health.lag(9_000), Some(Duration::from_millis(6_500)));
        assert_eq!(health.read_at(9_100), Some(Transition::Recovered));
        assert_eq!(health.last_good(), 9_100);
    }

    #[test]
    fn ids_order_by_time_then_sequence() {
        assert!(id_parts("1700000000000-5") < id_parts("1700000000001-0"));
        assert!(id_parts("5-1") > id_parts("5-0"));
        assert_eq!(id_parts("0-0"), (0, 0));
    }
}
