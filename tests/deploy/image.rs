//! The Dockerfile and .dockerignore, checked without a Docker engine: the
//! build context holds everything the build needs, and the image runs as
//! the user and port the somework chart expects. (The image itself is built
//! and its size checked by .github/workflows/e2e-kind.yml.)

use std::process::Command;

use somework_testkit::helm::scratch_dir;
use somework_testkit::tools;

use crate::helpers::{Charts, read};

/// The lines of the final build stage.
fn final_stage(dockerfile: &str) -> Vec<&str> {
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .unwrap_or_else(|| panic!("no FROM in the Dockerfile"));
    lines[start..].to_vec()
}

/// Whether .dockerignore lets `path` into the build context. Handles the
/// patterns this repository uses: `*` and `!path` / `!dir/` re-includes.
fn admitted(dockerignore: &str, path: &str) -> bool {
    let mut included = true;
    for pattern in dockerignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p.trim_end_matches('/')),
            None => (false, pattern.trim_end_matches('/')),
        };
        let matches = pattern == "*" || path == pattern || path.starts_with(&format!("{pattern}/"));
        if matches {
            included = negated;
        }
    }
    included
}

#[test]
fn final_image_is_distroless_and_runs_as_the_charts_user() {
    let dockerfile = read(&tools::repo_root().join("Dockerfile"));
    let stage = final_stage(&dockerfile);
    assert!(
        stage[0].starts_with("FROM gcr.io/distroless/cc-debian12:nonroot"),
        "{}",
        stage[0]
    );
    let user = stage
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap_or_else(|| panic!("the final stage sets no USER"));
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let uid: i64 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER must be numeric for runAsNonRoot: {user}"));
    let gid: i64 = gid
        .parse()
        .unwrap_or_else(|_| panic!("group must be numeric: {user}"));
    assert_ne!(uid, 0);
    assert!(stage.contains(&"ENTRYPOINT [\"/usr/local/bin/somework\"]"));
    assert!(stage.contains(&"EXPOSE 8080"));

    let Some(charts) = Charts::find() else { return };
    let rendered = charts.render("somework/defaults");
    for name in ["somework-frontend", "somework-backend"] {
        let spec = rendered.deployment_pod_spec(name);
        let security = spec.security_context.unwrap_or_default();
        assert_eq!(security.run_as_user, Some(uid), "{name}");
        assert_eq!(security.run_as_group, Some(gid), "{name}");
        let port = spec.containers[0].ports.clone().unwrap_or_default()[0].container_port;
        assert_eq!(port, 8080, "{name}");
    }
}

/// The image fits the size bound of the kind workflow only with the debug
/// info compressed (see the Dockerfile's header): a build stage that copied
/// the binary as it is would make it about 47 MB.
#[test]
fn the_image_binary_keeps_its_debug_info_compressed() {
    let root = tools::repo_root();
    let dockerfile = read(&root.join("Dockerfile"));
    assert!(
        dockerfile.contains(
            "objcopy --compress-debug-sections=zlib target/release/somework /out/somework"
        ),
        "the Dockerfile no longer compresses the binary's debug sections"
    );
    let stage = final_stage(&dockerfile);
    assert!(
        stage.contains(&"COPY --from=builder /out/somework /usr/local/bin/somework"),
        "the final stage does not take the compressed binary"
    );
    let workflow = read(&root.join(".github/workflows/e2e-kind.yml"));
    assert!(
        workflow.contains("test \"$size\" -le $((40 * 1000 * 1000))"),
        "the kind workflow's size bound changed: update the Dockerfile's arithmetic"
    );
}

#[test]
fn build_context_holds_the_whole_workspace() {
    let root = tools::repo_root();
    let dockerignore = read(&root.join(".dockerignore"));
    // What the build needs: the workspace manifests, the lock file and the
    // sources of every member; no build scripts read anything else.
    for path in [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "tests/support/Cargo.toml",
        "tests/support/src/lib.rs",
    ] {
        assert!(
            admitted(&dockerignore, path),
            ".dockerignore keeps out {path}"
        );
    }
    for path in [
        "target",
        ".tools",
        ".git",
        "helm",
        "k8s",
        "tests/deploy/main.rs",
    ] {
        assert!(
            !admitted(&dockerignore, path),
            ".dockerignore lets in {path}"
        );
    }
    for member in ["build.rs", "tests/support/build.rs"] {
        assert!(
            !root.join(member).exists(),
            "{member} may read files the context lacks: review .dockerignore"
        );
    }

    // Cargo resolves the workspace from a copy of just those files, offline
    // and with the lock file as it is (what `cargo build --locked` needs).
    let context = scratch_dir();
    let mut copied = 0;
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(Result::ok)
        {
            let path = entry.path();
            let relative = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            if path.is_dir() {
                if ![".git", "target", ".tools"].contains(&relative.as_str()) {
                    stack.push(path);
                }
            } else if admitted(&dockerignore, &relative) {
                let target = context.path().join(&relative);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
                }
                std::fs::copy(&path, &target).unwrap_or_else(|e| panic!("{e}"));
                copied += 1;
            }
        }
    }
    assert!(copied > 5, "only {copied} files in the context");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args([
            "metadata",
            "--locked",
            "--offline",
            "--format-version",
            "1",
            "--no-deps",
        ])
        .current_dir(context.path())
        .output()
        .unwrap_or_else(|e| panic!("run cargo metadata: {e}"));
    assert!(
        out.status.success(),
        "the Docker build context is not a complete workspace: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let members = &metadata["workspace_members"];
    let bins: Vec<&str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        // The service's package; the test harness's programs never reach the image.
        .filter(|p| p["name"] == "somework")
        .filter(|p| members.as_array().is_some_and(|m| m.contains(&p["id"])))
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(bins, ["somework"], "the Dockerfile builds --bin somework");
}
