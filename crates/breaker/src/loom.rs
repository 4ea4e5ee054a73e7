//! Atomics from loom under `cfg(all(test, loom))`, from std otherwise, so
//! the loom models exercise the same code that ships.

#[cfg(all(test, loom))]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU64, Ordering};
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
