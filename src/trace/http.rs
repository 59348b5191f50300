//! GETs to a backend's HTTP API (Jaeger's, Bugsink's): straight to a URL,
//! or, with the `verify` feature, through the Kubernetes API server's
//! port-forward that `verify` uses.

use std::time::Duration;

use bytes::Bytes;
use url::Url;

#[cfg(feature = "verify")]
use crate::verify::forward::Forward;
#[cfg(feature = "verify")]
use crate::verify::http::Get as _;

/// One request to a backend; a request never waits longer than this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

/// Where a backend's API answers.
#[derive(Clone)]
pub enum Endpoint {
    Url {
        base: Url,
        client: reqwest::Client,
    },
    /// Boxed: a port-forward carries its client and pod, a URL little.
    #[cfg(feature = "verify")]
    Forward(Box<Forward>),
}

impl Endpoint {
    pub fn url(base: Url) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Self::Url { base, client })
    }

    /// `GET path_and_query` (which starts with `/`), bounded by
    /// [`REQUEST_TIMEOUT`]; the error says where and why.
    pub async fn get(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        match self {
            Self::Url { base, client } => {
                let url = format!("{}{path_and_query}", base.as_str().trim_end_matches('/'));
                let mut request = client.get(&url);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let response = request
                    .send()
                    .await
                    .map_err(|error| format!("GET {url}: {}", innermost(&error)))?;
                let status = response.status().as_u16();
                let body = response
                    .bytes()
                    .await
                    .map_err(|error| format!("GET {url}: {}", innermost(&error)))?;
                Ok(Reply { status, body })
            }
            #[cfg(feature = "verify")]
            Self::Forward(forward) => forward
                .get(path_and_query, headers, REQUEST_TIMEOUT)
                .await
                .map(|reply| Reply {
                    status: reply.status,
                    body: reply.body,
                })
                .map_err(|error| error.to_string()),
        }
    }

    /// Where the requests go, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Url { base, .. } => base.to_string(),
            #[cfg(feature = "verify")]
            Self::Forward(forward) => forward.target.clone(),
        }
    }
}

/// The deepest cause of a reqwest error ("Connection refused"), with the
/// outer message when that one says more ("operation timed out").
fn innermost(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    if error.is_timeout() {
        format!("no answer within {REQUEST_TIMEOUT:?}")
    } else {
        cause.to_string()
    }
}
