//! The breaker against a small reference state machine written from the
//! rules in docs/breaker.md: for any sequence of calls (outcome, duration),
//! calls held across other operations and finished or dropped later, time
//! steps and manual changes, both make the same decisions and reach the
//! same states.
// The model's numbers are small and bounded (windows of at most 12 calls,
// waits of seconds): its casts cannot truncate, wrap or lose a sign.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use seawall_breaker::{
    BreakerConfig, BreakerConfigBuilder, BreakerRefusal, CircuitBreaker, OwnedPermit, State,
    TrialRule,
};
use seawall_core::{ManualClock, Outcome};

#[derive(Debug, Clone, Copy)]
enum Op {
    /// A call that, if let through, lasts `millis` and ends with `outcome`.
    Call {
        outcome: Outcome,
        millis: u64,
    },
    /// A call let through and held: its outcome comes later.
    Acquire,
    /// A held call (chosen by `index`) ends with `outcome`.
    Finish {
        index: usize,
        outcome: Outcome,
    },
    /// A held call is dropped unrecorded (cancelled).
    DropHeld {
        index: usize,
    },
    Advance {
        millis: u64,
    },
    ForceOpen,
    Disable,
    Reset,
}

#[derive(Debug, Clone, Copy)]
struct Rules {
    window: usize,
    /// A time window of this many seconds instead of the count window.
    seconds: Option<u64>,
    minimum_calls: usize,
    failure_percent: u64,
    slow_millis: Option<u64>,
    slow_percent: u64,
    consecutive: Option<u32>,
    wait_millis: u64,
    growth: Option<(u32, u64)>,
    trials: usize,
    /// The longest half-open period.
    max_half_open_millis: u64,
    /// Half-open: the first failed (or slow) trial reopens at once.
    first_failure: bool,
    /// Only `consecutive` failures in a row open it: no window, no rates.
    consecutive_only: bool,
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Open { retry_after_millis: u64 },
    ForcedOpen,
    HalfOpenFull { retry_after_millis: u64 },
}

/// The reference: obvious data structures, the rules as written.
struct Model {
    rules: Rules,
    now: u64, // millis
    state: State,
    window: VecDeque<(u64, bool, bool)>, // (second, failure, slow)
    in_a_row: u32,
    /// Open: the last instant it refuses. Half-open: the last instant
    /// before it opens again.
    until: u64,
    reopenings: u32,
    trials_issued: usize,
    trials: Vec<(bool, bool)>,
    /// Bumped by every change of state: a call let through under one
    /// generation reports nothing under another.
    generation: u64,
}

impl Model {
    fn new(rules: Rules) -> Self {
        Self {
            rules,
            now: 0,
            state: State::Closed,
            window: VecDeque::new(),
            in_a_row: 0,
            until: 0,
            reopenings: 0,
            trials_issued: 0,
            trials: Vec::new(),
            generation: 0,
        }
    }

    fn rate_trips(&self, calls: usize, failures: usize, slow: usize) -> bool {
        let r = self.rules;
        (failures as u64) * 100 >= r.failure_percent * calls as u64
            || r.slow_millis.is_some() && (slow as u64) * 100 >= r.slow_percent * calls as u64
    }

    fn open(&mut self, from_half_open: bool) {
        self.reopenings = if from_half_open {
            self.reopenings + 1
        } else {
            0
        };
        let wait = match self.rules.growth {
            None => self.rules.wait_millis,
            Some((multiplier, max)) => {
                let grown = self.rules.wait_millis as f64
                    * f64::from(multiplier).powi(self.reopenings as i32);
                if grown < max as f64 {
                    grown as u64
                } else {
                    max
                }
            }
        };
        self.until = self.now + wait;
        self.state = State::Open;
        self.generation += 1;
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.window.clear();
        self.in_a_row = 0;
        self.reopenings = 0;
        self.generation += 1;
    }

    /// Set by hand.
    fn force(&mut self, state: State) {
        if state == State::Closed {
            self.close();
        } else {
            self.state = state;
            self.generation += 1;
        }
    }

    /// The state now: an open wait that has passed half-opens, a half-open
    /// period past its longest wait opens again if it let a trial through
    /// and half-opens afresh if not (the deadlines themselves still belong
    /// to the state).
    fn state(&mut self) -> State {
        let half_open_again = self.state == State::HalfOpen && self.trials_issued == 0;
        if (self.state == State::Open || half_open_again) && self.now > self.until {
            self.state = State::HalfOpen;
            self.until = self.now + self.rules.max_half_open_millis;
            self.trials_issued = 0;
            self.trials.clear();
            self.generation += 1;
        }
        if self.state == State::HalfOpen && self.now > self.until {
            self.open(true);
        }
        self.state
    }

    /// Lets a call through (its generation and start) or refuses it.
    fn acquire(&mut self) -> Result<(u64, u64), Decision> {
        match self.state() {
            State::ForcedOpen => return Err(Decision::ForcedOpen),
            State::Open => {
                return Err(Decision::Open {
                    retry_after_millis: self.until - self.now,
                });
            }
            State::HalfOpen if self.trials_issued >= self.rules.trials => {
                return Err(Decision::HalfOpenFull {
                    retry_after_millis: self.until - self.now,
                });
            }
            State::HalfOpen => self.trials_issued += 1,
            _ => {}
        }
        Ok((self.generation, self.now))
    }

    /// A call let through under `generation` at `start` is dropped
    /// unfinished now: ignored, except a trial that ran for the slow-call
    /// duration, or without one half the longest half-open period.
    fn drop_call(&mut self, generation: u64, start: u64) {
        let after = self
            .rules
            .slow_millis
            .unwrap_or(self.rules.max_half_open_millis / 2);
        let late = self.state == State::HalfOpen && self.now - start >= after;
        let outcome = if late {
            Outcome::Failure
        } else {
            Outcome::Ignored
        };
        self.finish(generation, start, outcome);
    }

    /// A call let through under `generation` at `start` ends now.
    fn finish(&mut self, generation: u64, start: u64, outcome: Outcome) {
        if generation != self.generation {
            return; // let through in an earlier state: says nothing now
        }
        let slow = self
            .rules
            .slow_millis
            .is_some_and(|limit| self.now - start >= limit);
        let failure = outcome == Outcome::Failure;
        match self.state {
            State::Closed if outcome != Outcome::Ignored && self.rules.consecutive_only => {
                self.in_a_row = if failure { self.in_a_row + 1 } else { 0 };
                if self.rules.consecutive.is_some_and(|n| self.in_a_row >= n) {
                    self.open(false);
                }
            }
            State::Closed if outcome != Outcome::Ignored => {
                self.in_a_row = if failure { self.in_a_row + 1 } else { 0 };
                let second = self.now / 1_000;
                self.window.push_back((second, failure, slow));
                match self.rules.seconds {
                    // The calls of seconds (now - S, now].
                    Some(s) => self.window.retain(|(sec, _, _)| sec + s > second),
                    None if self.window.len() > self.rules.window => {
                        self.window.pop_front();
                    }
                    None => {}
                }
                let calls = self.window.len();
                let failures = self.window.iter().filter(|(_, f, _)| *f).count();
                let slow_calls = self.window.iter().filter(|(_, _, s)| *s).count();
                let by_rate = calls >= self.rules.minimum_calls
                    && self.rate_trips(calls, failures, slow_calls);
                let by_run = self.rules.consecutive.is_some_and(|n| self.in_a_row >= n);
                if by_rate || by_run {
                    self.open(false);
                }
            }
            State::HalfOpen if outcome == Outcome::Ignored => self.trials_issued -= 1,
            State::HalfOpen if self.rules.first_failure && (failure || slow) => self.open(true),
            State::HalfOpen => {
                self.trials.push((failure, slow));
                if self.trials.len() == self.rules.trials {
                    let failures = self.trials.iter().filter(|(f, _)| *f).count();
                    let slow_calls = self.trials.iter().filter(|(_, s)| *s).count();
                    if self.rate_trips(self.trials.len(), failures, slow_calls) {
                        self.open(true);
                    } else {
                        self.close();
                    }
                }
            }
            _ => {}
        }
    }
}

fn rules() -> impl Strategy<Value = Rules> {
    (
        (1usize..=12, prop::option::of(1u64..=5)),
        1usize..=12,
        prop::sample::select(vec![10u64, 25, 50, 75, 100]),
        prop::option::of(prop::sample::select(vec![5u64, 20, 50])),
        prop::sample::select(vec![25u64, 50, 100]),
        prop::option::of(1u32..=4),
        prop::sample::select(vec![10u64, 100, 1_000]),
        prop::option::of((2u32..=3, prop::sample::select(vec![100u64, 5_000]))),
        (
            1usize..=4,
            prop::sample::select(vec![50u64, 500, 30_000]),
            any::<bool>(),
            prop::option::of(1u32..=4),
        ),
    )
        .prop_map(
            |(
                (window, seconds),
                min,
                failure_percent,
                slow_millis,
                slow_percent,
                consecutive,
                wait,
                growth,
                (trials, max_half_open_millis, first_failure, only),
            )| {
                let growth = growth.map(|(m, max)| (m, max.max(wait)));
                let (consecutive, slow_millis) = match only {
                    Some(n) => (Some(n), None),
                    None => (consecutive, slow_millis),
                };
                Rules {
                    window,
                    seconds,
                    minimum_calls: if seconds.is_some() {
                        min
                    } else {
                        min.min(window)
                    },
                    failure_percent,
                    slow_millis,
                    slow_percent,
                    consecutive,
                    wait_millis: wait,
                    growth,
                    trials,
                    max_half_open_millis,
                    first_failure: first_failure || only.is_some(),
                    consecutive_only: only.is_some(),
                }
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = || {
        prop_oneof![
            4 => Just(Outcome::Success),
            4 => Just(Outcome::Failure),
            1 => Just(Outcome::Ignored),
        ]
    };
    let millis = prop::sample::select(vec![0u64, 1, 10, 60, 400]);
    prop_oneof![
        10 => (outcome(), millis).prop_map(|(outcome, millis)| Op::Call { outcome, millis }),
        3 => Just(Op::Acquire),
        3 => (0usize..8, outcome()).prop_map(|(index, outcome)| Op::Finish { index, outcome }),
        1 => (0usize..8).prop_map(|index| Op::DropHeld { index }),
        4 => prop::sample::select(vec![1u64, 10, 100, 1_000, 10_000])
            .prop_map(|millis| Op::Advance { millis }),
        1 => prop_oneof![Just(Op::ForceOpen), Just(Op::Disable), Just(Op::Reset)],
    ]
}

fn decision(refused: BreakerRefusal) -> Decision {
    match refused {
        BreakerRefusal::Open { retry_after } => Decision::Open {
            retry_after_millis: u64::try_from(retry_after.as_millis()).expect("a short wait"),
        },
        BreakerRefusal::ForcedOpen => Decision::ForcedOpen,
        BreakerRefusal::HalfOpenFull { retry_after } => Decision::HalfOpenFull {
            retry_after_millis: u64::try_from(retry_after.as_millis()).expect("a short wait"),
        },
        other => panic!("{other:?}"),
    }
}

fn config(r: Rules) -> BreakerConfig {
    let common = |b: BreakerConfigBuilder| {
        let b = b
            .wait_in_open(Duration::from_millis(r.wait_millis))
            .permitted_calls_in_half_open(r.trials as u32)
            .max_wait_in_half_open(Duration::from_millis(r.max_half_open_millis));
        match r.growth {
            Some((m, max)) => b.wait_growth(f64::from(m), Duration::from_millis(max)),
            None => b,
        }
    };
    if r.consecutive_only {
        let n = r.consecutive.expect("a run length");
        return common(BreakerConfig::builder().consecutive_failures_only(n))
            .build()
            .expect("valid rules");
    }
    let mut b = BreakerConfig::builder()
        .count_window(r.window as u32)
        .minimum_calls(r.minimum_calls as u32)
        .failure_rate_threshold(r.failure_percent as f64)
        .wait_in_open(Duration::from_millis(r.wait_millis))
        .permitted_calls_in_half_open(r.trials as u32)
        .max_wait_in_half_open(Duration::from_millis(r.max_half_open_millis));
    if let Some(seconds) = r.seconds {
        b = b.time_window(Duration::from_secs(seconds));
    }
    if let Some(slow) = r.slow_millis {
        b = b.slow_calls(Duration::from_millis(slow), r.slow_percent as f64);
    }
    if let Some(n) = r.consecutive {
        b = b.consecutive_failures(n);
    }
    if r.first_failure {
        b = b.trial_rule(TrialRule::FirstFailure);
    }
    if let Some((m, max)) = r.growth {
        b = b.wait_growth(f64::from(m), Duration::from_millis(max));
    }
    b.build().expect("valid rules")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn breaker_follows_the_reference_model(rules in rules(), ops in prop::collection::vec(op(), 1..120)) {
        let clock = ManualClock::new();
        let breaker = CircuitBreaker::with_clock(config(rules), clock.clone());
        let mut model = Model::new(rules);
        // Calls let through and held: the real permit beside the model's
        // (generation, start).
        let mut held: Vec<(OwnedPermit<ManualClock>, (u64, u64))> = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Call { outcome, millis } => {
                    let expected = model.acquire();
                    let got = breaker.try_acquire().map_err(decision);
                    prop_assert_eq!(got.is_ok(), expected.is_ok(), "step {}: {:?}", step, op);
                    match (got, expected) {
                        (Ok(permit), Ok((generation, start))) => {
                            clock.advance(Duration::from_millis(millis));
                            model.now += millis;
                            permit.record(outcome);
                            model.finish(generation, start, outcome);
                        }
                        (Err(got), Err(expected)) => prop_assert_eq!(got, expected, "step {}", step),
                        _ => unreachable!(),
                    }
                }
                Op::Acquire => {
                    let expected = model.acquire();
                    match breaker.try_acquire_owned() {
                        Ok(permit) => {
                            let ticket = expected.map_err(|e| format!("step {step}: model refused {e:?}"));
                            held.push((permit, ticket.unwrap()));
                        }
                        Err(refused) => prop_assert_eq!(Err(decision(refused)), expected.map(drop), "step {}", step),
                    }
                }
                Op::Finish { index, outcome } if !held.is_empty() => {
                    let (permit, (generation, start)) = held.remove(index % held.len());
                    permit.record(outcome);
                    model.finish(generation, start, outcome);
                }
                Op::DropHeld { index } if !held.is_empty() => {
                    let (permit, (generation, start)) = held.remove(index % held.len());
                    drop(permit);
                    model.drop_call(generation, start);
                }
                Op::Finish { .. } | Op::DropHeld { .. } => {}
                Op::Advance { millis } => {
                    clock.advance(Duration::from_millis(millis));
                    model.now += millis;
                }
                Op::ForceOpen => {
                    breaker.force_open();
                    model.force(State::ForcedOpen);
                }
                Op::Disable => {
                    breaker.disable();
                    model.force(State::Disabled);
                }
                Op::Reset => {
                    breaker.reset();
                    model.force(State::Closed);
                }
            }
            prop_assert_eq!(breaker.state(), model.state(), "step {}: {:?}", step, op);
        }
    }
}
