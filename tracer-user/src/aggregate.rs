//! `--aggregate-connects SECONDS`: repeated connects of one image to one
//! destination within a window become one summary event.
//!
//! Key: the executor's `exec_id`, and the destination (address, port),
//! protocol, family and method. The first connect of a key goes out at once,
//! as usual (evidence does not wait), and opens the key's window. Further
//! connects of the key within the window are folded: counted by outcome and
//! error, and only the last one is kept. When the window closes (its time
//! since the first connect has passed, seen on a timer tick or on a later
//! connect of the key), the process exits, the tracer stops, or the pending
//! set is over its bound (oldest first), a key that folded any connect goes
//! out as ONE summary: the last connect folded, with `action.aggregate`. So
//! every connect is counted once: total = connect events without `aggregate`
//! + the sum of the summaries' `aggregate.count`.
//!
//! Events come here last, after their waits (a connect's result, its pod's
//! metadata): each is folded with the outcome it would have gone out with.
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::event::{Action, Aggregate, Event, Kind, OutcomeCounts};

/// Most keys pending at once; past it the oldest goes out early.
pub(crate) const MAX_KEYS: usize = 16_384;

/// What makes two connects "the same connect, again".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    exec_id: Arc<str>,
    ip: String,
    port: u16,
    protocol: String,
    family: &'static str,
    method: &'static str,
}

impl Key {
    fn of(ev: &Event) -> Option<Key> {
        match (&ev.kind, &ev.action) {
            (Kind::Connect, Action::Connect(a)) if a.aggregate.is_none() => Some(Key {
                exec_id: ev.executor.exec_id.clone(),
                ip: a.destination.ip.clone(),
                port: a.destination.port,
                protocol: a.protocol.clone(),
                family: a.family,
                method: a.method,
            }),
            _ => None,
        }
    }

    fn bytes(&self) -> usize {
        // The key twice (map and order), the entry, the map's overhead.
        256 + 2 * (self.exec_id.len() + self.ip.len() + self.protocol.len())
    }
}

/// A key's open window.
#[derive(Debug)]
struct Entry {
    /// Its place in `order`.
    seq: u64,
    /// When the window opened: its first connect went out.
    opened: Instant,
    /// When that first connect happened (Unix ns).
    first_ns: i128,
    pid: u32,
    /// Connects folded so far; none until the second connect of the window.
    folded: Option<Folded>,
}

#[derive(Debug)]
struct Folded {
    aggregate: Aggregate,
    /// The last connect folded: the summary is this event.
    last: Event,
    last_bytes: usize,
}

/// Pending windows, bounded in keys and bytes.
pub(crate) struct Aggregates {
    window: Duration,
    max_keys: usize,
    max_bytes: usize,
    entries: HashMap<Key, Entry>,
    /// Keys by when their window opened, oldest first.
    order: BTreeMap<u64, Key>,
    /// Open windows of each process, to close them when it exits.
    by_pid: HashMap<u32, Vec<u64>>,
    next_seq: u64,
    bytes: usize,
    /// Summaries that went out before their window closed because the
    /// pending set was full.
    pub(crate) flushed_early: u64,
}

impl Aggregates {
    /// Windows of `window_s` seconds (at least 1), at most `max_keys` keys
    /// and about `max_bytes` bytes pending.
    pub(crate) fn new(window_s: u64, max_keys: usize, max_bytes: usize) -> Self {
        Self {
            window: Duration::from_secs(window_s.max(1)),
            max_keys: max_keys.max(1),
            max_bytes,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            by_pid: HashMap::new(),
            next_seq: 0,
            bytes: 0,
            flushed_early: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn window_ns(&self) -> i128 {
        i128::try_from(self.window.as_nanos()).unwrap_or(i128::MAX)
    }

    /// An event on its way out, at `now`: passed on to `emit` (itself, and
    /// any summary it closes), or folded.
    pub(crate) fn admit(&mut self, ev: Event, now: Instant, emit: &mut impl FnMut(Event)) {
        let Some(key) = Key::of(&ev) else {
            return emit(ev);
        };
        if let Some(e) = self.entries.get(&key) {
            let expired = now.saturating_duration_since(e.opened) >= self.window
                || ev.unix_ns().saturating_sub(e.first_ns) >= self.window_ns();
            if expired {
                // Its window is over: the summary, then this opens the next one.
                self.close(&key, emit);
            } else {
                self.fold(&key, ev);
                self.enforce_bounds(emit);
                return;
            }
        }
        self.open(key, &ev, now, emit);
        emit(ev);
    }

    fn open(&mut self, key: Key, ev: &Event, now: Instant, emit: &mut impl FnMut(Event)) {
        while self.entries.len() >= self.max_keys {
            if !self.close_oldest(emit) {
                break;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let pid = ev.executor.pid;
        self.bytes += key.bytes();
        self.order.insert(seq, key.clone());
        self.by_pid.entry(pid).or_default().push(seq);
        self.entries.insert(
            key,
            Entry {
                seq,
                opened: now,
                first_ns: ev.unix_ns(),
                pid,
                folded: None,
            },
        );
        self.enforce_bounds(emit);
    }

    fn fold(&mut self, key: &Key, ev: Event) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        let Action::Connect(a) = &ev.action else {
            return;
        };
        let (outcome, error) = (a.outcome, a.error.clone());
        let bytes = ev.approx_bytes();
        match &mut e.folded {
            Some(f) => {
                self.bytes = self.bytes.saturating_sub(f.last_bytes) + bytes;
                let g = &mut f.aggregate;
                g.count += 1;
                g.last_time = ev.time;
                g.outcomes.add(outcome);
                if let Some(err) = error {
                    *g.errors.entry(err).or_default() += 1;
                }
                f.last = ev;
                f.last_bytes = bytes;
            }
            None => {
                self.bytes += bytes;
                let mut outcomes = OutcomeCounts::default();
                outcomes.add(outcome);
                let errors = error.into_iter().map(|e| (e, 1)).collect();
                e.folded = Some(Folded {
                    aggregate: Aggregate {
                        window_s: self.window.as_secs(),
                        count: 1,
                        first_time: ev.time,
                        last_time: ev.time,
                        outcomes,
                        errors,
                    },
                    last: ev,
                    last_bytes: bytes,
                });
            }
        }
    }

    /// Over a bound: the oldest windows go out early.
    fn enforce_bounds(&mut self, emit: &mut impl FnMut(Event)) {
        while (self.bytes > self.max_bytes || self.entries.len() > self.max_keys)
            && self.close_oldest(emit)
        {}
    }

    /// Close the oldest window before its time (counted when it had folded any).
    fn close_oldest(&mut self, emit: &mut impl FnMut(Event)) -> bool {
        let Some((_, key)) = self.order.first_key_value() else {
            return false;
        };
        let key = key.clone();
        if self.close(&key, emit) {
            self.flushed_early += 1;
        }
        true
    }

    /// Close `key`'s window: its summary goes out if it folded any connect.
    /// Returns whether one did.
    fn close(&mut self, key: &Key, emit: &mut impl FnMut(Event)) -> bool {
        let Some(e) = self.entries.remove(key) else {
            return false;
        };
        self.order.remove(&e.seq);
        self.bytes = self.bytes.saturating_sub(key.bytes());
        if let Some(seqs) = self.by_pid.get_mut(&e.pid) {
            seqs.retain(|s| *s != e.seq);
            if seqs.is_empty() {
                self.by_pid.remove(&e.pid);
            }
        }
        let Some(f) = e.folded else {
            return false;
        };
        self.bytes = self.bytes.saturating_sub(f.last_bytes);
        let mut ev = f.last;
        if let Action::Connect(a) = &mut ev.action {
            a.aggregate = Some(Box::new(f.aggregate));
        }
        emit(ev);
        true
    }

    /// Windows whose time is over at `now` (all of them when `all`: the
    /// tracer stops) go out.
    pub(crate) fn expire(&mut self, now: Instant, all: bool, emit: &mut impl FnMut(Event)) {
        while let Some((_, key)) = self.order.first_key_value() {
            let over = all
                || self
                    .entries
                    .get(key)
                    .is_none_or(|e| now.saturating_duration_since(e.opened) >= self.window);
            if !over {
                // Opened in order: the rest are younger.
                break;
            }
            let key = key.clone();
            if !self.close(&key, emit) && !self.entries.contains_key(&key) {
                // Not an entry (cannot happen): drop the stray order slot.
                self.order.retain(|_, k| *k != key);
            }
        }
    }

    /// Process `pid` exited: its windows close now.
    pub(crate) fn exited(&mut self, pid: u32, emit: &mut impl FnMut(Event)) {
        let Some(seqs) = self.by_pid.remove(&pid) else {
            return;
        };
        for seq in seqs {
            if let Some(key) = self.order.get(&seq).cloned() {
                self.close(&key, emit);
            }
        }
    }
}

#[cfg(test)]
mod tests;
