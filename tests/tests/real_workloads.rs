//! Real workloads under the tracer (issue 16): a cargo build of a crate of
//! its own, a pip install of a local wheel into a venv, git operations on a
//! local repository. Each runs as a root process this test starts, in a v2
//! cgroup of its own; its events are those of that cgroup (picked out without
//! looking at lineage, which is then checked). Asserted: no loss, every exec's
//! lineage reaches the root, PATH searches folded, and a working directory
//! on every exec.
use std::{collections::HashMap, time::Duration};

use serde_json::Value;
use tracer_tests::{
    TestCgroup, Tracer, marker,
    real::{REAL, Real},
    require_tools, scratch_dir,
};

/// Whether exec events with `cwd: null` fail the test. The cwd is read from
/// /proc of a process in the directory, which a short-lived one (a script's
/// `readlink` after a `cd`) may leave before it is read; the kernel-side cwd
/// walk (issue 16's cwd part, another branch) closes that. Until both are
/// merged, null cwds are counted and printed, not failed on.
const NULL_CWD_FAILS: bool = true;

/// The failed execs a PATH search goes on after.
const SEARCH_ERRORS: [&str; 3] = ["ENOENT", "ENOTDIR", "EACCES"];

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// A workload's directory, removed when the test ends (passed or not).
struct RemovedOnDrop(std::path::PathBuf);

impl std::ops::Deref for RemovedOnDrop {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn cargo_pip_and_git_under_the_tracer() {
    for w in REAL {
        require_tools(w.tools());
    }
    let tracer = Tracer::start(&[]);
    // Found by mountinfo once the tracer runs (it mounts cgroup2 where none is).
    let mut runs = Vec::new();
    for w in REAL {
        let dir = RemovedOnDrop(scratch_dir());
        w.prepare(&dir).unwrap_or_else(|e| panic!("{e:#}"));
        let cgroup = TestCgroup::new(&format!("/{}", marker("real")));
        let mut child = w
            .command(&dir, Some(&cgroup.procs_file()))
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", w.name()));
        let root = child.id();
        let status = child.wait().expect("wait for the workload");
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read as _;
                let _ = e.read_to_string(&mut err);
            }
            panic!("the {} workload failed ({status}): {err}", w.name());
        }
        runs.push((w, dir, cgroup, root));
    }
    // A stopped tracer has written everything: held failures, waiting events.
    let mut tracer = tracer;
    let status = tracer
        .try_stop(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(status.success(), "tracer: {status}");
    let events = tracer.events();

    // No loss anywhere while the workloads ran.
    for l in events.iter().filter(|e| e["kind"] == "loss") {
        let lost: u64 = l["lost"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        assert_eq!(lost, 0, "events were lost: {l}");
    }

    let mut folded_total = 0;
    for (w, _dir, cgroup, root) in &runs {
        let id = cgroup.id();
        let mine: Vec<&Value> = events
            .iter()
            .filter(|e| e["kind"] == "exec" && e["executor"]["cgroup"]["id"].as_u64() == Some(id))
            .collect();
        assert!(
            mine.len() >= 3,
            "{}: only {} exec events in its cgroup",
            w.name(),
            mine.len()
        );
        check_lineage(*w, &mine, *root);
        folded_total += check_folded(*w, &mine);
        check_cwd(*w, &mine);
    }
    assert!(
        folded_total > 0,
        "no PATH search was folded in any workload (cargo's linker and the python3 shim search PATH)"
    );
}

/// Every exec's lineage reaches the root: the root itself (its later
/// actions), or an ancestor with its pid, before the lineage ends.
fn check_lineage(w: Real, mine: &[&Value], root: u32) {
    for e in mine {
        let x = &e["executor"];
        if x["pid"].as_u64() == Some(u64::from(root)) {
            continue;
        }
        let reaches = e["lineage"]
            .as_array()
            .is_some_and(|l| l.iter().any(|a| a["pid"].as_u64() == Some(u64::from(root))));
        assert!(
            reaches,
            "{}: the lineage of pid {} ({}) does not reach the root {root}: {e}",
            w.name(),
            x["pid"],
            str_of(&e["action"]["binary"])
        );
    }
}

/// No failed exec a search goes on after has a successful sibling (same
/// process, base name and argv) that it should have been folded into.
/// Returns how many execs carry folded attempts.
fn check_folded(w: Real, mine: &[&Value]) -> usize {
    let key = |e: &Value| {
        (
            e["executor"]["pid"].as_u64(),
            base_name(str_of(&e["action"]["binary"])).to_owned(),
            e["action"]["argv"].to_string(),
        )
    };
    let mut successes: HashMap<_, usize> = HashMap::new();
    let mut folded = 0;
    for e in mine.iter().filter(|e| e["action"]["outcome"] == "success") {
        *successes.entry(key(e)).or_default() += 1;
        if e["action"]["path_search"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            folded += 1;
        }
    }
    for e in mine.iter().filter(|e| {
        e["action"]["outcome"] == "failure"
            && SEARCH_ERRORS.contains(&str_of(&e["action"]["error"]))
    }) {
        assert!(
            !successes.contains_key(&key(e)),
            "{}: a failed exec of a search went out on its own: {e}",
            w.name()
        );
    }
    eprintln!(
        "{}: {} exec events, {} with folded attempts",
        w.name(),
        mine.len(),
        folded
    );
    folded
}

fn check_cwd(w: Real, mine: &[&Value]) {
    let null: Vec<String> = mine
        .iter()
        .filter(|e| e["action"]["outcome"] == "success" && e["executor"]["cwd"].is_null())
        .map(|e| str_of(&e["action"]["binary"]).to_owned())
        .collect();
    if NULL_CWD_FAILS {
        assert!(
            null.is_empty(),
            "{}: execs with cwd null: {null:?}",
            w.name()
        );
    } else if !null.is_empty() {
        eprintln!(
            "{}: {} execs with cwd null (not failed on until the kernel cwd walk is merged): {null:?}",
            w.name(),
            null.len()
        );
    }
}
