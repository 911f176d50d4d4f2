//! What operators and SIEMs rely on, against a live tracer: `tracer tail`, OCSF and
//! JSON Schema validity of real output, /metrics, and rotation under load.
use std::{
    io::Read,
    net::TcpStream,
    os::unix::net::UnixStream,
    os::unix::process::CommandExt as _,
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
    // No loss record counts a lost event (one may report budget cuts made
    // for other processes on the host).
    for e in tracer.events().iter().filter(|e| e["kind"] == "loss") {
        let lost = e["lost"].as_object().unwrap();
        assert!(lost.values().all(|n| n == 0), "{e}");
    }
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

/// Issue 10: a reader that connects and never reads, during a storm of execs
/// whose lines are ~400 KB each (32 KiB of argv, twice, of bytes JSON writes
/// as `\u0001`), costs the tracer at most its byte-capped queue: the RSS stays
/// bounded, the file still gets every event, and a reader that fell behind is
/// told how many lines it missed.
#[test]
fn a_stalled_tail_reader_costs_at_most_its_byte_cap() {
    let dir = scratch_dir();
    let sock = dir.join("tracer.sock");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let cap: u64 = 2 * 1024 * 1024;
    let tracer = Tracer::start(&[
        "--socket",
        sock.to_str().unwrap(),
        "--tail-queue-bytes",
        &cap.to_string(),
        "--metrics-addr",
        &addr,
        // The storm writes ~80 MB: one file, so the test reads it all.
        "--rotate-size",
        "0",
    ]);
    let stuck = UnixStream::connect(&sock).unwrap();
    let mut behind = UnixStream::connect(&sock).unwrap();
    // Warm up (allocator arenas, caches) before the baseline.
    let warm = marker("warm");
    exec_storm(20, &warm);
    tracer.wait_for(20, |e| {
        is_exec(e) && argv(e) == ["/bin/true", warm.as_str()]
    });
    let before = tracer.rss_kib();
    let mark = marker("big");
    let big = "\u{1}".repeat(25 * 1024);
    let n = 200;
    for _ in 0..n {
        let st = Command::new("/bin/true")
            .args([mark.as_str(), &big, &big, &big, &big])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let found = tracer.wait_for(n, |e| {
        is_exec(e)
            && argv(e).first().map(String::as_str) == Some("/bin/true")
            && argv(e).get(1) == Some(&mark)
    });
    assert_eq!(found.len(), n, "the file sink has every event");
    let line_len = found[0].to_string().len();
    assert!(line_len > 300_000, "lines are large: {line_len}");
    let after = tracer.rss_kib();
    let growth_kib = after.saturating_sub(before);
    // Both readers' queues (4 x the cap in all, at most), plus what the
    // storm costs elsewhere (process table, allocator slack). Without the
    // byte cap the queues alone held n x line_len (~80 MB).
    let bound_kib = 4 * cap / 1024 + 48 * 1024;
    eprintln!(
        "tail storm: RSS {before} -> {after} KiB (+{growth_kib}), bound +{bound_kib}, line {line_len} B"
    );
    assert!(
        growth_kib < bound_kib,
        "RSS grew {growth_kib} KiB (bound {bound_kib}); lines of {line_len} B"
    );
    // The reader that fell behind reads now and is told what it missed.
    behind
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(60);
    let missed = loop {
        let m = buf
            .split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
            .filter(|v| v["kind"] == "missed")
            .filter_map(|v| v["missed"].as_u64())
            .sum::<u64>();
        if m > 0 {
            break m;
        }
        assert!(Instant::now() < deadline, "no missed notice");
        match behind.read(&mut chunk) {
            Ok(0) => panic!("socket closed"),
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            // Drained: one more event brings the notice.
            Err(_) => exec_storm(1, &marker("nudge")),
        }
    };
    assert!(missed > 0);
    std::thread::sleep(Duration::from_millis(1200));
    let (_, text) = http_get(port, "/metrics");
    assert!(
        metric(&text, "tracer_tail_missed_total") >= missed,
        "{text}"
    );
    assert!(
        metric(&text, "tracer_tail_missed_bytes_total") > 0,
        "{text}"
    );
    drop(stuck);
    let _ = std::fs::remove_dir_all(dir);
}

/// The first character a terminal would act on in `bytes` (escape sequences,
/// DEL, C1 controls, bidi controls), if any. Tab and newline are fine.
fn hostile_char(bytes: &[u8]) -> Option<(usize, char)> {
    String::from_utf8_lossy(bytes).char_indices().find(|&(_, c)| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

/// `tracer tail --file <path> --from-start --json` with `filter`, until `count` match.
fn tail_json(path: &Path, filter: &[&str], count: usize) -> Vec<u8> {
    let mut child = Command::new(tracer_bin())
        .args(["tail", "--file"])
        .arg(path)
        .args(["--from-start", "--json", "--count", &count.to_string()])
        .args(filter)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tail did not find {count} matching events in {}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    out
}

/// argv with an escape sequence, a C1 CSI, DEL and a right-to-left override
/// (of a parent: in its exec event and in its child's lineage): every output
/// (file, OCSF file, `tail --json` of our file and of a file some other writer
/// left them raw in) carries them only as `\u` escapes, and each still parses
/// to the argv that ran. The chain verifies over the escaped bytes.
#[test]
fn hostile_argv_reaches_no_terminal_raw_and_keeps_its_value() {
    let dir = scratch_dir();
    let ocsf = dir.join("events.ocsf.jsonl");
    let json = dir.join("events.jsonl");
    let tracer = Tracer::start(&[
        "--output",
        json.to_str().unwrap(),
        "--ocsf-output",
        ocsf.to_str().unwrap(),
    ]);
    let mark = marker("hostile-out");
    // A binary of our own, so `tail --binary` picks out exactly our event.
    let bin = dir.join(format!("{mark}-bin"));
    std::fs::copy("/bin/true", &bin).unwrap();
    let bin_s = bin.to_str().unwrap().to_owned();
    let hostile = [
        mark.clone(),
        "clear\u{1b}[2J\u{1b}]0;pwned\u{7}".to_owned(),
        "csi\u{9b}31mred".to_owned(),
        "del\u{7f}x".to_owned(),
        "evil\u{202e}fdp.exe".to_owned(),
        "iso\u{2066}mark\u{200f}\u{61c}".to_owned(),
    ];
    // sh with the hostile argv runs our binary as a child (not exec: `; true`),
    // so the hostile argv is in the child's lineage as well as in its own exec.
    let script = format!("{bin_s} child; true");
    let st = Command::new("sh")
        .arg0(&hostile[0])
        .arg("-c")
        .arg(&script)
        .args(&hostile[1..])
        .status()
        .unwrap();
    assert!(st.success());
    let sh_argv: Vec<Value> = [&hostile[0], "-c", &script]
        .into_iter()
        .chain(hostile[1..].iter().map(String::as_str))
        .map(Value::from)
        .collect();
    let ours = |e: &Value| is_exec(e) && e["action"]["binary"] == bin_s.as_str();
    // (Failed execs of the PATH search carry the same argv: the one that ran.)
    let its_parent = |e: &Value| {
        is_exec(e)
            && e["action"]["outcome"] == "success"
            && e["action"]["argv"] == Value::from(sh_argv.clone())
    };
    // Our own --output (the harness's goes away with the tracer): read it here.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (found, parent) = loop {
        let events: Vec<Value> = lines_of(&json)
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect();
        let hits: Vec<Value> = events.iter().filter(|e| ours(e)).cloned().collect();
        let parents: Vec<Value> = events.iter().filter(|e| its_parent(e)).cloned().collect();
        if !hits.is_empty() && !parents.is_empty() {
            break (hits, parents);
        }
        assert!(Instant::now() < deadline, "our exec events did not come");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((found.len(), parent.len()), (1, 1), "{found:?}\n{parent:?}");
    assert_eq!(
        found[0]["action"]["argv"],
        serde_json::json!([bin_s, "child"])
    );
    assert_eq!(
        found[0]["lineage"][0]["argv"],
        Value::from(sh_argv.clone()),
        "the parent in the child's lineage"
    );
    assert!(tracer.stop().success());

    // Every byte the tracer wrote, in both formats, and not only our event.
    let json_bytes = std::fs::read(&json).unwrap();
    assert_eq!(hostile_char(&json_bytes), None, "raw in the JSON output");
    let ocsf_bytes = std::fs::read(&ocsf).unwrap();
    assert_eq!(hostile_char(&ocsf_bytes), None, "raw in the OCSF output");
    assert!(
        ocsf_bytes.windows(mark.len()).any(|w| w == mark.as_bytes()),
        "our event is in the OCSF file too"
    );
    // The hash chains cover the escaped bytes as written.
    for f in [&json, &ocsf] {
        let v = Command::new(tracer_bin())
            .arg("verify")
            .arg(f)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{}: {}{}",
            f.display(),
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
    }

    let filter = ["--kind", "exec", "--binary", bin_s.as_str()];
    let check = |what: &str, out: &[u8]| {
        assert_eq!(hostile_char(out), None, "{what}: raw in tail --json output");
        let lines: Vec<&[u8]> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "{what}: {}", String::from_utf8_lossy(out));
        let v: Value = serde_json::from_slice(lines[0]).unwrap();
        assert_eq!(
            v["lineage"][0]["argv"],
            Value::from(sh_argv.clone()),
            "{what}"
        );
        assert!(
            String::from_utf8_lossy(lines[0]).contains(r"csi\u009b31mred"),
            "{what}: escaped as \\u: {}",
            String::from_utf8_lossy(lines[0])
        );
        v
    };
    let from_file = check("our file", &tail_json(&json, &filter, 1));
    assert_eq!(from_file, found[0]);

    // A file whose writer left the characters raw (serde_json's own output,
    // as an older tracer wrote): tail escapes them itself.
    let raw_line = serde_json::to_string(&found[0]).unwrap();
    assert!(
        hostile_char(raw_line.as_bytes()).is_some(),
        "the raw form has them"
    );
    let legacy = dir.join("legacy.jsonl");
    std::fs::write(&legacy, format!("{raw_line}\n")).unwrap();
    let from_legacy = check("a raw file", &tail_json(&legacy, &filter, 1));
    assert_eq!(from_legacy, found[0]);
    let _ = std::fs::remove_dir_all(dir);
}
