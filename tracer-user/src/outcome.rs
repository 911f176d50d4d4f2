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
    /// What it costs against `max_bytes` ([`crate::event::Event::approx_bytes`]).
    bytes: usize,
    attributed: Attributed,
}

/// What happened to connects that did not get their result in time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutcomeCounts {
    /// Went out after the wait without a final result.
    pub timed_out: u64,
    /// Went out early because too many (or too many bytes) were waiting.
    pub overflowed: u64,
}

pub(crate) struct Outcomes {
    waiting: HashMap<u64, Waiting>,
    /// (deadline, cookie, seq) in arrival order; entries whose seq no longer
    /// matches `waiting` were answered already.
    deadlines: VecDeque<(Instant, u64, u64)>,
    wait: Duration,
    max: usize,
    max_bytes: usize,
    bytes: usize,
    seq: u64,
    pub counts: OutcomeCounts,
}

impl Outcomes {
    /// At most `max` events and `max_bytes` wait at once.
    pub(crate) fn new(wait: Duration, max: usize, max_bytes: usize) -> Self {
        Self {
            waiting: HashMap::new(),
            deadlines: VecDeque::new(),
            wait,
            max: max.max(1),
            max_bytes,
            bytes: 0,
            seq: 0,
            counts: OutcomeCounts::default(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Bytes the waiting events hold, as accounted.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn take(&mut self, cookie: u64) -> Option<Waiting> {
        let w = self.waiting.remove(&cookie)?;
        self.bytes = self.bytes.saturating_sub(w.bytes);
        Some(w)
    }

    /// Route an attributed event: a connect whose result may still come waits;
    /// everything else (and whatever had to leave to make room) goes to `out`.
    pub(crate) fn admit(&mut self, a: Attributed, now: Instant, out: &mut Vec<Attributed>) {
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
        if let Some(old) = self.take(cookie) {
            out.push(finish(old));
        }
        let bytes = a.event.approx_bytes();
        while !self.waiting.is_empty()
            && (self.waiting.len() >= self.max || self.bytes + bytes > self.max_bytes)
        {
            let Some((_, cookie, seq)) = self.deadlines.pop_front() else {
                break;
            };
            if self.waiting.get(&cookie).is_some_and(|w| w.seq == seq)
                && let Some(w) = self.take(cookie)
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
                bytes,
                attributed: a,
            },
        );
        self.bytes += bytes;
    }

    /// A result arrived: its connect goes out with it. Results of connects not
    /// waiting here (begun before the tracer attached, or already out) are dropped.
    pub(crate) fn result(&mut self, r: &ConnectResultRecord) -> Option<Attributed> {
        let mut w = self.take(r.cookie)?;
        if let Action::Connect(c) = &mut w.attributed.event.action {
            apply_result(c, r);
            if c.outcome == Outcome::InProgress {
                // Only a syscall says so; the socket's answer may still come.
                self.bytes += w.bytes;
                self.waiting.insert(r.cookie, w);
                return None;
            }
        }
        Some(w.attributed)
    }

    /// Connects past their wait go out (all of them when `all`, at shutdown).
    pub(crate) fn expire(&mut self, now: Instant, all: bool, out: &mut Vec<Attributed>) {
        while let Some(&(deadline, cookie, seq)) = self.deadlines.front() {
            if !all && deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if self.waiting.get(&cookie).is_some_and(|w| w.seq == seq)
                && let Some(w) = self.take(cookie)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tracer_common::{ConnectResultRecord, RESULT_FROM_STATE, RESULT_FROM_SYSCALL};

    use super::*;
    use crate::event::{
        ConnectAction, Endpoint, Event, ExecAction, Host, Kind, Outcome, Policy, sample_executor,
    };

    fn connect(cookie: u64, protocol: &str, method: &'static str) -> Attributed {
        Attributed {
            event: Event {
                event_id: crate::event::EventId::new(crate::event::UnixNanos(0), cookie as u32),
                time: crate::event::UnixNanos(0),
                kind: Kind::Connect,
                host: Arc::new(Host {
                    name: "h".into(),
                    boot_id: "b".into(),
                }),
                executor: sample_executor(),
                lineage: Vec::new(),
                action: Action::Connect(Box::new(ConnectAction {
                    method,
                    in_syscall: true,
                    protocol: protocol.into(),
                    family: "ipv4",
                    socket_family: None,
                    destination: Endpoint {
                        ip: "127.0.0.1".into(),
                        port: 80,
                        ..Default::default()
                    },
                    source: None,
                    outcome: Outcome::Unknown,
                    error: None,
                    outcome_from: None,
                    socket_cookie: cookie,
                    aggregate: None,
                })),
                policy: Arc::new(Policy {
                    tracer_version: "t",
                    config_digest: String::new(),
                }),
            },
            waiting_for_metadata: false,
            waiting_for_hash: false,
        }
    }

    fn result(cookie: u64, errno: i32, from: u16) -> ConnectResultRecord {
        ConnectResultRecord {
            cookie,
            errno,
            source_of: from,
            ..Default::default()
        }
    }

    fn outcome(a: &Attributed) -> (Outcome, Option<&str>) {
        match &a.event.action {
            Action::Connect(c) => (c.outcome, c.error.as_deref()),
            _ => panic!("not a connect"),
        }
    }

    #[test]
    fn results_join_their_connect_and_the_rest_waits_bounded() {
        let t0 = Instant::now();
        let wait = Duration::from_millis(100);
        let mut o = Outcomes::new(wait, 3, usize::MAX);
        let mut out = Vec::new();

        // Not a connect, or a send: straight through.
        let mut exec = connect(1, "tcp", "connect");
        exec.event.action = Action::Exec(ExecAction {
            binary: "/bin/true".into(),
            argv: Arc::from(Vec::<String>::new()),
            argv_truncated: false,
            outcome: Outcome::Success,
            error: None,
            path_search: Vec::new(),
        });
        o.admit(exec, t0, &mut out);
        o.admit(connect(2, "udp", "sendmsg"), t0, &mut out);
        assert_eq!(out.len(), 2);
        assert!(o.is_empty());
        out.clear();

        // A TCP connect: out with the socket's answer.
        o.admit(connect(10, "tcp", "connect"), t0, &mut out);
        assert!(out.is_empty());
        let a = o
            .result(&result(10, 111, RESULT_FROM_STATE))
            .expect("joined");
        assert_eq!(outcome(&a), (Outcome::Failure, Some("ECONNREFUSED")));
        // A result nobody waits for (a connect from before we attached).
        assert!(o.result(&result(99, 0, RESULT_FROM_STATE)).is_none());

        // EINPROGRESS from the syscall keeps it waiting for the socket.
        o.admit(connect(11, "tcp", "connect"), t0, &mut out);
        assert!(o.result(&result(11, 115, RESULT_FROM_SYSCALL)).is_none());
        let a = o.result(&result(11, 0, RESULT_FROM_STATE)).expect("joined");
        assert_eq!(outcome(&a), (Outcome::Success, None));

        // No answer within the wait: TCP is in progress, UDP unknown.
        o.admit(connect(12, "tcp", "connect"), t0, &mut out);
        o.admit(connect(13, "udp", "connect"), t0, &mut out);
        o.expire(t0 + wait / 2, false, &mut out);
        assert!(out.is_empty());
        o.expire(t0 + wait, false, &mut out);
        let got: Vec<_> = out.iter().map(outcome).collect();
        assert_eq!(got, [(Outcome::InProgress, None), (Outcome::Unknown, None)]);
        assert_eq!(o.counts.timed_out, 2);
        // A late answer finds nothing.
        assert!(o.result(&result(12, 0, RESULT_FROM_STATE)).is_none());
        out.clear();

        // Past the bound the oldest goes out early, counted.
        for cookie in 20..24 {
            o.admit(connect(cookie, "tcp", "connect"), t0, &mut out);
        }
        assert_eq!(o.len(), 3);
        assert_eq!(out.len(), 1);
        assert_eq!(o.counts.overflowed, 1);
        match &out[0].event.action {
            Action::Connect(c) => assert_eq!(c.socket_cookie, 20),
            _ => panic!(),
        }
        out.clear();
        // Shutdown: everything goes.
        o.expire(t0, true, &mut out);
        assert_eq!(out.len(), 3);
        assert!(o.is_empty());
        assert_eq!(o.bytes(), 0);
    }

    #[test]
    fn bounded_in_bytes_too() {
        let one = connect(1, "tcp", "connect").event.approx_bytes();
        let mut o = Outcomes::new(Duration::from_secs(5), 100, 2 * one + one / 2);
        let mut out = Vec::new();
        let t0 = Instant::now();
        for cookie in 1..=3 {
            o.admit(connect(cookie, "tcp", "connect"), t0, &mut out);
        }
        assert_eq!((o.len(), out.len(), o.counts.overflowed), (2, 1, 1));
        assert!(o.bytes() <= 2 * one + one / 2);
        // Answered: its bytes are given back.
        assert!(o.result(&result(2, 0, RESULT_FROM_STATE)).is_some());
        assert_eq!(o.bytes(), one);
    }

    #[test]
    fn no_wait_means_no_waiting() {
        let mut o = Outcomes::new(Duration::ZERO, 8, usize::MAX);
        let mut out = Vec::new();
        o.admit(connect(1, "tcp", "connect"), Instant::now(), &mut out);
        assert_eq!(out.len(), 1);
        assert!(o.is_empty());
    }
}
