//! One image, one identity (issue: attribution an unprivileged workload cannot
//! forge). Each test performs the trick and asserts on the events:
//! - a process that turns off address randomisation and re-execs its binary
//!   with an argv of the same length gets a new exec id, and its later events
//!   carry the new image's argv;
//! - the executed file is named by device and inode from the kernel;
//! - the loader's variables (`LD_PRELOAD` ...) are on the image's events;
//! - argv read from /proc (a process that predates the tracer, and may have
//!   rewritten its own cmdline) says so.
use std::{
    os::unix::fs::MetadataExt as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::{LoopbackListener, Tracer, argv, executor_argv, is_exec, marker, scratch_dir};

/// Whether `path` is on an overlay file system.
fn on_overlayfs(path: &str) -> bool {
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    let c = std::ffi::CString::new(path).expect("no NUL");
    // SAFETY: statfs is plain old data; all zeroes is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and an out buffer of the right type.
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == OVERLAYFS_SUPER_MAGIC }
}

/// A successful exec (a failed one's executor is the caller).
fn exec_ok(e: &Value) -> bool {
    is_exec(e) && e["action"]["outcome"] == "success"
}

/// The perl script: the first image (argv `AAAA`) re-execs the same binary and
/// script with `BBBB` (same length), which connects to `port`.
const REEXEC: &str = r#"
use IO::Socket::INET;
my ($which, $port) = @ARGV;
if ($which eq "AAAA") { exec($^X, $0, "BBBB", $port) or die "exec: $!"; }
IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port, Proto => "tcp");
"#;

#[test]
fn reexec_without_address_randomisation_is_a_new_image() {
    let tracer = Tracer::start(&[]);
    let dir = scratch_dir();
    let script = dir.join(format!("{}.pl", marker("reexec")));
    std::fs::write(&script, REEXEC).expect("write script");
    let script_s = script.to_str().expect("utf-8 path").to_owned();
    let l = LoopbackListener::start();
    let port = l.port.to_string();
    // setarch -R: ADDR_NO_RANDOMIZE, inherited across exec: both images get the
    // same stack, code and heap addresses.
    let status = Command::new("setarch")
        .args(["-R", "/usr/bin/perl", &script_s, "AAAA", &port])
        .status()
        .expect("setarch");
    assert!(status.success());
    let events = tracer.wait_for(3, |e| {
        let a = argv(e);
        (exec_ok(e)
            && a.first().map(String::as_str) == Some("/usr/bin/perl")
            && a.contains(&script_s))
            || (e["kind"] == "connect" && e["action"]["destination"]["port"] == l.port)
    });
    let exec_of = |which: &str| {
        events
            .iter()
            .find(|e| exec_ok(e) && argv(e).iter().any(|x| x == which))
            .cloned()
            .unwrap_or_else(|| panic!("no exec with {which}: {events:#?}"))
    };
    let (a, b) = (exec_of("AAAA"), exec_of("BBBB"));
    let connect = events
        .iter()
        .find(|e| e["kind"] == "connect")
        .expect("connect");
    assert_eq!(a["executor"]["pid"], b["executor"]["pid"], "one process");
    assert_ne!(
        a["executor"]["exec_id"], b["executor"]["exec_id"],
        "two images of one process share an exec_id"
    );
    assert_eq!(connect["executor"]["exec_id"], b["executor"]["exec_id"]);
    assert_eq!(
        executor_argv(connect).get(2).map(String::as_str),
        Some("BBBB"),
        "{connect:#}"
    );
    assert_eq!(connect["executor"]["image_source"], "exec");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn executed_file_is_named_by_device_and_inode() {
    let tracer = Tracer::start(&[]);
    let mark = marker("file");
    let status = Command::new("/bin/true").arg(&mark).status().expect("true");
    assert!(status.success());
    let e = tracer
        .wait_for(1, |e| exec_ok(e) && argv(e).get(1) == Some(&mark))
        .remove(0);
    let meta = std::fs::metadata("/bin/true").expect("stat /bin/true");
    let f = &e["executor"]["file"];
    assert_eq!(f["ino"], meta.ino(), "{e:#}");
    // The kernel names the file system the file was opened on. On overlayfs
    // (container roots, the kernel matrix's guests) `stat` reports the layer's
    // device instead; elsewhere the two agree.
    if !on_overlayfs("/bin/true") {
        assert_eq!(
            f["dev"],
            format!("{}:{}", libc::major(meta.dev()), libc::minor(meta.dev())),
            "{e:#}"
        );
    }
}

#[test]
fn loader_variables_are_on_the_image_events() {
    let tracer = Tracer::start(&[]);
    let mark = marker("ld");
    let lib_dir = format!("/nonexistent/{mark}");
    let l = LoopbackListener::start();
    let status = Command::new("/usr/bin/perl")
        .args([
            "-MIO::Socket::INET",
            "-e",
            "IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ARGV[0], Proto => 'tcp')",
            &l.port.to_string(),
            &mark,
        ])
        .env("LD_LIBRARY_PATH", &lib_dir)
        .env("LD_PRELOAD", "")
        .env("NOT_A_LOADER_VARIABLE", "secret")
        .status()
        .expect("perl");
    assert!(status.success());
    let events = tracer.wait_for(2, |e| {
        (exec_ok(e) && argv(e).last() == Some(&mark))
            || (e["kind"] == "connect" && e["action"]["destination"]["port"] == l.port)
    });
    for e in &events {
        let env = &e["executor"]["loader_env"];
        assert_eq!(
            env,
            &serde_json::json!({"LD_LIBRARY_PATH": lib_dir, "LD_PRELOAD": ""}),
            "{e:#}"
        );
        assert_eq!(e["executor"]["image_source"], "exec");
    }
}

/// perl rewrites its own cmdline when `$0` is assigned: what /proc says of a
/// process is the process's word. An image the probe saw keeps the argv the
/// kernel captured; one only /proc describes says so.
#[test]
fn argv_from_proc_is_marked_as_such() {
    let dir = scratch_dir();
    let go = dir.join("go");
    let mark = marker("proc-argv");
    let l = LoopbackListener::start();
    let script = format!(
        r#"$0 = "/usr/sbin/sshd -D {mark}"; until (-e "{go}") {{ select(undef, undef, undef, 0.05) }} IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => {port}, Proto => "tcp");"#,
        go = go.display(),
        port = l.port,
    );
    let spawn = || {
        Command::new("/usr/bin/perl")
            .args(["-MIO::Socket::INET", "-e", &script])
            .stdout(Stdio::null())
            .spawn()
            .expect("perl")
    };
    // One before the tracer: only /proc can describe it, after it lied.
    let mut before = spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read(format!("/proc/{}/cmdline", before.id()))
        .unwrap_or_default()
        .starts_with(b"/usr/sbin/sshd")
    {
        assert!(Instant::now() < deadline, "perl never rewrote its cmdline");
        std::thread::sleep(Duration::from_millis(20));
    }
    let tracer = Tracer::start(&[]);
    // One after: the probe captured its argv at exec.
    let mut after = spawn();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&go, b"").expect("go");
    let events = tracer.wait_for(2, |e| {
        e["kind"] == "connect" && e["action"]["destination"]["port"] == l.port
    });
    let of = |pid: u32| -> &Value {
        events
            .iter()
            .find(|e| e["executor"]["pid"] == pid)
            .unwrap_or_else(|| panic!("no connect from {pid}: {events:#?}"))
    };
    let b = of(before.id());
    assert_eq!(b["executor"]["image_source"], "proc", "{b:#}");
    assert_eq!(
        executor_argv(b),
        [format!("/usr/sbin/sshd -D {mark}")],
        "{b:#}"
    );
    let a = of(after.id());
    assert_eq!(a["executor"]["image_source"], "exec", "{a:#}");
    assert_eq!(
        executor_argv(a).first().map(String::as_str),
        Some("/usr/bin/perl"),
        "{a:#}"
    );
    let _ = before.wait();
    let _ = after.wait();
    let _ = std::fs::remove_dir_all(dir);
}
