//! The executor's authority (`executor.authority`), as the kernel held it at
//! each action: capabilities added and dropped, no_new_privs under a seccomp
//! filter, a user namespace. Each scenario runs real processes and asserts on
//! the exec and connect events they cause, picked out by a marker in argv or
//! by the port they connect to.
use std::process::Command;

use serde_json::Value;
use tracer_tests::{LoopbackListener, Tracer, argv_contains, check_schema, marker, run_ok, skip};

/// The system's python (the `python3` first on PATH may be a per-user shim
/// that another uid cannot run).
const PYTHON: &str = "/usr/bin/python3";
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn caps<'a>(e: &'a Value, set: &str) -> &'a Value {
    &e["executor"]["authority"]["capabilities"][set]
}

/// The names of a set as written, "all" expanded to every capability this
/// kernel has.
fn names(e: &Value, set: &str) -> Vec<String> {
    let v = caps(e, set);
    if v == "all" {
        let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .expect("cap_last_cap")
            .trim()
            .parse()
            .expect("a number");
        return (0..=last).map(|n| format!("#{n}")).collect();
    }
    v.as_array()
        .unwrap_or_else(|| panic!("{set} is neither \"all\" nor a list: {e:#}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Whether `set` holds `cap`; a bounding set left out is the full one.
fn has(e: &Value, set: &str, cap: &str) -> bool {
    let v = caps(e, set);
    if let Some(missing) = v["all_except"].as_array() {
        return !missing.iter().any(|n| n == cap);
    }
    v == "all" || (set == "bounding" && v.is_null()) || names(e, set).iter().any(|n| n == cap)
}

fn exec_of(tracer: &Tracer, mark: &str, binary_suffix: &str) -> Value {
    tracer
        .wait_for(1, |e| {
            e["kind"] == "exec"
                && argv_contains(e, mark)
                && e["action"]["binary"]
                    .as_str()
                    .is_some_and(|b| b.ends_with(binary_suffix))
        })
        .remove(0)
}

fn connects_to(tracer: &Tracer, port: u16, n: usize) -> Vec<Value> {
    tracer.wait_for(n, |e| {
        e["kind"] == "connect" && e["action"]["destination"]["port"] == port
    })
}

/// A python one-liner prefix: `c()` connects to 127.0.0.1:`port` (the
/// listener accepts and closes), `prctl` is libc's.
fn py_prelude(port: u16) -> String {
    format!(
        "import ctypes, socket, sys\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         prctl = libc.prctl\n\
         prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]\n\
         def c():\n\
         \x20   s = socket.create_connection(('127.0.0.1', {port})); s.close()\n\
         def ok(r, what):\n\
         \x20   if r != 0: raise OSError(ctypes.get_errno(), what)\n"
    )
}

/// Added: an unprivileged user given one capability through the ambient
/// set (`setpriv --ambient-caps`), which its exec turns into permitted and
/// effective. Dropped: root whose bounding set lacks CAP_NET_RAW, and a
/// process that drops capabilities after its exec (its connect carries the
/// new sets, its exec the old).
#[test]
fn capabilities_added_and_dropped_are_seen_at_exec_and_connect() {
    let tracer = Tracer::start(&[]);
    let listener = LoopbackListener::start();
    let port = listener.port;

    // Added: uid 65534 with CAP_NET_RAW, through the ambient set.
    let mark = marker("capadd");
    run_ok(
        Command::new("setpriv").args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=+net_raw",
            "--ambient-caps=+net_raw",
            "--",
            "/bin/true",
            &mark,
        ]),
        TIMEOUT,
    );
    let e = exec_of(&tracer, &mark, "/true");
    assert_eq!(e["executor"]["user"]["euid"], 65534, "{e:#}");
    for set in ["effective", "permitted", "inheritable", "ambient"] {
        assert_eq!(names(&e, set), ["CAP_NET_RAW"], "{set}: {e:#}");
    }
    // Written only when it lacks something (a sandbox running this test may
    // have dropped other capabilities from it).
    assert!(has(&e, "bounding", "CAP_NET_RAW"), "{e:#}");

    // Dropped from the bounding set: root's exec gets everything but it.
    let mark = marker("capbset");
    run_ok(
        Command::new("setpriv").args(["--bounding-set=-net_raw", "--", "/bin/true", &mark]),
        TIMEOUT,
    );
    let e = exec_of(&tracer, &mark, "/true");
    for set in ["effective", "permitted", "bounding"] {
        assert!(!has(&e, set, "CAP_NET_RAW"), "{set}: {e:#}");
        assert!(has(&e, set, "CAP_SYS_ADMIN"), "{set}: {e:#}");
    }

    // Dropped after the exec: the exec shows what the image started with,
    // each connect what it held at that moment.
    let mark = marker("capdrop");
    let script = format!(
        "{}\
         c()\n\
         ok(prctl(24, 13, 0, 0, 0), 'PR_CAPBSET_DROP')\n\
         c()\n\
         class H(ctypes.Structure): _fields_ = [('version', ctypes.c_uint32), ('pid', ctypes.c_int)]\n\
         class D(ctypes.Structure): _fields_ = [('effective', ctypes.c_uint32), ('permitted', ctypes.c_uint32), ('inheritable', ctypes.c_uint32)]\n\
         h = H(0x20080522, 0); d = (D * 2)()\n\
         ok(libc.capget(ctypes.byref(h), d), 'capget')\n\
         d[0].effective &= ~(1 << 21)\n\
         ok(libc.capset(ctypes.byref(h), d), 'capset')\n\
         c()\n",
        py_prelude(port)
    );
    run_ok(Command::new(PYTHON).args(["-c", &script, &mark]), TIMEOUT);
    let e = exec_of(&tracer, &mark, "python3");
    assert!(has(&e, "bounding", "CAP_NET_RAW"), "{e:#}");
    let pid = e["executor"]["pid"].clone();
    let ours: Vec<Value> = connects_to(&tracer, port, 3)
        .into_iter()
        .filter(|c| c["executor"]["pid"] == pid)
        .collect();
    assert_eq!(ours.len(), 3, "{ours:#?}");
    let before = &ours[0];
    assert!(has(before, "effective", "CAP_SYS_ADMIN"), "{before:#}");
    let no_raw = &ours[1];
    assert!(!has(no_raw, "bounding", "CAP_NET_RAW"), "{no_raw:#}");
    assert!(has(no_raw, "effective", "CAP_SYS_ADMIN"), "{no_raw:#}");
    let no_admin = &ours[2];
    assert!(!has(no_admin, "effective", "CAP_SYS_ADMIN"), "{no_admin:#}");
    assert!(has(no_admin, "permitted", "CAP_SYS_ADMIN"), "{no_admin:#}");
    assert!(!has(no_admin, "bounding", "CAP_NET_RAW"), "{no_admin:#}");
    check_schema(&tracer.output);
}

/// no_new_privs and a seccomp filter (allow everything) set by a process
/// after its exec: its connects show both, and so does the exec that follows
/// (both survive exec). With `--lineage ids`, the first connect after the
/// change describes the executor in full again instead of naming the
/// earlier description by reference.
#[test]
fn no_new_privs_and_a_seccomp_filter_are_seen() {
    let tracer = Tracer::start(&["--lineage", "ids"]);
    let listener = LoopbackListener::start();
    let port = listener.port;
    let mark = marker("seccomp");
    let script = format!(
        "{}\
         import os\n\
         for _ in range(3): c()\n\
         ok(prctl(38, 1, 0, 0, 0), 'PR_SET_NO_NEW_PRIVS')\n\
         class F(ctypes.Structure): _fields_ = [('code', ctypes.c_uint16), ('jt', ctypes.c_uint8), ('jf', ctypes.c_uint8), ('k', ctypes.c_uint32)]\n\
         class P(ctypes.Structure): _fields_ = [('len', ctypes.c_uint16), ('filter', ctypes.POINTER(F))]\n\
         allow = (F * 1)(F(0x06, 0, 0, 0x7fff0000))\n\
         prog = P(1, allow)\n\
         libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]\n\
         ok(libc.prctl(22, 2, ctypes.addressof(prog), 0, 0), 'PR_SET_SECCOMP')\n\
         for _ in range(3): c()\n\
         os.execv('/bin/true', ['/bin/true', sys.argv[1], 'after'])\n",
        py_prelude(port)
    );
    run_ok(Command::new(PYTHON).args(["-c", &script, &mark]), TIMEOUT);
    let started = exec_of(&tracer, &mark, "python3");
    let a = &started["executor"]["authority"];
    assert_eq!(a["no_new_privs"], false, "{started:#}");
    assert_eq!(a["seccomp"], "none", "{started:#}");
    let pid = started["executor"]["pid"].clone();
    let ours: Vec<Value> = connects_to(&tracer, port, 6)
        .into_iter()
        .filter(|c| c["executor"]["pid"] == pid)
        .collect();
    assert_eq!(ours.len(), 6, "{ours:#?}");
    let by_ref = |v: &Value| v["executor"]["ref"] == true;
    // Before: described by the exec (once more if its file's hash came
    // after it: one change at most), then named by reference.
    assert!(ours[1..3].iter().any(by_ref), "{ours:#?}");
    for c in ours[..3].iter().filter(|c| !by_ref(c)) {
        assert_eq!(c["executor"]["authority"]["no_new_privs"], false, "{c:#}");
        assert_eq!(c["executor"]["authority"]["seccomp"], "none", "{c:#}");
    }
    // After: the new authority in full, then by reference.
    assert!(!by_ref(&ours[3]), "{:#}", ours[3]);
    let a = &ours[3]["executor"]["authority"];
    assert_eq!(a["no_new_privs"], true, "{:#}", ours[3]);
    assert_eq!(a["seccomp"], "filter", "{:#}", ours[3]);
    assert!(ours[4..].iter().any(by_ref), "{ours:#?}");
    let after = tracer
        .wait_for(1, |e| {
            e["kind"] == "exec" && argv_contains(e, &mark) && e["action"]["binary"] == "/bin/true"
        })
        .remove(0);
    let a = &after["executor"]["authority"];
    assert_eq!(a["no_new_privs"], true, "{after:#}");
    assert_eq!(a["seccomp"], "filter", "{after:#}");
    check_schema(&tracer.output);
}

/// A process in a user namespace an unprivileged user made (`unshare -U -r`
/// as uid 65534): root there, 65534 on the host, the namespace owned by
/// 65534. Its exec and its connect both say so.
#[test]
fn a_user_namespace_is_seen() {
    let max: u64 = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let unprivileged = std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
        .map(|s| s.trim() != "0")
        .unwrap_or(true);
    if max == 0 || !unprivileged {
        skip(
            "a_user_namespace_is_seen",
            "user namespaces are off for unprivileged users (user.max_user_namespaces / kernel.unprivileged_userns_clone)",
        );
        return;
    }
    let tracer = Tracer::start(&[]);
    let listener = LoopbackListener::start();
    let port = listener.port;
    let mark = marker("userns");
    let script = format!("{}c()\n", py_prelude(port));
    run_ok(
        Command::new("setpriv").args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "unshare",
            "-U",
            "-r",
            "--",
            PYTHON,
            "-c",
            &script,
            &mark,
        ]),
        TIMEOUT,
    );
    let e = exec_of(&tracer, &mark, "python3");
    let check = |e: &Value| {
        let ns = &e["executor"]["authority"]["user_namespace"];
        assert_eq!(ns["host"], false, "{e:#}");
        assert_eq!(ns["level"], 1, "{e:#}");
        assert_eq!(ns["owner_uid"], 65534, "{e:#}");
        assert_eq!(ns["uid"], 0, "{e:#}");
        assert!(ns["inum"].as_u64().unwrap_or(0) > 0, "{e:#}");
        assert_eq!(e["executor"]["user"]["uid"], 65534, "{e:#}");
        // Root of its own namespace: every capability there.
        assert_eq!(caps(e, "effective"), "all", "{e:#}");
    };
    check(&e);
    let pid = e["executor"]["pid"].clone();
    let c = connects_to(&tracer, port, 1)
        .into_iter()
        .find(|c| c["executor"]["pid"] == pid)
        .expect("the connect from inside the namespace");
    check(&c);
    assert_eq!(
        c["executor"]["authority"]["user_namespace"]["inum"],
        e["executor"]["authority"]["user_namespace"]["inum"]
    );
    // The host's processes: the host's namespace.
    let host = &tracer
        .wait_for(1, |e| {
            e["kind"] == "exec"
                && argv_contains(e, &mark)
                && e["action"]["binary"] == "/usr/bin/setpriv"
        })
        .remove(0);
    assert_eq!(
        host["executor"]["authority"]["user_namespace"]["host"], true,
        "{host:#}"
    );
    check_schema(&tracer.output);
}

/// Fork and exit records carry the authority too: a process in seccomp
/// strict mode, killed by the kernel at its next forbidden syscall, exits
/// with `seccomp: "killed"` (kernels since 5.17 mark it SECCOMP_MODE_DEAD)
/// or `"strict"` (before).
#[test]
fn an_exit_in_seccomp_strict_mode_says_so() {
    let tracer = Tracer::start(&["--emit-lifecycle"]);
    let mark = marker("strict");
    // PR_SET_SECCOMP, SECCOMP_MODE_STRICT; then exit_group, which strict mode
    // does not allow: SIGKILL.
    let script = "import ctypes\n\
                  libc = ctypes.CDLL(None)\n\
                  libc.prctl(22, 1, 0, 0, 0)\n\
                  libc.syscall(231, 0)\n";
    let child = Command::new(PYTHON)
        .args(["-c", script, &mark])
        .spawn()
        .expect("python3");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGKILL),
        "strict mode kills at exit_group"
    );
    let exit = tracer
        .wait_for(1, |e| e["kind"] == "exit" && e["executor"]["pid"] == pid)
        .remove(0);
    let mode = &exit["executor"]["authority"]["seccomp"];
    assert!(mode == "killed" || mode == "strict", "{exit:#}");
    let fork = tracer
        .wait_for(1, |e| {
            e["kind"] == "fork" && e["action"]["child_pid"] == pid
        })
        .remove(0);
    assert_eq!(fork["executor"]["authority"]["seccomp"], "none", "{fork:#}");
}
