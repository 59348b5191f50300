//! One HTTP/1.1 keep-alive connection to the target, owned by one worker.
//!
//! Built on hyper's connection API rather than a pooled client: a load
//! generator wants exactly one connection per worker and nothing between the
//! schedule and the socket (no pool lock, no redirect or retry policy, no
//! separate connection task), so that its own overhead stays small next to
//! the server's.

use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// `--target`: the base URL of a service, `http://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    url: Url,
    host: String,
    port: u16,
    authority: HeaderValue,
}

/// Why a `--target` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("expected an http:// URL such as http://127.0.0.1:8080 ({0})")]
    Unparsable(url::ParseError),
    #[error("only http:// is supported, got {0}://")]
    Scheme(String),
    #[error("expected the service's base URL, without a path, query or credentials")]
    NotABase,
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(value: &str) -> Result<Self, TargetError> {
        let url = Url::parse(value).map_err(TargetError::Unparsable)?;
        if url.scheme() != "http" {
            return Err(TargetError::Scheme(url.scheme().to_owned()));
        }
        let base = matches!(url.path(), "" | "/")
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        let host = match url.host() {
            Some(url::Host::Domain(domain)) => domain.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(TargetError::NotABase),
        };
        if !base {
            return Err(TargetError::NotABase);
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let authority =
            HeaderValue::from_str(url.authority()).map_err(|_| TargetError::NotABase)?;
        Ok(Self {
            url,
            host,
            port,
            authority,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str().trim_end_matches('/'))
    }
}

/// A W3C trace context the load tool starts, with the sampled flag set, so
/// the service continues the trace and the slowest requests can be looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub span_id: u64,
}

impl TraceParent {
    /// Fresh random ids. They come from the OS-seeded thread generator, not
    /// from `--seed`: two runs with the same seed must not reuse trace ids.
    pub fn random() -> Self {
        Self {
            trace_id: rand::random_range(1..=u128::MAX),
            span_id: rand::random_range(1..=u64::MAX),
        }
    }

    #[expect(
        clippy::expect_used,
        reason = "the format writes only hex digits and dashes"
    )]
    fn header(&self) -> HeaderValue {
        HeaderValue::try_from(format!(
            "00-{:032x}-{:016x}-01",
            self.trace_id, self.span_id
        ))
        .expect("hex digits and dashes are a valid header value")
    }
}

/// Why a request got no HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("the server closed the connection")]
    Closed,
}

impl SendError {
    /// A short, stable name for the report.
    pub fn kind(&self) -> &'static str {
        match self {
            SendError::Connect(_) => "connect",
            SendError::Closed => "connection closed",
            SendError::Http(error) if error.is_incomplete_message() => "connection closed",
            SendError::Http(_) => "http",
        }
    }
}

/// hyper's connection future: it reads and writes the socket. It is polled
/// by the worker itself, together with the request, rather than spawned as
/// a task of its own: that saves two task wake-ups per request.
type Driver = Pin<Box<http1::Connection<TokioIo<TcpStream>, Empty<Bytes>>>>;

struct Open {
    sender: SendRequest<Empty<Bytes>>,
    driver: Driver,
}

/// A keep-alive connection, opened on first use and again after a failure.
pub struct Connection {
    target: Arc<Target>,
    open: Option<Open>,
}

impl Connection {
    pub fn new(target: Arc<Target>) -> Self {
        Self { target, open: None }
    }

    /// Sends `GET path` and reads the whole response body. The connection
    /// is kept only when the exchange completes: after an error, or when the
    /// caller gives up on the future (a timeout), the next request opens a
    /// new one.
    pub async fn get(
        &mut self,
        path: PathAndQuery,
        trace: Option<TraceParent>,
    ) -> Result<StatusCode, SendError> {
        if let Some(open) = self.reusable().await {
            match exchange(open, self.request(&path, trace)).await {
                Ok((status, open)) => {
                    self.open = Some(open);
                    return Ok(status);
                }
                // A reused connection that ends before any of the response
                // arrived may have been closed by the server as the request
                // went out (a draining pod closes its idle connections). A
                // GET is idempotent, so it goes once more on a new
                // connection, as Go's net/http does; its latency still
                // counts from the schedule.
                Err(failure) if failure.before_response => {}
                Err(failure) => return Err(failure.error),
            }
        }
        let open = self.connect().await?;
        let (status, open) = exchange(open, self.request(&path, trace))
            .await
            .map_err(|failure| failure.error)?;
        self.open = Some(open);
        Ok(status)
    }

    fn request(&self, path: &PathAndQuery, trace: Option<TraceParent>) -> Request<Empty<Bytes>> {
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = path.clone().into();
        let headers = request.headers_mut();
        headers.insert(HOST, self.target.authority.clone());
        if let Some(trace) = trace {
            headers.insert(TRACEPARENT.clone(), trace.header());
        }
        request
    }

    /// The kept connection, unless the server has closed it. It is polled
    /// first, so that a close already received is read before a request is
    /// written into a dead socket.
    async fn reusable(&mut self) -> Option<Open> {
        let mut open = self.open.take()?;
        let Open { sender, driver } = &mut open;
        let closed = tokio::select! {
            biased;
            _ = driver.as_mut() => true,
            () = std::future::ready(()) => false,
        };
        let usable = !closed && {
            let ready = async { sender.ready().await.map_err(SendError::from) };
            drive(driver, ready).await.is_ok()
        };
        usable.then_some(open)
    }

    async fn connect(&self) -> Result<Open, SendError> {
        let stream = TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .map_err(SendError::Connect)?;
        stream.set_nodelay(true).map_err(SendError::Connect)?;
        let (mut sender, driver) = http1::handshake(TokioIo::new(stream)).await?;
        let mut driver = Box::pin(driver);
        let ready = async { sender.ready().await.map_err(SendError::from) };
        drive(&mut driver, ready).await?;
        Ok(Open { sender, driver })
    }
}

/// Why an exchange failed, and whether any of the response had arrived.
struct Failure {
    error: SendError,
    before_response: bool,
}

/// One request and its whole response on `open`, which is handed back for
/// the next request.
async fn exchange(
    mut open: Open,
    request: Request<Empty<Bytes>>,
) -> Result<(StatusCode, Open), Failure> {
    let Open { sender, driver } = &mut open;
    let send = async { Ok(sender.send_request(request).await?) };
    let response = drive(driver, send).await.map_err(|error| Failure {
        error,
        before_response: true,
    })?;
    let status = response.status();
    let mut body = response.into_body();
    let read = async {
        while let Some(frame) = body.frame().await {
            frame?;
        }
        Ok(())
    };
    drive(driver, read).await.map_err(|error| Failure {
        error,
        before_response: false,
    })?;
    Ok((status, open))
}

/// Runs `work` while polling the connection, which does the actual I/O.
/// The connection ending first means the exchange cannot finish, unless its
/// last poll finished it: a server that answers and then closes (a response
/// with `Connection: close`, or a pod draining) hands over the end of the
/// response and the end of the connection in the same read.
async fn drive<T>(
    driver: &mut Driver,
    work: impl Future<Output = Result<T, SendError>>,
) -> Result<T, SendError> {
    let mut work = std::pin::pin!(work);
    let ended = tokio::select! {
        biased;
        result = work.as_mut() => return result,
        ended = driver.as_mut() => ended,
    };
    match std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await {
        Poll::Ready(result) => result,
        Poll::Pending => Err(match ended {
            Ok(()) => SendError::Closed,
            Err(error) => SendError::Http(error),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_an_http_base_url() {
        let target: Target = "http://127.0.0.1:8080".parse().unwrap();
        assert_eq!((target.host.as_str(), target.port), ("127.0.0.1", 8080));
        assert_eq!(target.to_string(), "http://127.0.0.1:8080");
        let target: Target = "http://somework.demo/".parse().unwrap();
        assert_eq!((target.host.as_str(), target.port), ("somework.demo", 80));
        let target: Target = "http://[::1]:9/".parse().unwrap();
        assert_eq!(target.host, "::1");
    }

    #[test]
    fn other_urls_are_refused() {
        assert!(matches!(
            "127.0.0.1:8080".parse::<Target>(),
            Err(TargetError::Scheme(_) | TargetError::Unparsable(_))
        ));
        assert_eq!(
            "https://example.com".parse::<Target>(),
            Err(TargetError::Scheme("https".into()))
        );
        for url in [
            "http://host/somework",
            "http://host/?a=1",
            "http://user:pw@host/",
        ] {
            assert_eq!(url.parse::<Target>(), Err(TargetError::NotABase), "{url}");
        }
        assert!(matches!(
            "not a url".parse::<Target>(),
            Err(TargetError::Unparsable(_))
        ));
    }

    #[test]
    fn traceparent_is_w3c_version_00_and_sampled() {
        let trace = TraceParent {
            trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
            span_id: 0x00f067aa0ba902b7,
        };
        assert_eq!(
            trace.header(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
    }
}
