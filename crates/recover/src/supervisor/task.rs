//! One supervised task's loop: run, judge the end, back off, run again.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{Exit, Restart, RestartPolicy, Shutdown, TaskEvent, TaskState, TaskStatus};
use crate::panic::guard;
use crate::{catch, observe};

/// What a task's loop needs besides the function that makes its runs.
pub(super) struct Runner {
    pub(super) name: Arc<str>,
    pub(super) policy: RestartPolicy,
    pub(super) status: Arc<Mutex<TaskStatus>>,
    pub(super) shutdown: Shutdown,
    pub(super) events: broadcast::Sender<TaskEvent>,
}

impl Runner {
    pub(super) async fn run<F, Fut, E>(self, mut make: F)
    where
        F: FnMut(Shutdown) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: fmt::Display,
    {
        // When the restarts still in the intensity window happened.
        let mut recent: VecDeque<Instant> = VecDeque::new();
        let mut run: u64 = 0;
        let end = loop {
            if self.shutdown.is_cancelled() {
                break TaskState::Stopped;
            }
            run += 1;
            self.status.lock().state = TaskState::Running;
            self.emit(TaskEvent::Started {
                name: Arc::clone(&self.name),
                run,
            });
            // A panic in `make` itself counts as one in the run.
            let run_future = guard(|| make(self.shutdown.clone()));
            let exit = match run_future {
                Ok(future) => catch(future).await,
                Err(panicked) => Err(panicked),
            };
            let exit = match exit {
                Ok(Ok(())) => Exit::Completed,
                // The error's own `Display` (and drop) may panic too.
                Ok(Err(error)) => match guard(move || error.to_string()) {
                    Ok(message) => Exit::Error(message),
                    Err(panicked) => Exit::Panicked(panicked),
                },
                Err(panicked) => Exit::Panicked(panicked),
            };
            observe::task_exited(&self.name, &exit);
            self.status.lock().last_exit = Some(exit.clone());
            let failed = exit.is_failure();
            self.emit(TaskEvent::Exited {
                name: Arc::clone(&self.name),
                exit,
            });
            if self.shutdown.is_cancelled() {
                break TaskState::Stopped;
            }
            let restart = match self.policy.restart() {
                Restart::Always => true,
                Restart::OnFailure => failed,
                Restart::Never => false,
            };
            if !restart {
                break if failed {
                    TaskState::Failed
                } else {
                    TaskState::Finished
                };
            }

            let now = Instant::now();
            let within = self.policy.within();
            while recent
                .front()
                .is_some_and(|&at| now.duration_since(at) >= within)
            {
                recent.pop_front();
            }
            if recent.len() >= usize::try_from(self.policy.max_restarts()).unwrap_or(usize::MAX) {
                observe::task_gave_up(&self.name, self.policy.max_restarts(), within);
                self.emit(TaskEvent::GaveUp {
                    name: Arc::clone(&self.name),
                    max_restarts: self.policy.max_restarts(),
                    within,
                });
                break TaskState::Failed;
            }
            recent.push_back(now);
            let delay = self.policy.jittered_backoff(recent.len(), run);
            observe::task_restarting(&self.name, delay);
            self.status.lock().state = TaskState::Restarting { delay };
            self.emit(TaskEvent::Restarting {
                name: Arc::clone(&self.name),
                delay,
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.shutdown.cancelled() => break TaskState::Stopped,
            }
            self.status.lock().restarts += 1;
        };
        self.status.lock().state = end;
        self.emit(TaskEvent::Ended {
            name: Arc::clone(&self.name),
            state: end,
        });
    }

    fn emit(&self, event: TaskEvent) {
        // An error only says nobody is listening.
        let _ = self.events.send(event);
    }
}
