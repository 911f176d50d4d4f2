//! What `/metrics`, `/healthz` and `/readyz` answer.
use std::sync::atomic::Ordering;

use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Bytes};

use super::Metrics;

pub(super) fn respond<B>(req: &Request<B>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match req.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        "/healthz" => match metrics.stalled_for() {
            None => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
            Some(age) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("event loop stalled for {} s\n", age.as_secs()),
            ),
        },
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
    use std::{
        sync::Arc,
        time::{Duration, Instant},
    };

    use super::*;
    use crate::metrics::counters::STALL_AFTER;

    #[test]
    fn healthz_fails_when_the_event_loop_stalls() {
        let m = Metrics::new();
        let req = Request::get("/healthz").body(()).unwrap();
        // Before the loop starts (probes loading, /proc scan): alive.
        assert_eq!(respond(&req, &m).status(), StatusCode::OK);
        m.beat();
        assert_eq!(respond(&req, &m).status(), StatusCode::OK);
        // A last beat longer ago than STALL_AFTER.
        m.heartbeat_ms.store(1, Ordering::Relaxed);
        let m = Metrics {
            started: Instant::now() - STALL_AFTER - Duration::from_secs(1),
            ..Arc::into_inner(m).unwrap()
        };
        assert_eq!(respond(&req, &m).status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
