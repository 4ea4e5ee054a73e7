//! Panics caught as values: [`catch`], [`Panicked`].
//!
//! A panic hook, installed the first time something here catches, records
//! where a panic happened for the code that catches it on the same thread.
//! It then calls the hook that was there before, so panics are still
//! printed (or reported) as they were.

use std::any::Any;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, PanicHookInfo, catch_unwind};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_core::{RefusalKind, RefusalReason};

/// A panic, caught: its message and where it happened.
///
/// It is a [`RefusalReason`] of kind [`RefusalKind::Panicked`], so a tower
/// layer answers it like any seawall refusal: a
/// [`Refused`](seawall_core::Refused) error, or (feature `http`) a `500`
/// whose body says only "internal error".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked {
    message: Cow<'static, str>,
    message_known: bool,
    location: Option<PanicLocation>,
}

/// Where a panic happened, as the panic hook saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicLocation {
    file: String,
    line: u32,
    column: u32,
}

impl PanicLocation {
    /// The source file.
    #[must_use]
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The line, from 1.
    #[must_use]
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The column, from 1.
    #[must_use]
    pub fn column(&self) -> u32 {
        self.column
    }
}

impl fmt::Display for PanicLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// What [`Panicked::message`] says of a panic whose payload is not a string
/// (`std::panic::panic_any(42)`).
const NOT_A_STRING: &str = "a panic whose payload is not a string";

impl Panicked {
    /// The panic's message, from a `&str` or `String` payload (what
    /// `panic!` makes); for any other payload, a note saying so
    /// ([`has_message`](Self::has_message) is then `false`).
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the payload was a string, so [`message`](Self::message) is
    /// the panic's own.
    #[must_use]
    pub fn has_message(&self) -> bool {
        self.message_known
    }

    /// Where the panic happened, if the panic hook saw it: `None` when a
    /// hook set after seawall's replaced it without calling it.
    #[must_use]
    pub fn location(&self) -> Option<&PanicLocation> {
        self.location.as_ref()
    }

    /// The answer of a future polled again after it answered a panic.
    #[cfg(feature = "tower")]
    pub(crate) fn polled_after_completion() -> Self {
        Self {
            message: Cow::Borrowed("a future polled after it completed"),
            message_known: true,
            location: None,
        }
    }

    /// The caught payload, turned into a value, with the location the hook
    /// recorded on this thread.
    pub(crate) fn from_payload(payload: Box<dyn Any + Send>) -> Self {
        // Taken first: a panic in the payload's `Drop` below would record
        // its own location.
        let location = SEEN.with(RefCell::take);
        let (message, message_known) = match seawall_core::panic::message(payload) {
            Ok(message) => (message, true),
            Err(other) => {
                // Its `Drop` is user code, which may panic too: that
                // second panic is caught, and its payload kept, not
                // dropped (it could panic in turn).
                if let Err(again) = catch_unwind(AssertUnwindSafe(|| drop(other))) {
                    std::mem::forget(again);
                }
                (Cow::Borrowed(NOT_A_STRING), false)
            }
        };
        Self {
            message,
            message_known,
            location,
        }
    }
}

/// `panicked at src/handler.rs:10:5: index out of bounds`.
impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "panicked at {location}: {}", self.message),
            None => write!(f, "panicked: {}", self.message),
        }
    }
}

impl std::error::Error for Panicked {}

impl RefusalReason for Panicked {
    fn kind(&self) -> RefusalKind {
        RefusalKind::Panicked
    }

    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

thread_local! {
    /// How many `guard` calls are running on this thread: the hook records
    /// a location only for panics that one of them will catch.
    static CATCHING: Cell<u32> = const { Cell::new(0) };
    /// The location the hook saw for the last caught panic on this thread.
    static SEEN: RefCell<Option<PanicLocation>> = const { RefCell::new(None) };
}

/// Installs the hook that records locations, once per process, in front of
/// the hook already set. Called where catching is set up ([`catch`], a
/// layer's services), not on every catch.
pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if CATCHING.with(Cell::get) > 0 {
                let location = info.location().map(|at| PanicLocation {
                    file: at.file().to_owned(),
                    line: at.line(),
                    column: at.column(),
                });
                SEEN.with(|seen| *seen.borrow_mut() = location);
            }
            previous(info);
        }));
    });
}

/// Runs `f`, catching a panic in it.
///
/// Inlined, so that what `f` takes and returns is not copied through a
/// call (a request and a response are hundreds of bytes).
///
/// # Errors
///
/// [`Panicked`] if `f` panicked.
#[inline(always)]
pub(crate) fn guard<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    CATCHING.with(|depth| depth.set(depth.get().saturating_add(1)));
    let result = catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|depth| depth.set(depth.get().saturating_sub(1)));
    result.map_err(Panicked::from_payload)
}

/// Runs `future`, turning a panic while it is polled into
/// `Err(`[`Panicked`]`)`: Go's `recover()` for one future.
///
/// The future is polled in place, on the caller's task: no spawn, no
/// allocation. Panics unwind through the future's own state, as they would
/// without `catch`; whether that state is still sound is the question
/// [`UnwindSafe`](std::panic::UnwindSafe) asks, and `catch` does not ask it
/// (it is meant for request handlers, whose state ends with the request).
/// A build with `panic = "abort"` catches nothing.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use seawall_recover::catch;
///
/// let ok = catch(async { 7 }).await;
/// assert_eq!(ok, Ok(7));
///
/// let items: Vec<u32> = Vec::new();
/// let panicked = catch(async move { items[3] }).await.unwrap_err();
/// assert!(panicked.message().contains("index out of bounds"));
/// assert!(panicked.location().is_some_and(|at| at.file().ends_with(".rs")));
/// # }
/// ```
pub fn catch<F: Future>(future: F) -> Catch<F> {
    install_hook();
    Catch { future }
}

pin_project_lite::pin_project! {
    /// The future [`catch`] returns.
    #[must_use = "futures do nothing unless polled"]
    pub struct Catch<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Catch<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        match guard(|| future.poll(cx)) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panicked) => Poll::Ready(Err(panicked)),
        }
    }
}

impl<F> fmt::Debug for Catch<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catch").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_become_messages() {
        install_hook();
        let text = guard(|| panic!("plain")).unwrap_err();
        assert_eq!(text.message(), "plain");
        assert!(text.has_message());
        let formatted = guard(|| panic!("value {}", 7)).unwrap_err();
        assert_eq!(formatted.message(), "value 7");
        let other = guard(|| std::panic::panic_any(42_u8)).unwrap_err();
        assert_eq!(other.message(), NOT_A_STRING);
        assert!(!other.has_message());
    }

    #[test]
    fn the_location_is_where_the_panic_was() {
        install_hook();
        let line = line!() + 1;
        let panicked = guard(|| panic!("here")).unwrap_err();
        let at = panicked.location().expect("the hook saw it");
        assert_eq!((at.file(), at.line()), (file!(), line));
        assert_eq!(
            panicked.to_string(),
            format!("panicked at {}:{line}:{}: here", file!(), at.column())
        );
    }

    #[test]
    fn panics_caught_elsewhere_leave_no_location_for_the_next_one() {
        install_hook();
        let _ = guard(|| panic!("first"));
        // A panic caught by plain `catch_unwind`, outside any guard, is not
        // recorded at all.
        let _ = std::panic::catch_unwind(|| panic!("outside"));
        assert!(SEEN.with(|seen| seen.borrow().is_none()));
        // One caught inside a guard by code of its own is recorded, and the
        // next panic the guard catches records its own place over it.
        let line = line!() + 3;
        let panicked = guard(|| {
            let _ = std::panic::catch_unwind(|| panic!("inner"));
            panic!("outer")
        })
        .unwrap_err();
        assert_eq!(panicked.message(), "outer");
        assert_eq!(panicked.location().map(PanicLocation::line), Some(line));
    }

    #[test]
    fn the_catching_depth_returns_to_zero() {
        assert_eq!(guard(|| 5), Ok(5));
        let _ = guard(|| guard(|| panic!("nested")));
        assert_eq!(CATCHING.with(Cell::get), 0);
    }
}
