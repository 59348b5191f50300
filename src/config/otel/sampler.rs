//! `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`: which traces are kept.

use crate::config::env::{ConfigError, Env, parse_probability};

const DEFAULT_SAMPLING_RATIO: f64 = 0.2;

/// The samplers of the SDK specification that this service supports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerConfig {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

impl SamplerConfig {
    pub(super) fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        const SAMPLERS: &str = "one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio";
        let name = env
            .get("OTEL_TRACES_SAMPLER")
            .unwrap_or_else(|| "parentbased_traceidratio".to_owned());
        // Validated even for samplers that ignore it: a bad ratio is a mistake
        // waiting to matter the day the sampler is switched.
        let ratio = env.parse_or(
            "OTEL_TRACES_SAMPLER_ARG",
            "a sampling ratio between 0 and 1",
            DEFAULT_SAMPLING_RATIO,
            parse_probability,
        )?;
        Ok(match name.as_str() {
            "always_on" => SamplerConfig::AlwaysOn,
            "always_off" => SamplerConfig::AlwaysOff,
            "traceidratio" => SamplerConfig::TraceIdRatio(ratio),
            "parentbased_always_on" => SamplerConfig::ParentBasedAlwaysOn,
            "parentbased_always_off" => SamplerConfig::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => SamplerConfig::ParentBasedTraceIdRatio(ratio),
            _ => {
                return Err(ConfigError::Invalid {
                    var: "OTEL_TRACES_SAMPLER",
                    value: name,
                    expected: SAMPLERS,
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::otel::tests::traces;

    #[test]
    fn every_spec_sampler_is_understood() {
        for (name, expected) in [
            ("always_on", SamplerConfig::AlwaysOn),
            ("always_off", SamplerConfig::AlwaysOff),
            ("traceidratio", SamplerConfig::TraceIdRatio(0.5)),
            ("parentbased_always_on", SamplerConfig::ParentBasedAlwaysOn),
            (
                "parentbased_always_off",
                SamplerConfig::ParentBasedAlwaysOff,
            ),
            (
                "parentbased_traceidratio",
                SamplerConfig::ParentBasedTraceIdRatio(0.5),
            ),
        ] {
            let sampler = traces(&[
                ("OTEL_TRACES_SAMPLER", name),
                ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ])
            .expect("valid")
            .sampler;
            assert_eq!(sampler, expected, "{name}");
        }
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_form() {
        let error = traces(&[("OTEL_TRACES_SAMPLER_ARG", "1.5")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid OTEL_TRACES_SAMPLER_ARG=\"1.5\": expected a sampling ratio between 0 and 1"
        );
    }
}
