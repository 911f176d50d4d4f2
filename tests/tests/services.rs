//! Connect destinations named after Kubernetes Services and pods, on the live
//! kernel: the tracer watches Services and EndpointSlices of a local
//! stand-in API server; a process in a pod cgroup connects to a Service's
//! ClusterIP (a loopback address with a listener) and to pod IPs (loopback
//! addresses nobody listens on: refused, but the connect event goes out).
use std::{
    net::TcpListener,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::{
    TestCgroup, Tracer, free_port, http_get,
    kubeapi::{FakeApi, endpoint_slice_json, pod_json, service_json},
    marker, metric, run_ok, scratch_dir, test_container_id, test_uuid, tracer_bin,
};

fn pod_cgroup(uid: &str, container: &str) -> String {
    let u = uid.replace('-', "_");
    format!(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/cri-containerd-{container}.scope"
    )
}

/// A loopback network of our own (127.N.M.0/24), so our connects are told
/// apart from anything else on the host by their destination.
fn loopback_net(salt: u32) -> String {
    let pid = std::process::id();
    format!("127.{}.{}", 100 + (pid + salt) % 100, (pid / 100) % 250)
}

/// Connect to ip:port from inside `cg` (bash's /dev/tcp); refused is fine.
fn connect_in(cg: &TestCgroup, ip: &str, port: u16) {
    let script = format!(
        "{}exec timeout 5 bash -c 'exec 3<>/dev/tcp/{ip}/{port}' 2>/dev/null; true",
        cg.enter()
    );
    let _ = Command::new("sh").args(["-c", &script]).status();
}

fn connect_to<'a>(events: &'a [Value], ip: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["kind"] == "connect" && e["action"]["destination"]["ip"] == ip)
}

/// Wait until the metrics say the three watches (pods, Services,
/// EndpointSlices) are `state` (refreshed once per --loss-interval).
fn wait_for_watch_state(port: u16, state: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = http_get(port, "/metrics");
        if metric(&text, "tracer_kube_watch_state ") == state
            && metric(&text, "tracer_kube_service_watch_state") == state
            && metric(&text, "tracer_kube_endpointslice_watch_state") == state
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "watch state never {state}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn connects_to_a_service_ip_and_to_pod_ips_are_named() {
    let api = FakeApi::start();
    let node = marker("node");
    let dir = scratch_dir();
    let net = loopback_net(0);
    // The Service's ClusterIP, with a listener: the connect succeeds.
    let cluster_ip = format!("{net}.7");
    let listener = TcpListener::bind((cluster_ip.as_str(), 0)).expect("bind ClusterIP");
    let svc_port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            drop(c);
        }
    });
    let (local_ip, remote_ip) = (format!("{net}.21"), format!("{net}.22"));

    // The client: payments/api, on this node. The server pods: shop/cart-0 on
    // this node (in the pod cache: its service account is known), shop/cart-1
    // elsewhere (only the EndpointSlice names it).
    let (uid_c, cid_c) = (test_uuid(), test_container_id());
    let (uid_s, uid_r) = (test_uuid(), test_uuid());
    let api_pod = marker("api");
    api.add_pod(pod_json(
        &node, "payments", &api_pod, &uid_c, "api", &cid_c, "api:1",
    ));
    api.add_pod(pod_json(
        &node,
        "shop",
        "cart-0",
        &uid_s,
        "cart",
        &test_container_id(),
        "cart:1",
    ));
    // Listed before the tracer starts (the watch's list), the slice after (its watch).
    let svc = service_json("shop", "cart", &cluster_ip, &[("https", svc_port)]);
    api.add_service(svc.clone());
    let kubeconfig = api.kubeconfig(&dir);
    let metrics = free_port();
    let addr = format!("127.0.0.1:{metrics}");
    let tracer = Tracer::start_with_env(
        &[
            "--node-name",
            &node,
            "--metrics-addr",
            &addr,
            "--loss-interval",
            "200",
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let slice = endpoint_slice_json(
        "shop",
        "cart-x7k2p",
        "cart",
        &[
            (&local_ip, "cart-0", &uid_s, &node),
            (&remote_ip, "cart-1", &uid_r, "another-node"),
        ],
        &[("https", 8443)],
    );
    api.add_endpoint_slice(slice.clone());
    let text = wait_for_watch_state(metrics, 2);
    assert!(metric(&text, "tracer_service_index_entries") >= 1, "{text}");
    assert!(metric(&text, "tracer_service_index_bytes") > 0, "{text}");
    // The slice came by the watch after the list: wait until its pods are named.
    let cg = TestCgroup::new(&pod_cgroup(&uid_c, &cid_c));
    let deadline = Instant::now() + Duration::from_secs(20);
    let local = loop {
        connect_in(&cg, &local_ip, 8443);
        let events = tracer.events();
        if let Some(e) =
            connect_to(&events, &local_ip).filter(|e| e["action"]["destination"]["pod"].is_object())
        {
            break e.clone();
        }
        assert!(Instant::now() < deadline, "pod IP never named");
        std::thread::sleep(Duration::from_millis(200));
    };
    connect_in(&cg, &cluster_ip, svc_port);
    connect_in(&cg, &remote_ip, 8443);
    let events = tracer.wait_for(2, |e| {
        e["kind"] == "connect"
            && (e["action"]["destination"]["ip"] == cluster_ip.as_str()
                || e["action"]["destination"]["ip"] == remote_ip.as_str())
    });
    let service = connect_to(&events, &cluster_ip).expect("connect to the ClusterIP");
    let remote = connect_to(&events, &remote_ip).expect("connect to the remote pod");

    // "payments/api (spiffe://...) connected to shop/cart".
    let ex = &service["executor"];
    assert_eq!(
        ex["workload"]["pod"]["namespace"], "payments",
        "{service:#}"
    );
    assert_eq!(ex["workload"]["pod"]["name"], api_pod.as_str());
    assert_eq!(
        ex["identity"]["spiffe_ids"],
        serde_json::json!(["spiffe://cluster.local/ns/payments/sa/api"])
    );
    let d = &service["action"]["destination"];
    assert_eq!(d["port"], svc_port);
    assert_eq!(service["action"]["outcome"], "success", "{service:#}");
    assert_eq!(
        d["service"],
        serde_json::json!({"namespace": "shop", "name": "cart", "port_name": "https"})
    );
    assert!(d.get("pod").is_none(), "{d}");
    // A pod on this node: with its SPIFFE ID.
    assert_eq!(
        local["action"]["destination"]["pod"],
        serde_json::json!({"namespace": "shop", "name": "cart-0",
            "spiffe_id": "spiffe://cluster.local/ns/shop/sa/cart"})
    );
    assert!(local["action"]["destination"].get("service").is_none());
    // A pod elsewhere: named, but its service account is not known here.
    assert_eq!(
        remote["action"]["destination"]["pod"],
        serde_json::json!({"namespace": "shop", "name": "cart-1"})
    );

    // `tracer tail --dest-service`: only the connect to the Service.
    let out = run_ok(
        Command::new(tracer_bin()).args([
            "tail",
            "--file",
            tracer.output.to_str().unwrap(),
            "--from-start",
            "--dest-service",
            "shop/cart",
            "--count",
            "1",
        ]),
        Duration::from_secs(20),
    );
    assert!(
        out.contains("-> shop/cart") && out.contains(&cluster_ip),
        "{out}"
    );
    let out = run_ok(
        Command::new(tracer_bin()).args([
            "tail",
            "--file",
            tracer.output.to_str().unwrap(),
            "--from-start",
            "--dest-service",
            "shop/*",
            "--json",
            "--count",
            "1",
        ]),
        Duration::from_secs(20),
    );
    // Loss records pass every filter (what was lost could have matched); the
    // one connect is the Service's.
    let connects: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON lines"))
        .filter(|v| v["kind"] == "connect")
        .collect();
    assert_eq!(connects.len(), 1, "{out}");
    assert_eq!(
        connects[0]["action"]["destination"]["service"]["name"],
        "cart"
    );

    // The Service is deleted and its IP goes to another: named after the new one.
    api.delete_service(svc);
    api.add_service(service_json(
        "web",
        "front",
        &cluster_ip,
        &[("http", svc_port)],
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        connect_in(&cg, &cluster_ip, svc_port);
        let events = tracer.events();
        let renamed = events.iter().any(|e| {
            e["kind"] == "connect"
                && e["action"]["destination"]["ip"] == cluster_ip.as_str()
                && e["action"]["destination"]["service"]["name"] == "front"
        });
        if renamed {
            break;
        }
        assert!(Instant::now() < deadline, "reused ClusterIP never renamed");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Our connects, named, follow docs/event.schema.json (only ours: the
    // file holds the whole host's events).
    let ours: String = tracer
        .events()
        .iter()
        .filter(|e| {
            e["kind"] == "connect"
                && e["action"]["destination"]["ip"]
                    .as_str()
                    .is_some_and(|ip| ip.starts_with(&format!("{net}.")))
        })
        .map(|e| format!("{e}\n"))
        .collect();
    assert!(ours.lines().count() >= 4, "{ours}");
    let checked = dir.join("ours.jsonl");
    std::fs::write(&checked, ours).unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    run_ok(
        Command::new("python3")
            .arg(repo.join("tests/schema_check.py"))
            .arg(repo.join("docs/event.schema.json"))
            .arg(&checked),
        Duration::from_secs(120),
    );
    drop(cg);
    drop(tracer);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn api_away_connects_still_flow_unnamed_and_the_state_shows() {
    // A server that is gone: connections are refused.
    let port = free_port();
    let dir = scratch_dir();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: x\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: x\n    user: x\ncurrent-context: x\n"),
    )
    .unwrap();
    let metrics = free_port();
    let addr = format!("127.0.0.1:{metrics}");
    let tracer = Tracer::start_with_env(
        &[
            "--node-name",
            "down-node",
            "--metrics-addr",
            &addr,
            "--loss-interval",
            "200",
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let ip = format!("{}.9", loopback_net(7));
    let _ = std::net::TcpStream::connect_timeout(
        &format!("{ip}:443").parse().unwrap(),
        Duration::from_secs(2),
    );
    let e = tracer
        .wait_for(1, |e| {
            e["kind"] == "connect" && e["action"]["destination"]["ip"] == ip.as_str()
        })
        .remove(0);
    let d = &e["action"]["destination"];
    assert!(d.get("service").is_none() && d.get("pod").is_none(), "{d}");
    let text = wait_for_watch_state(metrics, 3);
    assert!(
        metric(&text, "tracer_kube_service_watch_errors") > 0,
        "{text}"
    );
    assert!(
        tracer.stderr_log().contains("kubernetes watch failed"),
        "{}",
        tracer.stderr_log()
    );
    drop(tracer);
    let _ = std::fs::remove_dir_all(dir);
}

/// `--no-service-watch`: the pod watch runs, Services are not asked for.
#[test]
fn the_watch_can_be_turned_off() {
    let api = FakeApi::start();
    let dir = scratch_dir();
    let kubeconfig = api.kubeconfig(&dir);
    let metrics = free_port();
    let addr = format!("127.0.0.1:{metrics}");
    let tracer = Tracer::start_with_env(
        &[
            "--node-name",
            &marker("node"),
            "--no-service-watch",
            "--metrics-addr",
            &addr,
            "--loss-interval",
            "200",
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !api.requests().iter().any(|r| r.starts_with("/api/v1/pods")) {
        assert!(Instant::now() < deadline, "{:?}", api.requests());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, text) = http_get(metrics, "/metrics");
    assert_eq!(
        metric(&text, "tracer_kube_service_watch_state"),
        0,
        "{text}"
    );
    let reqs = api.requests();
    assert!(
        !reqs
            .iter()
            .any(|r| r.contains("services") || r.contains("endpointslices")),
        "{reqs:?}"
    );
    drop(tracer);
    let _ = std::fs::remove_dir_all(dir);
}
