//! Every pod is hardened (non-root, read-only root, no capabilities, memory
//! limits, seccomp) and probed, and shutdown fits in the grace period.

use somework_testkit::helm::k8s_openapi::api::core::v1::Probe;
use somework_testkit::helm::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::helpers::{Charts, deployment_container, only_container};

#[test]
fn pods_are_hardened_and_probed() {
    let Some(charts) = Charts::find() else { return };
    let mut pods = 0;
    for set in charts.value_sets() {
        let (label, release) = (set.label(), set.release());
        let rendered = charts.render_release(&release);
        for (owner, spec) in rendered.pod_specs() {
            pods += 1;
            let pod = spec.security_context.clone().unwrap_or_default();
            assert_eq!(pod.run_as_non_root, Some(true), "{label} {owner}");
            assert!(
                pod.run_as_user.is_some_and(|uid| uid > 0),
                "{label} {owner}: numeric non-root UID"
            );
            assert_eq!(
                pod.seccomp_profile.map(|p| p.type_),
                Some("RuntimeDefault".to_owned()),
                "{label} {owner}"
            );
            assert_eq!(
                spec.automount_service_account_token,
                Some(false),
                "{label} {owner}"
            );
            let is_test_pod = owner.starts_with("Pod/");
            let init = spec.init_containers.iter().flatten();
            for container in spec.containers.iter().chain(init) {
                let at = format!("{label} {owner} container {}", container.name);
                let sc = container.security_context.clone().unwrap_or_default();
                assert_eq!(sc.allow_privilege_escalation, Some(false), "{at}");
                assert_eq!(sc.read_only_root_filesystem, Some(true), "{at}");
                assert_eq!(
                    sc.capabilities.and_then(|c| c.drop),
                    Some(vec!["ALL".to_owned()]),
                    "{at}"
                );
                let limits = container
                    .resources
                    .as_ref()
                    .and_then(|r| r.limits.clone())
                    .unwrap_or_default();
                assert!(limits.contains_key("memory"), "{at}: no memory limit");
            }
            if !is_test_pod {
                // Whatever serves a port is probed; the load generator
                // serves nothing and has no port.
                for container in spec.containers.iter().filter(|c| c.ports.is_some()) {
                    let at = format!("{label} {owner} container {}", container.name);
                    assert!(
                        container.readiness_probe.is_some(),
                        "{at}: no readiness probe"
                    );
                    assert!(
                        container.liveness_probe.is_some(),
                        "{at}: no liveness probe"
                    );
                }
            }
        }
    }
    assert!(pods >= 20, "only {pods} pod specs checked");

    // The service's probes hit its health endpoints.
    let somework = charts.render("somework/defaults");
    for name in ["somework-frontend", "somework-backend"] {
        let c = deployment_container(&somework, name);
        let path = |p: &Option<Probe>| {
            p.as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.clone())
        };
        assert_eq!(
            path(&c.readiness_probe).as_deref(),
            Some("/readyz"),
            "{name}"
        );
        assert_eq!(
            path(&c.liveness_probe).as_deref(),
            Some("/healthz"),
            "{name}"
        );
    }
    // The collector's probes hit the health_check extension.
    let collector = charts.container("otel-collector/defaults", "otel-collector");
    let port = collector
        .readiness_probe
        .and_then(|p| p.http_get)
        .map(|h| h.port);
    assert_eq!(port, Some(IntOrString::String("health".to_owned())));
    let health_port = collector
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("health"));
    assert_eq!(health_port.map(|p| p.container_port), Some(13133));
}

#[test]
fn shutdown_fits_in_the_grace_period() {
    let Some(charts) = Charts::find() else { return };
    let rendered = charts.render("somework/defaults");
    for name in ["somework-frontend", "somework-backend"] {
        let spec = rendered.deployment_pod_spec(name);
        let sleep = only_container(&spec)
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| {
                assert!(
                    h.exec.is_none(),
                    "the distroless image has no shell for an exec hook"
                );
                h.sleep.as_ref()
            })
            .map(|s| s.seconds)
            .unwrap_or_else(|| panic!("{name}: no preStop sleep"));
        let grace = spec.termination_grace_period_seconds.unwrap_or(30);
        // preStop sleep, then SIGTERM: the service flushes within ~10 s.
        assert!(sleep >= 1, "{name}: endpoints need time to drain");
        assert!(
            grace >= sleep + 10 + 5,
            "{name}: grace {grace}s < sleep {sleep}s + 10s flush + margin"
        );
    }
}
