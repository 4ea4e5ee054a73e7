//! What a limiter reports: `tracing` events under the target
//! `seawall::ratelimit` (feature `tracing`) and `metrics` counters named
//! `seawall_ratelimit_*` with a `limiter` label (feature `metrics`). With
//! neither feature this is empty and costs nothing.

/// The limiter's reporting handles, made once when it is built so a check
/// pays an atomic add, not a recorder lookup.
#[derive(Clone)]
#[cfg_attr(not(any(feature = "metrics", feature = "tracing")), allow(dead_code))]
pub(crate) struct Observer {
    name: std::sync::Arc<str>,
    #[cfg(feature = "metrics")]
    admitted: metrics::Counter,
    #[cfg(feature = "metrics")]
    refused: metrics::Counter,
    #[cfg(feature = "metrics")]
    evicted_early: metrics::Counter,
}

impl Observer {
    pub(crate) fn new(name: &str) -> Self {
        #[cfg(feature = "metrics")]
        let counter = |what: &'static str| metrics::counter!(what, "limiter" => name.to_owned());
        Self {
            name: name.into(),
            #[cfg(feature = "metrics")]
            admitted: counter("seawall_ratelimit_admitted_total"),
            #[cfg(feature = "metrics")]
            refused: counter("seawall_ratelimit_refused_total"),
            #[cfg(feature = "metrics")]
            evicted_early: counter("seawall_ratelimit_keys_evicted_early_total"),
        }
    }

    #[inline]
    pub(crate) fn admitted(&self) {
        #[cfg(feature = "metrics")]
        self.admitted.increment(1);
    }

    /// A reservation made: an admission, or, for one that never comes (a
    /// budget without enough left), a refusal.
    #[inline]
    pub(crate) fn reserved(&self, taken: &crate::gcra::Reserved) {
        if taken.act_at == crate::gcra::NEVER {
            self.refused(taken.now, taken.act_at);
        } else {
            self.admitted();
        }
    }

    /// The refusal at `now` of a request that would pass at `ready_at`,
    /// reported.
    #[inline]
    pub(crate) fn refused(&self, now: u64, ready_at: u64) -> crate::RateLimited {
        let refused = crate::RateLimited::new(now, ready_at);
        self.report_refused(&refused);
        refused
    }

    /// Reports a refusal decided earlier, now that it is answered.
    #[inline]
    pub(crate) fn report_refused(&self, refused: &crate::RateLimited) {
        #[cfg(feature = "metrics")]
        self.refused.increment(1);
        #[cfg(feature = "tracing")]
        tracing::trace!(
            target: "seawall::ratelimit",
            limiter = %self.name,
            retry_after = ?refused.retry_after(),
            "refused"
        );
        let _ = refused;
    }

    pub(crate) fn evicted_early(&self, keys: usize) {
        #[cfg(feature = "metrics")]
        self.evicted_early
            .increment(u64::try_from(keys).unwrap_or(u64::MAX));
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: "seawall::ratelimit",
            limiter = %self.name,
            keys,
            "max_keys reached with no full key: dropped keys before their bucket was full"
        );
        let _ = keys;
    }

    /// A dry run's refusal, let through.
    #[cfg(feature = "tower")]
    pub(crate) fn would_refuse(&self, refused: &crate::RateLimited) {
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "seawall::ratelimit",
            limiter = %self.name,
            dry_run = true,
            retry_after = ?refused.retry_after(),
            "would refuse"
        );
        let _ = refused;
    }

    /// A request a keyed layer found no key for (`reason`), refused, or let
    /// through in a dry run.
    #[cfg(feature = "tower")]
    pub(crate) fn no_key(&self, reason: &str, dry_run: bool) {
        #[cfg(feature = "tracing")]
        tracing::error!(
            target: "seawall::ratelimit",
            limiter = %self.name,
            reason,
            dry_run,
            "a request with no rate-limit key"
        );
        let _ = (reason, dry_run);
    }

    /// The quotas of some keys changed (`set_quota_for`).
    pub(crate) fn key_quotas_changed(&self) {
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "seawall::ratelimit",
            limiter = %self.name,
            "quotas by key changed"
        );
    }

    pub(crate) fn quota_changed(&self, quota: crate::Quota) {
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "seawall::ratelimit",
            limiter = %self.name,
            per_second = quota.per_second_rate(),
            burst = quota.burst(),
            replenish = ?quota.replenish_all(),
            "quota changed"
        );
        let _ = quota;
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
