//! The one place that defines what the tracer emits. Sinks only serialize these
//! types; field meanings are documented in README.md ("Event reference").
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::filehash::{FileVersion, HashState, HashStatus};

/// Shared by every event of a run.
#[derive(Debug, Serialize)]
pub struct Host {
    pub name: String,
    pub boot_id: String,
}

/// Which attribution settings were in force.
#[derive(Debug, Serialize)]
pub struct Policy {
    pub tracer_version: &'static str,
    pub config_digest: String,
}

#[derive(Debug, Serialize)]
pub struct Event {
    pub event_id: EventId,
    pub time: UnixNanos,
    pub kind: Kind,
    pub host: Arc<Host>,
    pub executor: Executor,
    pub lineage: Vec<Ancestor>,
    pub action: Action,
    pub policy: Arc<Policy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Exec,
    Connect,
    Fork,
    Exit,
}

fn argv_bytes(argv: &[String]) -> usize {
    argv.iter().map(|a| a.len() + 40).sum()
}

impl Event {
    /// Heap bytes this event holds, roughly and from above: what an event
    /// waiting in a queue costs against the budget. Values shared with the
    /// process table or the identity memo are counted as if owned.
    pub fn approx_bytes(&self) -> usize {
        const FIXED: usize = 2048;
        let e = &self.executor;
        let mut n =
            FIXED + e.binary.len() + argv_bytes(&e.argv) + e.cwd.as_ref().map_or(0, |c| c.len());
        n += e.loader_env.as_ref().map_or(0, |env| {
            env.iter().map(|(k, v)| k.len() + v.len() + 80).sum()
        });
        n += e.cgroup.path.as_ref().map_or(0, |p| p.len());
        if let Some(pod) = &e.workload.pod {
            n += pod
                .labels
                .as_ref()
                .map_or(0, |l| l.iter().map(|(k, v)| k.len() + v.len() + 80).sum());
        }
        for a in &self.lineage {
            n += 256 + a.binary.len() + argv_bytes(&a.argv);
            n += a.json.as_ref().map_or(0, |j| j.get().len());
        }
        if let Action::Exec(x) = &self.action
            && !Arc::ptr_eq(&x.argv, &e.argv)
        {
            n += x.binary.len() + argv_bytes(&x.argv);
        }
        n
    }

    /// When the action happened, Unix ns: the number the event id starts with.
    pub fn unix_ns(&self) -> i128 {
        self.event_id.time.0
    }
}

impl Kind {
    /// The serialized name (metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Exec => "exec",
            Kind::Connect => "connect",
            Kind::Fork => "fork",
            Kind::Exit => "exit",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Executor {
    pub exec_id: Arc<str>,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub binary: Arc<str>,
    pub argv: Arc<[String]>,
    /// `argv` is cut: the kernel's capture bound, the /proc read bound, or the
    /// process table's bound on what it keeps for an image's later events (its
    /// exec event has all the kernel captured).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub argv_truncated: bool,
    /// Where `binary`, `argv` and `loader_env` came from: `exec` (the kernel, at
    /// the exec), `proc` (read from /proc later: the image predates the tracer or
    /// its exec record was lost; a process can rewrite its own cmdline and
    /// environment, so this is weaker evidence), `comm` (only the kernel's
    /// 16-byte name is known).
    pub image_source: ImageSource,
    /// The executed file as the kernel opened it: its file system's device and
    /// its inode, in the executor's mount namespace (`namespaces.mnt`), and
    /// the SHA-256 of its content (`hash` says whether `sha256` is there).
    pub file: Option<FileId>,
    /// Values of the dynamic loader's variables in the image's environment at
    /// exec (`LD_PRELOAD`, `LD_LIBRARY_PATH`, `LD_AUDIT`): code injected into
    /// the image. Absent when none is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loader_env: Option<Arc<LoaderEnv>>,
    pub cwd: Option<Arc<str>>,
    pub comm: String,
    pub start_time: UnixNanos,
    pub user: User,
    pub login: Option<Login>,
    pub cgroup: Cgroup,
    pub namespaces: Namespaces,
    pub workload: Arc<Workload>,
    pub identity: Arc<Identity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    Exec,
    Proc,
    Comm,
}

/// A file by what the kernel knows it as: `dev` is `major:minor`; its
/// content's SHA-256 when `hash` is `sha256` (see `filehash`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileId {
    pub dev: String,
    pub ino: u64,
    pub hash: HashStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Arc<str>>,
    /// The version hashed (size and ctime too): to look the hash up again.
    #[serde(skip)]
    pub version: FileVersion,
}

impl FileId {
    pub fn new(version: FileVersion, state: &HashState) -> Self {
        Self {
            dev: version.dev(),
            ino: version.ino,
            hash: state.status(),
            sha256: state.sha256(),
            version,
        }
    }
}

/// Loader variable name -> value, in name order.
pub type LoaderEnv = std::collections::BTreeMap<String, String>;

/// What the cgroup (and the Kubernetes API) say the executor belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    pub kind: crate::identity::workload::WorkloadKind,
    pub container: Option<Container>,
    pub pod: Option<Pod>,
    /// systemd unit (`nginx.service`, `session-3.scope`).
    pub unit: Option<String>,
    /// What the cgroup path names below a subtree the workload (or its owner)
    /// can write: shown, never taken as identity. Absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
}

/// A workload a cgroup path claims below a delegated cgroup (a user manager,
/// a `Delegate=yes` service, a container) or a Kubernetes root out of place.
/// Whoever owns that subtree chose these names; nothing is looked up for them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    pub kind: crate::identity::workload::WorkloadKind,
    pub pod_uid: Option<String>,
    pub container_id: Option<String>,
    pub runtime: Option<String>,
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Container {
    pub id: String,
    pub runtime: Option<String>,
    pub name: Option<String>,
    pub image: Option<String>,
    /// The containerd namespace of a plain containerd container.
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pod {
    pub uid: String,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub service_account: Option<String>,
    /// Shared with the pod cache: an event does not copy them.
    pub labels: Option<Arc<crate::identity::kube::Labels>>,
    /// Labels were left out to stay within the per-pod cap; absent when none were.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub labels_truncated: bool,
    pub owner: Option<PodOwner>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodOwner {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityStatus {
    /// Everything the workload kind calls for is known.
    Resolved,
    /// A pod or container whose metadata could not be had in time: only what the
    /// cgroup path gave (pod UID, container id).
    Partial,
    /// Not even the cgroup path is known.
    Unresolved,
}

impl IdentityStatus {
    /// The serialized name (metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityStatus::Resolved => "resolved",
            IdentityStatus::Partial => "partial",
            IdentityStatus::Unresolved => "unresolved",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    pub spiffe_ids: Vec<String>,
    pub selectors: Selectors,
    /// Per SPIFFE ID, where it came from: `entry:<n>` of the registration file, or `default`.
    pub source: Vec<String>,
    pub status: IdentityStatus,
}

/// An identity's selectors, written as one sorted list. The pod's label
/// selectors are built once per pod version and shared by every identity of
/// the pod (one per binary, user...), not copied into each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selectors {
    /// Sorted; shared.
    pub labels: Arc<[String]>,
    /// Sorted; this identity's own.
    pub own: Vec<String>,
}

impl Selectors {
    /// Both lists merged, in order, without duplicates.
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        let (mut a, mut b) = (self.labels.iter().peekable(), self.own.iter().peekable());
        let mut last: Option<&String> = None;
        std::iter::from_fn(move || {
            loop {
                let next = match (a.peek(), b.peek()) {
                    (Some(x), Some(y)) if x <= y => a.next(),
                    (Some(_), Some(_)) => b.next(),
                    (Some(_), None) => a.next(),
                    (None, _) => b.next(),
                }?;
                if last != Some(next) {
                    last = Some(next);
                    return Some(next);
                }
            }
        })
    }

    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().cloned().collect()
    }

    #[cfg(test)]
    pub fn contains(&self, s: &str) -> bool {
        self.iter().any(|x| x == s)
    }

    /// Heap bytes of this identity's own selectors (the shared ones are the pod's).
    pub fn own_bytes(&self) -> usize {
        self.own.iter().map(|s| s.len() + 32).sum()
    }
}

impl From<Vec<String>> for Selectors {
    fn from(mut own: Vec<String>) -> Self {
        own.sort();
        own.dedup();
        Self {
            labels: Arc::from(Vec::new()),
            own,
        }
    }
}

impl Serialize for Selectors {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[derive(Debug, Serialize)]
pub struct User {
    pub uid: u32,
    pub name: Option<String>,
    pub gid: u32,
    pub group: Option<String>,
    pub euid: u32,
    pub egid: u32,
}

#[derive(Debug, Serialize)]
pub struct Login {
    pub auid: u32,
    pub name: Option<String>,
    pub session_id: Option<u32>,
    pub tty: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Cgroup {
    /// cgroup v2 id, captured in the kernel.
    pub id: u64,
    /// The cgroup the workload is named from, relative to the root of
    /// `hierarchy`.
    pub path: Option<Arc<str>>,
    /// Which hierarchy `path` is in: `v2`, or `v1:<controller>` (`v1:memory`)
    /// where the v2 cgroup is the root and the task sits below the root of
    /// that v1 controller's hierarchy (cgroup v1 hosts).
    pub hierarchy: &'static str,
    /// The cgroup id in the v1 controller hierarchy the tracer reads; null
    /// where it reads none (no v1 hierarchy mounted).
    pub v1_id: Option<u64>,
    /// `path` is only the start of the cgroup's path: the kernel's record cut
    /// it (longer than 1023 bytes) and the cgroup could not be found whole by
    /// its id. Written only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
}

impl Cgroup {
    /// The path the workload and identity are named from: `path`, or where that
    /// was cut, the deepest cgroup it names whole (an ancestor, which holds the
    /// process too), never a name cut short (a cut `ssh.service-x` would read
    /// `ssh.service`).
    pub fn naming_path(&self) -> Option<Arc<str>> {
        naming_path(self.path.as_ref(), self.path_truncated)
    }
}

/// See [`Cgroup::naming_path`].
pub fn naming_path(path: Option<&Arc<str>>, truncated: bool) -> Option<Arc<str>> {
    let path = path?;
    if !truncated {
        return Some(path.clone());
    }
    match path.rfind('/') {
        Some(0) | None => Some(Arc::from("/")),
        Some(i) => Some(Arc::from(&path[..i])),
    }
}

/// [`Cgroup::hierarchy`] of a v2 path.
pub const HIERARCHY_V2: &str = "v2";

#[derive(Debug, Serialize)]
pub struct Namespaces {
    pub pid: u32,
    pub mnt: u32,
    pub net: u32,
}

#[derive(Debug, Clone)]
pub struct Ancestor {
    pub exec_id: Arc<str>,
    pub pid: u32,
    pub binary: Arc<str>,
    pub argv: Arc<[String]>,
    /// `argv` was cut to `--lineage-argv-max` bytes.
    pub argv_truncated: bool,
    /// Where binary and argv came from, when not from the kernel at the exec
    /// (see `Executor::image_source`).
    pub image_source: Option<ImageSource>,
    /// Only where it differs from the executor's (a shell started by `kubectl exec`,
    /// a process that moved cgroups).
    pub workload: Option<Arc<Workload>>,
    pub identity: Option<Arc<Identity>>,
    /// The four fields above, serialized once per process image: an ancestor's
    /// argv goes into every event of its descendants, and escaping it again each
    /// time was the largest cost of a storm.
    pub json: Option<Arc<RawValue>>,
}

/// The part of an [`Ancestor`] that never changes for a process image.
#[derive(Serialize)]
pub struct AncestorBase<'a> {
    pub exec_id: &'a str,
    pub pid: u32,
    pub binary: &'a str,
    pub argv: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub argv_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_source: Option<ImageSource>,
}

impl Ancestor {
    /// Serialize the unchanging fields once, as every line is
    /// ([`crate::escape::to_writer`]): this text goes into lines verbatim.
    pub fn base_json(base: &AncestorBase) -> Option<Arc<RawValue>> {
        let text = String::from_utf8(crate::escape::to_vec(base).ok()?).ok()?;
        RawValue::from_string(text).ok().map(Arc::from)
    }
}

impl Serialize for Ancestor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        if let (Some(raw), None, None) = (&self.json, &self.workload, &self.identity) {
            return raw.serialize(s);
        }
        let n = 4
            + usize::from(self.argv_truncated)
            + usize::from(self.image_source.is_some())
            + usize::from(self.workload.is_some())
            + usize::from(self.identity.is_some());
        let mut m = s.serialize_struct("Ancestor", n)?;
        m.serialize_field("exec_id", &self.exec_id)?;
        m.serialize_field("pid", &self.pid)?;
        m.serialize_field("binary", &self.binary)?;
        m.serialize_field("argv", &self.argv)?;
        if self.argv_truncated {
            m.serialize_field("argv_truncated", &true)?;
        }
        if let Some(src) = &self.image_source {
            m.serialize_field("image_source", src)?;
        }
        if let Some(w) = &self.workload {
            m.serialize_field("workload", w)?;
        }
        if let Some(i) = &self.identity {
            m.serialize_field("identity", i)?;
        }
        m.end()
    }
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Action {
    Exec(ExecAction),
    Connect(ConnectAction),
    Exit(ExitAction),
    Fork(ForkAction),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    InProgress,
    Failure,
    /// The kernel gave no result: an unconnected send (its delivery is not
    /// tracked), or a connect whose result the probes could not see (a UDP
    /// connect through io_uring or a compat syscall).
    Unknown,
}

#[derive(Debug, Serialize)]
pub struct ExecAction {
    pub binary: Arc<str>,
    pub argv: Arc<[String]>,
    pub argv_truncated: bool,
    pub outcome: Outcome,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
}

#[derive(Debug, Serialize)]
pub struct ConnectAction {
    /// `connect`, or `sendmsg`: the first datagram an unconnected socket sent to
    /// this destination (`sendto`/`sendmsg` with an address).
    pub method: &'static str,
    /// The probe ran inside the native `connect` syscall; false for io_uring,
    /// TCP Fast Open, 32-bit compat syscalls and unconnected sends.
    pub in_syscall: bool,
    pub protocol: String,
    /// Of the destination as reported: a v4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) is reported as IPv4.
    pub family: &'static str,
    /// The socket's own family when it differs from `family` (`ipv6` for a
    /// v4-mapped destination).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_family: Option<&'static str>,
    pub destination: Endpoint,
    pub source: Option<Endpoint>,
    pub outcome: Outcome,
    pub error: Option<String>,
    /// Where the outcome came from: `syscall` (the connect's return value),
    /// `socket` (the TCP socket left SYN_SENT), or null (not known when the
    /// event went out).
    pub outcome_from: Option<&'static str>,
    /// The socket's cookie: unique per socket for the boot, joins the events
    /// of one socket.
    pub socket_cookie: u64,
}

#[derive(Debug, Serialize)]
pub struct ExitAction {
    /// Exit status as the shell shows it: the code, or 128 + signal.
    pub exit_code: u32,
    pub signal: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct ForkAction {
    pub child_pid: u32,
}

/// Events the tracer could not deliver since the previous report, by cause.
#[derive(Debug, Serialize)]
pub struct LossRecord {
    pub event_id: EventId,
    pub time: UnixNanos,
    pub kind: &'static str,
    pub host: Arc<Host>,
    pub lost: LossCounts,
    /// What was dropped or cut to stay within `--memory-limit` in the interval;
    /// absent when nothing was.
    #[serde(skip_serializing_if = "BudgetCounts::is_zero")]
    pub budget: BudgetCounts,
    /// Where an output's own dropped records were (`sink_error` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<SinkGap>,
    pub policy: Arc<Policy>,
}

/// Drops and cuts made to stay within the memory budget. No event is lost by
/// them: each names what became less complete.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BudgetCounts {
    /// Running processes dropped from the process table: their next event is
    /// described from /proc (`image_source: "proc"`), or by name only.
    pub processes_evicted: u64,
    /// Exited processes dropped before their grace ended: a child's lineage
    /// may stop short of them.
    pub exited_evicted_early: u64,
    /// Images whose argv the table keeps cut (`executor.argv_truncated`).
    pub argv_cut: u64,
    /// Events sent before their wait ended (for a pod, a hash or a connect
    /// result) because too many bytes were waiting; each says what it lacks
    /// (`identity.status`, `hash: "pending"`, outcome `in_progress`/`unknown`).
    pub released_early: u64,
}

impl BudgetCounts {
    pub fn is_zero(&self) -> bool {
        *self == BudgetCounts::default()
    }

    /// What grew since `prev`.
    pub fn since(&self, prev: &BudgetCounts) -> BudgetCounts {
        BudgetCounts {
            processes_evicted: self
                .processes_evicted
                .saturating_sub(prev.processes_evicted),
            exited_evicted_early: self
                .exited_evicted_early
                .saturating_sub(prev.exited_evicted_early),
            argv_cut: self.argv_cut.saturating_sub(prev.argv_cut),
            released_early: self.released_early.saturating_sub(prev.released_early),
        }
    }
}

/// A declared gap: `records` records this output could not write were dropped
/// right after the record `after_seq` (hash `after_hash`) of its chain. They were
/// never sealed, so the chain itself has no hole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkGap {
    pub records: u64,
    pub after_seq: Option<u64>,
    pub after_hash: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LossCounts {
    /// The kernel ring buffer was full.
    pub ring_full: u64,
    /// The probes could not read kernel memory for a record.
    pub read_fault: u64,
    /// The in-kernel table joining syscall entry and exit was full.
    pub pending_full: u64,
    /// No per-CPU scratch buffer.
    pub scratch: u64,
    /// A record from the kernel that failed validation.
    pub malformed: u64,
    /// Records an output could not write (disk full, I/O error) and that
    /// overflowed its retry buffer; counted in the loss record that output
    /// writes about itself, with `gap`.
    pub sink_error: u64,
    /// First sends of an unconnected socket to a new destination beyond the
    /// per-socket cap: seen by the probes, counted, not reported one by one.
    pub sends_unreported: u64,
}

impl LossCounts {
    pub fn total(&self) -> u64 {
        self.ring_full
            + self.read_fault
            + self.pending_full
            + self.scratch
            + self.malformed
            + self.sink_error
            + self.sends_unreported
    }
}

/// `event_id`: wall-clock ns of the action, zero-padded so that ids sort as
/// strings in time order, then the thread id, which no other action can share in
/// the same nanosecond.
pub fn event_id(unix_ns: i128, tid: u32) -> String {
    // Written by hand: two of these formats per event were a tenth of the
    // tracer's CPU through `format!`.
    let Ok(ns) = u64::try_from(unix_ns.max(0)) else {
        return format!("{:019}-{tid:07}", unix_ns.max(0));
    };
    let mut out = Vec::with_capacity(28);
    push_padded(&mut out, ns, 19);
    out.push(b'-');
    push_padded(&mut out, u64::from(tid), 7);
    String::from_utf8(out).unwrap_or_default()
}

/// Decimal digits of `v`, zero-padded on the left to `width`.
pub(crate) fn push_padded(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let digits = buf.len() - i;
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(digits)));
    out.extend_from_slice(&buf[i..]);
}

/// A wall-clock instant in ns since the Unix epoch. Kept as a number from
/// the probe's timestamp to the output; written as RFC 3339 with ns.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixNanos(pub i128);

impl UnixNanos {
    pub fn now() -> UnixNanos {
        UnixNanos(now_unix_ns())
    }

    /// Whole ms since the epoch (OCSF's time), rounded down.
    pub fn millis(self) -> i64 {
        i64::try_from(self.0.div_euclid(1_000_000)).unwrap_or(i64::MAX)
    }
}

impl std::fmt::Display for UnixNanos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rfc3339_nanos(self.0))
    }
}

impl Serialize for UnixNanos {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339_nanos(self.0))
    }
}

/// An event's id: when the action happened and the thread that did it
/// (written by [`event_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventId {
    pub time: UnixNanos,
    pub tid: u32,
}

impl EventId {
    pub fn new(time: UnixNanos, tid: u32) -> EventId {
        EventId { time, tid }
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&event_id(self.time.0, self.tid))
    }
}

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&event_id(self.time.0, self.tid))
    }
}

/// Wall-clock now, in ns since the Unix epoch.
pub fn now_unix_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// RFC 3339 UTC with nanoseconds: `2026-11-23T20:21:47.123456789Z`.
pub fn rfc3339_nanos(unix_ns: i128) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        );
    }
    // All fields are now small and non-negative.
    let mut out = Vec::with_capacity(30);
    for (v, width, sep) in [
        (y, 4, b'-'),
        (m, 2, b'-'),
        (d, 2, b'T'),
        (sod / 3600, 2, b':'),
        ((sod % 3600) / 60, 2, b':'),
        (sod % 60, 2, b'.'),
        (nanos, 9, b'Z'),
    ] {
        push_padded(&mut out, v as u64, width);
        out.push(sep);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i128) -> (i128, i128, i128) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// An exec event for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn sample_exec_event() -> Event {
    let argv: Arc<[String]> =
        vec!["/bin/true".to_owned(), crate::escape::escape(b"a\nb\xff")].into();
    Event {
        event_id: EventId::new(UnixNanos(1_795_465_307_123_456_789), 42),
        time: UnixNanos(1_795_465_307_123_456_789),
        kind: Kind::Exec,
        host: Arc::new(Host {
            name: "node-1".into(),
            boot_id: "2605d5f8-57d8-408d-b1f2-343252d21f8e".into(),
        }),
        executor: sample_executor(),
        lineage: vec![Ancestor {
            exec_id: "p".into(),
            pid: 1,
            binary: "/sbin/init".into(),
            argv: vec!["init".to_owned()].into(),
            argv_truncated: false,
            image_source: None,
            workload: None,
            identity: None,
            json: None,
        }],
        action: Action::Exec(ExecAction {
            binary: "/bin/true".into(),
            argv,
            argv_truncated: false,
            outcome: Outcome::Success,
            error: None,
        }),
        policy: Arc::new(Policy {
            tracer_version: "0.1.0",
            config_digest: "sha256:00".into(),
        }),
    }
}

/// An executor for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn sample_executor() -> Executor {
    let argv: Arc<[String]> =
        vec!["/bin/true".to_owned(), crate::escape::escape(b"a\nb\xff")].into();
    Executor {
        exec_id: "abc".into(),
        pid: 42,
        tid: 42,
        ppid: 1,
        binary: "/bin/true".into(),
        argv: argv.clone(),
        argv_truncated: false,
        image_source: ImageSource::Exec,
        file: Some(FileId::new(
            crate::filehash::FileVersion {
                major: 0,
                minor: 31,
                ino: 4242,
                size: 3,
                ctime_sec: 1,
                ctime_nsec: 2,
            },
            &crate::filehash::HashState::Done(
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
            ),
        )),
        loader_env: None,
        cwd: Some("/".into()),
        comm: "true".into(),
        start_time: UnixNanos(0),
        user: User {
            uid: 1001,
            name: Some("deploy".into()),
            gid: 1001,
            group: None,
            euid: 1001,
            egid: 1001,
        },
        login: None,
        cgroup: Cgroup {
            id: 7,
            path: Some("/system.slice/x.service".into()),
            hierarchy: HIERARCHY_V2,
            v1_id: None,
            path_truncated: false,
        },
        namespaces: Namespaces {
            pid: 1,
            mnt: 2,
            net: 3,
        },
        workload: Arc::new(Workload {
            kind: crate::identity::workload::WorkloadKind::Service,
            container: None,
            pod: None,
            unit: Some("x.service".into()),
            claim: None,
        }),
        identity: Arc::new(Identity {
            spiffe_ids: vec!["spiffe://example.org/x".into()],
            selectors: vec!["systemd:id:x.service".to_owned()].into(),
            source: vec!["entry:1".into()],
            status: IdentityStatus::Resolved,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        for (ns, want) in [
            (0i128, "1970-01-01T00:00:00.000000000Z"),
            (1_000_000_001, "1970-01-01T00:00:01.000000001Z"),
            (951_782_400_000_000_000, "2000-02-29T00:00:00.000000000Z"),
            (1_795_465_307_123_456_789, "2026-11-23T20:21:47.123456789Z"),
            (4_102_444_799_999_999_999, "2099-12-31T23:59:59.999999999Z"),
            (-1, "1969-12-31T23:59:59.999999999Z"),
            (
                253_402_300_799_999_999_999,
                "9999-12-31T23:59:59.999999999Z",
            ),
            // Outside four-digit years (garbage from the kernel): still no panic.
            (
                253_402_300_800_000_000_000,
                "10000-01-01T00:00:00.000000000Z",
            ),
            (
                -62_167_219_200_000_000_001,
                "-001-12-31T23:59:59.999999999Z",
            ),
        ] {
            assert_eq!(rfc3339_nanos(ns), want, "{ns}");
        }
        // The hand-written path agrees with `format!` everywhere it is taken.
        for ns in (0..2000).map(|i| i128::from(i) * 1_987_654_321_987_654_321 / 7) {
            let secs = ns.div_euclid(1_000_000_000);
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            let sod = secs.rem_euclid(86_400);
            let want = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
                sod / 3600,
                (sod % 3600) / 60,
                sod % 60,
                ns.rem_euclid(1_000_000_000)
            );
            assert_eq!(rfc3339_nanos(ns), want, "{ns}");
        }
    }

    #[test]
    fn times_stay_numbers_until_written() {
        let t = UnixNanos(1_795_465_307_123_456_789);
        assert_eq!(t.millis(), 1_795_465_307_123);
        assert_eq!(UnixNanos(-1).millis(), -1);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            format!("\"{}\"", rfc3339_nanos(t.0))
        );
        let id = EventId::new(t, 42);
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            format!("\"{}\"", event_id(t.0, 42))
        );
        assert_eq!(id.to_string(), event_id(t.0, 42));
    }

    #[test]
    fn event_ids_sort_by_time() {
        let a = event_id(1_795_465_307_123_456_789, 4_194_304);
        let b = event_id(1_795_465_307_123_456_790, 1);
        assert!(a < b);
        assert_eq!(a, "1795465307123456789-4194304");
        assert_eq!(event_id(5, 42), "0000000000000000005-0000042");
        assert_eq!(event_id(-5, 0), "0000000000000000000-0000000");
        assert_eq!(
            event_id(i128::MAX, u32::MAX),
            format!("{}-{}", i128::MAX, u32::MAX)
        );
    }

    fn sample() -> Event {
        sample_exec_event()
    }

    /// An ancestor's fields are serialized once and pasted into lines as they
    /// are: they too carry no character a terminal would act on.
    #[test]
    fn an_ancestors_pasted_json_is_escaped_like_the_line() {
        let argv = vec!["sh".to_owned(), "a\u{9b}2J\u{7f}\u{202e}b\u{1b}".to_owned()];
        let raw = Ancestor::base_json(&AncestorBase {
            exec_id: "x",
            pid: 1,
            binary: "/bin/\u{2066}sh",
            argv: &argv,
            argv_truncated: false,
            image_source: None,
        })
        .unwrap();
        let text = raw.get();
        assert!(
            !text.chars().any(crate::escape::terminal_unsafe),
            "{text:?}"
        );
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["argv"], serde_json::json!(argv));
        assert_eq!(v["binary"], "/bin/\u{2066}sh");
    }

    #[test]
    fn a_cut_path_names_its_deepest_whole_cgroup() {
        let cases: &[(Option<&str>, bool, Option<&str>)] = &[
            (None, false, None),
            (None, true, None),
            (Some("/a/b"), false, Some("/a/b")),
            (Some("/a/b"), true, Some("/a")),
            (Some("/a/b/"), true, Some("/a/b")),
            (Some("/abc"), true, Some("/")),
            (Some("abc"), true, Some("/")),
        ];
        for (path, cut, want) in cases {
            let path: Option<Arc<str>> = path.map(Arc::from);
            assert_eq!(
                naming_path(path.as_ref(), *cut).as_deref(),
                *want,
                "{path:?} {cut}"
            );
        }
    }

    #[test]
    fn event_serializes_to_one_line_with_the_documented_shape() {
        let line = serde_json::to_string(&sample()).unwrap();
        assert!(!line.contains('\n'), "one line: {line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        // serde_json's Map sorts keys; the line itself keeps declaration order.
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "action", "event_id", "executor", "host", "kind", "lineage", "policy", "time"
            ]
        );
        assert!(line.starts_with("{\"event_id\":"), "{line}");
        assert_eq!(v["kind"], "exec");
        assert_eq!(v["executor"]["user"]["name"], "deploy");
        assert_eq!(v["executor"]["user"]["group"], serde_json::Value::Null);
        assert_eq!(v["executor"]["login"], serde_json::Value::Null);
        assert_eq!(v["executor"]["cgroup"]["path"], "/system.slice/x.service");
        assert_eq!(v["executor"]["cgroup"]["hierarchy"], "v2");
        assert_eq!(v["executor"]["cgroup"]["v1_id"], serde_json::Value::Null);
        assert_eq!(v["lineage"][0]["binary"], "/sbin/init");
        // Lineage entries carry identity only where it differs.
        assert!(v["lineage"][0].get("identity").is_none());
        assert_eq!(v["executor"]["workload"]["kind"], "service");
        assert_eq!(v["executor"]["identity"]["status"], "resolved");
        // The newline is escaped by JSON; the invalid byte by our reversible escape.
        assert_eq!(v["action"]["argv"][1], "a\nb\\xff");
        assert_eq!(
            crate::escape::unescape(v["action"]["argv"][1].as_str().unwrap()).unwrap(),
            b"a\nb\xff"
        );
        assert_eq!(v["action"]["outcome"], "success");
        assert_eq!(v["action"]["error"], serde_json::Value::Null);
    }

    #[test]
    fn serializes_kinds_and_outcomes() {
        assert_eq!(serde_json::to_string(&Kind::Exec).unwrap(), "\"exec\"");
        for k in [Kind::Exec, Kind::Connect, Kind::Fork, Kind::Exit] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for st in [
            IdentityStatus::Resolved,
            IdentityStatus::Partial,
            IdentityStatus::Unresolved,
        ] {
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
        }
        assert_eq!(
            serde_json::to_string(&Outcome::InProgress).unwrap(),
            "\"in_progress\""
        );
    }

    /// Shared label selectors and an identity's own come out as one sorted
    /// list without duplicates.
    #[test]
    fn selectors_merge_in_order() {
        let sel = Selectors {
            labels: Arc::from(vec![
                "k8s:pod-label:a:1".to_owned(),
                "k8s:pod-label:b:2".to_owned(),
            ]),
            own: vec![
                "cgroup:path:/x".to_owned(),
                "k8s:ns:shop".to_owned(),
                "k8s:pod-label:b:2".to_owned(),
                "unix:uid:0".to_owned(),
            ],
        };
        let want = [
            "cgroup:path:/x",
            "k8s:ns:shop",
            "k8s:pod-label:a:1",
            "k8s:pod-label:b:2",
            "unix:uid:0",
        ];
        assert_eq!(sel.to_vec(), want);
        assert_eq!(serde_json::to_value(&sel).unwrap(), serde_json::json!(want));
        assert!(sel.contains("k8s:pod-label:a:1") && !sel.contains("k8s:pod-label:c:3"));
        assert_eq!(Selectors::default().to_vec(), Vec::<String>::new());
    }
}
