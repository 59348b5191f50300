#!/usr/bin/env bash
# The whole pipeline on this machine, in one command (make run): Bugsink (a
# Sentry-compatible error tracker), the collector with the local pipeline
# (helm/otel-collector/pipelines/local.yaml over base.yaml), and the service
# with every trace sampled. Then `somework verify local` calls /somework,
# /errorwork and /chain?hops=2 and prints each trace id, where the trace is
# (the collector's output) and where the error is (its Bugsink issue);
# everything keeps running until Ctrl-C.
#
#   scripts/run-local.sh [--data-dir DIR] [--headless]
#
#   --data-dir DIR  Bugsink's data and the three processes' logs (default
#                   .tools/run-local); reused by later runs
#   --headless      stop everything and exit once the summary is printed,
#                   with the status of somework verify local: 0 only if
#                   every trace and the error were found
#
# Loopback ports, each overridable: SERVICE_PORT (8080), BUGSINK_PORT (8000),
# and the collector's (collector-config/loopback-ports.yaml reads them):
# OTLP_GRPC_PORT (4317), OTLP_HTTP_PORT (4318), COLLECTOR_HEALTH_PORT (13133),
# COLLECTOR_METRICS_PORT (8888), COLLECTOR_RED_PORT (8889, the RED metrics).
#
# The service binary is the one `make test` builds (same cargo flags, same
# target directory), so after `make test` nothing is compiled again.
# SOMEWORK_BIN=PATH runs that binary instead, without cargo (the tests do).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

usage() {
  sed -n 's/^#   //p' "${BASH_SOURCE[0]}" >&2
  exit 2
}

DATA_DIR="$TOOLS_DIR/run-local"
headless=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data-dir)
      [[ $# -ge 2 ]] || usage
      DATA_DIR="$2"
      shift 2
      ;;
    --headless)
      headless=true
      shift
      ;;
    -h | --help) usage ;;
    *)
      warn "unknown argument: $1"
      usage
      ;;
  esac
done

SERVICE_PORT="${SERVICE_PORT:-8080}"
BUGSINK_PORT="${BUGSINK_PORT:-8000}"
OTLP_GRPC_PORT="${OTLP_GRPC_PORT:-4317}"
OTLP_HTTP_PORT="${OTLP_HTTP_PORT:-4318}"
COLLECTOR_HEALTH_PORT="${COLLECTOR_HEALTH_PORT:-13133}"
COLLECTOR_METRICS_PORT="${COLLECTOR_METRICS_PORT:-8888}"
COLLECTOR_RED_PORT="${COLLECTOR_RED_PORT:-8889}"
export OTLP_GRPC_PORT OTLP_HTTP_PORT COLLECTOR_HEALTH_PORT COLLECTOR_METRICS_PORT COLLECTOR_RED_PORT
for name in SERVICE_PORT BUGSINK_PORT OTLP_GRPC_PORT OTLP_HTTP_PORT COLLECTOR_HEALTH_PORT COLLECTOR_METRICS_PORT COLLECTOR_RED_PORT; do
  port="${!name}"
  [[ "$port" =~ ^[0-9]+$ && "$port" -ge 1 && "$port" -le 65535 ]] ||
    die "$name must be a port number from 1 to 65535, not '$port'"
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "something already listens on 127.0.0.1:$port ($name); stop it or set $name to a free port"
  fi
done
require_cmd curl "Install curl with your package manager."

started=$SECONDS
step() { log "[$((SECONDS - started))s] $*"; }

# --- Processes, stopped in reverse order on exit (Ctrl-C included) ---------
pids=()
names=()
stop_all() {
  local i pid waited
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid="${pids[i]}"
    kill -0 "$pid" 2>/dev/null || continue
    log "stopping ${names[i]} (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    # The service flushes its spans and errors within 10 s of SIGTERM.
    for ((waited = 0; waited < 100; waited++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      warn "${names[i]} (pid $pid) ignored SIGTERM for 10 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME LOG COMMAND...: runs COMMAND in the background, output to LOG.
start() {
  local name="$1" logfile="$2"
  shift 2
  "$@" >"$logfile" 2>&1 &
  pids+=("$!")
  names+=("$name")
}

# wait_for NAME PID LOG URL [CURL_ARGS...]: waits until URL answers 2xx, or
# fails with the end of NAME's log when PID exits or a minute passes.
wait_for() {
  local name="$1" pid="$2" logfile="$3" url="$4"
  shift 4
  local deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null --max-time 2 "$@" "$url" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS > deadline)); then
      tail -n 30 "$logfile" >&2 || true
      die "$name did not come up (its log: $logfile)"
    fi
    sleep 0.2
  done
}

# --- 1. Tools and the service binary ----------------------------------------
step "tools: Bugsink and the collector (reused when present)"
scripts/install-bugsink.sh
scripts/build-collector.sh

if [[ -n "${SOMEWORK_BIN:-}" ]]; then
  SERVICE_BIN="$SOMEWORK_BIN"
  [[ -x "$SERVICE_BIN" ]] || die "SOMEWORK_BIN=$SERVICE_BIN is not an executable"
else
  step "the service: cargo test ${CARGO_TEST_ARGS[*]} --no-run (the build make test made; nothing to do after it)"
  require_cmd cargo "Install Rust with rustup: https://rustup.rs"
  use_checkout_target_dir
  cargo test "${CARGO_TEST_ARGS[@]}" --no-run --quiet
  SERVICE_BIN="$CARGO_TARGET_DIR/release/somework"
  [[ -x "$SERVICE_BIN" ]] || die "cargo built no $SERVICE_BIN"
fi

mkdir -p "$DATA_DIR"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"
BUGSINK_DATA="$DATA_DIR/bugsink"
BUGSINK_LOG="$DATA_DIR/bugsink.log"
COLLECTOR_LOG="$DATA_DIR/collector.log"
SERVICE_LOG="$DATA_DIR/service.log"

# --- 2. Bugsink, the collector, the service ---------------------------------
step "starting Bugsink on 127.0.0.1:$BUGSINK_PORT (data in $BUGSINK_DATA)"
rm -f "$BUGSINK_DATA/api-token"
start bugsink "$BUGSINK_LOG" scripts/run-bugsink.sh --port "$BUGSINK_PORT" --data-dir "$BUGSINK_DATA"
bugsink_pid="${pids[0]}"
pipelines=helm/otel-collector/pipelines
step "starting the collector ($pipelines/local.yaml over base.yaml: every span to its output)"
start collector "$COLLECTOR_LOG" "$TOOLS_BIN/otelcol-somework" \
  --config "$pipelines/base.yaml" --config "$pipelines/local.yaml" \
  --config collector-config/loopback-ports.yaml
wait_for collector "${pids[1]}" "$COLLECTOR_LOG" "http://127.0.0.1:$COLLECTOR_HEALTH_PORT/"

# Bugsink migrates its databases before it serves (seconds; a minute or more
# on the first run on a busy machine).
step "waiting for Bugsink"
deadline=$((SECONDS + 300))
until [[ -s "$BUGSINK_DATA/api-token" ]]; do
  if ! kill -0 "$bugsink_pid" 2>/dev/null || ((SECONDS > deadline)); then
    tail -n 30 "$BUGSINK_LOG" >&2 || true
    die "Bugsink did not start (its log: $BUGSINK_LOG)"
  fi
  sleep 0.2
done
# shellcheck source=/dev/null
source "$BUGSINK_DATA/sentry.env"
BUGSINK_URL="http://127.0.0.1:$BUGSINK_PORT"
wait_for Bugsink "$bugsink_pid" "$BUGSINK_LOG" "$BUGSINK_URL/api/canonical/0/projects/" \
  -H "Authorization: Bearer $(<"$BUGSINK_DATA/api-token")"

step "starting the service on 127.0.0.1:$SERVICE_PORT (every trace sampled, errors to Bugsink)"
# A 1 s export delay instead of 5 s, so each trace shows up at once. JSON
# lines, so that verify local reads the service's Sentry delivery counts.
start service "$SERVICE_LOG" env \
  LISTEN_ADDR="127.0.0.1:$SERVICE_PORT" \
  LOG_FORMAT=json \
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_GRPC_PORT" \
  OTEL_TRACES_SAMPLER=always_on \
  OTEL_BSP_SCHEDULE_DELAY=1000 \
  SENTRY_DSN="$SENTRY_DSN" \
  SENTRY_ENVIRONMENT=local \
  "$SERVICE_BIN"
SERVICE_URL="http://127.0.0.1:$SERVICE_PORT"
wait_for service "${pids[2]}" "$SERVICE_LOG" "$SERVICE_URL/readyz"

# --- 3. Calls, and where each one can be seen: somework verify local --------
printf '\nThe local pipeline is up after %d s.\n\n' "$((SECONDS - started))"
status=0
"$SERVICE_BIN" verify local \
  --service "$SERVICE_URL" \
  --collector-metrics "http://127.0.0.1:$COLLECTOR_METRICS_PORT" \
  --collector-output "$COLLECTOR_LOG" \
  --service-log "$SERVICE_LOG" \
  --bugsink "$BUGSINK_URL" \
  --bugsink-data-dir "$BUGSINK_DATA" || status=$?
((status != 2)) || die "$SERVICE_BIN verify local refused its arguments"
cat <<EOF

Logs: $SERVICE_LOG, $COLLECTOR_LOG, $BUGSINK_LOG
More calls: curl -s $SERVICE_URL/somework (see the README's Endpoints)
EOF

if $headless; then
  exit "$status"
fi
((status == 0)) || warn "not everything was found (see the FAIL lines above); everything keeps running"
printf '\nCtrl-C stops everything.\n'
wait
