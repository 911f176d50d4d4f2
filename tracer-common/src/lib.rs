//! Plain `#[repr(C)]` data shared by the probes (`tracer-ebpf`) and user space
//! (`tracer-user`): the records the probes write into the ring buffer, the table of
//! kernel struct offsets user space resolves from BTF and hands to the probes, and
//! the indices of the loss counters.
//!
//! Every record starts with a [`Header`]. Records are versioned by
//! [`RECORD_VERSION`]; user space rejects a version it does not know rather than
//! misreading bytes.
#![no_std]

/// Bumped whenever the layout of any record changes.
pub const RECORD_VERSION: u16 = 9;

/// Bytes of argv the probes copy for one exec. Longer argument lists are cut at
/// this length and flagged with [`FLAG_ARGV_TRUNCATED`].
pub const ARGV_MAX: usize = 32 * 1024;
/// Bytes of the environment the probes copy for one exec (user space keeps
/// only the variables it is configured to report, e.g. the loader's).
pub const ENV_MAX: usize = 16 * 1024;
/// Bytes of the exec path the probes copy (PATH_MAX).
pub const PATH_MAX: usize = 4096;
/// Arguments read one by one for a failed exec (the image never loaded, so the
/// probes walk the caller's argv pointer array).
pub const FAILED_EXEC_ARGS_MAX: usize = 64;
/// Bytes of one argument of a failed exec.
pub const FAILED_EXEC_ARG_MAX: usize = 1024;
pub const COMM_LEN: usize = 16;
pub const TTY_LEN: usize = 16;

/// Record kinds, the first field of every [`Header`].
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Exec = 1,
    Fork = 2,
    Exit = 3,
    Connect = 4,
    Cgroup = 5,
    ConnectResult = 6,
    Dns = 7,
    Usage = 8,
}

impl RecordKind {
    pub fn from_u16(v: u16) -> Option<Self> {
        match v {
            1 => Some(Self::Exec),
            2 => Some(Self::Fork),
            3 => Some(Self::Exit),
            4 => Some(Self::Connect),
            5 => Some(Self::Cgroup),
            6 => Some(Self::ConnectResult),
            7 => Some(Self::Dns),
            8 => Some(Self::Usage),
            _ => None,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Header {
    pub kind: u16,
    pub version: u16,
    /// Total length of the record in bytes, header included.
    pub len: u32,
    /// `bpf_ktime_get_boot_ns()` when the action happened.
    pub ts_boot_ns: u64,
}

/// Who acted, read from the task at the moment of the action.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskInfo {
    pub tgid: u32,
    pub tid: u32,
    pub ptgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// `loginuid`; `u32::MAX` when unset.
    pub auid: u32,
    /// Audit session id; `u32::MAX` when unset.
    pub sessionid: u32,
    pub pid_ns: u32,
    pub mnt_ns: u32,
    pub net_ns: u32,
    /// cgroup v2 id (`bpf_get_current_cgroup_id`; for a fork, the parent's).
    pub cgroup_id: u64,
    /// The task's cgroup in the one cgroup v1 controller hierarchy user space
    /// chose ([`Offsets::cgroup_v1`]): `kernfs_node.id` of that cgroup, the inode
    /// number of its directory in the controller's mount. 0 when none is read.
    pub cgroup_v1_id: u64,
    /// `task->start_boottime` of the thread group leader, in ns since boot.
    pub start_boottime_ns: u64,
    /// `mm->arg_start`, `mm->start_code`, `mm->start_brk`: where the image's argv,
    /// code and heap start (independently randomised); together, part of the exec id.
    pub arg_start: u64,
    pub start_code: u64,
    pub start_brk: u64,
    /// `self_exec_id` of the thread group leader: bumped by every exec of the
    /// process, never by the process itself. Tells a new image from the old
    /// one when nothing else differs (no address randomisation, same argv).
    pub exec_seq: u64,
    pub comm: [u8; COMM_LEN],
    /// Controlling terminal name (`pts0`), empty when none.
    pub tty: [u8; TTY_LEN],
    /// The task's authority: its capability sets (`cred->cap_*`, one bit per
    /// capability number), in `struct cred`'s order so that one read can fill
    /// all five. Valid when [`AUTH_CAPS`] is set in `authority`.
    pub cap_inheritable: u64,
    pub cap_permitted: u64,
    pub cap_effective: u64,
    pub cap_bset: u64,
    pub cap_ambient: u64,
    /// The user namespace of its credentials (`cred->user_ns`): inode number,
    /// nesting level (0: the host's), owner (a uid as the host sees it), and
    /// the task's uid as that namespace sees it. Valid with [`AUTH_USERNS`];
    /// `userns_uid` only with [`AUTH_USERNS_UID`].
    pub userns_inum: u32,
    pub userns_level: u32,
    pub userns_owner: u32,
    pub userns_uid: u32,
    /// `AUTH_*` bits: what was read, no_new_privs, and the seccomp mode
    /// (bits [`AUTH_SECCOMP_SHIFT`].., `SECCOMP_MODE_*`).
    pub authority: u32,
    pub _pad_authority: u32,
}

/// [`TaskInfo::authority`]: the capability sets were read.
pub const AUTH_CAPS: u32 = 1;
/// no_new_privs was read (`task->atomic_flags`); its value is [`AUTH_NO_NEW_PRIVS`].
pub const AUTH_NNP_KNOWN: u32 = 2;
pub const AUTH_NO_NEW_PRIVS: u32 = 4;
/// The seccomp mode was read; it is `(authority >> AUTH_SECCOMP_SHIFT) & 3`.
pub const AUTH_SECCOMP_KNOWN: u32 = 8;
pub const AUTH_SECCOMP_SHIFT: u32 = 4;
/// The user namespace was read (inum, level, owner).
pub const AUTH_USERNS: u32 = 64;
/// `userns_uid` holds the task's uid in its user namespace.
pub const AUTH_USERNS_UID: u32 = 128;
/// The uid has no mapping in the namespace (the kernel shows it as the overflow uid).
pub const AUTH_USERNS_UNMAPPED: u32 = 256;
/// The namespace's uid map has more ranges than the kernel keeps inline
/// ([`UID_MAP_INLINE`]): the probes do not follow it, the uid is unknown.
pub const AUTH_USERNS_MAP_LARGE: u32 = 512;
/// Ranges a `uid_gid_map` holds inline (UID_GID_MAP_MAX_BASE_EXTENTS).
pub const UID_MAP_INLINE: usize = 5;

/// [`Offsets::authority`]: which parts of a task's authority the probes read
/// (a member the running kernel lacks leaves its part unread, not the probes unloaded).
pub const READ_CAPS: u32 = 1;
/// The five capability sets are adjacent, in [`TaskInfo`]'s order: one read.
pub const READ_CAPS_ADJACENT: u32 = 2;
pub const READ_NNP: u32 = 4;
pub const READ_SECCOMP: u32 = 8;
pub const READ_USERNS: u32 = 16;
/// The uid map's layout is known (extents of three u32: first, lower_first, count).
pub const READ_USERNS_UID: u32 = 32;

/// Set when argv was longer than [`ARGV_MAX`] (or a failed exec had more than
/// [`FAILED_EXEC_ARGS_MAX`] arguments) and was cut.
pub const FLAG_ARGV_TRUNCATED: u32 = 1;
/// Set when the path did not fit in [`PATH_MAX`].
pub const FLAG_PATH_TRUNCATED: u32 = 2;
/// Set when argv could not be read at all (page not present).
pub const FLAG_ARGV_UNREADABLE: u32 = 4;
/// Set for an exec through `execveat`.
pub const FLAG_EXECVEAT: u32 = 8;
/// Set when the exec named a file descriptor (`/dev/fd/N`, `/proc/self/fd/N`:
/// fexecve, a memfd, a deleted binary): the path area then holds the opened
/// file's name components from a dentry walk, leaf first, each NUL-terminated.
pub const FLAG_PATH_FROM_FILE: u32 = 16;
/// With [`FLAG_PATH_FROM_FILE`]: the file has no name left (deleted, or a memfd).
pub const FLAG_FILE_UNLINKED: u32 = 32;
/// Set for a failed exec through the 32-bit compat system call table
/// (`int 0x80`, `sysenter`): its argv holds 32-bit pointers.
pub const FLAG_COMPAT: u32 = 64;
/// Set when the environment was longer than [`ENV_MAX`] and was cut.
pub const FLAG_ENV_TRUNCATED: u32 = 128;
/// Set when the environment could not be read (page not present).
pub const FLAG_ENV_UNREADABLE: u32 = 256;
/// Set when the probe walked the working directory's dentries: the record's
/// cwd area (`cwd_len` bytes after the environment) holds its name
/// components, leaf first, each NUL-terminated, up to the process's root.
/// Clear when the walk could not run (user space then reads /proc).
pub const FLAG_CWD_WALKED: u32 = 512;
/// With [`FLAG_CWD_WALKED`]: the walk stopped at [`CWD_STEPS_MAX`] or
/// [`CWD_MAX`] before the root; the components are the deepest ones.
pub const FLAG_CWD_TRUNCATED: u32 = 1024;
/// With [`FLAG_CWD_WALKED`]: the top of the mount tree came before the
/// process's root (a cwd outside its chroot, or in a detached mount): the
/// components are the path from the top of its mount namespace.
pub const FLAG_CWD_OUTSIDE_ROOT: u32 = 2048;
/// With [`FLAG_CWD_WALKED`]: the directory was removed (its dentry is unhashed).
pub const FLAG_CWD_UNLINKED: u32 = 4096;
/// Bytes of working directory components the probe copies.
pub const CWD_MAX: usize = 4096;
/// Steps of the working directory walk: one per name component or mount crossed.
pub const CWD_STEPS_MAX: usize = 64;
/// Name components a dentry walk copies at most.
pub const PATH_COMPONENTS_MAX: usize = 32;
/// Bytes of one name component (NAME_MAX + NUL).
pub const NAME_MAX: usize = 256;

/// An exec, successful (from `sched_process_exec`, after the new image is in
/// place) or failed (from `sys_exit_execve[at]`, with the errno).
///
/// Followed by `path_len` bytes of path, then `argv_len` bytes of argv
/// (NUL-separated, as in `/proc/<pid>/cmdline`), then `env_len` bytes of the
/// environment (likewise, as in `/proc/<pid>/environ`; successful execs only),
/// then `cwd_len` bytes of working directory components ([`FLAG_CWD_WALKED`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecRecord {
    pub header: Header,
    pub task: TaskInfo,
    /// 0 on success, otherwise the positive errno.
    pub errno: i32,
    pub flags: u32,
    pub path_len: u32,
    pub argv_len: u32,
    /// The working directory at the exec, as the kernel knows it: `fs->pwd`'s
    /// dentry and vfsmount addresses and the inode number. Its path is the
    /// walk's ([`FLAG_CWD_WALKED`]); where the walk could not run, user space
    /// keys its /proc cwd cache on these, so a storm of children in one
    /// directory costs one /proc lookup, not one each.
    pub cwd_dentry: u64,
    pub cwd_mnt: u64,
    pub cwd_ino: u64,
    /// The executed file as the kernel opened it (`bprm->file`): inode number
    /// and its file system's device (`sb->s_dev`, the kernel's encoding). A
    /// path can be bind-mounted over; these cannot be named by the workload.
    pub file_ino: u64,
    pub file_dev: u32,
    pub env_len: u32,
    /// The 16 random bytes the kernel drew for this image (`AT_RANDOM` in the
    /// auxiliary vector), read before the image runs: part of its exec id.
    /// Zero when the image has none (not ELF) or they could not be read.
    pub at_random: [u8; 16],
    /// The executed file's size and change time (`i_size`, `i_ctime`) at the
    /// exec: with `file_dev`/`file_ino` they name one version of its content,
    /// the key user space caches the file's SHA-256 by. `file_ctime_nsec` has
    /// the kernel's multigrain flag (bit 31) masked off.
    pub file_size: u64,
    pub file_ctime_sec: i64,
    pub file_ctime_nsec: u32,
    /// Bytes of working directory components after the environment.
    pub cwd_len: u32,
    /// The process's CPU time when the image started: what its usage at exit
    /// is counted from.
    pub cpu: CpuUsage,
}

/// A process's CPU time so far, as the kernel accounts it: what its reaped
/// threads left in `signal_struct` plus the thread reading it (the only one
/// left at an exec, and the last at the process's exit).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuUsage {
    /// `utime` and `stime`, ns: sampled at ticks, they give the split
    /// between user and system time...
    pub utime_ns: u64,
    pub stime_ns: u64,
    /// ...of this, the scheduler's exact total (`sum_exec_runtime`), as
    /// /proc/<pid>/stat scales them.
    pub runtime_ns: u64,
}

/// A new process (not a thread). `task` describes the child.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkRecord {
    pub header: Header,
    pub task: TaskInfo,
}

/// The last thread of a process exited.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitRecord {
    pub header: Header,
    pub task: TaskInfo,
    /// `task->exit_code`: wait status (exit code << 8, or the signal).
    pub exit_code: u32,
    pub _pad: u32,
    /// CPU time of the whole process at its end.
    pub cpu: CpuUsage,
    /// `signal->maxrss`: the process's peak resident set, in pages, over its
    /// life (an image before an exec included: the kernel keeps one).
    pub maxrss_pages: u64,
}

/// Live threads whose CPU a usage sweep adds up per process (the leader
/// included); past it the record says [`USAGE_THREADS_CUT`].
pub const USAGE_THREADS_MAX: usize = 256;
/// [`UsageRecord::flags`]: the process had more live threads than
/// [`USAGE_THREADS_MAX`]; the others' CPU is not in the record.
pub const USAGE_THREADS_CUT: u32 = 1;

/// One live process in a usage sweep (`--usage-interval`, a task iterator
/// user space runs): its leader described as at any action, the CPU of the
/// whole process so far (reaped threads, then each live one, as
/// /proc/<pid>/stat adds them up), and its memory high-water marks.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UsageRecord {
    pub header: Header,
    pub task: TaskInfo,
    pub cpu: CpuUsage,
    /// `signal->maxrss`, pages: the peak of threads and images gone.
    pub maxrss_pages: u64,
    /// `mm->hiwater_rss`, pages: the peak the kernel last recorded for the
    /// address space (it updates it when memory is unmapped).
    pub hiwater_rss_pages: u64,
    /// File, anon and shmem pages resident now (the kernel's counters; 0 when
    /// the running kernel's layout of them is unknown).
    pub rss_pages: u64,
    /// Live threads whose CPU is in `cpu`.
    pub threads: u32,
    /// `USAGE_*` bits.
    pub flags: u32,
}

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// [`ConnectRecord::op`]: a `connect` (syscall, io_uring, TCP Fast Open, compat
/// syscall: the cgroup hook runs for all of them).
pub const CONNECT_OP_CONNECT: u16 = 1;
/// [`ConnectRecord::op`]: the first datagram a socket sends to a destination
/// without connecting (`sendto`/`sendmsg` with an address).
pub const CONNECT_OP_SENDMSG: u16 = 2;
/// [`ConnectRecord::flags`]: the hook ran inside a `connect` syscall of this
/// thread (not io_uring, TCP Fast Open or a compat syscall); its result follows
/// from the syscall's exit.
pub const CONNECT_IN_SYSCALL: u16 = 1;
/// A connect (or a first unconnected send), emitted by the cgroup sock_addr hook
/// in the caller's context before the kernel acts, whatever path led there. The
/// destination is the kernel's copy of the address, never user memory. Its
/// result follows as a [`ConnectResultRecord`] with the same `cookie`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectRecord {
    pub header: Header,
    pub task: TaskInfo,
    /// The socket's cookie (`bpf_get_socket_cookie`): unique per socket for the
    /// life of the boot; joins the result.
    pub cookie: u64,
    pub family: u16,
    /// IPPROTO_TCP / IPPROTO_UDP / ...
    pub protocol: u16,
    /// [`CONNECT_OP_CONNECT`] or [`CONNECT_OP_SENDMSG`].
    pub op: u16,
    /// [`CONNECT_IN_SYSCALL`].
    pub flags: u16,
    /// Network byte order, IPv4 in the first 4 bytes.
    pub daddr: [u8; 16],
    /// Host byte order.
    pub dport: u16,
    pub _pad: [u16; 3],
}

/// [`ConnectResultRecord::source_of`]: the `connect` syscall returned.
pub const RESULT_FROM_SYSCALL: u16 = 1;
/// [`ConnectResultRecord::source_of`]: the TCP socket left `SYN_SENT`
/// (`inet_sock_set_state`): established, or closed with `sk_err`.
pub const RESULT_FROM_STATE: u16 = 2;

/// What became of a connect: from the syscall's return where there is one,
/// otherwise from the socket's state change (io_uring, TCP Fast Open,
/// non-blocking connects).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectResultRecord {
    pub header: Header,
    pub cookie: u64,
    /// 0 on success, otherwise the positive errno.
    pub errno: i32,
    /// [`RESULT_FROM_SYSCALL`] or [`RESULT_FROM_STATE`].
    pub source_of: u16,
    pub family: u16,
    /// The socket's local address once the kernel bound it; network order.
    pub saddr: [u8; 16],
    /// Host byte order; 0 when not known.
    pub sport: u16,
    /// Non-zero when `saddr`/`sport` were read from the socket.
    pub source_known: u16,
    pub _pad: u32,
}

/// Bytes of one DNS message the probes copy (a power of two, for the mask that
/// bounds the copy). Longer messages are cut and flagged with [`DNS_TRUNCATED`];
/// plain A/AAAA answers are far shorter.
pub const DNS_PAYLOAD_MAX: usize = 1024;
/// [`DnsRecord::direction`]: a query a socket sent (destination port 53).
pub const DNS_QUERY: u16 = 1;
/// [`DnsRecord::direction`]: an answer a socket received (source port 53).
pub const DNS_ANSWER: u16 = 2;
/// [`DnsRecord::flags`]: the message was longer than [`DNS_PAYLOAD_MAX`] and was cut.
pub const DNS_TRUNCATED: u16 = 1;

/// A DNS message to or from port 53 (UDP, or TCP when one segment carries the
/// whole length-prefixed message), copied by the cgroup skb programs as the
/// kernel hands it to (answers) or takes it from (queries) a socket. The
/// socket's cookie names the socket, and through its connect record the
/// network namespace it lives in.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DnsRecord {
    pub header: Header,
    pub cookie: u64,
    /// [`DNS_QUERY`] or [`DNS_ANSWER`].
    pub direction: u16,
    /// [`DNS_TRUNCATED`].
    pub flags: u16,
    /// IPPROTO_UDP / IPPROTO_TCP.
    pub protocol: u16,
    pub family: u16,
    /// Bytes of `payload` that hold the message.
    pub len: u32,
    /// The message's length on the wire.
    pub msg_len: u32,
    /// The DNS server's address (destination of a query, source of an answer);
    /// network byte order, IPv4 in the first 4 bytes.
    pub server: [u8; 16],
    pub payload: [u8; DNS_PAYLOAD_MAX],
}

/// Bytes of a cgroup path the probes copy.
pub const CGROUP_PATH_MAX: usize = 1024;

pub const CGROUP_MKDIR: u32 = 1;
pub const CGROUP_RMDIR: u32 = 2;
pub const CGROUP_RENAME: u32 = 3;

/// A cgroup was created, removed or renamed (from the `cgroup:*` tracepoints), so
/// user space can name a cgroup id even if it lived for milliseconds.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CgroupRecord {
    pub header: Header,
    pub op: u32,
    /// Hierarchy id: 0 is the cgroup v2 (default) hierarchy.
    pub root: i32,
    pub id: u64,
    /// Path relative to the hierarchy root, NUL-terminated (`/a/b`).
    pub path: [u8; CGROUP_PATH_MAX],
}

/// What the connect probes keep between `sys_enter_connect` and its exit: the
/// descriptor, and once the cgroup hook ran inside that syscall, the socket's
/// cookie and protocol (the hook does not run for AF_UNIX and other families).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingConnect {
    pub cookie: u64,
    pub fd: i32,
    pub family: u16,
    pub protocol: u16,
}

/// Key of the first-send map: one unconnected socket and one destination.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SendKey {
    pub cookie: u64,
    pub daddr: [u8; 16],
    pub dport: u16,
    pub _pad: [u16; 3],
}

/// Distinct destinations one unconnected socket reports before further first
/// sends are only counted ([`counter::SENDS_UNREPORTED`]): a UDP scanner or a
/// busy DNS forwarder cannot flood the ring.
pub const SEND_DESTINATIONS_MAX: u32 = 64;

/// What the exec probes keep between `sys_enter_execve[at]` and its exit, to
/// describe a failed exec.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingExec {
    pub filename: u64,
    pub argv: u64,
    pub flags: u32,
    pub _pad: u32,
}

/// Indices into the per-CPU `COUNTERS` array. Anything not delivered is counted here.
pub mod counter {
    /// The ring buffer was full: the record was dropped.
    pub const RING_FULL: u32 = 0;
    /// A kernel read failed and the record was dropped.
    pub const READ_FAULT: u32 = 1;
    /// The pending-connect or pending-exec map was full.
    pub const PENDING_FULL: u32 = 2;
    /// The per-CPU scratch buffer was unavailable.
    pub const SCRATCH: u32 = 3;
    /// Records successfully submitted (not a loss; for rates).
    pub const SUBMITTED: u32 = 4;
    /// First sends of an unconnected socket past [`super::SEND_DESTINATIONS_MAX`]
    /// destinations: seen, counted, not reported one by one.
    pub const SENDS_UNREPORTED: u32 = 5;
    /// DNS messages over TCP split across segments (or several in one): not
    /// reassembled, not copied.
    pub const DNS_TCP_SKIPPED: u32 = 6;
    pub const COUNT: u32 = 8;
}

/// Byte offsets of the kernel struct members the probes read, resolved by user
/// space from the running kernel's BTF and handed to the probes as a global at load.
/// A zero `valid` means user space did not fill the table and probes stay quiet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    pub valid: u32,
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_group_leader: u32,
    pub task_real_cred: u32,
    pub task_loginuid: u32,
    pub task_sessionid: u32,
    pub task_nsproxy: u32,
    pub task_thread_pid: u32,
    pub task_mm: u32,
    pub task_start_boottime: u32,
    pub task_comm: u32,
    pub task_signal: u32,
    pub task_files: u32,
    pub task_exit_code: u32,
    pub cred_uid: u32,
    pub cred_gid: u32,
    pub cred_euid: u32,
    pub cred_egid: u32,
    pub nsproxy_mnt_ns: u32,
    pub nsproxy_net_ns: u32,
    pub mnt_namespace_inum: u32,
    pub net_inum: u32,
    pub pid_namespace_inum: u32,
    pub pid_level: u32,
    pub pid_numbers: u32,
    pub upid_size: u32,
    pub upid_ns: u32,
    pub mm_arg_start: u32,
    pub mm_start_code: u32,
    pub mm_start_brk: u32,
    pub mm_arg_end: u32,
    pub signal_tty: u32,
    pub tty_name: u32,
    pub signal_live: u32,
    pub files_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,
    pub file_private_data: u32,
    pub socket_sk: u32,
    pub sock_family: u32,
    pub sock_rcv_saddr: u32,
    pub sock_num: u32,
    pub sock_v6_rcv_saddr: u32,
    /// `sock_common.skc_cookie` (what `bpf_get_socket_cookie` set) and
    /// `sock.sk_err`: the join key and the error of a TCP connect that failed.
    pub sock_cookie: u32,
    pub sock_err: u32,
    /// `task_struct.thread_info.status` (x86: `TS_COMPAT` marks a 32-bit
    /// syscall in progress); 0 where the kernel has none, and the compat exec
    /// probes stay detached.
    pub task_ti_status: u32,
    pub task_self_exec_id: u32,
    pub mm_env_start: u32,
    pub mm_env_end: u32,
    pub mm_saved_auxv: u32,
    pub file_inode: u32,
    pub inode_sb: u32,
    pub super_block_dev: u32,
    pub bprm_filename: u32,
    pub task_fs: u32,
    pub fs_pwd_dentry: u32,
    pub fs_pwd_mnt: u32,
    /// `fs_struct.root`: where the working directory walk stops. Non-zero
    /// `cwd_walk`: the probes walk (every member it needs was resolved).
    pub fs_root_dentry: u32,
    pub fs_root_mnt: u32,
    pub cwd_walk: u32,
    pub dentry_inode: u32,
    pub inode_ino: u32,
    /// `inode.i_size`, and the seconds and nanoseconds of its change time
    /// (`i_ctime_sec`/`i_ctime_nsec` since 6.11, the `tv_sec`/`tv_nsec` of
    /// `__i_ctime` or `i_ctime` before).
    pub inode_size: u32,
    pub inode_ctime_sec: u32,
    pub inode_ctime_nsec: u32,
    /// For the file an exec through a descriptor ran: `bprm->file`, its
    /// `f_path`, and what a dentry walk up to the root needs.
    pub bprm_file: u32,
    pub file_path_dentry: u32,
    pub file_path_mnt: u32,
    pub dentry_parent: u32,
    pub dentry_name: u32,
    pub dentry_hash_pprev: u32,
    pub vfsmount_mnt_root: u32,
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    /// The task's cgroup in a v1 hierarchy (cgroup v1 hosts, where every task's
    /// v2 cgroup is the root): `task->cgroups->subsys[ID]->cgroup->kn->id`.
    pub task_cgroups: u32,
    pub css_set_subsys: u32,
    pub css_cgroup: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_id: u32,
    /// Non-zero: read [`TaskInfo::cgroup_v1_id`], through `css_set` at
    /// [`Offsets::cgroup_v1_css`]. Zero (no v1 controller mounted): skip the read.
    pub cgroup_v1: u32,
    /// Byte offset of `subsys[ID]` in `struct css_set`, ID being the chosen
    /// controller's `enum cgroup_subsys_id` value on the running kernel.
    pub cgroup_v1_css: u32,
    /// That controller's v1 hierarchy id (the `root` of the `cgroup:*`
    /// tracepoints), whose mkdir/rmdir/rename are forwarded besides v2's; 0 none.
    pub cgroup_v1_hierarchy: u32,
    /// CPU accounting ([`CpuUsage`]): the thread's and the reaped threads'.
    pub task_utime: u32,
    pub task_stime: u32,
    pub task_sum_exec_runtime: u32,
    pub signal_utime: u32,
    pub signal_stime: u32,
    pub signal_sum_sched_runtime: u32,
    pub signal_maxrss: u32,
    /// Usage sweeps: the task's v2 cgroup (`task->cgroups->dfl_cgrp`, as the
    /// reader's own is all a helper gives), and the address space's RSS:
    /// `mm->hiwater_rss`, and the resident counters at `mm_rss_count +
    /// i * mm_rss_stride` (an `atomic_long_t` array before 6.2, `percpu_counter`s
    /// since); `mm_rss_stride` 0 when neither layout is found.
    pub css_set_dfl_cgrp: u32,
    /// The process's live threads: `signal->thread_head`, `task->thread_node`.
    pub signal_thread_head: u32,
    pub task_thread_node: u32,
    /// `task->flags` (`PF_KTHREAD`: kernel threads get no usage sample).
    pub task_flags: u32,
    pub mm_hiwater_rss: u32,
    pub mm_rss_count: u32,
    pub mm_rss_stride: u32,
    /// `READ_*` bits: which of the authority members below the running kernel has.
    pub authority: u32,
    pub cred_cap_inheritable: u32,
    pub cred_cap_permitted: u32,
    pub cred_cap_effective: u32,
    pub cred_cap_bset: u32,
    pub cred_cap_ambient: u32,
    pub task_atomic_flags: u32,
    /// `task->seccomp.mode`.
    pub task_seccomp_mode: u32,
    pub cred_user_ns: u32,
    pub user_ns_inum: u32,
    pub user_ns_level: u32,
    pub user_ns_owner: u32,
    /// `user_ns->uid_map.nr_extents` and `.extent` (inline ranges).
    pub user_ns_uid_nr: u32,
    pub user_ns_uid_extent: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` integers and byte arrays, no padding-sensitive invariants.
    unsafe impl aya::Pod for super::Offsets {}
}
