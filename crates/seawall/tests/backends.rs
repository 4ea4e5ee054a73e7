//! The real servers that `scripts/test` starts are reachable from tests.
//!
//! Each test reads its server's address from an environment variable that
//! `scripts/test` exports, and fails, never skips, when it is missing.

use std::time::Duration;

/// Reads `var`, or fails the test saying how to provide it.
fn server_address(var: &str, what: &str) -> String {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "{var} is not set: this test needs a running {what}. Run scripts/test, \
             which starts one on a free loopback port, or export {var} yourself."
        ),
    }
}

/// A key no other run of the suite uses, so a shared server is safe.
fn unique_key(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("seawall-test/{prefix}/{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn redis_round_trip() {
    let url = server_address("SEAWALL_TEST_REDIS_URL", "Redis server");
    let client = redis::Client::open(url.as_str()).expect("SEAWALL_TEST_REDIS_URL is a redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to Redis at {url}: {e}"));
    let key = unique_key("redis");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("hello")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let value: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, "hello");
    let deleted: u32 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
}

#[tokio::test]
async fn etcd_put_get() {
    let endpoints = server_address("SEAWALL_TEST_ETCD_ENDPOINTS", "etcd server");
    let endpoints: Vec<&str> = endpoints.split(',').map(str::trim).collect();
    let options = etcd_client::ConnectOptions::new().with_connect_timeout(Duration::from_secs(5));
    let mut client = etcd_client::Client::connect(&endpoints, Some(options))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to etcd at {endpoints:?}: {e}"));
    let key = unique_key("etcd");
    client.put(key.as_str(), "hello", None).await.unwrap();
    let resp = client.get(key.as_str(), None).await.unwrap();
    let values: Vec<&[u8]> = resp
        .kvs()
        .iter()
        .map(etcd_client::KeyValue::value)
        .collect();
    assert_eq!(values, [b"hello".as_slice()]);
    let deleted = client.delete(key.as_str(), None).await.unwrap();
    assert_eq!(deleted.deleted(), 1);
}

#[tokio::test]
async fn postgres_select_one() {
    let url = server_address("SEAWALL_TEST_POSTGRES_URL", "PostgreSQL server");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {url}: {e}"));
    let driver = tokio::spawn(connection);
    let row = client
        .query_one("SELECT 1::INT4 + $1::INT4", &[&1i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    drop(client);
    driver.await.unwrap().unwrap();
}
