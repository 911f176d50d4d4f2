//! What the executor did: exec, connect, exit or fork, and its outcome.
use std::sync::Arc;

use serde::Serialize;

use super::UnixNanos;

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Action {
    Exec(ExecAction),
    /// Boxed: a connect's names (Service, pod, DNS) make it several times
    /// the size of the other actions, which every queued event would carry.
    Connect(Box<ConnectAction>),
    Exit(ExitAction),
    Fork(ForkAction),
    /// What a live image used so far (`--usage-interval`).
    Usage(UsageAction),
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
    /// A successful exec that ended a PATH search: the attempts of the same
    /// thread that failed before it (same base name and argv), in order,
    /// folded here instead of emitted one by one (`--exec-attempts fold`,
    /// see `crate::search`). Absent when there were none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path_search: Vec<PathAttempt>,
}

/// One failed attempt of a PATH search: the path tried and the kernel's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathAttempt {
    pub path: Arc<str>,
    pub error: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
    /// Destinations only: the name a DNS answer to the executor's network
    /// namespace gave this address (the name asked for, before any CNAME).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
    /// Where that name's CNAME chain led, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cname: Option<Arc<str>>,
    /// In a cluster: the Kubernetes Service whose ClusterIP this is (or, for
    /// a headless Service, whose endpoint), from the API server's word.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Arc<DestService>>,
    /// In a cluster: the pod this address is an endpoint of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<Arc<DestPod>>,
}

/// `action.destination.service` (fields in name order, as OCSF's
/// `unmapped` writes them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestService {
    pub name: String,
    pub namespace: String,
    /// The Service's port matching the destination's port and protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
}

/// `action.destination.pod`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestPod {
    pub name: String,
    pub namespace: String,
    /// Known when the pod runs on this node (its service account is in the
    /// pod cache): the ID the tracer gives the pod's own processes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<String>,
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
    /// `--aggregate-connects`: this event is a summary of `count` further
    /// connects of one image to one destination, not emitted one by one.
    /// Absent on every other event (the first connect of a window included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Box<Aggregate>>,
}

/// Connects folded into one summary event (`--aggregate-connects`). The
/// summary's other fields (`source`, `outcome`, `error`, `socket_cookie`,
/// the executor and its identity) are those of the last connect folded, its
/// `event_id` and `time` too. Each folded connect is counted by the outcome
/// it went out with: after its wait for a result (`--connect-wait`), so an
/// `in_progress` here is a connect whose handshake had not ended by then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Aggregate {
    /// The window's length, seconds: from the first connect (emitted on its
    /// own) to the last one folded here, at most this.
    pub window_s: u64,
    /// Connects folded into this summary (the window's first is not one of them).
    pub count: u64,
    /// When the first and the last connect folded here happened.
    pub first_time: UnixNanos,
    pub last_time: UnixNanos,
    /// `count` by outcome.
    pub outcomes: OutcomeCounts,
    /// Failures by error name (`ECONNREFUSED`), in name order.
    pub errors: std::collections::BTreeMap<String, u64>,
}

/// Connects by outcome; each is written, zeros too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeCounts {
    pub success: u64,
    pub in_progress: u64,
    pub failure: u64,
    pub unknown: u64,
}

impl OutcomeCounts {
    pub fn add(&mut self, o: Outcome) {
        let n = match o {
            Outcome::Success => &mut self.success,
            Outcome::InProgress => &mut self.in_progress,
            Outcome::Failure => &mut self.failure,
            Outcome::Unknown => &mut self.unknown,
        };
        *n += 1;
    }
}

#[derive(Debug, Serialize)]
pub struct ExitAction {
    /// Exit status as the shell shows it: the code, or 128 + signal.
    pub exit_code: u32,
    pub signal: Option<u32>,
    /// What the image used, read in the kernel at the exit; absent when the
    /// kernel record carried none (a test's hand-made record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// `action.usage` of an exit: CPU time and lifetime of the image (since its
/// exec, or since the process started when the tracer saw no exec of it:
/// `since`), and the process's peak resident set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    /// The kernel's `maxrss` of the process: over its whole life, an image
    /// before an exec included (the kernel keeps no other).
    pub peak_rss_kib: u64,
    pub lifetime_ns: u64,
    /// `exec`: counted from the image's exec; `start`: from the process's
    /// start (a fork that never exec'd, or a process older than the tracer).
    pub since: UsageSince,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSince {
    Exec,
    Start,
}

/// `action` of a usage event: a live image's usage so far, read in the kernel
/// by a periodic sweep. Cumulative (since `usage.since`), like the exit's: a
/// later sample or the exit supersedes it.
#[derive(Debug, Serialize)]
pub struct UsageAction {
    pub usage: Usage,
    /// Live threads whose CPU time is counted (the process's exited threads'
    /// is always in).
    pub threads: u32,
    /// More live threads than a sweep adds up: the rest's CPU is missing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub threads_cut: bool,
}

#[derive(Debug, Serialize)]
pub struct ForkAction {
    pub child_pid: u32,
}
