//! The Sentry API test double (`somework_testkit::sentry_double`) as a
//! program, so it can run as a pod: the local cluster's end-to-end test points
//! the collector's `sentry` and `sentry-otlp` modes at it.
//!
//! Port 8080 is the double's Sentry API. Port 8081 answers the test:
//! `GET /projects` (slug, id, key and DSN of each project) and `GET /spans`
//! (every span accepted, with its project and key). Settings, from the
//! environment: `SENTRY_DOUBLE_AUTHORITY` (the `host[:port]` its URLs and DSNs
//! name: the Service's DNS name), `SENTRY_DOUBLE_ORG`, `SENTRY_DOUBLE_TOKEN`
//! and `SENTRY_DOUBLE_PROJECTS` (comma-separated slugs).

use std::env;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use somework_testkit::sentry_double::SentryDouble;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let setting = |name: &str| env::var(name).map_err(|_| format!("set {name}"));
    let mut builder = SentryDouble::builder()
        .listen(SocketAddr::from(([0, 0, 0, 0], 8080)))
        .authority(&setting("SENTRY_DOUBLE_AUTHORITY")?)
        .org(&setting("SENTRY_DOUBLE_ORG")?)
        .token(&setting("SENTRY_DOUBLE_TOKEN")?);
    let slugs: Vec<String> = setting("SENTRY_DOUBLE_PROJECTS")?
        .split(',')
        .map(str::to_owned)
        .collect();
    for slug in &slugs {
        builder = builder.project(slug);
    }
    let double = Arc::new(builder.start().await);

    let projects: Value = slugs
        .iter()
        .map(|slug| {
            let project = double.project(slug);
            json!({
                "slug": project.slug,
                "id": project.id,
                "public_key": project.public_key,
                "dsn": double.dsn(slug),
            })
        })
        .collect();
    let readback = Router::new()
        .route("/projects", get(move || async move { Json(projects) }))
        .route(
            "/spans",
            get(move || async move {
                let spans: Vec<Value> = double
                    .spans()
                    .into_iter()
                    .map(|ingested| {
                        let span = &ingested.span;
                        json!({
                            "project_id": ingested.project_id,
                            "sentry_key": ingested.sentry_key,
                            "trace_id": span.trace_id(),
                            "span_id": span.span_id(),
                            "name": span.name(),
                            "kind": span.kind().as_str_name(),
                            "resource": *span.resource,
                        })
                    })
                    .collect();
                Json(spans)
            }),
        );
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", 8081)).await?;
    println!("sentry double: API on :8080, read-back on :8081");
    axum::serve(listener, readback).await?;
    Ok(())
}
