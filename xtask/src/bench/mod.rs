//! `cargo xtask bench` and `cargo xtask soak`: the tracer's cost on storms of the
//! actions it records, side by side with peers (auditd, bpftrace) when installed.
//! Orchestration only: workloads, peers, measurement, kernel-side cost per
//! program and report are submodules.
mod bytes;
mod kcost;
mod measure;
mod peers;
mod real;
mod report;
mod report_speed;
mod targets;
mod workloads;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use measure::{
    RunningTracer, SETTLE, Traced, count_events, current_rss_mib, peak_rss_mib, run_variant,
    table_rss,
};
pub(crate) use real::real_only;
use report::summarize;
pub(crate) use report_speed::report_only;
use workloads::{Workload, churn, run_workload};

const WORKLOADS: [Workload; 4] = [
    Workload::Exec,
    Workload::Connect,
    Workload::Churn,
    Workload::Syscall,
];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Variant {
    Tracer,
    /// Ours with `--lineage ids` (ancestors by exec_id: shorter lines).
    TracerIds,
    /// Ours with the compat-exec probe, which runs on every syscall's exit.
    TracerCompat,
    /// Ours with `--emit-lifecycle` (fork and exit events, with the exit's usage).
    TracerLifecycle,
    Auditd,
    Bpftrace,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Tracer => "tracer",
            Variant::TracerIds => "tracer --lineage ids",
            Variant::TracerCompat => "tracer --compat-exec-probes",
            Variant::TracerLifecycle => "tracer --emit-lifecycle",
            Variant::Auditd => "auditd",
            Variant::Bpftrace => "bpftrace",
        }
    }
}

pub(crate) struct Options {
    pub rounds: u32,
    pub seconds: u64,
    /// Run auditd and bpftrace too, when installed.
    pub peers: bool,
    /// Processes to hold while measuring RSS with a large table (0: skip).
    pub table_procs: u32,
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

/// Each workload runs without any tracer (A) and with each tracer in turn (B),
/// interleaved A B.. A B.. over several rounds. With our tracer we measure
/// throughput, its CPU time from ready to stop, peak RSS, the latency from each
/// action to its written line (the tracer's own histogram, scraped from
/// `/metrics`), and count in its output the events of the workload's own actions
/// against what the workload did. `cargo xtask soak` runs the mixed churn for
/// minutes and follows RSS and loss over time.
pub(crate) fn run(root: &Path, o: &Options) -> Result<()> {
    require_root()?;
    let tracer = build(root)?;
    let dur = Duration::from_secs(o.seconds);
    let tmp = scratch()?;
    let mut variants = vec![Variant::Tracer];
    let mut peer_notes = Vec::new();
    if o.peers {
        // The peers are part of a full run: install them where apt can.
        let missing: Vec<&str> = [("auditd", "auditd"), ("bpftrace", "bpftrace")]
            .into_iter()
            .filter(|(bin, _)| which(bin).is_none())
            .map(|(_, pkg)| pkg)
            .collect();
        if !missing.is_empty() && Path::new("/usr/bin/apt-get").exists() {
            eprintln!("bench: installing peers: {}", missing.join(" "));
            if !crate::setup::apt_install(&missing) {
                eprintln!("bench: could not install {}", missing.join(" "));
            }
        }
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
    for workload in WORKLOADS {
        // The compat-exec probes' cost shows on syscalls alone: measure them
        // off only there.
        let mut variants = variants.clone();
        if workload == Workload::Syscall {
            variants.insert(1, Variant::TracerCompat);
        } else {
            variants.insert(1, Variant::TracerIds);
        }
        // Fork and exit events cost where processes come and go.
        if matches!(workload, Workload::Exec | Workload::Churn) {
            variants.insert(2, Variant::TracerLifecycle);
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
    // Kernel-side cost per program: one run per workload with BPF statistics on.
    let mut costs = Vec::new();
    for workload in WORKLOADS {
        let mut variants = vec![Variant::Tracer];
        if workload == Workload::Syscall {
            variants.push(Variant::TracerCompat);
        }
        for v in variants {
            match kcost::measure(&tracer, v, workload, dur, o.rounds) {
                Ok(rows) => {
                    eprintln!(
                        "bench: {} with {}: program costs measured",
                        workload.name(),
                        v.name()
                    );
                    costs.extend(rows);
                }
                Err(e) => peer_notes.push(format!("program costs ({}): {e:#}", workload.name())),
            }
        }
    }
    // Bytes per event in each lineage mode, both formats.
    let mut bytes = Vec::new();
    for workload in [Workload::Exec, Workload::Connect, Workload::Churn] {
        match bytes::measure(&tracer, workload, dur.min(Duration::from_secs(4))) {
            Ok(rows) => bytes.extend(rows),
            Err(e) => peer_notes.push(format!("bytes per event ({}): {e:#}", workload.name())),
        }
    }
    let table_rss = if o.table_procs > 0 {
        Some(table_rss(&tracer, o.table_procs)?)
    } else {
        None
    };
    let _ = fs::remove_dir_all(&tmp);
    peer_notes.sort();
    peer_notes.dedup();

    report::write(root, o, &summaries, &costs, &bytes, &peer_notes, table_rss)
}

/// `cargo xtask bench --table-only`: just the large-table RSS step, printed
/// (a quick loop while working on the process table's memory).
pub(crate) fn table_only(root: &Path, procs: u32) -> Result<()> {
    require_root()?;
    let tracer = build(root)?;
    let (spawned, rss) = table_rss(&tracer, procs)?;
    println!("table: {spawned} processes, peak RSS {rss:.1} MiB");
    Ok(())
}

/// `cargo xtask soak --minutes N`: mixed churn with the tracer for N minutes;
/// RSS sampled every few seconds, events expected vs written, event rate.
pub(crate) fn soak(root: &Path, minutes: u64) -> Result<()> {
    require_root()?;
    let tracer = build(root)?;
    let mut t = RunningTracer::start(
        &tracer,
        &["--rotate-size", "104857600", "--rotate-keep", "2"],
    )?;
    let out = t.output().to_owned();
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
    drop(t);
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
