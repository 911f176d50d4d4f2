//! Attribution: a kernel record plus what the process table and identity caches
//! know, into one [`Event`]. Fork and exit records only keep the table true (and
//! are emitted when asked).
//!
//! A state machine with one way in, [`Attributor::handle`]: it is fed typed
//! [`Input`]s (kernel records, and the processes the start-up /proc scan saw)
//! and reads the host only through a [`HostView`], so unit tests drive it
//! without a kernel or /proc. Every table entry is built by one constructor
//! (`process::Image` -> `Process`), whether a record or /proc described it.
//!
//! Hot path: for a process the table knows, nothing here makes a syscall (the
//! probe walks an exec's cwd; only where it cannot, the cwd of a directory not
//! seen in the last seconds is read, `proc::cwd`). /proc is read only for processes the
//! table does not know (started before the probes attached and missed by the scan).
//! These reads block: the caller runs attribution where blocking is allowed
//! (see `run`).
use std::{sync::Arc, time::Instant};

use tracer_common::TaskInfo;

use crate::{
    decode::Record,
    event::{Action, Event, ForkAction, Host, Kind, Policy},
    exec_id::ns_to_ticks,
    filehash::{FileHasher, HostPaths},
    identity::{
        cgroup::{CgroupResolver, V1Controller},
        resolve::IdentityResolver,
        users::UserDb,
    },
    proc::{cwd::CwdCache, intern::Interner, scan::ProcSnapshot, table::ProcessTable},
};

mod action;
mod executor;
mod host_view;
mod process;
mod requestor;
#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod tests;

pub use action::apply_result;
pub use host_view::{HostView, ProcHost};

/// Per-run facts every event needs.
pub struct Context {
    pub host: Arc<Host>,
    pub policy: Arc<Policy>,
    /// Added to a boot-clock ns value to get Unix-epoch ns.
    pub realtime_offset_ns: i128,
    pub ticks_per_second: u64,
    /// Bytes of a memory page (the unit of the kernel's peak RSS).
    pub page_size: u64,
    pub lineage_depth: usize,
    /// `--lineage ids`: ancestors are written by exec_id only.
    pub lineage_ids: bool,
    pub emit_lifecycle: bool,
    /// `--usage-interval`, ns: a sweep's record becomes a usage event only
    /// for an image that has run at least this long; 0: sweeps are off.
    pub usage_interval_ns: u64,
}

/// What attribution is fed.
#[derive(Debug, Clone)]
pub enum Input {
    /// A kernel record.
    Record(Record),
    /// A process as the host's /proc showed it (the start-up scan): it enters
    /// the table unless a record already told of a newer image of its pid.
    Seen(ProcSnapshot),
}

impl From<Record> for Input {
    fn from(r: Record) -> Input {
        Input::Record(r)
    }
}

pub struct Attributor {
    ctx: Context,
    pub table: ProcessTable,
    users: UserDb,
    cgroups: CgroupResolver,
    /// The id of the v2 root, where every task is on a cgroup v1 host.
    v2_root: Option<u64>,
    /// The v1 hierarchy the probes read, if any (cgroup v1 and hybrid hosts).
    cgroups_v1: Option<CgroupV1>,
    identity: IdentityResolver,
    cwds: CwdCache,
    /// Shared copies of binaries and argv lists for the table's entries.
    intern: Interner,
    /// Processes looked up in /proc because the table did not know them.
    pub proc_lookups: u64,
    /// SHA-256 of executed files (cache, budget, worker thread).
    hashes: FileHasher,
    /// Whether an image's file is the one at its path on the host (`unix:path`).
    host_paths: HostPaths,
    /// Where /proc is read (a fake in tests).
    host: Box<dyn HostView + Send>,
    /// Which environment variables are credentials (`--credential-env`).
    credential_patterns: Arc<crate::proc::env::CredentialPatterns>,
    /// Which environment variables name a requestor (`executor.requestor`).
    requestor_profiles: Arc<crate::proc::requestor::Profiles>,
}

/// A v1 controller hierarchy: which, and its id -> path resolver.
struct CgroupV1 {
    controller: V1Controller,
    resolver: CgroupResolver,
    /// Its hierarchy id in cgroup mkdir/rmdir/rename records; 0 none.
    hierarchy_id: u32,
}

/// An event, and whether its pod's or container's metadata is still missing,
/// or its executed file's hash is being computed (each worth a short wait).
pub struct Attributed {
    pub event: Event,
    pub waiting_for_metadata: bool,
    pub waiting_for_hash: bool,
}

impl Attributor {
    pub fn new(
        ctx: Context,
        table: ProcessTable,
        users: UserDb,
        cgroups: CgroupResolver,
        identity: IdentityResolver,
    ) -> Self {
        Self {
            ctx,
            table,
            users,
            v2_root: cgroups.id_of("/"),
            cgroups,
            cgroups_v1: None,
            identity,
            cwds: CwdCache::default(),
            intern: Interner::default(),
            proc_lookups: 0,
            hashes: FileHasher::new(0.0),
            host_paths: HostPaths::new("/".into()),
            host: Box::new(ProcHost),
            credential_patterns: Arc::new(crate::proc::env::CredentialPatterns::defaults()),
            requestor_profiles: Arc::new(crate::proc::requestor::Profiles::defaults()),
        }
    }

    /// Name the environment variables `patterns` match as credentials
    /// (instead of the built-in list).
    pub fn with_credential_patterns(
        mut self,
        patterns: crate::proc::env::CredentialPatterns,
    ) -> Self {
        self.credential_patterns = Arc::new(patterns);
        self
    }

    /// Name requestors with `profiles` (the built-in ones and the operator's).
    pub fn with_requestor_profiles(mut self, profiles: crate::proc::requestor::Profiles) -> Self {
        self.requestor_profiles = Arc::new(profiles);
        self
    }

    /// Read processes through `host` instead of this machine's /proc.
    pub fn with_host_view(mut self, host: Box<dyn HostView + Send>) -> Self {
        self.host = host;
        self
    }

    /// Hash executed files with `hashes`; host paths (`unix:path`) are
    /// looked up under `host_root`.
    pub fn with_files(mut self, hashes: FileHasher, host_root: std::path::PathBuf) -> Self {
        self.hashes = hashes;
        self.host_paths = HostPaths::new(host_root);
        self
    }

    /// Signalled when a file's hash is ready (events may be waiting for it).
    pub fn hash_answered(&self) -> Arc<tokio::sync::Notify> {
        self.hashes.answered.clone()
    }

    pub fn hashes(&self) -> &FileHasher {
        &self.hashes
    }

    /// Name workloads from a v1 controller hierarchy too, for tasks whose v2
    /// cgroup is the root (cgroup v1 hosts): the probes read each task's
    /// cgroup in `controller` (its `cgroup_v1_id`), `resolver` walks that
    /// controller's mount, and `hierarchy_id` tells its cgroup records apart.
    pub fn with_cgroup_v1(
        mut self,
        controller: V1Controller,
        resolver: CgroupResolver,
        hierarchy_id: u32,
    ) -> Self {
        self.cgroups_v1 = Some(CgroupV1 {
            controller,
            resolver,
            hierarchy_id,
        });
        self
    }

    fn ticks(&self, task: &TaskInfo) -> u64 {
        ns_to_ticks(task.start_boottime_ns, self.ctx.ticks_per_second)
    }

    fn unix_ns(&self, boot_ns: u64) -> i128 {
        i128::from(boot_ns) + self.ctx.realtime_offset_ns
    }

    /// Seed the table from the start-up /proc scan: each snapshot goes in
    /// as a [`Input::Seen`], the way any other input does.
    pub fn seed(&mut self, snapshots: impl IntoIterator<Item = ProcSnapshot>) {
        for s in snapshots {
            self.handle(Input::Seen(s));
        }
    }

    /// Periodic upkeep: exited processes past their grace leave the table;
    /// processes that outlived a tick share their binary and argv with equal
    /// ones; shared copies nothing uses any more go.
    pub fn evict(&mut self, now: Instant) {
        self.table.evict(now);
        self.table.share_long_lived(&mut self.intern);
        self.intern.purge();
    }

    /// Update the table from `input` and return the event to emit, if any.
    /// What image `p` used from its start to `ts` (ns since boot), given
    /// the process's CPU time then and its peak RSS in pages.
    fn usage(
        &self,
        p: &crate::proc::table::Process,
        ts: u64,
        cpu: &tracer_common::CpuUsage,
        peak_pages: u64,
    ) -> crate::event::Usage {
        let started = match p.image_start_ns {
            0 => p.start_ticks.saturating_mul(1_000_000_000) / self.ctx.ticks_per_second.max(1),
            ns => ns,
        };
        action::usage(
            cpu,
            (p.cpu_base_ns != crate::proc::table::NO_EXEC_SEEN).then_some(p.cpu_base_ns),
            peak_pages,
            self.ctx.page_size,
            ts.saturating_sub(started),
        )
    }

    pub fn handle(&mut self, input: impl Into<Input>) -> Option<Attributed> {
        let rec = match input.into() {
            Input::Record(rec) => rec,
            Input::Seen(s) => {
                let p = self.process_seen(&s);
                self.table.seed(p);
                return None;
            }
        };
        match rec {
            Record::Exec(e) if e.rec.errno == 0 => Some(self.exec_success(e)),
            Record::Exec(e) => Some(self.exec_failure(e)),
            Record::Connect(c) => {
                let p = self.process_for(&c.task);
                let mut connect = action::connect_action(&c);
                let dst = &mut connect.destination;
                (dst.service, dst.pod) =
                    self.identity
                        .destination(&dst.ip, dst.port, &connect.protocol);
                let action = Action::Connect(Box::new(connect));
                Some(self.event(Kind::Connect, c.header.ts_boot_ns, &c.task, &p, action))
            }
            Record::Fork { ts_boot_ns, task } => {
                let p = self.fork(&task);
                self.ctx.emit_lifecycle.then(|| {
                    let action = Action::Fork(ForkAction {
                        child_pid: task.tgid,
                    });
                    self.event(Kind::Fork, ts_boot_ns, &task, &p, action)
                })
            }
            Record::Cgroup {
                op, root, id, path, ..
            } => {
                let resolver = if root == 0 {
                    Some(&mut self.cgroups)
                } else {
                    self.cgroups_v1
                        .as_mut()
                        .filter(|v1| {
                            v1.hierarchy_id != 0 && i64::from(root) == i64::from(v1.hierarchy_id)
                        })
                        .map(|v1| &mut v1.resolver)
                };
                if let Some(r) = resolver {
                    match op {
                        tracer_common::CGROUP_RMDIR => r.remove(id),
                        _ => r.learn(id, &path),
                    }
                }
                None
            }
            // Joined with its connect event downstream (`outcome`).
            Record::ConnectResult(_) => None,
            // Names destinations downstream (`run::flow`).
            Record::Dns(_) => None,
            Record::Exit {
                ts_boot_ns,
                task,
                exit_code,
                cpu,
                maxrss_pages,
            } => {
                let ev = self.ctx.emit_lifecycle.then(|| {
                    let p = self.process_for(&task);
                    let usage = self.usage(&p, ts_boot_ns, &cpu, maxrss_pages);
                    let action = Action::Exit(action::exit_action(exit_code, Some(usage)));
                    self.event(Kind::Exit, ts_boot_ns, &task, &p, action)
                });
                self.table.mark_exited(task.tgid, Instant::now());
                ev
            }
            Record::Usage(u) => {
                let ts = u.header.ts_boot_ns;
                let p = self.process_for(&u.task);
                let peak = u.maxrss_pages.max(u.hiwater_rss_pages).max(u.rss_pages);
                let usage = self.usage(&p, ts, &u.cpu, peak);
                // A younger image is left to its exit, or to a later sweep.
                if usage.lifetime_ns < self.ctx.usage_interval_ns {
                    return None;
                }
                let action = Action::Usage(crate::event::UsageAction {
                    usage,
                    threads: u.threads,
                    threads_cut: u.flags & tracer_common::USAGE_THREADS_CUT != 0,
                });
                Some(self.event(Kind::Usage, ts, &u.task, &p, action))
            }
        }
    }
}
