//! The start-up /proc scan: what every process already running looks like,
//! so actions of processes started before the tracer can be attributed.
//!
//! Every file of a process is read relative to one open `/proc/<pid>`
//! directory, so a pid reused mid-scan fails the reads instead of mixing two
//! processes' data.

use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use crate::escape::escape;
use procfs::process::{Process, Stat, Status};
use procfs::{FromRead as _, ProcError};
use thiserror::Error;

/// PF_KTHREAD in the stat flags field.
const PF_KTHREAD: u32 = 0x0020_0000;
/// What loginuid and sessionid hold when unset (and what we report when unreadable).
const UNSET: u32 = u32::MAX;

#[derive(Debug, Error)]
pub enum ScanError {
    /// The process exited (or never existed); not worth reporting.
    #[error("process {pid} does not exist")]
    Gone { pid: u32 },
    #[error("/proc/{pid}/{file}")]
    Proc {
        pid: u32,
        file: &'static str,
        #[source]
        source: ProcError,
    },
    #[error("/proc/{pid}/{file}")]
    Io {
        pid: u32,
        file: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("/proc/{pid}/{file}: malformed")]
    Malformed {
        pid: u32,
        file: &'static str,
        #[source]
        source: ParseError,
    },
}

/// Why a /proc file's text was not understood.
#[derive(Debug, Error)]
pub enum ParseError {
    #[error("no `<pid> (<comm>) ` prefix")]
    StatShape,
    #[error(transparent)]
    Procfs(#[from] ProcError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcSnapshot {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// stat field 22 (starttime, clock ticks since boot).
    pub start_ticks: u64,
    /// stat fields 48 (arg_start), 26 (startcode), 47 (start_brk); 0 when
    /// unavailable (kernel threads).
    pub arg_start: u64,
    pub start_code: u64,
    pub start_brk: u64,
    /// The image's `AT_RANDOM` bytes (see `exec_id`); zeros when unreadable.
    pub at_random: [u8; 16],
    /// The executed file (device, inode, size, ctime), through `/proc/<pid>/exe`.
    pub file: Option<crate::filehash::FileVersion>,
    /// `/proc/<pid>/environ`, cut to the loader's variables.
    pub loader_env: Option<std::sync::Arc<crate::event::LoaderEnv>>,
    /// `/proc/<pid>/environ` itself, at most [`tracer_common::ENV_MAX`] bytes
    /// as the probe copies it, and whether it was cut (or unreadable): only
    /// for attribution to take the credential variables' names from, then
    /// dropped with the snapshot.
    pub environ: Vec<u8>,
    pub environ_cut: bool,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    /// `/proc/<pid>/loginuid`; u32::MAX when unset or unreadable.
    pub auid: u32,
    /// `/proc/<pid>/sessionid`; u32::MAX when unset or unreadable.
    pub sessionid: u32,
    /// `/proc/<pid>/cmdline` split at NUL, bytes as they are.
    pub argv: Vec<Vec<u8>>,
    /// The command line was longer than the tracer reads of it.
    pub argv_truncated: bool,
    /// readlink `/proc/<pid>/exe`; None if unreadable (kernel threads, zombies).
    pub exe: Option<Vec<u8>>,
    pub cwd: Option<Vec<u8>>,
    /// Inode number of the cwd directory; 0 when unreadable.
    pub cwd_ino: u64,
    pub cgroups: ProcCgroups,
    pub kernel_thread: bool,
}

/// Every process; those exiting mid-scan are skipped.
pub fn scan_all() -> Vec<ProcSnapshot> {
    let processes = match procfs::process::all_processes() {
        Ok(processes) => processes,
        Err(err) => {
            tracing::warn!(%err, "cannot list /proc; starting with an empty process table");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for process in processes {
        let process = match process {
            Ok(process) => process,
            Err(ProcError::NotFound(_)) => continue,
            Err(err) => {
                tracing::debug!(%err, "skipping process");
                continue;
            }
        };
        let Ok(pid) = u32::try_from(process.pid) else {
            continue;
        };
        match snapshot_of(&process, pid) {
            Ok(snap) => out.push(snap),
            Err(ScanError::Gone { .. }) => {}
            Err(err) => tracing::debug!(err = %crate::error_chain(&err), "skipping process"),
        }
    }
    out
}

/// One process, e.g. one the table does not know yet.
pub fn snapshot(pid: u32) -> Result<ProcSnapshot, ScanError> {
    let raw = i32::try_from(pid).map_err(|_| ScanError::Gone { pid })?;
    let process = Process::new(raw).map_err(|e| proc_err(pid, "", e))?;
    snapshot_of(&process, pid)
}

fn snapshot_of(process: &Process, pid: u32) -> Result<ProcSnapshot, ScanError> {
    let malformed = |file| move |source| ScanError::Malformed { pid, file, source };
    // stat and status are read whole here and parsed by procfs (see
    // `parse_stat`, `parse_status_ids`): a read error tells a vanished pid.
    let stat = parse_stat(&read_bytes(process, pid, "stat")?).map_err(malformed("stat"))?;
    let ((uid, euid), (gid, egid)) =
        parse_status_ids(&read_bytes(process, pid, "status")?).map_err(malformed("status"))?;
    // Every process has a cmdline (empty for kernel threads), so failing to
    // read it means the process is gone, or something worth reporting. Not
    // procfs's `cmdline()`: it reads all of it (megabytes are possible), needs
    // UTF-8, and drops empty arguments.
    let (cmdline, argv_truncated) =
        read_bytes_max(process, pid, "cmdline", tracer_common::ARGV_MAX)?;
    let argv = split_cmdline(&cmdline);

    let auid = process.loginuid().unwrap_or(UNSET);
    // procfs has no reader for sessionid.
    let sessionid = read_bytes(process, pid, "sessionid")
        .ok()
        .and_then(|s| String::from_utf8_lossy(&s).trim().parse().ok())
        .unwrap_or(UNSET);
    let exe = optional(pid, "exe", process.exe());
    let cwd = optional(pid, "cwd", process.cwd());
    let cwd_ino = dir_ino(process, "cwd").unwrap_or(0);
    let at_random = at_random(process, pid);
    // stat, not open: the file's version needs no read access to it.
    let file = std::fs::metadata(format!("/proc/{pid}/exe"))
        .ok()
        .map(|m| crate::filehash::FileVersion::from_metadata(&m));
    // Not procfs's `environ()`: its map forgets which of two definitions of a
    // name came first (the one the loader uses).
    let (environ, environ_cut) = read_bytes_max(process, pid, "environ", tracer_common::ENV_MAX)
        .unwrap_or((Vec::new(), true));
    let loader_env = crate::proc::env::loader_env(&environ);
    let cgroups = read_cgroups(process, pid).unwrap_or_default();

    Ok(ProcSnapshot {
        pid,
        // ppid is 0 for the roots (init, kthreadd) and never negative.
        ppid: u32::try_from(stat.ppid).unwrap_or(0),
        comm: stat.comm,
        start_ticks: stat.starttime,
        arg_start: stat.arg_start.unwrap_or(0),
        start_code: stat.startcode,
        start_brk: stat.start_brk.unwrap_or(0),
        at_random,
        file,
        loader_env,
        environ,
        environ_cut,
        uid,
        euid,
        gid,
        egid,
        auid,
        sessionid,
        argv,
        argv_truncated,
        exe,
        cwd,
        cwd_ino,
        cgroups,
        kernel_thread: stat.flags & PF_KTHREAD != 0,
    })
}

/// The `AT_RANDOM` bytes of the image `pid` runs now; None when unreadable.
pub fn image_at_random(pid: u32) -> Option<[u8; 16]> {
    let process = Process::new(i32::try_from(pid).ok()?).ok()?;
    Some(at_random(&process, pid)).filter(|r| *r != [0; 16])
}

/// The 16 `AT_RANDOM` bytes: their address from the kernel's copy of the
/// auxiliary vector, the bytes from the process's memory. Zeros when either is
/// unreadable (kernel threads, zombies, a ptrace policy that closes /proc/<pid>/mem).
fn at_random(process: &Process, pid: u32) -> [u8; 16] {
    use std::os::unix::fs::FileExt as _;
    const AT_RANDOM: u64 = 25;
    let mut out = [0u8; 16];
    let Some(&addr) = process.auxv().ok().as_ref().and_then(|a| a.get(&AT_RANDOM)) else {
        return out;
    };
    let read = process
        .open_relative("mem")
        .map_err(|e| e.to_string())
        .and_then(|f| f.read_exact_at(&mut out, addr).map_err(|e| e.to_string()));
    if let Err(err) = read {
        tracing::debug!(pid, %err, "AT_RANDOM unreadable");
        out = [0; 16];
    }
    out
}

/// Missing links are normal (kernel threads, zombies); other errors are logged.
fn optional(pid: u32, file: &'static str, res: Result<PathBuf, ProcError>) -> Option<Vec<u8>> {
    match res {
        Ok(path) => Some(path.into_os_string().into_vec()),
        Err(ProcError::NotFound(_)) => None,
        Err(err) => {
            tracing::debug!(pid, file, %err, "unreadable");
            None
        }
    }
}

/// The inode number of the directory a link of the process names (`cwd`):
/// opening the link reaches the directory itself, in the process's own mount
/// namespace, as the probe's inode number does.
fn dir_ino(process: &Process, link: &str) -> Option<u64> {
    let meta = process.open_relative(link).ok()?.metadata().ok()?;
    Some(std::os::unix::fs::MetadataExt::ino(&meta))
}

/// `/proc/<pid>/cgroup`, parsed by [`ProcCgroups::parse`].
fn read_cgroups(process: &Process, pid: u32) -> Result<ProcCgroups, ScanError> {
    read_bytes(process, pid, "cgroup").map(|text| ProcCgroups::parse(&text))
}

/// The working directory of a process: its path and the inode number of the
/// directory (None when that could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCwd {
    pub path: Vec<u8>,
    pub ino: Option<u64>,
}

/// `/proc/<pid>/cwd` now; None when the process is gone or the link unreadable.
pub fn cwd(pid: u32) -> Option<ProcCwd> {
    let process = Process::new(i32::try_from(pid).ok()?).ok()?;
    let path = process.cwd().ok()?.into_os_string().into_vec();
    Some(ProcCwd {
        path,
        ino: dir_ino(&process, "cwd"),
    })
}

/// `/proc/<pid>/cgroup` now; None when the process is gone or it is unreadable.
pub fn cgroups(pid: u32) -> Option<ProcCgroups> {
    let process = Process::new(i32::try_from(pid).ok()?).ok()?;
    read_cgroups(&process, pid).ok()
}

fn proc_err(pid: u32, file: &'static str, err: ProcError) -> ScanError {
    match err {
        ProcError::NotFound(_) => ScanError::Gone { pid },
        source => ScanError::Proc { pid, file, source },
    }
}

fn read_bytes(process: &Process, pid: u32, file: &'static str) -> Result<Vec<u8>, ScanError> {
    let mut f = process
        .open_relative(file)
        .map_err(|e| proc_err(pid, file, e))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(|source| {
        // ESRCH: the task exited between open and read.
        if source.raw_os_error() == Some(libc::ESRCH) || source.kind() == io::ErrorKind::NotFound {
            ScanError::Gone { pid }
        } else {
            ScanError::Io { pid, file, source }
        }
    })?;
    Ok(buf)
}

/// At most `max` bytes of the file, and whether there was more: a process's
/// command line can be megabytes, and the kernel's capture stops at the same bound.
fn read_bytes_max(
    process: &Process,
    pid: u32,
    file: &'static str,
    max: usize,
) -> Result<(Vec<u8>, bool), ScanError> {
    let f = process
        .open_relative(file)
        .map_err(|e| proc_err(pid, file, e))?;
    let mut buf = Vec::new();
    f.take(max as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ESRCH)
                || source.kind() == io::ErrorKind::NotFound
            {
                ScanError::Gone { pid }
            } else {
                ScanError::Io { pid, file, source }
            }
        })?;
    let cut = buf.len() > max;
    buf.truncate(max);
    Ok((buf, cut))
}

/// Parse a stat file with the procfs crate. The comm (field 2) is whatever
/// the process named itself, spaces, parentheses and invalid UTF-8 included;
/// procfs takes it between the first `(` and the last `)`, but slices around
/// them without checking, and panicked on input the fuzzer made (the tests
/// below keep it). So the shape it slices on is checked first: a malformed
/// file is an error, never a panic.
pub fn parse_stat(bytes: &[u8]) -> Result<Stat, ParseError> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.trim().as_bytes();
    let open = line.iter().position(|&b| b == b'(');
    let close = line.iter().rposition(|&b| b == b')');
    let shaped = match (open, close) {
        // procfs reads the pid from before `open - 1`, the fields from `close + 2`.
        (Some(open), Some(close)) => {
            open >= 1
                && line[open - 1] == b' '
                && close > open
                && line.get(close + 1) == Some(&b' ')
        }
        _ => false,
    };
    if !shaped {
        return Err(ParseError::StatShape);
    }
    Ok(Stat::from_read(line)?)
}

/// A real and an effective id.
pub type IdPair = (u32, u32);

/// Real and effective ids from a status file, with the procfs crate's parser.
/// It reads lines as UTF-8, and the `Name:` line is the process's own choice
/// of bytes: it is given a lossy copy, so a name cannot hide a process.
pub fn parse_status_ids(bytes: &[u8]) -> Result<(IdPair, IdPair), ParseError> {
    let text = String::from_utf8_lossy(bytes);
    let s = Status::from_read(text.as_bytes())?;
    Ok(((s.ruid, s.euid), (s.rgid, s.egid)))
}

/// argv from `/proc/<pid>/cmdline`: NUL-separated; a final NUL ends the last
/// argument rather than starting an empty one.
pub fn split_cmdline(bytes: &[u8]) -> Vec<Vec<u8>> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let body = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    body.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

/// What `/proc/<pid>/cgroup` says. Our own parser, not procfs's
/// `cgroups()`: that reads the file as UTF-8 lines, and cgroup names are
/// bytes (a name that is not UTF-8 would hide the process's cgroups).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcCgroups {
    /// The path of the `0::<path>` line.
    pub v2: Option<String>,
    /// The v1 lines (`4:memory:/docker/<id>`), as (controllers, path);
    /// empty on a pure v2 host.
    pub v1: Vec<(String, String)>,
}

impl ProcCgroups {
    pub fn parse(text: &[u8]) -> ProcCgroups {
        ProcCgroups {
            v2: parse_cgroup_v2_line(text),
            v1: parse_cgroup_v1_lines(text),
        }
    }

    /// The path in the v1 hierarchy of `controller`.
    pub fn v1_path(&self, controller: &str) -> Option<&str> {
        cgroup_v1_path(&self.v1, controller)
    }
}

/// The path of the v2 ("0::") entry of `/proc/<pid>/cgroup`.
///
/// The file is bytes: the kernel writes cgroup names as they are. Paths are
/// returned in the reversible spelling of [`crate::escape::escape`], the one the
/// cgroup walk and the kernel's `cgroup_mkdir` records are written in, so one
/// cgroup has one spelling however it was learned.
pub fn parse_cgroup_v2_line(text: &[u8]) -> Option<String> {
    text.split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"0::"))
        .map(escape)
}

/// `hierarchy-id:controllers:path` (the path may hold colons).
fn split_v1_line(l: &[u8]) -> Option<(u32, &str, &[u8])> {
    let mut parts = l.splitn(3, |&b| b == b':');
    let id = std::str::from_utf8(parts.next()?)
        .ok()?
        .parse::<u32>()
        .ok()?;
    let controllers = std::str::from_utf8(parts.next()?).ok()?;
    Some((id, controllers, parts.next()?))
}

/// The v1 entries (`hierarchy-id:controllers:path`, id not 0) of
/// `/proc/<pid>/cgroup`, as (controllers, path), paths spelled as in
/// [`parse_cgroup_v2_line`].
pub fn parse_cgroup_v1_lines(text: &[u8]) -> Vec<(String, String)> {
    text.split(|&b| b == b'\n')
        .filter_map(split_v1_line)
        .filter(|&(id, _, _)| id != 0)
        .map(|(_, controllers, path)| (controllers.to_owned(), escape(path)))
        .collect()
}

/// The hierarchy id and path of the v1 entry for `controller` in
/// `/proc/<pid>/cgroup` (`4:memory:/docker/<id>`, `3:cpu,cpuacct:/`), the path
/// spelled as in [`parse_cgroup_v2_line`].
pub fn parse_cgroup_v1_line(text: &[u8], controller: &str) -> Option<(u32, String)> {
    text.split(|&b| b == b'\n').find_map(|l| {
        let (id, controllers, path) = split_v1_line(l)?;
        (id != 0 && controllers.split(',').any(|c| c == controller)).then(|| (id, escape(path)))
    })
}

/// The path for `controller` among lines [`parse_cgroup_v1_lines`] returned.
pub fn cgroup_v1_path<'a>(lines: &'a [(String, String)], controller: &str) -> Option<&'a str> {
    lines
        .iter()
        .find(|(controllers, _)| controllers.split(',').any(|c| c == controller))
        .map(|(_, path)| path.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};

    struct StatCase {
        line: &'static str,
        pid: i32,
        comm: &'static str,
        ppid: i32,
        starttime: u64,
        arg_start: Option<u64>,
        kthread: bool,
    }

    #[test]
    fn stat_lines() {
        let cases = [
            StatCase {
                line: "6208 (cat) R 6202 6202 4380 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 62655 3133440 357 18446744073709551615 94913818845184 94913818865065 140724561088064 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 94913818881072 94913818882688 94914492870656 140724561091226 140724561091246 140724561091246 140724561092587 0\n",
                pid: 6208,
                comm: "cat",
                ppid: 6202,
                starttime: 62655,
                arg_start: Some(140724561091226),
                kthread: false,
            },
            StatCase {
                line: "1234 (tmux: server) S 1 1234 1234 0 -1 4194560 2311 0 0 0 150 91 0 0 20 0 1 0 5210 11169792 1203 18446744073709551615 94553427935232 94553428553929 140723391342592 0 0 0 0 4096 134433283 0 0 0 17 2 0 0 0 0 0 94553428688496 94553428725716 94553449304064 140723391347283 140723391347288 140723391347288 140723391348715 0\n",
                pid: 1234,
                comm: "tmux: server",
                ppid: 1,
                starttime: 5210,
                arg_start: Some(140723391347283),
                kthread: false,
            },
            StatCase {
                line: "1571 ((sd-pam)) S 1570 1570 1570 0 -1 1077936448 52 0 0 0 0 0 0 0 20 0 1 0 1842 172191744 1188 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
                pid: 1571,
                comm: "(sd-pam)",
                ppid: 1570,
                starttime: 1842,
                arg_start: Some(0),
                kthread: false,
            },
            StatCase {
                // A comm that itself contains ") S 1 ".
                line: "4242 (x) S 1 (y) S 777 4242 4242 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 99999 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 10 11 12 13 0\n",
                pid: 4242,
                comm: "x) S 1 (y",
                ppid: 777,
                starttime: 99999,
                arg_start: Some(10),
                kthread: false,
            },
            StatCase {
                line: "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 13 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
                pid: 2,
                comm: "kthreadd",
                ppid: 0,
                starttime: 13,
                arg_start: Some(0),
                kthread: true,
            },
            StatCase {
                line: "14 (ksoftirqd/0) S 2 0 0 0 -1 69238848 0 0 0 0 0 3 0 0 20 0 1 0 14 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
                pid: 14,
                comm: "ksoftirqd/0",
                ppid: 2,
                starttime: 14,
                arg_start: Some(0),
                kthread: true,
            },
            StatCase {
                // Pre-3.5 kernel: no arg_start and later fields.
                line: "100 (old) S 1 100 100 0 -1 4202752 0 0 0 0 0 0 0 0 20 0 1 0 500 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
                pid: 100,
                comm: "old",
                ppid: 1,
                starttime: 500,
                arg_start: None,
                kthread: false,
            },
        ];
        for c in cases {
            let stat = parse_stat(c.line.as_bytes()).unwrap();
            assert_eq!(stat.pid, c.pid, "{}", c.line);
            assert_eq!(stat.comm, c.comm, "{}", c.line);
            assert_eq!(stat.ppid, c.ppid, "{}", c.line);
            assert_eq!(stat.starttime, c.starttime, "{}", c.line);
            assert_eq!(stat.arg_start, c.arg_start, "{}", c.line);
            assert_eq!(stat.flags & PF_KTHREAD != 0, c.kthread, "{}", c.line);
        }
    }

    /// Lines a process (through its comm) or a broken /proc can produce; the
    /// first made procfs's parser panic when given to it unchecked (found by
    /// `cargo xtask fuzz`).
    #[test]
    fn hostile_stat_lines_are_errors_or_parsed_never_panics() {
        let fuzz_crash: &[u8] =
            b"6934\xe3(cat) R 6928 6928 23334 0 -1 4194300 0 0 0!0  0 0426W047933956\
              8 942;0479341184 94261412126720 42703461085678472640856\x1f\x00\x00\
              \x00807 17 14\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\
              \x00\x00\x00\x00\x00\x00\x00\x000732640856807301 472640856\x1f\x00\x00\
              \x00807 140732640\x01\x00\x00\x00\x00\x00\x004Y 119 0 0 0 0 0  0 04260\
              479339568 942;0479341184 94261412126720 427034610856787 14073264085680\
              7301 472640856\x1f\x00\x00\x00807 140732640\x01\x00\x00\x00\x10\x00\
              \x009\x0a";
        assert_eq!(fuzz_crash.len(), 342, "the crash input, byte for byte");
        assert!(matches!(parse_stat(fuzz_crash), Err(ParseError::StatShape)));
        let weird_comm =
            b"42 (a) b (c\nd\xff) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        let st = parse_stat(weird_comm).unwrap();
        assert_eq!((st.pid, st.ppid, st.starttime), (42, 1, 777));
        assert_eq!(st.comm, "a) b (c\nd\u{fffd}");
        for bad in [
            &b""[..],
            b"42",
            b"42 (x",
            b"42 x) (S 1",
            b"x (y) S 1 2",
            b"42 (y) S -1",
            b"42 (y) S 1 1 1 1 1 99999999999",
            b"(x) S 1",
            b"42(x) S 1",
            b"42 (x)",
            b"42 (x)S 1",
            b"\xff(x) S 1",
            b"42 )x( S 1",
        ] {
            assert!(
                parse_stat(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// Every real process's stat and status files (kernel threads' too)
    /// pass the shape check and parse.
    #[test]
    fn stat_and_status_parse_on_live_processes() {
        let mut n = 0;
        for p in procfs::process::all_processes().unwrap().flatten() {
            let (Ok(stat), Ok(status)) = (
                std::fs::read(format!("/proc/{}/stat", p.pid)),
                std::fs::read(format!("/proc/{}/status", p.pid)),
            ) else {
                continue; // exited meanwhile
            };
            if stat.is_empty() || status.is_empty() {
                continue; // exited between open and read
            }
            let st = parse_stat(&stat).unwrap();
            assert_eq!(st.pid, p.pid);
            parse_status_ids(&status).unwrap();
            n += 1;
        }
        assert!(n > 10, "only {n} processes parsed");
    }

    #[test]
    fn cmdline_split() {
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"", &[]),
            (b"\0", &[b""]),
            (b"a\0b\0", &[b"a", b"b"]),
            (b"a\0\0b\0", &[b"a", b"", b"b"]),
            (b"a\0b", &[b"a", b"b"]),
            (b"sleep\x0030\0", &[b"sleep", b"30"]),
            (
                b"x\0\xff\xfe caf\xc3\xa9\0",
                &[b"x", b"\xff\xfe caf\xc3\xa9"],
            ),
            // setproctitle style: one string, padded with NULs.
            (b"nginx: worker\0\0\0", &[b"nginx: worker", b"", b""]),
        ];
        for (input, want) in cases {
            let want: Vec<Vec<u8>> = want.iter().map(|a| a.to_vec()).collect();
            assert_eq!(split_cmdline(input), want, "{input:?}");
        }
    }

    #[test]
    fn cgroup_lines() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "12:pids:/user.slice/user-1000.slice/session-2.scope\n\
                 11:memory:/user.slice/user-1000.slice/session-2.scope\n\
                 3:cpu,cpuacct:/user.slice\n\
                 1:name=systemd:/user.slice/user-1000.slice/session-2.scope\n\
                 0::/user.slice/user-1000.slice/session-2.scope\n",
                Some("/user.slice/user-1000.slice/session-2.scope"),
            ),
            (
                "0::/system.slice/ssh.service\n",
                Some("/system.slice/ssh.service"),
            ),
            ("0::/\n", Some("/")),
            ("0::/odd:name", Some("/odd:name")),
            ("0::/../../outside-ns\n", Some("/../../outside-ns")),
            (
                "10:0::/not-v2\n4:memory:/process_api/56400251\n1:cpu:/\n",
                None,
            ),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_cgroup_v2_line(text.as_bytes()).as_deref(),
                *want,
                "{text:?}"
            );
        }
        // Names are bytes: they come out in the escape spelling, as the walk
        // and the kernel's records give them.
        let raw: &[(&[u8], &str)] = &[
            (b"0::/a/\xff\xfe-x\n", "/a/\\xff\\xfe-x"),
            (b"0::/back\\slash\n", "/back\\\\slash"),
            (b"0::/caf\xc3\xa9\n", "/caf\u{e9}"),
        ];
        for (text, want) in raw {
            assert_eq!(parse_cgroup_v2_line(text).as_deref(), Some(*want));
            let v1 = [b"4:memory:".as_slice(), &text[3..]].concat();
            assert_eq!(
                parse_cgroup_v1_line(&v1, "memory"),
                Some((4, want.to_string()))
            );
            assert_eq!(parse_cgroup_v1_lines(&v1)[0].1, *want);
        }
    }

    #[test]
    fn cgroup_v1_lines() {
        // A docker container on a v1-only host (Amazon Linux 2: cpu,cpuacct
        // co-mounted; no 0:: line at all).
        let al2 = "11:cpuset:/docker/4f1c\n\
                   10:pids:/docker/4f1c\n\
                   9:memory:/docker/4f1c\n\
                   4:cpu,cpuacct:/docker/4f1c\n\
                   1:name=systemd:/docker/4f1c\n";
        // A hybrid host: v1 controllers plus the v2 line.
        let hybrid = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/071b\n1:cpu:/\n0::/\n";
        type Case<'a> = (&'a str, &'a str, Option<(u32, &'a str)>);
        let cases: &[Case] = &[
            (al2, "memory", Some((9, "/docker/4f1c"))),
            (al2, "pids", Some((10, "/docker/4f1c"))),
            (al2, "cpu", Some((4, "/docker/4f1c"))),
            (al2, "cpuacct", Some((4, "/docker/4f1c"))),
            (al2, "systemd", None),
            (al2, "cpus", None),
            (hybrid, "memory", Some((4, "/process_api/071b"))),
            (hybrid, "cpu", Some((1, "/"))),
            (hybrid, "io", None),
            // Pure v2: nothing.
            ("0::/system.slice/ssh.service\n", "memory", None),
            // A path with colons stays whole; a non-numeric id is no entry.
            ("7:memory:/odd:name\n", "memory", Some((7, "/odd:name"))),
            ("x:memory:/a\n", "memory", None),
            ("0:memory:/a\n", "memory", None),
            ("", "memory", None),
        ];
        for (text, controller, want) in cases {
            let got = parse_cgroup_v1_line(text.as_bytes(), controller);
            let got = got.as_ref().map(|(id, p)| (*id, p.as_str()));
            assert_eq!(got, *want, "{controller} in {text:?}");
            let lines = parse_cgroup_v1_lines(text.as_bytes());
            assert_eq!(
                cgroup_v1_path(&lines, controller),
                want.map(|(_, p)| p),
                "{controller} in {text:?}"
            );
        }
        assert_eq!(parse_cgroup_v1_lines(al2.as_bytes()).len(), 5);
        assert_eq!(parse_cgroup_v1_lines(hybrid.as_bytes()).len(), 4);
    }

    /// A status file as Linux 6.x writes it, with these Name and Uid lines.
    fn status(name: &[u8], uid: &str) -> Vec<u8> {
        let mut s = b"Name:\t".to_vec();
        s.extend_from_slice(name);
        s.extend_from_slice(
            format!(
                "\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4242\n\
                 PPid:\t1\nTracerPid:\t0\n{uid}Gid:\t1000\t1000\t1000\t1000\nFDSize:\t64\n\
                 Groups:\t4 27 1000 \nNStgid:\t4242\nNSpid:\t4242\nNSpgid:\t4242\nNSsid:\t4242\n\
                 Threads:\t1\nSigQ:\t0/62811\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n\
                 SigBlk:\t0000000000000000\nSigIgn:\t0000000000001000\nSigCgt:\t0000000180000000\n\
                 CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
                 CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\n\
                 Seccomp:\t0\nSpeculation_Store_Bypass:\tthread vulnerable\n\
                 Cpus_allowed:\t3\nCpus_allowed_list:\t0-1\nvoluntary_ctxt_switches:\t1\n\
                 nonvoluntary_ctxt_switches:\t0\n"
            )
            .as_bytes(),
        );
        s
    }

    #[test]
    fn status_ids() {
        type Case<'a> = (&'a [u8], &'a str, Option<(u32, u32)>);
        let cases: &[Case] = &[
            (b"sudo", "Uid:\t1000\t0\t0\t0\n", Some((1000, 0))),
            (
                b"x",
                "Uid:\t4294967295\t65534\t0\t0\n",
                Some((u32::MAX, 65534)),
            ),
            // A name that is not UTF-8 (or holds a colon) hides nothing.
            (b"caf\xff\xfe: x", "Uid:\t7\t8\t0\t0\n", Some((7, 8))),
            (b"x", "Uid:\t4294967296\t0\t0\t0\n", None),
            (b"x", "Uid:\t1000\n", None),
            (b"x", "Uid:\tx\t0\t0\t0\n", None),
            (b"x", "", None),
        ];
        for (name, uid, want) in cases {
            let got = parse_status_ids(&status(name, uid)).ok();
            assert_eq!(got.map(|(u, _)| u), *want, "{uid:?}");
            if want.is_some() {
                assert_eq!(got.map(|(_, g)| g), Some((1000, 1000)));
            }
        }
        assert!(parse_status_ids(b"").is_err());
        assert!(parse_status_ids(b"Uid:\t1 2 3 4\n").is_err());
    }

    /// Kills and reaps the child even if the test fails.
    struct Reap(Child);

    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn live_child() {
        // argv[0] is free-form, so it can carry a non-UTF-8 byte without upsetting sleep.
        let arg0 = OsStr::from_bytes(b"sl\xffeep \xc3\xa9");
        let child = Command::new("sleep").arg0(arg0).arg("30").spawn().unwrap();
        let child = Reap(child);
        let pid = child.0.id();
        // spawn() returns once exec is past the point of no return, which is
        // before the kernel has laid out argv: retry until cmdline is filled in.
        let mut snap = snapshot(pid).unwrap();
        for _ in 0..100 {
            if !snap.argv.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            snap = snapshot(pid).unwrap();
        }
        assert_eq!(snap.pid, pid);
        assert_eq!(snap.ppid, std::process::id());
        assert_eq!(snap.comm, "sleep");
        assert!(!snap.kernel_thread);
        assert_ne!(snap.arg_start, 0);
        assert_eq!(snap.argv, vec![arg0.as_bytes().to_vec(), b"30".to_vec()]);
        let exe = snap.exe.clone().unwrap();
        assert!(exe.starts_with(b"/") && exe.ends_with(b"sleep"), "{exe:?}");
        let our_cwd = std::env::current_dir().unwrap().into_os_string().into_vec();
        assert_eq!(snap.cwd.as_deref(), Some(our_cwd.as_slice()));
        let ours = snapshot(std::process::id()).unwrap();
        assert_eq!(snap.cgroups, ours.cgroups);
        let live_cwd = cwd(pid).unwrap();
        assert_eq!(live_cwd.path, our_cwd);
        assert_eq!(live_cwd.ino, Some(snap.cwd_ino));
        assert_eq!(cgroups(pid), Some(ours.cgroups.clone()));
        assert_eq!((snap.uid, snap.euid), (ours.uid, ours.euid));
        assert_eq!((snap.gid, snap.egid), (ours.gid, ours.egid));
        assert_eq!((snap.auid, snap.sessionid), (ours.auid, ours.sessionid));
        assert!(snap.start_ticks >= ours.start_ticks);
        drop(child);
        assert!(matches!(snapshot(pid), Err(ScanError::Gone { .. })));
        assert_eq!(cwd(pid), None);
    }

    /// A zombie (exited, not reaped) has no memory and a shorter status
    /// file; it is still described, with what is left.
    #[test]
    fn zombie_child() {
        let child = Reap(Command::new("true").spawn().unwrap());
        let pid = child.0.id();
        let stat = || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        for _ in 0..200 {
            if stat().contains(") Z ") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(stat().contains(") Z "), "{}", stat());
        let snap = snapshot(pid).unwrap();
        assert_eq!((snap.pid, snap.ppid), (pid, std::process::id()));
        assert!(snap.argv.is_empty());
        assert_eq!(snap.at_random, [0; 16]);
        drop(child);
    }

    #[test]
    fn scan_finds_us() {
        let me = std::process::id();
        let text = std::fs::read_to_string("/proc/self/stat").unwrap();
        // Field 22; fields after the comm's closing paren start at 3.
        let after = &text[text.rfind(')').unwrap() + 2..];
        let start: u64 = after.split(' ').nth(22 - 3).unwrap().parse().unwrap();

        let all = scan_all();
        let ours = all.iter().find(|p| p.pid == me).unwrap();
        assert_eq!(ours.start_ticks, start);
        // SAFETY: getuid/getppid have no preconditions.
        let (uid, ppid) = unsafe { (libc::getuid(), libc::getppid()) };
        assert_eq!(ours.uid, uid);
        assert_eq!(ours.ppid, u32::try_from(ppid).unwrap());
        let exe = std::env::current_exe().unwrap().into_os_string().into_vec();
        assert_eq!(ours.exe.as_deref(), Some(exe.as_slice()));
        assert!(!ours.argv.is_empty());
        // Kernel threads are listed too (where /proc shows them).
        if let Some(kthreadd) = all.iter().find(|p| p.pid == 2 && p.comm == "kthreadd") {
            assert!(kthreadd.kernel_thread);
            assert!(kthreadd.argv.is_empty());
            assert_eq!(kthreadd.exe, None);
            assert_eq!(kthreadd.arg_start, 0);
        }
    }

    #[test]
    fn missing_pid() {
        assert!(matches!(snapshot(u32::MAX), Err(ScanError::Gone { .. })));
    }
}
