//! Passive outlier ejection: [`OutlierDetection`], the rules, and what a
//! balancer keeps per instance to apply them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use seawall_core::{ConfigError, Outcome};
use tokio::time::Instant;

/// When a [`Balance`](super::Balance) takes an instance out of balancing
/// because of how its requests end (passive health checking, as Envoy's
/// outlier detection does it), and for how long.
///
/// Each finished request is classified (with the balancer's classifier:
/// by default `Ok` succeeds and `Err` fails, except seawall refusals from
/// layers inside, which count as their kind says: a timeout fails, a rate
/// limit or an open breaker is ignored). An instance is ejected when:
///
/// - `consecutive_failures` requests in a row failed (default 5; 0 turns
///   the rule off), or
/// - with [`failure_rate`](OutlierDetectionBuilder::failure_rate), a window
///   of `minimum_requests` judged requests (failures and successes) ended
///   within `interval` of its first with at least `threshold` percent of
///   them failed. Windows that take longer are dropped unjudged: the rule
///   judges only instances with that much traffic.
///
/// An ejected instance gets no requests for the base ejection time (30 s)
/// times the number of its ejections (the first 1, then 2, ...), at most
/// the max ejection time (300 s); every base ejection time it then spends
/// in without being ejected takes one off that count. Its requests already
/// in flight go on.
///
/// At most `max_ejection_percent` (10 %) of the instances are out at once,
/// rounded down but at least one, and never all of them: one instance
/// always stays in (a service of one instance is never ejected). So a bad
/// client, or an outage of everything, cannot empty the balancer; a rule
/// that fires when the cap is reached ejects nothing.
///
/// A request dropped before it ends (cancelled by a timeout outside the
/// balancer, say) counts neither way: put the timeout inside, in the
/// instance's service, to count it as a failure.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use seawall_discovery::balance::OutlierDetection;
///
/// let rules = OutlierDetection::builder()
///     .consecutive_failures(3)
///     .failure_rate(50.0, 20, Duration::from_secs(10))
///     .base_ejection_time(Duration::from_secs(10))
///     .max_ejection_percent(34.0)
///     .build()?;
/// assert_eq!(rules.get_consecutive_failures(), 3);
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierDetection {
    consecutive_failures: u32,
    failure_rate: Option<FailureRate>,
    base_ejection_time: Duration,
    max_ejection_time: Duration,
    max_ejection_percent: f64,
}

/// The failure-rate rule.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FailureRate {
    /// Percent, in `(0, 100]`.
    threshold: f64,
    minimum_requests: u32,
    interval: Duration,
}

/// Builds an [`OutlierDetection`].
#[derive(Debug, Clone)]
#[must_use]
pub struct OutlierDetectionBuilder(OutlierDetection);

/// The most requests a failure-rate window may need (its counts share one
/// 64-bit word).
const MAX_WINDOW: u32 = 1 << 30;

/// The longest ejection time a config may set.
const MAX_EJECTION: Duration = Duration::from_secs(24 * 3600);

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate: None,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10.0,
        }
    }
}

impl OutlierDetection {
    /// Starts from the defaults: 5 failures in a row eject, no failure-rate
    /// rule, 30 s base ejection time, 300 s at most, 10 % of the instances
    /// out at most.
    pub fn builder() -> OutlierDetectionBuilder {
        OutlierDetectionBuilder(Self::default())
    }

    /// Failures in a row that eject an instance (0: the rule is off).
    #[must_use]
    pub fn get_consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The base ejection time.
    #[must_use]
    pub fn get_base_ejection_time(&self) -> Duration {
        self.base_ejection_time
    }

    /// The cap on instances out at once, in percent.
    #[must_use]
    pub fn get_max_ejection_percent(&self) -> f64 {
        self.max_ejection_percent
    }
}

impl OutlierDetectionBuilder {
    /// Failures in a row that eject an instance; 0 turns the rule off
    /// (then the failure-rate rule must be on).
    pub fn consecutive_failures(mut self, failures: u32) -> Self {
        self.0.consecutive_failures = failures;
        self
    }

    /// Ejects an instance when, of `minimum_requests` judged requests that
    /// ended within `interval` of the first, at least `threshold` percent
    /// failed.
    pub fn failure_rate(
        mut self,
        threshold: f64,
        minimum_requests: u32,
        interval: Duration,
    ) -> Self {
        self.0.failure_rate = Some(FailureRate {
            threshold,
            minimum_requests,
            interval,
        });
        self
    }

    /// The first ejection's length, and the step by which later ones grow.
    pub fn base_ejection_time(mut self, time: Duration) -> Self {
        self.0.base_ejection_time = time;
        self
    }

    /// The longest an ejection lasts.
    pub fn max_ejection_time(mut self, time: Duration) -> Self {
        self.0.max_ejection_time = time;
        self
    }

    /// The most instances out at once, in percent of the instances
    /// (rounded down, but one is always allowed, as long as another
    /// instance stays in).
    pub fn max_ejection_percent(mut self, percent: f64) -> Self {
        self.0.max_ejection_percent = percent;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field: `consecutive_failures` (0 with
    /// no failure-rate rule: nothing could eject), `failure_rate.threshold`
    /// (in `(0, 100]`), `failure_rate.minimum_requests` (1 to 2^30),
    /// `failure_rate.interval` (at least 1 ms), `base_ejection_time` (1 ms
    /// to 24 h), `max_ejection_time` (from the base to 24 h),
    /// `max_ejection_percent` (0 to 100).
    pub fn build(self) -> Result<OutlierDetection, ConfigError> {
        let rules = self.0;
        if rules.consecutive_failures == 0 && rules.failure_rate.is_none() {
            return Err(ConfigError::invalid(
                "consecutive_failures",
                "cannot be 0 without a failure_rate rule: nothing would eject",
            ));
        }
        if let Some(rate) = rules.failure_rate {
            if !(rate.threshold > 0.0 && rate.threshold <= 100.0) {
                return Err(ConfigError::new(
                    "failure_rate.threshold",
                    "must be in (0, 100]",
                    rate.threshold.to_string(),
                ));
            }
            if rate.minimum_requests == 0 || rate.minimum_requests > MAX_WINDOW {
                return Err(ConfigError::new(
                    "failure_rate.minimum_requests",
                    "must be from 1 to 2^30",
                    rate.minimum_requests.to_string(),
                ));
            }
            if rate.interval < Duration::from_millis(1) {
                return Err(ConfigError::new(
                    "failure_rate.interval",
                    "must be at least 1ms",
                    seawall_core::duration::format(rate.interval),
                ));
            }
        }
        if rules.base_ejection_time < Duration::from_millis(1)
            || rules.base_ejection_time > MAX_EJECTION
        {
            return Err(ConfigError::new(
                "base_ejection_time",
                "must be from 1ms to 24h",
                seawall_core::duration::format(rules.base_ejection_time),
            ));
        }
        if rules.max_ejection_time < rules.base_ejection_time
            || rules.max_ejection_time > MAX_EJECTION
        {
            return Err(ConfigError::new(
                "max_ejection_time",
                "must be from base_ejection_time to 24h",
                seawall_core::duration::format(rules.max_ejection_time),
            ));
        }
        if !(0.0..=100.0).contains(&rules.max_ejection_percent) {
            return Err(ConfigError::new(
                "max_ejection_percent",
                "must be from 0 to 100",
                rules.max_ejection_percent.to_string(),
            ));
        }
        Ok(rules)
    }
}

/// An [`OutlierDetection`] as a document holds it.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawOutliers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    consecutive_failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure_rate: Option<RawFailureRate>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    base_ejection_time: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    max_ejection_time: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_ejection_percent: Option<f64>,
}

#[cfg(feature = "serde")]
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawFailureRate {
    threshold: f64,
    minimum_requests: u32,
    #[serde(with = "seawall_core::duration::serde")]
    interval: Duration,
}

/// Reads the keys of [`OutlierDetection::builder`]'s setters; those left
/// out keep the defaults (feature `serde`):
///
/// ```toml
/// consecutive_failures = 5     # 0: off
/// failure_rate = { threshold = 85, minimum_requests = 50, interval = "10s" }
/// base_ejection_time = "30s"
/// max_ejection_time = "5m"
/// max_ejection_percent = 10
/// ```
///
/// Values the builder refuses fail with its error, under the document's
/// path when read with `seawall_core::config::deserialize`.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for OutlierDetection {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <RawOutliers as serde::Deserialize>::deserialize(deserializer)?;
        let mut builder = Self::builder();
        if let Some(failures) = raw.consecutive_failures {
            builder = builder.consecutive_failures(failures);
        }
        if let Some(rate) = raw.failure_rate {
            builder = builder.failure_rate(rate.threshold, rate.minimum_requests, rate.interval);
        }
        if let Some(time) = raw.base_ejection_time {
            builder = builder.base_ejection_time(time);
        }
        if let Some(time) = raw.max_ejection_time {
            builder = builder.max_ejection_time(time);
        }
        if let Some(percent) = raw.max_ejection_percent {
            builder = builder.max_ejection_percent(percent);
        }
        builder.build().map_err(seawall_core::config::report)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for OutlierDetection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawOutliers {
            consecutive_failures: Some(self.consecutive_failures),
            failure_rate: self.failure_rate.map(|rate| RawFailureRate {
                threshold: rate.threshold,
                minimum_requests: rate.minimum_requests,
                interval: rate.interval,
            }),
            base_ejection_time: Some(self.base_ejection_time),
            max_ejection_time: Some(self.max_ejection_time),
            max_ejection_percent: Some(self.max_ejection_percent),
        };
        serde::Serialize::serialize(&raw, serializer)
    }
}

/// What every instance of one balancer shares: the rules, the clock's
/// origin, and the counts behind the cap.
#[derive(Debug)]
pub(crate) struct Ejections {
    rules: OutlierDetection,
    /// Times are milliseconds since this, plus one (0 means "none").
    origin: Instant,
    /// Instances in the balancer.
    total: AtomicUsize,
    /// Instances ejected now.
    ejected: AtomicUsize,
    /// Ejections so far: the balancer looks for the ejected instances
    /// when it changes.
    ejections: AtomicU64,
}

impl Ejections {
    pub(crate) fn new(rules: OutlierDetection) -> Arc<Self> {
        Arc::new(Self {
            rules,
            origin: Instant::now(),
            total: AtomicUsize::new(0),
            ejected: AtomicUsize::new(0),
            ejections: AtomicU64::new(0),
        })
    }

    pub(crate) fn now(&self) -> u64 {
        millis(self.origin.elapsed()).saturating_add(1)
    }

    pub(crate) fn set_total(&self, total: usize) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// The instant of a time in [`now`](Self::now)'s scale.
    pub(crate) fn instant(&self, at: u64) -> Instant {
        self.origin + Duration::from_millis(at.saturating_sub(1))
    }

    pub(crate) fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Acquire)
    }

    /// How many instances may be out at once.
    fn cap(&self) -> usize {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )] // counts far below 2^52; the product is in 0..=total
        let total = self.total.load(Ordering::Relaxed);
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )] // counts far below 2^52; the product is in 0..=total
        let share = (total as f64 * self.rules.max_ejection_percent / 100.0) as usize;
        share.max(1).min(total.saturating_sub(1))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// One instance's record: what its requests' outcomes say so far.
#[derive(Debug)]
pub(crate) struct Record {
    shared: Arc<Ejections>,
    /// Failures in a row.
    consecutive: AtomicU32,
    /// The failure-rate window: failures in the high half, judged requests
    /// in the low half.
    window: AtomicU64,
    /// When the window's first request ended.
    window_start: AtomicU64,
    /// Until when it is ejected; 0 when it is in.
    until: AtomicU64,
    /// Its ejections, less one per base ejection time spent in since.
    times: AtomicU32,
    /// When it last came back in.
    returned: AtomicU64,
    /// Its instance has left the balancer: late outcomes eject nothing.
    gone: AtomicBool,
}

impl Record {
    pub(crate) fn new(shared: Arc<Ejections>) -> Self {
        Self {
            shared,
            consecutive: AtomicU32::new(0),
            window: AtomicU64::new(0),
            window_start: AtomicU64::new(0),
            until: AtomicU64::new(0),
            times: AtomicU32::new(0),
            returned: AtomicU64::new(0),
            gone: AtomicBool::new(false),
        }
    }

    pub(crate) fn shares(&self, shared: &Arc<Ejections>) -> bool {
        Arc::ptr_eq(&self.shared, shared)
    }

    /// Until when it is out (in [`Ejections::now`]'s time), or `None`.
    pub(crate) fn ejected_until(&self) -> Option<u64> {
        match self.until.load(Ordering::Acquire) {
            0 => None,
            until => Some(until),
        }
    }

    /// Counts one finished request.
    pub(crate) fn record(&self, outcome: Outcome) {
        let rules = &self.shared.rules;
        let failed = match outcome {
            Outcome::Ignored => return,
            Outcome::Success => {
                if self.consecutive.load(Ordering::Relaxed) != 0 {
                    self.consecutive.store(0, Ordering::Relaxed);
                }
                false
            }
            Outcome::Failure => {
                let row = self
                    .consecutive
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                if rules.consecutive_failures != 0
                    && row >= rules.consecutive_failures
                    && self.eject()
                {
                    return;
                }
                // Not ejected (the cap is reached): the failure still counts
                // in the window.
                true
            }
        };
        let Some(rate) = rules.failure_rate else {
            return;
        };
        let before = self
            .window
            .fetch_add(1 | (u64::from(failed) << 32), Ordering::AcqRel);
        #[allow(clippy::cast_possible_truncation)] // the low half
        let requests = before as u32 + 1;
        if requests == 1 {
            self.window_start
                .store(self.shared.now(), Ordering::Release);
        }
        // Exactly one request closes each window: the one that fills it.
        if requests != rate.minimum_requests {
            return;
        }
        self.window.store(0, Ordering::Release);
        let failures = (before >> 32) + u64::from(failed);
        let took = self
            .shared
            .now()
            .saturating_sub(self.window_start.load(Ordering::Acquire));
        #[allow(clippy::cast_precision_loss)] // counts up to 2^30
        let share = failures as f64 * 100.0 / f64::from(requests);
        if took <= millis(rate.interval) && share >= rate.threshold {
            self.eject();
        }
    }

    /// Takes it out, if it is in, still in the balancer, and the cap
    /// allows: whether it is out now.
    fn eject(&self) -> bool {
        let shared = &*self.shared;
        if self.until.load(Ordering::Acquire) != 0 {
            return true;
        }
        if self.gone.load(Ordering::Acquire) {
            return false;
        }
        let cap = shared.cap();
        let reserved = shared
            .ejected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |out| {
                (out < cap).then_some(out + 1)
            });
        if reserved.is_err() {
            return false;
        }
        let rules = &shared.rules;
        let now = shared.now();
        let base = millis(rules.base_ejection_time);
        let back_for = now.saturating_sub(self.returned.load(Ordering::Relaxed));
        let decay = u32::try_from(back_for / base).unwrap_or(u32::MAX);
        let times = self
            .times
            .load(Ordering::Relaxed)
            .saturating_sub(decay)
            .saturating_add(1);
        let length = base
            .saturating_mul(u64::from(times))
            .min(millis(rules.max_ejection_time));
        if self
            .until
            .compare_exchange(0, now + length, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another request's outcome ejected it meanwhile.
            shared.ejected.fetch_sub(1, Ordering::AcqRel);
            return true;
        }
        self.times.store(times, Ordering::Relaxed);
        self.consecutive.store(0, Ordering::Relaxed);
        self.window.store(0, Ordering::Release);
        shared.ejections.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Its instance left the balancer: it no longer counts as out, and
    /// outcomes of its requests still in flight eject nothing.
    pub(crate) fn leave(&self) {
        self.gone.store(true, Ordering::Release);
        if self.until.swap(0, Ordering::AcqRel) != 0 {
            self.shared.ejected.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Brings it back in at `now`, if its time is over: whether it is in.
    pub(crate) fn readmit(&self, now: u64) -> bool {
        let until = self.until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        if until > now {
            return false;
        }
        self.returned.store(now, Ordering::Relaxed);
        self.consecutive.store(0, Ordering::Relaxed);
        self.window.store(0, Ordering::Release);
        if self
            .until
            .compare_exchange(until, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.shared.ejected.fetch_sub(1, Ordering::AcqRel);
        }
        true
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        // Gone from the balancer: no longer one of those out.
        if *self.until.get_mut() != 0 {
            self.shared.ejected.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(rules: OutlierDetection, total: usize) -> (Arc<Ejections>, Record) {
        let shared = Ejections::new(rules);
        shared.set_total(total);
        (shared.clone(), Record::new(shared))
    }

    #[test]
    fn settings_are_checked() {
        let field =
            |builder: OutlierDetectionBuilder| builder.build().unwrap_err().field().to_owned();
        assert!(OutlierDetection::builder().build().is_ok());
        assert_eq!(
            field(OutlierDetection::builder().consecutive_failures(0)),
            "consecutive_failures"
        );
        let rate = |t, n, i| OutlierDetection::builder().failure_rate(t, n, i);
        let second = Duration::from_secs(1);
        assert_eq!(field(rate(0.0, 10, second)), "failure_rate.threshold");
        assert_eq!(field(rate(f64::NAN, 10, second)), "failure_rate.threshold");
        assert_eq!(
            field(rate(50.0, 0, second)),
            "failure_rate.minimum_requests"
        );
        assert_eq!(
            field(rate(50.0, 10, Duration::ZERO)),
            "failure_rate.interval"
        );
        assert!(
            rate(50.0, 10, second)
                .consecutive_failures(0)
                .build()
                .is_ok()
        );
        assert_eq!(
            field(OutlierDetection::builder().base_ejection_time(Duration::ZERO)),
            "base_ejection_time"
        );
        assert_eq!(
            field(OutlierDetection::builder().max_ejection_time(second)),
            "max_ejection_time"
        );
        assert_eq!(
            field(OutlierDetection::builder().max_ejection_percent(101.0)),
            "max_ejection_percent"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_in_a_row_eject_and_a_success_resets_the_row() {
        let rules = OutlierDetection::builder()
            .consecutive_failures(3)
            .build()
            .unwrap();
        let (shared, host) = record(rules, 10);
        host.record(Outcome::Failure);
        host.record(Outcome::Failure);
        host.record(Outcome::Success);
        host.record(Outcome::Failure);
        host.record(Outcome::Ignored);
        host.record(Outcome::Failure);
        assert_eq!(host.ejected_until(), None);
        host.record(Outcome::Failure);
        let until = host.ejected_until().expect("three in a row eject");
        assert_eq!(until - shared.now(), 30_000);
        assert_eq!(shared.ejections(), 1);
        assert_eq!(shared.ejected.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn ejections_grow_then_decay_and_stop_at_the_max() {
        let rules = OutlierDetection::builder()
            .consecutive_failures(1)
            .base_ejection_time(Duration::from_secs(10))
            .max_ejection_time(Duration::from_secs(25))
            .build()
            .unwrap();
        let (shared, host) = record(rules, 10);
        let mut lengths = Vec::new();
        for _ in 0..3 {
            host.record(Outcome::Failure);
            let until = host.ejected_until().unwrap();
            lengths.push(until - shared.now());
            tokio::time::advance(Duration::from_millis(until - shared.now())).await;
            assert!(host.readmit(shared.now()));
        }
        assert_eq!(lengths, [10_000, 20_000, 25_000]);
        assert_eq!(shared.ejected.load(Ordering::Relaxed), 0);
        // Twenty seconds back in take two off the count of three.
        tokio::time::advance(Duration::from_secs(20)).await;
        host.record(Outcome::Failure);
        assert_eq!(host.ejected_until().unwrap() - shared.now(), 20_000);
    }

    #[tokio::test(start_paused = true)]
    async fn the_cap_holds_but_always_allows_one_and_never_all() {
        let rules = OutlierDetection::builder()
            .consecutive_failures(1)
            .build()
            .unwrap();
        let shared = Ejections::new(rules);
        shared.set_total(5); // 10 % of 5 rounds down to 0: one allowed
        let mut hosts: Vec<Record> = (0..5).map(|_| Record::new(shared.clone())).collect();
        for host in &hosts {
            host.record(Outcome::Failure);
        }
        let out = hosts.iter().filter(|h| h.ejected_until().is_some()).count();
        assert_eq!(out, 1);
        // The one out is dropped: another may go.
        let at = hosts
            .iter()
            .position(|h| h.ejected_until().is_some())
            .unwrap();
        drop(hosts.remove(at));
        assert_eq!(shared.ejected.load(Ordering::Relaxed), 0);
        // One that leaves the balancer gives its place back at once, and
        // its late outcomes eject nothing.
        hosts[0].record(Outcome::Failure);
        assert!(hosts[0].ejected_until().is_some());
        hosts[0].leave();
        assert_eq!(shared.ejected.load(Ordering::Relaxed), 0);
        hosts[0].record(Outcome::Failure);
        assert_eq!(hosts[0].ejected_until(), None);
        // A lone instance, or the last one in, is never ejected.
        let (lone_shared, lone) = record(
            OutlierDetection::builder()
                .consecutive_failures(1)
                .build()
                .unwrap(),
            1,
        );
        lone.record(Outcome::Failure);
        assert_eq!(lone.ejected_until(), None);
        drop(lone_shared);
        let shared = Ejections::new(
            OutlierDetection::builder()
                .consecutive_failures(1)
                .max_ejection_percent(100.0)
                .build()
                .unwrap(),
        );
        shared.set_total(3);
        let three: Vec<Record> = (0..3).map(|_| Record::new(shared.clone())).collect();
        for host in &three {
            host.record(Outcome::Failure);
        }
        assert_eq!(
            three.iter().filter(|h| h.ejected_until().is_some()).count(),
            2
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_the_cap_kept_in_still_count_in_the_window() {
        let rules = OutlierDetection::builder()
            .consecutive_failures(2)
            .failure_rate(50.0, 4, Duration::from_secs(1))
            .build()
            .unwrap();
        let shared = Ejections::new(rules);
        shared.set_total(3); // one may be out
        let (first, second) = (Record::new(shared.clone()), Record::new(shared.clone()));
        first.record(Outcome::Failure);
        first.record(Outcome::Failure);
        assert!(first.ejected_until().is_some());
        for _ in 0..4 {
            second.record(Outcome::Failure);
        }
        assert_eq!(second.ejected_until(), None, "the cap is reached");
        // The place is free again: the window, full of failures, ejects.
        first.leave();
        for _ in 0..4 {
            second.record(Outcome::Failure);
        }
        assert!(second.ejected_until().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn the_failure_rate_judges_full_windows_that_ended_in_time() {
        let rules = OutlierDetection::builder()
            .consecutive_failures(0)
            .failure_rate(50.0, 10, Duration::from_secs(1))
            .build()
            .unwrap();
        let (_shared, host) = record(rules, 10);
        // 4 failures in 10: below the threshold.
        for at in 0..10 {
            host.record(if at % 5 < 2 {
                Outcome::Failure
            } else {
                Outcome::Success
            });
        }
        assert_eq!(host.ejected_until(), None);
        // 5 in 10, but over more than the interval: dropped.
        for at in 0..10 {
            if at == 9 {
                tokio::time::advance(Duration::from_millis(1001)).await;
            }
            host.record(if at % 2 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            });
        }
        assert_eq!(host.ejected_until(), None);
        // 5 in 10 within the interval: out. Ignored outcomes are not judged.
        for at in 0..10 {
            host.record(Outcome::Ignored);
            host.record(if at % 2 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            });
        }
        assert!(host.ejected_until().is_some());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_document_goes_through_the_builder() {
        let read = |text: &str| {
            seawall_core::config::deserialize::<OutlierDetection, _>(
                toml::Deserializer::parse(text).unwrap(),
            )
        };
        let rules = read(
            "consecutive_failures = 0\n\
             failure_rate = { threshold = 85, minimum_requests = 50, interval = \"10s\" }\n\
             base_ejection_time = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(rules.get_consecutive_failures(), 0);
        assert_eq!(rules.get_base_ejection_time(), Duration::from_secs(5));
        let again: OutlierDetection = toml::from_str(&toml::to_string(&rules).unwrap()).unwrap();
        assert_eq!(again, rules);
        let err = read("consecutive_failures = 0").unwrap_err();
        assert_eq!(err.field(), "consecutive_failures");
        let err =
            read("failure_rate = { threshold = 150, minimum_requests = 5, interval = \"1s\" }")
                .unwrap_err();
        assert_eq!(err.field(), "failure_rate.threshold");
        assert!(read("consecutive = 3").is_err());
    }
}
