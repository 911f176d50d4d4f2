//! `--lineage ids`: the processes an output has already described, so that an
//! event naming its ancestors by exec_id only is preceded, in the same file,
//! by a line describing each of them (its own event, or a `process` record),
//! and so that a later event of a process the file has described in full
//! names its executor by reference (`executor.ref`).
use std::{
    hash::{BuildHasher as _, Hasher as _, RandomState},
    num::NonZeroUsize,
    sync::{Arc, LazyLock},
};

use lru::LruCache;

use crate::event::Ancestor;

/// Processes remembered per output: about 120 bytes each. Forgetting one costs
/// only a second description of it later, never a missing one.
pub(super) const DESCRIBED_MAX: usize = 16 * 1024;

/// What the line that described a process's executor in full said of it, as
/// fingerprints: a later event of the process whose executor (but for `tid`)
/// and lineage print the same bytes names the executor by reference and leaves
/// the lineage out. Anything that changed (setuid, chdir, a moved cgroup, the
/// file's hash found, a new parent) makes the next event describe it in full
/// again, so a reader needs only the latest full line of an exec_id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Facts {
    pub(super) executor: u64,
    pub(super) lineage: u64,
}

pub(super) struct Described {
    /// `None`: described only as an ancestor (a `process` record), which says
    /// nothing of its credentials or cgroup.
    seen: LruCache<Arc<str>, Option<Facts>>,
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

    /// What the current file's last full description of `exec_id` as an
    /// executor said, if it has one.
    pub(super) fn facts(&mut self, exec_id: &str) -> Option<Facts> {
        self.seen.get(exec_id).copied().flatten()
    }

    /// Described as an ancestor (keeps what an executor description said).
    pub(super) fn add(&mut self, exec_id: &Arc<str>) {
        if self.seen.get(exec_id).is_none() {
            self.seen.put(exec_id.clone(), None);
        }
    }

    /// Described in full as an event's executor.
    pub(super) fn add_executor(&mut self, exec_id: &Arc<str>, facts: Facts) {
        self.seen.put(exec_id.clone(), Some(facts));
    }

    /// A new file describes nothing yet.
    pub(super) fn forget_all(&mut self) {
        self.seen.clear();
    }
}

/// Fingerprints are keyed per run (SipHash with random keys): a workload that
/// could choose colliding values would need the key.
static KEYS: LazyLock<RandomState> = LazyLock::new(RandomState::new);

/// A writer that hashes what is written to it.
struct HashWriter(std::hash::DefaultHasher);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Fingerprint of an executor's JSON but for its `tid` (the threads of a
/// process take turns and each is named on its own line).
pub(super) fn executor_fact(json: &[u8]) -> u64 {
    const TID: &[u8] = br#","tid":"#;
    let mut h = KEYS.build_hasher();
    // Our writer puts exec_id (base64url, never a `"`), pid, tid first, so the
    // first `,"tid":` is the member.
    match memchr::memmem::find(json, TID) {
        Some(at) => {
            let rest = &json[at + TID.len()..];
            let end = rest
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(rest.len());
            h.write(&json[..at]);
            h.write(&rest[end..]);
        }
        None => h.write(json),
    }
    h.finish()
}

/// Fingerprint of a lineage as an event writes it.
pub(super) fn lineage_fact(lineage: &[Ancestor]) -> u64 {
    let mut w = HashWriter(KEYS.build_hasher());
    w.0.write_usize(lineage.len());
    for a in lineage {
        w.0.write(a.exec_id.as_bytes());
        w.0.write_u32(a.pid);
        w.0.write_u8(u8::from(a.brief));
        // Present only where the ancestor's cgroup differs from the executor's.
        for part in [
            a.workload
                .as_deref()
                .map(|x| serde_json::to_writer(&mut w, x)),
            a.identity
                .as_deref()
                .map(|x| serde_json::to_writer(&mut w, x)),
        ] {
            match part {
                None => w.0.write_u8(0),
                Some(Ok(())) => w.0.write_u8(1),
                // Unprintable: never equal to anything.
                Some(Err(_)) => w.0.write_u64(rand_u64()),
            }
        }
    }
    w.0.finish()
}

fn rand_u64() -> u64 {
    RandomState::new().build_hasher().finish()
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

    #[test]
    fn an_ancestor_description_keeps_what_an_executor_one_said() {
        let mut d = Described::new();
        let id: Arc<str> = Arc::from("x");
        let f = Facts {
            executor: 1,
            lineage: 2,
        };
        d.add(&id);
        assert_eq!(d.facts("x"), None, "a process record says nothing of creds");
        d.add_executor(&id, f);
        d.add(&id);
        assert_eq!(d.facts("x"), Some(f));
    }

    #[test]
    fn the_executor_fact_ignores_only_the_tid() {
        let a = r#"{"exec_id":"A-_b","pid":7,"tid":7,"ppid":1,"comm":"x"}"#;
        let other_thread = r#"{"exec_id":"A-_b","pid":7,"tid":80,"ppid":1,"comm":"x"}"#;
        let cases = [
            (
                r#"{"exec_id":"A-_b","pid":7,"tid":7,"ppid":2,"comm":"x"}"#,
                false,
            ),
            (
                r#"{"exec_id":"A-_b","pid":8,"tid":7,"ppid":1,"comm":"x"}"#,
                false,
            ),
            (
                r#"{"exec_id":"A-_b","pid":7,"tid":7,"ppid":1,"comm":"y"}"#,
                false,
            ),
            (
                r#"{"exec_id":"A-_c","pid":7,"tid":7,"ppid":1,"comm":"x"}"#,
                false,
            ),
            (other_thread, true),
            (a, true),
        ];
        for (b, same) in cases {
            assert_eq!(
                executor_fact(a.as_bytes()) == executor_fact(b.as_bytes()),
                same,
                "{b}"
            );
        }
    }

    #[test]
    fn the_lineage_fact_follows_every_printed_field() {
        let ev = crate::event::sample_exec_event();
        let base = ev.lineage.clone();
        assert!(!base.is_empty());
        let f = lineage_fact(&base);
        assert_eq!(f, lineage_fact(&base.clone()));
        type Change = (&'static str, fn(&mut Vec<Ancestor>));
        let changes: &[Change] = &[
            ("one fewer", |l| {
                l.pop();
            }),
            ("another pid", |l| l[0].pid += 1),
            ("another exec_id", |l| l[0].exec_id = Arc::from("other")),
            ("brief", |l| l[0].brief = !l[0].brief),
            ("a workload", |l| {
                let ev = crate::event::sample_exec_event();
                l[0].workload = Some(ev.executor.workload.clone());
            }),
        ];
        for (what, change) in changes {
            let mut l = base.clone();
            change(&mut l);
            assert_ne!(lineage_fact(&l), f, "{what}");
        }
    }
}
