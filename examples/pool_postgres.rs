//! An axum handler that queries PostgreSQL through a seawall pool.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo run --release --example pool_postgres
//! ```
//!
//! - `GET /add?a=2&b=3` asks the server for `2 + 3`;
//! - `GET /pool` shows the pool's counts.
//!
//! When no object can be had within the pool's `acquire_timeout` (the
//! server is down, or every connection is busy), the answer is a `503`.
//! `PORT` changes the port (3000).

use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use seawall::pool::postgres::PostgresManager;
use seawall::pool::{Pool, PoolConfig};

type Db = Pool<PostgresManager>;

/// The pool: 8 connections at most, 2 kept warm, callers wait up to 2 s.
pub(crate) fn pool_config() -> PoolConfig {
    PoolConfig::builder()
        .name("example")
        .max_size(8)
        .min_idle(2)
        .acquire_timeout(Duration::from_secs(2))
        .build()
        .expect("a valid pool config")
}

pub(crate) fn app(db: Db) -> Router {
    Router::new()
        .route("/add", get(add))
        .route("/pool", get(status))
        .with_state(db)
}

/// The value of `name` in a query string such as `a=2&b=3`, as a number.
fn term(query: Option<&str>, name: &str) -> Option<i32> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))?
        .parse()
        .ok()
}

async fn add(State(db): State<Db>, RawQuery(query): RawQuery) -> Response {
    let (Some(a), Some(b)) = (term(query.as_deref(), "a"), term(query.as_deref(), "b")) else {
        return (StatusCode::BAD_REQUEST, "ask /add?a=2&b=3\n").into_response();
    };
    let client = match db.get().await {
        Ok(client) => client,
        // An exhausted or closed pool: 503, as seawall's refusals say it.
        Err(error) => {
            return seawall::http::refusal_response::<axum::body::Body>(
                &error,
                seawall::ResponseFormat::Text,
            );
        }
    };
    match client
        .query_one("SELECT $1::int + $2::int", &[&a, &b])
        .await
    {
        Ok(row) => format!("{}\n", row.get::<_, i32>(0)).into_response(),
        Err(error) => (StatusCode::BAD_GATEWAY, format!("query failed: {error}\n")).into_response(),
    }
}

async fn status(State(db): State<Db>) -> String {
    let s = db.status();
    format!(
        "size: {}\nidle: {}\nin use: {}\nwaiting: {}\nmax: {}\n",
        s.size, s.idle, s.in_use, s.waiters, s.max_size
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = match database_url(std::env::var("DATABASE_URL").ok()) {
        Ok(url) => url,
        Err(what_to_set) => {
            eprintln!("{what_to_set}");
            std::process::exit(2);
        }
    };
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |port| port.parse())?;
    let manager = PostgresManager::from_url(&url)?;
    let db = Pool::new(manager, pool_config())
        .await
        .map_err(|e| format!("cannot reach PostgreSQL at {url}: {e}: {}", source_of(&e)))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("seawall pool demo on http://{addr}; try:");
    println!("  curl -s 'http://{addr}/add?a=2&b=3'");
    println!("  curl -s http://{addr}/pool");
    axum::serve(listener, app(db)).await?;
    Ok(())
}

/// The server's URL from `DATABASE_URL`'s value, or what to set.
pub(crate) fn database_url(value: Option<String>) -> Result<String, &'static str> {
    value.filter(|url| !url.trim().is_empty()).ok_or(
        "DATABASE_URL is not set: set it to a PostgreSQL URL, such as\n  \
         DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres",
    )
}

/// The deepest cause of an error, for the start-up message.
fn source_of(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}
