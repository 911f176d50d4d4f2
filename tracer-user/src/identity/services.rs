//! Kubernetes Services and the pods behind them, for naming a connect's
//! destination: `10.96.3.7:443` becomes Service `shop/cart` (port `https`),
//! `10.244.1.9` pod `shop/cart-7d4b9c8f6-x2x9q`.
//!
//! Two cluster-wide, read-only watches (Services; EndpointSlices of
//! `discovery.k8s.io/v1`) write one shared [`ServiceMap`]; attribution reads
//! it without waiting. Only what naming needs is kept (ClusterIPs and ports
//! of a Service; address, pod reference and ports of an endpoint), in at
//! most [`ServiceLimits::bytes`]: an object that cannot fit is left out and
//! counted. The names come from the API server, never from the workload.
//!
//! A deleted object stays for a grace period (its IPs may still be in use by
//! connects in flight), but a live object holding the same IP always wins:
//! a reused ClusterIP or pod IP is named after its new owner as soon as the
//! watch says so. Like the pod watch, an API server that is away stops
//! nothing: the watch retries with backoff, the index keeps what it had, and
//! the state shows in [`ServiceState`] (metrics).
use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use k8s_openapi::api::{core::v1::Service, discovery::v1::EndpointSlice};
use kube::{
    Api, Client,
    runtime::{WatchStreamExt as _, watcher},
};

use super::kube::WatchState;

/// Bytes the index may hold when no share of `--memory-limit` is given: a
/// Service costs ~300 bytes, a slice ~200 plus ~200 per pod endpoint.
pub const SERVICE_INDEX_MAX_BYTES: usize = 8 * 1024 * 1024;
/// What a Service costs beyond its strings (map entries, vectors).
const SERVICE_OVERHEAD: usize = 160;
/// What an EndpointSlice costs beyond its strings.
const SLICE_OVERHEAD: usize = 160;
/// One IP of a Service or an endpoint: the address, its index entry.
const IP_COST: usize = 80;
/// One port (number, protocol, name's box).
const PORT_COST: usize = 40;
/// An endpoint's pod reference beyond its strings (Arc, option).
const POD_REF_COST: usize = 48;

/// `namespace/name`: neither may hold a `/`, so the split is unambiguous.
pub type Key = Arc<str>;

fn key(namespace: &str, name: &str) -> Key {
    format!("{namespace}/{name}").into()
}

/// (namespace, name) of a key.
pub fn split_key(k: &str) -> (&str, &str) {
    k.split_once('/').unwrap_or(("", k))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLimits {
    /// Bytes of all Services and EndpointSlices together.
    pub bytes: usize,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        Self {
            bytes: SERVICE_INDEX_MAX_BYTES,
        }
    }
}

/// A port as the API lists it: `protocol` is `TCP`, `UDP` or `SCTP`
/// (default `TCP`), compared case-insensitively with the event's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: Option<Box<str>>,
    pub port: u16,
    pub protocol: Box<str>,
}

impl Port {
    fn matches(&self, port: u16, protocol: &str) -> bool {
        self.port == port && self.protocol.eq_ignore_ascii_case(protocol)
    }

    fn cost(&self) -> usize {
        PORT_COST + self.name.as_ref().map_or(0, |n| n.len()) + self.protocol.len()
    }
}

fn port_of(name: Option<&String>, port: Option<i32>, protocol: Option<&String>) -> Option<Port> {
    Some(Port {
        name: name.filter(|n| !n.is_empty()).map(|n| n.as_str().into()),
        port: u16::try_from(port?).ok()?,
        protocol: protocol.map_or("TCP", String::as_str).into(),
    })
}

/// What the index keeps of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceMeta {
    pub key: Key,
    /// `clusterIPs` (dual stack), else `clusterIP`; none for a headless
    /// Service (`None`) or one of type ExternalName.
    pub ips: Vec<IpAddr>,
    /// `clusterIP: None`: its name is found through its pods' endpoints.
    pub headless: bool,
    pub ports: Vec<Port>,
}

impl ServiceMeta {
    fn cost(&self) -> usize {
        SERVICE_OVERHEAD
            + self.key.len()
            + self.ips.len() * IP_COST
            + self.ports.iter().map(Port::cost).sum::<usize>()
    }
}

/// The parts of a Service object naming needs; None without a name.
pub fn service_meta(s: &Service) -> Option<ServiceMeta> {
    let name = s.metadata.name.as_deref()?;
    let namespace = s.metadata.namespace.as_deref().unwrap_or("default");
    let spec = s.spec.as_ref();
    let primary = spec.and_then(|s| s.cluster_ip.as_deref());
    let headless = primary == Some("None");
    let listed: Vec<&str> = match spec.and_then(|s| s.cluster_ips.as_ref()) {
        Some(ips) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
        _ => primary.into_iter().collect(),
    };
    // "None" and "" parse as no address; anything else unparsable is skipped.
    let mut ips: Vec<IpAddr> = listed.iter().filter_map(|ip| ip.parse().ok()).collect();
    ips.dedup();
    let ports = spec
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| port_of(p.name.as_ref(), Some(p.port), p.protocol.as_ref()))
        .collect();
    Some(ServiceMeta {
        key: key(namespace, name),
        ips,
        headless,
        ports,
    })
}

/// A pod an endpoint address belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// `namespace/name`.
    pub key: Key,
    /// The pod's UID, which finds it in the pod cache when it runs on this node.
    pub uid: Option<Arc<str>>,
}

/// What the index keeps of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceMeta {
    /// `namespace/<slice name>`.
    pub key: Key,
    /// The Service it belongs to (label `kubernetes.io/service-name`).
    pub service: Option<Key>,
    /// Addresses of endpoints whose target is a Pod of the slice's namespace.
    pub endpoints: Vec<(IpAddr, PodRef)>,
    pub ports: Vec<Port>,
    /// Written by Kubernetes' EndpointSlice controller (label
    /// `endpointslice.kubernetes.io/managed-by`), from the pods' own status:
    /// such a slice wins an address over a hand-written one.
    pub managed: bool,
}

impl SliceMeta {
    fn cost(&self) -> usize {
        SLICE_OVERHEAD
            + self.key.len()
            + self.service.as_ref().map_or(0, |s| s.len())
            + self
                .endpoints
                .iter()
                .map(|(_, p)| {
                    IP_COST + POD_REF_COST + p.key.len() + p.uid.as_ref().map_or(0, |u| u.len())
                })
                .sum::<usize>()
            + self.ports.iter().map(Port::cost).sum::<usize>()
    }
}

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER: &str = "endpointslice-controller.k8s.io";

/// The parts of an EndpointSlice naming needs; None without a name. Endpoints
/// that are not pods (a Node, an address without a target) are left out: the
/// index names pods only. So is a target in another namespace: whoever may
/// write slices in one namespace must not name another namespace's pods (the
/// controller never does). With `node`, a pod UID is kept only for endpoints
/// on that node (or of no known node): only those can be in the node's pod
/// cache, and the UID is a fifth of what an endpoint costs.
pub fn slice_meta(s: &EndpointSlice, node: Option<&str>) -> Option<SliceMeta> {
    let name = s.metadata.name.as_deref()?;
    let namespace = s.metadata.namespace.as_deref().unwrap_or("default");
    let labels = s.metadata.labels.as_ref();
    let managed = labels
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|m| m == CONTROLLER);
    let service = labels
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .map(|n| key(namespace, n));
    let mut endpoints = Vec::new();
    for ep in s.endpoints.iter().flatten() {
        let Some(t) = ep.target_ref.as_ref() else {
            continue;
        };
        if t.kind.as_deref() != Some("Pod") {
            continue;
        }
        let Some(pod) = t.name.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        if t.namespace.as_deref().is_some_and(|ns| ns != namespace) {
            continue;
        }
        let here = match (node, ep.node_name.as_deref()) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => true,
        };
        let pod = PodRef {
            key: key(namespace, pod),
            uid: t
                .uid
                .as_deref()
                .filter(|u| here && !u.is_empty())
                .map(Arc::from),
        };
        for a in &ep.addresses {
            if let Ok(ip) = a.parse::<IpAddr>() {
                endpoints.push((ip, pod.clone()));
            }
        }
    }
    let ports = s
        .ports
        .iter()
        .flatten()
        .filter_map(|p| port_of(p.name.as_ref(), p.port, p.protocol.as_ref()))
        .collect();
    Some(SliceMeta {
        key: key(namespace, name),
        service,
        endpoints,
        ports,
        managed,
    })
}

/// A Service a destination belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHit {
    pub key: Key,
    /// The name of the Service's (or its endpoints') port matching the
    /// destination's port and protocol.
    pub port_name: Option<Box<str>>,
}

/// What the index says about a destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destination {
    pub service: Option<ServiceHit>,
    pub pod: Option<PodRef>,
}

struct Held<T> {
    meta: T,
    deleted_at: Option<Instant>,
    cost: usize,
}

/// Services and EndpointSlices by key, with their IPs indexed; within
/// [`ServiceLimits::bytes`].
pub struct ServiceMap {
    services: HashMap<Key, Held<ServiceMeta>>,
    slices: HashMap<Key, Held<SliceMeta>>,
    /// ClusterIP -> Services holding it, last written last.
    service_ips: HashMap<IpAddr, Vec<Key>>,
    /// Endpoint address -> slices listing it, last written last.
    pod_ips: HashMap<IpAddr, Vec<Key>>,
    grace: Duration,
    limits: ServiceLimits,
    bytes: usize,
    /// Object versions left out (or dropped) to stay within the bound.
    pub dropped: u64,
}

/// Remove `k` from the list of `ip`, the list too when empty.
fn unindex(map: &mut HashMap<IpAddr, Vec<Key>>, ip: &IpAddr, k: &Key) {
    if let Some(v) = map.get_mut(ip) {
        v.retain(|x| x != k);
        if v.is_empty() {
            map.remove(ip);
        }
    }
}

fn index(map: &mut HashMap<IpAddr, Vec<Key>>, ip: IpAddr, k: &Key) {
    let v = map.entry(ip).or_default();
    if !v.contains(k) {
        v.push(k.clone());
    }
}

/// Of the objects `keys` names, the live one written last, else the one
/// deleted last.
fn pick<'a, T>(keys: &'a [Key], held: &'a HashMap<Key, Held<T>>) -> Option<&'a Held<T>> {
    let mut deleted: Option<&Held<T>> = None;
    for k in keys.iter().rev() {
        let Some(h) = held.get(k) else { continue };
        match h.deleted_at {
            None => return Some(h),
            Some(t) if deleted.and_then(|d| d.deleted_at).is_none_or(|d| t > d) => {
                deleted = Some(h);
            }
            Some(_) => {}
        }
    }
    deleted
}

impl ServiceMap {
    pub fn new(grace: Duration, limits: ServiceLimits) -> Self {
        Self {
            services: HashMap::new(),
            slices: HashMap::new(),
            service_ips: HashMap::new(),
            pod_ips: HashMap::new(),
            grace,
            limits,
            bytes: 0,
            dropped: 0,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Services and EndpointSlices held (deleted ones in their grace too).
    pub fn len(&self) -> usize {
        self.services.len() + self.slices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Room for `cost` more bytes: deleted objects go first, longest gone
    /// first. False when even that is not enough.
    fn make_room(&mut self, cost: usize) -> bool {
        while self.bytes + cost > self.limits.bytes {
            let oldest_service = self
                .services
                .iter()
                .filter_map(|(k, h)| h.deleted_at.map(|t| (t, k.clone())))
                .min();
            let oldest_slice = self
                .slices
                .iter()
                .filter_map(|(k, h)| h.deleted_at.map(|t| (t, k.clone())))
                .min();
            match (oldest_service, oldest_slice) {
                (Some(s), Some(e)) if e < s => self.remove_slice(&e.1),
                (Some(s), _) => self.remove_service(&s.1),
                (None, Some(e)) => self.remove_slice(&e.1),
                (None, None) => return false,
            }
            self.dropped += 1;
        }
        true
    }

    fn remove_service(&mut self, k: &Key) {
        if let Some(old) = self.services.remove(k) {
            self.bytes -= old.cost;
            for ip in &old.meta.ips {
                unindex(&mut self.service_ips, ip, k);
            }
        }
    }

    fn remove_slice(&mut self, k: &Key) {
        if let Some(old) = self.slices.remove(k) {
            self.bytes -= old.cost;
            for (ip, _) in &old.meta.endpoints {
                unindex(&mut self.pod_ips, ip, k);
            }
        }
    }

    /// A new version of a Service replaces the old; one that cannot fit is
    /// left out (and its old version with it: it would be stale) and counted.
    pub fn upsert_service(&mut self, meta: ServiceMeta) {
        let k = meta.key.clone();
        self.remove_service(&k);
        let cost = meta.cost();
        if !self.make_room(cost) {
            self.dropped += 1;
            return;
        }
        for ip in &meta.ips {
            index(&mut self.service_ips, *ip, &k);
        }
        self.bytes += cost;
        self.services.insert(
            k,
            Held {
                meta,
                deleted_at: None,
                cost,
            },
        );
    }

    pub fn upsert_slice(&mut self, meta: SliceMeta) {
        let k = meta.key.clone();
        self.remove_slice(&k);
        let cost = meta.cost();
        if !self.make_room(cost) {
            self.dropped += 1;
            return;
        }
        for (ip, _) in &meta.endpoints {
            index(&mut self.pod_ips, *ip, &k);
        }
        self.bytes += cost;
        self.slices.insert(
            k,
            Held {
                meta,
                deleted_at: None,
                cost,
            },
        );
    }

    /// Kept for the grace period, losing to any live holder of its IPs.
    pub fn delete_service(&mut self, k: &str, now: Instant) {
        if let Some(h) = self.services.get_mut(k) {
            h.deleted_at.get_or_insert(now);
        }
    }

    pub fn delete_slice(&mut self, k: &str, now: Instant) {
        if let Some(h) = self.slices.get_mut(k) {
            h.deleted_at.get_or_insert(now);
        }
    }

    /// Forget objects deleted longer ago than the grace period.
    pub fn evict(&mut self, now: Instant) {
        let grace = self.grace;
        let gone = |h: Option<Instant>| h.is_some_and(|t| now.duration_since(t) >= grace);
        let services: Vec<Key> = self
            .services
            .iter()
            .filter(|(_, h)| gone(h.deleted_at))
            .map(|(k, _)| k.clone())
            .collect();
        for k in services {
            self.remove_service(&k);
        }
        let slices: Vec<Key> = self
            .slices
            .iter()
            .filter(|(_, h)| gone(h.deleted_at))
            .map(|(k, _)| k.clone())
            .collect();
        for k in slices {
            self.remove_slice(&k);
        }
    }

    /// After a relist: what it did not name was deleted while unwatched.
    fn reconcile_services(&mut self, listed: &HashSet<Key>, now: Instant) {
        for h in self.services.values_mut() {
            if !listed.contains(&h.meta.key) {
                h.deleted_at.get_or_insert(now);
            }
        }
    }

    fn reconcile_slices(&mut self, listed: &HashSet<Key>, now: Instant) {
        for h in self.slices.values_mut() {
            if !listed.contains(&h.meta.key) {
                h.deleted_at.get_or_insert(now);
            }
        }
    }

    /// The Service whose ClusterIP `ip` is, or else (a headless Service) the
    /// one whose endpoint it is; and the pod whose endpoint address it is.
    pub fn lookup(&self, ip: IpAddr, port: u16, protocol: &str) -> Destination {
        let ip = ip.to_canonical();
        let port_name = |ports: &[Port]| {
            ports
                .iter()
                .find(|p| p.matches(port, protocol))
                .and_then(|p| p.name.clone())
        };
        let mut service = self
            .service_ips
            .get(&ip)
            .and_then(|keys| pick(keys, &self.services))
            .map(|h| ServiceHit {
                key: h.meta.key.clone(),
                port_name: port_name(&h.meta.ports),
            });
        let slice = self.pod_ips.get(&ip).and_then(|keys| {
            // The controller's word first: a hand-written slice (anyone with
            // write access to slices in some namespace) cannot take over an
            // address a live managed one holds.
            keys.iter()
                .rev()
                .filter_map(|k| self.slices.get(k))
                .find(|h| h.meta.managed && h.deleted_at.is_none())
                .or_else(|| pick(keys, &self.slices))
        });
        let pod = slice.and_then(|s| {
            s.meta
                .endpoints
                .iter()
                .find(|(a, _)| *a == ip)
                .map(|(_, p)| p.clone())
        });
        if service.is_none()
            && let Some(s) = slice
            && let Some(svc) = s.meta.service.as_ref()
            && self
                .services
                .get(svc)
                .is_some_and(|h| h.meta.headless && h.deleted_at.is_none())
        {
            service = Some(ServiceHit {
                key: svc.clone(),
                port_name: port_name(&s.meta.ports),
            });
        }
        Destination { service, pod }
    }
}

/// Where the two watches stand, and the index's size, for metrics.
#[derive(Default)]
pub struct ServiceState {
    services: AtomicU8,
    slices: AtomicU8,
    pub errors: AtomicU64,
    pub events: AtomicU64,
    pub bytes: AtomicU64,
    pub entries: AtomicU64,
    pub dropped: AtomicU64,
}

fn state_of(v: u8) -> WatchState {
    match v {
        1 => WatchState::Connecting,
        2 => WatchState::Synced,
        3 => WatchState::Failing,
        _ => WatchState::Disabled,
    }
}

impl ServiceState {
    pub fn services(&self) -> WatchState {
        state_of(self.services.load(Ordering::Relaxed))
    }

    pub fn slices(&self) -> WatchState {
        state_of(self.slices.load(Ordering::Relaxed))
    }
}

/// Shared between the watch tasks (writers) and attribution (reader).
#[derive(Clone)]
pub struct ServiceIndex {
    pub map: Arc<RwLock<ServiceMap>>,
    pub state: Arc<ServiceState>,
    /// This node: pod UIDs are kept only for its endpoints.
    node: Option<Arc<str>>,
}

/// Which of the two watches.
#[derive(Clone, Copy)]
enum Watched {
    Services,
    Slices,
}

impl ServiceIndex {
    pub fn new(grace: Duration, limits: ServiceLimits) -> Self {
        Self {
            map: Arc::new(RwLock::new(ServiceMap::new(grace, limits))),
            state: Arc::new(ServiceState::default()),
            node: None,
        }
    }

    /// Keep pod UIDs (for SPIFFE IDs) only for endpoints on `node`.
    #[must_use]
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = Some(node.into());
        self
    }

    pub fn lookup(&self, ip: IpAddr, port: u16, protocol: &str) -> Destination {
        self.map
            .read()
            .map(|m| m.lookup(ip, port, protocol))
            .unwrap_or_default()
    }

    pub fn evict(&self, now: Instant) {
        if let Ok(mut m) = self.map.write() {
            m.evict(now);
            self.publish(&m);
        }
    }

    fn publish(&self, m: &ServiceMap) {
        let s = &self.state;
        s.bytes.store(m.bytes() as u64, Ordering::Relaxed);
        s.entries.store(m.len() as u64, Ordering::Relaxed);
        s.dropped.store(m.dropped, Ordering::Relaxed);
    }

    fn set(&self, which: Watched, st: WatchState) {
        let cell = match which {
            Watched::Services => &self.state.services,
            Watched::Slices => &self.state.slices,
        };
        cell.store(st as u8, Ordering::Relaxed);
    }

    fn apply_service(&self, ev: watcher::Event<Service>, listing: &mut HashSet<Key>) {
        let now = Instant::now();
        let Ok(mut m) = self.map.write() else { return };
        match ev {
            watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                if let Some(meta) = service_meta(&s) {
                    listing.insert(meta.key.clone());
                    m.upsert_service(meta);
                }
            }
            watcher::Event::Delete(s) => {
                if let Some(meta) = service_meta(&s) {
                    m.delete_service(&meta.key, now);
                }
            }
            watcher::Event::Init => listing.clear(),
            watcher::Event::InitDone => {
                m.reconcile_services(listing, now);
                listing.clear();
                self.set(Watched::Services, WatchState::Synced);
            }
        }
        self.publish(&m);
    }

    fn apply_slice(&self, ev: watcher::Event<EndpointSlice>, listing: &mut HashSet<Key>) {
        let now = Instant::now();
        let Ok(mut m) = self.map.write() else { return };
        match ev {
            watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                if let Some(meta) = slice_meta(&s, self.node.as_deref()) {
                    listing.insert(meta.key.clone());
                    m.upsert_slice(meta);
                }
            }
            watcher::Event::Delete(s) => {
                if let Some(meta) = slice_meta(&s, self.node.as_deref()) {
                    m.delete_slice(&meta.key, now);
                }
            }
            watcher::Event::Init => listing.clear(),
            watcher::Event::InitDone => {
                m.reconcile_slices(listing, now);
                listing.clear();
                self.set(Watched::Slices, WatchState::Synced);
            }
        }
        self.publish(&m);
    }

    fn failed(&self, which: Watched, e: &watcher::Error) {
        let n = self.state.errors.fetch_add(1, Ordering::Relaxed);
        self.set(which, WatchState::Failing);
        // The first and then every 100th, not a line per retry.
        if n.is_multiple_of(100) {
            let what = match which {
                Watched::Services => "services",
                Watched::Slices => "endpointslices",
            };
            tracing::warn!(error = %e, watch = what, "kubernetes watch failed; retrying with backoff");
        }
    }

    /// Watch every Service of the cluster until the process ends.
    pub async fn run_services(self, client: Client) {
        self.watch(client, Watched::Services, Self::apply_service)
            .await
    }

    /// Watch every EndpointSlice of the cluster until the process ends.
    pub async fn run_slices(self, client: Client) {
        self.watch(client, Watched::Slices, Self::apply_slice).await
    }

    /// One cluster-wide watch, each event applied to the index by `apply`.
    async fn watch<K>(
        self,
        client: Client,
        which: Watched,
        apply: fn(&Self, watcher::Event<K>, &mut HashSet<Key>),
    ) where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + 'static,
    {
        self.set(which, WatchState::Connecting);
        let api: Api<K> = Api::all(client);
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut listing = HashSet::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    self.state.events.fetch_add(1, Ordering::Relaxed);
                    apply(&self, ev, &mut listing);
                }
                Err(e) => self.failed(which, &e),
            }
        }
    }
}

#[cfg(test)]
mod tests;
