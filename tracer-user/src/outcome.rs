//! Connect events wait here, briefly, for their result.
//!
//! The probes emit a connect when the cgroup hook sees it, before the kernel
//! acts, so no path (io_uring, TCP Fast Open, compat syscalls) escapes; the
//! result follows as a separate record with the socket's cookie: the syscall's
//! return, or the TCP socket leaving SYN_SENT. An event goes out as soon as
//! its result is in, or after `wait` with what is known then (`in_progress`
//! for a TCP handshake still under way, `unknown` otherwise). The number
//! waiting is bounded; when full, the oldest goes out early, counted.
use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use tracer_common::ConnectResultRecord;

use crate::{
    attribute::{Attributed, apply_result},
    event::{Action, Outcome},
};

struct Waiting {
    seq: u64,
    tcp: bool,
    attributed: Attributed,
}

/// What happened to connects that did not get their result in time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeCounts {
    /// Went out after the wait without a final result.
    pub timed_out: u64,
    /// Went out early because too many were waiting.
    pub overflowed: u64,
}

pub struct Outcomes {
    waiting: HashMap<u64, Waiting>,
    /// (deadline, cookie, seq) in arrival order; entries whose seq no longer
    /// matches `waiting` were answered already.
    deadlines: VecDeque<(Instant, u64, u64)>,
    wait: Duration,
    max: usize,
    seq: u64,
    pub counts: OutcomeCounts,
}

impl Outcomes {
    pub fn new(wait: Duration, max: usize) -> Self {
        Self {
            waiting: HashMap::new(),
            deadlines: VecDeque::new(),
            wait,
            max: max.max(1),
            seq: 0,
            counts: OutcomeCounts::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Route an attributed event: a connect whose result may still come waits;
    /// everything else (and whatever had to leave to make room) goes to `out`.
    pub fn admit(&mut self, a: Attributed, now: Instant, out: &mut Vec<Attributed>) {
        let Action::Connect(c) = &a.event.action else {
            out.push(a);
            return;
        };
        // Unconnected sends have no result to wait for.
        if c.method != "connect" || self.wait.is_zero() {
            out.push(a);
            return;
        }
        let cookie = c.socket_cookie;
        let tcp = c.protocol == "tcp";
        // A socket connected again (UDP may re-connect): the earlier one is done.
        if let Some(old) = self.waiting.remove(&cookie) {
            out.push(finish(old));
        }
        while self.waiting.len() >= self.max {
            let Some((_, cookie, seq)) = self.deadlines.pop_front() else {
                break;
            };
            if self.waiting.get(&cookie).is_some_and(|w| w.seq == seq)
                && let Some(w) = self.waiting.remove(&cookie)
            {
                self.counts.overflowed += 1;
                out.push(finish(w));
            }
        }
        self.seq += 1;
        self.deadlines
            .push_back((now + self.wait, cookie, self.seq));
        self.waiting.insert(
            cookie,
            Waiting {
                seq: self.seq,
                tcp,
                attributed: a,
            },
        );
    }

    /// A result arrived: its connect goes out with it. Results of connects not
    /// waiting here (begun before the tracer attached, or already out) are dropped.
    pub fn result(&mut self, r: &ConnectResultRecord) -> Option<Attributed> {
        let mut w = self.waiting.remove(&r.cookie)?;
        if let Action::Connect(c) = &mut w.attributed.event.action {
            apply_result(c, r);
            if c.outcome == Outcome::InProgress {
                // Only a syscall says so; the socket's answer may still come.
                self.waiting.insert(r.cookie, w);
                return None;
            }
        }
        Some(w.attributed)
    }

    /// Connects past their wait go out (all of them when `all`, at shutdown).
    pub fn expire(&mut self, now: Instant, all: bool, out: &mut Vec<Attributed>) {
        while let Some(&(deadline, cookie, seq)) = self.deadlines.front() {
            if !all && deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if self.waiting.get(&cookie).is_some_and(|w| w.seq == seq)
                && let Some(w) = self.waiting.remove(&cookie)
            {
                self.counts.timed_out += 1;
                out.push(finish(w));
            }
        }
    }
}

/// Out without a final result: a TCP handshake is still under way; anything
/// else is unknown unless a syscall already said `in_progress`.
fn finish(mut w: Waiting) -> Attributed {
    if let Action::Connect(c) = &mut w.attributed.event.action
        && c.outcome == Outcome::Unknown
        && w.tcp
    {
        c.outcome = Outcome::InProgress;
    }
    w.attributed
}
