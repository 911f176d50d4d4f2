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

/// Bytes of labels kept per pod (default). One pod with ~1 MB of labels made
/// each of its exec lines 2.4 MB and cost hundreds of MiB in copies.
pub const POD_LABELS_MAX_BYTES: usize = 16 * 1024;
/// Bytes of pod metadata kept for all pods together (default): ~500 pods at
/// the label cap, far more of ordinary ones.
pub const POD_CACHE_MAX_BYTES: usize = 8 * 1024 * 1024;
/// What a label costs beyond its key and value (map node, two strings).
const LABEL_OVERHEAD: usize = 64;
/// What a label's selector costs beyond a copy of the label (its prefix).
const SELECTOR_OVERHEAD: usize = 14;
/// What a pod entry costs beyond its strings (maps, Arc, entry).
const POD_OVERHEAD: usize = 512;

/// Pod labels, shared by the cache, the identity memo and every event.
pub type Labels = BTreeMap<String, String>;

/// Bounds of the pod cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodLimits {
    /// Bytes of one pod's labels (key + value + [`LABEL_OVERHEAD`] each).
    pub labels_bytes: usize,
    /// Bytes of all pods' metadata ([`PodMeta::cost`]).
    pub cache_bytes: usize,
}

impl Default for PodLimits {
    fn default() -> Self {
        Self {
            labels_bytes: POD_LABELS_MAX_BYTES,
            cache_bytes: POD_CACHE_MAX_BYTES,
        }
    }
}

fn label_cost(k: &str, v: &str) -> usize {
    k.len() + v.len() + LABEL_OVERHEAD
}

/// The labels that fit in `max` bytes, in key order; a label too large for
/// what is left is skipped, so later small ones still fit. Deterministic for
/// a given set of labels. The flag says whether any was left out.
pub fn cap_labels(labels: &Labels, max: usize) -> (Labels, bool) {
    let mut left = max;
    let mut kept = Labels::new();
    for (k, v) in labels {
        let cost = label_cost(k, v);
        if cost <= left {
            left -= cost;
            kept.insert(k.clone(), v.clone());
        }
    }
    let cut = kept.len() < labels.len();
    (kept, cut)
}

/// The workload that controls a pod, at the top of its owner chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub kind: String,
    pub name: String,
    /// The pod's own controller (`Job/backup-29935080`) when the top was
    /// inferred from it by a naming convention (see [`owner_of`]); None when
    /// the pod names its owner itself.
    pub via: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMeta {
    /// Without the runtime scheme (`containerd://`).
    pub id: String,
    pub runtime: Option<String>,
    pub name: String,
    pub image: Option<String>,
    /// Whether the container mounts a service account token (from the pod
    /// spec: a projected `serviceAccountToken` volume, or the legacy token
    /// secret at its well-known path); None when the spec does not list it.
    pub service_account_token: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMeta {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub service_account: Option<String>,
    /// At most [`PodLimits::labels_bytes`] of them (see [`cap_labels`]).
    pub labels: Arc<Labels>,
    /// Some labels were left out to stay within the cap.
    pub labels_truncated: bool,
    /// `labels` as selectors, built on first use and shared by every
    /// identity of this pod version (and the next, when labels are unchanged).
    pub label_selectors: std::sync::OnceLock<Arc<[String]>>,
    pub owner: Option<Owner>,
    pub containers: Vec<ContainerMeta>,
}

impl PodMeta {
    pub fn label_selectors(&self) -> Arc<[String]> {
        self.label_selectors
            .get_or_init(|| crate::identity::spiffe::label_selectors(&self.labels).into())
            .clone()
    }

    /// Approximate heap bytes, for the cache's bound (label selectors counted
    /// whether built yet or not).
    pub fn cost(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        POD_OVERHEAD
            + self.uid.len()
            + self.name.len()
            + self.namespace.len()
            + opt(&self.service_account)
            + self
                .labels
                .iter()
                .map(|(k, v)| 2 * label_cost(k, v) + SELECTOR_OVERHEAD)
                .sum::<usize>()
            + self
                .owner
                .as_ref()
                .map_or(0, |o| o.kind.len() + o.name.len())
            + self
                .containers
                .iter()
                .map(|c| 96 + c.id.len() + c.name.len() + opt(&c.runtime) + opt(&c.image))
                .sum::<usize>()
    }

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

/// The annotation the kubelet puts on the mirror of a static pod (a manifest
/// in its own directory, not an API object it was given).
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// How far before its pod a Job made by a CronJob may have been scheduled (a
/// Job's pods are retried, and a CronJob may start late within its deadline).
const CRONJOB_LATE_MINUTES: i64 = 7 * 24 * 60;

/// The workload at the top of the pod's owner chain, by the conventions
/// Kubernetes names things with; with only pod read access (our RBAC) the
/// owners themselves cannot be read:
/// - a ReplicaSet made by a Deployment is `<deployment>-<pod-template-hash>`,
///   and the pod carries that hash as a label;
/// - a Job made by a CronJob is `<cronjob>-<scheduled time in minutes since
///   the epoch>`: accepted when that time is at most a week before the pod
///   was created and not after it, so a Job someone named `backup-20261201`
///   is not taken for a CronJob's;
/// - StatefulSets, DaemonSets and bare Jobs own their pods directly;
/// - a static pod's mirror is owned by its Node (or, from kubelets before
///   owner references, only carries the mirror annotation).
fn owner_of(pod: &Pod) -> Option<Owner> {
    let refs = pod.metadata.owner_references.as_deref().unwrap_or_default();
    let Some(r) = refs
        .iter()
        .find(|r| r.controller == Some(true))
        .or(refs.first())
    else {
        let mirror = pod
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION));
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        return mirror.then_some(()).and(node).map(|name| Owner {
            kind: "Node".into(),
            name,
            via: None,
        });
    };
    let via = || Some(format!("{}/{}", r.kind, r.name));
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
            via: via(),
        });
    }
    if r.kind == "Job"
        && let Some(created) = &pod.metadata.creation_timestamp
        && let Some(cronjob) = cronjob_of_job(&r.name, created.0.as_second() / 60)
    {
        return Some(Owner {
            kind: "CronJob".into(),
            name: cronjob.to_owned(),
            via: via(),
        });
    }
    Some(Owner {
        kind: r.kind.clone(),
        name: r.name.clone(),
        via: None,
    })
}

/// The CronJob that named Job `job` (`<cronjob>-<minutes>`), given the
/// minute its pod was created; None when the suffix is not a plausible
/// scheduled time.
fn cronjob_of_job(job: &str, created_minute: i64) -> Option<&str> {
    let (cronjob, minutes) = job.rsplit_once('-')?;
    if cronjob.is_empty() || minutes.is_empty() || !minutes.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scheduled: i64 = minutes.parse().ok()?;
    (scheduled <= created_minute && created_minute - scheduled <= CRONJOB_LATE_MINUTES)
        .then_some(cronjob)
}

/// The metadata we keep from a Pod object, its labels cut to `labels_max`
/// bytes; None when it lacks a UID or name. Only the containers the status
/// lists now are kept: a restarted container's old id goes with the update.
pub fn pod_meta(pod: &Pod, labels_max: usize) -> Option<PodMeta> {
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
    let tokens = spec.map(service_account_token_mounts).unwrap_or_default();
    let (labels, labels_truncated) = match &pod.metadata.labels {
        Some(l) => cap_labels(l, labels_max),
        None => (Labels::new(), false),
    };
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
                service_account_token: tokens.get(cs.name.as_str()).copied(),
            })
        })
        .collect();
    Some(PodMeta {
        uid,
        name,
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        service_account: spec.and_then(|s| s.service_account_name.clone()),
        labels: Arc::new(labels),
        labels_truncated,
        label_selectors: Default::default(),
        owner: owner_of(pod),
        containers,
    })
}

/// Where the kubelet mounts a service account token (the admission plugin's
/// projected `kube-api-access-*` volume, or a legacy token secret).
const SERVICE_ACCOUNT_TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// For each container of the spec (init and ephemeral too): whether it mounts
/// a service account token: a projected volume with a `serviceAccountToken`
/// source (the default `kube-api-access-*` one, or a bound token for another
/// audience), or anything at the well-known token directory.
fn service_account_token_mounts(spec: &k8s_openapi::api::core::v1::PodSpec) -> HashMap<&str, bool> {
    let token_volumes: HashSet<&str> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| {
            v.projected.as_ref().is_some_and(|p| {
                p.sources
                    .iter()
                    .flatten()
                    .any(|s| s.service_account_token.is_some())
            })
        })
        .map(|v| v.name.as_str())
        .collect();
    let mounts = |m: &Option<Vec<k8s_openapi::api::core::v1::VolumeMount>>| {
        m.iter().flatten().any(|m| {
            token_volumes.contains(m.name.as_str())
                || m.mount_path.trim_end_matches('/') == SERVICE_ACCOUNT_TOKEN_DIR
        })
    };
    let mut out: HashMap<&str, bool> = HashMap::new();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        out.insert(c.name.as_str(), mounts(&c.volume_mounts));
    }
    for c in spec.ephemeral_containers.iter().flatten() {
        out.insert(c.name.as_str(), mounts(&c.volume_mounts));
    }
    out
}

struct Entry {
    meta: Arc<PodMeta>,
    deleted_at: Option<Instant>,
    cost: usize,
}

/// Pods by UID, within [`PodLimits::cache_bytes`].
pub struct PodCache {
    pods: HashMap<String, Entry>,
    grace: Duration,
    limits: PodLimits,
    bytes: usize,
    /// Pods dropped to stay within the byte bound (not those whose grace ended).
    pub evicted: u64,
}

impl PodCache {
    pub fn new(grace: Duration) -> Self {
        Self::with_limits(grace, PodLimits::default())
    }

    pub fn with_limits(grace: Duration, limits: PodLimits) -> Self {
        Self {
            pods: HashMap::new(),
            grace,
            limits,
            bytes: 0,
            evicted: 0,
        }
    }

    pub fn limits(&self) -> PodLimits {
        self.limits
    }

    /// Bytes of metadata held ([`PodMeta::cost`] summed).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn upsert(&mut self, mut meta: PodMeta) {
        // Status updates rarely change labels: share the old ones, so the
        // identities remembered for the pod's previous version cost nothing more.
        if let Some(old) = self.pods.get(&meta.uid)
            && old.meta.labels == meta.labels
        {
            meta.labels = old.meta.labels.clone();
            meta.label_selectors = old.meta.label_selectors.clone();
        }
        let cost = meta.cost();
        let uid = meta.uid.clone();
        if let Some(old) = self.pods.insert(
            uid.clone(),
            Entry {
                meta: Arc::new(meta),
                deleted_at: None,
                cost,
            },
        ) {
            self.bytes -= old.cost;
        }
        self.bytes += cost;
        self.shrink(&uid);
    }

    /// Over the byte bound: drop deleted pods (longest gone first), then the
    /// largest live ones, never `keep` (just written) unless it alone is over.
    fn shrink(&mut self, keep: &str) {
        while self.bytes > self.limits.cache_bytes {
            let victim = self
                .pods
                .iter()
                .filter(|(uid, _)| *uid != keep)
                .min_by(|(ua, a), (ub, b)| match (a.deleted_at, b.deleted_at) {
                    (Some(x), Some(y)) => x.cmp(&y).then_with(|| ua.cmp(ub)),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => b.cost.cmp(&a.cost).then_with(|| ua.cmp(ub)),
                })
                .map(|(uid, _)| uid.clone())
                .or_else(|| self.pods.contains_key(keep).then(|| keep.to_owned()));
            let Some(uid) = victim else {
                return;
            };
            if let Some(e) = self.pods.remove(&uid) {
                self.bytes -= e.cost;
                self.evicted += 1;
            }
        }
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

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    #[cfg(test)]
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
            if let Some(e) = self.pods.remove(&uid) {
                self.bytes -= e.cost;
            }
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
    /// Bytes of pod metadata cached, pods dropped to stay within the bound,
    /// and pod versions whose labels were cut.
    pub cache_bytes: AtomicU64,
    pub evicted: AtomicU64,
    pub labels_truncated: AtomicU64,
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
    pub changed: Arc<super::Changed>,
}

impl PodIndex {
    pub fn new(grace: Duration) -> Self {
        Self::with_limits(grace, PodLimits::default())
    }

    pub fn with_limits(grace: Duration, limits: PodLimits) -> Self {
        Self {
            cache: Arc::new(RwLock::new(PodCache::with_limits(grace, limits))),
            state: Arc::new(KubeState::default()),
            changed: Arc::new(super::Changed::default()),
        }
    }

    pub fn by_uid(&self, uid: &str) -> Option<Arc<PodMeta>> {
        self.cache.read().ok()?.by_uid(uid)
    }

    pub fn evict(&self, now: Instant) {
        if let Ok(mut c) = self.cache.write() {
            c.evict(now);
            self.publish(&c);
        }
    }

    fn publish(&self, c: &PodCache) {
        self.state
            .cache_bytes
            .store(c.bytes() as u64, Ordering::Relaxed);
        self.state.evicted.store(c.evicted, Ordering::Relaxed);
    }

    fn apply(&self, ev: watcher::Event<Pod>, listing: &mut HashSet<String>) {
        let now = Instant::now();
        let Ok(mut cache) = self.cache.write() else {
            return;
        };
        match ev {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                if let Some(meta) = pod_meta(&pod, cache.limits().labels_bytes) {
                    if meta.labels_truncated {
                        self.state.labels_truncated.fetch_add(1, Ordering::Relaxed);
                    }
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
        self.publish(&cache);
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
                    self.changed.signal();
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
        let meta = pod_meta(&sample(), POD_LABELS_MAX_BYTES).unwrap();
        assert_eq!(meta.namespace, "shop");
        assert_eq!(meta.service_account.as_deref(), Some("web-sa"));
        assert_eq!(
            meta.owner,
            Some(Owner {
                kind: "Deployment".into(),
                name: "web".into(),
                via: Some("ReplicaSet/web-7d4b9c8f6".into()),
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
    fn owners_resolve_to_the_top_level_controller() {
        // (owner references, labels, annotations, created, want (kind, name, via)).
        type Case<'a> = (
            serde_json::Value,
            serde_json::Value,
            serde_json::Value,
            &'a str,
            Option<(&'a str, &'a str, Option<&'a str>)>,
        );
        let reference = |kind: &str, name: &str| {
            serde_json::json!([{"apiVersion": "v1", "kind": kind, "name": name,
                "uid": "u", "controller": true}])
        };
        let none = serde_json::Value::Null;
        // 2026-12-01T06:00:00Z is minute 29,935,080 since the epoch.
        let cases: Vec<Case> = vec![
            (
                reference("ReplicaSet", "web-7d4b9c8f6"),
                serde_json::json!({"pod-template-hash": "7d4b9c8f6"}),
                none.clone(),
                "2026-12-01T06:00:05Z",
                Some(("Deployment", "web", Some("ReplicaSet/web-7d4b9c8f6"))),
            ),
            // A ReplicaSet of its own (no matching hash): itself.
            (
                reference("ReplicaSet", "legacy-rs"),
                serde_json::json!({"pod-template-hash": "abc"}),
                none.clone(),
                "2026-12-01T06:00:05Z",
                Some(("ReplicaSet", "legacy-rs", None)),
            ),
            // A CronJob's Job, its pod started on time or a day late (a retry).
            (
                reference("Job", "backup-29935080"),
                none.clone(),
                none.clone(),
                "2026-12-01T06:00:09Z",
                Some(("CronJob", "backup", Some("Job/backup-29935080"))),
            ),
            (
                reference("Job", "db-dump-nightly-29935080"),
                none.clone(),
                none.clone(),
                "2026-12-02T06:00:00Z",
                Some((
                    "CronJob",
                    "db-dump-nightly",
                    Some("Job/db-dump-nightly-29935080"),
                )),
            ),
            // Jobs named by people: a date, a build number, a time in the future.
            (
                reference("Job", "backup-20261201"),
                none.clone(),
                none.clone(),
                "2026-12-01T06:00:09Z",
                Some(("Job", "backup-20261201", None)),
            ),
            (
                reference("Job", "migrate-42"),
                none.clone(),
                none.clone(),
                "2026-12-01T06:00:09Z",
                Some(("Job", "migrate-42", None)),
            ),
            (
                reference("Job", "backup-29935090"),
                none.clone(),
                none.clone(),
                "2026-12-01T06:00:09Z",
                Some(("Job", "backup-29935090", None)),
            ),
            (
                reference("StatefulSet", "db"),
                none.clone(),
                none.clone(),
                "2026-12-01T06:00:00Z",
                Some(("StatefulSet", "db", None)),
            ),
            (
                reference("DaemonSet", "node-exporter"),
                none.clone(),
                none.clone(),
                "2026-12-01T06:00:00Z",
                Some(("DaemonSet", "node-exporter", None)),
            ),
            // A static pod's mirror: owned by the Node, or only annotated.
            (
                reference("Node", "node-1"),
                none.clone(),
                serde_json::json!({"kubernetes.io/config.mirror": "3f2a"}),
                "2026-12-01T06:00:00Z",
                Some(("Node", "node-1", None)),
            ),
            (
                none.clone(),
                none.clone(),
                serde_json::json!({"kubernetes.io/config.mirror": "3f2a"}),
                "2026-12-01T06:00:00Z",
                Some(("Node", "node-1", None)),
            ),
            // A bare pod.
            (
                none.clone(),
                none.clone(),
                none.clone(),
                "2026-12-01T06:00:00Z",
                None,
            ),
        ];
        for (refs, labels, annotations, created, want) in cases {
            let p = pod(serde_json::json!({
                "metadata": {"name": "p", "uid": "u", "ownerReferences": refs,
                    "labels": labels, "annotations": annotations,
                    "creationTimestamp": created},
                "spec": {"nodeName": "node-1", "containers": []}
            }));
            let got = owner_of(&p);
            let got = got
                .as_ref()
                .map(|o| (o.kind.as_str(), o.name.as_str(), o.via.as_deref()));
            assert_eq!(got, want, "{:?}", p.metadata);
        }
    }

    #[test]
    fn service_account_token_mounts_from_the_spec() {
        // As the API server returns a pod after the ServiceAccount admission
        // plugin: the projected `kube-api-access-*` volume mounted in `app`;
        // `sidecar` opted out; `legacy` mounts an old token secret at the
        // well-known path; `bound` mounts a bound token for another audience.
        let spec = serde_json::json!({
            "serviceAccountName": "web-sa",
            "containers": [
                {"name": "app", "volumeMounts": [{"name": "kube-api-access-x7k2p",
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]},
                {"name": "sidecar", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "legacy", "volumeMounts": [{"name": "web-sa-token-abcde",
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount/"}]},
                {"name": "bound", "volumeMounts": [{"name": "vault-token", "mountPath": "/var/run/vault"}]}
            ],
            "initContainers": [{"name": "init"}],
            "volumes": [
                {"name": "kube-api-access-x7k2p", "projected": {"sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
                ]}},
                {"name": "vault-token", "projected": {"sources": [
                    {"serviceAccountToken": {"audience": "vault", "path": "token"}}]}},
                {"name": "web-sa-token-abcde", "secret": {"secretName": "web-sa-token-abcde"}},
                {"name": "data", "emptyDir": {}}
            ]
        });
        let spec: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(spec).unwrap();
        let got = service_account_token_mounts(&spec);
        let want = [
            ("app", true),
            ("sidecar", false),
            ("legacy", true),
            ("bound", true),
            ("init", false),
        ];
        for (name, mounted) in want {
            assert_eq!(got.get(name), Some(&mounted), "{name}");
        }
        // Through pod_meta: the container the status lists carries it.
        let mut p = sample();
        p.spec = Some(spec);
        let meta = pod_meta(&p, POD_LABELS_MAX_BYTES).unwrap();
        let app = meta.container(&"a".repeat(64)).unwrap();
        assert_eq!(app.service_account_token, Some(true));
        // `debug` is in the status but not the spec: not known.
        let debug = meta.container(&"c".repeat(64)).unwrap();
        assert_eq!(debug.service_account_token, None);
    }

    #[test]
    fn deleted_pods_stay_for_the_grace_period() {
        let mut cache = PodCache::new(Duration::from_millis(50));
        cache.upsert(pod_meta(&sample(), POD_LABELS_MAX_BYTES).unwrap());
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
        assert_eq!(
            pod_meta(&p, POD_LABELS_MAX_BYTES)
                .unwrap()
                .owner
                .unwrap()
                .kind,
            "ReplicaSet"
        );
        p.metadata.owner_references = None;
        assert_eq!(pod_meta(&p, POD_LABELS_MAX_BYTES).unwrap().owner, None);
        // Garbage-ish: no uid -> not kept
        p.metadata.uid = None;
        assert!(pod_meta(&p, POD_LABELS_MAX_BYTES).is_none());
    }

    /// Labels are cut to the cap in key order, skipping one too large for
    /// what is left; the same labels always give the same cut.
    #[test]
    fn labels_are_capped_deterministically() {
        let mut labels = Labels::new();
        labels.insert("a".into(), "1".into());
        labels.insert("b-huge".into(), "x".repeat(10_000));
        labels.insert("c".into(), "3".into());
        let (kept, cut) = cap_labels(&labels, 2 * (2 + LABEL_OVERHEAD));
        assert!(cut);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["a", "c"]);
        let (all, cut) = cap_labels(&labels, 1 << 20);
        assert!(!cut);
        assert_eq!(all, labels);
        let mut p = sample();
        let big: BTreeMap<String, String> = (0..2000)
            .map(|i| (format!("k{i:05}"), "v".repeat(500)))
            .collect();
        p.metadata.labels = Some(big);
        let meta = pod_meta(&p, POD_LABELS_MAX_BYTES).unwrap();
        assert!(meta.labels_truncated);
        let bytes: usize = meta.labels.iter().map(|(k, v)| label_cost(k, v)).sum();
        assert!(bytes <= POD_LABELS_MAX_BYTES, "{bytes}");
        assert_eq!(
            meta.labels.keys().next().map(String::as_str),
            Some("k00000")
        );
        assert!(meta.cost() < 2 * POD_LABELS_MAX_BYTES + 4096);
    }

    /// Past the byte bound, deleted pods go first, then the largest live one;
    /// every drop is counted and the byte count follows.
    #[test]
    fn cache_stays_within_its_byte_bound() {
        let meta = |uid: &str, label_bytes: usize| {
            let mut m = pod_meta(&sample(), POD_LABELS_MAX_BYTES).unwrap();
            m.uid = uid.into();
            m.labels = Arc::new(Labels::from([("l".into(), "x".repeat(label_bytes))]));
            m
        };
        let one = meta("u0", 1000).cost();
        let limits = PodLimits {
            labels_bytes: POD_LABELS_MAX_BYTES,
            cache_bytes: 3 * one + 100,
        };
        let mut cache = PodCache::with_limits(Duration::from_secs(300), limits);
        cache.upsert(meta("u0", 1000));
        cache.upsert(meta("u1", 1000));
        cache.upsert(meta("u2", 1000));
        assert_eq!((cache.len(), cache.evicted), (3, 0));
        cache.mark_deleted("u1", Instant::now());
        cache.upsert(meta("u3", 1000));
        assert!(cache.by_uid("u1").is_none(), "the deleted one went first");
        assert_eq!(cache.evicted, 1);
        // A larger one makes room by dropping the largest other (ties by uid).
        cache.upsert(meta("ub", 1050));
        assert!(cache.by_uid("ub").is_some());
        assert!(cache.by_uid("u0").is_none());
        assert!(cache.bytes() <= limits.cache_bytes);
        assert_eq!(cache.evicted, 2);
        // Same labels in a new version: shared, not copied.
        let before = cache.by_uid("u2").unwrap();
        cache.upsert(meta("u2", 1000));
        assert!(Arc::ptr_eq(
            &before.labels,
            &cache.by_uid("u2").unwrap().labels
        ));
        let sum: usize = ["u2", "u3", "ub"]
            .iter()
            .filter_map(|u| cache.by_uid(u))
            .map(|m| m.cost())
            .sum();
        assert_eq!(sum, cache.bytes());
    }

    /// A restarted container's old id goes with the pod update that names the
    /// new one: only the ids the status lists now are kept.
    #[test]
    fn restart_drops_the_old_container_id() {
        let uid = "1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7081";
        let mut cache = PodCache::new(Duration::from_secs(300));
        let mut p = sample();
        cache.upsert(pod_meta(&p, POD_LABELS_MAX_BYTES).unwrap());
        let cost = cache.bytes();
        let (old, new) = ("a".repeat(64), "d".repeat(64));
        assert!(cache.by_uid(uid).unwrap().container(&old).is_some());
        if let Some(cs) = p
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
        {
            cs[0].container_id = Some(format!("containerd://{new}"));
            cs[0].restart_count = 1;
        }
        cache.upsert(pod_meta(&p, POD_LABELS_MAX_BYTES).unwrap());
        let pod = cache.by_uid(uid).unwrap();
        assert!(pod.container(&old).is_none());
        assert_eq!(pod.container(&new).unwrap().name, "app");
        assert_eq!(pod.containers.len(), 3);
        assert_eq!(cache.bytes(), cost, "replaced, not added");
    }
}
