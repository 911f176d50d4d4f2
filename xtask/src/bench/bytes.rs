//! Bytes per event, our JSON and OCSF, with `--lineage full` and `--lineage ids`:
//! what a SIEM is billed for. One short run of each workload per mode, the
//! tracer writing both formats at once; not timed (the throughput runs are).
use std::{fs, path::Path, time::Duration};

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use super::{
    measure::{RunningTracer, SETTLE},
    workloads::{Workload, run_workload},
};

/// One workload in one lineage mode.
pub(super) struct Bytes {
    pub(super) workload: &'static str,
    pub(super) lineage: &'static str,
    /// Action events (exec, connect, fork, exit) in the JSON output.
    pub(super) events: u64,
    /// Every byte of the file (process, loss and checkpoint records too) per event.
    pub(super) json_per_event: f64,
    pub(super) ocsf_per_event: f64,
}

pub(super) fn measure(tracer: &Path, workload: Workload, dur: Duration) -> Result<Vec<Bytes>> {
    let mut out = Vec::new();
    for lineage in ["full", "ids"] {
        let scratch = std::env::temp_dir().join(format!(
            "tracer-bench-bytes-{}-{lineage}.ocsf.jsonl",
            std::process::id()
        ));
        let _ = fs::remove_file(&scratch);
        let ocsf = scratch.to_str().context("temp path is not UTF-8")?;
        let mut t = RunningTracer::start(tracer, &["--lineage", lineage, "--ocsf-output", ocsf])?;
        run_workload(workload, dur, 0)?;
        std::thread::sleep(SETTLE);
        t.stop()?;
        let (events, json_bytes) = count(t.output())?;
        let ocsf_bytes = fs::metadata(&scratch)
            .with_context(|| format!("reading {}", scratch.display()))?
            .len();
        let _ = fs::remove_file(&scratch);
        let per = |b: u64| b as f64 / events.max(1) as f64;
        out.push(Bytes {
            workload: workload.name(),
            lineage,
            events,
            json_per_event: per(json_bytes),
            ocsf_per_event: per(ocsf_bytes),
        });
    }
    Ok(out)
}

/// Action events in a JSON output, and the file's bytes.
fn count(path: &Path) -> Result<(u64, u64)> {
    let text = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut events = 0;
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).context("bad line in the tracer's output")?;
        if matches!(
            v["kind"].as_str(),
            Some("exec" | "connect" | "fork" | "exit")
        ) {
            events += 1;
        }
    }
    Ok((events, text.len() as u64))
}

/// The markdown table: one row per workload, both modes side by side.
pub(super) fn table(rows: &[Bytes]) -> String {
    let mut t = String::from(
        "| workload | events | JSON bytes/event, full | JSON, ids | JSON ids/full | OCSF bytes/event, full | OCSF, ids |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for full in rows.iter().filter(|r| r.lineage == "full") {
        let Some(ids) = rows
            .iter()
            .find(|r| r.lineage == "ids" && r.workload == full.workload)
        else {
            continue;
        };
        t.push_str(&format!(
            "| {} | {} / {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} |\n",
            full.workload,
            full.events,
            ids.events,
            full.json_per_event,
            ids.json_per_event,
            ids.json_per_event / full.json_per_event.max(1.0),
            full.ocsf_per_event,
            ids.ocsf_per_event,
        ));
    }
    t
}

pub(super) fn to_json(b: &Bytes) -> Value {
    json!({
        "workload": b.workload,
        "lineage": b.lineage,
        "events": b.events,
        "json_bytes_per_event": b.json_per_event,
        "ocsf_bytes_per_event": b.ocsf_per_event,
    })
}
