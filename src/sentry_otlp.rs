//! `somework sentry-otlp-env DSN`: the settings that
//! `helm/otel-collector/pipelines/sentry-otlp.yaml` reads, derived from a Sentry DSN and
//! printed as shell `export` lines (`scripts/sentry-otlp-env.sh` runs it):
//!
//! ```sh
//! eval "$(somework sentry-otlp-env "$SENTRY_DSN")"
//! ```
//!
//! A DSN is `{scheme}://{public_key}@{host}[:{port}][/{path}]/{project_id}`;
//! it is read as the service reads `SENTRY_DSN` ([`crate::config::parse_dsn`]).
//! The project's OTLP traces endpoint is
//! `{scheme}://{host}[:{port}][/{path}]/api/{project_id}/integration/otlp/v1/traces/`,
//! its logs endpoint the same with `v1/logs/`, both next to the SDK's own
//! envelope endpoint, and both authenticate with the header
//! `x-sentry-auth: sentry sentry_key={public_key}`. The port and path are
//! kept, so a self-hosted Sentry on another port works too.

use std::process::ExitCode;

use sentry::types::Dsn;
use url::Url;

use crate::config::{DSN_FORM, parse_dsn};

/// Print the collector's Sentry OTLP settings for a DSN, as shell exports.
#[derive(Debug, clap::Args)]
pub struct SentryOtlpArgs {
    /// The project's DSN, e.g. https://abc123@o1.ingest.sentry.io/4505.
    #[arg(value_parser = parse_otlp_dsn)]
    pub dsn: Dsn,
}

#[derive(Debug, thiserror::Error)]
pub enum DsnError {
    #[error("not {DSN_FORM}")]
    NotADsn,
    #[error("the project id {0:?} is not a number, as Sentry's are")]
    ProjectId(String),
}

/// A DSN whose project has OTLP endpoints: any DSN the service accepts,
/// with Sentry's numeric project id.
fn parse_otlp_dsn(value: &str) -> Result<Dsn, DsnError> {
    let dsn = parse_dsn(value).ok_or(DsnError::NotADsn)?;
    let project = dsn.project_id().value();
    if project.is_empty() || !project.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(DsnError::ProjectId(project.to_owned()));
    }
    Ok(dsn)
}

/// What `helm/otel-collector/pipelines/sentry-otlp.yaml` reads from its environment.
#[derive(Debug, PartialEq, Eq)]
pub struct SentryOtlp {
    pub traces_url: Url,
    pub logs_url: Url,
    pub public_key: String,
}

impl SentryOtlp {
    pub fn from_dsn(dsn: &Dsn) -> Result<Self, url::ParseError> {
        // `.../api/{project_id}/envelope/`, built by the SDK from the DSN's
        // scheme, host, port and path; the OTLP endpoints are its siblings.
        let envelope = dsn.envelope_api_url();
        Ok(Self {
            traces_url: envelope.join("../integration/otlp/v1/traces/")?,
            logs_url: envelope.join("../integration/otlp/v1/logs/")?,
            public_key: dsn.public_key().to_owned(),
        })
    }

    /// `export NAME='value'` lines, for `eval`.
    pub fn exports(&self) -> String {
        [
            ("SENTRY_OTLP_TRACES_URL", self.traces_url.as_str()),
            ("SENTRY_OTLP_LOGS_URL", self.logs_url.as_str()),
            ("SENTRY_PUBLIC_KEY", self.public_key.as_str()),
        ]
        .iter()
        .map(|(name, value)| format!("export {name}={}\n", single_quoted(value)))
        .collect()
    }
}

/// `value` as one shell word: in single quotes, each `'` closed, escaped
/// and reopened.
fn single_quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

pub fn run(args: &SentryOtlpArgs) -> ExitCode {
    match SentryOtlp::from_dsn(&args.dsn) {
        Ok(settings) => {
            print!("{}", settings.exports());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "somework sentry-otlp-env: no OTLP endpoint for {}: {error}",
                args.dsn
            );
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exports(dsn: &str) -> Result<String, String> {
        let dsn = parse_otlp_dsn(dsn).map_err(|error| error.to_string())?;
        Ok(SentryOtlp::from_dsn(&dsn).expect("OTLP URLs").exports())
    }

    #[test]
    fn the_endpoints_sit_beside_the_envelope_endpoint() {
        assert_eq!(
            exports("https://abc123@o1.ingest.sentry.io/4505").as_deref(),
            Ok(
                "export SENTRY_OTLP_TRACES_URL='https://o1.ingest.sentry.io/api/4505/integration/otlp/v1/traces/'\n\
                export SENTRY_OTLP_LOGS_URL='https://o1.ingest.sentry.io/api/4505/integration/otlp/v1/logs/'\n\
                export SENTRY_PUBLIC_KEY='abc123'\n"
            )
        );
        // Legacy secret key, self-hosted port and path prefix, trailing slash.
        let self_hosted = exports("http://pub:sec@127.0.0.1:9000/sentry/42/").expect("a DSN");
        assert!(
            self_hosted.starts_with(
                "export SENTRY_OTLP_TRACES_URL='http://127.0.0.1:9000/sentry/api/42/integration/otlp/v1/traces/'\n"
            ),
            "{self_hosted}"
        );
        assert!(
            self_hosted.ends_with("export SENTRY_PUBLIC_KEY='pub'\n"),
            "{self_hosted}"
        );
    }

    #[test]
    fn what_is_not_a_dsn_with_a_project_is_refused() {
        for bad in [
            "https://host/42",
            "https://key@host/",
            "ftp://key@host/42",
            "https://key@host/42'; rm -rf ~",
            "https://key@host/project",
        ] {
            assert!(exports(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_quote_cannot_end_the_word() {
        assert_eq!(single_quoted("a'b"), r"'a'\''b'");
    }
}
