//! The limiter against a reference model of Go's x/time/rate, written
//! from its source in exact rational arithmetic: random sequences of
//! checks, reservations, cancellations, quota changes and reads of the
//! tokens, on a manual clock, must agree on every decision, delay and token
//! count.
//!
//! The model follows Go's `Limiter` (`tokens`, `last`, `lastEvent`) and
//! `Reservation` line by line, except where seawall departs from it on
//! purpose (docs/ratelimit.md, "Where seawall differs"); each departure is
//! marked `DEPARTS` below:
//!
//! 1. tokens are kept to `1/T` of a token (one nanosecond of refill at the
//!    quota's emission interval `T`; `1/2^30` for a budget): a quota change,
//!    and a cancellation across one, round the tokens down to that;
//! 2. a cancellation gives back at most what the reservation took (Go gives
//!    back more when the latest event is earlier than the reservation's act
//!    time, which a faster quota can cause);
//! 3. a reservation made under an unlimited quota took nothing and gives
//!    nothing back (Go gives back `n` if the limit was set since);
//! 4. cancelling a reservation made under a budget leaves `lastEvent` alone
//!    (Go moves it to the far future, so later cancellations give nothing);
//! 5. a switch from unlimited to a limit starts full (Go: full, or NaN
//!    tokens when no time passed since the last update).

use std::time::Duration;

use proptest::prelude::*;
use seawall_core::ManualClock;
use seawall_ratelimit::{Quota, RateLimitError, RateLimiter, Reservation};

/// One token of a budget, in the limiter's state.
const BUDGET_UNIT: i128 = 1 << 30;
/// A time that never comes.
const NEVER: i128 = u64::MAX as i128;

/// An exact fraction, kept reduced with a positive denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rat {
    num: i128,
    den: i128,
}

fn gcd(a: i128, b: i128) -> i128 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

impl Rat {
    fn new(num: i128, den: i128) -> Self {
        assert!(den != 0);
        let g = gcd(num, den).max(1) * den.signum();
        Self {
            num: num / g,
            den: den / g,
        }
    }

    fn int(n: i128) -> Self {
        Self::new(n, 1)
    }

    fn add(self, o: Self) -> Self {
        Self::new(self.num * o.den + o.num * self.den, self.den * o.den)
    }

    fn sub(self, o: Self) -> Self {
        self.add(Self::new(-o.num, o.den))
    }

    fn mul(self, o: Self) -> Self {
        Self::new(self.num * o.num, self.den * o.den)
    }

    fn min(self, o: Self) -> Self {
        if self.num * o.den <= o.num * self.den {
            self
        } else {
            o
        }
    }

    fn is_negative(self) -> bool {
        self.num < 0
    }

    /// Rounded down to a multiple of `1/grid`, as `grid`ths.
    fn floor_in(self, grid: i128) -> i128 {
        (self.num * grid).div_euclid(self.den)
    }
}

/// Go's `Limit`, with the interval seawall keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Inf,
    /// Go's `Limit(0)`: no refill.
    Zero,
    /// One token every this many nanoseconds.
    Every(i128),
}

impl Limit {
    /// Go's `tokensFromDuration`.
    fn tokens_from(self, nanos: i128) -> Rat {
        match self {
            Self::Every(interval) => Rat::new(nanos, interval),
            Self::Zero | Self::Inf => Rat::int(0),
        }
    }

    /// Tokens are kept to `1/grid` (DEPARTS 1).
    fn grid(self) -> i128 {
        match self {
            Self::Every(interval) => interval,
            Self::Zero | Self::Inf => BUDGET_UNIT,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Model {
    limit: Limit,
    burst: i128,
    tokens: Rat,
    last: i128,
    last_event: i128,
}

#[derive(Debug, Clone, Copy)]
struct ModelReservation {
    tokens: i128,
    time_to_act: i128,
    limit: Limit,
}

impl Model {
    fn new(limit: Limit, burst: u32) -> Self {
        Self {
            limit,
            burst: i128::from(burst),
            tokens: Rat::int(i128::from(burst)),
            last: 0,
            last_event: 0,
        }
    }

    /// Go's `advance`.
    fn advance(&self, t: i128) -> Rat {
        let last = self.last.min(t);
        let tokens = self.tokens.add(self.limit.tokens_from(t - last));
        tokens.min(Rat::int(self.burst))
    }

    /// Go's `reserveN`, with `max_future` in nanoseconds (`NEVER` for Go's
    /// `InfDuration`).
    fn reserve_n(&mut self, t: i128, n: i128, max_future: i128) -> Option<ModelReservation> {
        if self.limit == Limit::Inf {
            return Some(ModelReservation {
                tokens: n,
                time_to_act: t,
                limit: Limit::Inf,
            });
        }
        let tokens = self.advance(t).sub(Rat::int(n));
        let wait = if tokens.is_negative() {
            match self.limit {
                // Exact: tokens are whole `1/interval`ths.
                Limit::Every(interval) => {
                    let wait = tokens.mul(Rat::int(-interval));
                    assert_eq!(wait.den, 1, "off the grid: {tokens:?}");
                    wait.num
                }
                _ => NEVER,
            }
        } else {
            0
        };
        if n > self.burst || wait > max_future {
            return None;
        }
        let time_to_act = if wait == NEVER { NEVER } else { t + wait };
        self.last = t;
        self.tokens = tokens;
        self.last_event = time_to_act;
        Some(ModelReservation {
            tokens: n,
            time_to_act,
            limit: self.limit,
        })
    }

    /// Go's `CancelAt`.
    fn cancel_at(&mut self, r: ModelReservation, t: i128) {
        // DEPARTS 3: one made under Inf took nothing.
        if r.limit == Limit::Inf {
            return;
        }
        if self.limit == Limit::Inf || r.tokens == 0 || r.time_to_act < t {
            return;
        }
        // DEPARTS 2: what later reservations hold is never negative.
        let built_on = r
            .limit
            .tokens_from((self.last_event - r.time_to_act).max(0));
        let restore = Rat::int(r.tokens).sub(built_on);
        if restore.num <= 0 {
            return;
        }
        let tokens = self.advance(t).add(restore).min(Rat::int(self.burst));
        // DEPARTS 1: on the grid.
        let grid = self.limit.grid();
        self.tokens = Rat::new(tokens.floor_in(grid), grid);
        self.last = t;
        // DEPARTS 4: only for a reservation with a rate.
        if let Limit::Every(interval) = r.limit
            && r.time_to_act == self.last_event
        {
            let previous = r.time_to_act - r.tokens * interval;
            if previous >= t {
                self.last_event = previous;
            }
        }
    }

    /// Go's `SetLimitAt` then `SetBurstAt`.
    fn set_at(&mut self, t: i128, limit: Limit, burst: u32) {
        let burst = i128::from(burst);
        let tokens = if self.limit == Limit::Inf || limit == Limit::Inf {
            // DEPARTS 5.
            Rat::int(burst)
        } else {
            // Go caps at the new burst at the next `advance`; and DEPARTS 1.
            let grid = limit.grid();
            let on_grid = Rat::new(self.advance(t).floor_in(grid), grid);
            on_grid.min(Rat::int(burst))
        };
        self.tokens = tokens;
        self.last = t;
        self.limit = limit;
        self.burst = burst;
    }

    /// Go's `TokensAt`, as seawall reports it.
    fn tokens_at(&self, t: i128) -> f64 {
        if self.limit == Limit::Inf {
            return f64::INFINITY;
        }
        let grid = self.limit.grid();
        let units = self.advance(t).mul(Rat::int(grid));
        assert_eq!(units.den, 1, "off the grid");
        units.num as f64 / grid as f64
    }

    /// Go's `AllowN`, and how long until it would pass when it does not.
    fn allow_n(&mut self, t: i128, n: i128) -> Result<(), Option<Duration>> {
        if self.reserve_n(t, n, 0).is_some() {
            return Ok(());
        }
        if n > self.burst {
            return Err(None);
        }
        let short = Rat::int(n).sub(self.advance(t));
        Err(Some(match self.limit {
            Limit::Every(interval) => {
                let wait = short.mul(Rat::int(interval));
                Duration::from_nanos(u64::try_from(wait.num).expect("a wait ahead"))
            }
            _ => Duration::MAX,
        }))
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Advance(u64),
    Check(u32),
    Reserve(u32),
    Cancel(usize),
    Drop(usize),
    SetQuota(Limit, u32),
    Tokens,
}

fn limit() -> impl Strategy<Value = Limit> {
    prop_oneof![
        1 => Just(Limit::Inf),
        1 => Just(Limit::Zero),
        6 => (1i128..=400).prop_map(Limit::Every),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..=700).prop_map(Op::Advance),
        4 => (0u32..=4).prop_map(Op::Check),
        4 => (0u32..=4).prop_map(Op::Reserve),
        3 => any::<prop::sample::Index>().prop_map(|i| Op::Cancel(i.index(usize::MAX))),
        1 => any::<prop::sample::Index>().prop_map(|i| Op::Drop(i.index(usize::MAX))),
        2 => (limit(), 0u32..=5).prop_map(|(l, b)| Op::SetQuota(l, b)),
        2 => Just(Op::Tokens),
    ]
}

fn quota(limit: Limit, burst: u32) -> Quota {
    match limit {
        Limit::Inf => Quota::unlimited(),
        Limit::Zero => Quota::per_second(0).burst(burst).build().expect("a budget"),
        Limit::Every(interval) => Quota::per(
            Duration::from_nanos(u64::try_from(interval).expect("positive")),
            1,
        )
        .burst(burst)
        .build()
        .expect("a small quota"),
    }
}

fn delay(r: &ModelReservation, t: i128) -> Duration {
    if r.time_to_act == NEVER {
        Duration::MAX
    } else {
        Duration::from_nanos(u64::try_from(r.time_to_act - t).expect("not yet acted"))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn agrees_with_x_time_rate(
        (start, burst) in (limit(), 0u32..=5),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let clock = ManualClock::new();
        let limiter = RateLimiter::builder(quota(start, burst)).clock(clock.clone()).build();
        let mut model = Model::new(start, burst);
        let mut t: i128 = 0;
        let mut held: Vec<(Reservation<ManualClock>, ModelReservation)> = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Advance(nanos) => {
                    clock.advance(Duration::from_nanos(nanos));
                    t += i128::from(nanos);
                }
                Op::Check(n) => {
                    let expected = model.allow_n(t, i128::from(n));
                    let got = match limiter.check_n(n) {
                        Ok(()) => Ok(()),
                        Err(RateLimitError::RateLimited(e)) => Err(Some(e.retry_after())),
                        Err(RateLimitError::InsufficientCapacity(_)) => Err(None),
                        Err(e) => panic!("{e}"),
                    };
                    prop_assert_eq!(got, expected, "step {}: check_n({})", step, n);
                }
                Op::Reserve(n) => {
                    let expected = model.reserve_n(t, i128::from(n), NEVER);
                    match (limiter.reserve_n(n), expected) {
                        (Ok(got), Some(want)) => {
                            prop_assert_eq!(got.delay(), delay(&want, t), "step {}: reserve_n({})", step, n);
                            held.push((got, want));
                        }
                        (Err(_), None) => {}
                        (got, want) => prop_assert!(false, "step {step}: reserve_n({n}): {got:?} vs {want:?}"),
                    }
                }
                Op::Cancel(i) if !held.is_empty() => {
                    let (got, want) = held.remove(i % held.len());
                    got.cancel();
                    model.cancel_at(want, t);
                }
                Op::Drop(i) if !held.is_empty() => {
                    // Dropped: acted on, keeps its capacity.
                    drop(held.remove(i % held.len()));
                }
                Op::Cancel(_) | Op::Drop(_) => {}
                Op::SetQuota(limit, burst) => {
                    limiter.set_quota(quota(limit, burst));
                    model.set_at(t, limit, burst);
                }
                Op::Tokens => {}
            }
            // Every step ends with the tokens compared.
            prop_assert_eq!(
                limiter.tokens().to_bits(),
                model.tokens_at(t).to_bits(),
                "step {}: after {:?}: {} vs {}", step, op, limiter.tokens(), model.tokens_at(t)
            );
        }
    }
}

/// The example, by hand: quota 1/s burst 1, two reservations, a
/// change to 1,000/s burst 1,000, then the second cancelled: Go gives back
/// the one token and leaves 0, not 999.
#[test]
fn giving_back_after_a_quota_change_restores_tokens_not_nanoseconds() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(Quota::per_second(1).burst(1).build().unwrap())
        .clock(clock)
        .build();
    let _first = limiter.reserve();
    let second = limiter.reserve();
    assert!((limiter.tokens() + 1.0).abs() < 1e-12);
    limiter.set_quota(Quota::per_second(1_000).burst(1_000).build().unwrap());
    assert!((limiter.tokens() + 1.0).abs() < 1e-12);
    second.cancel();
    assert_eq!(limiter.tokens(), 0.0);
}
