//! The executor's JSON, serialized once per process and reused while nothing
//! in it changes: every connect of a process carries the same executor, and
//! escaping its argv, paths and selectors again each time was the largest
//! share of a connect's cost.
use std::{num::NonZeroUsize, sync::Arc};

use lru::LruCache;

use crate::event::Executor;

/// Processes whose executor JSON is kept; bounded in bytes too.
const ENTRIES: usize = 1024;
const MAX_BYTES: usize = 4 * 1024 * 1024;

/// Per thread of a process (exec_id, tid): the executor names its thread, and
/// the threads of a busy server take turns.
type Key = (Arc<str>, u32);

pub(super) struct ExecutorCache {
    lru: LruCache<Key, Entry>,
    bytes: usize,
}

/// The executor kept to compare with, its JSON, and its fingerprint but for
/// the tid ([`super::describe::executor_fact`]).
type Entry = (Executor, Box<[u8]>, u64);

/// What an entry costs against [`MAX_BYTES`]: its JSON twice (the JSON, and
/// the executor kept to compare with, which holds the same strings or shares them).
fn cost(json: &[u8]) -> usize {
    2 * json.len() + 256
}

impl ExecutorCache {
    pub(super) fn new() -> ExecutorCache {
        ExecutorCache {
            lru: LruCache::new(NonZeroUsize::new(ENTRIES).unwrap_or(NonZeroUsize::MIN)),
            bytes: 0,
        }
    }

    /// `x` serialized as a line would have it, and its fingerprint: from the
    /// cache when the process's last executor serializes the same, else
    /// serialized now.
    pub(super) fn json(&mut self, x: &Executor) -> Option<(&[u8], u64)> {
        let key = (x.exec_id.clone(), x.tid);
        let hit = self
            .lru
            .get(&key)
            .is_some_and(|(cached, _, _)| cached.serializes_like(x));
        if !hit {
            let raw = crate::escape::to_vec(x).ok()?.into_boxed_slice();
            let fact = super::describe::executor_fact(&raw);
            self.bytes += cost(&raw);
            if let Some((_, (_, old, _))) = self.lru.push(key.clone(), (x.clone(), raw, fact)) {
                self.bytes = self.bytes.saturating_sub(cost(&old));
            }
            while self.bytes > MAX_BYTES && self.lru.len() > 1 {
                match self.lru.pop_lru() {
                    Some((_, (_, old, _))) => self.bytes = self.bytes.saturating_sub(cost(&old)),
                    None => break,
                }
            }
        }
        self.lru.peek(&key).map(|(_, raw, fact)| (&raw[..], *fact))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, IdentityStatus, sample_exec_event};

    fn line(c: &mut ExecutorCache, ev: &Event) -> Vec<u8> {
        let (raw, _) = c.json(&ev.executor).expect("serializes");
        let mut out = Vec::new();
        super::super::line::write(
            &mut out,
            ev,
            super::super::line::ExecutorText::Json(raw),
            true,
        )
        .unwrap();
        out
    }

    fn requestor(actor: &str) -> Arc<crate::event::Requestor> {
        Arc::new(crate::event::Requestor {
            values: crate::event::RequestorValues {
                system: "github-actions".into(),
                fields: vec![(Arc::from("actor"), actor.to_owned())],
                truncated: false,
                display: format!("by {actor}"),
            },
            inherited_from: "abc".into(),
            claim: crate::event::RequestorClaim::Runner,
            overrides: None,
        })
    }

    #[test]
    fn a_cached_executor_writes_the_same_bytes_as_the_event_and_follows_its_changes() {
        let mut c = ExecutorCache::new();
        let mut ev = sample_exec_event();
        type Change = (&'static str, fn(&mut Event));
        let changes: &[Change] = &[
            ("nothing", |_| {}),
            ("nothing again", |_| {}),
            ("another thread", |e| e.executor.tid += 1),
            ("the first thread again", |e| e.executor.tid -= 1),
            ("the second again", |e| e.executor.tid += 1),
            ("a chdir", |e| {
                e.executor.cwd = Some(Arc::from("/tmp/elsewhere"))
            }),
            ("setuid", |e| e.executor.user.euid = 4242),
            ("a login", |e| e.executor.login = None),
            ("an equal identity in a new Arc", |e| {
                e.executor.identity = Arc::new((*e.executor.identity).clone());
            }),
            ("the identity resolved later", |e| {
                let mut id = (*e.executor.identity).clone();
                id.status = IdentityStatus::Unresolved;
                e.executor.identity = Arc::new(id);
            }),
            ("the file hashed", |e| e.executor.file = None),
            ("a moved cgroup", |e| e.executor.cgroup.id += 1),
            ("reparented", |e| e.executor.ppid = 1),
            ("capset", |e| {
                if let Some(c) = &mut e.executor.authority.capabilities {
                    c.effective |= 1 << 12;
                }
            }),
            ("no_new_privs", |e| {
                e.executor.authority.no_new_privs = Some(true)
            }),
            ("a requestor", |e| {
                e.executor.requestor = Some(requestor("alice"))
            }),
            ("an equal requestor in a new Arc", |e| {
                e.executor.requestor = Some(requestor("alice"))
            }),
            ("another actor", |e| {
                e.executor.requestor = Some(requestor("mallory"))
            }),
            ("no requestor", |e| e.executor.requestor = None),
        ];
        for (what, change) in changes {
            change(&mut ev);
            let want = crate::escape::to_vec(&ev).unwrap();
            assert_eq!(
                String::from_utf8(line(&mut c, &ev)).unwrap(),
                String::from_utf8(want).unwrap(),
                "after {what}"
            );
        }
    }

    /// A process that changes its authority after its exec (capset, prctl,
    /// seccomp, setns) keeps its exec_id: its executor must print anew and
    /// fingerprint differently, so `--lineage ids` describes it in full again
    /// instead of naming the old description by reference.
    #[test]
    fn an_authority_change_after_exec_is_a_new_executor() {
        use crate::event::{NsUid, Seccomp, UserNamespace};
        let mut c = ExecutorCache::new();
        let mut ev = sample_exec_event();
        type Change = (&'static str, fn(&mut Event));
        let changes: &[Change] = &[
            ("capset: an effective capability dropped", |e| {
                if let Some(c) = &mut e.executor.authority.capabilities {
                    c.effective = 1 << 13;
                    c.permitted = 1 << 13;
                }
            }),
            ("prctl(PR_CAPBSET_DROP)", |e| {
                if let Some(c) = &mut e.executor.authority.capabilities {
                    c.bounding &= !(1 << 21);
                }
            }),
            ("prctl(PR_SET_NO_NEW_PRIVS)", |e| {
                e.executor.authority.no_new_privs = Some(true)
            }),
            ("seccomp(SECCOMP_SET_MODE_FILTER)", |e| {
                e.executor.authority.seccomp = Some(Seccomp::Filter)
            }),
            ("setns into a user namespace", |e| {
                e.executor.authority.user_namespace = Some(UserNamespace {
                    inum: 4_026_532_500,
                    level: 1,
                    owner_uid: 1001,
                    uid: NsUid::Mapped(0),
                })
            }),
        ];
        let (_, mut before) = c.json(&ev.executor).expect("serializes");
        for (what, change) in changes {
            change(&mut ev);
            let (raw, fact) = c.json(&ev.executor).expect("serializes");
            assert_eq!(
                raw,
                &crate::escape::to_vec(&ev.executor).unwrap()[..],
                "{what}"
            );
            assert_ne!(fact, before, "{what}: same fingerprint");
            before = fact;
            // Unchanged since: the same fingerprint (a reference would do).
            assert_eq!(c.json(&ev.executor).map(|(_, f)| f), Some(fact), "{what}");
        }
    }

    #[test]
    fn threads_taking_turns_each_keep_their_entry() {
        let mut c = ExecutorCache::new();
        let mut ev = sample_exec_event();
        for i in 0..10 {
            ev.executor.tid = 100 + i % 2;
            line(&mut c, &ev);
        }
        assert_eq!(c.lru.len(), 2);
    }

    #[test]
    fn bounded_in_entries_and_bytes() {
        let mut c = ExecutorCache::new();
        let mut ev = sample_exec_event();
        for i in 0..ENTRIES + 50 {
            ev.executor.exec_id = Arc::from(format!("id-{i}"));
            ev.executor.argv = vec!["x".repeat(8 * 1024)].into();
            c.json(&ev.executor).unwrap();
        }
        assert!(c.lru.len() <= ENTRIES);
        assert!(c.bytes <= MAX_BYTES, "{} bytes", c.bytes);
        let counted: usize = c.lru.iter().map(|(_, (_, raw, _))| cost(raw)).sum();
        assert_eq!(counted, c.bytes, "exact accounting");
    }
}
