//! `somework trace` against the demo's real Jaeger and Bugsink: through the
//! Kubernetes API server as `verify` reaches them (the default source), and
//! through a `kubectl port-forward` URL (`--jaeger`). The rows of
//! `/somework`, `/errorwork` and `/chain?hops=2` are read back, with the
//! error mark and the Bugsink link under ErrorWork.

use std::time::Duration;

use serde_json::Value;

use crate::cluster::{APP_NS, LocalCluster, OBS_NS, report};

const BINARY: &str = env!("CARGO_BIN_EXE_somework");

/// Each endpoint's rows as the waterfall draws them: tree, error mark,
/// name, service where it changes; and the kind.
const SOMEWORK: [(&str, &str); 4] = [
    ("GET /somework [somework-frontend]", "server"),
    ("└─ somework", "internal"),
    ("   └─ MiddleWork", "internal"),
    ("      └─ ErrorWork", "internal"),
];
const ERRORWORK: [(&str, &str); 4] = [
    ("✖ GET /errorwork [somework-frontend]", "server"),
    ("└─ ✖ somework", "internal"),
    ("   └─ ✖ MiddleWork", "internal"),
    ("      └─ ✖ ErrorWork", "internal"),
];
/// The frontend calls the backend, which calls itself once more.
const CHAIN: [(&str, &str); 5] = [
    ("GET /chain [somework-frontend]", "server"),
    ("└─ GET", "client"),
    ("   └─ GET /chain [somework-backend]", "server"),
    ("      └─ GET", "client"),
    ("         └─ GET /chain", "server"),
];

async fn trace(cluster: &LocalCluster, args: &[&str]) -> (Option<i32>, String, String) {
    let output = tokio::process::Command::new(BINARY)
        .arg("trace")
        .args(args)
        .env("KUBECONFIG", cluster.kubeconfig())
        .env_remove("BUGSINK_TOKEN")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("somework trace did not exit within 120 s")
        .expect("cannot run somework trace");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The span rows of an uncoloured waterfall: tree and name, and kind, cut
/// at the header's columns.
fn rows(text: &str) -> Vec<(String, String)> {
    let mut lines = text.lines();
    let header = lines
        .find(|line| line.starts_with("SPAN"))
        .unwrap_or_else(|| panic!("no header row in:\n{text}"));
    let kind_at = header.find("KIND").expect("a KIND column");
    lines
        .filter_map(|line| {
            let label: String = line.chars().take(kind_at).collect();
            let kind: String = line.chars().skip(kind_at).take(8).collect();
            let kind = kind.trim();
            ["server", "client", "internal"]
                .contains(&kind)
                .then(|| (label.trim_end().to_owned(), kind.to_owned()))
        })
        .collect()
}

fn expected(shape: &[(&str, &str)]) -> Vec<(String, String)> {
    shape
        .iter()
        .map(|(label, kind)| ((*label).to_owned(), (*kind).to_owned()))
        .collect()
}

pub async fn the_waterfall_from_jaeger_with_the_bugsink_link(cluster: &LocalCluster) {
    let frontend = cluster.port_forward(APP_NS, "service/somework-frontend", 8080);
    let client = reqwest::Client::new();
    let mut traces = Vec::new();
    for (path, shape) in [
        ("/somework", &SOMEWORK[..]),
        ("/errorwork", &ERRORWORK[..]),
        ("/chain?hops=2", &CHAIN[..]),
    ] {
        let body: Value = client
            .get(frontend.url(path))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .expect("the frontend did not answer")
            .json()
            .await
            .expect("a JSON body");
        let trace_id = body["trace_id"].as_str().expect("a trace id").to_owned();
        traces.push((path, shape, trace_id));
    }

    // The default source: Jaeger (and Bugsink) through the API server.
    for (path, shape, trace_id) in &traces {
        let (code, stdout, stderr) = trace(cluster, &[trace_id, "--wait", "60s"]).await;
        assert_eq!(code, Some(0), "{path}: {stdout}\n{stderr}");
        assert_eq!(rows(&stdout), expected(shape), "{path}:\n{stdout}");
        if *path == "/errorwork" {
            let lines: Vec<&str> = stdout.lines().collect();
            let error_work = lines
                .iter()
                .position(|line| line.contains("└─ ✖ ErrorWork"))
                .expect("an ErrorWork row");
            let link = lines[error_work..]
                .iter()
                .find(|line| line.trim_start().starts_with("↳ "))
                .unwrap_or_else(|| panic!("no link under ErrorWork:\n{stdout}\n{stderr}"));
            assert!(
                link.contains("http://localhost:8000/issues/issue/"),
                "{link}"
            );
            assert!(
                stderr.contains(&format!("kubectl -n {OBS_NS} port-forward service/bugsink")),
                "{stderr}"
            );
        }
    }
    report("somework trace drew the three endpoints from the cluster's Jaeger");

    // --jaeger: the same rows through a URL.
    let jaeger = cluster.port_forward(OBS_NS, "service/jaeger", 16686);
    let (path, shape, trace_id) = &traces[2];
    let (code, stdout, stderr) =
        trace(cluster, &[trace_id, "--jaeger", &jaeger.url(""), "--json"]).await;
    assert_eq!(code, Some(0), "{path}: {stdout}\n{stderr}");
    let json: Value = serde_json::from_str(&stdout).expect("JSON");
    let names: Vec<&str> = json["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .filter_map(|span| span["name"].as_str())
        .collect();
    let expected_names: Vec<&str> = shape
        .iter()
        .map(|(label, _)| label.trim_start_matches([' ', '└', '─']))
        .map(|label| label.split(" [").next().unwrap_or(label))
        .collect();
    assert_eq!(names, expected_names, "{stdout}");
    assert_eq!(
        json["services"],
        serde_json::json!(["somework-frontend", "somework-backend"])
    );
}
