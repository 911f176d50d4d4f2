//! The loss record: what the tracer could not deliver, or cut to stay within
//! its memory budget.
use std::sync::Arc;

use serde::Serialize;

use super::{EventId, Host, Policy, UnixNanos};

/// Events the tracer could not deliver since the previous report, by cause.
#[derive(Debug, Serialize)]
pub struct LossRecord {
    pub event_id: EventId,
    pub time: UnixNanos,
    pub kind: &'static str,
    pub host: Arc<Host>,
    pub lost: LossCounts,
    /// What was dropped or cut to stay within `--memory-limit` in the interval;
    /// absent when nothing was.
    #[serde(skip_serializing_if = "BudgetCounts::is_zero")]
    pub budget: BudgetCounts,
    /// Where an output's own dropped records were (`sink_error` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<SinkGap>,
    pub policy: Arc<Policy>,
}

/// Drops and cuts made to stay within the memory budget. No event is lost by
/// them: each names what became less complete.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BudgetCounts {
    /// Running processes dropped from the process table: their next event is
    /// described from /proc (`image_source: "proc"`), or by name only.
    pub processes_evicted: u64,
    /// Exited processes dropped before their grace ended: a child's lineage
    /// may stop short of them.
    pub exited_evicted_early: u64,
    /// Images whose argv the table keeps cut (`executor.argv_truncated`).
    pub argv_cut: u64,
    /// Events sent before their wait ended (for a pod, a hash or a connect
    /// result) because too many bytes were waiting; each says what it lacks
    /// (`identity.status`, `hash: "pending"`, outcome `in_progress`/`unknown`).
    pub released_early: u64,
}

impl BudgetCounts {
    pub fn is_zero(&self) -> bool {
        *self == BudgetCounts::default()
    }

    /// What grew since `prev`.
    pub fn since(&self, prev: &BudgetCounts) -> BudgetCounts {
        BudgetCounts {
            processes_evicted: self
                .processes_evicted
                .saturating_sub(prev.processes_evicted),
            exited_evicted_early: self
                .exited_evicted_early
                .saturating_sub(prev.exited_evicted_early),
            argv_cut: self.argv_cut.saturating_sub(prev.argv_cut),
            released_early: self.released_early.saturating_sub(prev.released_early),
        }
    }
}

/// A declared gap: `records` records this output could not write were dropped
/// right after the record `after_seq` (hash `after_hash`) of its chain. They were
/// never sealed, so the chain itself has no hole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkGap {
    pub records: u64,
    pub after_seq: Option<u64>,
    pub after_hash: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LossCounts {
    /// The kernel ring buffer was full.
    pub ring_full: u64,
    /// The probes could not read kernel memory for a record.
    pub read_fault: u64,
    /// The in-kernel table joining syscall entry and exit was full.
    pub pending_full: u64,
    /// No per-CPU scratch buffer.
    pub scratch: u64,
    /// A record from the kernel that failed validation.
    pub malformed: u64,
    /// Records an output could not write (disk full, I/O error) and that
    /// overflowed its retry buffer; counted in the loss record that output
    /// writes about itself, with `gap`.
    pub sink_error: u64,
    /// First sends of an unconnected socket to a new destination beyond the
    /// per-socket cap: seen by the probes, counted, not reported one by one.
    pub sends_unreported: u64,
}

impl LossCounts {
    pub fn total(&self) -> u64 {
        self.ring_full
            + self.read_fault
            + self.pending_full
            + self.scratch
            + self.malformed
            + self.sink_error
            + self.sends_unreported
    }
}
