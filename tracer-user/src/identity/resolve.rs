//! Workload identity for an executor: cgroup path -> workload (container, pod,
//! unit, session) -> Kubernetes metadata -> selectors -> SPIFFE IDs.
//!
//! Only the cgroup path (written by the runtime, kubelet or systemd), the
//! Kubernetes API, podman's own store (root-only, written by podman) and
//! containerd's API (its root-only socket) are trusted; nothing the workload
//! itself can write is consulted. Of the path, only the part the host's
//! managers wrote counts ([`workload::parse_path`]): what a delegated subtree
//! (a user manager, a `Delegate=yes` service, a container) names below itself
//! is shown as `workload.claim` and never looked up. A pod is taken from the
//! API only by the UID the kubelet's cgroup names, and only when the API lists
//! the cgroup's container among that pod's: never by a container id alone.
use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use lru::LruCache;

use crate::{
    event::{
        Claim, Container, DestPod, DestService, Identity, IdentityStatus, Pod, PodOwner, Selectors,
        Workload,
    },
    identity::{
        containerd::{self, Containerd, ContainerdContainer, Lookup},
        kube::{PodIndex, PodMeta},
        podman::{PodmanContainer, PodmanStore},
        services::{ServiceIndex, split_key},
        spiffe::{Registry, WorkloadFacts, selectors},
        workload::{self, CgroupWorkload, KubeRoots, Parsed, WorkloadKind},
    },
};

/// The unix facts of the executor that selectors can name.
pub struct UnixFacts<'a> {
    pub uid: u32,
    pub user: Option<&'a str>,
    pub gid: u32,
    /// The executable's path, only when it is known to name the executed
    /// file on the host (see `attribute::host_path_fact`).
    pub path: Option<&'a str>,
}

#[derive(Clone)]
pub struct Resolved {
    pub workload: Arc<Workload>,
    pub identity: Arc<Identity>,
    /// A pod whose metadata is not (yet) known, or a container containerd
    /// has not answered about yet: worth waiting a little for.
    pub waiting_for_metadata: bool,
}

pub struct IdentityResolver {
    pods: Option<PodIndex>,
    registry: Registry,
    /// Parsing a path is cheap but not free; paths repeat on every event.
    /// Bounded by hand in bytes ([`IdentityResolver::parse`]), least recently
    /// used out first.
    parsed: LruCache<Arc<str>, Arc<Parsed>>,
    /// Kubernetes roots the operator trusts besides the kubelet's default places.
    kubepods_roots: KubeRoots,
    /// Finished identities by everything they are a function of. Building the
    /// selectors and matching registrations for each event of a storm was a
    /// tenth of the tracer's CPU. Pod metadata is part of the key by identity
    /// (a changed pod is a new `Arc`), and kept alive by the entry so its
    /// address cannot be reused while the entry exists; containerd's answer
    /// likewise. Bounded by hand in bytes ([`IdentityResolver::make_room`]),
    /// least recently used out first.
    memo: LruCache<MemoKey, Memo>,
    /// Names and images of plain podman containers (not in a pod).
    podman: PodmanStore,
    /// containerd's own word on `/<namespace>/<id>` cgroups, when its socket is there.
    containerd: Option<Containerd>,
    /// Services and their pods, for naming connect destinations.
    services: Option<ServiceIndex>,
    /// Bytes `parsed` holds ([`parsed_cost`]); bounded by the memo's bound too.
    parsed_bytes: usize,
    /// Bytes the memo holds ([`memo_cost`]) and may hold.
    memo_bytes: usize,
    memo_max_bytes: usize,
    /// The version of each pod the memo last saw: entries for older versions
    /// are never hit again and go as soon as a new version shows up.
    pod_versions: HashMap<String, usize>,
    pub memo_stats: Arc<MemoStats>,
}

/// Bytes the identity memo may hold (default), and half as much again for
/// parsed cgroup paths. Pod labels and their selectors are the pod cache's,
/// shared, not counted here.
pub const MEMO_MAX_BYTES: usize = 16 * 1024 * 1024;

/// For metrics.
#[derive(Debug, Default)]
pub struct MemoStats {
    pub bytes: AtomicU64,
    /// Entries dropped to stay within the bounds (not stale ones).
    pub evicted: AtomicU64,
}

/// A remembered identity, with what its key names by identity kept alive.
struct Memo {
    pod: Option<Arc<PodMeta>>,
    _containerd: Option<Arc<ContainerdContainer>>,
    resolved: Resolved,
    cost: usize,
}

/// Approximate heap bytes of a parsed path: the parts it names are pieces of
/// the path (which the key may share with the cgroup cache, counted anyway).
fn parsed_cost(path: &str) -> usize {
    256 + 2 * path.len()
}

/// Approximate heap bytes of a memo entry: its key, its identity's strings
/// and its workload (whose labels are the pod cache's, not counted here).
fn memo_cost(key: &MemoKey, r: &Resolved) -> usize {
    let strs = |v: &[String]| v.iter().map(|s| s.len() + 32).sum::<usize>();
    let id = &r.identity;
    512 + key.cgroup_path.len()
        + key.user.as_ref().map_or(0, |u| u.len())
        + key.binary.as_ref().map_or(0, |b| b.len())
        + strs(&id.spiffe_ids)
        + id.selectors.own_bytes()
        + strs(&id.source)
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct MemoKey {
    cgroup_path: Arc<str>,
    uid: u32,
    gid: u32,
    user: Option<Box<str>>,
    binary: Option<Box<str>>,
    pod: usize,
    /// containerd's answer, by identity like `pod`.
    containerd: usize,
}

const PARSED_CACHE_MAX: usize = 65_536;
const MEMO_MAX: usize = 16_384;

impl IdentityResolver {
    pub fn new(pods: Option<PodIndex>, registry: Registry) -> Self {
        Self {
            pods,
            registry,
            parsed: LruCache::unbounded(),
            kubepods_roots: KubeRoots::default(),
            memo: LruCache::unbounded(),
            podman: PodmanStore::system(),
            containerd: None,
            services: None,
            parsed_bytes: 0,
            memo_bytes: 0,
            memo_max_bytes: MEMO_MAX_BYTES,
            pod_versions: HashMap::new(),
            memo_stats: Arc::new(MemoStats::default()),
        }
    }

    /// Name connect destinations from this index of Services and endpoints.
    #[must_use]
    pub fn with_services(mut self, services: Option<ServiceIndex>) -> Self {
        self.services = services;
        self
    }

    /// The Service and pod a connect's destination belongs to, as the API
    /// server says; nothing outside a cluster or for an unknown address.
    pub fn destination(
        &self,
        ip: &str,
        port: u16,
        protocol: &str,
    ) -> (Option<Arc<DestService>>, Option<Arc<DestPod>>) {
        let Some(index) = &self.services else {
            return (None, None);
        };
        let Ok(addr) = ip.parse() else {
            return (None, None);
        };
        let d = index.lookup(addr, port, protocol);
        let service = d.service.map(|s| {
            let (namespace, name) = split_key(&s.key);
            Arc::new(DestService {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                port_name: s.port_name.map(String::from),
            })
        });
        let pod = d.pod.map(|p| {
            let (namespace, name) = split_key(&p.key);
            Arc::new(DestPod {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                spiffe_id: self.pod_spiffe_id(namespace, name, p.uid.as_deref()),
            })
        });
        (service, pod)
    }

    /// The ID this node's tracer gives the pod's own processes, from its
    /// service account and labels in the pod cache: known only for pods on
    /// this node (the endpoint names no service account), and only when the
    /// cache's pod is the one the endpoint names.
    fn pod_spiffe_id(&self, namespace: &str, name: &str, uid: Option<&str>) -> Option<String> {
        let meta = self.pods.as_ref()?.by_uid(uid?)?;
        if meta.namespace != namespace || meta.name != name {
            return None;
        }
        let facts = WorkloadFacts {
            namespace: Some(&meta.namespace),
            service_account: Some(meta.service_account.as_deref()?),
            pod_name: Some(&meta.name),
            pod_uid: Some(&meta.uid),
            pod_labels: Some(&meta.labels),
            ..Default::default()
        };
        self.registry.resolve(&facts).spiffe_ids.into_iter().next()
    }

    /// Bound the identity memo to `bytes` (default [`MEMO_MAX_BYTES`]).
    #[must_use]
    pub fn with_memo_bytes(mut self, bytes: usize) -> Self {
        self.memo_max_bytes = bytes;
        self
    }

    /// Forget everything (not counted: nothing was dropped for room).
    fn clear_memo(&mut self) {
        self.memo.clear();
        self.pod_versions.clear();
        self.memo_bytes = 0;
        self.publish_bytes();
    }

    fn publish_bytes(&self) {
        self.memo_stats.bytes.store(
            (self.memo_bytes + self.parsed_bytes) as u64,
            Ordering::Relaxed,
        );
    }

    /// A new version of a pod: forget what was remembered for the old one.
    fn note_pod_version(&mut self, meta: &Arc<PodMeta>) {
        let ptr = Arc::as_ptr(meta) as usize;
        let old = self.pod_versions.insert(meta.uid.clone(), ptr);
        if old.is_none() {
            // Counted with the memo, so pod churn cannot grow it between clears.
            self.memo_bytes += 64 + meta.uid.len();
        }
        if let Some(old) = old.filter(|o| *o != ptr) {
            let stale: Vec<MemoKey> = self
                .memo
                .iter()
                .filter(|(k, _)| k.pod == old)
                .map(|(k, _)| k.clone())
                .collect();
            for k in &stale {
                if let Some(m) = self.memo.pop(k) {
                    self.memo_bytes = self.memo_bytes.saturating_sub(m.cost);
                }
            }
        }
    }

    /// Room for an entry of `cost` bytes naming pod `keep`: the least
    /// recently used entries go (counted), and, when they have piled up, the
    /// versions of pods no entry names any more.
    fn make_room(&mut self, cost: usize, keep: Option<&str>) {
        let mut evicted = 0u64;
        while self.memo.len() >= MEMO_MAX || self.memo_bytes + cost > self.memo_max_bytes {
            let Some((_, m)) = self.memo.pop_lru() else {
                break;
            };
            self.memo_bytes = self.memo_bytes.saturating_sub(m.cost);
            evicted += 1;
        }
        if evicted > 0 {
            self.memo_stats
                .evicted
                .fetch_add(evicted, Ordering::Relaxed);
        }
        // Pruning walks the memo: only once versions outnumber entries well,
        // so its cost is spread over the inserts that made them, or when
        // versions alone keep the memo over its bound.
        let still_over = self.memo_bytes + cost > self.memo_max_bytes;
        if self.pod_versions.len() > 2 * self.memo.len() + 64 || still_over {
            self.prune_pod_versions(keep);
        }
    }

    /// Pod versions are counted in the memo's bytes but only matter while an
    /// entry names the pod; without this, pod churn would fill the bound.
    fn prune_pod_versions(&mut self, keep: Option<&str>) {
        let named: HashSet<&str> = self
            .memo
            .iter()
            .filter_map(|(_, m)| m.pod.as_deref().map(|p| p.uid.as_str()))
            .chain(keep)
            .collect();
        let mut freed = 0;
        self.pod_versions.retain(|uid, _| {
            let keep = named.contains(uid.as_str());
            if !keep {
                freed += 64 + uid.len();
            }
            keep
        });
        self.memo_bytes = self.memo_bytes.saturating_sub(freed);
    }

    /// Ask containerd about `/<namespace>/<id>` cgroups (see [`containerd`]).
    #[must_use]
    pub fn with_containerd(mut self, containerd: Option<Containerd>) -> Self {
        self.containerd = containerd;
        self
    }

    /// Trust these Kubernetes roots too (`--kubepods-root`).
    #[must_use]
    pub fn with_kubepods_roots(mut self, roots: KubeRoots) -> Self {
        self.kubepods_roots = roots;
        self.parsed.clear();
        self.parsed_bytes = 0;
        self.clear_memo();
        self
    }

    fn parse(&mut self, path: &Arc<str>) -> Arc<Parsed> {
        if let Some(p) = self.parsed.get(path) {
            return p.clone();
        }
        let cost = parsed_cost(path);
        // Paths may be 4 KiB each: a count bound alone let 65,536 long ones in.
        let mut evicted = 0u64;
        while self.parsed.len() >= PARSED_CACHE_MAX
            || self.parsed_bytes + cost > self.memo_max_bytes / 2
        {
            let Some((old, _)) = self.parsed.pop_lru() else {
                break;
            };
            self.parsed_bytes = self.parsed_bytes.saturating_sub(parsed_cost(&old));
            evicted += 1;
        }
        if evicted > 0 {
            self.memo_stats
                .evicted
                .fetch_add(evicted, Ordering::Relaxed);
        }
        self.parsed_bytes += cost;
        self.publish_bytes();
        let p = Arc::new(workload::parse_path(path, &self.kubepods_roots));
        self.parsed.put(path.clone(), p.clone());
        p
    }

    /// The pod the (trusted) cgroup names by UID, if the API knows it and, when
    /// the cgroup names a container, lists that container among the pod's.
    /// Never by container id alone: a cgroup anyone could name after another
    /// pod's container must not borrow that pod.
    fn pod_meta(&self, w: &CgroupWorkload) -> Option<Arc<PodMeta>> {
        let pods = self.pods.as_ref()?;
        let meta = pods.by_uid(w.pod_uid.as_deref()?)?;
        match w.container_id.as_deref() {
            // Not (yet) in the pod's status: the event waits for it, then goes
            // out partial.
            Some(id) if meta.container(id).is_none() => None,
            _ => Some(meta),
        }
    }

    pub fn resolve(&mut self, cgroup_path: Option<&Arc<str>>, unix: &UnixFacts<'_>) -> Resolved {
        let Some(path) = cgroup_path else {
            let facts = WorkloadFacts {
                uid: Some(unix.uid),
                user: unix.user,
                gid: Some(unix.gid),
                path: unix.path,
                ..WorkloadFacts::default()
            };
            return self.finish(
                Workload {
                    kind: WorkloadKind::Host,
                    container: None,
                    pod: None,
                    unit: None,
                    claim: None,
                },
                facts,
                None,
                IdentityStatus::Unresolved,
                false,
            );
        };
        let parsed = self.parse(path);
        let w = &parsed.workload;
        let meta = self.pod_meta(w);
        let ctrd = self
            .containerd
            .as_ref()
            .and_then(|c| containerd::candidate(path, w).map(|(ns, id)| c.lookup(ns, id)));
        let (ctrd, ctrd_pending) = match ctrd {
            Some(Lookup::Found(c)) => (Some(c), false),
            Some(Lookup::Pending) => (None, true),
            Some(Lookup::Missing) | None => (None, false),
        };
        let key = MemoKey {
            cgroup_path: path.clone(),
            uid: unix.uid,
            gid: unix.gid,
            user: unix.user.map(Box::from),
            binary: unix.path.map(Box::from),
            pod: meta.as_ref().map_or(0, |m| Arc::as_ptr(m) as usize),
            containerd: ctrd.as_ref().map_or(0, |c| Arc::as_ptr(c) as usize),
        };
        if !ctrd_pending && let Some(m) = self.memo.get(&key) {
            return m.resolved.clone();
        }
        if let Some(m) = &meta {
            self.note_pod_version(m);
        }
        // containerd knows this container: the path's claim (or a bare
        // `/<namespace>/<id>`) is confirmed by the runtime.
        let confirmed = ctrd.as_ref().map(|c| containerd::confirmed(w, c));
        let w = confirmed.as_ref().unwrap_or(w);
        // A podman container outside Kubernetes: podman's store names it.
        let podman = match (w.runtime.as_deref(), &w.container_id, &w.pod_uid) {
            (Some("podman"), Some(id), None) => Some(self.podman.lookup(id)),
            _ => None,
        };
        // podman writes its store before the container's first process runs:
        // a miss is a store elsewhere (or gone), so it is memoised like a hit.
        let mut r = self.resolve_parsed(
            path,
            unix,
            (w, &parsed),
            meta.clone(),
            podman.flatten(),
            ctrd.as_deref(),
        );
        r.waiting_for_metadata |= ctrd_pending;
        // One waiting is retried later and must see the pod (or container) then.
        if !r.waiting_for_metadata {
            let cost = memo_cost(&key, &r);
            // One alone over the bound is not remembered; nothing goes for it.
            if cost <= self.memo_max_bytes {
                // Not there (a hit returned above); were it, its bytes are
                // freed first so that nothing else goes to make room for it.
                if let Some(old) = self.memo.pop(&key) {
                    self.memo_bytes = self.memo_bytes.saturating_sub(old.cost);
                }
                self.make_room(cost, meta.as_deref().map(|m| m.uid.as_str()));
                self.memo_bytes += cost;
                self.memo.put(
                    key,
                    Memo {
                        pod: meta,
                        _containerd: ctrd,
                        resolved: r.clone(),
                        cost,
                    },
                );
            }
            self.publish_bytes();
        }
        r
    }

    fn resolve_parsed(
        &self,
        path: &Arc<str>,
        unix: &UnixFacts<'_>,
        (w, parsed): (&CgroupWorkload, &Parsed),
        meta: Option<Arc<PodMeta>>,
        podman: Option<Arc<PodmanContainer>>,
        ctrd: Option<&ContainerdContainer>,
    ) -> Resolved {
        let is_pod = w.pod_uid.is_some() || w.kind == WorkloadKind::Pod;
        let container_meta = meta
            .as_ref()
            .zip(w.container_id.as_deref())
            .and_then(|(m, id)| m.container(id));
        let container = w.container_id.as_ref().map(|id| Container {
            id: id.clone(),
            runtime: w
                .runtime
                .clone()
                .or_else(|| container_meta.and_then(|c| c.runtime.clone())),
            name: container_meta
                .map(|c| c.name.clone())
                .or_else(|| podman.as_ref().and_then(|p| p.name.clone()))
                .or_else(|| ctrd.map(|c| c.name.clone())),
            image: container_meta
                .and_then(|c| c.image.clone())
                .or_else(|| podman.as_ref().and_then(|p| p.image.clone()))
                .or_else(|| ctrd.and_then(|c| c.image.clone())),
            namespace: w.containerd_namespace.clone(),
        });
        let pod_uid = w
            .pod_uid
            .clone()
            .or_else(|| meta.as_ref().map(|m| m.uid.clone()));
        let pod_uid_ref = pod_uid.clone();
        let pod = pod_uid.map(|uid| Pod {
            uid,
            name: meta.as_ref().map(|m| m.name.clone()),
            namespace: meta.as_ref().map(|m| m.namespace.clone()),
            service_account: meta.as_ref().and_then(|m| m.service_account.clone()),
            labels: meta.as_ref().map(|m| m.labels.clone()),
            labels_truncated: meta.as_ref().is_some_and(|m| m.labels_truncated),
            owner: meta.as_ref().and_then(|m| {
                m.owner.as_ref().map(|o| PodOwner {
                    kind: o.kind.clone(),
                    name: o.name.clone(),
                    via: o.via.clone(),
                })
            }),
            service_account_token: container_meta.and_then(|c| c.service_account_token),
        });
        let kind = if pod.is_some() {
            WorkloadKind::Pod
        } else {
            w.kind
        };
        let facts = WorkloadFacts {
            namespace: meta.as_deref().map(|m| m.namespace.as_str()),
            service_account: meta.as_deref().and_then(|m| m.service_account.as_deref()),
            pod_name: meta.as_deref().map(|m| m.name.as_str()),
            pod_uid: pod_uid_ref.as_deref(),
            pod_labels: meta.as_deref().map(|m| &*m.labels),
            container_name: container_meta.map(|c| c.name.as_str()),
            container_image: container_meta.and_then(|c| c.image.as_deref()),
            uid: Some(unix.uid),
            user: unix.user,
            gid: Some(unix.gid),
            path: unix.path,
            unit: w.unit.as_deref().filter(|_| parsed.system_unit),
            user_unit: parsed.user_unit.as_ref().map(|(uid, u)| (*uid, u.as_str())),
            cgroup_path: Some(path),
        };
        let missing_meta = is_pod && meta.is_none();
        let status = if missing_meta {
            IdentityStatus::Partial
        } else {
            IdentityStatus::Resolved
        };
        let workload = Workload {
            kind,
            container,
            pod,
            unit: w.unit.clone(),
            claim: parsed.claim.as_ref().map(|c| Claim {
                kind: c.kind,
                pod_uid: c.pod_uid.clone(),
                container_id: c.container_id.clone(),
                runtime: c.runtime.clone(),
                unit: c.unit.clone(),
            }),
        };
        // Worth a wait only while the watch works: with the API away, the
        // metadata cannot come, and waiting would only delay every event.
        let waiting = missing_meta
            && self
                .pods
                .as_ref()
                .is_some_and(|p| p.state.state() != super::kube::WatchState::Failing);
        // Borrow juggling: facts borrow `meta`, which lives until here.
        let labels = meta.as_ref().map(|m| m.label_selectors());
        let resolved = self.finish(workload, facts, labels, status, waiting);
        drop(meta);
        resolved
    }

    /// `labels`: the pod's label selectors, shared rather than rebuilt.
    fn finish(
        &self,
        workload: Workload,
        facts: WorkloadFacts<'_>,
        labels: Option<Arc<[String]>>,
        status: IdentityStatus,
        waiting_for_metadata: bool,
    ) -> Resolved {
        let r = self.registry.resolve(&facts);
        let own = selectors(&WorkloadFacts {
            pod_labels: None,
            ..facts
        });
        Resolved {
            workload: Arc::new(workload),
            identity: Arc::new(Identity {
                spiffe_ids: r.spiffe_ids,
                selectors: Selectors {
                    labels: labels.unwrap_or_else(|| Arc::from(Vec::new())),
                    own,
                },
                source: r.sources,
                status,
            }),
            waiting_for_metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    use crate::identity::kube::ContainerMeta;

    const UID: &str = "1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7081";

    fn meta(sa: &str) -> PodMeta {
        PodMeta {
            uid: UID.into(),
            name: "web-0".into(),
            namespace: "shop".into(),
            service_account: Some(sa.into()),
            labels: Default::default(),
            labels_truncated: false,
            label_selectors: Default::default(),
            owner: None,
            containers: vec![ContainerMeta {
                id: "a".repeat(64),
                runtime: Some("containerd".into()),
                name: "app".into(),
                image: Some("web:1".into()),
                service_account_token: Some(true),
            }],
        }
    }

    fn spiffe(r: &Resolved) -> Vec<String> {
        r.identity
            .spiffe_ids
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// containerd is the authority on `/<namespace>/<id>`: a pending lookup
    /// makes the event wait, containerd's answer names the container, and a
    /// cgroup containerd does not know stays what the path says.
    #[test]
    fn containerd_confirms_bare_namespace_and_id() {
        let (ctrd, mut requests) = Containerd::detached();
        let registry = Registry::new("cluster.local", true).unwrap();
        let mut r = IdentityResolver::new(None, registry).with_containerd(Some(ctrd.clone()));
        let unix = UnixFacts {
            uid: 0,
            user: Some("root"),
            gid: 0,
            path: Some("/bin/true"),
        };
        let web: Arc<str> = "/shop/web-1".into();
        let first = r.resolve(Some(&web), &unix);
        assert!(first.waiting_for_metadata, "pending: worth a wait");
        assert_eq!(first.workload.kind, WorkloadKind::Host);
        assert_eq!(
            requests.try_recv().ok(),
            Some(("shop".to_owned(), "web-1".to_owned()))
        );
        ctrd.answer(
            "shop",
            "web-1",
            Some(ContainerdContainer {
                namespace: "shop".into(),
                id: "web-1".into(),
                name: "web-1".into(),
                image: Some("localhost/shop:1.0".into()),
            }),
        );
        let found = r.resolve(Some(&web), &unix);
        assert!(!found.waiting_for_metadata);
        assert_eq!(found.workload.kind, WorkloadKind::Container);
        assert_eq!(
            found.workload.container,
            Some(Container {
                id: "web-1".into(),
                runtime: Some("containerd".into()),
                name: Some("web-1".into()),
                image: Some("localhost/shop:1.0".into()),
                namespace: Some("shop".into()),
            })
        );
        // Not a container of containerd's: the path's word (host) stands.
        let other: Arc<str> = "/process_api/a128cd5a".into();
        assert!(r.resolve(Some(&other), &unix).waiting_for_metadata);
        ctrd.answer("process_api", "a128cd5a", None);
        let host = r.resolve(Some(&other), &unix);
        assert!(!host.waiting_for_metadata);
        assert_eq!(host.workload.kind, WorkloadKind::Host);
        assert_eq!(host.workload.container, None);
        // Paths the grammar names otherwise are never asked about.
        let unit: Arc<str> = "/system.slice/cron.service".into();
        assert!(!r.resolve(Some(&unit), &unix).waiting_for_metadata);
        assert_eq!(
            requests.try_recv().ok().map(|k| k.0),
            Some("process_api".into())
        );
        assert!(requests.try_recv().is_err());
    }

    /// Remembered identities follow the pod: a pod that changes, appears or
    /// goes is resolved anew, never served from before.
    #[test]
    fn remembered_identities_follow_pod_changes() {
        let pods = PodIndex::new(Duration::from_secs(300));
        let registry = Registry::new("cluster.local", true).unwrap();
        let mut r = IdentityResolver::new(Some(pods.clone()), registry);
        let path: Arc<str> = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{}.scope",
            UID.replace('-', "_"),
            "a".repeat(64)
        )
        .into();
        let unix = UnixFacts {
            uid: 1001,
            user: Some("deploy"),
            gid: 1001,
            path: Some("/usr/bin/curl"),
        };
        // Not known yet: partial, and not remembered (the event waits for it).
        let first = r.resolve(Some(&path), &unix);
        assert!(first.waiting_for_metadata);
        pods.cache.write().unwrap().upsert(meta("web-sa"));
        let a = r.resolve(Some(&path), &unix);
        assert_eq!(spiffe(&a), ["spiffe://cluster.local/ns/shop/sa/web-sa"]);
        let again = r.resolve(Some(&path), &unix);
        assert!(
            Arc::ptr_eq(&a.identity, &again.identity),
            "served from memory"
        );
        // The pod's service account changes: a new identity.
        pods.cache.write().unwrap().upsert(meta("other-sa"));
        let b = r.resolve(Some(&path), &unix);
        assert_eq!(spiffe(&b), ["spiffe://cluster.local/ns/shop/sa/other-sa"]);
        // Another binary in the same pod is its own key (unix:path selector).
        let other = UnixFacts {
            path: Some("/bin/sh"),
            ..unix
        };
        let c = r.resolve(Some(&path), &other);
        assert!(!Arc::ptr_eq(&b.identity, &c.identity));
        assert!(
            c.identity
                .selectors
                .iter()
                .any(|s| s == "unix:path:/bin/sh")
        );
    }

    /// What an event carries for a path, against an API that knows the
    /// victim pod `UID` (namespace `shop`, container `a…a`).
    struct Outcome {
        kind: WorkloadKind,
        pod_name: Option<String>,
        pod_uid: Option<String>,
        claim_pod_uid: Option<String>,
        status: IdentityStatus,
        spiffe: Vec<String>,
        selectors: Vec<String>,
        waiting: bool,
    }

    fn outcome(path: &str, roots: &[&str]) -> Outcome {
        let pods = PodIndex::new(Duration::from_secs(300));
        pods.cache.write().unwrap().upsert(meta("admin"));
        let registry = Registry::new("cluster.local", true).unwrap();
        let mut r = IdentityResolver::new(Some(pods), registry)
            .with_kubepods_roots(KubeRoots::new(roots).unwrap());
        let unix = UnixFacts {
            uid: 1000,
            user: Some("mallory"),
            gid: 1000,
            path: Some("/bin/true"),
        };
        let got = r.resolve(Some(&Arc::from(path)), &unix);
        Outcome {
            kind: got.workload.kind,
            pod_name: got.workload.pod.as_ref().and_then(|p| p.name.clone()),
            pod_uid: got.workload.pod.as_ref().map(|p| p.uid.clone()),
            claim_pod_uid: got.workload.claim.as_ref().and_then(|c| c.pod_uid.clone()),
            status: got.identity.status,
            spiffe: spiffe(&got),
            selectors: got.identity.selectors.to_vec(),
            waiting: got.waiting_for_metadata,
        }
    }

    /// Issue 9, class 1: a path that names the victim pod from a place its
    /// writer does not own never resolves to it; the real place does.
    #[test]
    fn forged_pod_paths_do_not_resolve() {
        let u_ = UID.replace('-', "_");
        let c = "a".repeat(64);
        let pod_path = format!(
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u_}.slice/cri-containerd-{c}.scope"
        );
        let other_uid = "99999999-5f60-4718-9a2b-3c4d5e6f7081";
        let other = pod_path.replace(&u_, &other_uid.replace('-', "_"));
        let node = format!(
            "/system.slice/docker-{}.scope/kubelet.slice/kubelet-kubepods.slice",
            "b".repeat(64)
        );
        let kind_path = format!(
            "{node}/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{u_}.slice/cri-containerd-{c}.scope"
        );
        // (path, roots, resolves to the victim, kind, claims the victim)
        let cases: Vec<(String, Vec<&str>, bool, WorkloadKind, bool)> = vec![
            (
                format!("/{pod_path}"),
                vec![],
                true,
                WorkloadKind::Pod,
                false,
            ),
            (
                format!("/user.slice/user-1000.slice/user@1000.service/{pod_path}"),
                vec![],
                false,
                WorkloadKind::Service,
                true,
            ),
            (
                format!("/system.slice/ci.service/kubepods/besteffort/pod{UID}/{c}"),
                vec![],
                false,
                WorkloadKind::Service,
                true,
            ),
            (
                format!("/libpod_parent/libpod-{}/{pod_path}", "b".repeat(64)),
                vec![],
                false,
                WorkloadKind::Container,
                true,
            ),
            (
                format!("/scratch/{pod_path}"),
                vec![],
                false,
                WorkloadKind::Host,
                true,
            ),
            // The container id alone (no pod UID in the path).
            (
                format!("/docker/{c}"),
                vec![],
                false,
                WorkloadKind::Container,
                false,
            ),
            (
                format!("/k8s.io/{c}"),
                vec![],
                false,
                WorkloadKind::Container,
                false,
            ),
            // Right container id, another pod's UID: that pod, unresolved.
            (format!("/{other}"), vec![], false, WorkloadKind::Pod, false),
            // kind: a claim of the node container, unless the root is configured.
            (
                kind_path.clone(),
                vec![],
                false,
                WorkloadKind::Container,
                true,
            ),
            (
                kind_path,
                vec![node.as_str()],
                true,
                WorkloadKind::Pod,
                false,
            ),
        ];
        for (path, roots, resolves, kind, claims) in cases {
            let o = outcome(&path, &roots);
            assert_eq!(o.kind, kind, "{path}");
            assert_eq!(o.claim_pod_uid.is_some(), claims, "{path}");
            if claims {
                assert_eq!(o.claim_pod_uid.as_deref(), Some(UID), "{path}");
            }
            if resolves {
                assert_eq!(o.pod_name.as_deref(), Some("web-0"), "{path}");
                assert_eq!(o.status, IdentityStatus::Resolved, "{path}");
                assert_eq!(
                    o.spiffe,
                    ["spiffe://cluster.local/ns/shop/sa/admin"],
                    "{path}"
                );
            } else {
                assert_eq!(o.pod_name, None, "{path}");
                assert!(o.spiffe.is_empty(), "{path}: {:?}", o.spiffe);
                // Only the kubelet's own word, the pod UID of its cgroup, if any.
                assert!(
                    !o.selectors.iter().any(|s| s.starts_with("k8s:")
                        && (!s.starts_with("k8s:pod-uid:") || s.ends_with(UID))),
                    "{path}: {:?}",
                    o.selectors
                );
                assert_ne!(o.pod_uid.as_deref(), Some(UID), "{path}");
            }
        }
    }

    /// The pod UID is right but the API does not list the container (yet):
    /// the event waits, then goes out with the UID only, partial.
    #[test]
    fn pod_uid_without_the_container_is_partial() {
        let u_ = UID.replace('-', "_");
        let path = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u_}.slice/cri-containerd-{}.scope",
            "c".repeat(64)
        );
        let o = outcome(&path, &[]);
        assert_eq!(o.pod_uid.as_deref(), Some(UID));
        assert_eq!(o.pod_name, None);
        assert_eq!(o.status, IdentityStatus::Partial);
        assert!(o.waiting);
        assert!(o.spiffe.is_empty());
        // A pod-level cgroup names no container: the UID alone is enough.
        let pod_level =
            format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u_}.slice");
        assert_eq!(outcome(&pod_level, &[]).pod_name.as_deref(), Some("web-0"));
    }

    /// `systemd:id` is the system manager's; a user manager's units give
    /// `systemd:user:<uid>:id:` only.
    #[test]
    fn user_units_are_their_own_selector() {
        let regs = "[[entry]]\nspiffe_id = \"spiffe://cluster.local/sys\"\nselectors = [\"systemd:id:backup.service\"]\n\
                    [[entry]]\nspiffe_id = \"spiffe://cluster.local/user\"\nselectors = [\"systemd:user:1000:id:backup.service\"]\n";
        let registry = Registry::from_toml("cluster.local", true, regs, "test").unwrap();
        let mut r = IdentityResolver::new(None, registry);
        let unix = UnixFacts {
            uid: 1000,
            user: Some("alice"),
            gid: 1000,
            path: Some("/bin/true"),
        };
        let mut ids = |path: &str| {
            let got = r.resolve(Some(&Arc::from(path)), &unix);
            (spiffe(&got), got.identity.selectors.to_vec())
        };
        let (sys, sel) = ids("/system.slice/backup.service");
        assert_eq!(sys, ["spiffe://cluster.local/sys"]);
        assert!(sel.contains(&"systemd:id:backup.service".to_owned()));
        let (user, sel) =
            ids("/user.slice/user-1000.slice/user@1000.service/app.slice/backup.service");
        assert_eq!(user, ["spiffe://cluster.local/user"]);
        assert!(
            sel.contains(&"systemd:user:1000:id:backup.service".to_owned()),
            "{sel:?}"
        );
        assert!(
            sel.contains(&"systemd:id:user@1000.service".to_owned()),
            "{sel:?}"
        );
        assert!(
            !sel.contains(&"systemd:id:backup.service".to_owned()),
            "{sel:?}"
        );
        // Another user's manager: neither entry.
        let (other, _) =
            ids("/user.slice/user-1001.slice/user@1001.service/app.slice/backup.service");
        assert!(other.is_empty());
        // A unit of a container's own systemd: no systemd selector at all.
        let (ctr, sel) = ids(&format!(
            "/system.slice/docker-{}.scope/system.slice/backup.service",
            "d".repeat(64)
        ));
        assert!(ctr.is_empty());
        assert!(
            !sel.iter()
                .any(|s| s.starts_with("systemd:") && s.contains("backup.service")),
            "{sel:?}"
        );
    }

    /// The memo stays within its byte bound (drops counted), forgets a pod's
    /// old version once a new one is seen, and events share the pod's labels.
    #[test]
    fn memo_is_bounded_in_bytes_and_shares_labels() {
        let pods = PodIndex::new(Duration::from_secs(300));
        let mut m = meta("web-sa");
        m.labels = Arc::new(
            (0..50)
                .map(|i| (format!("k{i}"), "v".repeat(100)))
                .collect(),
        );
        pods.cache.write().unwrap().upsert(m.clone());
        let registry = Registry::new("cluster.local", true).unwrap();
        let cap = 64 * 1024;
        let mut r = IdentityResolver::new(Some(pods.clone()), registry).with_memo_bytes(cap);
        let path: Arc<str> = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{}.scope",
            UID.replace('-', "_"),
            "a".repeat(64)
        )
        .into();
        let labels = pods.by_uid(UID).unwrap().labels.clone();
        let label_selectors = pods.by_uid(UID).unwrap().label_selectors();
        assert_eq!(label_selectors.len(), 50);
        for i in 0..200 {
            let bin = format!("/usr/bin/tool{i}");
            let unix = UnixFacts {
                uid: 0,
                user: Some("root"),
                gid: 0,
                path: Some(&bin),
            };
            let got = r.resolve(Some(&path), &unix);
            let pod = got.workload.pod.as_ref().unwrap();
            assert!(Arc::ptr_eq(pod.labels.as_ref().unwrap(), &labels), "shared");
            let sel = &got.identity.selectors;
            assert!(Arc::ptr_eq(&sel.labels, &label_selectors), "shared");
            assert!(sel.contains(&format!("unix:path:{bin}")));
            assert!(sel.contains(&format!("k8s:pod-label:k7:{}", "v".repeat(100))));
            assert!(r.memo_bytes <= cap);
            assert_eq!(
                r.memo_stats.bytes.load(Ordering::Relaxed),
                (r.memo_bytes + r.parsed_bytes) as u64
            );
        }
        let evicted = r.memo_stats.evicted.load(Ordering::Relaxed);
        assert!(evicted > 0, "200 identities of ~1 KiB do not fit in 64 KiB");
        // A new version of the pod: the old one's entries go on the next miss.
        let before = r.memo.len();
        assert!(before > 0);
        pods.cache.write().unwrap().upsert(meta("other-sa"));
        let unix = UnixFacts {
            uid: 0,
            user: Some("root"),
            gid: 0,
            path: Some("/bin/sh"),
        };
        r.resolve(Some(&path), &unix);
        assert_eq!(r.memo.len(), 1, "only the new version's entry");
        assert_eq!(r.memo_stats.evicted.load(Ordering::Relaxed), evicted);
        let versions: usize = r.pod_versions.keys().map(|u| 64 + u.len()).sum();
        assert_eq!(
            r.memo_bytes,
            r.memo.iter().map(|(_, m)| m.cost).sum::<usize>() + versions
        );
    }

    /// Past the bound the least recently used identities go (each counted),
    /// so one resolved again and again stays; the versions of pods churned
    /// through do not pile up in the bound.
    #[test]
    fn memo_keeps_what_is_used_and_forgets_pods_gone() {
        let pods = PodIndex::new(Duration::from_secs(300));
        let registry = Registry::new("cluster.local", true).unwrap();
        let cap = 64 * 1024;
        let mut r = IdentityResolver::new(Some(pods.clone()), registry).with_memo_bytes(cap);
        let path_of = |uid: &str| -> Arc<str> {
            format!(
                "/kubepods.slice/kubepods-pod{}.slice/cri-containerd-{}.scope",
                uid.replace('-', "_"),
                "a".repeat(64)
            )
            .into()
        };
        let unix = UnixFacts {
            uid: 0,
            user: Some("root"),
            gid: 0,
            path: Some("/bin/sh"),
        };
        pods.cache.write().unwrap().upsert(meta("hot"));
        let hot = path_of(UID);
        for i in 0..2000u32 {
            assert!(r.resolve(Some(&hot), &unix).workload.pod.is_some());
            let uid = format!("{i:08x}-0000-4000-8000-000000000000");
            let mut m = meta("churn");
            m.uid = uid.clone();
            pods.cache.write().unwrap().upsert(m);
            assert!(
                r.resolve(Some(&path_of(&uid)), &unix)
                    .workload
                    .pod
                    .is_some()
            );
            assert!(r.memo_bytes <= cap, "{}", r.memo_bytes);
            assert!(r.pod_versions.len() <= 2 * r.memo.len() + 65);
        }
        let evicted = r.memo_stats.evicted.load(Ordering::Relaxed);
        assert!(evicted > 0);
        // The hot identity was never dropped: a hit, nothing evicted for it.
        r.resolve(Some(&hot), &unix);
        assert_eq!(r.memo_stats.evicted.load(Ordering::Relaxed), evicted);
        let versions: usize = r.pod_versions.keys().map(|u| 64 + u.len()).sum();
        assert_eq!(
            r.memo_bytes,
            r.memo.iter().map(|(_, m)| m.cost).sum::<usize>() + versions
        );
    }

    /// Long cgroup paths (up to 4 KiB each) are remembered within half the
    /// memo's bound, not 65,536 of them whatever their size.
    #[test]
    fn parsed_paths_are_bounded_in_bytes() {
        let registry = Registry::new("cluster.local", true).unwrap();
        let cap = 256 * 1024;
        let mut r = IdentityResolver::new(None, registry).with_memo_bytes(cap);
        let unix = UnixFacts {
            uid: 1000,
            user: None,
            gid: 1000,
            path: None,
        };
        let long = "d".repeat(250);
        for i in 0..200 {
            let path: Arc<str> = format!(
                "/user.slice/user-1000.slice/user@1000.service/app.slice/{i}/{long}/{long}/{long}/{long}/{long}/{long}/{long}/{long}/{long}/{long}/{long}/{long}"
            )
            .into();
            r.resolve(Some(&path), &unix);
            assert!(r.parsed_bytes <= cap / 2, "{}", r.parsed_bytes);
            assert!(r.memo_bytes <= cap);
        }
        assert!(r.memo_stats.evicted.load(Ordering::Relaxed) > 0);
    }
}
