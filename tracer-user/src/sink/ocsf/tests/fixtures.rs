//! Events for the OCSF tests: a pod, a login session, the connects of each outcome.
use std::{collections::BTreeMap, sync::Arc};

use crate::{
    event::{
        Action, Ancestor, Cgroup, ConnectAction, Container, Endpoint, Event, EventId, ExecAction,
        Executor, ExitAction, ForkAction, Host, Identity, IdentityStatus, Kind, Login, LossCounts,
        LossRecord, Namespaces, Outcome, Pod, PodOwner, Policy, UnixNanos, User, Workload,
    },
    identity::workload::WorkloadKind,
};

pub(super) const T0: i128 = 1_795_465_307_123_456_789;
pub(super) const POD_UID: &str = "6b0a8f0e-3c1d-4e7a-9b2f-0d5e6c7a8b90";
pub(super) const CONTAINER_ID: &str =
    "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";

pub(super) fn argv(args: &[&str]) -> Arc<[String]> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

pub(super) fn pod_workload() -> Arc<Workload> {
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
                via: None,
            }),
            service_account_token: Some(true),
        }),
        unit: None,
        claim: None,
    })
}

pub(super) fn pod_identity() -> Arc<Identity> {
    Arc::new(Identity {
        spiffe_ids: vec!["spiffe://example.org/ns/shop/sa/web".into()],
        selectors: vec!["k8s:ns:shop".to_owned(), "k8s:sa:web".to_owned()].into(),
        source: vec!["default".into()],
        status: IdentityStatus::Resolved,
    })
}

pub(super) fn host_workload(unit: &str, kind: WorkloadKind) -> Arc<Workload> {
    Arc::new(Workload {
        kind,
        container: None,
        pod: None,
        unit: Some(unit.into()),
        claim: None,
    })
}

pub(super) fn executor(
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
        credentials: crate::event::Credentials {
            env: Some(Arc::new(crate::event::CredentialEnv {
                names: vec!["AWS_SECRET_ACCESS_KEY".into(), "GITHUB_TOKEN".into()],
                incomplete: false,
            })),
            service_account_token: Some(true),
        },
        cwd: Some("/app".into()),
        cwd_source: Some(crate::event::CwdSource::Kernel),
        cwd_truncated: false,
        cwd_outside_root: false,
        comm: binary
            .rsplit('/')
            .next()
            .unwrap_or(binary)
            .chars()
            .take(15)
            .collect(),
        start_time: UnixNanos(T0 - 2_000_000_000),
        user: User {
            uid: 1000,
            name: Some("app".into()),
            gid: 1000,
            group: Some("app".into()),
            euid: 1000,
            egid: 1000,
        },
        authority: container_authority(),
        login: None,
        requestor: None,
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

pub(super) fn event(
    kind: Kind,
    executor: Executor,
    lineage: Vec<Ancestor>,
    action: Action,
) -> Event {
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
pub(super) fn pod_lineage() -> Vec<Ancestor> {
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
            brief: false,
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
            brief: false,
        },
    ]
}

pub(super) fn exec_in_pod() -> Event {
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
            path_search: Vec::new(),
        }),
    )
}

/// An ssh login session on the host tries a binary that is not there.
pub(super) fn failed_exec() -> Event {
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
            brief: false,
        }],
        Action::Exec(ExecAction {
            binary: "/usr/local/bin/missing".into(),
            argv: argv(&["missing", "--flag"]),
            argv_truncated: true,
            outcome: Outcome::Failure,
            error: Some("ENOENT".into()),
            path_search: Vec::new(),
        }),
    )
}

pub(super) fn connect(
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
        ..Default::default()
    };
    event(
        Kind::Connect,
        x,
        pod_lineage(),
        Action::Connect(Box::new(ConnectAction {
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
            aggregate: None,
        })),
    )
}

pub(super) fn tcp_connect() -> Event {
    connect(
        "tcp",
        "ipv4",
        ("10.96.12.7", 8080),
        Some(("10.244.1.17", 43512)),
        Outcome::Success,
        None,
    )
}

pub(super) fn refused_ipv6() -> Event {
    connect(
        "tcp",
        "ipv6",
        ("fd00:10:96::7", 443),
        None,
        Outcome::Failure,
        Some("ECONNREFUSED"),
    )
}

pub(super) fn udp_connect() -> Event {
    connect(
        "udp",
        "ipv4",
        ("10.96.0.10", 53),
        Some(("10.244.1.17", 51000)),
        Outcome::Success,
        None,
    )
}

pub(super) fn exit_killed() -> Event {
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
            usage: Some(crate::event::Usage {
                cpu_user_ns: 1_500_000_000,
                cpu_system_ns: 250_000_000,
                peak_rss_kib: 20480,
                lifetime_ns: 61_000_000_000,
                since: crate::event::UsageSince::Exec,
            }),
        }),
    )
}

pub(super) fn fork_in_pod() -> Event {
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

pub(super) fn loss() -> LossRecord {
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

/// A container's unprivileged process as a runtime starts it by default: a
/// reduced bounding set, its seccomp profile, the host's user namespace.
pub(super) fn container_authority() -> crate::event::Authority {
    use crate::event::{Authority, Capabilities, NsUid, Seccomp, UserNamespace};
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
    let bounding = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31]
        .iter()
        .fold(0u64, |m, n| m | 1 << n);
    Authority {
        capabilities: Some(Capabilities {
            effective: 0,
            permitted: 0,
            inheritable: 0,
            ambient: 0,
            bounding,
            all: (1 << 41) - 1,
        }),
        no_new_privs: Some(false),
        seccomp: Some(Seccomp::Filter),
        user_namespace: Some(UserNamespace {
            inum: 4_026_531_837,
            level: 0,
            owner_uid: 0,
            uid: NsUid::Mapped(1000),
        }),
    }
}
