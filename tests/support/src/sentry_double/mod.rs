//! A test double for Sentry's SaaS API, for the collector's end-to-end tests
//! and the service's error transport.
//!
//! Sentry itself cannot run here, so this small axum server implements exactly
//! the part of its HTTP API that the collector and the service reach, as read
//! in the sources of the contrib `sentryexporter` v0.161.0 (`sentry_client.go`,
//! `sentry_exporter.go`), of the `otlp_http` exporter and of the sentry
//! crate's transports (0.49):
//!
//! - `GET /api/0/organizations/{org}/projects/`: the org's projects
//!   (`id` as a string, `slug`, `name`, `team`, `teams`), paginated like Sentry
//!   with a `Link` header (`rel="next"; results="true"; cursor="..."`) and a
//!   `?cursor=` query; the exporter follows it.
//! - `GET /api/0/organizations/{org}/project-keys/`: every project's keys
//!   (`id`, `name`, `public`, `secret`, `projectId` as a number, `isActive`,
//!   `dsn.public`), read once at start-up, without pagination.
//! - `GET /api/0/projects/{org}/{project}/keys/`: one project's keys, for a
//!   project the start-up lookup did not cover.
//! - `POST /api/{project_id}/integration/otlp/v1/traces/`: OTLP/HTTP protobuf
//!   ingest, gzip or plain, authenticated by `x-sentry-auth: sentry sentry_key=...`.
//! - `POST /api/{project_id}/integration/otlp/v1/logs/`: the same for logs, an
//!   `ExportLogsServiceRequest` (the exporter's `sendLogsToEndpoint`, and the
//!   `otlp_http` exporter's `logs_endpoint`).
//! - `POST /api/{project_id}/envelope/`: error events and client reports in
//!   an envelope ([`envelopes`]).
//!
//! The management endpoints require `Authorization: Bearer {token}` (401 without);
//! ingest requires a key of that very project (403 otherwise, with Sentry's
//! `ProjectId` rejection text). Anything else gets a 404. Every request is
//! recorded (method, URI, headers, the status answered, and for ingest the
//! decoded `ExportTraceServiceRequest` or `ExportLogsServiceRequest`, or the
//! envelope), so tests assert on the real exchange. "Ingest" alone means trace
//! ingest below; log and envelope ingest are named so.
//!
//! A test can make ingest fail as Sentry does ([`SentryDouble::fail_next_ingest`],
//! [`SentryDouble::fail_next_envelope`], [`IngestFailure`]): a rate limit (429
//! with `Retry-After` and `X-Sentry-Rate-Limits`, kept up for its whole
//! window, as Relay does), a server error, or the `ProjectId` rejection of a
//! deleted project. Those are answered to trace or envelope ingest, and a
//! rate limit holds for the categories it names (`transaction` for spans,
//! `log_item` for logs, `error` for events, none for all), as Relay's limits
//! do; so a test aimed at spans is not disturbed by the logs flowing beside
//! them.
//! Project creation (`auto_create_projects`) is not implemented: no config of
//! this project enables it.
//!
//! The project DSNs point at the double itself (`http://{key}@127.0.0.1:{port}/{id}`).

mod envelopes;
mod ingest;
mod management;
mod rate_limits;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::Value;
use tokio::sync::{Notify, oneshot, watch};

pub use self::envelopes::{ReceivedEnvelope, ReceivedItem};
use self::ingest::{decode_otlp, otlp_accepted, sentry_key};
use self::management::{key_json, management, not_found, paginated, project_json};
pub use self::rate_limits::IngestFailure;
use self::rate_limits::{Failures, LOG_CATEGORY, TRACE_CATEGORY, detail_response};
use crate::otlp::{ReceivedLog, ReceivedSpan, logs_of, spans_of};

/// One Sentry project of the double's organization.
#[derive(Debug, Clone)]
pub struct Project {
    pub id: u64,
    pub slug: String,
    pub public_key: String,
    pub secret_key: String,
}

/// One request the double received, and what it answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// The request target as sent: origin form (`/api/...`), or absolute form
    /// (`http://host/api/...`) when the client used the double as its proxy.
    pub uri: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub status: u16,
    /// When the double answered.
    pub at: Instant,
    /// For OTLP trace ingest: the project id from the path, and the decoded
    /// body (also when the answer was a failure the test asked for).
    pub ingest: Option<(u64, ExportTraceServiceRequest)>,
    /// The same for OTLP log ingest.
    pub logs_ingest: Option<(u64, ExportLogsServiceRequest)>,
    /// For envelope ingest: the project id from the path, and the envelope.
    pub envelope: Option<(u64, ReceivedEnvelope)>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The `sentry_key` from the `x-sentry-auth` header, if any.
    pub fn sentry_key(&self) -> Option<&str> {
        self.header("x-sentry-auth").and_then(sentry_key)
    }

    pub fn is_ingest(&self) -> bool {
        self.ingest.is_some()
    }

    pub fn is_logs_ingest(&self) -> bool {
        self.logs_ingest.is_some()
    }

    pub fn is_envelope(&self) -> bool {
        self.envelope.is_some()
    }

    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The trace ids of the spans in an ingest request's body.
    pub fn trace_ids(&self) -> Vec<String> {
        self.ingest
            .iter()
            .flat_map(|(_, request)| spans_of(request.clone()))
            .map(|span| span.trace_id())
            .collect()
    }
}

/// A log record that the double accepted, with the project it was sent to.
#[derive(Debug, Clone)]
pub struct IngestedLog {
    pub project_id: u64,
    /// The key from the request's `x-sentry-auth` header.
    pub sentry_key: String,
    pub log: ReceivedLog,
}

/// A span that the double accepted, with the project it was sent to.
#[derive(Debug, Clone)]
pub struct IngestedSpan {
    pub project_id: u64,
    /// The key from the request's `x-sentry-auth` header.
    pub sentry_key: String,
    pub span: ReceivedSpan,
}

/// Configures the double's organization before it starts.
#[derive(Debug, Clone)]
pub struct SentryDoubleBuilder {
    org: String,
    team: String,
    token: String,
    project_slugs: Vec<String>,
    page_size: usize,
    listen: SocketAddr,
    authority: Option<String>,
}

impl SentryDoubleBuilder {
    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The `host[:port]` its URLs and DSNs name, when clients reach the double
    /// under another name than its listening address (a Kubernetes Service).
    pub fn authority(mut self, authority: &str) -> Self {
        self.authority = Some(authority.to_owned());
        self
    }

    pub fn org(mut self, slug: &str) -> Self {
        slug.clone_into(&mut self.org);
        self
    }

    /// The management API token the double accepts.
    pub fn token(mut self, token: &str) -> Self {
        token.clone_into(&mut self.token);
        self
    }

    /// Adds a project; ids are given in order from 2 (1 is Sentry's internal project).
    pub fn project(mut self, slug: &str) -> Self {
        self.project_slugs.push(slug.to_owned());
        self
    }

    /// Page size of the paginated lists (Sentry's default is 100). A small
    /// size makes the client follow the `Link` header's cursor.
    pub fn page_size(mut self, size: usize) -> Self {
        self.page_size = size.max(1);
        self
    }

    pub async fn start(self) -> SentryDouble {
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .expect("cannot bind the Sentry double");
        let addr = listener.local_addr().expect("bound address");
        let authority = self.authority.unwrap_or_else(|| addr.to_string());
        let projects = self
            .project_slugs
            .iter()
            .zip(2..)
            .map(|(slug, id)| Project {
                id,
                slug: slug.clone(),
                public_key: key_for(id, 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
                secret_key: key_for(id, 0xc2b2_ae3d_27d4_eb4f_1656_67b1_9e37_79f9),
            })
            .collect();
        let shared = Arc::new(Shared {
            authority,
            org: self.org,
            team: self.team,
            token: self.token,
            projects,
            page_size: self.page_size,
            requests: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            failures: Mutex::default(),
            envelope_gate: watch::Sender::new(true),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        SentryDouble {
            shared,
            stop: Some(stop),
        }
    }
}

#[derive(Debug)]
struct Shared {
    authority: String,
    org: String,
    team: String,
    token: String,
    projects: Vec<Project>,
    page_size: usize,
    requests: Mutex<Vec<RecordedRequest>>,
    arrived: Notify,
    failures: Mutex<Failures>,
    /// Envelope requests wait for it to be true before they are answered.
    envelope_gate: watch::Sender<bool>,
}

impl Shared {
    fn dsn(&self, project: &Project) -> String {
        format!(
            "http://{}@{}/{}",
            project.public_key, self.authority, project.id
        )
    }
}

/// A running Sentry double; stops when dropped.
#[derive(Debug)]
pub struct SentryDouble {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

impl SentryDouble {
    /// Defaults: org `somework-org`, team `somework-team`, token `test-token`,
    /// no projects, page size 100.
    pub fn builder() -> SentryDoubleBuilder {
        SentryDoubleBuilder {
            org: "somework-org".to_owned(),
            team: "somework-team".to_owned(),
            token: "test-token".to_owned(),
            project_slugs: Vec::new(),
            page_size: 100,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            authority: None,
        }
    }

    /// The base URL, for `SENTRY_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.authority)
    }

    pub fn org(&self) -> &str {
        &self.shared.org
    }

    pub fn token(&self) -> &str {
        &self.shared.token
    }

    pub fn project(&self, slug: &str) -> &Project {
        self.shared
            .projects
            .iter()
            .find(|p| p.slug == slug)
            .unwrap_or_else(|| panic!("the double has no project {slug:?}"))
    }

    /// The project's public DSN, as Sentry shows it.
    pub fn dsn(&self, slug: &str) -> String {
        self.shared.dsn(self.project(slug))
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Answers the next trace ingest request that would have been accepted
    /// with `failure` instead; several calls queue failures in order. Requests
    /// that fail on their own (a wrong key) do not use up a queued failure.
    pub fn fail_next_ingest(&self, failure: IngestFailure) {
        self.shared
            .failures
            .lock()
            .unwrap()
            .traces
            .push_back(failure);
    }

    /// Answers the next envelope request that would have been accepted with
    /// `failure` instead; several calls queue failures in order.
    pub fn fail_next_envelope(&self, failure: IngestFailure) {
        self.shared
            .failures
            .lock()
            .unwrap()
            .envelopes
            .push_back(failure);
    }

    /// Leaves envelope requests unanswered until [`Self::release_envelopes`],
    /// as a Sentry too slow for the sender; they are recorded once answered.
    pub fn hold_envelopes(&self) {
        self.shared.envelope_gate.send_replace(false);
    }

    pub fn release_envelopes(&self) {
        self.shared.envelope_gate.send_replace(true);
    }

    /// The envelope requests received so far, whatever the answer.
    pub fn envelope_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_envelope)
            .collect()
    }

    /// The payloads of the items of type `ty` (`event`, `client_report`) of
    /// the envelopes accepted so far.
    pub fn accepted_items(&self, ty: &str) -> Vec<Value> {
        self.envelope_requests()
            .into_iter()
            .filter(RecordedRequest::accepted)
            .filter_map(|r| r.envelope)
            .flat_map(|(_, envelope)| envelope.items_of(ty))
            .collect()
    }

    /// The quantity of `category` items discarded for `reason`, summed over
    /// the client reports accepted so far.
    pub fn discarded(&self, category: &str, reason: &str) -> u64 {
        self.accepted_items("client_report")
            .iter()
            .filter_map(|report| report["discarded_events"].as_array().cloned())
            .flatten()
            .filter(|d| d["category"] == category && d["reason"] == reason)
            .filter_map(|d| d["quantity"].as_u64())
            .sum()
    }

    /// The trace ingest requests received so far, whatever the answer.
    pub fn ingest_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_ingest)
            .collect()
    }

    /// Every log record accepted so far (requests answered with 2xx only).
    pub fn logs(&self) -> Vec<IngestedLog> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .filter_map(|r| {
                let sentry_key = r.sentry_key().unwrap_or_default().to_owned();
                r.logs_ingest.map(|(project_id, request)| {
                    logs_of(request).into_iter().map(move |log| IngestedLog {
                        project_id,
                        sentry_key: sentry_key.clone(),
                        log,
                    })
                })
            })
            .flatten()
            .collect()
    }

    /// Waits until `done` holds for the accepted log records, or `timeout`
    /// passes; returns the records either way.
    pub async fn wait_for_logs(
        &self,
        timeout: Duration,
        done: impl Fn(&[IngestedLog]) -> bool,
    ) -> Vec<IngestedLog> {
        crate::wait::until(&self.shared.arrived, timeout, || self.logs(), done).await
    }

    /// Waits until `done` holds for the requests received, or `timeout`
    /// passes; returns the requests either way.
    pub async fn wait_for_requests(
        &self,
        timeout: Duration,
        done: impl Fn(&[RecordedRequest]) -> bool,
    ) -> Vec<RecordedRequest> {
        crate::wait::until(&self.shared.arrived, timeout, || self.requests(), done).await
    }

    /// Every span accepted so far (requests answered with 2xx only).
    pub fn spans(&self) -> Vec<IngestedSpan> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .filter_map(|r| {
                let sentry_key = r.sentry_key().unwrap_or_default().to_owned();
                r.ingest.map(|(project_id, request)| {
                    spans_of(request).into_iter().map(move |span| IngestedSpan {
                        project_id,
                        sentry_key: sentry_key.clone(),
                        span,
                    })
                })
            })
            .flatten()
            .collect()
    }

    /// Waits until `done` holds for the accepted spans, or `timeout` passes;
    /// returns the spans either way, so the caller's assertion shows what arrived.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[IngestedSpan]) -> bool,
    ) -> Vec<IngestedSpan> {
        crate::wait::until(&self.shared.arrived, timeout, || self.spans(), done).await
    }
}

impl Drop for SentryDouble {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let query = uri.query().map(str::to_owned);
    let mut ingest = None;
    let mut logs_ingest = None;
    let mut envelope = None;
    let response = match (&method, segments.as_slice()) {
        (&Method::GET, ["api", "0", "organizations", org, "projects"]) => {
            management(&shared, &headers, org, || {
                let items = shared.projects.iter().map(|p| project_json(&shared, p));
                paginated(&shared, &uri, items.collect())
            })
        }
        (&Method::GET, ["api", "0", "organizations", org, "project-keys"]) => {
            management(&shared, &headers, org, || {
                let keys = shared.projects.iter().map(|p| key_json(&shared, p));
                axum::Json(keys.collect::<Vec<_>>()).into_response()
            })
        }
        (&Method::GET, ["api", "0", "projects", org, project, "keys"]) => {
            management(&shared, &headers, org, || {
                match shared.projects.iter().find(|p| p.slug == *project) {
                    Some(p) => paginated(&shared, &uri, vec![key_json(&shared, p)]),
                    None => not_found(),
                }
            })
        }
        (&Method::POST, ["api", id, "integration", "otlp", "v1", "traces"]) => {
            match decode_otlp(&shared, id, &headers, &body) {
                Ok((project_id, request)) => {
                    ingest = Some((project_id, request));
                    let failure = shared.failures.lock().unwrap().answer(TRACE_CATEGORY);
                    failure.unwrap_or_else(otlp_accepted)
                }
                Err((status, detail)) => detail_response(status, &detail),
            }
        }
        (&Method::POST, ["api", id, "integration", "otlp", "v1", "logs"]) => {
            match decode_otlp(&shared, id, &headers, &body) {
                Ok((project_id, request)) => {
                    logs_ingest = Some((project_id, request));
                    let failure = shared.failures.lock().unwrap().answer(LOG_CATEGORY);
                    failure.unwrap_or_else(otlp_accepted)
                }
                Err((status, detail)) => detail_response(status, &detail),
            }
        }
        (&Method::POST, ["api", id, "envelope"]) => {
            let (response, received) = envelopes::ingest(&shared, id, &headers, &body).await;
            envelope = received;
            response
        }
        _ => not_found(),
    };
    let recorded = RecordedRequest {
        method: method.to_string(),
        uri: uri.to_string(),
        path: uri.path().to_owned(),
        query,
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        status: response.status().as_u16(),
        at: Instant::now(),
        ingest,
        logs_ingest,
        envelope,
    };
    shared.requests.lock().unwrap().push(recorded);
    shared.arrived.notify_waiters();
    response
}

/// A 32-hex-digit key, like Sentry's, distinct per project and per `salt`.
fn key_for(project_id: u64, salt: u128) -> String {
    format!("{:032x}", u128::from(project_id).wrapping_mul(salt))
}
