//! Workload identity on cgroup v1 hosts (Amazon Linux 2, RHEL 8, Ubuntu 20.04
//! defaults), where containers live only in the v1 controller hierarchies and
//! every process's v2 cgroup is the root.
//!
//! On this project's hybrid machines a process is put in a v1 cgroup shaped like
//! a docker container (`<memory mount>/docker/<64 hex>`) while its v2 cgroup is
//! the root; its exec and connect must name that container, and say the path
//! came from the v1 hierarchy. A second run hides every cgroup2 mount from the
//! tracer (a private mount namespace), as on a pure v1 host: it must mount the
//! v2 hierarchy itself and still see connects.
//!
//! On a pure v2 host there is no v1 hierarchy to test: the v1 scenarios say so
//! and pass.
use std::{
    fs,
    io::ErrorKind,
    net::{Ipv4Addr, TcpListener},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;
use tracer_tests::{Tracer, argv, is_exec, marker, require_root, test_container_id};

/// The controllers the tracer reads, in its order of preference.
const V1_PREFERENCE: [&str; 3] = ["memory", "pids", "cpu"];

struct Mounts {
    /// Every cgroup2 mount point.
    v2: Vec<PathBuf>,
    /// The v1 controller the tracer reads, and where its hierarchy's root is mounted.
    v1: Option<(&'static str, PathBuf)>,
}

/// From /proc/self/mountinfo, as the tracer chooses.
fn mounts() -> Mounts {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mut v2 = Vec::new();
    let mut v1: Vec<(Vec<String>, PathBuf)> = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (Some(root), Some(mount_point), Some(fstype), Some(options)) =
            (pre.get(3), pre.get(4), post.first(), post.get(2))
        else {
            continue;
        };
        match *fstype {
            "cgroup2" => v2.push(PathBuf::from(mount_point)),
            "cgroup" if *root == "/" => v1.push((
                options.split(',').map(str::to_owned).collect(),
                PathBuf::from(mount_point),
            )),
            _ => {}
        }
    }
    let v1 = V1_PREFERENCE.iter().find_map(|&c| {
        v1.iter()
            .find(|(opts, _)| opts.iter().any(|o| o == c))
            .map(|(_, m)| (c, m.clone()))
    });
    Mounts { v2, v1 }
}

/// A v1 cgroup for a test; on drop, the directories it created are removed
/// (deepest first, waiting until their processes are gone).
struct V1Cgroup {
    dir: PathBuf,
    created: Vec<PathBuf>,
}

impl V1Cgroup {
    fn new(mount: &Path, rel: &str) -> V1Cgroup {
        let mut created = Vec::new();
        let mut dir = mount.to_path_buf();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            dir = dir.join(part);
            // Parallel tests may share `docker`: whoever creates it removes it.
            match fs::create_dir(&dir) {
                Ok(()) => created.push(dir.clone()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => panic!("mkdir {}: {e}", dir.display()),
            }
        }
        V1Cgroup { dir, created }
    }
}

impl Drop for V1Cgroup {
    fn drop(&mut self) {
        for dir in self.created.iter().rev() {
            for _ in 0..50 {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    // Another test's cgroup still inside a shared parent, or
                    // our process not yet fully gone.
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
    }
}

/// A process moved to the v2 root and into `<v1 mount>/docker/<id>` execs a
/// marked `/bin/true` and connects to a loopback listener; both events must name
/// the docker container from the v1 path.
fn docker_in_v1_only(tracer: &Tracer, mounts: &Mounts) {
    let (controller, v1_mount) = mounts.v1.as_ref().expect("a v1 controller");
    let cid = test_container_id();
    let cg = V1Cgroup::new(v1_mount, &format!("docker/{cid}"));
    let v1_id = fs::metadata(&cg.dir).expect("stat v1 cgroup").ino();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listen");
    let port = listener.local_addr().unwrap().port();
    let mark = marker("cgv1");
    // The test itself may sit below the v2 root: the process goes to the root,
    // where every process is on a v1 host. No cgroup2 mount: it is there already.
    let to_v2_root = mounts
        .v2
        .first()
        .map(|m| format!("echo $$ > {}/cgroup.procs && ", m.display()))
        .unwrap_or_default();
    let script = format!(
        "{to_v2_root}echo $$ > {}/cgroup.procs && /bin/true {mark} && exec 3<>/dev/tcp/127.0.0.1/{port}",
        cg.dir.display()
    );
    let st = Command::new("bash")
        .args(["-c", &script])
        .status()
        .expect("run bash");
    assert!(st.success(), "{script}");

    let events = tracer.wait_for(2, |e| {
        (is_exec(e) && argv(e) == ["/bin/true", mark.as_str()])
            || (e["kind"] == "connect"
                && e["action"]["destination"]["port"] == port
                && e["executor"]["argv"][2] == script.as_str())
    });
    let exec = events.iter().find(|e| is_exec(e)).expect("exec event");
    let connect = events
        .iter()
        .find(|e| e["kind"] == "connect")
        .expect("connect event");
    assert_eq!(connect["action"]["outcome"], "success", "{connect}");
    let v2_root = mounts
        .v2
        .first()
        .map(|m| fs::metadata(m).expect("stat v2 root").ino());
    for e in [exec, connect] {
        let x = &e["executor"];
        let w = &x["workload"];
        assert_eq!(w["kind"], "container", "{e}");
        assert_eq!(w["container"]["id"], cid.as_str(), "{e}");
        assert_eq!(w["container"]["runtime"], "docker", "{e}");
        let c = &x["cgroup"];
        assert_eq!(c["hierarchy"], format!("v1:{controller}"), "{e}");
        assert_eq!(c["path"], format!("/docker/{cid}"), "{e}");
        assert_eq!(c["v1_id"], v1_id, "{e}");
        if let Some(root) = v2_root {
            assert_eq!(c["id"], root, "v2 cgroup is the root: {e}");
        }
    }
    drop(listener);
    drop(cg);
}

#[test]
fn docker_container_in_a_v1_hierarchy_only() {
    require_root();
    let mounts = mounts();
    if mounts.v1.is_none() {
        tracer_tests::skip(
            "docker_container_in_a_v1_hierarchy_only",
            "no cgroup v1 controller hierarchy mounted (pure v2 host)",
        );
        return;
    }
    let tracer = Tracer::start(&[]);
    assert!(
        tracer
            .stderr_log()
            .contains("reading each task's cgroup in the v1"),
        "{}",
        tracer.stderr_log()
    );
    docker_in_v1_only(&tracer, &mounts);
}

/// Every cgroup2 mount hidden from the tracer, as on a v1-only host: it mounts
/// the v2 hierarchy itself (privately, in its mount namespace here), attaches
/// the connect hooks there, and names workloads from the v1 hierarchy.
#[test]
fn without_a_cgroup2_mount_the_tracer_mounts_one() {
    require_root();
    let mounts = mounts();
    let umounts: String = mounts
        .v2
        .iter()
        .map(|m| format!("umount -l {} && ", m.display()))
        .collect();
    let script = format!("{umounts}exec \"$@\"");
    let tracer = Tracer::start_wrapped(
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ],
        &[],
        &[],
    );
    let log = tracer.stderr_log();
    assert!(
        log.contains("mounted the v2 hierarchy at /run/tracer/cgroup2"),
        "{log}"
    );
    if mounts.v1.is_some() {
        docker_in_v1_only(&tracer, &mounts);
    } else {
        // A pure v2 host: still every connect, through the private mount.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listen");
        let port = listener.local_addr().unwrap().port();
        let _s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let e: Value = tracer
            .wait_for(1, |e| {
                e["kind"] == "connect"
                    && e["action"]["destination"]["port"] == port
                    && e["executor"]["pid"] == std::process::id()
            })
            .remove(0);
        assert_eq!(e["executor"]["cgroup"]["hierarchy"], "v2", "{e}");
    }
}
