//! The effective configuration of `tracer run`, and its digest.
//!
//! The digest goes on every event (`policy.config_digest`) so an auditor can tell
//! which attribution settings were in force. Only settings that change what an
//! event says are part of it; where output goes is not.
use std::path::PathBuf;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Default bound on an ancestor's argv in `lineage`. An ancestor's argv goes
/// into every event of every descendant: uncapped, one process with a 32 KiB
/// command line makes each event of its children 32 KiB per level.
pub(crate) const DEFAULT_LINEAGE_ARGV_MAX: usize = 512;

/// Default `--hash-budget`: 64 MiB of executed files hashed per second, at
/// most (a fraction of one core; a node's binaries are hashed once each).
pub(crate) const DEFAULT_HASH_BUDGET_MIB: f64 = 64.0;

/// Longest `--aggregate-connects` window, seconds: an hour. Longer would
/// keep a connect's evidence (its count) back for longer than a reader waits.
pub(crate) const MAX_AGGREGATE_WINDOW_S: u64 = 3600;
/// `--usage-interval` bounds, seconds (a sweep visits every task on the host:
/// BENCHMARKS.md says what one costs).
pub(crate) const USAGE_INTERVAL_S: std::ops::RangeInclusive<u64> = 1..=86_400;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_default_credential_env(patterns: &[String]) -> bool {
    patterns
        .iter()
        .map(String::as_str)
        .eq(crate::proc::env::DEFAULT_CREDENTIAL_ENV.iter().copied())
}

/// `--exec-attempts`: what becomes of the failed execs of a PATH search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExecAttempts {
    /// Misses followed by a success of the same name are folded into it
    /// (`action.path_search`, see `crate::search`).
    #[default]
    Fold,
    /// Every failed exec is its own event.
    All,
}

impl ExecAttempts {
    fn is_all(&self) -> bool {
        *self == ExecAttempts::All
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Ancestors listed in `lineage`, at most.
    pub lineage_depth: usize,
    /// Bytes of each ancestor's argv kept in `lineage` (0: all).
    pub lineage_argv_max: usize,
    /// Ancestors described in full on every event, or named by exec_id.
    pub lineage: crate::event::LineageMode,
    /// Emit `fork` and `exit` events too.
    pub emit_lifecycle: bool,
    /// Whether a PATH search's failed execs are folded into the exec that
    /// ends it. In the digest only when folding (the default): a reader must
    /// know that misses may sit in `path_search`; `all` is what the tracer
    /// did before folding existed, and keeps that digest.
    #[serde(skip_serializing_if = "ExecAttempts::is_all")]
    pub exec_attempts: ExecAttempts,
    /// Report failed execs through the 32-bit compat syscall table (a probe on
    /// every syscall's exit).
    pub compat_exec_probes: bool,
    /// Attach the cgroup skb programs that copy DNS messages, to name connect
    /// destinations (`destination.name`).
    pub dns_names: bool,
    /// Seconds an exited process stays in the table (for its children's lineage).
    pub exit_grace_secs: u64,
    /// Bound on table entries; exited ones go first past it.
    pub max_processes: usize,
    /// Bytes the tracer's growing structures may hold together, split into
    /// fixed shares ([`crate::budget`]). What a bound drops or cuts is flagged
    /// on the event, so it stays out of the digest.
    #[serde(skip)]
    pub memory_limit: u64,
    /// Kernel ring buffer size in bytes (power of two, multiple of the page size).
    pub ring_buffer_bytes: u32,
    /// How often the ring is drained when the probes have not woken us.
    #[serde(skip)]
    pub ring_poll_ms: u64,
    /// Where the host's /etc/passwd and /etc/group live (`/` unless in a container).
    pub host_root: PathBuf,
    /// How often lost-event counters are checked and reported.
    pub loss_report_interval_ms: u64,
    /// SPIFFE trust domain of the IDs the tracer assigns.
    pub trust_domain: String,
    /// Give pods no entry matches `spiffe://<td>/ns/<ns>/sa/<sa>`.
    pub default_spiffe_id: bool,
    /// SHA-256 of the registration file's content, when one is used.
    pub registrations_digest: Option<String>,
    /// Longest an event waits for its pod's metadata, in milliseconds.
    pub kube_wait_ms: u64,
    /// MiB a second of executed files hashed (SHA-256), at most; 0: none.
    pub hash_budget_mib: f64,
    /// Longest an event waits for its executed file's hash, in milliseconds.
    pub hash_wait_ms: u64,
    /// Longest a connect event waits for its result, in milliseconds.
    pub connect_wait_ms: u64,
    /// Seconds a deleted pod stays resolvable.
    pub pod_grace_secs: u64,
    /// Kubernetes roots trusted besides the kubelet's default places. Left out
    /// of the digest's JSON when empty, so the digest of a configuration
    /// without them is what it was before they existed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kubepods_roots: Vec<String>,
    /// `--aggregate-connects`: the window, seconds, in which repeated connects
    /// of one image to one destination are folded into a summary; 0: off.
    /// Left out of the digest's JSON when off (the digest of a configuration
    /// without it is what it was before it existed), in it when on: a reader
    /// must know that connects were folded.
    #[serde(skip_serializing_if = "is_zero")]
    pub aggregate_connects_s: u64,
    /// `--usage-interval`: seconds between usage sweeps; 0: off. In the
    /// digest only when on (a reader must know usage events may come).
    #[serde(skip_serializing_if = "is_zero")]
    pub usage_interval_s: u64,
    /// Which environment variables' names are reported as credentials: the
    /// built-in list and `--credential-env` patterns. In the digest only when
    /// not the built-in list (which is part of the tracer's version).
    #[serde(skip_serializing_if = "is_default_credential_env")]
    pub credential_env: Vec<String>,
    /// Operator-defined requestor profiles (`--requestor-profile`), checked
    /// before the built-in ones. In the digest only when there are some (the
    /// built-ins are part of the tracer's version).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requestor_profiles: Vec<crate::proc::requestor::ProfileSpec>,
    #[serde(skip)]
    pub registrations: Option<PathBuf>,
    /// Where `/metrics`, `/healthz`, `/readyz` are served.
    #[serde(skip)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Unix socket for `tracer tail`.
    #[serde(skip)]
    pub socket: Option<PathBuf>,
    /// `socket` was asked for (not the default): failing to serve it is an
    /// error, not a warning.
    #[serde(skip)]
    pub socket_explicit: bool,
    /// Lines a tail reader may fall behind before it misses events.
    #[serde(skip)]
    pub tail_queue: usize,
    /// Bytes a tail reader may fall behind by before it misses events.
    #[serde(skip)]
    pub tail_queue_bytes: usize,
    /// Bytes queued for all tail readers together.
    #[serde(skip)]
    pub tail_total_bytes: usize,
    /// Tail readers served at once.
    #[serde(skip)]
    pub tail_clients: usize,
    /// The host's cgroup v2 mount, when not the one /proc/self/mountinfo names.
    #[serde(skip)]
    pub cgroup_mount: Option<PathBuf>,
    /// Node whose pods are watched; no watch without it.
    #[serde(skip)]
    pub node_name: Option<String>,
    /// Watch Services and EndpointSlices (with the pod watch) to name
    /// connect destinations.
    #[serde(skip)]
    pub service_watch: bool,
    /// Bound of that index, bytes; `None`: its share of the memory limit.
    #[serde(skip)]
    pub service_index_bytes: Option<u64>,
    /// containerd's socket, asked about plain containerd containers; `None`: never.
    #[serde(skip)]
    pub containerd_socket: Option<PathBuf>,
    #[serde(skip)]
    pub output: Option<PathBuf>,
    #[serde(skip)]
    pub btf_path: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            lineage_depth: 32,
            lineage_argv_max: DEFAULT_LINEAGE_ARGV_MAX,
            lineage: crate::event::LineageMode::Full,
            emit_lifecycle: false,
            exec_attempts: ExecAttempts::Fold,
            compat_exec_probes: false,
            dns_names: true,
            exit_grace_secs: 30,
            max_processes: 200_000,
            memory_limit: crate::budget::DEFAULT_MEMORY_LIMIT,
            ring_buffer_bytes: 4 * 1024 * 1024,
            ring_poll_ms: 10,
            host_root: PathBuf::from("/"),
            loss_report_interval_ms: 1000,
            trust_domain: "cluster.local".into(),
            default_spiffe_id: true,
            registrations_digest: None,
            kube_wait_ms: 2000,
            hash_budget_mib: DEFAULT_HASH_BUDGET_MIB,
            hash_wait_ms: 250,
            connect_wait_ms: 1000,
            pod_grace_secs: 300,
            kubepods_roots: Vec::new(),
            aggregate_connects_s: 0,
            usage_interval_s: 0,
            credential_env: crate::proc::env::DEFAULT_CREDENTIAL_ENV
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            requestor_profiles: Vec::new(),
            registrations: None,
            metrics_addr: None,
            socket: None,
            socket_explicit: false,
            tail_queue: crate::sink::socket::CLIENT_QUEUE,
            tail_queue_bytes: crate::sink::socket::CLIENT_QUEUE_BYTES,
            tail_total_bytes: crate::sink::socket::TOTAL_QUEUE_BYTES,
            tail_clients: crate::sink::socket::MAX_CLIENTS,
            cgroup_mount: None,
            node_name: None,
            service_watch: true,
            service_index_bytes: None,
            containerd_socket: Some(PathBuf::from(crate::identity::containerd::DEFAULT_SOCKET)),
            output: None,
            btf_path: PathBuf::from("/sys/kernel/btf/vmlinux"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--ring-buffer-size {0}: must be a power of two of at least 4096 bytes")]
    RingSize(u64),
    #[error("--lineage-depth must be between 0 and 4096, got {0}")]
    Depth(usize),
    #[error("--{0}")]
    KubepodsRoot(String),
    #[error("--hash-budget must be a number of MiB per second, at least 0, got {0}")]
    HashBudget(f64),
    #[error(
        "--aggregate-connects must be 0 (off) or a window of 1 to {MAX_AGGREGATE_WINDOW_S} seconds, got {0}"
    )]
    AggregateWindow(u64),
    #[error(
        "--usage-interval must be 0 (off) or {min} to {max} seconds, got {0}",
        min = USAGE_INTERVAL_S.start(),
        max = USAGE_INTERVAL_S.end()
    )]
    UsageInterval(u64),
    #[error(transparent)]
    CredentialEnv(#[from] crate::proc::env::CredentialPatternError),
    #[error(transparent)]
    RequestorProfile(#[from] crate::proc::requestor::ProfileError),
    #[error(transparent)]
    Budget(#[from] crate::budget::BudgetError),
}

impl Config {
    /// The tail socket's bounds.
    pub fn tail_limits(&self) -> crate::sink::socket::SocketLimits {
        crate::sink::socket::SocketLimits {
            client_lines: self.tail_queue,
            client_bytes: self.tail_queue_bytes,
            total_bytes: self.tail_total_bytes,
            max_clients: self.tail_clients,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = u64::from(self.ring_buffer_bytes);
        if r < 4096 || !r.is_power_of_two() {
            return Err(ConfigError::RingSize(r));
        }
        if self.lineage_depth > 4096 {
            return Err(ConfigError::Depth(self.lineage_depth));
        }
        crate::identity::workload::KubeRoots::new(&self.kubepods_roots)
            .map_err(ConfigError::KubepodsRoot)?;
        if !self.hash_budget_mib.is_finite() || self.hash_budget_mib < 0.0 {
            return Err(ConfigError::HashBudget(self.hash_budget_mib));
        }
        if self.aggregate_connects_s > MAX_AGGREGATE_WINDOW_S {
            return Err(ConfigError::AggregateWindow(self.aggregate_connects_s));
        }
        if self.usage_interval_s != 0 && !USAGE_INTERVAL_S.contains(&self.usage_interval_s) {
            return Err(ConfigError::UsageInterval(self.usage_interval_s));
        }
        self.credential_patterns()?;
        self.requestor_profiles()?;
        self.budget()?;
        Ok(())
    }

    /// The compiled `credential_env` patterns.
    pub fn credential_patterns(
        &self,
    ) -> Result<crate::proc::env::CredentialPatterns, crate::proc::env::CredentialPatternError>
    {
        crate::proc::env::CredentialPatterns::new(&self.credential_env)
    }

    /// The compiled requestor profiles: the operator's, then the built-ins
    /// they do not replace; none keeps a variable `credential_env` names.
    pub fn requestor_profiles(&self) -> Result<crate::proc::requestor::Profiles, ConfigError> {
        Ok(crate::proc::requestor::Profiles::new(
            &self.requestor_profiles,
            &self.credential_patterns()?,
        )?)
    }

    /// The byte cap of each growing structure.
    pub fn budget(&self) -> Result<crate::budget::Budget, crate::budget::BudgetError> {
        crate::budget::Budget::split(self.memory_limit, u64::from(self.ring_buffer_bytes))
    }

    /// `sha256:<hex>` over the canonical JSON of the settings that shape events.
    pub fn digest(&self) -> String {
        // serde_json writes struct fields in declaration order: stable across runs.
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        sha256_hex(&canonical)
    }
}

/// `sha256:<hex>` of some bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_changes_with_attribution_settings_only() {
        let a = Config::default();
        let mut b = a.clone();
        b.output = Some("/tmp/x".into());
        assert_eq!(a.digest(), b.digest());
        b.lineage_depth = 3;
        assert_ne!(a.digest(), b.digest());
        let mut c = a.clone();
        c.lineage_argv_max = 0;
        assert_ne!(a.digest(), c.digest());
        let mut d = a.clone();
        d.lineage = crate::event::LineageMode::Ids;
        assert_ne!(a.digest(), d.digest());
        // Aggregation off is the digest as before the flag existed; on, it differs.
        let mut e = a.clone();
        e.aggregate_connects_s = 0;
        assert_eq!(a.digest(), e.digest());
        e.aggregate_connects_s = 2;
        assert_ne!(a.digest(), e.digest());
        // Likewise usage sweeps.
        let mut u = a.clone();
        u.usage_interval_s = 0;
        assert_eq!(a.digest(), u.digest());
        u.usage_interval_s = 60;
        assert_ne!(a.digest(), u.digest());
        let mut f = a.clone();
        f.aggregate_connects_s = 3;
        assert_ne!(e.digest(), f.digest());
        // Requestor profiles: none is the digest as before they existed.
        let mut g = a.clone();
        g.requestor_profiles = vec![crate::proc::requestor::ProfileSpec {
            name: "deployer".into(),
            detect: "DEPLOYER_RUN".into(),
            fields: [("run".to_owned(), "DEPLOYER_RUN".to_owned())].into(),
            display: None,
            agents: Vec::new(),
        }];
        assert_ne!(a.digest(), g.digest());
        let mut h = g.clone();
        h.requestor_profiles[0].display = Some("{run}".into());
        assert_ne!(g.digest(), h.digest());
        // Every failed exec its own event is the digest as before folding
        // existed; folding (the default) is not.
        let mut g = a.clone();
        g.exec_attempts = ExecAttempts::All;
        assert_ne!(a.digest(), g.digest());
        let before_folding = serde_json::to_string(&g).unwrap_or_default();
        assert!(
            !before_folding.contains("exec_attempts"),
            "{before_folding}"
        );
        assert!(
            serde_json::to_string(&a)
                .unwrap_or_default()
                .contains(r#""exec_attempts":"fold""#)
        );
        assert!(a.digest().starts_with("sha256:"));
        assert_eq!(a.digest().len(), 7 + 64);
    }

    #[test]
    fn validation() {
        assert!(Config::default().validate().is_ok());
        let c = Config {
            ring_buffer_bytes: 5000,
            ..Config::default()
        };
        assert!(c.validate().is_err());
        // --aggregate-connects: 0 (off) or 1..=3600 seconds.
        for (secs, ok) in [
            (0, true),
            (1, true),
            (3600, true),
            (3601, false),
            (u64::MAX, false),
        ] {
            let c = Config {
                aggregate_connects_s: secs,
                ..Config::default()
            };
            assert_eq!(c.validate().is_ok(), ok, "{secs}");
        }
        let c = Config {
            aggregate_connects_s: 3601,
            ..Config::default()
        };
        let err = c
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("--aggregate-connects") && err.contains("3601"),
            "{err}"
        );
    }
}
