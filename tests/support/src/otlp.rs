//! An in-process OTLP/gRPC trace and log receiver, a test double for the
//! collector.
//!
//! It implements the real `TraceService/Export` and `LogsService/Export` RPCs
//! from `opentelemetry-proto` and keeps every span and log record with its
//! resource, so tests can assert on exactly what the service exported. Its behaviour can be switched to fail
//! or stall, to test what the service does when its collector misbehaves.
//! End-to-end tests use the real collector instead (see `collector`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};
use tokio::sync::{Notify, oneshot};
use tokio_stream::wrappers::TcpListenerStream;

use crate::net::{ReservedPort, reserve_port};

/// What the receiver does with each export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Accept,
    /// Answers `UNAVAILABLE`, as a collector does while overloaded or starting.
    Unavailable,
    /// Accepts, but only after this long.
    Delay(Duration),
}

#[derive(Debug)]
struct Shared {
    spans: Mutex<Vec<ReceivedSpan>>,
    logs: Mutex<Vec<ReceivedLog>>,
    /// Trace export calls.
    exports: Mutex<u64>,
    log_exports: Mutex<u64>,
    /// The gRPC metadata (HTTP/2 headers) of every export call, in order.
    metadata: Mutex<Vec<HashMap<String, String>>>,
    behaviour: Mutex<Behaviour>,
    arrived: Notify,
}

/// A running receiver; stops when dropped.
///
/// It runs on a runtime of its own, on its own thread, so that [`kill`]
/// can drop every connection at once, as a crashed collector does. (Aborting
/// a server task would leave its spawned connection tasks serving.)
///
/// [`kill`]: OtlpReceiver::kill
#[derive(Debug)]
pub struct OtlpReceiver {
    /// The receiver's port, reserved until it is dropped or handed on by
    /// [`OtlpReceiver::kill`]; `None` only once handed on.
    port: Option<ReservedPort>,
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Starts on a free loopback port.
    pub async fn start() -> Self {
        Self::start_on(reserve_port()).await
    }

    /// Starts on `port`, e.g. the port of a receiver that was killed, to
    /// simulate a collector restart at the same address. The port stayed
    /// reserved in between, so no other process can have taken it.
    pub async fn start_on(port: ReservedPort) -> Self {
        // std's bind sets SO_REUSEADDR, which a reserved port asks for.
        let listener = std::net::TcpListener::bind(port.addr()).unwrap_or_else(|e| {
            panic!(
                "cannot bind the OTLP receiver to its reserved {}: {e}",
                port.addr()
            )
        });
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("bound address");
        let shared = Arc::new(Shared {
            spans: Mutex::new(Vec::new()),
            logs: Mutex::new(Vec::new()),
            exports: Mutex::new(0),
            log_exports: Mutex::new(0),
            metadata: Mutex::new(Vec::new()),
            behaviour: Mutex::new(Behaviour::Accept),
            arrived: Notify::new(),
        });
        let traces = TraceServiceServer::new(Receiver(shared.clone()));
        let logs = LogsServiceServer::new(Receiver(shared.clone()));
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("receiver runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let server = tonic::transport::Server::builder()
                    .add_service(traces)
                    .add_service(logs)
                    .serve_with_incoming(TcpListenerStream::new(listener));
                tokio::select! {
                    _ = server => {}
                    _ = stopped => {}
                }
            });
            // Drops the listener and every connection task at once.
            runtime.shutdown_background();
        });
        Self {
            port: Some(port),
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared.spans.lock().unwrap().clone()
    }

    /// The gRPC metadata of every export call so far (accepted or not),
    /// with names in lower case and values that are not ASCII left out.
    pub fn metadata(&self) -> Vec<HashMap<String, String>> {
        self.shared.metadata.lock().unwrap().clone()
    }

    /// How many trace export calls reached the receiver (accepted or not).
    pub fn export_calls(&self) -> u64 {
        *self.shared.exports.lock().unwrap()
    }

    /// How many log export calls reached the receiver (accepted or not).
    pub fn log_export_calls(&self) -> u64 {
        *self.shared.log_exports.lock().unwrap()
    }

    /// Every log record received so far.
    pub fn logs(&self) -> Vec<ReceivedLog> {
        self.shared.logs.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the log records received so far, or
    /// `timeout` passes; returns the records either way.
    pub async fn wait_for_logs(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedLog]) -> bool,
    ) -> Vec<ReceivedLog> {
        crate::wait::until(&self.shared.arrived, timeout, || self.logs(), done).await
    }

    /// Waits until `done` holds for the spans received so far, or `timeout`
    /// passes; returns the spans either way, so the caller's assertion shows
    /// what did arrive.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        crate::wait::until(&self.shared.arrived, timeout, || self.spans(), done).await
    }

    /// Waits until at least `count` export calls arrived (accepted or not),
    /// or `timeout` passes; returns the number of calls either way.
    pub async fn wait_for_export_calls(&self, count: u64, timeout: Duration) -> u64 {
        let calls = crate::wait::until(
            &self.shared.arrived,
            timeout,
            || vec![self.export_calls()],
            |calls| calls[0] >= count,
        )
        .await;
        calls[0]
    }

    /// Waits for at least `count` spans of the trace `trace_id`.
    pub async fn trace(
        &self,
        trace_id: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<ReceivedSpan> {
        let spans = self
            .wait_for(timeout, |spans| {
                spans.iter().filter(|s| s.trace_id() == trace_id).count() >= count
            })
            .await;
        spans
            .into_iter()
            .filter(|s| s.trace_id() == trace_id)
            .collect()
    }

    /// Stops abruptly, as a crashed collector does: the listener and every
    /// open connection close at once. Returns the port, still reserved, so a
    /// new receiver can take it over ([`OtlpReceiver::start_on`]).
    pub async fn kill(mut self) -> ReservedPort {
        self.stop_now();
        self.port.take().expect("the port is handed on only here")
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stop_now();
    }
}

struct Receiver(Arc<Shared>);

impl Receiver {
    /// What every export call gets, whatever its signal: after the
    /// behaviour's delay, `Ok` or the behaviour's error.
    async fn behave(&self) -> Result<(), tonic::Status> {
        self.0.arrived.notify_waiters();
        let behaviour = *self.0.behaviour.lock().unwrap();
        match behaviour {
            Behaviour::Accept => Ok(()),
            Behaviour::Unavailable => Err(tonic::Status::unavailable(
                "test double: collector unavailable",
            )),
            Behaviour::Delay(delay) => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
        }
    }
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        *self.0.log_exports.lock().unwrap() += 1;
        self.behave().await?;
        let received = logs_of(request.into_inner());
        self.0.logs.lock().unwrap().extend(received);
        self.0.arrived.notify_waiters();
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        *self.0.exports.lock().unwrap() += 1;
        let metadata = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect();
        self.0.metadata.lock().unwrap().push(metadata);
        self.behave().await?;
        let received = spans_of(request.into_inner());
        self.0.spans.lock().unwrap().extend(received);
        self.0.arrived.notify_waiters();
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Flattens an OTLP export request into its spans, each with its resource
/// attributes and scope name.
pub fn spans_of(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = Arc::new(
            resource_spans
                .resource
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default(),
        );
        for scope_spans in resource_spans.scope_spans {
            let scope = scope_spans.scope.map(|s| s.name).unwrap_or_default();
            for span in scope_spans.spans {
                received.push(ReceivedSpan {
                    resource: resource.clone(),
                    scope: scope.clone(),
                    span,
                });
            }
        }
    }
    received
}

/// Flattens an OTLP logs export request into its records, each with its
/// resource attributes and scope name.
pub fn logs_of(request: ExportLogsServiceRequest) -> Vec<ReceivedLog> {
    let mut received = Vec::new();
    for resource_logs in request.resource_logs {
        let resource = Arc::new(
            resource_logs
                .resource
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default(),
        );
        for scope_logs in resource_logs.scope_logs {
            let scope = scope_logs.scope.map(|s| s.name).unwrap_or_default();
            for record in scope_logs.log_records {
                received.push(ReceivedLog {
                    resource: resource.clone(),
                    scope: scope.clone(),
                    record,
                });
            }
        }
    }
    received
}

/// One exported log record with its resource attributes and scope name.
#[derive(Debug, Clone)]
pub struct ReceivedLog {
    pub resource: Arc<HashMap<String, String>>,
    pub scope: String,
    pub record: LogRecord,
}

impl ReceivedLog {
    /// The body if it is a string, else its debug form.
    pub fn body(&self) -> String {
        render(self.record.body.as_ref())
    }

    /// The trace id in hex; empty when the record was written outside a span.
    pub fn trace_id(&self) -> String {
        hex::encode(&self.record.trace_id)
    }

    /// The span id in hex; empty when the record was written outside a span.
    pub fn span_id(&self) -> String {
        hex::encode(&self.record.span_id)
    }

    pub fn severity_text(&self) -> &str {
        &self.record.severity_text
    }

    /// The attribute's value with its OTLP type, or `None` if absent.
    pub fn attribute(&self, key: &str) -> Option<Attr> {
        typed_attributes(&self.record.attributes).remove(key)
    }
}

/// The names of `spans`, in order: for comparisons and assertion messages.
pub fn names<'a>(spans: impl IntoIterator<Item = &'a ReceivedSpan>) -> Vec<&'a str> {
    spans.into_iter().map(ReceivedSpan::name).collect()
}

/// One exported span with its resource attributes and scope name.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub resource: Arc<HashMap<String, String>>,
    pub scope: String,
    pub span: Span,
}

impl ReceivedSpan {
    pub fn name(&self) -> &str {
        &self.span.name
    }

    pub fn trace_id(&self) -> String {
        hex::encode(&self.span.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex::encode(&self.span.span_id)
    }

    /// The parent's span id, or `None` for a root span.
    pub fn parent_span_id(&self) -> Option<String> {
        (!self.span.parent_span_id.is_empty()).then(|| hex::encode(&self.span.parent_span_id))
    }

    pub fn kind(&self) -> span::SpanKind {
        self.span.kind()
    }

    /// The attribute's value with its OTLP type, or `None` if absent.
    pub fn attribute(&self, key: &str) -> Option<Attr> {
        typed_attributes(&self.span.attributes).remove(key)
    }

    /// The attribute's value if it is a string; `None` if it is absent or of
    /// another type (use [`ReceivedSpan::attribute`] for those).
    pub fn attr(&self, key: &str) -> Option<String> {
        match self.attribute(key)? {
            Attr::String(value) => Some(value),
            _ => None,
        }
    }

    pub fn status_code(&self) -> status::StatusCode {
        self.span
            .status
            .as_ref()
            .map_or(status::StatusCode::Unset, |s| s.code())
    }

    pub fn event_names(&self) -> Vec<&str> {
        self.span.events.iter().map(|e| e.name.as_str()).collect()
    }

    /// The attributes of the first event called `name`, with their types.
    pub fn event(&self, name: &str) -> Option<HashMap<String, Attr>> {
        self.span
            .events
            .iter()
            .find(|e| e.name == name)
            .map(|e| typed_attributes(&e.attributes))
    }
}

/// An attribute value as it arrived: a status code sent as the string
/// `"200"` is not `Attr::Int(200)`, so the semantic-convention tests see types.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    String(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Arrays, maps and bytes, in their debug form.
    Other(String),
}

impl Attr {
    /// The string, if the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Attr::String(value) => Some(value),
            _ => None,
        }
    }
}

impl PartialEq<&str> for Attr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

fn typed_attributes(attributes: &[KeyValue]) -> HashMap<String, Attr> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => Attr::String(s.clone()),
                Some(any_value::Value::IntValue(i)) => Attr::Int(*i),
                Some(any_value::Value::DoubleValue(d)) => Attr::Double(*d),
                Some(any_value::Value::BoolValue(b)) => Attr::Bool(*b),
                Some(other) => Attr::Other(format!("{other:?}")),
                None => Attr::Other(String::new()),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn attributes(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), render(kv.value.as_ref())))
        .collect()
}

fn render(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
