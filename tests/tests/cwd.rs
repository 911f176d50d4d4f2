//! The working directory of an exec, walked by the probe from the task's
//! `fs->pwd` up to its root at the exec: right for processes gone before
//! user space looks, across mounts, inside and outside a chroot, cut and
//! marked when deeper than the walk goes, marked when deleted.
use std::{
    ffi::CString,
    fs,
    os::unix::{ffi::OsStrExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use tracer_tests::{
    Tracer, argv_contains, check_schema, is_exec, marker, require_tools, scratch_dir,
};

/// A fresh scratch directory by its canonical path (what the kernel walks).
fn fresh_dir() -> PathBuf {
    scratch_dir().canonicalize().expect("canonical scratch dir")
}

fn text(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The successful exec events whose argv holds `mark` and whose image is `comm`.
fn execs_of(tracer: &Tracer, n: usize, mark: &str, comm: &str) -> Vec<Value> {
    tracer.wait_for(n, |e| {
        is_exec(e)
            && e["action"]["outcome"] == "success"
            && e["executor"]["comm"] == comm
            && argv_contains(e, mark)
    })
}

/// A walked cwd, whole and under the root.
fn assert_plain_cwd(e: &Value, want: &str) {
    let x = &e["executor"];
    assert_eq!(x["cwd"], want, "{e}");
    assert_eq!(x["cwd_source"], "kernel", "{e}");
    assert!(x.get("cwd_truncated").is_none(), "{e}");
    assert!(x.get("cwd_outside_root").is_none(), "{e}");
}

fn c_string(p: &[u8]) -> CString {
    CString::new(p).expect("no NUL in a test path")
}

/// `-1` from a libc call in a child before its exec, as an error.
fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The case: a script `cd`s into a fresh directory and runs short
/// commands that are gone before user space could read their /proc. Every
/// one has its directory; so does one in a directory whose name holds a
/// terminal escape and bytes that are not UTF-8 (escaped as argv is).
#[test]
fn short_lived_processes_after_cd_have_their_directory() {
    let tracer = Tracer::start(&[]);
    let mark = marker("cd");
    let base = fresh_dir();
    let dir = base.join("fresh dir");
    fs::create_dir(&dir).unwrap();
    let n = 200;
    let script = format!(
        "cd \"$1\" || exit 1; i=0; while [ $i -lt {n} ]; do readlink -f . {mark} >/dev/null || :; i=$((i+1)); done"
    );
    let st = Command::new("/bin/sh")
        .current_dir("/")
        .args(["-c", &script, "sh", text(&dir)])
        .status()
        .unwrap();
    assert!(st.success());
    let found = execs_of(&tracer, n, &mark, "readlink");
    assert_eq!(found.len(), n);
    for e in &found {
        assert_plain_cwd(e, text(&dir));
    }

    let odd = base.join(std::ffi::OsStr::from_bytes(b"odd\x1b[2J\xff"));
    fs::create_dir(&odd).unwrap();
    let st = Command::new("/bin/true")
        .current_dir(&odd)
        .arg(&mark)
        .status()
        .unwrap();
    assert!(st.success());
    let e = execs_of(&tracer, 1, &mark, "true");
    assert_plain_cwd(&e[0], &format!("{}/odd\u{1b}[2J\\xff", text(&base)));
    fs::remove_dir_all(base).unwrap();
}

/// Make `names` as nested directories below the current one and enter each
/// (relative calls: the whole path may be longer than PATH_MAX), in a child
/// before its exec.
fn descend(cmd: &mut Command, names: Vec<CString>) {
    // SAFETY: the closure runs in the forked child before exec and makes only
    // async-signal-safe system calls (mkdir, chdir) on strings built before the fork.
    unsafe {
        cmd.pre_exec(move || {
            for n in &names {
                check(libc::mkdir(n.as_ptr(), 0o755))?;
                check(libc::chdir(n.as_ptr()))?;
            }
            Ok(())
        });
    }
}

/// Deeper than the walk goes, in steps (70 components) and in bytes (25
/// names of 200 bytes, past PATH_MAX): the deepest components, after `...`,
/// and marked cut.
#[test]
fn a_directory_deeper_than_the_walk_is_cut_and_marked() {
    let tracer = Tracer::start(&[]);
    let mark = marker("deep");
    let base = fresh_dir();
    let cases: [(&str, Vec<String>); 2] = [
        ("steps", (0..70).map(|i| format!("d{i:02}")).collect()),
        (
            "bytes",
            (0..25)
                .map(|i| format!("{i:02}{}", "n".repeat(198)))
                .collect(),
        ),
    ];
    for (what, names) in &cases {
        let mut cmd = Command::new("/bin/true");
        cmd.current_dir(&base).args([mark.as_str(), what]);
        descend(
            &mut cmd,
            names.iter().map(|n| c_string(n.as_bytes())).collect(),
        );
        assert!(cmd.status().unwrap().success(), "{what}");
        let e = tracer.wait_for(1, |e| {
            is_exec(e) && argv_contains(e, &mark) && argv_contains(e, what)
        });
        let x = &e[0]["executor"];
        assert_eq!(x["cwd_truncated"], true, "{what}: {}", e[0]);
        assert_eq!(x["cwd_source"], "kernel", "{}", e[0]);
        let cwd = x["cwd"].as_str().expect("a cwd");
        let kept = cwd.strip_prefix(".../").expect("cut path starts with .../");
        let whole = names.join("/");
        assert!(
            whole.ends_with(&format!("/{kept}")),
            "{what}: {cwd} is not the deepest part of {whole}"
        );
        let components = kept.split('/').count();
        assert!(
            (15..names.len()).contains(&components),
            "{what}: {components} components kept"
        );
    }
    check_schema(&tracer.output);
    fs::remove_dir_all(base).unwrap();
}

/// A tmpfs mounted below a directory, and a bind mount of part of it
/// elsewhere, in a private mount namespace (gone with its process, nothing
/// to unmount): the path crosses both mounts as the process sees them.
#[test]
fn a_cwd_below_mounts_crosses_them() {
    let tracer = Tracer::start(&[]);
    let mark = marker("mnt");
    let base = fresh_dir();
    fs::create_dir(base.join("mnt")).unwrap();
    fs::create_dir(base.join("bind")).unwrap();
    let script = format!(
        "set -e; mount -t tmpfs tmpfs \"$1/mnt\"; mkdir -p \"$1/mnt/inner/x\"; \
         cd \"$1/mnt/inner/x\"; /bin/true {mark} tmpfs; \
         mount --bind \"$1/mnt/inner\" \"$1/bind\"; cd \"$1/bind/x\"; /bin/true {mark} bind; \
         cd \"$1/mnt\"; /bin/true {mark} top"
    );
    let st = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
        .args([&script, "sh", text(&base)])
        .status()
        .unwrap();
    assert!(st.success());
    let found = execs_of(&tracer, 3, &mark, "true");
    for (what, want) in [
        ("tmpfs", base.join("mnt/inner/x")),
        ("bind", base.join("bind/x")),
        ("top", base.join("mnt")),
    ] {
        let e = found
            .iter()
            .find(|e| argv_contains(e, what))
            .unwrap_or_else(|| panic!("no {what} exec in {found:?}"));
        assert_plain_cwd(e, text(&want));
    }
    fs::remove_dir_all(base).unwrap();
}

/// A chrooted process names its directory from its own root; one whose
/// directory is outside its root (chroot without chdir) gets the path from
/// the top of its mount namespace, marked.
#[test]
fn a_chrooted_process_sees_its_cwd_from_its_root_or_marked_outside() {
    let tools = require_tools(&["busybox"]);
    let tracer = Tracer::start(&[]);
    let mark = marker("chroot");
    let base = fresh_dir();
    let root = base.join("root");
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    // Static: runs in a root file system without libraries.
    fs::copy(&tools[0], root.join("busybox")).unwrap();
    let root_c = c_string(root.as_os_str().as_bytes());

    let mut inside = Command::new("/busybox");
    inside.args(["true", mark.as_str(), "inside"]);
    let root_in = root_c.clone();
    let sub = c_string(b"/sub/deeper");
    // SAFETY: in the forked child before exec; chroot and chdir are
    // async-signal-safe, their strings built before the fork.
    unsafe {
        inside.pre_exec(move || {
            check(libc::chroot(root_in.as_ptr()))?;
            check(libc::chdir(sub.as_ptr()))
        });
    }
    assert!(inside.status().unwrap().success());

    let mut outside = Command::new("/busybox");
    outside
        .current_dir(&base)
        .args(["true", mark.as_str(), "outside"]);
    // SAFETY: as above; the directory stays the one `current_dir` entered.
    unsafe {
        outside.pre_exec(move || check(libc::chroot(root_c.as_ptr())));
    }
    assert!(outside.status().unwrap().success());

    let found = tracer.wait_for(2, |e| is_exec(e) && argv_contains(e, &mark));
    let of = |what: &str| {
        found
            .iter()
            .find(|e| argv_contains(e, what))
            .unwrap_or_else(|| panic!("no {what} exec in {found:?}"))
    };
    assert_plain_cwd(of("inside"), "/sub/deeper");
    let e = of("outside");
    let x = &e["executor"];
    assert_eq!(x["cwd"], text(&base), "{e}");
    assert_eq!(x["cwd_outside_root"], true, "{e}");
    assert_eq!(x["cwd_source"], "kernel", "{e}");
    check_schema(&tracer.output);
    fs::remove_dir_all(base).unwrap();
}

/// A process whose directory was removed before its exec: the path as /proc
/// shows it, ` (deleted)` after it.
#[test]
fn a_deleted_cwd_is_marked() {
    let tracer = Tracer::start(&[]);
    let mark = marker("gone");
    let base = fresh_dir();
    let gone = base.join("gone");
    let gone_c = c_string(gone.as_os_str().as_bytes());
    let mut cmd = Command::new("/bin/true");
    cmd.arg(&mark);
    // SAFETY: in the forked child before exec; mkdir, chdir and rmdir are
    // async-signal-safe, the string built before the fork.
    unsafe {
        cmd.pre_exec(move || {
            check(libc::mkdir(gone_c.as_ptr(), 0o755))?;
            check(libc::chdir(gone_c.as_ptr()))?;
            check(libc::rmdir(gone_c.as_ptr()))
        });
    }
    assert!(cmd.status().unwrap().success());
    let e = execs_of(&tracer, 1, &mark, "true");
    assert_plain_cwd(&e[0], &format!("{} (deleted)", text(&gone)));
    fs::remove_dir_all(base).unwrap();
}
