//! The report: per-workload summaries over rounds, the markdown table,
//! `target/bench/latest.json` and BENCHMARKS.md.
use std::{fmt::Write as _, fs, path::Path, process::Command, thread};

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use super::{
    Options, Variant, capture,
    kcost::ProgramCost,
    measure::{Traced, quantile},
    workloads::{Ops, WORKERS, Workload},
};

pub(super) struct Summary {
    pub(super) workload: &'static str,
    pub(super) variant: &'static str,
    pub(super) ratio: f64,
    ops_without: f64,
    ops_with: f64,
    expected: Option<u64>,
    emitted: Option<u64>,
    pub(super) lost: Option<u64>,
    loss_records: u64,
    pub(super) cpu_s_per_1k: Option<f64>,
    rss_mib: f64,
    p50_ms: Option<f64>,
    pub(super) p99_ms: Option<f64>,
}

/// Print the table and write `target/bench/latest.json` and BENCHMARKS.md.
pub(super) fn write(
    root: &Path,
    o: &Options,
    summaries: &[Summary],
    costs: &[ProgramCost],
    bytes: &[super::bytes::Bytes],
    peer_notes: &[String],
    table_rss: Option<(u32, f64)>,
) -> Result<()> {
    let table = markdown_table(summaries);
    println!("{table}");
    let cost_table = cost_table(costs);
    println!("{cost_table}");
    let bytes_table = super::bytes::table(bytes);
    println!("{bytes_table}");
    if let Some((n, rss)) = table_rss {
        println!("RSS with {n} processes tracked: {rss:.1} MiB");
    }
    let bench_dir = root.join("target/bench");
    fs::create_dir_all(&bench_dir)?;
    let mut latest: Vec<Value> = summaries.iter().map(summary_json).collect();
    latest.extend(costs.iter().map(cost_json));
    latest.extend(bytes.iter().map(super::bytes::to_json));
    if let Some((n, rss)) = table_rss {
        latest.push(
            json!({"workload": "table_100k", "tracer": "tracer", "processes": n, "rss_mib": rss}),
        );
    }
    let latest_path = bench_dir.join("latest.json");
    fs::write(&latest_path, serde_json::to_string_pretty(&latest)? + "\n")
        .with_context(|| format!("writing {}", latest_path.display()))?;
    eprintln!("bench: wrote {}", latest_path.display());
    let targets = super::targets::section(summaries, bytes, table_rss);
    println!("{targets}");
    let md = benchmarks_md(
        &table,
        &targets,
        &cost_table,
        &bytes_table,
        o,
        peer_notes,
        table_rss,
    );
    let md_path = root.join("BENCHMARKS.md");
    let md = md + &super::report_speed::kept_section(&md_path);
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

fn cost_json(c: &ProgramCost) -> Value {
    json!({
        "workload": c.workload,
        "tracer": c.variant,
        "program": c.program,
        "runs": c.runs,
        "run_time_ns": c.ns,
        "ops": c.ops,
        "ns_per_run": c.ns_per_run(),
        "runs_per_op": c.runs_per_op(),
        "ns_per_op": c.ns_per_op(),
    })
}

/// Programs that ran under each workload, costliest first, and their sum per op.
fn cost_table(costs: &[ProgramCost]) -> String {
    let mut s = String::from(
        "| workload | tracer | program | runs per op | ns per run | ns per op |\n\
         |---|---|---|---:|---:|---:|\n",
    );
    let fmt =
        |v: Option<f64>, digits: usize| v.map_or_else(|| "n/a".into(), |v| format!("{v:.digits$}"));
    let mut i = 0;
    while i < costs.len() {
        let (w, v) = (costs[i].workload, costs[i].variant);
        let group: Vec<&ProgramCost> = costs[i..]
            .iter()
            .take_while(|c| c.workload == w && c.variant == v)
            .collect();
        i += group.len();
        for c in group.iter().filter(|c| c.runs > 0) {
            let _ = writeln!(
                s,
                "| {w} | {v} | {} | {} | {} | {} |",
                c.program,
                fmt(c.runs_per_op(), 3),
                fmt(c.ns_per_run(), 0),
                fmt(c.ns_per_op(), 0),
            );
        }
        let ops = group.first().map_or(0, |c| c.ops);
        let ns: u64 = group.iter().map(|c| c.ns).sum();
        let _ = writeln!(
            s,
            "| {w} | {v} | **all programs** | | | **{}** |",
            fmt((ops > 0).then(|| ns as f64 / ops as f64), 0)
        );
    }
    s
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

pub(super) fn summarize(
    workload: Workload,
    v: Variant,
    without: &[Ops],
    with: &[Traced],
) -> Summary {
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
    targets: &str,
    cost_table: &str,
    bytes_table: &str,
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
         - `tracer --emit-lifecycle` (exec_storm, mixed_churn): fork and exit events too, each exit \
         with what the image used; emitted and cpu per 1,000 events still count the workload's exec \
         and connect events only, so the cpu column is what one action costs with its process's \
         fork and exit reported.\n\
         - ratio: median over rounds of (ops/s with) / (ops/s without); ops/s columns are medians.\n\
         - expected/emitted/lost/loss records: summed over rounds, for our tracer (peers' output is not counted).\n\
         - cpu: the tracer process's utime+stime from ready to the end of the workload (start-up, \
         including BPF verification, excluded), per 1,000 events (peers: per 1,000 workload events; \
         auditd's kernel-side work in kauditd is not in it). rss: peak RSS (VmHWM).\n\
         - p50/p99: from the action's kernel timestamp to its line being written, from the tracer's \
         `tracer_event_latency_seconds` histogram (interpolated within buckets).\n\n\
         ## Against the targets\n\n\
         2-core machine, both cores busy with the workload, tracer writing JSON to a file. \
         Where a target is missed, docs/performance.md (\"What is left\") says what the \
         profile shows is left.\n\n\
         {targets}\n\
         ## Kernel-side cost per program\n\n\
         One more run of each workload under the tracer with BPF run-time statistics on \
         (`BPF_ENABLE_STATS`, or `kernel.bpf_stats_enabled` restored afterwards), outside the \
         rounds above: the kernel's `run_time_ns` and `run_cnt` of each of the tracer's \
         programs (from `/proc/PID/fdinfo`), over the workload. An op is the workload's op \
         (syscall_storm: 1,000 `getppid` calls). Programs that did not run are left out. \
         run_time_ns is the program alone: the cost of having a syscall tracepoint attached \
         at all (every syscall on the host takes the slow path) is not in it, and shows in \
         the syscall_storm ratio. See docs/performance.md.\n\n\
         {cost_table}\n\
         ## Bytes per event\n\n\
         One short run of each workload per lineage mode, the tracer writing our JSON and \
         OCSF (`--ocsf-output`) at once: each file's bytes divided by the action events \
         (exec, connect, fork, exit) in the JSON file. The JSON file's bytes include \
         everything in it: with `--lineage ids`, the `process` records that describe the \
         ancestors the events name by exec_id. OCSF keeps the whole ancestry in both modes. \
         Events counted in each mode are shown (full / ids): they include the host's own.\n\n\
         {bytes_table}",
        machine = machine(),
        rounds = o.rounds,
        seconds = o.seconds,
    )
}
