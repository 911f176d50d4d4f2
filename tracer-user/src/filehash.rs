//! SHA-256 of executed files, computed in user space, off the event loop.
//!
//! The kernel names the executed file at the exec by device, inode, size and
//! change time ([`FileVersion`]): one version of one file's content. Its hash
//! is cached by exactly that, so a storm of execs of one binary hashes it once,
//! and a binary rewritten in place (new ctime) is hashed anew.
//!
//! The file is read through `/proc/<pid>/exe` (the very file the kernel
//! executed, even in another mount namespace, even deleted), else, when the
//! process is already gone, at its path under the host root; either way it is
//! trusted only when an `fstat` of the opened file shows the kernel's device,
//! inode, size and ctime, and the same again after the last byte was read.
//! One exception keeps a binary deleted (or chmod'ed) right after its exec
//! hashable: through `/proc/<pid>/exe`, a changed ctime is accepted when the
//! process still runs the image that exec made (its `AT_RANDOM` bytes, as the
//! probe read them): the kernel denies writes to a running image's file
//! (`ETXTBSY`) from the exec on, so only its metadata can have changed.
//! Anything else is `unreadable`, never a hash of some other content.
//!
//! Work is bounded: a byte budget per second (token bucket, `--hash-budget`),
//! charged before a file is queued, and one worker thread with a bounded queue.
//! A file the budget cannot pay for now is `over_budget` (tried again at a
//! later exec). The event loop never reads a file: it looks the cache up, and
//! an event whose hash is in progress waits a bounded time (`--hash-wait`)
//! like an event waiting for its pod's metadata, then goes out `pending`.
use std::{
    collections::HashMap,
    fs::File,
    io::Read as _,
    num::NonZeroUsize,
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    sync::{
        Arc,
        mpsc::{self, Receiver, SyncSender, TrySendError},
    },
    time::{Duration, Instant},
};

use lru::LruCache;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// One version of a file: what the kernel saw at the exec (or an `fstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileVersion {
    pub major: u32,
    pub minor: u32,
    pub ino: u64,
    pub size: u64,
    pub ctime_sec: i64,
    pub ctime_nsec: u32,
}

impl FileVersion {
    /// From the kernel's `sb->s_dev` encoding (MKDEV: major << 20 | minor).
    pub fn from_kernel(dev: u32, ino: u64, size: u64, ctime_sec: i64, ctime_nsec: u32) -> Self {
        Self {
            major: dev >> 20,
            minor: dev & 0xf_ffff,
            ino,
            size,
            ctime_sec,
            ctime_nsec,
        }
    }

    /// From a `stat` of the file.
    pub fn from_metadata(m: &std::fs::Metadata) -> Self {
        Self {
            major: libc::major(m.dev()),
            minor: libc::minor(m.dev()),
            ino: m.ino(),
            size: m.size(),
            ctime_sec: m.ctime(),
            // Always below 10^9.
            ctime_nsec: u32::try_from(m.ctime_nsec()).unwrap_or(0),
        }
    }

    /// `major:minor`, as events show it.
    pub fn dev(&self) -> String {
        format!("{}:{}", self.major, self.minor)
    }

    /// Same file (device and inode), whatever its content.
    pub fn same_file(&self, other: &FileVersion) -> bool {
        (self.major, self.minor, self.ino) == (other.major, other.minor, other.ino)
    }
}

/// Whether `executor.file.sha256` is there, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashStatus {
    /// `sha256` holds the hash of the executed file's content.
    Sha256,
    /// Being hashed; the event waited `--hash-wait` and went out without it.
    Pending,
    /// The byte budget (`--hash-budget`) could not pay for it now.
    OverBudget,
    /// No readable file was the executed one: the process was gone and the
    /// host path named another file, the file changed since the exec, or a
    /// read failed.
    Unreadable,
    /// `--hash-budget 0`.
    Disabled,
}

/// What the cache says about a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashState {
    Done(Arc<str>),
    Pending,
    OverBudget,
    Unreadable,
    Disabled,
}

impl HashState {
    pub fn status(&self) -> HashStatus {
        match self {
            HashState::Done(_) => HashStatus::Sha256,
            HashState::Pending => HashStatus::Pending,
            HashState::OverBudget => HashStatus::OverBudget,
            HashState::Unreadable => HashStatus::Unreadable,
            HashState::Disabled => HashStatus::Disabled,
        }
    }

    pub fn sha256(&self) -> Option<Arc<str>> {
        match self {
            HashState::Done(h) => Some(h.clone()),
            _ => None,
        }
    }
}

/// Bytes a second, with a burst of [`BURST_SECS`] seconds' worth.
#[derive(Debug)]
pub(crate) struct Budget {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

/// A file larger than this many seconds of budget is never hashed.
pub(crate) const BURST_SECS: f64 = 4.0;

impl Budget {
    /// `mib_per_sec` MiB a second; the bucket starts full.
    pub(crate) fn new(mib_per_sec: f64, now: Instant) -> Self {
        let rate = (mib_per_sec * 1024.0 * 1024.0).max(0.0);
        let capacity = rate * BURST_SECS;
        Self {
            rate,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        self.last = now;
    }

    /// Pay for `bytes` if the bucket holds them.
    pub(crate) fn try_take(&mut self, bytes: u64, now: Instant) -> bool {
        self.refill(now);
        let b = bytes as f64;
        if b <= self.tokens {
            self.tokens -= b;
            true
        } else {
            false
        }
    }

    /// Give back what a job that never ran was charged.
    pub(crate) fn refund(&mut self, bytes: u64) {
        self.tokens = (self.tokens + bytes as f64).min(self.capacity);
    }
}

/// A file to hash: the version the kernel executed, and where to find it.
#[derive(Debug, Clone)]
pub struct Job {
    pub version: FileVersion,
    pub pid: u32,
    /// The image's `AT_RANDOM` bytes (zeros: unknown).
    pub at_random: [u8; 16],
    /// The executed path under the host root, tried when `/proc/<pid>/exe`
    /// is gone or no longer this file.
    pub host_path: Option<PathBuf>,
}

#[derive(Debug)]
enum Entry {
    Done(Arc<str>),
    InFlight,
    /// Not readable when tried; tried again after this instant.
    Unreadable(Instant),
}

/// How long an unreadable version is not tried again.
const UNREADABLE_RETRY: Duration = Duration::from_secs(2);

/// The cache and budget, without the worker: what the event loop decides.
#[derive(Debug)]
pub(crate) struct HashCache {
    /// At most `max_entries`; the least recently used goes first, so a binary
    /// exec'd often keeps its hash through a storm of one-off ones.
    entries: LruCache<FileVersion, Entry>,
    budget: Option<Budget>,
}

/// What [`HashCache::lookup`] wants done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Nothing,
    /// Queue this version for hashing (the budget was charged).
    Hash,
}

impl HashCache {
    /// `mib_per_sec` 0: hashing disabled.
    pub(crate) fn new(mib_per_sec: f64, max_entries: usize, now: Instant) -> Self {
        Self {
            entries: LruCache::new(NonZeroUsize::new(max_entries).unwrap_or(NonZeroUsize::MIN)),
            budget: (mib_per_sec > 0.0).then(|| Budget::new(mib_per_sec, now)),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The state of `v`, and whether it should be queued now.
    pub(crate) fn lookup(&mut self, v: &FileVersion, now: Instant) -> (HashState, Action) {
        let Some(budget) = self.budget.as_mut() else {
            return (HashState::Disabled, Action::Nothing);
        };
        match self.entries.get(v) {
            Some(Entry::Done(h)) => return (HashState::Done(h.clone()), Action::Nothing),
            Some(Entry::InFlight) => return (HashState::Pending, Action::Nothing),
            Some(Entry::Unreadable(retry)) if now < *retry => {
                return (HashState::Unreadable, Action::Nothing);
            }
            _ => {}
        }
        if !budget.try_take(v.size, now) {
            return (HashState::OverBudget, Action::Nothing);
        }
        self.insert(*v, Entry::InFlight);
        (HashState::Pending, Action::Hash)
    }

    /// Only what is known: no job queued, no budget spent.
    pub(crate) fn peek(&self, v: &FileVersion, now: Instant) -> HashState {
        if self.budget.is_none() {
            return HashState::Disabled;
        }
        match self.entries.peek(v) {
            Some(Entry::Done(h)) => HashState::Done(h.clone()),
            Some(Entry::InFlight) => HashState::Pending,
            Some(Entry::Unreadable(retry)) if now < *retry => HashState::Unreadable,
            // Evicted, or its retry time came: not ours to decide here.
            _ => HashState::Unreadable,
        }
    }

    /// A job could not be queued (worker behind): forget it, refund the budget.
    pub(crate) fn not_queued(&mut self, v: &FileVersion) {
        if matches!(self.entries.peek(v), Some(Entry::InFlight)) {
            self.entries.pop(v);
        }
        if let Some(b) = self.budget.as_mut() {
            b.refund(v.size);
        }
    }

    /// The worker's answer.
    pub(crate) fn finished(&mut self, v: FileVersion, result: Option<Arc<str>>, now: Instant) {
        let entry = match result {
            Some(h) => Entry::Done(h),
            None => Entry::Unreadable(now + UNREADABLE_RETRY),
        };
        self.insert(v, entry);
    }

    /// At the bound the least recently used entry goes; an in-flight one's
    /// answer re-inserts it, so dropping it is harmless.
    fn insert(&mut self, v: FileVersion, e: Entry) {
        self.entries.put(v, e);
    }
}

/// Jobs the worker may have queued at once; past it, `over_budget`.
const QUEUE: usize = 1024;
/// Most cached versions (a few dozen bytes each).
pub(crate) const CACHE_ENTRIES: usize = 16_384;

/// The cache plus its worker thread.
pub struct FileHasher {
    cache: HashCache,
    jobs: Option<SyncSender<Job>>,
    results: Option<Receiver<(FileVersion, Option<Arc<str>>)>>,
    /// Signalled by the worker after each answer (the event loop retries
    /// events that wait for one).
    pub answered: Arc<tokio::sync::Notify>,
    /// Bytes hashed, jobs done and failed (metrics).
    pub stats: Arc<HashStats>,
}

#[derive(Debug, Default)]
pub struct HashStats {
    pub bytes: std::sync::atomic::AtomicU64,
    pub hashed: std::sync::atomic::AtomicU64,
    pub unreadable: std::sync::atomic::AtomicU64,
}

impl FileHasher {
    /// No worker is started when hashing is disabled (`mib_per_sec` 0).
    pub fn new(mib_per_sec: f64) -> Self {
        let answered = Arc::new(tokio::sync::Notify::new());
        let stats = Arc::new(HashStats::default());
        let cache = HashCache::new(mib_per_sec, CACHE_ENTRIES, Instant::now());
        if mib_per_sec <= 0.0 {
            return Self {
                cache,
                jobs: None,
                results: None,
                answered,
                stats,
            };
        }
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(QUEUE);
        let (result_tx, results) = mpsc::channel();
        let (notify, st) = (answered.clone(), stats.clone());
        let spawned = std::thread::Builder::new()
            .name("tracer-hash".into())
            .spawn(move || {
                use std::sync::atomic::Ordering::Relaxed;
                while let Ok(job) = job_rx.recv() {
                    let r = hash_job(&job);
                    match &r {
                        Some(_) => {
                            st.hashed.fetch_add(1, Relaxed);
                            st.bytes.fetch_add(job.version.size, Relaxed);
                        }
                        None => {
                            st.unreadable.fetch_add(1, Relaxed);
                        }
                    }
                    if result_tx.send((job.version, r)).is_err() {
                        break;
                    }
                    notify.notify_one();
                }
            });
        match spawned {
            Ok(_) => Self {
                cache,
                jobs: Some(jobs),
                results: Some(results),
                answered,
                stats,
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the hashing thread; files are not hashed");
                Self {
                    cache: HashCache::new(0.0, 1, Instant::now()),
                    jobs: None,
                    results: None,
                    answered,
                    stats,
                }
            }
        }
    }

    /// Take in the worker's answers.
    fn drain(&mut self) {
        let Some(rx) = &self.results else {
            return;
        };
        let now = Instant::now();
        while let Ok((v, r)) = rx.try_recv() {
            self.cache.finished(v, r, now);
        }
    }

    /// The hash of `v`, queueing it when unknown and the budget allows.
    pub fn state(&mut self, v: &FileVersion, job: impl FnOnce() -> Job) -> HashState {
        self.drain();
        let (state, action) = self.cache.lookup(v, Instant::now());
        if action == Action::Hash {
            let sent = match &self.jobs {
                Some(tx) => tx.try_send(job()),
                None => return HashState::Disabled,
            };
            match sent {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.cache.not_queued(v);
                    return HashState::OverBudget;
                }
            }
        }
        state
    }

    /// What is known about `v` now, without queueing anything.
    pub fn known(&mut self, v: &FileVersion) -> HashState {
        self.drain();
        self.cache.peek(v, Instant::now())
    }
}

/// Open a regular file without blocking (a FIFO put where the binary was
/// must not hang the worker); its version as `fstat` shows it.
fn open_file(path: &Path) -> Option<(File, FileVersion)> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let m = f.metadata().ok()?;
    m.is_file().then(|| (f, FileVersion::from_metadata(&m)))
}

/// The file the process runs is the kernel's (device, inode, size) but its
/// ctime moved: still the exec's content if the process still runs the image
/// that exec made, as writes to it were denied since (see the module doc).
fn same_content_since_exec(job: &Job, now: &FileVersion) -> bool {
    let v = &job.version;
    v.same_file(now)
        && v.size == now.size
        && job.at_random != [0; 16]
        && crate::proc::scan::image_at_random(job.pid) == Some(job.at_random)
}

/// The SHA-256 of the file `job` names, lowercase hex; None unless the bytes
/// read are provably those of the version the kernel executed.
pub(crate) fn hash_job(job: &Job) -> Option<Arc<str>> {
    let v = &job.version;
    let exe = open_file(Path::new(&format!("/proc/{}/exe", job.pid)))
        .filter(|(_, m)| m == v || same_content_since_exec(job, m));
    let (mut f, opened) = match exe {
        Some(x) => x,
        None => open_file(job.host_path.as_deref()?).filter(|(_, m)| m == v)?,
    };
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        total += n as u64;
        if total > v.size {
            return None;
        }
        h.update(&buf[..n]);
    }
    // Unchanged while it was read: same size and ctime as when opened.
    let after = FileVersion::from_metadata(&f.metadata().ok()?);
    if total != v.size || after != opened {
        return None;
    }
    Some(hex::encode(h.finalize()).into())
}

/// `(dev, ino)` of host paths, re-read after [`HOST_PATH_TTL`]: whether the
/// file an image runs is the one at its path on the host (`unix:path`).
pub(crate) struct HostPaths {
    root: PathBuf,
    /// Path -> what a stat found there (none: nothing), and when.
    cache: HashMap<Arc<str>, (Option<DevIno>, Instant)>,
}

/// (major, minor, inode).
type DevIno = (u32, u32, u64);

pub(crate) const HOST_PATH_TTL: Duration = Duration::from_secs(1);
const HOST_PATHS_MAX: usize = 8192;

impl HostPaths {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            root,
            cache: HashMap::new(),
        }
    }

    /// `path` under the host root (None if not absolute).
    pub(crate) fn host_path(&self, path: &str) -> Option<PathBuf> {
        let rel = path.strip_prefix('/')?;
        Some(self.root.join(rel))
    }

    /// Whether the file at `path` on the host is `file` (device and inode).
    pub(crate) fn is_at(&mut self, path: &Arc<str>, file: &FileVersion, now: Instant) -> bool {
        let id = match self.cache.get(path) {
            Some((id, at)) if now.saturating_duration_since(*at) < HOST_PATH_TTL => *id,
            _ => {
                let id = self.stat(path);
                if self.cache.len() >= HOST_PATHS_MAX {
                    self.cache.clear();
                }
                self.cache.insert(path.clone(), (id, now));
                id
            }
        };
        id == Some((file.major, file.minor, file.ino))
    }

    fn stat(&self, path: &str) -> Option<DevIno> {
        let p = self.host_path(path)?;
        let m = std::fs::metadata(p).ok()?;
        Some((libc::major(m.dev()), libc::minor(m.dev()), m.ino()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(ino: u64, size: u64) -> FileVersion {
        FileVersion {
            major: 8,
            minor: 1,
            ino,
            size,
            ctime_sec: 1_700_000_000,
            ctime_nsec: 5,
        }
    }

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn budget_pays_up_to_its_burst_then_refills() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // (at ms, bytes, paid?) against 1 MiB/s, 4 MiB burst.
        let cases: &[(u64, u64, bool)] = &[
            (0, 3 * MIB, true),
            (0, 2 * MIB, false),
            (0, MIB, true),
            (0, 1, false),
            (500, MIB / 2, true),
            (500, 1, false),
            (10_000, 5 * MIB, false), // more than the burst: never
            (10_000, 4 * MIB, true),
        ];
        let mut b = Budget::new(1.0, t0);
        for (i, (at, bytes, paid)) in cases.iter().enumerate() {
            assert_eq!(b.try_take(*bytes, ms(*at)), *paid, "case {i}");
        }
        b.refund(MIB);
        assert!(b.try_take(MIB, ms(10_000)));
        assert!(!b.try_take(1, ms(10_000)));
    }

    #[test]
    fn cache_states() {
        let t0 = Instant::now();
        let a = version(1, MIB);
        let a_changed = FileVersion { ctime_nsec: 6, ..a };
        let big = version(2, 10 * MIB);
        let mut c = HashCache::new(1.0, 8, t0);
        type Step = (&'static str, FileVersion, HashState, Action);
        let steps: &[Step] = &[
            ("first sight: queued", a, HashState::Pending, Action::Hash),
            (
                "in flight: no second job",
                a,
                HashState::Pending,
                Action::Nothing,
            ),
            (
                "another version of the file: its own job",
                a_changed,
                HashState::Pending,
                Action::Hash,
            ),
            (
                "larger than the burst",
                big,
                HashState::OverBudget,
                Action::Nothing,
            ),
        ];
        for (what, v, state, action) in steps {
            assert_eq!(c.lookup(v, t0), (state.clone(), *action), "{what}");
        }
        c.finished(a, Some("ab".into()), t0);
        assert_eq!(
            c.lookup(&a, t0),
            (HashState::Done("ab".into()), Action::Nothing)
        );
        assert_eq!(c.peek(&a, t0), HashState::Done("ab".into()));
        // An unreadable version is not retried at once, then is.
        c.finished(a_changed, None, t0);
        assert_eq!(c.lookup(&a_changed, t0).0, HashState::Unreadable);
        let later = t0 + UNREADABLE_RETRY + Duration::from_secs(1);
        assert_eq!(
            c.lookup(&a_changed, later),
            (HashState::Pending, Action::Hash)
        );
        // A storm of execs of a hashed file costs nothing more.
        for _ in 0..1000 {
            assert_eq!(c.lookup(&a, later).1, Action::Nothing);
        }
        // Not queued (worker behind): forgotten and refunded.
        let d = version(3, 2 * MIB);
        assert_eq!(c.lookup(&d, later).1, Action::Hash);
        c.not_queued(&d);
        assert_eq!(c.lookup(&d, later).1, Action::Hash);
    }

    #[test]
    fn cache_is_bounded_oldest_first() {
        let t0 = Instant::now();
        let mut c = HashCache::new(1024.0, 4, t0);
        for ino in 0..10 {
            let v = version(ino, 1);
            assert_eq!(c.lookup(&v, t0).1, Action::Hash);
            c.finished(v, Some(format!("h{ino}").into()), t0);
            assert!(c.len() <= 4);
        }
        assert_eq!(c.peek(&version(9, 1), t0), HashState::Done("h9".into()));
        assert_eq!(c.lookup(&version(0, 1), t0).1, Action::Hash, "evicted");
        // A version looked up again is kept over ones seen only once.
        let hot = version(9, 1);
        for ino in 10..20 {
            assert_eq!(c.lookup(&hot, t0).1, Action::Nothing);
            let v = version(ino, 1);
            c.lookup(&v, t0);
            c.finished(v, Some(format!("h{ino}").into()), t0);
            assert!(c.len() <= 4);
        }
        assert_eq!(c.peek(&hot, t0), HashState::Done("h9".into()));
    }

    #[test]
    fn disabled_budget_hashes_nothing() {
        let t0 = Instant::now();
        let mut c = HashCache::new(0.0, 4, t0);
        assert_eq!(
            c.lookup(&version(1, 1), t0),
            (HashState::Disabled, Action::Nothing)
        );
    }

    /// Hashes only the version the kernel ran: same content hashed, another
    /// file or a changed one refused.
    #[test]
    fn hash_job_checks_the_version() {
        let dir = std::env::temp_dir().join(format!("tracer-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bin");
        std::fs::write(&path, b"abc").unwrap();
        let v = FileVersion::from_metadata(&std::fs::metadata(&path).unwrap());
        let job = |version, host_path: &Path| Job {
            version,
            // No such process: the host path is used.
            pid: u32::MAX,
            at_random: [0; 16],
            host_path: Some(host_path.to_owned()),
        };
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(hash_job(&job(v, &path)).as_deref(), Some(abc));
        let other = dir.join("other");
        std::fs::write(&other, b"abc").unwrap();
        assert_eq!(hash_job(&job(v, &other)), None, "another inode");
        let stale = FileVersion { size: 4, ..v };
        assert_eq!(hash_job(&job(stale, &path)), None, "another version");
        // Our own running image through /proc/<pid>/exe.
        let exe = std::fs::metadata("/proc/self/exe").unwrap();
        let me = Job {
            version: FileVersion::from_metadata(&exe),
            pid: std::process::id(),
            at_random: [0; 16],
            host_path: None,
        };
        let expected = hex::encode(Sha256::digest(std::fs::read("/proc/self/exe").unwrap()));
        assert_eq!(hash_job(&me).as_deref(), Some(expected.as_str()));
        // Its ctime moved since the exec (unlinked, chmod'ed): trusted only
        // while the process runs the image that exec made (writes denied).
        let moved = Job {
            version: FileVersion {
                ctime_nsec: (me.version.ctime_nsec + 1) % 1_000_000_000,
                ..me.version
            },
            at_random: crate::proc::scan::image_at_random(std::process::id()).unwrap(),
            ..me.clone()
        };
        assert_eq!(hash_job(&moved).as_deref(), Some(expected.as_str()));
        let other_image = Job {
            at_random: [7; 16],
            ..moved.clone()
        };
        assert_eq!(hash_job(&other_image), None, "not the image exec'd");
        let unknown_image = Job {
            at_random: [0; 16],
            ..moved
        };
        assert_eq!(hash_job(&unknown_image), None, "image unknown");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn host_paths_compare_dev_and_inode() {
        let dir = std::env::temp_dir().join(format!("tracer-hostpath-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("usr/bin")).unwrap();
        std::fs::write(dir.join("usr/bin/x"), b"x").unwrap();
        std::fs::write(dir.join("copy"), b"x").unwrap();
        let v = |p: &str| FileVersion::from_metadata(&std::fs::metadata(dir.join(p)).unwrap());
        let mut hp = HostPaths::new(dir.clone());
        let now = Instant::now();
        let path: Arc<str> = "/usr/bin/x".into();
        assert!(hp.is_at(&path, &v("usr/bin/x"), now));
        assert!(!hp.is_at(&path, &v("copy"), now));
        assert!(
            !hp.is_at(&"usr/bin/x".into(), &v("usr/bin/x"), now),
            "relative"
        );
        // Replaced on the host: seen after the TTL.
        std::fs::rename(dir.join("copy"), dir.join("usr/bin/x")).unwrap();
        assert!(!hp.is_at(&path, &v("usr/bin/x"), now), "cached");
        assert!(hp.is_at(&path, &v("usr/bin/x"), now + HOST_PATH_TTL));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
