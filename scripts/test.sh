#!/usr/bin/env bash
# The project's test command (README, `make test`, CI): installs the tools the
# tests need into .tools/, then runs formatting, lints and every test.
#
#   scripts/test.sh              everything
#   scripts/test.sh --lint-only  formatting, clippy and shellcheck only
#
# Build outputs and caches live outside the clone (see CACHE_DIR in lib.sh),
# so a fresh clone on the same machine reuses them.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

lint_only=false
case "${1:-}" in
  --lint-only) lint_only=true ;;
  "") ;;
  *) die "unknown option '$1'; usage: scripts/test.sh [--lint-only]" ;;
esac

use_checkout_target_dir
export SOMEWORK_TOOLS_DIR="$TOOLS_DIR"
require_cmd cargo "Install Rust with rustup: https://rustup.rs"

started=$SECONDS
step() { log "[$((SECONDS - started))s] $*"; }

step "installing tools into $TOOLS_DIR (reused when present)"
scripts/install-shellcheck.sh
scripts/install-k8s-tools.sh
scripts/install-bugsink.sh
scripts/build-collector.sh
# The local cluster for tests/cluster (Linux as root only; cached, so only a
# cold machine pays for it: Kubernetes, CoreDNS and Jaeger from source).
if [[ "$(uname -s)" == Linux ]] && ((EUID == 0)); then
  scripts/local-cluster.sh build
fi

step "cargo fmt --check"
cargo fmt --all -- --check || die "formatting differs; run 'cargo fmt --all'"

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "shellcheck"
"$TOOLS_BIN/shellcheck" scripts/*.sh deploy/local-cluster/*.sh .ci/run

if [[ "$lint_only" == true ]]; then
  step "lint passed"
  exit 0
fi

step "cargo test (release build; the end-to-end tests run the release binary)"
mkdir -p "$CACHE_DIR"
results="$CACHE_DIR/test-output.log"
# Figures the tests measure (tests/support/src/results.rs); printed below.
figures_dir="$CARGO_TARGET_DIR/test-results"
rm -rf "$figures_dir"
set +e
# Every suite runs even after one fails, so one failure hides no other.
cargo test "${CARGO_TEST_ARGS[@]}" --no-fail-fast 2>&1 | tee "$results"
cargo_status=${PIPESTATUS[0]}
set -e

# One closing line for the whole run: cargo prints a result per test binary.
# A skip is a test that returned early for want of a tool; it says so on a
# line of its own (somework_testkit::tools::skip).
read -r passed failed skipped < <(awk '
  /^test result:/ { passed += $4; failed += $6 }
  /^SKIPPED:/ { skipped += 1 }
  END { print passed + 0, failed + 0, skipped + 0 }' "$results")
if compgen -G "$figures_dir/*.jsonl" >/dev/null; then
  log "figures measured by this run (the README quotes them; kept in $figures_dir):"
  cat "$figures_dir"/*.jsonl >&2
fi
printf '%d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
((cargo_status == 0)) || die "cargo test failed (output in $results)"
if [[ "${CI:-}" == true || "${CI:-}" == 1 ]] && ((skipped > 0)); then
  grep '^SKIPPED:' "$results" >&2
  die "$skipped tests skipped under CI=true; CI must run every test (install what the lines above name)"
fi
step "all tests passed"
