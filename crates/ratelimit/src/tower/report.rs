//! [`Report`]: what the rate-limit services tell each response about the
//! limit.

use crate::error::RateLimited;
use crate::quota::Quota;
use crate::state::LimitState;

/// What the rate-limit services add to each response about the limit, such
/// as the `RateLimit` headers of `http::RateLimitHeaders` (feature `http`).
/// `()`, the default, adds nothing.
///
/// The note is taken when the request is judged and written on the
/// response when it comes: the inner service's response for an admitted
/// request, the [`Refusal`](super::Refusal)'s response for a refused one.
pub trait Report: Clone {
    /// What is kept from the decision to the response.
    type Note;

    /// Whether [`admitted`](Self::admitted) needs the limiter's state: when
    /// not, the services skip computing it.
    fn wants_state(&self) -> bool;

    /// The note for a request admitted with `state` after it.
    fn admitted(&self, state: &LimitState) -> Option<Self::Note>;

    /// The note for a request of `cost` tokens refused with `refused`
    /// under `quota` (`cost` is 1 when the refusal came before the
    /// request's cost was asked: in `poll_ready`, for its first token).
    fn refused(&self, refused: &RateLimited, quota: Quota, cost: u32) -> Option<Self::Note>;
}

/// Writes a [`Report`]'s note on a response.
pub trait Annotate<Response> {
    /// Adds what `self` says to `response`.
    fn annotate(self, response: &mut Response);
}

impl Report for () {
    type Note = ();

    #[inline]
    fn wants_state(&self) -> bool {
        false
    }

    #[inline]
    fn admitted(&self, _state: &LimitState) -> Option<()> {
        None
    }

    #[inline]
    fn refused(&self, _refused: &RateLimited, _quota: Quota, _cost: u32) -> Option<()> {
        None
    }
}

impl<Response> Annotate<Response> for () {
    #[inline]
    fn annotate(self, _response: &mut Response) {}
}
