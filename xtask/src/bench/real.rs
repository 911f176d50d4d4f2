//! `cargo xtask bench --real-only`: real workloads (a cargo build of a small
//! crate, a pip install of a local wheel into a venv, git operations; the
//! ones `tests/real_workloads.rs` checks, from `tracer_tests::real`) with and
//! without the tracer, and what the tracer writes for each.
//!
//! Wall time: each round runs every workload without a tracer, then with the
//! tracer as deployed (defaults, our JSON to a file), interleaved; the ratio
//! of the medians is the figure. Output: once per `--exec-attempts` mode
//! (`fold`, the default, and `all`, every failed exec its own event, i.e.
//! before folding existed), each workload runs in a cgroup of its own under a
//! tracer writing our JSON and OCSF; its lines are counted and measured.
use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use tracer_tests::{
    Tracer,
    real::{REAL, Real},
};

use super::{build, require_root, scratch};

const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A v2 cgroup made for one run; removed on drop.
struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    fn new(name: &str) -> Result<Cgroup> {
        let mounts = fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
        let root = mounts
            .lines()
            .find_map(|l| {
                let (pre, post) = l.split_once(" - ")?;
                post.starts_with("cgroup2 ")
                    .then(|| pre.split(' ').nth(4))
                    .flatten()
            })
            .context("no cgroup2 mount (the tracer mounts one when it starts)")?;
        let path = Path::new(root).join(name);
        fs::create_dir(&path).with_context(|| format!("creating cgroup {}", path.display()))?;
        Ok(Cgroup { path })
    }

    fn id(&self) -> Result<u64> {
        use std::os::unix::fs::MetadataExt as _;
        Ok(fs::metadata(&self.path)
            .with_context(|| format!("{}", self.path.display()))?
            .ino())
    }

    fn procs(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Its processes have exited; the kernel may take a moment to free it.
        for _ in 0..50 {
            if fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// What the tracer wrote for one workload.
#[derive(Default, Clone, Copy)]
struct Output {
    execs: u64,
    /// Failed execs that went out as their own events.
    failed: u64,
    /// Attempts folded into successful execs (`action.path_search`).
    folded: u64,
    connects: u64,
    json_lines: u64,
    json_bytes: u64,
    ocsf_lines: u64,
    ocsf_bytes: u64,
    lost: u64,
}

fn timed(w: Real, dir: &Path) -> Result<f64> {
    let t = Instant::now();
    w.run(dir, None)?;
    Ok(t.elapsed().as_secs_f64())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Every workload once in a cgroup of its own under one tracer writing our
/// JSON and OCSF with `mode`; what it wrote for each.
fn outputs(bin: &Path, dirs: &[(Real, PathBuf)], mode: &str) -> Result<Vec<Output>> {
    let ocsf_dir = scratch()?.join(format!("ocsf-{mode}"));
    fs::create_dir_all(&ocsf_dir)?;
    let ocsf = ocsf_dir.join("events.ocsf.jsonl");
    let ocsf_arg = ocsf.display().to_string();
    let mut tracer = Tracer::launch(
        bin,
        &[],
        &[
            "--exec-attempts",
            mode,
            "--rotate-size",
            "0",
            "--no-socket",
            "--ocsf-output",
            &ocsf_arg,
        ],
        &[],
    )?;
    let mut ids = Vec::new();
    let mut cgroups = Vec::new();
    for (i, (w, dir)) in dirs.iter().enumerate() {
        let cg = Cgroup::new(&format!(
            "tracer-bench-real-{}-{mode}-{i}",
            std::process::id()
        ))?;
        w.run(dir, Some(&cg.procs()))?;
        ids.push(cg.id()?);
        cgroups.push(cg);
    }
    // Stopping writes everything held or waiting.
    let status = tracer.try_stop(STOP_TIMEOUT)?;
    if !status.success() {
        bail!("tracer --exec-attempts {mode} exited with {status}");
    }
    let mut out = vec![Output::default(); dirs.len()];
    let lost: u64 = fs::read_to_string(&tracer.output)?
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "loss")
        .map(|v| {
            v["lost"]
                .as_object()
                .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
        })
        .sum();
    for line in fs::read_to_string(&tracer.output)?.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(i) = ids
            .iter()
            .position(|id| v["executor"]["cgroup"]["id"].as_u64() == Some(*id))
        else {
            continue;
        };
        let o = &mut out[i];
        o.json_lines += 1;
        o.json_bytes += line.len() as u64 + 1;
        match v["kind"].as_str() {
            Some("exec") => {
                o.execs += 1;
                if v["action"]["outcome"] == "failure" {
                    o.failed += 1;
                }
                o.folded += v["action"]["path_search"]
                    .as_array()
                    .map_or(0, |a| a.len() as u64);
            }
            Some("connect") => o.connects += 1,
            _ => {}
        }
    }
    for line in fs::read_to_string(&ocsf)?.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some(i) = ids
            .iter()
            .position(|id| v["unmapped"]["cgroup"]["id"].as_u64() == Some(*id))
        {
            out[i].ocsf_lines += 1;
            out[i].ocsf_bytes += line.len() as u64 + 1;
        }
    }
    for o in &mut out {
        o.lost = lost;
    }
    drop(cgroups);
    let _ = fs::remove_dir_all(&ocsf_dir);
    Ok(out)
}

pub(crate) fn real_only(root: &Path, rounds: u32) -> Result<()> {
    require_root()?;
    let bin = build(root)?;
    let tmp = scratch()?;
    let base = tmp.join("real");
    let mut dirs = Vec::new();
    for (i, w) in REAL.into_iter().enumerate() {
        let dir = base.join(format!("w{i}"));
        w.prepare(&dir)?;
        dirs.push((w, dir));
    }
    let result = (|| -> Result<()> {
        // Once untimed: caches warm (the toolchain, python's bytecode) for both sides.
        for (w, dir) in &dirs {
            w.run(dir, None)?;
        }
        let mut without = vec![Vec::new(); dirs.len()];
        let mut with = vec![Vec::new(); dirs.len()];
        for round in 0..rounds {
            for (i, (w, dir)) in dirs.iter().enumerate() {
                without[i].push(timed(*w, dir)?);
            }
            let mut tracer =
                Tracer::launch(&bin, &[], &["--rotate-size", "0", "--no-socket"], &[])?;
            for (i, (w, dir)) in dirs.iter().enumerate() {
                with[i].push(timed(*w, dir)?);
            }
            tracer.try_stop(STOP_TIMEOUT)?;
            println!("round {} of {rounds} done", round + 1);
        }
        let folded = outputs(&bin, &dirs, "fold")?;
        let all = outputs(&bin, &dirs, "all")?;
        let date =
            crate::output(std::process::Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]))
                .unwrap_or_default();
        let kernel =
            crate::output(std::process::Command::new("uname").arg("-r")).unwrap_or_default();
        let mut body = format!(
            "## Real workloads\n\n\
             `cargo xtask bench --real-only` ({}, kernel {}, {rounds} rounds): the workloads of\n\
             `tests/tests/real_workloads.rs`: `cargo build --offline` of a small crate of its own\n\
             (build script, two modules; its own target directory, a clean build each run), `python3 -m venv`\n\
             and `pip install --no-index` of a local wheel into it, and git operations on a local\n\
             repository (init, add, commit, branch, checkout, merge, log, status). Wall time is the\n\
             median of the rounds, without a tracer and with the tracer as deployed (defaults, our\n\
             JSON to a file), run interleaved.\n\n\
             | workload | without | with tracer | ratio |\n|---|---:|---:|---:|\n",
            date.trim(),
            kernel.trim()
        );
        let (mut sum_a, mut sum_b) = (0.0, 0.0);
        for (i, (w, _)) in dirs.iter().enumerate() {
            let (a, b) = (median(&mut without[i]), median(&mut with[i]));
            sum_a += a;
            sum_b += b;
            body += &format!("| {} | {a:.2} s | {b:.2} s | {:.2}x |\n", w.name(), b / a);
        }
        body += &format!(
            "| all three | {sum_a:.2} s | {sum_b:.2} s | {:.2}x |\n\n",
            sum_b / sum_a
        );
        body += "What the tracer writes for one run of each workload (its events, picked out by the\n\
                 workload's cgroup), with PATH searches folded (`--exec-attempts fold`, the default)\n\
                 and with every failed exec its own event (`--exec-attempts all`, as before folding):\n\n\
                 | workload | mode | exec events | of which failed | attempts folded | connects | JSON lines | JSON bytes | OCSF lines | OCSF bytes |\n\
                 |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        for (i, (w, _)) in dirs.iter().enumerate() {
            for (mode, o) in [("all", all[i]), ("fold", folded[i])] {
                body += &format!(
                    "| {} | {mode} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    w.name(),
                    o.execs,
                    o.failed,
                    o.folded,
                    o.connects,
                    o.json_lines,
                    o.json_bytes,
                    o.ocsf_lines,
                    o.ocsf_bytes
                );
            }
        }
        let lost = folded.first().map_or(0, |o| o.lost) + all.first().map_or(0, |o| o.lost);
        body += &format!(
            "\nEvents lost during the counted runs (loss records, whole host): {lost}.\n\n"
        );
        println!("{body}");
        super::report_speed::write_real_section(&root.join("BENCHMARKS.md"), &body)
    })();
    let _ = fs::remove_dir_all(&tmp);
    result
}
