//! A PATH search is one action: real `execvp` searches (glibc's, through
//! `env`) under a real tracer, with `--exec-attempts fold` (the default) and
//! `all`.
use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use tracer_tests::{Tracer, argv, is_exec, marker, scratch_dir};

/// Three PATH directories: the first lacks `name`, the second has it but not
/// executable (glibc's `execvp` goes on after `EACCES`), the third has it
/// (a copy of `true`).
struct SearchPath {
    root: PathBuf,
    dirs: [PathBuf; 3],
    name: String,
}

impl SearchPath {
    fn new() -> SearchPath {
        let root = scratch_dir();
        let name = marker("tool");
        let dirs = ["d1", "d2", "d3"].map(|d| root.join(d));
        for d in &dirs {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(dirs[1].join(&name), "not a program\n").expect("write");
        std::fs::set_permissions(dirs[1].join(&name), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let true_bin = ["/usr/bin/true", "/bin/true"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("true(1)");
        std::fs::copy(true_bin, dirs[2].join(&name)).expect("copy true");
        SearchPath { root, dirs, name }
    }

    fn path_var(&self) -> String {
        self.dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// `env PATH=<dirs> <cmd> <mark>`: env runs `cmd` through `execvp`.
    fn run(&self, cmd: &str, mark: &str) -> bool {
        Command::new("/usr/bin/env")
            .arg(format!("PATH={}", self.path_var()))
            .args([cmd, mark])
            .status()
            .expect("run env")
            .success()
    }

    fn tried(&self, i: usize, cmd: &str) -> String {
        self.dirs[i].join(cmd).display().to_string()
    }
}

impl Drop for SearchPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn failed(e: &Value) -> bool {
    is_exec(e) && e["action"]["outcome"] == "failure"
}

fn succeeded(e: &Value) -> bool {
    is_exec(e) && e["action"]["outcome"] == "success"
}

/// This run's exec events (by the marker in argv), up to and including the
/// successful one: anything not folded went out before it, in order.
fn up_to_success(tracer: &Tracer, cmd: &str, mark: &str) -> Vec<Value> {
    let want = [cmd.to_owned(), mark.to_owned()];
    tracer.wait_for(1, |e| succeeded(e) && argv(e) == want);
    let events: Vec<Value> = tracer
        .events()
        .into_iter()
        .filter(|e| is_exec(e) && argv(e) == want)
        .collect();
    let end = events
        .iter()
        .position(succeeded)
        .expect("the success just seen");
    events[..=end].to_vec()
}

#[test]
fn a_path_search_is_one_exec_and_misses_of_a_typo_or_a_path_stay_events() {
    let search = SearchPath::new();
    let tracer = Tracer::start(&[]);
    let name = &search.name;

    // Found in the third directory: one exec event, the two misses folded.
    let mark = marker("found");
    assert!(search.run(name, &mark));
    let events = up_to_success(&tracer, name, &mark);
    assert_eq!(events.len(), 1, "misses went out on their own: {events:#?}");
    let e = &events[0];
    assert_eq!(e["action"]["binary"], search.tried(2, name));
    assert_eq!(
        e["action"]["path_search"],
        serde_json::json!([
            {"path": search.tried(0, name), "error": "ENOENT"},
            {"path": search.tried(1, name), "error": "EACCES"},
        ])
    );

    // A typo: nothing of the name follows, so each miss is its own event.
    let typo = format!("{name}x");
    let mark = marker("typo");
    assert!(!search.run(&typo, &mark));
    let misses = tracer.wait_for(3, |e| failed(e) && argv(e) == [typo.as_str(), &mark]);
    let tried: Vec<&str> = misses
        .iter()
        .map(|e| e["action"]["binary"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        tried,
        [0, 1, 2].map(|i| search.tried(i, &typo)),
        "in order, each its own event"
    );
    assert!(misses.iter().all(|e| e["action"]["error"] == "ENOENT"));

    // An explicit path that does not exist: its own event.
    let missing = format!("{}/gone/{name}", search.root.display());
    let mark = marker("explicit");
    assert!(!search.run(&missing, &mark));
    let e = &tracer.wait_for(1, |e| failed(e) && argv(e) == [missing.as_str(), &mark])[0];
    assert_eq!(e["action"]["binary"], missing.as_str());
    assert_eq!(e["action"]["error"], "ENOENT");
    assert!(e["action"].get("path_search").is_none());

    assert!(
        e["policy"]["config_digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    tracer_tests::check_schema(&tracer.output);
}

#[test]
fn with_exec_attempts_all_every_miss_is_its_own_event() {
    let search = SearchPath::new();
    let folding = Tracer::start(&[]);
    let tracer = Tracer::start(&["--exec-attempts", "all"]);
    let name = &search.name;
    let mark = marker("all");
    assert!(search.run(name, &mark));
    let events = up_to_success(&tracer, name, &mark);
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let s = |v: &Value| v.as_str().unwrap_or("null").to_owned();
            (s(&e["action"]["binary"]), s(&e["action"]["error"]))
        })
        .collect();
    assert_eq!(
        seen,
        [
            (search.tried(0, name), "ENOENT".to_owned()),
            (search.tried(1, name), "EACCES".to_owned()),
            (search.tried(2, name), "null".to_owned()),
        ]
    );
    assert!(events[2]["action"].get("path_search").is_none());
    // The choice is in the digest.
    let folded = up_to_success(&folding, name, &mark);
    assert_eq!(folded.len(), 1);
    assert_ne!(
        folded[0]["policy"]["config_digest"],
        events[2]["policy"]["config_digest"]
    );
}
