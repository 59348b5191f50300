//! Steady, open-loop HTTP load from inside the cluster, for the local
//! cluster's fault tests: `steady-load URL RATE SECONDS`.
//!
//! One GET every 1/RATE seconds, on schedule whether or not earlier ones have
//! answered, each with a `traceparent` of its own whose sampled flag is set,
//! so every answered request's server span must arrive. Prints one JSON line
//! at the end: `{"sent", "answered", "failed", "failures": [...],
//! "answers": [[trace_id, sent_at_unix_ms], ...]}`.
//! A stand-in until `somework load` can run as the Job instead.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, rate, seconds] = args.as_slice() else {
        return Err("usage: steady-load URL RATE SECONDS".into());
    };
    let rate: u32 = rate.parse()?;
    let seconds: u32 = seconds.parse()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let random = RandomState::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut requests = Vec::new();
    for n in 0..rate * seconds {
        ticker.tick().await;
        let trace_id = format!(
            "{:016x}{:016x}",
            random.hash_one((n, 0)),
            random.hash_one((n, 1))
        );
        let traceparent = format!("00-{trace_id}-{:016x}-01", random.hash_one((n, 2)));
        let sent_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let request = client.get(url).header("traceparent", traceparent).send();
        requests.push(tokio::spawn(async move {
            match request.await {
                Ok(response) if response.status().is_success() => Ok(json!([trace_id, sent_at])),
                Ok(response) => Err(format!("{trace_id}: HTTP {}", response.status())),
                Err(error) => Err(format!("{trace_id}: {error}")),
            }
        }));
    }
    let (mut answered, mut failures) = (Vec::new(), Vec::new());
    for request in requests {
        match request.await? {
            Ok(answer) => answered.push(answer),
            Err(failure) => failures.push(failure),
        }
    }
    println!(
        "{}",
        json!({
            "sent": answered.len() + failures.len(),
            "answered": answered.len(),
            "failed": failures.len(),
            "failures": failures,
            "answers": answered,
        })
    );
    Ok(())
}
