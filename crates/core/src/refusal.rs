//! How a tower layer answers a request it refuses: [`Refusal`].

/// The error type of seawall's tower services when they answer refusals
/// with errors: tower's convention, so layers stack and errors downcast.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Decides what a layer's service returns for a request it refuses (a
/// breaker that is open, a bulkhead that is full, a deadline that passed),
/// and so what its error type is.
///
/// [`RefuseWithError`] (the default of every layer) fails the call with the
/// refusal in a [`BoxError`]. With the `http` feature,
/// `http::RefuseWithResponse` answers with the refusal's HTTP response
/// instead (503, 504, ...) and keeps the inner service's error type, as
/// axum's routers require.
pub trait Refusal<Refused, Response, InnerError>: Clone {
    /// The services' error type.
    type Error;

    /// The answer to a refused request.
    ///
    /// # Errors
    ///
    /// The error the service returns for the refusal, if it answers with
    /// one.
    fn refuse(&self, refused: Refused) -> Result<Response, Self::Error>;

    /// Converts the inner service's error.
    fn inner_error(error: InnerError) -> Self::Error;
}

/// Refuses with the refusal as the error, boxed unwrapped so that
/// `error.downcast_ref::<Refused>()` finds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefuseWithError;

impl<Refused, Response, InnerError> Refusal<Refused, Response, InnerError> for RefuseWithError
where
    Refused: std::error::Error + Send + Sync + 'static,
    InnerError: Into<BoxError>,
{
    type Error = BoxError;

    fn refuse(&self, refused: Refused) -> Result<Response, BoxError> {
        Err(Box::new(refused))
    }

    fn inner_error(error: InnerError) -> BoxError {
        error.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Full;

    impl std::fmt::Display for Full {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("full")
        }
    }

    impl std::error::Error for Full {}

    #[test]
    fn refusals_downcast_and_inner_errors_box() {
        let refused: Result<u8, BoxError> =
            Refusal::<Full, u8, std::io::Error>::refuse(&RefuseWithError, Full);
        let err = refused.unwrap_err();
        assert_eq!(err.downcast_ref::<Full>(), Some(&Full));

        let inner = <RefuseWithError as Refusal<Full, u8, std::io::Error>>::inner_error(
            std::io::Error::other("down"),
        );
        assert_eq!(inner.to_string(), "down");
    }
}
