//! Checks run before anything is loaded, so a host that cannot run the tracer gets
//! one clear sentence instead of an errno from deep inside the bpf syscall.
use std::path::{Path, PathBuf};

/// Capabilities `tracer run` needs, with why.
pub const REQUIRED_CAPS: &[(u32, &str, &str)] = &[
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
/// Only needed when tracefs is not mounted yet.
pub const CAP_SYS_ADMIN: u32 = 21;

/// Oldest kernel the probes are written for: BPF ring buffer (5.8) and
/// `bpf_get_current_pid_tgid` in cgroup sock_addr programs.
pub const MIN_KERNEL: (u32, u32) = (5, 8);

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
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
    #[error("reading capabilities from /proc/self/status: {0}")]
    Status(#[source] std::io::Error),
}

/// Parse `CapEff:` from /proc/self/status content.
pub fn effective_caps(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Names of the required capabilities missing from `caps`.
pub fn missing_caps(caps: u64) -> Vec<&'static str> {
    REQUIRED_CAPS
        .iter()
        .filter(|(bit, _, _)| caps & (1u64 << bit) == 0)
        .map(|(_, name, _)| *name)
        .collect()
}

pub fn check_caps() -> Result<u64, PreflightError> {
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

pub fn check_btf(path: &Path) -> Result<(), PreflightError> {
    if path.exists() {
        Ok(())
    } else {
        Err(PreflightError::NoBtf(path.to_owned()))
    }
}

/// "6.18.44-fc-v782" -> (6, 18)
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

pub fn check_kernel() -> Result<(u32, u32), PreflightError> {
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
pub fn ensure_tracefs(caps: u64) -> Result<(), PreflightError> {
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
    fn tracefs_detection() {
        let mounted = "40 22 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec,relatime shared:20 - tracefs tracefs rw\n";
        assert!(tracefs_mounted(mounted));
        let other = "25 1 0:22 / /sys rw - sysfs sysfs rw\n";
        assert!(!tracefs_mounted(other));
    }
}
