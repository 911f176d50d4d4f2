//! `tracer tail` with no flags reaches a `tracer run` started with none: the
//! tail socket's default place. A second tracer on the host leaves the first
//! one's socket alone. Its own test binary: other tests' tracers would race
//! for the default place.
use std::{
    io::Read as _,
    os::unix::net::UnixStream,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::{TestUser, Tracer, marker, tracer_bin};

const DEFAULT: &str = "/run/tracer/tracer.sock";

fn live(path: &str) -> bool {
    UnixStream::connect(path).is_ok()
}

/// `tracer tail` (no socket flag) for `user`'s next exec of `/bin/true
/// <mark>`, repeating that exec until tail has printed it (it may connect
/// after the first).
fn tail_sees(user: &TestUser, mark: &str) -> Value {
    let mut tail = Command::new(tracer_bin())
        .args([
            "tail", "--user", &user.name, "--kind", "exec", "--json", "--count", "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tail.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "tail saw nothing");
        let st = Command::new("setpriv")
            .args([
                &format!("--reuid={}", user.uid),
                &format!("--regid={}", user.gid),
                "--clear-groups",
                "/bin/true",
                mark,
            ])
            .status()
            .unwrap();
        assert!(st.success());
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = tail.wait().unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    tail.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    tail.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "tail failed: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

#[test]
fn tail_needs_no_flags_and_a_second_tracer_leaves_the_socket_alone() {
    assert!(
        !live(DEFAULT),
        "a tracer already serves {DEFAULT} on this host: stop it to run this test"
    );
    let first = Tracer::start(&[]);
    assert!(
        first
            .stderr_log()
            .contains("serving events to `tracer tail`"),
        "{}",
        first.stderr_log()
    );
    let user = TestUser::new();
    let mark = marker("default-sock");
    let e = tail_sees(&user, &mark);
    assert_eq!(e["executor"]["user"]["uid"], user.uid);
    assert_eq!(e["executor"]["argv"][1], mark.as_str());

    // A second tracer traces, but says it serves no socket, and the first
    // keeps its readers.
    let second = Tracer::start(&[]);
    let log = second.stderr_log();
    assert!(
        log.contains("no tail socket") && log.contains("another running tracer"),
        "{log}"
    );
    assert!(second.stop().success());
    assert!(
        live(DEFAULT),
        "the second tracer took or removed the socket"
    );
    let e = tail_sees(&user, &format!("{mark}-again"));
    assert_eq!(e["executor"]["argv"][1], format!("{mark}-again"));

    // Asked for explicitly, a taken socket is an error.
    let out = Command::new(tracer_bin())
        .args(["run", "--socket", DEFAULT])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another running tracer"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(first.stop().success());
    assert!(
        !Path::new(DEFAULT).exists(),
        "the socket outlived its tracer"
    );
}
