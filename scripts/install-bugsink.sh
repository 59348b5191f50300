#!/usr/bin/env bash
# Installs Bugsink, a self-hosted Sentry-compatible error tracker, into
# $TOOLS_DIR/bugsink-venv. The Sentry tests and scripts/run-bugsink.sh use it as
# the real server that the service's sentry client talks to.
#
# Idempotent: does nothing when the pinned version is already installed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# 2.6.2 needs a newer certifi than some package mirrors carry; 2.6.1 works
# everywhere and speaks the same protocol.
BUGSINK_VERSION="2.6.1"
VENV="$TOOLS_DIR/bugsink-venv"

installed_version() {
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("bugsink"))' 2>/dev/null || true
}

if [[ "$(installed_version)" == "$BUGSINK_VERSION" && -x "$VENV/bin/bugsink-manage" ]]; then
  log "bugsink $BUGSINK_VERSION already installed in $VENV"
  exit 0
fi

ensure_venv "$VENV"
log "installing bugsink $BUGSINK_VERSION into $VENV (about 30 s on first run)"
if ! "$VENV/bin/python" -m pip install --quiet "bugsink==$BUGSINK_VERSION"; then
  die "pip could not install bugsink==$BUGSINK_VERSION into $VENV. Check that PyPI is reachable (pip's output is above), then run $0 again; delete $VENV to start from scratch."
fi

# The tests' migrated template database (tests/support/src/bugsink.rs) belongs
# to the version it was migrated with.
rm -rf "$TOOLS_DIR/bugsink-template"

version="$(installed_version)"
[[ "$version" == "$BUGSINK_VERSION" ]] ||
  die "expected bugsink $BUGSINK_VERSION in $VENV but found '${version:-nothing}'; delete $VENV and run $0 again."
log "bugsink $version installed: $VENV/bin/bugsink-manage"
