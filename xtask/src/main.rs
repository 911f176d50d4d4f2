//! Project tasks. `cargo xtask setup` makes a fresh machine able to build and test;
//! `run` and `test` do that set-up first, so the README's two commands are all a new
//! machine needs. Every step checks before it acts, so repeated runs are quick.
use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

mod bench;
mod setup;
mod vmtest;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use setup::{setup, setup_cargo_fuzz};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need: rust-src (nightly), bpf-linker,
    /// bpftool, the container runtimes the runtime tests drive (podman, runc,
    /// containerd, busybox-static), and the Python schema validators the output
    /// tests use.
    Setup,
    /// Set up, build in release mode, and run `tracer run` with the given arguments.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Set up, then check formatting and run clippy: on the host crates, and on
    /// the probes for the BPF target (the lint step of `test`).
    Lint,
    /// Set up, check formatting and lints, build, and run every test (as root):
    /// unit and live tests here, a fuzz smoke, then the kernel matrix (vmtest).
    Test {
        /// Skip `cargo fmt --check` and clippy.
        #[arg(long)]
        no_lint: bool,
        /// Skip the kernel matrix (`cargo xtask vmtest`), which otherwise runs last.
        #[arg(long)]
        no_vmtest: bool,
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Build, then measure the tracer's cost (as root): exec storm, connect storm
    /// and mixed churn, without and with the tracer (and auditd, bpftrace when
    /// installed), interleaved: throughput ratio, loss, CPU, RSS, latency.
    Bench {
        /// One round of 3 seconds per workload, no peers, no large-table step
        /// (the whole run takes under a minute).
        #[arg(long)]
        quick: bool,
        /// Rounds per workload (each round runs without, then with each tracer).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Seconds each workload runs per measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Run the peers (auditd, bpftrace) even with --quick.
        #[arg(long)]
        peers: bool,
        /// Live processes to hold while measuring RSS with a large process table
        /// (default 100000; 0 skips; --quick skips).
        #[arg(long)]
        table_procs: Option<u32>,
        /// Only the large-table RSS step (no workloads, no report): prints the
        /// tracer's RSS before and after taking in --table-procs processes.
        #[arg(long)]
        table_only: bool,
        /// Only `tracer report` over a generated file of --report-mib MiB of
        /// real lines (timed, with its peak RSS); the file is deleted after.
        #[arg(long)]
        report_only: bool,
        #[arg(long, default_value_t = 1024)]
        report_mib: u64,
        /// Only the real workloads (cargo build, pip install, git; those of
        /// tests/real_workloads.rs): wall time with and without the tracer
        /// over --rounds rounds, and the events and bytes it writes for each
        /// with PATH searches folded and not. Writes its own section of
        /// BENCHMARKS.md, which full bench runs keep.
        #[arg(long)]
        real_only: bool,
    },
    /// Mixed churn with the tracer for N minutes: RSS over time, loss, event rate
    /// (target/bench/soak.json).
    Soak {
        #[arg(long, default_value_t = 10)]
        minutes: u64,
    },
    /// Run a command under other kernels, each booted in QEMU (TCG) with virtme-ng:
    /// Debian's 5.10, 6.1 and 6.12 cloud kernels (downloaded, never installed), and
    /// `host` for this machine's own. Sets up QEMU, virtme-ng and the kernels
    /// itself; prints each guest's output and a pass/fail table.
    Vmtest {
        /// Kernels: 5.10, 6.1, 6.12 (any Debian bullseye/bookworm cloud kernel
        /// series) or `host`; repeat or comma-separate (default: 5.10,6.1,6.12).
        #[arg(long = "kernel", value_delimiter = ',')]
        kernels: Vec<String>,
        /// Run by bash in the repository root in each guest instead of the matrix
        /// (`tracer check-kernel` and the live tests); its exit status is the result.
        #[arg(long)]
        guest_cmd: Option<String>,
        /// Live test suites (tests/tests/NAME.rs) the matrix runs in each guest.
        #[arg(long = "tests", value_delimiter = ',', default_values_t = vmtest::MATRIX_TESTS.iter().map(|s| s.to_string()))]
        tests: Vec<String>,
        /// Extra arguments for each test binary (a name filter, --skip ...).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        test_args: Vec<String>,
        /// A variable for the guest command, NAME=VALUE or NAME (value from here);
        /// TRACER_*, RUST_LOG and RUST_BACKTRACE pass through anyway.
        #[arg(long = "env")]
        env: Vec<String>,
        /// Seconds each kernel gets before QEMU is killed.
        #[arg(long, default_value_t = vmtest::MATRIX_GUEST_TIMEOUT)]
        timeout: u64,
        /// Guest CPUs.
        #[arg(long, default_value_t = 2)]
        cpus: u32,
        /// Guest memory (QEMU's -m syntax).
        #[arg(long, default_value = "2G")]
        memory: String,
        /// With --guest-cmd: set up (`cargo xtask setup`) and build the tracer in
        /// release mode first (the matrix always does).
        #[arg(long)]
        build: bool,
    },
    /// Run every cargo-fuzz target for a while (installs cargo-fuzz when missing).
    /// `cargo xtask test` runs it briefly as a smoke test.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only these targets (default: all).
        targets: Vec<String>,
    },
}

const FUZZ_SMOKE_SECONDS: u64 = 5;
const FUZZ_TARGETS: &[&str] = &[
    "cgroup_path",
    "proc_parsers",
    "config",
    "registrations",
    "decoder",
    "escape",
    "dns",
];
const NIGHTLY: &str = "nightly";

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root()?;
    // Tools installed by `cargo install` must be visible to nested cargo runs
    // (aya-build looks for bpf-linker on PATH).
    let path = env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![cargo_home().join("bin")];
    paths.extend(env::split_paths(&path));
    // SAFETY: single-threaded at this point; no other thread reads the environment.
    unsafe { env::set_var("PATH", env::join_paths(paths)?) };

    match cli.task {
        Task::Setup => setup(),
        Task::Lint => {
            setup()?;
            lint(&root)
        }
        Task::Run { args } => {
            setup()?;
            build(&root)?;
            let bin = root.join("target/release/tracer");
            let status = Command::new(&bin)
                .arg("run")
                .args(args)
                .status()
                .with_context(|| format!("starting {}", bin.display()))?;
            if !status.success() {
                bail!("tracer exited with {status}");
            }
            Ok(())
        }
        Task::Bench {
            quick,
            rounds,
            seconds,
            peers,
            table_procs,
            table_only,
            report_only,
            report_mib,
            real_only,
        } => {
            if real_only {
                return bench::real_only(&root, rounds.max(1));
            }
            if report_only {
                return bench::report_only(&root, report_mib);
            }
            if table_only {
                return bench::table_only(&root, table_procs.unwrap_or(100_000));
            }
            let (rounds, seconds) = if quick { (1, 3) } else { (rounds, seconds) };
            bench::run(
                &root,
                &bench::Options {
                    rounds: rounds.max(1),
                    seconds: seconds.max(1),
                    peers: peers || !quick,
                    table_procs: table_procs.unwrap_or(if quick { 0 } else { 100_000 }),
                },
            )
        }
        Task::Soak { minutes } => bench::soak(&root, minutes),
        Task::Vmtest {
            kernels,
            guest_cmd,
            tests,
            test_args,
            env,
            timeout,
            cpus,
            memory,
            build: build_first,
        } => {
            let matrix = guest_cmd.is_none();
            if build_first || matrix {
                setup()?;
                build(&root)?;
            }
            let opts = match guest_cmd {
                Some(guest_cmd) => vmtest::Options {
                    kernels,
                    matrix: false,
                    guest_cmd,
                    env,
                    timeout: std::time::Duration::from_secs(timeout.max(1)),
                    cpus: cpus.max(1),
                    memory,
                },
                None => vmtest::Options {
                    timeout: std::time::Duration::from_secs(timeout.max(1)),
                    cpus: cpus.max(1),
                    memory,
                    ..vmtest::matrix(&root, kernels, &tests, &test_args, env)?
                },
            };
            vmtest::vmtest(&root, &opts)
        }
        Task::Fuzz { seconds, targets } => {
            setup()?;
            fuzz(&root, seconds, &targets)
        }
        Task::Test {
            no_lint,
            no_vmtest,
            args,
        } => {
            setup()?;
            if !no_lint {
                lint(&root)?;
            }
            build(&root)?;
            let mut cmd = Command::new("cargo");
            cmd.current_dir(&root)
                .args([
                    "test",
                    "--release",
                    "--workspace",
                    "--exclude",
                    "tracer-ebpf",
                ])
                .env("TRACER_BIN", root.join("target/release/tracer"));
            // Tests that cannot run here append a line (`SKIPPED: <test>: <why>`)
            // to this file; cargo's captured output would hide them.
            let skip_log = root.join("target/skipped-tests.txt");
            let _ = std::fs::remove_file(&skip_log);
            cmd.env("TRACER_SKIP_LOG", &skip_log);
            let filtered = !args.is_empty();
            if filtered {
                cmd.arg("--").args(args);
            }
            let result = run(&mut cmd);
            let skipped = std::fs::read_to_string(&skip_log).unwrap_or_default();
            if !skipped.is_empty() {
                eprint!("{skipped}");
                eprintln!(
                    "xtask: {} test(s) SKIPPED (listed above; TRACER_NO_SKIP=1 makes them fail)",
                    skipped.lines().count()
                );
            }
            result?;
            // Hostile-input smoke: seconds per target, enough to catch a parser
            // that panics on the first odd input; longer runs are `cargo xtask fuzz`.
            if !filtered {
                fuzz(&root, FUZZ_SMOKE_SECONDS, &[])?;
            }
            // The kernel matrix: every program loads, and the live tests pass, on
            // 5.10, 6.1, 6.12 and this machine's kernel.
            if !filtered && !no_vmtest {
                let tests: Vec<String> =
                    vmtest::MATRIX_TESTS.iter().map(|s| s.to_string()).collect();
                vmtest::vmtest(
                    &root,
                    &vmtest::matrix(&root, Vec::new(), &tests, &[], Vec::new())?,
                )?;
            }
            Ok(())
        }
    }
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

fn cargo_home() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    run(Command::new("cargo").current_dir(root).args(args))
}

/// `cargo fmt --check`, clippy on the host crates, then clippy on the probes.
fn lint(root: &Path) -> Result<()> {
    cargo(root, &["fmt", "--all", "--check"])?;
    cargo(
        root,
        &[
            "clippy",
            "--release",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    clippy_probes(root)
}

/// clippy on `tracer-ebpf` for the BPF target, the way aya-build compiles it for
/// tracer-user's build script: nightly, `-Z build-std=core`, the
/// `bpf_target_arch` cfg. The host clippy never sees the probes (the crate is
/// not a default member, and its code is only compiled for BPF). Its own target
/// directory keeps the host build's cache intact.
fn clippy_probes(root: &Path) -> Result<()> {
    let target = if cfg!(target_endian = "big") {
        "bpfeb-unknown-none"
    } else {
        "bpfel-unknown-none"
    };
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root)
        .args([
            "run",
            NIGHTLY,
            "cargo",
            "clippy",
            "--package",
            "tracer-ebpf",
        ])
        // Not --all-targets: there is no test harness for the BPF target.
        .args(["--lib", "--bins", "--release", "--target", target])
        .args(["-Z", "build-std=core", "--target-dir"])
        .arg(root.join("target/bpf-clippy"))
        .args(["--", "-D", "warnings"])
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!("--cfg=bpf_target_arch=\"{}\"", env::consts::ARCH),
        )
        // As aya-build does: the outer cargo's rustc is the stable one.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    run(&mut cmd)
}

fn build(root: &Path) -> Result<()> {
    cargo(root, &["build", "--release"])
}

/// Each target for `seconds` from its seed corpus (fuzz/corpus/<target>, kept
/// in git); a crash fails the run and leaves the input under fuzz/artifacts.
fn fuzz(root: &Path, seconds: u64, only: &[String]) -> Result<()> {
    setup_cargo_fuzz()?;
    let dir = root.join("fuzz");
    let targets: Vec<&str> = if only.is_empty() {
        FUZZ_TARGETS.to_vec()
    } else {
        only.iter().map(String::as_str).collect()
    };
    for t in &targets {
        if !FUZZ_TARGETS.contains(t) {
            bail!("no fuzz target {t}; targets: {}", FUZZ_TARGETS.join(", "));
        }
    }
    let workdir = root.join("target/fuzz-corpus");
    for t in targets {
        // Run on a scratch copy: new inputs the fuzzer finds do not dirty the tree.
        let corpus = workdir.join(t);
        std::fs::create_dir_all(&corpus)?;
        let seeds = dir.join("corpus").join(t);
        if seeds.is_dir() {
            for e in std::fs::read_dir(&seeds)?.flatten() {
                std::fs::copy(e.path(), corpus.join(e.file_name()))?;
            }
        }
        run(Command::new("cargo")
            .current_dir(&dir)
            .args([&format!("+{NIGHTLY}"), "fuzz", "run", "--release", t])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=4096",
                "-print_final_stats=1",
            ]))?;
    }
    Ok(())
}
