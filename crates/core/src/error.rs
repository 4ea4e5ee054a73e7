//! The error every seawall config builder returns.

use std::borrow::Cow;
use std::fmt;

/// A config value that breaks a rule, found by a builder's `build()`.
///
/// It names the field, the rule and, when there is one, the value given, so
/// the message alone says what to fix:
///
/// ```text
/// burst: must be at least 1, got 0
/// limits.api.rate: is required
/// ```
///
/// # Examples
///
/// ```
/// use seawall_core::ConfigError;
///
/// fn check_burst(burst: u32) -> Result<u32, ConfigError> {
///     if burst == 0 {
///         return Err(ConfigError::new("burst", "must be at least 1", burst));
///     }
///     Ok(burst)
/// }
///
/// let err = check_burst(0).unwrap_err();
/// assert_eq!(err.to_string(), "burst: must be at least 1, got 0");
/// assert_eq!(err.field(), "burst");
/// assert_eq!(err.value(), Some("0"));
///
/// // Code that builds nested configs puts each parent in front, inner first:
/// let err = err.within("api").within("limits");
/// assert_eq!(err.to_string(), "limits.api.burst: must be at least 1, got 0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: Cow<'static, str>,
    rule: Cow<'static, str>,
    value: Option<String>,
}

impl ConfigError {
    /// A `field` whose `value` breaks `rule`.
    ///
    /// `rule` reads as a predicate on the field: "must be at least 1",
    /// "must not exceed `max_size` (10)".
    pub fn new(
        field: impl Into<Cow<'static, str>>,
        rule: impl Into<Cow<'static, str>>,
        value: impl fmt::Display,
    ) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
            value: Some(value.to_string()),
        }
    }

    /// A `field` that breaks `rule` in a way no single value shows, such as
    /// "must not exceed `max_size`" when the fault lies between two fields.
    pub fn invalid(
        field: impl Into<Cow<'static, str>>,
        rule: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
            value: None,
        }
    }

    /// A required `field` that was not set.
    pub fn missing(field: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field: field.into(),
            rule: Cow::Borrowed("is required"),
            value: None,
        }
    }

    /// Puts `parent` in front of the field's path: `burst` within `limits`
    /// becomes `limits.burst`.
    #[must_use]
    pub fn within(mut self, parent: &str) -> Self {
        self.field = Cow::Owned(format!("{parent}.{}", self.field));
        self
    }

    /// The same rule and value, reported under another field name: for a
    /// config that maps its own fields onto another config's builder, so
    /// that errors name the field its user wrote.
    #[must_use]
    pub fn renamed(mut self, field: impl Into<Cow<'static, str>>) -> Self {
        self.field = field.into();
        self
    }

    /// The path of the field at fault, such as `burst` or `limits.burst`.
    #[must_use]
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The rule the value broke, such as `must be at least 1`.
    #[must_use]
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// The value given, as text; `None` when the field was missing or the
    /// error has no single value.
    #[must_use]
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)?;
        if let Some(value) = &self.value {
            write!(f, ", got {value}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn message_names_field_rule_and_value() {
        let err = ConfigError::new("burst", "must be at least 1", 0);
        assert_eq!(err.to_string(), "burst: must be at least 1, got 0");
        assert_eq!(err.rule(), "must be at least 1");
    }

    #[test]
    fn debug_formatted_values_keep_their_shape() {
        let err = ConfigError::new(
            "period",
            "must be longer than zero",
            format_args!("{:?}", Duration::ZERO),
        );
        assert_eq!(err.to_string(), "period: must be longer than zero, got 0ns");
    }

    #[test]
    fn missing_field_has_no_value() {
        let err = ConfigError::missing("rate");
        assert_eq!(err.to_string(), "rate: is required");
        assert_eq!(err.value(), None);
    }

    #[test]
    fn invalid_has_a_rule_and_no_value() {
        let err = ConfigError::invalid("min_idle", "must not exceed max_size (4)");
        assert_eq!(err.to_string(), "min_idle: must not exceed max_size (4)");
        assert_eq!(err.value(), None);
    }

    #[test]
    fn within_builds_a_path_from_the_inside_out() {
        let err = ConfigError::missing("rate")
            .within("limit")
            .within("routes[2]");
        assert_eq!(err.field(), "routes[2].limit.rate");
        assert_eq!(err.to_string(), "routes[2].limit.rate: is required");
    }

    #[test]
    fn renamed_keeps_rule_and_value() {
        let err = ConfigError::new("minimum_calls", "must be at least 1", 0)
            .renamed("request_volume_threshold");
        assert_eq!(
            err.to_string(),
            "request_volume_threshold: must be at least 1, got 0"
        );
    }

    #[test]
    fn is_a_std_error() {
        let err: Box<dyn std::error::Error + Send + Sync> = Box::new(ConfigError::missing("rate"));
        assert!(err.downcast_ref::<ConfigError>().is_some());
    }
}
