//! The GitHub workflows pass actionlint (with shellcheck on their scripts).

use std::process::Command;

use somework_testkit::tools;

#[test]
fn workflows_pass_actionlint() {
    let Some(actionlint) = tools::require(
        "bin/actionlint",
        "run scripts/install-k8s-tools.sh (needs Go)",
    ) else {
        return;
    };
    let root = tools::repo_root();
    let mut command = Command::new(actionlint);
    command.current_dir(&root).arg("-no-color");
    // actionlint checks `run:` scripts with shellcheck when it finds it.
    let shellcheck = tools::tools_dir().join("bin/shellcheck");
    if shellcheck.exists() {
        command.arg(format!("-shellcheck={}", shellcheck.display()));
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run actionlint: {e}"));
    assert!(
        out.status.success(),
        "actionlint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.join(".github/workflows/e2e-kind.yml").exists());
}
