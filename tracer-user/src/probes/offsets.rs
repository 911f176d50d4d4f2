//! The kernel struct offsets the probes need, resolved from the running kernel's
//! BTF. rustc emits no CO-RE relocations for BPF, so a layout compiled in would
//! silently read garbage on another kernel; this table is filled at every start.
use tracer_common::Offsets;

use crate::btf::{Btf, BtfError};

/// One row per offset: where it goes, and which member of which type it is.
/// Alternatives are tried in order (member names that moved between kernels).
type Setter = fn(&mut Offsets, u32);

const MEMBERS: &[(&str, &[&str], Setter)] = &[
    ("task_struct", &["pid"], |o, v| o.task_pid = v),
    ("task_struct", &["tgid"], |o, v| o.task_tgid = v),
    ("task_struct", &["real_parent"], |o, v| {
        o.task_real_parent = v
    }),
    ("task_struct", &["group_leader"], |o, v| {
        o.task_group_leader = v
    }),
    ("task_struct", &["real_cred"], |o, v| o.task_real_cred = v),
    ("task_struct", &["loginuid"], |o, v| o.task_loginuid = v),
    ("task_struct", &["sessionid"], |o, v| o.task_sessionid = v),
    ("task_struct", &["nsproxy"], |o, v| o.task_nsproxy = v),
    ("task_struct", &["thread_pid"], |o, v| o.task_thread_pid = v),
    ("task_struct", &["mm"], |o, v| o.task_mm = v),
    (
        "task_struct",
        &["start_boottime", "real_start_time"],
        |o, v| o.task_start_boottime = v,
    ),
    ("task_struct", &["comm"], |o, v| o.task_comm = v),
    ("task_struct", &["signal"], |o, v| o.task_signal = v),
    ("task_struct", &["files"], |o, v| o.task_files = v),
    ("task_struct", &["exit_code"], |o, v| o.task_exit_code = v),
    ("cred", &["uid"], |o, v| o.cred_uid = v),
    ("cred", &["gid"], |o, v| o.cred_gid = v),
    ("cred", &["euid"], |o, v| o.cred_euid = v),
    ("cred", &["egid"], |o, v| o.cred_egid = v),
    ("nsproxy", &["mnt_ns"], |o, v| o.nsproxy_mnt_ns = v),
    ("nsproxy", &["net_ns"], |o, v| o.nsproxy_net_ns = v),
    ("mnt_namespace", &["ns.inum"], |o, v| {
        o.mnt_namespace_inum = v
    }),
    ("net", &["ns.inum"], |o, v| o.net_inum = v),
    ("pid_namespace", &["ns.inum"], |o, v| {
        o.pid_namespace_inum = v
    }),
    ("pid", &["level"], |o, v| o.pid_level = v),
    ("pid", &["numbers"], |o, v| o.pid_numbers = v),
    ("upid", &["ns"], |o, v| o.upid_ns = v),
    ("mm_struct", &["arg_start"], |o, v| o.mm_arg_start = v),
    ("mm_struct", &["start_code"], |o, v| o.mm_start_code = v),
    ("mm_struct", &["start_brk"], |o, v| o.mm_start_brk = v),
    ("mm_struct", &["arg_end"], |o, v| o.mm_arg_end = v),
    ("signal_struct", &["tty"], |o, v| o.signal_tty = v),
    ("tty_struct", &["name"], |o, v| o.tty_name = v),
    ("signal_struct", &["live.counter", "live"], |o, v| {
        o.signal_live = v
    }),
    ("files_struct", &["fdt"], |o, v| o.files_fdt = v),
    ("fdtable", &["max_fds"], |o, v| o.fdtable_max_fds = v),
    ("fdtable", &["fd"], |o, v| o.fdtable_fd = v),
    ("file", &["private_data"], |o, v| o.file_private_data = v),
    ("socket", &["sk"], |o, v| o.socket_sk = v),
    ("sock", &["__sk_common.skc_family"], |o, v| {
        o.sock_family = v
    }),
    ("sock", &["__sk_common.skc_rcv_saddr"], |o, v| {
        o.sock_rcv_saddr = v
    }),
    ("sock", &["__sk_common.skc_num"], |o, v| o.sock_num = v),
    ("sock", &["__sk_common.skc_v6_rcv_saddr"], |o, v| {
        o.sock_v6_rcv_saddr = v
    }),
    ("sock", &["__sk_common.skc_cookie"], |o, v| {
        o.sock_cookie = v
    }),
    ("sock", &["sk_err"], |o, v| o.sock_err = v),
    ("task_struct", &["self_exec_id"], |o, v| {
        o.task_self_exec_id = v
    }),
    ("mm_struct", &["env_start"], |o, v| o.mm_env_start = v),
    ("mm_struct", &["env_end"], |o, v| o.mm_env_end = v),
    ("mm_struct", &["saved_auxv"], |o, v| o.mm_saved_auxv = v),
    ("file", &["f_inode"], |o, v| o.file_inode = v),
    ("inode", &["i_sb"], |o, v| o.inode_sb = v),
    ("super_block", &["s_dev"], |o, v| o.super_block_dev = v),
    ("linux_binprm", &["filename"], |o, v| o.bprm_filename = v),
    ("task_struct", &["fs"], |o, v| o.task_fs = v),
    ("fs_struct", &["pwd.dentry"], |o, v| o.fs_pwd_dentry = v),
    ("fs_struct", &["pwd.mnt"], |o, v| o.fs_pwd_mnt = v),
    ("dentry", &["d_inode"], |o, v| o.dentry_inode = v),
    ("inode", &["i_ino"], |o, v| o.inode_ino = v),
    ("inode", &["i_size"], |o, v| o.inode_size = v),
    (
        "inode",
        &["i_ctime_sec", "__i_ctime.tv_sec", "i_ctime.tv_sec"],
        |o, v| o.inode_ctime_sec = v,
    ),
    (
        "inode",
        &["i_ctime_nsec", "__i_ctime.tv_nsec", "i_ctime.tv_nsec"],
        |o, v| o.inode_ctime_nsec = v,
    ),
    ("linux_binprm", &["file"], |o, v| o.bprm_file = v),
    ("file", &["f_path.dentry"], |o, v| o.file_path_dentry = v),
    ("file", &["f_path.mnt"], |o, v| o.file_path_mnt = v),
    ("dentry", &["d_parent"], |o, v| o.dentry_parent = v),
    ("dentry", &["d_name.name"], |o, v| o.dentry_name = v),
    ("dentry", &["d_hash.pprev"], |o, v| o.dentry_hash_pprev = v),
    ("vfsmount", &["mnt_root"], |o, v| o.vfsmount_mnt_root = v),
    ("mount", &["mnt"], |o, v| o.mount_mnt = v),
    ("mount", &["mnt_parent"], |o, v| o.mount_parent = v),
    ("mount", &["mnt_mountpoint"], |o, v| o.mount_mountpoint = v),
    // The task's cgroup in a v1 hierarchy: task->cgroups->subsys[ID]->cgroup->kn->id.
    // All stable since 5.5 (kernfs_node.id a plain u64, the inode number).
    ("task_struct", &["cgroups"], |o, v| o.task_cgroups = v),
    ("css_set", &["subsys"], |o, v| o.css_set_subsys = v),
    ("cgroup_subsys_state", &["cgroup"], |o, v| o.css_cgroup = v),
    ("cgroup", &["kn"], |o, v| o.cgroup_kn = v),
    ("kernfs_node", &["id"], |o, v| o.kernfs_node_id = v),
    // CPU time and peak memory of a process, for its exit event's usage.
    ("task_struct", &["utime"], |o, v| o.task_utime = v),
    ("task_struct", &["stime"], |o, v| o.task_stime = v),
    ("task_struct", &["se.sum_exec_runtime"], |o, v| {
        o.task_sum_exec_runtime = v
    }),
    ("signal_struct", &["utime"], |o, v| o.signal_utime = v),
    ("signal_struct", &["stime"], |o, v| o.signal_stime = v),
    ("signal_struct", &["sum_sched_runtime"], |o, v| {
        o.signal_sum_sched_runtime = v
    }),
    ("signal_struct", &["maxrss"], |o, v| o.signal_maxrss = v),
    ("css_set", &["dfl_cgrp"], |o, v| o.css_set_dfl_cgrp = v),
    ("signal_struct", &["thread_head"], |o, v| {
        o.signal_thread_head = v
    }),
    ("task_struct", &["thread_node"], |o, v| {
        o.task_thread_node = v
    }),
    ("mm_struct", &["hiwater_rss"], |o, v| o.mm_hiwater_rss = v),
];

/// The BTF enum whose values index `css_set.subsys`.
const SUBSYS_ENUM: &str = "cgroup_subsys_id";
const SUBSYS_COUNT: &str = "CGROUP_SUBSYS_COUNT";
/// `css_set.subsys` holds pointers.
const POINTER_SIZE: u32 = 8;

#[derive(Debug, thiserror::Error)]
#[error("kernel BTF lacks {ty}.{member} (needed by the probes)")]
pub(crate) struct OffsetError {
    pub ty: String,
    pub member: String,
    #[source]
    pub source: BtfError,
}

/// Resolve every offset the probes read. Fails naming the first member the
/// running kernel does not have, rather than loading probes that read garbage.
pub(crate) fn resolve(btf: &Btf) -> Result<Offsets, OffsetError> {
    let mut offsets = Offsets::default();
    for (ty, candidates, set) in MEMBERS {
        let mut last_err = None;
        let mut found = false;
        for member in candidates.iter() {
            match btf.member_offset(ty, member) {
                Ok(v) => {
                    set(&mut offsets, v);
                    found = true;
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        if !found && let Some(source) = last_err {
            return Err(OffsetError {
                ty: (*ty).to_owned(),
                member: candidates.join("|"),
                source,
            });
        }
    }
    offsets.upid_size = btf.type_size("upid").map_err(|source| OffsetError {
        ty: "upid".into(),
        member: "<size>".into(),
        source,
    })?;
    // Only x86 marks 32-bit syscalls there; elsewhere the compat exec probes idle.
    offsets.task_ti_status = btf
        .member_offset("task_struct", "thread_info.status")
        .unwrap_or(0);
    authority(btf, &mut offsets);
    rss_counters(btf, &mut offsets);
    cwd_walk(btf, &mut offsets);
    offsets.valid = 1;
    Ok(offsets)
}

/// The working directory walk also needs the process's root, to stop there
/// (the dentry and mount members it shares with the descriptor-exec walk are
/// required above). Without it the probes leave the path to user space, which
/// reads /proc: a degraded cwd, not probes that fail to load.
pub(crate) fn cwd_walk(btf: &Btf, o: &mut Offsets) {
    match (
        btf.member_offset("fs_struct", "root.dentry"),
        btf.member_offset("fs_struct", "root.mnt"),
    ) {
        (Ok(dentry), Ok(mnt)) => {
            o.fs_root_dentry = dentry;
            o.fs_root_mnt = mnt;
            o.cwd_walk = 1;
        }
        (Err(e), _) | (_, Err(e)) => {
            o.cwd_walk = 0;
            tracing::warn!(
                error = %crate::error_chain(&e),
                "the kernel lacks fs_struct.root: working directories are read from /proc (short-lived processes may get none)"
            );
        }
    }
}

/// One part of a task's authority: its `READ_*` bit and the members it
/// needs. A part some member of which the running kernel lacks (e.g.
/// `task_struct.seccomp.mode` without CONFIG_SECCOMP) stays unread, and its
/// fields say "unknown", rather than the probes failing to load.
type AuthorityPart = (u32, &'static [(&'static str, &'static str, Setter)]);

const AUTHORITY: &[AuthorityPart] = &[
    (
        tracer_common::READ_CAPS,
        &[
            ("cred", "cap_inheritable", |o, v| o.cred_cap_inheritable = v),
            ("cred", "cap_permitted", |o, v| o.cred_cap_permitted = v),
            ("cred", "cap_effective", |o, v| o.cred_cap_effective = v),
            ("cred", "cap_bset", |o, v| o.cred_cap_bset = v),
            ("cred", "cap_ambient", |o, v| o.cred_cap_ambient = v),
        ],
    ),
    (
        tracer_common::READ_NNP,
        &[("task_struct", "atomic_flags", |o, v| {
            o.task_atomic_flags = v
        })],
    ),
    (
        tracer_common::READ_SECCOMP,
        &[("task_struct", "seccomp.mode", |o, v| {
            o.task_seccomp_mode = v
        })],
    ),
    (
        tracer_common::READ_USERNS,
        &[
            ("cred", "user_ns", |o, v| o.cred_user_ns = v),
            ("user_namespace", "ns.inum", |o, v| o.user_ns_inum = v),
            ("user_namespace", "level", |o, v| o.user_ns_level = v),
            ("user_namespace", "owner", |o, v| o.user_ns_owner = v),
        ],
    ),
    (
        tracer_common::READ_USERNS_UID,
        &[
            ("user_namespace", "uid_map.nr_extents", |o, v| {
                o.user_ns_uid_nr = v
            }),
            ("user_namespace", "uid_map.extent", |o, v| {
                o.user_ns_uid_extent = v
            }),
        ],
    ),
];

/// Fill the authority offsets the running kernel has; see [`AUTHORITY`].
pub(crate) fn authority(btf: &Btf, o: &mut Offsets) {
    use tracer_common::{READ_CAPS, READ_CAPS_ADJACENT, READ_USERNS, READ_USERNS_UID};
    let mut read = 0;
    for (bit, members) in AUTHORITY {
        let mut part = *o;
        let ok = members.iter().all(|(ty, member, set)| {
            btf.member_offset(ty, member)
                .map(|v| set(&mut part, v))
                .is_ok()
        });
        if ok {
            *o = part;
            read |= bit;
        } else {
            let names: Vec<String> = members.iter().map(|(t, m, _)| format!("{t}.{m}")).collect();
            tracing::warn!(
                members = names.join(", "),
                "the kernel lacks a member the probes read part of the executor's authority from: that part is reported unknown (null)"
            );
        }
    }
    // The uid map needs the namespace, and ranges laid out as the probes read them.
    let extent = |m: &str| btf.member_offset("uid_gid_extent", m).ok();
    let ranges_known = btf.type_size("uid_gid_extent").ok() == Some(12)
        && extent("first") == Some(0)
        && extent("lower_first") == Some(4)
        && extent("count") == Some(8);
    if read & READ_USERNS == 0 || !ranges_known {
        read &= !READ_USERNS_UID;
    }
    // `struct cred` has kept the five sets together, in this order, since 4.3.
    let c = o.cred_cap_inheritable;
    if read & READ_CAPS != 0
        && [
            o.cred_cap_permitted,
            o.cred_cap_effective,
            o.cred_cap_bset,
            o.cred_cap_ambient,
        ]
        .iter()
        .enumerate()
        .all(|(i, &v)| Some(v) == c.checked_add(8 * (i as u32 + 1)))
    {
        read |= READ_CAPS_ADJACENT;
    }
    o.authority = read;
}

/// Where the resident-page counters of an address space are: `struct
/// mm_rss_stat { atomic_long_t count[NR_MM_COUNTERS]; }` before 6.2,
/// `struct percpu_counter rss_stat[NR_MM_COUNTERS]` since (its `count` the
/// approximate total). Neither found: stride 0, and usage sweeps report the
/// high-water marks alone.
pub(crate) fn rss_counters(btf: &Btf, o: &mut Offsets) {
    if let Ok(count) = btf.member_offset("mm_struct", "rss_stat.count") {
        o.mm_rss_count = count;
        o.mm_rss_stride = 8;
    } else if let (Ok(base), Ok(count), Ok(size)) = (
        btf.member_offset("mm_struct", "rss_stat"),
        btf.member_offset("percpu_counter", "count"),
        btf.type_size("percpu_counter"),
    ) {
        o.mm_rss_count = base + count;
        o.mm_rss_stride = size;
    } else {
        tracing::warn!(
            "the kernel's resident-page counters have an unknown layout: usage sweeps report peak RSS from the high-water marks alone"
        );
    }
}

/// Have the probes read each task's cgroup in one v1 controller's hierarchy:
/// `subsys_id` names the controller's `enum cgroup_subsys_id` value (e.g.
/// `memory_cgrp_id`; the numbering depends on the kernel's configuration), and
/// `hierarchy_id` is its v1 hierarchy (for the `cgroup:*` tracepoints; 0 none).
/// Without this call `offsets.cgroup_v1` stays 0 and the probes skip the read.
pub(crate) fn enable_cgroup_v1(
    btf: &Btf,
    offsets: &mut Offsets,
    subsys_id: &str,
    hierarchy_id: u32,
) -> Result<(), OffsetError> {
    let err = |member: &str| {
        let member = member.to_owned();
        move |source| OffsetError {
            ty: format!("enum {SUBSYS_ENUM}"),
            member,
            source,
        }
    };
    let index = btf
        .enum_value(SUBSYS_ENUM, subsys_id)
        .map_err(err(subsys_id))?;
    let count = btf
        .enum_value(SUBSYS_ENUM, SUBSYS_COUNT)
        .map_err(err(SUBSYS_COUNT))?;
    let slot = u32::try_from(index)
        .ok()
        .filter(|_| index < count)
        .and_then(|i| i.checked_mul(POINTER_SIZE))
        .and_then(|b| b.checked_add(offsets.css_set_subsys))
        .ok_or_else(|| {
            err(subsys_id)(BtfError::Malformed(format!(
                "{subsys_id} = {index} is outside css_set.subsys[{SUBSYS_COUNT} = {count}]"
            )))
        })?;
    offsets.cgroup_v1_css = slot;
    offsets.cgroup_v1_hierarchy = hierarchy_id;
    offsets.cgroup_v1 = 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the running kernel: every member resolves, and the ones whose place is
    /// fixed by ABI or by long-standing layout have their known values.
    #[test]
    fn resolves_on_running_kernel() {
        let path = std::path::Path::new("/sys/kernel/btf/vmlinux");
        assert!(
            path.exists(),
            "{} missing: the tracer (and this test) needs a kernel built with CONFIG_DEBUG_INFO_BTF=y",
            path.display()
        );
        let btf = Btf::from_file(path).expect("parse vmlinux BTF");
        let o = resolve(&btf).expect("resolve offsets");
        assert_eq!(o.valid, 1);
        // `struct cred` starts with `atomic_long_t usage` (8 bytes) then uid, gid, suid,
        // sgid, euid, egid: stable since 2.6.29.
        assert_eq!(o.cred_uid, 8);
        assert_eq!(o.cred_gid, 12);
        assert_eq!(o.cred_euid, 24);
        assert_eq!(o.cred_egid, 28);
        // `struct upid { int nr; struct pid_namespace *ns; }`
        assert_eq!(o.upid_ns, 8);
        assert_eq!(o.upid_size, 16);
        assert_eq!(o.task_tgid, o.task_pid + 4);
        assert!(o.mm_arg_end == o.mm_arg_start + 8);
        // `struct css_set` starts with `subsys[]`; css->cgroup is its first member.
        assert_eq!(o.css_set_subsys, 0);
        assert_eq!(o.css_cgroup, 0);
        assert_eq!(o.cgroup_v1, 0, "off until a controller is chosen");
        // `struct path { vfsmount *mnt; dentry *dentry; }`, root before pwd.
        assert_eq!(o.cwd_walk, 1);
        assert_eq!(o.fs_root_dentry, o.fs_root_mnt + 8);
        assert_eq!(o.fs_pwd_mnt, o.fs_root_mnt + 16);

        let mut v1 = o;
        let memory = btf
            .enum_value("cgroup_subsys_id", "memory_cgrp_id")
            .unwrap();
        enable_cgroup_v1(&btf, &mut v1, "memory_cgrp_id", 4).unwrap();
        assert_eq!(v1.cgroup_v1, 1);
        assert_eq!(
            i64::from(v1.cgroup_v1_css),
            i64::from(o.css_set_subsys) + 8 * memory
        );
        assert_eq!(v1.cgroup_v1_hierarchy, 4);
        // Every part of the authority is read here, the five sets at once.
        use tracer_common::*;
        assert_eq!(
            o.authority,
            READ_CAPS
                | READ_CAPS_ADJACENT
                | READ_NNP
                | READ_SECCOMP
                | READ_USERNS
                | READ_USERNS_UID
        );
        assert_eq!(o.cred_cap_permitted, o.cred_cap_inheritable + 8);
        assert!(o.user_ns_uid_extent > 0 || o.user_ns_uid_nr > 0);
        assert!(enable_cgroup_v1(&btf, &mut v1.clone(), "pids_cgrp_id", 8).is_ok());
        // Not an index into subsys[], and not a value at all.
        let err = enable_cgroup_v1(&btf, &mut o.clone(), "CGROUP_SUBSYS_COUNT", 1).unwrap_err();
        let text = crate::error_chain(&err);
        assert!(text.contains("outside"), "{text}");
        let err = enable_cgroup_v1(&btf, &mut o.clone(), "nosuch_cgrp_id", 1).unwrap_err();
        let text = crate::error_chain(&err);
        assert!(text.contains("nosuch_cgrp_id"), "{text}");
    }
}
