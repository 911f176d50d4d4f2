//! Command line, and `tracer run`: the stages wired together.
use std::{
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    attribute::{Attributed, Attributor, Context},
    btf::Btf,
    config::Config,
    event::{Event, Host, LossRecord, Policy, event_id, now_unix_ns, rfc3339_nanos},
    host::{self, HostInfo},
    identity::{
        cgroup::CgroupResolver,
        kube::{self, PodIndex},
        resolve::IdentityResolver,
        spiffe::Registry,
        users::UserDb,
    },
    loss::LossTracker,
    probes::{self, LoadOptions, preflight},
    proc::{scan, table::ProcessTable},
    reader::Reader,
    sink::json::JsonSink,
};

#[derive(Parser, Debug)]
#[command(
    name = "tracer",
    version,
    about = "eBPF execution tracer: every exec and connect, attributed to its executor"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load the probes and write one JSON line per exec and connect.
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Write events to this file (appended, mode 0600) instead of stdout.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Ancestors listed in each event's lineage, at most.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub lineage_depth: usize,
    /// Also emit fork and exit events.
    #[arg(long)]
    pub emit_lifecycle: bool,
    /// Seconds an exited process stays known, for its children's lineage.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub exit_grace: u64,
    /// Bound on the process table (exited entries are dropped first past it).
    #[arg(long, default_value_t = 200_000, value_name = "N")]
    pub max_processes: usize,
    /// Kernel ring buffer size in bytes (a power of two).
    #[arg(long, default_value_t = 16 * 1024 * 1024, value_name = "BYTES")]
    pub ring_buffer_size: u32,
    /// Root of the host filesystem, for /etc/passwd and /etc/group (e.g. /host in a container).
    #[arg(long, default_value = "/", value_name = "PATH")]
    pub host_root: PathBuf,
    /// Kernel BTF to read struct offsets from.
    #[arg(long, default_value = "/sys/kernel/btf/vmlinux", value_name = "PATH")]
    pub btf: PathBuf,
    /// How often lost-event counters are checked, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub loss_interval: u64,
    /// SPIFFE trust domain of the IDs assigned to workloads.
    #[arg(long, default_value = "cluster.local", value_name = "DOMAIN")]
    pub trust_domain: String,
    /// SPIFFE registration file (TOML; see docs/registrations.md).
    #[arg(long, value_name = "PATH")]
    pub registrations: Option<PathBuf>,
    /// Do not give pods that no registration matches the default
    /// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
    #[arg(long)]
    pub no_default_spiffe_id: bool,
    /// Kubernetes node whose pods are watched for metadata (no watch without it).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// Longest an event waits for its pod's metadata, in milliseconds.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub kube_wait: u64,
    /// Seconds a deleted pod stays resolvable.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub pod_grace: u64,
}

impl RunArgs {
    pub fn config(&self) -> Config {
        Config {
            lineage_depth: self.lineage_depth,
            emit_lifecycle: self.emit_lifecycle,
            exit_grace_secs: self.exit_grace,
            max_processes: self.max_processes,
            ring_buffer_bytes: self.ring_buffer_size,
            host_root: self.host_root.clone(),
            loss_report_interval_ms: self.loss_interval.max(10),
            trust_domain: self.trust_domain.clone(),
            default_spiffe_id: !self.no_default_spiffe_id,
            registrations_digest: None,
            kube_wait_ms: self.kube_wait,
            pod_grace_secs: self.pod_grace,
            registrations: self.registrations.clone(),
            node_name: self.node_name.clone().filter(|n| !n.is_empty()),
            output: self.output.clone(),
            btf_path: self.btf.clone(),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRACER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command {
        Command::Run(args) => run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracer: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> Result<()> {
    let mut config = args.config();
    config.validate()?;
    // Registrations are checked before anything touches the kernel: an invalid
    // entry stops start-up with a message naming it.
    let registry = match &config.registrations {
        Some(path) => {
            let text = std::fs::read(path)
                .with_context(|| format!("reading registrations {}", path.display()))?;
            config.registrations_digest = Some(crate::config::sha256_hex(&text));
            Registry::load(&config.trust_domain, config.default_spiffe_id, path)?
        }
        None => Registry::new(&config.trust_domain, config.default_spiffe_id)?,
    };
    // Output first: a wrong path should fail before anything touches the kernel.
    let sink = match &config.output {
        Some(path) => JsonSink::file(path)?,
        None => JsonSink::stdout(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(config, sink, registry))
}

async fn run_async(config: Config, mut sink: JsonSink, registry: Registry) -> Result<()> {
    let caps = preflight::check_caps()?;
    preflight::check_btf(&config.btf_path)?;
    preflight::check_kernel()?;
    preflight::ensure_tracefs(caps)?;

    let btf = Btf::from_file(&config.btf_path)
        .with_context(|| format!("reading kernel BTF {}", config.btf_path.display()))?;
    let offsets = probes::offsets::resolve(&btf)?;
    drop(btf);

    let host = HostInfo::read().context("reading host identity")?;
    let cgroups = CgroupResolver::discover().context("finding the cgroup v2 mount")?;
    let cgroup_root = cgroups.mount().to_owned();

    let (probes, events) = probes::load(&LoadOptions {
        offsets,
        ring_buffer_bytes: config.ring_buffer_bytes,
        cgroup_root: &cgroup_root,
    })?;
    let mut reader = Reader::new(events).context("watching the ring buffer")?;

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
    let host_arc = ctx.host.clone();
    let policy_arc = ctx.policy.clone();
    let table = ProcessTable::new(
        Duration::from_secs(config.exit_grace_secs),
        config.max_processes,
    );
    let pods = match &config.node_name {
        Some(node) => {
            let index = PodIndex::new(Duration::from_secs(config.pod_grace_secs));
            match kube::client().await {
                Ok(client) => {
                    tracing::info!(node = %node, "watching this node's pods for workload metadata");
                    tokio::spawn(index.clone().run(client, node.clone()));
                }
                // No usable client configuration: events carry what the cgroup gives.
                Err(e) => {
                    tracing::warn!(error = %e, "no Kubernetes client configuration; pod metadata disabled")
                }
            }
            Some(index)
        }
        None => None,
    };
    let identity = IdentityResolver::new(pods.clone(), registry);
    let mut attributor = Attributor::new(
        ctx,
        table,
        UserDb::new(&config.host_root),
        cgroups,
        identity,
    );

    // Probes are attached: scan /proc now, then replay what arrived meanwhile, so
    // every process is known once and none is missed.
    let snapshots = tokio::task::spawn_blocking(scan::scan_all)
        .await
        .context("scanning /proc")?;
    attributor.seed(&snapshots);
    let mut batch = Vec::with_capacity(4096);
    let mut parked = Parked::new(Duration::from_millis(config.kube_wait_ms));
    reader.drain_now(&mut batch);
    for rec in batch.drain(..) {
        if let Some(a) = attributor.handle(rec) {
            parked.emit_or_park(a, &mut sink)?;
        }
    }
    sink.flush()?;
    tracing::info!(
        processes = attributor.table.len(),
        "tracer ready: probes attached, /proc scanned"
    );

    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut tick = tokio::time::interval(Duration::from_millis(config.loss_report_interval_ms));
    let mut losses = LossTracker::default();
    let mut park_tick = tokio::time::interval(Duration::from_millis(50));
    let report_loss =
        |losses: &mut LossTracker, reader: &Reader, sink: &mut JsonSink| -> Result<()> {
            let kernel = probes.counters();
            if let Some(lost) = losses.delta(kernel, reader.malformed, 0) {
                tracing::warn!(total = lost.total(), ?lost, "events were lost");
                let now = now_unix_ns();
                sink.write(&LossRecord {
                    event_id: event_id(now, 0),
                    time: rfc3339_nanos(now),
                    kind: "loss",
                    host: host_arc.clone(),
                    lost,
                    policy: policy_arc.clone(),
                })?;
                sink.flush()?;
            }
            Ok(())
        };

    loop {
        tokio::select! {
            r = reader.next_batch(&mut batch, 4096) => {
                r.context("reading the ring buffer")?;
                for rec in batch.drain(..) {
                    if let Some(a) = attributor.handle(rec) {
                        parked.emit_or_park(a, &mut sink)?;
                    }
                }
                sink.flush()?;
            }
            _ = pod_changed(pods.as_ref()), if !parked.is_empty() => {
                parked.retry(&mut attributor, &mut sink, false)?;
                sink.flush()?;
            }
            _ = park_tick.tick(), if !parked.is_empty() => {
                parked.retry(&mut attributor, &mut sink, false)?;
                sink.flush()?;
            }
            _ = tick.tick() => {
                report_loss(&mut losses, &reader, &mut sink)?;
                let now = Instant::now();
                attributor.table.evict(now);
                if let Some(p) = &pods {
                    p.evict(now);
                }
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    // Shutdown: what is already in the ring, or waiting for its pod, still goes out.
    reader.drain_now(&mut batch);
    for rec in batch.drain(..) {
        if let Some(a) = attributor.handle(rec) {
            parked.emit_or_park(a, &mut sink)?;
        }
    }
    parked.retry(&mut attributor, &mut sink, true)?;
    report_loss(&mut losses, &reader, &mut sink)?;
    sink.flush()?;
    tracing::info!("tracer stopped");
    Ok(())
}

async fn pod_changed(pods: Option<&PodIndex>) {
    match pods {
        Some(p) => p.changed.notified().await,
        None => std::future::pending().await,
    }
}

/// Events whose pod metadata had not arrived yet. Each waits at most `wait`, then
/// goes out with what the cgroup gave (`identity.status: "partial"`).
struct Parked {
    queue: std::collections::VecDeque<(Instant, Event)>,
    wait: Duration,
    /// Events that went out partial because the wait ran out.
    timed_out: u64,
}

impl Parked {
    fn new(wait: Duration) -> Self {
        Self {
            queue: std::collections::VecDeque::new(),
            wait,
            timed_out: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn emit_or_park(&mut self, a: Attributed, sink: &mut JsonSink) -> Result<()> {
        if a.waiting_for_pod && !self.wait.is_zero() {
            self.queue.push_back((Instant::now() + self.wait, a.event));
            Ok(())
        } else {
            Ok(sink.write(&a.event)?)
        }
    }

    /// Emit what resolved meanwhile or waited long enough (everything when `all`).
    fn retry(&mut self, attributor: &mut Attributor, sink: &mut JsonSink, all: bool) -> Result<()> {
        let now = Instant::now();
        let mut keep = std::collections::VecDeque::with_capacity(self.queue.len());
        while let Some((deadline, mut ev)) = self.queue.pop_front() {
            let done = attributor.reresolve(&mut ev);
            if done || all || now >= deadline {
                if !done {
                    self.timed_out += 1;
                }
                sink.write(&ev)?;
            } else {
                keep.push_back((deadline, ev));
            }
        }
        self.queue = keep;
        Ok(())
    }
}
