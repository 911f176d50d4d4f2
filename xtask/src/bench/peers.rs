//! Peers measured on the same workloads: auditd with exec/connect rules and a
//! bpftrace one-liner.
use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    capture,
    measure::{READY_TIMEOUT, SETTLE, Traced, cpu_seconds, peak_rss_mib},
    workloads::{Workload, run_workload},
};

/// auditd with execve/execveat/connect rules, writing its usual log.
pub(super) fn run_auditd(
    _tmp: &Path,
    workload: Workload,
    dur: Duration,
    round: u32,
) -> Result<Traced> {
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
    stop(&mut child).context("stopping auditd")?;
    result
}

/// SIGTERM, then up to 30 s for the exit (then SIGKILL, and an error).
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
            bail!("no exit within 30 s of SIGTERM");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A bpftrace one-liner printing every execve and connect.
pub(super) fn run_bpftrace(
    tmp: &Path,
    workload: Workload,
    dur: Duration,
    round: u32,
) -> Result<Traced> {
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
