//! Drives the `pool_postgres` example over real HTTP against the
//! PostgreSQL that `scripts/test` starts (`SEAWALL_TEST_POSTGRES_URL`), and
//! checks what it says when `DATABASE_URL` is missing.

#[allow(dead_code)] // its `main` is the example's
#[path = "../pool_postgres.rs"]
mod pool_postgres;

mod common;

use common::get;

use seawall::pool::Pool;
use seawall::pool::postgres::PostgresManager;
use tokio::net::TcpListener;

fn postgres_url() -> String {
    let var = "SEAWALL_TEST_POSTGRES_URL";
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{var} is not set: this test needs a running PostgreSQL server. Run \
             scripts/test, which starts one, or export {var} yourself."
        ),
    }
}

#[tokio::test]
async fn the_handler_queries_postgres_through_the_pool() {
    let manager = PostgresManager::from_url(&postgres_url()).expect("a postgres URL");
    let db = Pool::new(manager, pool_postgres::pool_config())
        .await
        .expect("PostgreSQL is up");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let app = pool_postgres::app(db.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let (status, reply) = get(addr, "/add?a=2&b=3").await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.ends_with("\r\n\r\n5\n"), "{reply}");
    let (status, _) = get(addr, "/add?a=two").await;
    assert_eq!(status, 400);
    let (status, reply) = get(addr, "/pool").await;
    assert_eq!(status, 200);
    assert!(reply.contains("max: 8"), "{reply}");

    // A closed pool: the handler answers 503 without touching the server.
    assert!(db.close(std::time::Duration::from_secs(5)).await);
    let (status, _) = get(addr, "/add?a=2&b=3").await;
    assert_eq!(status, 503);
    server.abort();
}

#[test]
fn without_database_url_the_example_says_what_to_set() {
    let said = pool_postgres::database_url(None).expect_err("nothing set");
    assert!(
        said.starts_with("DATABASE_URL is not set: set it to a PostgreSQL URL"),
        "{said}"
    );
    assert!(pool_postgres::database_url(Some(" ".into())).is_err());
    assert_eq!(
        pool_postgres::database_url(Some("postgres://db/app".into())),
        Ok("postgres://db/app".to_owned())
    );
}
