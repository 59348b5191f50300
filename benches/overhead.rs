//! What tracing costs the service: the real binary with tracing off
//! (`OTEL_SDK_DISABLED=true`, the baseline), with the default 20% head
//! sampling, and with every trace sampled, all exporting to a healthy
//! in-process OTLP receiver.
//!
//! The three run side by side and take turns, round after round, so that
//! the noise of a shared machine falls on all of them alike; the report
//! gives ratios to the baseline. Run with `cargo bench --bench overhead`.

use std::time::{Duration, Instant};

use somework_testkit::api::SomeworkApi as _;
use somework_testkit::otlp::OtlpReceiver;
use somework_testkit::process::rss_kib;
use somework_testkit::service::{Service, ServiceBuilder};

const ROUNDS: usize = 20;
const REQUESTS_PER_ROUND: usize = 250;
const CONCURRENCY: usize = 8;

struct Variant {
    name: &'static str,
    service: Service,
    latencies: Vec<Duration>,
    busy: Duration,
}

async fn round(client: &reqwest::Client, url: &str) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let client = client.clone();
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for _ in 0..REQUESTS_PER_ROUND / CONCURRENCY {
                let sent = Instant::now();
                let response = client.get(&url).send().await.expect("request");
                assert!(response.status().is_success());
                response.bytes().await.expect("body");
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    (latencies, started.elapsed())
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let receiver = OtlpReceiver::start().await;
    let base = || {
        ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"))
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
            .env("OTEL_BSP_SCHEDULE_DELAY", "1000")
    };
    let mut variants = vec![
        Variant {
            name: "tracing off (baseline)",
            service: base().env("OTEL_SDK_DISABLED", "true").start().await,
            latencies: Vec::new(),
            busy: Duration::ZERO,
        },
        Variant {
            name: "20% sampled",
            service: base()
                .env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
                .env("OTEL_TRACES_SAMPLER_ARG", "0.2")
                .start()
                .await,
            latencies: Vec::new(),
            busy: Duration::ZERO,
        },
        Variant {
            name: "100% sampled",
            service: base().start().await,
            latencies: Vec::new(),
            busy: Duration::ZERO,
        },
    ];

    let client = reqwest::Client::new();
    for _ in 0..ROUNDS {
        for variant in &mut variants {
            let (latencies, busy) = round(&client, &variant.service.url("/somework")).await;
            variant.latencies.extend(latencies);
            variant.busy += busy;
        }
    }

    let requests = (ROUNDS * REQUESTS_PER_ROUND) as f64;
    let baseline_rate = requests / variants[0].busy.as_secs_f64();
    let baseline_p99 = {
        let mut sorted = variants[0].latencies.clone();
        sorted.sort();
        percentile(&sorted, 99)
    };
    let baseline_rss = rss_kib(variants[0].service.pid()) as f64;
    println!(
        "{:<24} {:>10} {:>8} {:>10} {:>10} {:>8} {:>10} {:>8}",
        "variant", "req/s", "ratio", "p50", "p99", "ratio", "RSS KiB", "ratio"
    );
    for variant in &mut variants {
        variant.latencies.sort();
        let rate = requests / variant.busy.as_secs_f64();
        let p99 = percentile(&variant.latencies, 99);
        let rss = rss_kib(variant.service.pid());
        println!(
            "{:<24} {:>10.0} {:>8.2} {:>10.2?} {:>10.2?} {:>8.2} {:>10} {:>8.2}",
            variant.name,
            rate,
            rate / baseline_rate,
            percentile(&variant.latencies, 50),
            p99,
            p99.as_secs_f64() / baseline_p99.as_secs_f64(),
            rss,
            rss as f64 / baseline_rss,
        );
    }
    println!("spans received: {}", receiver.spans().len());
}
