//! SIGTERM ends the service within its bound, on one CPU with a hung
//! collector, and under load without losing a span of an answered request.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::Value;
use somework::server::DRAIN_TIMEOUT;
use somework_testkit::api::SomeworkApi as _;
use somework_testkit::net::Blackhole;
use somework_testkit::otlp::OtlpReceiver;

use crate::helpers::{
    SHUTDOWN_BOUND, assert_prompt_clean_exit, figures, otlp, serial, wait_for_message,
};

#[tokio::test(flavor = "multi_thread")]
async fn on_one_cpu_with_a_hung_collector_sigterm_exits_in_time() {
    let _serial = serial().await;
    // The known opentelemetry-rust trap: a blocking flush on the only Tokio
    // worker, while the exporter needs that worker, never returns.
    let hung = Blackhole::start().await;
    let mut service = otlp(format!("http://{}", hung.addr()))
        .env("TOKIO_WORKER_THREADS", "1")
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .env("SENTRY_DSN", format!("http://public@{}/1", hung.addr()))
        .env("ERROR_RATE", "1")
        .wrapped_in(&["taskset", "-c", "0"])
        .start()
        .await;

    for _ in 0..20 {
        assert_eq!(service.get_somework().await.status, 200);
    }
    assert_prompt_clean_exit(&mut service).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_loses_no_span_of_an_answered_request() {
    const CLIENTS: usize = 8;
    let _serial = serial().await;
    let receiver = OtlpReceiver::start().await;
    let mut service = otlp(receiver.endpoint())
        .env("WORK_SLEEP_MS", "50")
        .env("OTEL_BSP_SCHEDULE_DELAY", "1000")
        .start()
        .await;
    let url = service.url("/somework");

    // Set just before SIGTERM is sent. A connection the kernel accepted
    // but the server never took from its backlog is reset when the listener
    // closes; the client cannot tell that from a cut request, so an error is
    // only acceptable once the signal is on its way.
    let signalled_at: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let url = url.clone();
            let signalled_at = signalled_at.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .expect("client");
                let mut answered = Vec::new();
                loop {
                    match client.get(&url).send().await {
                        Ok(response) => {
                            assert_eq!(response.status(), 200, "an accepted request must complete");
                            let body: Value = response.json().await.expect("a complete JSON body");
                            let trace_id = body["trace_id"].as_str().expect("trace_id").to_owned();
                            answered.push((trace_id, Instant::now()));
                        }
                        Err(error) => {
                            assert!(
                                signalled_at.get().is_some(),
                                "request failed before the shutdown: {error}"
                            );
                            break;
                        }
                    }
                }
                answered
            })
        })
        .collect();

    // Under way: the receiver holds the server spans of many answered requests.
    receiver
        .wait_for(Duration::from_secs(20), |spans| {
            spans
                .iter()
                .filter(|s| s.kind() == SpanKind::Server)
                .count()
                > 60
        })
        .await;
    let _ = signalled_at.set(Instant::now());
    assert_prompt_clean_exit(&mut service).await;

    let signalled_at = *signalled_at.get().expect("set above");
    let mut answered = HashSet::new();
    let mut finished_after_signal = 0;
    for client in clients {
        for (trace_id, finished) in client.await.expect("client task") {
            finished_after_signal += usize::from(finished > signalled_at);
            answered.insert(trace_id);
        }
    }
    // Each client had a 50 ms request in flight when the signal came.
    assert!(
        finished_after_signal > 0,
        "no in-flight request completed after SIGTERM"
    );
    let exported: HashSet<_> = receiver
        .spans()
        .iter()
        .filter(|s| s.kind() == SpanKind::Server)
        .map(|s| s.trace_id())
        .collect();
    figures(
        "SIGTERM under load",
        serde_json::json!({
            "answered": answered.len(),
            "finished_after_sigterm": finished_after_signal,
            "server_spans_received": exported.len(),
        }),
    );
    assert!(
        answered.len() > 50,
        "the load was too light to mean anything"
    );
    assert_eq!(
        answered.len(),
        exported.len(),
        "answered and exported counts differ"
    );
    assert_eq!(
        answered, exported,
        "answered requests and exported server spans differ"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_in_flight_request_is_cut_at_the_drain_bound() {
    let _serial = serial().await;
    let receiver = OtlpReceiver::start().await;
    // The next hop of /chain accepts the call and never answers; the
    // service's own downstream timeout (10 s) is longer than the drain.
    let next_hop = Blackhole::start().await;
    let mut service = otlp(receiver.endpoint())
        .env("DOWNSTREAM_URL", format!("http://{}", next_hop.addr()))
        .start()
        .await;
    let url = service.url("/chain?hops=1");
    let in_flight = tokio::spawn(async move {
        let result = reqwest::get(&url).await;
        (result.map(|r| r.status()), Instant::now())
    });
    assert_eq!(
        next_hop.accepted(1, Duration::from_secs(10)).await,
        1,
        "the request never reached the next hop"
    );

    let signalled_at = Instant::now();
    let took = assert_prompt_clean_exit(&mut service).await;
    let (answer, ended_at) = in_flight.await.expect("the client task");
    let cut_after = ended_at - signalled_at;
    eprintln!("in-flight request cut after {cut_after:?}; exit after {took:?}");
    assert!(
        answer.is_err(),
        "the hung request got an answer: {answer:?}"
    );
    assert!(
        cut_after >= DRAIN_TIMEOUT && cut_after < SHUTDOWN_BOUND,
        "the request was cut after {cut_after:?}, not at the {DRAIN_TIMEOUT:?} drain bound"
    );
    wait_for_message(&service, "in-flight requests did not finish in time").await;
}
