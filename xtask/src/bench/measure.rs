//! Measurement: running our tracer around a workload, its CPU, RSS and latency
//! (scraped from `/metrics`), and counting its events against the workload's.
//! The tracer is started, awaited and stopped by the live tests' own helper
//! (`tracer_tests::Tracer`), so the bench measures the tracer the tests check.
use std::{
    fs,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use serde_json::Value;
use tracer_tests::Tracer;

use super::{
    Variant,
    peers::{run_auditd, run_bpftrace},
    workloads::{Ops, Workload, run_workload},
};

pub(super) const READY_TIMEOUT: Duration = tracer_tests::READY_TIMEOUT;
/// Time our tracer gets to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a tracer gets after the workload ends to drain and write.
pub(super) const SETTLE: Duration = Duration::from_millis(1000);

/// One B measurement.
pub(super) struct Traced {
    pub(super) ops: Ops,
    /// `None` where the variant's output is not counted (peers).
    pub(super) emitted: Option<u64>,
    pub(super) loss_records: u64,
    pub(super) cpu_s: f64,
    pub(super) rss_mib: f64,
    /// Latency histogram of this run: (upper bound s, cumulative count).
    pub(super) latency: Vec<(f64, u64)>,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Our tracer, started for one measurement with a `/metrics` port; killed on
/// drop, which also removes its output.
pub(super) struct RunningTracer {
    tracer: Tracer,
    metrics: u16,
}

impl RunningTracer {
    pub(super) fn start(bin: &Path, extra: &[&str]) -> Result<RunningTracer> {
        let metrics = free_port()?;
        let addr = format!("127.0.0.1:{metrics}");
        let mut args = vec!["--rotate-size", "0", "--metrics-addr", &addr];
        args.extend_from_slice(extra);
        let tracer = Tracer::launch(bin, &[], &args, &[])?;
        Ok(RunningTracer { tracer, metrics })
    }

    pub(super) fn pid(&self) -> u32 {
        self.tracer.pid()
    }

    /// The events file (rotations are next to it: `<output>.1`, ...).
    pub(super) fn output(&self) -> &Path {
        &self.tracer.output
    }

    fn scrape(&self) -> Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    }

    /// SIGTERM and wait for the exit; the output stays readable until drop.
    pub(super) fn stop(&mut self) -> Result<()> {
        self.tracer.try_stop(STOP_TIMEOUT).map(drop)
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
pub(super) fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
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

pub(super) fn run_variant(
    v: Variant,
    tracer: &Path,
    tmp: &Path,
    workload: Workload,
    dur: Duration,
    round: u32,
) -> Result<Traced> {
    match v {
        Variant::Tracer => run_traced(tracer, workload, dur, round, &[]),
        Variant::TracerIds => run_traced(tracer, workload, dur, round, &["--lineage", "ids"]),
        Variant::TracerCompat => {
            run_traced(tracer, workload, dur, round, &["--compat-exec-probes"])
        }
        Variant::TracerLifecycle => run_traced(tracer, workload, dur, round, &["--emit-lifecycle"]),
        Variant::Auditd => run_auditd(tmp, workload, dur, round),
        Variant::Bpftrace => run_bpftrace(tmp, workload, dur, round),
    }
}

fn run_traced(
    tracer: &Path,
    workload: Workload,
    dur: Duration,
    round: u32,
    extra: &[&str],
) -> Result<Traced> {
    let mut t = RunningTracer::start(tracer, extra)?;
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
    let (emitted, loss_records) = count_events(t.output(), workload, &ops)?;
    Ok(Traced {
        ops,
        emitted: Some(emitted),
        loss_records,
        cpu_s,
        rss_mib,
        latency,
    })
}

/// RSS of the tracer holding `n` live processes in its table: `n` children of
/// this process that only wait, started after the tracer is ready.
pub(super) fn table_rss(tracer: &Path, n: u32) -> Result<(u32, f64)> {
    let pid_max_path = "/proc/sys/kernel/pid_max";
    let old_pid_max = fs::read_to_string(pid_max_path)?.trim().to_owned();
    let want = (u64::from(n) * 2 + 65_536).min(4_194_304);
    if old_pid_max.parse::<u64>().unwrap_or(0) < want {
        fs::write(pid_max_path, want.to_string()).context("raising kernel.pid_max")?;
    }
    let result = (|| -> Result<(u32, f64)> {
        let mut t = RunningTracer::start(tracer, &["--max-processes", &(n + 100_000).to_string()])?;
        eprintln!(
            "bench: table: ready: VmRSS {:.1} MiB, VmHWM {:.1} MiB, {} entries",
            current_rss_mib(t.pid())?,
            peak_rss_mib(t.pid())?,
            table_entries(&t)
        );
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
            let size = table_entries(&t);
            if size >= u64::from(spawned) || Instant::now() > deadline {
                break;
            }
            thread::sleep(Duration::from_millis(500));
        }
        let rss = peak_rss_mib(t.pid())?;
        eprintln!(
            "bench: table: {spawned} spawned: VmRSS {:.1} MiB, VmHWM {rss:.1} MiB, {} entries",
            current_rss_mib(t.pid())?,
            table_entries(&t)
        );
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
    result
}

/// `tracer_process_table_entries` from the tracer's `/metrics` (0 if unreadable).
fn table_entries(t: &RunningTracer) -> u64 {
    t.scrape()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("tracer_process_table_entries "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in seconds.
pub(super) fn cpu_seconds(pid: u32) -> Result<f64> {
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
pub(super) fn peak_rss_mib(pid: u32) -> Result<f64> {
    status_mib(pid, "VmHWM:")
}

/// VmRSS of a process, in MiB.
pub(super) fn current_rss_mib(pid: u32) -> Result<f64> {
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
pub(super) fn count_events(out: &Path, workload: Workload, ops: &Ops) -> Result<(u64, u64)> {
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
