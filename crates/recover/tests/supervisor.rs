//! `Supervisor`: restarts, backoff, intensity, shutdown, on paused time.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use seawall_recover::{
    Exit, Restart, RestartPolicy, ShutdownReport, SpawnError, Supervisor, TaskEvent, TaskState,
};
use tokio::time::Instant;

fn policy(restart: Restart, max_restarts: u32, within: Duration) -> RestartPolicy {
    RestartPolicy::builder()
        .restart(restart)
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
        .max_restarts(max_restarts, within)
        .build()
        .expect("a valid policy")
}

/// When each run started.
type Starts = Arc<Mutex<Vec<Instant>>>;

#[tokio::test(start_paused = true)]
async fn failures_restart_with_a_doubling_jittered_backoff_until_the_limit() {
    let supervisor = Supervisor::new();
    let mut events = supervisor.events();
    let starts = Starts::default();
    let seen = Arc::clone(&starts);
    supervisor
        .spawn(
            "flaky",
            policy(Restart::OnFailure, 3, Duration::from_secs(60)),
            move |_| {
                seen.lock().push(Instant::now());
                async { Err::<(), _>("no connection") }
            },
        )
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;

    let starts = starts.lock().clone();
    assert_eq!(starts.len(), 4, "the first run and three restarts");
    for (n, pair) in starts.windows(2).enumerate() {
        let full = Duration::from_millis(100 << n);
        let gap = pair[1] - pair[0];
        assert!(gap <= full && gap >= full / 2, "restart {}: {gap:?}", n + 1);
    }
    let status = supervisor.task("flaky").unwrap();
    assert_eq!(status.state, TaskState::Failed);
    assert_eq!(status.restarts, 3);
    assert_eq!(status.last_exit, Some(Exit::Error("no connection".into())));

    let mut kinds = Vec::new();
    while let Ok(event) = events.try_recv() {
        kinds.push(match event {
            TaskEvent::Started { run, .. } => format!("start {run}"),
            TaskEvent::Exited { .. } => "exit".into(),
            TaskEvent::Restarting { .. } => "backoff".into(),
            TaskEvent::GaveUp { max_restarts, .. } => format!("gave up after {max_restarts}"),
            TaskEvent::Ended { state, .. } => format!("ended {state:?}"),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        kinds,
        [
            "start 1",
            "exit",
            "backoff",
            "start 2",
            "exit",
            "backoff",
            "start 3",
            "exit",
            "backoff",
            "start 4",
            "exit",
            "gave up after 3",
            "ended Failed"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_a_failure_with_its_message() {
    let supervisor = Supervisor::new();
    let runs = Arc::new(Mutex::new(0));
    let count = Arc::clone(&runs);
    supervisor
        .spawn(
            "panicky",
            policy(Restart::OnFailure, 5, Duration::from_secs(60)),
            move |_| {
                let run = {
                    let mut runs = count.lock();
                    *runs += 1;
                    *runs
                };
                async move {
                    assert!(run > 2, "run {run} fell over");
                    Ok::<(), String>(())
                }
            },
        )
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(*runs.lock(), 3);
    let status = supervisor.task("panicky").unwrap();
    assert_eq!((status.state, status.restarts), (TaskState::Finished, 2));
    assert_eq!(status.last_exit, Some(Exit::Completed));
}

#[tokio::test(start_paused = true)]
async fn each_policy_restarts_what_it_says() {
    let supervisor = Supervisor::new();
    let window = Duration::from_secs(60);
    supervisor
        .spawn("always", policy(Restart::Always, 2, window), |_| async {
            Ok::<(), String>(())
        })
        .unwrap();
    supervisor
        .spawn(
            "on-failure",
            policy(Restart::OnFailure, 2, window),
            |_| async { Ok::<(), String>(()) },
        )
        .unwrap();
    supervisor
        .spawn("never", policy(Restart::Never, 2, window), |_| async {
            Err("once")
        })
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let summary: Vec<(String, TaskState, u64)> = supervisor
        .status()
        .into_iter()
        .map(|task| (task.name, task.state, task.restarts))
        .collect();
    assert_eq!(
        summary,
        [
            ("always".to_owned(), TaskState::Failed, 2),
            ("on-failure".to_owned(), TaskState::Finished, 0),
            ("never".to_owned(), TaskState::Failed, 0),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn restarts_that_left_the_window_count_no_longer() {
    let supervisor = Supervisor::new();
    let starts = Starts::default();
    let seen = Arc::clone(&starts);
    // One restart per second at most; each run lasts two seconds.
    supervisor
        .spawn(
            "slow-failer",
            policy(Restart::OnFailure, 1, Duration::from_secs(1)),
            move |_| {
                seen.lock().push(Instant::now());
                async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Err::<(), _>("lost")
                }
            },
        )
        .unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let starts = starts.lock().clone();
    assert!(starts.len() >= 8, "kept restarting: {} runs", starts.len());
    // The window empties between runs, so every backoff is the first one.
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0] - Duration::from_secs(2);
        assert!(gap <= Duration::from_millis(100), "{gap:?}");
    }
    assert!(matches!(
        supervisor.task("slow-failer").unwrap().state,
        TaskState::Running | TaskState::Restarting { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_tasks_that_listen_and_aborts_the_rest() {
    let supervisor = Supervisor::new();
    let always = policy(Restart::Always, 100, Duration::from_secs(60));
    supervisor
        .spawn("polite", always, |shutdown| async move {
            shutdown.cancelled().await;
            tokio::time::sleep(Duration::from_millis(300)).await; // flushing
            Ok::<(), String>(())
        })
        .unwrap();
    let dropped = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&dropped);
    supervisor
        .spawn("deaf", always, move |_| {
            let guard = DropFlag(Arc::clone(&flag));
            async move {
                let _guard = guard;
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            }
        })
        .unwrap();
    supervisor
        .spawn("backing-off", always, |_| async { Err("down") })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;

    let started = Instant::now();
    let report = supervisor.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.ended, ["polite", "backing-off"]);
    assert_eq!(report.aborted, ["deaf"]);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert!(*dropped.lock(), "the aborted task's future was dropped");

    let states: Vec<TaskState> = supervisor.status().into_iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        [TaskState::Stopped, TaskState::Aborted, TaskState::Stopped]
    );
    assert_eq!(
        supervisor.spawn("late", always, |_| async { Ok::<(), String>(()) }),
        Err(SpawnError::ShuttingDown)
    );
}

/// Spawns "signals", a supervised task that calls `shutdown` after `after`
/// (a signal handler); its report comes out of the receiver.
fn signals(
    supervisor: &Supervisor,
    after: Duration,
) -> tokio::sync::oneshot::Receiver<ShutdownReport> {
    let (reported, report) = tokio::sync::oneshot::channel();
    let reported = Mutex::new(Some(reported));
    let handle = supervisor.clone();
    supervisor
        .spawn(
            "signals",
            policy(Restart::Never, 1, Duration::from_secs(60)),
            move |_| {
                let handle = handle.clone();
                let reported = reported.lock().take();
                async move {
                    tokio::time::sleep(after).await;
                    let report = handle.shutdown(Duration::from_secs(5)).await;
                    if let Some(reported) = reported {
                        let _ = reported.send(report);
                    }
                    Ok::<(), String>(())
                }
            },
        )
        .expect("a new name");
    report
}

/// A second `shutdown` (two signal handlers) waits for the first and gives
/// the same report; one called from a supervised task (the task that
/// listens for signals) neither waits for nor aborts that task.
#[tokio::test(start_paused = true)]
async fn shutdown_twice_and_from_inside_a_task() {
    let supervisor = Supervisor::new();
    let once = policy(Restart::Never, 1, Duration::from_secs(60));
    supervisor
        .spawn("polite", once, |shutdown| async move {
            shutdown.cancelled().await;
            tokio::time::sleep(Duration::from_millis(300)).await; // flushing
            Ok::<(), String>(())
        })
        .unwrap();
    let report = signals(&supervisor, Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    let second = supervisor.shutdown(Duration::from_secs(5)).await;
    let first = report.await.expect("the task's shutdown returned");
    assert_eq!(first.ended, ["polite"]);
    assert!(first.aborted.is_empty(), "{first:?}");
    assert_eq!(second, first, "the same report");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(290),
        "the second waited for the first"
    );
}

struct DropFlag(Arc<Mutex<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        *self.0.lock() = true;
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_supervisor_asks_its_tasks_to_stop() {
    let supervisor = Supervisor::new();
    let (done, finished) = tokio::sync::oneshot::channel();
    supervisor
        .spawn("worker", RestartPolicy::default(), {
            let mut done = Some(done);
            move |shutdown| {
                let done = done.take();
                async move {
                    shutdown.cancelled().await;
                    assert!(shutdown.is_cancelled());
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    Ok::<(), String>(())
                }
            }
        })
        .unwrap();
    tokio::task::yield_now().await;
    drop(supervisor);
    tokio::time::timeout(Duration::from_secs(1), finished)
        .await
        .expect("the task saw the signal")
        .unwrap();
}

#[tokio::test]
async fn names_are_unique() {
    let supervisor = Supervisor::new();
    let policy = RestartPolicy::default();
    supervisor
        .spawn("a", policy, |s| async move {
            s.cancelled().await;
            Ok::<(), String>(())
        })
        .unwrap();
    let error = supervisor
        .spawn("a", policy, |_| async { Ok::<(), String>(()) })
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"a task named "a" is supervised already"#
    );
}

#[test]
fn spawning_outside_a_runtime_is_an_error() {
    let supervisor = Supervisor::new();
    let error = supervisor
        .spawn("a", RestartPolicy::default(), |_| async {
            Ok::<(), String>(())
        })
        .unwrap_err();
    assert_eq!(error, SpawnError::NoRuntime);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_making_the_run_is_a_failure_too() {
    let supervisor = Supervisor::new();
    let runs = Arc::new(Mutex::new(0));
    let count = Arc::clone(&runs);
    supervisor
        .spawn(
            "fragile",
            policy(Restart::OnFailure, 2, Duration::from_secs(60)),
            move |_| {
                *count.lock() += 1;
                panic!("could not even start");
                #[allow(unreachable_code)]
                async {
                    Ok::<(), String>(())
                }
            },
        )
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(*runs.lock(), 3);
    let status = supervisor.task("fragile").unwrap();
    assert_eq!((status.state, status.restarts), (TaskState::Failed, 2));
    match status.last_exit {
        Some(Exit::Panicked(panicked)) => assert_eq!(panicked.message(), "could not even start"),
        other => panic!("{other:?}"),
    }
}

/// An error whose `Display` panics.
#[derive(Debug)]
struct Unprintable;

impl std::fmt::Display for Unprintable {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("cannot print this error")
    }
}

#[tokio::test(start_paused = true)]
async fn an_error_that_panics_when_printed_is_a_panic_of_the_run() {
    let supervisor = Supervisor::new();
    let runs = Arc::new(Mutex::new(0));
    let count = Arc::clone(&runs);
    supervisor
        .spawn(
            "unprintable",
            policy(Restart::OnFailure, 2, Duration::from_secs(60)),
            move |_| {
                *count.lock() += 1;
                async { Err::<(), _>(Unprintable) }
            },
        )
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(*runs.lock(), 3, "restarted as any failure is");
    let status = supervisor.task("unprintable").unwrap();
    assert_eq!((status.state, status.restarts), (TaskState::Failed, 2));
    match status.last_exit {
        Some(Exit::Panicked(panicked)) => assert_eq!(panicked.message(), "cannot print this error"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_timeout_past_the_clock_waits_without_a_deadline() {
    let supervisor = Supervisor::new();
    supervisor
        .spawn("polite", RestartPolicy::default(), |shutdown| async move {
            shutdown.cancelled().await;
            Ok::<(), String>(())
        })
        .unwrap();
    let report = supervisor.shutdown(Duration::MAX).await;
    assert_eq!(report.ended, ["polite"]);
}

/// The other order: the supervisor is shut down from outside first, and
/// the signal task calls `shutdown` too while it runs: it is not waited
/// for, nor aborted.
#[tokio::test(start_paused = true)]
async fn a_task_that_shuts_down_second_is_not_waited_for() {
    let supervisor = Supervisor::new();
    let its_report = signals(&supervisor, Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let started = Instant::now();
    let report = supervisor.shutdown(Duration::from_secs(5)).await;
    assert!(report.aborted.is_empty(), "{report:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "not waited for");
    let its_report = its_report.await.expect("the task's call returned");
    assert_eq!(its_report, report, "the same report");
}

/// A shutdown whose caller stopped waiting (a `select!` that took another
/// branch) goes on; the next call waits for it and gets its report.
#[tokio::test(start_paused = true)]
async fn a_dropped_shutdown_call_still_reports_to_the_next() {
    let supervisor = Supervisor::new();
    supervisor
        .spawn(
            "polite",
            policy(Restart::Never, 1, Duration::from_secs(60)),
            |shutdown| async move {
                shutdown.cancelled().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<(), String>(())
            },
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await; // it waits for the signal
    let cut = tokio::time::timeout(
        Duration::from_millis(1),
        supervisor.shutdown(Duration::from_secs(5)),
    )
    .await;
    assert!(cut.is_err(), "the first call was dropped");
    let report = supervisor.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.ended, ["polite"]);
}
