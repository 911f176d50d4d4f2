//! The aggregation state machine, driven by hand: connects in, events out.
use std::sync::Arc;

use super::*;
use crate::event::{
    ConnectAction, Endpoint, EventId, Host, Outcome, Policy, UnixNanos, sample_exec_event,
    sample_executor,
};

const SEC: i128 = 1_000_000_000;

/// A connect of process `pid` (image `exec_id`) to `ip:port` at `t_ns`.
fn connect(exec_id: &str, pid: u32, ip: &str, port: u16, t_ns: i128, outcome: Outcome) -> Event {
    let mut executor = sample_executor();
    executor.exec_id = Arc::from(exec_id);
    executor.pid = pid;
    let error = (outcome == Outcome::Failure).then(|| "ECONNREFUSED".to_owned());
    Event {
        event_id: EventId::new(UnixNanos(t_ns), pid),
        time: UnixNanos(t_ns),
        kind: Kind::Connect,
        host: Arc::new(Host {
            name: "h".into(),
            boot_id: "b".into(),
        }),
        executor,
        lineage: Vec::new(),
        action: Action::Connect(Box::new(ConnectAction {
            method: "connect",
            in_syscall: true,
            protocol: "tcp".into(),
            family: "ipv4",
            socket_family: None,
            destination: Endpoint {
                ip: ip.into(),
                port,
                ..Default::default()
            },
            source: None,
            outcome,
            error,
            outcome_from: Some("syscall"),
            socket_cookie: u64::try_from(t_ns).unwrap_or(0),
            aggregate: None,
        })),
        policy: Arc::new(Policy {
            tracer_version: "t",
            config_digest: String::new(),
        }),
    }
}

/// What came out: (port, aggregate) per event, in order.
#[derive(Default)]
struct Out(Vec<Event>);

impl Out {
    fn summary(&self) -> Vec<(u16, Option<Aggregate>)> {
        self.0
            .iter()
            .map(|e| match &e.action {
                Action::Connect(a) => (a.destination.port, a.aggregate.as_deref().cloned()),
                _ => (0, None),
            })
            .collect()
    }

    /// Connects accounted for: events without `aggregate` plus the counts.
    fn total(&self) -> u64 {
        self.summary()
            .iter()
            .map(|(_, a)| a.as_ref().map_or(1, |a| a.count))
            .sum()
    }
}

/// Steps of a scenario.
enum Step {
    /// A connect: exec_id, pid, port, seconds after the start (event and clock).
    Connect(&'static str, u32, u16, u64, Outcome),
    /// A timer tick this many seconds after the start.
    Tick(u64),
    /// Process `pid` exited.
    Exit(u32),
    /// The tracer stops.
    Stop,
}

struct Case {
    name: &'static str,
    window_s: u64,
    max_keys: usize,
    steps: Vec<Step>,
    /// (port, Some(count)) for a summary, (port, None) for a plain connect.
    want: Vec<(u16, Option<u64>)>,
    /// Summaries that went out early.
    early: u64,
}

fn run(c: &Case) -> (Out, Aggregates) {
    let start = Instant::now();
    let mut agg = Aggregates::new(c.window_s, c.max_keys, usize::MAX);
    let mut out = Out::default();
    let mut emit = |e: Event| out.0.push(e);
    for step in &c.steps {
        match step {
            Step::Connect(exec_id, pid, port, t, outcome) => {
                let t_ns = 1_000 * SEC + i128::from(*t) * SEC;
                let ev = connect(exec_id, *pid, "127.0.0.1", *port, t_ns, *outcome);
                agg.admit(ev, start + Duration::from_secs(*t), &mut emit);
            }
            Step::Tick(t) => agg.expire(start + Duration::from_secs(*t), false, &mut emit),
            Step::Exit(pid) => agg.exited(*pid, &mut emit),
            Step::Stop => agg.expire(start, true, &mut emit),
        }
    }
    (out, agg)
}

#[test]
fn scenarios() {
    use Outcome::{Failure as F, Success as S};
    use Step::{Connect as C, Exit, Stop, Tick};
    let cases = [
        Case {
            name: "same key within the window folds; the summary comes when it closes",
            window_s: 2,
            max_keys: 16,
            steps: vec![
                C("a", 1, 80, 0, S),
                C("a", 1, 80, 0, S),
                C("a", 1, 80, 1, F),
                Tick(1),
                Tick(2),
            ],
            want: vec![(80, None), (80, Some(2))],
            early: 0,
        },
        Case {
            name: "a different destination is its own key",
            window_s: 2,
            max_keys: 16,
            steps: vec![
                C("a", 1, 80, 0, S),
                C("a", 1, 81, 0, S),
                C("a", 1, 80, 0, S),
                Stop,
            ],
            want: vec![(80, None), (81, None), (80, Some(1))],
            early: 0,
        },
        Case {
            name: "a different image is its own key",
            window_s: 2,
            max_keys: 16,
            steps: vec![C("a", 1, 80, 0, S), C("b", 2, 80, 0, S), Stop],
            want: vec![(80, None), (80, None)],
            early: 0,
        },
        Case {
            name: "a lone connect makes no summary",
            window_s: 1,
            max_keys: 16,
            steps: vec![C("a", 1, 80, 0, S), Tick(5), Stop],
            want: vec![(80, None)],
            early: 0,
        },
        Case {
            name: "a connect after the window closes it and opens the next",
            window_s: 2,
            max_keys: 16,
            steps: vec![
                C("a", 1, 80, 0, S),
                C("a", 1, 80, 1, S),
                C("a", 1, 80, 3, S),
                C("a", 1, 80, 3, S),
                Stop,
            ],
            want: vec![(80, None), (80, Some(1)), (80, None), (80, Some(1))],
            early: 0,
        },
        Case {
            name: "exit flushes the process's windows, and only its",
            window_s: 60,
            max_keys: 16,
            steps: vec![
                C("a", 1, 80, 0, S),
                C("a", 1, 80, 0, S),
                C("a", 1, 81, 0, S),
                C("a", 1, 81, 0, S),
                C("b", 2, 80, 0, S),
                C("b", 2, 80, 0, S),
                Exit(1),
            ],
            want: vec![
                (80, None),
                (81, None),
                (80, None),
                (80, Some(1)),
                (81, Some(1)),
            ],
            early: 0,
        },
        Case {
            name: "full: the oldest window goes out early, counted",
            window_s: 60,
            max_keys: 2,
            steps: vec![
                C("a", 1, 80, 0, S),
                C("a", 1, 80, 0, S),
                C("a", 1, 81, 0, S),
                C("a", 1, 82, 0, S),
                C("a", 1, 81, 0, S),
                Stop,
            ],
            want: vec![
                (80, None),
                (81, None),
                (80, Some(1)),
                (82, None),
                (81, Some(1)),
            ],
            early: 1,
        },
    ];
    for c in &cases {
        let (out, agg) = run(c);
        let got: Vec<(u16, Option<u64>)> = out
            .summary()
            .into_iter()
            .map(|(p, a)| (p, a.map(|a| a.count)))
            .collect();
        assert_eq!(got, c.want, "{}", c.name);
        assert_eq!(agg.flushed_early, c.early, "{}", c.name);
        let connects = c
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Connect(..)))
            .count() as u64;
        if agg.is_empty() {
            assert_eq!(
                out.total(),
                connects,
                "{}: every connect counted once",
                c.name
            );
            assert_eq!(agg.bytes(), 0, "{}", c.name);
        }
    }
}

#[test]
fn summary_carries_counts_times_and_the_last_connect() {
    let start = Instant::now();
    let mut agg = Aggregates::new(5, 16, usize::MAX);
    let mut out = Vec::new();
    let mut emit = |e: Event| out.push(e);
    let outcomes = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::InProgress,
        Outcome::Failure,
        Outcome::Success,
    ];
    for (i, o) in outcomes.iter().enumerate() {
        let t = 10 * SEC + i as i128 * SEC / 10;
        agg.admit(connect("a", 1, "10.0.0.1", 443, t, *o), start, &mut emit);
    }
    assert_eq!(agg.len(), 1);
    agg.expire(start + Duration::from_secs(5), false, &mut emit);
    assert!(agg.is_empty());
    assert_eq!(out.len(), 2);
    let Action::Connect(a) = &out[1].action else {
        panic!("not a connect")
    };
    let g = a
        .aggregate
        .as_deref()
        .cloned()
        .unwrap_or_else(|| panic!("no aggregate"));
    assert_eq!(g.window_s, 5);
    assert_eq!(g.count, 4);
    assert_eq!(g.first_time, UnixNanos(10 * SEC + SEC / 10));
    assert_eq!(g.last_time, UnixNanos(10 * SEC + 4 * SEC / 10));
    assert_eq!(
        g.outcomes,
        OutcomeCounts {
            success: 1,
            in_progress: 1,
            failure: 2,
            unknown: 0
        }
    );
    assert_eq!(g.errors.get("ECONNREFUSED"), Some(&2));
    // The summary is the last connect folded.
    assert_eq!(out[1].time, UnixNanos(10 * SEC + 4 * SEC / 10));
    assert_eq!(a.outcome, Outcome::Success);
    let v = serde_json::to_value(&out[1]).unwrap_or_default();
    assert_eq!(v["action"]["aggregate"]["count"], 4);
    assert_eq!(v["action"]["aggregate"]["window_s"], 5);
    assert_eq!(v["action"]["aggregate"]["outcomes"]["failure"], 2);
    assert_eq!(v["action"]["aggregate"]["errors"]["ECONNREFUSED"], 2);
    assert!(
        v["action"]["aggregate"]["first_time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    // The first connect carries none.
    let first = serde_json::to_value(&out[0]).unwrap_or_default();
    assert!(first["action"].get("aggregate").is_none());
}

#[test]
fn other_kinds_pass_through() {
    let mut agg = Aggregates::new(5, 16, usize::MAX);
    let mut out = Vec::new();
    agg.admit(sample_exec_event(), Instant::now(), &mut |e| out.push(e));
    agg.admit(sample_exec_event(), Instant::now(), &mut |e| out.push(e));
    assert_eq!(out.len(), 2);
    assert!(agg.is_empty());
}

#[test]
fn byte_bound_flushes_oldest_and_keeps_counts() {
    let start = Instant::now();
    // Room for about one folded event.
    let one = connect("a", 1, "127.0.0.1", 80, 0, Outcome::Success).approx_bytes();
    let mut agg = Aggregates::new(60, 1000, one + 1024);
    let mut out = Vec::new();
    let mut emit = |e: Event| out.push(e);
    let mut n = 0u64;
    for port in [80, 81, 82] {
        for _ in 0..3 {
            agg.admit(
                connect("a", 1, "127.0.0.1", port, 0, Outcome::Success),
                start,
                &mut emit,
            );
            n += 1;
        }
    }
    assert!(agg.bytes() <= one + 1024, "{}", agg.bytes());
    assert!(agg.flushed_early >= 2, "{}", agg.flushed_early);
    agg.expire(start, true, &mut emit);
    let total: u64 = out
        .iter()
        .map(|e| match &e.action {
            Action::Connect(a) => a.aggregate.as_ref().map_or(1, |g| g.count),
            _ => 0,
        })
        .sum();
    assert_eq!(total, n);
    assert_eq!(agg.bytes(), 0);
}

/// A summary names the destination's Service and pod as its connects did
/// (`action.destination.service`, `.pod`): they ride on the last connect.
#[test]
fn summary_carries_the_destination_names() {
    use crate::event::{DestPod, DestService};
    let start = Instant::now();
    let mut agg = Aggregates::new(5, 16, usize::MAX);
    let mut out = Vec::new();
    let mut emit = |e: Event| out.push(e);
    for i in 0..3 {
        let mut ev = connect("a", 1, "10.96.3.7", 443, 10 * SEC + i, Outcome::Success);
        if let Action::Connect(a) = &mut ev.action {
            a.destination.service = Some(Arc::new(DestService {
                namespace: "shop".into(),
                name: "cart".into(),
                port_name: Some("https".into()),
            }));
            a.destination.pod = Some(Arc::new(DestPod {
                namespace: "shop".into(),
                name: "cart-0".into(),
                spiffe_id: Some("spiffe://cluster.local/ns/shop/sa/cart".into()),
            }));
        }
        agg.admit(ev, start, &mut emit);
    }
    agg.expire(start + Duration::from_secs(5), false, &mut emit);
    assert_eq!(out.len(), 2);
    for ev in &out {
        let v = serde_json::to_value(ev).unwrap_or_default();
        let d = &v["action"]["destination"];
        assert_eq!(d["service"]["name"], "cart");
        assert_eq!(d["service"]["port_name"], "https");
        assert_eq!(d["pod"]["name"], "cart-0");
        assert_eq!(
            d["pod"]["spiffe_id"],
            "spiffe://cluster.local/ns/shop/sa/cart"
        );
    }
    let v = serde_json::to_value(&out[1]).unwrap_or_default();
    assert_eq!(v["action"]["aggregate"]["count"], 2);
}
