//! A PATH search is one action (`--exec-attempts fold`, the default).
//!
//! `execvp` (glibc), dash, Python's `subprocess` and friends run a bare
//! command name by trying `execve` on each `PATH` entry in turn until one
//! works: every miss is a failed exec (`ENOENT`, or `ENOTDIR`/`EACCES`, on
//! which they go on too). Emitted one by one, those misses are most of the
//! exec events of a build. Here the failed execs of a thread wait, briefly,
//! for what the thread does next:
//!
//! - a successful exec of the same base name with the same argv: the search
//!   found it. The attempts are folded into that exec's event as
//!   `action.path_search` (path and error each, in order): still in the
//!   stream, not on their own.
//! - another such failed exec: one more attempt, held too (at most
//!   [`MAX_ATTEMPTS`]; past it the held ones go out on their own).
//! - anything else from the process (a connect, a fork, an exit, an exec of
//!   another name, another thread's exec, a failure the search would not go
//!   on after), [`WINDOW`] passing without a word from the thread, the
//!   bound on what is held being reached, or the tracer stopping: the held
//!   attempts go out as their own events, in order, before whatever ended
//!   them. A typo, a probe for an absent tool, an explicit path that does not
//!   exist: each is still its own event.
//!
//! Events are attributed before they wait here, so a held attempt names the
//! executor as it was when it failed. Nothing is dropped: every attempt is
//! either its own event or an entry of a successful exec's `path_search`
//! (`tracer_exec_attempts` counts which).
use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use crate::{
    attribute::Attributed,
    decode::Record,
    event::{Action, ExecAction, Outcome, PathAttempt},
};

/// Attempts held per search; a longer search goes out in parts (the first
/// attempts as their own events, the rest folded).
pub(crate) const MAX_ATTEMPTS: usize = 32;

/// Searches held at once (processes with failed execs waiting).
pub(crate) const MAX_SEARCHES: usize = 4096;

/// How long a failed exec waits for its thread's next exec. A search's
/// `execve` calls follow each other within microseconds; this is slack for a
/// loaded host, short enough that a lone failure is not noticeably late.
pub(crate) const WINDOW: Duration = Duration::from_millis(100);

/// The errors a PATH search goes on after (glibc's `execvp` and dash go on
/// after these; other errors end the search).
const SEARCH_ERRORS: &[&str] = &["ENOENT", "ENOTDIR", "EACCES"];

/// What became of the failed execs that waited here.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SearchCounts {
    /// Folded into the successful exec that ended their search.
    pub folded: u64,
    /// Went out as their own events: no success of the name followed.
    pub emitted: u64,
    /// Went out as their own events early: too many held, or a search longer
    /// than [`MAX_ATTEMPTS`].
    pub overflowed: u64,
}

/// One process's search in progress.
struct Search {
    seq: u64,
    tid: u32,
    /// The failed execs, attributed, oldest first.
    held: Vec<Attributed>,
    bytes: usize,
    /// When its first attempt arrived here, and happened (kernel boot ns).
    admitted: Instant,
    first_boot_ns: u64,
}

pub(crate) struct Searches {
    /// By process (tgid): a search and the thread doing it.
    pending: HashMap<u32, Search>,
    /// (seq, tgid) in arrival order; entries whose seq no longer matches
    /// `pending` ended already.
    order: VecDeque<(u64, u32)>,
    max_bytes: usize,
    bytes: usize,
    seq: u64,
    /// The newest kernel time seen in the stream, and that of the record
    /// being handled (the ring is read in the order records were written).
    stream_boot_ns: u64,
    current_boot_ns: u64,
    pub counts: SearchCounts,
}

impl Searches {
    /// At most [`MAX_SEARCHES`] searches and `max_bytes` of held events.
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            pending: HashMap::new(),
            order: VecDeque::new(),
            max_bytes,
            bytes: 0,
            seq: 0,
            stream_boot_ns: 0,
            current_boot_ns: 0,
            counts: SearchCounts::default(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Bytes the held events take, as accounted.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Before `rec` is attributed: if it comes from a process with a search
    /// held and is not an exec (which [`Searches::admit`] judges once
    /// attributed), the search is over and its attempts go to `out` first.
    pub(crate) fn before(&mut self, rec: &Record, out: &mut Vec<Attributed>) {
        self.current_boot_ns = rec.ts_boot_ns();
        self.stream_boot_ns = self.stream_boot_ns.max(self.current_boot_ns);
        if self.pending.is_empty() {
            return;
        }
        let from = match rec {
            Record::Connect(c) => [Some(c.task.tgid), None],
            Record::Exit { task, .. } => [Some(task.tgid), None],
            // A fork record names the child; its parent (or, for a thread,
            // its process) is the one acting.
            Record::Fork { task, .. } => [Some(task.ptgid), Some(task.tgid)],
            // A usage sample is the tracer's look, not the process acting.
            Record::Exec(_)
            | Record::ConnectResult(_)
            | Record::Dns(_)
            | Record::Cgroup { .. }
            | Record::Usage(_) => {
                return;
            }
        };
        for pid in from.into_iter().flatten() {
            self.emit(pid, false, out);
        }
    }

    /// An attributed event: held (a failed exec a search goes on after),
    /// with attempts folded in (the exec that ended a search), or to `out`,
    /// after whatever search it ended.
    pub(crate) fn admit(&mut self, mut a: Attributed, now: Instant, out: &mut Vec<Attributed>) {
        let (pid, tid) = (a.event.executor.pid, a.event.executor.tid);
        let Action::Exec(x) = &mut a.event.action else {
            out.push(a);
            return;
        };
        let window_end = |s: &Search| s.first_boot_ns.saturating_add(window_ns());
        let continues = self.pending.get(&pid).map(|s| {
            s.tid == tid
                && self.current_boot_ns < window_end(s)
                && s.held.first().is_some_and(|f| same_search(f, x))
        });
        let (outcome, searchable) = (x.outcome, is_search_error(x));
        match outcome {
            Outcome::Failure if searchable => {
                match continues {
                    Some(false) => self.emit(pid, false, out),
                    Some(true)
                        if self
                            .pending
                            .get(&pid)
                            .is_some_and(|s| s.held.len() >= MAX_ATTEMPTS) =>
                    {
                        self.emit(pid, true, out);
                    }
                    _ => {}
                }
                self.hold(pid, tid, a, now, out);
            }
            Outcome::Success if continues == Some(true) => {
                if let Some(s) = self.take(pid) {
                    self.counts.folded += s.held.len() as u64;
                    x.path_search = s.held.iter().filter_map(attempt).collect();
                }
                out.push(a);
            }
            _ => {
                if continues.is_some() {
                    self.emit(pid, false, out);
                }
                out.push(a);
            }
        }
    }

    /// Searches past their wait go out (all of them when `all`, at shutdown).
    /// A wait is over when the stream has moved [`WINDOW`] past its first
    /// attempt, or, when `caught_up` (the ring was read to its end just
    /// now), when [`WINDOW`] has passed since it arrived here.
    pub(crate) fn expire(
        &mut self,
        now: Instant,
        caught_up: bool,
        all: bool,
        out: &mut Vec<Attributed>,
    ) {
        let window_ns = window_ns();
        while let Some(&(seq, pid)) = self.order.front() {
            let Some(s) = self.pending.get(&pid).filter(|s| s.seq == seq) else {
                self.order.pop_front();
                continue;
            };
            let over = all
                || self.stream_boot_ns >= s.first_boot_ns.saturating_add(window_ns)
                || (caught_up && now >= s.admitted + WINDOW);
            if !over {
                break;
            }
            self.order.pop_front();
            self.emit(pid, false, out);
        }
    }

    fn hold(&mut self, pid: u32, tid: u32, a: Attributed, now: Instant, out: &mut Vec<Attributed>) {
        let bytes = a.event.approx_bytes();
        // Room first: the oldest searches go out early.
        while !self.pending.is_empty()
            && ((self.pending.len() >= MAX_SEARCHES && !self.pending.contains_key(&pid))
                || self.bytes + bytes > self.max_bytes)
        {
            let Some((seq, oldest)) = self.order.pop_front() else {
                break;
            };
            if self.pending.get(&oldest).is_some_and(|s| s.seq == seq) {
                self.emit(oldest, true, out);
            }
        }
        if bytes > self.max_bytes {
            // Nothing this big waits.
            self.counts.overflowed += 1;
            out.push(a);
            return;
        }
        let (seq, order, first_boot_ns) = (&mut self.seq, &mut self.order, self.current_boot_ns);
        let s = self.pending.entry(pid).or_insert_with(|| {
            *seq += 1;
            order.push_back((*seq, pid));
            Search {
                seq: *seq,
                tid,
                held: Vec::new(),
                bytes: 0,
                admitted: now,
                first_boot_ns,
            }
        });
        s.held.push(a);
        s.bytes += bytes;
        self.bytes += bytes;
    }

    fn take(&mut self, pid: u32) -> Option<Search> {
        let s = self.pending.remove(&pid)?;
        self.bytes = self.bytes.saturating_sub(s.bytes);
        Some(s)
    }

    /// `pid`'s held attempts go out as their own events.
    fn emit(&mut self, pid: u32, early: bool, out: &mut Vec<Attributed>) {
        if let Some(s) = self.take(pid) {
            let n = s.held.len() as u64;
            if early {
                self.counts.overflowed += n;
            } else {
                self.counts.emitted += n;
            }
            out.extend(s.held);
        }
    }
}

fn window_ns() -> u64 {
    u64::try_from(WINDOW.as_nanos()).unwrap_or(u64::MAX)
}

fn is_search_error(x: &ExecAction) -> bool {
    x.error
        .as_deref()
        .is_some_and(|e| SEARCH_ERRORS.contains(&e))
}

/// The last component of a path.
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether `next` goes on with the search `first` began: the same base name
/// (not empty) and the same argv.
fn same_search(first: &Attributed, next: &ExecAction) -> bool {
    let Action::Exec(f) = &first.event.action else {
        return false;
    };
    let base = base_name(&f.binary);
    !base.is_empty() && base == base_name(&next.binary) && f.argv == next.argv
}

fn attempt(a: &Attributed) -> Option<PathAttempt> {
    match &a.event.action {
        Action::Exec(x) => Some(PathAttempt {
            path: x.binary.clone(),
            error: x.error.clone().unwrap_or_default(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
