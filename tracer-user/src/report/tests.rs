//! Hand-made lines in the shapes the tracer writes (see docs/event.schema.json).
use std::path::PathBuf;

use serde_json::{Value, json};

use super::{
    Limits, read_files,
    render_html::{self, esc},
    render_table,
    summary::Summary,
};
use crate::{chain::Chain, testutil::TempDir};

/// Seal `events` into one chain and write them to `dir/name`.
fn write_chained(dir: &TempDir, name: &str, events: &[Value]) -> PathBuf {
    let mut c = Chain::genesis();
    let mut out = Vec::new();
    for v in events {
        let rec = serde_json::to_string(v).unwrap();
        c.seal(rec.as_bytes(), rec.len() - 1, &mut out);
    }
    let p = dir.0.join(name);
    std::fs::write(&p, out).unwrap();
    p
}

fn pod_executor(exec_id: &str, pod: &str, owner: &str, uid: u64) -> Value {
    json!({
        "exec_id": exec_id, "pid": 100, "tid": 100, "binary": "/app/server",
        "argv": ["/app/server", "--port", "8080"],
        "user": {"uid": uid, "name": null},
        "login": null,
        "workload": {"kind": "pod", "container": {"id": "c1", "runtime": "containerd", "name": "app", "image": "x", "namespace": "k8s.io"},
            "pod": {"uid": "u", "name": pod, "namespace": "shop", "service_account": "deployer", "labels": {},
                "owner": {"kind": "Deployment", "name": owner}},
            "unit": null},
        "identity": {"spiffe_ids": [format!("spiffe://example.org/ns/shop/sa/deployer/{owner}")]}
    })
}

fn lineage_in_pod() -> Value {
    json!([
        {"exec_id": "init", "pid": 1, "binary": "/app/server", "argv": ["/app/server"]},
        {"exec_id": "shim", "pid": 50, "binary": "/usr/bin/containerd-shim", "argv": ["containerd-shim"],
            "workload": {"kind": "host", "container": null, "pod": null, "unit": null}}
    ])
}

fn exec(executor: Value, lineage: Value) -> Value {
    json!({"kind": "exec", "time": "2026-12-01T10:00:00.000000000Z", "executor": executor, "lineage": lineage,
        "action": {"binary": "/bin/x", "argv": ["x"], "argv_truncated": false, "outcome": "success", "error": null}})
}

fn connect(executor: Value, lineage: Value, ip: &str, port: u16, name: Option<&str>) -> Value {
    let mut dest = json!({"ip": ip, "port": port});
    if let Some(n) = name {
        dest["name"] = n.into();
    }
    json!({"kind": "connect", "time": "2026-12-01T10:00:01.000000000Z", "executor": executor, "lineage": lineage,
        "action": {"protocol": "tcp", "destination": dest, "outcome": "success", "error": null}})
}

fn report(events: &[Value]) -> Summary {
    let d = TempDir::new("report");
    let p = write_chained(&d, "e.jsonl", events);
    read_files(&[p], None, Limits::default()).unwrap()
}

fn cred<'a>(s: &'a Summary, id: &str) -> &'a super::summary::Credential {
    s.credentials
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no credential {id}: {s:#?}"))
}

#[test]
fn two_pods_of_one_service_account_are_two_executors_of_a_shared_credential() {
    // The pods' init is pid 1 in their namespace: the lineage stops there, so
    // their pid 1 (the server itself) is the root of each.
    let a = pod_executor("A", "web-1", "web", 1000);
    let b = pod_executor("B", "batch-1", "batch", 1000);
    let events = vec![
        exec(a.clone(), json!([])),
        connect(
            a.clone(),
            json!([]),
            "10.0.0.1",
            443,
            Some("api.example.org"),
        ),
        connect(
            a.clone(),
            json!([]),
            "10.0.0.1",
            443,
            Some("api.example.org"),
        ),
        exec(b.clone(), lineage_in_pod()),
        exec(b.clone(), lineage_in_pod()),
        connect(b.clone(), lineage_in_pod(), "10.0.0.2", 5432, None),
    ];
    let s = report(&events);
    assert_eq!(s.chain.verdict, "intact", "{:?}", s.chain);
    let sa = cred(&s, "sa:shop/deployer");
    assert!(sa.shared);
    assert_eq!(sa.executors.len(), 2);
    assert_eq!((sa.activity.execs, sa.activity.connects), (3, 3));
    assert_eq!(sa.activity.destinations, 2);
    let uid = cred(&s, "uid:1000");
    assert!(uid.shared);
    // Busiest first, each with what it did under this credential.
    let per: Vec<(u64, u64)> = uid
        .executors
        .iter()
        .map(|e| (e.activity.execs, e.activity.connects))
        .collect();
    assert_eq!(per, [(1, 2), (2, 1)]);
    let web = s
        .executors
        .iter()
        .find(|x| x.workload == "shop/Deployment/web")
        .unwrap();
    assert_eq!((web.activity.execs, web.activity.connects), (1, 2));
    assert_eq!(
        web.activity.top_destinations[0].destination,
        "api.example.org (10.0.0.1:443)"
    );
    assert_eq!(web.activity.cpu_seconds, None, "no exit carried usage");
    assert_eq!(
        web.spiffe_ids,
        vec!["spiffe://example.org/ns/shop/sa/deployer/web"]
    );
    let batch = s
        .executors
        .iter()
        .find(|x| x.workload == "shop/Deployment/batch")
        .unwrap();
    assert_eq!(batch.root, "server --port 8080", "{batch:?}");
    // Identities: each SPIFFE ID and workload.
    let spiffe: Vec<_> = s.identities.iter().filter(|i| i.kind == "spiffe").collect();
    assert_eq!(spiffe.len(), 2);
    // The table says so, and says no CPU was known.
    let t = render_table::render(&s, false);
    let row = t
        .lines()
        .find(|l| l.starts_with("sa:shop/deployer"))
        .unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["sa:shop/deployer", "SHARED", "2", "3", "3", "2", "-"],
        "{t}"
    );
}

#[test]
fn one_executor_alone_is_not_shared() {
    let a = pod_executor("A", "web-1", "web", 1000);
    let s = report(&[exec(a.clone(), json!([])), exec(a, json!([]))]);
    let sa = cred(&s, "sa:shop/deployer");
    assert!(!sa.shared);
    assert_eq!(sa.activity.execs, 2);
}

fn host_executor(exec_id: &str, uid: u64, login: Option<&str>) -> Value {
    json!({"exec_id": exec_id, "pid": 7, "tid": 7, "binary": "/usr/bin/curl", "argv": ["curl", "x"],
        "user": {"uid": uid, "name": "svc"},
        "login": login.map(|l| json!({"auid": 1001, "name": l, "session_id": 3, "tty": null})),
        "workload": {"kind": "host", "container": null, "pod": null, "unit": null},
        "identity": {"spiffe_ids": []}})
}

#[test]
fn exit_usage_sums_cpu_seconds_and_lineage_ids_are_joined() {
    // `--lineage ids`: the cron ancestors are described by process records,
    // later events name the executor by reference.
    let by_ref = json!({"exec_id": "E", "pid": 7, "tid": 7, "ref": true});
    let events = vec![
        json!({"kind": "process", "time": "2026-12-01T09:00:00.000000000Z",
            "process": {"exec_id": "C", "pid": 5, "binary": "/usr/sbin/cron", "argv": ["/usr/sbin/cron", "-f"]}}),
        json!({"kind": "process", "time": "2026-12-01T09:00:00.000000000Z",
            "process": {"exec_id": "S", "pid": 6, "binary": "/bin/sh", "argv": ["/bin/sh", "-c", "/opt/backup.sh"]}}),
        exec(
            host_executor("E", 1200, None),
            json!([{"exec_id": "S", "pid": 6}, {"exec_id": "C", "pid": 5}, {"exec_id": "I", "pid": 1}]),
        ),
        json!({"kind": "connect", "time": "2026-12-01T10:00:02.000000000Z", "executor": by_ref,
            "action": {"destination": {"ip": "192.0.2.1", "port": 22}}}),
        // Usage samples of the live image are cumulative: with its exit,
        // the image used 1.75 s in all, not the sum of the three.
        json!({"kind": "usage", "time": "2026-12-01T10:00:02.500000000Z", "executor": by_ref,
            "action": {"threads": 1,
                "usage": {"cpu_user_ns": 400_000_000u64, "cpu_system_ns": 100_000_000u64, "peak_rss_kib": 4096, "lifetime_ns": 5_000_000_000u64, "since": "exec"}}}),
        json!({"kind": "usage", "time": "2026-12-01T10:00:02.700000000Z", "executor": by_ref,
            "action": {"threads": 1,
                "usage": {"cpu_user_ns": 900_000_000u64, "cpu_system_ns": 100_000_000u64, "peak_rss_kib": 4096, "lifetime_ns": 7_000_000_000u64, "since": "exec"}}}),
        // A live image sampled, never exited: its latest sample counts.
        json!({"kind": "usage", "time": "2026-12-01T10:00:02.800000000Z", "executor": host_executor("L", 1300, Some("alice")),
            "lineage": [],
            "action": {"threads": 4,
                "usage": {"cpu_user_ns": 2_000_000_000u64, "cpu_system_ns": 0u64, "peak_rss_kib": 4096, "lifetime_ns": 7_000_000_000u64, "since": "exec"}}}),
        json!({"kind": "exit", "time": "2026-12-01T10:00:03.000000000Z", "executor": by_ref,
            "action": {"exit_code": 0, "signal": null,
                "usage": {"cpu_user_ns": 1_500_000_000u64, "cpu_system_ns": 250_000_000u64, "peak_rss_kib": 4096, "lifetime_ns": 9_000_000_000u64}}}),
        // A reference to a process never described: counted, not guessed.
        json!({"kind": "connect", "executor": {"exec_id": "Z", "pid": 9, "tid": 9, "ref": true},
            "action": {"destination": {"ip": "192.0.2.9", "port": 1}}}),
        // An ssh login as the same uid.
        exec(
            host_executor("F", 1200, Some("alice")),
            json!([
            {"exec_id": "B", "pid": 40, "binary": "/bin/bash", "argv": ["-bash"]},
            {"exec_id": "D", "pid": 30, "binary": "/usr/sbin/sshd", "argv": ["sshd: alice"]},
            {"exec_id": "I", "pid": 1, "binary": "/sbin/init", "argv": ["init"]}]),
        ),
    ];
    let s = report(&events);
    assert_eq!(s.totals.unattributed, 1);
    assert_eq!(s.totals.unknown_ancestors, 0);
    let u = cred(&s, "uid:1200");
    assert_eq!(u.user.as_deref(), Some("svc"));
    assert!(u.shared);
    let roots: Vec<&str> = u
        .executors
        .iter()
        .map(|e| s.executors[e.executor as usize].root.as_str())
        .collect();
    assert!(roots.contains(&"cron: sh -c /opt/backup.sh"), "{roots:?}");
    assert!(roots.contains(&"ssh session, login alice"), "{roots:?}");
    let cron = s.executors.iter().find(|x| x.root_kind == "cron").unwrap();
    assert_eq!(cron.activity.connects, 1);
    assert_eq!(cron.activity.cpu_seconds, Some(1.75));
    let login = s.identities.iter().find(|i| i.kind == "login").unwrap();
    assert_eq!((login.name.as_str(), login.activity.execs), ("alice", 1));
    assert_eq!(login.activity.cpu_seconds, Some(2.0));
    assert!(render_table::render(&s, false).contains("1.75"));
    assert_eq!(
        s.period.first.as_deref(),
        Some("2026-12-01T09:00:00.000000000Z")
    );
}

#[test]
fn bad_lines_are_counted_and_the_chain_verdict_says_where() {
    let d = TempDir::new("report-bad");
    let good = exec(host_executor("E", 5, None), json!([]));
    let p = write_chained(&d, "e.jsonl", &[good.clone(), good.clone(), good]);
    let mut bytes = std::fs::read(&p).unwrap();
    // An edited record, then garbage, then a line cut off.
    let text = String::from_utf8(bytes.clone()).unwrap();
    let second = text
        .lines()
        .nth(1)
        .unwrap()
        .replace("\"uid\":5", "\"uid\":6");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[1] = second;
    lines.push("{\"kind\":\"exec\",\"executor\":[1,2".to_owned());
    lines.push("not json at all".to_owned());
    bytes = lines.join("\n").into_bytes();
    std::fs::write(&p, &bytes).unwrap();
    let s = read_files(&[p], None, Limits::default()).unwrap();
    assert_eq!(s.chain.verdict, "tampered");
    let at = s.chain.tampered_at.as_ref().unwrap();
    assert_eq!((at.line, at.seq), (2, Some(1)));
    assert_eq!(s.totals.unreadable, 2);
    // The edited line is still counted (and the verdict says it is not vouched for).
    assert_eq!(s.totals.execs, 3);
    assert!(cred(&s, "uid:6").activity.execs == 1);
    let h = render_html::render(&s).unwrap();
    assert!(h.contains(r#"data-verdict="tampered""#));
}

#[test]
fn tables_are_bounded_and_say_what_was_dropped() {
    let d = TempDir::new("report-bounded");
    let mut events = Vec::new();
    let one = host_executor("Q", 0, None);
    for port in 0..10u16 {
        events.push(connect(one.clone(), json!([]), "10.2.0.1", port, None));
    }
    for i in 0..20u64 {
        let mut x = host_executor(&format!("E{i}"), i, None);
        x["binary"] = format!("/bin/tool{i}").into();
        events.push(connect(
            x.clone(),
            json!([]),
            "10.1.0.1",
            1000 + i as u16,
            None,
        ));
    }
    let p = write_chained(&d, "e.jsonl", &events);
    let limits = Limits {
        executors: 5,
        credentials: 8,
        identities: 4,
        requestors: 4,
        destinations: 3,
        executors_per_credential: 2,
        pairs: 100,
        pair_destinations: 2,
        processes: 4,
        line_bytes: 1 << 20,
    };
    let s = read_files(&[p], None, limits).unwrap();
    assert_eq!(s.executors.len(), 5);
    assert_eq!(s.credentials.len(), 8);
    assert!(s.totals.executors_dropped > 0 && s.totals.credentials_dropped > 0);
    let q = cred(&s, "uid:0");
    assert_eq!(
        q.activity.connects, 11,
        "connects still counted past the cap"
    );
    assert_eq!(q.activity.destinations, 3);
    assert!(q.activity.destinations_at_least);
    assert!(q.shared && q.executors.len() == 2 && q.executors_dropped == 0);
    assert!(render_table::render(&s, false).contains(">=3"));
    assert!(render_table::render(&s, false).contains("limits reached"));
}

#[test]
fn html_escapes_what_events_control() {
    for (raw, want) in [
        (
            "<script>alert(1)</script>",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
        ),
        ("a\"b'c&d", "a&quot;b&#39;c&amp;d"),
        ("x\u{1b}[31m", "x\\u{1b}[31m"),
        ("plain é", "plain é"),
    ] {
        assert_eq!(esc(raw), want, "{raw:?}");
    }
    // A hostile argv and pod name reach the page only as text.
    let mut x = pod_executor(
        "A",
        "<img src=x onerror=alert(1)>",
        "\"><script>alert(2)</script>",
        1,
    );
    x["argv"] = json!(["/app/server", "<script>alert(3)</script>", "</style><b>"]);
    let s = report(&[exec(x, json!([]))]);
    let h = render_html::render(&s).unwrap();
    assert!(!h.contains("<script"), "{h}");
    assert!(!h.contains("<img"), "{h}");
    assert!(!h.contains("</style><b>"));
    assert!(h.contains("&lt;script&gt;alert(3)"));
    // Self-contained: no URL to fetch, and a policy forbidding any.
    assert!(!h.contains("http://") && !h.contains("https://"));
    assert!(h.contains("default-src 'none'"));
}

#[test]
fn a_line_longer_than_the_limit_is_skipped_and_counted() {
    let d = TempDir::new("report-long");
    let mut long = host_executor("L", 7, None);
    long["argv"] = json!(["x".repeat(5000)]);
    let events = [
        exec(host_executor("E", 5, None), json!([])),
        exec(long, json!([])),
        exec(host_executor("E", 5, None), json!([])),
    ];
    let p = write_chained(&d, "e.jsonl", &events);
    let limits = Limits {
        line_bytes: 2048,
        ..Limits::default()
    };
    let s = read_files(&[p], None, limits).unwrap();
    assert_eq!((s.totals.lines, s.totals.unreadable), (3, 1));
    assert_eq!(
        cred(&s, "uid:5").activity.execs,
        2,
        "the next line is read whole"
    );
    assert_eq!(s.chain.verdict, "tampered");
    assert_eq!(s.chain.tampered_at.as_ref().map(|t| t.line), Some(2));
}

/// The view by requestor: each run and actor, the executors and credentials
/// its actions used, their destinations; events without one are not in it.
#[test]
fn requestors_name_the_runs_behind_executors_and_credentials() {
    let req = |run: &str, actor: &str, claim: &str| {
        json!({"system": "github-actions", "run": run, "actor": actor,
            "display": format!("octo/app#{run}/1 by {actor}"), "source": "environment",
            "inherited_from": "STEP", "claim": claim, "truncated": true,
            "overrides": {"fields": {"actor": "x"}, "inherited_from": "Y", "system": "github-actions"}})
    };
    let mut a = pod_executor("A", "web-1", "web", 1000);
    a["requestor"] = req("9001", "alice", "runner");
    let mut b = pod_executor("B", "web-2", "api", 1001);
    b["requestor"] = req("9001", "alice", "descendant");
    let mut c = pod_executor("C", "web-3", "db", 1002);
    c["requestor"] = req("9002", "bob", "runner");
    let plain = pod_executor("D", "web-4", "cache", 1003);
    let l = lineage_in_pod();
    let s = report(&[
        exec(a.clone(), l.clone()),
        connect(a, l.clone(), "10.0.0.1", 443, Some("api.example")),
        exec(b, l.clone()),
        exec(c, l.clone()),
        exec(plain, l),
    ]);
    assert_eq!(s.requestors.len(), 2, "{:#?}", s.requestors);
    let r = &s.requestors[0];
    assert_eq!(
        (r.system.as_str(), r.run.as_deref(), r.actor.as_deref()),
        ("github-actions", Some("9001"), Some("alice"))
    );
    assert_eq!(r.claims, ["runner", "descendant"]);
    assert_eq!(r.executors.len(), 2);
    assert_eq!((r.activity.execs, r.activity.connects), (2, 1));
    assert_eq!(r.activity.top_destinations[0].connects, 1);
    assert!(r.credentials.contains(&"uid:1000".to_owned()), "{r:?}");
    assert!(
        r.credentials.contains(&"sa:shop/deployer".to_owned()),
        "{r:?}"
    );
    let table = render_table::render(&s, false);
    assert!(table.contains("octo/app#9001/1 by alice"), "{table}");
    let html = render_html::render(&s).unwrap();
    assert!(html.contains(r#"data-requestor-run="9001""#), "{html}");
    let j = serde_json::to_value(&s).unwrap();
    assert_eq!(j["requestors"][1]["actor"], "bob");
}
