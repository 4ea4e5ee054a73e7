//! loom models of the lock-free parts, run on the shipped code:
//! `RUSTFLAGS="--cfg loom" cargo test --release --lib -p seawall-pool loom`.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use ::loom::future::block_on;
use ::loom::sync::Arc;
use ::loom::thread;

use crate::gate::Gate;
use crate::slots::Slots;

/// A caller waits for the place a holder gives back: it gets it, whether
/// it queued before the give or came after it, and the place ends free.
#[test]
fn loom_gate_hands_a_place_from_giver_to_waiter() {
    ::loom::model(|| {
        let gate = Arc::new(Gate::new(1));
        assert!(gate.try_take());
        let caller = {
            let gate = Arc::clone(&gate);
            thread::spawn(move || {
                block_on(gate.take(later())).expect("open");
                gate.give();
            })
        };
        gate.give();
        caller.join().expect("no panic");
        assert_eq!(gate.counts(), (1, 0));
        assert!(gate.try_take());
    });
}

/// A waiter that gives up while the place is being given back: the place
/// is neither lost nor doubled, whichever comes first.
#[test]
fn loom_gate_a_waiter_giving_up_races_a_give() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(1));
        assert!(gate.try_take());
        let waiter = {
            let gate = Arc::clone(&gate);
            thread::spawn(move || {
                let mut take = gate.take(later());
                let waker = futures_waker();
                let polled = Pin::new(&mut take).poll(&mut Context::from_waker(&waker));
                drop(take);
                if polled.is_ready() {
                    gate.give();
                }
            })
        };
        gate.give();
        waiter.join().expect("no panic");
        assert_eq!(gate.counts(), (1, 0));
    });
}

/// Two threads take and park idle objects on one stack at once: no object
/// is lost or duplicated.
#[test]
fn loom_slots_park_and_unpark_lose_nothing() {
    loom::model(|| {
        let slots = Arc::new(Slots::new(2));
        for value in 0..2 {
            let number = slots.claim().expect("slot");
            slots.park(number, value);
        }
        let movers: Vec<_> = (0..2)
            .map(|_| {
                let slots = Arc::clone(&slots);
                thread::spawn(move || {
                    if let Some((number, value)) = slots.unpark() {
                        slots.park(number, value);
                    }
                })
            })
            .collect();
        for mover in movers {
            mover.join().expect("no panic");
        }
        let mut left: Vec<u32> = std::iter::from_fn(|| slots.unpark())
            .map(|(_, v)| v)
            .collect();
        left.sort_unstable();
        assert_eq!(left, [0, 1]);
    });
}

/// The ABA case: while one thread has read the top and the slot below it,
/// another pops both and pushes the top back. The first one's swap must
/// fail (the tag has moved on), or the stack would link a slot that is not
/// on it.
#[test]
fn loom_slots_a_stale_pop_does_not_link_a_taken_slot() {
    ::loom::model(|| {
        let slots = Arc::new(Slots::new(2));
        for value in 0..2 {
            let number = slots.claim().expect("slot");
            slots.park(number, value);
        }
        let mover = {
            let slots = Arc::clone(&slots);
            thread::spawn(move || {
                if let Some((number, value)) = slots.unpark() {
                    slots.park(number, value);
                }
            })
        };
        let top = slots.unpark();
        let below = slots.unpark();
        for (number, value) in [top, below].into_iter().flatten() {
            slots.park(number, value);
        }
        mover.join().expect("no panic");
        let mut left: Vec<u32> = std::iter::from_fn(|| slots.unpark())
            .map(|(_, v)| v)
            .collect();
        left.sort_unstable();
        assert_eq!(left, [0, 1]);
    });
}

fn later() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(3_600)
}

/// A waker that does nothing: the model polls by hand.
fn futures_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}
