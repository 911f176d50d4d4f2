//! Facts about the machine: its name, this boot's id, and how to turn the
//! probes' boot-relative timestamps into wall-clock time.

use std::io;

use thiserror::Error;

const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";
const HOSTNAME_PATH: &str = "/proc/sys/kernel/hostname";

#[derive(Debug, Error)]
pub(crate) enum HostError {
    #[error("reading the host name")]
    Hostname(#[source] io::Error),
    #[error("reading {BOOT_ID_PATH}")]
    BootIdRead(#[source] io::Error),
    #[error("{BOOT_ID_PATH} does not hold a UUID: {0:?}")]
    BootIdFormat(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostInfo {
    pub name: String,
    pub boot_id: String,
}

impl HostInfo {
    pub(crate) fn read() -> Result<HostInfo, HostError> {
        let name = hostname()?;
        let raw = std::fs::read_to_string(BOOT_ID_PATH).map_err(HostError::BootIdRead)?;
        let boot_id = parse_boot_id(&raw).ok_or_else(|| HostError::BootIdFormat(raw.clone()))?;
        Ok(HostInfo { name, boot_id })
    }
}

fn hostname() -> Result<String, HostError> {
    // HOST_NAME_MAX is 64 on Linux; a larger buffer leaves room for a NUL.
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if let Some(bytes) = buf.get(..len) {
            return Ok(String::from_utf8_lossy(bytes).into_owned());
        }
    }
    // Same value (the UTS namespace's), read another way.
    std::fs::read_to_string(HOSTNAME_PATH)
        .map(|s| s.trim_end_matches('\n').to_owned())
        .map_err(HostError::Hostname)
}

/// Trims and validates a boot id: 8-4-4-4-12 hex digits; returned lowercase.
fn parse_boot_id(raw: &str) -> Option<String> {
    let id = raw.trim();
    if id.len() != 36 {
        return None;
    }
    let ok = id.bytes().enumerate().all(|(i, b)| match i {
        8 | 13 | 18 | 23 => b == b'-',
        _ => b.is_ascii_hexdigit(),
    });
    ok.then(|| id.to_ascii_lowercase())
}

fn clock_ns(clock: libc::clockid_t) -> Option<i128> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
}

/// Offset to add to a CLOCK_BOOTTIME ns value (what `bpf_ktime_get_boot_ns`
/// returns) to get wall-clock ns since the Unix epoch.
///
/// Reads REALTIME, BOOTTIME, REALTIME back to back and keeps the try with the
/// tightest bracket, so a preemption between the reads does not skew it.
pub(crate) fn boottime_to_realtime_offset_ns() -> i128 {
    const TRIES: usize = 8;
    let mut best: Option<(i128, i128)> = None; // (bracket width, offset)
    for _ in 0..TRIES {
        let (Some(r1), Some(b), Some(r2)) = (
            clock_ns(libc::CLOCK_REALTIME),
            clock_ns(libc::CLOCK_BOOTTIME),
            clock_ns(libc::CLOCK_REALTIME),
        ) else {
            continue;
        };
        let width = r2 - r1;
        // A negative width means the wall clock was stepped mid-try.
        if width < 0 {
            continue;
        }
        let offset = r1 + width / 2 - b;
        if best.is_none_or(|(w, _)| width < w) {
            best = Some((width, offset));
        }
    }
    match best {
        Some((_, offset)) => offset,
        None => {
            tracing::warn!("clock_gettime failed; boot-relative times will not be converted");
            0
        }
    }
}

/// USER_HZ, the unit of `/proc/<pid>/stat` times (100 on x86).
pub(crate) fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100)
}

/// Bytes of a memory page (what `signal->maxrss` counts in).
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// RLIMIT_NOFILE as (soft, hard).
pub(crate) fn nofile_limit() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Raise the soft open-file limit to the hard one (1,024 by default on most
/// systems, too few once a host is busy), returning (before, after).
pub(crate) fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    let (soft, hard) = nofile_limit()?;
    if soft >= hard {
        return Ok((soft, soft));
    }
    let lim = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((soft, hard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_id_parsing() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "2605d5f8-57d8-408d-b1f2-343252d21f8e\n",
                Some("2605d5f8-57d8-408d-b1f2-343252d21f8e"),
            ),
            (
                "  2605D5F8-57D8-408D-B1F2-343252D21F8E  ",
                Some("2605d5f8-57d8-408d-b1f2-343252d21f8e"),
            ),
            ("", None),
            ("2605d5f8-57d8-408d-b1f2-343252d21f8", None),
            ("2605d5f8-57d8-408d-b1f2-343252d21f8ee", None),
            ("2605d5f8557d8-408d-b1f2-343252d21f8e", None),
            ("2605d5f8-57d8-408d-b1f2-343252d21f8g", None),
            ("2605d5f8-57d8-408d-b1f2-343252d2é8e", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_boot_id(input).as_deref(), *want, "input {input:?}");
        }
    }

    #[test]
    fn reads_this_host() {
        let info = HostInfo::read().unwrap();
        assert!(!info.name.is_empty());
        assert_eq!(info.boot_id.len(), 36);
        let raw = std::fs::read_to_string(BOOT_ID_PATH).unwrap();
        assert_eq!(info.boot_id, raw.trim());
    }

    #[test]
    fn offset_converts_boottime_to_now() {
        let offset = boottime_to_realtime_offset_ns();
        let boot = clock_ns(libc::CLOCK_BOOTTIME).unwrap();
        let real = clock_ns(libc::CLOCK_REALTIME).unwrap();
        let err = (boot + offset - real).abs();
        assert!(err < 5_000_000, "conversion off by {err} ns");
        // Two estimates agree closely: the min-bracket choice keeps jitter small.
        let again = boottime_to_realtime_offset_ns();
        assert!((again - offset).abs() < 5_000_000);
        // The offset is the boot time, which is after 2001 and not in the future.
        assert!(offset > 1_000_000_000 * 1_000_000_000);
        assert!(offset <= real);
    }

    #[test]
    fn nofile_raised_to_hard() {
        let (before, after) = raise_nofile_limit().unwrap();
        let (soft, hard) = nofile_limit().unwrap();
        assert!(after >= before);
        assert_eq!(soft, hard);
        assert_eq!(after, soft);
    }

    #[test]
    fn ticks() {
        let hz = clock_ticks_per_second();
        assert!(hz > 0);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(hz, 100);
    }
}
