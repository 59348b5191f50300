//! The mechanics of reading the environment: unset and empty are the same,
//! and a value that does not parse becomes a [`ConfigError`] naming the
//! variable and the form it accepts.

use std::time::Duration;

use percent_encoding::percent_decode_str;
use url::Url;

/// A variable whose value cannot be used. The message names the variable and
/// the form it accepts, so it can be shown to an operator as is.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("invalid {var}={value:?}: expected {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("invalid {var}={value}: {reason}")]
    Inconsistent {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("{var}={value:?} is not supported: {instead}")]
    Unsupported {
        var: &'static str,
        value: String,
        instead: &'static str,
    },
}

/// The environment as seen by the parsers: unset and empty are both `None`,
/// as the OpenTelemetry specification asks.
pub(super) struct Env<'a>(Lookup<'a>);

type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

impl<'a> Env<'a> {
    pub(super) fn new(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self(Box::new(move |name| lookup(name).filter(|v| !v.is_empty())))
    }

    pub(super) fn get(&self, var: &str) -> Option<String> {
        (self.0)(var)
    }

    /// The parsed value, `None` when unset, or an error naming `var` and
    /// `expected` when `parse` refuses the (trimmed) value.
    pub(super) fn parse_opt<T>(
        &self,
        var: &'static str,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.get(var) else {
            return Ok(None);
        };
        match parse(value.trim()) {
            Some(parsed) => Ok(Some(parsed)),
            None => Err(ConfigError::Invalid {
                var,
                value,
                expected,
            }),
        }
    }

    pub(super) fn parse_or<T>(
        &self,
        var: &'static str,
        expected: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        Ok(self.parse_opt(var, expected, parse)?.unwrap_or(default))
    }
}

pub(super) fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

pub(super) fn parse_millis(value: &str) -> Option<Duration> {
    value.parse::<u64>().ok().map(Duration::from_millis)
}

pub(super) fn parse_positive(value: &str) -> Option<usize> {
    value.parse::<usize>().ok().filter(|n| *n > 0)
}

pub(super) fn parse_probability(value: &str) -> Option<f64> {
    value
        .parse::<f64>()
        .ok()
        .filter(|p| (0.0..=1.0).contains(p))
}

pub(super) fn parse_http_url(value: &str) -> Option<Url> {
    Url::parse(value)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
}

/// Parses the W3C-baggage-like list used by `OTEL_RESOURCE_ATTRIBUTES` and
/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,key2=value2`, values percent-encoded.
pub(super) fn parse_key_values(value: &str) -> Option<Vec<(String, String)>> {
    value
        .split(',')
        .map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            if key.is_empty() {
                return None;
            }
            let value = value.trim();
            if !is_percent_encoded(value) {
                return None;
            }
            let value = percent_decode_str(value).decode_utf8().ok()?;
            Some((key.to_owned(), value.into_owned()))
        })
        .collect()
}

/// True when every `%` starts a `%XX` escape; `percent_decode_str` would
/// pass a stray `%` through unchanged, hiding a mistyped value.
fn is_percent_encoded(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.iter().enumerate().all(|(i, byte)| {
        *byte != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_means_one_or_more() {
        assert_eq!(parse_positive("0"), None);
        assert_eq!(parse_positive("1"), Some(1));
        assert_eq!(parse_positive("-1"), None);
    }

    #[test]
    fn only_http_and_https_urls_are_endpoints() {
        assert!(parse_http_url("http://collector:4317").is_some());
        assert!(parse_http_url("https://collector").is_some());
        for refused in [
            "ftp://collector:4317",
            "unix:/run/otel.sock",
            "collector:4317",
        ] {
            assert_eq!(parse_http_url(refused), None, "{refused}");
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let env = Env::new(|name| (name == "EMPTY").then(String::new));
        assert_eq!(env.get("EMPTY"), None);
        assert_eq!(env.parse_or("EMPTY", "anything", 7, |_| Some(1)), Ok(7));
    }

    #[test]
    fn a_refused_value_names_the_variable_and_the_form() {
        let env = Env::new(|_| Some(" 12x ".to_owned()));
        assert_eq!(
            env.parse_opt("WORK_SLEEP_MS", "a whole number", parse_millis),
            Err(ConfigError::Invalid {
                var: "WORK_SLEEP_MS",
                value: " 12x ".to_owned(),
                expected: "a whole number",
            })
        );
    }

    #[test]
    fn booleans_are_true_or_false_in_any_case() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("False"), Some(false));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_bool("0"), None);
    }

    #[test]
    fn probabilities_include_both_ends() {
        assert_eq!(parse_probability("0"), Some(0.0));
        assert_eq!(parse_probability("1"), Some(1.0));
        assert_eq!(parse_probability("1.0001"), None);
        assert_eq!(parse_probability("-0.1"), None);
        assert_eq!(parse_probability("NaN"), None);
    }

    #[test]
    fn key_values_are_trimmed_and_percent_decoded() {
        assert_eq!(
            parse_key_values(" a = x%20y ,b=2"),
            Some(vec![
                ("a".to_owned(), "x y".to_owned()),
                ("b".to_owned(), "2".to_owned())
            ])
        );
        assert_eq!(parse_key_values("novalue"), None);
        assert_eq!(parse_key_values("=value"), None);
    }

    #[test]
    fn stray_percent_signs_are_rejected() {
        assert!(is_percent_encoded("a%20b"));
        assert!(!is_percent_encoded("100%"));
        assert!(!is_percent_encoded("%zz"));
        // Exactly the two bytes after each `%`, wherever it is.
        assert!(is_percent_encoded("xx%41"));
        assert!(!is_percent_encoded("a%4g"));
        assert!(!is_percent_encoded("a%4"));
        assert_eq!(parse_key_values("k=50%"), None);
    }
}
