#!/usr/bin/env bash
# Turn a Sentry DSN into the three settings that helm/otel-collector/pipelines/sentry-otlp.yaml reads,
# printed as shell `export` lines:
#
#   eval "$(scripts/sentry-otlp-env.sh "$SENTRY_DSN")"
#
# `somework sentry-otlp-env DSN` does the work (src/sentry_otlp.rs), reading the DSN as
# the service reads SENTRY_DSN: the project's OTLP traces and logs endpoints sit beside
# its envelope endpoint, {scheme}://{host}[:{port}][/{path}]/api/{project_id}/integration/otlp/v1/traces/
# (and v1/logs/), and authenticate with its public key. It exits 2 with a message when
# the argument is not a DSN.
#
# The binary: SOMEWORK_BIN=PATH when set (e.g. next to a deployment: copy this script
# and the binary), else the one cargo builds from this checkout.
set -euo pipefail

if [[ -n "${SOMEWORK_BIN:-}" ]]; then
  exec "$SOMEWORK_BIN" sentry-otlp-env "$@"
fi
if ! command -v cargo >/dev/null 2>&1; then
  printf 'error: set SOMEWORK_BIN to a somework binary, or install Rust (https://rustup.rs) to build one\n' >&2
  exit 1
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec cargo run --release --locked --quiet -- sentry-otlp-env "$@"
