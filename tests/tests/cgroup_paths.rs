//! cgroup paths on events, as the kernel and the file system give them: names
//! that are not UTF-8 have one spelling however the tracer learned them, and
//! paths longer than the kernel's record carries are completed by cgroup id
//! (issue 10).
use std::{
    io::Write as _,
    process::{Child, Command, Stdio},
};

use tracer_tests::{TestCgroup, Tracer, argv, is_exec, marker};

/// `sh` waiting for a line on stdin, then exec'ing `/bin/true <tag>`: it can
/// be moved into a cgroup (and the tracer started) before it runs anything.
struct Held {
    child: Child,
    tag: String,
}

impl Held {
    fn new(tag: String) -> Held {
        let child = Command::new("sh")
            .args(["-c", "read _ && exec /bin/true \"$0\"", &tag])
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        Held { child, tag }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn release(mut self) {
        let mut stdin = self.child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("release");
        drop(stdin);
        assert!(self.child.wait().expect("wait").success());
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tracer's spelling of raw name bytes (README, "Bytes that are not
/// UTF-8"): valid UTF-8 as is, `\` doubled, other bytes as `\xNN`.
fn spelled(raw: &[u8]) -> String {
    let mut out = String::new();
    for chunk in raw.utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// A cgroup named with bytes that are not UTF-8 (and a backslash): a process
/// that was in one before the tracer started (its cgroup learned from
/// /proc/<pid>/cgroup) and one moved into another made after (learned from the
/// kernel's cgroup_mkdir record) carry the same reversible spelling, the one a
/// walk of the hierarchy gives, and never U+FFFD.
#[test]
fn a_non_utf8_cgroup_name_has_one_spelling() {
    let mark = marker("nonutf8");
    let name = |which: &str| {
        [
            b"/".as_slice(),
            mark.as_bytes(),
            b"-",
            which.as_bytes(),
            b"-\xff\xfe\\x",
        ]
        .concat()
    };
    let early_raw = name("early");
    let early = TestCgroup::from_bytes(&early_raw);
    let before = Held::new(format!("{mark}-before"));
    early.add(before.pid());

    let tracer = Tracer::start(&[]);
    let late_raw = name("late");
    let late = TestCgroup::from_bytes(&late_raw);
    let after = Held::new(format!("{mark}-after"));
    late.add(after.pid());

    let cases = [
        (&early, spelled(&early_raw), "started before the tracer"),
        (
            &late,
            spelled(&late_raw),
            "in a cgroup made after the tracer started",
        ),
    ];
    let tags = [before.tag.clone(), after.tag.clone()];
    let (before_id, after_id) = (before.pid(), after.pid());
    before.release();
    after.release();
    let found = tracer.wait_for(2, |e| {
        is_exec(e) && tags.iter().any(|t| argv(e) == ["/bin/true", t.as_str()])
    });
    assert_eq!(found.len(), 2);
    for ((cg, want, what), (tag, pid)) in cases.iter().zip(tags.iter().zip([before_id, after_id])) {
        let e = found
            .iter()
            .find(|e| argv(e)[1] == *tag)
            .unwrap_or_else(|| panic!("no exec of {tag}"));
        assert_eq!(e["executor"]["pid"], pid, "{what}");
        let c = &e["executor"]["cgroup"];
        assert_eq!(c["id"], cg.id(), "{what}");
        assert_eq!(c["path"], want.as_str(), "{what}: {c}");
        assert!(!want.contains('\u{fffd}'));
        assert!(c.get("path_truncated").is_none(), "{what}: {c}");
    }
}

/// Nested cgroups whose path is longer than the 1023 bytes the kernel's
/// cgroup_mkdir record carries (cut there mid-character): the event names the
/// whole path, found by the cgroup id the kernel gave, and is not flagged cut.
#[test]
fn a_cgroup_path_longer_than_the_kernel_record_is_whole_on_events() {
    let tracer = Tracer::start(&[]);
    let mark = marker("long");
    let mut rel = format!("/{mark}");
    for c in ['a', 'b', 'c', 'd'] {
        rel.push('/');
        rel.push_str(&c.to_string().repeat(200));
    }
    // The last name puts an 'é' (two bytes) at 1022: the record keeps one.
    let pad = 1022 - rel.len() - 1;
    rel.push('/');
    rel.push_str(&"f".repeat(pad));
    rel.push_str("\u{e9}tail");
    assert!(rel.len() > 1023 && rel.as_bytes()[1022] == 0xc3);
    // Made after the tracer started: their cgroup_mkdir records are read.
    let cg = TestCgroup::new(&rel);
    let held = Held::new(format!("{mark}-in"));
    cg.add(held.pid());
    let tag = held.tag.clone();
    held.release();
    let found = tracer.wait_for(1, |e| is_exec(e) && argv(e) == ["/bin/true", tag.as_str()]);
    let c = &found[0]["executor"]["cgroup"];
    assert_eq!(c["id"], cg.id(), "{c}");
    assert_eq!(c["path"], rel.as_str());
    assert!(c.get("path_truncated").is_none(), "{c}");
}

/// The same long path, but the cgroup is gone before the tracer reads its
/// record (the tracer is stopped meanwhile; the kernel keeps the records in
/// order): nothing can complete the path, so the event carries the 1023 bytes
/// the kernel gave, flagged `path_truncated`, and the identity is named from
/// the deepest cgroup that cut path names whole, not from half a name.
#[test]
fn a_cut_cgroup_path_that_cannot_be_completed_is_flagged() {
    let tracer = Tracer::start(&[]);
    let mark = marker("cut");
    let ancestor = format!(
        "/{mark}/{}/{}/{}/{}",
        "a".repeat(200),
        "b".repeat(200),
        "c".repeat(200),
        "d".repeat(200)
    );
    // The last name is cut to end in `x.service`.
    let pad = 1023 - ancestor.len() - 1 - "x.service".len();
    let rel = format!("{ancestor}/{}x.service-not", "p".repeat(pad));
    let cut = &rel[..1023];
    assert!(cut.ends_with("px.service"), "{cut}");
    let held = Held::new(format!("{mark}-in"));
    let tag = held.tag.clone();
    // SAFETY: signals to the tracer we started.
    unsafe { libc::kill(tracer.pid() as i32, libc::SIGSTOP) };
    let id = {
        let cg = TestCgroup::new(&rel);
        cg.add(held.pid());
        held.release();
        cg.id()
        // Dropped: removed, now that its process is gone.
    };
    // SAFETY: as above.
    unsafe { libc::kill(tracer.pid() as i32, libc::SIGCONT) };
    let found = tracer.wait_for(1, |e| is_exec(e) && argv(e) == ["/bin/true", tag.as_str()]);
    let c = &found[0]["executor"]["cgroup"];
    assert_eq!(c["id"], id, "{c}");
    assert_eq!(c["path"], cut, "{c}");
    assert_eq!(c["path_truncated"], true, "{c}");
    let selectors = &found[0]["executor"]["identity"]["selectors"];
    let paths: Vec<&str> = selectors
        .as_array()
        .expect("selectors")
        .iter()
        .filter_map(|s| s.as_str()?.strip_prefix("cgroup:path:"))
        .collect();
    assert_eq!(paths, [ancestor.as_str()], "{selectors}");
}
