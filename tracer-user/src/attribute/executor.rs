//! The parts of an event around its action: the executor (credentials,
//! login, cgroup, workload and identity, executed file) and its lineage.
use std::{sync::Arc, time::Instant};

use tracer_common::TaskInfo;

use super::{Attributed, Attributor};
use crate::{
    decode::c_str,
    escape::escape,
    event::{
        Action, Ancestor, Authority, Cgroup, Credentials, Event, EventId, Executor, FileId,
        HIERARCHY_V2, Kind, Login, Namespaces, UnixNanos, User, authority::RUNNING_KERNEL_CAPS,
        naming_path,
    },
    filehash::{FileVersion, HashStatus, HostPaths, Job},
    identity::resolve::{Resolved, UnixFacts},
    proc::table::Process,
};

/// What loginuid and sessionid hold when unset.
const UNSET_ID: u32 = u32::MAX;

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

impl Attributor {
    /// The executed file with its hash as known now (queued for hashing when
    /// new), and whether that hash is still being computed.
    fn file_id(&mut self, pid: u32, p: &Process) -> (Option<FileId>, bool) {
        let Some(v) = p.file.as_deref().copied() else {
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
                path: host_path_fact(&mut self.host_paths, &p.binary, p.file.as_deref()),
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
            credentials: Credentials {
                env: p.credential_env.clone(),
                service_account_token: workload.pod.as_ref().and_then(|p| p.service_account_token),
            },
            cwd: p.cwd.clone(),
            cwd_source: p.cwd.as_ref().and(p.cwd_marks.source),
            cwd_truncated: p.cwd_marks.truncated,
            cwd_outside_root: p.cwd_marks.outside_root,
            comm: escape(c_str(&task.comm)),
            start_time: UnixNanos(self.unix_ns(task.start_boottime_ns)),
            user,
            authority: Authority::from_task(task, *RUNNING_KERNEL_CAPS),
            login,
            requestor: p.requestor.clone(),
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
            a.brief = self.ctx.lineage_ids;
            let Some((cgroup_id, v1_id, uid, gid, file)) = self.table.get(a.pid).map(|p| {
                (
                    p.cgroup_id,
                    p.cgroup_v1_id,
                    p.uid,
                    p.gid,
                    p.file.as_deref().copied(),
                )
            }) else {
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

    pub(super) fn event(
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
        let host = &self.host;
        v1.resolver.path_verified(id, || {
            host.cgroups(pid?)?.v1_path(controller).map(str::to_owned)
        })
    }

    /// See [`CgroupResolver::path_verified`]: the process's own /proc claim is
    /// read only on a cache miss.
    fn cgroup_path(&mut self, id: u64, pid: u32) -> Option<Arc<str>> {
        let host = &self.host;
        self.cgroups
            .path_verified(id, || host.cgroups(pid).and_then(|c| c.v2))
    }
}
