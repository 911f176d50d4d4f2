//! `unmapped`: what OCSF has no attribute for, under our own JSON names.
//!
//! The parts of our model carried here are written in the OCSF output's form
//! (names sorted, unknowns left out rather than null), so each has its view
//! here; tests check that the views carry every field of our JSON.
use serde::Serialize;

use crate::{
    event::{
        Ancestor, Authority, BudgetCounts, Capabilities, Cgroup, Claim, Container, CwdSource,
        Event, Executor, FileId, Identity, IdentityStatus, ImageSource, LoaderEnv, LossCounts,
        Namespaces, Pod, PodOwner, Policy, Seccomp, Selectors, SinkGap, UserNamespace, Workload,
        authority::CapSet,
    },
    filehash::HashStatus,
    identity::{kube::Labels, workload::WorkloadKind},
};

/// `unmapped` of a Process or Network Activity.
#[derive(Serialize)]
pub struct EventUnmapped<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionView<'a>>,
    pub argv: &'a [String],
    pub authority: AuthorityView,
    pub cgroup: CgroupView<'a>,
    /// Names of credential variables, never values (`executor.credentials`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<&'a crate::event::Credentials>,
    /// How `process.working_directory` was learned (`executor.cwd_*`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cwd_outside_root: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd_source: Option<CwdSource>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cwd_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileView<'a>>,
    pub identity: ExecutorIdentityView<'a>,
    pub image_source: ImageSource,
    #[serde(skip_serializing_if = "LineageView::is_empty")]
    pub lineage: LineageView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loader_env: Option<&'a LoaderEnv>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<LoginView<'a>>,
    pub namespaces: NamespacesView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodView<'a>>,
    pub policy: PolicyView<'a>,
    /// `executor.requestor`, its names sorted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requestor: Option<RequestorView<'a>>,
    pub spiffe_ids: &'a [String],
    pub user: EffectiveUser,
    pub workload: ExecutorWorkloadView<'a>,
}

impl<'a> EventUnmapped<'a> {
    /// Everything about the executor and its lineage; `argv` is the one the
    /// event's process ran (or tried to).
    pub fn new(ev: &'a Event, argv: &'a [String], action: Option<ActionView<'a>>) -> Self {
        let x: &'a Executor = &ev.executor;
        let id = &x.identity;
        EventUnmapped {
            action,
            argv,
            authority: AuthorityView::from(&x.authority),
            cgroup: CgroupView::from(&x.cgroup),
            credentials: (!x.credentials.is_empty()).then_some(&x.credentials),
            cwd_outside_root: x.cwd_outside_root,
            cwd_source: x.cwd_source,
            cwd_truncated: x.cwd_truncated,
            file: x.file.as_ref().map(FileView::from),
            identity: ExecutorIdentityView {
                selectors: &id.selectors,
                source: &id.source,
                status: id.status,
            },
            image_source: x.image_source,
            lineage: LineageView(&ev.lineage),
            loader_env: x.loader_env.as_deref(),
            login: x.login.as_ref().map(|l| LoginView {
                auid: l.auid,
                name: l.name.as_deref(),
            }),
            namespaces: NamespacesView::from(&x.namespaces),
            pod: x.workload.pod.as_ref().map(PodView::from),
            policy: PolicyView::from(&*ev.policy),
            requestor: x.requestor.as_deref().map(RequestorView),
            spiffe_ids: &id.spiffe_ids,
            user: EffectiveUser {
                egid: x.user.egid,
                euid: x.user.euid,
            },
            workload: ExecutorWorkloadView {
                claim: x.workload.claim.as_ref().map(ClaimView::from),
                kind: x.workload.kind,
                unit: x.workload.unit.as_deref(),
            },
        }
    }
}

/// What the event's action says beyond OCSF's attributes; each kind sets its own.
#[derive(Default, Serialize)]
pub struct ActionView<'a> {
    /// A connect summary (`--aggregate-connects`): what OCSF's `count`,
    /// `start_time` and `end_time` do not say (the window, the outcome and
    /// error counts, the times in ns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<&'a crate::event::Aggregate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv_truncated: Option<bool>,
    /// A connect destination's Kubernetes names, whole (OCSF's `svc_name`
    /// and `name` hold only part of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<DestinationView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_syscall: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_from: Option<&'static str>,
    /// An exec that ended a PATH search: the failed attempts folded into it
    /// (`--exec-attempts fold`), as in our JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_search: Option<&'a [crate::event::PathAttempt]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_cookie: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_family: Option<&'static str>,
    /// An exit's usage (CPU, peak RSS, lifetime): OCSF's process has no place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<&'a crate::event::Usage>,
    /// A usage sample's live threads counted, and whether there were more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads_cut: Option<bool>,
}

/// `action.destination`'s Service and pod, as in our JSON.
#[derive(Serialize)]
pub struct DestinationView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<&'a crate::event::DestPod>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<&'a crate::event::DestService>,
}

impl<'a> DestinationView<'a> {
    /// None when the destination is named by neither.
    pub fn of(d: &'a crate::event::Endpoint) -> Option<Self> {
        (d.service.is_some() || d.pod.is_some()).then_some(DestinationView {
            pod: d.pod.as_deref(),
            service: d.service.as_deref(),
        })
    }
}

/// The executor's identity; its SPIFFE IDs are `unmapped.spiffe_ids`.
#[derive(Serialize)]
pub struct ExecutorIdentityView<'a> {
    pub selectors: &'a Selectors,
    pub source: &'a [String],
    pub status: IdentityStatus,
}

/// The executor's workload; its container and pod are OCSF's (and `unmapped.pod`).
#[derive(Serialize)]
pub struct ExecutorWorkloadView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimView<'a>>,
    pub kind: WorkloadKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'a str>,
}

#[derive(Serialize)]
pub struct LoginView<'a> {
    pub auid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
}

/// OCSF has the effective ids only in the linux_users profile.
#[derive(Serialize)]
pub struct EffectiveUser {
    pub egid: u32,
    pub euid: u32,
}

/// The executor's authority (`executor.authority`): OCSF 1.8 has no
/// attribute for capabilities, no_new_privs, seccomp or user namespaces.
#[derive(Serialize)]
pub struct AuthorityView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<CapabilitiesView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_new_privs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_namespace: Option<UserNamespaceView>,
}

impl From<&Authority> for AuthorityView {
    fn from(a: &Authority) -> Self {
        AuthorityView {
            capabilities: a.capabilities.as_ref().map(CapabilitiesView::from),
            no_new_privs: a.no_new_privs,
            seccomp: a.seccomp,
            user_namespace: a.user_namespace.as_ref().map(UserNamespaceView::from),
        }
    }
}

/// The sets our JSON writes, in name order.
#[derive(Serialize)]
pub struct CapabilitiesView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ambient: Option<CapSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounding: Option<CapSet>,
    pub effective: CapSet,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inheritable: Option<CapSet>,
    pub permitted: CapSet,
}

impl From<&Capabilities> for CapabilitiesView {
    fn from(c: &Capabilities) -> Self {
        let some = |bits: u64, shown: bool| shown.then(|| c.set(bits));
        CapabilitiesView {
            ambient: some(c.ambient, c.ambient != 0),
            bounding: some(c.bounding, !c.bounding_is_full()),
            effective: c.set(c.effective),
            inheritable: some(c.inheritable, c.inheritable != 0),
            permitted: c.set(c.permitted),
        }
    }
}

#[derive(Serialize)]
pub struct UserNamespaceView {
    pub host: bool,
    pub inum: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid_missing: Option<&'static str>,
}

impl From<&UserNamespace> for UserNamespaceView {
    fn from(n: &UserNamespace) -> Self {
        let nested = n.level != 0;
        UserNamespaceView {
            host: !nested,
            inum: n.inum,
            level: nested.then_some(n.level),
            owner_uid: nested.then_some(n.owner_uid),
            uid: n.uid.mapped().filter(|_| nested),
            uid_missing: n.uid.missing().filter(|_| nested),
        }
    }
}

#[derive(Serialize)]
pub struct PolicyView<'a> {
    pub config_digest: &'a str,
}

impl<'a> From<&'a Policy> for PolicyView<'a> {
    fn from(p: &'a Policy) -> Self {
        PolicyView {
            config_digest: &p.config_digest,
        }
    }
}

#[derive(Serialize)]
pub struct CgroupView<'a> {
    pub hierarchy: &'static str,
    pub id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v1_id: Option<u64>,
}

impl<'a> From<&'a Cgroup> for CgroupView<'a> {
    fn from(c: &'a Cgroup) -> Self {
        CgroupView {
            hierarchy: c.hierarchy,
            id: c.id,
            path: c.path.as_deref(),
            path_truncated: c.path_truncated,
            v1_id: c.v1_id,
        }
    }
}

#[derive(Serialize)]
pub struct NamespacesView {
    pub mnt: u32,
    pub net: u32,
    pub pid: u32,
}

impl From<&Namespaces> for NamespacesView {
    fn from(n: &Namespaces) -> Self {
        NamespacesView {
            mnt: n.mnt,
            net: n.net,
            pid: n.pid,
        }
    }
}

#[derive(Serialize)]
pub struct FileView<'a> {
    pub dev: &'a str,
    pub hash: HashStatus,
    pub ino: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<&'a str>,
}

impl<'a> From<&'a FileId> for FileView<'a> {
    fn from(f: &'a FileId) -> Self {
        FileView {
            dev: &f.dev,
            hash: f.hash,
            ino: f.ino,
            sha256: f.sha256.as_deref(),
        }
    }
}

#[derive(Serialize)]
pub struct PodView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<&'a Labels>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub labels_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<&'a PodOwner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<&'a str>,
    pub uid: &'a str,
}

impl<'a> From<&'a Pod> for PodView<'a> {
    fn from(p: &'a Pod) -> Self {
        PodView {
            labels: p.labels.as_deref(),
            labels_truncated: p.labels_truncated,
            name: p.name.as_deref(),
            namespace: p.namespace.as_deref(),
            // Its two names are already in name order.
            owner: p.owner.as_ref(),
            service_account: p.service_account.as_deref(),
            uid: &p.uid,
        }
    }
}

#[derive(Serialize)]
pub struct ClaimView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<&'a str>,
    pub kind: WorkloadKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'a str>,
}

impl<'a> From<&'a Claim> for ClaimView<'a> {
    fn from(c: &'a Claim) -> Self {
        ClaimView {
            container_id: c.container_id.as_deref(),
            kind: c.kind,
            pod_uid: c.pod_uid.as_deref(),
            runtime: c.runtime.as_deref(),
            unit: c.unit.as_deref(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct ContainerView<'a> {
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<&'a str>,
}

impl<'a> From<&'a Container> for ContainerView<'a> {
    fn from(c: &'a Container) -> Self {
        ContainerView {
            id: &c.id,
            image: c.image.as_deref(),
            name: c.name.as_deref(),
            namespace: c.namespace.as_deref(),
            runtime: c.runtime.as_deref(),
        }
    }
}

/// An ancestor's whole workload, where it differs from the executor's.
#[derive(Serialize)]
pub(super) struct FullWorkloadView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerView<'a>>,
    pub kind: WorkloadKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'a str>,
}

impl<'a> From<&'a Workload> for FullWorkloadView<'a> {
    fn from(w: &'a Workload) -> Self {
        FullWorkloadView {
            claim: w.claim.as_ref().map(ClaimView::from),
            container: w.container.as_ref().map(ContainerView::from),
            kind: w.kind,
            pod: w.pod.as_ref().map(PodView::from),
            unit: w.unit.as_deref(),
        }
    }
}

/// An ancestor's whole identity, where it differs from the executor's.
#[derive(Serialize)]
pub(super) struct FullIdentityView<'a> {
    pub selectors: &'a Selectors,
    pub source: &'a [String],
    pub spiffe_ids: &'a [String],
    pub status: IdentityStatus,
}

impl<'a> From<&'a Identity> for FullIdentityView<'a> {
    fn from(i: &'a Identity) -> Self {
        FullIdentityView {
            selectors: &i.selectors,
            source: &i.source,
            spiffe_ids: &i.spiffe_ids,
            status: i.status,
        }
    }
}

/// Ancestors that belong to another workload (a shell started by `kubectl exec`).
pub struct LineageView<'a>(pub &'a [Ancestor]);

impl<'a> LineageView<'a> {
    fn foreign(&self) -> impl Iterator<Item = &'a Ancestor> + use<'a> {
        self.0
            .iter()
            .filter(|a| a.workload.is_some() || a.identity.is_some())
    }

    fn is_empty(&self) -> bool {
        self.foreign().next().is_none()
    }
}

impl Serialize for LineageView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.foreign().map(|a| ForeignAncestor {
            exec_id: &a.exec_id,
            identity: a.identity.as_deref().map(FullIdentityView::from),
            workload: a.workload.as_deref().map(FullWorkloadView::from),
        }))
    }
}

#[derive(Serialize)]
struct ForeignAncestor<'a> {
    exec_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<FullIdentityView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workload: Option<FullWorkloadView<'a>>,
}

/// `unmapped` of a loss record (Application Error).
#[derive(Serialize)]
pub struct LossUnmapped<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<GapView<'a>>,
    pub lost: LostView,
    pub policy: PolicyView<'a>,
}

#[derive(Serialize)]
pub struct BudgetView {
    pub argv_cut: u64,
    pub exited_evicted_early: u64,
    pub processes_evicted: u64,
    pub released_early: u64,
}

impl From<&BudgetCounts> for BudgetView {
    fn from(b: &BudgetCounts) -> Self {
        BudgetView {
            argv_cut: b.argv_cut,
            exited_evicted_early: b.exited_evicted_early,
            processes_evicted: b.processes_evicted,
            released_early: b.released_early,
        }
    }
}

#[derive(Serialize)]
pub struct GapView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<u64>,
    pub records: u64,
}

impl<'a> From<&'a SinkGap> for GapView<'a> {
    fn from(g: &'a SinkGap) -> Self {
        GapView {
            after_hash: g.after_hash.as_deref(),
            after_seq: g.after_seq,
            records: g.records,
        }
    }
}

#[derive(Serialize)]
pub struct LostView {
    pub malformed: u64,
    pub pending_full: u64,
    pub read_fault: u64,
    pub ring_full: u64,
    pub scratch: u64,
    pub sends_unreported: u64,
    pub sink_error: u64,
}

impl From<&LossCounts> for LostView {
    fn from(l: &LossCounts) -> Self {
        LostView {
            malformed: l.malformed,
            pending_full: l.pending_full,
            read_fault: l.read_fault,
            ring_full: l.ring_full,
            scratch: l.scratch,
            sends_unreported: l.sends_unreported,
            sink_error: l.sink_error,
        }
    }
}

/// `executor.requestor` with its names sorted (a profile's fields come in
/// its own order in our JSON).
pub struct RequestorView<'a>(pub &'a crate::event::Requestor);

impl Serialize for RequestorView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Part<'a> {
            Text(&'a str),
            Claim(crate::event::RequestorClaim),
            Flag(bool),
            Overrides(&'a crate::event::Overrides),
        }
        let r = self.0;
        let v = &r.values;
        let mut parts: std::collections::BTreeMap<&str, Part> = v
            .fields
            .iter()
            .map(|(k, val)| (&**k, Part::Text(val)))
            .collect();
        parts.insert("system", Part::Text(&v.system));
        parts.insert("display", Part::Text(&v.display));
        parts.insert("source", Part::Text("environment"));
        parts.insert("inherited_from", Part::Text(&r.inherited_from));
        parts.insert("claim", Part::Claim(r.claim));
        if v.truncated {
            parts.insert("truncated", Part::Flag(true));
        }
        if let Some(o) = &r.overrides {
            parts.insert("overrides", Part::Overrides(o));
        }
        let mut m = s.serialize_map(Some(parts.len()))?;
        for (k, p) in &parts {
            m.serialize_entry(k, p)?;
        }
        m.end()
    }
}
