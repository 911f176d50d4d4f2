//! One memory budget (`--memory-limit`) split into a byte cap per growing
//! structure. Each structure accounts its own bytes and stays under its share,
//! dropping or cutting what it must (counted, flagged on the event): whoever
//! drives a structure, be it a user's exec storm, a pod's labels or a tail
//! client that never reads, only ever spends that structure's share.
//!
//! The shares are fixed rather than borrowed from each other: a bound that one
//! structure could lend away to another is a bound an attacker can move.

/// Default `--memory-limit`: the DaemonSet's 256 MiB limit less headroom for
/// what the allocator keeps and the kernel charges to the cgroup (page cache
/// of the output file, socket buffers).
pub(crate) const DEFAULT_MEMORY_LIMIT: u64 = 192 * MIB;

/// What the tracer needs before any structure grows: code, the async runtime,
/// the Kubernetes client, and the BTF parse at start-up.
pub(crate) const BASELINE: u64 = 40 * MIB;

/// The smallest share left for the structures that grow; below it the tracer
/// would spend its life evicting, so such a limit is refused.
pub(crate) const MIN_SHARED: u64 = 16 * MIB;

const MIB: u64 = 1024 * 1024;

/// Bytes each growing structure may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: u64,
    /// Process table: entries with their binary, argv and lineage parts.
    pub process_table: usize,
    /// Pod metadata cache (labels and annotations included).
    pub pod_cache: usize,
    /// Services and EndpointSlices of the cluster (destination names).
    pub service_index: usize,
    /// Lines queued for `tracer tail` clients, all clients together.
    pub tail_queues: usize,
    /// Events waiting for their connect result, pod metadata or file hash.
    pub waiting_events: usize,
    /// Sealed records an output could not write yet, per output.
    pub sink_retry: usize,
    /// Identity memo and parsed cgroup paths (other caches are bounded in entries).
    pub caches: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BudgetError {
    #[error(
        "--memory-limit {} MiB is too small: the tracer needs {} MiB to run, the ring \
         buffer maps {} MiB more (twice --ring-buffer-size), and at least {} MiB must be \
         left for the process table and caches: use at least {} MiB",
        limit / MIB, BASELINE / MIB, ring / MIB, MIN_SHARED / MIB, min.div_ceil(MIB)
    )]
    TooSmall { limit: u64, ring: u64, min: u64 },
    #[error("{0:?} is not a size: expected e.g. 192MiB, 1G or 200000000 (bytes)")]
    Syntax(String),
}

impl Budget {
    /// Split `limit` bytes, of which the ring buffer's pages take
    /// `ring_buffer_bytes` twice (mapped twice for wrap-around, both in RSS).
    pub fn split(limit: u64, ring_buffer_bytes: u64) -> Result<Budget, BudgetError> {
        let ring = 2 * ring_buffer_bytes;
        let min = BASELINE + ring + MIN_SHARED;
        if limit < min {
            return Err(BudgetError::TooSmall { limit, ring, min });
        }
        let shared = limit - BASELINE - ring;
        let part = |percent: u64| usize::try_from(shared / 100 * percent).unwrap_or(usize::MAX);
        Ok(Budget {
            limit,
            process_table: part(40),
            pod_cache: part(10),
            service_index: part(5),
            tail_queues: part(15),
            waiting_events: part(10),
            sink_retry: part(5),
            caches: part(15),
        })
    }
}

/// A size on the command line: bytes, or with a K/M/G suffix (powers of 1024,
/// with or without `iB`/`B`).
pub(crate) fn parse_size(s: &str) -> Result<u64, BudgetError> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| BudgetError::Syntax(s.into()))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(BudgetError::Syntax(s.into())),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| BudgetError::Syntax(s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("200000000", Some(200_000_000)),
            ("192MiB", Some(192 * MIB)),
            ("192M", Some(192 * MIB)),
            ("1G", Some(1024 * MIB)),
            ("64 kib", Some(64 * 1024)),
            ("12x", None),
            ("MiB", None),
            ("-1M", None),
            ("99999999999999999999G", None),
            ("18446744073709551615G", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_size(s).ok(), *want, "{s}");
        }
    }

    #[test]
    fn shares_fit_in_the_limit_and_tiny_limits_are_refused() {
        let ring = 4 * MIB;
        let b = Budget::split(DEFAULT_MEMORY_LIMIT, ring).unwrap();
        let sum = b.process_table
            + b.pod_cache
            + b.service_index
            + b.tail_queues
            + b.waiting_events
            + b.sink_retry
            + b.caches;
        assert!(sum as u64 + BASELINE + 2 * ring <= b.limit);
        assert!(b.process_table > 50 * MIB as usize, "{b:?}");
        let min = BASELINE + 2 * ring + MIN_SHARED;
        assert!(Budget::split(min, ring).is_ok());
        let e = Budget::split(min - 1, ring).unwrap_err();
        assert!(e.to_string().contains("too small"), "{e}");
    }
}
