//! Leak detection: a warning naming where a held object was taken, and a
//! second message when it comes back (feature `tracing`).
#![cfg(feature = "tracing")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::pool;
use seawall_pool::PoolConfig;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Keeps every event's fields as one line.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl Subscriber for Lines {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "seawall::pool"
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = String::new();
        event.record(&mut Line(&mut line));
        self.0.lock().expect("not poisoned").push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test(start_paused = true)]
async fn an_object_held_too_long_is_reported_with_where_it_was_taken() {
    let lines = Lines::default();
    let _guard = tracing::subscriber::set_default(lines.clone());
    let config = PoolConfig::builder()
        .max_size(2)
        .min_idle(0)
        .leak_detection_threshold(Duration::from_secs(10))
        .build()
        .unwrap();
    let (pool, _) = pool(config).await;
    let taken_line = line!() + 1;
    let held = pool.get().await.unwrap();
    drop(pool.get().await.unwrap()); // returned at once: never reported
    tokio::time::sleep(Duration::from_secs(6)).await;
    let leaks = |lines: &Lines| {
        let all = lines.0.lock().unwrap();
        all.iter()
            .filter(|l| l.contains("leak") || l.contains("came back"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(leaks(&lines).is_empty(), "not yet: {:?}", leaks(&lines));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let reported = leaks(&lines);
    assert_eq!(reported.len(), 1, "{reported:?}");
    let at = format!("{}:{taken_line}:", file!());
    assert!(reported[0].contains(&at), "{} names {at}", reported[0]);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(leaks(&lines).len(), 1, "reported once");
    drop(held);
    let reported = leaks(&lines);
    assert_eq!(reported.len(), 2, "{reported:?}");
    assert!(
        reported[1].contains("came back") && reported[1].contains(&at),
        "{}",
        reported[1]
    );
}
