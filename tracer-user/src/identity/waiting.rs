//! Events that wait, briefly and bounded, for identity that is on its way: a
//! pod's metadata from the watch, containerd's answer about a container, the
//! hash of the executed file. The identity stage's event cache, as Tetragon's
//! `eventcache`: the loop hands events in and sends what comes out.
//!
//! Events leave in the order they came: one that need not wait queues behind
//! those that do. Each waits at most its deadline, then goes out with what is
//! known (`identity.status: "partial"`, `hash: "pending"`). At most
//! `max_bytes` wait; past it the oldest goes out early, counted.
use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{attribute::Attributed, event::Event, identity::Changed};

pub struct Waiting {
    queue: VecDeque<Parked>,
    wait: Duration,
    hash_wait: Duration,
    max_bytes: usize,
    bytes: usize,
    /// Events that went out before their wait ended to stay within `max_bytes`.
    released_early: u64,
    /// What events wait for (the pod watch, containerd): an event is resolved
    /// again only when one of them, or the hasher, has news since it last was.
    sources: Vec<Arc<Changed>>,
    hashes_answered: u64,
}

struct Parked {
    deadline: Instant,
    event: Event,
    bytes: usize,
    /// It waits for something itself, rather than only queueing behind.
    waiting: bool,
    /// [`Waiting::epoch`] when it was last resolved; None: not since parked.
    resolved_at: Option<u64>,
}

impl Waiting {
    /// Events wait at most `wait` for metadata, `hash_wait` for a file hash,
    /// and `max_bytes` of them ([`Event::approx_bytes`]) at once.
    pub fn new(
        wait: Duration,
        hash_wait: Duration,
        max_bytes: usize,
        sources: Vec<Arc<Changed>>,
    ) -> Self {
        Self {
            queue: VecDeque::new(),
            wait,
            hash_wait,
            max_bytes,
            bytes: 0,
            released_early: 0,
            sources,
            hashes_answered: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes the waiting events hold, as accounted.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn released_early(&self) -> u64 {
        self.released_early
    }

    /// The hasher answered (its wake-ups are not lost, so a count of them is
    /// enough to know something changed).
    pub fn hash_answered(&mut self) {
        self.hashes_answered += 1;
    }

    /// Changes of everything an event may wait for, so far.
    fn epoch(&self) -> u64 {
        self.sources
            .iter()
            .fold(self.hashes_answered, |n, s| n.wrapping_add(s.generation()))
    }

    /// Queue `a` when it must wait or others wait before it; otherwise (and
    /// whatever had to leave to make room) it goes to `out`.
    pub fn admit(&mut self, a: Attributed, now: Instant, out: &mut Vec<Event>) {
        let wait = match (a.waiting_for_metadata, a.waiting_for_hash) {
            (true, true) => self.wait.max(self.hash_wait),
            (true, false) => self.wait,
            (false, true) => self.hash_wait,
            (false, false) => Duration::ZERO,
        };
        if wait.is_zero() && self.queue.is_empty() {
            out.push(a.event);
            return;
        }
        let bytes = a.event.approx_bytes();
        while self.bytes + bytes > self.max_bytes {
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            self.bytes = self.bytes.saturating_sub(p.bytes);
            self.released_early += u64::from(p.waiting);
            out.push(p.event);
        }
        self.bytes += bytes;
        self.queue.push_back(Parked {
            deadline: now + wait,
            event: a.event,
            bytes,
            waiting: !wait.is_zero(),
            resolved_at: None,
        });
    }

    /// Move to `out`, from the front, what `resolve` now finds complete or
    /// what waited long enough (everything when `all`), up to the first event
    /// that still waits.
    pub fn release(
        &mut self,
        now: Instant,
        all: bool,
        mut resolve: impl FnMut(&mut Event) -> bool,
        out: &mut Vec<Event>,
    ) {
        // Read before resolving: a change that lands meanwhile is seen next time.
        let epoch = self.epoch();
        while let Some(p) = self.queue.front_mut() {
            let done = !p.waiting
                || (p.resolved_at != Some(epoch) && {
                    p.resolved_at = Some(epoch);
                    resolve(&mut p.event)
                });
            if !(done || all || now >= p.deadline) {
                break;
            }
            if let Some(p) = self.queue.pop_front() {
                self.bytes = self.bytes.saturating_sub(p.bytes);
                out.push(p.event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u32, metadata: bool, hash: bool) -> Attributed {
        let mut ev = crate::event::sample_exec_event();
        ev.executor.pid = n;
        Attributed {
            event: ev,
            waiting_for_metadata: metadata,
            waiting_for_hash: hash,
        }
    }

    fn pids(out: &[Event]) -> Vec<u32> {
        out.iter().map(|e| e.executor.pid).collect()
    }

    #[test]
    fn arrival_order_deadlines_and_resolution_only_on_news() {
        let pods = Arc::new(Changed::default());
        let wait = Duration::from_secs(2);
        let mut w = Waiting::new(wait, wait / 8, usize::MAX, vec![pods.clone()]);
        let t0 = Instant::now();
        let mut out = Vec::new();
        // Nothing waits: straight out.
        w.admit(event(1, false, false), t0, &mut out);
        assert_eq!(pids(&out), [1]);
        out.clear();
        // One waits for its pod; the next queues behind it though it need not.
        w.admit(event(2, true, false), t0, &mut out);
        w.admit(event(3, false, false), t0, &mut out);
        assert!(out.is_empty());
        let mut asked = 0;
        w.release(
            t0,
            false,
            |_| {
                asked += 1;
                false
            },
            &mut out,
        );
        assert_eq!((asked, out.len()), (1, 0));
        // No news: not asked again.
        w.release(
            t0,
            false,
            |_| {
                asked += 1;
                false
            },
            &mut out,
        );
        assert_eq!(asked, 1);
        // The pod arrived: asked, resolved, both out in order.
        pods.signal();
        w.release(
            t0,
            false,
            |_| {
                asked += 1;
                true
            },
            &mut out,
        );
        assert_eq!((asked, pids(&out)), (2, vec![2, 3]));
        assert!(w.is_empty());
        assert_eq!(w.bytes(), 0);
        out.clear();
        // Past its deadline it goes out unresolved; a hash wait is shorter.
        w.admit(event(4, false, true), t0, &mut out);
        w.release(t0 + wait / 16, false, |_| false, &mut out);
        assert!(out.is_empty());
        w.hash_answered();
        w.release(t0 + wait / 8, false, |_| false, &mut out);
        assert_eq!(pids(&out), [4]);
        out.clear();
        // At shutdown everything goes.
        w.admit(event(5, true, false), t0, &mut out);
        w.release(t0, true, |_| false, &mut out);
        assert_eq!(pids(&out), [5]);
    }

    #[test]
    fn bounded_in_bytes_oldest_out_early() {
        let one = event(0, true, false).event.approx_bytes();
        let mut w = Waiting::new(Duration::from_secs(60), Duration::ZERO, 2 * one, vec![]);
        let (t0, mut out) = (Instant::now(), Vec::new());
        for n in 1..=4 {
            w.admit(event(n, true, false), t0, &mut out);
        }
        assert_eq!(pids(&out), [1, 2]);
        assert_eq!(w.released_early(), 2);
        assert!(w.bytes() <= 2 * one);
    }
}
