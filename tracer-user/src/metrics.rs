//! Operator-facing counters (`/metrics`, Prometheus text) and health endpoints
//! (`/healthz`: the process serves; `/readyz`: probes attached and the start-up
//! /proc scan done).
//!
//! The main loop updates plain atomics through [`Metrics`]; the HTTP server (hyper)
//! only reads them, so scraping never touches the data path.
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabel {
    pub cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: String,
}

/// 100 us to 10 s, about four buckets per decade.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
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
    pub connect_results_overflow: Gauge,
    /// Seconds from the action (kernel timestamp) to its line being written.
    pub latency: Histogram,
    pub ready: AtomicBool,
    /// Optional probes this kernel did not take, one line each; shown on `/readyz`.
    pub degraded: std::sync::OnceLock<Vec<String>>,
    pub probes_degraded: Gauge,
    registry: Registry,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
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
            pod_cache_evictions: Counter::default(),
            pod_labels_truncated: Counter::default(),
            identity_memo_bytes: Gauge::default(),
            identity_memo_evictions: Counter::default(),
            files_hashed: Gauge::default(),
            file_hash_bytes: Gauge::default(),
            files_unreadable: Gauge::default(),
            connects_waiting: Gauge::default(),
            connect_results_late: Gauge::default(),
            connect_results_overflow: Gauge::default(),
            latency: Histogram::new(LATENCY_BUCKETS.iter().copied()),
            ready: AtomicBool::new(false),
            degraded: std::sync::OnceLock::new(),
            probes_degraded: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("events", "Events emitted, by kind", m.events.clone());
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
            "connect_results_overflow",
            "Connect events that went out before their result because too many were waiting",
            m.connect_results_overflow.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    pub fn set(g: &Gauge, v: u64) {
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on --metrics-addr {addr}: {source}")]
pub struct ListenError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// Serve `/metrics`, `/healthz`, `/readyz` on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<(), ListenError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError { addr, source })?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, std::convert::Infallible>(respond(&req, &metrics)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(())
}

fn respond<B>(req: &Request<B>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match req.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" if metrics.ready.load(Ordering::Relaxed) => {
            let mut body = "ready\n".to_owned();
            for d in metrics.degraded.get().into_iter().flatten() {
                body.push_str("degraded: ");
                body.push_str(d);
                body.push('\n');
            }
            (StatusCode::OK, "text/plain", body)
        }
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready: probes attaching or /proc scan running\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
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
