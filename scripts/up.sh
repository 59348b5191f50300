#!/usr/bin/env bash
# The one-command demo: somework, the OpenTelemetry Collector and (without a
# Sentry account) Jaeger and Bugsink on a minikube cluster of its own, or on
# the local cluster (Linux as root, no Docker: scripts/local-cluster.sh).
#
#   scripts/up.sh                     (or: make up)                minikube
#   CLUSTER=local scripts/up.sh       (or: make up CLUSTER=local)  the local cluster
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

CLUSTER="${CLUSTER:-minikube}"
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
case "$CLUSTER" in
  minikube)
    need minikube "Install it: https://minikube.sigs.k8s.io/docs/start/ (on Linux as root, without Docker: make up CLUSTER=local builds a local cluster instead)"
    need kubectl "Run scripts/install-k8s-tools.sh, or see https://kubernetes.io/docs/tasks/tools/"
    if [[ "${MINIKUBE_DRIVER:-docker}" == docker ]]; then
      need docker "Install Docker (https://docs.docker.com/engine/install/), or set MINIKUBE_DRIVER to another minikube driver."
    fi
    ;;
  local) ;;
  *) die "CLUSTER must be minikube or local, not '$CLUSTER'" ;;
esac
if [[ "$CLUSTER" == local ]] && ! command -v helm >/dev/null 2>&1; then
  scripts/install-k8s-tools.sh
fi
need helm "Run scripts/install-k8s-tools.sh, or see https://helm.sh/docs/intro/install/"
need cargo "Install Rust (https://rustup.rs): scripts/up.sh ends with somework verify."
((missing == 0)) || die "install the tools above, then run scripts/up.sh again"
# A docker command whose daemon is down would fail only minutes later, inside
# `minikube start`.
if [[ "$CLUSTER" == minikube && "${MINIKUBE_DRIVER:-docker}" == docker ]] && ! docker info >/dev/null 2>&1; then
  die "docker is installed, but its daemon does not answer ('docker info' fails). Start Docker (Docker Desktop, or 'sudo systemctl start docker'), make sure 'docker info' works as your user without sudo, or set MINIKUBE_DRIVER to another minikube driver."
fi

if [[ "$CLUSTER" == local ]]; then
  # kubectl from the cluster's own build, at the cluster's version.
  eval "$(scripts/local-cluster.sh env)"
  KUBECTL=(kubectl --kubeconfig "$KUBECONFIG")
  HELM=(helm --kubeconfig "$KUBECONFIG")
  kubectl_hint="kubectl --kubeconfig $KUBECONFIG"
else
  KUBECTL=(kubectl --context "$PROFILE")
  HELM=(helm --kube-context "$PROFILE")
  kubectl_hint="kubectl --context $PROFILE"
fi

# --- 2. Credentials --------------------------------------------------------
# up.sh only passes on what it is given; the otel-collector chart picks the
# pipeline from the credentials (helm/otel-collector/values.yaml, `pipeline`),
# and step 6 reads its pick back from the Deployment.
if [[ -z "${SENTRY_DSN:-}" && -n "${SENTRY_AUTH_TOKEN:-}${SENTRY_ORG:-}${SENTRY_PROJECT:-}" ]]; then
  die "SENTRY_AUTH_TOKEN/SENTRY_ORG/SENTRY_PROJECT carry the traces, but the services' errors need SENTRY_DSN too. Export it (Sentry: Settings > Projects > Client Keys), or unset all of them for zero-account mode."
fi
if [[ -n "${SENTRY_DSN:-}" ]]; then
  step "SENTRY_DSN is set: errors and traces go to Sentry"
else
  step "no SENTRY_DSN: zero-account mode, with Jaeger, VictoriaLogs, Prometheus and Bugsink inside the cluster"
fi

# --- 3. Cluster ------------------------------------------------------------
if [[ "$CLUSTER" == local ]]; then
  step "local cluster: building what is missing (cached) and starting it unless it runs"
  scripts/local-cluster.sh up
elif minikube status --profile "$PROFILE" >/dev/null 2>&1; then
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
values=()
if [[ "$CLUSTER" == local ]]; then
  # Assembled from the release binary (same user, port and read-only root as
  # the Dockerfile, which only the kind workflow builds) and imported.
  step "building the release binary and its image for the local cluster"
  target_dir="${CARGO_TARGET_DIR:-$CACHE_DIR/target-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)}"
  # Without the `verify` feature, as the Dockerfile builds it.
  CARGO_TARGET_DIR="$target_dir" cargo build --release --locked --no-default-features --bin somework
  image="$(scripts/local-cluster.sh image somework "$target_dir/release/somework" \
    --config.exposedports 8080/tcp --config.env LOG_FORMAT=json)"
  tag="${image##*:}"
  while read -r name ref; do
    values+=(--set "$name=${ref##*:}")
  done < <(scripts/local-cluster.sh images)
elif minikube image ls --profile "$PROFILE" | grep -q "somework:$tag\$"; then
  step "image $image is already in minikube"
else
  step "building $image inside minikube (the first build compiles every dependency: 5 to 15 minutes)"
  minikube image build --profile "$PROFILE" -t "$image" .
fi

# --- 5. Secrets ------------------------------------------------------------
# Credentials reach helm as a values file on stdin, never on a command line
# (which `ps` would show), and the charts keep them in Secrets.
for ns in "$OBS_NS" "$APP_NS"; do
  "${KUBECTL[@]}" create namespace "$ns" --dry-run=client -o yaml | "${KUBECTL[@]}" apply -f - >/dev/null
done

# Earlier versions of this script made these Secrets with kubectl; the charts
# make their own now, and helm refuses to take over an object it did not make.
for secret in "$OBS_NS/otel-collector-sentry" "$APP_NS/somework-sentry-dsn"; do
  # "<name> <manager>", or nothing when there is no such Secret.
  found="$("${KUBECTL[@]}" --namespace "${secret%%/*}" get secret "${secret#*/}" --ignore-not-found \
    -o jsonpath='{.metadata.name} {.metadata.labels.app\.kubernetes\.io/managed-by}')"
  if [[ -n "$found" && "$found" != *" Helm" ]]; then
    step "removing the Secret $secret that an earlier scripts/up.sh made (the charts make their own)"
    "${KUBECTL[@]}" --namespace "${secret%%/*}" delete secret "${secret#*/}" >/dev/null
  fi
done

# json_string VALUE: VALUE as a JSON (so YAML) string.
json_string() {
  local value="${1//\\/\\\\}"
  value="${value//\"/\\\"}"
  printf '"%s"' "$value"
}
collector_credentials='{}'
somework_credentials='{}'
if [[ -n "${SENTRY_DSN:-}" ]]; then
  if [[ -n "${SENTRY_AUTH_TOKEN:-}" && -n "${SENTRY_ORG:-}" && -n "${SENTRY_PROJECT:-}" ]]; then
    collector_credentials="{sentry: {authToken: $(json_string "$SENTRY_AUTH_TOKEN"), org: $(json_string "$SENTRY_ORG"), project: $(json_string "$SENTRY_PROJECT"), url: $(json_string "${SENTRY_URL:-https://sentry.io}")}}"
  else
    otlp_env="$(scripts/sentry-otlp-env.sh "$SENTRY_DSN")" || die "SENTRY_DSN is not a valid DSN"
    eval "$otlp_env"
    collector_credentials="{sentry: {publicKey: $(json_string "$SENTRY_PUBLIC_KEY"), otlpTracesUrl: $(json_string "$SENTRY_OTLP_TRACES_URL"), otlpLogsUrl: $(json_string "$SENTRY_OTLP_LOGS_URL")}}"
  fi
  somework_credentials="{sentry: {dsn: $(json_string "$SENTRY_DSN")}}"
fi

# --- 6. Charts -------------------------------------------------------------
# install RELEASE NAMESPACE CREDENTIALS [HELM ARGS...]: CREDENTIALS (YAML)
# go in on stdin.
install() {
  local release="$1" namespace="$2" credentials="$3" local_values=()
  shift 3
  if [[ "$CLUSTER" == local ]]; then
    local_values=(-f "helm/$release/ci/local-cluster-values.yaml")
    for value in "${values[@]}"; do
      [[ "$value" == "$release:"* ]] && local_values+=(--set "${value#"$release:"}")
    done
  fi
  step "helm upgrade --install $release (namespace $namespace)"
  printf '%s\n' "$credentials" |
    "${HELM[@]}" upgrade --install "$release" "helm/$release" --namespace "$namespace" \
      --wait --timeout 10m ${local_values[@]+"${local_values[@]}"} -f - "$@" >/dev/null
}
if [[ -z "${SENTRY_DSN:-}" ]]; then
  install demo-backends "$OBS_NS" '{}'
elif "${HELM[@]}" status demo-backends --namespace "$OBS_NS" >/dev/null 2>&1; then
  step "removing the zero-account backends (Sentry takes both legs now)"
  "${HELM[@]}" uninstall demo-backends --namespace "$OBS_NS" --wait >/dev/null
fi
install otel-collector "$OBS_NS" "$collector_credentials"
picked="$("${KUBECTL[@]}" --namespace "$OBS_NS" get deployment otel-collector \
  -o jsonpath='{.metadata.labels.otel-collector/pipeline}')"
step "the collector runs the \"$picked\" pipeline (helm/otel-collector/pipelines/)"
install somework "$APP_NS" "$somework_credentials" --set "image.tag=$tag"
for deployment in somework-frontend somework-backend; do
  "${KUBECTL[@]}" --namespace "$APP_NS" rollout status "deployment/$deployment" --timeout 5m
done

step "helm test somework (calls /somework, /errorwork and /chain inside the cluster)"
"${HELM[@]}" test somework --namespace "$APP_NS" --logs

# --- 7. Verify ----------------------------------------------------------------
# Workloads, the collector's span counters, and (zero-account) every trace in
# Jaeger and every error in Bugsink, with trace ids of its own; it prints them.
step "somework verify (the first run compiles it: a few minutes)"
verify_args=()
# The local cluster's kubeconfig (KUBECONFIG, set above) has one context.
[[ "$CLUSTER" == local ]] || verify_args=(--context "$PROFILE")
cargo run --release --quiet -- verify ${verify_args[@]+"${verify_args[@]}"}

# --- 8. Where to look --------------------------------------------------------
echo
where="profile $PROFILE"
[[ "$CLUSTER" == minikube ]] || where="local cluster, kubeconfig $KUBECONFIG"
echo "somework is up ($where, image $image). Trace ids: see the report above."
echo
if [[ -z "${SENTRY_DSN:-}" ]]; then
  password_cmd="$kubectl_hint -n $OBS_NS get secret bugsink -o jsonpath='{.data.ADMIN_PASSWORD}' | base64 -d"
  cat <<EOF
Traces, in Jaeger:
  $kubectl_hint -n $OBS_NS port-forward service/jaeger 16686:16686
  http://localhost:16686/trace/<trace id>

Logs, in VictoriaLogs (by trace id):
  $kubectl_hint -n $OBS_NS port-forward service/victoria-logs 9428:9428
  curl localhost:9428/select/logsql/query --data-urlencode 'query=trace_id:="<trace id>"'

RED metrics, in Prometheus and in Jaeger's Monitor tab:
  $kubectl_hint -n $OBS_NS port-forward service/prometheus 9090:9090
  curl localhost:9090/api/v1/query --data-urlencode 'query=traces_span_metrics_calls_total'

Errors, in Bugsink (Sentry-compatible; user admin@example.com):
  $kubectl_hint -n $OBS_NS port-forward service/bugsink 8000:8000
  http://localhost:8000   password: $password_cmd
  Each issue's event shows its trace id under contexts > trace.

Call it yourself:
  $kubectl_hint -n $APP_NS port-forward service/somework-frontend 8080:8080
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
  Issues: search   trace:<trace id>
  Traces: Explore > Traces, search   trace:<trace id>
  (traces take up to a minute: the collector batches, Sentry ingests)

Collector logs (one line per exported batch, and any export error):
  $kubectl_hint -n $OBS_NS logs deployment/otel-collector
EOF
fi
echo
if [[ "$CLUSTER" == local ]]; then
  echo "Remove everything: make down CLUSTER=local   (scripts/local-cluster.sh down)"
else
  echo "Remove everything: scripts/down.sh"
fi
