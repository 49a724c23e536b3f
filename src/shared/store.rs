//! The connection to the shared store: Redis 7 or Valkey, standalone, through Sentinel,
//! or a Cluster, on a runtime of its own.
//!
//! Takes: the validated `[shared]` settings. Returns: commands answered within a
//! deadline, or a [`StoreError`]; a dedicated connection for the revocation feed's
//! blocking reads. Connections are made on the store's own thread, off every worker, and
//! a lost one is remade there in the background with a growing pause.
//! Must never: make a decision wait for a connect (without a connection a command fails
//! at once), wait past its deadline, or put a URL's password in a log line.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{AsyncConnectionConfig, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, Value};

use super::{SharedSettings, Topology};

/// Why a store command gave no answer. Every one is a miss for a decision, never an allow.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not connected to the shared store")]
    NotConnected,
    #[error("the shared store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("shared store: {0}")]
    Redis(String),
}

/// One connection to the store, of whichever topology.
#[derive(Clone)]
pub enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// How connections are made.
enum Connector {
    Standalone(redis::Client),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    Cluster(ClusterClient),
}

/// The store: its connector, the command connection in use, and the thread everything
/// network-facing of it runs on.
pub struct Store {
    connector: Connector,
    connection: Mutex<Option<Connection>>,
    reconnecting: AtomicBool,
    /// Commands in a row that got no answer in time: past a few, the connection is
    /// remade (a connection whose answers stopped coming is not waited on forever).
    timeouts: std::sync::atomic::AtomicU32,
    runtime: tokio::runtime::Handle,
    /// Dropped with the store: ends its thread, and every task on it.
    _stop: tokio::sync::oneshot::Sender<()>,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// Commands in a row without an answer in time before the connection is remade.
const TIMEOUTS_BEFORE_RECONNECT: u32 = 3;

/// A URL as a log line may show it: without its password.
pub fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".to_string(),
    }
}

impl Store {
    /// The connector for `settings`, and the store's thread; connecting starts at once,
    /// in the background.
    pub fn start(settings: &SharedSettings) -> std::io::Result<Arc<Store>> {
        let connector = match settings.topology {
            Topology::Standalone => Connector::Standalone(
                redis::Client::open(settings.urls[0].as_str()).map_err(std::io::Error::other)?,
            ),
            Topology::Cluster => Connector::Cluster(
                ClusterClient::builder(settings.urls.iter().map(String::as_str))
                    .connection_timeout(settings.connect_timeout)
                    .response_timeout(settings.write_timeout.max(settings.block_for * 2))
                    .build()
                    .map_err(std::io::Error::other)?,
            ),
            Topology::Sentinel => {
                let first = settings.urls[0]
                    .as_str()
                    .into_connection_info()
                    .map_err(std::io::Error::other)?;
                let mut node = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(first.redis_settings().clone());
                if settings.urls[0].starts_with("rediss://") {
                    node = node.set_tls_mode(redis::TlsMode::Secure);
                }
                let client = SentinelClient::build(
                    settings.urls.iter().map(String::as_str).collect(),
                    settings.sentinel_master.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(std::io::Error::other)?;
                Connector::Sentinel(tokio::sync::Mutex::new(client))
            }
        };
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("verdict-store".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                // runs until the store is dropped; its tasks end with the runtime
                let _ = runtime.block_on(stopped);
            })?;
        let runtime = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("the store thread did not start"))??;
        let store = Arc::new(Store {
            connector,
            connection: Mutex::new(None),
            reconnecting: AtomicBool::new(false),
            timeouts: std::sync::atomic::AtomicU32::new(0),
            runtime,
            _stop: stop,
            read_timeout: settings.read_timeout,
            write_timeout: settings.write_timeout,
            connect_timeout: settings.connect_timeout,
        });
        store.reconnect();
        Ok(store)
    }

    /// Whether the command connection is up now.
    pub fn connected(&self) -> bool {
        self.connection
            .lock()
            .map(|slot| slot.is_some())
            .unwrap_or(false)
    }

    /// Runs `task` on the store's thread (off every worker).
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(task);
    }

    /// A new connection, made on the calling runtime.
    async fn connect(&self) -> Result<Connection, StoreError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None);
        let made = async {
            match &self.connector {
                Connector::Standalone(client) => client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Connection::Single),
                Connector::Sentinel(client) => {
                    let mut client = client.lock().await;
                    client
                        .get_async_connection_with_config(&config)
                        .await
                        .map(Connection::Single)
                }
                Connector::Cluster(client) => {
                    client.get_async_connection().await.map(Connection::Cluster)
                }
            }
        };
        let made = tokio::time::timeout(self.connect_timeout * 2, made)
            .await
            .map_err(|_| StoreError::Timeout(self.connect_timeout))?;
        made.map_err(|e| StoreError::Redis(e.to_string()))
    }

    /// A connection of its own, made on the store's thread: for blocking reads that
    /// must not hold up other commands.
    pub async fn dedicated(self: &Arc<Self>) -> Result<Connection, StoreError> {
        let store = self.clone();
        self.runtime
            .spawn(async move { store.connect().await })
            .await
            .map_err(|_| StoreError::NotConnected)?
    }

    /// Remakes the command connection in the background, once at a time, pausing longer
    /// after each failure (up to 2 s).
    fn reconnect(self: &Arc<Self>) {
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = Arc::downgrade(self);
        self.runtime.spawn(async move {
            let mut pause = Duration::from_millis(50);
            loop {
                let Some(live) = store.upgrade() else {
                    return;
                };
                match live.connect().await {
                    Ok(connection) => {
                        if let Ok(mut slot) = live.connection.lock() {
                            *slot = Some(connection);
                        }
                        live.reconnecting.store(false, Ordering::Release);
                        log::info!("shared store: connected");
                        return;
                    }
                    Err(e) => {
                        log::debug!("shared store: connect failed: {e}; again in {pause:?}");
                    }
                }
                drop(live);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        });
    }

    /// The command connection, or none (and a reconnect started).
    fn connection(self: &Arc<Self>) -> Option<Connection> {
        let current = self.connection.lock().ok().and_then(|slot| slot.clone());
        if current.is_none() {
            self.reconnect();
        }
        current
    }

    /// Forgets a connection that failed, so the next command makes a new one.
    fn drop_connection(self: &Arc<Self>, why: &str) {
        let had = self
            .connection
            .lock()
            .map(|mut slot| slot.take().is_some())
            .unwrap_or(false);
        if had {
            // once per loss: the attempts that follow are at debug
            log::warn!("shared store: connection lost ({why}); reconnecting in the background");
        }
        self.reconnect();
    }

    /// Runs one command within `deadline`.
    pub async fn query<T: redis::FromRedisValue>(
        self: &Arc<Self>,
        cmd: &Cmd,
        deadline: Duration,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection().ok_or(StoreError::NotConnected)?;
        let answer = tokio::time::timeout(deadline, cmd.query_async::<T>(&mut connection)).await;
        self.settle(answer, deadline)
    }

    /// Runs a pipeline within `deadline`.
    pub async fn pipeline<T: redis::FromRedisValue>(
        self: &Arc<Self>,
        pipeline: &Pipeline,
        deadline: Duration,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection().ok_or(StoreError::NotConnected)?;
        let answer =
            tokio::time::timeout(deadline, pipeline.query_async::<T>(&mut connection)).await;
        self.settle(answer, deadline)
    }

    fn settle<T>(
        self: &Arc<Self>,
        answer: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
        deadline: Duration,
    ) -> Result<T, StoreError> {
        match answer {
            Err(_) => {
                if self.timeouts.fetch_add(1, Ordering::AcqRel) + 1 >= TIMEOUTS_BEFORE_RECONNECT {
                    self.timeouts.store(0, Ordering::Release);
                    self.drop_connection("no answer to several commands in a row");
                }
                Err(StoreError::Timeout(deadline))
            }
            Ok(Ok(value)) => {
                self.timeouts.store(0, Ordering::Release);
                Ok(value)
            }
            Ok(Err(e)) => {
                // a lost connection, or a server that is no longer the primary (a
                // Sentinel failover): the next command asks for a connection anew
                let demoted = matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"));
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_unrecoverable_error()
                    || demoted
                {
                    self.drop_connection(&e.to_string());
                }
                Err(StoreError::Redis(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_url_hides_its_password() {
        assert_eq!(
            shown("redis://user:hunter2@cache:6379/0"),
            "redis://user:***@cache:6379/0"
        );
        assert_eq!(shown("redis://cache:6379"), "redis://cache:6379");
        assert!(!shown("not a url :: hunter2").contains("hunter2"));
    }
}
