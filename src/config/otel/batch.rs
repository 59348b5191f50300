//! The batch span and log record processors: `OTEL_BSP_*` and `OTEL_BLRP_*`.

use std::time::Duration;

use crate::config::env::{ConfigError, Env, parse_millis, parse_positive};

/// The settings of a batch processor: `OTEL_BSP_*` for spans, `OTEL_BLRP_*`
/// for log records, defaulting to the specification's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    pub scheduled_delay: Duration,
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
}

/// The names of one batch processor's variables, and its defaults.
pub(super) struct BatchVars {
    schedule_delay: &'static str,
    max_queue_size: &'static str,
    max_export_batch_size: &'static str,
    defaults: BatchConfig,
}

/// The batch span processor.
pub(super) const BSP: BatchVars = BatchVars {
    schedule_delay: "OTEL_BSP_SCHEDULE_DELAY",
    max_queue_size: "OTEL_BSP_MAX_QUEUE_SIZE",
    max_export_batch_size: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    defaults: BatchConfig {
        scheduled_delay: Duration::from_millis(5000),
        max_queue_size: 2048,
        max_export_batch_size: 512,
    },
};

/// The batch log record processor: the same defaults but a 1 s delay.
pub(super) const BLRP: BatchVars = BatchVars {
    schedule_delay: "OTEL_BLRP_SCHEDULE_DELAY",
    max_queue_size: "OTEL_BLRP_MAX_QUEUE_SIZE",
    max_export_batch_size: "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
    defaults: BatchConfig {
        scheduled_delay: Duration::from_millis(1000),
        max_queue_size: 2048,
        max_export_batch_size: 512,
    },
};

impl BatchConfig {
    pub(super) fn from_env(env: &Env<'_>, vars: &BatchVars) -> Result<Self, ConfigError> {
        let defaults = vars.defaults;
        let max_queue_size = env.parse_or(
            vars.max_queue_size,
            "a positive whole number",
            defaults.max_queue_size,
            parse_positive,
        )?;
        let max_export_batch_size = match env.parse_opt(
            vars.max_export_batch_size,
            "a positive whole number",
            parse_positive,
        )? {
            // The SDK would silently shrink an explicit batch; say so instead.
            Some(batch) if batch > max_queue_size => {
                return Err(ConfigError::Inconsistent {
                    var: vars.max_export_batch_size,
                    value: batch.to_string(),
                    reason: format!("must not exceed {} ({max_queue_size})", vars.max_queue_size),
                });
            }
            Some(batch) => batch,
            // A small queue alone is fine: the default batch shrinks to fit.
            None => defaults.max_export_batch_size.min(max_queue_size),
        };
        Ok(BatchConfig {
            scheduled_delay: env.parse_or(
                vars.schedule_delay,
                "a whole number of milliseconds",
                defaults.scheduled_delay,
                parse_millis,
            )?,
            max_queue_size,
            max_export_batch_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::otel::tests::{logs, traces};

    #[test]
    fn the_log_batch_variables_are_validated_like_the_span_ones() {
        let batch = logs(&[
            ("OTEL_BLRP_SCHEDULE_DELAY", "250"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "100"),
        ])
        .expect("valid")
        .batch;
        assert_eq!(
            batch,
            BatchConfig {
                scheduled_delay: Duration::from_millis(250),
                max_queue_size: 100,
                max_export_batch_size: 100,
            }
        );
        assert_eq!(
            logs(&[("OTEL_BLRP_MAX_QUEUE_SIZE", "10")])
                .expect("valid")
                .batch
                .max_export_batch_size,
            10,
            "a small queue alone shrinks the default batch"
        );
        // The span processor's variables do not touch the log processor.
        assert_eq!(
            logs(&[("OTEL_BSP_MAX_QUEUE_SIZE", "10")])
                .expect("valid")
                .batch,
            logs(&[]).expect("valid").batch
        );
        for (var, value, expected) in [
            (
                "OTEL_BLRP_SCHEDULE_DELAY",
                "1s",
                "invalid OTEL_BLRP_SCHEDULE_DELAY=\"1s\": expected a whole number of milliseconds",
            ),
            (
                "OTEL_BLRP_MAX_QUEUE_SIZE",
                "0",
                "invalid OTEL_BLRP_MAX_QUEUE_SIZE=\"0\": expected a positive whole number",
            ),
            (
                "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
                "-1",
                "invalid OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=\"-1\": expected a positive whole number",
            ),
        ] {
            let error = logs(&[(var, value)]).unwrap_err().to_string();
            assert_eq!(error, expected);
        }
        let error = logs(&[
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "101"),
        ])
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=101: must not exceed OTEL_BLRP_MAX_QUEUE_SIZE (100)"
        );
    }

    #[test]
    fn the_export_batch_may_equal_the_queue_but_not_exceed_it() {
        let batch = |queue, export| {
            traces(&[
                ("OTEL_BSP_MAX_QUEUE_SIZE", queue),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", export),
            ])
            .map(|traces| traces.batch)
        };
        let equal = batch("100", "100").expect("a batch as large as the queue");
        assert_eq!(
            (equal.max_queue_size, equal.max_export_batch_size),
            (100, 100)
        );
        let error = batch("100", "101").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid OTEL_BSP_MAX_EXPORT_BATCH_SIZE=101: must not exceed OTEL_BSP_MAX_QUEUE_SIZE (100)"
        );
    }

    #[test]
    fn a_small_queue_alone_shrinks_the_default_batch() {
        // Found by `cargo fuzz run config`: the error used to blame
        // OTEL_BSP_MAX_EXPORT_BATCH_SIZE, which the operator never set.
        let batch = traces(&[("OTEL_BSP_MAX_QUEUE_SIZE", "100")])
            .expect("valid")
            .batch;
        assert_eq!(batch.max_queue_size, 100);
        assert_eq!(batch.max_export_batch_size, 100);
        let error = traces(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "200"),
        ])
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid OTEL_BSP_MAX_EXPORT_BATCH_SIZE=200"),
            "{error}"
        );
    }
}
