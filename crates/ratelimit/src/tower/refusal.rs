//! How a refused request is answered, and what an admitted one carries.

use crate::error::RateLimited;
use crate::quota::Quota;
use crate::state::LimitState;

/// Decides what the services return for a refused request, and may add to
/// the responses of admitted ones.
///
/// [`RefuseWithError`] (the default) fails the call with [`RateLimited`]
/// in a [`BoxError`](super::BoxError). With the `http` feature,
/// `http::TooManyRequests` answers `429 Too Many Requests` instead and
/// keeps the inner service's error type, as axum's routers require.
pub trait Refusal<Response, InnerError>: Clone {
    /// The services' error type.
    type Error;
    /// What an admitted request carries to its response (such as the
    /// `RateLimit` header values); `()` when nothing is added.
    type Note: Send + 'static;

    /// The answer to a refused request.
    ///
    /// # Errors
    ///
    /// The error the service returns for the refusal, if it answers with
    /// one.
    fn refuse(&self, refused: RateLimited, quota: Quota) -> Result<Response, Self::Error>;

    /// Converts the inner service's error.
    fn inner_error(error: InnerError) -> Self::Error;

    /// What to add to the response of a request admitted with `state`;
    /// `None` for nothing (the default).
    fn note(&self, state: &LimitState) -> Option<Self::Note> {
        let _ = state;
        None
    }

    /// Adds `note` to the response.
    fn annotate(response: &mut Response, note: Self::Note) {
        let _ = (response, note);
    }

    /// Whether [`note`](Self::note) ever returns something: when not, the
    /// services skip computing the state it would be given.
    fn wants_notes(&self) -> bool {
        false
    }
}

/// Refuses with a [`RateLimited`] error, boxed unwrapped so that
/// `error.downcast_ref::<RateLimited>()` finds it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RefuseWithError;

impl<Response, InnerError> Refusal<Response, InnerError> for RefuseWithError
where
    InnerError: Into<super::BoxError>,
{
    type Error = super::BoxError;
    type Note = ();

    fn refuse(&self, refused: RateLimited, _quota: Quota) -> Result<Response, Self::Error> {
        Err(Box::new(refused))
    }

    fn inner_error(error: InnerError) -> Self::Error {
        error.into()
    }
}
