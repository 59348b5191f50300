//! The Sentry SDK's conventional variables: `SENTRY_DSN`,
//! `SENTRY_ENVIRONMENT`, `SENTRY_RELEASE`.

use std::str::FromStr;

use super::env::{ConfigError, Env};

/// The form of `SENTRY_DSN`, for messages.
pub const DSN_FORM: &str = "a Sentry DSN such as https://PUBLIC_KEY@o0.ingest.sentry.io/PROJECT_ID";

/// A DSN as the Sentry SDK reads it; `None` when `value` is not one.
pub fn parse_dsn(value: &str) -> Option<sentry::types::Dsn> {
    sentry::types::Dsn::from_str(value).ok()
}

#[derive(Debug, Clone)]
pub struct SentryConfig {
    pub dsn: sentry::types::Dsn,
    pub environment: Option<String>,
    pub release: Option<String>,
}

impl SentryConfig {
    /// `None` when `SENTRY_DSN` is unset: errors are only logged and traced.
    pub(super) fn from_env(env: &Env<'_>) -> Result<Option<Self>, ConfigError> {
        let Some(dsn) = env.parse_opt("SENTRY_DSN", DSN_FORM, parse_dsn)? else {
            return Ok(None);
        };
        Ok(Some(SentryConfig {
            dsn,
            environment: env.get("SENTRY_ENVIRONMENT"),
            release: env.get("SENTRY_RELEASE"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn sentry(pairs: &[(&str, &str)]) -> Result<Option<SentryConfig>, ConfigError> {
        let env: HashMap<&str, &str> = pairs.iter().copied().collect();
        SentryConfig::from_env(&Env::new(|name| env.get(name).map(|v| (*v).to_owned())))
    }

    #[test]
    fn sentry_is_off_without_a_dsn() {
        assert!(sentry(&[]).expect("valid").is_none());
        assert!(sentry(&[("SENTRY_DSN", "")]).expect("valid").is_none());
        assert!(
            sentry(&[("SENTRY_ENVIRONMENT", "staging")])
                .expect("valid")
                .is_none()
        );
    }

    #[test]
    fn sentry_settings_are_read_together() {
        let sentry = sentry(&[
            ("SENTRY_DSN", "https://public@o1.ingest.sentry.io/42"),
            ("SENTRY_ENVIRONMENT", "staging"),
            ("SENTRY_RELEASE", "somework@1.2.3"),
        ])
        .expect("valid")
        .expect("sentry on");
        assert_eq!(sentry.dsn.project_id().to_string(), "42");
        assert_eq!(sentry.dsn.host(), "o1.ingest.sentry.io");
        assert_eq!(sentry.environment.as_deref(), Some("staging"));
        assert_eq!(sentry.release.as_deref(), Some("somework@1.2.3"));
    }

    #[test]
    fn a_bad_dsn_names_the_variable() {
        let error = sentry(&[("SENTRY_DSN", "not-a-dsn")]).unwrap_err();
        assert!(error.to_string().contains("SENTRY_DSN"), "{error}");
        assert!(error.to_string().contains("DSN such as"), "{error}");
    }
}
