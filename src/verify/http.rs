//! One HTTP GET, wherever the answer comes from: through the API server's
//! port-forward ([`super::forward::Forward`]) or straight to a loopback
//! address ([`Direct`], for the pipeline `scripts/run-local.sh` starts). The
//! steps that read the collector and the backends take any [`Get`].

use std::future::Future;
use std::time::Duration;

use hyper::body::Bytes;

use super::cluster::{ClusterError, innermost};

/// An HTTP answer read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum GetError {
    /// The API server refused the port-forward.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("{target}: {reason}")]
    Http { target: String, reason: String },
    #[error("{target}: no answer within {timeout:?}")]
    Timeout { target: String, timeout: Duration },
}

impl GetError {
    /// RBAC refused the request: the same refusal hits every other forward.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::Cluster(error) if error.is_forbidden())
    }
}

/// Something that answers `GET path_and_query`.
pub trait Get {
    /// What the requests go to, for messages.
    fn target(&self) -> &str;

    /// `GET path_and_query` with the given headers; the whole exchange is
    /// bounded by `timeout`.
    fn get(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> impl Future<Output = Result<Reply, GetError>>;
}

/// A server reached directly, e.g. `http://127.0.0.1:8080`.
#[derive(Debug, Clone)]
pub struct Direct {
    base: String,
    client: reqwest::Client,
}

impl Direct {
    pub fn new(base: &url::Url) -> Result<Self, reqwest::Error> {
        Ok(Self {
            base: base.as_str().trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder().build()?,
        })
    }

    async fn exchange(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self.client.get(format!("{}{path_and_query}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        Ok(Reply { status, body })
    }
}

impl Get for Direct {
    fn target(&self) -> &str {
        &self.base
    }

    async fn get(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Reply, GetError> {
        match tokio::time::timeout(timeout, self.exchange(path_and_query, headers)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => Err(GetError::Http {
                target: self.base.clone(),
                reason: innermost(&error),
            }),
            Err(_) => Err(GetError::Timeout {
                target: self.base.clone(),
                timeout,
            }),
        }
    }
}
