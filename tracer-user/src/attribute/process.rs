//! Table entries: the one constructor of a [`Process`] (where its exec_id is
//! derived), the [`Image`] descriptions it is built from (a fork or exec
//! record, or what /proc shows), and the table's upkeep on each record.
use std::{sync::Arc, time::Instant};

use tracer_common::{
    FLAG_ARGV_TRUNCATED, FLAG_ENV_TRUNCATED, FLAG_ENV_UNREADABLE, FLAG_PATH_TRUNCATED, TaskInfo,
};

use super::{Attributed, Attributor};
use crate::{
    decode::{Exec, c_str},
    errno,
    escape::{escape, split_argv},
    event::{Action, CredentialEnv, ExecAction, ImageSource, Kind, LoaderEnv, Outcome, Requestor},
    exec_id::{ImageLayout, exec_id, ns_to_ticks},
    filehash::FileVersion,
    proc::{
        cwd::{self, CwdMarks},
        scan::ProcSnapshot,
        table::Process,
    },
};

/// One process image, however it was learned: everything a table entry
/// holds except what the table itself adds (its exec_id, exit, lineage cache).
pub(super) struct Image {
    pub pid: u32,
    pub ppid: u32,
    /// Clock ticks since boot, as /proc shows them.
    pub start_ticks: u64,
    pub layout: ImageLayout,
    /// The kernel's exec counter; None when only /proc described the image.
    pub exec_seq: Option<u64>,
    pub source: ImageSource,
    pub binary: Arc<str>,
    pub argv: Arc<[String]>,
    pub argv_truncated: bool,
    pub cwd: Option<Arc<str>>,
    pub cwd_ino: u64,
    pub cwd_marks: CwdMarks,
    pub file: Option<Arc<FileVersion>>,
    pub loader_env: Option<Arc<LoaderEnv>>,
    pub credential_env: Option<Arc<CredentialEnv>>,
    /// Set on the built [`Process`] (it needs the exec_id), except for a
    /// fork child, which carries its parent's.
    pub requestor: Option<Arc<Requestor>>,
    /// CPU runtime at the exec and when the image started (see [`Process`]).
    pub cpu_base_ns: u64,
    pub image_start_ns: u64,
    /// (v2 id, v1 id); 0 unknown.
    pub cgroups: (u64, u64),
    pub uid: u32,
    pub gid: u32,
}

impl Image {
    /// The image a record's task runs, with this binary and argv; nothing
    /// else about it is known yet.
    fn of_task(
        task: &TaskInfo,
        ticks_per_second: u64,
        binary: Arc<str>,
        argv: Arc<[String]>,
    ) -> Image {
        Image {
            pid: task.tgid,
            ppid: task.ptgid,
            start_ticks: ns_to_ticks(task.start_boottime_ns, ticks_per_second),
            layout: ImageLayout {
                arg_start: task.arg_start,
                start_code: task.start_code,
                start_brk: task.start_brk,
                at_random: [0; 16],
            },
            exec_seq: Some(task.exec_seq),
            source: ImageSource::Comm,
            binary,
            argv,
            argv_truncated: false,
            cwd: None,
            cwd_ino: 0,
            cwd_marks: CwdMarks::default(),
            file: None,
            loader_env: None,
            credential_env: None,
            requestor: None,
            cpu_base_ns: crate::proc::table::NO_EXEC_SEEN,
            image_start_ns: task.start_boottime_ns,
            cgroups: (task.cgroup_id, task.cgroup_v1_id),
            uid: task.uid,
            gid: task.gid,
        }
    }

    /// Known only by the kernel's 16-byte name: `[comm]`, no argv.
    fn comm_only(task: &TaskInfo, ticks_per_second: u64) -> Image {
        let comm = escape(c_str(&task.comm));
        let binary = format!("[{comm}]").into();
        Image::of_task(task, ticks_per_second, binary, Arc::from(Vec::new()))
    }

    /// A forked child runs its parent's image (same memory, so the same
    /// `AT_RANDOM` bytes) until it execs.
    fn inherited(task: &TaskInfo, ticks_per_second: u64, parent: &Process) -> Image {
        let base = Image::of_task(
            task,
            ticks_per_second,
            parent.binary.clone(),
            parent.argv.clone(),
        );
        Image {
            layout: ImageLayout {
                at_random: parent.layout.at_random,
                ..base.layout
            },
            source: parent.image_source,
            argv_truncated: parent.argv_truncated,
            cwd: parent.cwd.clone(),
            cwd_ino: parent.cwd_ino,
            cwd_marks: parent.cwd_marks,
            file: parent.file.clone(),
            loader_env: parent.loader_env.clone(),
            credential_env: parent.credential_env.clone(),
            requestor: parent.requestor.clone(),
            ..base
        }
    }

    /// What /proc shows, its cgroup paths already turned into ids and its
    /// environment's credential variables into names.
    fn seen(
        s: &ProcSnapshot,
        cgroups: (u64, u64),
        credential_env: Option<Arc<CredentialEnv>>,
    ) -> Image {
        let (cwd, cwd_marks) = cwd::from_proc(s.cwd.as_deref().map(|c| escape(c).into()));
        let binary: Arc<str> = match (&s.exe, s.argv.first()) {
            (Some(exe), _) => escape(exe).into(),
            (None, Some(a0)) if !a0.is_empty() => escape(a0).into(),
            _ => format!("[{}]", s.comm).into(),
        };
        Image {
            pid: s.pid,
            ppid: s.ppid,
            start_ticks: s.start_ticks,
            layout: ImageLayout {
                arg_start: s.arg_start,
                start_code: s.start_code,
                start_brk: s.start_brk,
                at_random: s.at_random,
            },
            exec_seq: None,
            source: ImageSource::Proc,
            binary,
            argv: s.argv.iter().map(|a| escape(a)).collect(),
            argv_truncated: s.argv_truncated,
            cwd,
            cwd_ino: s.cwd_ino,
            cwd_marks,
            file: s.file.map(Arc::new),
            loader_env: s.loader_env.clone(),
            credential_env,
            requestor: None,
            cpu_base_ns: crate::proc::table::NO_EXEC_SEEN,
            image_start_ns: 0,
            cgroups,
            uid: s.uid,
            gid: s.gid,
        }
    }

    /// The table entry for this image: the one place an exec_id is derived.
    pub(super) fn into_process(self, boot_id: &str) -> Process {
        let Image {
            pid,
            ppid,
            start_ticks,
            layout,
            exec_seq,
            source,
            binary,
            argv,
            argv_truncated,
            cwd,
            cwd_ino,
            cwd_marks,
            file,
            loader_env,
            credential_env,
            requestor,
            cpu_base_ns,
            image_start_ns,
            cgroups: (cgroup_id, cgroup_v1_id),
            uid,
            gid,
        } = self;
        Process {
            exec_id: exec_id(boot_id, pid, start_ticks, layout).into(),
            layout,
            exec_seq: exec_seq.unwrap_or(crate::proc::table::NO_EXEC_SEQ),
            image_source: source,
            file,
            loader_env,
            credential_env,
            requestor,
            cpu_base_ns,
            image_start_ns,
            pid,
            ppid,
            start_ticks,
            binary,
            argv,
            argv_truncated,
            cwd,
            cwd_ino,
            cwd_marks,
            cgroup_id,
            cgroup_v1_id,
            uid,
            gid,
            exited: None,
            lineage_entry: Default::default(),
            serial: 0,
            shared: false,
        }
    }
}

impl Attributor {
    fn build(&self, image: Image) -> Process {
        image.into_process(&self.ctx.host.boot_id)
    }

    /// The entry for what /proc showed of a process.
    pub(super) fn process_seen(&self, s: &ProcSnapshot) -> Process {
        let v2 = s
            .cgroups
            .v2
            .as_deref()
            .and_then(|rel| self.cgroups.id_of(rel))
            .unwrap_or(0);
        let v1 = self
            .cgroups_v1
            .as_ref()
            .and_then(|v1| {
                let rel = s.cgroups.v1_path(v1.controller.name)?;
                v1.resolver.id_of(rel)
            })
            .unwrap_or(0);
        let credentials =
            crate::proc::env::credential_env(&s.environ, s.environ_cut, &self.credential_patterns);
        let mut p = self.build(Image::seen(s, (v2, v1), credentials));
        p.requestor = self.requestor_of(&p, &s.environ);
        p
    }

    /// Whether table entry `p` is the image `task` runs: same process (pid and
    /// start), same layout, and the kernel's exec counter agrees (unknown for an
    /// image only /proc described: the first record tells it).
    fn same_image(&self, p: &Process, task: &TaskInfo) -> bool {
        // At a process's exit on kernels before 6.16 its memory is already
        // gone (sched_process_exit fires after exit_mm), so the record has no
        // layout: the start time and the kernel's exec counter still tell the
        // image (a kernel thread has no layout either way).
        let layout_read = task.arg_start != 0 || task.start_code != 0 || task.start_brk != 0;
        p.start_ticks == self.ticks(task)
            && (!layout_read
                || (p.layout.arg_start == task.arg_start
                    && p.layout.start_code == task.start_code
                    && p.layout.start_brk == task.start_brk))
            && (p.exec_seq == crate::proc::table::NO_EXEC_SEQ || p.exec_seq == task.exec_seq)
    }

    /// The table's entry for the process a record came from; /proc when unknown,
    /// and as a last resort what the record itself says.
    pub(super) fn process_for(&mut self, task: &TaskInfo) -> Process {
        if let Some(p) = self.table.get(task.tgid)
            && self.same_image(p, task)
        {
            let mut p = p.clone();
            if p.exec_seq == crate::proc::table::NO_EXEC_SEQ {
                p.exec_seq = task.exec_seq;
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
        let p = match self.host.snapshot(task.tgid).map(|s| self.process_seen(&s)) {
            Ok(mut p) if self.same_image(&p, task) => {
                p.exec_seq = task.exec_seq;
                p
            }
            _ => self.build(Image::comm_only(task, self.ctx.ticks_per_second)),
        };
        self.table.replace(p.clone());
        p
    }

    pub(super) fn fork(&mut self, task: &TaskInfo) -> Process {
        // The record's cgroup is the forking parent's current one: it may have moved.
        self.table.observe(
            task.ptgid,
            (task.cgroup_id, task.cgroup_v1_id),
            task.uid,
            task.gid,
        );
        let tps = self.ctx.ticks_per_second;
        let image = match self.table.get(task.ptgid) {
            Some(parent) => Image::inherited(task, tps, parent),
            None => Image::comm_only(task, tps),
        };
        let p = self.build(image);
        self.table.upsert(p.clone());
        p
    }

    pub(super) fn exec_success(&mut self, e: Exec) -> Attributed {
        let task = &e.rec.task;
        let argv: Arc<[String]> = split_argv(&e.argv).into();
        // The probe's walk gives the path. Where it could not run, the kernel
        // still names the directory, and its path comes from the cache (or /proc
        // once per directory). If the process is gone and no sibling's was read,
        // keep the previous image's if it was in the same directory (exec does
        // not change it, but a child can between its fork and its exec).
        let key = (e.rec.cwd_dentry, e.rec.cwd_mnt, e.rec.cwd_ino);
        let (cwd, cwd_marks) = match &e.cwd {
            Some(walked) => {
                let (path, marks) = cwd::from_walk(walked);
                (Some(path), marks)
            }
            None => {
                let previous = self
                    .table
                    .get(task.tgid)
                    .filter(|p| key.2 != 0 && p.cwd_ino == key.2 && p.cwd.is_some())
                    .map(|p| (p.cwd.clone(), p.cwd_marks));
                match self
                    .cwds
                    .lookup(key, Instant::now(), || self.host.cwd(task.tgid))
                {
                    Some(path) => cwd::from_proc(Some(path)),
                    None => previous.unwrap_or_default(),
                }
            }
        };
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
        let base = Image::of_task(
            task,
            self.ctx.ticks_per_second,
            binary.clone(),
            argv.clone(),
        );
        let image = Image {
            layout: ImageLayout {
                at_random: e.rec.at_random,
                ..base.layout
            },
            source: ImageSource::Exec,
            argv_truncated: e.rec.flags & FLAG_ARGV_TRUNCATED != 0,
            cwd_ino: if cwd.is_some() { key.2 } else { 0 },
            cwd,
            cwd_marks,
            file: (e.rec.file_ino != 0).then(|| {
                Arc::new(FileVersion::from_kernel(
                    e.rec.file_dev,
                    e.rec.file_ino,
                    e.rec.file_size,
                    e.rec.file_ctime_sec,
                    e.rec.file_ctime_nsec,
                ))
            }),
            loader_env: crate::proc::env::loader_env(&e.env),
            credential_env: crate::proc::env::credential_env(
                &e.env,
                e.rec.flags & (FLAG_ENV_TRUNCATED | FLAG_ENV_UNREADABLE) != 0,
                &self.credential_patterns,
            ),
            cpu_base_ns: e
                .rec
                .cpu
                .runtime_ns
                .min(crate::proc::table::NO_EXEC_SEEN - 1),
            image_start_ns: e.rec.header.ts_boot_ns,
            ..base
        };
        let mut p = self.build(image);
        p.requestor = self.requestor_of(&p, &e.env);
        // A new image: whatever the table held for the pid is gone.
        self.table.replace(p.clone());
        let action = Action::Exec(ExecAction {
            binary,
            argv,
            argv_truncated: e.rec.flags & (FLAG_ARGV_TRUNCATED | FLAG_PATH_TRUNCATED) != 0,
            outcome: Outcome::Success,
            error: None,
            path_search: Vec::new(),
        });
        self.event(Kind::Exec, e.rec.header.ts_boot_ns, task, &p, action)
    }

    /// The old image is still the executor; the action names what it tried to run.
    pub(super) fn exec_failure(&mut self, e: Exec) -> Attributed {
        let task = &e.rec.task;
        let p = self.process_for(task);
        let action = Action::Exec(ExecAction {
            binary: escape(&e.path).into(),
            argv: split_argv(&e.argv).into(),
            argv_truncated: e.rec.flags & FLAG_ARGV_TRUNCATED != 0,
            outcome: Outcome::Failure,
            error: Some(errno::name(e.rec.errno)),
            path_search: Vec::new(),
        });
        self.event(Kind::Exec, e.rec.header.ts_boot_ns, task, &p, action)
    }
}
