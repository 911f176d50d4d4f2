//! Issue 9, class 1: identity only from places the workload cannot name.
//!
//! Each test performs an attack on the live kernel: a process puts itself in a
//! cgroup whose path claims a Kubernetes pod (or a systemd unit) it does not
//! belong to, from a subtree someone other than the host's managers can write
//! (a user manager's `user@UID.service`, a `Delegate=yes` service, a container's
//! own cgroup tree), then execs and connects. A stand-in Kubernetes API serves
//! the victim pod with exactly that pod UID and container id, so a wrong
//! resolution would show its namespace, service account and SPIFFE ID. The
//! events must name the outer owner instead, with the inner claim shown only
//! as `workload.claim`.
use std::{
    fs,
    os::unix::fs::chown,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;
use tracer_tests::{
    LoopbackListener, TestCgroup, TestUser, Tracer, argv, executor_argv, is_exec,
    kubeapi::{FakeApi, pod_json},
    marker, scratch_dir, test_container_id, test_uuid,
};

/// The pod a forger would like to be.
struct Victim {
    uid: String,
    cid: String,
    namespace: String,
    name: String,
    service_account: String,
}

struct Scene {
    api: FakeApi,
    node: String,
    dir: PathBuf,
    victim: Victim,
    listener: LoopbackListener,
}

impl Scene {
    fn new() -> Scene {
        let api = FakeApi::start();
        let node = marker("node");
        let victim = Victim {
            uid: test_uuid(),
            cid: test_container_id(),
            namespace: marker("victim"),
            name: marker("vpod"),
            service_account: marker("vsa"),
        };
        api.add_pod(pod_json(
            &node,
            &victim.namespace,
            &victim.name,
            &victim.uid,
            &victim.service_account,
            &victim.cid,
            "registry:5000/victim:1",
        ));
        Scene {
            api,
            node,
            dir: scratch_dir(),
            victim,
            listener: LoopbackListener::start(),
        }
    }

    /// A tracer watching this node's pods, with a registration that gives the
    /// victim's namespace an ID of its own, plus `regs` and `extra` flags.
    fn tracer(&self, regs: &str, extra: &[&str]) -> Tracer {
        let file = self.dir.join(format!("{}.toml", marker("regs")));
        fs::write(
            &file,
            format!(
                "[[entry]]\nspiffe_id = \"spiffe://cluster.local/victim\"\nselectors = [\"k8s:ns:{}\"]\n{regs}",
                self.victim.namespace
            ),
        )
        .unwrap();
        let kubeconfig = self.api.kubeconfig(&self.dir);
        let mut args = vec![
            "--node-name",
            self.node.as_str(),
            "--registrations",
            file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let t = Tracer::start_with_env(&args, &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
        // Let the watch list the pods (events would wait for it anyway).
        std::thread::sleep(Duration::from_millis(300));
        t
    }

    /// The exec of `/bin/true <mark>` and the connect of `curl .../<mark>`.
    fn events(&self, tracer: &Tracer, mark: &str) -> (Value, Value) {
        let got = tracer.wait_for(2, |e| {
            (is_exec(e) && argv(e) == ["/bin/true", mark])
                || (e["kind"] == "connect" && executor_argv(e).iter().any(|a| a.ends_with(mark)))
        });
        let exec = got.iter().find(|e| is_exec(e)).cloned().expect("exec");
        let connect = got
            .iter()
            .find(|e| e["kind"] == "connect")
            .cloned()
            .expect("connect");
        (exec, connect)
    }

    /// Nothing of the victim pod's identity anywhere in the executor.
    fn assert_not_victim(&self, e: &Value) {
        let x = &e["executor"];
        let w = &x["workload"];
        assert_ne!(
            w["pod"]["name"],
            self.victim.name.as_str(),
            "FORGED: resolved to the victim pod: {e:#}"
        );
        let text = x.to_string();
        for (what, v) in [
            ("namespace", &self.victim.namespace),
            ("pod name", &self.victim.name),
            ("service account", &self.victim.service_account),
        ] {
            assert!(
                !text.contains(v.as_str()),
                "FORGED: victim {what} on the event: {e:#}"
            );
        }
        assert_eq!(x["identity"]["spiffe_ids"], serde_json::json!([]), "{e:#}");
        let sel = x["identity"]["selectors"].as_array().unwrap();
        // Of Kubernetes, at most the pod UID the kubelet's own cgroup names.
        let uid_sel = format!("k8s:pod-uid:{}", self.victim.uid);
        assert!(
            !sel.iter().any(|s| s.as_str().is_some_and(|s| {
                s.starts_with("k8s:") && (!s.starts_with("k8s:pod-uid:") || s == uid_sel)
            })),
            "k8s selectors from a claim: {e:#}"
        );
    }

    /// The inner claim is shown, as a claim.
    fn assert_claims_victim(&self, e: &Value) {
        let claim = &e["executor"]["workload"]["claim"];
        assert_eq!(claim["kind"], "container", "{e:#}");
        assert_eq!(claim["pod_uid"], self.victim.uid.as_str(), "{e:#}");
        assert_eq!(claim["container_id"], self.victim.cid.as_str(), "{e:#}");
    }

    /// Enter `cg` and run [`Self::script`] there.
    fn run_in(&self, cg: &TestCgroup, mark: &str) {
        run_sh(&format!("{}{}", cg.enter(), self.script(mark)));
    }

    /// `/bin/true <mark>` then `curl http://127.0.0.1:<port>/<mark>` from `cgroup`.
    fn script(&self, mark: &str) -> String {
        format!(
            "/bin/true {mark} && {{ curl -s -m 2 -o /dev/null http://127.0.0.1:{}/{mark}; true; }}",
            self.listener.port
        )
    }
}

/// `sh -c script`, which must succeed.
fn run_sh(script: &str) {
    let st = Command::new("sh").args(["-c", script]).status().unwrap();
    assert!(st.success(), "{script}");
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Hand a cgroup to `user` the way systemd delegates one (`Delegate=yes`,
/// `user@.service`): the directory and its `cgroup.procs`, `cgroup.threads`
/// and `cgroup.subtree_control` are the user's.
fn delegate(cg: &TestCgroup, user: &TestUser) {
    for p in [
        cg.path.clone(),
        cg.path.join("cgroup.procs"),
        cg.path.join("cgroup.threads"),
        cg.path.join("cgroup.subtree_control"),
    ] {
        chown(&p, Some(user.uid), Some(user.gid)).unwrap_or_else(|e| panic!("chown {p:?}: {e}"));
    }
}

/// Root moves a shell into the delegated `outer` cgroup and drops to `user`;
/// the user then makes `inner` (a path below `outer`) itself, moves there and
/// runs `script`.
fn attack_as(user: &TestUser, outer: &TestCgroup, inner: &str, script: &str) {
    let inner_abs = outer.path.join(inner.trim_start_matches('/'));
    let sh = format!(
        "{enter}exec setpriv --reuid={uid} --regid={gid} --clear-groups sh -c 'mkdir -p \"$1\" && echo $$ > \"$1/cgroup.procs\" && {script}' sh {dir}",
        enter = outer.enter(),
        uid = user.uid,
        gid = user.gid,
        dir = inner_abs.display(),
    );
    run_sh(&sh);
}

/// Root (of a container, say) makes `inner` below `outer`, moves there and runs `script`.
fn attack_as_root(outer: &TestCgroup, inner: &str, script: &str) {
    let inner_abs = outer.path.join(inner.trim_start_matches('/'));
    let sh = format!(
        "mkdir -p {dir} && echo $$ > {dir}/cgroup.procs && {script}",
        dir = inner_abs.display()
    );
    run_sh(&sh);
}

/// On drop (also when the test fails), every cgroup the attack made below a
/// [`TestCgroup`]; declared after it, so it runs first.
struct Below(PathBuf);

impl Drop for Below {
    fn drop(&mut self) {
        remove_below(&self.0);
    }
}

/// Remove every cgroup below `dir` (deepest first), leaving `dir` itself.
fn remove_below(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let p = e.path();
            remove_below(&p);
            for _ in 0..50 {
                if fs::remove_dir(&p).is_ok() || !p.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn systemd_pod_path(uid: &str, cid: &str) -> String {
    let u = uid.replace('-', "_");
    format!(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/cri-containerd-{cid}.scope"
    )
}

fn user_manager(user: &TestUser) -> String {
    format!("user.slice/user-{0}.slice/user@{0}.service", user.uid)
}

/// The control: the victim's real cgroup, at the kubelet's place, resolves to
/// the victim (so a forged resolution in the other tests would be visible).
#[test]
fn control_real_kubepods_path_resolves_to_the_pod() {
    let s = Scene::new();
    let tracer = s.tracer("", &[]);
    let cg = TestCgroup::new(&systemd_pod_path(&s.victim.uid, &s.victim.cid));
    let mark = marker("control");
    s.run_in(&cg, &mark);
    let (exec, connect) = s.events(&tracer, &mark);
    for e in [&exec, &connect] {
        let w = &e["executor"]["workload"];
        assert_eq!(w["kind"], "pod", "{e:#}");
        assert_eq!(w["pod"]["name"], s.victim.name.as_str(), "{e:#}");
        assert_eq!(w["pod"]["namespace"], s.victim.namespace.as_str());
        assert_eq!(w["container"]["id"], s.victim.cid.as_str());
        assert!(w.get("claim").is_none_or(Value::is_null), "{e:#}");
        assert_eq!(e["executor"]["identity"]["status"], "resolved");
        assert_eq!(
            e["executor"]["identity"]["spiffe_ids"],
            serde_json::json!(["spiffe://cluster.local/victim"])
        );
    }
}

/// Attack: an unprivileged user, inside their own systemd user manager
/// (`user@UID.service`, delegated to them), builds the victim's kubepods path
/// below it and runs there.
#[test]
fn user_manager_cannot_claim_a_pod() {
    let s = Scene::new();
    let tracer = s.tracer("", &[]);
    let user = TestUser::new();
    let outer = TestCgroup::new(&user_manager(&user));
    let _below = Below(outer.path.clone());
    delegate(&outer, &user);
    let mark = marker("userpod");
    attack_as(
        &user,
        &outer,
        &systemd_pod_path(&s.victim.uid, &s.victim.cid),
        &s.script(&mark),
    );
    let (exec, connect) = s.events(&tracer, &mark);
    for e in [&exec, &connect] {
        s.assert_not_victim(e);
        let w = &e["executor"]["workload"];
        assert_eq!(w["kind"], "service", "{e:#}");
        assert_eq!(w["unit"], format!("user@{}.service", user.uid), "{e:#}");
        assert_eq!(w["pod"], Value::Null, "{e:#}");
        assert_eq!(w["container"], Value::Null, "{e:#}");
        s.assert_claims_victim(e);
        assert_eq!(e["executor"]["identity"]["status"], "resolved", "{e:#}");
    }
    // Events with a claim follow docs/event.schema.json.
    let file = s.dir.join("claims.jsonl");
    fs::write(&file, format!("{exec}\n{connect}\n")).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new("python3")
        .arg(repo.join("tests/schema_check.py"))
        .arg(repo.join("docs/event.schema.json"))
        .arg(&file)
        .output()
        .expect("python3 tests/schema_check.py (run `cargo xtask setup`)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Attack: a `Delegate=yes` service running as an unprivileged user builds the
/// victim's pod (cgroupfs driver layout) below its own cgroup.
#[test]
fn delegated_service_cannot_claim_a_pod() {
    let s = Scene::new();
    let tracer = s.tracer("", &[]);
    let user = TestUser::new();
    let unit = format!("{}.service", marker("delegated"));
    let outer = TestCgroup::new(&format!("system.slice/{unit}"));
    let _below = Below(outer.path.clone());
    delegate(&outer, &user);
    let mark = marker("svcpod");
    attack_as(
        &user,
        &outer,
        &format!("kubepods/besteffort/pod{}/{}", s.victim.uid, s.victim.cid),
        &s.script(&mark),
    );
    let (exec, connect) = s.events(&tracer, &mark);
    for e in [&exec, &connect] {
        s.assert_not_victim(e);
        let w = &e["executor"]["workload"];
        assert_eq!(w["kind"], "service", "{e:#}");
        assert_eq!(w["unit"], unit.as_str(), "{e:#}");
        assert_eq!(w["pod"], Value::Null, "{e:#}");
        s.assert_claims_victim(e);
    }
}

/// Attack: root inside a container with its own (writable) cgroup tree builds
/// the victim's pod below the container's cgroup.
#[test]
fn container_cannot_claim_a_pod() {
    let s = Scene::new();
    let tracer = s.tracer("", &[]);
    let outer_id = test_container_id();
    let outer = TestCgroup::new(&format!("libpod_parent/libpod-{outer_id}"));
    let _below = Below(outer.path.clone());
    let mark = marker("ctrpod");
    attack_as_root(
        &outer,
        &systemd_pod_path(&s.victim.uid, &s.victim.cid),
        &s.script(&mark),
    );
    let (exec, connect) = s.events(&tracer, &mark);
    for e in [&exec, &connect] {
        s.assert_not_victim(e);
        let w = &e["executor"]["workload"];
        assert_eq!(w["kind"], "container", "{e:#}");
        assert_eq!(w["container"]["id"], outer_id.as_str(), "{e:#}");
        assert_eq!(w["container"]["runtime"], "podman", "{e:#}");
        assert_eq!(w["pod"], Value::Null, "{e:#}");
        s.assert_claims_victim(e);
    }
}

/// At the kubelet's real place, a cgroup with the victim's container id but
/// another pod UID (one the API does not know, and one of another pod that
/// does not hold that container) is not the victim, nor the other pod.
#[test]
fn right_container_id_with_wrong_pod_uid_does_not_resolve() {
    let s = Scene::new();
    let (other_uid, other_cid, other_ns) = (test_uuid(), test_container_id(), marker("other"));
    s.api.add_pod(pod_json(
        &s.node,
        &other_ns,
        &marker("opod"),
        &other_uid,
        "osa",
        &other_cid,
        "other:1",
    ));
    let tracer = s.tracer("", &["--kube-wait", "500"]);
    let unknown_uid = test_uuid();
    let cg_unknown = TestCgroup::new(&systemd_pod_path(&unknown_uid, &s.victim.cid));
    let cg_other = TestCgroup::new(&systemd_pod_path(&other_uid, &s.victim.cid));
    for (cg, pod_uid) in [(&cg_unknown, &unknown_uid), (&cg_other, &other_uid)] {
        let mark = marker("wronguid");
        s.run_in(cg, &mark);
        let (exec, connect) = s.events(&tracer, &mark);
        for e in [&exec, &connect] {
            s.assert_not_victim(e);
            let w = &e["executor"]["workload"];
            // What the kubelet's path says, and nothing the API would add.
            assert_eq!(w["pod"]["uid"], pod_uid.as_str(), "{e:#}");
            assert_eq!(w["pod"]["name"], Value::Null, "{e:#}");
            assert_eq!(w["container"]["id"], s.victim.cid.as_str(), "{e:#}");
            assert!(!e["executor"].to_string().contains(&other_ns), "{e:#}");
            assert_eq!(e["executor"]["identity"]["status"], "partial", "{e:#}");
        }
    }
}

/// A cgroup naming only the victim's container id (no pod UID) is a container,
/// never the pod that container belongs to.
#[test]
fn container_id_alone_does_not_resolve_a_pod() {
    let s = Scene::new();
    let tracer = s.tracer("", &[]);
    let cg = TestCgroup::new(&format!("docker/{}", s.victim.cid));
    let mark = marker("bareid");
    s.run_in(&cg, &mark);
    let (exec, connect) = s.events(&tracer, &mark);
    for e in [&exec, &connect] {
        s.assert_not_victim(e);
        let w = &e["executor"]["workload"];
        assert_eq!(w["kind"], "container", "{e:#}");
        assert_eq!(w["container"]["id"], s.victim.cid.as_str(), "{e:#}");
        assert_eq!(w["container"]["runtime"], "docker", "{e:#}");
        assert_eq!(w["pod"], Value::Null, "{e:#}");
    }
}

/// A unit of a user manager is not the system unit of the same name: the
/// `systemd:id` entry matches only the system's, the
/// `systemd:user:UID:id:` entry only the user's.
#[test]
fn user_manager_units_are_not_system_units() {
    let s = Scene::new();
    let user = TestUser::new();
    let unit = format!("{}.service", marker("backup"));
    let regs = format!(
        "[[entry]]\nspiffe_id = \"spiffe://cluster.local/system-unit\"\nselectors = [\"systemd:id:{unit}\"]\n\
         [[entry]]\nspiffe_id = \"spiffe://cluster.local/user-unit\"\nselectors = [\"systemd:user:{}:id:{unit}\"]\n",
        user.uid
    );
    let tracer = s.tracer(&regs, &[]);
    let outer = TestCgroup::new(&user_manager(&user));
    let _below = Below(outer.path.clone());
    delegate(&outer, &user);
    let mark_user = marker("userunit");
    attack_as(
        &user,
        &outer,
        &format!("app.slice/{unit}"),
        &s.script(&mark_user),
    );
    let system = TestCgroup::new(&format!("system.slice/{unit}"));
    let mark_sys = marker("sysunit");
    s.run_in(&system, &mark_sys);

    let (exec, connect) = s.events(&tracer, &mark_user);
    for e in [&exec, &connect] {
        let id = &e["executor"]["identity"];
        assert_eq!(
            id["spiffe_ids"],
            serde_json::json!(["spiffe://cluster.local/user-unit"]),
            "{e:#}"
        );
        let sel: Vec<String> = serde_json::from_value(id["selectors"].clone()).unwrap();
        assert!(
            sel.contains(&format!("systemd:user:{}:id:{unit}", user.uid)),
            "{sel:?}"
        );
        assert!(!sel.contains(&format!("systemd:id:{unit}")), "{sel:?}");
        assert!(
            sel.contains(&format!("systemd:id:user@{}.service", user.uid)),
            "{sel:?}"
        );
        let w = &e["executor"]["workload"];
        assert_eq!(w["unit"], format!("user@{}.service", user.uid), "{e:#}");
        assert_eq!(w["claim"]["unit"], unit.as_str(), "{e:#}");
    }
    let (exec, connect) = s.events(&tracer, &mark_sys);
    for e in [&exec, &connect] {
        assert_eq!(
            e["executor"]["identity"]["spiffe_ids"],
            serde_json::json!(["spiffe://cluster.local/system-unit"]),
            "{e:#}"
        );
        assert_eq!(e["executor"]["workload"]["unit"], unit.as_str());
    }
}

/// Kubernetes nested in a container (kind): its pods are claims of the node
/// container, unless the operator names that kubepods root with
/// `--kubepods-root`; then they resolve.
#[test]
fn configured_kubepods_root_is_trusted_and_nothing_else() {
    let s = Scene::new();
    let node_ctr = test_container_id();
    let root =
        format!("/system.slice/docker-{node_ctr}.scope/kubelet.slice/kubelet-kubepods.slice");
    let plain = s.tracer("", &[]);
    let configured = s.tracer("", &["--kubepods-root", &root]);
    let u = s.victim.uid.replace('-', "_");
    let cg = TestCgroup::new(&format!(
        "{root}/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{u}.slice/cri-containerd-{}.scope",
        s.victim.cid
    ));
    let mark = marker("kind");
    s.run_in(&cg, &mark);
    let (exec, connect) = s.events(&plain, &mark);
    for e in [&exec, &connect] {
        s.assert_not_victim(e);
        assert_eq!(e["executor"]["workload"]["kind"], "container", "{e:#}");
        assert_eq!(
            e["executor"]["workload"]["container"]["id"],
            node_ctr.as_str()
        );
        s.assert_claims_victim(e);
    }
    let (exec, connect) = s.events(&configured, &mark);
    for e in [&exec, &connect] {
        let w = &e["executor"]["workload"];
        assert_eq!(w["pod"]["name"], s.victim.name.as_str(), "{e:#}");
        assert!(w.get("claim").is_none_or(Value::is_null), "{e:#}");
        assert_eq!(
            e["executor"]["identity"]["spiffe_ids"],
            serde_json::json!(["spiffe://cluster.local/victim"])
        );
    }
    drop(cg);
}
