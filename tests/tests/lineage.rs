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
            if let Some(id) = v["executor"]["exec_id"].as_str() {
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
