//! `--lineage ids`: the processes an output has already described, so that an
//! event naming its ancestors by exec_id only is preceded, in the same file,
//! by a line describing each of them (its own event, or a `process` record).
use std::{num::NonZeroUsize, sync::Arc};

use lru::LruCache;

/// Processes remembered per output: about 100 bytes each. Forgetting one costs
/// only a second description of it later, never a missing one.
pub(super) const DESCRIBED_MAX: usize = 16 * 1024;

pub(super) struct Described {
    seen: LruCache<Arc<str>, ()>,
}

impl Described {
    pub(super) fn new() -> Described {
        Described {
            seen: LruCache::new(NonZeroUsize::new(DESCRIBED_MAX).unwrap_or(NonZeroUsize::MIN)),
        }
    }

    /// Whether the current file describes `exec_id` (and keep it remembered).
    pub(super) fn has(&mut self, exec_id: &str) -> bool {
        self.seen.get(exec_id).is_some()
    }

    pub(super) fn add(&mut self, exec_id: &Arc<str>) {
        self.seen.put(exec_id.clone(), ());
    }

    /// A new file describes nothing yet.
    pub(super) fn forget_all(&mut self) {
        self.seen.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_forgets_the_least_used() {
        let mut d = Described::new();
        let first: Arc<str> = Arc::from("first");
        d.add(&first);
        for i in 0..DESCRIBED_MAX + 10 {
            d.add(&Arc::from(format!("p{i}")));
            // Used all along: kept.
            assert!(d.has("first"));
        }
        assert_eq!(d.seen.len(), DESCRIBED_MAX);
        assert!(!d.has("p0"), "the least recently used went first");
        d.forget_all();
        assert!(!d.has("first"));
    }
}
