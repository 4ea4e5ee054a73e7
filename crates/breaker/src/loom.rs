//! Atomics and the transition lock from loom under `cfg(all(test, loom))`,
//! from std and `parking_lot` otherwise, so the loom models exercise the same
//! code that ships.

#[cfg(all(test, loom))]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
#[cfg(not(all(test, loom)))]
pub(crate) use parking_lot::Mutex;
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

#[cfg(all(test, loom))]
pub(crate) use loom::thread::yield_now;
/// Lets another thread run while this one waits for it.
#[cfg(not(all(test, loom)))]
pub(crate) use std::thread::yield_now;

/// loom's mutex with `parking_lot`'s `lock` (no poisoning to handle).
#[cfg(all(test, loom))]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(all(test, loom))]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
