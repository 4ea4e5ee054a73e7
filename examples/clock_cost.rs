//! Prints what one clock read costs on this machine.
//!
//! seawall's rate limiters and breakers read `MonotonicClock` on every call.
//! It uses the CPU's time-stamp counter where that counter is invariant, and
//! the OS clock elsewhere (some VMs). Run this on the machine you deploy to:
//!
//! ```text
//! cargo run --release --example clock_cost
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use seawall::{Clock, MonotonicClock};

const READS: u32 = 5_000_000;

/// Average nanoseconds per call of `read`, over `READS` calls.
fn cost(mut read: impl FnMut() -> u64) -> f64 {
    let start = Instant::now();
    let mut sink = 0u64;
    for _ in 0..READS {
        sink = sink.wrapping_add(read());
    }
    black_box(sink);
    start.elapsed().as_secs_f64() * 1e9 / f64::from(READS)
}

fn main() {
    let clock = MonotonicClock::new();
    let origin = Instant::now();
    // Warm up both paths (and the counter's calibration) before timing.
    cost(|| clock.now_nanos());
    cost(|| u64::from(origin.elapsed().subsec_nanos()));

    let ours = cost(|| clock.now_nanos());
    let std = cost(|| u64::from(Instant::now().duration_since(origin).subsec_nanos()));
    println!("MonotonicClock::now_nanos  {ours:6.1} ns per read");
    println!("std::time::Instant::now    {std:6.1} ns per read");

    match std::fs::read_to_string(
        "/sys/devices/system/clocksource/clocksource0/current_clocksource",
    ) {
        Ok(source) => println!("kernel clocksource         {}", source.trim()),
        Err(_) => println!("kernel clocksource         (not Linux, or not readable)"),
    }
    if ours > std * 0.8 {
        println!(
            "MonotonicClock is not much faster than Instant here: the CPU likely \
             lacks an invariant time-stamp counter, so it reads the OS clock."
        );
    }

    // One sanity check a user can eyeball: both clocks see the same 100 ms.
    let (start, ours_start) = (Instant::now(), clock.now_nanos());
    while start.elapsed() < Duration::from_millis(100) {}
    let ours_ms = (clock.now_nanos() - ours_start) as f64 / 1e6;
    println!("100 ms of Instant time read {ours_ms:.3} ms on MonotonicClock");
}
