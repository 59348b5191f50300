//! The whole demo on a real Kubernetes: the local cluster
//! (`scripts/local-cluster.sh`), deployed by the README's own command
//! (`CLUSTER=local scripts/up.sh`), checked the way a user would check it.
//!
//! One test, in phases, because they share one cluster (starting it takes a
//! minute; building it, on a cold machine, much longer):
//! 1. every Deployment of the three charts is Available and `helm test` passes,
//!    and `helm upgrade` to a bumped version of each chart restarts no pod;
//! 2. from the host, through port-forwards: each request's whole trace is in
//!    Jaeger with the pods' Kubernetes attributes, and the error is in Bugsink
//!    with its stack trace and trace id; a log record is in VictoriaLogs
//!    under its trace id, Prometheus scrapes the collector and Jaeger's
//!    Monitor tab reads Prometheus;
//!    `somework trace` draws those traces from Jaeger, with the Bugsink link;
//! 3. `somework verify`: the healthy demo passes and its JSON agrees with the
//!    cluster; each broken state fails with the line that names it;
//! 4. faults: the collector pod deleted under load, a rolling restart of the
//!    frontend under steady load from inside the cluster;
//! 5. the collector's `sentry` and `sentry-otlp` modes against the Sentry API
//!    test double running as a pod;
//! 6. after `down`, nothing of the cluster is left and the sysctls are as
//!    they were.
//!
//! It needs Linux and root (network namespaces, cgroups, mounts). Without
//! them it fails under `CI=true` and is skipped elsewhere.

mod backends;
mod cluster;
mod demo;
mod faults;
mod jaeger;
mod sentry_modes;
mod trace;
mod upgrade;
mod verify;

use cluster::LocalCluster;

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_on_a_real_kubernetes() {
    let Some(cluster) = LocalCluster::up() else {
        return;
    };
    demo::deployments_are_available_and_helm_test_passes(&cluster);
    upgrade::a_chart_version_bump_restarts_no_pod(&cluster);
    demo::traces_and_errors_arrive_from_the_host(&cluster).await;
    trace::the_waterfall_from_jaeger_with_the_bugsink_link(&cluster).await;
    backends::logs_and_red_metrics_reach_their_backends(&cluster).await;
    verify::passes_on_the_healthy_demo_and_agrees_with_the_cluster(&cluster).await;
    verify::names_each_broken_state(&cluster).await;
    faults::collector_pod_deleted_under_load(&cluster).await;
    faults::rolling_restart_of_the_frontend_under_steady_load(&cluster).await;
    sentry_modes::collector_sends_to_sentry_in_both_modes(&cluster).await;
    cluster.down_and_check_nothing_is_left();
}
