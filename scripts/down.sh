#!/usr/bin/env bash
# Removes the demo that scripts/up.sh started.
#
#   scripts/down.sh                 delete the whole minikube profile (default)
#   scripts/down.sh --keep-cluster  uninstall the charts and their namespaces only
#
# MINIKUBE_PROFILE selects the profile (default somework), as for up.sh.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROFILE="${MINIKUBE_PROFILE:-somework}"
keep_cluster=false
case "${1:-}" in
  "") ;;
  --keep-cluster) keep_cluster=true ;;
  *) die "unknown argument '$1'. Usage: scripts/down.sh [--keep-cluster]" ;;
esac

PATH="$TOOLS_BIN:$PATH"
require_cmd minikube "Nothing to remove without it: scripts/up.sh needs minikube too."

if ! minikube profile list -o json 2>/dev/null | grep -q "\"Name\":\"$PROFILE\""; then
  log "minikube profile $PROFILE does not exist: nothing to remove"
  exit 0
fi

if ! $keep_cluster; then
  log "deleting minikube profile $PROFILE (cluster, images and data)"
  minikube delete --profile "$PROFILE"
  exit 0
fi

require_cmd helm "Run scripts/install-k8s-tools.sh."
require_cmd kubectl "Run scripts/install-k8s-tools.sh."
for release in "somework:$APP_NS" "otel-collector:$OBS_NS" "demo-backends:$OBS_NS"; do
  name="${release%%:*}"
  namespace="${release#*:}"
  if helm --kube-context "$PROFILE" status "$name" --namespace "$namespace" >/dev/null 2>&1; then
    log "helm uninstall $name (namespace $namespace)"
    helm --kube-context "$PROFILE" uninstall "$name" --namespace "$namespace" --wait
  fi
done
for namespace in "$APP_NS" "$OBS_NS"; do
  log "deleting namespace $namespace (and the Secrets up.sh created there)"
  kubectl --context "$PROFILE" delete namespace "$namespace" --ignore-not-found --wait
done
log "done; the minikube profile $PROFILE is still running (scripts/down.sh deletes it)"
