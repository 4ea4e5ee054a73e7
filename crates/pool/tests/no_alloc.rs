//! A checkout and return on the fast path (an idle object, no check, no
//! wait) allocates nothing: every allocation on the test's thread is
//! counted.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

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

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use seawall_pool::{CheckoutTest, PoolConfig};

#[test]
fn a_checkout_and_return_of_an_idle_object_allocates_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let config = PoolConfig::builder()
        .max_size(4)
        .min_idle(0)
        .test_on_checkout(CheckoutTest::Never)
        .build()
        .expect("valid");
    let pool = runtime.block_on(async {
        let pool = seawall_pool::Pool::new(common::Fake::default(), config)
            .await
            .expect("started");
        // Warm: one object idle, its slot made.
        drop(pool.get().await.expect("object"));
        pool
    });
    let _in_runtime = runtime.enter();
    let cycle = || {
        for _ in 0..1_000 {
            let mut get = pin!(pool.get());
            let Poll::Ready(Ok(object)) =
                get.as_mut().poll(&mut Context::from_waker(Waker::noop()))
            else {
                panic!("an idle object is ready at once");
            };
            std::hint::black_box(&*object);
            drop(object);
        }
    };
    cycle(); // first-use costs (thread-locals) before counting
    assert_eq!(allocations(cycle), 0);
    let owned = || {
        for _ in 0..1_000 {
            let mut get = pin!(pool.get_owned());
            let Poll::Ready(Ok(object)) =
                get.as_mut().poll(&mut Context::from_waker(Waker::noop()))
            else {
                panic!("an idle object is ready at once");
            };
            drop(object);
        }
    };
    assert_eq!(allocations(owned), 0, "get_owned too");
}
