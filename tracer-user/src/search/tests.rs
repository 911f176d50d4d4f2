use std::sync::Arc;

use tracer_common::{ConnectRecord, TaskInfo};

use super::*;
use crate::event::{ConnectAction, Kind, sample_exec_event};

/// What a process does, in the order the tracer reads it.
#[derive(Clone, Copy)]
enum Step {
    /// pid, tid, path, errno name.
    Fail(u32, u32, &'static str, &'static str),
    /// pid, tid, path.
    Exec(u32, u32, &'static str),
    /// An exec of the same path with other argv.
    ExecOtherArgv(u32, u32, &'static str),
    Connect(u32),
    /// A fork by this process.
    Fork(u32),
    Exit(u32),
    /// Wall time passes (ms since the start), the ring read to its end or
    /// not (records still unread are from before).
    Tick(u64, bool),
    /// Only the stream moves on: a record of another process this many ms in.
    Stream(u64),
    /// The next records happen this many ms in (nothing read meanwhile).
    Later(u64),
    Stop,
}
use Step::*;

fn task(pid: u32, tid: u32) -> TaskInfo {
    TaskInfo {
        tgid: pid,
        tid,
        ptgid: 1,
        ..TaskInfo::default()
    }
}

fn exec_event(pid: u32, tid: u32, path: &str, argv: &[&str], error: Option<&str>) -> Attributed {
    let mut ev = sample_exec_event();
    ev.executor.pid = pid;
    ev.executor.tid = tid;
    ev.action = Action::Exec(ExecAction {
        binary: path.into(),
        argv: argv
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
            .into(),
        argv_truncated: false,
        outcome: if error.is_some() {
            Outcome::Failure
        } else {
            Outcome::Success
        },
        error: error.map(str::to_owned),
        path_search: Vec::new(),
    });
    Attributed {
        event: ev,
        waiting_for_metadata: false,
        waiting_for_hash: false,
    }
}

fn connect_event(pid: u32) -> Attributed {
    let mut a = exec_event(pid, pid, "/x", &[], None);
    a.event.kind = Kind::Connect;
    a.event.action = Action::Connect(Box::new(ConnectAction {
        method: "connect",
        in_syscall: true,
        protocol: "tcp".into(),
        family: "ipv4",
        socket_family: None,
        destination: Default::default(),
        source: None,
        outcome: Outcome::Success,
        error: None,
        outcome_from: None,
        socket_cookie: 1,
        aggregate: None,
    }));
    a
}

/// One line per event out: `fail <path> <err>`, `exec <path>` with
/// ` [<path> <err>, ...]` when it folded attempts, or `connect <pid>`.
fn describe(a: &Attributed) -> String {
    match &a.event.action {
        Action::Exec(x) if x.outcome == Outcome::Failure => {
            format!("fail {} {}", x.binary, x.error.as_deref().unwrap_or(""))
        }
        Action::Exec(x) if x.path_search.is_empty() => format!("exec {}", x.binary),
        Action::Exec(x) => format!(
            "exec {} [{}]",
            x.binary,
            x.path_search
                .iter()
                .map(|p| format!("{} {}", p.path, p.error))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => format!("connect {}", a.event.executor.pid),
    }
}

/// Feed `steps` the way `run::flow` does; the events that came out, described.
fn run(steps: &[Step], max_bytes: usize) -> (Vec<String>, SearchCounts) {
    let t0 = Instant::now();
    let ms = |n: u64| Duration::from_millis(n);
    let mut s = Searches::new(max_bytes);
    let mut out = Vec::new();
    let mut now = t0;
    let mut boot_ns = 1_000_000_000u64;
    let at = |n: u64| 1_000_000_000 + n * 1_000_000;
    for step in steps {
        let exec_rec = |pid, tid| {
            let mut rec = tracer_common::ExecRecord::default();
            rec.header.ts_boot_ns = boot_ns;
            rec.task = task(pid, tid);
            Record::Exec(crate::decode::Exec {
                rec,
                path: Vec::new(),
                argv: Vec::new(),
                env: Vec::new(),
                cwd: None,
            })
        };
        let (rec, ev) = match *step {
            Fail(pid, tid, path, err) => (
                exec_rec(pid, tid),
                Some(exec_event(pid, tid, path, &["tool", "-v"], Some(err))),
            ),
            Exec(pid, tid, path) => (
                exec_rec(pid, tid),
                Some(exec_event(pid, tid, path, &["tool", "-v"], None)),
            ),
            ExecOtherArgv(pid, tid, path) => (
                exec_rec(pid, tid),
                Some(exec_event(pid, tid, path, &["tool", "-x"], None)),
            ),
            Connect(pid) => {
                let mut c = ConnectRecord::default();
                c.header.ts_boot_ns = boot_ns;
                c.task = task(pid, pid);
                (Record::Connect(c), Some(connect_event(pid)))
            }
            Fork(pid) => (
                Record::Fork {
                    ts_boot_ns: boot_ns,
                    task: TaskInfo {
                        ptgid: pid,
                        ..task(pid + 1000, pid + 1000)
                    },
                },
                None,
            ),
            Exit(pid) => (
                Record::Exit {
                    ts_boot_ns: boot_ns,
                    task: task(pid, pid),
                    exit_code: 0,
                    cpu: Default::default(),
                    maxrss_pages: 0,
                },
                None,
            ),
            Tick(n, caught_up) => {
                now = t0 + ms(n);
                s.expire(now, caught_up, false, &mut out);
                continue;
            }
            Stream(n) => {
                boot_ns = boot_ns.max(at(n));
                (
                    Record::Fork {
                        ts_boot_ns: boot_ns,
                        task: task(9999, 9999),
                    },
                    None,
                )
            }
            Later(n) => {
                boot_ns = boot_ns.max(at(n));
                continue;
            }
            Stop => {
                s.expire(now, true, true, &mut out);
                continue;
            }
        };
        s.before(&rec, &mut out);
        if let Some(ev) = ev {
            s.admit(ev, now, &mut out);
        }
        s.expire(now, false, false, &mut out);
    }
    (out.iter().map(describe).collect(), s.counts)
}

/// (name, steps, events out, counts: folded, emitted, overflowed)
type Case = (
    &'static str,
    &'static [Step],
    &'static [&'static str],
    (u64, u64, u64),
);

#[test]
fn scenarios() {
    let big = 1 << 30;
    let cases: &[Case] = &[
        (
            "a search that finds the tool is one exec",
            &[
                Fail(10, 10, "/a/tool", "ENOENT"),
                Fail(10, 10, "/b/tool", "ENOTDIR"),
                Exec(10, 10, "/c/tool"),
            ],
            &["exec /c/tool [/a/tool ENOENT, /b/tool ENOTDIR]"],
            (2, 0, 0),
        ),
        (
            "EACCES is searched past too",
            &[Fail(10, 10, "/a/tool", "EACCES"), Exec(10, 10, "/c/tool")],
            &["exec /c/tool [/a/tool EACCES]"],
            (1, 0, 0),
        ),
        (
            "a typo's misses stay events, at the process's exit",
            &[
                Fail(10, 10, "/a/tlo", "ENOENT"),
                Fail(10, 10, "/b/tlo", "ENOENT"),
                Exit(10),
            ],
            &["fail /a/tlo ENOENT", "fail /b/tlo ENOENT"],
            (0, 2, 0),
        ),
        (
            "an exec of another name ends the search first",
            &[Fail(10, 10, "/a/tool", "ENOENT"), Exec(10, 10, "/c/other")],
            &["fail /a/tool ENOENT", "exec /c/other"],
            (0, 1, 0),
        ),
        (
            "the same name with other argv is another action",
            &[
                Fail(10, 10, "/a/tool", "ENOENT"),
                ExecOtherArgv(10, 10, "/c/tool"),
            ],
            &["fail /a/tool ENOENT", "exec /c/tool"],
            (0, 1, 0),
        ),
        (
            "an error a search stops at is its own event and ends the search",
            &[
                Fail(10, 10, "/a/tool", "ENOENT"),
                Fail(10, 10, "/b/tool", "ENOEXEC"),
                Exec(10, 10, "/c/tool"),
            ],
            &[
                "fail /a/tool ENOENT",
                "fail /b/tool ENOEXEC",
                "exec /c/tool",
            ],
            (0, 1, 0),
        ),
        (
            "a connect between attempt and success ends the search",
            &[
                Fail(10, 10, "/a/tool", "ENOENT"),
                Connect(10),
                Exec(10, 10, "/c/tool"),
            ],
            &["fail /a/tool ENOENT", "connect 10", "exec /c/tool"],
            (0, 1, 0),
        ),
        (
            "a fork ends it",
            &[
                Fail(10, 10, "/a/tool", "ENOENT"),
                Fork(10),
                Exec(10, 10, "/c/tool"),
            ],
            &["fail /a/tool ENOENT", "exec /c/tool"],
            (0, 1, 0),
        ),
        (
            "another thread's exec is not the search's end",
            &[Fail(10, 11, "/a/tool", "ENOENT"), Exec(10, 10, "/c/tool")],
            &["fail /a/tool ENOENT", "exec /c/tool"],
            (0, 1, 0),
        ),
        (
            "other processes do not end a search",
            &[
                Fail(10, 10, "/a/tool", "ENOENT"),
                Fail(20, 20, "/a/make", "ENOENT"),
                Connect(30),
                Exec(20, 20, "/c/make"),
                Exec(10, 10, "/c/tool"),
            ],
            &[
                "connect 30",
                "exec /c/make [/a/make ENOENT]",
                "exec /c/tool [/a/tool ENOENT]",
            ],
            (2, 0, 0),
        ),
        (
            "a quiet thread's miss goes out after the window, not before",
            &[
                Fail(10, 10, "/a/tool", "ENOENT"),
                Tick(50, true),
                Tick(99, true),
                Tick(100, true),
                Exec(10, 10, "/c/tool"),
            ],
            &["fail /a/tool ENOENT", "exec /c/tool"],
            (0, 1, 0),
        ),
        (
            "behind on the ring, the wall clock does not end a search",
            &[
                Fail(10, 10, "/a/tool", "ENOENT"),
                Tick(500, false),
                Exec(10, 10, "/c/tool"),
            ],
            &["exec /c/tool [/a/tool ENOENT]"],
            (1, 0, 0),
        ),
        (
            "a success past the window is not the search's end",
            &[
                Fail(10, 10, "/a/tool", "ENOENT"),
                Later(150),
                Exec(10, 10, "/c/tool"),
            ],
            &["fail /a/tool ENOENT", "exec /c/tool"],
            (0, 1, 0),
        ),
        (
            "the stream moving past the window ends it",
            &[
                Fail(10, 10, "/a/tool", "ENOENT"),
                Stream(99),
                Stream(101),
                Exec(10, 10, "/c/tool"),
            ],
            &["fail /a/tool ENOENT", "exec /c/tool"],
            (0, 1, 0),
        ),
        (
            "a lone miss of an explicit path is an event at shutdown",
            &[Fail(10, 10, "/opt/x/bin/tool", "ENOENT"), Stop],
            &["fail /opt/x/bin/tool ENOENT"],
            (0, 1, 0),
        ),
    ];
    for (name, steps, want, (folded, emitted, overflowed)) in cases {
        let (got, counts) = run(steps, big);
        assert_eq!(got, *want, "{name}");
        assert_eq!(
            counts,
            SearchCounts {
                folded: *folded,
                emitted: *emitted,
                overflowed: *overflowed
            },
            "{name}"
        );
    }
}

#[test]
fn a_long_search_goes_out_in_parts_and_nothing_is_lost() {
    let paths: Vec<&'static str> = (0..MAX_ATTEMPTS + 3)
        .map(|i| &*Box::leak(format!("/d{i}/tool").into_boxed_str()))
        .collect();
    let mut steps: Vec<Step> = paths.iter().map(|p| Fail(10, 10, p, "ENOENT")).collect();
    steps.push(Exec(10, 10, "/last/tool"));
    let (got, counts) = run(&steps, 1 << 30);
    // The first MAX_ATTEMPTS went out on their own; the last three were folded.
    assert_eq!(got.len(), MAX_ATTEMPTS + 1, "{got:?}");
    assert!(got[..MAX_ATTEMPTS].iter().all(|l| l.starts_with("fail ")));
    assert_eq!(
        got[MAX_ATTEMPTS],
        format!(
            "exec /last/tool [{} ENOENT, {} ENOENT, {} ENOENT]",
            paths[MAX_ATTEMPTS],
            paths[MAX_ATTEMPTS + 1],
            paths[MAX_ATTEMPTS + 2]
        )
    );
    assert_eq!(counts.overflowed, MAX_ATTEMPTS as u64);
    assert_eq!(counts.folded, 3);
}

#[test]
fn byte_bound_sends_the_oldest_search_out_first() {
    let one = exec_event(10, 10, "/a/tool", &["tool", "-v"], Some("ENOENT"))
        .event
        .approx_bytes();
    // Room for two held attempts: a third process's miss pushes the first out.
    let (got, counts) = run(
        &[
            Fail(10, 10, "/a/tool", "ENOENT"),
            Fail(20, 20, "/a/tool", "ENOENT"),
            Fail(30, 30, "/a/tool", "ENOENT"),
            Exec(30, 30, "/b/tool"),
            Exec(20, 20, "/b/tool"),
            Exit(10),
        ],
        2 * one + one / 2,
    );
    assert_eq!(
        got,
        [
            "fail /a/tool ENOENT",
            "exec /b/tool [/a/tool ENOENT]",
            "exec /b/tool [/a/tool ENOENT]",
        ]
    );
    assert_eq!(
        counts,
        SearchCounts {
            folded: 2,
            emitted: 0,
            overflowed: 1
        }
    );
    // Too big to wait at all: out at once.
    let (got, counts) = run(&[Fail(10, 10, "/a/tool", "ENOENT")], one / 2);
    assert_eq!(got, ["fail /a/tool ENOENT"]);
    assert_eq!(counts.overflowed, 1);
}

#[test]
fn bytes_are_returned_when_searches_end() {
    let mut s = Searches::new(1 << 30);
    let mut out = Vec::new();
    let now = Instant::now();
    s.admit(
        exec_event(10, 10, "/a/tool", &[], Some("ENOENT")),
        now,
        &mut out,
    );
    assert!(s.bytes() > 0 && !s.is_empty());
    s.admit(exec_event(10, 10, "/b/tool", &[], None), now, &mut out);
    assert_eq!(s.bytes(), 0);
    assert!(s.is_empty());
    let Action::Exec(x) = &out[0].event.action else {
        panic!("not an exec")
    };
    assert_eq!(
        x.path_search,
        [PathAttempt {
            path: Arc::from("/a/tool"),
            error: "ENOENT".into()
        }]
    );
}
