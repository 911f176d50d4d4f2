//! Tamper-evident output: real tracer runs (with rotation, a restart and signed
//! checkpoints) verify as intact, and `tracer verify` catches each kind of
//! tampering in copies of those files.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use tracer_tests::{
    Tracer, complete_lines, exec_storm, marker, output_files, scratch_dir, tracer_bin,
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

fn verify(files: &[PathBuf], public_key: Option<&Path>) -> (i32, String) {
    let mut cmd = Command::new(tracer_bin());
    cmd.arg("verify");
    if let Some(k) = public_key {
        cmd.arg("--public-key").arg(k);
    }
    let out = cmd.args(files).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn openssl(args: &[&str]) {
    let st = Command::new("openssl")
        .args(args)
        .status()
        .expect("openssl");
    assert!(st.success(), "openssl {args:?}");
}

/// An ed25519 key pair as an operator makes it: (private PEM, public PEM).
fn key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    let (k, p) = (key.to_str().unwrap(), public.to_str().unwrap());
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", k]);
    openssl(&["pkey", "-in", k, "-pubout", "-out", p]);
    (key, public)
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
    let (code, text) = verify(&json, Some(&public));
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
    let (code, text) = verify(output_files(&dir, "events.ocsf.jsonl").as_slice(), None);
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
    expect("edit", verify(&t, None), &format!("{at}, seq"));
    expect("edit", verify(&t, None), "record edited");
    fs::remove_dir_all(d).unwrap();

    let (d, t) = tampered(&json, victim_file, |l| {
        l.remove(victim_line);
    });
    expect("delete", verify(&t, None), &at);
    expect("delete", verify(&t, None), "deleted or moved");
    fs::remove_dir_all(d).unwrap();

    let (d, t) = tampered(&json, victim_file, |l| l.swap(victim_line, victim_line + 1));
    expect("reorder", verify(&t, None), &at);
    fs::remove_dir_all(d).unwrap();

    // A whole rotated file removed from the middle.
    let mut gap = json.clone();
    gap.remove(1);
    expect("file removed", verify(&gap, None), "deleted or moved");

    // Cut inside the last record of the current file.
    let (d, t) = tampered(&json, json.len() - 1, |_| {});
    let last = t.last().unwrap();
    let bytes = fs::read(last).unwrap();
    fs::write(last, &bytes[..bytes.len() - 20]).unwrap();
    expect("truncate", verify(&t, None), "truncated");
    fs::remove_dir_all(d).unwrap();

    // A forger who rewrites the chain after an edit cannot sign: with the public
    // key, a checkpoint fails. (Re-sealing is what `tracer verify` without a key
    // cannot tell from the truth.)
    let (_, other_pub) = key_pair(&dir, "other");
    expect(
        "wrong key",
        verify(&json, Some(&other_pub)),
        "signature does not verify",
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_rejects_missing_files_and_bad_keys_clearly() {
    let (code, text) = verify(&[PathBuf::from("/nonexistent/events.jsonl")], None);
    assert_eq!(code, 1);
    assert!(text.contains("/nonexistent/events.jsonl"), "{text}");
    let dir = scratch_dir();
    let bad = dir.join("bad.pub");
    fs::write(&bad, "not a key").unwrap();
    let ev = dir.join("e.jsonl");
    fs::write(&ev, "").unwrap();
    let (code, text) = verify(&[ev], Some(&bad));
    assert_eq!(code, 1);
    assert!(text.contains("not an ed25519 public key"), "{text}");
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
