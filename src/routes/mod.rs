//! The HTTP API: the router built from the endpoint catalogue, shared
//! state, the server limits as tower layers, and the fallbacks that keep
//! every error response JSON.

pub mod catalog;
pub mod chain;
mod health;
pub mod limits;
mod work;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::Uri;
use axum::middleware::{from_fn, map_response};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;

use self::catalog::{Endpoint, Spec};
use crate::downstream::Downstream;
use crate::error::AppError;
use crate::telemetry::http::trace_requests;
use crate::work::Work;

/// State shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub work: Work,
    pub downstream: Downstream,
    pub service_name: Arc<str>,
    pub readiness: Readiness,
}

/// Whether the service takes new traffic; false once shutdown has begun.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn ready() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    pub fn set_not_ready(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Builds the router: [`routes`] behind [`with_limits`].
pub fn router(state: AppState) -> Router {
    with_limits(routes(), state)
}

/// The traced routes of the API: the catalogue's endpoints that have a
/// trace shape.
pub fn routes() -> Router<AppState> {
    catalogued(|spec| spec.trace.is_some())
}

/// The catalogue's endpoints that `keep` selects, each on its route.
fn catalogued(keep: impl Fn(&Spec) -> bool) -> Router<AppState> {
    Endpoint::ALL
        .into_iter()
        .map(Endpoint::spec)
        .filter(|spec| keep(spec))
        .fold(Router::new(), |router, spec| {
            router.route(spec.route, spec.method_router())
        })
}

/// Puts `traced` behind the server limits, adds the probes (the catalogue's
/// untraced endpoints) and the JSON fallbacks. Every route of `traced` runs
/// inside a SERVER span; the probes stay untraced so they do not flood the
/// traces, and outside the concurrency limit so that load does not fail
/// them. Kept apart from [`routes`] so that tests can put a route of their
/// own (one that panics or hangs) behind the very layers the service uses.
///
/// Layers run outside-in: header size (431), body size (tower-http, 413),
/// concurrency limit with load shedding (tower, 503), SERVER span, timeout
/// (tower, 503), panic catcher (tower-http, 500), handler. A timeout or a
/// panic is therefore still recorded on the request's span. tower's errors
/// become JSON in [`limits::refused`], the body limit's plain 413 in
/// [`limits::explain_body_limit`].
pub fn with_limits(traced: Router<AppState>, state: AppState) -> Router {
    let traced = traced
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(limits::panic_response))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(limits::refused))
                .timeout(limits::REQUEST_TIMEOUT),
        )
        .layer(from_fn(trace_requests))
        // Global: `Router::layer` wraps each route apart, and the limit is
        // one for all of them.
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(limits::refused))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(
                    limits::MAX_CONCURRENT_REQUESTS,
                )),
        );
    let probes =
        catalogued(|spec| spec.trace.is_none()).method_not_allowed_fallback(method_not_allowed);
    traced
        .merge(probes)
        .layer(RequestBodyLimitLayer::new(limits::MAX_BODY_BYTES))
        .layer(map_response(limits::explain_body_limit))
        .layer(from_fn(limits::reject_large_headers))
        .with_state(state)
}

async fn not_found(uri: Uri) -> AppError {
    AppError::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
