//! The clock every deadline in verdict reads: cache entries, JWKS refreshes and refetch
//! limits, backend cool-downs, the background key refresh.
//!
//! Takes: nothing in service (the system's monotonic clock); in tests, a manual clock a
//! test moves forward itself. Returns: the current [`Instant`], and sleeps that end when
//! the clock passes their deadline. Must never: let a test wait for real time to pass
//! (a manual clock moves only when told), or move backwards.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// The clock a resolver, its cache and its authorizers read. Cheap to clone; clones read
/// the same time.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `None`: the system clock.
    manual: Option<Arc<Manual>>,
}

#[derive(Debug)]
struct Manual {
    start: Instant,
    /// The wall-clock time at `start`, Unix milliseconds.
    start_unix_ms: u64,
    elapsed: Mutex<Duration>,
    moved: Notify,
}

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands still until [`Clock::advance`] moves it: for tests.
    pub fn manual() -> Clock {
        Clock {
            manual: Some(Arc::new(Manual {
                start: Instant::now(),
                start_unix_ms: system_unix_ms(),
                elapsed: Mutex::new(Duration::ZERO),
                moved: Notify::new(),
            })),
        }
    }

    pub fn now(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(manual) => manual.start + manual.elapsed(),
        }
    }

    /// Wall-clock time, Unix milliseconds: what instances of a fleet compare (a shared
    /// decision's expiry, a revocation's "before"). A manual clock moves it too.
    pub fn unix_ms(&self) -> u64 {
        match &self.manual {
            None => system_unix_ms(),
            Some(manual) => {
                let elapsed = u64::try_from(manual.elapsed().as_millis()).unwrap_or(u64::MAX);
                manual.start_unix_ms.saturating_add(elapsed)
            }
        }
    }

    /// Moves a manual clock forward and wakes the sleeps it passes. The system clock
    /// moves by itself; asking it to is a mistake, and changes nothing.
    pub fn advance(&self, by: Duration) {
        debug_assert!(self.manual.is_some(), "only a manual clock is advanced");
        if let Some(manual) = &self.manual {
            if let Ok(mut elapsed) = manual.elapsed.lock() {
                *elapsed += by;
            }
            manual.moved.notify_waiters();
        }
    }

    /// Waits until the clock has moved `by` from now.
    pub async fn sleep(&self, by: Duration) {
        self.sleep_until(self.now() + by).await;
    }

    /// Waits until the clock reads `deadline` (at once when it already has): a loop that
    /// keeps a schedule (`deadline += interval`) never drifts, and never misses a moment
    /// a manual clock was moved past while it was busy.
    pub async fn sleep_until(&self, deadline: Instant) {
        match &self.manual {
            None => tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await,
            Some(manual) => loop {
                // register before looking, so an advance in between is not missed
                let moved = manual.moved.notified();
                if self.now() >= deadline {
                    return;
                }
                moved.await;
            },
        }
    }
}

/// The system's wall clock, Unix milliseconds (0 before 1970, which no host is at).
fn system_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Manual {
    fn elapsed(&self) -> Duration {
        self.elapsed.lock().map(|e| *e).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_manual_clock_moves_only_when_told_and_wakes_its_sleeps() {
        let clock = Clock::manual();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        let sleeper = clock.clone();
        let woke = actix_web::rt::spawn(async move {
            sleeper.sleep(Duration::from_secs(60)).await;
            sleeper.now()
        });
        actix_web::rt::task::yield_now().await;
        clock.advance(Duration::from_secs(30));
        actix_web::rt::task::yield_now().await;
        assert!(!woke.is_finished(), "30 s of 60");
        let wall = clock.unix_ms();
        clock.advance(Duration::from_secs(30));
        assert_eq!(woke.await.expect("join"), start + Duration::from_secs(60));
        assert_eq!(clock.unix_ms(), wall + 30_000, "wall time moves with it");
    }
}
