//! Our event model as OCSF 1.8.0: exec, fork and exit as Process Activity (1007),
//! connect as Network Activity (4001), loss records as Application Error (6008).
//!
//! Attributes come from the core schema and the `host` and `container` profiles
//! (declared in `metadata.profiles`); deprecated ones (`process.lineage`,
//! `process.tid`, `image.tag`) are not used. What OCSF has no place for goes
//! under `unmapped`, named as in our JSON. tests/ocsf/validate_ocsf.py checks
//! the output against the official schema.
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::event::{
    Action, Ancestor, ConnectAction, Endpoint, Event, EventId, ExecAction, Executor, ExitAction,
    FileId, ForkAction, Host, Login, LossRecord, Outcome, Policy, UnixNanos, User, Workload,
};

pub const OCSF_VERSION: &str = "1.8.0";

struct Class {
    uid: u32,
    name: &'static str,
    category_uid: u32,
    category_name: &'static str,
}

const PROCESS_ACTIVITY: Class = Class {
    uid: 1007,
    name: "Process Activity",
    category_uid: 1,
    category_name: "System Activity",
};
const NETWORK_ACTIVITY: Class = Class {
    uid: 4001,
    name: "Network Activity",
    category_uid: 4,
    category_name: "Network Activity",
};
const APPLICATION_ERROR: Class = Class {
    uid: 6008,
    name: "Application Error",
    category_uid: 6,
    category_name: "Application Activity",
};

/// An OCSF enum value: (id, caption).
type Enum = (u32, &'static str);
const LAUNCH: Enum = (1, "Launch");
const TERMINATE: Enum = (2, "Terminate");
const OPEN: Enum = (1, "Open");
const FAIL: Enum = (4, "Fail");
const REFUSE: Enum = (5, "Refuse");
const TRAFFIC: Enum = (6, "Traffic");
/// Application Error has only General and Translation errors; Other with a name says more.
const EVENTS_LOST: Enum = (99, "Events Lost");

/// process_activity.launch_type_id: the two steps of Unix process creation.
const LAUNCH_FORK: Enum = (2, "Fork");
const LAUNCH_EXEC: Enum = (3, "Exec");

const SUCCESS: Enum = (1, "Success");
const FAILURE: Enum = (2, "Failure");
const STATUS_UNKNOWN: Enum = (0, "Unknown");
/// A non-blocking connect that has not completed: neither success nor failure yet.
const IN_PROGRESS: Enum = (99, "In Progress");

const INFORMATIONAL: Enum = (1, "Informational");
/// Lost events are a gap in the audit trail someone should look at.
const MEDIUM: Enum = (3, "Medium");

pub fn event_to_ocsf(ev: &Event) -> Value {
    let m = match &ev.action {
        Action::Exec(a) => exec(ev, a),
        Action::Connect(a) => connect(ev, a),
        Action::Fork(a) => fork(ev, a),
        Action::Exit(a) => exit(ev, a),
    };
    Value::Object(m)
}

pub fn loss_to_ocsf(l: &LossRecord) -> Value {
    let origin = Origin {
        time: l.time,
        event_id: l.event_id,
        kind: json!(l.kind),
        host: &l.host,
        policy: &l.policy,
    };
    let mut m = header(&APPLICATION_ERROR, EVENTS_LOST, &origin, &["host"]);
    put_pair(&mut m, "severity", MEDIUM);
    put_pair(&mut m, "status", FAILURE);
    let total = l.lost.total();
    let noun = if total == 1 { "event" } else { "events" };
    let message = if l.budget.is_zero() {
        format!("{total} {noun} lost")
    } else {
        format!("{total} {noun} lost; state dropped or cut to stay within the memory budget")
    };
    m.insert("message".into(), json!(message));
    let mut unmapped = json!({
        "lost": ours(&l.lost),
        "gap": l.gap.as_ref().map(ours),
        "policy": policy(&l.policy),
    });
    if !l.budget.is_zero() {
        unmapped["budget"] = ours(&l.budget);
    }
    m.insert("unmapped".into(), drop_nulls(unmapped));
    Value::Object(m)
}

fn exec(ev: &Event, a: &ExecAction) -> Map<String, Value> {
    let x = &ev.executor;
    let mut m = process_header(ev, LAUNCH);
    put_pair(&mut m, "launch_type", LAUNCH_EXEC);
    let actor_process = match a.outcome {
        Outcome::Failure => {
            put_pair(&mut m, "status", FAILURE);
            put_error(&mut m, a.error.as_deref());
            // The old image stays and is the one that tried; the process names
            // what it tried to run, which never got an exec_id.
            m.insert(
                "process".into(),
                Value::Object(process(ev, &a.binary, &a.argv, None)),
            );
            Some(executor_process(x))
        }
        Outcome::Success | Outcome::InProgress | Outcome::Unknown => {
            put_pair(&mut m, "status", SUCCESS);
            m.insert(
                "process".into(),
                Value::Object(process(ev, &x.binary, &x.argv, Some(&x.exec_id))),
            );
            // Creator and parent are the same process on Linux.
            parent_process(ev)
        }
    };
    m.insert("actor".into(), actor(x, actor_process));
    let mut action = Map::new();
    action.insert("argv_truncated".into(), json!(a.argv_truncated));
    m.insert("unmapped".into(), unmapped(ev, &a.argv, Some(action)));
    m
}

fn fork(ev: &Event, a: &ForkAction) -> Map<String, Value> {
    let x = &ev.executor;
    let mut m = process_header(ev, LAUNCH);
    put_pair(&mut m, "launch_type", LAUNCH_FORK);
    put_pair(&mut m, "status", SUCCESS);
    // The child: a copy of the executor with its own pid (its exec_id is not known yet).
    let mut child = process(ev, &x.binary, &x.argv, None);
    child.insert("pid".into(), json!(a.child_pid));
    child.remove("ptid");
    child.insert("created_time".into(), json!(ev.time.millis()));
    child.insert("parent_process".into(), executor_process(x));
    let mut ancestry = vec![entity(
        x.pid,
        &x.exec_id,
        &x.binary,
        &x.argv,
        Some(x.start_time.millis()),
    )];
    ancestry.extend(ev.lineage.iter().map(ancestor_entity));
    child.insert("ancestry".into(), Value::Array(ancestry));
    m.insert("process".into(), Value::Object(child));
    m.insert("actor".into(), actor(x, Some(executor_process(x))));
    m.insert("unmapped".into(), unmapped(ev, &x.argv, None));
    m
}

fn exit(ev: &Event, a: &ExitAction) -> Map<String, Value> {
    let x = &ev.executor;
    let mut m = process_header(ev, TERMINATE);
    put_pair(&mut m, "status", SUCCESS);
    m.insert("exit_code".into(), json!(a.exit_code));
    let mut p = process(ev, &x.binary, &x.argv, Some(&x.exec_id));
    p.insert("terminated_time".into(), json!(ev.time.millis()));
    m.insert("process".into(), Value::Object(p));
    // An exit is reflexive: the process is its own actor.
    m.insert("actor".into(), actor(x, Some(executor_process(x))));
    let action = a.signal.map(|s| {
        let mut action = Map::new();
        action.insert("signal".into(), json!(s));
        action
    });
    m.insert("unmapped".into(), unmapped(ev, &x.argv, action));
    m
}

fn connect(ev: &Event, a: &ConnectAction) -> Map<String, Value> {
    let x = &ev.executor;
    let (activity, status) = match a.outcome {
        // A first unconnected send is traffic, not a connection being opened.
        _ if a.method == "sendmsg" => (TRAFFIC, STATUS_UNKNOWN),
        Outcome::Success => (OPEN, SUCCESS),
        Outcome::InProgress => (OPEN, IN_PROGRESS),
        Outcome::Unknown => (OPEN, STATUS_UNKNOWN),
        Outcome::Failure if a.error.as_deref() == Some("ECONNREFUSED") => (REFUSE, FAILURE),
        Outcome::Failure => (FAIL, FAILURE),
    };
    let mut m = header(
        &NETWORK_ACTIVITY,
        activity,
        &Origin::of(ev),
        &["host", "container"],
    );
    put_pair(&mut m, "status", status);
    put_error(&mut m, a.error.as_deref());
    let p = process(ev, &x.binary, &x.argv, Some(&x.exec_id));
    m.insert("actor".into(), actor(x, Some(Value::Object(p))));
    m.insert("dst_endpoint".into(), endpoint(&a.destination));
    if let Some(src) = &a.source {
        m.insert("src_endpoint".into(), endpoint(src));
    }
    let mut info = Map::new();
    if let Some(num) = protocol_num(&a.protocol) {
        // IANA names are lowercase words; an unknown protocol is only a number.
        if a.protocol.parse::<u8>().is_err() {
            info.insert("protocol_name".into(), json!(a.protocol));
        }
        info.insert("protocol_num".into(), json!(num));
    }
    let ver = if a.family == "ipv6" { 6 } else { 4 };
    info.insert("protocol_ver_id".into(), json!(ver));
    info.insert("direction_id".into(), json!(2));
    info.insert("direction".into(), json!("Outbound"));
    m.insert("connection_info".into(), Value::Object(info));
    let mut action = Map::new();
    action.insert("method".into(), json!(a.method));
    action.insert("in_syscall".into(), json!(a.in_syscall));
    action.insert("socket_cookie".into(), json!(a.socket_cookie));
    action.insert("outcome_from".into(), json!(a.outcome_from));
    if let Some(f) = a.socket_family {
        action.insert("socket_family".into(), json!(f));
    }
    m.insert("unmapped".into(), unmapped(ev, &x.argv, Some(action)));
    m
}

fn process_header(ev: &Event, activity: Enum) -> Map<String, Value> {
    header(
        &PROCESS_ACTIVITY,
        activity,
        &Origin::of(ev),
        &["host", "container"],
    )
}

/// What the header needs from an event or a loss record.
struct Origin<'a> {
    time: UnixNanos,
    event_id: EventId,
    kind: Value,
    host: &'a Host,
    policy: &'a Policy,
}

impl<'a> Origin<'a> {
    fn of(ev: &'a Event) -> Origin<'a> {
        Origin {
            time: ev.time,
            event_id: ev.event_id,
            kind: ours(&ev.kind),
            host: &ev.host,
            policy: &ev.policy,
        }
    }
}

/// What every class shares: classification, time, metadata, the device.
fn header(class: &Class, activity: Enum, o: &Origin<'_>, profiles: &[&str]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("class_uid".into(), json!(class.uid));
    m.insert("class_name".into(), json!(class.name));
    m.insert("category_uid".into(), json!(class.category_uid));
    m.insert("category_name".into(), json!(class.category_name));
    put_pair(&mut m, "activity", activity);
    m.insert(
        "type_uid".into(),
        json!(u64::from(class.uid) * 100 + u64::from(activity.0)),
    );
    m.insert(
        "type_name".into(),
        json!(format!("{}: {}", class.name, activity.1)),
    );
    put_pair(&mut m, "severity", INFORMATIONAL);
    m.insert("time".into(), json!(o.time.millis()));
    // Our times are UTC.
    m.insert("timezone_offset".into(), json!(0));
    m.insert(
        "metadata".into(),
        json!({
            "version": OCSF_VERSION,
            "product": {
                "name": "tracer",
                "vendor_name": "tracer project",
                "version": o.policy.tracer_version,
            },
            "uid": o.event_id.to_string(),
            "event_code": o.kind,
            "profiles": profiles,
        }),
    );
    m.insert("device".into(), device(o.host));
    m
}

/// `<name>_id` and its caption: `activity_name`, else `<name>` (`status`, `severity`, `launch_type`).
fn put_pair(m: &mut Map<String, Value>, name: &str, (id, caption): Enum) {
    m.insert(format!("{name}_id"), json!(id));
    let caption_key = if name == "activity" {
        "activity_name".to_owned()
    } else {
        name.to_owned()
    };
    m.insert(caption_key, json!(caption));
}

/// The errno name, as the source reports it and as the detail.
fn put_error(m: &mut Map<String, Value>, error: Option<&str>) {
    if let Some(e) = error {
        m.insert("status_code".into(), json!(e));
        m.insert("status_detail".into(), json!(e));
    }
}

fn device(host: &Host) -> Value {
    json!({
        "hostname": host.name,
        "boot_uid": host.boot_id,
        // Laptop, server or VM: the tracer cannot tell.
        "type_id": 0,
        "type": "Unknown",
        "os": {"name": "Linux", "type_id": 200, "type": "Linux"},
    })
}

fn actor(x: &Executor, process: Option<Value>) -> Value {
    let mut m = Map::new();
    if let Some(p) = process {
        m.insert("process".into(), p);
    }
    m.insert("user".into(), user(&x.user));
    if let Some(s) = x.login.as_ref().and_then(session) {
        m.insert("session".into(), s);
    }
    Value::Object(m)
}

/// The executor as the top-level process object, running `binary`/`argv`
/// (the executor's own image, or what a failed exec tried to run).
fn process(ev: &Event, binary: &str, argv: &[String], uid: Option<&str>) -> Map<String, Value> {
    let x = &ev.executor;
    let mut m = Map::new();
    m.insert("pid".into(), json!(x.pid));
    m.insert("ptid".into(), json!(x.tid));
    if let Some(uid) = uid {
        m.insert("uid".into(), json!(uid));
    }
    m.insert("name".into(), json!(basename(binary)));
    // The executor's own image (it has an exec_id): its file's hash applies.
    let own = uid.and(x.file.as_ref());
    m.insert("file".into(), file(binary, own));
    m.insert("cmd_line".into(), json!(argv.join(" ")));
    if let Some(cwd) = &x.cwd {
        m.insert("working_directory".into(), json!(cwd));
    }
    m.insert("created_time".into(), json!(x.start_time.millis()));
    m.insert("user".into(), user(&x.user));
    if let Some(s) = x.login.as_ref().and_then(session) {
        m.insert("session".into(), s);
    }
    if let Some(c) = container(&x.workload) {
        m.insert("container".into(), c);
    }
    if let Some(p) = parent_process(ev) {
        m.insert("parent_process".into(), p);
    }
    if !ev.lineage.is_empty() {
        let ancestry = ev.lineage.iter().map(ancestor_entity).collect();
        m.insert("ancestry".into(), Value::Array(ancestry));
    }
    m
}

/// lineage[0], or only the ppid when the lineage is unknown.
fn parent_process(ev: &Event) -> Option<Value> {
    match ev.lineage.first() {
        Some(a) => {
            let mut m = small_process(a.pid, &a.exec_id, &a.binary, &a.argv);
            let workload = a.workload.as_deref().unwrap_or(&ev.executor.workload);
            if let Some(c) = container(workload) {
                m.insert("container".into(), c);
            }
            Some(Value::Object(m))
        }
        None => (ev.executor.ppid != 0).then(|| json!({"pid": ev.executor.ppid})),
    }
}

/// The executor's image in short, for the actor or a parent.
fn executor_process(x: &Executor) -> Value {
    let mut m = small_process(x.pid, &x.exec_id, &x.binary, &x.argv);
    m.insert("file".into(), file(&x.binary, x.file.as_ref()));
    m.insert("ptid".into(), json!(x.tid));
    m.insert("created_time".into(), json!(x.start_time.millis()));
    Value::Object(m)
}

fn small_process(pid: u32, uid: &str, binary: &str, argv: &[String]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("pid".into(), json!(pid));
    m.insert("uid".into(), json!(uid));
    m.insert("name".into(), json!(basename(binary)));
    m.insert("file".into(), file(binary, None));
    m.insert("cmd_line".into(), json!(argv.join(" ")));
    m
}

/// An element of `process.ancestry` (Process Entity: no nested objects).
fn entity(pid: u32, uid: &str, binary: &str, argv: &[String], created: Option<i64>) -> Value {
    let mut m = Map::new();
    m.insert("pid".into(), json!(pid));
    m.insert("uid".into(), json!(uid));
    m.insert("name".into(), json!(basename(binary)));
    m.insert("path".into(), json!(binary));
    m.insert("cmd_line".into(), json!(argv.join(" ")));
    if let Some(t) = created {
        m.insert("created_time".into(), json!(t));
    }
    Value::Object(m)
}

fn ancestor_entity(a: &Ancestor) -> Value {
    entity(a.pid, &a.exec_id, &a.binary, &a.argv, None)
}

/// OCSF Fingerprint `algorithm_id` of SHA-256.
const SHA_256: (u8, &str) = (3, "SHA-256");

/// The file at `path`; with its content's SHA-256 (`hashes`) when `id`, the
/// executed file as the kernel named it, has one.
fn file(path: &str, id: Option<&FileId>) -> Value {
    // What exec maps is a regular file; OCSF's "Executable File" is a Windows notion.
    let mut f = json!({"name": basename(path), "path": path, "type_id": 1, "type": "Regular File"});
    if let Some(h) = id.and_then(|id| id.sha256.as_deref()) {
        f["hashes"] = json!([{"algorithm_id": SHA_256.0, "algorithm": SHA_256.1, "value": h}]);
    }
    f
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The real user (the one with a name); euid/egid go to `unmapped.user`, as
/// OCSF has them only in the linux_users profile.
fn user(u: &User) -> Value {
    let mut group = Map::new();
    group.insert("uid".into(), json!(u.gid.to_string()));
    if let Some(name) = &u.group {
        group.insert("name".into(), json!(name));
    }
    let mut m = Map::new();
    m.insert("uid".into(), json!(u.uid.to_string()));
    if let Some(name) = &u.name {
        m.insert("name".into(), json!(name));
    }
    m.insert("groups".into(), json!([group]));
    Value::Object(m)
}

/// The audit login session; the login uid itself goes to `unmapped.login`.
fn session(l: &Login) -> Option<Value> {
    let mut m = Map::new();
    if let Some(id) = l.session_id {
        m.insert("uid".into(), json!(id.to_string()));
    }
    if let Some(tty) = &l.tty {
        m.insert("terminal".into(), json!(tty));
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

fn container(w: &Workload) -> Option<Value> {
    let c = w.container.as_ref()?;
    let mut m = Map::new();
    m.insert("uid".into(), json!(c.id));
    if let Some(name) = &c.name {
        m.insert("name".into(), json!(name));
    }
    if let Some(runtime) = &c.runtime {
        m.insert("runtime".into(), json!(runtime));
    }
    if let Some(image) = &c.image {
        // image.uid is required: the digest where the reference is pinned to
        // one, else the reference itself, the most specific id we have.
        let uid = image.split_once('@').map_or(image.as_str(), |(_, d)| d);
        m.insert("image".into(), json!({"name": image, "uid": uid}));
    }
    if let Some(pod) = &w.pod {
        m.insert("orchestrator".into(), json!("Kubernetes"));
        // Static pods have 32-hex uids, which uuid_t does not take.
        if is_uuid(&pod.uid) {
            m.insert("pod_uuid".into(), json!(pod.uid));
        }
    }
    Some(Value::Object(m))
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn endpoint(e: &Endpoint) -> Value {
    json!({"ip": e.ip, "port": e.port})
}

/// IANA protocol number for our protocol names (or a bare number).
fn protocol_num(p: &str) -> Option<u8> {
    match p {
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmpv6" => Some(58),
        "sctp" => Some(132),
        n => n.parse().ok(),
    }
}

/// Everything OCSF has no attribute for, under our own names.
fn unmapped(ev: &Event, argv: &[String], action: Option<Map<String, Value>>) -> Value {
    let x = &ev.executor;
    let id = &x.identity;
    let mut m = Map::new();
    m.insert("spiffe_ids".into(), json!(id.spiffe_ids));
    m.insert(
        "identity".into(),
        json!({"selectors": id.selectors, "source": id.source, "status": ours(&id.status)}),
    );
    m.insert(
        "workload".into(),
        match &x.workload.claim {
            Some(claim) => json!({"kind": ours(&x.workload.kind), "unit": x.workload.unit, "claim": ours(claim)}),
            None => json!({"kind": ours(&x.workload.kind), "unit": x.workload.unit}),
        },
    );
    if let Some(pod) = &x.workload.pod {
        m.insert("pod".into(), ours(pod));
    }
    m.insert("cgroup".into(), ours(&x.cgroup));
    m.insert("namespaces".into(), ours(&x.namespaces));
    m.insert("image_source".into(), ours(&x.image_source));
    if let Some(f) = &x.file {
        m.insert("file".into(), ours(f));
    }
    if let Some(env) = &x.loader_env {
        m.insert("loader_env".into(), ours(env));
    }
    if let Some(l) = &x.login {
        m.insert("login".into(), json!({"auid": l.auid, "name": l.name}));
    }
    m.insert(
        "user".into(),
        json!({"euid": x.user.euid, "egid": x.user.egid}),
    );
    m.insert("policy".into(), policy(&ev.policy));
    m.insert("argv".into(), json!(argv));
    if let Some(a) = action {
        m.insert("action".into(), Value::Object(a));
    }
    // Ancestors that belong to another workload (a shell started by `kubectl exec`).
    let lineage: Vec<Value> = ev
        .lineage
        .iter()
        .filter(|a| a.workload.is_some() || a.identity.is_some())
        .map(|a| {
            json!({
                "exec_id": a.exec_id,
                "workload": a.workload.as_deref().map(ours),
                "identity": a.identity.as_deref().map(ours),
            })
        })
        .collect();
    if !lineage.is_empty() {
        m.insert("lineage".into(), Value::Array(lineage));
    }
    drop_nulls(Value::Object(m))
}

fn policy(p: &Policy) -> Value {
    json!({"config_digest": p.config_digest})
}

/// Our own serialization of a part of the model. It cannot fail: plain structs
/// and enums with string keys.
fn ours<T: Serialize + ?Sized>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// OCSF leaves out what is unknown rather than sending null.
fn drop_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, drop_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(drop_nulls).collect()),
        v => v,
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, sync::Arc};

    use super::*;
    use crate::{
        event::{
            Cgroup, Container, Identity, IdentityStatus, Kind, LossCounts, Namespaces, Pod,
            PodOwner,
        },
        identity::workload::WorkloadKind,
    };

    const T0: i128 = 1_795_465_307_123_456_789;
    const POD_UID: &str = "6b0a8f0e-3c1d-4e7a-9b2f-0d5e6c7a8b90";
    const CONTAINER_ID: &str = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";

    fn argv(args: &[&str]) -> Arc<[String]> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    fn pod_workload() -> Arc<Workload> {
        Arc::new(Workload {
            kind: WorkloadKind::Pod,
            container: Some(Container {
                id: CONTAINER_ID.into(),
                runtime: Some("containerd".into()),
                name: Some("web".into()),
                image: Some("registry:5000/shop/web:1.2".into()),
                namespace: None,
            }),
            pod: Some(Pod {
                uid: POD_UID.into(),
                name: Some("web-7d9f8c-x2kq4".into()),
                namespace: Some("shop".into()),
                service_account: Some("web".into()),
                labels: Some(Arc::new(BTreeMap::from([(
                    "app".to_owned(),
                    "web".to_owned(),
                )]))),
                labels_truncated: false,
                owner: Some(PodOwner {
                    kind: "ReplicaSet".into(),
                    name: "web-7d9f8c".into(),
                }),
            }),
            unit: None,
            claim: None,
        })
    }

    fn pod_identity() -> Arc<Identity> {
        Arc::new(Identity {
            spiffe_ids: vec!["spiffe://example.org/ns/shop/sa/web".into()],
            selectors: vec!["k8s:ns:shop".to_owned(), "k8s:sa:web".to_owned()].into(),
            source: vec!["default".into()],
            status: IdentityStatus::Resolved,
        })
    }

    fn host_workload(unit: &str, kind: WorkloadKind) -> Arc<Workload> {
        Arc::new(Workload {
            kind,
            container: None,
            pod: None,
            unit: Some(unit.into()),
            claim: None,
        })
    }

    fn executor(
        pid: u32,
        binary: &str,
        args: &[&str],
        workload: Arc<Workload>,
        identity: Arc<Identity>,
    ) -> Executor {
        Executor {
            exec_id: format!("exec-{pid}").into(),
            pid,
            tid: pid,
            ppid: 4000,
            binary: binary.into(),
            argv: argv(args),
            argv_truncated: false,
            image_source: crate::event::ImageSource::Exec,
            file: None,
            loader_env: None,
            cwd: Some("/app".into()),
            comm: basename(binary).chars().take(15).collect(),
            start_time: UnixNanos(T0 - 2_000_000_000),
            user: User {
                uid: 1000,
                name: Some("app".into()),
                gid: 1000,
                group: Some("app".into()),
                euid: 1000,
                egid: 1000,
            },
            login: None,
            cgroup: Cgroup {
                id: 4242,
                path: Some(
                    format!(
                        "/kubepods.slice/kubepods-pod{}.slice/cri-containerd-{CONTAINER_ID}.scope",
                        POD_UID.replace('-', "_")
                    )
                    .into(),
                ),
                hierarchy: crate::event::HIERARCHY_V2,
                v1_id: None,
                path_truncated: false,
            },
            namespaces: Namespaces {
                pid: 4_026_532_999,
                mnt: 4_026_532_998,
                net: 4_026_532_997,
            },
            workload,
            identity,
        }
    }

    fn event(kind: Kind, executor: Executor, lineage: Vec<Ancestor>, action: Action) -> Event {
        Event {
            event_id: EventId::new(UnixNanos(T0), executor.tid),
            time: UnixNanos(T0),
            kind,
            host: Arc::new(Host {
                name: "node-1".into(),
                boot_id: "2605d5f8-57d8-408d-b1f2-343252d21f8e".into(),
            }),
            executor,
            lineage,
            action,
            policy: Arc::new(Policy {
                tracer_version: "0.1.0",
                config_digest: "sha256:00ff".into(),
            }),
        }
    }

    /// sh in the pod, started by the containerd shim on the host.
    fn pod_lineage() -> Vec<Ancestor> {
        vec![
            Ancestor {
                exec_id: "exec-4000".into(),
                pid: 4000,
                binary: "/bin/sh".into(),
                argv: argv(&["sh", "-c", "curl -s http://api"]),
                argv_truncated: false,
                image_source: None,
                workload: None,
                identity: None,
                json: None,
            },
            Ancestor {
                exec_id: "exec-3000".into(),
                pid: 3000,
                binary: "/usr/bin/containerd-shim-runc-v2".into(),
                argv: argv(&["/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io"]),
                argv_truncated: false,
                image_source: None,
                workload: Some(host_workload("containerd.service", WorkloadKind::Service)),
                identity: Some(Arc::new(Identity {
                    spiffe_ids: vec!["spiffe://example.org/node/containerd".into()],
                    selectors: vec!["systemd:id:containerd.service".to_owned()].into(),
                    source: vec!["entry:2".into()],
                    status: IdentityStatus::Resolved,
                })),
                json: None,
            },
        ]
    }

    fn exec_in_pod() -> Event {
        let args = ["curl", "-s", "http://api"];
        let x = executor(4242, "/usr/bin/curl", &args, pod_workload(), pod_identity());
        event(
            Kind::Exec,
            x,
            pod_lineage(),
            Action::Exec(ExecAction {
                binary: "/usr/bin/curl".into(),
                argv: argv(&args),
                argv_truncated: false,
                outcome: Outcome::Success,
                error: None,
            }),
        )
    }

    /// An ssh login session on the host tries a binary that is not there.
    fn failed_exec() -> Event {
        let mut x = executor(
            5000,
            "/usr/bin/bash",
            &["-bash"],
            host_workload("session-3.scope", WorkloadKind::Session),
            Arc::new(Identity {
                spiffe_ids: vec![],
                selectors: vec!["systemd:id:session-3.scope".to_owned()].into(),
                source: vec![],
                status: IdentityStatus::Resolved,
            }),
        );
        x.login = Some(Login {
            auid: 1001,
            name: Some("alice".into()),
            session_id: Some(3),
            tty: Some("pts/0".into()),
        });
        x.user.uid = 1001;
        x.user.name = Some("alice".into());
        x.user.gid = 1001;
        x.user.group = Some("alice".into());
        x.user.euid = 0;
        x.cgroup.path = Some("/user.slice/user-1001.slice/session-3.scope".into());
        event(
            Kind::Exec,
            x,
            vec![Ancestor {
                exec_id: "exec-4000".into(),
                pid: 4000,
                binary: "/usr/sbin/sshd".into(),
                argv: argv(&["sshd: alice [priv]"]),
                argv_truncated: false,
                image_source: None,
                workload: None,
                identity: None,
                json: None,
            }],
            Action::Exec(ExecAction {
                binary: "/usr/local/bin/missing".into(),
                argv: argv(&["missing", "--flag"]),
                argv_truncated: true,
                outcome: Outcome::Failure,
                error: Some("ENOENT".into()),
            }),
        )
    }

    fn connect(
        protocol: &str,
        family: &'static str,
        destination: (&str, u16),
        source: Option<(&str, u16)>,
        outcome: Outcome,
        error: Option<&str>,
    ) -> Event {
        let x = executor(
            4242,
            "/usr/bin/curl",
            &["curl", "-s", "http://api"],
            pod_workload(),
            pod_identity(),
        );
        let ep = |(ip, port): (&str, u16)| Endpoint {
            ip: ip.into(),
            port,
        };
        event(
            Kind::Connect,
            x,
            pod_lineage(),
            Action::Connect(ConnectAction {
                method: "connect",
                in_syscall: true,
                protocol: protocol.into(),
                family,
                socket_family: None,
                destination: ep(destination),
                source: source.map(ep),
                outcome,
                error: error.map(str::to_owned),
                outcome_from: Some("socket"),
                socket_cookie: 7,
            }),
        )
    }

    fn tcp_connect() -> Event {
        connect(
            "tcp",
            "ipv4",
            ("10.96.12.7", 8080),
            Some(("10.244.1.17", 43512)),
            Outcome::Success,
            None,
        )
    }

    fn refused_ipv6() -> Event {
        connect(
            "tcp",
            "ipv6",
            ("fd00:10:96::7", 443),
            None,
            Outcome::Failure,
            Some("ECONNREFUSED"),
        )
    }

    fn udp_connect() -> Event {
        connect(
            "udp",
            "ipv4",
            ("10.96.0.10", 53),
            Some(("10.244.1.17", 51000)),
            Outcome::Success,
            None,
        )
    }

    fn exit_killed() -> Event {
        let x = executor(
            4242,
            "/usr/bin/curl",
            &["curl", "-s", "http://api"],
            pod_workload(),
            pod_identity(),
        );
        event(
            Kind::Exit,
            x,
            pod_lineage(),
            Action::Exit(ExitAction {
                exit_code: 137,
                signal: Some(9),
            }),
        )
    }

    fn fork_in_pod() -> Event {
        let x = executor(
            4000,
            "/bin/sh",
            &["sh", "-c", "curl -s http://api"],
            pod_workload(),
            pod_identity(),
        );
        event(
            Kind::Fork,
            x,
            pod_lineage()[1..].to_vec(),
            Action::Fork(ForkAction { child_pid: 4242 }),
        )
    }

    fn loss() -> LossRecord {
        LossRecord {
            event_id: EventId::new(UnixNanos(T0), 0),
            time: UnixNanos(T0),
            kind: "loss",
            host: Arc::new(Host {
                name: "node-1".into(),
                boot_id: "2605d5f8-57d8-408d-b1f2-343252d21f8e".into(),
            }),
            lost: LossCounts {
                ring_full: 120,
                sink_error: 3,
                ..Default::default()
            },
            budget: Default::default(),
            gap: Some(crate::event::SinkGap {
                records: 3,
                after_seq: Some(41),
                after_hash: Some("ab".repeat(32)),
            }),
            policy: Arc::new(Policy {
                tracer_version: "0.1.0",
                config_digest: "sha256:00ff".into(),
            }),
        }
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
        assert_eq!(v["unmapped"]["action"], json!({"signal": 9}));
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

    #[test]
    fn output_validates_against_ocsf_1_8_0() {
        let have = std::process::Command::new("python3")
            .args(["-c", "import ocsf_json_schema, jsonschema"])
            .output();
        match have {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "python3 lacks the OCSF validator's modules: run `cargo xtask setup`\n{}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!("no python3 ({e}): run `cargo xtask setup`"),
        }
        let mut lines = String::new();
        let events = [
            exec_in_pod(),
            failed_exec(),
            tcp_connect(),
            refused_ipv6(),
            udp_connect(),
            exit_killed(),
            fork_in_pod(),
        ];
        for ev in &events {
            lines.push_str(&event_to_ocsf(ev).to_string());
            lines.push('\n');
        }
        lines.push_str(&loss_to_ocsf(&loss()).to_string());
        lines.push('\n');
        let path = std::env::temp_dir().join(format!("tracer-ocsf-{}.jsonl", std::process::id()));
        std::fs::write(&path, &lines).unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/ocsf/validate_ocsf.py"
        );
        let out = std::process::Command::new("python3")
            .arg(script)
            .args(["--version", "1.8.0"])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "OCSF validation failed:\n{}{}\n{lines}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("8 passed, 0 failed"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
