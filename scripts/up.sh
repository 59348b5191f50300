#!/usr/bin/env bash
# The one-command demo: somework, the OpenTelemetry Collector and (without a
# Sentry account) Jaeger and Bugsink on a minikube cluster of its own.
#
#   scripts/up.sh             (or: make up)
#
# Zero-account mode is the default. Export these first to use Sentry instead:
#   SENTRY_DSN          the project's DSN: the services' errors go there, and
#                       so do the traces (through Sentry's OTLP endpoint)
#   SENTRY_AUTH_TOKEN,  optional: with all three, the collector's sentry
#   SENTRY_ORG,         exporter sends the traces instead (it finds the
#   SENTRY_PROJECT      project's OTLP endpoint through Sentry's API)
#   SENTRY_URL          optional, for self-hosted Sentry (default https://sentry.io)
#
# Other settings: MINIKUBE_PROFILE (default somework), MINIKUBE_DRIVER,
# MINIKUBE_CPUS (2), MINIKUBE_MEMORY (4096 MB).
#
# Idempotent: run it again after a code change; it rebuilds the image, and
# only what changed rolls out. scripts/down.sh removes everything.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

PROFILE="${MINIKUBE_PROFILE:-somework}"
started=$SECONDS
step() { log "[$((SECONDS - started))s] $*"; }

# --- 1. Tools --------------------------------------------------------------
# helm and kubectl from scripts/install-k8s-tools.sh are used when present.
PATH="$TOOLS_BIN:$PATH"
missing=0
need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    warn "$1 is not installed. $2"
    missing=1
  fi
}
need minikube "Install it: https://minikube.sigs.k8s.io/docs/start/"
need helm "Run scripts/install-k8s-tools.sh, or see https://helm.sh/docs/intro/install/"
need kubectl "Run scripts/install-k8s-tools.sh, or see https://kubernetes.io/docs/tasks/tools/"
need curl "Install curl with your package manager."
if [[ "${MINIKUBE_DRIVER:-docker}" == docker ]]; then
  need docker "Install Docker (https://docs.docker.com/engine/install/), or set MINIKUBE_DRIVER to another minikube driver."
fi
((missing == 0)) || die "install the tools above, then run scripts/up.sh again"
# A docker command whose daemon is down would fail only minutes later, inside
# `minikube start`.
if [[ "${MINIKUBE_DRIVER:-docker}" == docker ]] && ! docker info >/dev/null 2>&1; then
  die "docker is installed, but its daemon does not answer ('docker info' fails). Start Docker (Docker Desktop, or 'sudo systemctl start docker'), make sure 'docker info' works as your user without sudo, or set MINIKUBE_DRIVER to another minikube driver."
fi

KUBECTL=(kubectl --context "$PROFILE")
HELM=(helm --kube-context "$PROFILE")

# --- 2. Mode ---------------------------------------------------------------
if [[ -n "${SENTRY_DSN:-}" ]]; then
  if [[ -n "${SENTRY_AUTH_TOKEN:-}" && -n "${SENTRY_ORG:-}" && -n "${SENTRY_PROJECT:-}" ]]; then
    mode=sentry
  else
    mode=sentry-otlp
  fi
elif [[ -n "${SENTRY_AUTH_TOKEN:-}${SENTRY_ORG:-}${SENTRY_PROJECT:-}" ]]; then
  die "SENTRY_AUTH_TOKEN/SENTRY_ORG/SENTRY_PROJECT carry the traces, but the services' errors need SENTRY_DSN too. Export it (Sentry: Settings > Projects > Client Keys), or unset all of them for zero-account mode."
else
  mode=zero-account
fi
case "$mode" in
  zero-account) step "mode: zero-account (no SENTRY_DSN): traces to Jaeger, errors to Bugsink, all inside the cluster" ;;
  sentry) step "mode: sentry: errors to the DSN's project, traces through the collector's sentry exporter (org $SENTRY_ORG, project $SENTRY_PROJECT)" ;;
  sentry-otlp) step "mode: sentry-otlp: errors and traces to the DSN's project (traces through Sentry's OTLP endpoint)" ;;
esac

# --- 3. Cluster ------------------------------------------------------------
if minikube status --profile "$PROFILE" >/dev/null 2>&1; then
  step "minikube profile $PROFILE is running"
else
  step "starting minikube profile $PROFILE (the first start downloads the node image; a few minutes)"
  minikube start --profile "$PROFILE" \
    --driver "${MINIKUBE_DRIVER:-docker}" \
    --cpus "${MINIKUBE_CPUS:-2}" \
    --memory "${MINIKUBE_MEMORY:-4096}"
fi
server_minor="$("${KUBECTL[@]}" version -o json | sed -n '/"serverVersion"/,/}/s/.*"minor": "\([0-9]*\).*/\1/p')"
if [[ -n "$server_minor" ]] && ((server_minor < 30)); then
  die "the cluster runs Kubernetes 1.$server_minor; the charts need 1.30 or newer. Run scripts/down.sh and start again (minikube picks a current version)."
fi

# --- 4. Image --------------------------------------------------------------
# Tagged by a hash of what goes into it: unchanged sources keep the tag, so a
# second run rolls nothing out; a code change gets a new tag and a rollout.
tag="dev-$({
  cat Dockerfile Cargo.toml Cargo.lock tests/support/Cargo.toml
  find src tests/support/src -type f -print0 | sort -z | xargs -0 cat
} | sha256 | cut -c1-12)"
image="somework:$tag"
if minikube image ls --profile "$PROFILE" | grep -q "somework:$tag\$"; then
  step "image $image is already in minikube"
else
  step "building $image inside minikube (the first build compiles every dependency: 5 to 15 minutes)"
  minikube image build --profile "$PROFILE" -t "$image" .
fi

# --- 5. Secrets ------------------------------------------------------------
# apply_secret NAMESPACE NAME KEY=VALUE...: creates or updates a Secret. The
# values go through a pipe, never a command line (which `ps` would show), and
# are written nowhere but the cluster.
apply_secret() {
  local namespace="$1" name="$2"
  shift 2
  printf '%s\n' "$@" |
    "${KUBECTL[@]}" create secret generic "$name" --namespace "$namespace" \
      --from-env-file=/dev/stdin --dry-run=client -o yaml |
    "${KUBECTL[@]}" apply -f - >/dev/null
}
for ns in "$OBS_NS" "$APP_NS"; do
  "${KUBECTL[@]}" create namespace "$ns" --dry-run=client -o yaml | "${KUBECTL[@]}" apply -f - >/dev/null
done

collector_args=()
somework_args=(--set "image.tag=$tag")
case "$mode" in
  sentry)
    step "storing the Sentry credentials in Secrets"
    apply_secret "$OBS_NS" otel-collector-sentry \
      "SENTRY_AUTH_TOKEN=$SENTRY_AUTH_TOKEN" "SENTRY_ORG=$SENTRY_ORG" "SENTRY_PROJECT=$SENTRY_PROJECT"
    collector_args+=(--set pipeline=sentry --set sentry.existingSecret=otel-collector-sentry
      --set "sentry.url=${SENTRY_URL:-https://sentry.io}")
    ;;
  sentry-otlp)
    step "storing the Sentry DSN (and the OTLP settings derived from it) in Secrets"
    otlp_env="$(scripts/sentry-otlp-env.sh "$SENTRY_DSN")" || die "SENTRY_DSN is not a valid DSN"
    eval "$otlp_env"
    apply_secret "$OBS_NS" otel-collector-sentry \
      "SENTRY_OTLP_TRACES_URL=$SENTRY_OTLP_TRACES_URL" "SENTRY_PUBLIC_KEY=$SENTRY_PUBLIC_KEY"
    collector_args+=(--set pipeline=sentry-otlp --set sentry.existingSecret=otel-collector-sentry)
    ;;
esac
if [[ "$mode" != zero-account ]]; then
  apply_secret "$APP_NS" somework-sentry-dsn "SENTRY_DSN=$SENTRY_DSN"
  somework_args+=(--set sentry.existingSecret=somework-sentry-dsn)
fi

# --- 6. Charts -------------------------------------------------------------
install() {
  local release="$1" namespace="$2"
  shift 2
  step "helm upgrade --install $release (namespace $namespace)"
  "${HELM[@]}" upgrade --install "$release" "helm/$release" --namespace "$namespace" \
    --wait --timeout 10m "$@" >/dev/null
}
if [[ "$mode" == zero-account ]]; then
  install demo-backends "$OBS_NS"
elif "${HELM[@]}" status demo-backends --namespace "$OBS_NS" >/dev/null 2>&1; then
  step "removing the zero-account backends (Sentry takes both legs now)"
  "${HELM[@]}" uninstall demo-backends --namespace "$OBS_NS" --wait >/dev/null
fi
# (The ${a[@]+"${a[@]}"} form keeps bash 3.2, macOS's, happy with empty arrays.)
install otel-collector "$OBS_NS" ${collector_args[@]+"${collector_args[@]}"}
install somework "$APP_NS" "${somework_args[@]}"
for deployment in somework-frontend somework-backend; do
  "${KUBECTL[@]}" --namespace "$APP_NS" rollout status "deployment/$deployment" --timeout 5m
done

step "helm test somework (calls /somework, /errorwork and /chain inside the cluster)"
"${HELM[@]}" test somework --namespace "$APP_NS" --logs

# --- 7. Traffic ------------------------------------------------------------
port=18080
step "calling the frontend through kubectl port-forward on localhost:$port"
"${KUBECTL[@]}" --namespace "$APP_NS" port-forward service/somework-frontend "$port:8080" >/dev/null 2>&1 &
forward_pid=$!
trap 'kill "$forward_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl --silent --output /dev/null "http://localhost:$port/healthz" && break
  sleep 0.2
done
call() {
  local body
  body="$(curl --silent --show-error --max-time 20 "http://localhost:$port$1")" || die "calling $1 failed"
  printf '  GET %-16s %s\n' "$1" "$body" >&2
  sed -n 's/.*"trace_id":"\([0-9a-f]\{32\}\)".*/\1/p' <<<"$body"
}
somework_trace="$(call /somework)"
error_trace="$(call /errorwork)"
chain_trace="$(call '/chain?hops=2')"
kill "$forward_pid" 2>/dev/null || true

# --- 8. Where to look --------------------------------------------------------
echo
echo "somework is up (profile $PROFILE, image $image). Trace ids of the calls above:"
echo "  /somework        $somework_trace"
echo "  /errorwork       $error_trace   (an error: look for it in both places)"
echo "  /chain?hops=2    $chain_trace   (frontend -> backend -> backend, one trace)"
echo
if [[ "$mode" == zero-account ]]; then
  password_cmd="kubectl --context $PROFILE -n $OBS_NS get secret bugsink -o jsonpath='{.data.ADMIN_PASSWORD}' | base64 -d"
  cat <<EOF
Traces, in Jaeger:
  kubectl --context $PROFILE -n $OBS_NS port-forward service/jaeger 16686:16686
  http://localhost:16686/trace/$chain_trace
  http://localhost:16686/trace/$error_trace

Errors, in Bugsink (Sentry-compatible; user admin@example.com):
  kubectl --context $PROFILE -n $OBS_NS port-forward service/bugsink 8000:8000
  http://localhost:8000   password: $password_cmd
  Each issue's event shows its trace id under contexts > trace.

Call it yourself:
  kubectl --context $PROFILE -n $APP_NS port-forward service/somework-frontend 8080:8080
  curl localhost:8080/somework
EOF
else
  org_hint="your organization"
  if [[ -n "${SENTRY_URL:-}" && "${SENTRY_URL:-}" != https://sentry.io ]]; then
    org_hint="$SENTRY_URL"
  elif [[ -n "${SENTRY_ORG:-}" ]]; then
    org_hint="https://$SENTRY_ORG.sentry.io"
  fi
  cat <<EOF
In Sentry ($org_hint):
  Issues: search   trace:$error_trace
  Traces: Explore > Traces, search   trace:$chain_trace
  (traces take up to a minute: the collector batches, Sentry ingests)

Collector logs (one line per exported batch, and any export error):
  kubectl --context $PROFILE -n $OBS_NS logs deployment/otel-collector
EOF
fi
echo
echo "Remove everything: scripts/down.sh"
