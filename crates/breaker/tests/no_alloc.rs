//! A call through a closed breaker allocates nothing: every allocation on
//! the test's thread is counted, and the closed path must add none.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use seawall_breaker::{BreakerConfig, CircuitBreaker};

/// The system allocator, counting what the current thread allocates.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call goes straight to `System`, which upholds the
// `GlobalAlloc` contract; the count is a thread-local `Cell` with a const
// initialiser, so counting itself never allocates or re-enters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn configs() -> Vec<(&'static str, BreakerConfig)> {
    vec![
        ("default", BreakerConfig::builder().build().expect("valid")),
        (
            "time window, slow-call and consecutive rules",
            BreakerConfig::builder()
                .time_window(Duration::from_secs(10))
                .slow_calls(Duration::from_secs(1), 50.0)
                .consecutive_failures(5)
                .build()
                .expect("valid"),
        ),
    ]
}

#[test]
fn the_counter_sees_allocations() {
    let n = allocations(|| drop(std::hint::black_box(Box::new(1_u64))));
    assert_eq!(n, 1);
}

#[test]
fn a_closed_call_allocates_nothing() {
    for (name, config) in configs() {
        let breaker = CircuitBreaker::new(config);
        // Fill the window, so that outcomes replace outcomes.
        for _ in 0..200 {
            breaker.try_acquire().unwrap().success();
        }
        let n = allocations(|| {
            for i in 0..1_000 {
                let permit = breaker.try_acquire().unwrap();
                if i % 10 == 0 {
                    permit.failure();
                } else {
                    permit.success();
                }
                breaker.try_acquire_owned().unwrap().success();
                drop(breaker.try_acquire().unwrap());
            }
        });
        assert_eq!(n, 0, "{name}: the closed path allocated {n} times");
    }
}

/// The coarse clock is a clock like any other: a breaker reading it (for
/// its slow-call rule and time window) allocates nothing either.
#[test]
fn a_closed_call_on_the_coarse_clock_allocates_nothing() {
    let (_, config) = configs().pop().expect("a config with a time window");
    let breaker = CircuitBreaker::with_clock(config, seawall_core::CoarseClock::new());
    for _ in 0..200 {
        breaker.try_acquire().unwrap().success();
    }
    let n = allocations(|| {
        for _ in 0..1_000 {
            breaker.try_acquire().unwrap().success();
        }
    });
    assert_eq!(n, 0, "allocated {n} times");
    assert_eq!(breaker.state(), seawall_breaker::State::Closed);
}

#[cfg(feature = "tower")]
#[test]
fn a_closed_call_through_the_layer_allocates_nothing() {
    use std::convert::Infallible;
    use std::future::{Future, ready};
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use seawall_breaker::tower::CircuitBreakerLayer;
    use tower::{Layer, Service, service_fn};

    let breaker = CircuitBreaker::new(BreakerConfig::builder().build().unwrap());
    let mut svc = CircuitBreakerLayer::new(breaker.clone())
        .layer(service_fn(|n: u64| ready(Ok::<_, Infallible>(n))));
    let mut cx = Context::from_waker(Waker::noop());
    let mut call = |n: u64| {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let response = pin!(svc.call(n)).poll(&mut cx);
        assert!(matches!(response, Poll::Ready(Ok(m)) if m == n));
    };
    for n in 0..200 {
        call(n);
    }
    let n = allocations(|| (0..1_000).for_each(&mut call));
    assert_eq!(n, 0, "the layer's closed path allocated {n} times");
}

/// A call that waits under a deadline (the breaker's own timeout, and a
/// `TimeoutLayer` inside it) sets its timers without allocating: they are
/// pinned in the response futures.
#[cfg(feature = "tower")]
#[test]
fn a_call_that_waits_under_deadlines_allocates_nothing() {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use seawall_breaker::tower::{CircuitBreakerLayer, TimeoutLayer};
    use tower::{Layer, Service, service_fn};

    /// Pending at its first poll, ready at the second.
    struct Once(bool);
    impl Future for Once {
        type Output = Result<u64, Infallible>;
        fn poll(mut self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Ready(Ok(7))
            } else {
                Poll::Pending
            }
        }
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _in_runtime = runtime.enter();
    let config = BreakerConfig::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let breaker = CircuitBreaker::new(config);
    let mut svc = CircuitBreakerLayer::new(breaker)
        .layer(TimeoutLayer::new(Duration::from_secs(1)).layer(service_fn(|_: u64| Once(false))));
    let mut cx = Context::from_waker(Waker::noop());
    let mut call = |n: u64| {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let mut response = pin!(svc.call(n));
        assert!(response.as_mut().poll(&mut cx).is_pending(), "timers set");
        assert!(matches!(response.poll(&mut cx), Poll::Ready(Ok(7))));
    };
    for n in 0..200 {
        call(n);
    }
    let n = allocations(|| (0..1_000).for_each(&mut call));
    assert_eq!(n, 0, "calls under deadlines allocated {n} times");
}
