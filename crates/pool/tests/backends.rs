//! The real managers against real servers: a TCP server of the test's own,
//! a Redis server the test starts, and the PostgreSQL that `scripts/test`
//! starts (`SEAWALL_TEST_POSTGRES_URL`). Each test fails, never skips, when
//! its server is missing.
#![cfg(all(feature = "tcp", feature = "redis", feature = "postgres"))]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::restart::{from_env, survives_a_restart};
use seawall_pool::postgres::PostgresManager;
use seawall_pool::redis::RedisManager;
use seawall_pool::tcp::TcpManager;
use seawall_pool::{Pool, PoolConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// An echo server that can be stopped (closing every connection) and
/// started again on the same port.
struct Echo {
    address: SocketAddr,
    tasks: JoinSet<()>,
}

impl Echo {
    async fn start_on(address: SocketAddr) -> Self {
        let listener = TcpListener::bind(address).await.expect("the port is free");
        let address = listener.local_addr().expect("bound");
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                connections.spawn(async move {
                    let mut byte = [0];
                    while socket.read_exact(&mut byte).await.is_ok() {
                        if socket.write_all(&byte).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { address, tasks }
    }

    /// Aborting the accept task drops the listener and, with its `JoinSet`,
    /// every connection.
    async fn stop(&mut self) {
        self.tasks.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_pool_survives_a_server_restart() {
    let mut echo = Echo::start_on("127.0.0.1:0".parse().expect("address")).await;
    let address = echo.address;
    let echo_slot = std::sync::Arc::new(tokio::sync::Mutex::new(None));
    let stop = {
        let slot = std::sync::Arc::clone(&echo_slot);
        async move {
            echo.stop().await;
            *slot.lock().await = None;
        }
    };
    let start = {
        let slot = std::sync::Arc::clone(&echo_slot);
        async move {
            *slot.lock().await = Some(Echo::start_on(address).await);
        }
    };
    survives_a_restart(
        TcpManager::new(address.to_string()),
        |mut conn| async move {
            conn.write_all(b"x").await.map_err(|e| e.to_string())?;
            let mut echo = [0];
            conn.read_exact(&mut echo)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        },
        stop,
        start,
    )
    .await;
    if let Some(mut echo) = echo_slot.lock().await.take() {
        echo.stop().await;
    }
}

/// A Redis server of the test's own, on a free port, so stopping it
/// disturbs no other test.
struct OwnRedis {
    port: u16,
    child: Option<tokio::process::Child>,
}

impl OwnRedis {
    async fn start(port: u16, dir: std::path::PathBuf) -> Self {
        let child = tokio::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it (scripts/test does) or put it on PATH")
            });
        let server = Self {
            port,
            child: Some(child),
        };
        let client = redis::Client::open(server.url()).expect("url");
        // A real process starts in real time: ask every 50 ms, up to 5 s.
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let pong: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not answer on port {port} within 5 s");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("killed");
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pool_survives_a_server_restart() {
    let dir = std::env::temp_dir().join(format!("seawall-pool-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let port = free_port();
    let mut server = OwnRedis::start(port, dir.clone()).await;
    let url = server.url();
    let slot = std::sync::Arc::new(tokio::sync::Mutex::new(None));
    let stop = async move { server.stop().await };
    let start = {
        let slot = std::sync::Arc::clone(&slot);
        let dir = dir.clone();
        async move { *slot.lock().await = Some(OwnRedis::start(port, dir).await) }
    };
    survives_a_restart(
        RedisManager::new(&url).expect("url"),
        |mut conn| async move {
            let n: i64 = redis::cmd("INCR")
                .arg("seawall-pool-test")
                .query_async(&mut *conn)
                .await
                .map_err(|e| e.to_string())?;
            assert!(n > 0);
            Ok(())
        },
        stop,
        start,
    )
    .await;
    if let Some(mut server) = slot.lock().await.take() {
        server.stop().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn postgres_url() -> String {
    from_env("SEAWALL_TEST_POSTGRES_URL", "a running PostgreSQL server")
}

#[tokio::test]
async fn postgres_pool_runs_queries_and_reuses_clients() {
    let manager = PostgresManager::from_url(&postgres_url()).expect("a postgres URL");
    let config = PoolConfig::builder()
        .max_size(2)
        .min_idle(0)
        .build()
        .expect("valid");
    let pool = Pool::new(manager, config).await.expect("PostgreSQL is up");
    let pid = {
        let client = pool.get().await.expect("client");
        let row = client
            .query_one("SELECT pg_backend_pid(), 1 + 1", &[])
            .await
            .expect("query");
        assert_eq!(row.get::<_, i32>(1), 2);
        row.get::<_, i32>(0)
    };
    let client = pool.get().await.expect("client");
    let again: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(again, pid, "the same session, reused");
}

#[tokio::test]
async fn a_client_dropped_mid_stream_is_reused_safely() {
    use futures::StreamExt;
    let manager = PostgresManager::from_url(&postgres_url()).expect("a postgres URL");
    let config = PoolConfig::builder()
        .max_size(1)
        .min_idle(0)
        .build()
        .expect("valid");
    let pool = Pool::new(manager, config).await.expect("PostgreSQL is up");
    {
        let client = pool.get().await.expect("client");
        let rows = client
            .query_raw(
                "SELECT generate_series(1, 100000)",
                std::iter::empty::<i32>(),
            )
            .await
            .expect("stream");
        let mut rows = std::pin::pin!(rows);
        // Read a few rows, then drop the stream and the client mid-way.
        for _ in 0..3 {
            rows.next().await.expect("a row").expect("ok");
        }
    }
    let client = tokio::time::timeout(Duration::from_secs(5), pool.get())
        .await
        .expect("the next get does not hang")
        .expect("client");
    let n: i64 = client
        .query_one("SELECT count(*) FROM generate_series(1, 10)", &[])
        .await
        .expect("the client answers the next query correctly")
        .get(0);
    assert_eq!(n, 10);
}
