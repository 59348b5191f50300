#!/usr/bin/env bash
# Mutation testing of the parsing and accounting modules (make mutants): the
# configuration, trace-context propagation, export accounting and the HTTP
# instrumentation, against the unit tests and the fast service suite. The
# files and test binaries are in .cargo/mutants.toml; arguments are passed on
# to cargo mutants (e.g. --file src/config/env.rs, --list). CPU heavy: it runs
# one build at a time at low priority. Not part of make test.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CARGO_MUTANTS_VERSION="27.1.0"
install_root="$CACHE_DIR/cargo-mutants-$CARGO_MUTANTS_VERSION"

if [[ ! -x "$install_root/bin/cargo-mutants" ]]; then
  require_cmd cargo "Install Rust (https://rustup.rs)."
  log "installing cargo-mutants $CARGO_MUTANTS_VERSION into $install_root"
  cargo install --locked --quiet --version "$CARGO_MUTANTS_VERSION" --root "$install_root" cargo-mutants ||
    die "could not install cargo-mutants from crates.io; check network access to crates.io"
fi
export PATH="$install_root/bin:$PATH"

# A target directory of its own, beside the checkout's (scripts/lib.sh), so
# a mutants run never holds the lock that make test needs. Seeded once from
# the checkout's release build, so the dependencies are not built again.
use_checkout_target_dir
mutants_target="$CARGO_TARGET_DIR-mutants"
if [[ ! -d "$mutants_target/release" && -d "$CARGO_TARGET_DIR/release" ]]; then
  log "seeding $mutants_target from $CARGO_TARGET_DIR/release"
  mkdir -p "$mutants_target"
  cp -a "$CARGO_TARGET_DIR/release" "$mutants_target/"
fi
export CARGO_TARGET_DIR="$mutants_target"
# Incremental builds of the mutated crate; dependencies are not affected.
export CARGO_INCREMENTAL=1
cd "$ROOT"
log "cargo mutants (results in mutants.out/; it takes hours on two cores)"
exec nice -n 15 cargo mutants --jobs 1 "$@"
