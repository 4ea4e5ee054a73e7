//! Background tasks under a supervisor: one that panics now and then and is
//! restarted, one that keeps failing and is given up, one that runs until
//! shutdown; then a graceful shutdown with a deadline.
//!
//! `cargo run --example supervisor` prints each task's events as they
//! happen and the final status, in about two seconds. The panics are also
//! printed by Rust's panic hook, as every panic is; the supervisor catches
//! them after that.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use seawall::recover::{Restart, RestartPolicy, Supervisor, TaskEvent};

/// Starts the three tasks, lets them run for `run_for`, shuts down, and
/// returns one line per event and per task at the end.
pub(crate) async fn run(run_for: Duration) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let supervisor = Supervisor::new();
    let mut events = supervisor.events();
    let printer = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Ok(event) = events.recv().await {
            let line = match event {
                TaskEvent::Started { name, run } => format!("{name}: run {run} started"),
                TaskEvent::Exited { name, exit } => format!("{name}: {exit}"),
                TaskEvent::Restarting { name, delay } => {
                    format!("{name}: restarting in {} ms", delay.as_millis())
                }
                TaskEvent::GaveUp {
                    name, max_restarts, ..
                } => {
                    format!("{name}: failed {max_restarts} restarts in a row; given up")
                }
                TaskEvent::Ended { name, state } => format!("{name}: {state:?}"),
                other => format!("{other:?}"),
            };
            println!("{line}");
            lines.push(line);
        }
        lines
    });

    // Panics on every third tick; the supervisor starts it again.
    let ticks = Arc::new(AtomicU32::new(0));
    let restart_quickly = RestartPolicy::builder()
        .restart(Restart::OnFailure)
        .backoff(Duration::from_millis(50), Duration::from_millis(400))
        .max_restarts(10, Duration::from_secs(10))
        .build()?;
    supervisor.spawn("ticker", restart_quickly, move |shutdown| {
        let ticks = Arc::clone(&ticks);
        async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return Ok::<(), String>(()),
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                let tick = ticks.fetch_add(1, Ordering::Relaxed) + 1;
                assert!(
                    !tick.is_multiple_of(3),
                    "tick {tick} is a multiple of three"
                );
            }
        }
    })?;

    // Cannot reach its database: gives up after three restarts.
    let give_up = RestartPolicy::builder()
        .backoff(Duration::from_millis(20), Duration::from_millis(100))
        .max_restarts(3, Duration::from_secs(60))
        .build()?;
    supervisor.spawn("reporter", give_up, |_| async {
        Err::<(), _>("connection refused")
    })?;

    // Runs until asked to stop, then takes 100 ms to flush.
    supervisor.spawn("flusher", RestartPolicy::default(), |shutdown| async move {
        shutdown.cancelled().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<(), String>(())
    })?;

    tokio::time::sleep(run_for).await;
    let report = supervisor.shutdown(Duration::from_secs(1)).await;
    let mut summary: Vec<String> = supervisor
        .status()
        .into_iter()
        .map(|task| {
            format!(
                "{}: {:?} after {} restarts",
                task.name, task.state, task.restarts
            )
        })
        .collect();
    summary.push(format!(
        "ended {:?}, aborted {:?}",
        report.ended, report.aborted
    ));
    drop(supervisor);
    let mut lines = printer.await?;
    for line in &summary {
        println!("{line}");
    }
    lines.extend(summary);
    Ok(lines)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(Duration::from_secs(2)).await?;
    Ok(())
}
