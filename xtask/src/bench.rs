//! `cargo xtask bench`: the tracer's cost on storms of the actions it records,
//! side by side with peers (auditd, bpftrace) when they are installed.
//!
//! Each workload runs without any tracer (A) and with each tracer in turn (B),
//! interleaved A B.. A B.. over several rounds. With our tracer we measure
//! throughput, its CPU time from ready to stop, peak RSS, the latency from each
//! action to its written line (the tracer's own histogram, scraped from
//! `/metrics`), and count in its output the events of the workload's own actions
//! against what the workload did. `cargo xtask soak` runs the mixed churn for
//! minutes and follows RSS and loss over time.
use std::{
    fmt::Write as _,
    fs,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

const WORKERS: usize = 2;
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Time a tracer gets after the workload ends to drain and write.
const SETTLE: Duration = Duration::from_millis(1000);

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Workload {
    Exec,
    Connect,
    Churn,
    /// A cheap syscall in a loop: what every syscall on the host pays for the
    /// programs attached to syscall tracepoints (ours emit nothing here).
    Syscall,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Exec => "exec_storm",
            Workload::Connect => "connect_storm",
            Workload::Churn => "mixed_churn",
            Workload::Syscall => "syscall_storm",
        }
    }

    /// Events our tracer should write per completed op.
    fn events_per_op(self) -> u64 {
        match self {
            Workload::Exec | Workload::Connect => 1,
            // bash's own exec, /bin/true's exec, bash's connect
            Workload::Churn => 3,
            Workload::Syscall => 0,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Variant {
    Tracer,
    /// Ours with the compat-exec probe, which runs on every syscall's exit.
    TracerCompat,
    Auditd,
    Bpftrace,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Tracer => "tracer",
            Variant::TracerCompat => "tracer --compat-exec-probes",
            Variant::Auditd => "auditd",
            Variant::Bpftrace => "bpftrace",
        }
    }
}

pub struct Options {
    pub rounds: u32,
    pub seconds: u64,
    /// Run auditd and bpftrace too, when installed.
    pub peers: bool,
    /// Processes to hold while measuring RSS with a large table (0: skip).
    pub table_procs: u32,
}

/// What one workload run did: completed operations, and how to recognise its
/// events in a tracer's output.
struct Ops {
    count: u64,
    elapsed: Duration,
    marker: String,
    port: u16,
}

impl Ops {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

/// One B measurement.
struct Traced {
    ops: Ops,
    /// `None` where the variant's output is not counted (peers).
    emitted: Option<u64>,
    loss_records: u64,
    cpu_s: f64,
    rss_mib: f64,
    /// Latency histogram of this run: (upper bound s, cumulative count).
    latency: Vec<(f64, u64)>,
}

struct Summary {
    workload: &'static str,
    variant: &'static str,
    ratio: f64,
    ops_without: f64,
    ops_with: f64,
    expected: Option<u64>,
    emitted: Option<u64>,
    lost: Option<u64>,
    loss_records: u64,
    cpu_s_per_1k: Option<f64>,
    rss_mib: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the bench loads eBPF probes: run it as root");
    }
    Ok(())
}

fn build(root: &Path) -> Result<PathBuf> {
    let status = Command::new("cargo")
        .current_dir(root)
        .args(["build", "--release"])
        .status()
        .context("starting cargo build --release")?;
    if !status.success() {
        bail!("cargo build --release failed: {status}");
    }
    Ok(root.join("target/release/tracer"))
}

fn scratch() -> Result<PathBuf> {
    let tmp = std::env::temp_dir().join(format!("tracer-bench-{}", std::process::id()));
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    Ok(tmp)
}

pub fn run(root: &Path, o: &Options) -> Result<()> {
    require_root()?;
    let tracer = build(root)?;
    let dur = Duration::from_secs(o.seconds);
    let tmp = scratch()?;
    let mut variants = vec![Variant::Tracer];
    let mut peer_notes = Vec::new();
    if o.peers {
        if which("auditd").is_some() && which("auditctl").is_some() {
            variants.push(Variant::Auditd);
        } else {
            peer_notes.push("auditd: not installed".to_owned());
        }
        if which("bpftrace").is_some() {
            variants.push(Variant::Bpftrace);
        } else {
            peer_notes.push("bpftrace: not installed".to_owned());
        }
    } else {
        peer_notes.push("peers not run (--quick without --peers)".to_owned());
    }

    let mut summaries = Vec::new();
    for workload in [
        Workload::Exec,
        Workload::Connect,
        Workload::Churn,
        Workload::Syscall,
    ] {
        // The compat-exec probes' cost shows on syscalls alone: measure them
        // off only there.
        let mut variants = variants.clone();
        if workload == Workload::Syscall {
            variants.insert(1, Variant::TracerCompat);
        }
        let mut without = Vec::new();
        let mut with: Vec<Vec<Traced>> = variants.iter().map(|_| Vec::new()).collect();
        for round in 0..o.rounds {
            let w = workload.name();
            let a = run_workload(workload, dur, round)?;
            eprintln!(
                "bench: {w} round {}: without: {:.0} ops/s",
                round + 1,
                a.rate()
            );
            without.push(a);
            for (i, v) in variants.iter().enumerate() {
                let b = match run_variant(*v, &tracer, &tmp, workload, dur, round) {
                    Ok(b) => b,
                    Err(e) if *v != Variant::Tracer => {
                        peer_notes.push(format!("{}: {e:#}", v.name()));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                eprintln!(
                    "bench: {w} round {}: {}: {:.0} ops/s, emitted {:?} of {}, cpu {:.2} s, rss {:.1} MiB",
                    round + 1,
                    v.name(),
                    b.ops.rate(),
                    b.emitted,
                    b.ops.count * workload.events_per_op(),
                    b.cpu_s,
                    b.rss_mib
                );
                with[i].push(b);
            }
        }
        for (i, v) in variants.iter().enumerate() {
            if !with[i].is_empty() {
                summaries.push(summarize(workload, *v, &without, &with[i]));
            }
        }
    }
    let table_rss = if o.table_procs > 0 {
        Some(table_rss(&tracer, &tmp, o.table_procs)?)
    } else {
        None
    };
    let _ = fs::remove_dir_all(&tmp);
    peer_notes.sort();
    peer_notes.dedup();

    let table = markdown_table(&summaries);
    println!("{table}");
    if let Some((n, rss)) = table_rss {
        println!("RSS with {n} processes tracked: {rss:.1} MiB");
    }
    let bench_dir = root.join("target/bench");
    fs::create_dir_all(&bench_dir)?;
    let mut latest: Vec<Value> = summaries.iter().map(summary_json).collect();
    if let Some((n, rss)) = table_rss {
        latest.push(
            json!({"workload": "table_100k", "tracer": "tracer", "processes": n, "rss_mib": rss}),
        );
    }
    let latest_path = bench_dir.join("latest.json");
    fs::write(&latest_path, serde_json::to_string_pretty(&latest)? + "\n")
        .with_context(|| format!("writing {}", latest_path.display()))?;
    eprintln!("bench: wrote {}", latest_path.display());
    let md = benchmarks_md(&table, o, &peer_notes, table_rss);
    let md_path = root.join("BENCHMARKS.md");
    fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    eprintln!("bench: wrote {}", md_path.display());
    Ok(())
}

fn summary_json(s: &Summary) -> Value {
    json!({
        "workload": s.workload,
        "tracer": s.variant,
        "ratio": s.ratio,
        "ops_without": s.ops_without,
        "ops_with": s.ops_with,
        "expected": s.expected,
        "emitted": s.emitted,
        "lost": s.lost,
        "loss_records": s.loss_records,
        "cpu_s_per_1k": s.cpu_s_per_1k,
        "rss_mib": s.rss_mib,
        "p50_ms": s.p50_ms,
        "p99_ms": s.p99_ms,
    })
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

fn run_workload(workload: Workload, dur: Duration, round: u32) -> Result<Ops> {
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
fn churn(dur: Duration, round: u32) -> Result<Ops> {
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

/// Wait for a line containing `needle` on `stream` (stderr or stdout of a
/// tracer), then keep draining it so the child never blocks on the pipe.
fn wait_for_line(
    stream: impl std::io::Read + Send + 'static,
    needle: &'static str,
) -> Result<thread::JoinHandle<Vec<String>>> {
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut tail = Vec::new();
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if line.contains(needle) {
                let _ = tx.send(());
            }
            tail.push(line);
            if tail.len() > 50 {
                tail.remove(0);
            }
        }
        tail
    });
    if rx.recv_timeout(READY_TIMEOUT).is_err() {
        let tail = reader.join().unwrap_or_default();
        bail!("not ready (no {needle:?}):\n{}", tail.join("\n"));
    }
    Ok(reader)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Our tracer, started for one measurement; stopped on drop.
struct RunningTracer {
    child: Child,
    metrics: u16,
    reader: Option<thread::JoinHandle<Vec<String>>>,
}

impl RunningTracer {
    fn start(tracer: &Path, out: &Path, extra: &[&str]) -> Result<RunningTracer> {
        let _ = fs::remove_file(out);
        let metrics = free_port()?;
        let mut child = Command::new(tracer)
            .args(["run", "--rotate-size", "0", "--metrics-addr"])
            .arg(format!("127.0.0.1:{metrics}"))
            .arg("--output")
            .arg(out)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", tracer.display()))?;
        let stderr = child.stderr.take().context("tracer stderr")?;
        match wait_for_line(stderr, "tracer ready") {
            Ok(reader) => Ok(RunningTracer {
                child,
                metrics,
                reader: Some(reader),
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn scrape(&self) -> Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    }

    fn stop(mut self) -> Result<()> {
        let r = stop(&mut self.child);
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
        r
    }
}

impl Drop for RunningTracer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tracer_event_latency_seconds` buckets: (upper bound, cumulative count).
fn latency_buckets(metrics: &str) -> Vec<(f64, u64)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("tracer_event_latency_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, rest) = l.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, rest.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// The q-quantile of a cumulative histogram, interpolated within its bucket.
fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(le, count) in buckets {
        if count as f64 >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let within = (rank - lower.1 as f64) / ((count - lower.1).max(1) as f64);
            return Some(lower.0 + (le - lower.0) * within);
        }
        lower = (le, count);
    }
    None
}

fn run_variant(
    v: Variant,
    tracer: &Path,
    tmp: &Path,
    workload: Workload,
    dur: Duration,
    round: u32,
) -> Result<Traced> {
    match v {
        Variant::Tracer => run_traced(tracer, tmp, workload, dur, round, &[]),
        Variant::TracerCompat => {
            run_traced(tracer, tmp, workload, dur, round, &["--compat-exec-probes"])
        }
        Variant::Auditd => run_auditd(tmp, workload, dur, round),
        Variant::Bpftrace => run_bpftrace(tmp, workload, dur, round),
    }
}

fn run_traced(
    tracer: &Path,
    tmp: &Path,
    workload: Workload,
    dur: Duration,
    round: u32,
    extra: &[&str],
) -> Result<Traced> {
    let out = tmp.join(format!("{}-{round}.jsonl", workload.name()));
    let t = RunningTracer::start(tracer, &out, extra)?;
    let pid = t.pid();
    let before = latency_buckets(&t.scrape()?);
    let cpu0 = cpu_seconds(pid)?;
    let ops = run_workload(workload, dur, round)?;
    thread::sleep(SETTLE);
    let cpu_s = cpu_seconds(pid)? - cpu0;
    let rss_mib = peak_rss_mib(pid)?;
    let after = latency_buckets(&t.scrape()?);
    t.stop()?;
    // This run's events only: the difference of the two scrapes.
    let latency = after
        .iter()
        .map(|&(le, n)| {
            let b = before.iter().find(|x| x.0 == le).map_or(0, |x| x.1);
            (le, n.saturating_sub(b))
        })
        .collect();
    let (emitted, loss_records) = count_events(&out, workload, &ops)?;
    let _ = fs::remove_file(&out);
    Ok(Traced {
        ops,
        emitted: Some(emitted),
        loss_records,
        cpu_s,
        rss_mib,
        latency,
    })
}

/// auditd with execve/execveat/connect rules, writing its usual log.
fn run_auditd(_tmp: &Path, workload: Workload, dur: Duration, round: u32) -> Result<Traced> {
    let auditctl = |args: &[&str]| -> Result<()> {
        let out = Command::new("auditctl").args(args).output()?;
        if !out.status.success() {
            bail!(
                "auditctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    let mut child = Command::new("auditd")
        .arg("-n")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting auditd")?;
    let result = (|| -> Result<Traced> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !capture(Command::new("auditctl").arg("-s")).contains(&format!("pid {}", child.id()))
        {
            if Instant::now() > deadline {
                bail!("auditd did not register with the kernel");
            }
            thread::sleep(Duration::from_millis(100));
        }
        auditctl(&["-D"])?;
        auditctl(&[
            "-a",
            "always,exit",
            "-F",
            "arch=b64",
            "-S",
            "execve",
            "-S",
            "execveat",
            "-S",
            "connect",
            "-k",
            "tracer-bench",
        ])?;
        let cpu0 = cpu_seconds(child.id())?;
        let ops = run_workload(workload, dur, round)?;
        thread::sleep(SETTLE);
        let cpu_s = cpu_seconds(child.id())? - cpu0;
        let rss_mib = peak_rss_mib(child.id())?;
        Ok(Traced {
            ops,
            emitted: None,
            loss_records: 0,
            cpu_s,
            rss_mib,
            latency: Vec::new(),
        })
    })();
    let _ = auditctl(&["-D"]);
    stop(&mut child)?;
    result
}

/// A bpftrace one-liner printing every execve and connect.
fn run_bpftrace(tmp: &Path, workload: Workload, dur: Duration, round: u32) -> Result<Traced> {
    let out = tmp.join("bpftrace.out");
    let mut child = Command::new("bpftrace")
        .args([
            "-e",
            "tracepoint:syscalls:sys_enter_execve { printf(\"exec %d %s\\n\", pid, str(args->filename)); } \
             tracepoint:syscalls:sys_enter_connect { printf(\"connect %d\\n\", pid); }",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting bpftrace")?;
    let stdout = child.stdout.take().context("bpftrace stdout")?;
    let file = fs::File::create(&out)?;
    // Copy its output to a file (as an operator would redirect it), noting readiness.
    let (tx, rx) = mpsc::channel();
    let copier = thread::spawn(move || {
        let mut w = std::io::BufWriter::new(file);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("Attaching") {
                let _ = tx.send(());
            }
            let _ = writeln!(w, "{line}");
        }
    });
    let result = (|| -> Result<Traced> {
        rx.recv_timeout(READY_TIMEOUT)
            .map_err(|_| anyhow::anyhow!("bpftrace did not attach"))?;
        thread::sleep(Duration::from_millis(300));
        let cpu0 = cpu_seconds(child.id())?;
        let ops = run_workload(workload, dur, round)?;
        thread::sleep(SETTLE);
        Ok(Traced {
            ops,
            emitted: None,
            loss_records: 0,
            cpu_s: cpu_seconds(child.id())? - cpu0,
            rss_mib: peak_rss_mib(child.id())?,
            latency: Vec::new(),
        })
    })();
    // bpftrace ends cleanly on SIGINT.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
    let _ = copier.join();
    let _ = fs::remove_file(&out);
    result
}

/// RSS of the tracer holding `n` live processes in its table: `n` children of
/// this process that only wait, started after the tracer is ready.
fn table_rss(tracer: &Path, tmp: &Path, n: u32) -> Result<(u32, f64)> {
    let pid_max_path = "/proc/sys/kernel/pid_max";
    let old_pid_max = fs::read_to_string(pid_max_path)?.trim().to_owned();
    let want = (u64::from(n) * 2 + 65_536).min(4_194_304);
    if old_pid_max.parse::<u64>().unwrap_or(0) < want {
        fs::write(pid_max_path, want.to_string()).context("raising kernel.pid_max")?;
    }
    let out = tmp.join("table.jsonl");
    let result = (|| -> Result<(u32, f64)> {
        let t = RunningTracer::start(
            tracer,
            &out,
            &["--max-processes", &(n + 100_000).to_string()],
        )?;
        // Small sleeping processes (fork+exec of sleep: a forked copy of this
        // process costs several times the memory per child).
        let mut kids = Vec::with_capacity(n as usize);
        for _ in 0..n {
            match Command::new("sleep")
                .arg("3600")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(c) => kids.push(c),
                Err(_) => break,
            }
        }
        let spawned = kids.len() as u32;
        // Let the table take them all in.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let m = t.scrape().unwrap_or_default();
            let size = m
                .lines()
                .find_map(|l| l.strip_prefix("tracer_process_table_entries "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if size >= u64::from(spawned) || Instant::now() > deadline {
                break;
            }
            thread::sleep(Duration::from_millis(500));
        }
        let rss = peak_rss_mib(t.pid())?;
        for k in &mut kids {
            let _ = k.kill();
        }
        for k in &mut kids {
            let _ = k.wait();
        }
        t.stop()?;
        Ok((spawned, rss))
    })();
    let _ = fs::write(pid_max_path, &old_pid_max);
    let _ = fs::remove_file(&out);
    result
}

fn stop(child: &mut Child) -> Result<()> {
    let pid = libc::pid_t::try_from(child.id())?;
    // SAFETY: signalling our own child, which has not been waited for yet.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("tracer did not exit within 30 s of SIGTERM");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').context("malformed /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |field: usize| -> Result<f64> {
        Ok(fields
            .get(field - 3)
            .context("short /proc/PID/stat")?
            .parse::<u64>()? as f64)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Ok((ticks(14)? + ticks(15)?) / hz)
}

/// VmHWM of a process, in MiB.
fn peak_rss_mib(pid: u32) -> Result<f64> {
    status_mib(pid, "VmHWM:")
}

/// VmRSS of a process, in MiB.
fn current_rss_mib(pid: u32) -> Result<f64> {
    status_mib(pid, "VmRSS:")
}

/// A `kB` line of /proc/PID/status, in MiB.
fn status_mib(pid: u32, key: &str) -> Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))?
        .parse::<u64>()?;
    Ok(kb as f64 / 1024.0)
}

/// Events in `out` for the workload's own actions, and loss records.
fn count_events(out: &Path, workload: Workload, ops: &Ops) -> Result<(u64, u64)> {
    let file = fs::File::open(out).with_context(|| format!("opening {}", out.display()))?;
    let (mut emitted, mut loss) = (0u64, 0u64);
    let port_field = format!("\"port\":{}", ops.port);
    for line in BufReader::new(file).lines() {
        let line = line?;
        // Cheap filter first: most lines are other processes'.
        let relevant = line.contains("\"kind\":\"loss\"")
            || (ops.port != 0 && line.contains(&port_field))
            || (!ops.marker.is_empty() && line.contains(&ops.marker));
        if !relevant {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let action = &v["action"];
        let argv_has = |m: &str| {
            action["argv"]
                .as_array()
                .is_some_and(|a| a.iter().any(|s| s.as_str().is_some_and(|s| s.contains(m))))
        };
        let to_port = action["destination"]["port"].as_u64() == Some(u64::from(ops.port));
        match (v["kind"].as_str(), workload) {
            (Some("loss"), _) => loss += 1,
            (Some("exec"), Workload::Exec)
                if action["argv"][1].as_str() == Some(ops.marker.as_str())
                    && action["outcome"] == "success" =>
            {
                emitted += 1
            }
            (Some("exec"), Workload::Churn)
                if argv_has(&ops.marker) && action["outcome"] == "success" =>
            {
                emitted += 1
            }
            (Some("connect"), Workload::Connect | Workload::Churn) if to_port => emitted += 1,
            _ => {}
        }
    }
    Ok((emitted, loss))
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn summarize(workload: Workload, v: Variant, without: &[Ops], with: &[Traced]) -> Summary {
    let ratio = median(
        without
            .iter()
            .zip(with)
            .map(|(a, b)| b.ops.rate() / a.rate())
            .collect(),
    );
    let expected: u64 = with
        .iter()
        .map(|t| t.ops.count * workload.events_per_op())
        .sum();
    let emitted: Option<u64> = with.iter().map(|t| t.emitted).sum();
    let cpu: f64 = with.iter().map(|t| t.cpu_s).sum();
    // Our events, or for a peer the workload's own ops.
    let events = emitted.unwrap_or(expected);
    // Latency over all rounds: sum the per-round histograms.
    let mut hist: Vec<(f64, u64)> = Vec::new();
    for t in with {
        for &(le, n) in &t.latency {
            match hist.iter_mut().find(|h| h.0 == le) {
                Some(h) => h.1 += n,
                None => hist.push((le, n)),
            }
        }
    }
    hist.sort_by(|a, b| a.0.total_cmp(&b.0));
    Summary {
        workload: workload.name(),
        variant: v.name(),
        ratio,
        ops_without: median(without.iter().map(Ops::rate).collect()),
        ops_with: median(with.iter().map(|t| t.ops.rate()).collect()),
        expected: emitted.map(|_| expected),
        emitted,
        lost: emitted.map(|e| expected.saturating_sub(e)),
        loss_records: with.iter().map(|t| t.loss_records).sum(),
        cpu_s_per_1k: (events > 0).then(|| cpu / (events as f64 / 1000.0)),
        rss_mib: with.iter().map(|t| t.rss_mib).fold(0.0, f64::max),
        p50_ms: quantile(&hist, 0.5).map(|s| s * 1000.0),
        p99_ms: quantile(&hist, 0.99).map(|s| s * 1000.0),
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a".into(), |v| v.to_string())
}

fn markdown_table(rows: &[Summary]) -> String {
    let mut s = String::from(
        "| workload | tracer | ratio | ops/s without | ops/s with | expected | emitted | lost | loss records | cpu ms per 1k events | rss MiB | p50 ms | p99 ms |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {:.1} | {} | {} |",
            r.workload,
            r.variant,
            r.ratio,
            r.ops_without,
            r.ops_with,
            opt(r.expected),
            opt(r.emitted),
            opt(r.lost),
            r.loss_records,
            opt(r.cpu_s_per_1k.map(|c| format!("{:.1}", c * 1000.0))),
            r.rss_mib,
            opt(r.p50_ms.map(|v| format!("{v:.1}"))),
            opt(r.p99_ms.map(|v| format!("{v:.1}"))),
        );
    }
    s
}

fn machine() -> String {
    let kernel = capture(Command::new("uname").arg("-r"));
    let nproc = thread::available_parallelism().map_or(0, |n| n.get());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or_else(
            || "?".into(),
            |kb| format!("{:.0} GiB", kb as f64 / 1048576.0),
        );
    format!("kernel {kernel}, {nproc} CPUs ({model}), {mem} RAM")
}

fn benchmarks_md(
    table: &str,
    o: &Options,
    peer_notes: &[String],
    table_rss: Option<(u32, f64)>,
) -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = format!("cargo xtask {}", args.join(" "));
    let date = capture(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]));
    let peers = if peer_notes.is_empty() {
        "auditd and bpftrace ran as peers.".to_owned()
    } else {
        format!("Peer notes: {}.", peer_notes.join("; "))
    };
    let table_line = table_rss.map_or_else(
        || "- RSS with a large process table: not measured in this run (`--table-procs N`).".to_owned(),
        |(n, rss)| format!("- RSS with {n} live processes in the table: **{rss:.1} MiB** (target < 64 MiB with 100,000)."),
    );
    format!(
        "# Benchmarks\n\n\
         Generated by `cargo xtask bench`; overwritten on each run.\n\n\
         - Command: `{command}`\n\
         - Date: {date}\n\
         - Machine: {machine}\n\
         - Rounds: {rounds} (without, then each tracer, interleaved), {seconds} s per measurement, {WORKERS} worker threads\n\n\
         {table}\n\
         {table_line}\n\
         - {peers}\n\n\
         Targets (2-core machine, tracer writing JSON to a file): exec ratio >= 0.98, \
         connect ratio >= 0.95, zero loss, <= 5 ms tracer CPU per 1,000 events, p99 < 100 ms, \
         RSS < 64 MiB with 100,000 processes.\n\n\
         - **exec_storm**: workers fork+exec `/bin/true <marker>` and wait; an op is one successful \
         completion; emitted = `exec` events with `action.argv[1]` = marker and outcome `success`.\n\
         - **connect_storm**: workers connect to a loopback listener, accept that connection \
         themselves and reset both ends; emitted = `connect` events to the listener's port (a connect that failed is recorded as an event but is not an op, so emitted can exceed expected by those).\n\
         - **mixed_churn**: workers run `bash -c '/bin/true <marker>; exec 3<>/dev/tcp/127.0.0.1/<port>'`; \
         3 events per op (bash's exec, true's exec, bash's connect).\n\
         - **syscall_storm**: workers call `getppid` in a loop, 1,000 per op; no events. It measures \
         what every syscall on the host pays while the tracer is attached: with any syscall tracepoint \
         in use, every syscall takes the kernel's slow path. Attached by default: `sys_enter`/`sys_exit` \
         of `execve`, `execveat` (failed execs) and `connect` (synchronous connect results); \
         `tracer --compat-exec-probes` adds a raw `sys_exit` program (failed execs through the \
         32-bit table) that runs on every syscall.\n\
         - ratio: median over rounds of (ops/s with) / (ops/s without); ops/s columns are medians.\n\
         - expected/emitted/lost/loss records: summed over rounds, for our tracer (peers' output is not counted).\n\
         - cpu: the tracer process's utime+stime from ready to the end of the workload (start-up, \
         including BPF verification, excluded), per 1,000 events (peers: per 1,000 workload events; \
         auditd's kernel-side work in kauditd is not in it). rss: peak RSS (VmHWM).\n\
         - p50/p99: from the action's kernel timestamp to its line being written, from the tracer's \
         `tracer_event_latency_seconds` histogram (interpolated within buckets).\n",
        machine = machine(),
        rounds = o.rounds,
        seconds = o.seconds,
    )
}

/// `cargo xtask soak --minutes N`: mixed churn with the tracer for N minutes;
/// RSS sampled every few seconds, events expected vs written, event rate.
pub fn soak(root: &Path, minutes: u64) -> Result<()> {
    require_root()?;
    let tracer = build(root)?;
    let tmp = scratch()?;
    let out = tmp.join("soak.jsonl");
    let t = RunningTracer::start(
        &tracer,
        &out,
        &["--rotate-size", "104857600", "--rotate-keep", "2"],
    )?;
    let pid = t.pid();
    let total = Duration::from_secs(minutes.max(1) * 60);
    let slice = Duration::from_secs(10);
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut expected = 0u64;
    let mut emitted = 0u64;
    let mut loss_records = 0u64;
    let mut round = 0;
    while start.elapsed() < total {
        let ops = churn(
            slice
                .min(total - start.elapsed())
                .max(Duration::from_secs(1)),
            round,
        )?;
        thread::sleep(Duration::from_millis(300));
        let rss = current_rss_mib(pid)?;
        expected += ops.count * Workload::Churn.events_per_op();
        samples.push((start.elapsed().as_secs_f64(), rss, ops.rate()));
        eprintln!(
            "soak: t={:>5.0}s rss {:.1} MiB, {:.0} ops/s",
            start.elapsed().as_secs_f64(),
            rss,
            ops.rate()
        );
        round += 1;
        // Count this slice's events now (files rotate over a long soak).
        thread::sleep(SETTLE);
        let mut found = 0;
        for f in [out.clone(), PathBuf::from(format!("{}.1", out.display()))] {
            if f.exists() {
                let (e, l) = count_events(&f, Workload::Churn, &ops)?;
                found += e;
                loss_records = loss_records.max(l);
            }
        }
        emitted += found;
    }
    let peak = peak_rss_mib(pid)?;
    t.stop()?;
    let _ = fs::remove_dir_all(&tmp);
    let first = samples.first().map_or(0.0, |s| s.1);
    let last = samples.last().map_or(0.0, |s| s.1);
    let max = samples.iter().map(|s| s.1).fold(0.0, f64::max);
    // Least-squares slope of RSS over time, MiB per minute.
    let n = samples.len() as f64;
    let (mx, my) = (
        samples.iter().map(|s| s.0).sum::<f64>() / n,
        samples.iter().map(|s| s.1).sum::<f64>() / n,
    );
    let cov: f64 = samples.iter().map(|s| (s.0 - mx) * (s.1 - my)).sum();
    let var: f64 = samples.iter().map(|s| (s.0 - mx).powi(2)).sum();
    let slope = if var > 0.0 { cov / var * 60.0 } else { 0.0 };
    let secs = start.elapsed().as_secs_f64();
    let report = json!({
        "minutes": minutes,
        "events_expected": expected,
        "events_emitted": emitted,
        "lost": expected.saturating_sub(emitted),
        "loss_records": loss_records,
        "event_rate_per_s": emitted as f64 / secs,
        "rss_mib": {"first": first, "last": last, "max": max, "peak_hwm": peak, "slope_mib_per_min": slope},
        "samples": samples.iter().map(|s| json!({"t_s": s.0, "rss_mib": s.1, "ops_per_s": s.2})).collect::<Vec<_>>(),
    });
    let dir = root.join("target/bench");
    fs::create_dir_all(&dir)?;
    let path = dir.join("soak.json");
    fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
    println!(
        "soak: {minutes} min, {emitted} of {expected} events ({} lost, {loss_records} loss records), \
         {:.0} events/s; RSS first {first:.1} last {last:.1} max {max:.1} MiB, slope {slope:+.2} MiB/min",
        expected.saturating_sub(emitted),
        emitted as f64 / secs,
    );
    eprintln!("soak: wrote {}", path.display());
    if expected > emitted {
        bail!("soak lost {} events", expected - emitted);
    }
    Ok(())
}

fn capture(cmd: &mut Command) -> String {
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .chain(["/sbin".into(), "/usr/sbin".into()])
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}
