//! `tracer run`: the stages wired together, in the order an event travels.
//!
//! preflight -> BTF offsets -> probes attached -> /proc scanned (records that
//! arrived meanwhile are replayed) -> loop { ring buffer batch -> decode ->
//! attribute (process table, identity) -> sinks }.
use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    attribute::{Attributed, Attributor, Context},
    btf::Btf,
    config::Config,
    decode::Record,
    event::{Event, Host, LossRecord, Policy, event_id, now_unix_ns, rfc3339_nanos},
    filehash::FileHasher,
    host::{self, HostInfo},
    identity::{
        cgroup::CgroupResolver,
        containerd::Containerd,
        kube::{self, PodIndex},
        resolve::IdentityResolver,
        spiffe::Registry,
        users::UserDb,
    },
    loss::LossTracker,
    metrics::{self, CauseLabel, KindLabel, Metrics, SinkLabel, StatusLabel},
    outcome::Outcomes,
    probes::{self, LoadOptions, Probes, preflight},
    proc::{scan, table::ProcessTable},
    reader::Reader,
    sink::Sinks,
};

/// Emit an event and count it.
fn emit(sinks: &mut Sinks, m: &Metrics, ev: &Event) {
    m.events
        .get_or_create(&KindLabel {
            kind: ev.kind.as_str().to_owned(),
        })
        .inc();
    m.identity
        .get_or_create(&StatusLabel {
            status: ev.executor.identity.status.as_str().to_owned(),
        })
        .inc();
    sinks.write_event(ev);
}

pub async fn run(config: Config, mut sinks: Sinks, registry: Registry) -> Result<()> {
    let caps = preflight::check_caps()?;
    preflight::check_btf(&config.btf_path)?;
    preflight::check_kernel()?;
    preflight::ensure_tracefs(caps)?;

    let metrics = Metrics::new();
    sinks.observe_latency(metrics.latency.clone());
    if let Some(addr) = config.metrics_addr {
        metrics::serve(addr, metrics.clone()).await?;
        tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    }
    if let Some(path) = &config.socket {
        sinks.bind_socket(path, config.tail_queue)?;
        tracing::info!(path = %path.display(), "serving events to `tracer tail`");
    }

    let btf = Btf::from_file(&config.btf_path)
        .with_context(|| format!("reading kernel BTF {}", config.btf_path.display()))?;
    let mut offsets = probes::offsets::resolve(&btf)?;
    let cgroup_v1 = probes::cgroup_v1(&btf, &mut offsets);
    drop(btf);

    let host = HostInfo::read().context("reading host identity")?;
    let cgroups = match &config.cgroup_mount {
        Some(mount) if mount.is_dir() => CgroupResolver::with_mount(mount.clone()),
        Some(mount) => anyhow::bail!("--cgroup-mount {}: not a directory", mount.display()),
        None => CgroupResolver::with_mount(preflight::ensure_cgroup2(caps)?),
    };
    let cgroup_root = cgroups.mount().to_owned();

    let (mut probes, events) = probes::load(&LoadOptions {
        offsets,
        ring_buffer_bytes: config.ring_buffer_bytes,
        cgroup_root: &cgroup_root,
        compat_exec: config.compat_exec_probes,
    })?;
    if let Some(logger) = probes.take_logger() {
        probes::poll_probe_logs(logger);
    }
    let degraded: Vec<String> = probes.degraded().iter().map(ToString::to_string).collect();
    Metrics::set(&metrics.probes_degraded, degraded.len() as u64);
    let _ = metrics.degraded.set(degraded);
    let mut reader = Reader::new(events, Duration::from_millis(config.ring_poll_ms))
        .context("watching the ring buffer")?;
    Metrics::set(
        &metrics.ring_buffer_bytes,
        u64::from(config.ring_buffer_bytes),
    );

    let ctx = Context {
        host: Arc::new(Host {
            name: host.name.clone(),
            boot_id: host.boot_id.clone(),
        }),
        policy: Arc::new(Policy {
            tracer_version: env!("CARGO_PKG_VERSION"),
            config_digest: config.digest(),
        }),
        realtime_offset_ns: host::boottime_to_realtime_offset_ns(),
        ticks_per_second: host::clock_ticks_per_second(),
        lineage_depth: config.lineage_depth,
        emit_lifecycle: config.emit_lifecycle,
    };
    let (host_arc, policy_arc) = (ctx.host.clone(), ctx.policy.clone());
    sinks.set_origin(host_arc.clone(), policy_arc.clone());
    let table = ProcessTable::new(
        Duration::from_secs(config.exit_grace_secs),
        config.max_processes,
    )
    .with_ancestor_argv_max(config.lineage_argv_max);
    let pods = match &config.node_name {
        Some(node) => {
            let index = PodIndex::new(Duration::from_secs(config.pod_grace_secs));
            match kube::client().await {
                Ok(client) => {
                    tracing::info!(node = %node, "watching this node's pods for workload metadata");
                    tokio::spawn(index.clone().run(client, node.clone()));
                }
                // No usable client configuration: events carry what the cgroup gives.
                Err(e) => tracing::warn!(
                    error = %e,
                    "no Kubernetes client configuration; pod metadata disabled"
                ),
            }
            Some(index)
        }
        None => None,
    };
    let containerd = config.containerd_socket.as_deref().and_then(|socket| {
        Containerd::start(
            socket,
            crate::identity::containerd::lookup_timeout(Duration::from_millis(config.kube_wait_ms)),
        )
    });
    let kubepods_roots = crate::identity::workload::KubeRoots::new(&config.kubepods_roots)
        .map_err(|e| anyhow::anyhow!("--{e}"))?;
    let identity = IdentityResolver::new(pods.clone(), registry)
        .with_containerd(containerd.clone())
        .with_kubepods_roots(kubepods_roots);
    let mut attributor = Attributor::new(
        ctx,
        table,
        UserDb::new(&config.host_root),
        cgroups,
        identity,
    )
    .with_files(
        FileHasher::new(config.hash_budget_mib),
        config.host_root.clone(),
    );
    let hash_answered = attributor.hash_answered();
    if let Some(v1) = cgroup_v1 {
        let resolver = CgroupResolver::with_mount(v1.mount.clone());
        attributor = attributor.with_cgroup_v1(v1, resolver, offsets.cgroup_v1_hierarchy);
    }

    // Probes are attached: scan /proc now, then replay what arrived meanwhile, so
    // every process is known once and none is missed.
    let snapshots = tokio::task::spawn_blocking(scan::scan_all)
        .await
        .context("scanning /proc")?;
    attributor.seed(&snapshots);
    let mut batch = Vec::with_capacity(4096);
    let mut flow = Flow {
        outcomes: Outcomes::new(
            Duration::from_millis(config.connect_wait_ms),
            CONNECTS_WAITING_MAX,
        ),
        parked: Parked::new(
            Duration::from_millis(config.kube_wait_ms),
            Duration::from_millis(config.hash_wait_ms),
        ),
        ready: Vec::new(),
    };
    reader.drain_now(&mut batch);
    flow.records(&mut batch, &mut attributor, &mut sinks, &metrics);
    sinks.flush();
    metrics.ready.store(true, Ordering::Relaxed);
    tracing::info!(
        processes = attributor.table.len(),
        "tracer ready: probes attached, /proc scanned"
    );

    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut tick = tokio::time::interval(Duration::from_millis(config.loss_report_interval_ms));
    let mut park_tick = tokio::time::interval(Duration::from_millis(50));
    let mut housekeeping = Housekeeping {
        losses: LossTracker::default(),
        host: host_arc,
        policy: policy_arc,
        metrics: metrics.clone(),
        tail_missed_seen: 0,
        sink_dropped_seen: 0,
    };

    loop {
        tokio::select! {
            r = reader.next_batch(&mut batch, 4096) => {
                r.context("reading the ring buffer")?;
                flow.records(&mut batch, &mut attributor, &mut sinks, &metrics);
                sinks.flush();
            }
            _ = pod_changed(pods.as_ref()), if !flow.parked.is_empty() => {
                flow.parked.retry(&mut attributor, &mut sinks, &metrics, false);
                sinks.flush();
            }
            _ = hash_answered.notified(), if !flow.parked.is_empty() => {
                flow.parked.retry(&mut attributor, &mut sinks, &metrics, false);
                sinks.flush();
            }
            _ = containerd_answered(containerd.as_ref()), if !flow.parked.is_empty() => {
                flow.parked.retry(&mut attributor, &mut sinks, &metrics, false);
                sinks.flush();
            }
            _ = park_tick.tick(), if !flow.is_idle() => {
                flow.tick(&mut attributor, &mut sinks, &metrics, false);
                sinks.flush();
            }
            _ = tick.tick() => {
                housekeeping.report(&probes, &reader, &mut sinks);
                // A quiet host still gets its time-based checkpoints.
                sinks.flush();
                let now = Instant::now();
                attributor.evict(now);
                if let Some(p) = &pods {
                    p.evict(now);
                    Metrics::set(&metrics.kube_watch_state, p.state.state() as u64);
                    Metrics::set(&metrics.kube_watch_errors, p.state.errors.load(Ordering::Relaxed));
                }
                if let Some(c) = &containerd {
                    Metrics::set(&metrics.containerd_lookups, c.stats.lookups.load(Ordering::Relaxed));
                    Metrics::set(&metrics.containerd_errors, c.stats.errors.load(Ordering::Relaxed));
                }
                Metrics::set(&metrics.process_table, attributor.table.len() as u64);
                let h = &attributor.hashes().stats;
                Metrics::set(&metrics.files_hashed, h.hashed.load(Ordering::Relaxed));
                Metrics::set(&metrics.file_hash_bytes, h.bytes.load(Ordering::Relaxed));
                Metrics::set(&metrics.files_unreadable, h.unreadable.load(Ordering::Relaxed));
                Metrics::set(&metrics.connects_waiting, flow.outcomes.len() as u64);
                let c = flow.outcomes.counts;
                Metrics::set(&metrics.connect_results_late, c.timed_out);
                Metrics::set(&metrics.connect_results_overflow, c.overflowed);
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    // Shutdown: what is already in the ring, or waiting for its pod, still goes out.
    metrics.ready.store(false, Ordering::Relaxed);
    reader.drain_now(&mut batch);
    flow.records(&mut batch, &mut attributor, &mut sinks, &metrics);
    flow.tick(&mut attributor, &mut sinks, &metrics, true);
    housekeeping.report(&probes, &reader, &mut sinks);
    sinks.close();
    tracing::info!("tracer stopped");
    Ok(())
}

/// The once-a-tick chores: loss records and counters.
struct Housekeeping {
    losses: LossTracker,
    host: Arc<Host>,
    policy: Arc<Policy>,
    metrics: Arc<Metrics>,
    tail_missed_seen: u64,
    sink_dropped_seen: u64,
}

impl Housekeeping {
    fn report(&mut self, probes: &Probes, reader: &Reader, sinks: &mut Sinks) {
        let kernel = probes.counters();
        Metrics::set(&self.metrics.ring_records_submitted, kernel.submitted);
        if let Some(socket) = sinks.socket() {
            Metrics::set(&self.metrics.tail_clients, socket.clients() as u64);
            let missed = socket.missed_total.load(Ordering::Relaxed);
            self.metrics
                .tail_missed
                .inc_by(missed.saturating_sub(self.tail_missed_seen));
            self.tail_missed_seen = missed;
        }
        for (sink, errors) in sinks.errors() {
            let c = self.metrics.sink_errors.get_or_create(&SinkLabel { sink });
            c.inc_by(errors.saturating_sub(c.get()));
        }
        // Each output declares its own dropped records in its chain; the metric
        // sums them.
        let dropped: u64 = sinks.dropped().iter().map(|(_, n)| n).sum();
        if dropped > self.sink_dropped_seen {
            self.metrics
                .lost
                .get_or_create(&CauseLabel {
                    cause: "sink_error".into(),
                })
                .inc_by(dropped - self.sink_dropped_seen);
            self.sink_dropped_seen = dropped;
        }
        let Some(lost) = self.losses.delta(kernel, reader.malformed) else {
            return;
        };
        tracing::warn!(total = lost.total(), ?lost, "events were lost");
        for (cause, n) in [
            ("ring_full", lost.ring_full),
            ("read_fault", lost.read_fault),
            ("pending_full", lost.pending_full),
            ("scratch", lost.scratch),
            ("malformed", lost.malformed),
            ("sends_unreported", lost.sends_unreported),
        ] {
            if n > 0 {
                self.metrics
                    .lost
                    .get_or_create(&CauseLabel {
                        cause: cause.into(),
                    })
                    .inc_by(n);
            }
        }
        let now = now_unix_ns();
        sinks.write_loss(&LossRecord {
            event_id: event_id(now, 0),
            time: rfc3339_nanos(now),
            kind: "loss",
            host: self.host.clone(),
            lost,
            gap: None,
            policy: self.policy.clone(),
        });
        sinks.flush();
    }
}

async fn pod_changed(pods: Option<&PodIndex>) {
    match pods {
        Some(p) => p.changed.notified().await,
        None => std::future::pending().await,
    }
}

async fn containerd_answered(containerd: Option<&Containerd>) {
    match containerd {
        Some(c) => c.changed.notified().await,
        None => std::future::pending().await,
    }
}

/// Most connect events waiting for their result at once; past it the oldest
/// goes out early (counted), so a flood of half-open connects costs bounded memory.
const CONNECTS_WAITING_MAX: usize = 16_384;

/// After attribution: connects wait for their result ([`Outcomes`]), then every
/// event may wait for its pod's metadata ([`Parked`]), then the sinks.
struct Flow {
    outcomes: Outcomes,
    parked: Parked,
    /// Reused between batches.
    ready: Vec<Attributed>,
}

impl Flow {
    fn is_idle(&self) -> bool {
        self.outcomes.is_empty() && self.parked.is_empty()
    }

    fn records(
        &mut self,
        batch: &mut Vec<Record>,
        attributor: &mut Attributor,
        sinks: &mut Sinks,
        m: &Metrics,
    ) {
        let now = Instant::now();
        for rec in batch.drain(..) {
            match rec {
                Record::ConnectResult(r) => self.ready.extend(self.outcomes.result(&r)),
                rec => {
                    if let Some(a) = attributor.handle(rec) {
                        self.outcomes.admit(a, now, &mut self.ready);
                    }
                }
            }
            for a in self.ready.drain(..) {
                self.parked.emit_or_park(a, sinks, m);
            }
        }
        // What resolved meanwhile (a hash, a pod) goes out now, in order, with
        // whatever queued behind it.
        if !self.parked.is_empty() {
            self.parked.retry(attributor, sinks, m, false);
        }
    }

    /// Time-based progress: connects past their wait, parked events resolved
    /// or past theirs (everything when `all`).
    fn tick(&mut self, attributor: &mut Attributor, sinks: &mut Sinks, m: &Metrics, all: bool) {
        self.outcomes.expire(Instant::now(), all, &mut self.ready);
        for a in self.ready.drain(..) {
            self.parked.emit_or_park(a, sinks, m);
        }
        self.parked.retry(attributor, sinks, m, all);
    }
}

/// Events whose pod metadata (or containerd's answer about their container) had
/// not arrived yet, or whose executed file is being hashed. Each waits at most
/// `wait` (`hash_wait` for the hash), then goes out with what the cgroup gave
/// (`identity.status: "partial"` for a pod) and `hash: "pending"`.
struct Parked {
    /// (deadline, event, whether it waits for something itself rather than
    /// only queueing behind one that does).
    queue: std::collections::VecDeque<(Instant, Event, bool)>,
    wait: Duration,
    hash_wait: Duration,
}

impl Parked {
    fn new(wait: Duration, hash_wait: Duration) -> Self {
        Self {
            queue: std::collections::VecDeque::new(),
            wait,
            hash_wait,
        }
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn emit_or_park(&mut self, a: Attributed, sinks: &mut Sinks, m: &Metrics) {
        let wait = match (a.waiting_for_metadata, a.waiting_for_hash) {
            (true, true) => self.wait.max(self.hash_wait),
            (true, false) => self.wait,
            (false, true) => self.hash_wait,
            (false, false) => Duration::ZERO,
        };
        // Behind anything already waiting, even when this one need not: events
        // leave in the order they came (the queue is retried once per batch).
        if !wait.is_zero() || !self.queue.is_empty() {
            self.queue
                .push_back((Instant::now() + wait, a.event, !wait.is_zero()));
        } else {
            emit(sinks, m, &a.event);
        }
    }

    /// Emit what resolved meanwhile or waited long enough (everything when `all`).
    fn retry(&mut self, attributor: &mut Attributor, sinks: &mut Sinks, m: &Metrics, all: bool) {
        let now = Instant::now();
        let mut keep = std::collections::VecDeque::with_capacity(self.queue.len());
        while let Some((deadline, mut ev, waiting)) = self.queue.pop_front() {
            // Only what waits for something is resolved again.
            let done = !waiting || attributor.reresolve(&mut ev);
            if done || all || now >= deadline {
                emit(sinks, m, &ev);
            } else {
                keep.push_back((deadline, ev, waiting));
            }
        }
        self.queue = keep;
    }
}
