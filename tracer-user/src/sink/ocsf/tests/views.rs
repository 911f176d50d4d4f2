//! The views of `unmapped` carry every field our JSON has: a field added to
//! the model and not to its view fails here.
use serde::Serialize;
use serde_json::Value;

use super::{super::unmapped::*, fixtures::*};
use crate::{
    event::{BudgetCounts, Cgroup, Claim, FileId, Identity, LossCounts, SinkGap, Workload},
    filehash::{FileVersion, HashState},
    identity::workload::WorkloadKind,
};

/// Our JSON as the OCSF output carries it: unknowns left out.
fn ours_without_nulls<T: Serialize>(v: &T) -> Value {
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
    drop_nulls(serde_json::to_value(v).unwrap())
}

fn assert_carries<T: Serialize, V: Serialize>(model: &T, view: V) {
    let want = ours_without_nulls(model);
    let have = serde_json::to_value(view).unwrap();
    assert_eq!(have, want);
    // Names in order, as a map would have them: the lines stay byte-identical.
    assert_eq!(serde_json::to_string(&have).unwrap(), want.to_string());
}

fn workloads() -> Vec<std::sync::Arc<Workload>> {
    let claim = Claim {
        kind: WorkloadKind::Container,
        pod_uid: Some(POD_UID.into()),
        container_id: Some(CONTAINER_ID.into()),
        runtime: Some("containerd".into()),
        unit: Some("x.scope".into()),
    };
    let mut with_claim = (*pod_workload()).clone();
    with_claim.claim = Some(claim);
    with_claim.unit = Some("user@1000.service".into());
    if let Some(c) = &mut with_claim.container {
        c.namespace = Some("k8s.io".into());
    }
    if let Some(p) = &mut with_claim.pod {
        p.labels_truncated = true;
    }
    vec![
        pod_workload(),
        host_workload("sshd.service", WorkloadKind::Service),
        std::sync::Arc::new(with_claim),
    ]
}

#[test]
fn workload_views_carry_every_field() {
    for w in workloads() {
        assert_carries(&*w, FullWorkloadView::from(&*w));
        if let Some(p) = &w.pod {
            assert_carries(p, PodView::from(p));
        }
        if let Some(c) = &w.claim {
            assert_carries(c, ClaimView::from(c));
        }
    }
}

#[test]
fn executor_views_carry_every_field() {
    let ev = exec_in_pod();
    let x = &ev.executor;
    assert_carries(&x.namespaces, NamespacesView::from(&x.namespaces));
    assert_carries(&x.authority, AuthorityView::from(&x.authority));
    assert_carries(&x.cgroup, CgroupView::from(&x.cgroup));
    let v1 = Cgroup {
        id: 1,
        path: Some("/docker/x".into()),
        hierarchy: "v1:memory",
        v1_id: Some(9157),
        path_truncated: true,
    };
    assert_carries(&v1, CgroupView::from(&v1));
    let id: &Identity = &x.identity;
    assert_carries(id, FullIdentityView::from(id));
    let version = FileVersion {
        major: 8,
        minor: 1,
        ino: 42,
        size: 3,
        ctime_sec: 1,
        ctime_nsec: 0,
    };
    let f = |k: &str, v: &str| (std::sync::Arc::<str>::from(k), v.to_owned());
    let r = crate::event::Requestor {
        values: crate::event::RequestorValues {
            system: "gitlab-ci".into(),
            fields: vec![f("run", "7"), f("job", "8"), f("actor", "bob")],
            truncated: true,
            display: "p pipeline 7 job 8 by bob".into(),
        },
        inherited_from: "x".into(),
        claim: crate::event::RequestorClaim::Runner,
        overrides: Some(crate::event::Overrides {
            inherited_from: "y".into(),
            system: "gitlab-ci".into(),
            fields: vec![(std::sync::Arc::from("actor"), Some("alice".into()))],
        }),
    };
    assert_carries(&r, RequestorView(&r));
    for state in [HashState::Done("ab".repeat(32).into()), HashState::Pending] {
        let f = FileId::new(version, &state);
        assert_carries(&f, FileView::from(&f));
    }
}

#[test]
fn loss_views_carry_every_field() {
    let lost = LossCounts {
        ring_full: 1,
        read_fault: 2,
        pending_full: 3,
        scratch: 4,
        malformed: 5,
        sink_error: 6,
        sends_unreported: 7,
    };
    assert_carries(&lost, LostView::from(&lost));
    let budget = BudgetCounts {
        processes_evicted: 1,
        exited_evicted_early: 2,
        argv_cut: 3,
        released_early: 4,
    };
    assert_carries(&budget, BudgetView::from(&budget));
    let gaps = [
        SinkGap {
            records: 3,
            after_seq: Some(41),
            after_hash: Some("ab".into()),
        },
        SinkGap {
            records: 3,
            after_seq: None,
            after_hash: None,
        },
    ];
    for g in &gaps {
        assert_carries(g, GapView::from(g));
    }
}

#[test]
fn authority_views_carry_every_field() {
    use crate::event::{Authority, NsUid, UserNamespace};
    let base = container_authority();
    let mut cases = vec![base];
    let mut all_sets = base;
    if let Some(c) = &mut all_sets.capabilities {
        c.effective = c.all;
        c.permitted = 1 << 13;
        c.inheritable = 1 << 13;
        c.ambient = 1 << 13 | 1 << 50;
        c.bounding = c.all;
    }
    cases.push(all_sets);
    for uid in [
        NsUid::Mapped(0),
        NsUid::Unmapped,
        NsUid::NotRead,
        NsUid::Unknown,
    ] {
        cases.push(Authority {
            user_namespace: Some(UserNamespace {
                inum: 4_026_532_001,
                level: 2,
                owner_uid: 65534,
                uid,
            }),
            ..base
        });
    }
    cases.push(Authority {
        capabilities: None,
        no_new_privs: None,
        seccomp: None,
        user_namespace: None,
    });
    for a in cases {
        assert_carries(&a, AuthorityView::from(&a));
    }
}
