//! The command line: `tracer run`, `tracer check-config`, `tracer tail`, `tracer verify`.
//! `main.rs` only calls [`main`]; `run.rs` holds the pipeline.
use std::{ffi::OsString, path::PathBuf, process::ExitCode};

use anyhow::{Context as _, Result, bail};
use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::{
    config::{Config, sha256_hex},
    identity::spiffe::Registry,
    sink::{Format, SinkOptions, Sinks},
    tail::TailArgs,
};

#[derive(Parser, Debug)]
#[command(
    name = "tracer",
    version,
    about = "eBPF execution tracer: every exec and connect, attributed to its executor",
    // A flag from the config file is overridden by the same flag given later on
    // the command line.
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load the probes and write one JSON line per exec and connect.
    Run(RunArgs),
    /// Check flags, config file and registrations without loading anything.
    CheckConfig(RunArgs),
    /// Load and attach every probe on this kernel, print each program's verifier
    /// statistics as JSON, and detach: exit 0 when the tracer can run here.
    CheckKernel(crate::kernel_check::CheckKernelArgs),
    /// Show events of a running tracer (its --socket) or an event file, filtered.
    Tail(TailArgs),
    /// Check the hash chain (and signed checkpoints) of event files; exit 0
    /// when intact, 1 at the first record edited, deleted, reordered or cut off.
    Verify(crate::verify::VerifyArgs),
    /// Summarise event files: who shares a credential (uid, service account),
    /// what each executor and identity did; checks the chain as it reads.
    Report(crate::report::ReportArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// TOML config file; its keys are these flags' long names with `_` for `-`
    /// (`trust_domain = "example.org"`). Flags given on the command line win.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Write events to this file (appended, mode 0600, rotated) instead of stdout.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Format of --output (or stdout).
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// Also write OCSF 1.8.0 to this file (rotated like --output).
    #[arg(long, value_name = "PATH")]
    pub ocsf_output: Option<PathBuf>,
    /// Rotate output files when they reach this many bytes (0: never).
    #[arg(long, default_value_t = 100 * 1024 * 1024, value_name = "BYTES")]
    pub rotate_size: u64,
    /// Rotated files kept (FILE.1 newest ... FILE.N oldest).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub rotate_keep: usize,
    /// Serve events to `tracer tail` on this Unix socket (mode 0600, root
    /// only). Default: /run/tracer/tracer.sock, unless another running tracer
    /// serves that already (then this one serves none, and says so); a path
    /// given here must be free.
    #[arg(long, value_name = "PATH", conflicts_with = "no_socket")]
    pub socket: Option<PathBuf>,
    /// Serve no tail socket.
    #[arg(long)]
    pub no_socket: bool,
    /// Lines a tail reader may fall behind before it misses events (it is told how many).
    #[arg(long, default_value_t = crate::sink::socket::CLIENT_QUEUE, value_name = "LINES")]
    pub tail_queue: usize,
    /// Bytes a tail reader may fall behind by before it misses events; all
    /// readers together hold at most four times this.
    #[arg(long, default_value_t = crate::sink::socket::CLIENT_QUEUE_BYTES, value_name = "BYTES")]
    pub tail_queue_bytes: usize,
    /// Tail readers served at once; more are turned away.
    #[arg(long, default_value_t = crate::sink::socket::MAX_CLIENTS, value_name = "N")]
    pub tail_clients: usize,
    /// Serve Prometheus /metrics, /healthz and /readyz on this address.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Ancestors listed in each event's lineage, at most.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub lineage_depth: usize,
    /// Bytes of each ancestor's argv kept in lineage (its own exec event has it
    /// whole); 0 keeps all. The executor's own argv is never cut here.
    #[arg(long, default_value_t = crate::config::DEFAULT_LINEAGE_ARGV_MAX, value_name = "BYTES")]
    pub lineage_argv_max: usize,
    /// What each event's lineage says of an ancestor: `full` (binary and argv,
    /// on every event) or `ids` (its exec_id and pid; its binary and argv are
    /// in an earlier line of the same file, its own event or a `process`
    /// record, so each file still stands alone). `ids` makes lines much shorter.
    #[arg(long, value_enum, default_value_t = crate::event::LineageMode::Full, value_name = "MODE")]
    pub lineage: crate::event::LineageMode,
    /// Also emit fork and exit events.
    #[arg(long)]
    pub emit_lifecycle: bool,
    /// Every this many seconds (1 to 86400), a `usage` event for each live
    /// process whose image has run that long: the CPU time and memory it used
    /// so far, read in the kernel by a task iterator (Linux 5.8+). 0: off
    /// (exit events still report what an image used, with --emit-lifecycle).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub usage_interval: u64,
    /// Failed execs of a PATH search: `fold` (the misses of a thread that
    /// then runs the same name go into that exec's `action.path_search`;
    /// a miss nothing of the name follows is still its own event) or `all`
    /// (every failed exec its own event). In `policy.config_digest`.
    #[arg(long, value_enum, default_value_t = crate::config::ExecAttempts::Fold, value_name = "MODE")]
    pub exec_attempts: crate::config::ExecAttempts,
    /// Attach the probe that reports failed execs through the 32-bit compat
    /// syscall table (`int 0x80`). It runs on every syscall's exit on the host
    /// (measured in BENCHMARKS.md), so it is off unless asked for; successful
    /// compat execs and compat connects are reported either way.
    #[arg(long)]
    pub compat_exec_probes: bool,
    /// Do not attach the DNS programs (cgroup skb, run on every packet a
    /// socket sends or receives): connects then carry no `destination.name`.
    #[arg(long)]
    pub no_dns_names: bool,
    /// Seconds an exited process stays known, for its children's lineage.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub exit_grace: u64,
    /// Bound on the process table's entries. Past it (or past the table's share
    /// of --memory-limit) exited entries go first, then the running processes
    /// added longest ago (read back from /proc when they act again); counted.
    #[arg(long, default_value_t = 200_000, value_name = "N")]
    pub max_processes: usize,
    /// Memory the tracer's growing structures may use together (process table,
    /// pod cache, tail queues, events waiting for metadata, caches), e.g.
    /// 192MiB or 1G. Each gets a fixed share; what a share cannot hold is
    /// dropped or cut, counted in loss records and metrics, and flagged on the
    /// events it touches. The default fits the DaemonSet's 256 MiB limit.
    #[arg(long, default_value = "192MiB", value_parser = memory_limit, value_name = "SIZE")]
    pub memory_limit: u64,
    /// Kernel ring buffer size in bytes (a power of two). Its pages are mapped
    /// into the tracer (twice, for wrap-around) and count in its RSS.
    #[arg(long, default_value_t = 4 * 1024 * 1024, value_name = "BYTES")]
    pub ring_buffer_size: u32,
    /// How often the ring buffer is drained, in milliseconds. The probes wake the
    /// tracer early only when the ring is an eighth full, so a storm costs one
    /// wake-up per batch; this bounds the delay of a quiet trickle.
    #[arg(long, default_value_t = 10, value_name = "MS")]
    pub ring_poll_interval: u64,
    /// Root of the host filesystem, for /etc/passwd and /etc/group (e.g. /host in a container).
    #[arg(long, default_value = "/", value_name = "PATH")]
    pub host_root: PathBuf,
    /// The host's cgroup v2 mount (default: found in /proc/self/mountinfo; on a
    /// host that mounts none, cgroup v1 only, the tracer mounts it at
    /// /run/tracer/cgroup2). Set it when the host tree is mounted elsewhere,
    /// e.g. in a container.
    #[arg(long, value_name = "PATH")]
    pub cgroup_mount: Option<PathBuf>,
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
    /// Do not watch the cluster's Services and EndpointSlices (which name a
    /// connect's destination: `action.destination.service` and `.pod`). The
    /// watch runs only with --node-name and a Kubernetes client configuration.
    #[arg(long)]
    pub no_service_watch: bool,
    /// Bytes the index of Services and EndpointSlices may hold (e.g. 16MiB);
    /// an object that does not fit is left out, counted in
    /// `tracer_service_index_dropped_total`. Default: its share of --memory-limit.
    #[arg(long, value_parser = memory_limit, value_name = "SIZE")]
    pub service_index_size: Option<u64>,
    /// Longest an event waits for its pod's metadata (or containerd's answer
    /// about its container; also the bound on one containerd lookup, at least
    /// 1 s), in milliseconds.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub kube_wait: u64,
    /// MiB per second of executed files read to compute their SHA-256
    /// (`executor.file.sha256`), with a burst of four seconds' worth; a file
    /// the budget cannot pay for is reported `over_budget`. 0 disables hashing.
    #[arg(long, default_value_t = crate::config::DEFAULT_HASH_BUDGET_MIB, value_name = "MIB")]
    pub hash_budget: f64,
    /// Longest an event waits for its executed file's hash, in milliseconds;
    /// then it goes out with `hash: "pending"`. 0: never wait.
    #[arg(long, default_value_t = 250, value_name = "MS")]
    pub hash_wait: u64,
    /// Longest a connect event waits for its result (the syscall's return, or
    /// the TCP handshake's end), in milliseconds; then it goes out as
    /// `in_progress` (TCP) or `unknown`. 0: never wait.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub connect_wait: u64,
    /// Seconds a deleted pod stays resolvable.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub pod_grace: u64,
    /// Fold repeated connects of one image to one destination (address, port,
    /// protocol) within this many seconds (1 to 3600) into one summary event
    /// (`action.aggregate`: count, first and last time, outcome counts); the
    /// first connect of each window still goes out on its own, at once.
    /// 0: off, every connect is its own event.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub aggregate_connects: u64,
    /// A Kubernetes root to trust besides the kubelet's default places (the
    /// top level of the cgroup v2 tree or below host slices): the cgroup path,
    /// relative to the mount, that holds the QoS tiers and pods, e.g. a kind
    /// node's `/system.slice/docker-<id>.scope/kubelet.slice/kubelet-kubepods.slice`.
    /// Whoever can write below it can name any pod. Repeatable (a list in the
    /// config file).
    #[arg(long = "kubepods-root", value_name = "PATH")]
    pub kubepods_roots: Vec<String>,
    /// An environment variable name that holds a credential (a glob: `*` any
    /// run of characters, `?` one; case is ignored). An exec whose environment
    /// sets one lists its name, never its value, in
    /// `executor.credentials.env`. Added to the built-in list (cloud keys,
    /// tokens, passwords, KUBECONFIG, VAULT_TOKEN, CI tokens: see the README).
    /// Repeatable (a list in the config file).
    #[arg(long = "credential-env", value_name = "GLOB")]
    pub credential_env: Vec<String>,
    /// Name only the --credential-env variables, not the built-in list.
    #[arg(long)]
    pub no_default_credential_env: bool,
    /// A requestor profile, as JSON: `{"name": "deployer", "detect":
    /// "DEPLOYER=1", "fields": {"run": "DEPLOYER_RUN", "actor":
    /// "DEPLOYER_USER"}, "display": "{run} by {actor}", "agents":
    /// ["deployer-agent"]}` (README, "Requestor profiles"). Checked before
    /// the built-in ones; one with a built-in's name replaces it. Repeatable
    /// (`[[requestor_profile]]` tables in the config file).
    #[arg(long = "requestor-profile", value_name = "JSON", value_parser = requestor_profile)]
    pub requestor_profiles: Vec<crate::proc::requestor::ProfileSpec>,
    /// containerd's API socket: plain containerd containers (`ctr run`,
    /// nerdctl) are named from it. Absent socket: not asked. Empty: never asked.
    #[arg(long, default_value = crate::identity::containerd::DEFAULT_SOCKET, value_name = "PATH")]
    pub containerd_socket: PathBuf,
    /// ed25519 private key (PKCS#8 PEM) to sign hash-chain checkpoints with
    /// (`openssl genpkey -algorithm ed25519 -out key.pem`). No checkpoints without it.
    #[arg(long, value_name = "PATH")]
    pub signing_key: Option<PathBuf>,
    /// A signed checkpoint after this many records...
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub checkpoint_records: u64,
    /// ...or this many seconds, whichever comes first.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub checkpoint_interval: u64,
    /// Sealed records each output file keeps while its writes fail (disk
    /// full, I/O error), retried at each flush; past it records are dropped
    /// and declared (a `sink_error` loss record) once writing works again.
    /// Default: the unwritten-records share of --memory-limit, split between
    /// the output files (3.6 MiB each for two at the default limit).
    #[arg(long, value_name = "BYTES")]
    pub output_buffer_size: Option<usize>,
}

impl RunArgs {
    pub fn sink_options(&self) -> Result<SinkOptions<'_>> {
        let signing_key = self
            .signing_key
            .as_deref()
            .map(crate::chain::load_signing_key)
            .transpose()?;
        Ok(SinkOptions {
            output: self.output.as_deref(),
            format: self.format,
            rotate_bytes: self.rotate_size,
            rotate_keep: self.rotate_keep,
            ocsf_output: self.ocsf_output.as_deref(),
            socket: self.socket.as_deref(),
            signing_key,
            checkpoint_records: self.checkpoint_records.max(1),
            checkpoint_every: std::time::Duration::from_secs(self.checkpoint_interval.max(1)),
            retry_buffer_bytes: self
                .output_buffer_size
                .unwrap_or(crate::sink::RETRY_BUFFER_BYTES),
            lineage_ids: self.lineage == crate::event::LineageMode::Ids,
        })
    }

    pub fn config(&self) -> Config {
        Config {
            lineage_depth: self.lineage_depth,
            lineage_argv_max: self.lineage_argv_max,
            lineage: self.lineage,
            emit_lifecycle: self.emit_lifecycle,
            exec_attempts: self.exec_attempts,
            compat_exec_probes: self.compat_exec_probes,
            dns_names: !self.no_dns_names,
            exit_grace_secs: self.exit_grace,
            max_processes: self.max_processes,
            memory_limit: self.memory_limit,
            ring_buffer_bytes: self.ring_buffer_size,
            ring_poll_ms: self.ring_poll_interval.max(1),
            host_root: self.host_root.clone(),
            loss_report_interval_ms: self.loss_interval.max(10),
            trust_domain: self.trust_domain.clone(),
            default_spiffe_id: !self.no_default_spiffe_id,
            registrations_digest: None,
            kube_wait_ms: self.kube_wait,
            hash_budget_mib: self.hash_budget,
            hash_wait_ms: self.hash_wait,
            connect_wait_ms: self.connect_wait,
            pod_grace_secs: self.pod_grace,
            aggregate_connects_s: self.aggregate_connects,
            usage_interval_s: self.usage_interval,
            kubepods_roots: self.kubepods_roots.clone(),
            credential_env: {
                let defaults = crate::proc::env::DEFAULT_CREDENTIAL_ENV.iter();
                let defaults = defaults.filter(|_| !self.no_default_credential_env);
                defaults
                    .map(|p| (*p).to_owned())
                    .chain(self.credential_env.iter().cloned())
                    .collect()
            },
            requestor_profiles: self.requestor_profiles.clone(),
            containerd_socket: Some(self.containerd_socket.clone())
                .filter(|p| !p.as_os_str().is_empty()),
            registrations: self.registrations.clone(),
            node_name: self.node_name.clone().filter(|n| !n.is_empty()),
            service_watch: !self.no_service_watch,
            service_index_bytes: self.service_index_size,
            metrics_addr: self.metrics_addr,
            socket: match (&self.socket, self.no_socket) {
                (_, true) => None,
                (Some(p), false) => Some(p.clone()).filter(|p| !p.as_os_str().is_empty()),
                (None, false) => Some(PathBuf::from(crate::sink::socket::DEFAULT_PATH)),
            },
            socket_explicit: self.socket.is_some(),
            tail_queue: self.tail_queue,
            tail_queue_bytes: self.tail_queue_bytes,
            tail_total_bytes: self.tail_queue_bytes.saturating_mul(
                crate::sink::socket::TOTAL_QUEUE_BYTES / crate::sink::socket::CLIENT_QUEUE_BYTES,
            ),
            tail_clients: self.tail_clients,
            cgroup_mount: self.cgroup_mount.clone(),
            output: self.output.clone(),
            btf_path: self.btf.clone(),
        }
    }
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRACER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = match parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(ParseError::Clap(e)) => e.exit(),
        Err(ParseError::Config(e)) => {
            eprintln!("tracer: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::CheckConfig(args) => check_config(args),
        Command::CheckKernel(args) => crate::kernel_check::run(args),
        Command::Tail(args) => runtime().and_then(|rt| rt.block_on(crate::tail::run(args))),
        Command::Verify(args) => match crate::verify::run(args) {
            Ok(crate::verify::Verdict::Intact) => Ok(()),
            Ok(v) => return ExitCode::from(v as u8),
            Err(e) => Err(e),
        },
        Command::Report(args) => crate::report::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracer: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub enum ParseError {
    Clap(clap::Error),
    Config(anyhow::Error),
}

/// Parse the command line, with the config file's settings placed before the
/// command line's own flags (which therefore win).
pub fn parse(mut argv: Vec<OsString>) -> Result<Cli, ParseError> {
    let sub = argv.get(1).and_then(|s| s.to_str()).unwrap_or_default();
    if (sub == "run" || sub == "check-config")
        && let Some(path) = config_path(&argv)
    {
        let file_args = config_file_args(&path).map_err(ParseError::Config)?;
        argv.splice(2..2, file_args);
    }
    let matches = Cli::command()
        .try_get_matches_from(argv)
        .map_err(ParseError::Clap)?;
    Cli::from_arg_matches(&matches).map_err(ParseError::Clap)
}

/// `--config PATH` or `--config=PATH` among the arguments.
fn config_path(argv: &[OsString]) -> Option<PathBuf> {
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let a = a.to_str().unwrap_or_default();
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    None
}

/// The config file as command-line flags. Keys must be `tracer run` flags;
/// an unknown key or a value of the wrong type is an error naming the key.
pub fn config_file_args(path: &std::path::Path) -> Result<Vec<OsString>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    config_text_args(&text, path)
}

/// [`config_file_args`] on text already read (`path` names it in messages).
pub fn config_text_args(text: &str, path: &std::path::Path) -> Result<Vec<OsString>> {
    let table: toml::Table =
        toml::from_str(text).with_context(|| format!("config file {}", path.display()))?;
    let cmd = Cli::command();
    let run = cmd
        .find_subcommand("run")
        .context("internal: no run subcommand")?;
    let mut out = Vec::new();
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        let Some(arg) = run
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()))
        else {
            bail!("config file {}: unknown key `{key}`", path.display());
        };
        if flag == "config" {
            bail!(
                "config file {}: key `config` cannot nest config files",
                path.display()
            );
        }
        let takes_value = arg.get_action().takes_values();
        let bad =
            |what: &str| anyhow::anyhow!("config file {}: key `{key}`: {what}", path.display());
        match value {
            toml::Value::Boolean(b) if !takes_value => {
                if *b {
                    out.push(OsString::from(format!("--{flag}")));
                }
            }
            toml::Value::Boolean(_) => return Err(bad("expected a value, not true/false")),
            _ if !takes_value => return Err(bad("expected true or false")),
            toml::Value::String(s) => out.push(OsString::from(format!("--{flag}={s}"))),
            toml::Value::Integer(i) => out.push(OsString::from(format!("--{flag}={i}"))),
            toml::Value::Float(f) => out.push(OsString::from(format!("--{flag}={f}"))),
            // A list: the flag once per element (repeatable flags only).
            toml::Value::Array(items) if matches!(arg.get_action(), clap::ArgAction::Append) => {
                for item in items {
                    let s = match item {
                        toml::Value::String(s) => s.clone(),
                        // `[[requestor_profile]]`: the flag takes the table as JSON.
                        toml::Value::Table(t) if flag == "requestor-profile" => {
                            serde_json::to_string(t).map_err(|e| bad(&e.to_string()))?
                        }
                        _ => return Err(bad("expected a list of strings")),
                    };
                    out.push(OsString::from(format!("--{flag}={s}")));
                }
            }
            _ => return Err(bad("expected a string, number or boolean")),
        }
    }
    Ok(out)
}

fn requestor_profile(s: &str) -> Result<crate::proc::requestor::ProfileSpec, String> {
    serde_json::from_str(s).map_err(|e| format!("not a requestor profile: {e}"))
}

fn memory_limit(s: &str) -> Result<u64, crate::budget::BudgetError> {
    crate::budget::parse_size(s)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Everything `run` checks before it touches the kernel.
fn prepare(args: &RunArgs) -> Result<(Config, Registry)> {
    let mut config = args.config();
    config.validate()?;
    // An invalid registration entry stops start-up with a message naming it.
    let registry = match &config.registrations {
        Some(path) => {
            let text = std::fs::read(path)
                .with_context(|| format!("reading registrations {}", path.display()))?;
            config.registrations_digest = Some(sha256_hex(&text));
            Registry::load(&config.trust_domain, config.default_spiffe_id, path)?
        }
        None => Registry::new(&config.trust_domain, config.default_spiffe_id)?,
    };
    if args.format == Format::Ocsf && args.output.is_none() && args.ocsf_output.is_some() {
        bail!(
            "--ocsf-output is an extra OCSF file: use it with --format json, or only --format ocsf"
        );
    }
    Ok((config, registry))
}

fn run(args: RunArgs) -> Result<()> {
    let (config, registry) = prepare(&args)?;
    // Before anything opens files: sinks, probes and the metrics port all take descriptors.
    match crate::host::raise_nofile_limit() {
        Ok((before, after)) => tracing::info!(before, after, "open-file limit (RLIMIT_NOFILE)"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
    // Files first: a wrong path fails before anything touches the kernel.
    let mut options = args.sink_options()?;
    if args.output_buffer_size.is_none() {
        let files = [&args.output, &args.ocsf_output]
            .into_iter()
            .flatten()
            .count();
        options.retry_buffer_bytes = config.budget()?.sink_retry / files.max(1);
    }
    let sinks = Sinks::open(&options)?;
    runtime()?.block_on(crate::run::run(config, sinks, registry))
}

fn check_config(args: RunArgs) -> Result<()> {
    let (config, registry) = prepare(&args)?;
    args.sink_options()?;
    for path in [&args.output, &args.ocsf_output].into_iter().flatten() {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            // Not fatal for deployment manifests checked off-host; say it.
            eprintln!(
                "tracer: note: directory {} does not exist here",
                dir.display()
            );
        }
    }
    print_stdout(&format!(
        "config OK: {} registration entries, trust domain {}, config digest {}\n",
        registry.len(),
        registry.trust_domain(),
        config.digest()
    ))
}

/// Write a command's output. A reader that went away (`| head`) ends the
/// output quietly, as it does for other Unix tools, instead of a panic.
pub(crate) fn print_stdout(text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}
