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
