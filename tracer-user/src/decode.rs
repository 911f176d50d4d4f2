//! Ring buffer bytes to typed kernel records. Nothing from the kernel is trusted
//! without a bound: lengths are checked against the bytes actually received.
use tracer_common::{
    CgroupRecord, ConnectRecord, ConnectResultRecord, DnsRecord, ExecRecord, ExitRecord,
    FLAG_CWD_OUTSIDE_ROOT, FLAG_CWD_TRUNCATED, FLAG_CWD_UNLINKED, FLAG_CWD_WALKED,
    FLAG_FILE_UNLINKED, FLAG_PATH_FROM_FILE, FLAG_PATH_TRUNCATED, ForkRecord, Header,
    RECORD_VERSION, RecordKind, TaskInfo,
};

#[derive(Debug, Clone)]
pub enum Record {
    Exec(Exec),
    Fork {
        ts_boot_ns: u64,
        task: TaskInfo,
    },
    Exit {
        ts_boot_ns: u64,
        task: TaskInfo,
        exit_code: u32,
        /// The process's CPU time at its end, and its peak RSS in pages.
        cpu: tracer_common::CpuUsage,
        maxrss_pages: u64,
    },
    Connect(ConnectRecord),
    /// What became of a connect ([`Record::Connect`] with the same cookie).
    ConnectResult(ConnectResultRecord),
    /// A cgroup was created, removed or renamed, in the v2 hierarchy or the v1
    /// hierarchy the probes read.
    Cgroup {
        ts_boot_ns: u64,
        op: u32,
        /// Hierarchy id: 0 for v2, else the v1 hierarchy's.
        root: i32,
        id: u64,
        /// Raw bytes of the path relative to the hierarchy's root.
        path: Vec<u8>,
    },
    /// A DNS query a socket sent or an answer it received.
    Dns(Dns),
    /// A live process's usage so far, from a sweep (`--usage-interval`).
    Usage(tracer_common::UsageRecord),
}

#[derive(Debug, Clone)]
pub struct Dns {
    pub ts_boot_ns: u64,
    pub cookie: u64,
    /// `DNS_QUERY` or `DNS_ANSWER`.
    pub direction: u16,
    pub truncated: bool,
    pub protocol: u16,
    pub family: u16,
    pub server: [u8; 16],
    /// The message as copied (at most `DNS_PAYLOAD_MAX` bytes).
    pub message: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Exec {
    pub rec: ExecRecord,
    pub path: Vec<u8>,
    /// NUL-separated, as in /proc/<pid>/cmdline.
    pub argv: Vec<u8>,
    /// NUL-separated, as in /proc/<pid>/environ (successful execs; may be cut).
    pub env: Vec<u8>,
    /// The working directory from the probe's walk; None when it could not run.
    pub cwd: Option<WalkedCwd>,
}

/// The working directory at an exec, as the probe's dentry walk found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkedCwd {
    /// Raw bytes, written as `/proc/<pid>/cwd` shows it: `/a/b`, relative to
    /// the process's root; `/a/b (deleted)`. A walk cut at its bound keeps the
    /// deepest components and starts with `...` rather than pass for an
    /// absolute path.
    pub path: Vec<u8>,
    pub truncated: bool,
    /// The walk reached the top of the mount tree, not the process's root:
    /// `path` runs from the top of its mount namespace.
    pub outside_root: bool,
}

impl WalkedCwd {
    /// From the record's cwd area (components leaf first, each NUL-terminated)
    /// and its `FLAG_CWD_*` flags; None when the probe did not walk.
    pub fn from_components(raw: &[u8], flags: u32) -> Option<WalkedCwd> {
        if flags & FLAG_CWD_WALKED == 0 {
            return None;
        }
        let truncated = flags & FLAG_CWD_TRUNCATED != 0;
        Some(WalkedCwd {
            path: join_components(raw, truncated, flags & FLAG_CWD_UNLINKED != 0),
            truncated,
            outside_root: flags & FLAG_CWD_OUTSIDE_ROOT != 0,
        })
    }
}

/// Name components (leaf first, each NUL-terminated) as a path, root first.
fn join_components(raw: &[u8], cut: bool, deleted: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 16);
    if cut {
        out.extend_from_slice(b"...");
    }
    for part in raw.split(|&b| b == 0).filter(|p| !p.is_empty()).rev() {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    if deleted {
        out.extend_from_slice(b" (deleted)");
    }
    out
}

/// The path of the file an exec through a descriptor ran, from the probe's
/// dentry walk (name components leaf first, each NUL-terminated), written as
/// `/proc/<pid>/exe` shows it: `/tmp/x (deleted)`, `/memfd:name (deleted)`.
/// A walk cut short starts with `...` rather than pass for an absolute path.
pub fn path_from_components(raw: &[u8], flags: u32) -> Vec<u8> {
    join_components(
        raw,
        flags & FLAG_PATH_TRUNCATED != 0,
        flags & FLAG_FILE_UNLINKED != 0,
    )
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {got} bytes is shorter than its {need}-byte fixed part")]
    Short { got: usize, need: usize },
    #[error("record version {0} (this tracer reads {RECORD_VERSION})")]
    Version(u16),
    #[error("unknown record kind {0}")]
    Kind(u16),
    #[error("record says {claimed} bytes but {got} arrived")]
    Length { claimed: usize, got: usize },
}

/// Copy a `T` out of the front of `bytes`.
fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    let need = std::mem::size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short {
            got: bytes.len(),
            need,
        });
    }
    // SAFETY: length checked above; T is a plain #[repr(C)] record of integers and
    // byte arrays, valid for any bit pattern; read_unaligned needs no alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    let header: Header = read(bytes)?;
    if header.version != RECORD_VERSION {
        return Err(DecodeError::Version(header.version));
    }
    let claimed = header.len as usize;
    if claimed > bytes.len() {
        return Err(DecodeError::Length {
            claimed,
            got: bytes.len(),
        });
    }
    let bytes = &bytes[..claimed];
    match RecordKind::from_u16(header.kind) {
        Some(RecordKind::Exec) => {
            let rec: ExecRecord = read(bytes)?;
            let fixed = std::mem::size_of::<ExecRecord>();
            let path_len = rec.path_len as usize;
            let argv_len = rec.argv_len as usize;
            let env_len = rec.env_len as usize;
            let cwd_len = rec.cwd_len as usize;
            let end = fixed
                .checked_add(path_len)
                .and_then(|v| v.checked_add(argv_len))
                .and_then(|v| v.checked_add(env_len))
                .and_then(|v| v.checked_add(cwd_len))
                .filter(|end| *end <= bytes.len())
                .ok_or(DecodeError::Length {
                    claimed: fixed
                        .saturating_add(path_len)
                        .saturating_add(argv_len)
                        .saturating_add(env_len)
                        .saturating_add(cwd_len),
                    got: bytes.len(),
                })?;
            let raw_path = &bytes[fixed..fixed + path_len];
            let path = if rec.flags & FLAG_PATH_FROM_FILE != 0 {
                path_from_components(raw_path, rec.flags)
            } else {
                raw_path.to_vec()
            };
            let argv_end = fixed + path_len + argv_len;
            let argv = bytes[fixed + path_len..argv_end].to_vec();
            let env_end = argv_end + env_len;
            let env = bytes[argv_end..env_end].to_vec();
            let cwd = WalkedCwd::from_components(&bytes[env_end..end], rec.flags);
            Ok(Record::Exec(Exec {
                rec,
                path,
                argv,
                env,
                cwd,
            }))
        }
        Some(RecordKind::Fork) => {
            let rec: ForkRecord = read(bytes)?;
            Ok(Record::Fork {
                ts_boot_ns: rec.header.ts_boot_ns,
                task: rec.task,
            })
        }
        Some(RecordKind::Exit) => {
            let rec: ExitRecord = read(bytes)?;
            Ok(Record::Exit {
                ts_boot_ns: rec.header.ts_boot_ns,
                task: rec.task,
                exit_code: rec.exit_code,
                cpu: rec.cpu,
                maxrss_pages: rec.maxrss_pages,
            })
        }
        Some(RecordKind::Connect) => Ok(Record::Connect(read(bytes)?)),
        Some(RecordKind::ConnectResult) => Ok(Record::ConnectResult(read(bytes)?)),
        Some(RecordKind::Cgroup) => {
            let rec: CgroupRecord = read(bytes)?;
            Ok(Record::Cgroup {
                ts_boot_ns: rec.header.ts_boot_ns,
                op: rec.op,
                root: rec.root,
                id: rec.id,
                path: c_str(&rec.path).to_vec(),
            })
        }
        Some(RecordKind::Dns) => {
            let rec: DnsRecord = read(bytes)?;
            let len = rec.len as usize;
            let message = rec.payload.get(..len).ok_or(DecodeError::Length {
                claimed: std::mem::size_of::<DnsRecord>().saturating_add(len),
                got: bytes.len(),
            })?;
            Ok(Record::Dns(Dns {
                ts_boot_ns: rec.header.ts_boot_ns,
                cookie: rec.cookie,
                direction: rec.direction,
                truncated: rec.flags & tracer_common::DNS_TRUNCATED != 0,
                protocol: rec.protocol,
                family: rec.family,
                server: rec.server,
                message: message.to_vec(),
            }))
        }
        Some(RecordKind::Usage) => Ok(Record::Usage(read(bytes)?)),
        None => Err(DecodeError::Kind(header.kind)),
    }
}

impl Record {
    /// When the kernel wrote it (ns since boot).
    pub fn ts_boot_ns(&self) -> u64 {
        match self {
            Record::Exec(e) => e.rec.header.ts_boot_ns,
            Record::Fork { ts_boot_ns, .. }
            | Record::Exit { ts_boot_ns, .. }
            | Record::Cgroup { ts_boot_ns, .. } => *ts_boot_ns,
            Record::Connect(c) => c.header.ts_boot_ns,
            Record::ConnectResult(r) => r.header.ts_boot_ns,
            Record::Dns(d) => d.ts_boot_ns,
            Record::Usage(u) => u.header.ts_boot_ns,
        }
    }
}

/// NUL-terminated byte array to text (comm, tty).
pub fn c_str(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    fn as_bytes<T>(v: &T) -> Vec<u8> {
        // SAFETY: test-only view of a plain #[repr(C)] value.
        unsafe {
            std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
        }
        .to_vec()
    }

    fn exec_bytes(path: &[u8], argv: &[u8]) -> Vec<u8> {
        let fixed = std::mem::size_of::<ExecRecord>();
        let mut rec = ExecRecord::default();
        rec.header = Header {
            kind: RecordKind::Exec as u16,
            version: RECORD_VERSION,
            len: (fixed + path.len() + argv.len()) as u32,
            ts_boot_ns: 7,
        };
        rec.task.tgid = 42;
        rec.path_len = path.len() as u32;
        rec.argv_len = argv.len() as u32;
        let mut b = as_bytes(&rec);
        b.extend_from_slice(path);
        b.extend_from_slice(argv);
        b
    }

    #[test]
    fn paths_from_dentry_walks() {
        let f = FLAG_PATH_FROM_FILE;
        let cases: &[(&[u8], u32, &[u8])] = &[
            (b"true\0bin\0usr\0", f, b"/usr/bin/true"),
            (
                b"deleted-true\0trc1-2-dir\0tmp\0",
                f | FLAG_FILE_UNLINKED,
                b"/tmp/trc1-2-dir/deleted-true (deleted)",
            ),
            // A memfd: one component, the root of an internal mount.
            (
                b"memfd:tracer-memfd\0",
                f | FLAG_FILE_UNLINKED,
                b"/memfd:tracer-memfd (deleted)",
            ),
            // Deeper than the walk goes: not passed off as absolute.
            (b"c\0b\0", f | FLAG_PATH_TRUNCATED, b".../b/c"),
            // Bytes that are not UTF-8 stay as they are (escaped later).
            (b"\xff\0d\0", f, b"/d/\xff"),
            (b"", f, b"/"),
            (b"\0\0x\0", f, b"/x"),
        ];
        for (raw, flags, want) in cases {
            assert_eq!(path_from_components(raw, *flags), *want, "{raw:?}");
        }
        let mut b = exec_bytes(b"x\0tmp\0", b"x\0");
        let off = std::mem::offset_of!(ExecRecord, flags);
        b[off..off + 4].copy_from_slice(&(f | FLAG_FILE_UNLINKED).to_ne_bytes());
        let Record::Exec(e) = decode(&b).unwrap() else {
            panic!("not exec")
        };
        assert_eq!(e.path, b"/tmp/x (deleted)");
    }

    #[test]
    fn working_directories_from_dentry_walks() {
        let w = FLAG_CWD_WALKED;
        let cut = FLAG_CWD_TRUNCATED;
        let out = FLAG_CWD_OUTSIDE_ROOT;
        let del = FLAG_CWD_UNLINKED;
        // (components, flags, path, truncated, outside_root)
        type Case<'a> = (&'a [u8], u32, &'a [u8], bool, bool);
        let cases: &[Case] = &[
            (b"b\0a\0", w, b"/a/b", false, false),
            // The process's root itself: no components.
            (b"", w, b"/", false, false),
            (b"x\0tmp\0", w | del, b"/tmp/x (deleted)", false, false),
            // Cut at the bound: the deepest components, not passed off as absolute.
            (b"d\0c\0", w | cut, b".../c/d", true, false),
            // Outside a chroot: the path from the top of the mount tree.
            (b"elsewhere\0tmp\0", w | out, b"/tmp/elsewhere", false, true),
            (
                b"gone\0tmp\0",
                w | out | del,
                b"/tmp/gone (deleted)",
                false,
                true,
            ),
            // Bytes that are not UTF-8, and names with spaces, stay as they are.
            (b"\xff\0a b\0", w, b"/a b/\xff", false, false),
            (b"\0\0x\0", w, b"/x", false, false),
        ];
        for (raw, flags, path, truncated, outside_root) in cases {
            let got = WalkedCwd::from_components(raw, *flags).expect("walked");
            let want = WalkedCwd {
                path: path.to_vec(),
                truncated: *truncated,
                outside_root: *outside_root,
            };
            assert_eq!(got, want, "{raw:?} {flags:#x}");
        }
        // Not walked (offsets missing, a read fault): nothing, whatever the bytes.
        assert_eq!(WalkedCwd::from_components(b"x\0", cut | del), None);

        // In a record: after the environment, counted in its length.
        let mut b = exec_bytes(b"/bin/pwd", b"pwd\0");
        b.extend_from_slice(b"dir\0tmp\0");
        let set = |b: &mut Vec<u8>, field: usize, v: u32| {
            b[field..field + 4].copy_from_slice(&v.to_ne_bytes());
        };
        let len = b.len() as u32;
        set(&mut b, std::mem::offset_of!(ExecRecord, header.len), len);
        set(&mut b, std::mem::offset_of!(ExecRecord, cwd_len), 8);
        set(&mut b, std::mem::offset_of!(ExecRecord, flags), w);
        let Record::Exec(e) = decode(&b).unwrap() else {
            panic!("not exec")
        };
        assert_eq!(e.argv, b"pwd\0");
        assert!(e.env.is_empty());
        assert_eq!(e.cwd.map(|c| c.path), Some(b"/tmp/dir".to_vec()));
        // A cwd length past the record's end is an error, not a panic.
        set(&mut b, std::mem::offset_of!(ExecRecord, cwd_len), 9);
        assert!(matches!(decode(&b), Err(DecodeError::Length { .. })));
        set(&mut b, std::mem::offset_of!(ExecRecord, cwd_len), u32::MAX);
        assert!(matches!(decode(&b), Err(DecodeError::Length { .. })));
    }

    #[test]
    fn exec_round_trip() {
        let b = exec_bytes(b"/bin/true", b"true\0x\0");
        let Record::Exec(e) = decode(&b).unwrap() else {
            panic!("not exec")
        };
        assert_eq!(e.path, b"/bin/true");
        assert_eq!(e.argv, b"true\0x\0");
        assert_eq!(e.rec.task.tgid, 42);
    }

    #[test]
    fn rejects_lies_and_garbage() {
        let good = exec_bytes(b"/bin/true", b"true\0");
        // every truncation is an error, never a panic
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "len {n}");
        }
        // a path length pointing past the end
        let mut bad = good.clone();
        let off = std::mem::offset_of!(ExecRecord, path_len);
        bad[off..off + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(matches!(decode(&bad), Err(DecodeError::Length { .. })));
        // wrong version, unknown kind
        let mut v = good.clone();
        v[2] = 99;
        assert_eq!(decode(&v).unwrap_err(), DecodeError::Version(99));
        let mut k = good.clone();
        k[0] = 77;
        assert_eq!(decode(&k).unwrap_err(), DecodeError::Kind(77));
        // random bytes
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for len in [0usize, 1, 15, 16, 100, 200, 5000] {
            let mut buf = vec![0u8; len];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let _ = decode(&buf);
        }
    }

    #[test]
    fn fixed_records() {
        let mut c = ConnectRecord::default();
        c.header = Header {
            kind: RecordKind::Connect as u16,
            version: RECORD_VERSION,
            len: std::mem::size_of::<ConnectRecord>() as u32,
            ts_boot_ns: 1,
        };
        c.dport = 443;
        let Record::Connect(got) = decode(&as_bytes(&c)).unwrap() else {
            panic!()
        };
        assert_eq!(got.dport, 443);
    }

    #[test]
    fn c_strings() {
        assert_eq!(c_str(b"bash\0\0\0"), b"bash");
        assert_eq!(c_str(b"sixteen-chars-xx"), b"sixteen-chars-xx");
        assert_eq!(c_str(b""), b"");
    }
}
