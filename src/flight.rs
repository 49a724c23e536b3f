//! Single flight: concurrent callers of one piece of work run it once and share its
//! result. The decision cache runs its misses through one (one backend call for a hundred
//! concurrent misses), and a JWKS endpoint its refetches.
//!
//! Takes: a key and the work to run for it. Returns: the work's result, to the caller
//! that ran it and to every caller that waited for it, and whether this caller ran it.
//! Must never: run the work twice for callers that overlapped, or leave a waiter hanging
//! when the caller running the work goes away half-way (its client left): a waiter then
//! runs the work itself.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;

/// The work in flight, by key.
#[derive(Debug)]
pub struct SingleFlight<K, V> {
    in_flight: Mutex<HashMap<K, Arc<Flight<V>>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight {
            in_flight: Mutex::new(HashMap::new()),
        }
    }
}

/// One piece of work in flight, and its result once there.
#[derive(Debug)]
struct Flight<V> {
    result: OnceLock<V>,
    done: Notify,
}

impl<V> Default for Flight<V> {
    fn default() -> Self {
        Flight {
            result: OnceLock::new(),
            done: Notify::new(),
        }
    }
}

/// Ends a flight however the caller running it stops: with its result, or, when its
/// future is dropped half-way, with none, so that a waiter runs the work itself.
struct Landing<'a, K: Hash + Eq, V> {
    flights: &'a SingleFlight<K, V>,
    key: K,
    flight: Arc<Flight<V>>,
}

impl<K: Hash + Eq, V> Drop for Landing<'_, K, V> {
    fn drop(&mut self) {
        if let Ok(mut in_flight) = self.flights.in_flight.lock() {
            in_flight.remove(&self.key);
        }
        self.flight.done.notify_waiters();
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// Runs `work` for `key` unless another caller is running it: then waits for that
    /// caller's result. Returns the result and whether this caller ran the work.
    pub async fn run<W, F>(&self, key: K, work: W) -> (V, bool)
    where
        W: FnOnce() -> F,
        F: Future<Output = V>,
    {
        let landing = loop {
            let (flight, leader) = match self.in_flight.lock() {
                Ok(mut in_flight) => match in_flight.get(&key) {
                    Some(flight) => (flight.clone(), false),
                    None => {
                        let flight = Arc::new(Flight::default());
                        in_flight.insert(key.clone(), flight.clone());
                        (flight, true)
                    }
                },
                // a poisoned map: run alone rather than not at all
                Err(_) => (Arc::new(Flight::default()), true),
            };
            if leader {
                break Landing {
                    flights: self,
                    key,
                    flight,
                };
            }
            // Wait for the leader: register first, then look, so no wake-up is missed.
            let notified = flight.done.notified();
            if flight.result.get().is_none() {
                notified.await;
            }
            match flight.result.get() {
                Some(result) => return (result.clone(), false),
                // the leader went away without a result: try again (maybe as leader)
                None => continue,
            }
        };
        let result = work().await;
        let _ = landing.flight.result.set(result.clone());
        drop(landing);
        (result, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[actix_web::test]
    async fn overlapping_callers_run_the_work_once_and_share_it() {
        let flights: SingleFlight<u8, usize> = SingleFlight::default();
        let runs = AtomicUsize::new(0);
        let (release, released) = (Arc::new(Notify::new()), Arc::new(AtomicUsize::new(0)));
        let asks = (0..10).map(|_| {
            flights.run(7, || async {
                released.fetch_add(1, Ordering::SeqCst);
                release.notified().await;
                runs.fetch_add(1, Ordering::SeqCst) + 41
            })
        });
        let all = futures_util::future::join_all(asks);
        let opener = async {
            while released.load(Ordering::SeqCst) == 0 {
                actix_web::rt::task::yield_now().await;
            }
            for _ in 0..10 {
                actix_web::rt::task::yield_now().await;
            }
            release.notify_waiters();
        };
        let (results, ()) = futures_util::future::join(all, opener).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|(v, _)| *v == 41));
        assert_eq!(results.iter().filter(|(_, led)| *led).count(), 1);
    }

    #[actix_web::test]
    async fn a_leader_that_goes_away_hands_the_work_to_a_waiter() {
        let flights: Arc<SingleFlight<u8, &'static str>> = Arc::default();
        let leader = {
            let flights = flights.clone();
            actix_web::rt::spawn(async move {
                flights.run(1, std::future::pending::<&'static str>).await
            })
        };
        actix_web::rt::task::yield_now().await;
        let waiter = {
            let flights = flights.clone();
            actix_web::rt::spawn(async move { flights.run(1, || async { "mine" }).await })
        };
        actix_web::rt::task::yield_now().await;
        leader.abort();
        let (result, led) = actix_web::rt::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter is not left hanging")
            .expect("join");
        assert_eq!((result, led), ("mine", true));
    }
}
