//! What happens to records after the ring buffer: attribution, then the
//! waits (a connect's result, an event's identity or file hash), then the sinks.
use std::time::Instant;

use crate::{
    aggregate::Aggregates,
    attribute::{Attributed, Attributor},
    decode::Record,
    dns::{self, DnsNames},
    event::Action,
    event::{BudgetCounts, Event},
    identity::waiting::Waiting,
    metrics::{KindLabel, Metrics, StatusLabel},
    outcome::Outcomes,
    search::Searches,
    sink::Sinks,
};

/// Emit an event and count it.
fn emit(sinks: &mut Sinks, m: &Metrics, ev: &Event) {
    m.events
        .get_or_create(&KindLabel {
            kind: ev.kind.as_str().to_owned(),
        })
        .inc();
    m.identity
        .get_or_create(&StatusLabel {
            status: ev.executor.identity.status.as_str().to_owned(),
        })
        .inc();
    sinks.write_event(ev);
}

/// Most connect events waiting for their result at once; past it the oldest
/// goes out early (counted), so a flood of half-open connects costs bounded memory.
pub(super) const CONNECTS_WAITING_MAX: usize = 16_384;

/// After attribution: connects wait for their result ([`Outcomes`]), then every
/// event may wait for its identity ([`Waiting`]), then the sinks.
pub(super) struct Flow {
    pub(super) outcomes: Outcomes,
    pub(super) parked: Waiting,
    /// Reused between batches.
    pub(super) ready: Vec<Attributed>,
    pub(super) out: Vec<Event>,
    /// `--aggregate-connects`: the last stage, after every wait, so connects
    /// are folded with the outcome and identity they would have gone out with.
    pub(super) aggregates: Option<Aggregates>,
    /// Names of destinations, from the DNS answers each network namespace got.
    pub(super) dns: DnsNames,
    /// `--exec-attempts fold`: failed execs waiting for the rest of their
    /// PATH search. The first stage after attribution, so a folded exec
    /// waits for its result or identity like any other.
    pub(super) searches: Option<Searches>,
    /// Reused: events a search let go.
    pub(super) searched: Vec<Attributed>,
}

impl Flow {
    /// Budget drops so far, the table's and the waiting queues'.
    pub(super) fn budget_counts(&self, attributor: &Attributor) -> BudgetCounts {
        let t = attributor.table.drops();
        BudgetCounts {
            processes_evicted: t.live,
            exited_evicted_early: t.exited_early,
            argv_cut: t.argv_cut,
            released_early: self.parked.released_early() + self.outcomes.counts.overflowed,
        }
    }

    pub(super) fn is_idle(&self) -> bool {
        !self.searching()
            && self.outcomes.is_empty()
            && self.parked.is_empty()
            && self.aggregates.as_ref().is_none_or(Aggregates::is_empty)
    }

    /// Whether failed execs wait for the rest of their search.
    pub(super) fn searching(&self) -> bool {
        self.searches.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// Bytes held by events that wait: for a search's end, a result, an
    /// identity, a window.
    pub(super) fn waiting_bytes(&self) -> usize {
        self.searches.as_ref().map_or(0, Searches::bytes)
            + self.parked.bytes()
            + self.outcomes.bytes()
            + self.aggregates.as_ref().map_or(0, Aggregates::bytes)
    }

    pub(super) fn records(
        &mut self,
        batch: &mut Vec<Record>,
        attributor: &mut Attributor,
        sinks: &mut Sinks,
        m: &Metrics,
    ) {
        let now = Instant::now();
        for rec in batch.drain(..) {
            match rec {
                Record::ConnectResult(r) => self.ready.extend(self.outcomes.result(&r)),
                Record::Dns(d) => self.dns.message(&d, now),
                rec => {
                    // Where the connect goes, in the caller's network namespace.
                    let dest = match &rec {
                        Record::Connect(c) => {
                            self.dns.socket(c.cookie, c.dport, c.task.net_ns);
                            Some((c.task.net_ns, dns::ip_of(c.family, &c.daddr)))
                        }
                        _ => None,
                    };
                    if let Some(s) = &mut self.searches {
                        // A search this record ends goes out before it.
                        s.before(&rec, &mut self.searched);
                    }
                    if let (Record::Exit { task, .. }, Some(agg)) = (&rec, &mut self.aggregates) {
                        // What it folded goes out now, before its exit.
                        agg.exited(task.tgid, &mut |ev| emit(sinks, m, &ev));
                    }
                    if let Some(mut a) = attributor.handle(rec) {
                        if let (Some((netns, ip)), Action::Connect(c)) = (dest, &mut a.event.action)
                            && let Some((name, cname)) = self.dns.lookup(netns, ip, now)
                        {
                            c.destination.name = Some(name);
                            c.destination.cname = cname;
                        }
                        match &mut self.searches {
                            Some(s) => s.admit(a, now, &mut self.searched),
                            None => self.searched.push(a),
                        }
                    }
                    for a in self.searched.drain(..) {
                        self.outcomes.admit(a, now, &mut self.ready);
                    }
                }
            }
            for a in self.ready.drain(..) {
                self.parked.admit(a, now, &mut self.out);
            }
            self.send(sinks, m);
        }
        // Searches the stream has moved well past are over.
        self.end_searches(now, false, false);
        self.send(sinks, m);
        // What resolved meanwhile (a hash, a pod) goes out now, in order, with
        // whatever queued behind it.
        self.retry(attributor, sinks, m, false);
    }

    /// Waiting events whose identity came, or whose wait is over (all of
    /// them when `all`), go out.
    pub(super) fn retry(
        &mut self,
        attributor: &mut Attributor,
        sinks: &mut Sinks,
        m: &Metrics,
        all: bool,
    ) {
        if self.parked.is_empty() {
            return;
        }
        self.parked.release(
            Instant::now(),
            all,
            |ev| attributor.reresolve(ev),
            &mut self.out,
        );
        self.send(sinks, m);
    }

    pub(super) fn send(&mut self, sinks: &mut Sinks, m: &Metrics) {
        match &mut self.aggregates {
            Some(agg) => {
                let now = Instant::now();
                for ev in self.out.drain(..) {
                    agg.admit(ev, now, &mut |ev| emit(sinks, m, &ev));
                }
            }
            None => {
                for ev in self.out.drain(..) {
                    emit(sinks, m, &ev);
                }
            }
        }
    }

    /// Time-based progress: connects past their wait, parked events resolved
    /// or past theirs, aggregation windows over (everything when `all`).
    /// Searches past their wait (see [`Searches::expire`]) go on to the
    /// connect and identity waits, and from there to `out`.
    fn end_searches(&mut self, now: Instant, caught_up: bool, all: bool) {
        if let Some(s) = &mut self.searches {
            s.expire(now, caught_up, all, &mut self.searched);
        }
        for a in self.searched.drain(..) {
            self.outcomes.admit(a, now, &mut self.ready);
        }
        for a in self.ready.drain(..) {
            self.parked.admit(a, now, &mut self.out);
        }
    }

    /// `caught_up`: the ring was just read to its end, so a search's thread
    /// has had its whole wait to go on, and did not.
    pub(super) fn tick(
        &mut self,
        attributor: &mut Attributor,
        sinks: &mut Sinks,
        m: &Metrics,
        caught_up: bool,
        all: bool,
    ) {
        let now = Instant::now();
        self.end_searches(now, caught_up, all);
        self.outcomes.expire(now, all, &mut self.ready);
        for a in self.ready.drain(..) {
            self.parked.admit(a, now, &mut self.out);
        }
        self.send(sinks, m);
        self.retry(attributor, sinks, m, all);
        if let Some(agg) = &mut self.aggregates {
            agg.expire(Instant::now(), all, &mut |ev| emit(sinks, m, &ev));
        }
    }
}
