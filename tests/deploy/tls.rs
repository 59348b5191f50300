//! TLS verification is never disabled, anywhere: not in the service, not in
//! a collector config, not in a chart or a manifest. The one plaintext
//! connection is the zero-account demo's collector -> Jaeger hop inside the
//! cluster, which has no TLS to verify.

use std::fs;
use std::path::{Path, PathBuf};

use somework_testkit::tools::repo_root;

/// Settings that turn certificate verification off, in Rust, Go (collector
/// `confighttp`/`configgrpc`), curl and kubectl.
const VERIFICATION_OFF: &[&str] = &[
    "insecure_skip_verify: true",
    "danger_accept_invalid_certs",
    "danger_accept_invalid_hostnames",
    "--insecure-skip-tls-verify",
    "curl -k ",
    "curl --insecure",
];

fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, found);
        } else {
            found.push(path);
        }
    }
}

fn project_files() -> Vec<PathBuf> {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in [
        "src",
        "collector-config",
        "helm",
        "k8s",
        "scripts",
        ".github",
    ] {
        files_under(&root.join(dir), &mut files);
    }
    files.push(root.join("Dockerfile"));
    files
}

#[test]
fn no_file_turns_certificate_verification_off() {
    let files = project_files();
    assert!(
        files.len() > 50,
        "found only {} files; wrong root?",
        files.len()
    );
    let mut offenders = Vec::new();
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for setting in VERIFICATION_OFF {
            if text.contains(setting) {
                offenders.push(format!("{}: {setting}", file.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "TLS verification disabled:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn plaintext_is_used_only_for_the_in_cluster_jaeger_demo() {
    for file in project_files() {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if line.trim() != "insecure: true" {
                continue;
            }
            // The exporter this `tls:` block belongs to is a few lines above.
            let context = lines[index.saturating_sub(4)..index].join("\n");
            assert!(
                context.contains("otlp_grpc/jaeger") && context.contains("svc.cluster.local"),
                "{}:{}: plaintext outside the in-cluster Jaeger exporter:\n{context}",
                file.display(),
                index + 1
            );
        }
    }
}
