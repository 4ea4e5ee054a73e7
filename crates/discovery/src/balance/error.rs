//! [`NoInstances`]: the refusal of a balancer with nowhere to send a
//! request.

use std::fmt;
use std::sync::Arc;

use seawall_core::{RefusalKind, RefusalReason};

/// A balancer had no instance to send the request to: the service has no
/// instances, or none that takes traffic (all of weight 0, or failed).
/// A refusal of kind [`Unavailable`](RefusalKind::Unavailable): `503` over
/// HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoInstances {
    service: Arc<str>,
}

impl NoInstances {
    pub(crate) fn new(service: Arc<str>) -> Self {
        Self { service }
    }

    /// The service that had none.
    #[must_use]
    pub fn service(&self) -> &str {
        &self.service
    }
}

impl fmt::Display for NoInstances {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no instance of `{}` is available", self.service)
    }
}

impl std::error::Error for NoInstances {}

impl RefusalReason for NoInstances {
    fn kind(&self) -> RefusalKind {
        RefusalKind::Unavailable
    }
}
