//! `executor.credentials.env`: an exec whose environment holds credential
//! variables lists their names on its events (exec and connect, and its
//! children's while they inherit them), never their values, in our JSON and
//! in OCSF.
use std::{process::Command, time::Duration};

use serde_json::Value;
use tracer_tests::{LoopbackListener, Tracer, argv_contains, marker, output_within, scratch_dir};

fn names(v: &Value) -> Vec<String> {
    v["executor"]["credentials"]["env"]
        .as_array()
        .unwrap_or_else(|| panic!("no credentials.env: {v}"))
        .iter()
        .map(|n| n.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// An exec of `true` (the script's children; the script's own argv names
/// them too).
fn is_true(v: &Value) -> bool {
    v["kind"] == "exec"
        && v["action"]["binary"]
            .as_str()
            .is_some_and(|b| b.ends_with("/true"))
}

#[test]
fn credential_variables_are_named_never_valued() {
    let dir = scratch_dir();
    let ocsf = dir.join("ocsf.jsonl");
    let tracer = Tracer::start(&[
        "--credential-env",
        "MYCORP_*",
        "--ocsf-output",
        ocsf.to_str().unwrap(),
    ]);
    let listener = LoopbackListener::start();
    let mark = marker("creds");
    let secret = |n: u32| format!("s3cr3t-{n}-{mark}-value");
    // The secrets are only ever in the environment (never in an argv, which
    // events do carry). Python connects, then runs a child with the same
    // environment and one with none.
    let script = format!(
        "import os, socket, subprocess\n\
         s = socket.create_connection(('127.0.0.1', {port})); s.close()\n\
         subprocess.run(['/bin/true', '{mark}', 'inherits'], check=True)\n\
         subprocess.run(['/bin/true', '{mark}', 'clean'], env={{}}, check=True)\n",
        port = listener.port
    );
    let out = output_within(
        Command::new("python3")
            .args(["-c", &script, &mark])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("AWS_SECRET_ACCESS_KEY", secret(1))
            .env("GITHUB_TOKEN", secret(2))
            .env("MYCORP_DEPLOY", secret(3))
            .env("db_password", secret(4))
            .env("HARMLESS_SETTING", secret(5)),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out:?}");
    let want = [
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
        "MYCORP_DEPLOY",
        "db_password",
    ];

    let py = tracer.wait_for(1, |v| {
        v["kind"] == "exec" && argv_contains(v, &mark) && argv_contains(v, "-c")
    });
    assert_eq!(names(&py[0]), want, "{}", py[0]);
    let pid = py[0]["executor"]["pid"].as_u64().unwrap();
    let connect = tracer.wait_for(1, |v| {
        v["kind"] == "connect"
            && v["executor"]["pid"].as_u64() == Some(pid)
            && v["action"]["destination"]["port"].as_u64() == Some(u64::from(listener.port))
    });
    assert_eq!(names(&connect[0]), want, "{}", connect[0]);
    let inherits = tracer.wait_for(1, |v| {
        is_true(v) && argv_contains(v, &mark) && argv_contains(v, "inherits")
    });
    assert_eq!(names(&inherits[0]), want, "{}", inherits[0]);
    let clean = tracer.wait_for(1, |v| {
        is_true(v) && argv_contains(v, &mark) && argv_contains(v, "clean")
    });
    assert!(
        clean[0]["executor"].get("credentials").is_none(),
        "an empty environment holds no credential: {}",
        clean[0]
    );
    // The OCSF copy names them too (in `unmapped`), once its line is out.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let ocsf_line = loop {
        let text = std::fs::read_to_string(&ocsf).unwrap_or_default();
        let child = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|o| {
                o["process"]["cmd_line"].as_str().is_some_and(|c| {
                    c.starts_with("/bin/true") && c.contains(&mark) && c.ends_with("inherits")
                })
            });
        if let Some(o) = child {
            break o;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no OCSF line for the child"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let o = ocsf_line;
    assert_eq!(
        o["unmapped"]["credentials"]["env"],
        serde_json::json!(want),
        "{o}"
    );

    for file in [&tracer.output, &ocsf] {
        let text = std::fs::read_to_string(file).unwrap();
        for n in 1..=5 {
            assert!(
                !text.contains(&secret(n)),
                "a value of the environment is in {}",
                file.display()
            );
        }
        assert!(!text.contains("HARMLESS_SETTING"), "{}", file.display());
    }
    tracer_tests::check_schema(&tracer.output);
    assert!(tracer.stop().success());
}

#[test]
fn a_pattern_that_cannot_name_a_variable_is_refused() {
    tracer_tests::require_root();
    for bad in ["A=B", "X\\"] {
        let out = output_within(
            Command::new(tracer_tests::tracer_bin()).args(["run", "--credential-env", bad]),
            Duration::from_secs(30),
        );
        assert!(!out.status.success(), "{bad:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--credential-env"), "{bad:?}: {err}");
    }
}
