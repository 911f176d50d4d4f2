//! What operators and SIEMs rely on, against a live tracer: `tracer tail`, OCSF and
//! JSON Schema validity of real output, /metrics, and rotation under load.
use std::{
    io::Read,
    net::TcpStream,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::{
    TestUser, Tracer, argv, complete_lines, exec_storm, http_get, is_exec, marker, metric,
    output_files, scratch_dir, tracer_bin,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

fn lines_of(path: &Path) -> Vec<String> {
    complete_lines(path)
}

#[test]
fn tail_follows_a_live_tracer_and_filters() {
    let dir = scratch_dir();
    let sock = dir.join("tracer.sock");
    let tracer = Tracer::start(&["--socket", sock.to_str().unwrap()]);
    let user = TestUser::new();
    let mut tail = Command::new(tracer_bin())
        .args(["tail", "--socket"])
        .arg(&sock)
        .args([
            "--kind",
            "exec",
            "--user",
            &user.name,
            "--binary",
            "/bin/tru?",
            "--json",
            "--count",
            "2",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mark = marker("tail");
    // Root's run does not pass the --user filter; the two as the user do.
    Command::new("/bin/true").arg(&mark).status().unwrap();
    for _ in 0..2 {
        let st = Command::new("setpriv")
            .args([
                &format!("--reuid={}", user.uid),
                &format!("--regid={}", user.gid),
                "--clear-groups",
                "/bin/true",
                &mark,
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while tail.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "tail did not see 2 matching events"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    tail.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{out}");
    for e in &events {
        assert_eq!(e["kind"], "exec");
        assert_eq!(e["executor"]["user"]["uid"], user.uid);
        assert_eq!(argv(e), ["/bin/true", mark.as_str()]);
    }
    // The compact form names the user and the command.
    let compact = Command::new(tracer_bin())
        .args(["tail", "--file"])
        .arg(&tracer.output)
        .args(["--from-start", "--user", &user.name, "--count", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&compact.stdout);
    assert!(text.contains(&user.name) && text.contains(&mark), "{text}");
    drop(tracer);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_slow_tail_reader_does_not_cost_the_file_sink_events() {
    let dir = scratch_dir();
    let sock = dir.join("tracer.sock");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let tracer = Tracer::start(&[
        "--socket",
        sock.to_str().unwrap(),
        "--tail-queue",
        "64",
        "--metrics-addr",
        &addr,
        "--loss-interval",
        "100",
    ]);
    // Connects and never reads.
    let _stuck = UnixStream::connect(&sock).unwrap();
    let mark = marker("slow");
    let n = 2000;
    exec_storm(n, &mark);
    let found = tracer.wait_for(n, |e| is_exec(e) && argv(e) == ["/bin/true", mark.as_str()]);
    assert_eq!(found.len(), n, "the file sink has every event");
    assert!(tracer.events().iter().all(|e| e["kind"] != "loss"));
    std::thread::sleep(Duration::from_millis(300));
    let (_, text) = http_get(port, "/metrics");
    assert!(
        metric(&text, "tracer_tail_missed_total") > 0,
        "the stuck reader missed events:\n{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn validate(script: &str, args: &[&Path]) {
    let out = Command::new("python3")
        .arg(repo().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 {script}: {e} (run `cargo xtask setup`)"));
    assert!(
        out.status.success(),
        "{script} failed (run `cargo xtask setup` if modules are missing):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn real_output_validates_as_ocsf_and_against_our_schema() {
    let dir = scratch_dir();
    let ocsf = dir.join("events.ocsf.jsonl");
    let json = dir.join("events.jsonl");
    let tracer = Tracer::start(&[
        "--output",
        json.to_str().unwrap(),
        "--ocsf-output",
        ocsf.to_str().unwrap(),
    ]);
    let seen = |pred: &dyn Fn(&Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !lines_of(&json)
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|e| pred(&e))
        {
            assert!(Instant::now() < deadline, "event not seen");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mark = marker("ocsf");
    Command::new("/bin/true").arg(&mark).status().unwrap();
    let _ = Command::new(format!("/nonexistent/{mark}")).status();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let _c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    drop(l);
    let _ = TcpStream::connect(("127.0.0.1", port));
    let _ = TcpStream::connect(("::1", port));
    seen(&|e| e["kind"] == "connect" && e["action"]["error"] == "ECONNREFUSED");
    seen(&|e| is_exec(e) && argv(e) == ["/bin/true", mark.as_str()]);
    assert!(tracer.stop().success());
    validate(
        "tests/schema_check.py",
        &[&repo().join("docs/event.schema.json"), &json],
    );
    let lines = lines_of(&ocsf);
    assert!(
        lines.iter().any(|l| l.contains("\"class_uid\":1007")),
        "exec as Process Activity"
    );
    assert!(
        lines.iter().any(|l| l.contains("\"class_uid\":4001")),
        "connect as Network Activity"
    );
    assert!(lines.iter().any(|l| l.contains(&mark)));
    validate(
        "tests/ocsf/validate_ocsf.py",
        &[Path::new("--version"), Path::new("1.8.0"), &ocsf],
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn metrics_move_and_health_endpoints_answer() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let tracer = Tracer::start(&["--metrics-addr", &addr, "--loss-interval", "100"]);
    assert_eq!(http_get(port, "/healthz").0, 200);
    assert_eq!(http_get(port, "/readyz").0, 200);
    let (code, before) = http_get(port, "/metrics");
    assert_eq!(code, 200);
    let exec_before = metric(&before, "tracer_events_total{kind=\"exec\"}");
    let mark = marker("metrics");
    exec_storm(20, &mark);
    tracer.wait_for(20, |e| {
        is_exec(e) && argv(e) == ["/bin/true", mark.as_str()]
    });
    std::thread::sleep(Duration::from_millis(300));
    let (_, after) = http_get(port, "/metrics");
    assert!(
        metric(&after, "tracer_events_total{kind=\"exec\"}") >= exec_before + 20,
        "{after}"
    );
    for name in [
        "tracer_process_table_entries",
        "tracer_ring_buffer_size_bytes",
        "tracer_identity_outcomes_total",
        "tracer_kube_watch_state",
    ] {
        assert!(after.contains(name), "{name} missing:\n{after}");
    }
    assert!(metric(&after, "tracer_process_table_entries") > 0);
    assert_eq!(http_get(port, "/nope").0, 404);
}

#[test]
fn rotation_under_load_loses_and_splits_no_line() {
    let dir = scratch_dir();
    let out = dir.join("events.jsonl");
    let tracer_dir_output = out.to_str().unwrap().to_owned();
    let tracer = Tracer::start(&[
        "--output",
        &tracer_dir_output,
        "--rotate-size",
        "65536",
        "--rotate-keep",
        "1000",
    ]);
    let mark = marker("rot");
    let n = 1000;
    exec_storm(n, &mark);
    // Wait until the whole storm is written, across all files.
    let deadline = Instant::now() + Duration::from_secs(30);
    let collect = || -> Vec<String> {
        output_files(&dir, "events.jsonl")
            .iter()
            .flat_map(|f| lines_of(f))
            .collect()
    };
    loop {
        let lines = collect();
        let hits = lines
            .iter()
            .filter(|l| l.contains(&mark) && l.contains("\"kind\":\"exec\""))
            .count();
        if hits >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {hits} of {n} events after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(tracer.stop().success());
    let lines = collect();
    let rotated = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("events.jsonl."))
        })
        .count();
    assert!(rotated >= 5, "expected several rotations, got {rotated}");
    for f in std::fs::read_dir(&dir).unwrap().flatten() {
        if !f.file_name().to_string_lossy().starts_with("events.jsonl") {
            continue;
        }
        let bytes = std::fs::read(f.path()).unwrap();
        assert!(
            bytes.is_empty() || bytes.ends_with(b"\n"),
            "{} ends in a partial line",
            f.path().display()
        );
    }
    let mut ids = std::collections::HashSet::new();
    let mut storm = 0;
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("split line {l:?}: {e}"));
        assert!(ids.insert(
            v["event_id"].as_str().unwrap_or_default().to_owned() + &v["kind"].to_string()
        ));
        if is_exec(&v) && argv(&v) == ["/bin/true", mark.as_str()] {
            storm += 1;
        }
    }
    assert_eq!(storm, n, "every event exactly once");
    let _ = std::fs::remove_dir_all(dir);
}
