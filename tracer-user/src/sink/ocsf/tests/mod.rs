use std::sync::Arc;

use serde_json::{Value, json};

use self::fixtures::*;
use crate::{
    event::{Action, Cgroup, FileId, Outcome, Workload},
    identity::workload::WorkloadKind,
};

mod fixtures;
mod golden;
mod views;

/// The record as JSON, to look into.
fn event_to_ocsf(ev: &crate::event::Event) -> Value {
    serde_json::to_value(super::event_to_ocsf(ev)).unwrap()
}

fn loss_to_ocsf(l: &crate::event::LossRecord) -> Value {
    serde_json::to_value(super::loss_to_ocsf(l)).unwrap()
}

fn assert_type(v: &Value, class_uid: u64, activity_id: u64) {
    assert_eq!(v["class_uid"], class_uid, "{v}");
    assert_eq!(v["activity_id"], activity_id, "{v}");
    assert_eq!(v["type_uid"], class_uid * 100 + activity_id, "{v}");
}

/// The executed file's SHA-256 goes to `process.file.hashes` (Fingerprint,
/// algorithm_id 3) of the image that has it, and nowhere when not hashed.
#[test]
fn executed_file_hash_is_a_fingerprint() {
    use crate::filehash::{FileVersion, HashState};
    let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let v = FileVersion {
        major: 8,
        minor: 1,
        ino: 42,
        size: 3,
        ctime_sec: 1,
        ctime_nsec: 0,
    };
    let cases = [
        (HashState::Done(sha.into()), Some(sha)),
        (HashState::OverBudget, None),
        (HashState::Pending, None),
    ];
    for (state, want) in cases {
        let mut ev = exec_in_pod();
        ev.executor.file = Some(FileId::new(v, &state));
        let o = event_to_ocsf(&ev);
        let hashes = &o["process"]["file"]["hashes"];
        match want {
            Some(h) => assert_eq!(
                *hashes,
                json!([{"algorithm_id": 3, "algorithm": "SHA-256", "value": h}]),
                "{state:?}"
            ),
            None => assert!(hashes.is_null(), "{state:?}: {o}"),
        }
        // The parent is another image: never its child's hash.
        assert!(o["process"]["parent_process"]["file"]["hashes"].is_null());
        let u = &o["unmapped"]["file"];
        assert_eq!(u["ino"], 42);
        assert_eq!(u["hash"], json!(state.status()));
    }
}

#[test]
fn exec_in_pod_is_process_launch() {
    let v = event_to_ocsf(&exec_in_pod());
    assert_type(&v, 1007, 1);
    assert_eq!(v["category_uid"], 1);
    assert_eq!(v["type_name"], "Process Activity: Launch");
    assert_eq!(v["launch_type_id"], 3);
    assert_eq!(v["status_id"], 1);
    assert_eq!(v["severity_id"], 1);
    assert_eq!(v["time"], 1_795_465_307_123_i64);
    assert_eq!(v["metadata"]["version"], "1.8.0");
    assert_eq!(v["metadata"]["uid"], "1795465307123456789-0004242");
    assert_eq!(v["metadata"]["product"]["version"], "0.1.0");
    assert_eq!(v["metadata"]["event_code"], "exec");
    assert_eq!(v["device"]["hostname"], "node-1");
    assert_eq!(
        v["device"]["boot_uid"],
        "2605d5f8-57d8-408d-b1f2-343252d21f8e"
    );

    let p = &v["process"];
    assert_eq!(p["pid"], 4242);
    assert_eq!(p["uid"], "exec-4242");
    assert_eq!(p["name"], "curl");
    assert_eq!(p["file"]["path"], "/usr/bin/curl");
    assert_eq!(p["cmd_line"], "curl -s http://api");
    assert_eq!(p["working_directory"], "/app");
    assert_eq!(p["created_time"], 1_795_465_305_123_i64);
    assert_eq!(p["user"]["uid"], "1000");
    assert_eq!(p["parent_process"]["pid"], 4000);
    assert_eq!(p["parent_process"]["uid"], "exec-4000");
    // The shell runs in the pod's container; the shim on the host has none.
    assert_eq!(p["parent_process"]["container"]["uid"], CONTAINER_ID);
    assert_eq!(p["ancestry"][1]["path"], "/usr/bin/containerd-shim-runc-v2");
    assert_eq!(p["container"]["uid"], CONTAINER_ID);
    assert_eq!(
        p["container"]["image"]["name"],
        "registry:5000/shop/web:1.2"
    );
    assert_eq!(p["container"]["orchestrator"], "Kubernetes");
    assert_eq!(p["container"]["pod_uuid"], POD_UID);
    assert!(p.get("lineage").is_none(), "deprecated since 1.4");
    // Creator and parent are the same process.
    assert_eq!(v["actor"]["process"], p["parent_process"]);
    assert_eq!(v["actor"]["user"]["name"], "app");

    let u = &v["unmapped"];
    assert_eq!(
        u["spiffe_ids"],
        json!(["spiffe://example.org/ns/shop/sa/web"])
    );
    assert_eq!(u["identity"]["status"], "resolved");
    assert_eq!(u["pod"]["namespace"], "shop");
    assert_eq!(u["pod"]["labels"]["app"], "web");
    assert_eq!(u["pod"]["owner"]["kind"], "ReplicaSet");
    assert_eq!(u["workload"], json!({"kind": "pod"}));
    assert_eq!(u["cgroup"]["id"], 4242);
    assert_eq!(u["cgroup"]["hierarchy"], "v2");
    assert!(u["cgroup"].get("v1_id").is_none(), "null is left out");
    assert_eq!(u["namespaces"]["pid"], 4_026_532_999_u32);
    assert_eq!(u["policy"]["config_digest"], "sha256:00ff");
    assert_eq!(u["argv"], json!(["curl", "-s", "http://api"]));
    assert_eq!(u["action"]["argv_truncated"], false);
    assert!(u.get("login").is_none());
    assert_eq!(u["lineage"][0]["exec_id"], "exec-3000");
    assert_eq!(
        u["lineage"][0]["identity"]["spiffe_ids"][0],
        "spiffe://example.org/node/containerd"
    );
    assert_eq!(u["lineage"][0]["workload"]["kind"], "service");
    // Unknowns are left out, not null.
    assert!(!v.to_string().contains("null"), "{v}");
}

/// On a cgroup v1 host the container is named from a v1 hierarchy; the
/// cgroup object says which, OCSF having no place for it.
#[test]
fn a_v1_cgroup_is_carried_unmapped() {
    let mut ev = exec_in_pod();
    ev.executor.cgroup = Cgroup {
        id: 1,
        path: Some(format!("/docker/{CONTAINER_ID}").into()),
        hierarchy: "v1:memory",
        v1_id: Some(9157),
        path_truncated: false,
    };
    let v = event_to_ocsf(&ev);
    assert_eq!(
        v["unmapped"]["cgroup"],
        json!({
            "id": 1,
            "path": format!("/docker/{CONTAINER_ID}"),
            "hierarchy": "v1:memory",
            "v1_id": 9157
        })
    );
    assert_eq!(v["process"]["container"]["uid"], CONTAINER_ID);
}

/// A claim (a pod named inside a user manager) is carried under
/// `unmapped.workload.claim`, and is not the pod or container of OCSF.
#[test]
fn a_claim_is_carried_unmapped_only() {
    let mut ev = exec_in_pod();
    ev.executor.workload = Arc::new(Workload {
        kind: WorkloadKind::Service,
        container: None,
        pod: None,
        unit: Some("user@1000.service".into()),
        claim: Some(crate::event::Claim {
            kind: WorkloadKind::Container,
            pod_uid: Some(POD_UID.into()),
            container_id: Some(CONTAINER_ID.into()),
            runtime: Some("containerd".into()),
            unit: None,
        }),
    });
    let v = event_to_ocsf(&ev);
    assert_eq!(
        v["unmapped"]["workload"],
        json!({
            "kind": "service",
            "unit": "user@1000.service",
            "claim": {
                "kind": "container",
                "pod_uid": POD_UID,
                "container_id": CONTAINER_ID,
                "runtime": "containerd"
            }
        })
    );
    assert!(v["process"].get("container").is_none(), "{v}");
    assert!(v["unmapped"].get("pod").is_none(), "{v}");
}

#[test]
fn failed_exec_is_launch_failure() {
    let v = event_to_ocsf(&failed_exec());
    assert_type(&v, 1007, 1);
    assert_eq!(v["status_id"], 2);
    assert_eq!(v["status"], "Failure");
    assert_eq!(v["status_detail"], "ENOENT");
    // The process is what it tried to run; the old image is the actor.
    let p = &v["process"];
    assert_eq!(p["file"]["path"], "/usr/local/bin/missing");
    assert_eq!(p["name"], "missing");
    assert_eq!(p["cmd_line"], "missing --flag");
    assert!(p.get("uid").is_none());
    assert!(p.get("container").is_none());
    assert_eq!(p["parent_process"]["name"], "sshd");
    assert_eq!(v["actor"]["process"]["uid"], "exec-5000");
    assert_eq!(v["actor"]["process"]["file"]["path"], "/usr/bin/bash");
    assert_eq!(
        v["actor"]["session"],
        json!({"uid": "3", "terminal": "pts/0"})
    );
    assert_eq!(p["session"]["uid"], "3");
    assert_eq!(v["actor"]["user"]["uid"], "1001");
    let u = &v["unmapped"];
    assert_eq!(u["login"], json!({"auid": 1001, "name": "alice"}));
    assert_eq!(u["user"], json!({"euid": 0, "egid": 1000}));
    assert_eq!(
        p["user"]["groups"],
        json!([{"uid": "1001", "name": "alice"}])
    );
    assert_eq!(u["spiffe_ids"], json!([]));
    assert_eq!(u["argv"], json!(["missing", "--flag"]));
    assert_eq!(u["action"]["argv_truncated"], true);
    assert!(u.get("pod").is_none());
}

#[test]
fn connects_are_network_activity() {
    let v = event_to_ocsf(&tcp_connect());
    assert_type(&v, 4001, 1);
    assert_eq!(v["category_uid"], 4);
    assert_eq!(v["status_id"], 1);
    assert_eq!(v["dst_endpoint"], json!({"ip": "10.96.12.7", "port": 8080}));
    assert_eq!(
        v["src_endpoint"],
        json!({"ip": "10.244.1.17", "port": 43512})
    );
    assert_eq!(
        v["connection_info"],
        json!({"protocol_name": "tcp", "protocol_num": 6, "protocol_ver_id": 4,
               "direction_id": 2, "direction": "Outbound"})
    );
    assert_eq!(v["actor"]["process"]["pid"], 4242);
    assert_eq!(v["actor"]["process"]["uid"], "exec-4242");
    assert_eq!(v["actor"]["process"]["container"]["pod_uuid"], POD_UID);
    assert_eq!(
        v["unmapped"]["spiffe_ids"][0],
        "spiffe://example.org/ns/shop/sa/web"
    );
    assert!(v.get("process").is_none());

    // A name from DNS is the destination's hostname.
    let mut named = tcp_connect();
    if let Action::Connect(c) = &mut named.action {
        c.destination.name = Some("api.shop.example".into());
    }
    let v = event_to_ocsf(&named);
    assert_eq!(
        v["dst_endpoint"],
        json!({"ip": "10.96.12.7", "port": 8080, "hostname": "api.shop.example"})
    );

    let v = event_to_ocsf(&refused_ipv6());
    assert_type(&v, 4001, 5);
    assert_eq!(v["activity_name"], "Refuse");
    assert_eq!(v["status_id"], 2);
    assert_eq!(v["status_detail"], "ECONNREFUSED");
    assert_eq!(v["dst_endpoint"]["ip"], "fd00:10:96::7");
    assert_eq!(v["connection_info"]["protocol_ver_id"], 6);
    assert!(v.get("src_endpoint").is_none());

    let v = event_to_ocsf(&udp_connect());
    assert_type(&v, 4001, 1);
    assert_eq!(v["connection_info"]["protocol_name"], "udp");
    assert_eq!(v["connection_info"]["protocol_num"], 17);

    let timeout = connect(
        "tcp",
        "ipv4",
        ("192.0.2.1", 22),
        None,
        Outcome::Failure,
        Some("ETIMEDOUT"),
    );
    let v = event_to_ocsf(&timeout);
    assert_type(&v, 4001, 4);
    assert_eq!(v["status_code"], "ETIMEDOUT");

    let pending = connect(
        "tcp",
        "ipv4",
        ("192.0.2.1", 22),
        None,
        Outcome::InProgress,
        None,
    );
    let v = event_to_ocsf(&pending);
    assert_type(&v, 4001, 1);
    assert_eq!(
        (&v["status_id"], &v["status"]),
        (&json!(99), &json!("In Progress"))
    );

    let raw = connect(
        "132",
        "ipv4",
        ("192.0.2.1", 9),
        None,
        Outcome::Success,
        None,
    );
    let info = &event_to_ocsf(&raw)["connection_info"];
    assert_eq!(info["protocol_num"], 132);
    assert!(info.get("protocol_name").is_none());

    // A first unconnected send: traffic, status unknown; how it was seen
    // stays in `unmapped.action`.
    let mut send = connect(
        "udp",
        "ipv4",
        ("10.96.0.10", 53),
        None,
        Outcome::Unknown,
        None,
    );
    if let Action::Connect(c) = &mut send.action {
        c.method = "sendmsg";
        c.in_syscall = false;
        c.outcome_from = None;
    }
    let v = event_to_ocsf(&send);
    assert_type(&v, 4001, 6);
    assert_eq!(
        (&v["status_id"], &v["status"]),
        (&json!(0), &json!("Unknown"))
    );
    assert_eq!(v["unmapped"]["action"]["method"], "sendmsg");
    assert_eq!(v["unmapped"]["action"]["socket_cookie"], 7);
    let unknown = connect(
        "udp",
        "ipv4",
        ("10.96.0.10", 53),
        None,
        Outcome::Unknown,
        None,
    );
    assert_type(&event_to_ocsf(&unknown), 4001, 1);
}

#[test]
fn fork_and_exit_are_launch_and_terminate() {
    let v = event_to_ocsf(&fork_in_pod());
    assert_type(&v, 1007, 1);
    assert_eq!(v["launch_type_id"], 2);
    assert_eq!(v["process"]["pid"], 4242);
    assert!(v["process"].get("uid").is_none());
    assert_eq!(v["process"]["name"], "sh");
    assert_eq!(v["process"]["created_time"], 1_795_465_307_123_i64);
    assert_eq!(v["process"]["parent_process"]["pid"], 4000);
    assert_eq!(v["process"]["ancestry"][0]["uid"], "exec-4000");
    assert_eq!(v["process"]["ancestry"][1]["uid"], "exec-3000");
    assert_eq!(v["actor"]["process"]["uid"], "exec-4000");

    let v = event_to_ocsf(&exit_killed());
    assert_type(&v, 1007, 2);
    assert_eq!(v["type_name"], "Process Activity: Terminate");
    assert_eq!(v["exit_code"], 137);
    assert_eq!(v["process"]["terminated_time"], 1_795_465_307_123_i64);
    assert_eq!(v["actor"]["process"]["uid"], v["process"]["uid"]);
    assert_eq!(v["unmapped"]["action"]["signal"], 9);
    assert_eq!(
        v["unmapped"]["action"]["usage"]["cpu_user_ns"],
        1_500_000_000_u64
    );
    assert_eq!(v["unmapped"]["action"]["usage"]["since"], "exec");
}

#[test]
fn loss_is_application_error() {
    let v = loss_to_ocsf(&loss());
    assert_type(&v, 6008, 99);
    assert_eq!(v["category_uid"], 6);
    assert_eq!(v["activity_name"], "Events Lost");
    assert_eq!(v["status_id"], 2);
    assert_eq!(v["message"], "123 events lost");
    assert_eq!(v["unmapped"]["lost"]["ring_full"], 120);
    assert_eq!(v["unmapped"]["lost"]["sink_error"], 3);
    assert_eq!(v["unmapped"]["gap"]["after_seq"], 41);
    assert_eq!(v["metadata"]["event_code"], "loss");
    assert_eq!(v["time"], 1_795_465_307_123_i64);
}

/// A connect summary (`--aggregate-connects`): its count and first and last
/// times in OCSF's base attributes, the rest under `unmapped.action.aggregate`;
/// a plain connect has none of them.
#[test]
fn connect_summary_maps_count_and_times() {
    let mut ev = tcp_connect();
    let plain = event_to_ocsf(&ev);
    for k in ["count", "start_time", "end_time"] {
        assert!(plain.get(k).is_none(), "{k}: {plain}");
    }
    assert!(plain["unmapped"]["action"].get("aggregate").is_none());
    let last = ev.time;
    if let Action::Connect(c) = &mut ev.action {
        c.aggregate = Some(Box::new(crate::event::Aggregate {
            window_s: 2,
            count: 7,
            first_time: crate::event::UnixNanos(last.0 - 1_000_000_000),
            last_time: last,
            outcomes: crate::event::OutcomeCounts {
                success: 7,
                ..Default::default()
            },
            errors: Default::default(),
        }));
    }
    let o = event_to_ocsf(&ev);
    assert_type(&o, 4001, 1);
    assert_eq!(o["count"], 7);
    assert_eq!(o["end_time"], last.millis());
    assert_eq!(o["start_time"], last.millis() - 1000);
    let g = &o["unmapped"]["action"]["aggregate"];
    assert_eq!(g["window_s"], 2);
    assert_eq!(g["outcomes"]["success"], 7);
    assert_eq!(g["count"], 7);
}
