//! A local stand-in for the Kubernetes API server, speaking just enough of it for
//! a node-scoped pod watch and the cluster-wide Services and EndpointSlices
//! watches: `GET /api/v1/pods`, `/api/v1/services` and
//! `/apis/discovery.k8s.io/v1/endpointslices` (list) and the same with
//! `watch=true` (a chunked stream of watch events). Tests add and delete
//! objects while the tracer watches, or stop the server to play an API outage.
use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use serde_json::{Value, json};

/// The resources served: (path, resource, list kind, list apiVersion).
const RESOURCES: [(&str, &str, &str, &str); 3] = [
    ("/api/v1/pods", "pods", "PodList", "v1"),
    ("/api/v1/services", "services", "ServiceList", "v1"),
    (
        "/apis/discovery.k8s.io/v1/endpointslices",
        "endpointslices",
        "EndpointSliceList",
        "discovery.k8s.io/v1",
    ),
];

#[derive(Default)]
struct State {
    /// Current objects by (resource, uid), with the resource version they
    /// were last changed at.
    objects: Vec<(&'static str, Value)>,
    /// (resourceVersion, resource, watch event) in order.
    log: Vec<(u64, &'static str, Value)>,
    rv: u64,
    watchers: Vec<(&'static str, mpsc::Sender<Value>)>,
    requests: Vec<String>,
}

pub struct FakeApi {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FakeApi {
    pub fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake API");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        listener.set_nonblocking(true).expect("nonblocking");
        thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (st, sp) = (st.clone(), sp.clone());
                        thread::spawn(move || serve(conn, st, sp));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeApi { port, state, stop }
    }

    /// A kubeconfig that points a client at this server.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{}\nusers:\n- name: fake\n  user:\n    token: test-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n",
            self.port
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    fn publish(&self, resource: &'static str, kind: &str, mut obj: Value) {
        let mut s = self.state.lock().expect("state");
        s.rv += 1;
        let rv = s.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let uid = obj["metadata"]["uid"].clone();
        s.objects
            .retain(|(r, o)| *r != resource || o["metadata"]["uid"] != uid);
        if kind != "DELETED" {
            s.objects.push((resource, obj.clone()));
        }
        let ev = json!({"type": kind, "object": obj});
        s.log.push((rv, resource, ev.clone()));
        s.watchers
            .retain(|(r, w)| *r != resource || w.send(ev.clone()).is_ok());
    }

    pub fn add_pod(&self, pod: Value) {
        self.publish("pods", "ADDED", pod);
    }

    pub fn delete_pod(&self, pod: Value) {
        self.publish("pods", "DELETED", pod);
    }

    /// Add (or, same uid, replace) a Service.
    pub fn add_service(&self, service: Value) {
        self.publish("services", "ADDED", service);
    }

    pub fn delete_service(&self, service: Value) {
        self.publish("services", "DELETED", service);
    }

    /// Add (or, same uid, replace) an EndpointSlice.
    pub fn add_endpoint_slice(&self, slice: Value) {
        self.publish("endpointslices", "ADDED", slice);
    }

    pub fn delete_endpoint_slice(&self, slice: Value) {
        self.publish("endpointslices", "DELETED", slice);
    }

    /// Request lines seen so far (to check the field selector).
    pub fn requests(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut conn: TcpStream, state: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    let _ = conn.set_nonblocking(false);
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // Skip headers.
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let target = request.split(' ').nth(1).unwrap_or("/").to_owned();
    if let Ok(mut s) = state.lock() {
        s.requests.push(target.clone());
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let Some(&(_, resource, list_kind, list_version)) = RESOURCES.iter().find(|(p, ..)| *p == path)
    else {
        let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}"#;
        let _ = write!(
            conn,
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    };
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_owned))
    };
    if param("watch").as_deref() == Some("true") || param("watch").as_deref() == Some("1") {
        let since: u64 = param("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (tx, rx) = mpsc::channel();
        let backlog: Vec<Value> = {
            let Ok(mut s) = state.lock() else { return };
            s.watchers.push((resource, tx));
            s.log
                .iter()
                .filter(|(rv, r, _)| *rv > since && *r == resource)
                .map(|(_, _, e)| e.clone())
                .collect()
        };
        if write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .is_err()
        {
            return;
        }
        let send = |conn: &mut TcpStream, ev: &Value| -> bool {
            let line = format!("{ev}\n");
            write!(conn, "{:x}\r\n{line}\r\n", line.len()).is_ok() && conn.flush().is_ok()
        };
        for ev in &backlog {
            if !send(&mut conn, ev) {
                return;
            }
        }
        while !stop.load(Ordering::Relaxed) {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(ev) => {
                    if !send(&mut conn, &ev) {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        let _ = write!(conn, "0\r\n\r\n");
        return;
    }
    let body = {
        let Ok(s) = state.lock() else { return };
        let items: Vec<&Value> = s
            .objects
            .iter()
            .filter(|(r, _)| *r == resource)
            .map(|(_, o)| o)
            .collect();
        json!({
            "kind": list_kind,
            "apiVersion": list_version,
            "metadata": {"resourceVersion": s.rv.to_string()},
            "items": items,
        })
        .to_string()
    };
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A Pod object as the API server returns it, running on `node`.
pub fn pod_json(
    node: &str,
    namespace: &str,
    name: &str,
    uid: &str,
    service_account: &str,
    container_id: &str,
    image: &str,
) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": "1",
            "creationTimestamp": "2026-11-23T20:00:00Z",
            "labels": {"app": name, "pod-template-hash": "5d9f8b7c6"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{name}-5d9f8b7c6"), "uid": "0a1b2c3d-0000-4000-8000-000000000001",
                "controller": true, "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "nodeName": node,
            "serviceAccountName": service_account,
            "containers": [{"name": "app", "image": image}]
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.7",
            "containerStatuses": [{
                "name": "app",
                "image": image,
                "imageID": format!("{image}@sha256:0000000000000000000000000000000000000000000000000000000000000000"),
                "containerID": format!("containerd://{container_id}"),
                "ready": true,
                "restartCount": 0,
                "started": true,
                "state": {"running": {"startedAt": "2026-11-23T20:00:01Z"}}
            }]
        }
    })
}

/// A Service object with a ClusterIP (`None`: headless) and TCP ports
/// `(name, port)`.
pub fn service_json(namespace: &str, name: &str, cluster_ip: &str, ports: &[(&str, u16)]) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": format!("svc-{namespace}-{name}"),
            "resourceVersion": "1",
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ports": ports.iter().map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP"})).collect::<Vec<_>>(),
        }
    })
}

/// An EndpointSlice of Service `service` (as the EndpointSlice controller
/// writes it), one endpoint per `(ip, pod name, pod uid, node name)`, with TCP
/// ports `(name, port)`.
pub fn endpoint_slice_json(
    namespace: &str,
    name: &str,
    service: &str,
    endpoints: &[(&str, &str, &str, &str)],
    ports: &[(&str, u16)],
) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": format!("eps-{namespace}-{name}"),
            "resourceVersion": "1",
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
        },
        "addressType": "IPv4",
        "endpoints": endpoints.iter().map(|(ip, pod, uid, node)| json!({
            "addresses": [ip],
            "conditions": {"ready": true},
            "nodeName": node,
            "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod, "uid": uid},
        })).collect::<Vec<_>>(),
        "ports": ports.iter().map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP"})).collect::<Vec<_>>(),
    })
}
