//! The floor of `make bench`: axum serving somework's `/somework` reply with
//! the same zero-length sleep, and nothing else: no tracing, no request log,
//! no limits.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use somework_peers_axum::{listen_addr, terminated, work_reply};

async fn somework() -> axum::Json<serde_json::Value> {
    tokio::time::sleep(Duration::ZERO).await;
    work_reply(None, false)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen_addr()).await?;
    let app = Router::new().route("/somework", get(somework));
    axum::serve(listener, app)
        .with_graceful_shutdown(terminated())
        .await?;
    Ok(())
}
