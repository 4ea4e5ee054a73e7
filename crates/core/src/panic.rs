//! Reading a caught panic, for the crates that catch them (the pool's
//! manager calls, the recover crate): shared here, not a public API.

use std::any::Any;
use std::borrow::Cow;

/// The message of a panic whose payload is a `&str` or a `String` (what
/// `panic!` makes); the payload back, untouched, if it is something else
/// (the caller decides whether to drop it: its `Drop` could panic).
///
/// # Errors
///
/// The payload itself, when it is not a string.
pub fn message(payload: Box<dyn Any + Send>) -> Result<Cow<'static, str>, Box<dyn Any + Send>> {
    match payload.downcast::<&'static str>() {
        Ok(text) => Ok(Cow::Borrowed(*text)),
        Err(payload) => payload.downcast::<String>().map(|text| Cow::Owned(*text)),
    }
}
