#!/usr/bin/env bash
# Turn a Sentry DSN into the three settings that helm/otel-collector/pipelines/sentry-otlp.yaml reads,
# printed as shell `export` lines:
#
#   eval "$(scripts/sentry-otlp-env.sh "$SENTRY_DSN")"
#
# A DSN is {scheme}://{public_key}@{host}[:{port}][/{path}]/{project_id}. The project's
# OTLP traces endpoint is {scheme}://{host}[:{port}][/{path}]/api/{project_id}/integration/otlp/v1/traces/,
# its logs endpoint the same with v1/logs/, and both authenticate with the header
# `x-sentry-auth: sentry sentry_key={public_key}`.
# The port and path are kept, so a self-hosted Sentry on another port works too.
#
# Exits 2 with a message when the argument is not a DSN. Self-contained (no lib.sh), so
# it can be copied next to any deployment.
set -euo pipefail

usage='usage: scripts/sentry-otlp-env.sh DSN   (e.g. https://abc123@o1.ingest.sentry.io/4505)'
[[ $# -eq 1 ]] || {
  printf '%s\n' "$usage" >&2
  exit 2
}
dsn="$1"

# scheme, public key, optional secret key (legacy DSNs), host, optional port, optional
# path prefix, numeric project id, optional trailing slash.
re='^(https?)://([A-Za-z0-9]+)(:[A-Za-z0-9]*)?@([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(:[0-9]{1,5})?((/[A-Za-z0-9._~-]+)*)/([0-9]+)/?$'
if [[ ! "$dsn" =~ $re ]]; then
  printf 'error: not a Sentry DSN: %q\n%s\n' "$dsn" "$usage" >&2
  exit 2
fi
scheme="${BASH_REMATCH[1]}"
public_key="${BASH_REMATCH[2]}"
host="${BASH_REMATCH[4]}"
port="${BASH_REMATCH[5]}"
path="${BASH_REMATCH[6]}"
project_id="${BASH_REMATCH[8]}"

# The regular expression admits no quote characters, so single quotes are safe here.
otlp="$scheme://$host$port$path/api/$project_id/integration/otlp"
printf "export SENTRY_OTLP_TRACES_URL='%s/v1/traces/'\n" "$otlp"
printf "export SENTRY_OTLP_LOGS_URL='%s/v1/logs/'\n" "$otlp"
printf "export SENTRY_PUBLIC_KEY='%s'\n" "$public_key"
