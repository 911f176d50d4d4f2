//! Containers of plain containerd (`ctr run`, nerdctl, docker's containerd), from
//! containerd itself over its gRPC socket.
//!
//! `ctr run` puts a container's cgroup at `/<namespace>/<id>`, where the id is
//! any identifier the user chose: the path alone cannot tell a container from
//! any other two-level cgroup. The path grammar ([`super::workload`]) stays
//! the claim; containerd's `Containers.Get(id)` in namespace `<namespace>` is
//! the authority. A cgroup containerd does not know stays what the grammar
//! says. For the forms the grammar does recognise (`/default/<64 hex>`,
//! `/k8s.io/<64 hex>`) containerd adds the name and image.
//!
//! Never on the event path: [`Containerd::lookup`] only reads a cache and,
//! on a miss, queues a request for a task on the async runtime, which asks
//! containerd with a timeout and fills the cache. Meanwhile the lookup says
//! [`Lookup::Pending`] and the event waits in the same bounded wait as pod
//! metadata (`--kube-wait`), then goes out with what the path gave. The cache
//! is bounded; answers that a container does not exist (and failures) expire
//! after a few seconds, so a container created just after its cgroup's first
//! event is still found.
use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use containerd_client::{
    services::v1::{GetContainerRequest, containers_client::ContainersClient},
    tonic::{self, Code, Request, transport::Channel},
};
use lru::LruCache;
use tokio::sync::{Semaphore, mpsc};

use super::workload::{CgroupWorkload, WorkloadKind};

/// containerd's default socket.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";
/// Shortest bound on one lookup (connecting included); see [`lookup_timeout`].
const MIN_LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);
/// How long "no such container" (or a failure) is believed.
const NEGATIVE_TTL: Duration = Duration::from_secs(3);
/// A found container is asked about again after this long (served meanwhile):
/// containerd ids can be reused for a new container with another image.
const POSITIVE_TTL: Duration = Duration::from_secs(60);
/// A request that never got an answer (queue full, task gone) is retried after this.
const PENDING_TTL: Duration = Duration::from_secs(3);
/// Cache entries, at most.
const MAX_ENTRIES: usize = 4096;
/// Requests queued for the lookup task, at most; beyond, a lookup is not waited for.
const QUEUE: usize = 256;
/// Lookups in flight at once.
const IN_FLIGHT: usize = 8;
/// containerd's own bound on identifiers (namespaces and container ids).
const IDENTIFIER_MAX: usize = 76;
/// Labels that name a container better than its id.
const NAME_LABELS: [&str; 2] = ["io.kubernetes.cri.container-name", "nerdctl/name"];

/// What containerd says about one of its containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdContainer {
    pub namespace: String,
    pub id: String,
    /// A naming label (CRI, nerdctl) if present, else the id.
    pub name: String,
    /// The image reference the container was created from; `None` if empty.
    pub image: Option<String>,
}

/// The state of a lookup, as the event path sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Arc<ContainerdContainer>),
    /// containerd does not know it (or could not be asked): the path stands.
    Missing,
    /// Asked, not answered yet: worth waiting a little for.
    Pending,
}

/// `(namespace, id)` to ask containerd about for this cgroup path, if any:
/// the containers the grammar recognised as plain containerd's, and any path
/// of exactly two segments the grammar did not recognise at all (`ctr run`
/// with an arbitrary namespace and id). Both must be valid containerd
/// identifiers, so nothing else is ever sent.
#[must_use]
pub fn candidate<'a>(path: &'a str, w: &'a CgroupWorkload) -> Option<(&'a str, &'a str)> {
    let (ns, id) = match (&w.containerd_namespace, &w.container_id, &w.pod_uid) {
        (Some(ns), Some(id), None) if w.runtime.as_deref() == Some("containerd") => {
            (ns.as_str(), id.as_str())
        }
        _ if *w == CgroupWorkload::default() => {
            let mut segs = path.split('/').filter(|s| !s.is_empty());
            match (segs.next(), segs.next(), segs.next()) {
                (Some(ns), Some(id), None) => (ns, id),
                _ => return None,
            }
        }
        _ => return None,
    };
    (is_identifier(ns) && is_identifier(id)).then_some((ns, id))
}

/// containerd's identifier rule (`pkg/identifiers`): alphanumeric runs joined
/// by single `.`, `_` or `-`, at most 76 characters.
#[must_use]
pub fn is_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= IDENTIFIER_MAX
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && b.windows(2)
            .all(|p| p[0].is_ascii_alphanumeric() || p[1].is_ascii_alphanumeric())
}

/// The workload a container containerd confirmed is: the path's own, with
/// containerd's id and namespace.
#[must_use]
pub fn confirmed(w: &CgroupWorkload, c: &ContainerdContainer) -> CgroupWorkload {
    CgroupWorkload {
        kind: WorkloadKind::Container,
        container_id: Some(c.id.clone()),
        runtime: Some("containerd".to_owned()),
        containerd_namespace: Some(c.namespace.clone()),
        ..w.clone()
    }
}

type Key = (String, String);

#[derive(Debug, Clone)]
enum Slot {
    Pending,
    Found(Arc<ContainerdContainer>),
    Missing,
}

/// Lookups by `(namespace, id)`, bounded, with expiring negative answers. Pure:
/// time is passed in, so it is tested without waiting.
#[derive(Debug)]
pub struct Cache {
    /// Bounded by hand in [`Cache::put`] (expired answers go before the least
    /// recently used), hence unbounded here.
    map: LruCache<Key, (Slot, Instant)>,
    max: usize,
}

impl Cache {
    #[must_use]
    pub fn new(max: usize) -> Self {
        Self {
            map: LruCache::unbounded(),
            max: max.max(1),
        }
    }

    #[cfg(test)]
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// What is known, and whether containerd should be asked (again) now.
    /// Asking marks the entry pending (a stale found one stays served).
    pub fn get(&mut self, ns: &str, id: &str, now: Instant) -> (Lookup, bool) {
        let key = (ns.to_owned(), id.to_owned());
        if let Some((slot, at)) = self.map.get_mut(&key) {
            let age = now.saturating_duration_since(*at);
            match slot {
                Slot::Found(c) => {
                    let c = c.clone();
                    let refresh = age >= POSITIVE_TTL;
                    if refresh {
                        *at = now;
                    }
                    return (Lookup::Found(c), refresh);
                }
                Slot::Missing if age < NEGATIVE_TTL => return (Lookup::Missing, false),
                Slot::Pending if age < PENDING_TTL => return (Lookup::Pending, false),
                Slot::Missing | Slot::Pending => {}
            }
        }
        self.put(key, Slot::Pending, now);
        (Lookup::Pending, true)
    }

    /// containerd's answer (`None`: no such container, or no answer). A
    /// container already known stays known when it is gone: its last events
    /// may still be on their way.
    pub fn answer(&mut self, ns: &str, id: &str, found: Option<ContainerdContainer>, now: Instant) {
        let key = (ns.to_owned(), id.to_owned());
        match found {
            Some(c) => {
                let same = matches!(self.map.peek(&key), Some((Slot::Found(old), _)) if **old == c);
                if !same {
                    self.put(key, Slot::Found(Arc::new(c)), now);
                }
            }
            None => {
                if !matches!(self.map.peek(&key), Some((Slot::Found(_), _))) {
                    self.put(key, Slot::Missing, now);
                }
            }
        }
    }

    /// A request that will get no answer (the queue was full): not waited for.
    fn give_up(&mut self, ns: &str, id: &str, now: Instant) {
        let key = (ns.to_owned(), id.to_owned());
        if matches!(self.map.peek(&key), Some((Slot::Pending, _))) {
            self.put(key, Slot::Missing, now);
        }
    }

    /// Full: expired answers go first, then the least recently used entries.
    fn put(&mut self, key: Key, slot: Slot, now: Instant) {
        if self.map.len() >= self.max && !self.map.contains(&key) {
            let expired: Vec<Key> = self
                .map
                .iter()
                .filter(|(_, (slot, at))| {
                    let age = now.saturating_duration_since(*at);
                    match slot {
                        Slot::Found(_) => false,
                        Slot::Missing => age >= NEGATIVE_TTL,
                        Slot::Pending => age >= PENDING_TTL,
                    }
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in &expired {
                self.map.pop(k);
            }
            while self.map.len() >= self.max && self.map.pop_lru().is_some() {}
        }
        self.map.put(key, (slot, now));
    }
}

/// Failures, counted and each cause logged once.
#[derive(Debug, Default)]
pub struct Stats {
    pub lookups: AtomicU64,
    pub errors: AtomicU64,
    logged: Mutex<HashSet<String>>,
}

impl Stats {
    fn error(&self, cause: &str, detail: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let first = self
            .logged
            .lock()
            .is_ok_and(|mut l| l.len() < 64 && l.insert(cause.to_owned()));
        if first {
            tracing::warn!(cause, error = %detail, "containerd lookup failed; containers it runs are named from their cgroup only (logged once per cause)");
        }
    }
}

/// The handle attribution holds: a cache in front of a task that asks containerd.
#[derive(Clone)]
pub struct Containerd {
    cache: Arc<Mutex<Cache>>,
    requests: mpsc::Sender<Key>,
    /// Signalled when an answer arrived, so waiting events are retried.
    pub changed: Arc<super::Changed>,
    pub stats: Arc<Stats>,
}

/// How long one lookup may take when events wait `event_wait` for it
/// (`--kube-wait`): as long as they wait, and at least a second (the answer
/// still serves later events). Shorter than the wait, a containerd that is
/// merely slow (a loaded or emulated machine) would send out events without a
/// name and image that waiting longer would have given them.
#[must_use]
pub fn lookup_timeout(event_wait: Duration) -> Duration {
    event_wait.max(MIN_LOOKUP_TIMEOUT)
}

impl Containerd {
    /// Ask the containerd at `socket`; `None` (debug log) when there is no
    /// socket there. Must be called on the tokio runtime (it spawns the task).
    /// Each lookup may take `timeout` (see [`lookup_timeout`]).
    #[must_use]
    pub fn start(socket: &Path, timeout: Duration) -> Option<Self> {
        if !socket.exists() {
            tracing::debug!(socket = %socket.display(), "no containerd socket; containerd lookups off");
            return None;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let c = Self {
            cache: Arc::new(Mutex::new(Cache::new(MAX_ENTRIES))),
            requests: tx,
            changed: Arc::new(super::Changed::default()),
            stats: Arc::new(Stats::default()),
        };
        tokio::spawn(serve(socket.to_owned(), timeout, rx, c.clone()));
        tracing::info!(socket = %socket.display(), "naming plain containerd containers from containerd");
        Some(c)
    }

    /// What is known about container `id` in namespace `ns`; never waits.
    pub fn lookup(&self, ns: &str, id: &str) -> Lookup {
        let now = Instant::now();
        let Ok(mut cache) = self.cache.lock() else {
            return Lookup::Missing;
        };
        let (state, ask) = cache.get(ns, id, now);
        if ask
            && self
                .requests
                .try_send((ns.to_owned(), id.to_owned()))
                .is_err()
        {
            cache.give_up(ns, id, now);
            drop(cache);
            self.stats.error("queue full", &"too many lookups pending");
            return match state {
                Lookup::Pending => Lookup::Missing,
                s => s,
            };
        }
        state
    }

    /// A handle whose requests go to the returned receiver instead of a
    /// task; answers are given with [`Self::answer`]. For tests.
    #[cfg(test)]
    pub(crate) fn detached() -> (Self, mpsc::Receiver<(String, String)>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let c = Self {
            cache: Arc::new(Mutex::new(Cache::new(MAX_ENTRIES))),
            requests: tx,
            changed: Arc::new(super::Changed::default()),
            stats: Arc::new(Stats::default()),
        };
        (c, rx)
    }

    pub(crate) fn answer(&self, ns: &str, id: &str, found: Option<ContainerdContainer>) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.answer(ns, id, found, Instant::now());
        }
        self.changed.signal();
    }
}

/// The lookup task: one shared connection, a few lookups at a time.
async fn serve(
    socket: PathBuf,
    timeout: Duration,
    mut rx: mpsc::Receiver<Key>,
    handle: Containerd,
) {
    let conn = Arc::new(tokio::sync::Mutex::new(None::<Channel>));
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some((ns, id)) = rx.recv().await {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let (socket, conn, handle) = (socket.clone(), conn.clone(), handle.clone());
        tokio::spawn(async move {
            handle.stats.lookups.fetch_add(1, Ordering::Relaxed);
            let found = match tokio::time::timeout(timeout, get(&socket, &conn, &ns, &id)).await {
                Ok(Ok(found)) => found,
                Ok(Err((cause, e))) => {
                    handle.stats.error(cause, &e);
                    None
                }
                Err(_) => {
                    // A connection that hangs is not reused.
                    *conn.lock().await = None;
                    handle
                        .stats
                        .error("timeout", &format_args!("no answer in {timeout:?}"));
                    None
                }
            };
            handle.answer(&ns, &id, found);
            drop(permit);
        });
    }
}

/// `Containers.Get(id)` in namespace `ns`; `Ok(None)` when there is no such container.
async fn get(
    socket: &Path,
    conn: &tokio::sync::Mutex<Option<Channel>>,
    ns: &str,
    id: &str,
) -> Result<Option<ContainerdContainer>, (&'static str, String)> {
    let channel = {
        let mut guard = conn.lock().await;
        match guard.as_ref() {
            Some(c) => c.clone(),
            None => {
                let c = containerd_client::connect(socket)
                    .await
                    .map_err(|e| ("connect", format!("{}: {e}", socket.display())))?;
                *guard = Some(c.clone());
                c
            }
        }
    };
    let mut req = Request::new(GetContainerRequest { id: id.to_owned() });
    let value = ns
        .parse()
        .map_err(|e| ("namespace", format!("{ns:?}: {e}")))?;
    // containerd's namespace travels in this gRPC metadata header.
    req.metadata_mut().insert("containerd-namespace", value);
    match ContainersClient::new(channel).get(req).await {
        Ok(resp) => Ok(resp
            .into_inner()
            .container
            .map(|c| container(ns, id, &c.labels, c.image))),
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => {
            if matches!(s.code(), Code::Unavailable | Code::Unknown | Code::Internal) {
                *conn.lock().await = None;
            }
            Err((code_cause(s.code()), status_text(&s)))
        }
    }
}

fn code_cause(code: Code) -> &'static str {
    match code {
        Code::Unavailable => "unavailable",
        Code::PermissionDenied | Code::Unauthenticated => "permission denied",
        Code::InvalidArgument | Code::FailedPrecondition => "invalid argument",
        Code::Unimplemented => "unimplemented",
        _ => "rpc error",
    }
}

fn status_text(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

fn container(
    ns: &str,
    id: &str,
    labels: &HashMap<String, String>,
    image: String,
) -> ContainerdContainer {
    let name = NAME_LABELS
        .iter()
        .find_map(|l| labels.get(*l).filter(|v| !v.is_empty()))
        .cloned()
        .unwrap_or_else(|| id.to_owned());
    ContainerdContainer {
        namespace: ns.to_owned(),
        id: id.to_owned(),
        name,
        image: Some(image).filter(|i| !i.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::workload::parse;

    const C1: &str = "9bcb30efecaadfa3e489a40e3ad0a1ad33cf83900c2c76aa869ffa4099a47d7e";
    const POD_: &str = "b4ac4218_25f3_48ec_821f_3e95d98bb26a";

    #[test]
    fn candidates() {
        let long = "a".repeat(IDENTIFIER_MAX + 1);
        let cases: Vec<(String, Option<(&str, &str)>)> = vec![
            // Recognised by the grammar: containerd adds name and image.
            (format!("/default/{C1}"), Some(("default", C1))),
            (format!("/k8s.io/{C1}"), Some(("k8s.io", C1))),
            (format!("/default/{C1}/sub"), Some(("default", C1))),
            // Two segments nothing else claims: ask.
            ("/ns1/web".into(), Some(("ns1", "web"))),
            (
                "/trc1-2-ns/trc1-3-id".into(),
                Some(("trc1-2-ns", "trc1-3-id")),
            ),
            ("/default/not-an-id".into(), Some(("default", "not-an-id"))),
            (format!("/other/{C1}"), Some(("other", C1))),
            ("//ns1//web//".into(), Some(("ns1", "web"))),
            // Not containerd identifiers: never sent.
            ("/ns1/-web".into(), None),
            ("/ns1/we..b".into(), None),
            ("/ns1/web_".into(), None),
            ("/ns 1/web".into(), None),
            ("/ns1/wéb".into(), None),
            (format!("/ns1/{long}"), None),
            (format!("/{long}/web"), None),
            // Other shapes or recognised as something else: not asked.
            ("/".into(), None),
            ("/ns1".into(), None),
            ("/ns1/web/x".into(), None),
            ("/system.slice/cron.service".into(), None),
            ("/user.slice/user-1000.slice".into(), None),
            ("/init.scope".into(), None),
            (format!("/docker/{C1}"), None),
            (format!("/libpod_parent/libpod-{C1}"), None),
            (
                format!("/kubepods.slice/kubepods-pod{POD_}.slice/cri-containerd-{C1}.scope"),
                None,
            ),
            (format!("/kubepods.slice/kubepods-pod{POD_}.slice"), None),
        ];
        for (path, want) in cases {
            let w = parse(&path);
            assert_eq!(candidate(&path, &w), want, "{path}");
        }
    }

    #[test]
    fn identifiers() {
        for ok in ["a", "default", "k8s.io", "a-b_c.d", "A9", &"x".repeat(76)] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a--b",
            "a._b",
            "a/b",
            "a b",
            &"x".repeat(77),
        ] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn confirmed_container_keeps_the_path_context() {
        let c = ContainerdContainer {
            namespace: "ns1".into(),
            id: "web".into(),
            name: "web".into(),
            image: Some("docker.io/library/busybox:latest".into()),
        };
        let w = confirmed(&parse("/ns1/web"), &c);
        assert_eq!(w.kind, WorkloadKind::Container);
        assert_eq!(w.container_id.as_deref(), Some("web"));
        assert_eq!(w.runtime.as_deref(), Some("containerd"));
        assert_eq!(w.containerd_namespace.as_deref(), Some("ns1"));
    }

    fn found(ns: &str, id: &str, image: &str) -> ContainerdContainer {
        ContainerdContainer {
            namespace: ns.into(),
            id: id.into(),
            name: id.into(),
            image: Some(image.into()),
        }
    }

    #[test]
    fn cache_answers_and_expiry() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = Cache::new(16);
        // (time, step): a lookup with what it sees and whether containerd is
        // asked, or containerd's answer.
        enum Step {
            Get(Lookup, bool),
            Answer(Option<ContainerdContainer>),
        }
        let a = found("ns", "a", "img:1");
        let a2 = found("ns", "a", "img:2");
        let got = |c: &ContainerdContainer| Lookup::Found(Arc::new(c.clone()));
        let later = NEGATIVE_TTL + POSITIVE_TTL;
        let steps = vec![
            (ms(0), Step::Get(Lookup::Pending, true)),
            // Asked once; pending until answered.
            (ms(10), Step::Get(Lookup::Pending, false)),
            (ms(20), Step::Answer(None)),
            (ms(30), Step::Get(Lookup::Missing, false)),
            // Negative answers expire: a container started late is found.
            (ms(20) + NEGATIVE_TTL, Step::Get(Lookup::Pending, true)),
            (ms(40) + NEGATIVE_TTL, Step::Answer(Some(a.clone()))),
            (ms(50) + NEGATIVE_TTL, Step::Get(got(&a), false)),
            // Found entries are served while asked again after a while...
            (ms(40) + later, Step::Get(got(&a), true)),
            (ms(50) + later, Step::Get(got(&a), false)),
            // ...a container gone stays known for its late events...
            (ms(60) + later, Step::Answer(None)),
            (ms(70) + later, Step::Get(got(&a), false)),
            // ...and an id reused for another container is the new one.
            (ms(80) + later, Step::Answer(Some(a2.clone()))),
            (ms(90) + later, Step::Get(got(&a2), false)),
        ];
        for (i, (at, step)) in steps.into_iter().enumerate() {
            match step {
                Step::Get(want, ask) => {
                    assert_eq!(c.get("ns", "a", t0 + at), (want, ask), "step {i}");
                }
                Step::Answer(f) => c.answer("ns", "a", f, t0 + at),
            }
        }
        // An unanswered request is asked again after a while.
        assert_eq!(c.get("ns", "b", t0), (Lookup::Pending, true));
        assert_eq!(c.get("ns", "b", t0 + PENDING_TTL), (Lookup::Pending, true));
        // Same id, other namespace: another container.
        assert_eq!(c.get("other", "a", t0), (Lookup::Pending, true));
    }

    #[test]
    fn cache_is_bounded() {
        let t0 = Instant::now();
        let mut c = Cache::new(4);
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            let at = t0 + Duration::from_millis(i as u64);
            assert!(c.get("ns", id, at).1);
            c.answer("ns", id, Some(found("ns", id, "img")), at);
        }
        assert_eq!(c.len(), 4);
        // Full: the least recently used goes.
        c.get("ns", "e", t0 + Duration::from_millis(10));
        assert_eq!(c.len(), 4);
        assert_eq!(
            c.get("ns", "a", t0 + Duration::from_millis(11)),
            (Lookup::Pending, true),
            "evicted, asked again"
        );
        assert!(matches!(
            c.get("ns", "d", t0 + Duration::from_millis(12)).0,
            Lookup::Found(_)
        ));
        // Expired negative answers go before any found container.
        let mut c = Cache::new(3);
        c.get("ns", "x", t0);
        c.answer("ns", "x", None, t0);
        for id in ["y", "z"] {
            c.get("ns", id, t0 + Duration::from_millis(1));
            c.answer(
                "ns",
                id,
                Some(found("ns", id, "img")),
                t0 + Duration::from_millis(1),
            );
        }
        c.get("ns", "w", t0 + NEGATIVE_TTL);
        assert_eq!(c.len(), 3);
        for id in ["y", "z"] {
            assert!(matches!(
                c.get("ns", id, t0 + NEGATIVE_TTL).0,
                Lookup::Found(_)
            ));
        }
        // A container looked up again is kept over one only written.
        let mut c = Cache::new(2);
        for id in ["p", "q"] {
            c.get("ns", id, t0);
            c.answer("ns", id, Some(found("ns", id, "img")), t0);
        }
        assert!(matches!(c.get("ns", "p", t0).0, Lookup::Found(_)));
        c.get("ns", "r", t0);
        assert!(matches!(c.get("ns", "p", t0).0, Lookup::Found(_)));
        assert_eq!(c.get("ns", "q", t0), (Lookup::Pending, true), "evicted");
        // Many distinct paths never grow it past the bound.
        let mut c = Cache::new(100);
        for i in 0..10_000u64 {
            let at = t0 + Duration::from_micros(i);
            c.get("ns", &i.to_string(), at);
            c.answer("ns", &i.to_string(), None, at);
        }
        assert!(c.len() <= 100);
    }

    #[test]
    fn name_from_labels_else_id() {
        let mut labels = HashMap::new();
        assert_eq!(container("ns", "web", &labels, String::new()).name, "web");
        assert_eq!(container("ns", "web", &labels, String::new()).image, None);
        labels.insert("nerdctl/name".to_owned(), "frontend".to_owned());
        assert_eq!(container("ns", "web", &labels, "i".into()).name, "frontend");
        labels.insert(
            "io.kubernetes.cri.container-name".to_owned(),
            "app".to_owned(),
        );
        assert_eq!(container("ns", "web", &labels, "i".into()).name, "app");
    }

    #[test]
    fn lookups_take_as_long_as_events_wait() {
        let s = Duration::from_secs;
        assert_eq!(lookup_timeout(s(2)), s(2));
        assert_eq!(lookup_timeout(s(20)), s(20));
        assert_eq!(lookup_timeout(Duration::ZERO), MIN_LOOKUP_TIMEOUT);
    }

    /// No containerd at the socket: the lookup is not waited for long, nothing panics.
    #[tokio::test]
    async fn dead_socket_gives_missing() {
        let dir = std::env::temp_dir().join(format!("ctrd-dead-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("c.sock");
        // A socket file nobody listens on.
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let c = Containerd::start(&sock, MIN_LOOKUP_TIMEOUT).expect("socket exists");
        assert_eq!(c.lookup("ns", "web"), Lookup::Pending);
        let deadline = Instant::now() + MIN_LOOKUP_TIMEOUT * 3;
        while c.lookup("ns", "web") == Lookup::Pending {
            assert!(Instant::now() < deadline, "no answer");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(c.lookup("ns", "web"), Lookup::Missing);
        assert!(c.stats.errors.load(Ordering::Relaxed) >= 1);
        assert!(Containerd::start(&dir.join("absent.sock"), MIN_LOOKUP_TIMEOUT).is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
