//! Network fault helpers: a port nobody listens on, and a peer that accepts
//! connections but never answers.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A loopback address with nothing listening on it: connections are refused.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("cannot bind a probe port");
    listener.local_addr().expect("bound address")
}

/// Accepts TCP connections and never reads or writes: a hung collector or a
/// hung Sentry, the worst kind of unreachable for a client without timeouts.
#[derive(Debug)]
pub struct Blackhole {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Blackhole {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot bind the blackhole");
        let addr = listener.local_addr().expect("bound address");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Self { addr, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}
