//! Figures that tests measure and the README quotes (p99 under faults, span
//! counts), kept where a passing run shows them: libtest hides what a passing
//! test prints, so each figure is also appended, one JSON object per line, to
//! `$CARGO_TARGET_DIR/test-results/<suite>.jsonl`, which `scripts/test.sh`
//! empties before the tests and prints after them.

use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

/// The results directory beside `CARGO_TARGET_TMPDIR` (`<target>/tmp`),
/// which a test binary gets from `env!("CARGO_TARGET_TMPDIR")`.
pub fn dir(target_tmpdir: &str) -> PathBuf {
    PathBuf::from(target_tmpdir)
        .parent()
        .map_or_else(|| PathBuf::from(target_tmpdir), PathBuf::from)
        .join("test-results")
}

/// Appends `{"test": test, ...figures}` to `<suite>.jsonl` and prints it
/// (shown when the test fails or runs with `--nocapture`).
pub fn record(target_tmpdir: &str, suite: &str, test: &str, figures: Value) {
    let mut line = serde_json::json!({ "test": test });
    if let (Some(line), Value::Object(figures)) = (line.as_object_mut(), figures) {
        line.extend(figures);
    }
    let line = line.to_string();
    eprintln!("{suite}: {line}");
    let dir = dir(target_tmpdir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let path = dir.join(format!("{suite}.jsonl"));
    // One write of a whole line with O_APPEND: lines of tests running at the
    // same time do not interleave.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(format!("{line}\n").as_bytes()))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
