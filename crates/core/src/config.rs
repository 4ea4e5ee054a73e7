//! Reading configs with serde: [`deserialize`] turns any serde format's
//! document into a config, with errors as [`ConfigError`]s that name the
//! field by its path in the document.
//!
//! Every seawall config deserializes through the same checks as its
//! builder, so a document can hold nothing a builder would refuse. A
//! config's own rules report the field as the document wrote it; this
//! module puts the path to the config in front:
//!
//! ```
//! use serde::Deserialize;
//! use seawall_core::config;
//!
//! /// A made-up config whose `Deserialize` checks its field the way its
//! /// builder would, reporting with [`config::report`].
//! #[derive(Debug)]
//! struct Percent(f64);
//!
//! impl<'de> Deserialize<'de> for Percent {
//!     fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
//!         #[derive(Deserialize)]
//!         struct Raw { threshold: f64 }
//!         let raw = Raw::deserialize(d)?;
//!         if !(raw.threshold > 0.0 && raw.threshold <= 100.0) {
//!             return Err(config::report(seawall_core::ConfigError::new(
//!                 "threshold", "must be in (0, 100]", raw.threshold,
//!             )));
//!         }
//!         Ok(Percent(raw.threshold))
//!     }
//! }
//!
//! #[derive(Debug, Deserialize)]
//! struct Policy { breaker: Percent }
//!
//! let doc = toml::Deserializer::parse("[breaker]\nthreshold = 150\n").unwrap();
//! let err = config::deserialize::<Policy, _>(doc).unwrap_err();
//! assert_eq!(err.to_string(), "breaker.threshold: must be in (0, 100], got 150");
//! ```

use std::cell::RefCell;

use serde::de::{Deserialize, Deserializer};

use crate::ConfigError;

thread_local! {
    /// The last rule a config's `Deserialize` reported with [`report`]:
    /// serde carries errors as text, and this keeps the field apart from the
    /// rule so [`deserialize`] can put the path in front of the field.
    static LAST_INVALID: RefCell<Option<ConfigError>> = const { RefCell::new(None) };
}

/// Deserializes `T` (a config, or a document that holds configs) from any
/// serde deserializer (`toml::Deserializer::parse(text)?`,
/// `&mut serde_json::Deserializer::from_str(text)`, ...).
///
/// # Errors
///
/// A [`ConfigError`] whose field is the path to the value at fault
/// (`breaker.failure_rate_threshold`, `routes[2].limit.rate`): a rule a
/// config broke reads as the builder's error would
/// (`breaker.failure_rate_threshold: must be in (0, 100], got 150`); any
/// other error (a value of the wrong type, an unknown field, a malformed
/// duration) keeps the format's message, which may say where in the text it
/// is.
///
/// The rule a config broke travels beside serde's error in a thread-local,
/// so call this from the thread that deserializes, and not from inside a
/// `Deserialize` impl that another `deserialize` is running.
pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, ConfigError>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    LAST_INVALID.with(|last| last.borrow_mut().take());
    let result = serde_path_to_error::deserialize(deserializer);
    // Taken whatever happened, so no report outlives this call.
    let reported = LAST_INVALID.with(|last| last.borrow_mut().take());
    result.map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        // The rule a config reported, if this error is that report (and not
        // one a format raised after trying, say, another enum variant).
        match reported {
            Some(rule) if message.contains(&rule.to_string()) => match path.as_str() {
                "." if rule.field().is_empty() => rule.renamed("(document)"),
                "." => rule,
                // A value with no field of its own (a timeout is a duration):
                // the path names it.
                _ if rule.field().is_empty() => rule.renamed(path),
                _ => rule.within(&path),
            },
            _ if path == "." => ConfigError::invalid("(document)", message),
            _ => ConfigError::invalid(path, message),
        }
    })
}

/// The serde error for a rule a config broke while deserializing: what a
/// config's `Deserialize` returns when its builder refuses the values, so
/// that [`deserialize`] reports the field within the document's path. A
/// value that is a field by itself (not a table of fields) reports an
/// empty field name, and the path names it.
pub fn report<E: serde::de::Error>(error: ConfigError) -> E {
    let custom = E::custom(&error);
    LAST_INVALID.with(|last| *last.borrow_mut() = Some(error));
    custom
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq)]
    struct Positive(u32);

    impl<'de> Deserialize<'de> for Positive {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Raw {
                count: u32,
            }
            let raw = Raw::deserialize(d)?;
            if raw.count == 0 {
                return Err(report(ConfigError::new("count", "must be at least 1", 0)));
            }
            Ok(Positive(raw.count))
        }
    }

    #[derive(Debug, Deserialize)]
    struct Doc {
        #[allow(dead_code)]
        limits: Vec<Positive>,
    }

    fn json<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, ConfigError> {
        deserialize(&mut serde_json::Deserializer::from_str(text))
    }

    #[test]
    fn a_broken_rule_is_named_by_its_path() {
        let err = json::<Doc>(r#"{"limits": [{"count": 1}, {"count": 0}]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "limits[1].count: must be at least 1, got 0"
        );
        assert_eq!(err.field(), "limits[1].count");
    }

    #[test]
    fn a_rule_at_the_root_keeps_its_field() {
        let err = json::<Positive>(r#"{"count": 0}"#).unwrap_err();
        assert_eq!(err.to_string(), "count: must be at least 1, got 0");
    }

    #[test]
    fn format_errors_keep_their_message_under_the_path() {
        let err = json::<Doc>(r#"{"limits": [{"count": "many"}]}"#).unwrap_err();
        assert_eq!(err.field(), "limits[0].count");
        assert!(err.rule().starts_with("invalid type: string"), "{err}");

        let err = json::<Doc>(r#"{"limits": [{"cuont": 1}]}"#).unwrap_err();
        assert_eq!(err.field(), "limits[0].cuont");
        assert!(err.rule().starts_with("unknown field `cuont`"), "{err}");

        let err = json::<Doc>("[").unwrap_err();
        assert_eq!(err.field(), "(document)");
    }

    #[test]
    fn a_stale_report_is_not_taken_for_a_later_error() {
        let _ = report::<serde_json::Error>(ConfigError::new("count", "must be at least 1", 0));
        // A different error: the report left over is not it.
        let err = json::<Doc>(r#"{"limits": [{"count": -1}]}"#).unwrap_err();
        assert_eq!(err.field(), "limits[0].count");
        assert!(err.rule().starts_with("invalid value"), "{err}");
    }
}
