//! Loss accounting: every record not delivered is counted by cause in the kernel or
//! here, and each interval with losses produces a `kind: "loss"` record and a warning.
//! Records an output could not write (`sink_error`) are declared by that output
//! itself, in its own chain ([`crate::sink`]).
use crate::{event::LossCounts, probes::KernelCounters};

#[derive(Default)]
pub(crate) struct LossTracker {
    reported: LossCounts,
}

impl LossTracker {
    /// Totals so far -> what is new since the last report (None when nothing is).
    pub(crate) fn delta(&mut self, kernel: KernelCounters, malformed: u64) -> Option<LossCounts> {
        let now = LossCounts {
            ring_full: kernel.ring_full,
            read_fault: kernel.read_fault,
            pending_full: kernel.pending_full,
            scratch: kernel.scratch,
            malformed,
            sink_error: 0,
            sends_unreported: kernel.sends_unreported,
        };
        let prev = self.reported;
        let d = LossCounts {
            ring_full: now.ring_full.saturating_sub(prev.ring_full),
            read_fault: now.read_fault.saturating_sub(prev.read_fault),
            pending_full: now.pending_full.saturating_sub(prev.pending_full),
            scratch: now.scratch.saturating_sub(prev.scratch),
            malformed: now.malformed.saturating_sub(prev.malformed),
            sink_error: 0,
            sends_unreported: now.sends_unreported.saturating_sub(prev.sends_unreported),
        };
        self.reported = now;
        (d.total() > 0).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_only_new_losses() {
        let mut t = LossTracker::default();
        let k = KernelCounters::default();
        assert_eq!(t.delta(k, 0), None);
        let k = KernelCounters { ring_full: 5, ..k };
        let d = t.delta(k, 1).unwrap();
        assert_eq!((d.ring_full, d.malformed, d.total()), (5, 1, 6));
        assert_eq!(t.delta(k, 1), None);
        let k = KernelCounters {
            ring_full: 7,
            read_fault: 1,
            ..k
        };
        let d = t.delta(k, 1).unwrap();
        assert_eq!((d.ring_full, d.read_fault), (2, 1));
    }
}
