//! Workload identity with real container runtimes: a container started by
//! podman (runc, cgroupfs manager) and one started by a private containerd
//! through `ctr` exec a marked command and connect to a loopback listener; the
//! tracer must attribute both events to the container, with the runtime and the
//! runtime's own container id, name and image (podman's from its store,
//! containerd's from its API socket, with the containerd namespace).
//!
//! Nothing is pulled from a registry: the image is busybox-static in an empty
//! root file system, imported locally. The runtimes come from `cargo xtask
//! setup`; without them these tests fail and say so.
//!
//! The kernel matrix (`cargo xtask vmtest`) runs this suite in every guest, so
//! it covers the host's hybrid layout, v2-only guests and a v1-only guest
//! (`5.10-v1`); the events must name the hierarchy runc used (`v2`, or
//! `v1:<controller>` on the v1-only guest).
use serde_json::Value;
use tracer_tests::{
    Containerd, LoopbackListener, PodmanContainer, PodmanImage, RUNTIME_CMD, Tracer, argv, is_exec,
    marker, run_ok, test_container_id,
};

/// The container's script: a marked exec, then a TCP connect to `port`.
fn script(mark: &str, port: u16) -> String {
    format!("/bin/true {mark}; nc 127.0.0.1 {port} </dev/null; echo done")
}

/// The marked exec and the connect to `port`, waited for.
fn exec_and_connect(tracer: &Tracer, mark: &str, port: u16) -> (Value, Value) {
    let events = tracer.wait_for(2, |e| {
        (is_exec(e) && argv(e) == ["/bin/true", mark])
            || (e["kind"] == "connect" && e["action"]["destination"]["port"] == port)
    });
    let exec = events
        .iter()
        .find(|e| is_exec(e))
        .cloned()
        .unwrap_or_else(|| panic!("no exec event for {mark}"));
    let connect = events
        .iter()
        .find(|e| e["kind"] == "connect")
        .cloned()
        .unwrap_or_else(|| panic!("no connect event to port {port}"));
    (exec, connect)
}

fn assert_container(e: &Value, runtime: &str, id: &str) {
    let w = &e["executor"]["workload"];
    assert_eq!(w["kind"], "container", "{e:#}");
    assert_eq!(w["container"]["runtime"], runtime, "{e:#}");
    assert_eq!(w["container"]["id"], id, "{e:#}");
    assert_eq!(w["pod"], Value::Null, "{e:#}");
    let hierarchy = e["executor"]["cgroup"]["hierarchy"]
        .as_str()
        .unwrap_or_default();
    if runc_uses_v2() {
        assert_eq!(hierarchy, "v2", "{e:#}");
    } else {
        assert!(hierarchy.starts_with("v1:"), "v1-only layout: {e:#}");
    }
}

/// Whether runc puts containers in the v2 tree, by runc's own rule: cgroup2 at
/// `/sys/fs/cgroup` (pure v2) or, on hybrid hosts, at `/sys/fs/cgroup/unified`.
/// Otherwise (a v1-only host; the tracer's own cgroup2 mount is elsewhere) they
/// are only in the v1 hierarchies, and the tracer must name one of those.
fn runc_uses_v2() -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    text.lines().any(|line| {
        line.split_once(" - ").is_some_and(|(pre, post)| {
            post.starts_with("cgroup2 ")
                && matches!(
                    pre.split(' ').nth(4),
                    Some("/sys/fs/cgroup" | "/sys/fs/cgroup/unified")
                )
        })
    })
}

#[test]
fn podman_container_events_carry_runtime_and_id() {
    let image = PodmanImage::build();
    let listener = LoopbackListener::start();
    let tracer = Tracer::start(&[]);
    let mark = marker("podman");
    let container = PodmanContainer {
        image: &image,
        name: marker("ctr"),
    };
    let stdout = run_ok(
        image
            .podman()
            .args(["run", "-d", "--ulimit", "host", "--network", "host"])
            .args(["--name", &container.name, &image.tag, "sh", "-c"])
            .arg(script(&mark, listener.port)),
        RUNTIME_CMD,
    );
    let id = stdout
        .lines()
        .last()
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "podman run -d printed no container id: {stdout:?}"
    );
    let inspected = run_ok(
        image
            .podman()
            .args(["inspect", "--format", "{{.Id}}", &container.name]),
        RUNTIME_CMD,
    );
    assert_eq!(inspected.trim(), id);

    let (exec, connect) = exec_and_connect(&tracer, &mark, listener.port);
    for e in [&exec, &connect] {
        assert_container(e, "podman", &id);
        assert_eq!(
            e["executor"]["cgroup"]["path"],
            format!("/libpod_parent/libpod-{id}"),
            "{e:#}"
        );
    }
    assert_eq!(connect["executor"]["argv"][0], "nc", "{connect:#}");
    assert_eq!(connect["action"]["destination"]["ip"], "127.0.0.1");
    // Not in the cgroup path: from podman's own store.
    for e in [&exec, &connect] {
        let c = &e["executor"]["workload"]["container"];
        assert_eq!(c["name"], container.name.as_str(), "{e:#}");
        assert_eq!(c["image"], image.tag.as_str(), "{e:#}");
    }

    let st = run_ok(image.podman().args(["wait", &container.name]), RUNTIME_CMD);
    assert_eq!(st.trim(), "0", "container exit status");
}

/// `ctr run` in namespace `ns` with container id `id` on a private containerd.
fn containerd_run(ns: &str, id: &str) {
    let image = PodmanImage::build();
    let archive = image.save_docker_archive();
    let mut daemon = Containerd::start();
    run_ok(
        daemon.ctr(ns).args(["image", "import"]).arg(&archive),
        RUNTIME_CMD,
    );
    // The reference the container is created from, as containerd lists it.
    let images = run_ok(daemon.ctr(ns).args(["image", "ls", "-q"]), RUNTIME_CMD);
    assert!(
        images.lines().any(|l| l.trim() == image.tag),
        "ctr image ls: {images:?}, want {}",
        image.tag
    );
    let listener = LoopbackListener::start();
    let socket = daemon.address.to_str().expect("utf-8 socket path");
    // A generous wait for containerd's answer (and so the lookup's bound): in
    // an emulated guest of the kernel matrix, with the other tests running,
    // containerd sometimes takes more than a second to answer.
    let tracer = Tracer::start(&["--containerd-socket", socket, "--kube-wait", "20000"]);
    let mark = marker("ctrd");
    daemon.track(ns, id);
    let out = run_ok(
        daemon
            .ctr(ns)
            .args(["run", "--rm", "--net-host", &image.tag, id, "sh", "-c"])
            .arg(script(&mark, listener.port)),
        RUNTIME_CMD,
    );
    assert_eq!(out.trim(), "done", "container output");

    let (exec, connect) = exec_and_connect(&tracer, &mark, listener.port);
    for e in [&exec, &connect] {
        assert_container(e, "containerd", id);
        assert_eq!(
            e["executor"]["cgroup"]["path"],
            format!("/{ns}/{id}"),
            "{e:#}"
        );
        // Not in the cgroup path: from containerd's API (ctr sets no name label).
        let c = &e["executor"]["workload"]["container"];
        let why = || format!("{e:#}\ntracer stderr:\n{}", tracer.stderr_log());
        assert_eq!(c["namespace"], ns, "{}", why());
        assert_eq!(c["image"], image.tag.as_str(), "{}", why());
        assert_eq!(c["name"], id, "{}", why());
    }
    assert_eq!(connect["executor"]["argv"][0], "nc", "{connect:#}");
}

/// Plain containerd's `/<namespace>/<id>`, in the namespace tools use by
/// default, with a 64-hex id as docker and nerdctl make.
#[test]
fn containerd_container_events_carry_runtime_and_id() {
    containerd_run("default", &test_container_id());
}

/// `ctr` takes any namespace and any id; only containerd itself can say that
/// `/<ns>/<id>` is one of its containers.
#[test]
fn containerd_any_namespace_and_id() {
    containerd_run(&marker("ns"), &marker("id"));
}
