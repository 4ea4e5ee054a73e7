//! Runs the `supervisor` example on paused time and checks its story.

#[allow(dead_code)] // its `main` is the example's
#[path = "../supervisor.rs"]
mod supervisor;

use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn panics_restart_failures_give_up_and_shutdown_waits() {
    let lines = supervisor::run(Duration::from_secs(2))
        .await
        .expect("the example runs");
    let has = |text: &str| lines.iter().any(|line| line.contains(text));
    assert!(
        has("ticker: panicked at") && has("is a multiple of three"),
        "{lines:#?}"
    );
    assert!(has("ticker: restarting in"), "{lines:#?}");
    assert!(
        has("reporter: failed 3 restarts in a row; given up"),
        "{lines:#?}"
    );
    assert!(has("reporter: Failed after 3 restarts"), "{lines:#?}");
    assert!(has("flusher: Stopped after 0 restarts"), "{lines:#?}");
    assert!(
        has(r#"ended ["ticker", "reporter", "flusher"], aborted []"#),
        "{lines:#?}"
    );
}
