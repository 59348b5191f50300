//! What gets deployed, checked without a cluster: the Helm charts rendered
//! with the real helm over every value set in `helm/*/ci/`, the chart's
//! `helm test` against the real service, the container image's build
//! context, TLS settings, the workflows, the plain manifests in `k8s/`, and
//! the facts (pipelines, namespaces, endpoints) that several files must agree on.
//! The end-to-end run on a real Kubernetes is the `cluster` suite.

mod actionlint;
mod charts;
mod endpoints;
mod helm_test_pod;
mod helpers;
mod image;
mod k8s_drift;
mod one_source;
mod tls;
mod verify;
