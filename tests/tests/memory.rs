//! `--memory-limit` on the live kernel: a local user drives the tracer's
//! growing structures past their shares, and the tracer's peak resident memory
//! stays under the limit while it goes on emitting, with what it dropped
//! counted in loss records.
use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::{
    TestCgroup, Tracer, argv, is_exec,
    kubeapi::{FakeApi, pod_json},
    marker, scratch_dir, test_container_id, test_uuid,
};

const LIMIT: &str = "64MiB";
const LIMIT_KIB: u64 = 64 * 1024;

/// Children killed when the test ends, pass or fail.
struct Sleepers(Vec<Child>);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A unique number `sleep` accepts, to pick out our processes.
fn unique_interval() -> String {
    let m = marker("x");
    let digits: String = m.chars().filter(char::is_ascii_digit).take(12).collect();
    format!("600.{digits}1")
}

/// Sum of the budget counters of every loss record so far.
fn budget_totals(events: &[Value]) -> (u64, u64, u64) {
    let mut t = (0, 0, 0);
    for e in events.iter().filter(|e| e["kind"] == "loss") {
        let b = &e["budget"];
        t.0 += b["processes_evicted"].as_u64().unwrap_or(0);
        t.1 += b["argv_cut"].as_u64().unwrap_or(0);
        t.2 += b["released_early"].as_u64().unwrap_or(0);
    }
    t
}

fn wait_until(what: &str, tracer: &Tracer, ok: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if ok(&tracer.events()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not seen; tracer stderr:\n{}",
            tracer.stderr_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn assert_under_limit(tracer: &Tracer) {
    let (rss, peak) = tracer.memory_kib();
    eprintln!("tracer memory: {rss} KiB resident, {peak} KiB at peak (limit {LIMIT})");
    assert!(
        peak < LIMIT_KIB,
        "tracer peaked at {peak} KiB (now {rss} KiB), over --memory-limit {LIMIT}"
    );
}

/// Sleeping processes whose command lines are 32 KiB of one-byte arguments:
/// as `String`s that is about 1 MiB each, and they never exit. The table keeps
/// each argv cut and, past its share, evicts the oldest running entries.
#[test]
fn process_table_stays_in_budget_with_huge_command_lines() {
    let tracer = Tracer::start(&["--memory-limit", LIMIT, "--loss-interval", "200"]);
    let interval = unique_interval();
    let zeros = vec!["0"; 15_000];
    let n = 600;
    let mut sleepers = Sleepers(Vec::new());
    for _ in 0..n {
        let child = Command::new("/bin/sleep")
            .arg(&interval)
            .args(&zeros)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        sleepers.0.push(child);
    }
    let ours = |e: &Value| is_exec(e) && e["action"]["argv"][1] == interval.as_str();
    let execs = tracer.wait_for(n, ours);
    // Each exec event has the command line whole, as the kernel captured it.
    for e in &execs {
        assert_eq!(
            argv(e).len(),
            2 + zeros.len(),
            "{}",
            e["action"]["argv_truncated"]
        );
    }
    assert!(
        execs
            .iter()
            .all(|e| e["executor"].get("argv_truncated").is_none())
    );

    // The tracer still works: a new exec is reported.
    let mark = marker("after");
    let st = Command::new("/bin/true").arg(&mark).status().unwrap();
    assert!(st.success());
    tracer.wait_for(1, |e| is_exec(e) && argv(e) == ["/bin/true", mark.as_str()]);

    // What the table dropped and cut is counted in loss records.
    wait_until("budget counters in a loss record", &tracer, |ev| {
        let (evicted, cut, _) = budget_totals(ev);
        evicted > 0 && cut >= n as u64
    });
    assert_under_limit(&tracer);
}

/// Events of a pod the API does not know wait for its metadata (here up to
/// two minutes); an exec storm in that pod must not queue without bound: past
/// the share, the oldest go out early, counted, well before their wait ends.
#[test]
fn events_waiting_for_pod_metadata_are_bounded() {
    let api = FakeApi::start();
    let node = marker("node");
    let dir = scratch_dir();
    // A pod the API knows, so the watch is synced; ours is not among them.
    api.add_pod(pod_json(
        &node,
        "shop",
        &marker("known"),
        &test_uuid(),
        "web",
        &test_container_id(),
        "web:1",
    ));
    let kubeconfig = api.kubeconfig(&dir);
    let tracer = Tracer::start_with_env(
        &[
            "--memory-limit",
            LIMIT,
            "--loss-interval",
            "200",
            "--node-name",
            &node,
            "--kube-wait",
            "120000",
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let (uid, cid) = (test_uuid(), test_container_id());
    let cg = TestCgroup::new(&format!("kubepods/besteffort/pod{uid}/{cid}"));
    let mark = marker("waiting");
    // Long argv makes each waiting event large; 400 of them are far more
    // than the waiting share holds.
    let pad = "p".repeat(8 * 1024);
    let n = 400;
    let script = format!(
        "{}i=0; while [ $i -lt {n} ]; do /bin/true {mark} {pad}; i=$((i+1)); done",
        cg.enter()
    );
    let started = Instant::now();
    let st = Command::new("sh").args(["-c", &script]).status().unwrap();
    assert!(st.success());
    // Most go out long before the two-minute wait: the queue was full.
    let out = tracer.wait_for(n / 2, |e| {
        is_exec(e) && argv(e).get(1).is_some_and(|a| a == &mark)
    });
    assert!(started.elapsed() < Duration::from_secs(100));
    assert!(
        out.iter()
            .all(|e| e["executor"]["workload"]["kind"] == "pod"),
        "{}",
        out[0]["executor"]["workload"]
    );
    wait_until("released_early in a loss record", &tracer, |ev| {
        budget_totals(ev).2 > 0
    });
    assert_under_limit(&tracer);
}
