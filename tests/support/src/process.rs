//! What every child process of the harness needs: its output captured line by
//! line, signals, its resident memory, and the TCP port it listens on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd as _, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Every line a process printed, stdout and stderr interleaved as read.
/// Cloning shares the lines, so one log can span several runs of a process.
#[derive(Debug, Clone, Default)]
pub struct ProcessOutput {
    shared: Arc<Lines>,
}

#[derive(Debug, Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    arrived: Notify,
}

impl ProcessOutput {
    /// Starts reading the child's piped stdout and stderr into this log.
    pub fn capture(&self, child: &mut Child) -> OutputReaders {
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        OutputReaders(vec![
            tokio::spawn(read_lines(stdout, self.shared.clone())),
            tokio::spawn(read_lines(stderr, self.shared.clone())),
        ])
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.shared.lines.lock().unwrap().clone()
    }

    /// How many lines so far; with [`ProcessOutput::lines_since`], the output
    /// of one run.
    pub fn len(&self) -> usize {
        self.shared.lines.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lines from index `first` on.
    pub fn lines_since(&self, first: usize) -> Vec<String> {
        self.shared.lines.lock().unwrap()[first..].to_vec()
    }

    /// Adds a line of the harness's own, e.g. to mark a restart.
    pub fn note(&self, line: &str) {
        self.shared.lines.lock().unwrap().push(line.to_owned());
    }

    /// Waits until `done` holds for the lines so far, or `timeout` passes;
    /// returns the lines either way, so the caller's assertion shows them.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        crate::wait::until(&self.shared.arrived, timeout, || self.lines(), done).await
    }
}

/// The tasks reading a child's output; they end when the child's pipes close.
#[derive(Debug)]
pub struct OutputReaders(Vec<JoinHandle<()>>);

impl OutputReaders {
    /// Waits until every line the process printed has been read. Call it
    /// after the process exited: the pipes close then, and the readers end.
    pub async fn drained(self) {
        for reader in self.0 {
            reader.await.expect("an output reader panicked");
        }
    }
}

async fn read_lines(stream: impl AsyncRead + Unpin, shared: Arc<Lines>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        shared.lines.lock().unwrap().push(line);
        shared.arrived.notify_waiters();
    }
}

/// Sends SIGTERM, as Kubernetes does on a rollout.
pub fn terminate(pid: u32) {
    send(pid, Signal::SIGTERM);
}

/// Sends `signal` to the process `pid`; panics if it cannot be delivered.
pub fn send(pid: u32, signal: Signal) {
    signal::kill(as_pid(pid), signal)
        .unwrap_or_else(|e| panic!("cannot send {signal} to {pid}: {e}"));
}

/// Kills a whole process group (a server and the workers it forked).
/// A group that is already gone is not an error.
pub fn kill_group(group: u32) {
    let _ = signal::killpg(as_pid(group), Signal::SIGKILL);
}

fn as_pid(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).expect("a pid fits in i32"))
}

/// Resident set size of a running process in KiB, from `/proc`.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// The IPv4 address a process listens on with TCP, if it listens on exactly
/// one; read from the kernel's socket table, so it needs no cooperation from
/// the process (no log line, no port chosen in advance).
///
/// `/proc/{pid}/fd` names the process's sockets by inode; `/proc/{pid}/net/tcp`
/// lists every IPv4 socket of its network namespace with its inode and state.
pub fn listening_addr(pid: u32) -> Option<SocketAddr> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    let listening: Vec<SocketAddr> = table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            // local_address, state (0A is LISTEN) and inode, per proc_net_tcp(5).
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            (*state == "0A" && inodes.iter().any(|i| i == inode)).then_some(())?;
            let (ip, port) = local.split_once(':')?;
            // The kernel prints the address as the u32 it stores, in host order.
            let ip = Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.to_ne_bytes());
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_str_radix(port, 16).ok()?,
            ))
        })
        .collect();
    match listening[..] {
        [addr] => Some(addr),
        _ => None,
    }
}

/// Lets the child that `command` starts inherit `listener`, a socket the
/// harness bound (port 0, so the kernel picked a free port) and keeps until
/// the child has it: no other process can take the port in between, as it
/// could if the port were only chosen here and bound by the child later.
/// Returns the descriptor number the child finds it under, for a server
/// that accepts one (gunicorn's `--bind fd://N`, systemd's `LISTEN_FDS`).
#[allow(unsafe_code)] // pre_exec is unsafe; see the SAFETY note below.
pub fn hand_over(command: &mut std::process::Command, listener: &TcpListener) -> RawFd {
    let fd = listener.as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed. fcntl(2) is one: it clears
    // FD_CLOEXEC on this descriptor, which the parent keeps open until the
    // spawn returns, so exec leaves it open in the child.
    unsafe {
        command.pre_exec(move || {
            let inherited = BorrowedFd::borrow_raw(fd);
            fcntl(inherited, FcntlArg::F_SETFD(FdFlag::empty()))?;
            Ok(())
        });
    }
    fd
}
