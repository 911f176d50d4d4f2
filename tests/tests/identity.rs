//! Workload identity on the live kernel: processes in cgroups shaped like real
//! Kubernetes (systemd and cgroupfs drivers) and systemd layouts exec; a local
//! stand-in for the Kubernetes API supplies pod metadata; events must carry the
//! workload and SPIFFE IDs.
use std::{process::Command, time::Duration};

use serde_json::Value;
use tracer_tests::{
    TestCgroup, TestUser, Tracer, argv, exec_storm, http_get, is_exec,
    kubeapi::{FakeApi, pod_json},
    marker, metric, scratch_dir, test_container_id, test_uuid,
};

/// Run `/bin/true <mark>` inside `cg`, as `user` when given.
fn run_in(cg: &TestCgroup, user: Option<&TestUser>, mark: &str) {
    let drop_privs = user
        .map(|u| {
            format!(
                "setpriv --reuid={} --regid={} --clear-groups ",
                u.uid, u.gid
            )
        })
        .unwrap_or_default();
    let script = format!("{}exec {drop_privs}/bin/true {mark}", cg.enter());
    let st = Command::new("sh").args(["-c", &script]).status().unwrap();
    assert!(st.success(), "{script}");
}

fn exec_of<'a>(events: &'a [Value], mark: &str) -> &'a Value {
    events
        .iter()
        .find(|e| is_exec(e) && argv(e) == ["/bin/true", mark])
        .unwrap_or_else(|| panic!("no exec event for {mark}"))
}

fn systemd_pod_cgroup(qos: Option<&str>, uid: &str, container: &str) -> String {
    let u = uid.replace('-', "_");
    match qos {
        Some(q) => format!(
            "kubepods.slice/kubepods-{q}.slice/kubepods-{q}-pod{u}.slice/cri-containerd-{container}.scope"
        ),
        None => format!("kubepods.slice/kubepods-pod{u}.slice/cri-containerd-{container}.scope"),
    }
}

#[test]
fn pods_get_workload_and_spiffe_ids() {
    let api = FakeApi::start();
    let node = marker("node");
    let dir = scratch_dir();
    let (uid_a, uid_b, uid_c) = (test_uuid(), test_uuid(), test_uuid());
    let (cid_a, cid_b, cid_c) = (
        test_container_id(),
        test_container_id(),
        test_container_id(),
    );
    let web = marker("web");
    let mut pod_a = pod_json(
        &node,
        "shop",
        &web,
        &uid_a,
        "web",
        &cid_a,
        "registry:5000/shop/web:1.4",
    );
    // As the ServiceAccount admission plugin leaves it: the token projected
    // into `app`. The other pods opted out (automountServiceAccountToken: false).
    pod_a["spec"]["volumes"] = serde_json::json!([{"name": "kube-api-access-9xk2p",
        "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}]);
    pod_a["spec"]["containers"][0]["volumeMounts"] = serde_json::json!([{"name": "kube-api-access-9xk2p",
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]);
    api.add_pod(pod_a);
    let mut pod_b = pod_json(
        &node,
        "shop",
        &marker("batch"),
        &uid_b,
        "batch",
        &cid_b,
        "busybox:1.36",
    );
    // A CronJob's Job: named for its scheduled minute (29924400 is the
    // minute of the pod's creationTimestamp, 2026-11-23T20:00:00Z).
    pod_b["metadata"]["ownerReferences"] = serde_json::json!([{"apiVersion": "batch/v1",
        "kind": "Job", "name": "nightly-29924400", "uid": "0a1b2c3d-0000-4000-8000-000000000002",
        "controller": true}]);
    api.add_pod(pod_b);
    api.add_pod(pod_json(
        &node,
        "ops",
        &marker("agent"),
        &uid_c,
        "agent",
        &cid_c,
        "agent:2",
    ));
    let regs = dir.join("registrations.toml");
    std::fs::write(
        &regs,
        format!(
            "[[entry]]\nspiffe_id = \"spiffe://cluster.local/custom/web\"\nselectors = [\"k8s:ns:shop\", \"k8s:sa:web\", \"k8s:pod-label:app:{web}\"]\n"
        ),
    )
    .unwrap();
    let kubeconfig = api.kubeconfig(&dir);
    let tracer = Tracer::start_with_env(
        &[
            "--node-name",
            &node,
            "--registrations",
            regs.to_str().unwrap(),
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let user = TestUser::new();
    // Two pods of the systemd driver (besteffort and guaranteed) and one of the
    // cgroupfs driver; all run the same binary as the same uid.
    let cg_a = TestCgroup::new(&systemd_pod_cgroup(Some("besteffort"), &uid_a, &cid_a));
    let cg_b = TestCgroup::new(&systemd_pod_cgroup(None, &uid_b, &cid_b));
    let cg_c = TestCgroup::new(&format!("kubepods/burstable/pod{uid_c}/{cid_c}"));
    let mark = marker("pods");
    let (ma, mb, mc) = (
        format!("{mark}-a"),
        format!("{mark}-b"),
        format!("{mark}-c"),
    );
    // Give the watch a moment to list the pods (events would wait for it anyway).
    std::thread::sleep(Duration::from_millis(300));
    run_in(&cg_a, Some(&user), &ma);
    run_in(&cg_b, Some(&user), &mb);
    run_in(&cg_c, Some(&user), &mc);
    tracer.wait_for(3, |e| {
        is_exec(e) && argv(e).get(1).is_some_and(|a| a.starts_with(&mark))
    });
    let events = tracer.events();
    let (a, b, c) = (
        exec_of(&events, &ma),
        exec_of(&events, &mb),
        exec_of(&events, &mc),
    );

    for e in [a, b, c] {
        assert_eq!(e["executor"]["user"]["uid"], user.uid);
        assert_eq!(e["executor"]["workload"]["kind"], "pod");
        assert_eq!(e["executor"]["identity"]["status"], "resolved", "{e:#}");
    }
    assert_eq!(
        a["executor"]["credentials"]["service_account_token"], true,
        "{a:#}"
    );
    assert_eq!(
        b["executor"]["credentials"]["service_account_token"], false,
        "{b:#}"
    );
    let wa = &a["executor"]["workload"];
    assert_eq!(wa["pod"]["uid"], uid_a.as_str());
    assert_eq!(wa["pod"]["name"], web.as_str());
    assert_eq!(wa["pod"]["namespace"], "shop");
    assert_eq!(wa["pod"]["service_account"], "web");
    assert_eq!(wa["pod"]["labels"]["app"], web.as_str());
    assert_eq!(wa["pod"]["owner"]["kind"], "Deployment");
    assert_eq!(wa["pod"]["owner"]["name"], web.as_str());
    assert_eq!(
        wa["pod"]["owner"]["via"],
        format!("ReplicaSet/{web}-5d9f8b7c6")
    );
    let ob = &b["executor"]["workload"]["pod"]["owner"];
    assert_eq!(ob["kind"], "CronJob", "{b:#}");
    assert_eq!(ob["name"], "nightly");
    assert_eq!(ob["via"], "Job/nightly-29924400");
    assert_eq!(wa["container"]["id"], cid_a.as_str());
    assert_eq!(wa["container"]["runtime"], "containerd");
    assert_eq!(wa["container"]["name"], "app");
    assert_eq!(wa["container"]["image"], "registry:5000/shop/web:1.4");
    // Registration entry wins for A; B and C get the default ns/sa IDs.
    assert_eq!(
        a["executor"]["identity"]["spiffe_ids"],
        serde_json::json!(["spiffe://cluster.local/custom/web"])
    );
    assert_eq!(
        b["executor"]["identity"]["spiffe_ids"],
        serde_json::json!(["spiffe://cluster.local/ns/shop/sa/batch"])
    );
    assert_eq!(
        b["executor"]["identity"]["source"],
        serde_json::json!(["default"])
    );
    assert_eq!(
        c["executor"]["identity"]["spiffe_ids"],
        serde_json::json!(["spiffe://cluster.local/ns/ops/sa/agent"])
    );
    assert_eq!(c["executor"]["workload"]["pod"]["uid"], uid_c.as_str());
    assert_eq!(c["executor"]["workload"]["container"]["id"], cid_c.as_str());
    // Same uid and binary, different pods: different SPIFFE IDs.
    assert_ne!(
        a["executor"]["identity"]["spiffe_ids"],
        b["executor"]["identity"]["spiffe_ids"]
    );
    let sel: Vec<String> =
        serde_json::from_value(a["executor"]["identity"]["selectors"].clone()).unwrap();
    assert!(sel.contains(&"k8s:ns:shop".to_owned()), "{sel:?}");
    assert!(sel.contains(&"k8s:sa:web".to_owned()), "{sel:?}");
    // The watch is node-scoped.
    let reqs = api.requests();
    assert!(
        reqs.iter()
            .any(|r| r.contains(&format!("fieldSelector=spec.nodeName%3D{node}"))),
        "{reqs:?}"
    );
    drop((cg_a, cg_b, cg_c));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn event_waits_briefly_for_pod_metadata_and_deleted_pods_stay_resolvable() {
    let api = FakeApi::start();
    let node = marker("node");
    let dir = scratch_dir();
    let kubeconfig = api.kubeconfig(&dir);
    let tracer = Tracer::start_with_env(
        &["--node-name", &node],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let (uid, cid) = (test_uuid(), test_container_id());
    let cg = TestCgroup::new(&systemd_pod_cgroup(Some("burstable"), &uid, &cid));
    let job = marker("job");
    let pod = pod_json(&node, "batch", &job, &uid, "runner", &cid, "job:1");
    // The process runs before the API has told us about its pod...
    let early = marker("early");
    run_in(&cg, None, &early);
    // ...which arrives shortly after: the event waits for it (bounded).
    std::thread::sleep(Duration::from_millis(300));
    api.add_pod(pod.clone());
    let e = tracer
        .wait_for(1, |e| {
            is_exec(e) && argv(e) == ["/bin/true", early.as_str()]
        })
        .remove(0);
    assert_eq!(e["executor"]["identity"]["status"], "resolved", "{e:#}");
    assert_eq!(e["executor"]["workload"]["pod"]["name"], job.as_str());
    // The Job's pod is deleted; its last actions are still attributed.
    api.delete_pod(pod);
    std::thread::sleep(Duration::from_millis(300));
    let late = marker("late");
    run_in(&cg, None, &late);
    let e = tracer
        .wait_for(1, |e| is_exec(e) && argv(e) == ["/bin/true", late.as_str()])
        .remove(0);
    assert_eq!(e["executor"]["workload"]["pod"]["name"], job.as_str());
    assert_eq!(
        e["executor"]["identity"]["spiffe_ids"],
        serde_json::json!([format!("spiffe://cluster.local/ns/batch/sa/runner")])
    );
    drop(cg);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn api_down_gives_partial_identity_and_the_tracer_keeps_running() {
    // A server that is gone: connections are refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = scratch_dir();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: x\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: x\n    user: x\ncurrent-context: x\n"),
    )
    .unwrap();
    let tracer = Tracer::start_with_env(
        &["--node-name", "down-node", "--kube-wait", "500"],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let (uid, cid) = (test_uuid(), test_container_id());
    let cg = TestCgroup::new(&systemd_pod_cgroup(Some("besteffort"), &uid, &cid));
    let first = marker("down1");
    run_in(&cg, None, &first);
    let e = tracer
        .wait_for(1, |e| {
            is_exec(e) && argv(e) == ["/bin/true", first.as_str()]
        })
        .remove(0);
    let id = &e["executor"]["identity"];
    assert_eq!(id["status"], "partial", "{e:#}");
    assert_eq!(e["executor"]["workload"]["pod"]["uid"], uid.as_str());
    assert_eq!(e["executor"]["workload"]["pod"]["name"], Value::Null);
    assert_eq!(e["executor"]["workload"]["container"]["id"], cid.as_str());
    assert_eq!(id["spiffe_ids"], serde_json::json!([]));
    // Still running and still emitting.
    let second = marker("down2");
    run_in(&cg, None, &second);
    tracer.wait_for(1, |e| {
        is_exec(e) && argv(e) == ["/bin/true", second.as_str()]
    });
    assert!(
        tracer.stderr_log().contains("pod watch failed"),
        "{}",
        tracer.stderr_log()
    );
    assert!(tracer.stop().success());
    drop(cg);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn systemd_service_gets_unit_and_registered_id() {
    let dir = scratch_dir();
    let unit = format!("{}.service", marker("backup"));
    let user = TestUser::new();
    let regs = dir.join("registrations.toml");
    std::fs::write(
        &regs,
        format!(
            "[[entry]]\nspiffe_id = \"spiffe://cluster.local/host/backup\"\nselectors = [\"systemd:id:{unit}\", \"unix:user:{}\"]\n",
            user.name
        ),
    )
    .unwrap();
    let tracer = Tracer::start(&["--registrations", regs.to_str().unwrap()]);
    let cg = TestCgroup::new(&format!("system.slice/{unit}"));
    let mark = marker("svc");
    run_in(&cg, Some(&user), &mark);
    // The same service as root does not match the entry (it needs the user too).
    let mark_root = marker("svcroot");
    run_in(&cg, None, &mark_root);
    let e = tracer
        .wait_for(1, |e| is_exec(e) && argv(e) == ["/bin/true", mark.as_str()])
        .remove(0);
    let w = &e["executor"]["workload"];
    assert_eq!(w["kind"], "service");
    assert_eq!(w["unit"], unit.as_str());
    assert_eq!(w["pod"], Value::Null);
    assert_eq!(
        e["executor"]["identity"]["spiffe_ids"],
        serde_json::json!(["spiffe://cluster.local/host/backup"])
    );
    assert_eq!(e["executor"]["identity"]["status"], "resolved");
    let r = tracer
        .wait_for(1, |e| {
            is_exec(e) && argv(e) == ["/bin/true", mark_root.as_str()]
        })
        .remove(0);
    assert_eq!(
        r["executor"]["identity"]["spiffe_ids"],
        serde_json::json!([])
    );
    drop(cg);
    let _ = std::fs::remove_dir_all(dir);
}

/// A shell in the host cgroup moves into a pod's cgroup and runs a command there
/// (what `kubectl exec` amounts to): the command is the pod's; its lineage shows
/// where each ancestor ran.
#[test]
fn lineage_entries_carry_their_own_workload() {
    let tracer = Tracer::start(&[]);
    let (uid, cid) = (test_uuid(), test_container_id());
    let cg = TestCgroup::new(&systemd_pod_cgroup(Some("besteffort"), &uid, &cid));
    let mark = marker("lineage-wl");
    let script = format!("{}/bin/true {mark}; true", cg.enter());
    assert!(
        Command::new("sh")
            .args(["-c", &script])
            .status()
            .unwrap()
            .success()
    );
    let e = tracer
        .wait_for(1, |e| is_exec(e) && argv(e) == ["/bin/true", mark.as_str()])
        .remove(0);
    assert_eq!(e["executor"]["workload"]["kind"], "pod");
    assert_eq!(e["executor"]["workload"]["pod"]["uid"], uid.as_str());
    // No API configured: the cgroup gave the pod UID and container id, no more.
    assert_eq!(e["executor"]["identity"]["status"], "partial");
    let lineage = e["lineage"].as_array().unwrap();
    // The shell moved into the pod before forking: same workload, nothing repeated.
    assert!(lineage[0].get("workload").is_none(), "{:#}", lineage[0]);
    // This test process runs outside the pod: its own workload is shown.
    assert_eq!(lineage[1]["pid"], std::process::id());
    assert_ne!(lineage[1]["workload"]["kind"], "pod", "{:#}", lineage[1]);
    assert!(lineage[1]["identity"]["status"].is_string());
    drop(cg);
}

/// Issue 10: a pod with ~1 MB of labels. Its exec events carry the labels cut
/// to the per-pod cap (16 KiB, first in key order) and say so
/// (`labels_truncated`); 60 distinct binaries and a few updates of the pod
/// (identities remembered per binary and per pod version) cost the tracer a
/// bounded amount of memory; events keep flowing.
#[test]
fn huge_pod_labels_are_capped_flagged_and_cost_bounded_memory() {
    let api = FakeApi::start();
    let node = marker("node");
    let dir = scratch_dir();
    let (uid, cid) = (test_uuid(), test_container_id());
    let name = marker("fat");
    let mut pod = pod_json(&node, "shop", &name, &uid, "web", &cid, "web:1");
    let labels = &mut pod["metadata"]["labels"];
    for i in 0..2000 {
        labels[format!("k{i:05}")] = Value::from("v".repeat(500));
    }
    let pod_bytes = pod.to_string().len();
    assert!(pod_bytes > 1_000_000, "{pod_bytes}");
    api.add_pod(pod.clone());
    let kubeconfig = api.kubeconfig(&dir);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let tracer = Tracer::start_with_env(
        &["--node-name", &node, "--metrics-addr", &addr],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let cg = TestCgroup::new(&systemd_pod_cgroup(Some("besteffort"), &uid, &cid));
    // 60 distinct binaries: each is its own remembered identity.
    let bins: Vec<String> = (0..60)
        .map(|i| {
            let p = dir.join(format!("tool{i}"));
            std::fs::copy("/bin/true", &p).unwrap();
            p.display().to_string()
        })
        .collect();
    let run = |bins: &[String], mark: &str| {
        let script = format!(
            "{}for b in {}; do $b {mark}; done",
            cg.enter(),
            bins.join(" ")
        );
        let st = Command::new("sh").args(["-c", &script]).status().unwrap();
        assert!(st.success());
    };
    let ours = |mark: &str| {
        let mark = mark.to_owned();
        move |e: &Value| is_exec(e) && argv(e).get(1) == Some(&mark)
    };
    // Warm up: the pod is listed and its identity resolved once.
    let warm = marker("warm");
    run(&bins[..1], &warm);
    tracer.wait_for(1, ours(&warm));
    let before = tracer.rss_kib();
    let mut found = Vec::new();
    for round in 0..5 {
        // A new version of the pod (same labels, as a status update would be).
        pod["metadata"]["resourceVersion"] = Value::from(format!("{}", round + 2));
        api.add_pod(pod.clone());
        std::thread::sleep(Duration::from_millis(200));
        let mark = marker("fat-run");
        run(&bins, &mark);
        found.extend(tracer.wait_for(bins.len(), ours(&mark)));
    }
    let after = tracer.rss_kib();
    let growth = after.saturating_sub(before);
    let line = found.iter().map(|e| e.to_string().len()).max().unwrap_or(0);
    eprintln!(
        "fat pod: RSS {before} -> {after} KiB (+{growth}); {} execs, longest line {line} B",
        found.len()
    );
    // Uncapped, each remembered identity held its own ~1 MB copy (two, with
    // the selectors): hundreds of MiB. Capped and shared: a few MiB.
    assert!(growth < 32 * 1024, "RSS grew {growth} KiB");
    assert!(line < 100_000, "exec lines stay small: {line}");
    for e in &found {
        let p = &e["executor"]["workload"]["pod"];
        assert_eq!(p["uid"], uid.as_str(), "{p}");
        assert_eq!(p["labels_truncated"], true, "{}", p["name"]);
        let l = p["labels"].as_object().expect("labels");
        let bytes: usize = l
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        assert!(
            bytes <= 16 * 1024 && l.len() > 10,
            "{bytes} B in {}",
            l.len()
        );
        // First in key order: `app` and the lowest `k…` keys.
        assert_eq!(l.get("app").and_then(Value::as_str), Some(name.as_str()));
        assert!(
            l.contains_key("k00000"),
            "{:?}",
            l.keys().take(3).collect::<Vec<_>>()
        );
        assert_eq!(e["executor"]["identity"]["status"], "resolved");
    }
    // Events keep flowing, inside the pod and out.
    let last = marker("after");
    run(&bins[..1], &last);
    exec_storm(5, &last);
    tracer.wait_for(6, ours(&last));
    // Counted for the operator (metrics are refreshed once a second).
    std::thread::sleep(Duration::from_millis(1200));
    let (_, text) = http_get(port, "/metrics");
    assert!(
        metric(&text, "tracer_pod_labels_truncated_total") >= 6,
        "{text}"
    );
    let cache = metric(&text, "tracer_pod_cache_bytes");
    assert!(cache > 16 * 1024 && cache < 64 * 1024, "{cache}");
    assert!(metric(&text, "tracer_identity_memo_bytes") > 0, "{text}");
    drop(cg);
    let _ = std::fs::remove_dir_all(dir);
}
