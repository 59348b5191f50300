//! `k8s/`, the plain manifests, is what the charts render: `render-k8s.sh
//! --check` passes on the repository and fails on each kind of drift.

use std::path::Path;
use std::process::Command;

use somework_testkit::helm::{Helm, scratch_dir};
use somework_testkit::tools;

use crate::helpers::{copy_dir, read};

fn render_k8s_check(root: &Path) -> std::process::Output {
    Command::new("bash")
        .arg(root.join("scripts/render-k8s.sh"))
        .arg("--check")
        .env("SOMEWORK_TOOLS_DIR", tools::tools_dir())
        .output()
        .unwrap_or_else(|e| panic!("run render-k8s.sh: {e}"))
}

#[test]
fn render_k8s_check_passes_and_catches_drift() {
    let Some(_helm) = Helm::find() else { return };
    let root = tools::repo_root();
    let out = render_k8s_check(&root);
    assert!(
        out.status.success(),
        "scripts/render-k8s.sh --check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A copy of the repository's relevant parts, changed one way at a time.
    let work = scratch_dir();
    for dir in ["scripts", "helm", "k8s"] {
        copy_dir(&root.join(dir), &work.path().join(dir));
    }
    assert!(
        render_k8s_check(work.path()).status.success(),
        "the copy should be up to date"
    );
    for (file, change) in [
        ("k8s/30-somework.yaml", "# hand edit\n"),
        (
            "helm/otel-collector/pipelines/zero-account.yaml",
            "# changed\n",
        ),
        ("helm/somework/values.yaml", "logFormat: text\n"),
    ] {
        let path = work.path().join(file);
        let original = read(&path);
        std::fs::write(&path, format!("{original}{change}")).unwrap_or_else(|e| panic!("{e}"));
        let out = render_k8s_check(work.path());
        assert!(!out.status.success(), "--check missed a change to {file}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("stale"),
            "{file}"
        );
        std::fs::write(&path, original).unwrap_or_else(|e| panic!("{e}"));
    }
}
