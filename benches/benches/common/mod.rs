//! Helpers shared by the benches.

use std::time::{Duration, Instant};

/// Runs `op` `iters` times split over `threads` threads; the wall time of
/// the whole, so a result is the time per operation of the group.
pub(crate) fn on_threads<F: Fn(u64) + Sync>(threads: u64, iters: u64, op: F) -> Duration {
    let per_thread = iters / threads;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let op = &op;
            s.spawn(move || {
                for i in 0..per_thread {
                    op(t * per_thread + i);
                }
            });
        }
    });
    start.elapsed()
}
