//! `cargo xtask vmtest`: the kernel matrix, each kernel booted in QEMU with
//! virtme-ng. Orchestration only: host setup, kernels, the guest run, the
//! matrix command and the results table are submodules.
mod guest;
mod kernels;
mod matrix;
mod report;
mod setup;

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use guest::{GUEST_SCRIPT, catch_signals, run_kernel};
use kernels::{AptState, kernel_image};
use report::{outcomes_table, verifier_table};
use setup::{VIRTIOFSD_SHIM, setup_apt_packages, setup_venv};

pub(crate) use matrix::{MATRIX_GUEST_TIMEOUT, MATRIX_TESTS, matrix};

pub(crate) const DEFAULT_KERNELS: &[&str] = &["5.10", "6.1", "6.12"];
/// The matrix: every kernel above plus the host's own.
/// `-v1`: the same kernel with only cgroup v1 hierarchies mounted.
pub(crate) const MATRIX_KERNELS: &[&str] = &["5.10", "5.10-v1", "6.1", "6.12", "host"];
/// The kernel key that boots nothing: the command runs on this machine's kernel.
const HOST: &str = "host";
/// Boots per kernel when guests die without a status (see `vmtest`): the
/// 6.12 guest lost two boots in a row to the emulator's int3 oops in one CI
/// run (2026-12-01, in `runtimes`, as runc started), so three was thin.
const MAX_BOOTS: u32 = 4;

pub(crate) struct Options {
    /// Kernel keys: "5.10", "6.1", "6.12", ... or "host"; empty means the defaults.
    pub kernels: Vec<String>,
    /// Running [`matrix::MATRIX_CMD`]: collect each kernel's verifier statistics.
    pub matrix: bool,
    pub guest_cmd: String,
    /// NAME=VALUE, or NAME to take the value from this environment.
    pub env: Vec<String>,
    pub timeout: Duration,
    pub cpus: u32,
    pub memory: String,
}

struct Outcome {
    kernel: String,
    /// Booted a second time after the first guest died without a status.
    retried: bool,
    uname: String,
    /// The guest command's exit status, when the guest reported one.
    status: Option<i32>,
    timed_out: bool,
    /// From launch to the guest script's first write.
    boot: Option<Duration>,
    total: Duration,
}

/// Everything under `target/vmtest`.
struct Dirs {
    base: PathBuf,
}

impl Dirs {
    fn venv(&self) -> PathBuf {
        self.base.join("venv")
    }
    fn bin(&self) -> PathBuf {
        self.base.join("bin")
    }
    fn guest_script(&self) -> PathBuf {
        self.base.join("guest.sh")
    }
    fn apt(&self) -> PathBuf {
        self.base.join("apt")
    }
    fn kernel(&self, key: &str) -> PathBuf {
        self.base.join("kernels").join(key)
    }
    fn out(&self, key: &str) -> PathBuf {
        self.base.join("out").join(key)
    }
    fn log(&self, key: &str, what: &str) -> PathBuf {
        self.base.join("log").join(format!("{key}-{what}.log"))
    }
}

/// `cargo xtask vmtest`: the kernel matrix. Each kernel is booted in QEMU with
/// virtme-ng and runs [`matrix::MATRIX_CMD`] (`tracer check-kernel`, then the
/// live test suites), or any `--guest-cmd`; a pass/fail table and the verifier
/// instruction counts per program and kernel are printed at the end.
///
/// Everything is set up here, idempotently, on a plain Debian 12 machine:
/// - Debian packages: QEMU (TCG: this machine's CPU has no VMX, so no KVM), `file`
///   and `kmod` (vng reads the image's version and runs depmod), `busybox-static`
///   (vng's initramfs, needed because the cloud kernels build virtio and virtiofs
///   as modules);
/// - virtme-ng from PyPI in a venv under `target/vmtest/venv`;
/// - a virtiofsd shim in `target/vmtest/bin`: vng speaks the command line of the
///   Rust virtiofsd, Debian 12 only has QEMU's C daemon (`/usr/lib/qemu/virtiofsd`);
///   the `-cloud-amd64` kernels have no 9p, so the host root has to go over
///   virtio-fs. vng looks for `virtiofsd` on PATH (after its own guest tools
///   directory), so the shim's directory goes first on PATH for vng;
/// - kernels: Debian's `linux-image-*-cloud-amd64` packages (5.10 from bullseye,
///   6.1 and 6.12 from bookworm), fetched with `apt-get download` through a private
///   apt state under `target/vmtest/apt` (the host's apt configuration and lists
///   are left alone) and unpacked with `dpkg-deb -x` into
///   `target/vmtest/kernels/<key>` (never installed).
///
/// vng shares the host's root file system read-only (tmpfs overlays on /etc,
/// /var, ...); the repository root and $HOME get overlays of their own, so the
/// guest may write there without touching the host, and the guest script gives
/// the guest an empty TMPDIR. Without udevd on the host vng
/// loses the guest's console and always exits 255, so the guest script
/// (`target/vmtest/guest.sh`, from [`GUEST_SCRIPT`]) writes the command's stdout,
/// stderr and exit status into a `--rwdir` (`target/vmtest/out/<key>`), and that
/// status is the result.
pub(crate) fn vmtest(root: &Path, opts: &Options) -> Result<()> {
    let kernels: Vec<String> = if opts.kernels.is_empty() {
        let default = if opts.matrix {
            MATRIX_KERNELS
        } else {
            DEFAULT_KERNELS
        };
        default.iter().map(|k| k.to_string()).collect()
    } else {
        opts.kernels.clone()
    };
    for k in &kernels {
        if k != HOST && parse_key(k).is_none() {
            bail!("--kernel {k}: want a version like 5.10, 6.1, 6.12, or `host`");
        }
    }
    let dirs = Dirs {
        base: root.join("target/vmtest"),
    };
    let needs_vm = kernels.iter().any(|k| k != HOST);
    if needs_vm {
        setup_apt_packages()?;
        setup_venv(&dirs)?;
        write_file(&dirs.bin().join("virtiofsd"), VIRTIOFSD_SHIM, 0o755)?;
    }
    write_file(&dirs.guest_script(), GUEST_SCRIPT, 0o755)?;
    if opts.guest_cmd.contains("target/release/tracer")
        && !root.join("target/release/tracer").exists()
    {
        eprintln!(
            "xtask: warning: target/release/tracer does not exist (build it, or pass --build)"
        );
    }

    // Fetch every kernel first, so a download failure stops the run before any boot.
    let mut apt: Option<AptState> = None;
    let mut images = Vec::new();
    for k in &kernels {
        let image = if k == HOST {
            None
        } else {
            Some(kernel_image(&dirs, k, &mut apt)?)
        };
        images.push(image);
    }

    catch_signals();
    let mut outcomes = Vec::new();
    for (k, image) in kernels.iter().zip(&images) {
        let mut o = run_kernel(root, &dirs, k, image.as_deref(), opts)?;
        // A guest that vanished without writing a status (no timeout, no test
        // failure: QEMU's emulated machine went away mid-run, seen in about a
        // quarter of 6.12 boots under TCG: the console shows an int3 oops in
        // `syscall_exit_to_user_mode_prepare` right after the tracer's
        // `perf_event_open` attaches a syscall tracepoint, i.e. the kernel's
        // live code patching going wrong under the emulator), or whose
        // kernel reported a soft lockup or RCU stall (its CPUs starved by the
        // emulator: seen once on 6.1 in containerd), is booted again, up to
        // MAX_BOOTS in all; a timeout or any failing test fails.
        let mut boots = 1;
        while o.status.is_none() && !o.timed_out && image.is_some() && boots < MAX_BOOTS {
            // Keep the lost guest's console (the next boot rewrites the log).
            let lost = dirs.log(k, &format!("vng-lost{boots}"));
            let _ = fs::rename(dirs.log(k, "vng"), &lost);
            eprintln!(
                "xtask: vmtest {k}: the guest died without a status (its console: {}); booting it again",
                lost.display()
            );
            o = run_kernel(root, &dirs, k, image.as_deref(), opts)?;
            boots += 1;
            o.retried = true;
        }
        outcomes.push(o);
    }

    outcomes_table(&outcomes);
    if opts.matrix {
        verifier_table(&dirs, &outcomes)?;
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.status != Some(0))
        .map(|o| o.kernel.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("vmtest failed on: {}", failed.join(", "));
    }
    Ok(())
}

/// "6.12" -> (6, 12); "5.10-v1" -> (5, 10).
fn parse_key(key: &str) -> Option<(u32, u32)> {
    let (a, b) = image_key(key).split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The kernel a key boots: "5.10-v1" is 5.10 with only cgroup v1 mounted.
fn image_key(key: &str) -> &str {
    key.strip_suffix(V1_SUFFIX).unwrap_or(key)
}

const V1_SUFFIX: &str = "-v1";

/// Writes `path` unless it already holds exactly `text`; sets its mode either way.
fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}
