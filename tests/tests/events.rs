//! Real processes, real sockets, real kernel: each test starts a tracer, acts, and
//! asserts on the events the tracer wrote for its own actions.
use std::{
    ffi::OsString,
    io::Read,
    net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket},
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::ffi::OsStringExt,
    },
    process::Command,
};

use serde_json::Value;
use tracer_tests::{
    TestCgroup, TestUser, Tracer, argv, argv_contains, is_exec, marker, require_root,
};

/// A loopback TCP port (IPv6 `::1` when `v6`, else 127.0.0.1) that refuses
/// connections for as long as the returned socket is held: bound, never
/// listening. A listener bound and dropped frees its port, which a parallel
/// test may take, or the connect itself as its ephemeral source port (a TCP
/// self-connect); either way the connect then succeeds (seen once on 6.1).
fn refusing_port(v6: bool) -> (OwnedFd, u16) {
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let raw = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let ss_ptr = std::ptr::addr_of_mut!(ss);
    let len = if v6 {
        // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
        let a = unsafe { &mut *ss_ptr.cast::<libc::sockaddr_in6>() };
        a.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        a.sin6_addr.s6_addr[15] = 1;
        std::mem::size_of::<libc::sockaddr_in6>()
    } else {
        // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
        let a = unsafe { &mut *ss_ptr.cast::<libc::sockaddr_in>() };
        a.sin_family = libc::AF_INET as libc::sa_family_t;
        a.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
        std::mem::size_of::<libc::sockaddr_in>()
    };
    let mut len = len as libc::socklen_t;
    // SAFETY: ss holds a valid address of length len for this family.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), ss_ptr.cast(), len) };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    // SAFETY: ss and len describe a buffer the kernel may fill.
    let rc = unsafe { libc::getsockname(fd.as_raw_fd(), ss_ptr.cast(), &mut len) };
    assert_eq!(rc, 0, "getsockname: {}", std::io::Error::last_os_error());
    // The port sits at the same offset in sockaddr_in and sockaddr_in6.
    // SAFETY: as above; the kernel wrote an address of this family.
    let port = unsafe { (*ss_ptr.cast::<libc::sockaddr_in>()).sin_port };
    (fd, u16::from_be(port))
}

fn succeeded(e: &Value) -> bool {
    is_exec(e) && e["action"]["outcome"] == "success"
}

fn by_id<'a>(events: &'a [Value], exec_id: &Value) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| is_exec(e) && &e["executor"]["exec_id"] == exec_id)
        .collect()
}

#[test]
fn exec_with_tricky_argv_is_one_exact_event() {
    let tracer = Tracer::start(&[]);
    let mark = marker("argv");
    let big = "x".repeat(20 * 1024);
    let args: Vec<OsString> = vec![
        mark.clone().into(),
        "with space".into(),
        "".into(),
        OsString::from_vec(b"bad\xffutf8\xc3(".to_vec()),
        "new\nline".into(),
        "back\\slash".into(),
        big.clone().into(),
    ];
    let st = Command::new("/bin/true").args(&args).status().unwrap();
    assert!(st.success());
    tracer.wait_for(1, |e| is_exec(e) && argv_contains(e, &mark));
    tracer.settle();
    let found: Vec<Value> = tracer
        .events()
        .into_iter()
        .filter(|e| is_exec(e) && argv_contains(e, &mark))
        .collect();
    assert_eq!(found.len(), 1, "exactly one exec event: {found:#?}");
    let e = &found[0];
    let want: Vec<String> = vec![
        "/bin/true".into(),
        mark.clone(),
        "with space".into(),
        "".into(),
        "bad\\xffutf8\\xc3(".into(),
        "new\nline".into(),
        "back\\\\slash".into(),
        big,
    ];
    assert_eq!(argv(e), want);
    assert_eq!(e["action"]["binary"], "/bin/true");
    assert_eq!(e["action"]["outcome"], "success");
    assert_eq!(e["action"]["argv_truncated"], false);
    assert_eq!(e["action"]["error"], Value::Null);
    assert_eq!(e["executor"]["binary"], "/bin/true");
    assert_eq!(e["executor"]["argv"], e["action"]["argv"]);
    assert_eq!(e["executor"]["ppid"], std::process::id());
    // The parent is this test process, with its own exec_id.
    assert_eq!(e["lineage"][0]["pid"], std::process::id());
    // Every required field is there.
    for key in [
        "event_id", "time", "kind", "host", "executor", "lineage", "action", "policy",
    ] {
        assert!(!e[key].is_null(), "missing {key}");
    }
    assert!(e["host"]["boot_id"].as_str().unwrap().len() == 36);
    assert!(
        e["policy"]["config_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(e["time"].as_str().unwrap().ends_with('Z'));
    drop(found);
    assert!(tracer.stop().success());
}

#[test]
fn long_argv_is_cut_and_marked() {
    let tracer = Tracer::start(&[]);
    let mark = marker("long");
    let big = "y".repeat(64 * 1024);
    Command::new("/bin/true")
        .arg(&mark)
        .arg(&big)
        .status()
        .unwrap();
    let e = &tracer.wait_for(1, |e| is_exec(e) && argv_contains(e, &mark))[0];
    assert_eq!(e["action"]["argv_truncated"], true);
    let a = argv(e);
    assert_eq!(a[1], mark);
    assert!(
        a[2].len() > 16 * 1024 && a[2].len() < big.len(),
        "cut, not dropped"
    );
}

#[test]
fn failed_exec_has_outcome_and_errno() {
    let tracer = Tracer::start(&[]);
    let missing = format!("/nonexistent-{}/prog", marker("enoent"));
    let err = Command::new(&missing).arg("arg1").status();
    assert!(err.is_err());
    // Not executable: EACCES.
    let dir = tracer_tests::scratch_dir();
    let noexec = dir.join(marker("noexec"));
    std::fs::write(&noexec, "#!/bin/sh\n").unwrap();
    assert!(Command::new(&noexec).status().is_err());

    let e = &tracer.wait_for(1, |e| {
        is_exec(e) && e["action"]["binary"] == missing.as_str()
    })[0];
    assert_eq!(e["action"]["outcome"], "failure");
    assert_eq!(e["action"]["error"], "ENOENT");
    assert_eq!(argv(e), vec![missing.clone(), "arg1".into()]);
    // The executor is the process that tried: a child of this test.
    assert_eq!(e["executor"]["ppid"], std::process::id());
    let noexec = noexec.to_string_lossy().into_owned();
    let e = &tracer.wait_for(1, |e| {
        is_exec(e) && e["action"]["binary"] == noexec.as_str()
    })[0];
    assert_eq!(e["action"]["error"], "EACCES");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn lineage_holds_both_shells_parent_first() {
    let tracer = Tracer::start(&[]);
    let mark = marker("lineage");
    let inner = format!("/bin/true {mark}");
    let outer = format!("sh -c \"{inner}\"");
    assert!(
        Command::new("sh")
            .args(["-c", &outer])
            .status()
            .unwrap()
            .success()
    );
    let t = &tracer.wait_for(1, |e| is_exec(e) && argv(e) == ["/bin/true", mark.as_str()])[0];
    let events = tracer.events();
    let outer_ev = events
        .iter()
        .find(|e| succeeded(e) && argv(e) == ["sh", "-c", outer.as_str()])
        .expect("outer shell exec event");
    let inner_ev = events
        .iter()
        .find(|e| succeeded(e) && argv(e) == ["sh", "-c", inner.as_str()])
        .expect("inner shell exec event");
    let lineage = t["lineage"].as_array().unwrap();
    assert!(lineage.len() >= 3, "{lineage:#?}");
    assert_eq!(lineage[0]["exec_id"], inner_ev["executor"]["exec_id"]);
    assert_eq!(lineage[0]["pid"], inner_ev["executor"]["pid"]);
    let outer_pid = &outer_ev["executor"]["pid"];
    let about_outer: Vec<&Value> = events
        .iter()
        .filter(|e| &e["executor"]["pid"] == outer_pid)
        .collect();
    assert_eq!(
        lineage[1]["exec_id"], outer_ev["executor"]["exec_id"],
        "{about_outer:#?}"
    );
    assert_eq!(lineage[0]["argv"], inner_ev["action"]["argv"]);
    assert_eq!(lineage[2]["pid"], std::process::id());
    // exec_ids are distinct per image.
    assert_ne!(t["executor"]["exec_id"], inner_ev["executor"]["exec_id"]);
    assert_eq!(by_id(&events, &t["executor"]["exec_id"]).len(), 1);
    // The lineage ends at init when the chain is known all the way up.
    let last = lineage.last().unwrap();
    assert_eq!(last["pid"], 1, "{lineage:#?}");
}

/// An ancestor's argv is cut in lineage entries (`--lineage-argv-max`) and
/// flagged; the ancestor's own exec event has it whole.
#[test]
fn long_ancestor_argv_is_cut_in_lineage_only() {
    let tracer = Tracer::start(&["--lineage-argv-max", "100"]);
    let mark = marker("ancestor-argv");
    let script = format!(": {}; /bin/true {mark}; :", "x".repeat(300));
    let st = Command::new("sh").args(["-c", &script]).status().unwrap();
    assert!(st.success());
    let t = &tracer.wait_for(1, |e| is_exec(e) && argv(e) == ["/bin/true", mark.as_str()])[0];
    let sh = &tracer.wait_for(1, |e| {
        succeeded(e) && argv(e) == ["sh", "-c", script.as_str()]
    })[0];
    let parent = &t["lineage"][0];
    assert_eq!(parent["exec_id"], sh["executor"]["exec_id"], "{t}");
    assert_eq!(parent["argv_truncated"], true, "{t}");
    // 100 bytes as in /proc/<pid>/cmdline: "sh\0-c\0" then 94 of the script.
    assert_eq!(
        parent["argv"],
        serde_json::json!(["sh", "-c", &script[..94]])
    );
    assert_eq!(t["action"]["argv_truncated"], false);
}

fn connect_event(tracer: &Tracer, port: u16, outcome: &str) -> Value {
    tracer
        .wait_for(1, |e| {
            e["kind"] == "connect"
                && e["action"]["destination"]["port"] == port
                && e["executor"]["pid"] == std::process::id()
                && e["action"]["outcome"] == outcome
        })
        .remove(0)
}

#[test]
fn tcp_ipv4_and_ipv6_success_and_refused_and_udp() {
    let tracer = Tracer::start(&[]);
    // IPv4 success, with the source the kernel bound.
    let l4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let p4 = l4.local_addr().unwrap().port();
    let s4 = TcpStream::connect(("127.0.0.1", p4)).unwrap();
    let e = connect_event(&tracer, p4, "success");
    let a = &e["action"];
    assert_eq!(a["protocol"], "tcp");
    assert_eq!(a["family"], "ipv4");
    assert_eq!(a["destination"]["ip"], "127.0.0.1");
    assert_eq!(a["error"], Value::Null);
    assert_eq!(a["source"]["ip"], "127.0.0.1");
    assert_eq!(a["source"]["port"], s4.local_addr().unwrap().port());
    assert!(e["executor"]["tid"].as_u64().is_some());

    // IPv6 success.
    let l6 = TcpListener::bind("[::1]:0").unwrap();
    let p6 = l6.local_addr().unwrap().port();
    let _s6 = TcpStream::connect(("::1", p6)).unwrap();
    let e = connect_event(&tracer, p6, "success");
    assert_eq!(e["action"]["family"], "ipv6");
    assert_eq!(e["action"]["destination"]["ip"], "::1");
    assert_eq!(e["action"]["source"]["ip"], "::1");

    // Closed port: refused.
    let (_held, closed) = refusing_port(false);
    assert!(TcpStream::connect(("127.0.0.1", closed)).is_err());
    let e = connect_event(&tracer, closed, "failure");
    assert_eq!(e["action"]["error"], "ECONNREFUSED");
    let (_held6, closed6) = refusing_port(true);
    assert!(TcpStream::connect(("::1", closed6)).is_err());
    let e = connect_event(&tracer, closed6, "failure");
    assert_eq!(e["action"]["error"], "ECONNREFUSED");
    assert_eq!(e["action"]["family"], "ipv6");

    // UDP connect: no handshake, success, and a source address.
    let u = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let target = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let pu = target.local_addr().unwrap().port();
    u.connect(("127.0.0.1", pu)).unwrap();
    let e = connect_event(&tracer, pu, "success");
    assert_eq!(e["action"]["protocol"], "udp");
    assert_eq!(
        e["action"]["source"]["port"],
        u.local_addr().unwrap().port()
    );
    drop((l4, s4, l6));
}

/// Two automations run the same command as the same (new) service account, from
/// different parent binaries in different cgroups: same uid, different executors.
#[test]
fn shared_service_account_is_told_apart() {
    require_root();
    let tracer = Tracer::start(&[]);
    let user = TestUser::new();
    let mark = marker("svc");
    let cg_a = TestCgroup::new(&format!("{mark}-a.slice/job-a.service"));
    let cg_b = TestCgroup::new(&format!("{mark}-b.slice/job-b.service"));
    let drop_privs = format!(
        "setpriv --reuid={} --regid={} --clear-groups /bin/true {mark}",
        user.uid, user.gid
    );
    // Automation A: a shell job.
    let a = Command::new("sh")
        .args([
            "-c",
            &format!(
                "echo $$ > {} && {drop_privs}; true",
                cg_a.procs_file().display()
            ),
        ])
        .status()
        .unwrap();
    assert!(a.success());
    // Automation B: a perl job.
    let script = format!(
        "open(my $f, '>', '{}') or die; print $f $$; close($f); system('sh', '-c', '{drop_privs}') == 0 or die",
        cg_b.procs_file().display()
    );
    let b = Command::new("perl").args(["-e", &script]).status().unwrap();
    assert!(b.success());

    let found = tracer.wait_for(2, |e| is_exec(e) && argv(e) == ["/bin/true", mark.as_str()]);
    let (ea, eb) = (&found[0], &found[1]);
    for e in [ea, eb] {
        assert_eq!(e["executor"]["user"]["uid"], user.uid);
        assert_eq!(e["executor"]["user"]["name"], user.name.as_str());
        assert_eq!(e["executor"]["user"]["gid"], user.gid);
        assert_eq!(e["executor"]["user"]["euid"], user.uid);
    }
    assert_ne!(ea["executor"]["exec_id"], eb["executor"]["exec_id"]);
    assert_ne!(
        ea["executor"]["cgroup"]["id"],
        eb["executor"]["cgroup"]["id"]
    );
    let paths = [
        ea["executor"]["cgroup"]["path"]
            .as_str()
            .unwrap()
            .to_owned(),
        eb["executor"]["cgroup"]["path"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    assert!(paths.contains(&cg_a.rel), "{paths:?} vs {}", cg_a.rel);
    assert!(paths.contains(&cg_b.rel), "{paths:?} vs {}", cg_b.rel);
    let chain = |e: &Value| -> Vec<String> {
        e["lineage"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["binary"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_ne!(chain(ea), chain(eb));
    let all: Vec<String> = chain(ea).into_iter().chain(chain(eb)).collect();
    assert!(all.iter().any(|b| b.contains("perl")), "{all:?}");
    assert!(all.iter().any(|b| b.ends_with("sh")), "{all:?}");
}

#[test]
fn login_session_reaches_descendants() {
    let tracer = Tracer::start(&[]);
    let mark = marker("login");
    let auid = 4242 + (std::process::id() % 1000);
    let script = format!("echo {auid} > /proc/self/loginuid && sh -c '/bin/true {mark}; true'");
    assert!(
        Command::new("sh")
            .args(["-c", &script])
            .status()
            .unwrap()
            .success()
    );
    let e = &tracer.wait_for(1, |e| is_exec(e) && argv(e) == ["/bin/true", mark.as_str()])[0];
    let login = &e["executor"]["login"];
    assert_eq!(login["auid"], auid);
    let session = login["session_id"].as_u64().expect("session id");
    assert!(session > 0 && session < u64::from(u32::MAX));
}

#[test]
fn process_started_before_tracer_is_attributed_with_lineage() {
    require_root();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tracer_tests::scratch_dir();
    let go = dir.join("go");
    let mark = marker("early");
    // perl waits for a file, then connects; started under a shell before the tracer.
    let perl = format!(
        "use IO::Socket::INET; until (-e '{}') {{ select(undef,undef,undef,0.05) }} IO::Socket::INET->new(PeerAddr => '127.0.0.1:{port}') or die; # {mark}",
        go.display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &format!("perl -e \"{perl}\"; true")])
        .spawn()
        .unwrap();
    let sh_pid = child.id();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let tracer = Tracer::start(&[]);
    std::fs::write(&go, "").unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    let mut buf = Vec::new();
    let _ = conn.read_to_end(&mut buf);
    assert!(child.wait().unwrap().success());
    let e = tracer
        .wait_for(1, |e| {
            e["kind"] == "connect" && e["action"]["destination"]["port"] == port
        })
        .remove(0);
    assert!(
        e["executor"]["binary"].as_str().unwrap().contains("perl"),
        "{e:#}"
    );
    let exec_argv: Vec<String> = e["executor"]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert!(exec_argv.iter().any(|a| a.contains(&mark)), "{exec_argv:?}");
    assert_eq!(e["executor"]["ppid"], sh_pid);
    assert_eq!(e["lineage"][0]["pid"], sh_pid);
    assert_eq!(e["lineage"][1]["pid"], std::process::id());
    assert_eq!(e["action"]["outcome"], "success");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn losses_are_reported_not_silent() {
    // A ring of one page cannot hold an exec storm: the tracer must say so.
    let tracer = Tracer::start(&["--ring-buffer-size", "4096", "--loss-interval", "100"]);
    let mark = marker("storm");
    // One exec whose argv alone is larger than the ring: it cannot be delivered.
    let big = "z".repeat(20 * 1024);
    assert!(
        Command::new("/bin/true")
            .arg(&mark)
            .arg(&big)
            .status()
            .unwrap()
            .success()
    );
    // (A loss record may also report budget cuts made for other processes.)
    tracer.wait_for(1, |e| {
        e["kind"] == "loss" && e["lost"]["ring_full"].as_u64().unwrap_or(0) > 0
    });
    assert!(tracer.stderr_log().contains("events were lost"));
}
