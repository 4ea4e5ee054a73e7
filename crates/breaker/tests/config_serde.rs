//! The configs read from and written to documents (feature `serde`): round
//! trips, and invalid documents failing with the field's path and the
//! builder's rule.
#![cfg(feature = "serde")]

use std::time::Duration;

use seawall_breaker::{BreakerConfig, Bulkhead, Timeout, TrialRule};
use seawall_core::config;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize)]
struct Policy {
    breaker: BreakerConfig,
    bulkhead: Bulkhead,
    timeout: Timeout,
}

fn read<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, seawall_core::ConfigError> {
    config::deserialize(toml::Deserializer::parse(text).expect("valid TOML"))
}

const POLICY: &str = r#"
timeout = "1s"

[breaker]
count_window = 50
minimum_calls = 10
failure_rate_threshold = 40.0
slow_calls = { duration = "2s", rate_threshold = 80.0 }
consecutive_failures = 5
wait_in_open = "10s"
wait_growth = { multiplier = 2.0, max = "1m" }
wait_jitter = 0.25
permitted_calls_in_half_open = 2
max_wait_in_half_open = "20s"
timeout = "750ms"

[bulkhead]
max_concurrent = 32
max_wait = "50ms"
max_queue = 100
"#;

#[test]
fn a_policy_reads_as_the_builders_would_build_it() {
    let policy: Policy = read(POLICY).unwrap();
    let built = BreakerConfig::builder()
        .count_window(50)
        .minimum_calls(10)
        .failure_rate_threshold(40.0)
        .slow_calls(Duration::from_secs(2), 80.0)
        .consecutive_failures(5)
        .wait_in_open(Duration::from_secs(10))
        .wait_growth(2.0, Duration::from_secs(60))
        .wait_jitter(0.25)
        .permitted_calls_in_half_open(2)
        .max_wait_in_half_open(Duration::from_secs(20))
        .timeout(Duration::from_millis(750))
        .build()
        .unwrap();
    assert_eq!(policy.breaker, built);
    assert_eq!(policy.bulkhead.max_concurrent(), 32);
    assert_eq!(policy.timeout.after(), Duration::from_secs(1));
}

#[test]
fn configs_round_trip_through_toml_and_json() {
    let policy: Policy = read(POLICY).unwrap();
    let text = toml::to_string(&policy).unwrap();
    let again: Policy = read(&text).unwrap();
    assert_eq!(again.breaker, policy.breaker);
    assert_eq!(toml::to_string(&again).unwrap(), text);

    let json = serde_json::to_string(&policy).unwrap();
    let again: Policy =
        config::deserialize(&mut serde_json::Deserializer::from_str(&json)).unwrap();
    assert_eq!(again.breaker, policy.breaker);
    assert_eq!(serde_json::to_string(&again).unwrap(), json);

    // Defaults, a time window, no optional rule: the same.
    for breaker in [
        BreakerConfig::builder().build().unwrap(),
        BreakerConfig::builder()
            .time_window(Duration::from_secs(60))
            .minimum_calls(500)
            .build()
            .unwrap(),
        BreakerConfig::builder()
            .time_window(Duration::from_secs(10))
            .bucket_width(Duration::from_millis(250))
            .trial_rule(TrialRule::FirstFailure)
            .build()
            .unwrap(),
        BreakerConfig::builder()
            .consecutive_failures_only(5)
            .build()
            .unwrap(),
    ] {
        let json = serde_json::to_string(&breaker).unwrap();
        let again: BreakerConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(again, breaker, "{json}");
    }
}

#[test]
fn left_out_keys_keep_the_builders_defaults() {
    let config: BreakerConfig = read("minimum_calls = 4").unwrap();
    assert_eq!(
        config,
        BreakerConfig::builder().minimum_calls(4).build().unwrap()
    );
}

#[test]
fn invalid_documents_name_the_field_by_its_path() {
    let cases = [
        (
            "[breaker]\nfailure_rate_threshold = 150\n",
            "breaker.failure_rate_threshold: must be in (0, 100], got 150",
        ),
        (
            "[breaker]\ncount_window = 10\nminimum_calls = 20\n",
            "breaker.minimum_calls: must not exceed the window of 10 calls (set count_window to at least 20), got 20",
        ),
        (
            "[breaker]\nslow_calls = { duration = \"0s\", rate_threshold = 50 }\n",
            "breaker.slow_calls.duration: must be longer than zero, got 0s",
        ),
        (
            "[breaker]\nwait_growth = { multiplier = 0.5, max = \"1m\" }\n",
            "breaker.wait_growth.multiplier: must be at least 1, got 0.5",
        ),
        (
            "[breaker]\ncount_window = 10\ntime_window = \"10s\"\n",
            "breaker.time_window: cannot be set together with count_window",
        ),
        (
            "[breaker]\ntime_window = \"10s\"\nbucket_width = \"3s\"\n",
            "breaker.time_window: must be a whole number of buckets of 3s (bucket_width), from 1 to 3600 of them, got 10s",
        ),
        (
            "[breaker]\nconsecutive_failures_only = 5\nfailure_rate_threshold = 20\n",
            "breaker.failure_rate_threshold: cannot be set together with consecutive_failures_only",
        ),
        (
            "[breaker]\ntumbling_window = \"10s\"\ntime_window = \"10s\"\n",
            "breaker.tumbling_window: cannot be set together with count_window, time_window or bucket_width",
        ),
        (
            "[breaker]\nmax_wait_in_half_open = \"0s\"\n",
            "breaker.max_wait_in_half_open: must be longer than zero, got 0s",
        ),
        (
            "[bulkhead]\nmax_concurrent = 0\n",
            "bulkhead.max_concurrent: must be at least 1, got 0",
        ),
        (
            "[bulkhead]\nmax_concurrent = 8\nmax_queue = 10\n",
            "bulkhead.max_queue: has no effect without a max_wait: nothing waits in line",
        ),
    ];
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Part {
        breaker: Option<BreakerConfig>,
        bulkhead: Option<Bulkhead>,
    }
    for (text, message) in cases {
        let err = read::<Part>(text).unwrap_err();
        assert_eq!(err.to_string(), message, "{text}");
    }

    // Errors of the format itself keep its message, under the path.
    let err = read::<Part>("[breaker]\nwait_in_open = \"5 parsecs\"\n").unwrap_err();
    assert_eq!(err.field(), "breaker.wait_in_open");
    assert!(err.rule().contains("invalid duration"), "{err}");
    let err = read::<Part>("[breaker]\nfailure_rate = 50\n").unwrap_err();
    assert_eq!(err.field(), "breaker.failure_rate");
    assert!(err.rule().contains("unknown field `failure_rate`"), "{err}");
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct WithTimeout {
        timeout: Timeout,
    }
    let err = read::<WithTimeout>("timeout = \"0s\"\n").unwrap_err();
    assert_eq!(err.to_string(), "timeout: must be longer than zero, got 0s");
    let err = read::<Part>("[bulkhead]\nmax_wait = \"1s\"\n").unwrap_err();
    assert_eq!(err.field(), "bulkhead");
    assert!(
        err.rule().contains("missing field `max_concurrent`"),
        "{err}"
    );
}

#[test]
fn the_peer_rules_read_from_a_document() {
    let config: BreakerConfig =
        read("consecutive_failures_only = 5\ntrial_rule = \"first-failure\"\n").unwrap();
    assert_eq!(
        config,
        BreakerConfig::builder()
            .consecutive_failures_only(5)
            .build()
            .unwrap()
    );
    let config: BreakerConfig = read("tumbling_window = \"10s\"\n").unwrap();
    assert_eq!(config.bucket_width(), Duration::from_secs(10));
    assert_eq!(config.time_window(), Some(Duration::from_secs(10)));
}
