//! Durations written the way people write them: `"250ms"`, `"5s"`, `"1m30s"`.
//!
//! Every seawall config takes its durations in this form (with the `serde`
//! feature, through `duration::serde`), so one grammar holds for all of
//! them:
//!
//! - one or more terms, each a number and a unit, optionally separated by
//!   spaces: `"1m30s"`, `"1m 30s"`, `"5 s"`;
//! - a number is digits with an optional fraction: `"1.5s"`, `"0.25ms"`;
//!   the result is rounded down to whole nanoseconds;
//! - units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`;
//! - a bare `"0"` is zero; any other number needs a unit.
//!
//! [`format()`] writes a duration back in the largest unit that holds it
//! exactly, so `parse(&format(d)) == Ok(d)` for every duration.

use std::fmt;
use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;
/// Units in the order [`format`] tries them, largest first.
const UNITS: [(&str, u128); 6] = [
    ("h", 3_600 * NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("s", NANOS_PER_SEC),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];
/// Fraction digits kept; the rest are dropped, which rounds down. Keeping 18
/// keeps `fraction * unit` inside a `u128`, and for the power-of-ten units
/// the dropped digits are all below a nanosecond (for `m` and `h`, a value
/// may round down by one more nanosecond).
const MAX_FRACTION_DIGITS: usize = 18;

/// `initial × 2^(n-1)` for the `n`-th wait of a backoff (`n` from 1), at
/// most `max`, without overflow.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use seawall_core::duration::doubling;
///
/// let second = Duration::from_secs(1);
/// let waits: Vec<u64> = (1..=5)
///     .map(|n| doubling(second, n, Duration::from_secs(5)).as_secs())
///     .collect();
/// assert_eq!(waits, [1, 2, 4, 5, 5]);
/// ```
#[must_use]
pub fn doubling(initial: Duration, n: u32, max: Duration) -> Duration {
    let factor = 1_u64 << n.saturating_sub(1).min(63);
    let nanos = u64::try_from(initial.as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_mul(factor);
    Duration::from_nanos(nanos).min(max)
}

/// Parses a duration such as `"250ms"` or `"1m30s"`.
///
/// # Errors
///
/// Returns [`ParseDurationError`] for empty input, a number without a unit,
/// an unknown unit, a malformed number, or a duration past
/// [`Duration::MAX`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use seawall_core::duration;
///
/// assert_eq!(duration::parse("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(duration::parse("1m 30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(duration::parse("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(
///     duration::parse("5").unwrap_err().to_string(),
///     r#"invalid duration "5": "5" needs a unit (ns, us, ms, s, m or h)"#,
/// );
/// ```
pub fn parse(input: &str) -> Result<Duration, ParseDurationError> {
    let err = |kind| ParseDurationError {
        input: input.to_owned(),
        kind,
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(err(ErrorKind::Empty));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if number.is_empty() {
            return Err(err(ErrorKind::MissingNumber(unit.to_owned())));
        }
        if unit.is_empty() {
            return Err(err(ErrorKind::MissingUnit(number.to_owned())));
        }
        let unit_nanos =
            unit_nanos(unit).ok_or_else(|| err(ErrorKind::UnknownUnit(unit.to_owned())))?;
        let nanos = term_nanos(number, unit_nanos).map_err(err)?;
        total = total
            .checked_add(nanos)
            .ok_or_else(|| err(ErrorKind::TooLarge))?;
        rest = after.trim_start();
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| err(ErrorKind::TooLarge))?;
    let nanos = u32::try_from(total % NANOS_PER_SEC).map_err(|_| err(ErrorKind::TooLarge))?;
    Ok(Duration::new(secs, nanos))
}

fn unit_nanos(unit: &str) -> Option<u128> {
    let unit = if unit == "µs" || unit == "μs" {
        "us"
    } else {
        unit
    };
    UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, n)| *n)
}

/// `number` (digits, optional `.digits`) times `unit_nanos`.
fn term_nanos(number: &str, unit_nanos: u128) -> Result<u128, ErrorKind> {
    let bad = || ErrorKind::BadNumber(number.to_owned());
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits_only(whole) || !digits_only(fraction) {
        return Err(bad());
    }
    let mut nanos: u128 = 0;
    for digit in whole.bytes() {
        nanos = nanos
            .checked_mul(10)
            .and_then(|n| n.checked_add(u128::from(digit - b'0')))
            .ok_or(ErrorKind::TooLarge)?;
    }
    nanos = nanos.checked_mul(unit_nanos).ok_or(ErrorKind::TooLarge)?;
    let kept = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
    if !kept.is_empty() {
        let mut numerator: u128 = 0;
        for digit in kept.bytes() {
            numerator = numerator * 10 + u128::from(digit - b'0');
        }
        // `kept` has at most 18 digits, so the exponent fits and
        // `numerator * unit_nanos` stays below 10^18 * 3.6 * 10^12.
        let scale = 10u128.pow(u32::try_from(kept.len()).map_err(|_| bad())?);
        nanos = nanos
            .checked_add(numerator * unit_nanos / scale)
            .ok_or(ErrorKind::TooLarge)?;
    }
    Ok(nanos)
}

/// Writes `duration` in the largest unit that holds it exactly: `"250ms"`,
/// `"90s"`, `"2h"`, `"0s"`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use seawall_core::duration;
///
/// assert_eq!(duration::format(Duration::from_millis(250)), "250ms");
/// assert_eq!(duration::format(Duration::from_secs(120)), "2m");
/// assert_eq!(duration::format(Duration::from_millis(1500)), "1500ms");
/// assert_eq!(duration::format(Duration::ZERO), "0s");
/// ```
#[must_use]
pub fn format(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    let (unit, per) = UNITS
        .iter()
        .find(|(_, per)| nanos.is_multiple_of(*per))
        .copied()
        .unwrap_or(("ns", 1));
    format!("{}{unit}", nanos / per)
}

/// A string that is not a duration; the message quotes it and says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDurationError {
    input: String,
    kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ErrorKind {
    Empty,
    MissingNumber(String),
    MissingUnit(String),
    UnknownUnit(String),
    BadNumber(String),
    TooLarge,
}

const UNIT_LIST: &str = "ns, us, ms, s, m or h";

impl fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid duration {:?}: ", self.input)?;
        match &self.kind {
            ErrorKind::Empty => write!(f, "empty; write a number and a unit ({UNIT_LIST})"),
            ErrorKind::MissingUnit(n) => write!(f, "{n:?} needs a unit ({UNIT_LIST})"),
            ErrorKind::UnknownUnit(u) => write!(f, "unknown unit {u:?} (use {UNIT_LIST})"),
            ErrorKind::MissingNumber(u) => write!(f, "expected a number before {u:?}"),
            ErrorKind::BadNumber(n) => write!(f, "{n:?} is not a number"),
            ErrorKind::TooLarge => f.write_str("longer than the longest duration"),
        }
    }
}

impl std::error::Error for ParseDurationError {}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod serde {
    //! `#[serde(with = "seawall_core::duration::serde")]` for a `Duration`
    //! field written as `"250ms"`.
    //!
    //! ```
    //! use std::time::Duration;
    //!
    //! #[derive(Debug, serde::Deserialize, serde::Serialize)]
    //! struct TimeoutConfig {
    //!     #[serde(with = "seawall_core::duration::serde")]
    //!     timeout: Duration,
    //!     #[serde(default, with = "seawall_core::duration::serde::option")]
    //!     slow_call: Option<Duration>,
    //! }
    //!
    //! let config: TimeoutConfig = serde_json::from_str(r#"{ "timeout": "250ms" }"#).unwrap();
    //! assert_eq!(config.timeout, Duration::from_millis(250));
    //! assert_eq!(config.slow_call, None);
    //! assert_eq!(serde_json::to_string(&config).unwrap(), r#"{"timeout":"250ms","slow_call":null}"#);
    //!
    //! let err = serde_json::from_str::<TimeoutConfig>(r#"{ "timeout": "5" }"#).unwrap_err();
    //! assert!(err.to_string().starts_with(r#"invalid duration "5": "5" needs a unit"#));
    //! ```

    use std::fmt;
    use std::time::Duration;

    use ::serde::{Deserializer, Serializer, de};

    /// Serializes a duration as a string such as `"250ms"`.
    ///
    /// # Errors
    ///
    /// Whatever the serializer returns for a string.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(*duration))
    }

    /// Deserializes a duration from a string such as `"250ms"`.
    ///
    /// # Errors
    ///
    /// A value that is not a string, or a string [`parse`](super::parse)
    /// refuses; the message says which and why.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_str(DurationVisitor)
    }

    struct DurationVisitor;

    impl de::Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(r#"a duration such as "250ms" or "5s""#)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            super::parse(text).map_err(E::custom)
        }
    }

    /// A duration that a document may switch off: `"250ms"`, or `"off"`
    /// for `None`. For settings where a missing key means the default and
    /// `"off"` means none (a pool's `idle_timeout`, a retry's
    /// `max_total_time`): hold it as `Option<OrOff>`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_core::duration::serde::OrOff;
    ///
    /// let on: OrOff = serde_json::from_str(r#""5s""#).unwrap();
    /// let off: OrOff = serde_json::from_str(r#""off""#).unwrap();
    /// assert_eq!((on.0, off.0), (Some(Duration::from_secs(5)), None));
    /// assert_eq!(serde_json::to_string(&off).unwrap(), r#""off""#);
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct OrOff(pub Option<Duration>);

    impl<'de> ::serde::Deserialize<'de> for OrOff {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_str(OrOffVisitor)
        }
    }

    struct OrOffVisitor;

    impl de::Visitor<'_> for OrOffVisitor {
        type Value = OrOff;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(r#"a duration such as "250ms", or "off""#)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<OrOff, E> {
            if text == "off" {
                return Ok(OrOff(None));
            }
            super::parse(text)
                .map(|duration| OrOff(Some(duration)))
                .map_err(|error| E::custom(format_args!("{error}, or \"off\"")))
        }
    }

    impl ::serde::Serialize for OrOff {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                Some(duration) => serialize(&duration, serializer),
                None => serializer.serialize_str("off"),
            }
        }
    }

    pub mod option {
        //! `#[serde(default, with = "seawall_core::duration::serde::option")]`
        //! for an `Option<Duration>` field.

        use std::fmt;
        use std::time::Duration;

        use ::serde::{Deserializer, Serializer, de};

        /// Serializes `Some(duration)` as `"250ms"` and `None` as none.
        ///
        /// # Errors
        ///
        /// Whatever the serializer returns.
        pub fn serialize<S: Serializer>(
            duration: &Option<Duration>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match duration {
                Some(d) => serializer.serialize_some(super::super::format(*d).as_str()),
                None => serializer.serialize_none(),
            }
        }

        /// Deserializes an optional duration string.
        ///
        /// # Errors
        ///
        /// As [`deserialize`](super::deserialize).
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Duration>, D::Error> {
            deserializer.deserialize_option(OptionVisitor)
        }

        struct OptionVisitor;

        impl<'de> de::Visitor<'de> for OptionVisitor {
            type Value = Option<Duration>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"nothing, or a duration such as "250ms""#)
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                super::deserialize(d).map(Some)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(s: &str) -> String {
        parse(s).expect_err(s).to_string()
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("7us"), Duration::from_micros(7));
        assert_eq!(ok("7µs"), Duration::from_micros(7));
        assert_eq!(ok("7ms"), Duration::from_millis(7));
        assert_eq!(ok("7s"), Duration::from_secs(7));
        assert_eq!(ok("7m"), Duration::from_secs(420));
        assert_eq!(ok("7h"), Duration::from_secs(25_200));
    }

    #[test]
    fn parses_compounds_fractions_and_spaces() {
        assert_eq!(ok("1h30m"), Duration::from_secs(5_400));
        assert_eq!(ok(" 1m 30s "), Duration::from_secs(90));
        assert_eq!(ok("5 s"), Duration::from_secs(5));
        assert_eq!(ok("1 m 30 s"), Duration::from_secs(90));
        assert_eq!(ok("1s500ms"), Duration::from_millis(1_500));
        assert_eq!(ok("0.5s"), Duration::from_millis(500));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("2.s"), Duration::from_secs(2));
        assert_eq!(ok("0.0000000019s"), Duration::from_nanos(1));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0ms"), Duration::ZERO);
    }

    #[test]
    fn parses_up_to_duration_max() {
        let max = format(Duration::MAX);
        assert_eq!(ok(&max), Duration::MAX);
        assert_eq!(ok("18446744073709551615s"), Duration::from_secs(u64::MAX));
    }

    #[test]
    fn refuses_bad_input_with_a_reason() {
        assert_eq!(
            err(""),
            r#"invalid duration "": empty; write a number and a unit (ns, us, ms, s, m or h)"#
        );
        assert_eq!(
            err("5"),
            r#"invalid duration "5": "5" needs a unit (ns, us, ms, s, m or h)"#
        );
        assert_eq!(
            err("5x"),
            r#"invalid duration "5x": unknown unit "x" (use ns, us, ms, s, m or h)"#
        );
        assert_eq!(
            err("5 5s"),
            r#"invalid duration "5 5s": "5" needs a unit (ns, us, ms, s, m or h)"#
        );
        assert_eq!(
            err("ms"),
            r#"invalid duration "ms": expected a number before "ms""#
        );
        assert_eq!(
            err("1.2.3s"),
            r#"invalid duration "1.2.3s": "1.2.3" is not a number"#
        );
        assert_eq!(err(".s"), r#"invalid duration ".s": "." is not a number"#);
        assert_eq!(
            err("-5s"),
            r#"invalid duration "-5s": expected a number before "-""#
        );
        assert_eq!(
            err("18446744073709551616s"),
            r#"invalid duration "18446744073709551616s": longer than the longest duration"#
        );
        assert!(
            err("99999999999999999999999999999999999999999h")
                .ends_with("longer than the longest duration")
        );
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format(Duration::from_secs(3_600)), "1h");
        assert_eq!(format(Duration::from_secs(90)), "90s");
        assert_eq!(format(Duration::from_micros(1_500)), "1500us");
        assert_eq!(format(Duration::new(1, 1)), "1000000001ns");
    }

    #[test]
    fn format_round_trips() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(250),
            Duration::from_secs(86_400),
            Duration::new(12, 345_678_901),
            Duration::MAX,
        ] {
            assert_eq!(parse(&format(d)), Ok(d), "{d:?}");
        }
    }

    #[cfg(feature = "serde")]
    mod serde {
        use std::time::Duration;

        #[derive(Debug, PartialEq, ::serde::Deserialize, ::serde::Serialize)]
        struct Config {
            #[serde(with = "crate::duration::serde")]
            timeout: Duration,
            #[serde(default, with = "crate::duration::serde::option")]
            slow_call: Option<Duration>,
        }

        #[test]
        fn round_trips_through_json() {
            let text = r#"{"timeout":"1m30s","slow_call":"0.5s"}"#;
            let config: Config = serde_json::from_str(text).unwrap();
            assert_eq!(
                config,
                Config {
                    timeout: Duration::from_secs(90),
                    slow_call: Some(Duration::from_millis(500)),
                }
            );
            let written = serde_json::to_string(&config).unwrap();
            assert_eq!(written, r#"{"timeout":"90s","slow_call":"500ms"}"#);
            assert_eq!(serde_json::from_str::<Config>(&written).unwrap(), config);
        }

        #[test]
        fn explains_a_value_that_is_not_a_string() {
            let err = serde_json::from_str::<Config>(r#"{"timeout":5}"#).unwrap_err();
            assert!(
                err.to_string().starts_with(
                    r#"invalid type: integer `5`, expected a duration such as "250ms" or "5s""#
                ),
                "{err}"
            );
            let err = serde_json::from_str::<Config>(r#"{"timeout":"1s","slow_call":"fast"}"#)
                .unwrap_err();
            assert!(
                err.to_string().starts_with(r#"invalid duration "fast""#),
                "{err}"
            );
        }
    }
}
