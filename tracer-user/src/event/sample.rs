//! Sample events for tests elsewhere in the crate.
use std::sync::Arc;

use super::*;

/// An exec event for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn sample_exec_event() -> Event {
    let argv: Arc<[String]> =
        vec!["/bin/true".to_owned(), crate::escape::escape(b"a\nb\xff")].into();
    Event {
        event_id: EventId::new(UnixNanos(1_795_465_307_123_456_789), 42),
        time: UnixNanos(1_795_465_307_123_456_789),
        kind: Kind::Exec,
        host: Arc::new(Host {
            name: "node-1".into(),
            boot_id: "2605d5f8-57d8-408d-b1f2-343252d21f8e".into(),
        }),
        executor: sample_executor(),
        lineage: vec![Ancestor {
            exec_id: "p".into(),
            pid: 1,
            binary: "/sbin/init".into(),
            argv: vec!["init".to_owned()].into(),
            argv_truncated: false,
            image_source: None,
            workload: None,
            identity: None,
            json: None,
            brief: false,
        }],
        action: Action::Exec(ExecAction {
            binary: "/bin/true".into(),
            argv,
            argv_truncated: false,
            outcome: Outcome::Success,
            error: None,
            path_search: Vec::new(),
        }),
        policy: Arc::new(Policy {
            tracer_version: "0.1.0",
            config_digest: "sha256:00".into(),
        }),
    }
}

/// An executor for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn sample_executor() -> Executor {
    let argv: Arc<[String]> =
        vec!["/bin/true".to_owned(), crate::escape::escape(b"a\nb\xff")].into();
    Executor {
        exec_id: "abc".into(),
        pid: 42,
        tid: 42,
        ppid: 1,
        binary: "/bin/true".into(),
        argv: argv.clone(),
        argv_truncated: false,
        image_source: ImageSource::Exec,
        file: Some(FileId::new(
            crate::filehash::FileVersion {
                major: 0,
                minor: 31,
                ino: 4242,
                size: 3,
                ctime_sec: 1,
                ctime_nsec: 2,
            },
            &crate::filehash::HashState::Done(
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
            ),
        )),
        loader_env: None,
        credentials: Default::default(),
        cwd: Some("/".into()),
        cwd_source: Some(crate::event::CwdSource::Kernel),
        cwd_truncated: false,
        cwd_outside_root: false,
        comm: "true".into(),
        start_time: UnixNanos(0),
        user: User {
            uid: 1001,
            name: Some("deploy".into()),
            gid: 1001,
            group: None,
            euid: 1001,
            egid: 1001,
        },
        authority: super::authority::sample_authority(1001),
        login: None,
        requestor: None,
        cgroup: Cgroup {
            id: 7,
            path: Some("/system.slice/x.service".into()),
            hierarchy: HIERARCHY_V2,
            v1_id: None,
            path_truncated: false,
        },
        namespaces: Namespaces {
            pid: 1,
            mnt: 2,
            net: 3,
        },
        workload: Arc::new(Workload {
            kind: crate::identity::workload::WorkloadKind::Service,
            container: None,
            pod: None,
            unit: Some("x.service".into()),
            claim: None,
        }),
        identity: Arc::new(Identity {
            spiffe_ids: vec!["spiffe://example.org/x".into()],
            selectors: vec!["systemd:id:x.service".to_owned()].into(),
            source: vec!["entry:1".into()],
            status: IdentityStatus::Resolved,
        }),
    }
}
