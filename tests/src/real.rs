//! Real workloads, as a user runs them on a CI node: `cargo build` of a small
//! crate of its own (offline, no dependencies), `pip install` of a local
//! wheel into a fresh venv, and git operations on a local repository. Shared
//! by the live test (`tests/real_workloads.rs`) and the bench
//! (`cargo xtask bench --real-only`), so the figures are of what the test checks.
//!
//! Each workload is one `sh -c` script run as a root process that first
//! moves itself into a cgroup (when given one): every process of the workload
//! is below that root and in that cgroup, which is how its events are picked
//! out (other processes run on the host) independently of their lineage.
use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Real {
    Cargo,
    Pip,
    Git,
}

pub const REAL: [Real; 3] = [Real::Cargo, Real::Pip, Real::Git];

impl Real {
    pub fn name(self) -> &'static str {
        match self {
            Real::Cargo => "cargo build",
            Real::Pip => "pip install",
            Real::Git => "git",
        }
    }

    /// The programs the workload needs on PATH.
    pub fn tools(self) -> &'static [&'static str] {
        match self {
            Real::Cargo => &["cargo", "cc"],
            Real::Pip => &["python3"],
            Real::Git => &["git"],
        }
    }

    /// Write what the workload starts from into `dir` (a fresh directory):
    /// the crate's sources, the wheel. Run once, untraced.
    pub fn prepare(self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        match self {
            Real::Cargo => write_crate(&dir.join("tiny")),
            Real::Pip => write_wheel(dir),
            Real::Git => Ok(()),
        }
    }

    /// The script, run by `sh -c` in `dir`. Every run starts from what
    /// [`Real::prepare`] left (earlier runs' outputs are removed first), so
    /// runs are alike.
    fn script(self) -> &'static str {
        match self {
            // Its own target and cargo home: a clean build each run, nothing
            // written outside the directory.
            Real::Cargo => {
                r#"rm -rf target home && mkdir home && cd tiny &&
CARGO_HOME="$PWD/../home" CARGO_TARGET_DIR="$PWD/../target" cargo build --offline --quiet &&
../target/debug/tiny"#
            }
            Real::Pip => {
                r#"rm -rf venv && python3 -m venv venv &&
venv/bin/pip install --quiet --no-index --no-cache-dir --disable-pip-version-check tinypkg-0.1-py3-none-any.whl &&
venv/bin/python -c 'import tinypkg; tinypkg.hello()'"#
            }
            Real::Git => {
                r#"rm -rf repo home && mkdir home && export HOME="$PWD/home" GIT_CONFIG_NOSYSTEM=1 GIT_PAGER=cat &&
git init --quiet repo && cd repo &&
git config user.email ci@example.org && git config user.name ci &&
echo one > a.txt && git add a.txt && git commit --quiet -m one &&
git branch topic && git checkout --quiet topic &&
echo two >> a.txt && git commit --quiet -am two &&
git checkout --quiet - && git merge --quiet --no-edit topic &&
git log --oneline >/dev/null && git branch --list >/dev/null && git status --short >/dev/null"#
            }
        }
    }

    /// The root process: `sh -c` that moves itself into `cgroup_procs` (when
    /// given) and runs the workload in `dir`.
    pub fn command(self, dir: &Path, cgroup_procs: Option<&Path>) -> Command {
        let enter = cgroup_procs
            .map(|p| format!("echo $$ > '{}' && ", p.display()))
            .unwrap_or_default();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{enter}{}", self.script()))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    /// Run it to the end; an error with its stderr when it fails.
    pub fn run(self, dir: &Path, cgroup_procs: Option<&Path>) -> Result<()> {
        let out = self
            .command(dir, cgroup_procs)
            .output()
            .with_context(|| format!("starting the {} workload", self.name()))?;
        if !out.status.success() {
            bail!(
                "the {} workload failed ({}): {}",
                self.name(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

/// A crate with no dependencies (so `--offline` builds it) and a little of
/// everything a build does: a build script, a module, a test target.
fn write_crate(dir: &Path) -> Result<()> {
    let files: &[(&str, &str)] = &[
        (
            "Cargo.toml",
            "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        ),
        (
            "build.rs",
            "fn main() {\n    println!(\"cargo:rustc-env=TINY_BUILT=1\");\n}\n",
        ),
        (
            "src/main.rs",
            "mod greet;\n\nfn main() {\n    greet::hello(env!(\"TINY_BUILT\"));\n}\n",
        ),
        (
            "src/greet.rs",
            "pub fn hello(built: &str) {\n    println!(\"hello from tiny ({built})\");\n}\n",
        ),
    ];
    for (path, text) in files {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// A pure-Python wheel, written as the zip it is (the `wheel` package that
/// `pip wheel` needs is not everywhere), by python3's own zipfile.
fn write_wheel(dir: &Path) -> Result<()> {
    const SCRIPT: &str = r#"
import base64, hashlib, sys, zipfile
files = {
    "tinypkg/__init__.py": "def hello():\n    return 'hello from tinypkg'\n",
    "tinypkg-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n",
    "tinypkg-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tracer-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for name, text in files.items():
        data = text.encode()
        z.writestr(name, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("tinypkg-0.1.dist-info/RECORD,,")
    z.writestr("tinypkg-0.1.dist-info/RECORD", "\n".join(record) + "\n")
"#;
    let wheel: PathBuf = dir.join("tinypkg-0.1-py3-none-any.whl");
    let mut child = Command::new("python3")
        .arg("-")
        .arg(&wheel)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting python3 to write the wheel")?;
    child
        .stdin
        .take()
        .context("python3's stdin")?
        .write_all(SCRIPT.as_bytes())
        .context("writing the wheel script")?;
    let out = child.wait_with_output().context("waiting for python3")?;
    if !out.status.success() {
        bail!(
            "writing {}: {}",
            wheel.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
