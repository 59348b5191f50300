//! The Helm charts, rendered with the real helm v4 over every value set in
//! `helm/*/ci/` and checked with kubernetes-validate, the collector's own
//! `validate`, and assertions on the typed objects.
//!
//! Needs the tools from scripts/install-k8s-tools.sh (and, for the collector
//! check, scripts/build-collector.sh); each test skips locally without them
//! and fails under CI=true.

mod collector;
mod collector_pipelines;
mod credentials;
mod demo_backends;
mod hardening;
mod names_and_labels;
mod red_metrics;
mod somework;
mod validity;
