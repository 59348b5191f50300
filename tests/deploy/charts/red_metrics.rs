//! RED metrics in the otel-collector chart: every pipeline derives them from
//! all the spans (before any sampler) and serves them on 8889, which the
//! chart exposes on the pod and the Service, announces to Prometheus (scrape
//! annotations or an optional ServiceMonitor) and admits through its
//! NetworkPolicy.

use std::collections::BTreeMap;

use serde_json::Value;
use somework_testkit::helm::Rendered;
use somework_testkit::helm::k8s_openapi::api::core::v1::Service;
use somework_testkit::helm::k8s_openapi::api::networking::v1::NetworkPolicy;

use crate::helpers::{Charts, collector_config, deployment_container, pipelines};

/// The port of the RED metrics, as the chart exposes it.
const RED_PORT: i32 = 8889;

fn service_ports(rendered: &Rendered) -> BTreeMap<String, (i32, String)> {
    let service: Service = rendered.get("Service", "otel-collector");
    service
        .spec
        .and_then(|spec| spec.ports)
        .unwrap_or_default()
        .into_iter()
        .map(|port| {
            let target = match port.target_port {
                Some(target) => serde_json::to_value(target)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                None => String::new(),
            };
            (port.name.unwrap_or_default(), (port.port, target))
        })
        .collect()
}

fn pod_annotations(rendered: &Rendered) -> BTreeMap<String, String> {
    let deployment = rendered
        .find("Deployment", "otel-collector")
        .unwrap_or_else(|| panic!("no collector Deployment in {:?}", rendered.names()));
    serde_json::from_value(deployment["spec"]["template"]["metadata"]["annotations"].clone())
        .unwrap_or_default()
}

#[test]
fn every_pipeline_counts_all_spans_and_serves_red_on_its_own_port() {
    let Some(charts) = Charts::find() else { return };
    for pipeline in pipelines() {
        let rendered = charts.render_release(
            &charts
                .release("otel-collector/sentry-existing-secret")
                .set(&format!("pipeline={pipeline}")),
        );
        let config = collector_config(&rendered, "otel-collector");
        let at = format!("pipeline {pipeline}");
        let endpoint = config["exporters"]["prometheus"]["endpoint"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(endpoint, format!("0.0.0.0:{RED_PORT}"), "{at}");
        let connector = &config["connectors"]["span_metrics"];
        // The names Jaeger's Monitor tab queries.
        assert_eq!(connector["namespace"], "traces.span.metrics", "{at}");
        assert_eq!(connector["histogram"]["unit"], "ms", "{at}");
        assert_eq!(
            connector["exemplars"],
            Value::Null,
            "{at}: exemplars stay off"
        );
        let dimensions: Vec<&str> = connector["dimensions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["name"].as_str())
            .collect();
        assert_eq!(
            dimensions,
            ["http.route", "http.response.status_code"],
            "{at}: bounded dimensions only"
        );

        let pipelines = config["service"]["pipelines"]
            .as_object()
            .unwrap_or_else(|| panic!("{at}: no pipelines"));
        let red = &pipelines["metrics/red"];
        assert_eq!(
            red["receivers"],
            serde_json::json!(["span_metrics"]),
            "{at}"
        );
        assert_eq!(red["exporters"], serde_json::json!(["prometheus"]), "{at}");
        // Fed by a traces pipeline that takes every span from the receiver,
        // with no sampler in between.
        let feeding: Vec<(&String, &Value)> = pipelines
            .iter()
            .filter(|(name, p)| {
                name.starts_with("traces")
                    && p["exporters"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|e| e == "span_metrics"))
            })
            .collect();
        assert_eq!(feeding.len(), 1, "{at}: {feeding:?}");
        let (name, feeder) = feeding[0];
        assert_eq!(
            feeder["receivers"],
            serde_json::json!(["otlp"]),
            "{at} {name}"
        );
        assert!(
            feeder["processors"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|p| p != "tail_sampling"),
            "{at}: {name} samples before span_metrics"
        );
    }
}

#[test]
fn the_red_port_is_on_the_pod_and_the_service_with_scrape_annotations() {
    let Some(charts) = Charts::find() else { return };
    let rendered = charts.render("otel-collector/defaults");
    let ports = service_ports(&rendered);
    assert_eq!(
        ports["metrics-red"],
        (RED_PORT, "metrics-red".to_owned()),
        "{ports:?}"
    );
    assert_eq!(ports["metrics"].0, 8888, "the collector's own metrics stay");
    let container = deployment_container(&rendered, "otel-collector");
    let container_ports: BTreeMap<String, i32> = container
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
        .collect();
    assert_eq!(container_ports["metrics-red"], RED_PORT);

    let annotations = pod_annotations(&rendered);
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], RED_PORT.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert!(rendered.find("ServiceMonitor", "otel-collector").is_none());

    let notes = charts.notes("otel-collector/defaults");
    assert!(
        notes.contains("port-forward service/otel-collector 8889:8889")
            && notes.contains("traces_span_metrics_calls_total"),
        "{notes}"
    );
}

#[test]
fn a_service_monitor_is_rendered_only_when_enabled_and_scrapes_both_ports() {
    let Some(charts) = Charts::find() else { return };
    for set in charts.value_sets() {
        let label = set.label();
        if !label.starts_with("otel-collector/") || label == "otel-collector/service-monitor" {
            continue;
        }
        let rendered = charts.render_release(&set.release());
        assert!(
            rendered.of_kind("ServiceMonitor").next().is_none(),
            "{label} renders a ServiceMonitor without asking for one"
        );
    }

    let rendered = charts.render("otel-collector/service-monitor");
    let monitor = rendered
        .find("ServiceMonitor", "otel-collector")
        .unwrap_or_else(|| panic!("no ServiceMonitor in {:?}", rendered.names()));
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        monitor["metadata"]["labels"]["release"], "kube-prometheus-stack",
        "the labels the operator's selector matches"
    );
    // It selects the collector's Service and names its ports.
    let service = rendered
        .find("Service", "otel-collector")
        .unwrap_or_else(|| panic!("no Service"));
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap_or_else(|| panic!("no selector: {monitor}"));
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(&service["metadata"]["labels"][key], value, "label {key}");
    }
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        serde_json::json!([service["metadata"]["namespace"]])
    );
    let ports = service_ports(&rendered);
    let endpoints: Vec<(&str, &str, &str)> = monitor["spec"]["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["port"].as_str().unwrap_or_default(),
                e["path"].as_str().unwrap_or_default(),
                e["interval"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        endpoints,
        [
            ("metrics-red", "/metrics", "15s"),
            ("metrics", "/metrics", "15s")
        ]
    );
    for (port, _, _) in &endpoints {
        assert!(ports.contains_key(*port), "the Service has no port {port}");
    }
    // This set scrapes through the operator only.
    let annotations = pod_annotations(&rendered);
    assert!(
        annotations.keys().all(|k| !k.starts_with("prometheus.io/")),
        "{annotations:?}"
    );
    let notes = charts.notes("otel-collector/service-monitor");
    assert!(
        notes.contains("ServiceMonitor \"otel-collector\""),
        "{notes}"
    );
}

#[test]
fn the_network_policy_admits_prometheus_to_both_metrics_ports() {
    let Some(charts) = Charts::find() else { return };
    let rendered = charts.render("otel-collector/network-policy");
    let policy: NetworkPolicy = rendered.get("NetworkPolicy", "otel-collector");
    let rules = policy.spec.and_then(|s| s.ingress).unwrap_or_default();
    let metrics_rule = rules
        .iter()
        .find(|rule| {
            rule.ports.iter().flatten().any(|p| {
                serde_json::to_value(&p.port).ok() == Some(Value::String("metrics".to_owned()))
            })
        })
        .unwrap_or_else(|| panic!("no rule for the metrics port: {rules:?}"));
    let ports: Vec<Value> = metrics_rule
        .ports
        .iter()
        .flatten()
        .filter_map(|p| serde_json::to_value(&p.port).ok())
        .collect();
    assert_eq!(
        ports,
        [
            Value::String("metrics".to_owned()),
            Value::String("metrics-red".to_owned())
        ]
    );
    // The OTLP rule does not open the metrics ports to OTLP clients.
    for rule in rules.iter().filter(|r| !std::ptr::eq(*r, metrics_rule)) {
        let names: Vec<Value> = rule
            .ports
            .iter()
            .flatten()
            .filter_map(|p| serde_json::to_value(&p.port).ok())
            .collect();
        assert!(
            !names.contains(&Value::String("metrics-red".to_owned())),
            "{names:?}"
        );
    }
}
