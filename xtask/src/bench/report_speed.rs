//! `cargo xtask bench --report-only`: how fast `tracer report` reads a big
//! period. Real lines (from the tracer, over an exec and connect storm) are
//! replicated with varied exec_ids and users, and sealed into one hash chain
//! as the tracer writes it, into a file of about `--report-mib` MiB; then
//! `tracer report --format json` reads it, timed, with its peak RSS. The file
//! is deleted afterwards.
use std::{
    fs,
    io::{BufWriter, Write as _},
    path::Path,
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use sha2::{Digest as _, Sha256};
use tracer_tests::{LoopbackListener, Tracer};

use super::{build, require_root, scratch};

/// A line's chain member starts with this (it is the last member).
const CHAIN_MEMBER: &str = ",\"chain\":{\"seq\":";

/// Seals records as the tracer does (tracer-user/src/chain.rs):
/// hash = hex(SHA-256(prev || "\n" || record without its member)).
struct Chain {
    seq: u64,
    prev: String,
}

impl Chain {
    fn seal(&mut self, record: &str, out: &mut impl std::io::Write) -> Result<usize> {
        let mut h = Sha256::new();
        h.update(self.prev.as_bytes());
        h.update(b"\n");
        h.update(record.as_bytes());
        let hash: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let at = record.len() - 1;
        let line = format!(
            "{}{CHAIN_MEMBER}{},\"prev\":\"{}\",\"hash\":\"{hash}\"}}{}\n",
            &record[..at],
            self.seq,
            self.prev,
            &record[at..]
        );
        out.write_all(line.as_bytes())?;
        self.seq += 1;
        self.prev = hash;
        Ok(line.len())
    }
}

/// Event lines of the tracer over a short storm, without their chain member.
fn sample(tracer_bin: &Path) -> Result<Vec<String>> {
    let tracer = Tracer::launch(tracer_bin, &[], &["--emit-lifecycle", "--no-socket"], &[])?;
    let l = LoopbackListener::start();
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "i=0; while [ $i -lt 300 ]; do /bin/true report-bench; bash -c 'exec 3<>/dev/tcp/127.0.0.1/{}'; i=$((i+1)); done",
            l.port
        ))
        .status()
        .context("running the storm")?;
    if !st.success() {
        bail!("storm failed: {st}");
    }
    let mut tracer = tracer;
    tracer.try_stop(std::time::Duration::from_secs(30))?;
    let text = fs::read_to_string(&tracer.output)?;
    let lines: Vec<String> = text
        .lines()
        .filter(|l| {
            l.contains("\"kind\":\"exec\"")
                || l.contains("\"kind\":\"connect\"")
                || l.contains("\"kind\":\"exit\"")
        })
        .filter_map(|l| {
            let at = l.rfind(CHAIN_MEMBER)?;
            Some(format!("{}}}", &l[..at]))
        })
        .collect();
    if lines.len() < 100 {
        bail!("only {} sample lines", lines.len());
    }
    Ok(lines)
}

pub(crate) fn report_only(root: &Path, mib: u64) -> Result<()> {
    require_root()?;
    let bin = build(root)?;
    let lines = sample(&bin)?;
    let dir = scratch()?;
    let file = dir.join("report-bench.jsonl");
    let json = dir.join("report.json");
    let result = (|| -> Result<()> {
        let t = Instant::now();
        let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(&file)?);
        let mut chain = Chain {
            seq: 0,
            prev: "0".repeat(64),
        };
        let (mut bytes, mut n, mut copy) = (0u64, 0u64, 0u64);
        while bytes < mib << 20 {
            // Each copy: other processes (exec_ids) of one of 40 users, in
            // one of 500 systemd units (executors).
            let user = copy % 40;
            let unit = format!("\"unit\":\"bench-{}.service\"}}", copy % 500);
            for l in &lines {
                let v = l
                    .replace("\"exec_id\":\"", &format!("\"exec_id\":\"c{copy}-"))
                    .replace(
                        "\"uid\":0,\"name\":\"root\"",
                        &format!("\"uid\":{},\"name\":\"svc{user}\"", 2000 + user),
                    )
                    .replace("\"unit\":null}", &unit);
                bytes += chain.seal(&v, &mut out)? as u64;
                n += 1;
            }
            copy += 1;
        }
        out.flush()?;
        println!(
            "generated {n} lines, {:.0} MiB, in {:.1}s",
            bytes as f64 / 1048576.0,
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let child = Command::new(&bin)
            .args(["report", "--format", "json"])
            .arg(&file)
            .stdout(fs::File::create(&json)?)
            .spawn()?;
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our child, not waited for yet; both pointers are valid.
        if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        let secs = t.elapsed().as_secs_f64();
        if status != 0 {
            bail!("tracer report failed (status {status})");
        }
        let cpu = usage.ru_utime.tv_sec as f64
            + usage.ru_utime.tv_usec as f64 / 1e6
            + usage.ru_stime.tv_sec as f64
            + usage.ru_stime.tv_usec as f64 / 1e6;
        // A chain checked only up to a first (bench-made) break would be fast
        // for the wrong reason.
        let out: serde_json::Value = serde_json::from_slice(&fs::read(&json)?)?;
        let (verdict, records) = (&out["chain"]["verdict"], &out["chain"]["records"]);
        if verdict != "intact" || records != n {
            bail!(
                "chain {verdict} after {records} of {n} records: {}",
                out["chain"]["detail"]
            );
        }
        let executors = out["executors"].as_array().map_or(0, Vec::len);
        let mb = bytes as f64 / 1048576.0;
        let rss = usage.ru_maxrss as f64 / 1024.0;
        println!(
            "tracer report --format json: {mb:.0} MiB, {n} lines in {secs:.1}s ({:.0} MiB/s), CPU {cpu:.1}s, peak RSS {rss:.1} MiB",
            mb / secs
        );
        let date = crate::output(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]))
            .unwrap_or_default();
        let body = format!(
            "## tracer report over a big period\n\n\
             `cargo xtask bench --report-only --report-mib {mib}` ({}): real exec, connect and exit lines\n\
             (`--lineage full`), replicated with other exec_ids, 40 users and 500 units, sealed into one hash chain.\n\
             `tracer report --format json` reads them once, checking the chain (intact, all\n\
             {n} records) and grouping them ({executors} executors).\n\n\
             | file | lines | wall | CPU | MiB/s | peak RSS |\n|---:|---:|---:|---:|---:|---:|\n\
             | {mb:.0} MiB | {n} | {secs:.1} s | {cpu:.1} s | {:.0} | {rss:.1} MiB |\n\n",
            date.trim(),
            mb / secs
        );
        write_section(&root.join("BENCHMARKS.md"), &body)
    })();
    let _ = fs::remove_file(&file);
    let _ = fs::remove_dir_all(&dir);
    result
}

const BEGIN: &str = "<!-- report-speed: written by cargo xtask bench --report-only -->";
const END: &str = "<!-- /report-speed -->";
const REAL_BEGIN: &str = "<!-- real-workloads: written by cargo xtask bench --real-only -->";
const REAL_END: &str = "<!-- /real-workloads -->";

/// The sections of BENCHMARKS.md that their own runs write (report speed,
/// real workloads) as they are, so the full bench, which rewrites the file,
/// keeps them.
pub(super) fn kept_section(md: &Path) -> String {
    let old = fs::read_to_string(md).unwrap_or_default();
    let mut kept = String::new();
    for (begin, end) in [(BEGIN, END), (REAL_BEGIN, REAL_END)] {
        if let (Some(a), Some(b)) = (old.find(begin), old.find(end))
            && a < b
        {
            kept += &format!("\n{}\n", &old[a..b + end.len()]);
        }
    }
    kept
}

/// Put `body` in BENCHMARKS.md's report-speed section (added at the end the
/// first time).
fn write_section(md: &Path, body: &str) -> Result<()> {
    write_marked(md, BEGIN, END, body)
}

/// Put `body` in BENCHMARKS.md's real-workloads section.
pub(super) fn write_real_section(md: &Path, body: &str) -> Result<()> {
    write_marked(md, REAL_BEGIN, REAL_END, body)
}

fn write_marked(md: &Path, begin: &str, end: &str, body: &str) -> Result<()> {
    let old = fs::read_to_string(md).unwrap_or_default();
    let section = format!("{begin}\n{body}{end}");
    let new = match (old.find(begin), old.find(end)) {
        (Some(a), Some(b)) if a < b => format!("{}{section}{}", &old[..a], &old[b + end.len()..]),
        _ => format!("{}\n{section}\n", old.trim_end()),
    };
    fs::write(md, new).with_context(|| format!("writing {}", md.display()))
}
