//! The TOML example of docs/architecture.md reads, as it is, into the
//! configs of every crate, and a broken rule in it fails with its path.
#![cfg(all(feature = "breaker", feature = "ratelimit", feature = "serde"))]

use std::net::IpAddr;
use std::time::Duration;

use seawall::breaker::{BreakerConfig, Bulkhead, Timeout};
use seawall::ratelimit::{KeyedRateLimiterBuilder, Quota, RateLimiterBuilder};
use seawall::{ConfigError, MonotonicClock};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    timeout: Timeout,
    limits: Limits,
    breaker: BreakerConfig,
    bulkhead: Bulkhead,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    per_client: KeyedRateLimiterBuilder<IpAddr, MonotonicClock>,
    api: RateLimiterBuilder<MonotonicClock>,
}

/// The block between the doc's `config-example` markers.
fn example() -> String {
    let doc = include_str!("../../../docs/architecture.md");
    let start = doc
        .find("<!-- config-example:begin -->")
        .expect("begin marker");
    let end = doc.find("<!-- config-example:end -->").expect("end marker");
    let block = &doc[start..end];
    let toml = block.split("```toml\n").nth(1).expect("a toml block");
    toml.split("```").next().expect("its end").to_owned()
}

fn read(text: &str) -> Result<Policy, ConfigError> {
    seawall::config::deserialize(toml::Deserializer::parse(text).expect("valid TOML"))
}

#[test]
fn the_documented_policy_reads() {
    let policy = read(&example()).unwrap();
    assert_eq!(policy.timeout.after(), Duration::from_secs(1));
    assert_eq!(policy.bulkhead.max_concurrent(), 32);
    assert_eq!(policy.breaker.minimum_calls(), 10);
    let per_client = policy.limits.per_client.build().unwrap();
    assert_eq!(
        per_client.quota(),
        Quota::per_second(2).burst(5).build().unwrap()
    );
    let api = policy.limits.api.build();
    assert_eq!(api.quota(), Quota::per_second(1_000).build().unwrap());
}

#[test]
fn the_documented_error_is_the_one_returned() {
    let broken = example().replace(
        "failure_rate_threshold = 50",
        "failure_rate_threshold = 150",
    );
    let err = read(&broken).unwrap_err();
    assert_eq!(
        err.to_string(),
        "breaker.failure_rate_threshold: must be in (0, 100], got 150"
    );
    let doc = include_str!("../../../docs/architecture.md");
    assert!(
        doc.contains(&format!("`{err}`")),
        "the doc quotes the error"
    );
}
