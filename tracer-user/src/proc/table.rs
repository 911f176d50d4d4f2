//! The process table: what user space knows about each live (and recently exited)
//! process, keyed by tgid. Seeded from /proc, then kept by fork/exec/exit records.
//!
//! Records carry everything captured at the moment of the action (credentials,
//! cgroup, namespaces); the table adds what is stable for an image (binary, argv, cwd)
//! and the parent links that make up the lineage.
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use serde_json::value::RawValue;

use crate::{
    event::{Ancestor, AncestorBase, CredentialEnv, ImageSource, LoaderEnv, Requestor},
    exec_id::ImageLayout,
    filehash::FileVersion,
    proc::{cwd::CwdMarks, intern::Interner},
};

/// [`Process::cpu_base_ns`] of an image whose exec the tracer did not see
/// (584 years of CPU: never a real runtime).
pub const NO_EXEC_SEEN: u64 = u64::MAX;

/// [`Process::exec_seq`] of an image no record has described yet.
pub const NO_EXEC_SEQ: u64 = u64::MAX;

#[derive(Debug, Clone)]
pub struct Process {
    pub exec_id: Arc<str>,
    /// What tells this image from the process's others (see `exec_id`).
    pub layout: ImageLayout,
    /// The kernel's exec counter of the process (`TaskInfo::exec_seq`) for this
    /// image; [`NO_EXEC_SEQ`] while only /proc has described it (the first
    /// record sets it). Not an `Option`: its 8 bytes keep the entry within
    /// its size bound (see `entry_stays_small`).
    pub exec_seq: u64,
    pub image_source: ImageSource,
    /// The executed file's version (device, inode, size, ctime); behind a
    /// pointer so that the processes running one binary share one copy.
    pub file: Option<Arc<FileVersion>>,
    pub loader_env: Option<Arc<LoaderEnv>>,
    /// Names of the credential variables in its environment at exec.
    pub credential_env: Option<Arc<CredentialEnv>>,
    /// Who asked for what this image does (`executor.requestor`): from its
    /// own environment, or its parent's when the same or absent; shared with
    /// every image that carries the same values from the same origin.
    pub requestor: Option<Arc<Requestor>>,
    /// The process's CPU runtime (ns) when this image was exec'd: its exit's
    /// usage counts from there. [`NO_EXEC_SEEN`] when no exec of it was seen
    /// (a fork child running its parent's image, a process older than the
    /// tracer): usage then counts from the process's start. Zero is a real
    /// value: a child that execs before its first tick has run "no time".
    pub cpu_base_ns: u64,
    /// When the image started, ns since boot (its exec, or the process's
    /// start); 0 when only /proc described it (`start_ticks` says then).
    pub image_start_ns: u64,
    pub pid: u32,
    pub ppid: u32,
    /// Start time in clock ticks since boot (as /proc shows it).
    pub start_ticks: u64,
    pub binary: Arc<str>,
    pub argv: Arc<[String]>,
    /// The table keeps `argv` cut to a bound (see [`ProcessTable::replace`]);
    /// events of this image other than its exec then flag their argv as cut.
    pub argv_truncated: bool,
    pub cwd: Option<Arc<str>>,
    /// Inode number of that directory, to tell whether a later exec ran in the
    /// same one; 0 unknown.
    pub cwd_ino: u64,
    /// Where `cwd` came from, and whether it is cut or outside the root.
    pub cwd_marks: CwdMarks,
    /// Last cgroup v2 id a record showed for it (for lineage identity); 0 unknown.
    pub cgroup_id: u64,
    /// Likewise its cgroup in the v1 hierarchy the probes read; 0 unknown or none.
    pub cgroup_v1_id: u64,
    /// Real uid and gid as last seen (for lineage identity selectors).
    pub uid: u32,
    pub gid: u32,
    /// When the exit was seen; the entry stays for lineage until the grace ends.
    pub exited: Option<Instant>,
    /// This process as a lineage entry, built and serialized on first use.
    /// Boxed: most processes never become an ancestor, and a pointer is a
    /// fifth of the parts' size in every entry.
    pub lineage_entry: OnceLock<Box<AncestorParts>>,
    /// Set by the table on insertion: tells this image's places in the
    /// table's queues from those of an earlier image of the same pid.
    pub serial: u64,
    /// Set by the table once its binary, argv and file are copies other
    /// entries hold too: [`entry_bytes`] then leaves them out.
    pub shared: bool,
}

/// What a process contributes to its descendants' lineage; never changes for
/// an image, so it is computed once.
#[derive(Debug, Clone)]
pub struct AncestorParts {
    argv: Arc<[String]>,
    argv_truncated: bool,
    json: Option<Arc<RawValue>>,
}

impl Process {
    /// The image's source as lineage shows it: only when not the kernel's.
    fn reported_source(&self) -> Option<ImageSource> {
        (self.image_source != ImageSource::Exec).then_some(self.image_source)
    }

    /// This process as a lineage entry, its argv cut to `argv_max` bytes (0: whole).
    pub fn ancestor(&self, argv_max: usize) -> Ancestor {
        let parts = self.lineage_entry.get_or_init(|| {
            let (argv, argv_truncated) = match cap_argv(&self.argv, argv_max) {
                Some(cut) => (cut, true),
                None => (self.argv.clone(), false),
            };
            let json = Ancestor::base_json(&AncestorBase {
                exec_id: &self.exec_id,
                pid: self.pid,
                binary: &self.binary,
                argv: &argv,
                argv_truncated,
                image_source: self.reported_source(),
            });
            Box::new(AncestorParts {
                argv,
                argv_truncated,
                json,
            })
        });
        Ancestor {
            exec_id: self.exec_id.clone(),
            pid: self.pid,
            binary: self.binary.clone(),
            argv: parts.argv.clone(),
            argv_truncated: parts.argv_truncated,
            image_source: self.reported_source(),
            workload: None,
            identity: None,
            json: parts.json.clone(),
            brief: false,
        }
    }
}

/// `argv` cut to `max` bytes (counted as in /proc/<pid>/cmdline, NULs between
/// arguments included), or None when it fits or `max` is 0. The argument
/// that crosses the bound keeps its start, cut at a character boundary.
pub fn cap_argv(argv: &[String], max: usize) -> Option<Arc<[String]>> {
    let whole = argv.iter().map(|a| a.len() + 1).sum::<usize>();
    if max == 0 || whole.saturating_sub(1) <= max {
        return None;
    }
    let mut out = Vec::new();
    let mut room = max;
    for a in argv {
        if a.len() < room {
            out.push(a.clone());
            room -= a.len() + 1;
            continue;
        }
        let mut end = room;
        while !a.is_char_boundary(end) {
            end -= 1;
        }
        if end > 0 {
            out.push(a[..end].to_owned());
        }
        break;
    }
    Some(out.into())
}

/// Bytes of argv an entry keeps, and arguments: an image's exec event carries
/// its argv whole; the table's copy serves its later events and its
/// descendants' lineage, and must not let 2,000 sleeping processes with large
/// command lines hold hundreds of MiB.
pub const KEPT_ARGV_MAX: usize = 4096;
pub const KEPT_ARGS_MAX: usize = 256;

/// What one argument costs besides its bytes: its `String` and the allocator's
/// chunk header and rounding.
const ARG_OVERHEAD: usize = 24 + 16;

/// What an entry costs besides its strings: the boxed `Process` and its
/// allocator header, its map slot (with the map's spare room), its places in
/// the insertion-order queue (a pid and serial, up to [`ORDER_SLACK`] of them
/// per entry, in a queue with up to twice the room).
const ENTRY_OVERHEAD: usize = std::mem::size_of::<Process>() + 16 + 32 + 2 * 16 * 5 / 4;

/// `order` is compacted once it holds a quarter more positions than the table
/// entries (plus a constant): a process that forks and then execs leaves one
/// stale position per image, and the queue must not keep twice the entries.
const ORDER_SLACK: usize = 4;

/// An `Arc<str>`'s header.
const ARC: usize = 16;

/// A [`FileVersion`] with its allocator header.
const FILE: usize = std::mem::size_of::<FileVersion>() + 8;

/// Approximate heap bytes an entry holds, from above: the lineage entry as if
/// every process became an ancestor, and its binary, argv and file version
/// unless [`Interner`] found them equal to copies other entries already hold
/// ([`Process::shared`]: those are counted by the entry that first held them,
/// so each shared copy once, not once per process).
fn entry_bytes(p: &Process, ancestor_argv_max: usize) -> usize {
    let argv_bytes: usize = p.argv.iter().map(|a| a.len() + 1).sum();
    let own = if p.shared {
        0
    } else {
        ARC + p.binary.len()
            + ARC
            + argv_bytes
            + p.argv.len() * ARG_OVERHEAD
            + p.file.as_ref().map_or(0, |_| ARC + FILE)
            + p.loader_env.as_ref().map_or(0, |e| {
                e.iter()
                    .map(|(k, v)| k.len() + v.len() + 2 * ARG_OVERHEAD)
                    .sum()
            })
            + p.credential_env.as_ref().map_or(0, |c| {
                ARC + c
                    .names
                    .iter()
                    .map(|k| k.len() + ARG_OVERHEAD)
                    .sum::<usize>()
            })
    };
    // The lineage entry (built on first use) is JSON of the argv cut to the
    // lineage bound, plus that cut argv as strings when it is cut.
    let lineage_argv = match ancestor_argv_max {
        0 => argv_bytes,
        max => argv_bytes.min(max),
    };
    let cut_copy = if lineage_argv < argv_bytes {
        lineage_argv + p.argv.len().min(lineage_argv) * ARG_OVERHEAD
    } else {
        0
    };
    let lineage =
        96 + p.exec_id.len() + p.binary.len() + lineage_argv + 3 * p.argv.len() + cut_copy;
    // A requestor is counted by the image that introduced it (its origin);
    // the images that inherit it share that one copy.
    let requestor = p
        .requestor
        .as_ref()
        .filter(|r| r.inherited_from == p.exec_id)
        .map_or(0, |r| r.approx_bytes());
    ENTRY_OVERHEAD
        + ARC
        + p.exec_id.len()
        + own
        + requestor
        + lineage
        + p.cwd.as_ref().map_or(0, |c| ARC + c.len())
}

/// `argv` cut to what an entry keeps, or None when it fits.
fn kept_argv(argv: &Arc<[String]>) -> Option<Arc<[String]>> {
    let few = (argv.len() > KEPT_ARGS_MAX).then(|| &argv[..KEPT_ARGS_MAX]);
    match cap_argv(few.unwrap_or(argv), KEPT_ARGV_MAX) {
        Some(cut) => Some(cut),
        None => few.map(Arc::from),
    }
}

/// What the table dropped or cut to stay within its bounds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TableDrops {
    /// Exited entries dropped before their grace ended.
    pub exited_early: u64,
    /// Running processes dropped: their next event is described from /proc.
    pub live: u64,
    /// Entries whose argv was kept cut.
    pub argv_cut: u64,
}

pub struct ProcessTable {
    /// Boxed: a `Process` is ~180 bytes, and the map keeps spare slots and moves
    /// every entry when it grows; with boxes both cost a pointer, not a process.
    procs: HashMap<u32, Box<Process>>,
    /// Exit order, for eviction: (pid, serial of the image that exited).
    exited: VecDeque<(u32, u64, Instant)>,
    /// Insertion order of entries, for evicting running processes when the
    /// table is full of them (stale positions are skipped and compacted):
    /// (pid, serial of the image inserted).
    order: VecDeque<(u32, u64)>,
    /// The next image's serial.
    next_serial: u64,
    grace: Duration,
    max_entries: usize,
    /// Bound on [`entry_bytes`] over all entries.
    max_bytes: usize,
    bytes: usize,
    drops: TableDrops,
    /// Bytes of an ancestor's argv in lineage entries (0: whole).
    ancestor_argv_max: usize,
    /// Images added since the last `share_long_lived`.
    fresh: Vec<u32>,
}

impl ProcessTable {
    pub fn new(grace: Duration, max_entries: usize) -> Self {
        Self {
            procs: HashMap::new(),
            exited: VecDeque::new(),
            order: VecDeque::new(),
            grace,
            max_entries: max_entries.max(1),
            max_bytes: usize::MAX,
            bytes: 0,
            drops: TableDrops::default(),
            ancestor_argv_max: 0,
            fresh: Vec::new(),
            next_serial: 0,
        }
    }

    /// Bound the entries' bytes (see [`entry_bytes`]).
    pub fn with_max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes.max(1);
        self
    }

    /// Bytes the entries hold, as accounted against the bound.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn drops(&self) -> TableDrops {
        self.drops
    }

    /// Put `p` in the table (replacing the pid's entry), its argv cut to what
    /// an entry keeps.
    fn insert(&mut self, mut p: Process) {
        if let Some(cut) = kept_argv(&p.argv) {
            p.argv = cut;
            p.argv_truncated = true;
            self.drops.argv_cut += 1;
        }
        self.bytes += entry_bytes(&p, self.ancestor_argv_max);
        self.fresh.push(p.pid);
        p.serial = self.next_serial;
        self.next_serial += 1;
        self.order.push_back((p.pid, p.serial));
        if let Some(old) = self.procs.insert(p.pid, Box::new(p)) {
            self.bytes = self
                .bytes
                .saturating_sub(entry_bytes(&old, self.ancestor_argv_max));
        }
    }

    fn remove(&mut self, pid: u32) {
        if let Some(old) = self.procs.remove(&pid) {
            self.bytes = self
                .bytes
                .saturating_sub(entry_bytes(&old, self.ancestor_argv_max));
        }
    }

    /// Cut each ancestor's argv in lineage entries to `bytes` (0: never).
    pub fn with_ancestor_argv_max(mut self, bytes: usize) -> Self {
        self.ancestor_argv_max = bytes;
        self
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.procs.get(&pid).map(|p| &**p)
    }

    /// Insert or replace the entry for `p.pid`. Returns false when the same image
    /// (same exec_id) was already there, so a process seen both by the /proc scan and
    /// by a replayed record is kept once.
    pub fn upsert(&mut self, p: Process) -> bool {
        if let Some(old) = self.procs.get_mut(&p.pid)
            && old.exec_id == p.exec_id
        {
            // Same image: keep what we had, but a later parent (reparenting) wins.
            old.ppid = p.ppid;
            return false;
        }
        self.insert(p);
        self.enforce_bound();
        true
    }

    /// An exec record: the new image replaces whatever the table held for the pid.
    pub fn replace(&mut self, p: Process) {
        self.insert(p);
        self.enforce_bound();
    }

    /// A record showed the kernel's exec counter of an image known from /proc.
    pub fn adopt_exec_seq(&mut self, pid: u32, seq: u64) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exec_seq = seq;
        }
    }

    /// Add a process seen only by the /proc scan, unless a record already told us
    /// about a newer image of that pid.
    pub fn seed(&mut self, p: Process) {
        match self.procs.get(&p.pid) {
            Some(old) if old.start_ticks >= p.start_ticks => {}
            _ => {
                self.insert(p);
                self.enforce_bound();
            }
        }
    }

    /// Keep what the latest record said about a process that can change without an
    /// exec: its cgroups, (v2 id, v1 id) (it may be moved), and credentials (setuid).
    pub fn observe(&mut self, pid: u32, cgroups: (u64, u64), uid: u32, gid: u32) {
        if let Some(p) = self.procs.get_mut(&pid) {
            (p.cgroup_id, p.cgroup_v1_id) = cgroups;
            p.uid = uid;
            p.gid = gid;
        }
    }

    pub fn mark_exited(&mut self, pid: u32, now: Instant) {
        if let Some(p) = self.procs.get_mut(&pid)
            && p.exited.is_none()
        {
            p.exited = Some(now);
            self.exited.push_back((pid, p.serial, now));
        }
    }

    /// Drop exited processes whose grace period is over.
    pub fn evict(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(&(pid, serial, at)) = self.exited.front() {
            if now.duration_since(at) < self.grace {
                break;
            }
            // The pid may have been reused by a new process since: remove only the
            // image that exited.
            if self.procs.get(&pid).is_some_and(|p| p.serial == serial) {
                self.remove(pid);
                n += 1;
            }
            self.exited.pop_front();
        }
        self.compact_order();
        n
    }

    fn over_bound(&self) -> bool {
        self.procs.len() > self.max_entries || self.bytes > self.max_bytes
    }

    /// Past a bound (entries or bytes), drop the oldest exited entries first,
    /// grace or not; then the running processes added longest ago (a process
    /// that acts again is read back from /proc, and counted as such).
    fn enforce_bound(&mut self) {
        while self.over_bound() {
            let Some((pid, serial, _)) = self.exited.pop_front() else {
                break;
            };
            if self.procs.get(&pid).is_some_and(|p| p.serial == serial) {
                self.remove(pid);
                self.drops.exited_early += 1;
            }
        }
        // Never the entry just added (the last in `order`): its event is being built.
        while self.over_bound() && self.order.len() > 1 {
            let Some((pid, serial)) = self.order.pop_front() else {
                break;
            };
            if self
                .procs
                .get(&pid)
                .is_some_and(|p| p.serial == serial && p.exited.is_none())
            {
                self.remove(pid);
                self.drops.live += 1;
            }
        }
        self.compact_order();
    }

    /// Forget positions of entries gone or replaced once they outnumber the
    /// entries, so the queue stays proportional to the table.
    fn compact_order(&mut self) {
        if self.order.len() > self.procs.len() + self.procs.len() / ORDER_SLACK + 1024 {
            let procs = &self.procs;
            self.order
                .retain(|&(pid, serial)| procs.get(&pid).is_some_and(|p| p.serial == serial));
        }
    }

    /// Processes added since the last call that are still running share their
    /// binary, argv, file version and loader environment with equal ones. Done here, not per exec, so a storm of
    /// short-lived processes pays nothing for it; the long-lived ones, which
    /// make a table large, are shared within a tick.
    pub fn share_long_lived(&mut self, intern: &mut Interner) {
        for pid in self.fresh.drain(..) {
            if let Some(p) = self.procs.get_mut(&pid)
                && p.exited.is_none()
                && !p.shared
            {
                let before = entry_bytes(p, self.ancestor_argv_max);
                let binary = intern.str(&p.binary);
                let argv = intern.argv(&p.argv);
                let file = p.file.as_ref().map(|f| intern.file(f));
                // A loader environment (LD_LIBRARY_PATH and the like) is the
                // parent's, the same for all its children, and larger than the rest.
                let loader_env = p.loader_env.as_ref().map(|e| intern.env(e));
                let credential_env = p.credential_env.as_ref().map(|c| intern.credentials(c));
                // Copies another entry holds (not this entry's own, kept as the shared one).
                p.shared = !Arc::ptr_eq(&binary, &p.binary)
                    && !Arc::ptr_eq(&argv, &p.argv)
                    && p.file
                        .as_ref()
                        .zip(file.as_ref())
                        .is_none_or(|(a, b)| !Arc::ptr_eq(a, b))
                    && p.loader_env
                        .as_ref()
                        .zip(loader_env.as_ref())
                        .is_none_or(|(a, b)| !Arc::ptr_eq(a, b))
                    && p.credential_env
                        .as_ref()
                        .zip(credential_env.as_ref())
                        .is_none_or(|(a, b)| !Arc::ptr_eq(a, b));
                p.binary = binary;
                p.argv = argv;
                p.file = file;
                p.loader_env = loader_env;
                p.credential_env = credential_env;
                let after = entry_bytes(p, self.ancestor_argv_max);
                self.bytes = (self.bytes + after).saturating_sub(before);
            }
        }
    }

    /// Ancestors of a process whose parent is `ppid` and which started at
    /// `start_ticks`, parent first, up to init or `depth` entries. A parent that
    /// started after its child is a reused pid, not the parent: the walk stops there.
    pub fn lineage(&self, ppid: u32, start_ticks: u64, depth: usize) -> Vec<Ancestor> {
        let mut out = Vec::new();
        let mut pid = ppid;
        let mut child_start = start_ticks;
        while out.len() < depth && pid != 0 {
            let Some(p) = self.procs.get(&pid) else { break };
            if p.start_ticks > child_start {
                break;
            }
            out.push(p.ancestor(self.ancestor_argv_max));
            if p.pid == 1 || p.ppid == p.pid {
                break;
            }
            child_start = p.start_ticks;
            pid = p.ppid;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, ppid: u32, start: u64, id: &str) -> Process {
        Process {
            exec_id: id.into(),
            layout: ImageLayout::default(),
            exec_seq: NO_EXEC_SEQ,
            image_source: ImageSource::Exec,
            file: None,
            loader_env: None,
            credential_env: None,
            requestor: None,
            cpu_base_ns: NO_EXEC_SEEN,
            image_start_ns: 0,
            pid,
            ppid,
            start_ticks: start,
            binary: format!("/bin/{id}").into(),
            argv: vec![id.to_owned()].into(),
            argv_truncated: false,
            cwd: None,
            cwd_ino: 0,
            cwd_marks: Default::default(),
            cgroup_id: 0,
            cgroup_v1_id: 0,
            uid: 0,
            gid: 0,
            exited: None,
            lineage_entry: OnceLock::new(),
            serial: 0,
            shared: false,
        }
    }

    /// A host with 100,000 processes must cost the tracer less than 64 MiB
    /// (docs/performance.md, "Memory per process"): each entry is boxed, so
    /// every byte of a `Process` is paid once per process (100 KB per byte),
    /// and its spare room no less. Grow it only knowingly.
    #[test]
    fn entry_stays_small() {
        assert!(std::mem::size_of::<Process>() <= 256);
        // Rarely used parts are behind a pointer (most processes never
        // become an ancestor).
        assert_eq!(std::mem::size_of::<OnceLock<Box<AncestorParts>>>(), 16);
        // The queues hold a pid and a serial per position, no strings.
        assert_eq!(std::mem::size_of::<(u32, u64)>(), 16);
    }

    #[test]
    fn ancestor_argv_is_capped_at_a_byte_bound() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        type Case<'a> = (&'a [&'a str], usize, Option<&'a [&'a str]>);
        let cases: &[Case] = &[
            (&["sh", "-c", "x"], 0, None),
            (&["sh", "-c", "x"], 7, None),
            (&["sh", "-c", "x"], 6, Some(&["sh", "-c"])),
            (&["sh", "-c", "echo hello"], 10, Some(&["sh", "-c", "echo"])),
            (&["abcdef"], 3, Some(&["abc"])),
            // Never inside a UTF-8 character.
            (&["ééé"], 3, Some(&["é"])),
        ];
        for (argv, max, want) in cases {
            let got = cap_argv(&v(argv), *max);
            assert_eq!(got.as_deref(), want.map(v).as_deref(), "{argv:?} {max}");
            if let Some(got) = got {
                assert!(got.iter().map(|a| a.len() + 1).sum::<usize>() <= max + 1);
            }
        }
        // In a lineage entry: cut, flagged, and the same in the cached JSON.
        let mut t = ProcessTable::new(Duration::from_secs(1), 100).with_ancestor_argv_max(8);
        let mut p = proc(10, 1, 5, "long");
        p.argv = v(&["long", "argument-list"]).into();
        t.upsert(p);
        let l = t.lineage(10, 9, 4);
        assert_eq!(&*l[0].argv, &v(&["long", "arg"])[..]);
        assert!(l[0].argv_truncated);
        let json = serde_json::to_value(&l[0]).unwrap();
        assert_eq!(json["argv"], serde_json::json!(["long", "arg"]));
        assert_eq!(json["argv_truncated"], true);
        // Whole: no flag at all.
        let mut t = ProcessTable::new(Duration::from_secs(1), 100);
        t.upsert(proc(10, 1, 5, "short"));
        let json = serde_json::to_value(&t.lineage(10, 9, 4)[0]).unwrap();
        assert!(json.get("argv_truncated").is_none(), "{json}");
    }

    #[test]
    fn running_processes_share_equal_argv_after_a_tick() {
        let mut t = ProcessTable::new(Duration::from_secs(30), 100);
        let mut intern = Interner::default();
        for pid in [10, 11, 12] {
            let mut p = proc(pid, 1, 5, "sleep");
            p.exec_id = format!("id{pid}").into();
            t.upsert(p);
        }
        t.mark_exited(12, Instant::now());
        assert!(!Arc::ptr_eq(
            &t.get(10).unwrap().argv,
            &t.get(11).unwrap().argv
        ));
        t.share_long_lived(&mut intern);
        let (a, b) = (t.get(10).unwrap(), t.get(11).unwrap());
        assert!(Arc::ptr_eq(&a.argv, &b.argv));
        assert!(Arc::ptr_eq(&a.binary, &b.binary));
        // The one that already exited was left alone (it goes soon anyway).
        assert!(!Arc::ptr_eq(&a.argv, &t.get(12).unwrap().argv));
    }

    /// 100,000 copies of one command must not be accounted as 100,000 copies
    /// of its strings, or the byte bound evicts a table that fits in memory;
    /// and the accounting still returns to zero.
    #[test]
    fn shared_strings_are_accounted_once() {
        let mut t = ProcessTable::new(Duration::from_secs(30), 100);
        let mut intern = Interner::default();
        let file = FileVersion {
            major: 8,
            minor: 1,
            ino: 42,
            size: 1000,
            ctime_sec: 1,
            ctime_nsec: 2,
        };
        for pid in [10, 11] {
            let mut p = proc(pid, 1, 5, "sleep");
            p.exec_id = format!("id{pid}").into();
            p.file = Some(Arc::new(file));
            // As `cargo run` and many launchers pass to all their children.
            let env = [("LD_LIBRARY_PATH".to_owned(), "/opt/lib".to_owned())];
            p.loader_env = Some(Arc::new(env.into_iter().collect()));
            t.upsert(p);
        }
        let unshared = t.bytes();
        t.share_long_lived(&mut intern);
        let (a, b) = (t.get(10).unwrap(), t.get(11).unwrap());
        assert!(!a.shared && b.shared, "the first holder counts the copy");
        assert!(Arc::ptr_eq(
            a.file.as_ref().unwrap(),
            b.file.as_ref().unwrap()
        ));
        let counted = entry_bytes(a, 0) + entry_bytes(b, 0);
        assert_eq!(t.bytes(), counted);
        assert!(t.bytes() < unshared);
        let now = Instant::now();
        t.mark_exited(10, now);
        t.mark_exited(11, now);
        t.evict(now + Duration::from_secs(60));
        assert_eq!((t.len(), t.bytes()), (0, 0));
    }

    /// A requestor is counted once, by the image that introduced it, however
    /// many images inherit it.
    #[test]
    fn a_requestor_is_counted_by_its_origin_only() {
        use crate::event::{RequestorClaim, RequestorValues};
        let r = Arc::new(Requestor {
            values: RequestorValues {
                system: "github-actions".into(),
                fields: vec![(Arc::from("run"), "x".repeat(200))],
                truncated: false,
                display: "y".repeat(200),
            },
            inherited_from: "step".into(),
            claim: RequestorClaim::Runner,
            overrides: None,
        });
        let plain = entry_bytes(&proc(10, 1, 5, "step"), 0);
        let mut origin = proc(10, 1, 5, "step");
        origin.requestor = Some(r.clone());
        assert_eq!(entry_bytes(&origin, 0), plain + r.approx_bytes());
        let mut child = proc(11, 10, 6, "stepx");
        let child_plain = entry_bytes(&child, 0);
        child.requestor = Some(r);
        assert_eq!(entry_bytes(&child, 0), child_plain);
    }

    #[test]
    fn lineage_parent_first_to_init() {
        let mut t = ProcessTable::new(Duration::from_secs(1), 100);
        t.upsert(proc(1, 0, 1, "init"));
        t.upsert(proc(10, 1, 5, "sshd"));
        t.upsert(proc(20, 10, 9, "bash"));
        let l = t.lineage(20, 12, 10);
        let ids: Vec<&str> = l.iter().map(|a| &*a.exec_id).collect();
        assert_eq!(ids, ["bash", "sshd", "init"]);
        assert_eq!(t.lineage(20, 12, 2).len(), 2);
        assert!(t.lineage(99, 12, 10).is_empty());
    }

    #[test]
    fn reused_parent_pid_is_not_an_ancestor() {
        let mut t = ProcessTable::new(Duration::from_secs(1), 100);
        t.upsert(proc(1, 0, 1, "init"));
        // pid 10 now belongs to a process that started after our child did
        t.upsert(proc(10, 1, 50, "newcomer"));
        assert!(t.lineage(10, 20, 10).is_empty());
    }

    #[test]
    fn same_image_is_kept_once_and_new_image_replaces() {
        let mut t = ProcessTable::new(Duration::from_secs(1), 100);
        assert!(t.upsert(proc(5, 1, 3, "a")));
        assert!(!t.upsert(proc(5, 1, 3, "a")));
        assert!(t.upsert(proc(5, 1, 3, "b")));
        assert_eq!(&*t.get(5).unwrap().exec_id, "b");
        // a scan result older than what records told us does not win
        t.seed(proc(5, 1, 2, "old"));
        assert_eq!(&*t.get(5).unwrap().exec_id, "b");
    }

    #[test]
    fn eviction_after_grace_and_pid_reuse_safe() {
        let mut t = ProcessTable::new(Duration::from_millis(10), 100);
        let now = Instant::now();
        t.upsert(proc(5, 1, 3, "a"));
        t.mark_exited(5, now);
        assert_eq!(t.evict(now), 0);
        // pid reused before the grace ended: the new process must survive eviction
        t.upsert(proc(5, 1, 9, "b"));
        assert_eq!(t.evict(now + Duration::from_millis(20)), 0);
        assert_eq!(&*t.get(5).unwrap().exec_id, "b");
        t.mark_exited(5, now);
        assert_eq!(t.evict(now + Duration::from_millis(20)), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn bounded() {
        let mut t = ProcessTable::new(Duration::from_secs(3600), 3);
        let now = Instant::now();
        for pid in 1..=3 {
            t.upsert(proc(pid, 0, u64::from(pid), &pid.to_string()));
            t.mark_exited(pid, now);
        }
        t.upsert(proc(4, 0, 4, "4"));
        assert_eq!(t.len(), 3);
        assert!(t.get(1).is_none());
        assert_eq!(t.drops().exited_early, 1);
    }

    #[test]
    fn argv_kept_is_cut_and_flagged() {
        let mut t = ProcessTable::new(Duration::from_secs(30), 100);
        // Many tiny arguments cost more in `String`s than in bytes.
        let mut p = proc(7, 1, 5, "many");
        p.argv = (0..10_000).map(|n| (n % 10).to_string()).collect();
        t.replace(p);
        let kept = t.get(7).unwrap();
        assert!(kept.argv_truncated);
        assert_eq!(kept.argv.len(), KEPT_ARGS_MAX);
        // Few long ones: cut at the byte bound.
        let mut p = proc(8, 1, 5, "long");
        p.argv = vec!["x".repeat(100_000)].into();
        t.replace(p);
        let kept = t.get(8).unwrap();
        assert!(kept.argv_truncated);
        assert_eq!(kept.argv[0].len(), KEPT_ARGV_MAX);
        assert_eq!(t.drops().argv_cut, 2);
        t.replace(proc(9, 1, 5, "short"));
        assert!(!t.get(9).unwrap().argv_truncated);
        assert_eq!(t.drops().argv_cut, 2);
    }

    #[test]
    fn bytes_are_bounded_exited_first_then_oldest_running() {
        let one = entry_bytes(&proc(1, 0, 1, "a"), 0);
        let mut t =
            ProcessTable::new(Duration::from_secs(3600), 1000).with_max_bytes(3 * one + one / 2);
        let now = Instant::now();
        for pid in 1..=3 {
            t.upsert(proc(pid, 0, u64::from(pid), "a"));
        }
        t.mark_exited(2, now);
        assert_eq!(t.len(), 3);
        // Over the byte bound: the exited one goes first...
        t.upsert(proc(4, 0, 4, "a"));
        assert!(t.get(2).is_none());
        assert_eq!(
            t.drops(),
            TableDrops {
                exited_early: 1,
                ..Default::default()
            }
        );
        // ...then the running one added longest ago.
        t.upsert(proc(5, 0, 5, "a"));
        assert!(t.get(1).is_none());
        assert!(t.get(5).is_some());
        assert_eq!(t.drops().live, 1);
        assert!(t.bytes() <= 3 * one + one / 2);
        // The count bound evicts running processes too.
        let mut t = ProcessTable::new(Duration::from_secs(3600), 2);
        for pid in 1..=3 {
            t.upsert(proc(pid, 0, u64::from(pid), "b"));
        }
        assert_eq!(t.len(), 2);
        assert!(t.get(1).is_none());
        assert_eq!(t.drops().live, 1);
        // Accounting returns to zero when all are gone.
        for pid in 2..=3 {
            t.mark_exited(pid, now);
        }
        t.evict(now + Duration::from_secs(7200));
        assert_eq!((t.len(), t.bytes()), (0, 0));
    }
}
