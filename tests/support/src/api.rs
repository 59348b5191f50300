//! The service's HTTP API as the tests speak it: `app.get_somework()` rather
//! than a URL and a status code in every test.

use serde_json::Value;

/// One answer of the service: its status and JSON body (every answer of the
/// service is JSON, errors included).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Value,
}

impl Reply {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.expect("a response body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status}: the body is not JSON ({e}): {text}"));
        Self {
            status,
            content_type,
            body,
        }
    }

    /// The `trace_id` the service answered with.
    pub fn trace_id(&self) -> String {
        self.body["trace_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no trace_id in {}", self.body))
            .to_owned()
    }

    /// The `error` message of an error answer.
    pub fn error(&self) -> &str {
        self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {}", self.body))
    }
}

/// The routes of the service, for anything that knows where it listens: a
/// [`Service`](crate::service::Service), or a suite's `TestApp` around one.
// Test helpers are awaited where they are called, never spawned, so the
// futures need no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait SomeworkApi {
    /// `http://host:port`, without a trailing slash.
    fn base_url(&self) -> String;

    fn http(&self) -> &reqwest::Client;

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base_url())
    }

    /// A request to build on, for what the methods below do not cover.
    fn request(&self, method: reqwest::Method, path_and_query: &str) -> reqwest::RequestBuilder {
        self.http().request(method, self.url(path_and_query))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        Reply::read(request.send().await.expect("request failed")).await
    }

    async fn get(&self, path_and_query: &str) -> Reply {
        self.get_with_headers(path_and_query, &[]).await
    }

    async fn get_with_headers(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.request(reqwest::Method::GET, path_and_query);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    async fn get_somework(&self) -> Reply {
        self.get("/somework").await
    }

    async fn get_errorwork(&self) -> Reply {
        self.get("/errorwork").await
    }

    async fn get_user(&self, id: &str) -> Reply {
        self.get(&format!("/users/{id}")).await
    }

    async fn get_chain(&self, hops: u8) -> Reply {
        self.get(&format!("/chain?hops={hops}")).await
    }

    async fn get_healthz(&self) -> Reply {
        self.get("/healthz").await
    }

    async fn get_readyz(&self) -> Reply {
        self.get("/readyz").await
    }
}
