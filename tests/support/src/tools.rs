//! Locating the tools that the project's scripts install into `.tools/`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The repository root (the directory holding the top-level `Cargo.toml`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/support sits two levels below the repository root")
        .to_path_buf()
}

/// Where the scripts install tools: `$SOMEWORK_TOOLS_DIR`, else `<repo>/.tools`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("SOMEWORK_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools"))
}

/// True when running under CI, where a missing tool is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Finds an installed tool at `relative` below the tools directory.
///
/// Returns `None` (after printing how to install it) when the tool is missing
/// outside CI, so the calling test can skip. Under `CI=true` it panics instead:
/// CI must never pass by skipping.
pub fn require(relative: &str, install_hint: &str) -> Option<PathBuf> {
    let path = tools_dir().join(relative);
    if path.exists() {
        return Some(path);
    }
    skip(&format!(
        "{} is not installed; {install_hint}",
        path.display()
    ));
    None
}

/// Reports that a test skips for want of `what`; the caller then returns.
/// Under `CI=true` it panics instead: CI must never pass by skipping.
pub fn skip(what: &str) {
    if in_ci() {
        panic!("{what} (CI=true: a missing tool fails the run)");
    }
    // Written to the stderr handle, not with eprintln!: libtest captures the
    // print macros of passing tests, and a skip must be seen (scripts/test.sh
    // counts these lines).
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
}
