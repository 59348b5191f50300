//! The HTTP server: binds, serves until SIGTERM or SIGINT, then turns
//! readiness off, stops accepting and drains in-flight requests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use url::Url;

use crate::config::Config;
use crate::downstream::Downstream;
use crate::routes::{self, AppState, Readiness};
use crate::work::Work;

/// How long in-flight requests may take to finish once shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// The HTTP server, bound and ready to serve. Building (which can fail on a
/// bad address) is kept apart from running, as in zero-to-production.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    downstream_url: Url,
    state: AppState,
    readiness: Readiness,
}

impl Server {
    /// Binds `LISTEN_ADDR` and builds the handlers' state.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("cannot listen on LISTEN_ADDR={}", config.listen_addr))?;
        let addr = listener
            .local_addr()
            .context("cannot read the listening address")?;
        let downstream_url = match &config.downstream_url {
            Some(url) => url.clone(),
            None => own_url(addr)?,
        };
        let readiness = Readiness::ready();
        let state = AppState {
            work: Work::new(config.work),
            downstream: Downstream::new(downstream_url.clone())
                .context("cannot build the HTTP client for DOWNSTREAM_URL")?,
            service_name: Arc::from(config.telemetry.resource.service_name.as_str()),
            readiness: readiness.clone(),
        };
        Ok(Self {
            listener,
            addr,
            downstream_url,
            state,
            readiness,
        })
    }

    /// Serves until SIGTERM or SIGINT, then stops accepting and gives
    /// in-flight requests at most [`DRAIN_TIMEOUT`] to finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            addr,
            downstream_url,
            state,
            readiness,
        } = self;
        let (stopping_tx, stopping) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received; draining in-flight requests");
            readiness.set_not_ready();
            let _ = stopping_tx.send(true);
        });

        tracing::info!(%addr, downstream = %downstream_url, "listening");
        let server = axum::serve(listener, routes::router(state))
            .with_graceful_shutdown(signalled(stopping.clone()));
        let drain_deadline = async {
            signalled(stopping).await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        };
        tokio::select! {
            result = server => result.context("HTTP server failed")?,
            () = drain_deadline => {
                tracing::warn!(timeout = ?DRAIN_TIMEOUT, "in-flight requests did not finish in time; closing them");
            }
        }
        tracing::info!("HTTP server stopped");
        Ok(())
    }
}

/// Resolves once shutdown has been signalled.
async fn signalled(mut stopping: watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens after it sent.
    let _ = stopping.wait_for(|stopping| *stopping).await;
}

/// Waits for SIGTERM (what Kubernetes sends) or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut sigterm) => {
            tokio::select! {
                _ = sigterm.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// This service's own URL, the default next hop for `/chain`.
fn own_url(addr: SocketAddr) -> anyhow::Result<Url> {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url = format!("http://{}", SocketAddr::new(ip, addr.port()));
    Url::parse(&url).with_context(|| format!("cannot build this service's URL from {addr}"))
}
