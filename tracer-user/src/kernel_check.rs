//! `tracer check-kernel`: load and attach every probe on the running kernel,
//! then detach, and print what the kernel said about each program. It answers
//! "will the tracer run on this node?" without starting it, and its verifier
//! statistics are what the kernel matrix (`cargo xtask vmtest`) records.
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;

use crate::{
    btf::Btf,
    probes::{self, Degraded, LoadOptions, ProgramStats, preflight},
};

#[derive(Args, Debug)]
pub struct CheckKernelArgs {
    /// Kernel BTF to resolve struct offsets from.
    #[arg(long, default_value = "/sys/kernel/btf/vmlinux", value_name = "PATH")]
    pub btf: PathBuf,
    /// Where the cgroup v2 hierarchy is mounted (default: found in /proc/self/mountinfo,
    /// else mounted at /run/tracer/cgroup2).
    #[arg(long, value_name = "PATH")]
    pub cgroup_mount: Option<PathBuf>,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    kernel: String,
    programs: &'a [ProgramStats],
    /// Optional programs this kernel did not take, and what events lack.
    degraded: &'a [Degraded],
}

/// Small: nothing is read from it.
const RING_BYTES: u32 = 64 * 1024;

pub(crate) fn run(args: CheckKernelArgs) -> Result<()> {
    let caps = preflight::check_caps()?;
    preflight::check_btf(&args.btf)?;
    preflight::check_kernel()?;
    preflight::ensure_tracefs(caps)?;
    let btf = Btf::from_file(&args.btf)
        .with_context(|| format!("reading kernel BTF {}", args.btf.display()))?;
    let mut offsets = probes::offsets::resolve(&btf)?;
    // As `tracer run` would load them: the v1 read is part of what is verified.
    let _ = probes::cgroup_v1(&btf, &mut offsets);
    drop(btf);
    let cgroup_root = match args.cgroup_mount {
        Some(m) => m,
        None => preflight::ensure_cgroup2(caps)?,
    };
    let (probes, _events) = probes::load(&LoadOptions {
        offsets,
        ring_buffer_bytes: RING_BYTES,
        cgroup_root: &cgroup_root,
        compat_exec: true,
        dns_names: true,
        usage_sweep: true,
    })?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let report = Report {
        kernel,
        programs: probes.stats(),
        degraded: probes.degraded(),
    };
    let json = serde_json::to_string_pretty(&report).context("serializing the report")?;
    crate::cli::print_stdout(&format!("{json}\n"))
}
