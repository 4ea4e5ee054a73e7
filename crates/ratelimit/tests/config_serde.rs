//! Quotas and limiter settings read from and written to documents (feature
//! `serde`): round trips, and invalid documents failing with the field's
//! path and the builder's rule.
#![cfg(feature = "serde")]

use std::time::Duration;

use seawall_core::config;
use seawall_ratelimit::{KeyedRateLimiterBuilder, Quota, RateLimiterBuilder};
use serde::Deserialize;

fn read<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, seawall_core::ConfigError> {
    config::deserialize(toml::Deserializer::parse(text).expect("valid TOML"))
}

#[test]
fn quotas_read_as_the_builder_builds_them() {
    let cases = [
        ("rate = 100\nburst = 20", Quota::per_second(100).burst(20)),
        ("rate = 30\nperiod = \"1m\"", Quota::per_minute(30)),
        (
            "rate = 1\nperiod = \"3s\"",
            Quota::per(Duration::from_secs(3), 1),
        ),
        ("rate = 5", Quota::per_second(5)),
    ];
    for (text, built) in cases {
        assert_eq!(
            read::<Quota>(text).unwrap(),
            built.build().unwrap(),
            "{text}"
        );
    }
}

#[test]
fn quotas_round_trip_in_plain_words() {
    let cases = [
        (
            Quota::per_second(100).burst(20),
            r#"{"rate":100,"period":"1s","burst":20}"#,
        ),
        (
            Quota::per_minute(30),
            r#"{"rate":30,"period":"1m","burst":30}"#,
        ),
        (Quota::per_hour(7), r#"{"rate":7,"period":"1h","burst":7}"#),
        // The interval is rounded down to whole nanoseconds; these read
        // back to the same one.
        (
            Quota::per_second(3),
            r#"{"rate":3,"period":"1s","burst":3}"#,
        ),
        // An interval no second, minute or hour gives: one per interval.
        (
            Quota::per(Duration::from_nanos(7_000_000_001), 2),
            r#"{"rate":1,"period":"3500ms","burst":2}"#,
        ),
    ];
    for (builder, json) in cases {
        let quota = builder.build().unwrap();
        assert_eq!(serde_json::to_string(&quota).unwrap(), json);
        assert_eq!(serde_json::from_str::<Quota>(json).unwrap(), quota);
    }
}

#[test]
fn limiter_settings_round_trip() {
    let text = "rate = 2\nburst = 5\nname = \"per-client\"\nmax_keys = 1000\n";
    let builder: KeyedRateLimiterBuilder<String, _> = read(text).unwrap();
    let written = toml::to_string(&builder).unwrap();
    assert_eq!(
        written,
        "rate = 2\nperiod = \"1s\"\nburst = 5\nname = \"per-client\"\nmax_keys = 1000\n"
    );
    let again: KeyedRateLimiterBuilder<String, _> = read(&written).unwrap();
    assert_eq!(toml::to_string(&again).unwrap(), written);
    let limiter = again.build().unwrap();
    assert_eq!(
        limiter.quota(),
        Quota::per_second(2).burst(5).build().unwrap()
    );
    assert_eq!(limiter.stats().max_keys, 1000);

    let text = "rate = 10\njitter = \"5ms\"\n";
    let builder: RateLimiterBuilder<_> = read(text).unwrap();
    let written = toml::to_string(&builder).unwrap();
    assert_eq!(
        written,
        "rate = 10\nperiod = \"1s\"\nburst = 10\njitter = \"5ms\"\n"
    );
    let limiter = read::<RateLimiterBuilder<_>>(&written).unwrap().build();
    assert_eq!(limiter.quota(), Quota::per_second(10).build().unwrap());
}

/// Go's special quotas, in a document: a rate of zero is a budget of
/// `burst`, and `"unlimited"` switches the limit off.
#[test]
fn unlimited_and_budget_quotas_read_and_write_back() {
    for (text, quota) in [
        ("rate = \"unlimited\"\n", Quota::unlimited()),
        (
            "rate = 0\nburst = 100\n",
            Quota::per_second(0).burst(100).build().unwrap(),
        ),
        ("rate = 0\n", Quota::per_second(0).build().unwrap()),
        (
            "rate = 5\nburst = 0\n",
            Quota::per_second(5).burst(0).build().unwrap(),
        ),
    ] {
        let read: Quota = read(text).unwrap();
        assert_eq!(read, quota, "{text}");
        let written = toml::to_string(&read).unwrap();
        assert_eq!(
            toml::from_str::<Quota>(&written).unwrap(),
            quota,
            "{written}"
        );
    }
}

#[test]
fn invalid_documents_name_the_field_by_its_path() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Limits {
        api: Option<RateLimiterBuilder<seawall_core::MonotonicClock>>,
        per_client: Option<KeyedRateLimiterBuilder<String, seawall_core::MonotonicClock>>,
        quota: Option<Quota>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Policy {
        limits: Limits,
    }
    let cases = [
        (
            "[limits.api]\nrate = \"unlimited\"\nburst = 5\n",
            "limits.api.burst: must be left out when rate is \"unlimited\"",
        ),
        (
            "[limits.per_client]\nrate = 5\nmax_keys = 0\n",
            "limits.per_client.max_keys: must be at least 1, got 0",
        ),
        (
            "[limits.quota]\nrate = 1\nperiod = \"0s\"\n",
            "limits.quota.period: must be longer than zero, got 0s",
        ),
        (
            "[limits.per_client]\nrate = 5\njitter = \"1ms\"\n",
            "limits.per_client.jitter: is for plain limiters only",
        ),
    ];
    for (text, message) in cases {
        let err = read::<Policy>(text).unwrap_err();
        assert_eq!(err.to_string(), message, "{text}");
    }
    let err = read::<Policy>("[limits.api]\nrate = \"lots\"\n").unwrap_err();
    assert_eq!(err.field(), "limits.api.rate");
    assert!(
        err.rule()
            .contains(r#"expected a count per period (0 to 4294967295) or "unlimited""#),
        "{err}"
    );
    let err = read::<Policy>("[limits.api]\nrate = 5\nburts = 5\n").unwrap_err();
    assert_eq!(err.field(), "limits.api.burts");
    assert!(err.rule().contains("unknown field `burts`"), "{err}");
    let err = read::<Policy>("[limits.api]\nburst = 5\n").unwrap_err();
    assert_eq!(err.field(), "limits.api");
    assert!(err.rule().contains("missing field `rate`"), "{err}");
}
