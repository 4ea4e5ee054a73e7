//! The PostgreSQL pool through a restart of the server that `scripts/test`
//! starts, stopped and started with the script it exports as
//! `SEAWALL_TEST_POSTGRES_CTL`. Alone in its test binary, so no other test
//! runs while the server is down.
#![cfg(feature = "postgres")]

mod common;

use common::restart::{from_env, survives_a_restart};
use seawall_pool::postgres::PostgresManager;

async fn ctl(action: &str) {
    let script = from_env(
        "SEAWALL_TEST_POSTGRES_CTL",
        "a script that stops and starts the test PostgreSQL server",
    );
    let status = tokio::process::Command::new(&script)
        .arg(action)
        .status()
        .await
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(status.success(), "{script} {action} failed: {status}");
}

/// Starts the server again if the test fails while it is stopped, so the
/// tests after this one find it up.
struct StartIfFailed;

impl Drop for StartIfFailed {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(script) = std::env::var("SEAWALL_TEST_POSTGRES_CTL")
        {
            let _ = std::process::Command::new(script).arg("start").status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pool_survives_a_server_restart() {
    let url = from_env("SEAWALL_TEST_POSTGRES_URL", "a running PostgreSQL server");
    let _restart = StartIfFailed;
    survives_a_restart(
        PostgresManager::from_url(&url).expect("a postgres URL"),
        |client| async move {
            let row = client
                .query_one("SELECT 1 + 1", &[])
                .await
                .map_err(|e| e.to_string())?;
            assert_eq!(row.get::<_, i32>(0), 2);
            Ok(())
        },
        ctl("stop"),
        ctl("start"),
    )
    .await;
}
