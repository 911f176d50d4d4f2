//! Hostile and awkward input from real processes: huge argv, binaries that are
//! gone or never had a path, pid reuse, processes that exit before user space
//! looks, a 10,000-deep exec chain, and a tracer restarted mid-stream.
use std::{
    collections::{BTreeSet, HashSet},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::{
    Follower, Tracer, argv, argv_contains, complete_lines, is_exec, marker, scratch_dir, tracer_bin,
};

fn python(script: &str, args: &[&str]) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Counts the lines of a growing file that contain `needle`, reading each once.
struct LineCount {
    follow: Follower,
    needle: String,
    count: usize,
}

impl LineCount {
    fn new(path: &Path, needle: &str) -> LineCount {
        LineCount {
            follow: Follower::new(path),
            needle: needle.to_owned(),
            count: 0,
        }
    }

    fn update(&mut self) -> usize {
        let needle = &self.needle;
        self.count += self
            .follow
            .next_lines()
            .iter()
            .filter(|l| l.contains(needle.as_str()))
            .count();
        self.count
    }

    /// Waits until `n` lines in all have the needle; on timeout, fails with the
    /// tracer's stderr (a loss warning, say).
    fn wait(&mut self, n: usize, timeout: Duration, tracer_stderr: &Path) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.update();
            if got >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {got} of {n} lines with {} after {timeout:?}; tracer stderr:\n{}",
                self.needle,
                std::fs::read_to_string(tracer_stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn argv_of_one_mebibyte_is_cut_and_flagged() {
    let tracer = Tracer::start(&[]);
    let mark = marker("mib");
    let chunk = "a".repeat(64 * 1024 - 1);
    let mut args = vec![mark.clone()];
    args.extend(std::iter::repeat_n(chunk, 16));
    let st = Command::new("/bin/true").args(&args).status().unwrap();
    assert!(st.success());
    // The tracer goes on: a later exec is seen too.
    let after = marker("after-mib");
    assert!(
        Command::new("/bin/true")
            .arg(&after)
            .status()
            .unwrap()
            .success()
    );
    let found = tracer.wait_for(1, |e| is_exec(e) && argv_contains(e, &mark));
    tracer.wait_for(1, |e| is_exec(e) && argv_contains(e, &after));
    let e = &found[0];
    assert_eq!(e["action"]["argv_truncated"], true);
    let a = argv(e);
    assert_eq!(a[1], mark);
    let bytes: usize = a.iter().map(|s| s.len() + 1).sum();
    assert!(
        (16 * 1024..1024 * 1024).contains(&bytes),
        "captured {bytes} bytes"
    );
    assert_eq!(e["action"]["outcome"], "success");
}

#[test]
fn exec_of_a_deleted_binary_and_of_a_memfd_is_attributed() {
    let tracer = Tracer::start(&[]);
    let dir = scratch_dir();
    let copy = dir.join("deleted-true");
    std::fs::copy("/bin/true", &copy).unwrap();
    let (del, mem) = (marker("deleted"), marker("memfd"));
    // Open the copy, unlink it, then exec it through /proc/self/fd.
    python(
        "import os, sys\n\
         fd = os.open(sys.argv[1], os.O_RDONLY)\n\
         os.unlink(sys.argv[1])\n\
         pid = os.fork()\n\
         if pid == 0:\n\
         \x20   os.execv(f'/proc/self/fd/{fd}', ['deleted-true', sys.argv[2]])\n\
         os.waitpid(pid, 0)\n",
        &[copy.to_str().unwrap(), &del],
    );
    // A binary that never had a path: a memfd, run with fexecve (execveat with
    // AT_EMPTY_PATH).
    python(
        "import os, sys\n\
         fd = os.memfd_create('tracer-memfd', 0)\n\
         os.write(fd, open('/bin/true', 'rb').read())\n\
         pid = os.fork()\n\
         if pid == 0:\n\
         \x20   os.execve(fd, ['memfd-true', sys.argv[1]], {})\n\
         os.waitpid(pid, 0)\n",
        &[&mem],
    );
    // The file that ran, as /proc/<pid>/exe would name it, not `/dev/fd/N`.
    let deleted_path = format!("{} (deleted)", copy.display());
    for (m, name, path) in [
        (&del, "deleted-true", deleted_path.as_str()),
        (&mem, "memfd-true", "/memfd:tracer-memfd (deleted)"),
    ] {
        let found = tracer.wait_for(1, |e| {
            is_exec(e) && argv(e).first().map(String::as_str) == Some(name) && argv_contains(e, m)
        });
        let e = &found[0];
        assert_eq!(e["action"]["outcome"], "success", "{e}");
        assert_eq!(e["executor"]["binary"], path, "{e}");
        assert_eq!(e["action"]["binary"], path, "{e}");
        assert_eq!(e["executor"]["user"]["name"], "root");
        assert!(
            e["executor"]["exec_id"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        );
        // The parent is the python process that forked it.
        let parent = &e["lineage"][0];
        assert!(
            parent["binary"]
                .as_str()
                .is_some_and(|b| b.contains("python")),
            "{e}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Two processes made to get the same host pid one after the other: each event
/// carries its own image, never the earlier owner's.
#[test]
fn a_reused_pid_gets_a_new_exec_id_and_its_own_data() {
    let tracer = Tracer::start(&[]);
    let (first, second) = (marker("pid-a"), marker("pid-b"));
    // Spawn the second at the first's pid through ns_last_pid (retry: other
    // processes on the host may take the pid first).
    python(
        "import os, sys\n\
         def run(args):\n\
         \x20   pid = os.fork()\n\
         \x20   if pid == 0:\n\
         \x20       os.execv(args[0], args)\n\
         \x20   os.waitpid(pid, 0)\n\
         \x20   return pid\n\
         for attempt in range(200):\n\
         \x20   p = run(['/bin/true', sys.argv[1], str(attempt)])\n\
         \x20   with open('/proc/sys/kernel/ns_last_pid', 'w') as f:\n\
         \x20       f.write(str(p - 1))\n\
         \x20   q = run(['/bin/echo', sys.argv[2], str(attempt)])\n\
         \x20   if q == p:\n\
         \x20       print(p)\n\
         \x20       sys.exit(0)\n\
         sys.exit('pid never reused')\n",
        &[&first, &second],
    );
    let ran = |e: &Value, bin: &str, m: &str| {
        is_exec(e) && e["action"]["outcome"] == "success" && {
            let a = argv(e);
            a.first().map(String::as_str) == Some(bin) && a.get(1).map(String::as_str) == Some(m)
        }
    };
    let b = tracer.wait_for(1, |e| ran(e, "/bin/echo", &second));
    let b = &b[0];
    let attempt = argv(b)[2].clone();
    let a = tracer.wait_for(1, |e| {
        ran(e, "/bin/true", &first) && argv(e).get(2) == Some(&attempt)
    });
    let a = &a[0];
    assert_eq!(a["executor"]["pid"], b["executor"]["pid"], "same pid");
    assert_ne!(
        a["executor"]["exec_id"], b["executor"]["exec_id"],
        "\n{a}\n{b}"
    );
    assert!(a["executor"]["binary"].as_str().unwrap().ends_with("/true"));
    assert!(b["executor"]["binary"].as_str().unwrap().ends_with("/echo"));
    assert_eq!(argv(b)[1], second);
}

/// Short-lived processes are gone long before user space reads their records:
/// everything about them still comes from the kernel (and the table).
#[test]
fn processes_that_exit_before_they_are_read_are_fully_attributed() {
    let tracer = Tracer::start(&[]);
    let mark = marker("early");
    let dir = scratch_dir();
    let n = 200;
    let st = Command::new("/bin/sh")
        .current_dir(&dir)
        .args([
            "-c",
            &format!("i=0; while [ $i -lt {n} ]; do /bin/true {mark} $i; i=$((i+1)); done"),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let found = tracer.wait_for(n, |e| {
        is_exec(e) && argv(e).get(1) == Some(&mark) && e["executor"]["comm"] == "true"
    });
    assert_eq!(found.len(), n);
    let shell = found[0]["lineage"][0]["pid"].clone();
    let mut seen = HashSet::new();
    for e in &found {
        let x = &e["executor"];
        assert!(seen.insert(x["exec_id"].as_str().unwrap().to_owned()));
        assert_eq!(x["user"]["name"], "root");
        assert_eq!(x["cwd"], dir.to_str().unwrap(), "{e}");
        assert!(x["cgroup"]["path"].is_string(), "{e}");
        assert!(x["namespaces"]["pid"].as_u64().is_some_and(|v| v > 0));
        assert_eq!(e["lineage"][0]["pid"], shell, "parent is the loop's shell");
        assert!(
            e["lineage"][0]["argv"].as_array().is_some_and(|a| a
                .iter()
                .any(|s| s.as_str().is_some_and(|s| s.contains(&mark)))),
            "{e}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Shells that change directory as their first command: the exec happened in
/// the start directory, so that or nothing is its cwd, never the later one
/// (user space reads /proc after the shell has moved).
#[test]
fn cwd_is_the_directory_of_the_exec_not_a_later_one() {
    let tracer = Tracer::start(&[]);
    let mark = marker("chdir");
    let dir = scratch_dir();
    let (start, later) = (dir.join("start"), dir.join("later"));
    std::fs::create_dir(&start).unwrap();
    std::fs::create_dir(&later).unwrap();
    let script = format!("cd {}; : {mark}", later.display());
    // One process that stays: its directory is read and cached...
    let mut stay = Command::new("/bin/sleep")
        .current_dir(&start)
        .arg("10")
        .spawn()
        .unwrap();
    let stay_pid = stay.id();
    let is_stay = |e: &Value| is_exec(e) && e["executor"]["pid"] == stay_pid;
    let stayed = tracer.wait_for(1, is_stay);
    // ...then shells that move away at once.
    for _ in 0..20 {
        let st = Command::new("/bin/sh")
            .current_dir(&start)
            .args(["-c", &script])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let shells = tracer.wait_for(20, |e| is_exec(e) && argv_contains(e, &mark));
    let _ = stay.kill();
    let _ = stay.wait();
    let start = start.to_str().unwrap();
    assert_eq!(stayed[0]["executor"]["cwd"], start, "{}", stayed[0]);
    for e in &shells {
        let cwd = &e["executor"]["cwd"];
        assert!(cwd.is_null() || cwd == start, "{e}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// One process that execs itself 10,000 times: every image is one event, with
/// the same pid and its own exec_id.
#[test]
fn ten_thousand_deep_exec_chain_is_every_exec_once() {
    let tracer = Tracer::start(&[]);
    let mark = marker("chain");
    let dir = scratch_dir();
    let script = dir.join("chain.sh");
    std::fs::write(
        &script,
        "n=$1\nif [ \"$n\" -gt 0 ]; then exec /bin/sh \"$0\" $((n-1)) \"$2\"; fi\n",
    )
    .unwrap();
    let depth: u32 = 10_000;
    let st = Command::new("/bin/sh")
        .arg(&script)
        .arg(depth.to_string())
        .arg(&mark)
        .status()
        .unwrap();
    assert!(st.success());
    // `depth` execs by the chain itself (the first /bin/sh was started by us).
    LineCount::new(&tracer.output, &mark).wait(
        depth as usize,
        Duration::from_secs(300),
        &tracer.stderr,
    );
    tracer.settle();
    let events: Vec<Value> = complete_lines(&tracer.output)
        .iter()
        .filter(|l| l.contains(&mark))
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &Value| is_exec(e) && argv(e).get(3) == Some(&mark))
        .collect();
    let mut counters = BTreeSet::new();
    let mut ids = std::collections::HashMap::new();
    let pid = events[0]["executor"]["pid"].clone();
    for e in &events {
        assert_eq!(e["executor"]["pid"], pid, "one process");
        let id = e["executor"]["exec_id"].as_str().unwrap().to_owned();
        if let Some(prev) = ids.insert(id, e) {
            panic!("two events with one exec_id:\n{prev}\n{e}");
        }
        let n: u32 = argv(e)[2].parse().unwrap();
        assert!(counters.insert(n), "exec {n} twice");
    }
    // The chain's execs are n = depth-1 ... 0 (our own start was n = depth).
    let want: BTreeSet<u32> = (0..depth).collect();
    let missing: Vec<_> = want.difference(&counters).take(5).collect();
    assert!(missing.is_empty(), "missing execs, e.g. {missing:?}");
    assert!(
        !tracer.stderr_log().contains("events were lost"),
        "{}",
        tracer.stderr_log()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A stream of execs runs while the tracer is stopped and started again on the
/// same file: no event twice, and each tracer's stretch of the stream is whole.
#[test]
fn restart_mid_stream_loses_and_duplicates_nothing() {
    let dir = scratch_dir();
    let out = dir.join("events.jsonl");
    let flags = ["--output", out.to_str().unwrap()];
    let mark = marker("restart");
    let a = Tracer::start(&flags);
    let mut stream = Command::new("/bin/sh")
        .args([
            "-c",
            &format!("i=0; while [ $i -lt 100000 ]; do /bin/true {mark} $i; i=$((i+1)); done"),
        ])
        .spawn()
        .unwrap();
    // Lines of the loop's own execs only: the mark quoted alone is an argv
    // element of /bin/true; in the shell's argv it is inside the script.
    let own = format!("\"{mark}\"");
    let mut lines = LineCount::new(&out, &own);
    lines.wait(300, Duration::from_secs(120), &a.stderr);
    assert!(a.stop().success());
    let b = Tracer::start(&flags);
    let seen_at_b_start = lines.update();
    lines.wait(seen_at_b_start + 300, Duration::from_secs(120), &b.stderr);
    let _ = stream.kill();
    let _ = stream.wait();
    b.settle();
    assert!(b.stop().success());

    let mut ids = HashSet::new();
    let mut runs: Vec<Vec<u64>> = vec![Vec::new()];
    let lines = complete_lines(&out);
    for (n, l) in lines.iter().enumerate() {
        let v: Value = serde_json::from_str(l).unwrap();
        if !(is_exec(&v) && argv(&v).get(1) == Some(&mark)) {
            continue;
        }
        let id = v["event_id"].as_str().unwrap().to_owned();
        assert!(ids.insert(id.clone()), "event {id} written twice");
        let i: u64 = argv(&v)[2].parse().unwrap();
        let run = runs.last_mut().unwrap();
        // The first record of the second tracer starts a new run: its numbers
        // jump past the gap while no tracer ran.
        if let Some(&prev) = run.last()
            && i != prev + 1
        {
            assert!(
                i > prev,
                "stream went backwards at line {n}: {prev} then {i}"
            );
            runs.push(vec![i]);
            continue;
        }
        run.push(i);
    }
    // At most one gap: the time between the two tracers.
    assert!(runs.len() <= 2, "{} gaps in the stream", runs.len() - 1);
    assert!(
        runs.iter().all(|r| r.len() >= 300),
        "runs of {:?} execs",
        runs.iter().map(Vec::len).collect::<Vec<_>>()
    );
    // The hash chain goes on across the restart.
    let verify = Command::new(tracer_bin())
        .arg("verify")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    std::fs::remove_dir_all(dir).unwrap();
}
