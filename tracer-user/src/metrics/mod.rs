//! Operator-facing counters (`/metrics`, Prometheus text) and health endpoints
//! (`/healthz`: the event loop goes round; `/readyz`: probes attached and the
//! start-up /proc scan done).
//!
//! The main loop updates plain atomics through [`Metrics`]; the HTTP server (hyper)
//! only reads them, so scraping never touches the data path.
//!
//! The server is reachable by any local user (or the whole network), so it runs
//! on its own thread and runtime, holds a bounded number of connections (the
//! oldest is closed to make room), gives each one [`REQUEST_TIMEOUT`] for its
//! whole request and response, and backs off when `accept` fails: a flood of
//! idle connections can neither use up the descriptors the event path needs
//! nor take CPU from it.
mod counters;
mod endpoints;
mod server;

pub(crate) use counters::{
    CauseLabel, KindLabel, Metrics, OutcomeLabel, SinkLabel, StatusLabel, StructureLabel,
};
pub(crate) use server::{connection_cap, serve};
