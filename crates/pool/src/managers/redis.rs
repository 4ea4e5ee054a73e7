//! [`RedisManager`]: pooled Redis connections.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use crate::Manager;

/// Makes Redis connections from a [`redis::Client`]; a check is a `PING`.
///
/// Each object is a [`RedisConnection`]: pass it where the `redis` crate
/// takes a connection (`cmd.query_async(&mut *conn)`). A connection that
/// fails a request with a connection-level error (I/O, dropped, refused,
/// unrecoverable) counts as broken, so it is discarded when it comes back
/// instead of being handed out again: after a server restart the pool
/// replaces its dead connections by itself.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use seawall_pool::redis::RedisManager;
/// use seawall_pool::{Pool, PoolConfig};
///
/// let manager = RedisManager::new("redis://127.0.0.1:6379/")?;
/// let pool = Pool::new(manager, PoolConfig::builder().max_size(8).build()?).await?;
/// let mut conn = pool.get().await?;
/// let pong: String = redis::cmd("PING").query_async(&mut *conn).await?;
/// assert_eq!(pong, "PONG");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RedisManager {
    client: redis::Client,
}

impl RedisManager {
    /// Connections to the server at `url` (`redis://host:port/db`).
    ///
    /// # Errors
    /// The URL cannot be read.
    pub fn new(url: &str) -> Result<Self, RedisError> {
        Ok(Self::from_client(redis::Client::open(url)?))
    }

    /// Connections made by `client`.
    pub fn from_client(client: redis::Client) -> Self {
        Self { client }
    }
}

/// A pooled Redis connection: a [`MultiplexedConnection`] that remembers
/// whether a request failed at the connection level.
#[derive(Clone)]
pub struct RedisConnection {
    inner: MultiplexedConnection,
    broken: bool,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// Whether a request failed at the connection level.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn note<T>(&mut self, result: &Result<T, RedisError>) {
        if let Err(error) = result {
            self.broken |= error.is_io_error()
                || error.is_connection_dropped()
                || error.is_connection_refusal()
                || error.is_unrecoverable_error();
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.inner.req_packed_command(cmd).await;
            self.note(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self
                .inner
                .req_packed_commands(pipeline, offset, count)
                .await;
            self.note(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

impl Manager for RedisManager {
    type Object = RedisConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<RedisConnection, RedisError> {
        let inner = self.client.get_multiplexed_async_connection().await?;
        Ok(RedisConnection {
            inner,
            broken: false,
        })
    }

    async fn check(&self, conn: &mut RedisConnection) -> Result<(), RedisError> {
        let _: String = redis::cmd("PING").query_async(conn).await?;
        Ok(())
    }

    fn is_broken(&self, conn: &mut RedisConnection) -> bool {
        conn.broken
    }
}
