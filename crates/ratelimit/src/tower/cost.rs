//! [`Cost`]: how many tokens a request takes, for both layers.

/// How many tokens a request takes from the limit (its key's bucket, or
/// the limiter's): one by default ([`One`]), or what a closure
/// `Fn(&Request) -> u32` says (a batch endpoint, a costly query). A request
/// that costs more than the burst is refused as
/// [final](crate::RateLimited::is_final).
pub trait Cost<Request> {
    /// The tokens `request` takes.
    fn cost(&self, request: &Request) -> u32;
}

/// Every request costs one token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct One;

impl<Request> Cost<Request> for One {
    #[inline]
    fn cost(&self, _: &Request) -> u32 {
        1
    }
}

impl<F, Request> Cost<Request> for F
where
    F: Fn(&Request) -> u32,
{
    fn cost(&self, request: &Request) -> u32 {
        self(request)
    }
}
