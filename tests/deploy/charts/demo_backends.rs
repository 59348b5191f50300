//! The demo-backends chart in zero-account mode: the collector reaches
//! Jaeger, and the services' DSN names the Bugsink project that the
//! `create-project` init container makes, run here against the real Bugsink.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use somework_testkit::helm::k8s_openapi::api::core::v1::Service;
use somework_testkit::helm::{Rendered, chart_dir, namespaces, scratch_dir, yaml_value};
use somework_testkit::{process, tools};

use crate::helpers::{Charts, collector_config, deployment_container, env_value, read};

#[test]
fn zero_account_mode_wires_jaeger_and_bugsink() {
    let Some(charts) = Charts::find() else { return };
    let backends = charts.render("demo-backends/defaults");
    let collector = charts.render("otel-collector/defaults");
    let somework = charts.render("somework/defaults");

    // The collector exports to the Jaeger Service's OTLP/gRPC port.
    let jaeger: Service = backends.get("Service", "jaeger");
    let otlp = jaeger
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.name.as_deref() == Some("otlp-grpc"))
        .map(|p| p.port);
    let jaeger_endpoint = format!(
        "{}.{}.svc.cluster.local:{}",
        jaeger.metadata.name.unwrap_or_default(),
        jaeger.metadata.namespace.unwrap_or_default(),
        otlp.unwrap_or_default()
    );
    let container = deployment_container(&collector, "otel-collector");
    assert_eq!(
        env_value(&container, "JAEGER_OTLP_ENDPOINT"),
        jaeger_endpoint
    );
    let config = &collector.string_data("ConfigMap", "otel-collector")["zero-account.yaml"];
    assert!(
        config.contains("endpoint: ${env:JAEGER_OTLP_ENDPOINT"),
        "{config}"
    );

    // The services' DSN is the Bugsink project the init container creates.
    let values = yaml_value(&read(&chart_dir("demo-backends").join("values.yaml")));
    let project = &values["bugsink"]["project"];
    let bugsink: Service = backends.get("Service", "bugsink");
    let port = bugsink.spec.and_then(|s| s.ports).unwrap_or_default()[0].port;
    let expected_dsn = format!(
        "http://{}@{}.{}.svc.cluster.local:{port}/{}",
        project["key"].as_str().unwrap_or_default(),
        bugsink.metadata.name.unwrap_or_default(),
        bugsink.metadata.namespace.unwrap_or_default(),
        project["id"]
    );
    assert_eq!(
        somework.string_data("Secret", "somework-sentry")["SENTRY_DSN"],
        expected_dsn
    );
    let spec = backends.deployment_pod_spec("bugsink");
    let create = spec
        .init_containers
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == "create-project")
        .unwrap_or_else(|| panic!("bugsink has no create-project init container"));
    assert_eq!(
        env_value(&create, "BUGSINK_PROJECT_KEY"),
        project["key"].as_str().unwrap_or_default()
    );
    assert_eq!(
        env_value(&create, "BUGSINK_PROJECT_ID"),
        project["id"].to_string()
    );
    assert_eq!(
        create.command.as_deref(),
        Some(
            &[
                "bugsink-manage".to_owned(),
                "shell".to_owned(),
                "--command".to_owned()
            ][..]
        )
    );
}

/// Runs the Bugsink Deployment's `create-project` init container against the
/// real Bugsink release the image carries (from PyPI), with the image's own
/// settings template, and checks that the project it creates accepts events
/// sent with the somework chart's zero-account DSN.
#[tokio::test]
async fn bugsink_init_container_creates_the_project_of_the_services_dsn() {
    let Some(charts) = Charts::find() else { return };
    let Some(manage) = tools::require(
        "bugsink-venv/bin/bugsink-manage",
        "run scripts/install-bugsink.sh",
    ) else {
        return;
    };
    let venv_bin = manage
        .parent()
        .unwrap_or_else(|| panic!("no parent of {}", manage.display()));
    let backends = charts.render("demo-backends/defaults");
    let spec = backends.deployment_pod_spec("bugsink");
    let init = spec
        .init_containers
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == "create-project")
        .unwrap_or_else(|| panic!("no create-project init container"));

    // The image's settings: Bugsink's docker template, which reads everything
    // from the environment. Only its fixed /tmp paths move into the scratch dir.
    let templates = std::fs::read_dir(venv_bin.join("../lib"))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|python| {
            python
                .path()
                .join("site-packages/bugsink/conf_templates/docker.py.template")
        })
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no docker.py.template in {}", venv_bin.display()));
    let dir = scratch_dir();
    let scratch = dir.path().display().to_string();
    let conf = read(&templates).replace(
        "/tmp/snappea.sqlite3",
        &format!("{scratch}/snappea.sqlite3"),
    ) + &format!("\nBUGSINK[\"INGEST_STORE_BASE_DIR\"] = \"{scratch}/ingestion\"\n");
    std::fs::write(dir.path().join("bugsink_conf.py"), conf).unwrap_or_else(|e| panic!("{e}"));
    // Bound here and handed to gunicorn below, so the port stays ours.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("no free port: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();

    // The init container's environment: literal values as rendered, Secret
    // values made up, paths and URL pointed at this machine.
    let mut env: Vec<(String, String)> = Vec::new();
    for var in init.env.iter().flatten() {
        let value = match (var.name.as_str(), &var.value) {
            ("DATABASE_PATH", _) => format!("{scratch}/db.sqlite3"),
            ("BASE_URL", _) => format!("http://127.0.0.1:{port}"),
            ("PORT", _) => port.to_string(),
            (_, Some(v)) => v.clone(),
            ("SECRET_KEY", None) => {
                "k".repeat(10) + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
            }
            (name, None) => panic!("unexpected Secret-backed env {name} in create-project"),
        };
        env.push((var.name.clone(), value));
    }
    let command = init.command.clone().unwrap_or_default();
    assert_eq!(command.first().map(String::as_str), Some("bugsink-manage"));
    let run = |program: &str, args: &[String]| {
        Command::new(venv_bin.join(program))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("DJANGO_SETTINGS_MODULE", "bugsink_conf")
            .env("PYTHONPATH", dir.path())
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"))
    };
    let init_args: Vec<String> = command[1..]
        .iter()
        .chain(init.args.iter().flatten())
        .cloned()
        .collect();

    let somework = charts.render("somework/defaults");
    let dsn = somework.string_data("Secret", "somework-sentry")["SENTRY_DSN"].clone();
    let (key, project_id) = dsn
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('@'))
        .and_then(|(key, rest)| {
            rest.rsplit_once('/')
                .map(|(_, id)| (key.to_owned(), id.to_owned()))
        })
        .unwrap_or_else(|| panic!("not a DSN: {dsn}"));

    for expected in ["created", "updated"] {
        let out = run("bugsink-manage", &init_args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "create-project failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!(
                "{expected} project somework DSN http://{key}@127.0.0.1:{port}/{project_id}"
            )),
            "second run must keep the project; got: {stdout}"
        );
    }

    // What the image's command does next: snappea's queue, then gunicorn.
    let out = run(
        "bugsink-manage",
        &[
            "migrate".into(),
            "snappea".into(),
            "--database=snappea".into(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut gunicorn = tokio::process::Command::new(venv_bin.join("gunicorn"));
    let fd = process::hand_over(gunicorn.as_std_mut(), &listener);
    let _server = gunicorn
        .args([
            "--bind",
            &format!("fd://{fd}"),
            "--workers",
            "1",
            "bugsink.wsgi",
        ])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("DJANGO_SETTINGS_MODULE", "bugsink_conf")
        .env("PYTHONPATH", dir.path())
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start gunicorn: {e}"));
    drop(listener);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = http.get(format!("{base}/health/ready")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Bugsink did not become ready on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An event with the services' DSN is accepted; a wrong key is refused.
    let event = r#"{"event_id":"4f2b3a6c1d8e4b5f9a0c7d6e5f4a3b2c","platform":"other","level":"error","message":"helm chart wiring check"}"#;
    let store = format!("{base}/api/{project_id}/store/");
    let send_event = |key: &str| {
        http.post(&store)
            .header("Content-Type", "application/json")
            .header(
                "X-Sentry-Auth",
                format!(
                    "Sentry sentry_version=7, sentry_client=somework-tests/1.0, sentry_key={key}"
                ),
            )
            .body(event)
            .send()
    };
    let good = send_event(&key).await.map(|r| r.status().as_u16());
    assert_eq!(
        good.ok(),
        Some(200),
        "Bugsink refused an event sent with the services' DSN {dsn}"
    );
    let wrong = send_event("ffffffffffffffffffffffffffffffff")
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(wrong.ok(), Some(403), "Bugsink must refuse a wrong key");
}

/// The port named `name` of the Service `service` in `rendered`.
fn service_port(rendered: &Rendered, service: &str, name: &str) -> i32 {
    let object: Service = rendered.get("Service", service);
    object
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| p.port)
        .unwrap_or_else(|| panic!("Service {service} has no port {name}"))
}

/// The collector's logs go to the VictoriaLogs Service, Prometheus scrapes
/// the collector's Service, and Jaeger's Monitor tab reads that Prometheus.
#[test]
fn zero_account_mode_wires_logs_and_red_metrics() {
    let Some(charts) = Charts::find() else { return };
    let backends = charts.render("demo-backends/defaults");
    let collector = charts.render("otel-collector/defaults");
    let namespace = &namespaces().observability;

    // Logs: otlp_http to VictoriaLogs' OTLP ingestion (the exporter appends
    // /v1/logs), behind memory_limiter and batch like the traces.
    let victoria_logs = format!(
        "http://victoria-logs.{namespace}.svc.cluster.local:{}/insert/opentelemetry",
        service_port(&backends, "victoria-logs", "http")
    );
    let container = deployment_container(&collector, "otel-collector");
    assert_eq!(
        env_value(&container, "VICTORIALOGS_OTLP_ENDPOINT"),
        victoria_logs
    );
    let config = collector_config(&collector, "otel-collector");
    assert_eq!(
        config["exporters"]["otlp_http/victorialogs"]["endpoint"],
        format!("${{env:VICTORIALOGS_OTLP_ENDPOINT:-{victoria_logs}}}")
    );
    let logs = &config["service"]["pipelines"]["logs"];
    assert_eq!(logs["receivers"], serde_json::json!(["otlp"]));
    assert_eq!(
        logs["processors"],
        serde_json::json!(["memory_limiter", "batch"])
    );
    assert_eq!(
        logs["exporters"],
        serde_json::json!(["otlp_http/victorialogs"])
    );

    // RED metrics: Prometheus scrapes the collector Service's own telemetry
    // port and the spanmetrics exporter's port, by static targets.
    let collector_host = format!("otel-collector.{namespace}.svc.cluster.local");
    let prometheus_config =
        yaml_value(&backends.string_data("ConfigMap", "prometheus")["prometheus.yml"]);
    let targets = |job: &str| {
        prometheus_config["scrape_configs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["job_name"] == job)
            .unwrap_or_else(|| panic!("no scrape job {job}: {prometheus_config}"))["static_configs"]
            [0]["targets"]
            .clone()
    };
    assert_eq!(
        targets("otel-collector"),
        serde_json::json!([format!(
            "{collector_host}:{}",
            service_port(&collector, "otel-collector", "metrics")
        )])
    );
    assert_eq!(
        targets("otel-collector-spanmetrics"),
        serde_json::json!([format!(
            "{collector_host}:{}",
            service_port(&collector, "otel-collector", "metrics-red")
        )])
    );

    // Jaeger's Monitor tab reads that Prometheus, with the names the
    // spanmetrics connector gives (normalized: *_calls_total, *_milliseconds).
    let jaeger = yaml_value(&backends.string_data("ConfigMap", "jaeger")["config.yaml"]);
    let extensions = &jaeger["extensions"];
    assert_eq!(
        extensions["jaeger_query"]["storage"]["metrics"],
        "prometheus"
    );
    let backend = &extensions["jaeger_storage"]["metric_backends"]["prometheus"]["prometheus"];
    assert_eq!(
        backend["endpoint"],
        format!(
            "http://prometheus.{namespace}.svc.cluster.local:{}",
            service_port(&backends, "prometheus", "http")
        )
    );
    assert_eq!(backend["normalize_calls"], true);
    assert_eq!(backend["normalize_duration"], true);
    let spec = backends.deployment_pod_spec("jaeger");
    let jaeger_container = &spec.containers[0];
    assert_eq!(
        jaeger_container.args.as_deref(),
        Some(&["--config=/conf/config.yaml".to_owned()][..])
    );
}

/// Each backend beside Jaeger and Bugsink is optional: off, it renders
/// nothing, and Jaeger runs without a metrics store.
#[test]
fn log_backend_and_prometheus_are_optional() {
    let Some(charts) = Charts::find() else { return };
    let off = charts.render("demo-backends/traces-and-errors-only");
    for name in ["victoria-logs", "prometheus"] {
        for kind in ["Deployment", "Service", "ConfigMap"] {
            assert!(
                off.find(kind, name).is_none(),
                "{kind} {name} rendered although disabled"
            );
        }
    }
    let jaeger = yaml_value(&off.string_data("ConfigMap", "jaeger")["config.yaml"]);
    assert!(
        jaeger["extensions"]["jaeger_query"]["storage"]["metrics"].is_null(),
        "Jaeger reads metrics from a Prometheus that is off: {jaeger}"
    );
    assert!(jaeger["extensions"]["jaeger_storage"]["metric_backends"].is_null());
    let on = charts.render("demo-backends/defaults");
    for name in ["jaeger", "victoria-logs", "prometheus", "bugsink"] {
        assert!(
            on.find("Deployment", name).is_some(),
            "no Deployment {name}"
        );
    }
}
