//! `--lineage ids`: events name their ancestors by exec_id, and each file
//! describes every process it names before naming it, across rotations.
use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::{Tracer, complete_lines, marker, output_files, scratch_dir, tracer_bin};

fn parsed(f: &Path) -> Vec<Value> {
    complete_lines(f)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn marked_execs(files: &[PathBuf], mark: &str) -> Vec<Value> {
    files
        .iter()
        .flat_map(|f| parsed(f))
        .filter(|v| {
            v["kind"] == "exec"
                && v["action"]["argv"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(mark)))
        })
        .collect()
}

#[test]
fn each_file_describes_every_process_its_lineages_name() {
    let dir = scratch_dir();
    let out = dir.join("events.jsonl");
    let tracer = Tracer::start(&[
        "--output",
        out.to_str().unwrap(),
        "--lineage",
        "ids",
        "--rotate-size",
        "30000",
        "--rotate-keep",
        "1000",
    ]);
    let mark = marker("ids");
    // Three levels of shells above each marked exec, new ones each time, and
    // the same long-lived ancestors (this test, cargo) throughout.
    let runs = 40;
    for _ in 0..runs {
        let st = Command::new("sh")
            .args(["-c", &format!("sh -c 'sh -c \"/bin/true {mark}\"'")])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while marked_execs(&output_files(&dir, "events.jsonl"), &mark).len() < runs {
        assert!(Instant::now() < deadline, "marked execs did not all arrive");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(tracer.stop().success());

    let files = output_files(&dir, "events.jsonl");
    assert!(files.len() >= 3, "expected rotations: {files:?}");
    let (mut named, mut described_by_record) = (0, 0);
    for f in &files {
        // What this file has described so far: `process` records and the
        // executors of its events.
        let mut known = HashSet::new();
        // Processes described in full as an event's executor.
        let mut executors = HashSet::new();
        for v in parsed(f) {
            if v["kind"] == "process" {
                let p = &v["process"];
                assert!(p["binary"].is_string() && p["argv"].is_array(), "{v}");
                known.insert(p["exec_id"].as_str().unwrap().to_owned());
                described_by_record += 1;
                continue;
            }
            for a in v["lineage"].as_array().into_iter().flatten() {
                assert!(a["binary"].is_null() && a["argv"].is_null(), "brief: {a}");
                let id = a["exec_id"].as_str().expect("exec_id");
                assert!(
                    known.contains(id),
                    "{}: {id} named before it is described in this file",
                    f.display()
                );
                named += 1;
            }
            let ex = &v["executor"];
            if let Some(id) = ex["exec_id"].as_str() {
                if ex["ref"] == true {
                    assert!(
                        executors.contains(id),
                        "{}: executor {id} by reference before it is described in full in this file",
                        f.display()
                    );
                } else {
                    assert!(
                        v["lineage"].is_array(),
                        "a full executor has its lineage: {v}"
                    );
                    executors.insert(id.to_owned());
                }
                known.insert(id.to_owned());
            }
        }
    }
    assert!(named > runs * 3, "{named} lineage entries");
    assert!(described_by_record > 0);

    // The marked execs' lineage reaches their three shells, by exec_id.
    let ev = &marked_execs(&files, &mark)[0];
    let lineage = ev["lineage"].as_array().unwrap();
    assert!(lineage.len() >= 3, "{ev}");
    assert!(lineage.iter().all(|a| a["pid"].is_u64()));

    // Every line follows the schema.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for f in &files {
        let out = Command::new("python3")
            .arg(repo.join("tests/schema_check.py"))
            .arg(repo.join("docs/event.schema.json"))
            .arg(f)
            .output()
            .expect("python3 (run `cargo xtask setup`)");
        assert!(
            out.status.success(),
            "{}: {}{}",
            f.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The chain holds across the files, process records included.
    let out = Command::new(tracer_bin())
        .arg("verify")
        .args(&files)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With `--lineage ids`, later events of a process the file has described name
/// its executor by reference and leave out an unchanged lineage; a change of
/// credentials describes it in full again; `tracer tail` joins the reference.
#[test]
fn later_events_name_a_described_executor_by_reference() {
    let dir = scratch_dir();
    let out = dir.join("events.jsonl");
    let tracer = Tracer::start(&["--output", out.to_str().unwrap(), "--lineage", "ids"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mark = marker("ref");
    // Three connects, a setresuid, three more: each connect then a close.
    let script = format!(
        "import os, socket, sys\n\
         def c():\n    s = socket.create_connection(('127.0.0.1', {port})); s.close()\n\
         for _ in range(3): c()\n\
         os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)\n\
         for _ in range(3): c()\n"
    );
    let st = Command::new("python3")
        .args(["-c", &script, &mark])
        .status()
        .expect("python3 (run `cargo xtask setup`)");
    assert!(st.success());
    drop(listener);
    let ours = |v: &Value| {
        v["kind"] == "connect" && v["action"]["destination"]["port"].as_u64() == Some(port.into())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while parsed(&out).iter().filter(|v| ours(v)).count() < 6 {
        assert!(Instant::now() < deadline, "the six connects did not arrive");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(tracer.stop().success());

    let lines = parsed(&out);
    let exec = marked_execs(std::slice::from_ref(&out), &mark);
    // The last: `python3` may be a shim script that execs the interpreter.
    let exec = exec.last().expect("python's exec event");
    let exec_id = exec["executor"]["exec_id"].as_str().unwrap().to_owned();
    let connects: Vec<&Value> = lines.iter().filter(|v| ours(v)).collect();
    assert_eq!(connects.len(), 6);
    for c in &connects {
        assert_eq!(c["executor"]["exec_id"], exec_id.as_str(), "{c}");
    }
    let by_ref = |v: &Value| v["executor"]["ref"] == true;
    // Before the setresuid: the exec event described it (its file's hash may
    // have been found after the first connect, describing it once more).
    assert!(by_ref(connects[2]), "{}", connects[2]);
    assert!(
        connects[2].get("lineage").is_none(),
        "unchanged lineage left out"
    );
    assert!(connects[2]["executor"].get("binary").is_none());
    // After: the new credentials are described in full, then referred to.
    assert!(!by_ref(connects[3]), "{}", connects[3]);
    assert_eq!(connects[3]["executor"]["user"]["euid"], 65534);
    assert!(connects[3]["lineage"].is_array());
    assert!(by_ref(connects[5]), "{}", connects[5]);

    // Bytes: a referred connect is a fraction of a described one.
    let len = |v: &Value| v.to_string().len();
    assert!(
        len(connects[5]) * 2 < len(connects[3]),
        "{} vs {}",
        len(connects[5]),
        len(connects[3])
    );

    // tail joins the reference: the binary filter sees python's connects.
    let tail = Command::new(tracer_bin())
        .args([
            "tail",
            "--file",
            out.to_str().unwrap(),
            "--from-start",
            "--json",
        ])
        .args([
            "--binary", "python3*", "--kind", "connect", "--count", "6", "--dest",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(
        tail.status.success(),
        "{}",
        String::from_utf8_lossy(&tail.stderr)
    );
    let shown = String::from_utf8_lossy(&tail.stdout).lines().count();
    assert_eq!(shown, 6, "{}", String::from_utf8_lossy(&tail.stdout));
}
