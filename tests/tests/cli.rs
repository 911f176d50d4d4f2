//! Bad input gets a clear message and a non-zero exit, before anything is loaded.
use std::process::Command;

use tracer_tests::tracer_bin;

#[test]
fn unknown_flag_is_rejected() {
    let out = Command::new(tracer_bin())
        .args(["run", "--no-such-flag"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--no-such-flag"), "{err}");
}

#[test]
fn unwritable_output_is_a_clear_error() {
    let out = Command::new(tracer_bin())
        .args(["run", "--output", "/nonexistent-dir/sub/events.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open output file /nonexistent-dir/sub/events.jsonl"),
        "{err}"
    );
}

#[test]
fn bad_ring_size_is_a_clear_error() {
    let out = Command::new(tracer_bin())
        .args(["run", "--ring-buffer-size", "5000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("power of two"), "{err}");
}

#[test]
fn missing_btf_is_a_clear_error() {
    let out = Command::new(tracer_bin())
        .args(["run", "--btf", "/nonexistent/vmlinux"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kernel BTF not found"), "{err}");
}

/// Without root (no capabilities) the message names what is missing.
#[test]
fn missing_capabilities_are_named() {
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(tracer_bin())
        .args(["run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing capabilities: CAP_BPF"), "{err}");
}

#[test]
fn invalid_registration_names_the_entry() {
    let dir = tracer_tests::scratch_dir();
    let regs = dir.join("regs.toml");
    std::fs::write(
        &regs,
        "[[entry]]\nspiffe_id = \"spiffe://cluster.local/ok\"\nselectors = [\"k8s:ns:a\"]\n\n[[entry]]\nspiffe_id = \"spiffe://cluster.local/bad//path\"\nselectors = [\"k8s:ns:b\"]\n",
    )
    .unwrap();
    let out = Command::new(tracer_bin())
        .args(["run", "--registrations"])
        .arg(&regs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("entry 2"), "{err}");
    assert!(err.contains("spiffe://cluster.local/bad//path"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_cgroup_mount_is_a_clear_error() {
    let out = Command::new(tracer_bin())
        .args(["run", "--cgroup-mount", "/nonexistent-cgroup-mount"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--cgroup-mount /nonexistent-cgroup-mount: not a directory"),
        "{err}"
    );
}

#[test]
fn config_file_keys_are_checked_and_flags_win() {
    let dir = tracer_tests::scratch_dir();
    let cfg = dir.join("tracer.toml");
    std::fs::write(
        &cfg,
        "lineage_depth = 7\nemit_lifecycle = true\ntrust_domain = \"example.org\"\n",
    )
    .unwrap();
    let ok = Command::new(tracer_bin())
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("trust domain example.org"));
    // A flag on the command line overrides the file.
    let over = Command::new(tracer_bin())
        .args(["check-config", "--config"])
        .arg(&cfg)
        .args(["--trust-domain", "other.org"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&over.stdout).contains("trust domain other.org"));
    std::fs::write(&cfg, "lineage_dept = 7\n").unwrap();
    let bad = Command::new(tracer_bin())
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown key `lineage_dept`"));
    std::fs::write(&cfg, "lineage_depth = \"many\"\n").unwrap();
    let bad = Command::new(tracer_bin())
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_ne!(bad.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("lineage-depth"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `kubepods_root` is a list in the config file (the flag, repeated); it is
/// part of the config digest; a relative root is refused, naming the flag.
#[test]
fn kubepods_roots_from_the_config_file() {
    let dir = tracer_tests::scratch_dir();
    let cfg = dir.join("tracer.toml");
    let check = |text: &str| {
        std::fs::write(&cfg, text).unwrap();
        Command::new(tracer_bin())
            .args(["check-config", "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let digest = |out: &std::process::Output| {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split("config digest ")
            .nth(1)
            .map(str::trim)
            .map(str::to_owned)
    };
    let none = check("trust_domain = \"example.org\"\n");
    let two = check(
        "trust_domain = \"example.org\"\nkubepods_root = [\"/system.slice/docker-a.scope/kubelet.slice/kubelet-kubepods.slice\", \"/k8s\"]\n",
    );
    assert!(
        two.status.success(),
        "{}",
        String::from_utf8_lossy(&two.stderr)
    );
    assert!(digest(&none).is_some());
    assert_ne!(digest(&none), digest(&two));
    let bad = check("kubepods_root = [\"kubepods.slice\"]\n");
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--kubepods-root \"kubepods.slice\": not an absolute cgroup path"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
