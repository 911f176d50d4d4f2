//! The counters and gauges themselves, registered under the `tracer_` prefix,
//! and the event loop's heartbeat behind `/healthz`.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CauseLabel {
    pub cause: String,
}

/// A structure with a share of `--memory-limit`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StructureLabel {
    pub structure: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SinkLabel {
    pub sink: String,
}

/// 100 us to 10 s, about four buckets per decade.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub(crate) struct Metrics {
    pub events: Family<KindLabel, Counter>,
    pub lost: Family<CauseLabel, Counter>,
    pub identity: Family<StatusLabel, Counter>,
    pub sink_errors: Family<SinkLabel, Counter>,
    pub tail_missed: Counter,
    pub tail_missed_bytes: Counter,
    pub tail_clients_refused: Counter,
    pub tail_queued_bytes: Gauge,
    pub process_table: Gauge,
    pub ring_buffer_bytes: Gauge,
    pub ring_records_submitted: Gauge,
    /// 0 disabled, 1 connecting, 2 synced, 3 failing.
    pub kube_watch_state: Gauge,
    pub kube_watch_errors: Gauge,
    /// Questions put to containerd about containers, and those that failed.
    pub containerd_lookups: Gauge,
    pub containerd_errors: Gauge,
    pub tail_clients: Gauge,
    /// Pod metadata cached, pods dropped to stay within its byte bound, pod
    /// versions whose labels were cut.
    pub pod_cache_bytes: Gauge,
    /// The Services/EndpointSlices watches (states as `kube_watch_state`),
    /// their errors, and the index they write: bytes, objects, objects left
    /// out or dropped to stay within its bound.
    pub service_watch_state: Gauge,
    pub endpointslice_watch_state: Gauge,
    pub service_watch_errors: Gauge,
    pub service_index_bytes: Gauge,
    pub service_index_entries: Gauge,
    pub service_index_dropped: Counter,
    pub pod_cache_evictions: Counter,
    pub pod_labels_truncated: Counter,
    /// The identity memo's bytes, and entries dropped to stay within them.
    pub identity_memo_bytes: Gauge,
    pub identity_memo_evictions: Counter,
    /// Executed files hashed, their bytes, and those found unreadable.
    pub files_hashed: Gauge,
    pub file_hash_bytes: Gauge,
    pub files_unreadable: Gauge,
    /// Connect events waiting for their result; those that went out without
    /// one after the wait, and early because too many waited.
    pub connects_waiting: Gauge,
    pub connect_results_late: Gauge,
    /// `--usage-interval`: sweeps run, and sweeps that failed.
    pub usage_sweeps: Counter,
    pub usage_sweep_errors: Counter,
    pub usage_sweeps_cut: Counter,
    pub connect_results_overflow: Gauge,
    /// `--aggregate-connects`: keys with an open window, and summaries that
    /// went out before their window closed because too many were pending.
    pub connect_aggregates_pending: Gauge,
    pub connect_aggregates_flushed_early: Gauge,
    /// `--exec-attempts fold`: failed execs of PATH searches, by what became
    /// of them: `folded` into the exec that ended the search, `emitted` on
    /// their own (no success of the name followed), `overflowed` (on their
    /// own early: too many held, or a search past 32 attempts).
    pub exec_search_attempts: Family<CauseLabel, Gauge>,
    /// DNS messages the probes copied, by what became of them (`dns.rs`),
    /// and the bytes of destination names learned from them.
    pub dns_messages: Family<CauseLabel, Gauge>,
    pub dns_names_bytes: Gauge,
    /// Each structure's share of `--memory-limit`, and what it holds now.
    pub memory_budget: Family<StructureLabel, Gauge>,
    pub memory_used: Family<StructureLabel, Gauge>,
    /// What was dropped or cut to stay within the budget, by cause.
    pub budget_drops: Family<CauseLabel, Counter>,
    /// Seconds from the action (kernel timestamp) to its line being written.
    pub latency: Histogram,
    pub ready: AtomicBool,
    /// Optional probes this kernel did not take, one line each; shown on `/readyz`.
    pub degraded: std::sync::OnceLock<Vec<String>>,
    pub probes_degraded: Gauge,
    /// Connections to the metrics port by how they ended: `served`, `failed`
    /// (bad request, client gone), `timed_out`, `evicted` (closed at the cap).
    pub http_connections: Family<OutcomeLabel, Counter>,
    pub http_connections_open: Gauge,
    pub http_accept_errors: Counter,
    /// RLIMIT_NOFILE soft limit after start-up raised it.
    pub open_files_limit: Gauge,
    /// When the event loop last went round (ms since `started`; 0: not yet).
    /// The HTTP server runs on its own thread, so `/healthz` asks this rather
    /// than answering merely because the server itself is alive.
    pub(super) heartbeat_ms: AtomicU64,
    pub(super) started: Instant,
    pub(super) registry: Registry,
}

/// `/healthz` fails once the event loop has not gone round for this long.
pub(crate) const STALL_AFTER: Duration = Duration::from_secs(30);

impl Metrics {
    pub(crate) fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("tracer");
        let m = Metrics {
            events: Family::default(),
            lost: Family::default(),
            identity: Family::default(),
            sink_errors: Family::default(),
            tail_missed: Counter::default(),
            tail_missed_bytes: Counter::default(),
            tail_clients_refused: Counter::default(),
            tail_queued_bytes: Gauge::default(),
            process_table: Gauge::default(),
            ring_buffer_bytes: Gauge::default(),
            ring_records_submitted: Gauge::default(),
            kube_watch_state: Gauge::default(),
            kube_watch_errors: Gauge::default(),
            containerd_lookups: Gauge::default(),
            containerd_errors: Gauge::default(),
            tail_clients: Gauge::default(),
            pod_cache_bytes: Gauge::default(),
            service_watch_state: Gauge::default(),
            endpointslice_watch_state: Gauge::default(),
            service_watch_errors: Gauge::default(),
            service_index_bytes: Gauge::default(),
            service_index_entries: Gauge::default(),
            service_index_dropped: Counter::default(),
            pod_cache_evictions: Counter::default(),
            pod_labels_truncated: Counter::default(),
            identity_memo_bytes: Gauge::default(),
            identity_memo_evictions: Counter::default(),
            files_hashed: Gauge::default(),
            file_hash_bytes: Gauge::default(),
            files_unreadable: Gauge::default(),
            connects_waiting: Gauge::default(),
            connect_results_late: Gauge::default(),
            usage_sweeps: Counter::default(),
            usage_sweep_errors: Counter::default(),
            usage_sweeps_cut: Counter::default(),
            connect_results_overflow: Gauge::default(),
            connect_aggregates_pending: Gauge::default(),
            connect_aggregates_flushed_early: Gauge::default(),
            exec_search_attempts: Family::default(),
            dns_messages: Family::default(),
            dns_names_bytes: Gauge::default(),
            memory_budget: Family::default(),
            memory_used: Family::default(),
            budget_drops: Family::default(),
            latency: Histogram::new(LATENCY_BUCKETS.iter().copied()),
            ready: AtomicBool::new(false),
            degraded: std::sync::OnceLock::new(),
            probes_degraded: Gauge::default(),
            http_connections: Family::default(),
            http_connections_open: Gauge::default(),
            http_accept_errors: Counter::default(),
            open_files_limit: Gauge::default(),
            heartbeat_ms: AtomicU64::new(0),
            started: Instant::now(),
            registry: Registry::default(),
        };
        registry.register("events", "Events emitted, by kind", m.events.clone());
        registry.register(
            "dns_messages",
            "DNS messages copied by the probes, by what became of them (queries, answers, names learned; malformed, truncated, unmatched, unknown_socket, tcp_skipped; names evicted, queries_evicted)",
            m.dns_messages.clone(),
        );
        registry.register(
            "dns_names_bytes",
            "Bytes of destination names learned from DNS answers",
            m.dns_names_bytes.clone(),
        );
        registry.register(
            "probes_degraded",
            "Optional probes this kernel did not load or attach (details on /readyz)",
            m.probes_degraded.clone(),
        );
        registry.register(
            "event_latency_seconds",
            "Time from the action (kernel timestamp) to its line being written",
            m.latency.clone(),
        );
        registry.register(
            "lost_events",
            "Records not delivered, by cause",
            m.lost.clone(),
        );
        registry.register(
            "identity_outcomes",
            "Identity resolutions of emitted events, by status",
            m.identity.clone(),
        );
        registry.register(
            "sink_errors",
            "Failed writes, by sink",
            m.sink_errors.clone(),
        );
        registry.register(
            "tail_missed",
            "Events slow tail readers missed",
            m.tail_missed.clone(),
        );
        registry.register(
            "tail_missed_bytes",
            "Bytes of the events slow tail readers missed (their queues were full)",
            m.tail_missed_bytes.clone(),
        );
        registry.register(
            "tail_clients_refused",
            "Tail readers turned away because --tail-clients were connected",
            m.tail_clients_refused.clone(),
        );
        registry.register(
            "tail_queued_bytes",
            "Bytes of lines queued for tail readers (each reader's share counted in full)",
            m.tail_queued_bytes.clone(),
        );
        registry.register(
            "process_table_entries",
            "Processes in the process table",
            m.process_table.clone(),
        );
        registry.register(
            "ring_buffer_size_bytes",
            "Size of the kernel ring buffer",
            m.ring_buffer_bytes.clone(),
        );
        registry.register(
            "ring_buffer_submitted_records",
            "Records the probes submitted to the ring buffer",
            m.ring_records_submitted.clone(),
        );
        registry.register(
            "kube_watch_state",
            "Kubernetes pod watch: 0 disabled, 1 connecting, 2 synced, 3 failing",
            m.kube_watch_state.clone(),
        );
        registry.register(
            "kube_watch_errors",
            "Errors of the Kubernetes pod watch",
            m.kube_watch_errors.clone(),
        );
        registry.register(
            "containerd_lookups",
            "Containers asked about on containerd's socket",
            m.containerd_lookups.clone(),
        );
        registry.register(
            "containerd_lookup_errors",
            "containerd lookups that failed or timed out (each cause is logged once)",
            m.containerd_errors.clone(),
        );
        registry.register(
            "files_hashed",
            "Executed files hashed (SHA-256)",
            m.files_hashed.clone(),
        );
        registry.register(
            "file_hash_bytes",
            "Bytes of executed files hashed",
            m.file_hash_bytes.clone(),
        );
        registry.register(
            "files_unreadable",
            "Executed files that could not be read as the version the kernel executed",
            m.files_unreadable.clone(),
        );
        registry.register(
            "tail_clients",
            "Readers connected to the tail socket",
            m.tail_clients.clone(),
        );
        registry.register(
            "kube_service_watch_state",
            "Kubernetes Services watch: 0 disabled, 1 connecting, 2 synced, 3 failing",
            m.service_watch_state.clone(),
        );
        registry.register(
            "kube_endpointslice_watch_state",
            "Kubernetes EndpointSlices watch: 0 disabled, 1 connecting, 2 synced, 3 failing",
            m.endpointslice_watch_state.clone(),
        );
        registry.register(
            "kube_service_watch_errors",
            "Errors of the Kubernetes Services and EndpointSlices watches",
            m.service_watch_errors.clone(),
        );
        registry.register(
            "service_index_bytes",
            "Bytes of Services and EndpointSlices held to name connect destinations",
            m.service_index_bytes.clone(),
        );
        registry.register(
            "service_index_entries",
            "Services and EndpointSlices held (deleted ones in their grace period too)",
            m.service_index_entries.clone(),
        );
        registry.register(
            "service_index_dropped",
            "Services and EndpointSlices left out or dropped to stay within the index's byte bound",
            m.service_index_dropped.clone(),
        );
        registry.register(
            "pod_cache_bytes",
            "Bytes of pod metadata cached (approximate)",
            m.pod_cache_bytes.clone(),
        );
        registry.register(
            "pod_cache_evictions",
            "Pods dropped from the cache to stay within its byte bound",
            m.pod_cache_evictions.clone(),
        );
        registry.register(
            "pod_labels_truncated",
            "Pod updates whose labels were cut to the per-pod cap",
            m.pod_labels_truncated.clone(),
        );
        registry.register(
            "identity_memo_bytes",
            "Bytes of remembered identities and parsed cgroup paths (approximate)",
            m.identity_memo_bytes.clone(),
        );
        registry.register(
            "identity_memo_evictions",
            "Remembered identities and parsed cgroup paths dropped to stay within their bounds",
            m.identity_memo_evictions.clone(),
        );
        registry.register(
            "connects_waiting",
            "Connect events waiting for their result",
            m.connects_waiting.clone(),
        );
        registry.register(
            "connect_results_late",
            "Connect events that went out without a final result after --connect-wait",
            m.connect_results_late.clone(),
        );
        registry.register(
            "usage_sweeps",
            "Usage sweeps of live processes run (--usage-interval)",
            m.usage_sweeps.clone(),
        );
        registry.register(
            "usage_sweep_errors",
            "Usage sweeps that failed (logged; the next one tries again)",
            m.usage_sweep_errors.clone(),
        );
        registry.register(
            "usage_sweeps_cut",
            "Usage sweeps stopped at their time budget (2 s) before the last process",
            m.usage_sweeps_cut.clone(),
        );
        registry.register(
            "connect_results_overflow",
            "Connect events that went out before their result because too many were waiting",
            m.connect_results_overflow.clone(),
        );
        registry.register(
            "connect_aggregates_pending",
            "Connect keys with an open --aggregate-connects window",
            m.connect_aggregates_pending.clone(),
        );
        registry.register(
            "connect_aggregates_flushed_early",
            "Connect summaries that went out before their --aggregate-connects window closed because too many keys were pending",
            m.connect_aggregates_flushed_early.clone(),
        );
        registry.register(
            "exec_search_attempts",
            "Failed execs of PATH searches held by --exec-attempts fold, by cause: folded into the exec that ended the search, emitted on their own, overflowed (on their own early, past the bound)",
            m.exec_search_attempts.clone(),
        );
        registry.register(
            "memory_budget_bytes",
            "Share of --memory-limit of each growing structure",
            m.memory_budget.clone(),
        );
        registry.register(
            "memory_used_bytes",
            "Bytes each growing structure holds, as accounted against its share",
            m.memory_used.clone(),
        );
        registry.register(
            "memory_budget_drops",
            "Entries dropped or cut to stay within --memory-limit, by cause",
            m.budget_drops.clone(),
        );
        registry.register(
            "http_connections",
            "Connections to the metrics port, by outcome (served, failed, timed_out, evicted at the cap)",
            m.http_connections.clone(),
        );
        registry.register(
            "http_connections_open",
            "Connections to the metrics port open now",
            m.http_connections_open.clone(),
        );
        registry.register(
            "http_accept_errors",
            "Failed accepts on the metrics port (e.g. out of file descriptors)",
            m.http_accept_errors.clone(),
        );
        registry.register(
            "open_files_limit",
            "The process's open-file limit (RLIMIT_NOFILE soft limit)",
            m.open_files_limit.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    /// The event loop is alive (call at least every few seconds from it).
    pub(crate) fn beat(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heartbeat_ms.store(ms.max(1), Ordering::Relaxed);
    }

    /// How long the event loop has not gone round, once it has started.
    pub(super) fn stalled_for(&self) -> Option<Duration> {
        let beat = self.heartbeat_ms.load(Ordering::Relaxed);
        if beat == 0 {
            return None;
        }
        let age = self
            .started
            .elapsed()
            .saturating_sub(Duration::from_millis(beat));
        (age >= STALL_AFTER).then_some(age)
    }

    pub(crate) fn set(g: &Gauge, v: u64) {
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::new();
        m.events
            .get_or_create(&KindLabel {
                kind: "exec".into(),
            })
            .inc_by(3);
        m.lost
            .get_or_create(&CauseLabel {
                cause: "ring_full".into(),
            })
            .inc();
        Metrics::set(&m.process_table, 42);
        let text = m.render();
        assert!(
            text.contains("tracer_events_total{kind=\"exec\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("tracer_lost_events_total{cause=\"ring_full\"} 1"),
            "{text}"
        );
        assert!(text.contains("tracer_process_table_entries 42"), "{text}");
    }
}
