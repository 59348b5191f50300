//! Network fault helpers: a port nobody listens on, and a peer that accepts
//! connections but never answers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A loopback port with nothing listening on it, held for as long as this
/// lives: connections are refused, and no other process can bind the port
/// meanwhile (the socket is bound, without `SO_REUSEADDR`, but never listens).
/// A port that was only probed and released could be taken by anyone.
#[derive(Debug)]
pub struct ClosedPort {
    /// Held, never read: dropping it frees the port.
    _bound: Socket,
    addr: SocketAddr,
}

impl ClosedPort {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Reserves a port that refuses connections; see [`ClosedPort`].
pub fn closed_port() -> ClosedPort {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .expect("cannot create a socket");
    let any_port: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
    socket
        .bind(&any_port.into())
        .expect("cannot bind a loopback port");
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|addr| addr.as_socket())
        .expect("a bound IPv4 address");
    ClosedPort {
        _bound: socket,
        addr,
    }
}

/// Accepts TCP connections and never reads or writes: a hung collector or a
/// hung Sentry, the worst kind of unreachable for a client without timeouts.
#[derive(Debug)]
pub struct Blackhole {
    addr: SocketAddr,
    accepted: Arc<Accepted>,
    task: JoinHandle<()>,
}

/// The peers of the connections accepted so far.
#[derive(Debug, Default)]
struct Accepted {
    peers: Mutex<Vec<SocketAddr>>,
    arrived: Notify,
}

impl Blackhole {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot bind the blackhole");
        let addr = listener.local_addr().expect("bound address");
        let accepted = Arc::new(Accepted::default());
        let recorded = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, peer)) = listener.accept().await {
                held.push(socket);
                recorded.peers.lock().unwrap().push(peer);
                recorded.arrived.notify_waiters();
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until at least `count` connections were accepted, or `timeout`
    /// passes; returns how many were accepted either way.
    pub async fn accepted(&self, count: usize, timeout: Duration) -> usize {
        let peers = crate::wait::until(
            &self.accepted.arrived,
            timeout,
            || self.accepted.peers.lock().unwrap().clone(),
            |peers| peers.len() >= count,
        )
        .await;
        peers.len()
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}
