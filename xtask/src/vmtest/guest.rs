//! One guest run: the script the guest runs, its environment, booting it (or
//! running on the host), waiting with a timeout, and reading back its status.
use std::{
    env, fs,
    io::ErrorKind,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{Dirs, HOST, Options, Outcome, V1_SUFFIX};

/// Variables that reach the guest command without `--env`.
const PASS_ENV: &[&str] = &["RUST_LOG", "RUST_BACKTRACE"];
const PASS_ENV_PREFIX: &str = "TRACER_";

/// Runs inside the guest (and for `--kernel host`, on this machine), by bash, as
/// `guest.sh OUTDIR`. OUTDIR/env.sh (written by xtask) exports VMTEST_ROOT,
/// VMTEST_CMD and the passed-through variables.
pub(super) const GUEST_SCRIPT: &str = r#"#!/bin/bash
# Guest side of `cargo xtask vmtest`, written by xtask (xtask/src/vmtest/guest.rs): edit it there.
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

pub(super) fn catch_signals() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    }
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

/// The first line of a guest console that says its CPUs stopped being run:
/// the kernel's soft-lockup watchdog or RCU stall detector.
fn emulator_stall(console: &Path) -> Option<String> {
    let text = fs::read_to_string(console).ok()?;
    text.lines()
        .find(|l| {
            l.contains("watchdog: BUG: soft lockup")
                || l.contains("rcu_preempt detected stalls")
                || l.contains("rcu_sched detected stalls")
                || l.contains("self-detected stall on CPU")
        })
        .map(|l| l.trim().to_owned())
}

pub(super) fn run_kernel(
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
    let mut last_console_check = Instant::now();
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
        // A guest kernel that reports a soft lockup or an RCU stall has been
        // starved by the emulator (TCG), not hung by a test: stop waiting for
        // it now, without a status, so the caller boots it again.
        if last_console_check.elapsed() > Duration::from_secs(5) {
            last_console_check = Instant::now();
            if let Some(what) = emulator_stall(&vng_log) {
                eprintln!("xtask: vmtest {key}: the guest kernel reports {what:?}; killing it");
                // SAFETY: kill(2) on our child's own process group.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
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
