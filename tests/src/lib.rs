//! Harness for the live-kernel tests: start a real tracer, run a scenario, collect
//! the events it wrote, pick out the scenario's own (other processes run on the
//! host too), assert on them.
pub mod kubeapi;
pub mod real;

use std::{
    fs,
    io::{Read as _, Seek as _, SeekFrom, Write as _},
    net::TcpStream,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
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
    try_scratch_dir().unwrap_or_else(|e| panic!("{e:#}"))
}

fn try_scratch_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(marker("dir"));
    fs::create_dir_all(&d).with_context(|| format!("creating scratch dir {}", d.display()))?;
    Ok(d)
}

/// How long a tracer gets to say it is ready (probes attached, /proc scanned).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

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
        Tracer::start_wrapped(&[], extra, env)
    }

    /// Like [`Tracer::start_with_env`], run through `wrapper` (a command that
    /// ends by exec'ing its arguments, so the tracer keeps its pid: e.g.
    /// `unshare --mount ... sh -c '...; exec "$@"' sh`).
    pub fn start_wrapped(wrapper: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Tracer {
        require_root();
        let mut env = env.to_vec();
        env.push(("TRACER_LOG", "info"));
        Tracer::launch(&tracer_bin(), wrapper, extra, &env).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Start `bin run --output <file>` (through `wrapper` when not empty) with
    /// `extra` flags and `env`, and wait until it says it is ready. What every
    /// `start*` runs; errors instead of panics, for callers outside a test (the
    /// bench). The output and stderr live in a scratch directory removed on drop.
    pub fn launch(
        bin: &Path,
        wrapper: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Tracer> {
        let dir = try_scratch_dir()?;
        // Drop cleans up from here on (kills the child, removes the directory).
        let mut t = Tracer {
            child: None,
            output: dir.join("events.jsonl"),
            stderr: dir.join("stderr.log"),
            dir,
        };
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let stderr = fs::File::create(&t.stderr)
            .with_context(|| format!("creating {}", t.stderr.display()))?;
        let child = cmd
            .arg("run")
            .arg("--output")
            .arg(&t.output)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        t.child = Some(child);
        t.wait_ready(READY_TIMEOUT)?;
        Ok(t)
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = fs::read_to_string(&self.stderr).unwrap_or_default();
            if log.contains("tracer ready") {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("tracer exited before ready ({status}):\n{log}");
            }
            if Instant::now() >= deadline {
                bail!("tracer not ready in time:\n{log}");
            }
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

    /// The tracer's resident memory now and at its peak, in KiB (VmRSS, VmHWM).
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("tracer's /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {status}"))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Let events that are in flight land (for asserting that something did not happen twice).
    pub fn settle(&self) {
        std::thread::sleep(Duration::from_millis(500));
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        sigterm(&child);
        child.wait().expect("wait tracer")
    }

    /// SIGTERM, then wait up to `timeout` for the exit (then SIGKILL, and an
    /// error). Unlike [`Tracer::stop`], the output stays readable until drop.
    pub fn try_stop(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("tracer already stopped")?;
        sigterm(&child);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().context("waiting for the tracer")? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("tracer did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The tracer's pid (a wrapper that execs keeps it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The tracer's resident set (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.memory_kib().0
    }

    pub fn stderr_log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

fn sigterm(child: &Child) {
    // SAFETY: sending a signal to our own child, not yet waited for.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
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
    strings(&v["action"]["argv"])
}

/// The executor's argv (what any event, not only an exec, carries).
pub fn executor_argv(v: &Value) -> Vec<String> {
    strings(&v["executor"]["argv"])
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
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
        TestCgroup::from_bytes(rel.as_bytes())
    }

    /// A cgroup whose names are any bytes (not UTF-8, say); `rel` is then a
    /// lossy rendering, for messages only.
    pub fn from_bytes(rel: &[u8]) -> TestCgroup {
        use std::os::unix::ffi::OsStrExt as _;
        let root = cgroup2_mount();
        let start = rel.iter().position(|&b| b != b'/').unwrap_or(rel.len());
        let rel = &rel[start..];
        let mut created = Vec::new();
        let mut dir = root.clone();
        for part in rel.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            dir = dir.join(std::ffi::OsStr::from_bytes(part));
            // Parallel tests share parents (kubepods.slice): whoever creates one owns it.
            match fs::create_dir(&dir) {
                Ok(()) => created.push(dir.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => panic!("mkdir {}: {e}", dir.display()),
            }
        }
        TestCgroup {
            path: dir,
            rel: format!("/{}", String::from_utf8_lossy(rel)),
            created,
        }
    }

    pub fn procs_file(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// Move process `pid` into this cgroup.
    pub fn add(&self, pid: u32) {
        fs::write(self.procs_file(), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", self.rel));
    }

    /// The cgroup's id: the inode number of its directory.
    pub fn id(&self) -> u64 {
        fs::metadata(&self.path).expect("cgroup directory").ino()
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

// ---------------------------------------------------------------------------
// Real container runtimes (tests/runtimes.rs): podman with runc, and a private
// containerd driven with ctr. Nothing is pulled: the image is busybox-static in
// an otherwise empty root file system, imported locally.

/// Where a runtime tool lives: `$PATH`, then the sbin directories a non-login
/// root shell may lack.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Every tool in `names`, or a failure that says how to get them: CI installs
/// them through `cargo xtask setup`, so a missing one is an error, not a skip.
pub fn require_tools(names: &[&str]) -> Vec<PathBuf> {
    let found: Vec<Option<PathBuf>> = names.iter().map(|n| find_tool(n)).collect();
    let missing: Vec<&str> = names
        .iter()
        .zip(&found)
        .filter(|(_, p)| p.is_none())
        .map(|(n, _)| *n)
        .collect();
    assert!(
        missing.is_empty(),
        "missing {}: run `cargo xtask setup` (it installs podman, runc, containerd, busybox-static and dnsmasq)",
        missing.join(", ")
    );
    found.into_iter().flatten().collect()
}

/// Whether an ELF file has no program interpreter (is statically linked).
fn is_static_elf(path: &Path) -> bool {
    let Ok(b) = fs::read(path) else {
        return false;
    };
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u64_at = |o: usize| {
        b.get(o..o + 8)
            .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
    };
    // 64-bit little-endian ELF only (x86_64, aarch64).
    if b.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..usize::from(phnum)).all(|i| {
        let at = phoff as usize + i * usize::from(phentsize);
        b.get(at..at + 4)
            .is_some_and(|t| u32::from_le_bytes(t.try_into().expect("4 bytes")) != PT_INTERP)
    })
}

/// Run `cmd` to completion, or kill it after `timeout` and fail.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> std::process::Output {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            // SAFETY: our own child, not yet reaped (the waiting thread has not returned).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{what} did not finish in {timeout:?}");
        }
    }
}

/// [`output_within`], failing unless the command succeeds; its stdout.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> String {
    let what = format!("{cmd:?}");
    let out = output_within(cmd, timeout);
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How long one runtime command (import, run, save) may take.
pub const RUNTIME_CMD: Duration = Duration::from_secs(120);

/// A TCP listener on 127.0.0.1 that accepts and at once closes every
/// connection, so a client such as `nc` finishes on its own.
pub struct LoopbackListener {
    pub port: u16,
}

impl LoopbackListener {
    pub fn start() -> LoopbackListener {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        // The thread outlives the test, blocked in accept; harmless in a test binary.
        std::thread::spawn(move || {
            for c in l.incoming() {
                drop(c);
            }
        });
        LoopbackListener { port }
    }
}

/// A local podman image holding busybox-static as `/bin/busybox` with applet
/// symlinks, imported under a unique tag; removed on drop. Also the podman
/// configuration this machine needs (see `podman()`).
pub struct PodmanImage {
    pub tag: String,
    pub dir: PathBuf,
    conf: PathBuf,
}

/// Applets the test containers use (all in Debian's busybox-static).
const BUSYBOX_APPLETS: &[&str] = &["sh", "nc", "sleep", "true", "cat", "echo"];

impl PodmanImage {
    pub fn build() -> PodmanImage {
        require_root();
        let tools = require_tools(&["podman", "runc", "conmon", "busybox"]);
        let busybox = &tools[3];
        assert!(
            is_static_elf(busybox),
            "{} is not statically linked: install busybox-static (`cargo xtask setup`)",
            busybox.display()
        );
        let dir = scratch_dir();
        let conf = dir.join("containers.conf");
        // No CAP_SYS_RESOURCE here (podman's default rlimits fail), no systemd
        // (cgroupfs, file events), and a hybrid cgroup layout crun refuses.
        fs::write(
            &conf,
            "[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .expect("write containers.conf");
        let image = PodmanImage {
            tag: format!("localhost/{}:latest", marker("img")),
            dir,
            conf,
        };
        let rootfs = image.dir.join("rootfs");
        let bin = rootfs.join("bin");
        fs::create_dir_all(&bin).expect("mkdir rootfs/bin");
        fs::create_dir_all(rootfs.join("tmp")).expect("mkdir rootfs/tmp");
        // Content unique to this image: two identical imports in the same second
        // (parallel tests) make one image id, and podman's concurrent tagging of
        // it can lose one test's tag ("image not known").
        fs::write(rootfs.join(".image-tag"), &image.tag).expect("write rootfs/.image-tag");
        fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
        for applet in BUSYBOX_APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink applet");
        }
        let tar = image.dir.join("rootfs.tar");
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
            RUNTIME_CMD,
        );
        run_ok(
            image.podman().arg("import").arg(&tar).arg(&image.tag),
            RUNTIME_CMD,
        );
        image
    }

    /// `podman` with this machine's settings: runc (crun refuses the hybrid
    /// layout) and cgroupfs (no systemd).
    pub fn podman(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf).args([
            "--runtime",
            "runc",
            "--cgroup-manager",
            "cgroupfs",
        ]);
        c
    }

    /// The image as a docker archive, for other runtimes.
    pub fn save_docker_archive(&self) -> PathBuf {
        let out = self.dir.join("image-docker.tar");
        run_ok(
            self.podman()
                .args(["save", "--format", "docker-archive", "-o"])
                .arg(&out)
                .arg(&self.tag),
            RUNTIME_CMD,
        );
        out
    }
}

impl Drop for PodmanImage {
    fn drop(&mut self) {
        let _ = self
            .podman()
            .args(["rmi", "-f", &self.tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A podman container by name, removed (`podman rm -f`) on drop.
pub struct PodmanContainer<'a> {
    pub image: &'a PodmanImage,
    pub name: String,
}

impl Drop for PodmanContainer<'_> {
    fn drop(&mut self) {
        let _ = self
            .image
            .podman()
            .args(["rm", "-f", "-t", "0", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A private containerd (own root, state, socket and config); on drop its
/// containers are killed and deleted, the daemon stopped and its directories
/// (after unmounting anything left under them) removed.
pub struct Containerd {
    child: Option<Child>,
    pub dir: PathBuf,
    pub address: PathBuf,
    /// (namespace, id, whether this run created the namespace's cgroup).
    started: Vec<(String, String, bool)>,
}

impl Containerd {
    pub fn start() -> Containerd {
        require_root();
        require_tools(&["containerd", "ctr", "containerd-shim-runc-v2", "runc"]);
        let dir = scratch_dir();
        let address = dir.join("c.sock");
        let config = dir.join("config.toml");
        // Version 2 config: no CRI plugin (no CNI, no streaming server), and
        // nothing read from /etc/containerd.
        fs::write(
            &config,
            format!(
                "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\n\
                 [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{}\"\n",
                dir.join("opt").display()
            ),
        )
        .expect("write containerd config");
        let log = fs::File::create(dir.join("containerd.log")).expect("containerd log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--address")
            .arg(&address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let mut c = Containerd {
            child: Some(child),
            dir,
            address,
            started: Vec::new(),
        };
        c.wait_ready();
        c
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.address.exists() {
                let ok = self
                    .ctr("default")
                    .arg("version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    return;
                }
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("containerd exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "containerd not ready in {WAIT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ctr` against this daemon, in containerd namespace `ns`.
    pub fn ctr(&self, ns: &str) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(&self.address).args(["-n", ns]);
        c
    }

    /// Note a container to clean up on drop (before `ctr run`): the task and
    /// container, and the cgroups runc leaves, `/<ns>/<id>` and (when this run
    /// creates it) `/<ns>`, in every hierarchy.
    pub fn track(&mut self, ns: &str, id: &str) {
        let fresh = !cgroup2_mount().join(ns).exists();
        self.started.push((ns.to_owned(), id.to_owned(), fresh));
    }

    /// Best effort, for clean-up (never panics: it runs in `drop`).
    fn quiet(&self, ns: &str, args: &[&str]) {
        let _ = self
            .ctr(ns)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let started = std::mem::take(&mut self.started);
        for (ns, id, _) in &started {
            self.quiet(ns, &["task", "kill", "-s", "SIGKILL", id]);
            self.quiet(ns, &["task", "delete", "-f", id]);
            self.quiet(ns, &["container", "delete", id]);
        }
        for mount in cgroup_mounts() {
            for (ns, id, fresh) in &started {
                let _ = fs::remove_dir(mount.join(ns).join(id));
                if *fresh {
                    let _ = fs::remove_dir(mount.join(ns));
                }
            }
        }
        if let Some(mut child) = self.child.take() {
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Snapshot and task mounts a failed run may have left, deepest first.
        let prefix = self.dir.to_string_lossy().into_owned();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(prefix.as_str()))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = Command::new("umount").args(["-l", p]).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Every cgroup mount, v1 hierarchies and the v2 one, from /proc/self/mountinfo.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| pre.split(' ').nth(4).map(PathBuf::from))
                .flatten()
        })
        .collect()
}

/// A plain HTTP GET to 127.0.0.1:`port`: (status, whole response).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, resp)
}

/// The value of the first metric line starting with `name` (0 when absent).
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// A free TCP port on 127.0.0.1 (for --metrics-addr).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// An ed25519 key pair as an operator makes it (private key mode 0600):
/// (private PEM, public PEM).
pub fn key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let key = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    let openssl = |args: &[&Path]| {
        let st = Command::new("openssl")
            .args(args)
            .status()
            .expect("openssl");
        assert!(st.success(), "openssl {args:?}");
    };
    let p = Path::new;
    openssl(&[p("genpkey"), p("-algorithm"), p("ed25519"), p("-out"), &key]);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    openssl(&[p("pkey"), p("-in"), &key, p("-pubout"), p("-out"), &public]);
    (key, public)
}

/// `tracer verify [--public-key KEY] [extra...] FILES`: (exit code, stdout + stderr).
pub fn verify(files: &[PathBuf], public_key: Option<&Path>, extra: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(tracer_bin());
    cmd.arg("verify");
    if let Some(k) = public_key {
        cmd.arg("--public-key").arg(k);
    }
    let out = cmd.args(extra).args(files).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// A tmpfs of `size` (mount's syntax, e.g. "2m") on a fresh directory, unmounted
/// on drop: a disk that can really fill up.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        require_root();
        let dir = scratch_dir();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount tmpfs on {}", dir.display());
        Tmpfs { dir }
    }

    /// Fill what is left with one file, until the kernel answers ENOSPC.
    pub fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = fs::File::create(&path).expect("create filler");
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        // Single bytes into what the last page left.
        while f.write(&[0]).is_ok_and(|n| n == 1) {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Every line of `file` validates against docs/event.schema.json.
pub fn check_schema(file: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root");
    let out = Command::new("python3")
        .arg(repo.join("tests/schema_check.py"))
        .arg(repo.join("docs/event.schema.json"))
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("python3 schema_check.py: {e} (run `cargo xtask setup`)"));
    assert!(
        out.status.success(),
        "{} does not validate against docs/event.schema.json:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test that cannot run here says so loudly: `SKIPPED: <test>: <why>` on
/// stderr (seen with `--nocapture`), a line appended to `$TRACER_SKIP_LOG` when
/// set (to count skips), and a failure instead when `$TRACER_NO_SKIP` is set.
/// Only for what a test machine may legitimately lack (a kernel feature, a
/// mount); what `cargo xtask setup` installs is required, not skipped.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os("TRACER_NO_SKIP").is_some() {
        panic!("{test}: {why} (TRACER_NO_SKIP is set, so this fails instead of skipping)");
    }
    eprintln!("SKIPPED: {test}: {why}");
    if let Some(log) = std::env::var_os("TRACER_SKIP_LOG") {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "SKIPPED: {test}: {why}");
        }
    }
}
