#!/usr/bin/env bash
# Build the slim OpenTelemetry Collector described by collector-config/builder-config.yaml
# with the official OpenTelemetry Collector Builder (ocb), and install it as
# $TOOLS_BIN/otelcol-somework.
#
# Idempotent: the binary is rebuilt only when the manifest (or the ocb version) changed;
# a hash of both is stored next to the binary. The Go module cache (go env GOMODCACHE)
# and build cache (go env GOCACHE) stay where Go keeps them, outside the clone, and the
# generated sources go to $CACHE_DIR, so a second run, or a second clone, reuses them.
#
# Usage: scripts/build-collector.sh [--force]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Keep in step with the component versions in the manifest.
OCB_VERSION=v0.161.0

MANIFEST="$ROOT/collector-config/builder-config.yaml"
BINARY="$TOOLS_BIN/otelcol-somework"
HASH_FILE="$BINARY.sha256"
BUILD_DIR="$CACHE_DIR/otelcol-somework-build"
OCB="$TOOLS_DIR/ocb/$OCB_VERSION/builder"

force=false
case "${1:-}" in
  "") ;;
  --force) force=true ;;
  *) die "unknown argument '$1'. Usage: scripts/build-collector.sh [--force]" ;;
esac

require_go "the collector $OCB_VERSION is built from source with the OpenTelemetry Collector Builder"

want_hash="$( (
  cat "$MANIFEST"
  printf 'ocb %s\n' "$OCB_VERSION"
) | sha256)"

if ! $force && [[ -x "$BINARY" && -f "$HASH_FILE" && "$(cat "$HASH_FILE")" == "$want_hash" ]]; then
  log "otelcol-somework is up to date ($BINARY); use --force to rebuild"
  exit 0
fi

if [[ ! -x "$OCB" ]]; then
  log "installing the OpenTelemetry Collector Builder $OCB_VERSION into ${OCB%/*}"
  mkdir -p "${OCB%/*}"
  GOBIN="${OCB%/*}" go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
fi

log "building otelcol-somework with $(go env GOVERSION) in $BUILD_DIR"
log "(a cold build downloads about 700 MB of modules and compiles quietly for 5-10 minutes on 2 cores; later builds reuse the Go caches and take seconds)"
mkdir -p "$BUILD_DIR"
cp "$MANIFEST" "$BUILD_DIR/builder-config.yaml"
start=$SECONDS
# ocb writes the generated sources, go.mod and the binary to dist.output_path, relative
# to here. CGO is off by default in ocb, so the binary is static.
#
# ocb runs `go mod tidy`, which also resolves the test-only dependencies of every
# component; some module proxies do not serve all of those (for v0.161.0, the
# k8sattributesprocessor's tests import pkg/semconvtest, which is not served). -e lets
# tidy finish without them; the binary never imports them. The go tool applies a GOFLAGS
# entry only to the commands that know the flag, so `go build` is unaffected.
(cd "$BUILD_DIR" && GOFLAGS="-e $(go env GOFLAGS)" "$OCB" --config builder-config.yaml) ||
  die "ocb failed to build the collector (see its output above). Check the component versions in $MANIFEST."

built="$BUILD_DIR/otelcol-somework/otelcol-somework"
[[ -x "$built" ]] || die "ocb finished but $built is missing"

mkdir -p "$TOOLS_BIN"
# Install atomically, so a collector that is running from the old binary is unaffected.
cp "$built" "$BINARY.tmp"
mv -f "$BINARY.tmp" "$BINARY"
printf '%s\n' "$want_hash" >"$HASH_FILE"

log "installed $BINARY ($(du -h "$BINARY" | cut -f1), built in $((SECONDS - start)) s): $("$BINARY" --version)"
