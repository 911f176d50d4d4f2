//! `cargo xtask vmtest`: the kernel matrix. Each kernel is booted in QEMU with
//! virtme-ng and runs [`MATRIX_CMD`] (`tracer check-kernel`, then the live test
//! suites), or any `--guest-cmd`; a pass/fail table and the verifier
//! instruction counts per program and kernel are printed at the end.
//!
//! Everything is set up here, idempotently, on a plain Debian 12 machine:
//! - Debian packages: QEMU (TCG: this machine's CPU has no VMX, so no KVM), `file`
//!   and `kmod` (vng reads the image's version and runs depmod), `busybox-static`
//!   (vng's initramfs, needed because the cloud kernels build virtio and virtiofs
//!   as modules);
//! - virtme-ng from PyPI in a venv under `target/vmtest/venv`;
//! - a virtiofsd shim in `target/vmtest/bin`: vng speaks the command line of the
//!   Rust virtiofsd, Debian 12 only has QEMU's C daemon (`/usr/lib/qemu/virtiofsd`);
//!   the `-cloud-amd64` kernels have no 9p, so the host root has to go over
//!   virtio-fs. vng looks for `virtiofsd` on PATH (after its own guest tools
//!   directory), so the shim's directory goes first on PATH for vng;
//! - kernels: Debian's `linux-image-*-cloud-amd64` packages (5.10 from bullseye,
//!   6.1 and 6.12 from bookworm), fetched with `apt-get download` through a private
//!   apt state under `target/vmtest/apt` (the host's apt configuration and lists
//!   are left alone) and unpacked with `dpkg-deb -x` into
//!   `target/vmtest/kernels/<key>` (never installed).
//!
//! vng shares the host's root file system read-only (tmpfs overlays on /etc,
//! /var, ...); the repository root and $HOME get overlays of their own, so the
//! guest may write there without touching the host, and the guest script gives
//! the guest an empty TMPDIR. Without udevd on the host vng
//! loses the guest's console and always exits 255, so the guest script
//! (`target/vmtest/guest.sh`, from [`GUEST_SCRIPT`]) writes the command's stdout,
//! stderr and exit status into a `--rwdir` (`target/vmtest/out/<key>`), and that
//! status is the result.
use std::{
    env, fs,
    io::ErrorKind,
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result, bail};

use crate::{output, run};

pub const DEFAULT_KERNELS: &[&str] = &["5.10", "6.1", "6.12"];
/// The matrix: every kernel above plus the host's own.
/// `-v1`: the same kernel with only cgroup v1 hierarchies mounted.
pub const MATRIX_KERNELS: &[&str] = &["5.10", "5.10-v1", "6.1", "6.12", "host"];
/// Live suites the matrix runs in each guest: exec, connect, lineage, login
/// (events), every path a connect or failed exec can take (evasion), one
/// image one identity (image_identity), workload identity and its forgeries
/// (identity, forgery; skipped on `-v1` guests), containers found in v1
/// hierarchies (cgroup_v1) and real podman and containerd containers (runtimes).
pub const MATRIX_TESTS: &[&str] = &[
    "events",
    "evasion",
    "image_identity",
    "identity",
    "forgery",
    "cgroup_v1",
    "runtimes",
];
/// The matrix's guest command: a load check of every program with its verifier
/// statistics (kept in the output directory for the table), then the live tests.
pub const MATRIX_CMD: &str = r#"set -u
if ! "$TRACER_BIN" check-kernel >"$VMTEST_OUT/check-kernel.json"; then
  echo "vmtest: tracer check-kernel failed on $(uname -r)"
  exit 10
fi
cat "$VMTEST_OUT/check-kernel.json"
rc=0
for t in $VMTEST_TESTS; do
  if [ "${VMTEST_CGROUP:-}" = v1 ] && { [ "${t##*/identity-}" != "$t" ] || [ "${t##*/forgery-}" != "$t" ]; }; then
    # Builds kubepods trees in the v2 hierarchy, which a v1-only host lacks.
    echo "vmtest: == ${t##*/}: skipped on a cgroup-v1-only guest"
    continue
  fi
  echo "vmtest: == ${t##*/}"
  # A suite that hangs fails alone, and the guest still reports a status.
  # shellcheck disable=SC2086
  timeout -k 10 "${VMTEST_SUITE_TIMEOUT:-300}" "$t" --test-threads=2 $VMTEST_TEST_ARGS
  st=$?
  if [ "$st" -ne 0 ]; then
    rc=1
    if [ "$st" -eq 124 ] || [ "$st" -eq 137 ]; then
      echo "vmtest: ${t##*/}: no result after ${VMTEST_SUITE_TIMEOUT:-300} s, killed"
    fi
  fi
done
exit $rc
"#;
/// Seconds a guest may take in the matrix (boot, the load check, every suite)
/// before QEMU is killed. A matrix guest takes about two minutes under TCG
/// (5.10 with the runtimes suite is the slowest), and a hung suite is killed
/// in the guest after `VMTEST_SUITE_TIMEOUT` (300 s), so this only bounds a
/// guest that hangs as a whole: five of them must stay well inside CI's time.
pub const MATRIX_GUEST_TIMEOUT: u64 = 900;

/// Options for the matrix: [`MATRIX_CMD`] with the live suites `tests` built
/// here, on `kernels` (default [`MATRIX_KERNELS`]).
pub fn matrix(
    root: &Path,
    kernels: Vec<String>,
    tests: &[String],
    test_args: &[String],
    mut env: Vec<String>,
) -> Result<Options> {
    let bins = test_binaries(root, tests)?;
    env.push(format!("VMTEST_TESTS={}", bins.join(" ")));
    env.push(format!("VMTEST_TEST_ARGS={}", test_args.join(" ")));
    env.push(format!(
        "TRACER_BIN={}",
        root.join("target/release/tracer").display()
    ));
    Ok(Options {
        kernels,
        matrix: true,
        guest_cmd: MATRIX_CMD.to_string(),
        env,
        timeout: Duration::from_secs(MATRIX_GUEST_TIMEOUT),
        cpus: 2,
        memory: "2G".to_string(),
    })
}

/// Build the live test suites `names` and return their executables.
pub fn test_binaries(root: &Path, names: &[String]) -> Result<Vec<String>> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).args([
        "test",
        "--release",
        "-p",
        "tracer-tests",
        "--no-run",
        "--message-format=json",
    ]);
    for n in names {
        cmd.args(["--test", n]);
    }
    eprintln!("xtask: {cmd:?}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("building the live tests failed: {}", out.status);
    }
    let mut bins = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_test = v["reason"] == "compiler-artifact"
            && v["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "test"));
        if let (true, Some(exe)) = (is_test, v["executable"].as_str()) {
            bins.push(exe.to_string());
        }
    }
    if bins.len() != names.len() {
        bail!(
            "expected {} test executables, cargo named {bins:?}",
            names.len()
        );
    }
    Ok(bins)
}
/// The kernel key that boots nothing: the command runs on this machine's kernel.
const HOST: &str = "host";
/// Boots per kernel when guests die without a status (see `vmtest`).
const MAX_BOOTS: u32 = 3;

const VNG_VERSION: &str = "1.42";
/// Debian packages (and the file each one provides, to check before installing).
const APT_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("file", "/usr/bin/file"),
    ("kmod", "/usr/sbin/depmod"),
    ("busybox-static", "/bin/busybox"),
];
const C_VIRTIOFSD: &str = "/usr/lib/qemu/virtiofsd";
/// Suites the kernels come from: 5.10 is bullseye's, 6.1 bookworm's, and the
/// `6.12.*+deb12` kernels are bookworm's too (bookworm-security, then point
/// releases; bookworm-backports only has `+bpo` builds, which are not used).
const SUITES: &[&str] = &[
    "bullseye",
    "bullseye-security",
    "bookworm",
    "bookworm-security",
];
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
const DEFAULT_SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Re-read the package lists when they are older than this and a kernel is missing.
const APT_LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Variables that reach the guest command without `--env`.
const PASS_ENV: &[&str] = &["RUST_LOG", "RUST_BACKTRACE"];
const PASS_ENV_PREFIX: &str = "TRACER_";

/// Stands in for the Rust virtiofsd that vng expects: vng starts it as
/// `virtiofsd --syslog --no-announce-submounts [--posix-acl] --socket-path S
/// --shared-dir D --sandbox none --cache C &` and waits (about 3 s) for `S.pid`.
/// QEMU 7.2's C daemon wants `--socket-path=S -o source=D -o cache=...`, runs as
/// root, has no read-only mode (so `--help` does not offer `--readonly` and vng
/// does not ask for it; the guest mounts the root read-only anyway) and does not
/// write `S.pid`: this writes it once the socket is there. `--rlimit-nofile=0`
/// because this sandbox may not raise RLIMIT_NOFILE.
const VIRTIOFSD_SHIM: &str = r#"#!/bin/bash
# virtiofsd shim written by `cargo xtask vmtest` (xtask/src/vmtest.rs): edit it there.
set -u
# A real (Rust) virtiofsd speaks vng's language: use it when the machine has one.
for real in /usr/libexec/virtiofsd /usr/lib/virtiofsd/virtiofsd; do
  [ -x "$real" ] && exec "$real" "$@"
done
daemon=${VMTEST_C_VIRTIOFSD:-/usr/lib/qemu/virtiofsd}
sock= dir= cache=auto opts=()
while [ $# -gt 0 ]; do
  case $1 in
    --version|-V) echo "virtiofsd shim (cargo xtask vmtest) for $daemon"; exit 0 ;;
    --help|-h) echo "usage: virtiofsd --socket-path PATH --shared-dir DIR [--cache auto|always|never] [--posix-acl]"; exit 0 ;;
    --socket-path) sock=$2; shift ;;
    --socket-path=*) sock=${1#*=} ;;
    --shared-dir) dir=$2; shift ;;
    --shared-dir=*) dir=${1#*=} ;;
    --cache) cache=$2; shift ;;
    --cache=*) cache=${1#*=} ;;
    --sandbox|--log-level|--thread-pool-size|--socket-group|--fd|--rlimit-nofile) shift ;;
    --posix-acl) opts+=(-o posix_acl) ;;
    *) ;; # --syslog, --no-announce-submounts, --sandbox=..., ...
  esac
  shift
done
if [ -z "$sock" ] || [ -z "$dir" ]; then
  echo "virtiofsd shim: need --socket-path and --shared-dir" >&2
  exit 2
fi
case $cache in never) cache=none ;; metadata) cache=auto ;; esac
log=${VMTEST_VIRTIOFSD_LOG:-/dev/null}
rm -f "$sock" "$sock.pid"
"$daemon" -f --socket-path="$sock" -o source="$dir" -o cache="$cache" \
  -o sandbox=chroot --rlimit-nofile=0 "${opts[@]}" >>"$log" 2>&1 &
pid=$!
for _ in $(seq 250); do
  if [ -S "$sock" ]; then
    echo "$pid" >"$sock.pid"
    wait "$pid"
    exit $?
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "virtiofsd shim: $daemon exited early (log: $log)" >&2
    exit 1
  fi
  sleep 0.01
done
echo "virtiofsd shim: no socket at $sock after 2.5 s (log: $log)" >&2
kill "$pid" 2>/dev/null
exit 1
"#;

/// Runs inside the guest (and for `--kernel host`, on this machine), by bash, as
/// `guest.sh OUTDIR`. OUTDIR/env.sh (written by xtask) exports VMTEST_ROOT,
/// VMTEST_CMD and the passed-through variables.
const GUEST_SCRIPT: &str = r#"#!/bin/bash
# Guest side of `cargo xtask vmtest`, written by xtask (xtask/src/vmtest.rs): edit it there.
# Usage: guest.sh OUTDIR. Leaves OUTDIR/uname, OUTDIR/stdout, OUTDIR/stderr and
# OUTDIR/status (the command's exit status): vng's own console and exit status
# (always 255 without udevd) say nothing about the command.
out=$1
export VMTEST_OUT=$out
rm -f "$out/uname" "$out/stdout" "$out/stderr" "$out/status" "$out/check-kernel.json"
uname -r >"$out/uname"
# shellcheck source=/dev/null
. "$out/env.sh"
note() { echo "vmtest: $*" >>"$out/stderr"; }
mounted() { # DIR TYPE
  awk -v d="$1" -v t="$2" '$2 == d && $3 == t { f = 1 } END { exit !f }' /proc/self/mounts
}
ensure() { # TYPE DIR
  mounted "$2" "$1" && return 0
  mkdir -p "$2" 2>/dev/null
  if mount -t "$1" "$1" "$2" 2>>"$out/stderr"; then
    note "mounted $1 at $2"
  else
    note "could not mount $1 at $2"
    return 1
  fi
}
if [ -z "${VMTEST_HOST:-}" ]; then
  # The guest has no systemd: mount what the tracer needs when vng has not.
  if [ "${VMTEST_CGROUP:-}" = v1 ]; then
    # A cgroup-v1-only host (Amazon Linux 2, RHEL 8, Ubuntu 20.04): no cgroup2
    # mounted anywhere, controllers in v1 hierarchies under a tmpfs. The tracer
    # has to mount its own cgroup2 for the connect hooks.
    awk '$3 == "cgroup2" { print $2 }' /proc/self/mounts | sort -r |
      while read -r m; do umount "$m" || note "could not unmount cgroup2 at $m"; done
    mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup || note "could not mount a tmpfs at /sys/fs/cgroup"
    # Every enabled controller in a hierarchy of its own, co-mounted as systemd
    # does (cpu,cpuacct and net_cls,net_prio): runc wants them all (it fails
    # with "mountpoint for devices not found" without devices, and it joins
    # cpuset, freezer, ...).
    v1=$(awk 'NR > 1 && $4 == 1 { print $1 }' /proc/cgroups |
      sed -e '/^cpuacct$/d' -e '/^net_prio$/d' -e 's/^cpu$/cpu,cpuacct/' -e 's/^net_cls$/net_cls,net_prio/')
    for c in $v1; do
      mkdir -p "/sys/fs/cgroup/$c"
      mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" 2>>"$out/stderr" || {
        note "could not mount v1 $c"
        continue
      }
      # The per-controller names runc and the tools also look for.
      case $c in *,*) for n in ${c//,/ }; do ln -s "$c" "/sys/fs/cgroup/$n"; done ;; esac
    done
    note "mounted v1 hierarchies:" $v1
  # cgroup v2: any v2 mount will do (pure v2 at /sys/fs/cgroup, or hybrid's
  # /sys/fs/cgroup/unified under a v1 tmpfs).
  elif ! awk '$3 == "cgroup2" { f = 1 } END { exit !f }' /proc/self/mounts; then
    if mountpoint -q /sys/fs/cgroup; then
      ensure cgroup2 /sys/fs/cgroup/unified
    else
      ensure cgroup2 /sys/fs/cgroup
    fi
  fi
  # Container stores for the runtimes suite: empty tmpfs rather than vng's
  # overlay of the host's /var (the host's images and containers are not the
  # guest's, and podman's overlay driver needs an upper dir overlayfs accepts).
  # /run, where the runtimes keep their state, is a tmpfs already.
  for d in /var/lib/containers /var/lib/containerd; do
    mkdir -p "$d" && mount -t tmpfs -o mode=700 tmpfs "$d" ||
      note "could not mount a tmpfs at $d"
  done
  ensure tracefs /sys/kernel/tracing
  ensure debugfs /sys/kernel/debug || true
  ensure bpf /sys/fs/bpf
  # vng's /etc is an overlay on which useradd's backup link and rename fail
  # ("failure while writing changes to /etc/shadow"); tests create users, so
  # give the guest a plain tmpfs copy.
  if mkdir -p /run/vmtest-etc && cp -a /etc/. /run/vmtest-etc/ &&
    mount --bind /run/vmtest-etc /etc; then
    :
  else
    note "could not give /etc a writable copy"
  fi
  # vng's /tmp is a writable overlay over the host's /tmp, so the guest would see
  # (and append to) the host's leftovers: give the guest an empty temporary
  # directory of its own. Not a tmpfs over /tmp itself: the repository and the
  # output directory may live under /tmp (CI clones there) and would vanish.
  if mkdir -p /run/vmtest-tmp && mount -t tmpfs -o mode=1777 tmpfs /run/vmtest-tmp; then
    export TMPDIR=/run/vmtest-tmp
  else
    note "could not mount a tmpfs at /run/vmtest-tmp; TMPDIR stays ${TMPDIR:-/tmp}"
  fi
fi
if ! cd "$VMTEST_ROOT"; then
  note "no $VMTEST_ROOT here"
  echo 127 >"$out/status"
  exit 127
fi
bash -c "$VMTEST_CMD" </dev/null >"$out/stdout" 2>>"$out/stderr"
status=$?
echo "$status" >"$out/status"
sync
exit "$status"
"#;

/// Set by SIGINT/SIGTERM: QEMU runs in a process group of its own (so that a
/// timeout can kill it with its virtiofsd), which a Ctrl-C at the terminal does
/// not reach; the wait loop kills it instead.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn catch_signals() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    }
}

pub struct Options {
    /// Kernel keys: "5.10", "6.1", "6.12", ... or "host"; empty means the defaults.
    pub kernels: Vec<String>,
    /// Running [`MATRIX_CMD`]: collect each kernel's verifier statistics.
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

pub fn vmtest(root: &Path, opts: &Options) -> Result<()> {
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
        // quarter of 6.12 boots under TCG, cause not found yet) is booted
        // again, up to MAX_BOOTS in all; a timeout or any failing test fails.
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

    println!();
    println!(
        "{:<8} {:<32} {:<22} {:>7} {:>8}",
        "kernel", "uname -r (guest)", "result", "boot s", "total s"
    );
    for o in &outcomes {
        let result = match (o.status, o.timed_out) {
            (Some(0), _) if o.retried => "pass (after a lost guest)".to_string(),
            (Some(0), _) => "pass".to_string(),
            (Some(rc), _) => format!("FAIL (exit {rc})"),
            (None, true) => "FAIL (timeout)".to_string(),
            (None, false) => "FAIL (no status)".to_string(),
        };
        let boot = o
            .boot
            .map(|b| format!("{:.1}", b.as_secs_f64()))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<8} {:<32} {:<22} {:>7} {:>8.1}",
            o.kernel,
            if o.uname.is_empty() { "?" } else { &o.uname },
            result,
            boot,
            o.total.as_secs_f64()
        );
    }
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

/// Verifier instructions per program per kernel, from each guest's
/// `tracer check-kernel` report: printed, and kept as Markdown in
/// `target/vmtest/verifier.md` for BENCHMARKS.md.
fn verifier_table(dirs: &Dirs, outcomes: &[Outcome]) -> Result<()> {
    let mut columns = Vec::new();
    let mut programs: Vec<String> = Vec::new();
    for o in outcomes {
        let path = dirs.out(&o.kernel).join("check-kernel.json");
        let report: serde_json::Value = match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?,
            Err(_) => serde_json::Value::Null,
        };
        let mut counts = std::collections::HashMap::new();
        for p in report["programs"].as_array().into_iter().flatten() {
            let name = p["program"].as_str().unwrap_or("?").to_string();
            let n = p["verified_insns"]
                .as_u64()
                .map_or_else(|| "n/a".to_string(), |n| n.to_string());
            if !programs.contains(&name) {
                programs.push(name.clone());
            }
            counts.insert(name, n);
        }
        for d in report["degraded"].as_array().into_iter().flatten() {
            let name = d["program"].as_str().unwrap_or("?").to_string();
            if !programs.contains(&name) {
                programs.push(name.clone());
            }
            counts.insert(name, "not loaded".to_string());
        }
        let mut uname = report["kernel"].as_str().unwrap_or(&o.uname).to_string();
        if o.kernel.ends_with(V1_SUFFIX) {
            uname.push_str(" (cgroup v1 only)");
        }
        columns.push((uname, counts));
    }
    let mut md = String::from("| program |");
    for (uname, _) in &columns {
        md.push_str(&format!(" {uname} |"));
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(columns.len()));
    md.push('\n');
    for p in &programs {
        md.push_str(&format!("| `{p}` |"));
        for (_, counts) in &columns {
            md.push_str(&format!(" {} |", counts.get(p).map_or("-", String::as_str)));
        }
        md.push('\n');
    }
    println!(
        "\nverifier instructions per program (limit 1,000,000; n/a: kernel before 5.16 does not report it):\n{md}"
    );
    let path = dirs.base.join("verifier.md");
    fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))
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

fn dpkg_installed(pkg: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|s| s.contains("install ok installed"))
}

fn apt_get(args: &[&str]) -> Result<()> {
    run(Command::new("apt-get")
        .args(["-o", "DPkg::Lock::Timeout=600"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn setup_apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .filter(|(pkg, file)| !Path::new(file).exists() || !dpkg_installed(pkg))
        .map(|(pkg, _)| *pkg)
        .collect();
    if !missing.is_empty() {
        let mut args = vec!["install", "-y", "-q"];
        args.extend(&missing);
        if apt_get(&args).is_err() {
            apt_get(&["update", "-q"])?;
            apt_get(&args).context("installing QEMU and the tools virtme-ng needs")?;
        }
    }
    if !Path::new(C_VIRTIOFSD).exists() {
        bail!("{C_VIRTIOFSD} is missing (QEMU 7.2's virtiofsd, from qemu-system-common)");
    }
    Ok(())
}

/// virtme-ng from PyPI in `target/vmtest/venv`.
fn setup_venv(dirs: &Dirs) -> Result<()> {
    let venv = dirs.venv();
    let vng = venv.join("bin/vng");
    if let Some(v) = output(Command::new(&vng).arg("--version"))
        && v.split_whitespace().any(|w| w == VNG_VERSION)
    {
        return Ok(());
    }
    let python = venv.join("bin/python3");
    if !python.exists() {
        let make = || run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
        if make().is_err() {
            // Debian's own python3 needs python3-venv for ensurepip.
            let _ = fs::remove_dir_all(&venv);
            apt_get(&["install", "-y", "-q", "python3-venv"])?;
            make().with_context(|| format!("creating a venv in {}", venv.display()))?;
        }
    }
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("virtme-ng=={VNG_VERSION}"),
    ]))
    .context("installing virtme-ng from PyPI")?;
    if output(Command::new(&vng).arg("--version")).is_none() {
        bail!("{} --version fails after installing it", vng.display());
    }
    Ok(())
}

/// A private apt state: its own sources list, lists and cache under
/// `target/vmtest/apt`, on the mirror this machine's sources already use.
struct AptState {
    opts: Vec<String>,
    lists: PathBuf,
    stamp: PathBuf,
    fresh: bool,
}

impl AptState {
    fn new(dir: &Path) -> Result<Self> {
        let lists = dir.join("lists");
        let cache = dir.join("cache");
        for d in [lists.join("partial"), cache.join("archives/partial")] {
            fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        let sources = dir.join("sources.list");
        let stamp = dir.join("updated");
        let text = private_sources();
        if fs::read_to_string(&sources).ok().as_deref() != Some(text.as_str()) {
            fs::write(&sources, &text).with_context(|| format!("writing {}", sources.display()))?;
            let _ = fs::remove_file(&stamp);
        }
        let mut opts: Vec<String> = vec![
            format!("Dir::Etc::SourceList={}", sources.display()),
            "Dir::Etc::SourceParts=/dev/null".into(),
            format!("Dir::State::Lists={}", lists.display()),
            format!("Dir::Cache={}", cache.display()),
            // The _apt user cannot write under target/.
            "APT::Sandbox::User=root".into(),
            "Acquire::Languages=none".into(),
        ];
        // appstream's DEP-11 metadata (from the host's apt.conf.d) is not wanted here.
        for t in [
            "DEP-11",
            "DEP-11-icons-small",
            "DEP-11-icons",
            "DEP-11-icons-hidpi",
        ] {
            opts.push(format!(
                "Acquire::IndexTargets::deb::{t}::DefaultEnabled=false"
            ));
        }
        Ok(Self {
            opts: opts.into_iter().flat_map(|o| ["-o".into(), o]).collect(),
            lists,
            stamp,
            fresh: false,
        })
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.args(&self.opts).env("DEBIAN_FRONTEND", "noninteractive");
        c
    }

    /// `apt-get update` for the private state, unless done within a day (or
    /// already in this run, with `force`).
    fn update(&mut self, force: bool) -> Result<()> {
        if self.fresh {
            return Ok(());
        }
        let recent = fs::metadata(&self.stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < APT_LISTS_MAX_AGE);
        let has_lists = fs::read_dir(&self.lists)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
            })
            .unwrap_or(false);
        if recent && has_lists && !force {
            return Ok(());
        }
        run(self.cmd("apt-get").args(["update", "-q"]))
            .context("apt-get update (private state for the test kernels)")?;
        fs::write(&self.stamp, "").with_context(|| format!("writing {}", self.stamp.display()))?;
        self.fresh = true;
        Ok(())
    }

    /// The newest `linux-image-<key>.*-cloud-amd64` (signed) package name.
    fn newest_image(&self, key: &str) -> Result<Option<String>> {
        let (major, minor) = parse_key(key).context("kernel key")?;
        let pattern = format!(r"^linux-image-{major}\.{minor}\.[0-9]+[-+][0-9a-z]+-cloud-amd64$");
        let mut c = self.cmd("apt-cache");
        c.args(["search", "--names-only", &pattern]);
        let listed = output(&mut c).with_context(|| format!("{c:?} failed"))?;
        let prefix = format!("linux-image-{major}.{minor}.");
        Ok(listed
            .lines()
            .filter_map(|l| l.split(" - ").next())
            .map(str::trim)
            .filter(|n| is_cloud_image(n, &prefix))
            .max_by_key(|n| version_numbers(n))
            .map(str::to_string))
    }
}

/// `linux-image-5.10.0-46-cloud-amd64` or `linux-image-6.12.117+deb12-cloud-amd64`
/// (not `-dbg`, `-unsigned`, `+bpo`).
fn is_cloud_image(name: &str, prefix: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(prefix)
        .and_then(|r| r.strip_suffix("-cloud-amd64"))
    else {
        return false;
    };
    let (patch, abi) = match rest.split_once('-') {
        Some(p) => p,
        None => match rest.split_once("+deb") {
            Some(p) => p,
            None => return false,
        },
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(patch) && digits(abi)
}

/// Every run of digits in `s`, in order: the sort key for "newest".
fn version_numbers(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The main and security mirrors (and keyring) of this machine's Debian sources,
/// for suites it may not list itself (bullseye).
fn private_sources() -> String {
    let entries = host_sources();
    let pick = |security: bool| {
        entries
            .iter()
            .find(|e| e.suite.ends_with("-security") == security && e.uri.contains("debian"))
    };
    let main = pick(false);
    let security = pick(true);
    let main_uri = main.map_or(DEFAULT_MIRROR.to_string(), |e| e.uri.clone());
    let security_uri =
        security
            .map(|e| e.uri.clone())
            .unwrap_or_else(|| match main_uri.strip_suffix("/debian") {
                Some(base) => format!("{base}/debian-security"),
                None => DEFAULT_SECURITY_MIRROR.to_string(),
            });
    let keyring = main.and_then(|e| e.signed_by.clone()).or_else(|| {
        Path::new(DEBIAN_KEYRING)
            .exists()
            .then(|| DEBIAN_KEYRING.into())
    });
    let mut opts = "arch=amd64".to_string();
    if let Some(k) = keyring {
        opts.push_str(&format!(" signed-by={k}"));
    }
    let mut text =
        String::from("# Written by `cargo xtask vmtest`: where the test kernels come from.\n");
    for suite in SUITES {
        let uri = if suite.ends_with("-security") {
            &security_uri
        } else {
            &main_uri
        };
        text.push_str(&format!("deb [{opts}] {uri} {suite} main\n"));
    }
    text
}

struct SourceEntry {
    uri: String,
    suite: String,
    /// A keyring path (inline keys are not carried over).
    signed_by: Option<String>,
}

/// `deb` entries of /etc/apt/sources.list and sources.list.d (one-line and deb822).
fn host_sources() -> Vec<SourceEntry> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(d) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = d.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    let mut entries = Vec::new();
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        match f.extension().and_then(|e| e.to_str()) {
            Some("sources") => entries.extend(parse_deb822(&text)),
            Some("list") => entries.extend(parse_one_line(&text)),
            _ => {}
        }
    }
    entries
}

fn parse_one_line(text: &str) -> Vec<SourceEntry> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let mut rest = rest.trim();
        let mut signed_by = None;
        if let Some(r) = rest.strip_prefix('[') {
            let Some((options, after)) = r.split_once(']') else {
                continue;
            };
            for o in options.split_whitespace() {
                if let Some(v) = o.strip_prefix("signed-by=")
                    && v.starts_with('/')
                {
                    signed_by = Some(v.to_string());
                }
            }
            rest = after.trim();
        }
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            entries.push(SourceEntry {
                uri: uri.trim_end_matches('/').to_string(),
                suite: suite.to_string(),
                signed_by,
            });
        }
    }
    entries
}

fn parse_deb822(text: &str) -> Vec<SourceEntry> {
    let mut entries = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                // Continuation (e.g. an inline key): not needed here.
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        if !get("types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"))
            || get("enabled").is_some_and(|e| e.eq_ignore_ascii_case("no"))
        {
            continue;
        }
        let signed_by = get("signed-by")
            .filter(|v| v.starts_with('/'))
            .map(str::to_string);
        for uri in get("uris").unwrap_or("").split_whitespace() {
            for suite in get("suites").unwrap_or("").split_whitespace() {
                entries.push(SourceEntry {
                    uri: uri.trim_end_matches('/').to_string(),
                    suite: suite.to_string(),
                    signed_by: signed_by.clone(),
                });
            }
        }
    }
    entries
}

/// `target/vmtest/kernels/<key>/boot/vmlinuz-*`, downloaded and unpacked when missing.
fn kernel_image(dirs: &Dirs, key: &str, apt: &mut Option<AptState>) -> Result<PathBuf> {
    let key = image_key(key);
    let dir = dirs.kernel(key);
    if let Some(image) = find_vmlinuz(&dir) {
        return Ok(image);
    }
    if apt.is_none() {
        *apt = Some(AptState::new(&dirs.apt())?);
    }
    let apt = apt.as_mut().context("apt state")?;
    apt.update(false)?;
    let name = match apt.newest_image(key)? {
        Some(n) => n,
        None => {
            apt.update(true)?;
            apt.newest_image(key)?.with_context(|| {
                format!(
                    "no linux-image-{key}.*-cloud-amd64 package in {} ({})",
                    SUITES.join(", "),
                    dirs.apt().join("sources.list").display()
                )
            })?
        }
    };
    let dl = dirs.base.join("kernels/.download");
    let _ = fs::remove_dir_all(&dl);
    fs::create_dir_all(&dl).with_context(|| format!("creating {}", dl.display()))?;
    let download = |apt: &AptState| {
        run(apt
            .cmd("apt-get")
            .current_dir(&dl)
            .args(["download", "-q", &name]))
    };
    if download(apt).is_err() {
        // Stale lists name a file the mirror no longer has.
        apt.update(true)?;
        download(apt).with_context(|| format!("downloading {name}"))?;
    }
    let deb = fs::read_dir(&dl)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {name} left no .deb in {}", dl.display()))?;
    let tmp = dirs.base.join(format!("kernels/.{key}.unpack"));
    let _ = fs::remove_dir_all(&tmp);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
    if find_vmlinuz(&tmp).is_none() {
        bail!("{} has no boot/vmlinuz-*", deb.display());
    }
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir)
        .with_context(|| format!("moving {} to {}", tmp.display(), dir.display()))?;
    let _ = fs::remove_dir_all(&dl);
    find_vmlinuz(&dir).with_context(|| format!("no vmlinuz in {}", dir.display()))
}

fn find_vmlinuz(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir.join("boot"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
}

/// Single-quoted for bash.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// OUTDIR/env.sh: what the guest script needs, and the variables passed through.
fn env_script(root: &Path, key: &str, opts: &Options) -> Result<String> {
    let mut vars: Vec<(String, String)> = vec![
        ("VMTEST_ROOT".into(), root.display().to_string()),
        ("VMTEST_CMD".into(), opts.guest_cmd.clone()),
        ("VMTEST_KERNEL".into(), key.into()),
    ];
    if key.ends_with(V1_SUFFIX) {
        vars.push(("VMTEST_CGROUP".into(), "v1".into()));
    }
    if key == HOST {
        vars.push(("VMTEST_HOST".into(), "1".into()));
    }
    // The host's PATH first (cargo, pyenv, ...), then the usual system directories.
    if let Ok(path) = env::var("PATH") {
        vars.push((
            "PATH".into(),
            format!("{path}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        ));
    }
    for (k, v) in env::vars() {
        if k.starts_with(PASS_ENV_PREFIX) || PASS_ENV.contains(&k.as_str()) {
            vars.push((k, v));
        }
    }
    for e in &opts.env {
        let (k, v) = match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (
                e.clone(),
                env::var(e).with_context(|| format!("--env {e}: not set here"))?,
            ),
        };
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("--env {e}: not a variable name");
        }
        vars.push((k, v));
    }
    Ok(vars
        .iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
        .collect())
}

fn run_kernel(
    root: &Path,
    dirs: &Dirs,
    key: &str,
    image: Option<&Path>,
    opts: &Options,
) -> Result<Outcome> {
    let out = dirs.out(key);
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for f in ["uname", "stdout", "stderr", "status"] {
        let _ = fs::remove_file(out.join(f));
    }
    fs::write(out.join("env.sh"), env_script(root, key, opts)?)
        .with_context(|| format!("writing {}", out.join("env.sh").display()))?;
    let vng_log = dirs.log(key, "vng");
    if let Some(dir) = vng_log.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let guest = format!(
        "bash {} {}",
        shell_quote(&dirs.guest_script().display().to_string()),
        shell_quote(&out.display().to_string())
    );

    let mut cmd;
    match image {
        None => {
            eprintln!("xtask: vmtest {key}: running on this machine's kernel");
            cmd = Command::new("bash");
            cmd.arg(dirs.guest_script()).arg(&out);
        }
        Some(image) => {
            eprintln!(
                "xtask: vmtest {key}: booting {} (QEMU TCG; log {})",
                image.display(),
                vng_log.display()
            );
            let path = env::var_os("PATH").unwrap_or_default();
            let mut paths = vec![dirs.bin(), dirs.venv().join("bin")];
            paths.extend(env::split_paths(&path));
            cmd = Command::new(dirs.venv().join("bin/vng"));
            cmd.env("PATH", env::join_paths(paths)?)
                .env("VMTEST_VIRTIOFSD_LOG", dirs.log(key, "virtiofsd"))
                .arg("--disable-kvm")
                .arg("--run")
                .arg(image)
                .args(["--cpus", &opts.cpus.to_string()])
                .args(["--memory", &opts.memory])
                // The kernel console into the vng log (otherwise /dev/null), at
                // loglevel 4 (errors and worse: oopses, panics, RCU stalls, hung
                // tasks), so a guest that dies says why at the end of the log.
                .arg("--verbose")
                .args(["--append", "loglevel=4"])
                // Writable (in the guest only) over the read-only host root.
                .arg("--overlay-rwdir")
                .arg(root);
            if let Some(home) = env::var_os("HOME").map(PathBuf::from)
                && home.is_dir()
                && home != Path::new("/")
                && !root.starts_with(&home)
            {
                cmd.arg("--overlay-rwdir").arg(home);
            }
            cmd.arg("--rwdir").arg(&out).args(["--exec", &guest]);
        }
    }
    let log =
        fs::File::create(&vng_log).with_context(|| format!("creating {}", vng_log.display()))?;
    cmd.current_dir(root)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a timeout kills QEMU and virtiofsd with it.
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let pgid = child.id() as libc::pid_t;
    let mut boot = None;
    let mut timed_out = false;
    let exit = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if boot.is_none() && out.join("uname").exists() {
            boot = Some(start.elapsed());
            eprintln!(
                "xtask: vmtest {key}: guest command started after {:.1} s",
                start.elapsed().as_secs_f64()
            );
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            // SAFETY: kill(2) on our child's own process group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            bail!("vmtest {key}: interrupted");
        }
        if start.elapsed() > opts.timeout {
            eprintln!(
                "xtask: vmtest {key}: no exit after {} s, killing it",
                opts.timeout.as_secs()
            );
            // SAFETY: kill(2) on our child's own process group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            timed_out = true;
            break None;
        }
        thread::sleep(Duration::from_millis(100));
    };
    // Whatever the group left behind (a virtiofsd that outlived QEMU).
    // SAFETY: as above; ESRCH when the group is gone is fine.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let total = start.elapsed();

    let read = |f: &str| match fs::read_to_string(out.join(f)) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => Some(format!("(reading {f}: {e})")),
    };
    let uname = read("uname").unwrap_or_default().trim().to_string();
    let status = read("status").and_then(|s| s.trim().parse::<i32>().ok());
    for f in ["stdout", "stderr"] {
        if let Some(text) = read(f).filter(|t| !t.is_empty()) {
            println!("---- {key} {f} ----");
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        }
    }
    if status.is_none() {
        let launcher = if image.is_some() { "vng" } else { "bash" };
        eprintln!(
            "xtask: vmtest {key}: the guest left no exit status ({launcher} {}); end of {}:",
            exit.map_or("killed".to_string(), |s| s.to_string()),
            vng_log.display()
        );
        let text = fs::read_to_string(&vng_log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for l in &lines[lines.len().saturating_sub(40)..] {
            eprintln!("  {l}");
        }
    }
    eprintln!(
        "xtask: vmtest {key}: {} in {:.1} s",
        match status {
            Some(0) => "pass".to_string(),
            Some(rc) => format!("exit status {rc}"),
            None => "no status".to_string(),
        },
        total.as_secs_f64()
    );
    Ok(Outcome {
        kernel: key.to_string(),
        retried: false,
        uname,
        status,
        timed_out,
        boot,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_image_names() {
        assert!(is_cloud_image(
            "linux-image-5.10.0-46-cloud-amd64",
            "linux-image-5.10."
        ));
        assert!(is_cloud_image(
            "linux-image-6.12.117+deb12-cloud-amd64",
            "linux-image-6.12."
        ));
        assert!(!is_cloud_image(
            "linux-image-6.12.117+deb12-cloud-amd64",
            "linux-image-6.1."
        ));
        assert!(!is_cloud_image(
            "linux-image-6.1.0-57-cloud-amd64-unsigned",
            "linux-image-6.1."
        ));
        assert!(!is_cloud_image(
            "linux-image-6.12.12+bpo-cloud-amd64",
            "linux-image-6.12."
        ));
        let newest = [
            "linux-image-6.12.95+deb12-cloud-amd64",
            "linux-image-6.12.117+deb12-cloud-amd64",
        ]
        .into_iter()
        .max_by_key(|n| version_numbers(n));
        assert_eq!(newest, Some("linux-image-6.12.117+deb12-cloud-amd64"));
    }

    #[test]
    fn sources() {
        let one = parse_one_line(
            "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian/ bookworm main\n# x\n",
        );
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].uri, "http://m.example/debian");
        assert_eq!(one[0].signed_by.as_deref(), Some("/k.gpg"));
        let d = parse_deb822(
            "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
             Types: deb\nURIs: http://m.example/debian-security\nSuites: bookworm-security\n",
        );
        assert_eq!(d.len(), 3);
        assert_eq!(d[2].suite, "bookworm-security");
    }
}
