//! Host setup, idempotent on a plain Debian 12 machine: QEMU and the tools
//! virtme-ng needs, virtme-ng in a venv, and a virtiofsd shim for vng.
use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, Result, bail};

use super::Dirs;
use crate::{output, run};

const VNG_VERSION: &str = "1.42";
/// Debian packages (and the file each one provides, to check before installing).
const APT_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("file", "/usr/bin/file"),
    ("kmod", "/usr/sbin/depmod"),
    ("busybox-static", "/bin/busybox"),
];
const C_VIRTIOFSD: &str = "/usr/lib/qemu/virtiofsd";

/// Stands in for the Rust virtiofsd that vng expects: vng starts it as
/// `virtiofsd --syslog --no-announce-submounts [--posix-acl] --socket-path S
/// --shared-dir D --sandbox none --cache C &` and waits (about 3 s) for `S.pid`.
/// QEMU 7.2's C daemon wants `--socket-path=S -o source=D -o cache=...`, runs as
/// root, has no read-only mode (so `--help` does not offer `--readonly` and vng
/// does not ask for it; the guest mounts the root read-only anyway) and does not
/// write `S.pid`: this writes it once the socket is there. `--rlimit-nofile=0`
/// because this sandbox may not raise RLIMIT_NOFILE.
pub(super) const VIRTIOFSD_SHIM: &str = r#"#!/bin/bash
# virtiofsd shim written by `cargo xtask vmtest` (xtask/src/vmtest/setup.rs): edit it there.
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

pub(super) fn setup_apt_packages() -> Result<()> {
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
pub(super) fn setup_venv(dirs: &Dirs) -> Result<()> {
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
