# shellcheck shell=bash
# Shared helpers for the scripts in this folder. Source it; do not run it.
#
# Tools the project installs for itself go to $TOOLS_DIR (git-ignored, reused
# when present). Caches that should survive a fresh clone go to $CACHE_DIR.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${SOMEWORK_TOOLS_DIR:-$ROOT/.tools}"
TOOLS_BIN="$TOOLS_DIR/bin"
CACHE_DIR="${SOMEWORK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/somework}"
# The namespaces the charts install into: the collector and the zero-account
# backends in OBS_NS, the services in APP_NS. The in-cluster addresses in the
# charts' values and the service's default endpoint name OBS_NS too;
# tests/deploy/one_source.rs fails when a file disagrees with these two lines.
OBS_NS=observability
APP_NS=somework
export ROOT TOOLS_DIR TOOLS_BIN CACHE_DIR OBS_NS APP_NS

# The oldest Go that builds the collector: the collector modules that
# build-collector.sh pins declare `go 1.26.0`. The README states the same.
GO_MIN_VERSION=1.26

# `cargo test` as `make test` runs it; `make run` builds with the same flags
# (and --no-run), so it reuses that build instead of compiling again.
# shellcheck disable=SC2034 # used by the scripts that source this file
CARGO_TEST_ARGS=(--workspace --release --locked)

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# require_cmd NAME HINT: fail with HINT when NAME is not on PATH.
require_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed. $2"
}

# sha256: a digest of stdin, on Linux and macOS alike.
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi | cut -d' ' -f1
}

# use_checkout_target_dir: points cargo at this checkout's own target
# directory, outside the clone (so a fresh clone of the same path reuses it),
# unless CARGO_TARGET_DIR is set. One per checkout: cargo copies every build of
# the binary to the same target/release/somework, so two checkouts sharing a
# directory could test each other's binary.
use_checkout_target_dir() {
  local checkout_id
  checkout_id="$(printf '%s' "$ROOT" | sha256 | cut -c1-12)"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE_DIR/target-$checkout_id}"
}

# require_go WHAT: fail unless Go $GO_MIN_VERSION or newer is on PATH; WHAT
# says what needs it.
require_go() {
  local what="$1" version minor
  require_cmd go "Install Go $GO_MIN_VERSION or newer (https://go.dev/doc/install) and put it on PATH: $what."
  version="$(go env GOVERSION)"
  minor="$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$version")"
  if [[ ! "$minor" =~ ^[0-9]+$ ]] || ((minor < ${GO_MIN_VERSION#1.})); then
    die "found $version, but $what needs Go $GO_MIN_VERSION or newer. Upgrade Go and run this again."
  fi
}

# ensure_venv DIR: create a Python virtualenv at DIR unless it already exists.
ensure_venv() {
  local dir="$1"
  if [[ ! -x "$dir/bin/python" ]]; then
    require_cmd python3 "Install Python 3.10 or newer."
    log "creating Python virtualenv $dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --upgrade pip
  fi
}
