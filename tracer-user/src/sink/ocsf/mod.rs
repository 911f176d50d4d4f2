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
mod tests;
