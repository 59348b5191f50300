#!/usr/bin/env bash
# make bench: what tracing costs the service, and what the load tool itself
# can do, measured side by side and written to BENCHMARKS.md.
#
# Needs taskset (util-linux), the collector built by scripts/build-collector.sh,
# Go (for the gin peer, benches/peers/gin-otel) and wrk, which this script unpacks from Debian's package into the cache
# (apt-get download + dpkg -x; nothing is installed system-wide).
#
# Usage: scripts/bench.sh [--quick] [--only SECTION]
#   --quick: fewer, shorter rounds
#   --only peers|wrk|somework|chain|instructions|memory: one section
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WRK_PACKAGES=(wrk libluajit-5.1-2)

# install_wrk: unpacks wrk and the LuaJIT library it links into the cache,
# keyed by the candidate versions, and prints the directory.
install_wrk() {
  require_cmd apt-get "wrk comes from Debian's package; run on Debian or Ubuntu, or set WRK=/path/to/wrk."
  local key="" package version
  for package in "${WRK_PACKAGES[@]}"; do
    version="$(apt-cache policy "$package" | awk '/Candidate:/ {print $2}')"
    [[ -n "$version" && "$version" != "(none)" ]] ||
      die "apt has no candidate for $package; run apt-get update first"
    key+="${package}_${version}-"
  done
  local dir="$CACHE_DIR/wrk/${key%-}"
  if [[ ! -x "$dir/usr/bin/wrk" ]]; then
    log "unpacking ${WRK_PACKAGES[*]} into $dir"
    local download
    download="$(mktemp -d)"
    trap 'rm -rf "$download"' RETURN
    (cd "$download" && apt-get download "${WRK_PACKAGES[@]}" >/dev/null 2>&1) ||
      die "apt-get download ${WRK_PACKAGES[*]} failed; check access to the Debian mirror"
    mkdir -p "$dir"
    for deb in "$download"/*.deb; do
      dpkg -x "$deb" "$dir"
    done
  fi
  printf '%s\n' "$dir"
}

require_cmd taskset "Install util-linux."
[[ "$(nproc --all)" -ge 2 ]] || die "the benchmark pins the service and the load to two different CPUs; this machine has one"
collector="$TOOLS_BIN/otelcol-somework"
[[ -x "$collector" ]] || die "no collector at $collector; run scripts/build-collector.sh (or set SOMEWORK_TOOLS_DIR)"

if [[ -z "${WRK:-}" ]]; then
  wrk_dir="$(install_wrk)"
  WRK="$wrk_dir/usr/bin/wrk"
  export LD_LIBRARY_PATH="$wrk_dir/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
"$WRK" --version 2>&1 | head -1 >&2 || true
export WRK SOMEWORK_TOOLS_DIR="$TOOLS_DIR"

cd "$ROOT"
# The peers the service is measured against (benches/peers/), built from
# source into the cache: the Rust ones as a workspace of their own (so that
# make test never builds them), the Go one with its own go.mod, its modules
# from the Go module proxy. Later runs reuse both build caches.
peers_dir="$CACHE_DIR/peers"
log "building the Rust peers (benches/peers/axum) into $peers_dir"
cargo build --release --locked --manifest-path benches/peers/axum/Cargo.toml --target-dir "$peers_dir/target"
for peer in peer-axum-plain peer-axum-tracing-opentelemetry; do
  cp "$peers_dir/target/release/$peer" "$peers_dir/$peer"
done
require_go "the Go peer of make bench (benches/peers/gin-otel)"
log "building the Go peer (benches/peers/gin-otel) into $peers_dir"
(cd benches/peers/gin-otel && go build -trimpath -o "$peers_dir/peer-gin-otel" .)
export SOMEWORK_PEERS_DIR="$peers_dir"

# Issue 9's reference handler, measured beside the service; the benchmark
# finds it next to the binaries of the same profile.
log "building the reference handler (examples/reference.rs)"
cargo build --profile bench --example reference
log "building and running the benchmark (cargo bench --bench overhead)"
cargo bench --bench overhead -- "$@"
