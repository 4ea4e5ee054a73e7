//! `tracing` events (feature `tracing`), under the target `seawall::recover`.

use crate::Panicked;

/// A panic was caught in `part` (a service, a supervised task).
#[inline]
pub(crate) fn panic_caught(part: &str, panicked: &Panicked) {
    #[cfg(feature = "tracing")]
    tracing::error!(
        target: "seawall::recover",
        part,
        message = panicked.message(),
        location = panicked.location().map(tracing::field::display),
        "panic caught"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (part, panicked);
}
