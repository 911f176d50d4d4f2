//! Tamper-evident output: real tracer runs (with rotation, a restart and signed
//! checkpoints) verify as intact, and `tracer verify` catches each kind of
//! tampering in copies of those files.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tracer_tests::{
    Follower, Tmpfs, Tracer, check_schema, complete_lines, exec_storm, free_port, http_get,
    key_pair, marker, metric, output_files, scratch_dir, tracer_bin, verify,
};

fn count_marked(files: &[PathBuf], mark: &str) -> usize {
    files
        .iter()
        .flat_map(|f| complete_lines(f))
        .filter(|l| l.contains(mark) && l.contains("\"kind\":\"exec\""))
        .count()
}

fn wait_marked(dir: &Path, base: &str, mark: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_marked(&output_files(dir, base), mark) < n {
        assert!(Instant::now() < deadline, "events of {mark} did not arrive");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Copy the files into a fresh directory, apply `edit` to the line list of the
/// file at `index`, and return the copies.
fn tampered(
    src: &[PathBuf],
    index: usize,
    mut edit: impl FnMut(&mut Vec<String>),
) -> (PathBuf, Vec<PathBuf>) {
    let dir = scratch_dir();
    let mut out = Vec::new();
    for (i, f) in src.iter().enumerate() {
        let dst = dir.join(f.file_name().unwrap());
        if i == index {
            let mut lines = complete_lines(f);
            edit(&mut lines);
            let mut text = lines.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            fs::write(&dst, text).unwrap();
        } else {
            fs::copy(f, &dst).unwrap();
        }
        out.push(dst);
    }
    (dir, out)
}

#[test]
fn chain_spans_rotation_and_restart_and_tampering_is_caught() {
    let dir = scratch_dir();
    let (key, public) = key_pair(&dir, "key");
    let out = dir.join("events.jsonl");
    let ocsf = dir.join("events.ocsf.jsonl");
    let flags = [
        "--output",
        out.to_str().unwrap(),
        "--ocsf-output",
        ocsf.to_str().unwrap(),
        "--rotate-size",
        "200000",
        "--rotate-keep",
        "100",
        "--signing-key",
        key.to_str().unwrap(),
        "--checkpoint-records",
        "100",
    ];
    let first = marker("chain1");
    let tracer = Tracer::start(&flags);
    exec_storm(300, &first);
    wait_marked(&dir, "events.jsonl", &first, 300);
    assert!(tracer.stop().success());
    // A restart appends to the same file and goes on with its chain.
    let second = marker("chain2");
    let tracer = Tracer::start(&flags);
    exec_storm(100, &second);
    wait_marked(&dir, "events.jsonl", &second, 100);
    assert!(tracer.stop().success());

    let json = output_files(&dir, "events.jsonl");
    assert!(json.len() >= 3, "expected rotations: {json:?}");
    let (code, text) = verify(&json, Some(&public), &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.starts_with("OK:") && text.contains("signatures verified"),
        "{text}"
    );
    // Clean stops end with a checkpoint: nothing unsigned.
    assert!(!text.contains("after the last checkpoint"), "{text}");
    let lines: Vec<String> = json.iter().flat_map(|f| complete_lines(f)).collect();
    let checkpoints = lines
        .iter()
        .filter(|l| l.contains("\"kind\":\"checkpoint\""))
        .count();
    assert!(checkpoints >= 4, "{checkpoints} checkpoints");
    // Every record carries a link, and the sequence has no gap across files.
    let seqs: Vec<u64> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["chain"]["seq"]
                .as_u64()
                .expect("chain.seq on every record")
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "seq gap");
    // The OCSF file has its own chain, inside `unmapped`.
    let (code, text) = verify(
        output_files(&dir, "events.ocsf.jsonl").as_slice(),
        None,
        &[],
    );
    assert_eq!(code, 0, "{text}");

    // A line of a rotated file whose argv mentions the first storm.
    let (victim_file, victim_line) = json
        .iter()
        .enumerate()
        .take(json.len() - 1)
        .find_map(|(i, f)| {
            let ls = complete_lines(f);
            let n = (1..ls.len().saturating_sub(1)).find(|&n| ls[n].contains(&first))?;
            Some((i, n))
        })
        .expect("a storm event inside a rotated file");
    let name = |i: usize| json[i].file_name().unwrap().to_string_lossy().into_owned();
    let expect = |what: &str, (code, text): (i32, String), needle: &str| {
        assert_eq!(code, 1, "{what}: not caught:\n{text}");
        assert!(text.contains("TAMPERED"), "{what}: {text}");
        assert!(
            text.contains(needle),
            "{what}: expected {needle:?} in:\n{text}"
        );
    };
    let at = format!("{} line {}", name(victim_file), victim_line + 1);

    let (d, t) = tampered(&json, victim_file, |l| {
        l[victim_line] = l[victim_line].replace(&first, "innocent");
    });
    expect("edit", verify(&t, None, &[]), &format!("{at}, seq"));
    expect("edit", verify(&t, None, &[]), "record edited");
    fs::remove_dir_all(d).unwrap();

    let (d, t) = tampered(&json, victim_file, |l| {
        l.remove(victim_line);
    });
    expect("delete", verify(&t, None, &[]), &at);
    expect("delete", verify(&t, None, &[]), "deleted or moved");
    fs::remove_dir_all(d).unwrap();

    let (d, t) = tampered(&json, victim_file, |l| l.swap(victim_line, victim_line + 1));
    expect("reorder", verify(&t, None, &[]), &at);
    fs::remove_dir_all(d).unwrap();

    // A whole rotated file removed from the middle.
    let mut gap = json.clone();
    gap.remove(1);
    expect("file removed", verify(&gap, None, &[]), "deleted or moved");

    // Cut inside the last record of the current file.
    let (d, t) = tampered(&json, json.len() - 1, |_| {});
    let last = t.last().unwrap();
    let bytes = fs::read(last).unwrap();
    fs::write(last, &bytes[..bytes.len() - 20]).unwrap();
    expect("truncate", verify(&t, None, &[]), "truncated");
    fs::remove_dir_all(d).unwrap();

    // A forger who rewrites the chain after an edit cannot sign: with the public
    // key, a checkpoint fails. (Re-sealing is what `tracer verify` without a key
    // cannot tell from the truth.)
    let (_, other_pub) = key_pair(&dir, "other");
    expect(
        "wrong key",
        verify(&json, Some(&other_pub), &[]),
        "signature does not verify",
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_rejects_missing_files_and_bad_keys_clearly() {
    let (code, text) = verify(&[PathBuf::from("/nonexistent/events.jsonl")], None, &[]);
    assert_eq!(code, 1);
    assert!(text.contains("/nonexistent/events.jsonl"), "{text}");
    let dir = scratch_dir();
    let bad = dir.join("bad.pub");
    fs::write(&bad, "not a key").unwrap();
    let ev = dir.join("e.jsonl");
    fs::write(&ev, "").unwrap();
    let (code, text) = verify(&[ev], Some(&bad), &[]);
    assert_eq!(code, 1);
    assert!(text.contains("not an ed25519 public key"), "{text}");
    // Private to root, so it is the content that is refused.
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&bad, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = Command::new(tracer_bin())
        .args(["run", "--signing-key", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an ed25519 private key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::remove_dir_all(&dir).unwrap();
}

fn records(files: &[PathBuf]) -> Vec<Value> {
    files
        .iter()
        .flat_map(|f| complete_lines(f))
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn seq(v: &Value) -> u64 {
    v["chain"]["seq"].as_u64().expect("chain.seq")
}

/// A line that links onto `last` exactly as the tracer would link it: what
/// anyone who can write the file can compute.
fn forge_after(last: &Value, body: &str) -> String {
    let prev = last["chain"]["hash"].as_str().unwrap();
    let canonical = format!("{{{body}}}");
    let hash: String = Sha256::new()
        .chain_update(prev.as_bytes())
        .chain_update(b"\n")
        .chain_update(canonical.as_bytes())
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        r#"{{{body},"chain":{{"seq":{},"prev":"{prev}","hash":"{hash}"}}}}"#,
        seq(last) + 1
    )
}

fn append_line(path: &Path, line: &str) {
    use std::io::Write as _;
    let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
    writeln!(f, "{line}").unwrap();
}

#[test]
fn a_line_forged_while_the_tracer_was_stopped_is_disowned_by_a_new_segment() {
    let dir = scratch_dir();
    let (key, public) = key_pair(&dir, "key");
    let out = dir.join("events.jsonl");
    let flags = [
        "--output",
        out.to_str().unwrap(),
        "--signing-key",
        key.to_str().unwrap(),
    ];
    let first = marker("seg1");
    let tracer = Tracer::start(&flags);
    exec_storm(5, &first);
    wait_marked(&dir, "events.jsonl", &first, 5);
    assert!(tracer.stop().success());
    let files = [out.clone()];
    let (code, text) = verify(&files, Some(&public), &[]);
    assert_eq!(code, 0, "a clean stop ends signed:\n{text}");

    // Correctly linked, so only the missing signature gives it away.
    let before = records(&files);
    let last = before.last().unwrap();
    assert_eq!(last["kind"], "checkpoint");
    let forged_mark = marker("forged");
    let forged = forge_after(
        last,
        &format!(r#""kind":"exec","action":{{"argv":["/bin/true","{forged_mark}"]}}"#),
    );
    append_line(&out, &forged);
    let forged_seq = seq(last) + 1;
    let (code, text) = verify(&files, Some(&public), &[]);
    assert_eq!(code, 4, "a forged unsigned tail must not pass:\n{text}");
    assert!(text.contains("UNSIGNED: the last 1 records"), "{text}");
    let (code, text) = verify(&files, Some(&public), &["--accept-unsigned-tail"]);
    assert_eq!(code, 0, "{text}");

    let second = marker("seg2");
    let tracer = Tracer::start(&flags);
    exec_storm(5, &second);
    wait_marked(&dir, "events.jsonl", &second, 5);
    let log = tracer.stderr_log();
    assert!(tracer.stop().success());
    assert!(log.contains("starting a new chain segment"), "{log}");

    let after = records(&files);
    let i = after
        .iter()
        .position(|v| v["kind"] == "chain_segment")
        .expect("a chain_segment record");
    assert_eq!(i, before.len() + 1, "first record of the new run");
    let s = &after[i]["segment"];
    assert_eq!(s["reason"], "unsigned_tail", "{s}");
    assert_eq!(s["last_checkpoint"]["seq"], seq(last), "{s}");
    assert_eq!(s["last_checkpoint"]["hash"], last["chain"]["hash"], "{s}");
    assert_eq!(s["unvouched"]["first_seq"], forged_seq, "{s}");
    assert_eq!(s["unvouched"]["last_seq"], forged_seq, "{s}");
    assert_eq!(s["unvouched"]["records"], 1, "{s}");
    // Signed at once: the disowning itself is vouched for.
    assert_eq!(after[i + 1]["kind"], "checkpoint");
    assert_eq!(after[i + 1]["checkpoint"]["seq"], seq(&after[i]));

    // The tracer's own lines (the forged one is not of our schema).
    let own = dir.join("own.jsonl");
    let lines: Vec<String> = complete_lines(&out)
        .into_iter()
        .filter(|l| l != &forged)
        .collect();
    fs::write(&own, lines.join("\n") + "\n").unwrap();
    check_schema(&own);
    let (code, text) = verify(&files, Some(&public), &[]);
    assert_eq!(code, 3, "declared, not tampered, not clean:\n{text}");
    assert!(!text.contains("TAMPERED"), "{text}");
    assert!(
        text.contains(&format!(
            "does not vouch for seq {forged_seq}..={forged_seq} (1 records)"
        )),
        "{text}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn removed_checkpoints_fail_a_keyed_verify_unless_an_unsigned_tail_is_accepted() {
    let dir = scratch_dir();
    let (key, public) = key_pair(&dir, "key");
    let out = dir.join("events.jsonl");
    let mark = marker("nocp");
    let tracer = Tracer::start(&[
        "--output",
        out.to_str().unwrap(),
        "--signing-key",
        key.to_str().unwrap(),
        "--checkpoint-records",
        "20",
    ]);
    exec_storm(60, &mark);
    wait_marked(&dir, "events.jsonl", &mark, 60);
    assert!(tracer.stop().success());
    let files = [out.clone()];
    assert_eq!(verify(&files, Some(&public), &[]).0, 0);
    let all = complete_lines(&out);
    assert!(all.len() > 60);

    // The final checkpoint cut off: the chain cannot tell, the key can.
    let (d, cut) = tampered(&files, 0, |l| {
        assert!(l.pop().unwrap().contains("\"kind\":\"checkpoint\""));
    });
    let (code, text) = verify(&cut, Some(&public), &[]);
    assert_eq!(code, 4, "{text}");
    assert!(
        text.contains("UNSIGNED") && !text.contains("TAMPERED"),
        "{text}"
    );
    let (code, text) = verify(&cut, Some(&public), &["--accept-unsigned-tail"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("accepted (--accept-unsigned-tail)"), "{text}");
    fs::remove_dir_all(d).unwrap();

    // Every checkpoint removed and the chain recomputed, as a forger would.
    let mut rechained: Vec<String> = Vec::new();
    let mut prev: Option<Value> = None;
    for l in &all {
        let v: Value = serde_json::from_str(l).unwrap();
        if v["kind"] == "checkpoint" {
            continue;
        }
        let line = match &prev {
            None => l.clone(),
            Some(p) => {
                let member = l.find(",\"chain\":{").unwrap();
                forge_after(p, &l[1..member])
            }
        };
        prev = Some(serde_json::from_str(&line).unwrap());
        rechained.push(line);
    }
    let forged = dir.join("rechained.jsonl");
    fs::write(&forged, rechained.join("\n") + "\n").unwrap();
    let forged = [forged];
    let (code, text) = verify(&forged, None, &[]);
    assert_eq!(
        code, 0,
        "without the key a rechained file looks whole:\n{text}"
    );
    let (code, text) = verify(&forged, Some(&public), &[]);
    assert_eq!(code, 4, "{text}");
    assert!(
        text.contains(&format!("UNSIGNED: the last {} records", rechained.len())),
        "{text}"
    );
    assert_eq!(
        verify(&forged, Some(&public), &["--accept-unsigned-tail"]).0,
        0
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_signing_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = scratch_dir();
    let (key, _) = key_pair(&dir, "key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let link = dir.join("link.pem");
    std::os::unix::fs::symlink(&key, &link).unwrap();
    for k in [&key, &link] {
        let out = Command::new(tracer_bin())
            .args(["run", "--output"])
            .arg(dir.join("events.jsonl"))
            .arg("--signing-key")
            .arg(k)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("readable or writable by group or others (mode 0644)")
                && err.contains("chmod 600"),
            "{err}"
        );
        assert!(!err.contains("tracer ready"), "{err}");
    }
    assert!(
        !dir.join("events.jsonl").exists(),
        "refused before any output"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_follows_exactly_every_n_records_under_an_exec_storm() {
    let dir = scratch_dir();
    let (key, public) = key_pair(&dir, "key");
    let out = dir.join("events.jsonl");
    let mark = marker("every");
    let tracer = Tracer::start(&[
        "--output",
        out.to_str().unwrap(),
        "--signing-key",
        key.to_str().unwrap(),
        "--checkpoint-records",
        "10",
        "--checkpoint-interval",
        "3600",
    ]);
    exec_storm(500, &mark);
    wait_marked(&dir, "events.jsonl", &mark, 500);
    assert!(tracer.stop().success());
    let all = records(std::slice::from_ref(&out));
    let at: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, v)| v["kind"] == "checkpoint")
        .map(|(i, _)| i)
        .collect();
    assert!(at.len() >= 50, "{} checkpoints", at.len());
    // Records between checkpoints: exactly 10, the last (at shutdown) 1..=10.
    let mut runs: Vec<usize> = std::iter::once(at[0])
        .chain(at.windows(2).map(|w| w[1] - w[0] - 1))
        .collect();
    let last = runs.pop().unwrap();
    assert!(
        runs.iter().all(|&n| n == 10),
        "runs between checkpoints: {runs:?}"
    );
    assert!((1..=10).contains(&last), "last run {last}");
    assert_eq!(at.last(), Some(&(all.len() - 1)), "ends with a checkpoint");
    for &i in &at {
        assert_eq!(all[i]["checkpoint"]["seq"], seq(&all[i - 1]));
    }
    assert_eq!(verify(&[out], Some(&public), &[]).0, 0);
    fs::remove_dir_all(&dir).unwrap();
}

/// `tracer_lost_events_total{cause="sink_error"}` and the output's failed writes.
fn sink_metrics(port: u16, out: &Path) -> (u64, u64) {
    let (_, text) = http_get(port, "/metrics");
    (
        metric(&text, "tracer_lost_events_total{cause=\"sink_error\"}"),
        metric(
            &text,
            &format!("tracer_sink_errors_total{{sink=\"{}\"}}", out.display()),
        ),
    )
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Room for what the whole host execs meanwhile: the tracer records every
/// process, and other tests' argv storms wrote 200 MB within a minute. tmpfs
/// pages cost memory only while written.
const ROOMY: &str = "1g";

/// Runs of `/bin/true <mark>` among `lines` (exec events; not the shell whose
/// script names the mark). Text match: the file holds the whole host's events.
fn runs_in(lines: &[String], mark: &str) -> usize {
    let argv = format!(r#""argv":["/bin/true","{mark}"]"#);
    lines
        .iter()
        .filter(|l| l.contains(r#""kind":"exec""#) && l.contains(&argv))
        .count()
}

/// Wait for `n` runs of `/bin/true <mark>` in `out`, reading only what is new.
fn wait_runs(out: &Path, mark: &str, n: usize, port: u16, tracer: &Tracer) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut follow = Follower::new(out);
    let mut seen = 0;
    loop {
        seen += runs_in(&follow.next_lines(), mark);
        if seen >= n {
            return;
        }
        let (dropped, failed) = sink_metrics(port, out);
        assert!(
            Instant::now() < deadline,
            "{seen} of {n} runs of {mark} (dropped {dropped}, failed writes {failed}); tracer log:\n{}",
            tracer.stderr_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `sink_error` loss records (parsed) with the record before each.
fn gaps_in(lines: &[String]) -> Vec<(Value, Value)> {
    (1..lines.len())
        .filter(|&i| lines[i].contains(r#""gap":{"#) && lines[i].contains(r#""kind":"loss""#))
        .map(|i| {
            let parse = |l: &str| serde_json::from_str::<Value>(l).unwrap();
            (parse(&lines[i - 1]), parse(&lines[i]))
        })
        .collect()
}

fn full_disk_tracer(fs_: &Tmpfs, key: &Path, port: u16, extra: &[&str]) -> (PathBuf, Tracer) {
    let out = fs_.dir.join("events.jsonl");
    let addr = format!("127.0.0.1:{port}");
    let mut flags = vec![
        "--output",
        out.to_str().unwrap(),
        "--rotate-size",
        "0",
        "--signing-key",
        key.to_str().unwrap(),
        "--metrics-addr",
        &addr,
        "--loss-interval",
        "100",
    ];
    flags.extend_from_slice(extra);
    let tracer = Tracer::start(&flags);
    (out, tracer)
}

#[test]
fn a_full_disk_keeps_records_to_retry_and_the_tracer_goes_on() {
    let fs_ = Tmpfs::mount(ROOMY);
    let keys = scratch_dir();
    let (key, public) = key_pair(&keys, "key");
    let port = free_port();
    // Room for what the whole host does meanwhile (the default is 4 MiB).
    let (out, tracer) = full_disk_tracer(&fs_, &key, port, &["--output-buffer-size", "268435456"]);
    let filler = fs_.fill();
    let during = marker("full");
    exec_storm(30, &during);
    wait_until("a failed write", || sink_metrics(port, &out).1 > 0);
    fs::remove_file(&filler).unwrap();
    let after = marker("freed");
    exec_storm(5, &after);
    wait_runs(&out, &after, 5, port, &tracer);
    assert!(tracer.stop().success());
    let lines = complete_lines(&out);
    // The buffer held everything: nothing lost, nothing twice, nothing declared.
    assert_eq!(runs_in(&lines, &during), 30);
    assert!(gaps_in(&lines).is_empty());
    let (code, text) = verify(&[out], Some(&public), &[]);
    assert_eq!(code, 0, "{text}");
    fs::remove_dir_all(&keys).unwrap();
}

#[test]
fn records_a_full_disk_cannot_hold_are_declared_as_a_gap_that_verifies() {
    let fs_ = Tmpfs::mount(ROOMY);
    let keys = scratch_dir();
    let (key, public) = key_pair(&keys, "key");
    let port = free_port();
    let (out, tracer) = full_disk_tracer(&fs_, &key, port, &["--output-buffer-size", "16384"]);
    let first = marker("pre");
    exec_storm(3, &first);
    wait_runs(&out, &first, 3, port, &tracer);
    let filler = fs_.fill();
    let during = marker("full");
    exec_storm(300, &during);
    wait_until("records dropped", || sink_metrics(port, &out).0 > 0);
    fs::remove_file(&filler).unwrap();
    // Until its next flush the tracer still drops what comes (the buffer is
    // full): wait for a fresh event to reach the file.
    let probe = marker("probe");
    let mut follow = Follower::new(&out);
    wait_until("writes to work again", || {
        exec_storm(1, &probe);
        runs_in(&follow.next_lines(), &probe) > 0
    });
    let after = marker("freed");
    exec_storm(5, &after);
    wait_runs(&out, &after, 5, port, &tracer);
    assert!(tracer.stop().success());
    let lines = complete_lines(&out);
    let declared = gaps_in(&lines);
    assert!(!declared.is_empty(), "no sink_error loss record");
    for (before, g) in &declared {
        // It names the record right before it.
        assert_eq!(g["gap"]["after_seq"], seq(before), "{g}");
        assert_eq!(g["gap"]["after_hash"], before["chain"]["hash"], "{g}");
        assert_eq!(g["gap"]["records"], g["lost"]["sink_error"], "{g}");
    }
    // Every storm record is in the file or among those declared.
    let kept = runs_in(&lines, &during);
    let dropped: u64 = declared
        .iter()
        .map(|(_, g)| g["gap"]["records"].as_u64().unwrap())
        .sum();
    assert!(kept < 300, "the 16 KiB buffer cannot have held it all");
    assert!(
        kept as u64 + dropped >= 300,
        "kept {kept}, declared {dropped}"
    );
    assert_eq!(runs_in(&lines, &first), 3);
    // The gap records against the schema (the whole file can be 100s of MB).
    let sample = keys.join("gaps.jsonl");
    let text: String = declared.iter().map(|(_, g)| format!("{g}\n")).collect();
    fs::write(&sample, text).unwrap();
    check_schema(&sample);
    let (code, text) = verify(&[out], Some(&public), &[]);
    assert_eq!(code, 3, "a declared gap, not tampering:\n{text}");
    assert!(
        text.contains("DECLARED GAP") && !text.contains("TAMPERED"),
        "{text}"
    );
    assert!(text.contains("sink_error"), "{text}");
    fs::remove_dir_all(&keys).unwrap();
}
