//! `sentry-otlp.yaml`: every span and log record to the OTLP endpoint of
//! the one project a DSN names, with the settings that
//! `scripts/sentry-otlp-env.sh` derives from the DSN.

use std::collections::BTreeMap;

use somework_testkit::collector::{self, CollectorBuilder};
use somework_testkit::sentry_double::SentryDouble;
use somework_testkit::tools;

use crate::helpers::{PROJECT, WAIT, assert_delivered, complete, request, service};

#[test]
fn the_dsn_script_prints_the_otlp_settings() {
    let script = tools::repo_root().join("scripts/sentry-otlp-env.sh");
    let run = |args: &[&str]| {
        std::process::Command::new("bash")
            .arg(&script)
            .args(args)
            .env("SOMEWORK_BIN", env!("CARGO_BIN_EXE_somework"))
            .output()
            .expect("cannot run bash")
    };
    for (dsn, otlp, key) in [
        (
            "https://abc123@o1.ingest.sentry.io/4505",
            "https://o1.ingest.sentry.io/api/4505/integration/otlp",
            "abc123",
        ),
        // Legacy secret key, self-hosted port and path prefix, trailing slash.
        (
            "http://pub:sec@127.0.0.1:9000/sentry/42/",
            "http://127.0.0.1:9000/sentry/api/42/integration/otlp",
            "pub",
        ),
    ] {
        let output = run(&[dsn]);
        assert!(output.status.success(), "{dsn}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!(
                "export SENTRY_OTLP_TRACES_URL='{otlp}/v1/traces/'\n\
                 export SENTRY_OTLP_LOGS_URL='{otlp}/v1/logs/'\n\
                 export SENTRY_PUBLIC_KEY='{key}'\n"
            ),
            "{dsn}"
        );
    }
    for bad in [
        &["https://host/42"][..],
        &["https://key@host/"],
        &["ftp://key@host/42"],
        &["https://key@host/42'; rm -rf ~"],
        &[],
        &["https://a@b/1", "extra"],
    ] {
        let output = run(bad);
        assert_eq!(output.status.code(), Some(2), "{bad:?} must be rejected");
        assert!(output.stdout.is_empty(), "{bad:?} printed {output:?}");
    }
}

/// Parses the script's `export NAME='value'` lines.
fn exports(stdout: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.strip_prefix("export ")?.split_once('=')?;
            Some((name.to_owned(), value.trim_matches('\'').to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sentry_otlp_config_sends_every_span_to_the_dsn_project() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let double = SentryDouble::builder()
        .project("other")
        .project(PROJECT)
        .start()
        .await;
    // The DSN the user copies from Sentry, turned into the config's settings by the script.
    let output = std::process::Command::new("bash")
        .arg(tools::repo_root().join("scripts/sentry-otlp-env.sh"))
        .arg(double.dsn(PROJECT))
        .env("SOMEWORK_BIN", env!("CARGO_BIN_EXE_somework"))
        .output()
        .expect("cannot run bash");
    assert!(output.status.success(), "{output:?}");
    let mut builder =
        CollectorBuilder::new(&binary, "sentry-otlp").set("processors.batch.timeout", "200ms");
    for (name, value) in exports(&output.stdout) {
        builder = builder.env(&name, value);
    }
    let collector = builder.start().await;
    // Routing does not depend on the service name here.
    let service = service(&collector, "any-service-name").await;

    let mut wanted = Vec::new();
    for route in ["/somework", "/errorwork", "/somework", "/errorwork"] {
        let (_, trace_id) = request(&service, route).await;
        wanted.push((trace_id, route));
    }
    let spans = double
        .wait_for(WAIT, |spans| complete(spans, &wanted))
        .await;

    let project = double.project(PROJECT);
    assert_delivered(&spans, &wanted, project.id, &project.public_key);
    // Each request's log line, at the project's logs endpoint with its key.
    let logs = double
        .wait_for_logs(WAIT, |logs| {
            wanted.iter().all(|(trace_id, _)| {
                logs.iter()
                    .any(|l| l.log.trace_id() == *trace_id && l.log.body() == "request")
            })
        })
        .await;
    for (trace_id, route) in &wanted {
        let line = logs
            .iter()
            .find(|l| l.log.trace_id() == *trace_id && l.log.body() == "request")
            .unwrap_or_else(|| panic!("no request line of {route} {trace_id}"));
        assert_eq!(
            (line.project_id, line.sentry_key.as_str()),
            (project.id, project.public_key.as_str())
        );
    }
    let requests = double.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert!(
            r.is_ingest() || r.is_logs_ingest(),
            "unexpected request (no management API here): {r:?}"
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("authorization"), None);
    }
}
