//! Credentials reach containers only through secretKeyRefs, and values given
//! as credentials live in a Secret and nowhere else.

use somework_testkit::helm::Rendered;

use crate::helpers::{Charts, env_of, given, sentinels};

/// Env var names that carry credentials.
fn is_credential(name: &str) -> bool {
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "DSN",
        "SUPERUSER",
        "PUBLIC_KEY",
        "OTLP_TRACES_URL",
        "OTLP_LOGS_URL",
        "SENTRY_ORG",
        "SENTRY_PROJECT",
    ]
    .iter()
    .any(|marker| name.contains(marker))
}

#[test]
fn credentials_reach_containers_only_through_secret_key_refs() {
    let Some(charts) = Charts::find() else { return };
    let sentinels = sentinels();
    assert_eq!(
        sentinels.len(),
        7,
        "credential values in ci/: {sentinels:?}"
    );
    let mut secret_refs = 0;
    for set in charts.value_sets() {
        let (label, release) = (set.label(), set.release());
        let yaml = charts
            .template(&release)
            .unwrap_or_else(|e| panic!("helm template {label}: {e}"));
        let rendered = Rendered::parse(&yaml);
        for (owner, spec) in rendered.pod_specs() {
            let containers = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten());
            for container in containers {
                assert!(
                    container.env_from.is_none(),
                    "{label} {owner}: envFrom hides what is injected"
                );
                for env in container.env.iter().flatten() {
                    if let Some(value) = &env.value {
                        for sentinel in &sentinels {
                            assert!(
                                !value.contains(sentinel),
                                "{label} {owner}: {} holds a credential literally",
                                env.name
                            );
                        }
                    }
                    if is_credential(&env.name) {
                        let secret_ref = env
                            .value_from
                            .as_ref()
                            .and_then(|v| v.secret_key_ref.as_ref())
                            .unwrap_or_else(|| {
                                panic!(
                                    "{label} {owner}: {} must come from a secretKeyRef",
                                    env.name
                                )
                            });
                        assert_eq!(secret_ref.key, env.name, "{label} {owner}");
                        secret_refs += 1;
                    }
                }
            }
        }
        // Credentials given as values live in a Secret, and only there.
        for object in &rendered.objects {
            let text = serde_json::to_string(object).unwrap_or_default();
            let in_secret = object["kind"] == "Secret";
            for sentinel in &sentinels {
                if text.contains(sentinel) {
                    assert!(in_secret, "{label}: {} holds {sentinel}", object["kind"]);
                }
            }
        }
    }
    assert!(secret_refs >= 20, "only {secret_refs} secretKeyRefs seen");

    // The values given end up in the chart-made Secrets.
    let collector = charts.render("otel-collector/sentry-credentials");
    let secret = collector.string_data("Secret", "otel-collector-sentry");
    let label = "otel-collector/sentry-credentials";
    assert_eq!(
        secret["SENTRY_AUTH_TOKEN"],
        given(label, "/sentry/authToken")
    );
    assert_eq!(secret["SENTRY_ORG"], given(label, "/sentry/org"));
    assert_eq!(secret["SENTRY_PROJECT"], given(label, "/sentry/project"));
    let somework = charts.render("somework/dsn");
    assert_eq!(
        somework.string_data("Secret", "somework-sentry")["SENTRY_DSN"],
        given("somework/dsn", "/sentry/dsn")
    );
    // With an existing Secret the charts create none and read the user's.
    for label in [
        "otel-collector/sentry-existing-secret",
        "somework/existing-secret",
        "demo-backends/existing-secret",
    ] {
        let rendered = charts.render_release(&charts.release(label));
        assert_eq!(
            rendered.of_kind("Secret").count(),
            0,
            "{label} must not create a Secret"
        );
    }
    let container = charts.container("somework/existing-secret", "somework-frontend");
    let dsn_ref = env_of(&container, "SENTRY_DSN")
        .and_then(|e| e.value_from.clone())
        .and_then(|v| v.secret_key_ref)
        .map(|r| r.name);
    assert_eq!(dsn_ref.as_deref(), Some("somework-sentry-dsn"));
}
