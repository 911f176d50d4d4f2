//! Checks run before anything is loaded, so a host that cannot run the tracer gets
//! one clear sentence instead of an errno from deep inside the bpf syscall.
use std::path::{Path, PathBuf};

/// Capabilities `tracer run` needs, with why.
pub(crate) const REQUIRED_CAPS: &[(u32, &str, &str)] = &[
    (39, "CAP_BPF", "load BPF programs and maps"),
    (
        38,
        "CAP_PERFMON",
        "attach tracepoints and read kernel memory from probes",
    ),
    (
        12,
        "CAP_NET_ADMIN",
        "load and attach the cgroup connect hooks",
    ),
    (
        19,
        "CAP_SYS_PTRACE",
        "read /proc/<pid>/exe and cwd of every process",
    ),
    (
        2,
        "CAP_DAC_READ_SEARCH",
        "read /proc of processes owned by other users",
    ),
];
/// Only needed when tracefs, or cgroup2, is not mounted yet.
pub(crate) const CAP_SYS_ADMIN: u32 = 21;

/// Where the tracer mounts cgroup2 itself on hosts that mount none (cgroup v1
/// only: Amazon Linux 2, RHEL 8, Ubuntu 20.04 with the legacy layout).
pub(crate) const PRIVATE_CGROUP2: &str = "/run/tracer/cgroup2";

/// Oldest kernel the probes are written for: BPF ring buffer (5.8) and
/// `bpf_get_current_pid_tgid` in cgroup sock_addr programs.
pub(crate) const MIN_KERNEL: (u32, u32) = (5, 8);

#[derive(Debug, thiserror::Error)]
pub(crate) enum PreflightError {
    #[error(
        "missing capabilities: {missing}. Run as root, or grant them (e.g. `setcap cap_bpf,cap_perfmon,cap_net_admin,cap_sys_ptrace,cap_dac_read_search+ep tracer`)"
    )]
    MissingCaps { missing: String },
    #[error(
        "kernel BTF not found at {0}: the kernel must be built with CONFIG_DEBUG_INFO_BTF=y (struct offsets are read from it)"
    )]
    NoBtf(PathBuf),
    #[error("kernel {found} is not supported: need Linux {}.{} or newer", MIN_KERNEL.0, MIN_KERNEL.1)]
    OldKernel { found: String },
    #[error("cannot read the kernel release: {0}")]
    KernelRelease(String),
    #[error(
        "tracefs is not mounted at /sys/kernel/tracing and could not be mounted ({reason}); mount it with `mount -t tracefs tracefs /sys/kernel/tracing`"
    )]
    Tracefs { reason: String },
    #[error(
        "no cgroup2 file system is mounted and none could be mounted at {PRIVATE_CGROUP2} ({reason}). The connect hooks attach to the cgroup v2 root, which every kernel has even when only cgroup v1 hierarchies are mounted: mount it with `mkdir -p {PRIVATE_CGROUP2} && mount -t cgroup2 cgroup2 {PRIVATE_CGROUP2}`, or name a cgroup2 mount with --cgroup-mount"
    )]
    Cgroup2 { reason: String },
    #[error("reading capabilities from /proc/self/status")]
    Status(#[source] std::io::Error),
}

/// Parse `CapEff:` from /proc/self/status content.
pub(crate) fn effective_caps(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Names of the required capabilities missing from `caps`.
pub(crate) fn missing_caps(caps: u64) -> Vec<&'static str> {
    REQUIRED_CAPS
        .iter()
        .filter(|(bit, _, _)| caps & (1u64 << bit) == 0)
        .map(|(_, name, _)| *name)
        .collect()
}

pub(crate) fn check_caps() -> Result<u64, PreflightError> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(PreflightError::Status)?;
    let caps = effective_caps(&status).unwrap_or(0);
    let missing = missing_caps(caps);
    if missing.is_empty() {
        Ok(caps)
    } else {
        Err(PreflightError::MissingCaps {
            missing: missing.join(", "),
        })
    }
}

pub(crate) fn check_btf(path: &Path) -> Result<(), PreflightError> {
    if path.exists() {
        Ok(())
    } else {
        Err(PreflightError::NoBtf(path.to_owned()))
    }
}

/// "6.18.44-fc-v782" -> (6, 18)
pub(crate) fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

pub(crate) fn check_kernel() -> Result<(u32, u32), PreflightError> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_err(|e| PreflightError::KernelRelease(e.to_string()))?;
    let release = release.trim();
    let v = parse_release(release)
        .ok_or_else(|| PreflightError::KernelRelease(format!("unparsable release {release:?}")))?;
    if v < MIN_KERNEL {
        return Err(PreflightError::OldKernel {
            found: release.to_owned(),
        });
    }
    Ok(v)
}

const TRACEFS: &str = "/sys/kernel/tracing";

fn tracefs_mounted(mountinfo: &str) -> bool {
    mountinfo.lines().any(|l| {
        let mut f = l.split(' ');
        let mount_point = f.nth(4);
        let fstype = l.split(" - ").nth(1).and_then(|r| r.split(' ').next());
        mount_point == Some(TRACEFS) && fstype == Some("tracefs")
    })
}

/// Tracepoints attach through perf, which needs tracefs. Mount it when missing.
pub(crate) fn ensure_tracefs(caps: u64) -> Result<(), PreflightError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if tracefs_mounted(&mountinfo) || Path::new(TRACEFS).join("events").exists() {
        return Ok(());
    }
    if caps & (1u64 << CAP_SYS_ADMIN) == 0 {
        return Err(PreflightError::Tracefs {
            reason: "CAP_SYS_ADMIN is needed to mount it".into(),
        });
    }
    let src = c"tracefs";
    let target = c"/sys/kernel/tracing";
    // SAFETY: all pointers are valid NUL-terminated strings; data may be null.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(PreflightError::Tracefs {
            reason: std::io::Error::last_os_error().to_string(),
        });
    }
    tracing::info!("mounted tracefs at {TRACEFS}");
    Ok(())
}

/// The cgroup v2 mount: the first in /proc/self/mountinfo, else one mounted at
/// [`PRIVATE_CGROUP2`]. The v2 hierarchy exists in every kernel, mounted or not
/// (on a cgroup v1 host every process sits in its root); the connect hooks
/// attach to that root, and cgroup ids are inode numbers in it.
pub(crate) fn ensure_cgroup2(caps: u64) -> Result<PathBuf, PreflightError> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| PreflightError::Cgroup2 {
            reason: format!("reading /proc/self/mountinfo: {e}"),
        })?;
    cgroup2_mount_or(&mountinfo, caps, mount_private_cgroup2)
}

/// [`ensure_cgroup2`] given the mountinfo text and a way to mount.
fn cgroup2_mount_or(
    mountinfo: &str,
    caps: u64,
    mount: impl FnOnce() -> std::io::Result<()>,
) -> Result<PathBuf, PreflightError> {
    if let Some(found) = crate::identity::cgroup::parse_mountinfo_cgroup2(mountinfo) {
        return Ok(found);
    }
    if caps & (1u64 << CAP_SYS_ADMIN) == 0 {
        return Err(PreflightError::Cgroup2 {
            reason: "CAP_SYS_ADMIN is needed to mount it".into(),
        });
    }
    mount().map_err(|e| PreflightError::Cgroup2 {
        reason: e.to_string(),
    })?;
    tracing::info!(
        mount = PRIVATE_CGROUP2,
        "no cgroup2 file system was mounted (a cgroup v1 host): mounted the v2 hierarchy at {PRIVATE_CGROUP2} for the connect hooks; every process is in its root, and workloads come from a v1 hierarchy"
    );
    Ok(PathBuf::from(PRIVATE_CGROUP2))
}

fn mount_private_cgroup2() -> std::io::Result<()> {
    std::fs::create_dir_all(PRIVATE_CGROUP2)
        .map_err(|e| std::io::Error::new(e.kind(), format!("creating the directory: {e}")))?;
    let src = c"cgroup2";
    let target = c"/run/tracer/cgroup2";
    debug_assert_eq!(target.to_str(), Ok(PRIVATE_CGROUP2));
    // SAFETY: all pointers are valid NUL-terminated strings; data may be null.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_parsing() {
        for (input, want) in [
            ("6.18.44-fc-v782", Some((6, 18))),
            ("5.15.0-91-generic", Some((5, 15))),
            ("4.19.0", Some((4, 19))),
            ("6.1", Some((6, 1))),
            ("6.8.0+", Some((6, 8))),
            ("garbage", None),
            ("", None),
        ] {
            assert_eq!(parse_release(input), want, "{input}");
        }
    }

    #[test]
    fn caps_parsing_and_missing() {
        let root = "Name:\tx\nCapEff:\t000001ffffffffff\n";
        let caps = effective_caps(root).unwrap();
        assert!(missing_caps(caps).is_empty());
        let none = "CapEff:\t0000000000000000\n";
        let caps = effective_caps(none).unwrap();
        assert_eq!(
            missing_caps(caps),
            vec![
                "CAP_BPF",
                "CAP_PERFMON",
                "CAP_NET_ADMIN",
                "CAP_SYS_PTRACE",
                "CAP_DAC_READ_SEARCH"
            ]
        );
        // Pre-5.8 style root set without CAP_BPF/CAP_PERFMON.
        let old = "CapEff:\t0000003fffffffff\n";
        assert_eq!(
            missing_caps(effective_caps(old).unwrap()),
            vec!["CAP_BPF", "CAP_PERFMON"]
        );
        assert_eq!(effective_caps("nothing"), None);
    }

    #[test]
    fn cgroup2_mount_or_a_private_one() {
        let root = 1u64 << CAP_SYS_ADMIN;
        let hybrid = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                      35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n";
        let v1_only = "31 24 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory\n";
        let never = || -> std::io::Result<()> { panic!("must not mount") };
        // Mounted: used as it is, whatever the capabilities.
        assert_eq!(
            cgroup2_mount_or(hybrid, 0, never).unwrap(),
            Path::new("/sys/fs/cgroup/unified")
        );
        // None: mounted at the private directory.
        let mut mounted = false;
        let got = cgroup2_mount_or(v1_only, root, || {
            mounted = true;
            Ok(())
        });
        assert_eq!(got.unwrap(), Path::new(PRIVATE_CGROUP2));
        assert!(mounted);
        // Cannot mount: one sentence that says why and what to do.
        let err = cgroup2_mount_or(v1_only, 0, never).unwrap_err().to_string();
        assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
        assert!(err.contains("mount -t cgroup2"), "{err}");
        assert!(err.contains("--cgroup-mount"), "{err}");
        let err = cgroup2_mount_or(v1_only, root, || {
            Err(std::io::Error::from_raw_os_error(libc::EPERM))
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(PRIVATE_CGROUP2) && err.contains("not permitted"),
            "{err}"
        );
    }

    #[test]
    fn tracefs_detection() {
        let mounted = "40 22 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec,relatime shared:20 - tracefs tracefs rw\n";
        assert!(tracefs_mounted(mounted));
        let other = "25 1 0:22 / /sys rw - sysfs sysfs rw\n";
        assert!(!tracefs_mounted(other));
    }
}
