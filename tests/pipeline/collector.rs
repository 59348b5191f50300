//! The real collector (built with ocb) running the pipelines of `helm/otel-collector/pipelines/`,
//! between the real `somework` binary and a Sentry test double.
//!
//! Each test starts its own collector on ports reserved for it (see
//! `somework_testkit::collector`), so the tests run in parallel. Here: the
//! configs validate, the service rides out collector restarts, `local.yaml`
//! prints every span, and the build script's message without Go; each
//! exporter setup has a file of its own below `collector/`.

mod sentry_exporter;
mod sentry_otlp;
mod tail_sampling;

use std::time::Duration;

use somework_testkit::collector::{self, CollectorBuilder};
use somework_testkit::sentry_double::SentryDouble;
use somework_testkit::tools;

use crate::helpers::{
    PROJECT, WAIT, assert_delivered, request, service, span_names, spawn_collector_app,
};

#[test]
fn every_config_validates() {
    let Some(binary) = collector::binary() else {
        return;
    };
    // SENTRY_URL is left out: the configs default it to https://sentry.io.
    let sentry = [
        ("SENTRY_ORG", "my-org"),
        ("SENTRY_AUTH_TOKEN", "sntrys_token"),
        ("SENTRY_PROJECT", "somework"),
    ];
    let otlp = [
        (
            "SENTRY_OTLP_TRACES_URL",
            "https://o1.ingest.sentry.io/api/4505/integration/otlp/v1/traces/",
        ),
        (
            "SENTRY_OTLP_LOGS_URL",
            "https://o1.ingest.sentry.io/api/4505/integration/otlp/v1/logs/",
        ),
        ("SENTRY_PUBLIC_KEY", "abc123"),
    ];
    for (config, env) in [
        ("sentry", &sentry[..]),
        ("tail-sampling", &sentry[..]),
        ("sentry-otlp", &otlp[..]),
        ("local", &[][..]),
        ("zero-account", &[][..]),
    ] {
        let output = collector::validate(&binary, &collector::config(config), env);
        assert!(
            output.status.success(),
            "{config} does not validate: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn validate_rejects_a_sentry_config_without_its_settings() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let output = collector::validate(
        &binary,
        &collector::config("sentry"),
        &[
            ("SENTRY_AUTH_TOKEN", "token"),
            ("SENTRY_PROJECT", "somework"),
        ],
    );
    assert!(!output.status.success(), "validated without SENTRY_ORG");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("org_slug"), "unexpected error: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_survives_collector_restarts_and_reconnects() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let double = SentryDouble::builder().project(PROJECT).start().await;
    let mut app = spawn_collector_app(&binary, "sentry", double).await;
    let project = app.double.project(PROJECT);

    let (_, before) = app.call("/somework").await;
    let wanted = [(before, "/somework")];
    let spans = app.delivered(&wanted).await;
    assert_delivered(&spans, &wanted, project.id, &project.public_key);

    // A rollout (SIGTERM), then a crash (SIGKILL). While the collector is down the
    // service keeps answering, promptly, and only its exports fail.
    for crash in [false, true] {
        if crash {
            app.collector.kill().await;
        } else {
            app.collector.stop().await;
        }
        for _ in 0..5 {
            let started = std::time::Instant::now();
            let (status, _) = app.call("/somework").await;
            assert_eq!(status, 200);
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "the service stalled without its collector: {:?}",
                started.elapsed()
            );
        }

        app.collector.start_again().await;
        let mut after = Vec::new();
        for route in ["/somework", "/errorwork", "/somework"] {
            let (_, trace_id) = app.call(route).await;
            after.push((trace_id, route));
        }
        let spans = app.delivered(&after).await;
        assert_delivered(&spans, &after, project.id, &project.public_key);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_config_prints_every_span() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let collector = CollectorBuilder::new(&binary, "local")
        .set("processors.batch.timeout", "200ms")
        .start()
        .await;
    let service = service(&collector, "somework").await;
    let (_, trace_id) = request(&service, "/somework").await;

    let printed = collector
        .wait_for_logs(WAIT, |lines| {
            let logs = lines.join("\n");
            logs.contains(&trace_id)
                && span_names("/somework")
                    .iter()
                    .all(|name| logs.contains(&format!("Name           : {name}\n")))
        })
        .await
        .join("\n");
    assert!(
        printed.contains(&format!("Trace ID       : {trace_id}")),
        "{printed}"
    );
    for name in span_names("/somework") {
        assert!(
            printed.contains(&format!("Name           : {name}\n")),
            "{name} not printed"
        );
    }
}

#[test]
fn the_build_script_fails_clearly_without_go() {
    // A PATH with only what the script needs before it looks for Go.
    let bin = std::env::temp_dir().join(format!("somework-no-go-{}", std::process::id()));
    std::fs::create_dir_all(&bin).expect("cannot create a temporary directory");
    let dirname = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("dirname"))
        .find(|path| path.exists())
        .expect("dirname is on PATH");
    let link = bin.join("dirname");
    if !link.exists() {
        std::os::unix::fs::symlink(dirname, &link).expect("cannot link dirname");
    }
    let output = std::process::Command::new("/bin/bash")
        .arg(tools::repo_root().join("scripts/build-collector.sh"))
        .env_clear()
        .env("PATH", &bin)
        .env("HOME", &bin)
        .env("SOMEWORK_TOOLS_DIR", bin.join("tools"))
        .output()
        .expect("cannot run bash");
    let installed_anything = bin.join("tools").exists();
    std::fs::remove_dir_all(&bin).expect("cannot remove the temporary directory");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("go is not installed") && stderr.contains("Install Go"),
        "unclear message: {stderr}"
    );
    assert!(!installed_anything, "nothing may be installed without Go");
}
