//! Kernel-side cost per program: with BPF run-time statistics on, the kernel
//! keeps `run_time_ns` and `run_cnt` for every program; the tracer's own
//! programs are the ones its process holds descriptors of
//! (`/proc/PID/fdinfo/N` of a program shows its id and both counters).
//! Measured in a pass of its own, after the throughput rounds: the statistics
//! add two clock reads to every run, which the ratios must not carry.
use std::{
    collections::BTreeMap,
    fs,
    os::fd::{FromRawFd as _, OwnedFd},
    path::Path,
    process::Command,
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result};

use super::{
    Variant,
    measure::{RunningTracer, SETTLE},
    workloads::{Workload, run_workload},
};

const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";
/// `BPF_ENABLE_STATS` (5.8+) and its `BPF_STATS_RUN_TIME` type.
const BPF_ENABLE_STATS: libc::c_long = 32;
const BPF_STATS_RUN_TIME: u32 = 0;

/// BPF run-time statistics, on while this lives. Preferably through
/// `BPF_ENABLE_STATS`, whose descriptor keeps them on (counted per holder, so
/// another user's setting is left alone) until it is closed; else through the
/// sysctl, whose previous value is written back on drop.
pub(super) struct StatsOn {
    _fd: Option<OwnedFd>,
    /// The sysctl's value before, when it was written.
    previous: Option<String>,
}

impl StatsOn {
    pub(super) fn enable() -> Result<StatsOn> {
        let mut attr = [0u64; 1];
        attr[0] = u64::from(BPF_STATS_RUN_TIME);
        // SAFETY: `attr` is a zeroed `union bpf_attr` prefix holding
        // `enable_stats.type`, valid for reads of its 8 bytes.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_ENABLE_STATS,
                attr.as_mut_ptr(),
                std::mem::size_of_val(&attr) as libc::c_uint,
            )
        };
        if fd >= 0 {
            // SAFETY: a new descriptor the kernel just returned, owned by nobody else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            return Ok(StatsOn {
                _fd: Some(fd),
                previous: None,
            });
        }
        let previous = fs::read_to_string(STATS_SYSCTL)
            .with_context(|| format!("reading {STATS_SYSCTL}"))?
            .trim()
            .to_owned();
        fs::write(STATS_SYSCTL, "1").with_context(|| format!("writing {STATS_SYSCTL}"))?;
        Ok(StatsOn {
            _fd: None,
            previous: Some(previous),
        })
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            let _ = fs::write(STATS_SYSCTL, previous.as_bytes());
        }
    }
}

/// (run_time_ns, run_cnt) of each program the process holds, by program id.
fn snapshot(pid: u32) -> Result<BTreeMap<u32, (u64, u64)>> {
    let mut out = BTreeMap::new();
    let dir = format!("/proc/{pid}/fdinfo");
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let Ok(text) = fs::read_to_string(entry?.path()) else {
            continue;
        };
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        // Links name a program too, but carry no counters.
        if let (Some(id), Some(ns), Some(cnt)) =
            (field("prog_id:"), field("run_time_ns:"), field("run_cnt:"))
        {
            out.insert(id as u32, (ns, cnt));
        }
    }
    Ok(out)
}

/// A program's name as the kernel keeps it (15 characters at most), from
/// bpftool when installed, else its id.
fn program_name(id: u32) -> String {
    Command::new("bpftool")
        .args(["prog", "show", "id", &id.to_string(), "--json"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["name"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("prog id {id}"))
}

/// One program under one workload.
pub(super) struct ProgramCost {
    pub(super) workload: &'static str,
    pub(super) variant: &'static str,
    pub(super) program: String,
    pub(super) runs: u64,
    pub(super) ns: u64,
    pub(super) ops: u64,
}

impl ProgramCost {
    pub(super) fn ns_per_run(&self) -> Option<f64> {
        (self.runs > 0).then(|| self.ns as f64 / self.runs as f64)
    }
    pub(super) fn runs_per_op(&self) -> Option<f64> {
        (self.ops > 0).then(|| self.runs as f64 / self.ops as f64)
    }
    pub(super) fn ns_per_op(&self) -> Option<f64> {
        (self.ops > 0).then(|| self.ns as f64 / self.ops as f64)
    }
}

/// Run `workload` once under the tracer (with `variant`'s flags) with the
/// statistics on; the difference of the counters before and after.
pub(super) fn measure(
    tracer: &Path,
    v: Variant,
    workload: Workload,
    dur: Duration,
    round: u32,
) -> Result<Vec<ProgramCost>> {
    let extra: &[&str] = match v {
        Variant::TracerCompat => &["--compat-exec-probes"],
        _ => &[],
    };
    let mut t = RunningTracer::start(tracer, extra)?;
    let stats = StatsOn::enable()?;
    let pid = t.pid();
    let before = snapshot(pid)?;
    let ops = run_workload(workload, dur, round)?;
    // The last events of the workload are in by now; the counters stop at the
    // workload's end (nothing of ours runs after it but unrelated host activity).
    let after = snapshot(pid)?;
    drop(stats);
    // Names while the programs are still loaded.
    let names: BTreeMap<u32, String> = after.keys().map(|&id| (id, program_name(id))).collect();
    thread::sleep(SETTLE);
    t.stop()?;
    let mut rows: Vec<ProgramCost> = after
        .iter()
        .map(|(id, &(ns, cnt))| {
            let (ns0, cnt0) = before.get(id).copied().unwrap_or((0, 0));
            ProgramCost {
                workload: workload.name(),
                variant: v.name(),
                program: names[id].clone(),
                runs: cnt.saturating_sub(cnt0),
                ns: ns.saturating_sub(ns0),
                ops: ops.count,
            }
        })
        .collect();
    // Costliest per op first.
    rows.sort_by(|a, b| b.ns.cmp(&a.ns).then(a.program.cmp(&b.program)));
    Ok(rows)
}
