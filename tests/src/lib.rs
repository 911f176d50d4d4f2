//! Harness for the live-kernel tests: start a real tracer, run a scenario, collect
//! the events it wrote, pick out the scenario's own (other processes run on the
//! host too), assert on them.
pub mod kubeapi;

use std::{
    fs,
    io::{Read as _, Seek as _, SeekFrom},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// How long a test waits for the events it expects. Generous: it only matters
/// when they do not come, and a loaded CI machine is slow.
pub const WAIT: Duration = Duration::from_secs(60);

/// A unique token for this test run, to put in argv, names and paths.
pub fn marker(what: &str) -> String {
    format!(
        "trc{}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        what
    )
}

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the live-kernel tests load BPF programs: run them as root"
    );
}

/// The tracer binary: $TRACER_BIN (set by `cargo xtask test`), else next to the
/// test executable's target directory.
pub fn tracer_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TRACER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/tracer
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("tracer");
    assert!(
        bin.exists(),
        "{} missing: build first (cargo build --release) or set TRACER_BIN",
        bin.display()
    );
    bin
}

pub fn scratch_dir() -> PathBuf {
    let d = std::env::temp_dir().join(marker("dir"));
    fs::create_dir_all(&d).expect("create scratch dir");
    d
}

pub struct Tracer {
    child: Option<Child>,
    pub output: PathBuf,
    pub stderr: PathBuf,
    dir: PathBuf,
}

impl Tracer {
    /// Start `tracer run --output <file>` with `extra` flags and wait until it says
    /// it is ready (probes attached, /proc scanned).
    pub fn start(extra: &[&str]) -> Tracer {
        Tracer::start_with_env(extra, &[])
    }

    /// Like [`Tracer::start`], with extra environment variables (e.g. KUBECONFIG).
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Tracer {
        require_root();
        let dir = scratch_dir();
        let output = dir.join("events.jsonl");
        let stderr = dir.join("stderr.log");
        let child = Command::new(tracer_bin())
            .arg("run")
            .arg("--output")
            .arg(&output)
            .args(extra)
            .envs(env.iter().copied())
            .env("TRACER_LOG", "info")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn tracer");
        let mut t = Tracer {
            child: Some(child),
            output,
            stderr,
            dir,
        };
        t.wait_ready(Duration::from_secs(60));
        t
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let log = fs::read_to_string(&self.stderr).unwrap_or_default();
            if log.contains("tracer ready") {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("tracer exited before ready ({status}):\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "tracer not ready in time:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every JSON line written so far.
    pub fn events(&self) -> Vec<Value> {
        complete_lines(&self.output)
            .into_iter()
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_str(&l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}"))
            })
            .collect()
    }

    /// Wait until `pred` matches at least `n` events, then return the matches.
    ///
    /// Reads only what was appended since the last look: the file holds every
    /// event on the host, and re-parsing all of it on each poll starves the
    /// tracers when many tests run at once.
    pub fn wait_for(&self, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        let mut follow = Follower::new(&self.output);
        let mut found = Vec::new();
        loop {
            for l in follow.next_lines() {
                if l.is_empty() {
                    continue;
                }
                let v: Value =
                    serde_json::from_str(&l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}"));
                if pred(&v) {
                    found.push(v);
                }
            }
            if found.len() >= n {
                return found;
            }
            if Instant::now() > deadline {
                panic!(
                    "only {} of {n} expected events after {WAIT:?}; tracer stderr:\n{}",
                    found.len(),
                    self.stderr_log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Let events that are in flight land (for asserting that something did not happen twice).
    pub fn settle(&self) {
        std::thread::sleep(Duration::from_millis(500));
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().expect("wait tracer")
    }

    pub fn stderr_log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // For documentation and debugging: keep what the tracer wrote.
        if let Some(keep) = std::env::var_os("TRACER_KEEP_EVENTS") {
            let _ = fs::create_dir_all(&keep);
            let name = self
                .dir
                .file_name()
                .map(|n| n.to_owned())
                .unwrap_or_default();
            let _ = fs::copy(
                &self.output,
                Path::new(&keep).join(name).with_extension("jsonl"),
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The argv of an event's action, as strings.
pub fn argv(v: &Value) -> Vec<String> {
    v["action"]["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_exec(v: &Value) -> bool {
    v["kind"] == "exec"
}

/// The newline-terminated lines of a file. A reader racing the tracer can see
/// the first part of a long line whose single `write` is still being copied in
/// (the kernel makes no promise that readers see a regular-file write whole),
/// so the unterminated tail is left for the next read.
pub fn complete_lines(path: &Path) -> Vec<String> {
    Follower::new(path).next_lines()
}

/// Follows a growing file: each call returns the complete lines appended since
/// the previous one. Starts over when the file is replaced (a rotation).
pub struct Follower {
    path: PathBuf,
    offset: u64,
    ino: u64,
}

impl Follower {
    pub fn new(path: &Path) -> Follower {
        Follower {
            path: path.to_owned(),
            offset: 0,
            ino: 0,
        }
    }

    pub fn next_lines(&mut self) -> Vec<String> {
        let Ok(mut f) = fs::File::open(&self.path) else {
            return Vec::new();
        };
        let Ok(meta) = f.metadata() else {
            return Vec::new();
        };
        if meta.ino() != self.ino || meta.len() < self.offset {
            self.ino = meta.ino();
            self.offset = 0;
        }
        let mut bytes = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_end(&mut bytes).is_err() {
            return Vec::new();
        }
        // An unterminated tail waits for the next call (see complete_lines).
        let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.offset += end as u64;
        String::from_utf8_lossy(&bytes[..end])
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// An output file and its rotations (`base`, `base.1`, ...) in `dir`, oldest
/// first: `base.N` ... `base.1`, `base`.
pub fn output_files(dir: &Path, base: &str) -> Vec<PathBuf> {
    let rotated = format!("{base}.");
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list output dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == base || n.starts_with(&rotated))
        })
        .collect();
    files.sort_by_key(|p| {
        std::cmp::Reverse(
            p.extension()
                .and_then(|e| e.to_str())
                .and_then(|e| e.parse::<u64>().ok())
                .unwrap_or(0),
        )
    });
    files
}

/// `n` runs of `/bin/true <mark>` from one shell loop.
pub fn exec_storm(n: usize, mark: &str) {
    let st = Command::new("sh")
        .args([
            "-c",
            &format!("i=0; while [ $i -lt {n} ]; do /bin/true {mark}; i=$((i+1)); done"),
        ])
        .status()
        .expect("run sh");
    assert!(st.success());
}

pub fn argv_contains(v: &Value, needle: &str) -> bool {
    argv(v).iter().any(|a| a.contains(needle))
}

/// The cgroup v2 mount, from /proc/self/mountinfo.
pub fn cgroup2_mount() -> PathBuf {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    for line in text.lines() {
        if let Some((pre, post)) = line.split_once(" - ")
            && post.starts_with("cgroup2 ")
            && let Some(mp) = pre.split(' ').nth(4)
        {
            return PathBuf::from(mp);
        }
    }
    panic!("no cgroup2 mount");
}

/// A v2 cgroup for a test; on drop, the directories it created are removed
/// (deepest first, once their processes are gone). Directories that existed before
/// are left alone.
pub struct TestCgroup {
    pub path: PathBuf,
    pub rel: String,
    created: Vec<PathBuf>,
}

impl TestCgroup {
    pub fn new(rel: &str) -> TestCgroup {
        let root = cgroup2_mount();
        let rel = rel.trim_start_matches('/');
        let mut created = Vec::new();
        let mut dir = root.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            dir = dir.join(part);
            // Parallel tests share parents (kubepods.slice): whoever creates one owns it.
            match fs::create_dir(&dir) {
                Ok(()) => created.push(dir.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => panic!("mkdir {}: {e}", dir.display()),
            }
        }
        TestCgroup {
            path: dir,
            rel: format!("/{rel}"),
            created,
        }
    }

    pub fn procs_file(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// `sh -c` script prefix that moves the shell into this cgroup.
    pub fn enter(&self) -> String {
        format!("echo $$ > {} && ", self.procs_file().display())
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for dir in self.created.iter().rev() {
            for _ in 0..50 {
                if fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A UUID-shaped id, unique per call in this test run.
pub fn test_uuid() -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        std::process::id(),
        n & 0xffff,
        n & 0xfff,
        (n >> 12) & 0xfff,
        u64::from(n).wrapping_mul(0x9e37_79b9) & 0xffff_ffff_ffff
    )
}

/// A 64-hex container id, unique per call in this test run.
pub fn test_container_id() -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let seed = format!("{:08x}{:08x}", std::process::id(), n);
    seed.repeat(4)
}

/// A real service account, deleted on drop.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    pub fn new() -> TestUser {
        let name = format!(
            "trc{}{}",
            std::process::id() % 100000,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let st = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ])
            .status()
            .expect("useradd");
        assert!(st.success(), "useradd {name} failed");
        let out = Command::new("id")
            .args(["-u", &name])
            .output()
            .expect("id -u");
        let uid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("uid");
        let out = Command::new("id")
            .args(["-g", &name])
            .output()
            .expect("id -g");
        let gid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("gid");
        TestUser { name, uid, gid }
    }
}

impl Default for TestUser {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}
