//! Load the probes into the running kernel and attach them.
//!
//! Order of work: check the host can run us ([`preflight`]), resolve struct offsets
//! from BTF ([`offsets`]), load the object with those offsets as a global, attach
//! every program. Each failure names its cause: a missing capability, no BTF, an old
//! kernel, or a program the verifier rejected (with the end of its log).
pub(crate) mod offsets;
pub(crate) mod preflight;

use std::{fs::File, os::fd::AsFd, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, ProgramArray, RingBuf},
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, Iter, ProgramError,
        RawTracePoint, TracePoint,
    },
};
use tracer_common::{Offsets, counter};

use crate::{
    btf::Btf,
    identity::cgroup::{self, V1Controller},
};

/// Have the probes read each task's cgroup in a v1 controller hierarchy when
/// one is mounted (cgroup v1 and hybrid hosts): the controller chosen from
/// /proc/self/mountinfo, its index from `btf`. Returns it, or None (a pure v2
/// host, or a kernel that does not say; then workloads come from v2 alone).
pub(crate) fn cgroup_v1(btf: &Btf, offsets: &mut Offsets) -> Option<V1Controller> {
    let (v1, hierarchy_id) = match cgroup::discover_v1() {
        Ok(Some(found)) => found,
        Ok(None) => {
            tracing::debug!("no cgroup v1 controller hierarchy is mounted: cgroups from v2 only");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %crate::error_chain(&e), "cannot look for cgroup v1 hierarchies: cgroups from v2 only");
            return None;
        }
    };
    match offsets::enable_cgroup_v1(btf, offsets, v1.subsys_id, hierarchy_id) {
        Ok(()) => {
            tracing::info!(
                controller = v1.name,
                mount = %v1.mount.display(),
                hierarchy_id,
                "reading each task's cgroup in the v1 {} hierarchy too: where a task's v2 cgroup is the root (cgroup v1 hosts), its workload is named from it",
                v1.name
            );
            Some(v1)
        }
        Err(e) => {
            tracing::warn!(controller = v1.name, error = %crate::error_chain(&e), "cannot read cgroup v1 ids: cgroups from v2 only");
            None
        }
    }
}

/// The probe object, built by build.rs from `tracer-ebpf`.
static PROBES: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-probes"));

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    #[error("loading the probe object failed")]
    Load(#[source] aya::EbpfError),
    #[error("program {program} missing from the probe object")]
    MissingProgram { program: &'static str },
    #[error("map {0} missing from the probe object")]
    MissingMap(&'static str),
    #[error(
        "the kernel verifier rejected program {program}: {source}\n--- end of verifier log ---\n{log_tail}"
    )]
    Verifier {
        program: &'static str,
        #[source]
        source: std::io::Error,
        log_tail: String,
    },
    #[error("loading program {program} failed")]
    ProgramLoad {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("attaching program {program} to {target} failed")]
    Attach {
        program: &'static str,
        target: String,
        #[source]
        source: ProgramError,
    },
    #[error("opening the cgroup v2 root {path}")]
    CgroupRoot {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
}

/// What the tracer needs from a loaded probe set.
pub(crate) struct Probes {
    /// Keeps programs and their links alive; dropping it detaches everything.
    ebpf: Ebpf,
    /// The usage sweep loaded.
    usage_sweep: bool,
    counters: PerCpuArray<MapData, u64>,
    stats: Vec<ProgramStats>,
    degraded: Vec<Degraded>,
    /// The probes' rare diagnostics (read faults, missing offsets); `run`
    /// takes it to poll, `check-kernel` only keeps it alive.
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
}

/// One loaded program, as the kernel reports it: how much of the verifier's
/// one-million-instruction budget it used, so growth is seen before a kernel
/// rejects it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ProgramStats {
    pub program: &'static str,
    pub attach: String,
    /// Instructions the verifier processed; `None` before Linux 5.16, which does
    /// not report it (`bpf_prog_info.verified_insns`).
    pub verified_insns: Option<u32>,
}

/// How to load the probes.
pub(crate) struct LoadOptions<'a> {
    pub offsets: Offsets,
    pub ring_buffer_bytes: u32,
    pub cgroup_root: &'a Path,
    /// Attach the compat (32-bit) failed-exec probes, which run on every syscall.
    pub compat_exec: bool,
    /// Attach the DNS programs (`dns_egress`, `dns_ingress`).
    pub dns_names: bool,
    /// Load the usage sweep (`usage_sweep`, `--usage-interval`).
    pub usage_sweep: bool,
}

enum Hook {
    /// Not attached: put in slot `.1` of program array `.0`, for a program
    /// that tail-calls it.
    TailCall(&'static str, u32),
    RawTp(&'static str),
    Tp(&'static str, &'static str),
    Cgroup,
    CgroupSkb(CgroupSkbAttachType),
    /// A BPF iterator over kernel objects of this kind, run when user space
    /// reads it: loaded here, attached per run ([`Probes::usage_sweep`]).
    Iter(&'static str),
}

/// Whether the tracer can run without a program. An optional program that does
/// not load or attach is reported as a degraded feature (log, `/readyz`,
/// `tracer check-kernel`), never a reason to refuse to start.
enum Need {
    Required,
    /// What events lack without it.
    Optional(&'static str),
}

const FAILED_EXECVE: &str = "failed execve calls are not reported";
const FAILED_EXECVEAT: &str = "failed execveat calls are not reported";
const FAILED_COMPAT_EXEC: &str =
    "failed execs through the 32-bit compat syscall table (int 0x80) are not reported";
const UNCONNECTED_SENDS: &str =
    "datagrams sent without connect (sendto/sendmsg with an address) are not reported";
const DNS_NAMES: &str = "connect destinations are not named from DNS answers (destination.name)";
const USAGE_SWEEPS: &str =
    "no usage events for live processes (--usage-interval); exits still report usage";
const CWD_WALK: &str = "working directories are read from /proc, once per directory: a process gone before that read has a null cwd";
const CGROUP_NAMES: &str = "cgroups are named from the cgroup tree only: one created and removed between two walks stays unnamed";

/// (program name in the object, where it attaches, whether the tracer needs it)
const PROGRAMS: &[(&str, Hook, Need)] = &[
    // Before `sched_process_exec`, which tail-calls it from its first exec on.
    (
        "exec_cwd",
        Hook::TailCall("EXEC_TAIL", 0),
        Need::Optional(CWD_WALK),
    ),
    (
        "sched_process_exec",
        Hook::RawTp("sched_process_exec"),
        Need::Required,
    ),
    (
        "sched_process_fork",
        Hook::RawTp("sched_process_fork"),
        Need::Required,
    ),
    (
        "sched_process_exit",
        Hook::RawTp("sched_process_exit"),
        Need::Required,
    ),
    (
        "sys_enter_execve",
        Hook::Tp("syscalls", "sys_enter_execve"),
        Need::Optional(FAILED_EXECVE),
    ),
    (
        "sys_exit_execve",
        Hook::Tp("syscalls", "sys_exit_execve"),
        Need::Optional(FAILED_EXECVE),
    ),
    (
        "sys_enter_execveat",
        Hook::Tp("syscalls", "sys_enter_execveat"),
        Need::Optional(FAILED_EXECVEAT),
    ),
    (
        "sys_exit_execveat",
        Hook::Tp("syscalls", "sys_exit_execveat"),
        Need::Optional(FAILED_EXECVEAT),
    ),
    (
        "sys_enter_connect",
        Hook::Tp("syscalls", "sys_enter_connect"),
        Need::Required,
    ),
    (
        "sys_exit_connect",
        Hook::Tp("syscalls", "sys_exit_connect"),
        Need::Required,
    ),
    (
        "cgroup_mkdir",
        Hook::Tp("cgroup", "cgroup_mkdir"),
        Need::Optional(CGROUP_NAMES),
    ),
    (
        "cgroup_rmdir",
        Hook::Tp("cgroup", "cgroup_rmdir"),
        Need::Optional(CGROUP_NAMES),
    ),
    (
        "cgroup_rename",
        Hook::Tp("cgroup", "cgroup_rename"),
        Need::Optional(CGROUP_NAMES),
    ),
    (
        "compat_sys_exit",
        Hook::RawTp("sys_exit"),
        Need::Optional(FAILED_COMPAT_EXEC),
    ),
    (
        "inet_sock_set_state",
        Hook::RawTp("inet_sock_set_state"),
        Need::Required,
    ),
    ("connect4", Hook::Cgroup, Need::Required),
    ("connect6", Hook::Cgroup, Need::Required),
    ("sendmsg4", Hook::Cgroup, Need::Optional(UNCONNECTED_SENDS)),
    ("sendmsg6", Hook::Cgroup, Need::Optional(UNCONNECTED_SENDS)),
    (
        "dns_egress",
        Hook::CgroupSkb(CgroupSkbAttachType::Egress),
        Need::Optional(DNS_NAMES),
    ),
    (
        "dns_ingress",
        Hook::CgroupSkb(CgroupSkbAttachType::Ingress),
        Need::Optional(DNS_NAMES),
    ),
    (
        "usage_sweep",
        Hook::Iter("task"),
        Need::Optional(USAGE_SWEEPS),
    ),
];

/// An optional program this kernel would not take, and what that costs.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Degraded {
    pub program: &'static str,
    pub lost: &'static str,
    pub error: String,
}

impl std::fmt::Display for Degraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.program, self.lost, self.error)
    }
}

/// Lines of verifier log worth showing: the end says why it failed.
const VERIFIER_TAIL_LINES: usize = 25;

fn verifier_error(program: &'static str, err: ProgramError) -> ProbeError {
    match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let lines: Vec<&str> = log.lines().collect();
            let start = lines.len().saturating_sub(VERIFIER_TAIL_LINES);
            ProbeError::Verifier {
                program,
                source: io_error,
                log_tail: lines[start..].join("\n"),
            }
        }
        other => ProbeError::ProgramLoad {
            program,
            source: other,
        },
    }
}

/// Load and attach all probes. Programs of the lifecycle are attached before the
/// exec and connect programs so the process table never misses a parent.
pub(crate) fn load(opts: &LoadOptions<'_>) -> Result<(Probes, RingBuf<MapData>), ProbeError> {
    let cpus = aya::util::nr_cpus().map_or(1, |n| n.max(1)) as u32;
    let log_level = probe_log_level();
    let mut ebpf = EbpfLoader::new()
        .override_global("OFFSETS", &opts.offsets, true)
        // aya-log's level check in the probes: statements above it cost one load.
        .override_global("AYA_LOG_LEVEL", &log_level, false)
        .map_max_entries("EVENTS", opts.ring_buffer_bytes)
        .map_max_entries("EXEC_SCRATCH", cpus)
        .load(PROBES)
        .map_err(ProbeError::Load)?;

    // Before any program loads: the logger takes the log ring out of `ebpf`, and
    // programs that log fail to load once that map is closed.
    let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "probe diagnostics unavailable (aya-log)");
            None
        }
    };

    let cgroup = File::open(opts.cgroup_root).map_err(|source| ProbeError::CgroupRoot {
        path: opts.cgroup_root.display().to_string(),
        source,
    })?;

    let mut stats = Vec::with_capacity(PROGRAMS.len());
    let mut degraded = Vec::new();
    for (name, hook, need) in PROGRAMS {
        if let (Hook::CgroupSkb(_), Need::Optional(lost), false) = (hook, need, opts.dns_names) {
            tracing::info!(program = name, "not attached: off (--no-dns-names); {lost}");
            degraded.push(Degraded {
                program: name,
                lost,
                error: "off: --no-dns-names".to_owned(),
            });
            continue;
        }
        if let (Hook::Iter(_), Need::Optional(lost), false) = (hook, need, opts.usage_sweep) {
            tracing::debug!(
                program = name,
                "not loaded: off (no --usage-interval); {lost}"
            );
            continue;
        }
        if let ("compat_sys_exit", Need::Optional(lost)) = (*name, need) {
            let why = if !opts.compat_exec {
                Some("off: --compat-exec-probes turns it on (it runs on every syscall's exit)")
            } else if opts.offsets.task_ti_status == 0 {
                Some("the kernel has no thread_info.status (not x86)")
            } else {
                None
            };
            if let Some(why) = why {
                tracing::info!(program = name, "not attached: {why}; {lost}");
                degraded.push(Degraded {
                    program: name,
                    lost,
                    error: why.to_owned(),
                });
                continue;
            }
        }
        if let ("exec_cwd", Need::Optional(lost), 0) = (*name, need, opts.offsets.cwd_walk) {
            let why = "the kernel's BTF lacks fs_struct.root";
            tracing::info!(program = name, "not loaded: {why}; {lost}");
            degraded.push(Degraded {
                program: name,
                lost,
                error: why.to_owned(),
            });
            continue;
        }
        tracing::debug!(program = name, "loading and attaching");
        let loaded = match hook {
            Hook::TailCall(map, index) => tail_call_target(&mut ebpf, name, map, *index),
            _ => ebpf
                .program_mut(name)
                .ok_or(ProbeError::MissingProgram { program: name })
                .and_then(|prog| attach(name, prog, hook, &cgroup, opts.cgroup_root)),
        };
        match loaded {
            Ok((attach, verified_insns)) => {
                tracing::debug!(program = name, ?verified_insns, "attached");
                stats.push(ProgramStats {
                    program: name,
                    attach,
                    verified_insns,
                });
            }
            Err(e) => match need {
                Need::Required => return Err(e),
                Need::Optional(lost) => {
                    let d = Degraded {
                        program: name,
                        lost,
                        error: crate::error_chain(&e),
                    };
                    tracing::warn!(program = name, error = %d.error, "optional probe unavailable: {lost}");
                    degraded.push(d);
                }
            },
        }
    }

    let events = ebpf
        .take_map("EVENTS")
        .ok_or(ProbeError::MissingMap("EVENTS"))?;
    let events = RingBuf::try_from(events).map_err(|source| ProbeError::Map {
        name: "EVENTS",
        source,
    })?;
    let counters = ebpf
        .take_map("COUNTERS")
        .ok_or(ProbeError::MissingMap("COUNTERS"))?;
    let counters = PerCpuArray::try_from(counters).map_err(|source| ProbeError::Map {
        name: "COUNTERS",
        source,
    })?;
    let usage_sweep = stats.iter().any(|s| s.program == "usage_sweep");
    Ok((
        Probes {
            ebpf,
            usage_sweep,
            counters,
            stats,
            degraded,
            logger,
        },
        events,
    ))
}

/// Loss counters summed over CPUs, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KernelCounters {
    pub ring_full: u64,
    pub read_fault: u64,
    pub pending_full: u64,
    pub scratch: u64,
    pub submitted: u64,
    pub sends_unreported: u64,
    pub dns_tcp_skipped: u64,
}

/// Load program `name` and put it in slot `index` of program array `map`
/// (where a program that tail-calls it finds it); returns where it went and
/// its verifier statistics.
fn tail_call_target(
    ebpf: &mut Ebpf,
    name: &'static str,
    map: &'static str,
    index: u32,
) -> Result<(String, Option<u32>), ProbeError> {
    let prog: &mut RawTracePoint = ebpf
        .program_mut(name)
        .ok_or(ProbeError::MissingProgram { program: name })?
        .try_into()
        .map_err(|e| verifier_error(name, e))?;
    prog.load().map_err(|e| verifier_error(name, e))?;
    let verified_insns = verified(prog.info());
    let target = format!("tail call {map}[{index}]");
    let fd = prog
        .fd()
        .and_then(|fd| fd.try_clone().map_err(ProgramError::from))
        .map_err(|source| ProbeError::Attach {
            program: name,
            target: target.clone(),
            source,
        })?;
    let mut slots = ProgramArray::try_from(ebpf.map_mut(map).ok_or(ProbeError::MissingMap(map))?)
        .map_err(|source| ProbeError::Map { name: map, source })?;
    slots
        .set(index, &fd, 0)
        .map_err(|source| ProbeError::Map { name: map, source })?;
    Ok((target, verified_insns))
}

/// Load one program and attach it; returns where it attached and its verifier
/// statistics.
fn attach(
    name: &'static str,
    prog: &mut aya::programs::Program,
    hook: &Hook,
    cgroup: &File,
    cgroup_root: &Path,
) -> Result<(String, Option<u32>), ProbeError> {
    let attach_err = |target: String| {
        move |source| ProbeError::Attach {
            program: name,
            target,
            source,
        }
    };
    Ok(match hook {
        // Loaded by `tail_call_target`, never attached: not a hook to attach to.
        Hook::TailCall(..) => return Err(ProbeError::MissingProgram { program: name }),
        Hook::RawTp(tp) => {
            let p: &mut RawTracePoint = prog.try_into().map_err(|e| verifier_error(name, e))?;
            p.load().map_err(|e| verifier_error(name, e))?;
            let target = format!("raw_tp/{tp}");
            p.attach(tp).map_err(attach_err(target.clone()))?;
            (target, verified(p.info()))
        }
        Hook::Tp(cat, tp) => {
            let p: &mut TracePoint = prog.try_into().map_err(|e| verifier_error(name, e))?;
            p.load().map_err(|e| verifier_error(name, e))?;
            let target = format!("tracepoint/{cat}/{tp}");
            p.attach(cat, tp).map_err(attach_err(target.clone()))?;
            (target, verified(p.info()))
        }
        Hook::Cgroup => {
            let p: &mut CgroupSockAddr = prog.try_into().map_err(|e| verifier_error(name, e))?;
            p.load().map_err(|e| verifier_error(name, e))?;
            // aya attaches through a bpf_link on every kernel we support (>= 5.8),
            // and cgroup links always run side by side with other programs (a
            // second tracer, parallel tests). The link API takes no mode flag:
            // passing BPF_F_ALLOW_MULTI there is EINVAL.
            let target = format!("cgroup {}", cgroup_root.display());
            p.attach(cgroup.as_fd(), CgroupAttachMode::Single)
                .map_err(attach_err(target.clone()))?;
            (target, verified(p.info()))
        }
        Hook::Iter(kind) => {
            let p: &mut Iter = prog.try_into().map_err(|e| verifier_error(name, e))?;
            let btf = aya::Btf::from_sys_fs().map_err(|e| ProbeError::ProgramLoad {
                program: name,
                source: ProgramError::Btf(e),
            })?;
            p.load(kind, &btf).map_err(|e| verifier_error(name, e))?;
            // Attached for each sweep: an iterator link runs once per read-through.
            (format!("iter/{kind}"), verified(p.info()))
        }
        Hook::CgroupSkb(kind) => {
            let p: &mut CgroupSkb = prog.try_into().map_err(|e| verifier_error(name, e))?;
            p.load().map_err(|e| verifier_error(name, e))?;
            // Multi-attach as for the sock_addr hooks; the program always
            // returns 1, so it never decides a packet's fate.
            let target = format!("cgroup {} ({kind:?})", cgroup_root.display());
            p.attach(cgroup.as_fd(), *kind, CgroupAttachMode::Single)
                .map_err(attach_err(target.clone()))?;
            (target, verified(p.info()))
        }
    })
}

/// aya-log's level numbers (`aya_log_common::Level`: error 1 ... trace 5; 0 off),
/// from the most verbose level the tracer's own log filter enables.
fn probe_log_level() -> u8 {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::OFF => 0,
        LevelFilter::ERROR => 1,
        LevelFilter::WARN => 2,
        LevelFilter::INFO => 3,
        LevelFilter::DEBUG => 4,
        _ => 5,
    }
}

fn verified(info: Result<aya::programs::ProgramInfo, ProgramError>) -> Option<u32> {
    info.ok().and_then(|i| i.verified_instruction_count())
}

impl Probes {
    /// Every program, in attach order, with its verifier statistics.
    /// Start a usage sweep: the iterator to read. Each read of N bytes runs
    /// the program over at most N processes (one byte of output each), so
    /// the caller drains the ring between reads; EOF ends the sweep. None when
    /// the sweep program is not loaded.
    pub(crate) fn usage_sweep(&mut self) -> Result<Option<File>, ProbeError> {
        if !self.usage_sweep {
            return Ok(None);
        }
        const NAME: &str = "usage_sweep";
        let prog: &mut Iter = self
            .ebpf
            .program_mut(NAME)
            .ok_or(ProbeError::MissingProgram { program: NAME })?
            .try_into()
            .map_err(|e| verifier_error(NAME, e))?;
        let attach_err = |source| ProbeError::Attach {
            program: NAME,
            target: "iter/task".to_owned(),
            source,
        };
        let id = prog.attach().map_err(attach_err)?;
        let link = prog.take_link(id).map_err(attach_err)?;
        let file = link
            .into_file()
            .map_err(|e| attach_err(ProgramError::IOError(std::io::Error::other(e.to_string()))))?;
        Ok(Some(file))
    }

    pub(crate) fn stats(&self) -> &[ProgramStats] {
        &self.stats
    }

    /// The probes' log ring, for the caller to poll (see [`poll_probe_logs`]).
    pub(crate) fn take_logger(&mut self) -> Option<aya_log::EbpfLogger<&'static dyn log::Log>> {
        self.logger.take()
    }

    /// Optional programs that did not load or attach here.
    pub(crate) fn degraded(&self) -> &[Degraded] {
        &self.degraded
    }

    pub(crate) fn counters(&self) -> KernelCounters {
        let sum = |idx: u32| -> u64 {
            self.counters
                .get(&idx, 0)
                .map(|v| v.iter().copied().fold(0u64, u64::wrapping_add))
                .unwrap_or(0)
        };
        KernelCounters {
            ring_full: sum(counter::RING_FULL),
            read_fault: sum(counter::READ_FAULT),
            pending_full: sum(counter::PENDING_FULL),
            scratch: sum(counter::SCRATCH),
            submitted: sum(counter::SUBMITTED),
            sends_unreported: sum(counter::SENDS_UNREPORTED),
            dns_tcp_skipped: sum(counter::DNS_TCP_SKIPPED),
        }
    }
}

/// Forward the probes' diagnostics to our log (through the `log` facade, which
/// tracing-subscriber bridges) whenever their ring has records.
pub(crate) fn poll_probe_logs(logger: aya_log::EbpfLogger<&'static dyn log::Log>) {
    use tokio::io::{Interest, unix::AsyncFd};
    // SAFETY: the logger owns its ring's fd for as long as the AsyncFd owns the
    // logger, and nothing else closes it.
    let mut fd = match unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) } {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the probes' log ring; probe diagnostics off");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            match fd.readable_mut().await {
                Ok(mut guard) => {
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "probe diagnostics stopped");
                    break;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};

    /// bpf-linker compiles `memset`/`memcpy` into byte-at-a-time loops; verifiers
    /// before 6.2 walk such a loop again at every call site, and a handful of calls
    /// pushed the fork probe past the one-million-instruction limit on 6.1 and
    /// 5.10. No program may call them (zero with word stores instead).
    #[test]
    fn no_program_calls_a_mem_subprogram() {
        let obj = object::File::parse(super::PROBES).expect("probe object parses");
        let mut calls = Vec::new();
        for section in obj.sections() {
            for (_, reloc) in section.relocations() {
                let RelocationTarget::Symbol(idx) = reloc.target() else {
                    continue;
                };
                let Ok(sym) = obj.symbol_by_index(idx) else {
                    continue;
                };
                let name = sym.name().unwrap_or_default();
                if ["memset", "memcpy", "memmove", "memcmp", "bcmp"].contains(&name) {
                    calls.push(format!("{} -> {name}", section.name().unwrap_or("?")));
                }
            }
        }
        assert!(calls.is_empty(), "calls into mem* subprograms: {calls:?}");
    }

    #[test]
    fn every_program_is_in_the_object() {
        let obj = object::File::parse(super::PROBES).expect("probe object parses");
        for (name, _, _) in super::PROGRAMS {
            assert!(
                obj.symbols().any(|s| s.name() == Ok(name)),
                "program {name} missing"
            );
        }
    }
}
