//! Loopback ports for the processes a test starts, and network fault
//! helpers: a port nobody listens on, a peer that accepts connections but
//! never answers, one whose SYNs go unanswered, and a relay whose
//! connections can die without a word.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

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
    let (socket, addr) = bound_loopback_socket();
    ClosedPort {
        _bound: socket,
        addr,
    }
}

/// A loopback port held for a server that the test starts and tells the port
/// (a flag, a variable, a config), for as long as this lives.
///
/// The socket is bound with `SO_REUSEADDR` and never listens. Linux then
/// hands the port to no one else: not to a bind to port 0, not as the source
/// port of a connection, not to a bind without `SO_REUSEADDR`. Yet a server
/// that binds it with `SO_REUSEADDR`, as Go's `net.Listen`, Python's
/// socketserver and gunicorn, std's and tokio's `TcpListener::bind` all do,
/// can listen on it, and listen on it again after a restart. A port that was
/// only probed with port 0 and released could be taken by anyone before the
/// server binds it.
///
/// For a server that can take a listening socket instead (gunicorn's
/// `fd://`, systemd's `LISTEN_FDS`), [`crate::process::hand_over`] is
/// simpler still.
#[derive(Debug)]
pub struct ReservedPort {
    /// Held, never read: dropping it frees the port.
    _bound: Socket,
    addr: SocketAddr,
}

impl ReservedPort {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// Reserves a free loopback port for a server; see [`ReservedPort`].
pub fn reserve_port() -> ReservedPort {
    let socket = loopback_socket();
    socket
        .set_reuse_address(true)
        .expect("cannot set SO_REUSEADDR");
    let (socket, addr) = bind_any_port(socket);
    ReservedPort {
        _bound: socket,
        addr,
    }
}

/// A TCP socket bound to a free loopback port, and that port.
fn bound_loopback_socket() -> (Socket, SocketAddr) {
    bind_any_port(loopback_socket())
}

fn loopback_socket() -> Socket {
    Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("cannot create a socket")
}

/// Binds `socket` to a port of the kernel's choosing on 127.0.0.1.
fn bind_any_port(socket: Socket) -> (Socket, SocketAddr) {
    let any_port: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
    socket
        .bind(&any_port.into())
        .expect("cannot bind a loopback port");
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|addr| addr.as_socket())
        .expect("a bound IPv4 address");
    (socket, addr)
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

/// A loopback listener whose accept queue is full, so the kernel drops every
/// SYN it gets: a connect to it hangs, retrying for about two minutes, as a
/// connect to a pod IP that is gone can. Bound with a backlog of 0, which
/// Linux takes as one pending connection, and filled with one of its own.
#[derive(Debug)]
pub struct UnansweredSyns {
    /// Never accepts.
    _listener: Socket,
    /// Holds the one place in the accept queue.
    _filler: std::net::TcpStream,
    addr: SocketAddr,
}

impl UnansweredSyns {
    pub fn start() -> Self {
        let (listener, addr) = bound_loopback_socket();
        listener.listen(0).expect("cannot listen");
        let filler = std::net::TcpStream::connect(addr).expect("the first connect fills the queue");
        Self {
            _listener: listener,
            _filler: filler,
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A TCP relay to `target` whose open connections can go silent at once: a
/// stand-in for the network path to a collector pod whose end vanished
/// without a FIN or RST (a pod deleted behind a Service, a node gone). A
/// silent connection stays open and carries nothing either way, as TCP
/// keeps retransmitting into it; connections opened afterwards are relayed
/// as before, as the Service would route them to a new pod.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    silence: watch::Sender<u64>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot bind the relay");
        let addr = listener.local_addr().expect("bound address");
        let (silence, _) = watch::channel(0);
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(relay(listener, target, silence.clone(), accepted.clone()));
        Self {
            addr,
            silence,
            accepted,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every connection open now stops carrying bytes, and stays open.
    pub fn go_silent(&self) {
        self.silence.send_modify(|generation| *generation += 1);
    }

    /// How many connections the relay has accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn relay(
    listener: TcpListener,
    target: SocketAddr,
    silence: watch::Sender<u64>,
    accepted: Arc<AtomicUsize>,
) {
    // Dropped with the accept loop when the relay is: every connection goes.
    let mut connections = JoinSet::new();
    while let Ok((mut inbound, _)) = listener.accept().await {
        accepted.fetch_add(1, Ordering::SeqCst);
        // Subscribed before the task runs, so a `go_silent` that comes
        // before its first poll still silences it.
        let mut silenced = silence.subscribe();
        connections.spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = silenced.changed() => std::future::pending::<()>().await,
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use super::*;

    #[test]
    fn a_reserved_port_is_the_servers_alone_and_outlives_a_restart() {
        let reserved = reserve_port();
        for run in ["first", "restarted"] {
            // std's bind sets SO_REUSEADDR, as the servers the harness starts do.
            let server = std::net::TcpListener::bind(reserved.addr())
                .unwrap_or_else(|e| panic!("the {run} server cannot bind its reserved port: {e}"));
            std::net::TcpStream::connect(reserved.addr())
                .unwrap_or_else(|e| panic!("the {run} server does not answer: {e}"));
            drop(server);
            let refused = std::net::TcpStream::connect(reserved.addr())
                .expect_err("nothing listens once the server is gone");
            assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
        }
        let other = loopback_socket();
        let taken = other
            .bind(&reserved.addr().into())
            .expect_err("a bind without SO_REUSEADDR must not get a reserved port");
        assert_eq!(taken.kind(), ErrorKind::AddrInUse, "{taken}");
    }
}
