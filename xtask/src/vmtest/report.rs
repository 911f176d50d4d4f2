//! Results: the pass/fail table of the kernels, and the verifier instruction
//! counts per program and kernel from each guest's `tracer check-kernel`.
use std::fs;

use anyhow::{Context as _, Result};

use super::{Dirs, Outcome, V1_SUFFIX};

/// The pass/fail table, one row per kernel.
pub(super) fn outcomes_table(outcomes: &[Outcome]) {
    println!();
    println!(
        "{:<8} {:<32} {:<22} {:>7} {:>8}",
        "kernel", "uname -r (guest)", "result", "boot s", "total s"
    );
    for o in outcomes {
        let result = match (o.status, o.timed_out) {
            (Some(0), _) if o.retried => "pass (after a lost guest)".to_string(),
            (Some(0), _) => "pass".to_string(),
            (Some(rc), _) => format!("FAIL (exit {rc})"),
            (None, true) => "FAIL (timeout)".to_string(),
            (None, false) => "FAIL (no status)".to_string(),
        };
        let boot = o
            .boot
            .map(|b| format!("{:.1}", b.as_secs_f64()))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<8} {:<32} {:<22} {:>7} {:>8.1}",
            o.kernel,
            if o.uname.is_empty() { "?" } else { &o.uname },
            result,
            boot,
            o.total.as_secs_f64()
        );
    }
}

/// Verifier instructions per program per kernel, from each guest's
/// `tracer check-kernel` report: printed, and kept as Markdown in
/// `target/vmtest/verifier.md` for BENCHMARKS.md.
pub(super) fn verifier_table(dirs: &Dirs, outcomes: &[Outcome]) -> Result<()> {
    let mut columns = Vec::new();
    let mut programs: Vec<String> = Vec::new();
    for o in outcomes {
        let path = dirs.out(&o.kernel).join("check-kernel.json");
        let report: serde_json::Value = match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?,
            Err(_) => serde_json::Value::Null,
        };
        let mut counts = std::collections::HashMap::new();
        for p in report["programs"].as_array().into_iter().flatten() {
            let name = p["program"].as_str().unwrap_or("?").to_string();
            let n = p["verified_insns"]
                .as_u64()
                .map_or_else(|| "n/a".to_string(), |n| n.to_string());
            if !programs.contains(&name) {
                programs.push(name.clone());
            }
            counts.insert(name, n);
        }
        for d in report["degraded"].as_array().into_iter().flatten() {
            let name = d["program"].as_str().unwrap_or("?").to_string();
            if !programs.contains(&name) {
                programs.push(name.clone());
            }
            counts.insert(name, "not loaded".to_string());
        }
        let mut uname = report["kernel"].as_str().unwrap_or(&o.uname).to_string();
        if o.kernel.ends_with(V1_SUFFIX) {
            uname.push_str(" (cgroup v1 only)");
        }
        columns.push((uname, counts));
    }
    let mut md = String::from("| program |");
    for (uname, _) in &columns {
        md.push_str(&format!(" {uname} |"));
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(columns.len()));
    md.push('\n');
    for p in &programs {
        md.push_str(&format!("| `{p}` |"));
        for (_, counts) in &columns {
            md.push_str(&format!(" {} |", counts.get(p).map_or("-", String::as_str)));
        }
        md.push('\n');
    }
    println!(
        "\nverifier instructions per program (limit 1,000,000; n/a: kernel before 5.16 does not report it):\n{md}"
    );
    let path = dirs.base.join("verifier.md");
    fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))
}
