//! A test double for Sentry's SaaS API, for the collector's end-to-end tests.
//!
//! Sentry itself cannot run here, so this small axum server implements exactly
//! the part of its HTTP API that the collector reaches, as read in the sources of
//! the contrib `sentryexporter` v0.161.0 (`sentry_client.go`, `sentry_exporter.go`)
//! and of the `otlp_http` exporter:
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
//!
//! The management endpoints require `Authorization: Bearer {token}` (401 without);
//! ingest requires a key of that very project (403 otherwise, with Sentry's
//! `ProjectId` rejection text). Anything else gets a 404. Every request is
//! recorded (method, URI, headers, the status answered, and for ingest the
//! decoded `ExportTraceServiceRequest` or `ExportLogsServiceRequest`), so tests
//! assert on the real exchange. "Ingest" alone means trace ingest below; log
//! ingest is named so.
//!
//! A test can make ingest fail as Sentry does ([`SentryDouble::fail_next_ingest`],
//! [`IngestFailure`]): a rate limit (429 with `Retry-After` and
//! `X-Sentry-Rate-Limits`, kept up for its whole window, as Relay does), a
//! server error, or the `ProjectId` rejection of a deleted project. Those are
//! answered to trace ingest only, and a rate limit holds for the categories it
//! names (`transaction` for spans, `log_item` for logs, none for all), as
//! Relay's limits do; so a test aimed at spans is not disturbed by the logs
//! flowing beside them.
//! Project creation (`auto_create_projects`) is not implemented: no config of
//! this project enables it.
//!
//! The project DSNs point at the double itself (`http://{key}@127.0.0.1:{port}/{id}`).

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

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

    /// The trace ids of the spans in an ingest request's body.
    pub fn trace_ids(&self) -> Vec<String> {
        self.ingest
            .iter()
            .flat_map(|(_, request)| spans_of(request.clone()))
            .map(|span| span.trace_id())
            .collect()
    }
}

/// An answer Sentry gives an OTLP ingest request when things go wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestFailure {
    /// 429 with `Retry-After: {seconds}` and Sentry's documented
    /// `X-Sentry-Rate-Limits: {seconds}:{categories}:{scope}` (categories
    /// `;`-separated, empty for all; scope `key`). The double answers every
    /// ingest request of the window so, counting down the seconds as it goes.
    RateLimited { seconds: u64, categories: String },
    /// A server error (e.g. 502 or 503 from an overloaded Relay), with Sentry's
    /// JSON `detail` body.
    ServerError(u16),
    /// 403 `event submission rejected with_reason: ProjectId`: the project of
    /// the URL is gone (deleted, or its key rotated).
    ProjectIdRejected,
}

/// What Relay says when it drops data for a quota or a rate limit.
const RATE_LIMITED_DETAIL: &str = "Sentry dropped data due to a quota or internal rate limit \
     being reached. This will not affect your application.";

/// A rate limit in force: until when, and the categories it names.
#[derive(Debug, Clone)]
struct RateLimit {
    until: Instant,
    categories: String,
}

impl RateLimit {
    /// Relay's rule: an empty list limits every category.
    fn covers(&self, category: &str) -> bool {
        self.categories.is_empty() || self.categories.split(';').any(|c| c == category)
    }
}

/// The rate-limit categories of OTLP spans and logs (Relay's names, as the
/// exporter's `internal/ratelimit` maps them).
const TRACE_CATEGORY: &str = "transaction";
const LOG_CATEGORY: &str = "log_item";

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
            failures: Mutex::new(VecDeque::new()),
            rate_limit: Mutex::new(None),
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
    /// Failures to answer the next ingest requests with, in order.
    failures: Mutex<VecDeque<IngestFailure>>,
    rate_limit: Mutex<Option<RateLimit>>,
}

impl Shared {
    /// The failure answer for an ingest request of `category` that would be
    /// accepted: the rate limit in force for it, else (for trace ingest) the
    /// next queued failure, else none.
    fn ingest_failure(&self, category: &str) -> Option<Response> {
        let mut rate_limit = self.rate_limit.lock().unwrap();
        let now = Instant::now();
        if let Some(limit) = rate_limit
            .as_ref()
            .filter(|limit| limit.until > now && limit.covers(category))
        {
            return Some(rate_limited(limit.until - now, &limit.categories));
        }
        if category != TRACE_CATEGORY {
            return None;
        }
        let failure = self.failures.lock().unwrap().pop_front()?;
        Some(match failure {
            IngestFailure::RateLimited {
                seconds,
                categories,
            } => {
                let window = Duration::from_secs(seconds);
                let response = rate_limited(window, &categories);
                *rate_limit = Some(RateLimit {
                    until: now + window,
                    categories,
                });
                response
            }
            IngestFailure::ServerError(status) => detail_response(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "Internal Error",
            ),
            IngestFailure::ProjectIdRejected => detail_response(
                StatusCode::FORBIDDEN,
                "event submission rejected with_reason: ProjectId",
            ),
        })
    }

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
        self.shared.failures.lock().unwrap().push_back(failure);
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
            match decode_ingest(&shared, id, &headers, &body) {
                Ok((project_id, request)) => {
                    ingest = Some((project_id, request));
                    shared
                        .ingest_failure(TRACE_CATEGORY)
                        .unwrap_or_else(ingest_accepted)
                }
                Err((status, detail)) => detail_response(status, &detail),
            }
        }
        (&Method::POST, ["api", id, "integration", "otlp", "v1", "logs"]) => {
            match decode_ingest(&shared, id, &headers, &body) {
                Ok((project_id, request)) => {
                    logs_ingest = Some((project_id, request));
                    shared
                        .ingest_failure(LOG_CATEGORY)
                        .unwrap_or_else(ingest_accepted)
                }
                Err((status, detail)) => detail_response(status, &detail),
            }
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
    };
    shared.requests.lock().unwrap().push(recorded);
    shared.arrived.notify_waiters();
    response
}

/// Runs `answer` for an authorized request to this organization.
fn management(
    shared: &Shared,
    headers: &HeaderMap,
    org: &str,
    answer: impl FnOnce() -> Response,
) -> Response {
    let expected = format!("Bearer {}", shared.token);
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&expected)
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"detail": "Invalid token"})),
        )
            .into_response();
    }
    if org != shared.org {
        return not_found();
    }
    answer()
}

/// Sentry's error body: `{"detail": ...}`.
fn detail_response(status: StatusCode, detail: &str) -> Response {
    (status, axum::Json(json!({ "detail": detail }))).into_response()
}

/// A 429 for a limit with `remaining` time to run, in whole seconds rounded up
/// as Relay rounds them.
fn rate_limited(remaining: Duration, categories: &str) -> Response {
    let seconds = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    let mut response = detail_response(StatusCode::TOO_MANY_REQUESTS, RATE_LIMITED_DETAIL);
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    if let Ok(value) = HeaderValue::from_str(&format!("{seconds}:{categories}:key")) {
        headers.insert("x-sentry-rate-limits", value);
    }
    response
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"detail": "The requested resource does not exist"})),
    )
        .into_response()
}

/// One page of `items`, with Sentry's `Link` header. Sentry's cursors look like
/// `{value}:{offset}:{is_prev}`; the double only uses the offset.
fn paginated(shared: &Shared, uri: &Uri, items: Vec<Value>) -> Response {
    let offset: usize = Query::<HashMap<String, String>>::try_from_uri(uri)
        .ok()
        .and_then(|Query(query)| query.get("cursor")?.split(':').nth(1)?.parse().ok())
        .unwrap_or(0);
    let end = (offset + shared.page_size).min(items.len());
    let page = items.get(offset..end).unwrap_or_default().to_vec();
    let base = format!("http://{}{}", shared.authority, uri.path());
    let link = |rel: &str, offset: usize, is_prev: u8, results: bool| {
        let cursor = format!("0:{offset}:{is_prev}");
        format!(r#"<{base}?&cursor={cursor}>; rel="{rel}"; results="{results}"; cursor="{cursor}""#)
    };
    let previous = link(
        "previous",
        offset.saturating_sub(shared.page_size),
        1,
        offset > 0,
    );
    let next = link("next", end, 0, end < items.len());
    let mut response = axum::Json(page).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("{previous}, {next}")) {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

fn project_json(shared: &Shared, project: &Project) -> Value {
    let team = json!({"id": "1", "slug": shared.team, "name": shared.team});
    json!({
        "id": project.id.to_string(),
        "slug": project.slug,
        "name": project.slug,
        "platform": "rust",
        "team": team,
        "teams": [team],
    })
}

fn key_json(shared: &Shared, project: &Project) -> Value {
    json!({
        "id": project.public_key,
        "name": "Default",
        "label": "Default",
        "public": project.public_key,
        "secret": project.secret_key,
        "projectId": project.id,
        "isActive": true,
        "dsn": {
            "public": shared.dsn(project),
            "secret": format!(
                "http://{}:{}@{}/{}",
                project.public_key, project.secret_key, shared.authority, project.id
            ),
        },
    })
}

/// The answer to accepted OTLP ingest: an empty `Export*ServiceResponse`,
/// full success.
fn ingest_accepted() -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        Vec::<u8>::new(),
    )
        .into_response()
}

/// Checks the key against the project in the path and decodes the body as
/// the OTLP request `R`; on failure returns the status and the `detail` to
/// answer with.
fn decode_ingest<R: Message + Default>(
    shared: &Shared,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(u64, R), (StatusCode, String)> {
    let rejected = |status, reason: &str| {
        (
            status,
            format!("event submission rejected with_reason: {reason}"),
        )
    };
    let Some(project) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| shared.projects.iter().find(|p| p.id == id))
    else {
        return Err(rejected(StatusCode::FORBIDDEN, "ProjectId"));
    };
    let key = headers
        .get("x-sentry-auth")
        .and_then(|v| v.to_str().ok())
        .and_then(sentry_key);
    match key {
        None => return Err(rejected(StatusCode::UNAUTHORIZED, "MissingKey")),
        Some(key) if key != project.public_key => {
            return Err(rejected(StatusCode::FORBIDDEN, "ProjectId"));
        }
        Some(_) => {}
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type != Some("application/x-protobuf") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/x-protobuf".to_owned(),
        ));
    }
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let mut decoded = Vec::new();
    let body = if gzip {
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut decoded)
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad gzip body: {e}")))?;
        decoded.as_slice()
    } else {
        body
    };
    let request = R::decode(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad protobuf body: {e}")))?;
    Ok((project.id, request))
}

/// The `sentry_key` of an `x-sentry-auth` value such as
/// `sentry sentry_key=abc, sentry_version=7`.
fn sentry_key(auth: &str) -> Option<&str> {
    auth.strip_prefix("sentry ")?
        .split(',')
        .find_map(|pair| pair.trim().strip_prefix("sentry_key="))
}

/// A 32-hex-digit key, like Sentry's, distinct per project and per `salt`.
fn key_for(project_id: u64, salt: u128) -> String {
    format!("{:032x}", u128::from(project_id).wrapping_mul(salt))
}
