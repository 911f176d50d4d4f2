//! `tracer run`: the stages wired together, in the order an event travels.
//!
//! preflight -> BTF offsets -> probes attached -> /proc scanned (records that
//! arrived meanwhile are replayed) -> loop { ring buffer batch -> decode ->
//! attribute (process table, identity) -> sinks }.
//!
//! Threads. The loop runs on the caller's single-threaded runtime, and it
//! blocks by design: attributing reads /proc for processes the table does
//! not know, walks the cgroup tree on a cache miss, and the sinks write
//! files. Only what feeds the loop shares that runtime (the ring buffer, the
//! probes' log ring, timers, signals). The async services that wait on
//! others or answer them — the tail socket's readers, the Kubernetes pod
//! watch, containerd lookups — run on [`Services`], their own thread and
//! runtime, so a slow /proc read delays neither them nor they the loop.
//! The metrics server and the file hasher have their own threads too.
use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use tokio::signal::unix::{SignalKind, signal};

mod flow;
mod services;

use flow::{CONNECTS_WAITING_MAX, Flow};
use services::Services;

use crate::{
    aggregate::{self, Aggregates},
    attribute::{Attributor, Context},
    btf::Btf,
    config::Config,
    decode::Record,
    event::{BudgetCounts, EventId, Host, LossRecord, Policy, UnixNanos},
    filehash::FileHasher,
    host::{self, HostInfo},
    identity::{
        cgroup::CgroupResolver,
        containerd::Containerd,
        kube::{self, PodIndex, PodLimits},
        resolve::IdentityResolver,
        services::{ServiceIndex, ServiceLimits},
        spiffe::Registry,
        users::UserDb,
        waiting::Waiting,
    },
    loss::LossTracker,
    metrics::{self, CauseLabel, Metrics, SinkLabel, StructureLabel},
    outcome::Outcomes,
    probes::{self, LoadOptions, Probes, preflight},
    proc::{scan, table::ProcessTable},
    reader::Reader,
    sink::Sinks,
};

pub(crate) async fn run(config: Config, mut sinks: Sinks, registry: Registry) -> Result<()> {
    let budget = config.budget()?;
    let caps = preflight::check_caps()?;
    preflight::check_btf(&config.btf_path)?;
    preflight::check_kernel()?;
    preflight::ensure_tracefs(caps)?;

    let metrics = Metrics::new();
    sinks.observe_latency(metrics.latency.clone());
    let nofile = host::nofile_limit().map_or(1024, |(soft, _)| soft);
    Metrics::set(&metrics.open_files_limit, nofile);
    if let Some(addr) = config.metrics_addr {
        // Its own thread and runtime: HTTP clients cannot delay the event loop.
        let cap = metrics::connection_cap(nofile);
        let addr = metrics::serve(addr, metrics.clone(), cap)?;
        tracing::info!(%addr, max_connections = cap, "serving /metrics, /healthz, /readyz");
    }
    let services = Services::start()?;
    if let Some(path) = &config.socket {
        // All readers' queues together get the tail share of the budget.
        let mut limits = config.tail_limits();
        limits.total_bytes = budget.tail_queues;
        limits.client_bytes = limits.client_bytes.min(budget.tail_queues);
        // Bound in the services' context: its listener and readers live there.
        let _services = services.handle().enter();
        match sinks.bind_socket(path, limits) {
            Ok(()) => tracing::info!(path = %path.display(), "serving events to `tracer tail`"),
            // The default place is best effort: a second tracer on the host
            // (or a read-only /run) still traces; the operator is told why
            // `tracer tail` will not reach it.
            Err(e) if !config.socket_explicit => tracing::warn!(
                error = %e,
                "no tail socket for this tracer (give --socket PATH to serve one elsewhere)"
            ),
            Err(e) => return Err(e.into()),
        }
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
        dns_names: config.dns_names,
        usage_sweep: config.usage_interval_s > 0,
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
        page_size: host::page_size(),
        lineage_depth: config.lineage_depth,
        lineage_ids: config.lineage == crate::event::LineageMode::Ids,
        emit_lifecycle: config.emit_lifecycle,
        usage_interval_ns: config.usage_interval_s.saturating_mul(1_000_000_000),
    };
    let (host_arc, policy_arc) = (ctx.host.clone(), ctx.policy.clone());
    sinks.set_origin(host_arc.clone(), policy_arc.clone());
    let table = ProcessTable::new(
        Duration::from_secs(config.exit_grace_secs),
        config.max_processes,
    )
    .with_ancestor_argv_max(config.lineage_argv_max)
    .with_max_bytes(budget.process_table);
    let (pods, services_index) =
        match &config.node_name {
            // The client's own tasks are spawned where it is made: there too.
            Some(node) => match services
                .handle()
                .spawn(kube::client())
                .await
                .map_err(|e| e.to_string())
                .and_then(|made| made.map_err(|e| e.to_string()))
            {
                Ok(client) => {
                    let index = PodIndex::with_limits(
                        Duration::from_secs(config.pod_grace_secs),
                        PodLimits {
                            cache_bytes: budget.pod_cache,
                            ..PodLimits::default()
                        },
                    );
                    tracing::info!(node = %node, "watching this node's pods for workload metadata");
                    services
                        .handle()
                        .spawn(index.clone().run(client.clone(), node.clone()));
                    let names = config.service_watch.then(|| {
                    let bytes = config.service_index_bytes.map_or(budget.service_index, |b| {
                        usize::try_from(b).unwrap_or(usize::MAX)
                    });
                    // Deleted Services keep their names as long as deleted pods do.
                    let index = ServiceIndex::new(
                        Duration::from_secs(config.pod_grace_secs),
                        ServiceLimits { bytes },
                    )
                    .with_node(node);
                    tracing::info!(
                        max_bytes = bytes,
                        "watching the cluster's Services and EndpointSlices for destination names"
                    );
                    let h = services.handle();
                    h.spawn(index.clone().run_services(client.clone()));
                    h.spawn(index.clone().run_slices(client));
                    index
                });
                    (Some(index), names)
                }
                // No usable client configuration: events carry what the cgroup
                // gives, without waiting for metadata that cannot come.
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "no Kubernetes client configuration; pod metadata disabled"
                    );
                    (None, None)
                }
            },
            None => (None, None),
        };
    let containerd = config.containerd_socket.as_deref().and_then(|socket| {
        let _services = services.handle().enter();
        Containerd::start(
            socket,
            crate::identity::containerd::lookup_timeout(Duration::from_millis(config.kube_wait_ms)),
        )
    });
    let kubepods_roots = crate::identity::workload::KubeRoots::new(&config.kubepods_roots)
        .map_err(|e| anyhow::anyhow!("--{e}"))?;
    // The memo's bound, plus half of it for parsed cgroup paths: the caches' share.
    let identity = IdentityResolver::new(pods.clone(), registry)
        .with_memo_bytes(budget.caches / 3 * 2)
        .with_containerd(containerd.clone())
        .with_kubepods_roots(kubepods_roots)
        .with_services(services_index.clone());
    let memo_stats = identity.memo_stats.clone();
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
    )
    .with_credential_patterns(config.credential_patterns()?)
    .with_requestor_profiles(config.requestor_profiles()?);
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
    attributor.seed(snapshots);
    let mut batch = Vec::with_capacity(4096);
    // The waiting-events share is split between the queues that hold events:
    // a third each when connects are aggregated, else half each.
    let waiting_parts = if config.aggregate_connects_s > 0 {
        3
    } else {
        2
    };
    // Held PATH-search misses wait ~100 ms at most: an eighth is plenty.
    let fold = config.exec_attempts == crate::config::ExecAttempts::Fold;
    let search_bytes = if fold { budget.waiting_events / 8 } else { 0 };
    let searches = fold.then(|| crate::search::Searches::new(search_bytes));
    let waiting_share = (budget.waiting_events - search_bytes) / waiting_parts;
    let aggregates = (config.aggregate_connects_s > 0).then(|| {
        tracing::info!(
            window_s = config.aggregate_connects_s,
            "aggregating repeated connects (--aggregate-connects)"
        );
        Aggregates::new(
            config.aggregate_connects_s,
            aggregate::MAX_KEYS,
            waiting_share,
        )
    });
    let mut flow = Flow {
        outcomes: Outcomes::new(
            Duration::from_millis(config.connect_wait_ms),
            CONNECTS_WAITING_MAX,
            waiting_share,
        ),
        parked: Waiting::new(
            Duration::from_millis(config.kube_wait_ms),
            Duration::from_millis(config.hash_wait_ms),
            waiting_share,
            pods.iter()
                .map(|p| p.changed.clone())
                .chain(containerd.iter().map(|c| c.changed.clone()))
                .collect(),
        ),
        ready: Vec::new(),
        out: Vec::new(),
        aggregates,
        dns: crate::dns::DnsNames::default(),
        searches,
        searched: Vec::new(),
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
    // Usage sweeps (`--usage-interval`); the first one interval after the start.
    let usage_every = Duration::from_secs(config.usage_interval_s.max(1));
    let mut usage_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + usage_every, usage_every);
    usage_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sweeping = config.usage_interval_s > 0;
    // Proof of life for /healthz, which is served from another thread.
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    let mut housekeeping = Housekeeping {
        losses: LossTracker::default(),
        host: host_arc,
        policy: policy_arc,
        metrics: metrics.clone(),
        budget: BudgetCounts::default(),
        budget_reported: BudgetCounts::default(),
        sink_dropped_seen: 0,
    };
    for (structure, bytes) in [
        ("process_table", budget.process_table),
        ("pod_cache", budget.pod_cache),
        ("service_index", budget.service_index),
        ("tail_queues", budget.tail_queues),
        ("waiting_events", budget.waiting_events),
        ("sink_retry", budget.sink_retry),
        ("caches", budget.caches),
    ] {
        Metrics::set(
            &metrics.memory_budget.get_or_create(&StructureLabel {
                structure: structure.into(),
            }),
            bytes as u64,
        );
    }

    loop {
        tokio::select! {
            r = reader.next_batch(&mut batch, 4096) => {
                r.context("reading the ring buffer")?;
                flow.records(&mut batch, &mut attributor, &mut sinks, &metrics);
                sinks.flush();
            }
            _ = pod_changed(pods.as_ref()), if !flow.parked.is_empty() => {
                flow.retry(&mut attributor, &mut sinks, &metrics, false);
                sinks.flush();
            }
            _ = hash_answered.notified(), if !flow.parked.is_empty() => {
                flow.parked.hash_answered();
                flow.retry(&mut attributor, &mut sinks, &metrics, false);
                sinks.flush();
            }
            _ = containerd_answered(containerd.as_ref()), if !flow.parked.is_empty() => {
                flow.retry(&mut attributor, &mut sinks, &metrics, false);
                sinks.flush();
            }
            _ = park_tick.tick(), if !flow.is_idle() => {
                // A held search ends on its wait only once what its thread did
                // meanwhile has been read: read the ring first.
                let mut caught_up = true;
                if flow.searching() {
                    caught_up = reader.read_now(&mut batch, 4096);
                    flow.records(&mut batch, &mut attributor, &mut sinks, &metrics);
                }
                flow.tick(&mut attributor, &mut sinks, &metrics, caught_up, false);
                sinks.flush();
            }
            _ = tick.tick() => {
                housekeeping.budget = flow.budget_counts(&attributor);
                housekeeping.report(&probes, &reader, &mut sinks);
                // A quiet host still gets its time-based checkpoints.
                sinks.flush();
                let now = Instant::now();
                attributor.evict(now);
                let total = |c: &prometheus_client::metrics::counter::Counter, now: u64| {
                    c.inc_by(now.saturating_sub(c.get()));
                };
                if let Some(p) = &pods {
                    p.evict(now);
                    let s = &p.state;
                    Metrics::set(&metrics.kube_watch_state, s.state() as u64);
                    Metrics::set(&metrics.kube_watch_errors, s.errors.load(Ordering::Relaxed));
                    Metrics::set(&metrics.pod_cache_bytes, s.cache_bytes.load(Ordering::Relaxed));
                    total(&metrics.pod_cache_evictions, s.evicted.load(Ordering::Relaxed));
                    total(&metrics.pod_labels_truncated, s.labels_truncated.load(Ordering::Relaxed));
                }
                if let Some(n) = &services_index {
                    n.evict(now);
                    let s = &n.state;
                    Metrics::set(&metrics.service_watch_state, s.services() as u64);
                    Metrics::set(&metrics.endpointslice_watch_state, s.slices() as u64);
                    Metrics::set(&metrics.service_watch_errors, s.errors.load(Ordering::Relaxed));
                    Metrics::set(&metrics.service_index_bytes, s.bytes.load(Ordering::Relaxed));
                    Metrics::set(&metrics.service_index_entries, s.entries.load(Ordering::Relaxed));
                    total(&metrics.service_index_dropped, s.dropped.load(Ordering::Relaxed));
                    Metrics::set(
                        &metrics.memory_used.get_or_create(&StructureLabel { structure: "service_index".into() }),
                        s.bytes.load(Ordering::Relaxed),
                    );
                }
                Metrics::set(&metrics.identity_memo_bytes, memo_stats.bytes.load(Ordering::Relaxed));
                total(&metrics.identity_memo_evictions, memo_stats.evicted.load(Ordering::Relaxed));
                if let Some(c) = &containerd {
                    Metrics::set(&metrics.containerd_lookups, c.stats.lookups.load(Ordering::Relaxed));
                    Metrics::set(&metrics.containerd_errors, c.stats.errors.load(Ordering::Relaxed));
                }
                Metrics::set(&metrics.process_table, attributor.table.len() as u64);
                for (structure, used) in [
                    ("process_table", attributor.table.bytes()),
                    ("waiting_events", flow.waiting_bytes()),
                ] {
                    Metrics::set(
                        &metrics.memory_used.get_or_create(&StructureLabel { structure: structure.into() }),
                        used as u64,
                    );
                }
                let h = &attributor.hashes().stats;
                Metrics::set(&metrics.files_hashed, h.hashed.load(Ordering::Relaxed));
                Metrics::set(&metrics.file_hash_bytes, h.bytes.load(Ordering::Relaxed));
                Metrics::set(&metrics.files_unreadable, h.unreadable.load(Ordering::Relaxed));
                Metrics::set(&metrics.connects_waiting, flow.outcomes.len() as u64);
                let d = flow.dns.counts;
                for (cause, n) in [
                    ("queries", d.queries),
                    ("answers", d.answers),
                    ("names", d.names),
                    ("malformed", d.malformed),
                    ("truncated", d.truncated),
                    ("unmatched", d.unmatched),
                    ("unknown_socket", d.unknown_socket),
                    ("evicted", d.evicted),
                    ("queries_evicted", d.queries_evicted),
                    ("tcp_skipped", probes.counters().dns_tcp_skipped),
                ] {
                    Metrics::set(&metrics.dns_messages.get_or_create(&CauseLabel { cause: cause.into() }), n);
                }
                Metrics::set(&metrics.dns_names_bytes, flow.dns.bytes() as u64);
                let c = flow.outcomes.counts;
                Metrics::set(&metrics.connect_results_late, c.timed_out);
                Metrics::set(&metrics.connect_results_overflow, c.overflowed);
                if let Some(s) = &flow.searches {
                    let c = s.counts;
                    for (cause, n) in [
                        ("folded", c.folded),
                        ("emitted", c.emitted),
                        ("overflowed", c.overflowed),
                    ] {
                        let label = CauseLabel { cause: cause.into() };
                        Metrics::set(&metrics.exec_search_attempts.get_or_create(&label), n);
                    }
                }
                if let Some(agg) = &flow.aggregates {
                    Metrics::set(&metrics.connect_aggregates_pending, agg.len() as u64);
                    Metrics::set(&metrics.connect_aggregates_flushed_early, agg.flushed_early);
                }
            }
            _ = usage_tick.tick(), if sweeping => {
                if let Err(e) = usage_sweep(&mut probes, &mut reader, &mut batch, &mut flow, &mut attributor, &mut sinks, &metrics) {
                    metrics.usage_sweep_errors.inc();
                    tracing::warn!(error = format!("{e:#}"), "usage sweep failed; the next one tries again");
                }
                sinks.flush();
            }
            _ = heartbeat.tick() => metrics.beat(),
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    // Shutdown: what is already in the ring, or waiting for its pod, still goes out.
    metrics.ready.store(false, Ordering::Relaxed);
    reader.drain_now(&mut batch);
    flow.records(&mut batch, &mut attributor, &mut sinks, &metrics);
    flow.tick(&mut attributor, &mut sinks, &metrics, true, true);
    housekeeping.budget = flow.budget_counts(&attributor);
    housekeeping.report(&probes, &reader, &mut sinks);
    sinks.close();
    tracing::info!("tracer stopped");
    Ok(())
}

/// One usage sweep: read the iterator a few processes at a time, handling
/// what each read put in the ring before the next (a sweep of every process
/// on a large host would not fit in the ring at once).
fn usage_sweep(
    probes: &mut Probes,
    reader: &mut Reader,
    batch: &mut Vec<Record>,
    flow: &mut Flow,
    attributor: &mut Attributor,
    sinks: &mut Sinks,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    use std::io::Read as _;
    /// Processes per read: 256 usage records are about 100 KiB of ring.
    const PER_READ: usize = 256;
    /// Longest a sweep holds the event loop: on a host too large (or a
    /// kernel too slow) to sweep in that time, the rest waits for the next.
    const BUDGET: Duration = Duration::from_secs(2);
    let Some(mut iter) = probes.usage_sweep()? else {
        return Ok(());
    };
    let started = Instant::now();
    let mut buf = [0u8; PER_READ];
    let mut processes = 0u64;
    loop {
        let n = match iter.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(anyhow::Error::new(e).context("reading the usage iterator")),
        };
        processes += n as u64;
        reader.drain_now(batch);
        flow.records(batch, attributor, sinks, metrics);
        if n == 0 {
            break;
        }
        if started.elapsed() > BUDGET {
            metrics.usage_sweeps_cut.inc();
            tracing::warn!(
                processes,
                "usage sweep cut after {BUDGET:?}: the processes after these get no sample this time"
            );
            break;
        }
    }
    metrics.usage_sweeps.inc();
    tracing::debug!(processes, took = ?started.elapsed(), "usage sweep");
    Ok(())
}

/// The once-a-tick chores: loss records and counters.
struct Housekeeping {
    losses: LossTracker,
    host: Arc<Host>,
    policy: Arc<Policy>,
    metrics: Arc<Metrics>,
    /// Budget drops so far, and as of the last loss record.
    budget: BudgetCounts,
    budget_reported: BudgetCounts,
    sink_dropped_seen: u64,
}

impl Housekeeping {
    fn report(&mut self, probes: &Probes, reader: &Reader, sinks: &mut Sinks) {
        let kernel = probes.counters();
        Metrics::set(&self.metrics.ring_records_submitted, kernel.submitted);
        if let Some(socket) = sinks.socket() {
            Metrics::set(&self.metrics.tail_clients, socket.clients() as u64);
            let stats = &socket.stats;
            let total = |c: &prometheus_client::metrics::counter::Counter, now: u64| {
                c.inc_by(now.saturating_sub(c.get()));
            };
            total(
                &self.metrics.tail_missed,
                stats.missed.load(Ordering::Relaxed),
            );
            total(
                &self.metrics.tail_missed_bytes,
                stats.missed_bytes.load(Ordering::Relaxed),
            );
            total(
                &self.metrics.tail_clients_refused,
                stats.refused.load(Ordering::Relaxed),
            );
            Metrics::set(
                &self.metrics.tail_queued_bytes,
                stats.queued_bytes.load(Ordering::Relaxed) as u64,
            );
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
        let budget = self.budget.since(&self.budget_reported);
        self.budget_reported = self.budget;
        for (cause, n) in [
            ("processes_evicted", budget.processes_evicted),
            ("exited_evicted_early", budget.exited_evicted_early),
            ("argv_cut", budget.argv_cut),
            ("released_early", budget.released_early),
        ] {
            if n > 0 {
                self.metrics
                    .budget_drops
                    .get_or_create(&CauseLabel {
                        cause: cause.into(),
                    })
                    .inc_by(n);
            }
        }
        let lost = self.losses.delta(kernel, reader.malformed);
        if lost.is_none() && budget.is_zero() {
            return;
        }
        let lost = lost.unwrap_or_default();
        if lost.total() > 0 {
            tracing::warn!(total = lost.total(), ?lost, "events were lost");
        }
        if budget.processes_evicted + budget.released_early > 0 {
            tracing::warn!(?budget, "state dropped to stay within --memory-limit");
        }
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
        let now = UnixNanos::now();
        sinks.write_loss(&LossRecord {
            event_id: EventId::new(now, 0),
            time: now,
            kind: "loss",
            host: self.host.clone(),
            lost,
            budget,
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
