# syntax=docker/dockerfile:1
#
# The somework service image: a release build on Debian 12 (glibc), run on
# distroless cc-debian12 as the non-root user 65532. About 37 MB in all, under
# the 40 MB that .github/workflows/e2e-kind.yml allows: distroless/cc ~23 MB
# (glibc, libgcc_s, CA certificates, tzdata) and the binary ~14 MB (fat LTO,
# one codegen unit: ~11 MB of code and symbols, and this crate's debug info,
# ~12 MB, compressed to ~3 MB). The debug info gives Sentry's stack traces
# their files and lines (see the README's "Stack traces"); the `backtrace`
# crate reads zlib-compressed sections as they are. A static musl build on
# distroless/static would be smaller, but musl's allocator is slow under a
# multi-threaded Tokio runtime.
#
#   docker build -t somework:dev .
#   minikube image build -t somework:dev .      (what scripts/up.sh does)
#
# Dependencies are compiled in their own layer (cargo-chef), so a change to
# src/ rebuilds only the service itself.

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS chef
# rustls' crypto provider, aws-lc-rs (used by reqwest and sentry), compiles
# AWS-LC from C: it needs a C toolchain, cmake, clang (bindgen) and perl.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang libclang-dev perl make \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /app
# Smaller, faster release binary for the image only (the repository's own
# profile stays quick to build for tests). Nothing is stripped: the release
# profile's debug info (this crate's line tables and function names, see
# Cargo.toml) gives Sentry's stack traces their files and lines.
ENV CARGO_PROFILE_RELEASE_LTO=true \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Only the dependencies: this layer is cached until Cargo.toml/Cargo.lock change.
# --no-default-features leaves out `somework verify` (kube, k8s-openapi): the
# service in the image never runs it.
RUN cargo chef cook --release --locked --no-default-features --package somework --bin somework --recipe-path recipe.json
COPY . .
# The debug sections compressed (zlib, as `ld --compress-debug-sections`
# writes them): a quarter of their size, every file, line and function name
# kept. They are decompressed when the first error is resolved.
RUN cargo build --release --locked --no-default-features --package somework --bin somework \
 && mkdir -p /out \
 && objcopy --compress-debug-sections=zlib target/release/somework /out/somework \
 && chmod 0755 /out/somework

# distroless: no shell, no package manager; glibc and libgcc_s for the
# unwinder, CA certificates for HTTPS to Sentry. "nonroot" is UID 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/somework /usr/local/bin/somework
USER 65532:65532
EXPOSE 8080
# The service listens on 0.0.0.0:8080 by default; containers log JSON.
ENV LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/somework"]
