//! `--aggregate-connects`: a process's repeated connects to one destination
//! become its first connect plus one summary per window, and every connect is
//! counted once. Without the flag every connect is its own event.
use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
};

use serde_json::Value;
use tracer_tests::{LoopbackListener, Tracer, check_schema, marker};

/// python3 connecting to 127.0.0.1: `first` times to port A and `other` times
/// to port B, printing `done`; then, once its stdin closes, `after` more times
/// to A before it exits. The marker in its argv is for whoever reads `ps`.
fn connector(a: u16, b: u16, first: u32, other: u32, after: u32) -> Child {
    let script = format!(
        "import socket, sys\n\
         def hit(port, n):\n\
         \x20   for _ in range(n):\n\
         \x20       s = socket.create_connection(('127.0.0.1', port))\n\
         \x20       s.close()\n\
         hit({a}, {first})\n\
         hit({b}, {other})\n\
         print('done', flush=True)\n\
         sys.stdin.read()\n\
         hit({a}, {after})\n"
    );
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(marker("aggregate"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3: {e} (run `cargo xtask setup`)"))
}

/// Wait for the child's `done` line (its first connects are all made).
fn wait_done(child: &mut Child) {
    let out = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("child stdout");
    assert_eq!(line.trim(), "done", "child said {line:?}");
}

fn connects_of(e: &Value, pid: u32, port: u16) -> bool {
    e["kind"] == "connect"
        && e["executor"]["pid"] == pid
        && e["action"]["destination"]["port"] == port
}

fn aggregate_count(e: &Value) -> Option<u64> {
    e["action"].get("aggregate").map(|g| {
        g["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("aggregate without a count: {e}"))
    })
}

/// Connects accounted for by `events`: those without `aggregate` count one,
/// summaries their `count`.
fn total(events: &[Value]) -> u64 {
    events.iter().map(|e| aggregate_count(e).unwrap_or(1)).sum()
}

#[test]
fn repeated_connects_become_a_first_event_and_a_summary() {
    let tracer = Tracer::start(&["--aggregate-connects", "2"]);
    let (a, b) = (LoopbackListener::start(), LoopbackListener::start());
    let mut child = connector(a.port, b.port, 50, 5, 10);
    let pid = child.id();
    wait_done(&mut child);

    // The window's first connect to each destination goes out on its own, at once.
    for port in [a.port, b.port] {
        let first = tracer.wait_for(1, |e| connects_of(e, pid, port)).remove(0);
        assert!(
            first["action"].get("aggregate").is_none(),
            "the first connect is a plain event: {first}"
        );
        assert_eq!(first["action"]["outcome"], "success", "{first}");
    }
    // The rest come as one summary per destination when the window closes,
    // while the process still runs (the timer, not its exit, closed it).
    for (port, folded) in [(a.port, 49), (b.port, 4)] {
        let s = tracer
            .wait_for(1, |e| {
                connects_of(e, pid, port) && e["action"].get("aggregate").is_some()
            })
            .remove(0);
        let g = &s["action"]["aggregate"];
        assert_eq!(g["count"], folded, "{s}");
        assert_eq!(g["window_s"], 2, "{s}");
        assert_eq!(g["outcomes"]["success"], folded, "{s}");
        assert_eq!(g["outcomes"]["failure"], 0, "{s}");
        assert_eq!(g["errors"], serde_json::json!({}), "{s}");
        let (t0, t1) = (g["first_time"].as_str(), g["last_time"].as_str());
        assert!(t0.is_some() && t1.is_some() && t0 <= t1, "{s}");
        assert_eq!(
            s["time"], g["last_time"],
            "the summary is the last connect: {s}"
        );
        assert!(s["executor"]["exec_id"].as_str().is_some(), "{s}");
        assert!(
            s["lineage"].as_array().is_some_and(|l| !l.is_empty()),
            "{s}"
        );
    }
    assert!(
        child.try_wait().expect("child status").is_none(),
        "the child is still running: the summaries came from the window's end"
    );

    // A second burst to A, then the process exits: nothing of it is lost.
    drop(child.stdin.take());
    let status = child.wait().expect("wait child");
    assert!(status.success(), "{status}");
    // Its summary of 9 (the exit flushes it, or the window's end).
    tracer.wait_for(1, |e| {
        connects_of(e, pid, a.port) && aggregate_count(e) == Some(9)
    });

    // Totals add up: 60 to A, 5 to B, each counted once.
    tracer.settle();
    let events = tracer.events();
    let to = |port| -> Vec<Value> {
        events
            .iter()
            .filter(|e| connects_of(e, pid, port))
            .cloned()
            .collect()
    };
    let (to_a, to_b) = (to(a.port), to(b.port));
    assert_eq!(total(&to_a), 60, "{to_a:#?}");
    assert_eq!(total(&to_b), 5, "{to_b:#?}");
    assert_eq!(to_a.len(), 4, "two windows, a first and a summary each");
    assert_eq!(to_b.len(), 2, "one window");
    // The window is in the configuration digest of every event.
    let digest = &to_a[0]["policy"]["config_digest"];
    assert!(
        events
            .iter()
            .all(|e| e["policy"]["config_digest"] == *digest)
    );
    check_schema(&tracer.output);
    assert!(tracer.stop().success());
}

#[test]
fn without_the_flag_every_connect_is_its_own_event() {
    let tracer = Tracer::start(&[]);
    let (a, b) = (LoopbackListener::start(), LoopbackListener::start());
    let mut child = connector(a.port, b.port, 20, 1, 0);
    let pid = child.id();
    wait_done(&mut child);
    drop(child.stdin.take());
    assert!(child.wait().expect("wait child").success());
    tracer.wait_for(20, |e| connects_of(e, pid, a.port));
    tracer.settle();
    let to_a: Vec<Value> = tracer
        .events()
        .into_iter()
        .filter(|e| connects_of(e, pid, a.port))
        .collect();
    assert_eq!(to_a.len(), 20, "{to_a:#?}");
    assert!(to_a.iter().all(|e| e["action"].get("aggregate").is_none()));
    assert!(tracer.stop().success());
}
