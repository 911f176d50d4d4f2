//! Kubernetes pod metadata for the pods on this node, from a node-scoped watch
//! (`spec.nodeName=<node>`), indexed by pod UID. Deliberately not by container
//! id: a pod is only ever found from the UID its kubelet-made cgroup names,
//! then checked to hold the cgroup's container ([`PodMeta::container`]);
//! a container id alone (which any cgroup could be named after) never leads
//! to a pod.
//!
//! The watch runs as its own task and only ever writes the shared [`PodCache`];
//! attribution reads it without waiting. An API server that is down, slow or
//! answers garbage never stops the tracer: the watcher reconnects with backoff and
//! the state is visible in [`KubeState`]. Deleted pods stay resolvable for a grace
//! period so the last actions of a finished Job are still attributed.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::{
    Api, Client,
    runtime::{WatchStreamExt as _, watcher},
};
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMeta {
    /// Without the runtime scheme (`containerd://`).
    pub id: String,
    pub runtime: Option<String>,
    pub name: String,
    pub image: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMeta {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub service_account: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub owner: Option<Owner>,
    pub containers: Vec<ContainerMeta>,
}

impl PodMeta {
    pub fn container(&self, id: &str) -> Option<&ContainerMeta> {
        self.containers.iter().find(|c| c.id == id)
    }
}

/// `containerd://abc` -> (`abc`, `containerd`); CRI-O reports `cri-o://`.
fn split_container_id(raw: &str) -> (String, Option<String>) {
    match raw.split_once("://") {
        Some((scheme, id)) => (id.to_owned(), Some(scheme.to_owned())),
        None => (raw.to_owned(), None),
    }
}

/// The workload that owns the pod. ReplicaSets made by a Deployment are named
/// `<deployment>-<pod-template-hash>`: with only pod read access (our RBAC) that
/// suffix is how the Deployment is recognised.
fn owner_of(pod: &Pod) -> Option<Owner> {
    let refs = pod.metadata.owner_references.as_ref()?;
    let r = refs
        .iter()
        .find(|r| r.controller == Some(true))
        .or(refs.first())?;
    if r.kind == "ReplicaSet"
        && let Some(hash) = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"))
        && let Some(deploy) = r.name.strip_suffix(&format!("-{hash}"))
    {
        return Some(Owner {
            kind: "Deployment".into(),
            name: deploy.to_owned(),
        });
    }
    Some(Owner {
        kind: r.kind.clone(),
        name: r.name.clone(),
    })
}

/// The metadata we keep from a Pod object; None when it lacks a UID or name.
pub fn pod_meta(pod: &Pod) -> Option<PodMeta> {
    let uid = pod.metadata.uid.clone()?;
    let name = pod.metadata.name.clone()?;
    let spec = pod.spec.as_ref();
    let images: HashMap<&str, &str> = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .map(|c| (c.name.as_str(), c.image.as_deref().unwrap_or_default()))
        })
        .collect();
    let status = pod.status.as_ref();
    let statuses: Vec<&ContainerStatus> = status
        .into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
                .chain(s.ephemeral_container_statuses.iter().flatten())
        })
        .collect();
    let containers = statuses
        .iter()
        .filter_map(|cs| {
            let (id, runtime) = split_container_id(cs.container_id.as_deref()?);
            // The running image as the kubelet reports it, else the spec's.
            let image = Some(cs.image.clone())
                .filter(|i| !i.is_empty())
                .or_else(|| images.get(cs.name.as_str()).map(|i| (*i).to_owned()));
            Some(ContainerMeta {
                id,
                runtime,
                name: cs.name.clone(),
                image,
            })
        })
        .collect();
    Some(PodMeta {
        uid,
        name,
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        service_account: spec.and_then(|s| s.service_account_name.clone()),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        owner: owner_of(pod),
        containers,
    })
}

struct Entry {
    meta: Arc<PodMeta>,
    deleted_at: Option<Instant>,
}

/// Pods by UID.
pub struct PodCache {
    pods: HashMap<String, Entry>,
    grace: Duration,
}

impl PodCache {
    pub fn new(grace: Duration) -> Self {
        Self {
            pods: HashMap::new(),
            grace,
        }
    }

    pub fn upsert(&mut self, meta: PodMeta) {
        self.pods.insert(
            meta.uid.clone(),
            Entry {
                meta: Arc::new(meta),
                deleted_at: None,
            },
        );
    }

    /// Keep the pod for the grace period; it may still have actions in flight.
    pub fn mark_deleted(&mut self, uid: &str, now: Instant) {
        if let Some(e) = self.pods.get_mut(uid) {
            e.deleted_at.get_or_insert(now);
        }
    }

    pub fn by_uid(&self, uid: &str) -> Option<Arc<PodMeta>> {
        self.pods.get(uid).map(|e| e.meta.clone())
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Forget pods deleted longer ago than the grace period.
    pub fn evict(&mut self, now: Instant) {
        let grace = self.grace;
        let gone: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, e)| e.deleted_at.is_some_and(|t| now.duration_since(t) >= grace))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in gone {
            self.pods.remove(&uid);
        }
    }

    /// After a relist: pods that were not in it were deleted while we were not watching.
    fn reconcile(&mut self, listed: &HashSet<String>, now: Instant) {
        let missing: Vec<String> = self
            .pods
            .keys()
            .filter(|uid| !listed.contains(*uid))
            .cloned()
            .collect();
        for uid in missing {
            self.mark_deleted(&uid, now);
        }
    }
}

/// Where the watch stands, for logs and metrics.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchState {
    Disabled = 0,
    Connecting = 1,
    Synced = 2,
    Failing = 3,
}

#[derive(Default)]
pub struct KubeState {
    state: AtomicU8,
    pub errors: AtomicU64,
    pub events: AtomicU64,
}

impl KubeState {
    pub fn state(&self) -> WatchState {
        match self.state.load(Ordering::Relaxed) {
            1 => WatchState::Connecting,
            2 => WatchState::Synced,
            3 => WatchState::Failing,
            _ => WatchState::Disabled,
        }
    }

    fn set(&self, s: WatchState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }
}

/// Shared between the watch task (writer) and attribution (reader).
#[derive(Clone)]
pub struct PodIndex {
    pub cache: Arc<RwLock<PodCache>>,
    pub state: Arc<KubeState>,
    /// Signalled whenever the cache changed, so parked events can be retried.
    pub changed: Arc<Notify>,
}

impl PodIndex {
    pub fn new(grace: Duration) -> Self {
        Self {
            cache: Arc::new(RwLock::new(PodCache::new(grace))),
            state: Arc::new(KubeState::default()),
            changed: Arc::new(Notify::new()),
        }
    }

    pub fn by_uid(&self, uid: &str) -> Option<Arc<PodMeta>> {
        self.cache.read().ok()?.by_uid(uid)
    }

    pub fn evict(&self, now: Instant) {
        if let Ok(mut c) = self.cache.write() {
            c.evict(now);
        }
    }

    fn apply(&self, ev: watcher::Event<Pod>, listing: &mut HashSet<String>) {
        let now = Instant::now();
        let Ok(mut cache) = self.cache.write() else {
            return;
        };
        match ev {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                if let Some(meta) = pod_meta(&pod) {
                    listing.insert(meta.uid.clone());
                    cache.upsert(meta);
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    cache.mark_deleted(uid, now);
                }
            }
            watcher::Event::Init => listing.clear(),
            watcher::Event::InitDone => {
                cache.reconcile(listing, now);
                self.state.set(WatchState::Synced);
            }
        }
    }

    /// Watch the pods of `node` until the process ends. Errors are logged and
    /// counted; the watcher retries with exponential backoff.
    pub async fn run(self, client: Client, node: String) {
        self.state.set(WatchState::Connecting);
        let api: Api<Pod> = Api::all(client);
        let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let mut stream = watcher(api, cfg).default_backoff().boxed();
        let mut listing = HashSet::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    self.state.events.fetch_add(1, Ordering::Relaxed);
                    self.apply(ev, &mut listing);
                    self.changed.notify_waiters();
                }
                Err(e) => {
                    let n = self.state.errors.fetch_add(1, Ordering::Relaxed);
                    self.state.set(WatchState::Failing);
                    // Log the first and then every 100th, not a line per retry.
                    if n.is_multiple_of(100) {
                        tracing::warn!(error = %e, "kubernetes pod watch failed; retrying with backoff");
                    }
                }
            }
        }
    }
}

/// The standard client configuration: in-cluster service account, else
/// `KUBECONFIG` or `~/.kube/config`.
pub async fn client() -> Result<Client, kube::Error> {
    Client::try_default().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    fn sample() -> Pod {
        pod(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-7d4b9c8f6-x2x9q", "namespace": "shop",
                "uid": "1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7081",
                "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-7d4b9c8f6", "uid": "u", "controller": true}]
            },
            "spec": {
                "nodeName": "node-1", "serviceAccountName": "web-sa",
                "containers": [{"name": "app", "image": "registry:5000/web:1.2"}],
                "initContainers": [{"name": "init", "image": "busybox:1.36"}]
            },
            "status": {
                "containerStatuses": [{"name": "app", "image": "registry:5000/web:1.2",
                    "imageID": "", "ready": true, "restartCount": 0,
                    "containerID": "containerd://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}],
                "initContainerStatuses": [{"name": "init", "image": "busybox:1.36",
                    "imageID": "", "ready": false, "restartCount": 0,
                    "containerID": "containerd://bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}],
                "ephemeralContainerStatuses": [{"name": "debug", "image": "busybox",
                    "imageID": "", "ready": false, "restartCount": 0,
                    "containerID": "cri-o://cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"}]
            }
        }))
    }

    #[test]
    fn pod_metadata_and_indexes() {
        let meta = pod_meta(&sample()).unwrap();
        assert_eq!(meta.namespace, "shop");
        assert_eq!(meta.service_account.as_deref(), Some("web-sa"));
        assert_eq!(
            meta.owner,
            Some(Owner {
                kind: "Deployment".into(),
                name: "web".into()
            })
        );
        assert_eq!(meta.containers.len(), 3);
        let mut cache = PodCache::new(Duration::from_millis(10));
        cache.upsert(meta);
        let pod = cache
            .by_uid("1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7081")
            .unwrap();
        assert_eq!(pod.container(&"b".repeat(64)).unwrap().name, "init");
        let c = pod.container(&"c".repeat(64)).unwrap();
        assert_eq!(c.runtime.as_deref(), Some("cri-o"));
        assert_eq!(c.name, "debug");
        assert!(
            cache
                .by_uid("1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7081")
                .is_some()
        );
    }

    #[test]
    fn deleted_pods_stay_for_the_grace_period() {
        let mut cache = PodCache::new(Duration::from_millis(50));
        cache.upsert(pod_meta(&sample()).unwrap());
        let uid = "1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7081";
        let now = Instant::now();
        cache.mark_deleted(uid, now);
        cache.evict(now + Duration::from_millis(10));
        assert!(cache.by_uid(uid).is_some());
        cache.evict(now + Duration::from_millis(60));
        assert!(cache.by_uid(uid).is_none());
    }

    #[test]
    fn owners() {
        let mut p = sample();
        if let Some(l) = p.metadata.labels.as_mut() {
            l.remove("pod-template-hash");
        }
        assert_eq!(pod_meta(&p).unwrap().owner.unwrap().kind, "ReplicaSet");
        p.metadata.owner_references = None;
        assert_eq!(pod_meta(&p).unwrap().owner, None);
        // Garbage-ish: no uid -> not kept
        p.metadata.uid = None;
        assert!(pod_meta(&p).is_none());
    }
}
