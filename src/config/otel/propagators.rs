//! `OTEL_PROPAGATORS`.

use crate::config::env::{ConfigError, Env};

/// `OTEL_PROPAGATORS`: how trace context travels in HTTP headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropagatorConfig {
    /// W3C `traceparent`/`tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
}

impl PropagatorConfig {
    /// A comma-separated list, duplicates ignored; `none` alone means no
    /// propagation at all. Default `tracecontext,baggage`.
    pub(super) fn from_env(env: &Env<'_>) -> Result<Vec<Self>, ConfigError> {
        const VAR: &str = "OTEL_PROPAGATORS";
        if let Some(value) = env.get(VAR) {
            let names = value
                .split(',')
                .map(|name| name.trim().to_ascii_lowercase());
            if names
                .into_iter()
                .any(|name| name == "b3" || name == "b3multi")
            {
                return Err(ConfigError::Unsupported {
                    var: VAR,
                    value,
                    instead: "use tracecontext, baggage or none: the only B3 propagator for \
                              opentelemetry 0.33, in opentelemetry-zipkin, is deprecated with \
                              that crate",
                });
            }
        }
        let propagators = env.parse_opt(
            VAR,
            "a comma-separated list of tracecontext and baggage, or none alone",
            |v| {
                if v.eq_ignore_ascii_case("none") {
                    return Some(Vec::new());
                }
                let mut propagators = Vec::new();
                for name in v.split(',') {
                    let propagator = match name.trim().to_ascii_lowercase().as_str() {
                        "tracecontext" => Self::TraceContext,
                        "baggage" => Self::Baggage,
                        _ => return None,
                    };
                    if !propagators.contains(&propagator) {
                        propagators.push(propagator);
                    }
                }
                Some(propagators)
            },
        )?;
        Ok(propagators.unwrap_or_else(|| vec![Self::TraceContext, Self::Baggage]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::otel::tests::traces;

    #[test]
    fn propagators_are_a_deduplicated_list_or_none() {
        let propagators =
            |value| traces(&[("OTEL_PROPAGATORS", value)]).map(|traces| traces.propagators);
        assert_eq!(
            propagators("baggage, TraceContext,baggage"),
            Ok(vec![
                PropagatorConfig::Baggage,
                PropagatorConfig::TraceContext
            ])
        );
        assert_eq!(propagators("none"), Ok(Vec::new()));
        for bad in [
            "jaeger",
            "xray",
            "tracecontext,none",
            "tracecontext,,baggage",
        ] {
            let error = propagators(bad).unwrap_err().to_string();
            assert!(
                error.contains("OTEL_PROPAGATORS") && error.contains("tracecontext and baggage"),
                "{bad}: {error}"
            );
        }
        for b3 in ["b3", "tracecontext,B3MULTI"] {
            let error = propagators(b3).unwrap_err().to_string();
            assert!(
                error.contains("OTEL_PROPAGATORS") && error.contains("deprecated"),
                "{b3}: {error}"
            );
        }
    }
}
