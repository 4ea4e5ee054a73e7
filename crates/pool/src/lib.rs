//! An async object pool, for connections above all, with HikariCP's
//! guarantees: callers are served in the order they came, the most recently
//! returned (warmest) object is reused first, lifetimes are enforced at
//! every checkout and return (not only by a background task), and nothing
//! a cancelled caller held is lost.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::convert::Infallible;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use seawall_pool::{Manager, Pool, PoolConfig};
//!
//! /// Stands for a connection: a number, made one after another.
//! struct Numbers(AtomicU32);
//!
//! impl Manager for Numbers {
//!     type Object = u32;
//!     type Error = Infallible;
//!
//!     async fn create(&self) -> Result<u32, Infallible> {
//!         Ok(self.0.fetch_add(1, Ordering::Relaxed))
//!     }
//!
//!     async fn check(&self, _: &mut u32) -> Result<(), Infallible> {
//!         Ok(())
//!     }
//! }
//!
//! let config = PoolConfig::builder().max_size(2).min_idle(0).build()?;
//! let pool = Pool::new(Numbers(AtomicU32::new(0)), config).await?;
//!
//! let first = pool.get().await?; // made at start (fail_fast checks one)
//! let second = pool.get().await?; // made now: the pool has room
//! assert_eq!((*first, *second), (0, 1));
//! assert_eq!(pool.status().in_use, 2);
//!
//! drop(first);
//! drop(second);
//! assert_eq!(*pool.get().await?, 1, "the last returned comes out first");
//! # Ok(())
//! # }
//! ```
//!
//! With PostgreSQL (feature `postgres`), a pool of 16 clients:
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use seawall_pool::postgres::PostgresManager;
//! use seawall_pool::{Pool, PoolConfig};
//!
//! let manager = PostgresManager::from_url("postgres://app@127.0.0.1/app")?;
//! let pool = Pool::new(manager, PoolConfig::builder().max_size(16).build()?).await?;
//! let client = pool.get().await?; // waits up to acquire_timeout (30 s)
//! let row = client.query_one("SELECT $1::int + 1", &[&41]).await?;
//! assert_eq!(row.get::<_, i32>(0), 42);
//! # Ok(())
//! # }
//! # fn main() {}
//! ```
//!
//! # How it behaves
//!
//! - Waiters are served in the order they came; a returned object's place
//!   goes to the oldest. Taking and giving back a place when nobody waits
//!   is one compare-and-swap, and checking out an idle object allocates
//!   nothing.
//! - `max_lifetime` is checked at checkout and return; an upkeep task
//!   retires idle and old objects, runs keepalive checks and keeps
//!   `min_idle` objects idle (up to `max_size` in all).
//! - While making objects fails (the server is down), one caller at a time
//!   tries again after a growing pause, and callers get
//!   [`PoolError::Timeout`] within `acquire_timeout`, with the failure as
//!   its source.
//!
//! `docs/pool.md` covers sizing, timeouts, restarts and leak detection, with
//! a table of the settings' names in HikariCP, deadpool and bb8.
//!
//! # Features
//!
//! | Name | Description | Default |
//! |---|---|---|
//! | `serde` | `PoolConfig` implements `Deserialize` (through its builder's checks) and `Serialize`, durations as `"250ms"` (or `"off"`) | off |
//! | `tracing` | events under the target `seawall::pool`: creations and discards (debug), failures to create, timeouts and leak warnings (warn) | off |
//! | `tower` | `tower::PoolService`: each request runs on a pooled object; `poll_ready` waits for one (backpressure) | off |
//! | `http` | refusals (an exhausted or closed pool) answered as `503` through `seawall-core`'s `RefuseWithResponse` | off |
//! | `tcp` | `tcp::TcpManager`: TCP connections to one address | off |
//! | `redis` | `redis::RedisManager`: Redis connections (`PING` checks; a connection that fails at the connection level is discarded) | off |
//! | `postgres` | `postgres::PostgresManager`: tokio-postgres clients (empty-query checks, closed clients discarded), TLS optional | off |
//! | `metrics` | the histogram `seawall_pool_wait_seconds` and counters `seawall_pool_timeouts_total`, `_creates_total`, `_create_errors_total`, `_recycles_total`, `_discards_total` (label `reason`), labelled `pool` | off |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod config;
#[cfg(feature = "serde")]
mod config_serde;
mod error;
mod gate;
mod loom;
#[cfg(all(test, loom))]
mod loom_models;
mod manager;
mod object;
mod observe;
mod pool;
mod slots;
mod upkeep;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
#[path = "managers/postgres.rs"]
pub mod postgres;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[path = "managers/redis.rs"]
pub mod redis;
#[cfg(feature = "tcp")]
#[cfg_attr(docsrs, doc(cfg(feature = "tcp")))]
#[path = "managers/tcp.rs"]
pub mod tcp;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use config::{CheckoutTest, PoolConfig, PoolConfigBuilder};
pub use error::{CreateError, PoolError};
pub use manager::Manager;
pub use object::{Object, OwnedObject};
pub use pool::{Pool, Status};
