//! The executed file, named by more than a path (issue 9, "One image, one
//! identity"): device and inode from the kernel, the SHA-256 of its content
//! computed in user space, and `unix:path` selectors that hold only for the
//! file at that path on the host. Each test performs the case and asserts on
//! the events:
//! - an exec of a known binary carries its `sha256sum` and its stat's dev/ino;
//! - a copy of another binary bind-mounted over /usr/bin/true in a private
//!   mount namespace is reported as the copy (dev, ino, sha256) and does not
//!   get the SPIFFE ID a registration gives `unix:path:/usr/bin/true`, which a
//!   real /usr/bin/true exec gets;
//! - a budget too small for the file gives `over_budget` (never a wrong hash),
//!   and a budget of 0 `disabled`;
//! - a binary rewritten in place (same inode) is hashed anew.
use std::{
    os::unix::fs::MetadataExt as _,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use tracer_tests::{Tracer, argv, is_exec, marker, run_ok, scratch_dir};

const TRUE: &str = "/usr/bin/true";

fn exec_ok(e: &Value) -> bool {
    is_exec(e) && e["action"]["outcome"] == "success"
}

/// `sha256sum`'s word on a file.
fn sha256sum(path: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(path), Duration::from_secs(60));
    out.split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_owned()
}

/// `major:minor` and inode of a file, as stat shows them.
fn dev_ino(path: &Path) -> (String, u64) {
    let m = std::fs::metadata(path).expect("stat");
    let (major, minor) = (libc::major(m.dev()), libc::minor(m.dev()));
    (format!("{major}:{minor}"), m.ino())
}

fn run(cmd: &mut Command) {
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    assert!(status.success(), "{cmd:?}: {status}");
}

#[test]
fn exec_of_a_known_binary_carries_its_sha256_and_inode() {
    let tracer = Tracer::start(&[]);
    let mark = marker("known");
    // A short storm of one binary: one hash serves all (cache), and a process
    // gone before it is read is hashed at its host path, proven the same file.
    for _ in 0..20 {
        run(Command::new(TRUE).arg(&mark));
    }
    let events = tracer.wait_for(20, |e| exec_ok(e) && argv(e) == [TRUE, mark.as_str()]);
    let want = sha256sum(Path::new(TRUE));
    let (dev, ino) = dev_ino(Path::new(TRUE));
    for e in &events {
        let f = &e["executor"]["file"];
        assert_eq!(f["dev"], dev.as_str(), "{e}");
        assert_eq!(f["ino"], ino, "{e}");
        assert_eq!(f["hash"], "sha256", "{e}");
        assert_eq!(f["sha256"], want.as_str(), "{e}");
    }
    // A long-lived binary read through /proc/<pid>/exe, then deleted: still its
    // own content.
    let dir = scratch_dir();
    let copy = dir.join("sleeper");
    std::fs::copy("/usr/bin/sleep", &copy).expect("copy sleep");
    let want_copy = sha256sum(&copy);
    let (cdev, cino) = dev_ino(&copy);
    let mut child = Command::new(&copy).arg("2").spawn().expect("spawn sleeper");
    std::fs::remove_file(&copy).expect("unlink the running copy");
    let e = tracer
        .wait_for(1, |e| exec_ok(e) && e["executor"]["pid"] == child.id())
        .remove(0);
    let _ = child.wait();
    let f = &e["executor"]["file"];
    assert_eq!(
        (f["dev"].as_str(), f["ino"].as_u64()),
        (Some(cdev.as_str()), Some(cino))
    );
    assert_eq!(f["hash"], "sha256", "{e}");
    assert_eq!(f["sha256"], want_copy.as_str(), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bind_mount_over_a_host_path_is_not_the_host_file() {
    let dir = scratch_dir();
    let regs = dir.join("registrations.toml");
    let id = "spiffe://cluster.local/host/true";
    std::fs::write(
        &regs,
        format!("[[entry]]\nspiffe_id = \"{id}\"\nselectors = [\"unix:path:{TRUE}\"]\n"),
    )
    .expect("write registrations");
    let tracer = Tracer::start(&["--registrations", regs.to_str().expect("utf-8")]);
    // Another binary (a shell, which lingers a second so /proc/<pid>/exe is
    // there to read) copied and bind-mounted over /usr/bin/true, in a mount
    // namespace of its own.
    let fake = dir.join("fake-true");
    std::fs::copy("/usr/bin/dash", &fake).expect("copy dash");
    let fake_s = fake.to_str().expect("utf-8").to_owned();
    let attack = marker("bindmount");
    let script = format!("mount --bind {fake_s} {TRUE} && exec {TRUE} -c 'sleep 1; :' {attack}");
    run(Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]));
    let real = marker("realtrue");
    run(Command::new(TRUE).arg(&real));
    let events = tracer.wait_for(2, |e| {
        exec_ok(e) && (argv(e).contains(&attack) || argv(e) == [TRUE, real.as_str()])
    });
    let by = |m: &str| {
        events
            .iter()
            .find(|e| argv(e).iter().any(|a| a == m))
            .unwrap_or_else(|| panic!("no exec with {m}: {events:#?}"))
    };
    let (a, r) = (by(&attack), by(&real));
    assert_eq!(a["action"]["binary"], TRUE, "the path is the host's: {a}");

    let (fdev, fino) = dev_ino(&fake);
    let (tdev, tino) = dev_ino(Path::new(TRUE));
    let af = &a["executor"]["file"];
    assert_eq!(
        (af["dev"].as_str(), af["ino"].as_u64()),
        (Some(fdev.as_str()), Some(fino)),
        "the kernel's file is the copy: {a}"
    );
    assert_eq!(af["hash"], "sha256", "{a}");
    assert_eq!(af["sha256"], sha256sum(&fake).as_str(), "{a}");
    assert_ne!(af["sha256"], sha256sum(Path::new(TRUE)).as_str());
    let ids = |e: &Value| e["executor"]["identity"]["spiffe_ids"].clone();
    let selectors = |e: &Value| e["executor"]["identity"]["selectors"].to_string();
    assert_eq!(ids(a), serde_json::json!([]), "no host identity: {a}");
    assert!(
        !selectors(a).contains("unix:path:"),
        "an unverified path is no selector: {a}"
    );

    let rf = &r["executor"]["file"];
    assert_eq!(
        (rf["dev"].as_str(), rf["ino"].as_u64()),
        (Some(tdev.as_str()), Some(tino))
    );
    assert_eq!(rf["sha256"], sha256sum(Path::new(TRUE)).as_str(), "{r}");
    assert_eq!(ids(r), serde_json::json!([id]), "{r}");
    assert!(selectors(r).contains(&format!("unix:path:{TRUE}")), "{r}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn over_budget_is_said_never_a_wrong_hash() {
    // About 1 KiB a second (a burst of 4 KiB): no binary fits.
    let tracer = Tracer::start(&["--hash-budget", "0.001"]);
    let mark = marker("budget");
    for _ in 0..3 {
        run(Command::new(TRUE).arg(&mark));
    }
    let events = tracer.wait_for(3, |e| exec_ok(e) && argv(e) == [TRUE, mark.as_str()]);
    let (dev, ino) = dev_ino(Path::new(TRUE));
    for e in &events {
        let f = &e["executor"]["file"];
        assert_eq!(f["hash"], "over_budget", "{e}");
        assert_eq!(f.get("sha256"), None, "{e}");
        assert_eq!(
            (f["dev"].as_str(), f["ino"].as_u64()),
            (Some(dev.as_str()), Some(ino))
        );
    }
    drop(tracer);

    let tracer = Tracer::start(&["--hash-budget", "0"]);
    let mark = marker("nohash");
    run(Command::new(TRUE).arg(&mark));
    let e = tracer
        .wait_for(1, |e| exec_ok(e) && argv(e) == [TRUE, mark.as_str()])
        .remove(0);
    assert_eq!(e["executor"]["file"]["hash"], "disabled", "{e}");
    assert_eq!(e["executor"]["file"].get("sha256"), None, "{e}");
}

/// The cache is keyed by the file's version: a binary rewritten in place
/// (same inode, new content and ctime) is hashed anew, never served the old hash.
#[test]
fn a_binary_changed_in_place_is_hashed_anew() {
    let tracer = Tracer::start(&[]);
    let dir = scratch_dir();
    let bin = dir.join("changing");
    std::fs::copy("/usr/bin/sleep", &bin).expect("copy sleep");
    let mut shas = Vec::new();
    for round in 0..2 {
        if round == 1 {
            use std::io::Write as _;
            // Not truncated: the same inode, trailing bytes the loader ignores.
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&bin)
                .expect("open for append");
            f.write_all(b"another version").expect("append");
        }
        let want = sha256sum(&bin);
        let (dev, ino) = dev_ino(&bin);
        let mut child = Command::new(&bin).arg("0.3").spawn().expect("spawn");
        let pid = child.id();
        let e = tracer
            .wait_for(1, |e| exec_ok(e) && e["executor"]["pid"] == pid)
            .remove(0);
        let _ = child.wait();
        let f = &e["executor"]["file"];
        assert_eq!(
            (f["dev"].as_str(), f["ino"].as_u64()),
            (Some(dev.as_str()), Some(ino))
        );
        assert_eq!(f["hash"], "sha256", "{e}");
        assert_eq!(f["sha256"], want.as_str(), "round {round}: {e}");
        shas.push(want);
    }
    assert_ne!(shas[0], shas[1]);
    let _ = std::fs::remove_dir_all(&dir);
}
