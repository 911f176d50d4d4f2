//! `cargo xtask setup`: the toolchain pieces, tools and packages a fresh machine
//! needs to build and test; every step checks before it acts.
use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{NIGHTLY, cargo_home, output, run};

const BPF_LINKER_VERSION: &str = "0.13.0";
const CARGO_FUZZ_VERSION: &str = "0.13.2";

pub(crate) fn setup_cargo_fuzz() -> Result<()> {
    let have = output(Command::new("cargo").args(["fuzz", "--version"])).unwrap_or_default();
    if have.contains(CARGO_FUZZ_VERSION) {
        return Ok(());
    }
    run(Command::new("cargo").args([
        "install",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
        "--locked",
    ]))
}

pub(crate) fn setup() -> Result<()> {
    setup_rust_src()?;
    setup_bpf_linker()?;
    setup_protoc()?;
    setup_bpftool();
    setup_container_runtimes();
    setup_browser();
    setup_python_validators()
}

/// The tests check real output against our JSON Schema and the official OCSF
/// schema with Python's jsonschema (the OCSF validator in tests/ocsf needs it).
fn setup_python_validators() -> Result<()> {
    let have = Command::new("python3")
        .args(["-c", "import ocsf_json_schema, jsonschema"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if have {
        return Ok(());
    }
    run(Command::new("python3").args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "ocsf-json-schema==1.2.0",
        "jsonschema>=4.18",
    ]))
}

fn setup_rust_src() -> Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]))
    .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

/// bpf-linker links against the nightly toolchain's own LLVM: its build wants
/// `$LLVM_PREFIX/lib/libLLVM.so`, and at run time the soname, so both names are
/// symlinked into a prefix directory and baked in as rpath.
fn setup_bpf_linker() -> Result<()> {
    let linker = cargo_home().join("bin/bpf-linker");
    if let Some(v) = output(Command::new(&linker).arg("--version"))
        && v.contains(BPF_LINKER_VERSION)
    {
        return Ok(());
    }
    let sysroot =
        output(Command::new("rustc").args([&format!("+{NIGHTLY}"), "--print", "sysroot"]))
            .context("finding the nightly toolchain (rustc +nightly --print sysroot)")?;
    let libdir = PathBuf::from(sysroot.trim()).join("lib");
    let llvm = std::fs::read_dir(&libdir)
        .with_context(|| format!("listing {}", libdir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .find(|n| {
            let n = n.to_string_lossy();
            n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM-") && n.ends_with(".so"))
        })
        .context("no libLLVM shared library in the nightly toolchain")?;
    let soname = if llvm.to_string_lossy().starts_with("libLLVM.so.") {
        llvm.clone()
    } else {
        // Prefer the versioned soname when both exist.
        std::fs::read_dir(&libdir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .find(|n| n.to_string_lossy().starts_with("libLLVM.so."))
            .unwrap_or(llvm.clone())
    };
    let target = libdir.join(&soname);
    let prefix = cargo_home().join("tracer-llvm");
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    for name in [OsString::from("libLLVM.so"), soname] {
        let link = prefix_lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link)
            .with_context(|| format!("linking {} -> {}", link.display(), target.display()))?;
    }
    run(Command::new("cargo")
        .args([
            &format!("+{NIGHTLY}"),
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
            "--force",
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("LLVM_PREFIX", &prefix)
        .env(
            "RUSTFLAGS",
            format!("-C link-arg=-Wl,-rpath,{}", prefix_lib.display()),
        ))
}

/// `protoc`, the protobuf compiler: containerd-client's build script (containerd's
/// own gRPC bindings, which the tracer uses to ask containerd about its
/// containers) compiles containerd's `.proto` files with it, so nothing builds
/// without it. Debian's `protobuf-compiler`; `PROTOC` names another one.
fn setup_protoc() -> Result<()> {
    if let Some(p) = env::var_os("PROTOC")
        && Path::new(&p).exists()
    {
        return Ok(());
    }
    let on_path = env::split_paths(&env::var_os("PATH").unwrap_or_default())
        .any(|dir| dir.join("protoc").is_file());
    if on_path {
        return Ok(());
    }
    if !Path::new("/usr/bin/apt-get").exists() {
        bail!("no protoc and no apt-get: install the protobuf compiler (protoc) or set PROTOC");
    }
    if !apt_install(&["protobuf-compiler"]) {
        bail!("could not install protobuf-compiler (protoc), which the build needs");
    }
    Ok(())
}

/// bpftool is only used by tests that cross-check our BTF reader; install it when
/// apt can, and let those tests say so when it is absent.
fn setup_bpftool() {
    let present = ["/usr/sbin/bpftool", "/usr/bin/bpftool", "/sbin/bpftool"]
        .iter()
        .any(|p| Path::new(p).exists());
    if present || !Path::new("/usr/bin/apt-get").exists() {
        return;
    }
    if !apt_install(&["bpftool"]) {
        eprintln!("xtask: could not install bpftool; BTF cross-checks will be skipped");
    }
}

/// The container runtimes the live tests in `tests/tests/runtimes.rs` drive for
/// real (podman with runc, a private containerd with ctr), and busybox-static,
/// whose single binary is the root file system of their test image; and
/// dnsmasq, the DNS server `tests/tests/dns.rs` resolves through; git and
/// python3's venv module, two of the real workloads of
/// `tests/tests/real_workloads.rs` (cargo and cc come with the toolchain).
const CONTAINER_PACKAGES: &[(&str, &[&str])] = &[
    ("podman", &["/usr/bin/podman"]),
    ("runc", &["/usr/sbin/runc", "/usr/bin/runc"]),
    (
        "containerd",
        &["/usr/bin/containerd", "/usr/sbin/containerd"],
    ),
    ("busybox-static", &["/bin/busybox", "/usr/bin/busybox"]),
    ("dnsmasq-base", &["/usr/sbin/dnsmasq"]),
    ("git", &["/usr/bin/git", "/usr/local/bin/git"]),
    ("python3-venv", &[]),
];

fn setup_container_runtimes() {
    // dpkg knows busybox-static from the dynamic busybox (same path, but only
    // the static one runs alone in an empty root file system); elsewhere the
    // binaries' presence is all there is to go by.
    let missing: Vec<&str> = CONTAINER_PACKAGES
        .iter()
        .filter(|(pkg, bins)| {
            !dpkg_installed(pkg).unwrap_or_else(|| bins.iter().any(|b| Path::new(b).exists()))
        })
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return;
    }
    if !Path::new("/usr/bin/apt-get").exists() {
        eprintln!(
            "xtask: no apt-get; install {} yourself, or the container runtime tests fail",
            missing.join(" ")
        );
        return;
    }
    if !apt_install(&missing) {
        eprintln!(
            "xtask: could not install {}; the container runtime tests will fail",
            missing.join(" ")
        );
    }
}

/// Whether dpkg has `pkg` installed; `None` without dpkg.
fn dpkg_installed(pkg: &str) -> Option<bool> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}", pkg])
        .output()
        .ok()?;
    Some(out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("ii"))
}

/// `apt-get install -y` quietly; on failure refresh the package lists once and
/// retry (a fresh machine or CI image often has none, or stale ones).
pub(crate) fn apt_install(packages: &[&str]) -> bool {
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let install: Vec<&str> = ["install", "-y", "-q"]
        .into_iter()
        .chain(packages.iter().copied())
        .collect();
    apt(&install) || (apt(&["update", "-q"]) && apt(&install))
}

/// Chromium (headless): `tests/tests/report.rs` renders the HTML report in a
/// real browser and reads its DOM back.
fn setup_browser() {
    if Path::new("/usr/bin/chromium").exists() || !Path::new("/usr/bin/apt-get").exists() {
        return;
    }
    if !apt_install(&["chromium"]) {
        eprintln!("xtask: could not install chromium; the report's browser test will fail");
    }
}
