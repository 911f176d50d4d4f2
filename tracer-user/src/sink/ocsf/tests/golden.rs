//! Golden lines: the exact bytes the OCSF output writes for a set of events
//! covering every class, activity and status, and the optional parts set and
//! unset. They were captured before OCSF moved from `serde_json::Map` to typed
//! structs; any change to them is a change of output.
//!
//! `TRACER_BLESS_OCSF=1 cargo test -p tracer-user --lib golden` rewrites them.
use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use super::fixtures::*;
use crate::{
    event::{
        Action, Ancestor, BudgetCounts, Claim, Container, Event, ExitAction, FileId, Identity,
        IdentityStatus, LossRecord, Outcome, Pod, Workload,
    },
    filehash::{FileVersion, HashState},
    identity::workload::WorkloadKind,
};

/// One OCSF line as the sink writes it, and where its chain link goes.
fn event_line(ev: &Event) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let at = super::super::write(&super::super::event_to_ocsf(ev), &mut out);
    (out, at)
}

fn loss_line(l: &LossRecord) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let at = super::super::write(&super::super::loss_to_ocsf(l), &mut out);
    (out, at)
}

fn with_exec(mut ev: Event, f: impl FnOnce(&mut crate::event::ExecAction)) -> Event {
    if let Action::Exec(a) = &mut ev.action {
        f(a);
    }
    ev
}

fn with_connect(mut ev: Event, f: impl FnOnce(&mut crate::event::ConnectAction)) -> Event {
    if let Action::Connect(a) = &mut ev.action {
        f(a);
    }
    ev
}

/// The executed file hashed, loader variables set, a v1 cgroup cut short, argv cut.
/// An exec that ended a PATH search, with the misses folded into it.
fn exec_path_search() -> Event {
    let mut ev = exec_in_pod();
    if let Action::Exec(x) = &mut ev.action {
        x.path_search = ["/root/.cargo/bin/curl", "/usr/local/bin/curl"]
            .iter()
            .zip(["ENOENT", "EACCES"])
            .map(|(path, error)| crate::event::PathAttempt {
                path: (*path).into(),
                error: error.into(),
            })
            .collect();
    }
    ev
}

fn exec_hashed() -> Event {
    let mut ev = exec_in_pod();
    let v = FileVersion {
        major: 8,
        minor: 1,
        ino: 42,
        size: 3,
        ctime_sec: 1,
        ctime_nsec: 0,
    };
    let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    ev.executor.file = Some(FileId::new(v, &HashState::Done(sha.into())));
    ev.executor.loader_env = Some(Arc::new(BTreeMap::from([
        ("LD_PRELOAD".to_owned(), "/tmp/x.so".to_owned()),
        ("LD_AUDIT".to_owned(), "a".to_owned()),
    ])));
    ev.executor.argv_truncated = true;
    ev.executor.cgroup.hierarchy = "v1:memory";
    ev.executor.cgroup.v1_id = Some(9157);
    ev.executor.cgroup.path_truncated = true;
    ev.executor.image_source = crate::event::ImageSource::Proc;
    ev
}

/// Hash pending: the file is there, its hash is not.
fn exec_hash_pending() -> Event {
    let mut ev = exec_in_pod();
    let v = FileVersion {
        major: 253,
        minor: 0,
        ino: 7,
        size: 9,
        ctime_sec: 2,
        ctime_nsec: 5,
    };
    ev.executor.file = Some(FileId::new(v, &HashState::Pending));
    ev
}

/// A pod named inside a user manager: only claimed, no container.
fn exec_claim() -> Event {
    let mut ev = exec_in_pod();
    ev.executor.workload = Arc::new(Workload {
        kind: WorkloadKind::Service,
        container: None,
        pod: None,
        unit: Some("user@1000.service".into()),
        claim: Some(Claim {
            kind: WorkloadKind::Container,
            pod_uid: Some(POD_UID.into()),
            container_id: Some(CONTAINER_ID.into()),
            runtime: None,
            unit: None,
        }),
    });
    ev
}

/// Nothing known beyond the kernel's record: no lineage, names, cwd or identity.
fn exec_bare(outcome: Outcome, ppid: u32) -> Event {
    let mut ev = with_exec(exec_in_pod(), |a| a.outcome = outcome);
    ev.lineage.clear();
    ev.executor.ppid = ppid;
    ev.executor.cwd = None;
    ev.executor.cwd_source = None;
    ev.executor.user.name = None;
    ev.executor.user.group = None;
    ev.executor.image_source = crate::event::ImageSource::Comm;
    ev.executor.cgroup.path = None;
    ev.executor.workload = Arc::new(Workload {
        kind: WorkloadKind::Host,
        container: None,
        pod: None,
        unit: None,
        claim: None,
    });
    ev.executor.identity = Arc::new(Identity {
        spiffe_ids: vec![],
        selectors: Vec::new().into(),
        source: vec![],
        status: IdentityStatus::Unresolved,
    });
    ev
}

/// A static pod (32-hex uid, not a UUID), an image pinned by digest, little metadata.
fn exec_static_pod() -> Event {
    let mut ev = exec_in_pod();
    ev.executor.workload = Arc::new(Workload {
        kind: WorkloadKind::Pod,
        container: Some(Container {
            id: CONTAINER_ID.into(),
            runtime: None,
            name: None,
            image: Some("registry.k8s.io/etcd@sha256:0123abcd".into()),
            namespace: Some("k8s.io".into()),
        }),
        pod: Some(Pod {
            uid: "0123456789abcdef0123456789abcdef".into(),
            name: None,
            namespace: Some("kube-system".into()),
            service_account: None,
            labels: None,
            labels_truncated: true,
            owner: None,
            service_account_token: None,
        }),
        unit: None,
        claim: None,
    });
    ev.executor.identity = Arc::new(Identity {
        spiffe_ids: vec![],
        selectors: vec!["k8s:ns:kube-system".to_owned()].into(),
        source: vec![],
        status: IdentityStatus::Partial,
    });
    ev
}

/// A plain docker container: no pod, no orchestrator.
fn exec_docker() -> Event {
    let mut ev = exec_in_pod();
    ev.executor.workload = Arc::new(Workload {
        kind: WorkloadKind::Container,
        container: Some(Container {
            id: CONTAINER_ID.into(),
            runtime: Some("docker".into()),
            name: Some("web".into()),
            image: Some("nginx:1.27".into()),
            namespace: None,
        }),
        pod: None,
        unit: Some(format!("docker-{CONTAINER_ID}.scope")),
        claim: None,
    });
    ev
}

/// Bytes a terminal must not see raw, quotes, a backslash and an escaped byte.
fn exec_hostile_argv() -> Event {
    let args: Arc<[String]> = [
        "sh",
        "-c",
        "echo \"a\\b\"\n\u{9b}31m\u{202e}txt.exe\u{7f}",
        "\\xff",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let mut ev = with_exec(exec_in_pod(), |a| {
        a.binary = "/bin/s\th".into();
        a.argv = args.clone();
    });
    ev.executor.binary = "/bin/s\th".into();
    ev.executor.argv = args;
    ev.executor.cwd = Some("/tmp/\u{1b}[2J".into());
    ev
}

/// A cwd the probe's walk could not give: read from /proc, outside the
/// process's root; and one cut at the walk's bound.
fn exec_cwd_marked() -> [(&'static str, Event); 2] {
    let mut proc = exec_in_pod();
    proc.executor.cwd = Some("/srv/outside".into());
    proc.executor.cwd_source = Some(crate::event::CwdSource::Proc);
    proc.executor.cwd_outside_root = true;
    let mut cut = exec_in_pod();
    cut.executor.cwd = Some(".../deep/er".into());
    cut.executor.cwd_truncated = true;
    [
        ("exec_cwd_from_proc_outside_root", proc),
        ("exec_cwd_truncated", cut),
    ]
}

/// A login whose session and terminal are unknown, and a foreign ancestor
/// known by its identity only.
fn exec_login_without_session() -> Event {
    let mut ev = failed_exec();
    if let Some(l) = &mut ev.executor.login {
        l.session_id = None;
        l.tty = None;
        l.name = None;
    }
    ev.lineage.push(Ancestor {
        exec_id: "exec-1".into(),
        pid: 1,
        binary: "/usr/lib/systemd/systemd".into(),
        argv: Arc::from(vec!["/sbin/init".to_owned()]),
        argv_truncated: true,
        image_source: Some(crate::event::ImageSource::Proc),
        workload: None,
        identity: Some(Arc::new(Identity {
            spiffe_ids: vec!["spiffe://example.org/node".into()],
            selectors: vec!["systemd:id:init.scope".to_owned()].into(),
            source: vec!["entry:0".into()],
            status: IdentityStatus::Resolved,
        })),
        json: None,
        brief: false,
    });
    ev
}

/// A CI step's child: the requestor from GitHub Actions, inherited, having
/// overridden its parent's actor, one value cut.
fn exec_requestor() -> Event {
    use crate::event::{Overrides, Requestor, RequestorClaim, RequestorValues};
    let mut ev = exec_in_pod();
    let f = |k: &str, v: &str| (Arc::<str>::from(k), v.to_owned());
    ev.executor.requestor = Some(Arc::new(Requestor {
        values: RequestorValues {
            system: "github-actions".into(),
            fields: vec![
                f("run", "9001"),
                f("attempt", "2"),
                f("repository", "octo/app"),
                f("actor", "mallory"),
            ],
            truncated: true,
            display: "octo/app#9001/2 by mallory".into(),
        },
        inherited_from: "exec-4000".into(),
        claim: RequestorClaim::Descendant,
        overrides: Some(Overrides {
            inherited_from: "exec-3000".into(),
            system: "github-actions".into(),
            fields: vec![(Arc::from("actor"), Some("alice".into()))],
        }),
    }));
    ev
}

fn exit_normal() -> Event {
    let mut ev = exit_killed();
    ev.action = Action::Exit(ExitAction {
        exit_code: 0,
        signal: None,
        usage: None,
    });
    ev
}

/// A usage sample of a live image with more threads than a sweep adds up.
fn usage_sample() -> Event {
    let mut ev = exit_killed();
    ev.kind = crate::event::Kind::Usage;
    ev.action = Action::Usage(crate::event::UsageAction {
        usage: crate::event::Usage {
            cpu_user_ns: 3_600_000_000_000,
            cpu_system_ns: 120_000_000_000,
            peak_rss_kib: 512_000,
            lifetime_ns: 86_400_000_000_000,
            since: crate::event::UsageSince::Exec,
        },
        threads: 256,
        threads_cut: true,
    });
    ev
}

fn tcp(
    family: &'static str,
    dst: (&str, u16),
    src: Option<(&str, u16)>,
    outcome: Outcome,
    error: Option<&str>,
) -> Event {
    connect("tcp", family, dst, src, outcome, error)
}

/// A summary of 41 connects (`--aggregate-connects 2`), the last refused.
fn connect_aggregate() -> Event {
    let ev = tcp(
        "ipv4",
        ("10.96.12.7", 8080),
        None,
        Outcome::Failure,
        Some("ECONNREFUSED"),
    );
    let last = ev.time;
    with_connect(ev, |c| {
        c.aggregate = Some(Box::new(crate::event::Aggregate {
            window_s: 2,
            count: 41,
            first_time: crate::event::UnixNanos(last.0 - 1_500_000_000),
            last_time: last,
            outcomes: crate::event::OutcomeCounts {
                success: 38,
                in_progress: 0,
                failure: 3,
                unknown: 0,
            },
            errors: BTreeMap::from([("ECONNREFUSED".to_owned(), 3)]),
        }));
    })
}

/// A connect to a Service's ClusterIP and one to a pod on this node, named
/// from the cluster's Services and EndpointSlices.
fn connect_named() -> Vec<(&'static str, Event)> {
    use crate::event::{DestPod, DestService};
    let svc = with_connect(
        tcp("ipv4", ("10.96.3.7", 443), None, Outcome::Success, None),
        |c| {
            c.destination.service = Some(Arc::new(DestService {
                namespace: "shop".into(),
                name: "cart".into(),
                port_name: Some("https".into()),
            }));
        },
    );
    let pod = with_connect(
        tcp("ipv4", ("10.244.1.9", 8443), None, Outcome::Success, None),
        |c| {
            c.destination.pod = Some(Arc::new(DestPod {
                namespace: "shop".into(),
                name: "cart-0".into(),
                spiffe_id: Some("spiffe://cluster.local/ns/shop/sa/cart".into()),
            }));
        },
    );
    vec![("connect_v4_service", svc), ("connect_v4_pod", pod)]
}

fn loss_with_budget() -> LossRecord {
    let mut l = loss();
    l.lost = Default::default();
    l.lost.malformed = 1;
    l.gap = None;
    l.budget = BudgetCounts {
        processes_evicted: 2,
        exited_evicted_early: 0,
        argv_cut: 5,
        released_early: 1,
    };
    l
}

fn events() -> Vec<(&'static str, Event)> {
    let v4 = ("10.96.12.7", 8080);
    let v6 = ("fd00:10:96::7", 443);
    let src6 = Some(("fd00:10:244::17", 40000));
    vec![
        ("exec_in_pod", exec_in_pod()),
        ("exec_failed", failed_exec()),
        ("exec_path_search", exec_path_search()),
        ("exec_hashed", exec_hashed()),
        ("exec_requestor", exec_requestor()),
        ("exec_hash_pending", exec_hash_pending()),
        ("exec_claim", exec_claim()),
        ("exec_unknown_ppid_only", exec_bare(Outcome::Unknown, 4000)),
        (
            "exec_in_progress_no_parent",
            exec_bare(Outcome::InProgress, 0),
        ),
        ("exec_static_pod", exec_static_pod()),
        ("exec_docker", exec_docker()),
        ("exec_hostile_argv", exec_hostile_argv()),
        ("exec_login_without_session", exec_login_without_session()),
        ("connect_v4_success", tcp_connect()),
        (
            "connect_v4_refused",
            tcp("ipv4", v4, None, Outcome::Failure, Some("ECONNREFUSED")),
        ),
        (
            "connect_v4_timeout",
            tcp("ipv4", v4, None, Outcome::Failure, Some("ETIMEDOUT")),
        ),
        (
            "connect_v4_in_progress",
            tcp("ipv4", v4, None, Outcome::InProgress, None),
        ),
        (
            "connect_v4_unknown",
            tcp("ipv4", v4, None, Outcome::Unknown, None),
        ),
        (
            "connect_v6_success",
            tcp("ipv6", v6, src6, Outcome::Success, None),
        ),
        ("connect_v6_refused", refused_ipv6()),
        (
            "connect_v6_unreachable",
            tcp("ipv6", v6, None, Outcome::Failure, Some("ENETUNREACH")),
        ),
        (
            "connect_v6_in_progress",
            tcp("ipv6", v6, src6, Outcome::InProgress, None),
        ),
        (
            "connect_v4_mapped",
            with_connect(tcp("ipv4", v4, None, Outcome::Success, None), |c| {
                c.socket_family = Some("ipv6");
                c.outcome_from = Some("syscall");
            }),
        ),
        ("connect_udp", udp_connect()),
        (
            "connect_udp_sendmsg",
            with_connect(
                connect(
                    "udp",
                    "ipv6",
                    ("fd00::53", 53),
                    None,
                    Outcome::Unknown,
                    None,
                ),
                |c| {
                    c.method = "sendmsg";
                    c.in_syscall = false;
                    c.outcome_from = None;
                },
            ),
        ),
        (
            "connect_sctp",
            connect("sctp", "ipv4", v4, None, Outcome::Success, None),
        ),
        (
            "connect_raw_number",
            connect("132", "ipv4", v4, None, Outcome::Success, None),
        ),
        (
            "connect_unknown_protocol_name",
            connect("mptcp", "ipv4", v4, None, Outcome::Success, None),
        ),
        ("connect_v4_aggregate", connect_aggregate()),
        ("fork_in_pod", fork_in_pod()),
        ("exit_killed", exit_killed()),
        ("exit_normal", exit_normal()),
        ("usage_sample", usage_sample()),
    ]
    .into_iter()
    .chain(connect_named())
    .chain(exec_cwd_marked())
    .collect()
}

fn losses() -> Vec<(&'static str, LossRecord)> {
    vec![("loss", loss()), ("loss_budget", loss_with_budget())]
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/sink/ocsf/tests/golden")
}

fn all_lines() -> Vec<(&'static str, Vec<u8>, usize)> {
    let mut lines: Vec<_> = events()
        .iter()
        .map(|(name, ev)| {
            let (line, at) = event_line(ev);
            (*name, line, at)
        })
        .collect();
    lines.extend(losses().iter().map(|(name, l)| {
        let (line, at) = loss_line(l);
        (*name, line, at)
    }));
    lines
}

#[test]
fn lines_match_golden_files() {
    let bless = std::env::var_os("TRACER_BLESS_OCSF").is_some();
    let dir = golden_dir();
    let mut failed = Vec::new();
    for (name, line, at) in all_lines() {
        // The link goes last inside `unmapped`, which is last and never empty.
        assert_eq!(at, line.len() - 2, "{name}");
        assert_eq!(&line[at..], b"}}", "{name}");
        let path = dir.join(format!("{name}.json"));
        let mut want = line.clone();
        want.push(b'\n');
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        let have = std::fs::read(&path).unwrap_or_default();
        if have != want {
            failed.push(format!(
                "{name}:\n want {}\n have {}",
                String::from_utf8_lossy(&have),
                String::from_utf8_lossy(&want)
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Every golden line is valid OCSF 1.8.0 with the host and container profiles.
#[test]
fn golden_lines_validate_against_ocsf() {
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
    let mut text = Vec::new();
    let lines = all_lines();
    for (_, line, _) in &lines {
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    let path =
        std::env::temp_dir().join(format!("tracer-ocsf-golden-{}.jsonl", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/ocsf/validate_ocsf.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(["--version", "1.8.0"])
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    let out = out.expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "OCSF validation failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{} passed, 0 failed", lines.len())),
        "{stdout}"
    );
}
