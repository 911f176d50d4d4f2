//! The HTTP server: its own thread and runtime, a bounded set of
//! connections (the oldest closed to make room), a timeout per connection,
//! and a pause after failed accepts.
use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use hyper::{Request, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::gauge::Gauge;

use super::{Metrics, OutcomeLabel, endpoints::respond};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    #[error("cannot listen on --metrics-addr {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the metrics server's thread")]
    Thread(#[source] std::io::Error),
}

/// Whole request in, whole response out: an idle or trickling client is cut off.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (EMFILE and the like would fail again at once).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning per kind in this time.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Most connections the metrics port holds for a process allowed `nofile`
/// descriptors: 64, and never more than an eighth of them, so the event path
/// (output files and their rotation, hashed executables, tail readers, the
/// Kubernetes and containerd clients) keeps the rest.
pub(crate) fn connection_cap(nofile: u64) -> usize {
    usize::try_from(nofile / 8)
        .unwrap_or(usize::MAX)
        .clamp(4, 64)
}

/// Serve `/metrics`, `/healthz`, `/readyz` on `addr` until the process ends,
/// on a thread of its own, with at most `cap` connections open. Returns the
/// address bound (its port when `addr` asked for any).
pub(crate) fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    cap: usize,
) -> Result<SocketAddr, ServeError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServeError::Listen { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Listen { addr, source })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Thread)?;
    // Registered with the new runtime's reactor, here so that a failure is reported.
    let listener = {
        let _guard = rt.enter();
        tokio::net::TcpListener::from_std(listener)
            .map_err(|source| ServeError::Listen { addr, source })?
    };
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || rt.block_on(accept_loop(listener, metrics, cap.max(1))))
        .map_err(ServeError::Thread)?;
    Ok(bound)
}

/// Logs at most once per [`WARN_EVERY`], with how many were held back.
#[derive(Default)]
struct RateLimit {
    last: Option<Instant>,
    held_back: u64,
}

impl RateLimit {
    /// `Some(held back since the last one)` when a warning may be logged now.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, cap: usize) {
    // Oldest first.
    let mut open: VecDeque<tokio::task::JoinHandle<()>> = VecDeque::with_capacity(cap);
    let (mut accept_warn, mut cap_warn) = (RateLimit::default(), RateLimit::default());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                metrics.http_accept_errors.inc();
                if let Some(held_back) = accept_warn.allow() {
                    tracing::warn!(
                        error = %e,
                        held_back,
                        "metrics port: accept failed; backing off"
                    );
                }
                // Without a pause a persistent error (EMFILE) spins a core.
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ) {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                continue;
            }
        };
        open.retain(|h| !h.is_finished());
        // Full: close the oldest rather than refuse the newcomer, so idle
        // connections cannot lock out a probe whose request comes at once.
        while open.len() >= cap {
            let Some(oldest) = open.pop_front() else {
                break;
            };
            if oldest.is_finished() {
                // Ended on its own since the sweep above: not evicted.
                continue;
            }
            oldest.abort();
            // Its socket is closed once the aborted task is dropped.
            let _ = oldest.await;
            count(&metrics, "evicted");
            if let Some(held_back) = cap_warn.allow() {
                tracing::warn!(
                    cap,
                    held_back,
                    "metrics port: too many connections; closing the oldest"
                );
            }
        }
        open.push_back(tokio::spawn(connection(stream, metrics.clone())));
    }
}

fn count(metrics: &Metrics, outcome: &str) {
    metrics
        .http_connections
        .get_or_create(&OutcomeLabel {
            outcome: outcome.to_owned(),
        })
        .inc();
}

/// Keeps `http_connections_open` right however the task ends (aborted too).
struct OpenGuard(Gauge);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn connection(stream: tokio::net::TcpStream, metrics: Arc<Metrics>) {
    metrics.http_connections_open.inc();
    let _open = OpenGuard(metrics.http_connections_open.clone());
    let answered = Arc::new(AtomicBool::new(false));
    let (m, a) = (metrics.clone(), answered.clone());
    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
        a.store(true, Ordering::Relaxed);
        let resp = respond(&req, &m);
        async move { Ok::<_, std::convert::Infallible>(resp) }
    });
    // One request per connection: a scrape every few seconds gains nothing
    // from keep-alive, and the timeout then bounds the connection's whole life.
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), svc);
    let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, conn).await {
        Err(_) => "timed_out",
        Ok(Ok(())) if answered.load(Ordering::Relaxed) => "served",
        // Closed or broken before a whole request, or while the answer went out.
        Ok(_) => "failed",
    };
    count(&metrics, outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_rate_limited_and_count_what_they_held_back() {
        let mut r = RateLimit::default();
        assert_eq!(r.allow(), Some(0));
        assert_eq!(r.allow(), None);
        assert_eq!(r.allow(), None);
        // As if WARN_EVERY had passed since the last warning.
        r.last = Instant::now().checked_sub(WARN_EVERY);
        assert_eq!(r.allow(), Some(2));
        assert_eq!(r.allow(), None);
    }

    #[test]
    fn cap_leaves_most_descriptors_to_the_event_path() {
        assert_eq!(connection_cap(1024), 64);
        assert_eq!(connection_cap(1 << 20), 64);
        assert_eq!(connection_cap(256), 32);
        assert_eq!(connection_cap(0), 4);
    }

    fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn idle_connections_cannot_lock_out_a_probe() {
        let m = Metrics::new();
        let addr = serve("127.0.0.1:0".parse().unwrap(), m.clone(), 4).unwrap();
        let idle: Vec<_> = (0..20)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        // Each newcomer beyond the cap closed the oldest; the probe gets in too.
        let resp = get(addr, "/healthz").unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        let evicted = |m: &Metrics| {
            m.http_connections
                .get_or_create(&OutcomeLabel {
                    outcome: "evicted".into(),
                })
                .get()
        };
        assert!(evicted(&m) >= 16, "{}", m.render());
        assert!(m.http_connections_open.get() <= 4, "{}", m.render());
        drop(idle);
        let resp = get(addr, "/metrics").unwrap();
        assert!(
            resp.contains("tracer_http_connections_total{outcome=\"evicted\"}"),
            "{resp}"
        );
    }
}
