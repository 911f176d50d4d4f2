//! Attribution: a kernel record plus what the process table and identity caches
//! know, into one [`Event`]. Fork and exit records only keep the table true (and
//! are emitted when asked).
//!
//! Hot path: for a process the table knows, nothing here makes a syscall except
//! reading the cwd of a fresh exec image in a directory not seen in the last
//! seconds (`proc::cwd`). /proc is read only for processes the
//! table does not know (started before the probes attached and missed by the scan).
use std::{sync::Arc, time::Instant};

use tracer_common::{
    AF_INET6, CONNECT_IN_SYSCALL, CONNECT_OP_SENDMSG, FLAG_ARGV_TRUNCATED, FLAG_PATH_TRUNCATED,
    RESULT_FROM_STATE, TaskInfo,
};

use crate::{
    decode::{Exec, Record, c_str},
    errno,
    escape::{escape, split_argv},
    event::{
        Action, Ancestor, Cgroup, ConnectAction, Endpoint, Event, EventId, ExecAction, Executor,
        ExitAction, FileId, ForkAction, HIERARCHY_V2, Host, ImageSource, Kind, LoaderEnv, Login,
        Namespaces, Outcome, Policy, UnixNanos, User, naming_path,
    },
    exec_id::{ImageLayout, exec_id, ns_to_ticks},
    filehash::{FileHasher, FileVersion, HashStatus, HostPaths, Job},
    identity::{
        cgroup::{CgroupResolver, V1Controller},
        resolve::{IdentityResolver, Resolved, UnixFacts},
        users::UserDb,
    },
    proc::{
        cwd::CwdCache,
        intern::Interner,
        scan::{self, ProcSnapshot},
        table::{Process, ProcessTable},
    },
};

/// Per-run facts every event needs.
pub struct Context {
    pub host: Arc<Host>,
    pub policy: Arc<Policy>,
    /// Added to a boot-clock ns value to get Unix-epoch ns.
    pub realtime_offset_ns: i128,
    pub ticks_per_second: u64,
    pub lineage_depth: usize,
    pub emit_lifecycle: bool,
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
}

/// A v1 controller hierarchy: which, and its id -> path resolver.
struct CgroupV1 {
    controller: V1Controller,
    resolver: CgroupResolver,
    /// Its hierarchy id in cgroup mkdir/rmdir/rename records; 0 none.
    hierarchy_id: u32,
}

/// What a new table entry says about its image besides what the record does.
struct ImageFacts {
    binary: Arc<str>,
    argv: Arc<[String]>,
    argv_truncated: bool,
    cwd: (Option<Arc<str>>, u64),
    at_random: [u8; 16],
    source: ImageSource,
    file: Option<FileVersion>,
    loader_env: Option<Arc<LoaderEnv>>,
}

impl ImageFacts {
    /// Known only by the kernel's 16-byte name.
    fn comm_only(task: &TaskInfo) -> ImageFacts {
        let (binary, argv) = comm_only(task);
        ImageFacts {
            binary,
            argv,
            argv_truncated: false,
            cwd: (None, 0),
            at_random: [0; 16],
            source: ImageSource::Comm,
            file: None,
            loader_env: None,
        }
    }

    /// A forked child runs its parent's image (same memory, so the same
    /// `AT_RANDOM` bytes) until it execs.
    fn inherited(parent: &Process) -> ImageFacts {
        ImageFacts {
            binary: parent.binary.clone(),
            argv: parent.argv.clone(),
            argv_truncated: parent.argv_truncated,
            cwd: (parent.cwd.clone(), parent.cwd_ino),
            at_random: parent.layout.at_random,
            source: parent.image_source,
            file: parent.file,
            loader_env: parent.loader_env.clone(),
        }
    }
}

/// The image's path as a `unix:path` fact: only when the file at that path
/// on the host is the very file the kernel executed (device and inode), so a
/// file bind-mounted over the path in a private mount namespace, or a
/// container's own `/usr/bin/x`, does not pass for the host's.
fn host_path_fact<'a>(
    host_paths: &mut HostPaths,
    binary: &'a Arc<str>,
    file: Option<&FileVersion>,
) -> Option<&'a str> {
    let f = file?;
    host_paths
        .is_at(binary, f, Instant::now())
        .then_some(&**binary)
}

/// An event, and whether its pod's or container's metadata is still missing,
/// or its executed file's hash is being computed (each worth a short wait).
pub struct Attributed {
    pub event: Event,
    pub waiting_for_metadata: bool,
    pub waiting_for_hash: bool,
}

const UNSET_ID: u32 = u32::MAX;

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
        }
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

    fn process_from_snapshot(&self, s: &ProcSnapshot) -> Process {
        let argv: Arc<[String]> = s.argv.iter().map(|a| escape(a)).collect();
        let argv_truncated = s.argv_truncated;
        let binary: Arc<str> = match (&s.exe, s.argv.first()) {
            (Some(exe), _) => escape(exe).into(),
            (None, Some(a0)) if !a0.is_empty() => escape(a0).into(),
            _ => format!("[{}]", s.comm).into(),
        };
        let layout = ImageLayout {
            arg_start: s.arg_start,
            start_code: s.start_code,
            start_brk: s.start_brk,
            at_random: s.at_random,
        };
        Process {
            exec_id: exec_id(&self.ctx.host.boot_id, s.pid, s.start_ticks, layout).into(),
            layout,
            exec_seq: None,
            image_source: ImageSource::Proc,
            file: s.file,
            loader_env: s.loader_env.clone(),
            pid: s.pid,
            ppid: s.ppid,
            start_ticks: s.start_ticks,
            binary,
            argv,
            argv_truncated,
            cwd: s.cwd.as_deref().map(|c| escape(c).into()),
            cwd_ino: s.cwd_ino,
            cgroup_id: s
                .cgroup_v2
                .as_deref()
                .and_then(|rel| self.cgroups.id_of(rel))
                .unwrap_or(0),
            cgroup_v1_id: self
                .cgroups_v1
                .as_ref()
                .and_then(|v1| {
                    scan::cgroup_v1_path(&s.cgroup_v1, v1.controller.name)
                        .and_then(|rel| v1.resolver.id_of(rel))
                })
                .unwrap_or(0),
            uid: s.uid,
            gid: s.gid,
            exited: None,
            lineage_entry: Default::default(),
        }
    }

    /// A table entry for the image a record describes.
    fn process_from_task(&mut self, task: &TaskInfo, facts: ImageFacts) -> Process {
        let ImageFacts {
            binary,
            argv,
            argv_truncated,
            cwd: (cwd, cwd_ino),
            at_random,
            source,
            file,
            loader_env,
        } = facts;
        let start_ticks = self.ticks(task);
        let layout = ImageLayout {
            arg_start: task.arg_start,
            start_code: task.start_code,
            start_brk: task.start_brk,
            at_random,
        };
        Process {
            exec_id: exec_id(&self.ctx.host.boot_id, task.tgid, start_ticks, layout).into(),
            layout,
            exec_seq: Some(task.exec_seq),
            image_source: source,
            file,
            loader_env,
            pid: task.tgid,
            ppid: task.ptgid,
            start_ticks,
            binary,
            argv,
            argv_truncated,
            cwd,
            cwd_ino,
            cgroup_id: task.cgroup_id,
            cgroup_v1_id: task.cgroup_v1_id,
            uid: task.uid,
            gid: task.gid,
            exited: None,
            lineage_entry: Default::default(),
        }
    }

    /// Seed the table from the start-up /proc scan.
    pub fn seed(&mut self, snapshots: &[ProcSnapshot]) {
        for s in snapshots {
            let p = self.process_from_snapshot(s);
            self.table.seed(p);
        }
    }

    /// The table's entry for the process a record came from; /proc when unknown,
    /// and as a last resort what the record itself says.
    /// Whether table entry `p` is the image `task` runs: same process (pid and
    /// start), same layout, and the kernel's exec counter agrees (unknown for an
    /// image only /proc described: the first record tells it).
    fn same_image(&self, p: &Process, task: &TaskInfo) -> bool {
        p.start_ticks == self.ticks(task)
            && p.layout.arg_start == task.arg_start
            && p.layout.start_code == task.start_code
            && p.layout.start_brk == task.start_brk
            && p.exec_seq.is_none_or(|s| s == task.exec_seq)
    }

    fn process_for(&mut self, task: &TaskInfo) -> Process {
        if let Some(p) = self.table.get(task.tgid)
            && self.same_image(p, task)
        {
            let mut p = p.clone();
            if p.exec_seq.is_none() {
                p.exec_seq = Some(task.exec_seq);
                self.table.adopt_exec_seq(task.tgid, task.exec_seq);
            }
            if p.cgroup_id != task.cgroup_id
                || p.cgroup_v1_id != task.cgroup_v1_id
                || p.uid != task.uid
                || p.gid != task.gid
            {
                self.table.observe(
                    task.tgid,
                    (task.cgroup_id, task.cgroup_v1_id),
                    task.uid,
                    task.gid,
                );
            }
            return p;
        }
        // Not known, or its exec record was lost: /proc, if it still shows
        // this image, else the kernel's name only.
        self.proc_lookups += 1;
        let p = match scan::snapshot(task.tgid).map(|s| self.process_from_snapshot(&s)) {
            Ok(mut p) if self.same_image(&p, task) => {
                p.exec_seq = Some(task.exec_seq);
                p
            }
            _ => self.process_from_task(task, ImageFacts::comm_only(task)),
        };
        self.table.replace(p.clone());
        p
    }

    fn unix_ns(&self, boot_ns: u64) -> i128 {
        i128::from(boot_ns) + self.ctx.realtime_offset_ns
    }

    /// The executed file with its hash as known now (queued for hashing when
    /// new), and whether that hash is still being computed.
    fn file_id(&mut self, pid: u32, p: &Process) -> (Option<FileId>, bool) {
        let Some(v) = p.file else {
            return (None, false);
        };
        let host_paths = &self.host_paths;
        let state = self.hashes.state(&v, || Job {
            version: v,
            pid,
            at_random: p.layout.at_random,
            host_path: host_paths.host_path(&p.binary),
        });
        let f = FileId::new(v, &state);
        let pending = f.hash == HashStatus::Pending;
        (Some(f), pending)
    }

    fn executor(&mut self, task: &TaskInfo, p: &Process) -> (Executor, bool, bool) {
        let user = User {
            uid: task.uid,
            name: self.users.user_name(task.uid).map(str::to_owned),
            gid: task.gid,
            group: self.users.group_name(task.gid).map(str::to_owned),
            euid: task.euid,
            egid: task.egid,
        };
        let login = (task.auid != UNSET_ID).then(|| {
            let tty = c_str(&task.tty);
            Login {
                auid: task.auid,
                name: self.users.user_name(task.auid).map(str::to_owned),
                session_id: (task.sessionid != UNSET_ID).then_some(task.sessionid),
                tty: (!tty.is_empty()).then(|| escape(tty)),
            }
        });
        let (cgroup_path, hierarchy, path_truncated) =
            self.workload_cgroup(task.cgroup_id, task.cgroup_v1_id, Some(task.tgid));
        let Resolved {
            workload,
            identity,
            waiting_for_metadata,
        } = self.identity.resolve(
            naming_path(cgroup_path.as_ref(), path_truncated).as_ref(),
            &UnixFacts {
                uid: task.uid,
                user: user.name.as_deref(),
                gid: task.gid,
                path: host_path_fact(&mut self.host_paths, &p.binary, p.file.as_ref()),
            },
        );
        let (file, waiting_for_hash) = self.file_id(task.tgid, p);
        let executor = Executor {
            exec_id: p.exec_id.clone(),
            pid: task.tgid,
            tid: task.tid,
            ppid: task.ptgid,
            binary: p.binary.clone(),
            argv: p.argv.clone(),
            argv_truncated: p.argv_truncated,
            image_source: p.image_source,
            file,
            loader_env: p.loader_env.clone(),
            cwd: p.cwd.clone(),
            comm: escape(c_str(&task.comm)),
            start_time: UnixNanos(self.unix_ns(task.start_boottime_ns)),
            user,
            login,
            cgroup: Cgroup {
                id: task.cgroup_id,
                path: cgroup_path,
                hierarchy,
                v1_id: (self.cgroups_v1.is_some() && task.cgroup_v1_id != 0)
                    .then_some(task.cgroup_v1_id),
                path_truncated,
            },
            namespaces: Namespaces {
                pid: task.pid_ns,
                mnt: task.mnt_ns,
                net: task.net_ns,
            },
            workload,
            identity,
        };
        (executor, waiting_for_metadata, waiting_for_hash)
    }

    /// Ancestors, each with its own workload and identity where its cgroup differs
    /// from the executor's.
    fn lineage(&mut self, task: &TaskInfo, start_ticks: u64) -> Vec<Ancestor> {
        let mut lineage = self
            .table
            .lineage(task.ptgid, start_ticks, self.ctx.lineage_depth);
        let own = self.cgroup_key(task.cgroup_id, task.cgroup_v1_id);
        for a in &mut lineage {
            let Some((cgroup_id, v1_id, uid, gid, file)) = self
                .table
                .get(a.pid)
                .map(|p| (p.cgroup_id, p.cgroup_v1_id, p.uid, p.gid, p.file))
            else {
                continue;
            };
            if cgroup_id == 0 || self.cgroup_key(cgroup_id, v1_id) == own {
                continue;
            }
            let (path, _, cut) = self.workload_cgroup(cgroup_id, v1_id, None);
            let user = self.users.user_name(uid).map(str::to_owned);
            let r = self.identity.resolve(
                naming_path(path.as_ref(), cut).as_ref(),
                &UnixFacts {
                    uid,
                    user: user.as_deref(),
                    gid,
                    path: host_path_fact(&mut self.host_paths, &a.binary, file.as_ref()),
                },
            );
            a.workload = Some(r.workload);
            a.identity = Some(r.identity);
        }
        lineage
    }

    fn event(
        &mut self,
        kind: Kind,
        ts: u64,
        task: &TaskInfo,
        p: &Process,
        action: Action,
    ) -> Attributed {
        let unix = self.unix_ns(ts);
        let (executor, waiting_for_metadata, waiting_for_hash) = self.executor(task, p);
        let lineage = self.lineage(task, p.start_ticks);
        Attributed {
            event: Event {
                event_id: EventId::new(UnixNanos(unix), task.tid),
                time: UnixNanos(unix),
                kind,
                host: self.ctx.host.clone(),
                executor,
                lineage,
                action,
                policy: self.ctx.policy.clone(),
            },
            waiting_for_metadata,
            waiting_for_hash,
        }
    }

    /// Try again to resolve the identity of an event that waited for its pod
    /// (or its containerd container), and to find its file's hash. Returns
    /// true when nothing is awaited now.
    pub fn reresolve(&mut self, ev: &mut Event) -> bool {
        let mut hash_pending = false;
        if let Some(f) = ev.executor.file.as_mut()
            && f.hash == HashStatus::Pending
        {
            *f = FileId::new(f.version, &self.hashes.known(&f.version));
            hash_pending = f.hash == HashStatus::Pending;
        }
        let x = &ev.executor;
        let version = x.file.as_ref().map(|f| f.version);
        let r = self.identity.resolve(
            x.cgroup.naming_path().as_ref(),
            &UnixFacts {
                uid: x.user.uid,
                user: x.user.name.as_deref(),
                gid: x.user.gid,
                path: host_path_fact(&mut self.host_paths, &x.binary, version.as_ref()),
            },
        );
        ev.executor.workload = r.workload;
        ev.executor.identity = r.identity;
        !r.waiting_for_metadata && !hash_pending
    }

    /// What a workload is named from, as ids: the v2 cgroup, and the v1 one
    /// where the v2 cgroup is the root and a v1 hierarchy is read.
    fn cgroup_key(&self, v2_id: u64, v1_id: u64) -> (u64, u64) {
        if self.cgroups_v1.is_some() && self.is_v2_root(v2_id) {
            (v2_id, v1_id)
        } else {
            (v2_id, 0)
        }
    }

    fn is_v2_root(&self, id: u64) -> bool {
        Some(id) == self.v2_root || self.cgroups.path_cached(id).as_deref() == Some("/")
    }

    /// The path a workload is named from, and the hierarchy it is in: the v2
    /// path; but where that is the root and the task sits below the root of the
    /// v1 hierarchy the probes read (a cgroup v1 host, where containers and
    /// services exist only in v1 hierarchies), the v1 path. Both are written by
    /// whoever may write that hierarchy, and parsed alike. `pid`: the process
    /// whose /proc may name the cgroup on a miss. The flag: the path is one
    /// the kernel's record cut short and that could not be found whole.
    fn workload_cgroup(
        &mut self,
        v2_id: u64,
        v1_id: u64,
        pid: Option<u32>,
    ) -> (Option<Arc<str>>, &'static str, bool) {
        let v2 = match pid {
            Some(pid) => self.cgroup_path(v2_id, pid),
            None => self.cgroups.path(v2_id),
        };
        if v1_id != 0
            && self.cgroups_v1.is_some()
            && (v2.as_deref() == Some("/") || self.is_v2_root(v2_id))
            && let Some(v1) = self.cgroup_v1_path(v1_id, pid).filter(|p| &**p != "/")
            && let Some(c) = &self.cgroups_v1
        {
            let cut = c.resolver.is_cut(v1_id);
            return (Some(v1), c.controller.hierarchy, cut);
        }
        let cut = v2.is_some() && self.cgroups.is_cut(v2_id);
        (v2, HIERARCHY_V2, cut)
    }

    /// [`Self::cgroup_path`] in the v1 hierarchy.
    fn cgroup_v1_path(&mut self, id: u64, pid: Option<u32>) -> Option<Arc<str>> {
        let v1 = self.cgroups_v1.as_mut()?;
        let controller = v1.controller.name;
        v1.resolver.path_verified(id, || {
            let text = std::fs::read(format!("/proc/{}/cgroup", pid?)).ok()?;
            scan::parse_cgroup_v1_line(&text, controller).map(|(_, rel)| rel)
        })
    }

    /// See [`CgroupResolver::path_verified`]: the process's own /proc claim is
    /// read only on a cache miss.
    fn cgroup_path(&mut self, id: u64, pid: u32) -> Option<Arc<str>> {
        self.cgroups.path_verified(id, || {
            let text = std::fs::read(format!("/proc/{pid}/cgroup")).ok()?;
            scan::parse_cgroup_v2_line(&text)
        })
    }

    /// Update the table from `rec` and return the event to emit, if any.
    /// Periodic upkeep: exited processes past their grace leave the table;
    /// processes that outlived a tick share their binary and argv with equal
    /// ones; shared copies nothing uses any more go.
    pub fn evict(&mut self, now: Instant) {
        self.table.evict(now);
        self.table.share_long_lived(&mut self.intern);
        self.intern.purge();
    }

    pub fn handle(&mut self, rec: Record) -> Option<Attributed> {
        match rec {
            Record::Exec(e) if e.rec.errno == 0 => Some(self.exec_success(e)),
            Record::Exec(e) => Some(self.exec_failure(e)),
            Record::Connect(c) => {
                let p = self.process_for(&c.task);
                let action = Action::Connect(connect_action(&c));
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
            Record::Exit {
                ts_boot_ns,
                task,
                exit_code,
            } => {
                let ev = self.ctx.emit_lifecycle.then(|| {
                    let p = self.process_for(&task);
                    let action = Action::Exit(exit_action(exit_code));
                    self.event(Kind::Exit, ts_boot_ns, &task, &p, action)
                });
                self.table.mark_exited(task.tgid, Instant::now());
                ev
            }
        }
    }

    fn fork(&mut self, task: &TaskInfo) -> Process {
        // The record's cgroup is the forking parent's current one: it may have moved.
        self.table.observe(
            task.ptgid,
            (task.cgroup_id, task.cgroup_v1_id),
            task.uid,
            task.gid,
        );
        let facts = match self.table.get(task.ptgid) {
            Some(parent) => ImageFacts::inherited(parent),
            None => ImageFacts::comm_only(task),
        };
        let p = self.process_from_task(task, facts);
        self.table.upsert(p.clone());
        p
    }

    fn exec_success(&mut self, e: Exec) -> Attributed {
        let task = &e.rec.task;
        let argv: Arc<[String]> = split_argv(&e.argv).into();
        // The kernel names the directory; its path comes from the cache (or /proc
        // once per directory). If the process is gone and no sibling's was read,
        // keep the previous image's if it was in the same directory (exec does
        // not change it, but a child can between its fork and its exec).
        let key = (e.rec.cwd_dentry, e.rec.cwd_mnt, e.rec.cwd_ino);
        let cwd: Option<Arc<str>> =
            self.cwds
                .lookup(key, task.tgid, Instant::now())
                .or_else(|| {
                    self.table
                        .get(task.tgid)
                        .filter(|p| key.2 != 0 && p.cwd_ino == key.2)
                        .and_then(|p| p.cwd.clone())
                });
        let mut binary = escape(&e.path);
        if !binary.starts_with('/')
            && let Some(cwd) = &cwd
        {
            binary = format!(
                "{}/{}",
                cwd.trim_end_matches('/'),
                binary.trim_start_matches("./")
            );
        }
        let binary: Arc<str> = binary.into();
        let cwd_ino = if cwd.is_some() { key.2 } else { 0 };
        let argv_truncated = e.rec.flags & FLAG_ARGV_TRUNCATED != 0;
        let facts = ImageFacts {
            binary: binary.clone(),
            argv: argv.clone(),
            argv_truncated,
            cwd: (cwd, cwd_ino),
            at_random: e.rec.at_random,
            source: ImageSource::Exec,
            file: (e.rec.file_ino != 0).then(|| {
                FileVersion::from_kernel(
                    e.rec.file_dev,
                    e.rec.file_ino,
                    e.rec.file_size,
                    e.rec.file_ctime_sec,
                    e.rec.file_ctime_nsec,
                )
            }),
            loader_env: crate::proc::env::loader_env(&e.env),
        };
        let p = self.process_from_task(task, facts);
        // A new image: whatever the table held for the pid is gone.
        self.table.replace(p.clone());
        let action = Action::Exec(ExecAction {
            binary,
            argv,
            argv_truncated: e.rec.flags & (FLAG_ARGV_TRUNCATED | FLAG_PATH_TRUNCATED) != 0,
            outcome: Outcome::Success,
            error: None,
        });
        self.event(Kind::Exec, e.rec.header.ts_boot_ns, task, &p, action)
    }

    /// The old image is still the executor; the action names what it tried to run.
    fn exec_failure(&mut self, e: Exec) -> Attributed {
        let task = &e.rec.task;
        let p = self.process_for(task);
        let action = Action::Exec(ExecAction {
            binary: escape(&e.path).into(),
            argv: split_argv(&e.argv).into(),
            argv_truncated: e.rec.flags & FLAG_ARGV_TRUNCATED != 0,
            outcome: Outcome::Failure,
            error: Some(errno::name(e.rec.errno)),
        });
        self.event(Kind::Exec, e.rec.header.ts_boot_ns, task, &p, action)
    }
}

/// Binary and argv of a process known only by its kernel name: `[comm]`, no argv.
fn comm_only(task: &TaskInfo) -> (Arc<str>, Arc<[String]>) {
    let comm = escape(c_str(&task.comm));
    (format!("[{comm}]").into(), Arc::from(Vec::<String>::new()))
}

fn exit_action(code: u32) -> ExitAction {
    let signal = code & 0x7f;
    if signal != 0 {
        ExitAction {
            exit_code: 128 + signal,
            signal: Some(signal),
        }
    } else {
        ExitAction {
            exit_code: (code >> 8) & 0xff,
            signal: None,
        }
    }
}

fn ip_string(family: u16, addr: &[u8; 16]) -> String {
    if family == AF_INET6 {
        std::net::Ipv6Addr::from(*addr).to_string()
    } else {
        std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string()
    }
}

/// An address as reported: a v4-mapped IPv6 address as the IPv4 it carries.
/// Returns (family, ip text, whether it was mapped).
fn reported_address(family: u16, addr: &[u8; 16]) -> (&'static str, String, bool) {
    if family == AF_INET6 {
        let v6 = std::net::Ipv6Addr::from(*addr);
        if let Some(v4) = v6.to_ipv4_mapped() {
            return ("ipv4", v4.to_string(), true);
        }
        ("ipv6", v6.to_string(), false)
    } else {
        ("ipv4", ip_string(family, addr), false)
    }
}

/// The connect as the cgroup hook saw it; its outcome follows (see `outcome`).
fn connect_action(c: &tracer_common::ConnectRecord) -> ConnectAction {
    let protocol = match c.protocol {
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        1 => "icmp".to_owned(),
        58 => "icmpv6".to_owned(),
        132 => "sctp".to_owned(),
        n => n.to_string(),
    };
    let (family, ip, mapped) = reported_address(c.family, &c.daddr);
    ConnectAction {
        method: if c.op == CONNECT_OP_SENDMSG {
            "sendmsg"
        } else {
            "connect"
        },
        in_syscall: c.flags & CONNECT_IN_SYSCALL != 0,
        protocol,
        family,
        socket_family: mapped.then_some("ipv6"),
        destination: Endpoint { ip, port: c.dport },
        source: None,
        outcome: Outcome::Unknown,
        error: None,
        outcome_from: None,
        socket_cookie: c.cookie,
    }
}

/// Fill in what became of a connect.
pub fn apply_result(a: &mut ConnectAction, r: &tracer_common::ConnectResultRecord) {
    let (outcome, error) = match r.errno {
        0 => (Outcome::Success, None),
        errno::EINPROGRESS => (Outcome::InProgress, None),
        n => (Outcome::Failure, Some(errno::name(n))),
    };
    a.outcome = outcome;
    a.error = error;
    a.outcome_from = Some(if r.source_of == RESULT_FROM_STATE {
        "socket"
    } else {
        "syscall"
    });
    if r.source_known != 0 && r.sport != 0 {
        let (_, ip, _) = reported_address(r.family, &r.saddr);
        a.source = Some(Endpoint { ip, port: r.sport });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::{os::unix::fs::MetadataExt as _, path::Path, time::Duration};

    use crate::{
        decode::Exec,
        identity::{spiffe::Registry, workload::WorkloadKind},
    };

    fn attributor(v2_mount: &Path) -> Attributor {
        let ctx = Context {
            host: Arc::new(Host {
                name: "test".into(),
                boot_id: "00000000-0000-0000-0000-000000000000".into(),
            }),
            policy: Arc::new(Policy {
                tracer_version: "test",
                config_digest: "sha256:0".into(),
            }),
            realtime_offset_ns: 0,
            ticks_per_second: 100,
            lineage_depth: 4,
            emit_lifecycle: false,
        };
        Attributor::new(
            ctx,
            ProcessTable::new(Duration::from_secs(1), 1024),
            UserDb::new("/nonexistent"),
            CgroupResolver::with_mount(v2_mount.to_owned()).with_rescan_interval(Duration::ZERO),
            IdentityResolver::new(None, Registry::new("example.org", true).unwrap()),
        )
    }

    /// The exec event of a process (no /proc entry) with these cgroup ids.
    fn exec_in(a: &mut Attributor, pid: u32, v2_id: u64, v1_id: u64) -> Event {
        let mut rec = tracer_common::ExecRecord::default();
        rec.task.tgid = pid;
        rec.task.tid = pid;
        rec.task.start_boottime_ns = u64::from(pid);
        rec.task.cgroup_id = v2_id;
        rec.task.cgroup_v1_id = v1_id;
        let exec = Exec {
            rec,
            path: b"/bin/true".to_vec(),
            argv: b"/bin/true\0".to_vec(),
            env: Vec::new(),
        };
        a.handle(Record::Exec(exec)).expect("an exec event").event
    }

    /// Removed on drop, even if the test fails.
    struct TempTree(std::path::PathBuf);

    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Where the v2 cgroup is the root, the workload comes from the v1
    /// hierarchy the probes read; anywhere else from v2, as before.
    #[test]
    fn workload_from_v1_only_where_the_v2_cgroup_is_the_root() {
        let top = TempTree(std::env::temp_dir().join(format!(
            "tracer-attr-v1-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )));
        let (v2, v1) = (top.0.join("v2"), top.0.join("v1"));
        let (cid, short_lived) = ("ab".repeat(32), "cd".repeat(32));
        std::fs::create_dir_all(v2.join("system.slice/x.service")).unwrap();
        std::fs::create_dir_all(v1.join(format!("docker/{cid}"))).unwrap();
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let (v2_root, v2_svc) = (ino(&v2), ino(&v2.join("system.slice/x.service")));
        let (v1_root, v1_ctr) = (ino(&v1), ino(&v1.join(format!("docker/{cid}"))));

        let memory = V1Controller {
            name: "memory",
            subsys_id: "memory_cgrp_id",
            hierarchy: "v1:memory",
            mount: v1.clone(),
        };
        let v1_resolver =
            CgroupResolver::with_mount(v1.clone()).with_rescan_interval(Duration::ZERO);
        let mut a = attributor(&v2).with_cgroup_v1(memory, v1_resolver, 4);
        // A cgroup of the v1 hierarchy named by its mkdir record only (already
        // gone from disk); one of another v1 hierarchy is not ours.
        let mkdir = |root: i32, id: u64, path: String| Record::Cgroup {
            ts_boot_ns: 0,
            op: tracer_common::CGROUP_MKDIR,
            root,
            id,
            path: path.into_bytes(),
        };
        assert!(
            a.handle(mkdir(4, 4242, format!("/docker/{short_lived}")))
                .is_none()
        );
        assert!(a.handle(mkdir(7, 4343, format!("/docker/{cid}"))).is_none());

        let docker = format!("/docker/{cid}");
        let docker_short = format!("/docker/{short_lived}");
        type Case<'a> = (
            &'a str,
            u64,
            u64,
            &'a str,
            &'a str,
            Option<u64>,
            WorkloadKind,
        );
        let cases: &[Case] = &[
            (
                "v1 container, v2 root",
                v2_root,
                v1_ctr,
                &docker,
                "v1:memory",
                Some(v1_ctr),
                WorkloadKind::Container,
            ),
            (
                "v2 names a service",
                v2_svc,
                v1_ctr,
                "/system.slice/x.service",
                "v2",
                Some(v1_ctr),
                WorkloadKind::Service,
            ),
            (
                "both roots",
                v2_root,
                v1_root,
                "/",
                "v2",
                Some(v1_root),
                WorkloadKind::Host,
            ),
            (
                "v1 read failed",
                v2_root,
                0,
                "/",
                "v2",
                None,
                WorkloadKind::Host,
            ),
            (
                "v1 from a mkdir record",
                v2_root,
                4242,
                &docker_short,
                "v1:memory",
                Some(4242),
                WorkloadKind::Container,
            ),
            (
                "another hierarchy's record",
                v2_root,
                4343,
                "/",
                "v2",
                Some(4343),
                WorkloadKind::Host,
            ),
        ];
        for (i, (what, v2_id, v1_id, path, hierarchy, v1_seen, kind)) in cases.iter().enumerate() {
            let ev = exec_in(&mut a, u32::MAX - i as u32, *v2_id, *v1_id);
            let c = &ev.executor.cgroup;
            assert_eq!(c.id, *v2_id, "{what}");
            assert_eq!(c.path.as_deref(), Some(*path), "{what}");
            assert_eq!(c.hierarchy, *hierarchy, "{what}");
            assert_eq!(c.v1_id, *v1_seen, "{what}");
            assert_eq!(ev.executor.workload.kind, *kind, "{what}");
        }

        // No v1 hierarchy read (pure v2 host): v2 only, whatever the record says.
        let mut a = attributor(&v2);
        let ev = exec_in(&mut a, u32::MAX - 100, v2_root, v1_ctr);
        assert_eq!(ev.executor.cgroup.path.as_deref(), Some("/"));
        assert_eq!(ev.executor.cgroup.hierarchy, "v2");
        assert_eq!(ev.executor.cgroup.v1_id, None);
        assert_eq!(ev.executor.workload.kind, WorkloadKind::Host);
    }

    /// A cgroup whose path the kernel's record cut (longer than 1023 bytes)
    /// and that is gone from disk: the event carries the cut path, flagged,
    /// and the workload is named from the deepest cgroup the cut path names
    /// whole, never from a name cut short (`x.service-not` cut to `x.service`).
    #[test]
    fn a_cut_cgroup_path_is_flagged_and_names_no_workload_by_half_a_name() {
        let top = TempTree(std::env::temp_dir().join(format!(
            "tracer-attr-cut-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )));
        let v2 = top.0.join("v2");
        std::fs::create_dir_all(&v2).unwrap();
        let mut a = attributor(&v2);
        let ancestor = format!(
            "/system.slice/deep.service/{}/{}/{}/{}",
            "a".repeat(200),
            "b".repeat(200),
            "c".repeat(200),
            "d".repeat(200)
        );
        let unit = "x.service";
        let pad = 1023 - ancestor.len() - 1 - unit.len();
        let cut = format!("{ancestor}/{}{unit}", "p".repeat(pad));
        assert_eq!(cut.len(), 1023);
        let (id, ours) = (5151, u32::MAX - 200);
        let mkdir = Record::Cgroup {
            ts_boot_ns: 0,
            op: tracer_common::CGROUP_MKDIR,
            root: 0,
            id,
            path: cut.clone().into_bytes(),
        };
        assert!(a.handle(mkdir).is_none());
        let ev = exec_in(&mut a, ours, id, 0);
        let c = &ev.executor.cgroup;
        assert_eq!(c.path.as_deref(), Some(cut.as_str()));
        assert!(c.path_truncated);
        assert_eq!(c.naming_path().as_deref(), Some(ancestor.as_str()));
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json["path_truncated"], true);
        assert_eq!(ev.executor.workload.unit.as_deref(), Some("deep.service"));
        // `cgroup:path:` selectors (what registrations glob on) see the whole
        // ancestor, so `**/x.service` cannot match half a name.
        let sel = &ev.executor.identity.selectors;
        assert!(sel.contains(&format!("cgroup:path:{ancestor}")), "{sel:?}");
        assert!(!sel.iter().any(|s| s.ends_with("x.service")), "{sel:?}");

        // A path shorter than the bound: as it is, and no flag on the wire.
        let short = Record::Cgroup {
            ts_boot_ns: 0,
            op: tracer_common::CGROUP_MKDIR,
            root: 0,
            id: id + 1,
            path: b"/system.slice/x.service".to_vec(),
        };
        assert!(a.handle(short).is_none());
        let ev = exec_in(&mut a, ours - 1, id + 1, 0);
        assert!(!ev.executor.cgroup.path_truncated);
        let json = serde_json::to_value(&ev.executor.cgroup).unwrap();
        assert!(json.get("path_truncated").is_none(), "{json}");
        assert_eq!(ev.executor.workload.unit.as_deref(), Some("x.service"));
    }

    #[test]
    fn exit_status() {
        assert_eq!(exit_action(0).exit_code, 0);
        assert_eq!(exit_action(3 << 8).exit_code, 3);
        let k = exit_action(9);
        assert_eq!((k.exit_code, k.signal), (137, Some(9)));
    }

    #[test]
    fn connect_outcomes_and_addresses() {
        use tracer_common::{ConnectResultRecord, RESULT_FROM_STATE, RESULT_FROM_SYSCALL};
        let mut c = tracer_common::ConnectRecord {
            family: tracer_common::AF_INET,
            protocol: 6,
            dport: 80,
            op: tracer_common::CONNECT_OP_CONNECT,
            flags: CONNECT_IN_SYSCALL,
            cookie: 42,
            ..Default::default()
        };
        c.daddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let mut a = connect_action(&c);
        assert_eq!(a.destination.ip, "127.0.0.1");
        assert_eq!(
            (a.method, a.in_syscall, a.socket_cookie),
            ("connect", true, 42)
        );
        assert_eq!((a.outcome, a.outcome_from), (Outcome::Unknown, None));
        assert!(a.source.is_none());

        // (errno, from) -> (outcome, error, outcome_from)
        let cases = [
            (0, RESULT_FROM_STATE, Outcome::Success, None, "socket"),
            (
                111,
                RESULT_FROM_STATE,
                Outcome::Failure,
                Some("ECONNREFUSED"),
                "socket",
            ),
            (
                110,
                RESULT_FROM_STATE,
                Outcome::Failure,
                Some("ETIMEDOUT"),
                "socket",
            ),
            (
                104,
                RESULT_FROM_STATE,
                Outcome::Failure,
                Some("ECONNRESET"),
                "socket",
            ),
            (
                101,
                RESULT_FROM_SYSCALL,
                Outcome::Failure,
                Some("ENETUNREACH"),
                "syscall",
            ),
            (
                errno::EINPROGRESS,
                RESULT_FROM_SYSCALL,
                Outcome::InProgress,
                None,
                "syscall",
            ),
        ];
        for (errno, from, outcome, error, outcome_from) in cases {
            let mut r = ConnectResultRecord {
                cookie: 42,
                errno,
                source_of: from,
                family: tracer_common::AF_INET,
                sport: 5555,
                source_known: 1,
                ..Default::default()
            };
            r.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
            apply_result(&mut a, &r);
            assert_eq!(a.outcome, outcome, "{errno}");
            assert_eq!(a.error.as_deref(), error, "{errno}");
            assert_eq!(a.outcome_from, Some(outcome_from), "{errno}");
            let src = a.source.as_ref().unwrap();
            assert_eq!((src.ip.as_str(), src.port), ("127.0.0.1", 5555));
        }

        c.family = AF_INET6;
        c.daddr = std::net::Ipv6Addr::LOCALHOST.octets();
        c.protocol = 17;
        c.op = tracer_common::CONNECT_OP_SENDMSG;
        c.flags = 0;
        let a = connect_action(&c);
        assert_eq!(
            (a.destination.ip.as_str(), a.family, a.protocol.as_str()),
            ("::1", "ipv6", "udp")
        );
        assert_eq!(
            (a.method, a.in_syscall, a.socket_family),
            ("sendmsg", false, None)
        );

        // v4-mapped: reported as the IPv4 it carries, the socket's family noted.
        c.daddr = std::net::Ipv4Addr::new(10, 1, 2, 3)
            .to_ipv6_mapped()
            .octets();
        let a = connect_action(&c);
        assert_eq!(
            (a.destination.ip.as_str(), a.family, a.socket_family),
            ("10.1.2.3", "ipv4", Some("ipv6"))
        );
    }
}
