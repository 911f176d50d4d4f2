//! The workloads the bench measures: storms of execs, connects, mixed shell
//! churn and cheap syscalls, each run on a few worker threads for a while.
use std::{
    fs,
    io::Read as _,
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};

pub(super) const WORKERS: usize = 2;

#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Workload {
    Exec,
    Connect,
    Churn,
    /// A cheap syscall in a loop: what every syscall on the host pays for the
    /// programs attached to syscall tracepoints (ours emit nothing here).
    Syscall,
}

impl Workload {
    pub(super) fn name(self) -> &'static str {
        match self {
            Workload::Exec => "exec_storm",
            Workload::Connect => "connect_storm",
            Workload::Churn => "mixed_churn",
            Workload::Syscall => "syscall_storm",
        }
    }

    /// Events our tracer should write per completed op.
    pub(super) fn events_per_op(self) -> u64 {
        match self {
            Workload::Exec | Workload::Connect => 1,
            // bash's own exec, /bin/true's exec, bash's connect
            Workload::Churn => 3,
            Workload::Syscall => 0,
        }
    }
}

/// What one workload run did: completed operations, and how to recognise its
/// events in a tracer's output.
pub(super) struct Ops {
    pub(super) count: u64,
    pub(super) elapsed: Duration,
    pub(super) marker: String,
    pub(super) port: u16,
}

impl Ops {
    pub(super) fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

/// Sockets in TIME_WAIT on this host (IPv4 and IPv6).
fn time_wait_sockets() -> usize {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .map(|t| {
            t.lines()
                .skip(1)
                .filter(|l| l.split_whitespace().nth(3) == Some("06"))
                .count()
        })
        .sum()
}

pub(super) fn run_workload(workload: Workload, dur: Duration, round: u32) -> Result<Ops> {
    // Loopback connects stall on ports still in TIME_WAIT from an earlier run (ours
    // or anyone's): start each socket workload from a drained table, so A and B
    // measure the same thing.
    if matches!(workload, Workload::Connect | Workload::Churn) {
        let deadline = Instant::now() + Duration::from_secs(70);
        while time_wait_sockets() > 1000 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(500));
        }
    }
    match workload {
        Workload::Exec => exec_storm(dur, round),
        Workload::Connect => connect_storm(dur),
        Workload::Churn => churn(dur, round),
        Workload::Syscall => syscall_storm(dur),
    }
}

/// Syscalls per op of the syscall storm: enough that the loop's own clock
/// reads do not matter.
const SYSCALLS_PER_OP: u64 = 1000;

fn syscall_storm(dur: Duration) -> Result<Ops> {
    let (count, elapsed) = workers(dur, || {
        for _ in 0..SYSCALLS_PER_OP {
            // SAFETY: no arguments, no side effects.
            unsafe { libc::getppid() };
        }
        true
    });
    Ok(Ops {
        count,
        elapsed,
        marker: String::new(),
        port: 0,
    })
}

fn marker(what: &str, round: u32) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("tracer-bench-{what}-{}-{round}-{nanos}", std::process::id())
}

/// Run `op` on each worker until the deadline; count successes.
fn workers(dur: Duration, op: impl Fn() -> bool + Sync) -> (u64, Duration) {
    let start = Instant::now();
    let deadline = start + dur;
    let count = thread::scope(|s| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|_| {
                let op = &op;
                s.spawn(move || {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        if op() {
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    (count, start.elapsed())
}

/// Fork+exec `/bin/true <marker>` in a tight loop on each worker.
fn exec_storm(dur: Duration, round: u32) -> Result<Ops> {
    let marker = marker("exec", round);
    let (count, elapsed) = workers(dur, || {
        Command::new("/bin/true")
            .arg(&marker)
            .status()
            .is_ok_and(|st| st.success())
    });
    Ok(Ops {
        count,
        elapsed,
        marker,
        port: 0,
    })
}

/// A loopback listener whose accepted connections are dropped at once.
struct Acceptor {
    port: u16,
    stop: Arc<AtomicBool>,
    fd: i32,
    thread: Option<thread::JoinHandle<()>>,
}

impl Acceptor {
    fn start() -> Result<Acceptor> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback listener")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let fd = listener.as_raw_fd();
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    // Wait for the client's reset before closing: a server-side
                    // close first leaves a TIME_WAIT per connection, and those
                    // collide with reused client ports and stall connects.
                    // Then reset (not FIN) whatever is left, so the client side
                    // does not linger in TIME_WAIT either (bash closes with FIN).
                    Ok((mut s, _)) => {
                        let _ = s.read(&mut [0u8; 1]);
                        set_linger_zero(&s);
                    }
                    Err(_) if flag.load(Ordering::Relaxed) => break,
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Ok(Acceptor {
            port,
            stop,
            fd,
            thread: Some(thread),
        })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocked accept without a connect of our own (which a tracer
        // would record): shutting a listening socket down makes accept fail.
        // SAFETY: the fd stays open until the acceptor thread, which owns it, ends.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Loopback TCP connect storm: each worker connects, accepts that connection
/// itself from the shared listener, and resets both ends (no TIME_WAIT). No
/// acceptor thread: throughput does not hinge on how a third thread is scheduled.
fn connect_storm(dur: Duration) -> Result<Ops> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback listener")?;
    let addr = listener.local_addr()?;
    let (count, elapsed) = workers(dur, || match TcpStream::connect(addr) {
        Ok(c) => {
            // Every accept follows a connect of its own, so one is always queued.
            if let Ok((server, _)) = listener.accept() {
                set_linger_zero(&server);
            }
            set_linger_zero(&c);
            true
        }
        Err(_) => {
            thread::sleep(Duration::from_millis(1));
            false
        }
    });
    Ok(Ops {
        count,
        elapsed,
        marker: String::new(),
        port: addr.port(),
    })
}

/// Short shells that exec and connect, like a CI job's steps: `bash -c` runs
/// `/bin/true <marker>` and opens a loopback TCP connection.
pub(super) fn churn(dur: Duration, round: u32) -> Result<Ops> {
    let acceptor = Acceptor::start()?;
    let marker = marker("churn", round);
    let script = format!(
        "/bin/true {marker}; exec 3<>/dev/tcp/127.0.0.1/{}",
        acceptor.port
    );
    let (count, elapsed) = workers(dur, || {
        Command::new("/bin/bash")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|st| st.success())
    });
    Ok(Ops {
        count,
        elapsed,
        marker,
        port: acceptor.port,
    })
}

fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const l).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
