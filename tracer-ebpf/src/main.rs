//! The tracer's kernel side. Every probe here runs on the hooks this project can
//! rely on everywhere (tracepoints, raw tracepoints, cgroup sock_addr hooks):
//!
//! - exec: raw_tp/sched_process_exec (success, new image in place) and
//!   tracepoint syscalls/sys_{enter,exit}_execve[at] (failures, with errno)
//! - lifecycle: raw_tp/sched_process_fork (new processes only) and
//!   raw_tp/sched_process_exit (last thread of a process)
//! - connect: cgroup/connect4|6 (every inet connect, in the caller's context, with
//!   the kernel's own copy of the address) and cgroup/sendmsg4|6 (first
//!   unconnected send to a destination); the result from
//!   syscalls/sys_{enter,exit}_connect (synchronous results, local address)
//!   or raw_tp/inet_sock_set_state (a TCP socket leaving SYN_SENT),
//!   joined by socket cookie in user space
//! - usage: iter/task, run by user space every `--usage-interval` (CPU and
//!   memory of live processes so far; exits report theirs at exit)
//! - DNS: cgroup_skb/ingress|egress copy messages from and to port 53 (answers
//!   a socket receives, queries it sends), so user space can name the
//!   destinations of later connects
//!
//! Kernel struct members are read at offsets user space resolved from the running
//! kernel's BTF (`OFFSETS`); nothing about struct layout is compiled in.
//!
//! Kernel memory is read through [`kread`] (scalars, into types valid for any
//! bit pattern) and [`kread16`]; the remaining `unsafe` is writing records in
//! place (ring buffer reservations, the exec scratch map) through raw pointers,
//! each block with a `SAFETY:` comment.
#![no_std]
#![no_main]

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use aya_ebpf::{
    EbpfContext,
    bindings::{
        BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE, bpf_sock_addr,
    },
    helpers::generated::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_get_smp_processor_id, bpf_get_socket_cookie, bpf_ktime_get_boot_ns,
        bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user,
        bpf_probe_read_user_str, bpf_ringbuf_output, bpf_ringbuf_query, bpf_skb_load_bytes,
    },
    macros::{cgroup_skb, cgroup_sock_addr, map, raw_tracepoint, tracepoint},
    maps::{Array, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
    programs::{RawTracePointContext, SkBuffContext, SockAddrContext, TracePointContext},
};
use aya_log_ebpf::{error, warn};
use tracer_common::{
    ARGV_MAX, CGROUP_MKDIR, CGROUP_PATH_MAX, CGROUP_RENAME, CGROUP_RMDIR, COMM_LEN,
    CONNECT_IN_SYSCALL, CONNECT_OP_CONNECT, CONNECT_OP_SENDMSG, CWD_MAX, CWD_STEPS_MAX,
    CgroupRecord, ConnectRecord, ConnectResultRecord, CpuUsage, DNS_ANSWER, DNS_PAYLOAD_MAX,
    DNS_QUERY, DNS_TRUNCATED, DnsRecord, ENV_MAX, ExecRecord, ExitRecord, FAILED_EXEC_ARG_MAX,
    FAILED_EXEC_ARGS_MAX, FLAG_ARGV_TRUNCATED, FLAG_ARGV_UNREADABLE, FLAG_COMPAT,
    FLAG_CWD_OUTSIDE_ROOT, FLAG_CWD_TRUNCATED, FLAG_CWD_UNLINKED, FLAG_CWD_WALKED,
    FLAG_ENV_TRUNCATED, FLAG_ENV_UNREADABLE, FLAG_EXECVEAT, FLAG_FILE_UNLINKED,
    FLAG_PATH_FROM_FILE, FLAG_PATH_TRUNCATED, ForkRecord, Header, NAME_MAX, Offsets,
    PATH_COMPONENTS_MAX, PATH_MAX, PendingConnect, PendingExec, RECORD_VERSION, RESULT_FROM_STATE,
    RESULT_FROM_SYSCALL, RecordKind, SEND_DESTINATIONS_MAX, SendKey, TTY_LEN, TaskInfo,
    USAGE_THREADS_CUT, USAGE_THREADS_MAX, UsageRecord, counter,
};
use tracer_common::{
    AUTH_CAPS, AUTH_NNP_KNOWN, AUTH_NO_NEW_PRIVS, AUTH_SECCOMP_KNOWN, AUTH_SECCOMP_SHIFT,
    AUTH_USERNS, AUTH_USERNS_MAP_LARGE, AUTH_USERNS_UID, AUTH_USERNS_UNMAPPED, READ_CAPS,
    READ_CAPS_ADJACENT, READ_NNP, READ_SECCOMP, READ_USERNS, READ_USERNS_UID, UID_MAP_INLINE,
};

/// Filled by user space at load time from the running kernel's BTF.
#[unsafe(no_mangle)]
static OFFSETS: Offsets = Offsets {
    valid: 0,
    task_pid: 0,
    task_tgid: 0,
    task_real_parent: 0,
    task_group_leader: 0,
    task_real_cred: 0,
    task_loginuid: 0,
    task_sessionid: 0,
    task_nsproxy: 0,
    task_thread_pid: 0,
    task_mm: 0,
    task_start_boottime: 0,
    task_comm: 0,
    task_signal: 0,
    task_files: 0,
    task_exit_code: 0,
    cred_uid: 0,
    cred_gid: 0,
    cred_euid: 0,
    cred_egid: 0,
    nsproxy_mnt_ns: 0,
    nsproxy_net_ns: 0,
    mnt_namespace_inum: 0,
    net_inum: 0,
    pid_namespace_inum: 0,
    pid_level: 0,
    pid_numbers: 0,
    upid_size: 0,
    upid_ns: 0,
    mm_arg_start: 0,
    mm_start_code: 0,
    mm_start_brk: 0,
    mm_arg_end: 0,
    signal_tty: 0,
    tty_name: 0,
    signal_live: 0,
    files_fdt: 0,
    fdtable_max_fds: 0,
    fdtable_fd: 0,
    file_private_data: 0,
    socket_sk: 0,
    sock_family: 0,
    sock_rcv_saddr: 0,
    sock_num: 0,
    sock_v6_rcv_saddr: 0,
    sock_cookie: 0,
    sock_err: 0,
    task_ti_status: 0,
    task_self_exec_id: 0,
    mm_env_start: 0,
    mm_env_end: 0,
    mm_saved_auxv: 0,
    file_inode: 0,
    inode_sb: 0,
    super_block_dev: 0,
    bprm_filename: 0,
    task_fs: 0,
    fs_pwd_dentry: 0,
    fs_pwd_mnt: 0,
    fs_root_dentry: 0,
    fs_root_mnt: 0,
    cwd_walk: 0,
    dentry_inode: 0,
    inode_ino: 0,
    inode_size: 0,
    inode_ctime_sec: 0,
    inode_ctime_nsec: 0,
    bprm_file: 0,
    file_path_dentry: 0,
    file_path_mnt: 0,
    dentry_parent: 0,
    dentry_name: 0,
    dentry_hash_pprev: 0,
    vfsmount_mnt_root: 0,
    mount_mnt: 0,
    mount_parent: 0,
    mount_mountpoint: 0,
    task_cgroups: 0,
    css_set_subsys: 0,
    css_cgroup: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
    cgroup_v1: 0,
    cgroup_v1_css: 0,
    cgroup_v1_hierarchy: 0,
    task_utime: 0,
    task_stime: 0,
    task_sum_exec_runtime: 0,
    signal_utime: 0,
    signal_stime: 0,
    signal_sum_sched_runtime: 0,
    signal_maxrss: 0,
    css_set_dfl_cgrp: 0,
    signal_thread_head: 0,
    task_thread_node: 0,
    task_flags: 0,
    mm_hiwater_rss: 0,
    mm_rss_count: 0,
    mm_rss_stride: 0,
    authority: 0,
    cred_cap_inheritable: 0,
    cred_cap_permitted: 0,
    cred_cap_effective: 0,
    cred_cap_bset: 0,
    cred_cap_ambient: 0,
    task_atomic_flags: 0,
    task_seccomp_mode: 0,
    cred_user_ns: 0,
    user_ns_inum: 0,
    user_ns_level: 0,
    user_ns_owner: 0,
    user_ns_uid_nr: 0,
    user_ns_uid_extent: 0,
};

/// Read one offset; volatile so the compiler never folds the zero initialiser.
macro_rules! off {
    ($field:ident) => {
        read_offset(addr_of!(OFFSETS.$field))
    };
}

#[inline(always)]
fn read_offset(p: *const u32) -> usize {
    // SAFETY: `p` points into the `OFFSETS` static (see `off!`), which is
    // aligned, initialised and never written by the probes.
    unsafe { read_volatile(p) as usize }
}

/// Size is set by user space (`--ring-buffer-size`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Between `sys_enter_execve[at]` and its exit, keyed by pid_tgid. LRU: an entry
/// whose exit never comes (a thread killed mid-syscall) ages out instead of filling
/// the map.
#[map]
static PENDING_EXEC: LruHashMap<u64, PendingExec> = LruHashMap::with_max_entries(16384, 0);

/// Between `sys_enter_connect`, the cgroup hook and `sys_exit_connect`, keyed by
/// pid_tgid. LRU for the same reason (io_uring connects have no syscall exit).
#[map]
static PENDING_CONNECT: LruHashMap<u64, PendingConnect> = LruHashMap::with_max_entries(16384, 0);

/// Unconnected sends already reported: (socket, destination).
#[map]
static SENT_TO: LruHashMap<SendKey, u8> = LruHashMap::with_max_entries(16384, 0);

/// Destinations reported per unconnected socket, to cap them.
#[map]
static SEND_DESTINATIONS: LruHashMap<u64, u32> = LruHashMap::with_max_entries(16384, 0);

/// Room for one exec record with its path, argv, environment and working
/// directory. A per-CPU array cannot hold values over 32 KiB, so this is a
/// plain array indexed by CPU; user space sizes it to the number of possible
/// CPUs. The slack after `ARGV_MAX` and `ENV_MAX` (and a name past `CWD_MAX`)
/// keeps masked offsets in bounds for the verifier.
const DATA_LEN: usize = PATH_MAX + 2 * ARGV_MAX + 2 * ENV_MAX + CWD_MAX + NAME_MAX;
#[repr(C)]
struct ExecScratch {
    rec: ExecRecord,
    data: [u8; DATA_LEN],
    /// Write position while copying a failed exec's arguments. Kept in memory, not
    /// a register, so the verifier sees one state per iteration instead of one per
    /// possible offset (which exceeds its instruction budget).
    cursor: u64,
}

#[map]
static EXEC_SCRATCH: Array<ExecScratch> = Array::with_max_entries(1, 0);

/// The exec record's working directory walk, a program of its own that
/// `sched_process_exec` tail-calls ([`TAIL_EXEC_CWD`]): verified alone, its
/// loop costs the verifier once, not once for every way the exec program
/// reaches its end (which on 6.18 alone more than doubled that program's
/// count). User space fills the slot; an empty slot sends the record without
/// the walk, and user space reads the directory from /proc.
#[map]
static EXEC_TAIL: ProgramArray = ProgramArray::with_max_entries(1, 0);
const TAIL_EXEC_CWD: u32 = 0;

#[inline(always)]
fn count(idx: u32) {
    if let Some(ptr) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: the map returned a valid pointer to this CPU's slot, which
        // nothing else on this CPU touches while the program runs.
        unsafe { *ptr += 1 };
    }
}

#[inline(always)]
fn pid_tgid() -> u64 {
    // SAFETY: a helper without arguments or preconditions.
    unsafe { bpf_get_current_pid_tgid() }
}

/// The current `struct task_struct *`, as an address for [`kread`].
#[inline(always)]
fn current_task() -> usize {
    // SAFETY: a helper without arguments or preconditions.
    unsafe { bpf_get_current_task() as usize }
}

#[inline(always)]
fn current_cgroup_id() -> u64 {
    // SAFETY: a helper without arguments or preconditions.
    unsafe { bpf_get_current_cgroup_id() }
}

/// Types [`kread`] may fill from kernel memory.
///
/// # Safety
///
/// Every bit pattern of `size_of::<Self>()` bytes must be a valid `Self`.
/// Scalars only: the `Default` of an array or record compiles to a call to the
/// object's byte-by-byte `memset` subprogram, which verifiers before 6.2 walk
/// again at every call site (a million instructions for the fork probe on 6.1
/// and 5.10).
unsafe trait Scalar: Copy + Default {}
// SAFETY: plain integers; any bit pattern is a valid value.
unsafe impl Scalar for u16 {}
// SAFETY: as above.
unsafe impl Scalar for u32 {}
// SAFETY: as above.
unsafe impl Scalar for i32 {}
// SAFETY: as above.
unsafe impl Scalar for u64 {}
// SAFETY: as above.
unsafe impl Scalar for i64 {}

/// Read a scalar `T` at `base + off` from kernel memory; zero on fault (or for a
/// null `base`, a pointer that was not there).
#[inline(always)]
fn kread<T: Scalar>(base: usize, off: usize) -> T {
    let mut v = T::default();
    if base == 0 {
        return v;
    }
    // SAFETY: the helper writes at most `size_of::<T>()` bytes into `v`, a local
    // `T`, and any bit pattern is a valid `T` (`Scalar`); the source may be any
    // address: the helper checks it and fails instead of faulting.
    let r = unsafe {
        bpf_probe_read_kernel(
            addr_of_mut!(v).cast(),
            core::mem::size_of::<T>() as u32,
            (base + off) as *const core::ffi::c_void,
        )
    };
    if r != 0 {
        v = T::default();
    }
    v
}

/// A kernel pointer at `base + off`, as an address (0 on fault).
#[inline(always)]
fn kptr(base: usize, off: usize) -> usize {
    kread::<u64>(base, off) as usize
}

/// A kernel pointer at `base + off` like [`kptr`], without its branches: the
/// helper zeroes its destination when the read fails (a null `base`
/// included). For loops, where every branch of a step multiplies the paths
/// the verifier walks.
#[inline(always)]
fn kptr_flat(base: usize, off: usize) -> usize {
    let mut v: u64 = 0;
    // SAFETY: the helper writes at most 8 bytes into the local `v` (zeroes on
    // failure) and checks the source address itself.
    unsafe {
        bpf_probe_read_kernel(
            addr_of_mut!(v).cast(),
            8,
            base.wrapping_add(off) as *const core::ffi::c_void,
        );
    }
    v as usize
}

/// Two `u32` members at `base + a` and `base + b`: one 8-byte read when the
/// running kernel puts `b` right after `a` (pid and tgid, uid and gid, euid
/// and egid, loginuid and sessionid are declared so), else two reads. Each
/// read is a helper call, the largest part of describing a task.
#[inline(always)]
fn kread_pair(base: usize, a: usize, b: usize) -> (u32, u32) {
    if b != a + 4 {
        return (kread::<u32>(base, a), kread::<u32>(base, b));
    }
    let v = kread::<u64>(base, a);
    if cfg!(target_endian = "little") {
        (v as u32, (v >> 32) as u32)
    } else {
        ((v >> 32) as u32, v as u32)
    }
}

// comm and tty are read with `kread16`.
const _: () = assert!(COMM_LEN == 16 && TTY_LEN == 16);

/// Zero 16 bytes with two word stores. Volatile, so LLVM cannot merge them into
/// a `memset` call (see [`Scalar`]).
///
/// # Safety
///
/// `dst` must be valid for writes and 8-byte aligned.
#[inline(always)]
unsafe fn zero16(dst: *mut [u8; 16]) {
    // SAFETY: the caller's contract; both words lie inside `*dst`.
    unsafe {
        write_volatile(dst.cast::<u64>(), 0);
        write_volatile(dst.cast::<u64>().add(1), 0);
    }
}

/// Read 16 bytes at `base + off` into `dst` (a name, an address); zero on fault.
///
/// # Safety
///
/// As for [`zero16`]: `dst` valid for writes and 8-byte aligned.
#[inline(always)]
unsafe fn kread16(dst: *mut [u8; 16], base: usize, off: usize) {
    // SAFETY: the helper writes at most 16 bytes into `*dst`, which the caller
    // vouches for, and checks the source address itself.
    unsafe {
        if base == 0
            || bpf_probe_read_kernel(dst.cast(), 16, (base + off) as *const core::ffi::c_void) != 0
        {
            zero16(dst);
        }
    }
}

/// Describe `task` (a `struct task_struct *`) as it is right now; returns its
/// `mm` (0 for a kernel thread or on fault), which the exec probe reads on.
///
/// # Safety
///
/// `info` must be valid for writes and aligned (a record in a ring buffer
/// reservation or the scratch map); every field is written.
#[inline(always)]
unsafe fn fill_task(task: usize, info: *mut TaskInfo) -> usize {
    // SAFETY: the caller's contract on `info`; a `TaskInfo` is plain integers,
    // valid for any bytes the reservation held before.
    unsafe {
        let info = &mut *info;
        (info.tid, info.tgid) = kread_pair(task, off!(task_pid), off!(task_tgid));
        let parent = kptr(task, off!(task_real_parent));
        info.ptgid = kread::<u32>(parent, off!(task_tgid));
        let cred = kptr(task, off!(task_real_cred));
        (info.uid, info.gid) = kread_pair(cred, off!(cred_uid), off!(cred_gid));
        (info.euid, info.egid) = kread_pair(cred, off!(cred_euid), off!(cred_egid));
        (info.auid, info.sessionid) = kread_pair(task, off!(task_loginuid), off!(task_sessionid));

        let nsproxy = kptr(task, off!(task_nsproxy));
        let mnt_ns = kptr(nsproxy, off!(nsproxy_mnt_ns));
        info.mnt_ns = kread::<u32>(mnt_ns, off!(mnt_namespace_inum));
        let net_ns = kptr(nsproxy, off!(nsproxy_net_ns));
        info.net_ns = kread::<u32>(net_ns, off!(net_inum));
        // The task's own pid namespace is the one at the deepest level of its pid.
        let pid = kptr(task, off!(task_thread_pid));
        let level = (kread::<u32>(pid, off!(pid_level)) & 31) as usize;
        let upid = off!(pid_numbers) + level * off!(upid_size);
        let pid_ns = kptr(pid, upid + off!(upid_ns));
        info.pid_ns = kread::<u32>(pid_ns, off!(pid_namespace_inum));

        let leader = kptr(task, off!(task_group_leader));
        info.start_boottime_ns = kread::<u64>(leader, off!(task_start_boottime));
        info.exec_seq = kread::<u64>(leader, off!(task_self_exec_id));
        let mm = kptr(task, off!(task_mm));
        info.arg_start = kread::<u64>(mm, off!(mm_arg_start));
        info.start_code = kread::<u64>(mm, off!(mm_start_code));
        info.start_brk = kread::<u64>(mm, off!(mm_start_brk));
        kread16(addr_of_mut!(info.comm), task, off!(task_comm));
        let signal = kptr(task, off!(task_signal));
        let tty = kptr(signal, off!(signal_tty));
        kread16(addr_of_mut!(info.tty), tty, off!(tty_name));
        info.cgroup_v1_id = cgroup_v1_id(task);
        fill_authority(task, cred, info);
        mm
    }
}

/// The task's authority at this moment, from the kernel's own structures
/// (nothing the task can write): its capability sets and user namespace from
/// `cred`, no_new_privs and the seccomp mode from the task. A part whose
/// members the running kernel lacks ([`Offsets::authority`]) is left unread
/// and its `AUTH_*` bit clear. Common case (host namespace, caps adjacent):
/// five reads.
#[inline(always)]
fn fill_authority(task: usize, cred: usize, info: &mut TaskInfo) {
    let what = off!(authority) as u32;
    let mut flags = 0;
    // Volatile zeroing, so that a reservation's old bytes never pass for sets
    // (and no `memset` call, see `Scalar`).
    let caps = addr_of_mut!(info.cap_inheritable);
    // SAFETY: the five sets are adjacent u64 fields of `info` (see TaskInfo),
    // `caps` points at the first; the helper writes those 40 bytes at most
    // and checks its source address.
    unsafe {
        for i in 0..5 {
            write_volatile(caps.add(i), 0);
        }
        if what & READ_CAPS != 0 && cred != 0 {
            if what & READ_CAPS_ADJACENT != 0 {
                let src = (cred + off!(cred_cap_inheritable)) as *const core::ffi::c_void;
                if bpf_probe_read_kernel(caps.cast(), 40, src) == 0 {
                    flags |= AUTH_CAPS;
                }
            } else {
                // kernel_cap_t is 8 bytes on every supported kernel (`u32
                // cap[2]` before 6.3, `u64 val` since): one little-endian word.
                write_volatile(caps, kread::<u64>(cred, off!(cred_cap_inheritable)));
                write_volatile(caps.add(1), kread::<u64>(cred, off!(cred_cap_permitted)));
                write_volatile(caps.add(2), kread::<u64>(cred, off!(cred_cap_effective)));
                write_volatile(caps.add(3), kread::<u64>(cred, off!(cred_cap_bset)));
                write_volatile(caps.add(4), kread::<u64>(cred, off!(cred_cap_ambient)));
                flags |= AUTH_CAPS;
            }
        }
    }
    if what & READ_NNP != 0 {
        // PFA_NO_NEW_PRIVS is bit 0 of `atomic_flags`.
        flags |= AUTH_NNP_KNOWN;
        if kread::<u64>(task, off!(task_atomic_flags)) & 1 != 0 {
            flags |= AUTH_NO_NEW_PRIVS;
        }
    }
    if what & READ_SECCOMP != 0 {
        let mode = kread::<u32>(task, off!(task_seccomp_mode)) & 3;
        flags |= AUTH_SECCOMP_KNOWN | (mode << AUTH_SECCOMP_SHIFT);
    }
    // SAFETY: aligned fields of `info`; volatile so the zeroes stay four
    // stores (not a `memset` call).
    unsafe {
        write_volatile(addr_of_mut!(info.userns_inum), 0);
        write_volatile(addr_of_mut!(info.userns_level), 0);
        write_volatile(addr_of_mut!(info.userns_owner), 0);
        write_volatile(addr_of_mut!(info.userns_uid), 0);
    }
    let ns = if what & READ_USERNS != 0 {
        kptr(cred, off!(cred_user_ns))
    } else {
        0
    };
    if ns != 0 {
        info.userns_inum = kread::<u32>(ns, off!(user_ns_inum));
        (info.userns_level, info.userns_owner) =
            kread_pair(ns, off!(user_ns_level), off!(user_ns_owner));
        flags |= AUTH_USERNS;
        if info.userns_level == 0 {
            // The host's namespace maps every id to itself.
            info.userns_uid = info.uid;
            flags |= AUTH_USERNS_UID;
        } else if what & READ_USERNS_UID != 0 {
            flags |= userns_uid(ns, info.uid, &mut info.userns_uid);
        }
    }
    info.authority = flags;
    info._pad_authority = 0;
}

/// The uid `kuid` (as the host sees it) has in the user namespace `ns`: the
/// first of the namespace's inline uid map ranges that holds it (their
/// `lower_first` are host ids at every nesting level). Returns the `AUTH_*`
/// bit that says what became of it; `out` is set only when mapped.
#[inline(always)]
fn userns_uid(ns: usize, kuid: u32, out: &mut u32) -> u32 {
    let n = kread::<u32>(ns, off!(user_ns_uid_nr));
    if n as usize > UID_MAP_INLINE {
        // Sorted out-of-line arrays: not followed (bounded cost, no guessing).
        return AUTH_USERNS_MAP_LARGE;
    }
    // Three u32 per range: first (in the namespace), lower_first (host), count.
    let mut ranges = core::mem::MaybeUninit::<[u32; 3 * UID_MAP_INLINE]>::uninit();
    let r = ranges.as_mut_ptr().cast::<u32>();
    // SAFETY: the helper writes the 60 bytes of `ranges` (zeroes on fault) and
    // checks its source; every read below is at a constant index inside it
    // (constant: verifiers before 5.13 reject variable stack offsets).
    unsafe {
        let src = (ns + off!(user_ns_uid_extent)) as *const core::ffi::c_void;
        if bpf_probe_read_kernel(r.cast(), (12 * UID_MAP_INLINE) as u32, src) != 0 {
            return 0;
        }
        macro_rules! range {
            ($i:literal) => {
                if n > $i {
                    let first = read_volatile(r.add(3 * $i));
                    let lower = read_volatile(r.add(3 * $i + 1));
                    let count = read_volatile(r.add(3 * $i + 2));
                    if kuid >= lower && kuid - lower < count {
                        *out = first.wrapping_add(kuid - lower);
                        return AUTH_USERNS_UID;
                    }
                }
            };
        }
        range!(0);
        range!(1);
        range!(2);
        range!(3);
        range!(4);
    }
    AUTH_USERNS_UNMAPPED
}

/// The task's cgroup in the v1 hierarchy user space chose, as Tetragon reads
/// it: `task->cgroups` (css_set) `->subsys[ID]` (cgroup_subsys_state)
/// `->cgroup->kn->id`, the inode number of the cgroup's directory in that
/// controller's mount. 0 when no v1 controller is mounted (pure v2 hosts) or
/// a read faults. Tasks are read without RCU; a racing cgroup move yields the
/// old or the new cgroup, both of which were true a moment ago.
#[inline(always)]
fn cgroup_v1_id(task: usize) -> u64 {
    if off!(cgroup_v1) == 0 {
        return 0;
    }
    let css_set = kptr(task, off!(task_cgroups));
    let css = kptr(css_set, off!(cgroup_v1_css));
    let cgroup = kptr(css, off!(css_cgroup));
    let kn = kptr(cgroup, off!(cgroup_kn));
    kread::<u64>(kn, off!(kernfs_node_id))
}

#[inline(always)]
fn header(kind: RecordKind, len: usize) -> Header {
    Header {
        kind: kind as u16,
        version: RECORD_VERSION,
        len: len as u32,
        // SAFETY: a helper without arguments or preconditions.
        ts_boot_ns: unsafe { bpf_ktime_get_boot_ns() },
    }
}

/// Wake the reader only once the ring is filling up: user space also drains it on
/// a short timer, so a storm costs no wake-up (an irq_work, an IPI on a VM, and an
/// epoll return) per record.
#[inline(always)]
fn wakeup_flags() -> u64 {
    let ring = addr_of!(EVENTS).cast_mut().cast();
    // SAFETY: `ring` is the ring buffer map; the queries only read its counters.
    let (avail, size) = unsafe {
        (
            bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA as u64),
            bpf_ringbuf_query(ring, BPF_RB_RING_SIZE as u64),
        )
    };
    if avail >= size / 8 {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Whether user space filled the offset table. It always does before attaching;
/// if not, the probe stays idle and says so (aya-log: rare diagnostics only,
/// never events; user space sets the level, so a disabled level costs one load).
#[inline(always)]
fn offsets_ready<C: EbpfContext>(ctx: &C) -> bool {
    if off!(valid) != 0 {
        return true;
    }
    error!(ctx, "kernel struct offsets were not set: probe idle");
    false
}

#[inline(always)]
fn scratch<C: EbpfContext>(ctx: &C) -> Option<*mut ExecScratch> {
    // SAFETY: a helper without arguments or preconditions.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    match EXEC_SCRATCH.get_ptr_mut(cpu) {
        Some(p) => Some(p),
        None => {
            count(counter::SCRATCH);
            error!(ctx, "no exec scratch buffer for cpu {}: exec dropped", cpu);
            None
        }
    }
}

/// Send the scratch record with `path_len + tail_len` bytes of trailing data.
#[inline(always)]
fn submit_exec(buf: *mut ExecScratch, path_len: usize, tail_len: usize) {
    let total = core::mem::size_of::<ExecRecord>() + path_len + tail_len;
    // The mask proves the bound to the verifier (it is below the scratch size);
    // `total` is already below it (see the assertion after this function).
    let total = total & (2 * ARGV_MAX - 1);
    // SAFETY: `buf` is this CPU's scratch entry (from `scratch`), and `total` is
    // masked below its size, so the helper copies only bytes inside it.
    unsafe {
        (*buf).rec.header = header(RecordKind::Exec, total);
        let r = bpf_ringbuf_output(
            addr_of!(EVENTS).cast_mut().cast(),
            buf.cast(),
            total as u64,
            wakeup_flags(),
        );
        if r == 0 {
            count(counter::SUBMITTED);
        } else {
            count(counter::RING_FULL);
        }
    }
}

const _: () = assert!(
    core::mem::size_of::<ExecRecord>() + PATH_MAX + ARGV_MAX + ENV_MAX + CWD_MAX < 2 * ARGV_MAX
);

// ---------------------------------------------------------------- exec

/// A successful exec: the new image is in place and `current` runs it, with its
/// post-exec credentials. Args: (task, old_pid, linux_binprm).
#[raw_tracepoint(tracepoint = "sched_process_exec")]
fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    if !offsets_ready(&ctx) {
        return 0;
    }
    let task: u64 = ctx.arg(0);
    let bprm: u64 = ctx.arg(2);
    let Some(buf) = scratch(&ctx) else { return 0 };
    // SAFETY: `buf` is this CPU's scratch entry, used by one program at a time
    // (BPF programs do not nest on a CPU for these hooks) and plain integers
    // throughout. Every copy into `data` is bounded by a mask the verifier
    // checks (path below PATH_MAX, argv and env each masked, DATA_LEN leaving
    // room for all three); the helpers check their source addresses.
    unsafe {
        let rec = &mut (*buf).rec;
        let mm = fill_task(task as usize, &mut rec.task);
        rec.task.cgroup_id = current_cgroup_id();
        rec.errno = 0;
        rec.flags = 0;

        // The path the kernel opened (bprm->filename), NUL included in the count.
        let filename = kptr(bprm as usize, off!(bprm_filename));
        let data = addr_of_mut!((*buf).data).cast::<u8>();
        let n = bpf_probe_read_kernel_str(data.cast(), PATH_MAX as u32, filename as *const _);
        let path_len = if n > 0 { (n - 1) as usize } else { 0 };
        let path_len = path_len & (PATH_MAX - 1);
        if n as usize >= PATH_MAX {
            rec.flags |= FLAG_PATH_TRUNCATED;
        }
        let path_len = if n > 0 && names_a_descriptor(data) {
            file_name_components(buf, bprm as usize) & (PATH_MAX - 1)
        } else {
            path_len
        };
        rec.path_len = path_len as u32;

        // argv as the kernel laid it out on the new stack: NUL-separated strings
        // (`mm` and its `arg_start` as `fill_task` read them).
        let start = rec.task.arg_start;
        let end = kread::<u64>(mm, off!(mm_arg_end));
        let mut len = end.saturating_sub(start) as usize;
        if len > ARGV_MAX {
            len = ARGV_MAX;
            rec.flags |= FLAG_ARGV_TRUNCATED;
        }
        let len = len & (2 * ARGV_MAX - 1);
        let dst = data.add(path_len);
        let r = bpf_probe_read_user(dst.cast(), len as u32, start as *const _);
        let argv_len = if r == 0 {
            len
        } else {
            rec.flags |= FLAG_ARGV_UNREADABLE;
            count(counter::READ_FAULT);
            warn!(
                &ctx,
                "argv of pid {} unreadable (error {}): exec reported without it", rec.task.tgid, r
            );
            0
        };
        rec.argv_len = argv_len as u32;

        // The environment, as laid out on the new stack; user space keeps only
        // the variables it reports.
        let start = kread::<u64>(mm, off!(mm_env_start));
        let end = kread::<u64>(mm, off!(mm_env_end));
        let mut len = end.saturating_sub(start) as usize;
        if len > ENV_MAX {
            len = ENV_MAX;
            rec.flags |= FLAG_ENV_TRUNCATED;
        }
        let len = len & (2 * ENV_MAX - 1);
        let dst = data.add(path_len + argv_len);
        let env_len = if bpf_probe_read_user(dst.cast(), len as u32, start as *const _) == 0 {
            len
        } else {
            rec.flags |= FLAG_ENV_UNREADABLE;
            0
        };
        rec.env_len = env_len as u32;

        let fs = kptr(task as usize, off!(task_fs));
        rec.cwd_dentry = kread::<u64>(fs, off!(fs_pwd_dentry));
        rec.cwd_mnt = kread::<u64>(fs, off!(fs_pwd_mnt));
        let inode = kptr(rec.cwd_dentry as usize, off!(dentry_inode));
        rec.cwd_ino = kread::<u64>(inode, off!(inode_ino));

        let file = kptr(bprm as usize, off!(bprm_file));
        let inode = kptr(file, off!(file_inode));
        rec.file_ino = kread::<u64>(inode, off!(inode_ino));
        let sb = kptr(inode, off!(inode_sb));
        rec.file_dev = kread::<u32>(sb, off!(super_block_dev));
        rec.file_size = kread::<u64>(inode, off!(inode_size));
        rec.file_ctime_sec = kread::<i64>(inode, off!(inode_ctime_sec));
        rec.file_ctime_nsec = kread::<u32>(inode, off!(inode_ctime_nsec)) & CTIME_NSEC_MASK;
        at_random(buf, mm, addr_of_mut!(rec.at_random));
        cpu_usage(task as usize, addr_of_mut!(rec.cpu));
        rec.cwd_len = 0;
        // The walk, then the record's submission, in `exec_cwd`; last, as the
        // walk may write over the auxiliary vector `at_random` searched.
        EXEC_TAIL.tail_call(&ctx, TAIL_EXEC_CWD);
        // Only reached when the slot is empty: the record goes without.
        submit_recorded(buf);
    }
    0
}

/// `sched_process_exec`'s end, by tail call: the working directory walk
/// into its scratch record, then the record's submission.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
fn exec_cwd(ctx: RawTracePointContext) -> i32 {
    let task: u64 = ctx.arg(0);
    let Some(buf) = scratch(&ctx) else { return 0 };
    // SAFETY: `buf` is this CPU's scratch entry, which the exec program that
    // tail-called this one on this CPU filled (path, argv and environment
    // lengths set) and has not sent.
    unsafe {
        cwd_components(buf, kptr(task as usize, off!(task_fs)));
        submit_recorded(buf);
    }
    0
}

/// Send the exec record in the scratch, its lengths as the record says.
///
/// # Safety
///
/// `buf` must be this CPU's scratch entry (see `scratch`).
#[inline(always)]
unsafe fn submit_recorded(buf: *mut ExecScratch) {
    // SAFETY: the caller's contract; reads of the record's own fields, each
    // masked to the bound it was copied within.
    unsafe {
        let len = |p: *const u32| read_volatile(p) as usize;
        let rec = addr_of!((*buf).rec);
        submit_exec(
            buf,
            len(addr_of!((*rec).path_len)) & (PATH_MAX - 1),
            (len(addr_of!((*rec).argv_len)) & (2 * ARGV_MAX - 1))
                + (len(addr_of!((*rec).env_len)) & (2 * ENV_MAX - 1))
                + (len(addr_of!((*rec).cwd_len)) & (CWD_MAX - 1)),
        );
    }
}

/// The process's CPU time so far into `dst`: its reaped threads' (kept in
/// `signal_struct`) plus `task`'s own. Called where `task` is the only thread
/// left (after an exec's de_thread) or the last one (at the process's exit).
///
/// # Safety
///
/// `dst` valid for writes and 8-byte aligned (a field of a record or scratch).
#[inline(always)]
unsafe fn cpu_usage(task: usize, dst: *mut CpuUsage) {
    let signal = kptr(task, off!(task_signal));
    let sum = |a: usize, b: usize| kread::<u64>(signal, a).wrapping_add(kread::<u64>(task, b));
    // SAFETY: per this function's contract.
    unsafe {
        (*dst).utime_ns = sum(off!(signal_utime), off!(task_utime));
        (*dst).stime_ns = sum(off!(signal_stime), off!(task_stime));
        (*dst).runtime_ns = sum(off!(signal_sum_sched_runtime), off!(task_sum_exec_runtime));
    }
}

/// `AT_RANDOM`, and how many auxiliary vector entries are searched for it:
/// x86-64 puts it 17th at most (after the arch's `AT_SYSINFO_EHDR` and
/// `AT_MINSIGSTKSZ` and the generic code's 14 fixed entries), and
/// `mm->saved_auxv` holds more than 20 pairs on every kernel we support
/// (`AT_VECTOR_SIZE` is 46 words or more on x86-64 since 5.10), so the search never
/// reads past it.
const AT_RANDOM: u64 = 25;
/// Nanoseconds fit in 30 bits; the kernel keeps a flag in bit 31 of
/// `i_ctime_nsec` (multigrain timestamps, 6.13+).
const CTIME_NSEC_MASK: u32 = (1 << 30) - 1;
const AUXV_PAIRS_MAX: usize = 20;
/// Where in the scratch data the auxiliary vector is copied to be searched:
/// past everything an exec record carries (path, argv, env), inside `data`.
const AUXV_SCRATCH: usize = PATH_MAX + ARGV_MAX + ENV_MAX;
const _: () = assert!(AUXV_SCRATCH + AUXV_PAIRS_MAX * 16 <= DATA_LEN);

/// Copy the image's 16 `AT_RANDOM` bytes: their address from the kernel's own
/// copy of the auxiliary vector (`mm->saved_auxv`, copied in one read and
/// searched in the scratch buffer, not read a pair at a time), the bytes from
/// the new stack, which the image has not run yet to change.
///
/// # Safety
///
/// As for [`zero16`]: `dst` valid for writes and 8-byte aligned; `buf` this
/// CPU's scratch entry (see `scratch`).
#[inline(always)]
unsafe fn at_random(buf: *mut ExecScratch, mm: usize, dst: *mut [u8; 16]) {
    // SAFETY: the caller's contract on `dst` and `buf`; the helpers write 16
    // bytes to `dst` and `AUXV_PAIRS_MAX * 16` bytes at `AUXV_SCRATCH` in
    // `data` (inside it, see the assertion) at most, and check their source
    // addresses themselves; the search reads only those bytes.
    unsafe {
        let words = dst.cast::<u64>();
        write_volatile(words, 0);
        write_volatile(words.add(1), 0);
        if mm == 0 {
            return;
        }
        let auxv = addr_of_mut!((*buf).data)
            .cast::<u8>()
            .add(AUXV_SCRATCH)
            .cast::<u64>();
        if bpf_probe_read_kernel(
            auxv.cast(),
            (AUXV_PAIRS_MAX * 16) as u32,
            (mm + off!(mm_saved_auxv)) as *const _,
        ) != 0
        {
            return;
        }
        let mut i = 0;
        while i < AUXV_PAIRS_MAX {
            let key = read_volatile(auxv.add(2 * i));
            if key == 0 {
                return;
            }
            if key == AT_RANDOM {
                let at = read_volatile(auxv.add(2 * i + 1));
                if bpf_probe_read_user(dst.cast(), 16, at as *const _) != 0 {
                    write_volatile(words, 0);
                    write_volatile(words.add(1), 0);
                }
                return;
            }
            i += 1;
        }
    }
}

/// The working directory's name components, leaf first, each NUL-terminated,
/// written into `data` right after the environment, their length in
/// `cwd_len`. The walk goes up `fs->pwd`'s dentries and across mounts as
/// the kernel's own `d_path` does, and stops at the process's root
/// (`fs->root`), so a chrooted process sees its directory as it names it. It
/// sets the `FLAG_CWD_*` bits: walked, cut at the bound (the deepest
/// components kept), outside the root (the top of the mount tree came first:
/// the components then run from there), and deleted. Bounded by
/// `CWD_STEPS_MAX` steps and `CWD_MAX` bytes; a step is three or four reads.
///
/// # Safety
///
/// `buf` must be this CPU's scratch entry (see `scratch`), its record's
/// path, argv and environment lengths set.
#[inline(always)]
unsafe fn cwd_components(buf: *mut ExecScratch, fs: usize) {
    // SAFETY: the caller's contract on `buf`. The lengths are masked to the
    // bounds `sched_process_exec` copies within, and each name lands at
    // their sum plus a position masked below CWD_MAX, at most NAME_MAX bytes
    // long: inside `data` (see DATA_LEN). The helper checks its source.
    unsafe {
        if off!(cwd_walk) == 0 || fs == 0 {
            return;
        }
        let len = |p: *const u32| read_volatile(p) as usize;
        let tail = (len(addr_of!((*buf).rec.path_len)) & (PATH_MAX - 1))
            + (len(addr_of!((*buf).rec.argv_len)) & (2 * ARGV_MAX - 1))
            + (len(addr_of!((*buf).rec.env_len)) & (2 * ENV_MAX - 1));
        let dst = addr_of_mut!((*buf).data).cast::<u8>().add(tail);
        let root_dentry = kptr_flat(fs, off!(fs_root_dentry));
        let root_mnt = kptr_flat(fs, off!(fs_root_mnt));
        let mut dentry = kptr_flat(fs, off!(fs_pwd_dentry));
        let mut vfsmnt = kptr_flat(fs, off!(fs_pwd_mnt));
        if dentry == 0 || vfsmnt == 0 {
            return;
        }
        let mut mnt_root = kptr_flat(vfsmnt, off!(vfsmount_mnt_root));
        // Deleted: unhashed, and not the root of a file system (never hashed).
        // Written now, not carried in a register through the loop: one
        // verifier state per step, not two.
        if kptr_flat(dentry, off!(dentry_parent)) != dentry
            && kptr_flat(dentry, off!(dentry_hash_pprev)) == 0
        {
            (*buf).rec.flags |= FLAG_CWD_UNLINKED;
        }
        (*buf).cursor = 0;
        let mut end = FLAG_CWD_TRUNCATED;
        for _ in 0..CWD_STEPS_MAX {
            if dentry == root_dentry && vfsmnt == root_mnt {
                end = 0;
                break;
            }
            if dentry == mnt_root {
                // Top of this mount: go on from where it is mounted. A mount
                // that is its own parent is the top of the tree (or detached).
                let mount = vfsmnt.wrapping_sub(off!(mount_mnt));
                let up = kptr_flat(mount, off!(mount_parent));
                if up == 0 || up == mount {
                    end = FLAG_CWD_OUTSIDE_ROOT;
                    break;
                }
                dentry = kptr_flat(mount, off!(mount_mountpoint));
                vfsmnt = up + off!(mount_mnt);
                mnt_root = kptr_flat(vfsmnt, off!(vfsmount_mnt_root));
                continue;
            }
            let parent = kptr_flat(dentry, off!(dentry_parent));
            if parent == 0 {
                break;
            }
            if parent == dentry {
                // A file system's root that is not its mount's: not under the
                // process's root either.
                end = FLAG_CWD_OUTSIDE_ROOT;
                break;
            }
            // Room for a whole name (NAME_MAX with its NUL) below CWD_MAX.
            let pos = (*buf).cursor as usize;
            if pos >= CWD_MAX - NAME_MAX {
                break;
            }
            let pos = pos & (CWD_MAX - 1);
            let name = kptr_flat(dentry, off!(dentry_name));
            let n =
                bpf_probe_read_kernel_str(dst.add(pos).cast(), NAME_MAX as u32, name as *const _);
            if n <= 0 {
                break;
            }
            (*buf).cursor = (pos + n as usize) as u64;
            dentry = parent;
        }
        (*buf).rec.flags |= FLAG_CWD_WALKED | end;
        (*buf).rec.cwd_len = ((*buf).cursor as usize & (CWD_MAX - 1)) as u32;
    }
}

/// An exec through a descriptor (fexecve, `/proc/self/fd/N`) names no file:
/// the kernel's path is `/dev/fd/N` or what the caller wrote.
///
/// # Safety
///
/// `path` must be valid for reads of 8 bytes.
#[inline(always)]
unsafe fn names_a_descriptor(path: *const u8) -> bool {
    // SAFETY: the caller's contract; an unaligned read of a byte array.
    let head = unsafe { core::ptr::read_unaligned(path.cast::<[u8; 8]>()) };
    head == *b"/dev/fd/" || (head[..6] == *b"/proc/" && head[6] != 0)
}

/// Replace the path with the opened file's name components, leaf first, each
/// NUL-terminated, from a walk up its dentries and mounts (bpf_d_path needs
/// hooks this kernel cannot attach). Sets the flags that tell user space so;
/// returns the bytes written.
///
/// # Safety
///
/// `buf` must be this CPU's scratch entry (see `scratch`).
#[inline(always)]
unsafe fn file_name_components(buf: *mut ExecScratch, bprm: usize) -> usize {
    // SAFETY: the caller's contract on `buf`; each name lands at a position
    // masked below PATH_MAX and at most NAME_MAX bytes long, inside `data`.
    unsafe {
        let data = addr_of_mut!((*buf).data).cast::<u8>();
        let file = kptr(bprm, off!(bprm_file));
        let mut dentry = kptr(file, off!(file_path_dentry));
        let vfsmnt = kptr(file, off!(file_path_mnt));
        let mut mount = vfsmnt.wrapping_sub(off!(mount_mnt));
        let mut mnt_root = kptr(vfsmnt, off!(vfsmount_mnt_root));
        let mut flags = FLAG_PATH_FROM_FILE | FLAG_PATH_TRUNCATED;
        // An unhashed dentry has no name in the tree: deleted, or never had one.
        if kptr(dentry, off!(dentry_hash_pprev)) == 0 {
            flags |= FLAG_FILE_UNLINKED;
        }
        (*buf).cursor = 0;
        for _ in 0..PATH_COMPONENTS_MAX {
            if dentry == 0 {
                break;
            }
            if dentry == mnt_root {
                // Top of this mount: go on from where it is mounted, up to the
                // root of the mount namespace (a mount that is its own parent).
                let up = kptr(mount, off!(mount_parent));
                if up == 0 || up == mount {
                    flags &= !FLAG_PATH_TRUNCATED;
                    break;
                }
                dentry = kptr(mount, off!(mount_mountpoint));
                mount = up;
                mnt_root = kptr(up + off!(mount_mnt), off!(vfsmount_mnt_root));
                continue;
            }
            let pos = (*buf).cursor as usize;
            if pos > PATH_MAX - 1 - NAME_MAX {
                break;
            }
            let pos = pos & (PATH_MAX - 1);
            let name = kptr(dentry, off!(dentry_name));
            let n =
                bpf_probe_read_kernel_str(data.add(pos).cast(), NAME_MAX as u32, name as *const _);
            if n <= 0 {
                break;
            }
            (*buf).cursor = (pos + n as usize) as u64;
            let parent = kptr(dentry, off!(dentry_parent));
            if parent == dentry {
                // The root of a file system that is mounted nowhere (a memfd's).
                flags &= !FLAG_PATH_TRUNCATED;
                break;
            }
            dentry = parent;
        }
        (*buf).rec.flags |= flags;
        (*buf).cursor as usize
    }
}

#[inline(always)]
fn exec_enter(filename: u64, argv: u64, flags: u32) {
    let key = &pid_tgid();
    let pending = &PendingExec {
        filename,
        argv,
        flags,
        _pad: 0,
    };
    if PENDING_EXEC.insert(key, pending, 0).is_err() {
        count(counter::PENDING_FULL);
    }
}

#[tracepoint(name = "sys_enter_execve", category = "syscalls")]
fn sys_enter_execve(ctx: TracePointContext) -> i32 {
    // SAFETY: the tracepoint's format puts `filename` at 16 (and `argv` at 24);
    // the read is checked by the helper, and a u64 takes any bits.
    let filename: u64 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    // SAFETY: see above.
    let argv: u64 = unsafe { ctx.read_at(24) }.unwrap_or(0);
    exec_enter(filename, argv, 0);
    0
}

#[tracepoint(name = "sys_enter_execveat", category = "syscalls")]
fn sys_enter_execveat(ctx: TracePointContext) -> i32 {
    // SAFETY: the format puts `filename` at 24 (and `argv` at 32, after `fd`);
    // checked by the helper, and a u64 takes any bits.
    let filename: u64 = unsafe { ctx.read_at(24) }.unwrap_or(0);
    // SAFETY: see above.
    let argv: u64 = unsafe { ctx.read_at(32) }.unwrap_or(0);
    exec_enter(filename, argv, FLAG_EXECVEAT);
    0
}

#[inline(always)]
fn exec_exit(ctx: &TracePointContext) {
    let key = &pid_tgid();
    // SAFETY: `ret` is at 16 in the sys_exit format; checked by the helper.
    let ret: i64 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    // A successful exec (sched_process_exec reported it): drop the entry
    // without copying it out first.
    if ret >= 0 {
        let _ = PENDING_EXEC.remove(key);
        return;
    }
    // SAFETY: copied out at once; an entry deleted meanwhile (LRU eviction) stays
    // readable until the program returns (BPF programs run under RCU).
    let Some(pending) = (unsafe { PENDING_EXEC.get(key) }).copied() else {
        return;
    };
    let _ = PENDING_EXEC.remove(key);
    if !offsets_ready(ctx) {
        return;
    }
    exec_failed(ctx, ret, &pending);
}

/// On failure the old image still runs: describe the attempt from the caller's
/// memory (there is no kernel copy of a path that was never opened).
#[inline(always)]
fn exec_failed<C: EbpfContext>(ctx: &C, ret: i64, pending: &PendingExec) {
    let Some(buf) = scratch(ctx) else { return };
    // SAFETY: `buf` is this CPU's scratch entry (as in `sched_process_exec`);
    // the path is masked below PATH_MAX and each argument lands at an offset
    // masked below ARGV_MAX with at most FAILED_EXEC_ARG_MAX bytes, inside
    // `data`. `p` is a local u64 the pointer reads fill (4 or 8 bytes).
    unsafe {
        let rec = &mut (*buf).rec;
        fill_task(current_task(), &mut rec.task);
        rec.task.cgroup_id = current_cgroup_id();
        rec.errno = (-ret) as i32;
        rec.flags = pending.flags;
        // The failed caller keeps its image; user space knows its cwd.
        // Volatile: three plain zero stores become a `memset` call (see `kread`).
        write_volatile(addr_of_mut!(rec.cwd_dentry), 0);
        write_volatile(addr_of_mut!(rec.cwd_mnt), 0);
        write_volatile(addr_of_mut!(rec.cwd_ino), 0);
        rec.cwd_len = 0;
        write_volatile(addr_of_mut!(rec.cpu.utime_ns), 0);
        write_volatile(addr_of_mut!(rec.cpu.stime_ns), 0);
        write_volatile(addr_of_mut!(rec.cpu.runtime_ns), 0);
        let data = addr_of_mut!((*buf).data).cast::<u8>();
        let n = bpf_probe_read_user_str(data.cast(), PATH_MAX as u32, pending.filename as *const _);
        let path_len = if n > 0 { (n - 1) as usize } else { 0 };
        let path_len = path_len & (PATH_MAX - 1);
        rec.path_len = path_len as u32;

        let cursor = addr_of_mut!((*buf).cursor);
        write_volatile(cursor, 0);
        let mut i: usize = 0;
        // A 32-bit caller's argv is an array of 32-bit pointers.
        let width: u64 = if pending.flags & FLAG_COMPAT != 0 {
            4
        } else {
            8
        };
        while i < FAILED_EXEC_ARGS_MAX {
            let mut p: u64 = 0;
            let at = (pending.argv + (i as u64) * width) as *const _;
            let read = if width == 4 {
                bpf_probe_read_user(addr_of_mut!(p).cast(), 4, at)
            } else {
                bpf_probe_read_user(addr_of_mut!(p).cast(), 8, at)
            };
            if pending.argv == 0 || read != 0 || p == 0 {
                break;
            }
            let off = (read_volatile(cursor) as usize) & (2 * ARGV_MAX - 1);
            if off + FAILED_EXEC_ARG_MAX > ARGV_MAX {
                rec.flags |= FLAG_ARGV_TRUNCATED;
                break;
            }
            let dst = data.add(path_len + (off & (ARGV_MAX - 1)));
            let n = bpf_probe_read_user_str(dst.cast(), FAILED_EXEC_ARG_MAX as u32, p as *const _);
            if n <= 0 {
                break;
            }
            if n as usize >= FAILED_EXEC_ARG_MAX {
                rec.flags |= FLAG_ARGV_TRUNCATED;
            }
            write_volatile(cursor, (off + n as usize) as u64);
            i += 1;
        }
        if i == FAILED_EXEC_ARGS_MAX {
            rec.flags |= FLAG_ARGV_TRUNCATED;
        }
        let off = (read_volatile(cursor) as usize) & (2 * ARGV_MAX - 1);
        rec.argv_len = off as u32;
        rec.env_len = 0;
        write_volatile(addr_of_mut!(rec.file_ino), 0);
        rec.file_dev = 0;
        write_volatile(addr_of_mut!(rec.file_size), 0);
        write_volatile(addr_of_mut!(rec.file_ctime_sec), 0);
        rec.file_ctime_nsec = 0;
        let words = addr_of_mut!(rec.at_random).cast::<u64>();
        write_volatile(words, 0);
        write_volatile(words.add(1), 0);
        submit_exec(buf, path_len, off);
    }
}

#[tracepoint(name = "sys_exit_execve", category = "syscalls")]
fn sys_exit_execve(ctx: TracePointContext) -> i32 {
    exec_exit(&ctx);
    0
}

#[tracepoint(name = "sys_exit_execveat", category = "syscalls")]
fn sys_exit_execveat(ctx: TracePointContext) -> i32 {
    exec_exit(&ctx);
    0
}

// ------------------------------------------------ compat (32-bit) failed execs

/// i386 `execve` and `execveat`. The native syscall tracepoints skip 32-bit
/// syscalls (x86 sets ARCH_TRACE_IGNORE_COMPAT_SYSCALLS), so a failed exec
/// through `int 0x80` is seen only here; successful ones reach
/// `sched_process_exec` like any other.
const NR_IA32_EXECVE: i64 = 11;
const NR_IA32_EXECVEAT: i64 = 358;
/// `thread_info.status` bit of a 32-bit syscall in progress (x86).
const TS_COMPAT: u32 = 0x0002;
/// `struct pt_regs` (x86-64 uapi layout): the i386 argument registers.
const PT_REGS_BX: usize = 40;
const PT_REGS_CX: usize = 88;
const PT_REGS_DX: usize = 96;
const PT_REGS_ORIG_AX: usize = 120;

/// The failed i386 exec's report, from the syscall's exit alone (one program
/// on the hot path, not two): the saved user registers still hold the
/// arguments, and the caller's memory its path and argv. Every other syscall
/// leaves at the first or second compare (a result >= 0, or another number).
#[raw_tracepoint(tracepoint = "sys_exit")]
fn compat_sys_exit(ctx: RawTracePointContext) -> i32 {
    let ret: i64 = ctx.arg(1);
    if ret >= 0 {
        return 0;
    }
    let regs: usize = ctx.arg(0);
    let nr = kread::<u64>(regs, PT_REGS_ORIG_AX) as i64;
    if nr != NR_IA32_EXECVE && nr != NR_IA32_EXECVEAT {
        return 0;
    }
    // On x86-64, 11 is also the native munmap: only a 32-bit syscall counts.
    let status_off = off!(task_ti_status);
    let task = current_task();
    if status_off == 0 || kread::<u32>(task, status_off) & TS_COMPAT == 0 {
        return 0;
    }
    if !offsets_ready(&ctx) {
        return 0;
    }
    let (bx, cx, dx) = (
        kread::<u64>(regs, PT_REGS_BX) & 0xffff_ffff,
        kread::<u64>(regs, PT_REGS_CX) & 0xffff_ffff,
        kread::<u64>(regs, PT_REGS_DX) & 0xffff_ffff,
    );
    let pending = if nr == NR_IA32_EXECVE {
        PendingExec {
            filename: bx,
            argv: cx,
            flags: FLAG_COMPAT,
            _pad: 0,
        }
    } else {
        PendingExec {
            filename: cx,
            argv: dx,
            flags: FLAG_COMPAT | FLAG_EXECVEAT,
            _pad: 0,
        }
    };
    exec_failed(&ctx, ret, &pending);
    0
}

// ---------------------------------------------------------------- lifecycle

/// Args: (parent, child). Threads share the parent's tgid and are skipped.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    if !offsets_ready(&ctx) {
        return 0;
    }
    let child: u64 = ctx.arg(1);
    let child = child as usize;
    let pid = kread::<u32>(child, off!(task_pid));
    let tgid = kread::<u32>(child, off!(task_tgid));
    if pid != tgid {
        return 0;
    }
    // Written in place in the ring: no record on the stack to zero or copy.
    let Some(mut entry) = EVENTS.reserve::<ForkRecord>(0) else {
        count(counter::RING_FULL);
        return 0;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` is the reservation, aligned and sized for a ForkRecord (plain
    // integers); it is written field by field before `submit`.
    unsafe {
        (*rec).header = header(RecordKind::Fork, core::mem::size_of::<ForkRecord>());
        fill_task(child, addr_of_mut!((*rec).task));
        (*rec).task.cgroup_id = current_cgroup_id();
    }
    entry.submit(wakeup_flags());
    count(counter::SUBMITTED);
    0
}

/// Args: (task[, group_dead]). The process is gone once its last thread exits,
/// which `signal->live` tells on every kernel version.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    if !offsets_ready(&ctx) {
        return 0;
    }
    let task: u64 = ctx.arg(0);
    let task = task as usize;
    let signal = kptr(task, off!(task_signal));
    let live = kread::<i32>(signal, off!(signal_live));
    if live != 0 {
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<ExitRecord>(0) else {
        count(counter::RING_FULL);
        return 0;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: as in `sched_process_fork`, for an ExitRecord.
    unsafe {
        (*rec).header = header(RecordKind::Exit, core::mem::size_of::<ExitRecord>());
        fill_task(task, addr_of_mut!((*rec).task));
        (*rec).task.cgroup_id = current_cgroup_id();
        (*rec).exit_code = kread::<u32>(task, off!(task_exit_code));
        (*rec)._pad = 0;
        cpu_usage(task, addr_of_mut!((*rec).cpu));
        // Threads that exited before this one but are not yet released (the
        // leader, a zombie until the parent reaps the process, above all)
        // have not added their time to `signal` yet: it is still theirs.
        add_live_threads(task, signal, addr_of_mut!((*rec).cpu));
        (*rec).maxrss_pages = kread::<u64>(signal, off!(signal_maxrss));
    }
    entry.submit(wakeup_flags());
    count(counter::SUBMITTED);
    0
}

// ---------------------------------------------------------------- usage sweeps

/// `task->flags` bit of a kernel thread.
const PF_KTHREAD: u32 = 0x0020_0000;

/// A task iterator's context (`struct bpf_iter__task`): the seq_file's meta
/// data, then the task (null on the last call, after every task).
#[repr(C)]
pub struct IterTaskCtx {
    meta: *const IterMeta,
    task: usize,
}

/// `struct bpf_iter_meta`, of which only the seq_file is used.
#[repr(C)]
pub struct IterMeta {
    seq: *mut aya_ebpf::bindings::seq_file,
}

/// `iter/task`: a usage sweep, which user space runs every `--usage-interval`
/// by reading the iterator: for each live process (at its leader; the
/// iterator visits every thread), a [`UsageRecord`]. One byte per record
/// goes to the iterator's output, so each read of N bytes covers at most N
/// records and the reader drains the ring between reads.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
// The kernel calls it with its own context, as the program macros' entry points.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn usage_sweep(ctx: *mut IterTaskCtx) -> i32 {
    if off!(valid) == 0 {
        return 0;
    }
    // The task as a plain address (copied, not loaded: the verifier would
    // type a loaded one as a BTF pointer, on which `kread`'s variable offsets
    // are refused).
    let task = kptr(ctx as usize, core::mem::offset_of!(IterTaskCtx, task));
    // One record per process, at its leader (a leader that has exited
    // before its other threads is still there, without an address space).
    let (tid, tgid) = kread_pair(task, off!(task_pid), off!(task_tgid));
    if task == 0 || tid != tgid || kread::<u32>(task, off!(task_flags)) & PF_KTHREAD != 0 {
        return 0;
    }
    // A process whose last thread has exited is its exit event's.
    let signal = kptr(task, off!(task_signal));
    if kread::<i32>(signal, off!(signal_live)) <= 0 {
        return 0;
    }
    let mm = kptr(task, off!(task_mm));
    let Some(mut entry) = EVENTS.reserve::<UsageRecord>(0) else {
        count(counter::RING_FULL);
        return 0;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: as in `sched_process_fork`, for a UsageRecord.
    unsafe {
        (*rec).header = header(RecordKind::Usage, core::mem::size_of::<UsageRecord>());
        fill_task(task, addr_of_mut!((*rec).task));
        // The reader's cgroup is all the helper knows: read the task's own.
        let css_set = kptr(task, off!(task_cgroups));
        let cgroup = kptr(css_set, off!(css_set_dfl_cgrp));
        let kn = kptr(cgroup, off!(cgroup_kn));
        (*rec).task.cgroup_id = kread::<u64>(kn, off!(kernfs_node_id));
        cpu_usage(task, addr_of_mut!((*rec).cpu));
        let (threads, cut) = add_live_threads(task, signal, addr_of_mut!((*rec).cpu));
        (*rec).threads = threads;
        (*rec).flags = if cut { USAGE_THREADS_CUT } else { 0 };
        (*rec).maxrss_pages = kread::<u64>(signal, off!(signal_maxrss));
        (*rec).hiwater_rss_pages = kread::<u64>(mm, off!(mm_hiwater_rss));
        let stride = off!(mm_rss_stride);
        (*rec).rss_pages = if stride == 0 {
            0
        } else {
            // MM_FILEPAGES, MM_ANONPAGES, MM_SHMEMPAGES (0, 1, 3; 2 is swap).
            // Per-CPU deltas not yet folded in can make a counter briefly negative.
            let at = |i: usize| kread::<i64>(mm, off!(mm_rss_count) + i * stride).max(0) as u64;
            at(0) + at(1) + at(3)
        };
    }
    entry.submit(0);
    count(counter::SUBMITTED);
    let one = 1u8;
    // SAFETY: `meta` is the kernel's, valid while the program runs; the
    // helper copies one byte from the stack into its seq_file.
    unsafe {
        let seq = read_volatile(addr_of!((*read_volatile(addr_of!((*ctx).meta))).seq));
        aya_ebpf::helpers::generated::bpf_seq_write(seq, addr_of!(one).cast(), 1);
    }
    0
}

/// Add the CPU time of the process's threads other than `leader` (whose own
/// [`cpu_usage`] counted) to `dst`: those on `signal->thread_head` (the list
/// `for_each_thread` walks, under RCU as BPF programs run), live or exited
/// but not yet released (a released thread's time is in `signal`). Returns
/// the threads counted, the leader included, and whether the list was
/// longer than [`USAGE_THREADS_MAX`].
///
/// # Safety
///
/// `dst` valid for reads and writes and 8-byte aligned.
#[inline(always)]
unsafe fn add_live_threads(leader: usize, signal: usize, dst: *mut CpuUsage) -> (u32, bool) {
    let head = signal + off!(signal_thread_head);
    let link = off!(task_thread_node);
    let mut node = kptr(head, 0);
    let mut threads = 0u32;
    for _ in 0..USAGE_THREADS_MAX {
        if node == head || node == 0 {
            return (threads.max(1), false);
        }
        let t = node - link;
        threads += 1;
        if t != leader {
            // SAFETY: per this function's contract.
            unsafe {
                (*dst).utime_ns += kread::<u64>(t, off!(task_utime));
                (*dst).stime_ns += kread::<u64>(t, off!(task_stime));
                (*dst).runtime_ns += kread::<u64>(t, off!(task_sum_exec_runtime));
            }
        }
        node = kptr(node, 0);
    }
    (threads, node != head)
}

// ---------------------------------------------------------------- connect

/// `sys_enter_connect`: remember the descriptor, so the exit can read the
/// socket's local address; the cgroup hook adds the cookie if the socket is inet.
#[tracepoint(name = "sys_enter_connect", category = "syscalls")]
fn sys_enter_connect(ctx: TracePointContext) -> i32 {
    // SAFETY: `fd` is at 16 in the sys_enter format; checked by the helper.
    let fd: u64 = unsafe { ctx.read_at(16) }.unwrap_or(u64::MAX);
    let key = &pid_tgid();
    let pending = &PendingConnect {
        cookie: 0,
        fd: fd as i32,
        family: 0,
        protocol: 0,
    };
    if PENDING_CONNECT.insert(key, pending, 0).is_err() {
        count(counter::PENDING_FULL);
    }
    0
}

/// The hook's context: the kernel's `struct bpf_sock_addr` view.
#[inline(always)]
fn sock_addr(ctx: &SockAddrContext) -> &bpf_sock_addr {
    // SAFETY: the kernel hands the program a valid context that lives as long
    // as the program runs; the verifier checks every field access.
    unsafe { &*ctx.sock_addr }
}

#[inline(always)]
fn socket_cookie(ctx: &SockAddrContext) -> u64 {
    // SAFETY: the helper takes the program's own context, as passed here.
    unsafe { bpf_get_socket_cookie(ctx.as_ptr()) }
}

/// The destination as the kernel copied it, IPv4 in the first word.
#[inline(always)]
fn hook_address(sa: &bpf_sock_addr, v6: bool) -> [u8; 16] {
    // Built as words: a zeroed byte array would become a `memset` call.
    let words: [u32; 4] = if v6 {
        sa.user_ip6
    } else {
        [sa.user_ip4, 0, 0, 0]
    };
    // SAFETY: same size, and every bit pattern is a valid [u8; 16].
    unsafe { core::mem::transmute(words) }
}

/// Emit the connect (or first send) record, in the caller's context, before the
/// kernel acts: the event exists whatever path led here and whatever follows.
#[inline(always)]
fn emit_connect(ctx: &SockAddrContext, v6: bool, op: u16, cookie: u64, flags: u16) {
    if !offsets_ready(ctx) {
        return;
    }
    let sa = sock_addr(ctx);
    let daddr = hook_address(sa, v6);
    let Some(mut entry) = EVENTS.reserve::<ConnectRecord>(0) else {
        count(counter::RING_FULL);
        return;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` is the reservation, aligned and sized for a ConnectRecord
    // (plain integers), written field by field before `submit`; `d` reads the
    // 16 bytes of the local `daddr`.
    unsafe {
        (*rec).header = header(RecordKind::Connect, core::mem::size_of::<ConnectRecord>());
        fill_task(current_task(), addr_of_mut!((*rec).task));
        (*rec).task.cgroup_id = current_cgroup_id();
        (*rec).cookie = cookie;
        (*rec).family = if v6 {
            tracer_common::AF_INET6
        } else {
            tracer_common::AF_INET
        };
        (*rec).protocol = sa.protocol as u16;
        (*rec).op = op;
        (*rec).flags = flags;
        let d = addr_of!(daddr).cast::<u64>();
        let dst = addr_of_mut!((*rec).daddr).cast::<u64>();
        write_volatile(dst, core::ptr::read_unaligned(d));
        write_volatile(dst.add(1), core::ptr::read_unaligned(d.add(1)));
        (*rec).dport = u16::from_be(sa.user_port as u16);
        write_volatile(addr_of_mut!((*rec)._pad).cast::<u32>(), 0);
        write_volatile(addr_of_mut!((*rec)._pad).cast::<u16>().add(2), 0);
    }
    entry.submit(wakeup_flags());
    count(counter::SUBMITTED);
}

const IPPROTO_TCP: u32 = 6;
const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_CLOSE: u32 = 7;

/// Runs for every inet connect in the caller's context: the `connect` syscall
/// (native and compat), io_uring's `IORING_OP_CONNECT`, TCP Fast Open's
/// `sendto`/`sendmsg(MSG_FASTOPEN)`.
#[inline(always)]
fn connect_hook(ctx: &SockAddrContext, v6: bool) {
    let sa = sock_addr(ctx);
    // A TCP socket not in CLOSE is already connecting or connected: a repeated
    // `connect` polls it (EALREADY/EISCONN), which is not a new action.
    // SAFETY: the union's one member is the `sk` pointer (the others are
    // bindgen's alignment padding).
    let sk = unsafe { sa.__bindgen_anon_1.sk };
    // SAFETY: a non-null `sk` of this context is the kernel's `bpf_sock` view of
    // the socket, valid during the program (the verifier checks the access).
    if sa.protocol == IPPROTO_TCP && !sk.is_null() && unsafe { (*sk).state } != TCP_CLOSE {
        return;
    }
    let cookie = socket_cookie(ctx);
    let key = &pid_tgid();
    let mut flags = 0;
    // Inside this thread's `connect` syscall: the exit reports the result.
    if let Some(p) = PENDING_CONNECT.get_ptr_mut(key) {
        // SAFETY: a valid entry from the lookup, keyed by this thread, which is
        // here and not in its syscall exit (the only other user of the entry).
        unsafe {
            (*p).cookie = cookie;
            (*p).protocol = sa.protocol as u16;
            (*p).family = if v6 {
                tracer_common::AF_INET6
            } else {
                tracer_common::AF_INET
            };
        }
        flags = CONNECT_IN_SYSCALL;
    }
    emit_connect(ctx, v6, CONNECT_OP_CONNECT, cookie, flags);
}

#[cgroup_sock_addr(connect4)]
fn connect4(ctx: SockAddrContext) -> i32 {
    connect_hook(&ctx, false);
    1
}

#[cgroup_sock_addr(connect6)]
fn connect6(ctx: SockAddrContext) -> i32 {
    connect_hook(&ctx, true);
    1
}

/// Map values handed over by reference to a constant: no stack slot to fill.
const ONE_U8: &u8 = &1;
const ONE_U32: &u32 = &1;

/// An unconnected datagram send names its destination each time: report the
/// first send from each socket to each destination, up to
/// `SEND_DESTINATIONS_MAX` destinations per socket (then only count).
#[inline(always)]
fn sendmsg_hook(ctx: &SockAddrContext, v6: bool) {
    let sa = sock_addr(ctx);
    let cookie = socket_cookie(ctx);
    let socket = &cookie;
    // Written word by word: a struct literal with arrays becomes a `memset` call.
    let mut slot = core::mem::MaybeUninit::<SendKey>::uninit();
    let k = slot.as_mut_ptr();
    // SAFETY: `k` points to the local `slot`, and every byte of the key is
    // written (aligned word stores) before it is read.
    let key = unsafe {
        let daddr = hook_address(sa, v6);
        let d = addr_of!(daddr).cast::<u64>();
        write_volatile(addr_of_mut!((*k).cookie), cookie);
        let dst = addr_of_mut!((*k).daddr).cast::<u64>();
        write_volatile(dst, core::ptr::read_unaligned(d));
        write_volatile(dst.add(1), core::ptr::read_unaligned(d.add(1)));
        // dport and its padding: one word, the port in the low half.
        let port = u64::from(u16::from_be(sa.user_port as u16));
        write_volatile(addr_of_mut!((*k).dport).cast::<u64>(), port);
        &*k
    };
    if SENT_TO.get_ptr(key).is_some() {
        return;
    }
    let _ = SENT_TO.insert(key, ONE_U8, 0);
    let seen = match SEND_DESTINATIONS.get_ptr_mut(socket) {
        // SAFETY: a valid entry from the lookup. Two CPUs sending on one socket
        // at once may lose an increment: the cap is then a little loose, never
        // unsound.
        Some(n) => unsafe {
            *n += 1;
            *n
        },
        None => {
            let _ = SEND_DESTINATIONS.insert(socket, ONE_U32, 0);
            1
        }
    };
    if seen > SEND_DESTINATIONS_MAX {
        count(counter::SENDS_UNREPORTED);
        return;
    }
    emit_connect(ctx, v6, CONNECT_OP_SENDMSG, cookie, 0);
}

#[cgroup_sock_addr(sendmsg4)]
fn sendmsg4(ctx: SockAddrContext) -> i32 {
    sendmsg_hook(&ctx, false);
    1
}

#[cgroup_sock_addr(sendmsg6)]
fn sendmsg6(ctx: SockAddrContext) -> i32 {
    sendmsg_hook(&ctx, true);
    1
}

/// The socket's local address, once the kernel has bound it.
///
/// # Safety
///
/// `rec` must be valid for writes and aligned (a ring buffer reservation).
#[inline(always)]
unsafe fn sock_source(sk: usize, rec: *mut ConnectResultRecord) {
    // SAFETY: the caller's contract on `rec`; `saddr` is 8-byte aligned in it.
    unsafe {
        zero16(addr_of_mut!((*rec).saddr));
        (*rec).sport = 0;
        (*rec).source_known = 0;
        if sk == 0 {
            return;
        }
        let family = kread::<u16>(sk, off!(sock_family));
        (*rec).family = family;
        (*rec).sport = kread::<u16>(sk, off!(sock_num));
        if family == tracer_common::AF_INET6 {
            kread16(addr_of_mut!((*rec).saddr), sk, off!(sock_v6_rcv_saddr));
        } else {
            let a = kread::<u32>(sk, off!(sock_rcv_saddr));
            write_volatile(addr_of_mut!((*rec).saddr).cast::<u32>(), a);
        }
        (*rec).source_known = 1;
    }
}

/// The `struct sock` behind descriptor `fd` of the current task; 0 if none.
#[inline(always)]
fn fd_sock(fd: i32) -> usize {
    if fd < 0 {
        return 0;
    }
    let task = current_task();
    let files = kptr(task, off!(task_files));
    let fdt = kptr(files, off!(files_fdt));
    let max_fds = kread::<u32>(fdt, off!(fdtable_max_fds));
    if fd as u32 >= max_fds {
        return 0;
    }
    let fds = kptr(fdt, off!(fdtable_fd));
    let file = kptr(fds, (fd as usize) * 8);
    let socket = kptr(file, off!(file_private_data));
    kptr(socket, off!(socket_sk))
}

#[inline(always)]
fn emit_result(cookie: u64, errno: i32, source_of: u16, sk: usize) {
    let Some(mut entry) = EVENTS.reserve::<ConnectResultRecord>(0) else {
        count(counter::RING_FULL);
        return;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` is the reservation, aligned and sized for a
    // ConnectResultRecord (plain integers), written in full before `submit`.
    unsafe {
        (*rec).header = header(
            RecordKind::ConnectResult,
            core::mem::size_of::<ConnectResultRecord>(),
        );
        (*rec).cookie = cookie;
        (*rec).errno = errno;
        (*rec).source_of = source_of;
        (*rec).family = 0;
        (*rec)._pad = 0;
        sock_source(sk, rec);
    }
    entry.submit(wakeup_flags());
    count(counter::SUBMITTED);
}

/// The `connect` syscall returned: its result, for a connect the cgroup hook saw
/// inside it. A TCP connect that succeeded or went on in the background is
/// reported by the state change instead (once, with the bound address).
#[tracepoint(name = "sys_exit_connect", category = "syscalls")]
fn sys_exit_connect(ctx: TracePointContext) -> i32 {
    let key = &pid_tgid();
    // SAFETY: copied out at once; an entry deleted meanwhile (LRU eviction) stays
    // readable until the program returns (BPF programs run under RCU).
    let Some(pending) = (unsafe { PENDING_CONNECT.get(key) }).copied() else {
        return 0;
    };
    let _ = PENDING_CONNECT.remove(key);
    // The hook did not run inside this syscall: not an inet socket, or a
    // repeated connect of a TCP socket under way.
    if pending.cookie == 0 || !offsets_ready(&ctx) {
        return 0;
    }
    // SAFETY: `ret` is at 16 in the sys_exit format; checked by the helper.
    let ret: i64 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    if u32::from(pending.protocol) == IPPROTO_TCP && (ret == 0 || ret == -EINPROGRESS) {
        return 0;
    }
    let errno = if ret < 0 { (-ret) as i32 } else { 0 };
    let sk = fd_sock(pending.fd);
    emit_result(pending.cookie, errno, RESULT_FROM_SYSCALL, sk);
    0
}

const EINPROGRESS: i64 = 115;
const ECONNABORTED: i32 = 103;

/// `inet_sock_set_state(sk, oldstate, newstate)`: a TCP socket leaving
/// `SYN_SENT` has its answer, whoever started the connect (a blocking or
/// non-blocking syscall, io_uring, TCP Fast Open).
#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
fn inet_sock_set_state(ctx: RawTracePointContext) -> i32 {
    let args = ctx.as_ptr() as *const u64;
    // SAFETY: a raw tracepoint's context is its argument array, three u64 here.
    let (sk, old, new) = unsafe { (*args as usize, *args.add(1) as i32, *args.add(2) as i32) };
    if old != TCP_SYN_SENT || !offsets_ready(&ctx) {
        return 0;
    }
    let cookie = kread::<u64>(sk, off!(sock_cookie));
    // 0: no cgroup hook ever asked for it, a connect from before we attached.
    if cookie == 0 {
        return 0;
    }
    let errno = if new == TCP_ESTABLISHED {
        0
    } else {
        // Set by the kernel before the socket closes (ECONNREFUSED, ETIMEDOUT,
        // EHOSTUNREACH ...); 0 when the caller closed it first.
        match kread::<i32>(sk, off!(sock_err)) {
            0 => ECONNABORTED,
            e => e,
        }
    };
    emit_result(cookie, errno, RESULT_FROM_STATE, sk);
    0
}

// ---------------------------------------------------------------- cgroups

/// Tracepoint layout (all three share it): root at 8, level at 12, id at 16,
/// `__data_loc char[] path` at 24 (low 16 bits: offset of the string in the record).
#[inline(always)]
fn cgroup_event(ctx: &TracePointContext, op: u32) {
    // SAFETY: offsets of the layout above (here and below), checked by the
    // helper; the integers take any bits.
    let root: i32 = unsafe { ctx.read_at(8) }.unwrap_or(-1);
    // Only the v2 hierarchy (its ids are what bpf_get_current_cgroup_id returns)
    // and the v1 hierarchy whose ids `fill_task` reads (0 when none).
    if root != 0 && root as usize != off!(cgroup_v1_hierarchy) {
        return;
    }
    // SAFETY: see above.
    let id: u64 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    // SAFETY: see above.
    let loc: u32 = unsafe { ctx.read_at(24) }.unwrap_or(0);
    // Reserve in place: the record is larger than the BPF stack.
    let Some(mut entry) = EVENTS.reserve::<CgroupRecord>(0) else {
        count(counter::RING_FULL);
        return;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` is the reservation, aligned and sized for a CgroupRecord;
    // the helper writes at most CGROUP_PATH_MAX bytes into `path` and checks its
    // source (the string inside the tracepoint record).
    unsafe {
        (*rec).header = header(RecordKind::Cgroup, core::mem::size_of::<CgroupRecord>());
        (*rec).op = op;
        (*rec).root = root;
        (*rec).id = id;
        let src = (ctx.as_ptr() as usize + (loc & 0xffff) as usize) as *const core::ffi::c_void;
        let n = bpf_probe_read_kernel_str(
            addr_of_mut!((*rec).path).cast(),
            CGROUP_PATH_MAX as u32,
            src,
        );
        if n <= 0 {
            (*rec).path[0] = 0;
        }
    }
    entry.submit(wakeup_flags());
    count(counter::SUBMITTED);
}

#[tracepoint(name = "cgroup_mkdir", category = "cgroup")]
fn cgroup_mkdir(ctx: TracePointContext) -> i32 {
    cgroup_event(&ctx, CGROUP_MKDIR);
    0
}

#[tracepoint(name = "cgroup_rmdir", category = "cgroup")]
fn cgroup_rmdir(ctx: TracePointContext) -> i32 {
    cgroup_event(&ctx, CGROUP_RMDIR);
    0
}

#[tracepoint(name = "cgroup_rename", category = "cgroup")]
fn cgroup_rename(ctx: TracePointContext) -> i32 {
    cgroup_event(&ctx, CGROUP_RENAME);
    0
}

// ---------------------------------------------------------------- DNS

const ETH_P_IP_BE: u32 = 0x0800_u16.to_be() as u32;
const ETH_P_IPV6_BE: u32 = 0x86dd_u16.to_be() as u32;
const IPPROTO_TCP_U8: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const DNS_PORT: u16 = 53;
/// A DNS header is 12 bytes: anything shorter is not worth a record.
const DNS_HEADER_LEN: u32 = 12;

/// Load a `T` at `off` of the packet (the network header is at 0 in cgroup skb
/// programs); None past its end.
#[inline(always)]
fn skb_load<T: Scalar>(ctx: &SkBuffContext, off: u32) -> Option<T> {
    let mut v = T::default();
    // SAFETY: the helper writes at most `size_of::<T>()` bytes into the local
    // `v`, and any bit pattern is a valid `T` (`Scalar`).
    let r = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb as *const _,
            off,
            addr_of_mut!(v).cast(),
            core::mem::size_of::<T>() as u32,
        )
    };
    (r == 0).then_some(v)
}

/// Copy a DNS message into the ring when the packet comes from port 53
/// (`DNS_ANSWER`, ingress) or goes to it (`DNS_QUERY`, egress). Every other
/// packet leaves after two small loads (IP header, ports). Never drops anything.
#[inline(always)]
fn dns_capture(ctx: &SkBuffContext, direction: u16) {
    let proto = ctx.skb.protocol();
    let skb_len = ctx.skb.len();
    let (v6, l4, ipproto) = if proto == ETH_P_IP_BE {
        // Version/IHL and the protocol, in one load of the first 12 bytes.
        let Some(w) = skb_load::<u64>(ctx, 0) else {
            return;
        };
        let Some(p) = skb_load::<u32>(ctx, 8) else {
            return;
        };
        let b = w.to_le_bytes();
        // Later fragments carry no UDP header (ingress sees reassembled packets).
        let frag = u16::from_be_bytes([b[6], b[7]]) & 0x1fff;
        if frag != 0 {
            return;
        }
        (false, ((b[0] & 0x0f) as u32) * 4, p.to_le_bytes()[1])
    } else if proto == ETH_P_IPV6_BE {
        // Only a transport header right after the fixed one (no extension headers).
        let Some(nh) = skb_load::<u32>(ctx, 4) else {
            return;
        };
        (true, 40, nh.to_le_bytes()[2])
    } else {
        return;
    };
    if ipproto != IPPROTO_UDP && ipproto != IPPROTO_TCP_U8 {
        return;
    }
    let Some(ports) = skb_load::<u32>(ctx, l4) else {
        return;
    };
    let pb = ports.to_le_bytes();
    let port = if direction == DNS_ANSWER {
        u16::from_be_bytes([pb[0], pb[1]])
    } else {
        u16::from_be_bytes([pb[2], pb[3]])
    };
    if port != DNS_PORT {
        return;
    }
    let (msg_off, msg_len) = if ipproto == IPPROTO_UDP {
        let off = l4 + 8;
        (off, skb_len.saturating_sub(off))
    } else {
        let Some(doff) = skb_load::<u32>(ctx, l4 + 12) else {
            return;
        };
        let payload = l4 + ((doff.to_le_bytes()[0] >> 4) as u32) * 4;
        let avail = skb_len.saturating_sub(payload);
        if avail == 0 {
            // An ACK, a SYN, a FIN: no data.
            return;
        }
        // One whole message in this segment: its 2-byte length says the rest.
        let prefix = skb_load::<u16>(ctx, payload).map_or(0, u16::from_be) as u32;
        if avail < 2 || prefix != avail - 2 {
            count(counter::DNS_TCP_SKIPPED);
            return;
        }
        (payload + 2, prefix)
    };
    if msg_len < DNS_HEADER_LEN {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<DnsRecord>(0) else {
        count(counter::RING_FULL);
        return;
    };
    let rec = entry.as_mut_ptr();
    let copy = if msg_len as usize > DNS_PAYLOAD_MAX {
        DNS_PAYLOAD_MAX as u32
    } else {
        msg_len
    };
    // Between 1 and DNS_PAYLOAD_MAX, as the verifier must see it.
    let copy = ((copy - 1) & (DNS_PAYLOAD_MAX as u32 - 1)) + 1;
    // The server: source of an answer, destination of a query.
    let (addr_off, addr_len) = match (v6, direction == DNS_ANSWER) {
        (false, true) => (12, 4),
        (false, false) => (16, 4),
        (true, true) => (8, 16),
        (true, false) => (24, 16),
    };
    // SAFETY: `rec` is the reservation, aligned and sized for a DnsRecord
    // (plain integers and bytes), written field by field before `submit`; the
    // helpers write at most 16 bytes into `server` and `copy` (at most
    // DNS_PAYLOAD_MAX) bytes into `payload`.
    let ok = unsafe {
        (*rec).header = header(RecordKind::Dns, core::mem::size_of::<DnsRecord>());
        (*rec).cookie = bpf_get_socket_cookie(ctx.skb.skb.cast());
        (*rec).direction = direction;
        (*rec).flags = if msg_len as usize > DNS_PAYLOAD_MAX {
            DNS_TRUNCATED
        } else {
            0
        };
        (*rec).protocol = ipproto as u16;
        (*rec).family = if v6 {
            tracer_common::AF_INET6
        } else {
            tracer_common::AF_INET
        };
        (*rec).len = copy;
        (*rec).msg_len = msg_len;
        let server = addr_of_mut!((*rec).server);
        zero16(server);
        bpf_skb_load_bytes(ctx.skb.skb as *const _, addr_off, server.cast(), addr_len) == 0
            && bpf_skb_load_bytes(
                ctx.skb.skb as *const _,
                msg_off,
                addr_of_mut!((*rec).payload).cast(),
                copy,
            ) == 0
    };
    if ok {
        entry.submit(wakeup_flags());
        count(counter::SUBMITTED);
    } else {
        entry.discard(0);
        count(counter::READ_FAULT);
    }
}

/// Answers a socket receives. Returns 1: observe, never drop.
#[cgroup_skb(ingress)]
fn dns_ingress(ctx: SkBuffContext) -> i32 {
    dns_capture(&ctx, DNS_ANSWER);
    1
}

/// Queries a socket sends. Returns 1: observe, never drop.
#[cgroup_skb(egress)]
fn dns_egress(ctx: SkBuffContext) -> i32 {
    dns_capture(&ctx, DNS_QUERY);
    1
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
