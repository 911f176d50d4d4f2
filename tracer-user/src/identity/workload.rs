//! cgroup v2 path -> the workload it belongs to.
//!
//! Pure string parsing, no I/O. The path is relative to the cgroup2 mount
//! (`/kubepods.slice/...`). Forms recognised (`<id>` is 64 lowercase hex,
//! `<uid>` a pod UID, `<uid_>` the same with `_` for `-` as systemd slice names
//! need, `<qos>` `besteffort` or `burstable`):
//!
//! | Path                                                        | `kind`      | Other fields                                   |
//! |-------------------------------------------------------------|-------------|------------------------------------------------|
//! | `/`, `/system.slice`, `/user.slice`, anything unrecognised  | `Host`      | —                                              |
//! | `/init.scope`                                               | `Host`      | `unit`                                         |
//! | `/system.slice/nginx.service[/sub/cgroups]`                 | `Service`   | `unit` (`.service .scope .socket .mount .swap`) |
//! | `/system.slice/system-getty.slice/getty@tty1.service`       | `Service`   | `unit`                                         |
//! | `/user.slice/user-1000.slice`                               | `Host`      | `session_uid`                                  |
//! | `/user.slice/user-1000.slice/session-3.scope`               | `Session`   | `session_uid`, `session_id`, `unit`            |
//! | `/user.slice/user-1000.slice/user@1000.service[/…]`        | `Service`   | `session_uid`, `unit` `user@1000.service`; below it only claims |
//! | `/kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_>.slice` | `Pod` | `pod_uid`, `qos`                       |
//! | `…pod<uid_>.slice/{cri-containerd,crio,docker,libpod}-<id>.scope` | `Container` | + `container_id`, `runtime`, `unit`      |
//! | `…pod<uid_>.slice/crio-conmon-<id>.scope`                   | `Pod`       | `pod_uid`, `qos`, `unit`                       |
//! | `…/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice:cri-containerd:<id>` | `Container` | `pod_uid`, `qos`, `container_id`, `runtime` |
//! | `/kubepods[/<qos>]/pod<uid>[/<id> or /crio-<id> …]`          | `Pod`/`Container` | `pod_uid`, `qos`, `container_id`, `runtime` only if prefixed |
//! | `/kubelet.slice/kubelet-kubepods.slice/…`                   | as above    | as above                                       |
//! | `/docker/<id>`, `/system.slice/docker-<id>.scope`           | `Container` | `container_id`, `runtime` docker, `unit` if a scope |
//! | `/machine.slice/libpod-<id>.scope[/container]`, `/libpod_parent/libpod-<id>` | `Container` | `runtime` podman             |
//! | `/default/<id>`, `/k8s.io/<id>` (plain containerd)          | `Container` | `runtime` containerd, `containerd_namespace`   |
//!
//! Trust. Names are chosen by systemd, logind, the kubelet and container
//! runtimes, except below a delegated cgroup (every container,
//! `user@<uid>.service`, `Delegate=yes` services, and anything below a unit),
//! where the workload itself may create cgroups with any name. So a path is
//! read in two parts ([`parse_path`]):
//! - `workload`: what the host vouches for, everything down to the first
//!   delegated cgroup. A process there is that cgroup's: the user manager,
//!   the service, the container (or the session).
//! - `claim`: what the path goes on to name below it (a pod, a container, a
//!   unit), kept to be shown as a claim and never used as identity.
//!
//! A Kubernetes root (`kubepods`, `*kubepods.slice`) is trusted only where
//! only the host's managers can make it: at the top level, or below host
//! slices (`/kubelet.slice/kubelet-kubepods.slice`), and not below a delegated
//! cgroup. Anywhere else (below a plain directory, which root may have chowned
//! to anyone) it starts a claim. The operator may name other roots
//! ([`KubeRoots`], `--kubepods-root`), e.g. a kind node's, seen from the host
//! below the node's container: paths below one are trusted afresh (its units
//! are then not the host's, [`Parsed::system_unit`]).
//!
//! Units of a user manager are named by that user: [`Parsed::user_unit`]
//! carries the innermost one with its uid, for the `systemd:user:<uid>:id:`
//! selector, never for `systemd:id:`.
//!
//! Rules (for both parts):
//! - `kind` is the innermost workload recognised; `unit` the innermost systemd
//!   unit. Enclosing context stays filled: a container keeps its pod's fields,
//!   a service running inside a container keeps the container's, anything
//!   under a host user slice keeps `session_uid`.
//! - A Kubernetes root starts afresh (only `session_uid` survives), so the
//!   claim of Kubernetes-in-Docker is the inner pod.
//! - `qos` is `guaranteed` for pods directly under the root.
//! - Pod UIDs are lowercased with dashes. Static pods have a 32-hex md5 UID
//!   (the `kubernetes.io/config.hash` annotation); it is kept as is.
//! - Positions matter: bare ids only directly under a pod, `docker` or a
//!   top-level containerd namespace; units only where systemd puts them (under
//!   a slice, the root, a user manager or a container), so `foo.service/bar`
//!   and `foo.service/bar.service` are both still `foo.service`; sessions and
//!   user managers only at `/user.slice/user-<uid>.slice/`, so `session_uid`
//!   always comes from the host's logind, never from a nested systemd.
//! - Non-numeric session ids (`session-c1.scope`) give `Session` with
//!   `session_id` `None`. Other scopes (`run-r….scope`, `app-….scope`) are
//!   `Service`.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    Pod,
    Container,
    Service,
    Session,
    /// The root, `init.scope`, bare slices, and anything not recognised.
    #[default]
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CgroupWorkload {
    pub kind: WorkloadKind,
    /// Lowercase `8-4-4-4-12`, or 32 hex for static pods.
    pub pod_uid: Option<String>,
    /// `guaranteed`, `burstable` or `besteffort`.
    pub qos: Option<String>,
    /// The runtime's id: 64 lowercase hex from the path (any containerd
    /// identifier once containerd confirmed the container, see `containerd.rs`).
    pub container_id: Option<String>,
    /// `containerd`, `cri-o`, `docker` or `podman`; `None` where the path does not say.
    pub runtime: Option<String>,
    /// Innermost systemd unit, e.g. `nginx.service`, `session-3.scope`.
    pub unit: Option<String>,
    /// From `session-<n>.scope`.
    pub session_id: Option<u32>,
    /// From the host's `/user.slice/user-<uid>.slice`.
    pub session_uid: Option<u32>,
    /// For plain containerd's `/<namespace>/<id>`.
    pub containerd_namespace: Option<String>,
}

/// What a cgroup path says, split at the trust boundary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// What the host's managers (systemd, logind, the kubelet at its place,
    /// container runtimes) vouch for: everything above the first delegated
    /// cgroup, or above a Kubernetes root out of place.
    pub workload: CgroupWorkload,
    /// What the path goes on to claim below that boundary (a pod, a container,
    /// a unit), named by whoever owns the delegated subtree: `None` when the
    /// path claims nothing there. Never to be taken as identity.
    pub claim: Option<CgroupWorkload>,
    /// Whether `workload.unit` is a unit of the host's system manager (false
    /// only for units below a configured Kubernetes root that lies inside a
    /// container or a user manager).
    pub system_unit: bool,
    /// `(uid, unit)`: the innermost unit of uid's user manager
    /// (`user@<uid>.service`) the path is in, outside containers. Named by
    /// that uid, so only good for the `systemd:user:<uid>:id:` selector.
    pub user_unit: Option<(u32, String)>,
}

/// Kubernetes roots the operator trusts besides the kubelet's default places
/// (`--kubepods-root`): cgroup paths (relative to the mount) of the cgroup
/// that holds the QoS tiers and pods, e.g.
/// `/system.slice/docker-<id>.scope/kubelet.slice/kubelet-kubepods.slice` for a
/// kind node seen from the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KubeRoots(Vec<Vec<String>>);

impl KubeRoots {
    /// Each root as an absolute path; `.` and `..` segments are refused.
    pub fn new<S: AsRef<str>>(roots: &[S]) -> Result<Self, String> {
        let mut out = Vec::new();
        for r in roots {
            let r = r.as_ref();
            if !r.starts_with('/') {
                return Err(format!("kubepods-root {r:?}: not an absolute cgroup path"));
            }
            let segs: Vec<String> = r
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if segs.is_empty() || segs.iter().any(|s| s == "." || s == "..") {
                return Err(format!(
                    "kubepods-root {r:?}: needs at least one segment, none `.` or `..`"
                ));
            }
            out.push(segs);
        }
        Ok(Self(out))
    }

    /// The number of leading segments of `segs` that are a configured root
    /// (the longest one), if any.
    fn prefix_len(&self, segs: &[&str]) -> Option<usize> {
        self.0
            .iter()
            .filter(|r| r.len() <= segs.len() && r.iter().zip(segs).all(|(a, b)| a == b))
            .map(Vec::len)
            .max()
    }
}

/// The workload the host vouches for at `path` (relative to the cgroup2
/// mount): [`parse_path`]'s `workload`, without configured roots.
#[must_use]
pub fn parse(path: &str) -> CgroupWorkload {
    parse_path(path, &KubeRoots::default()).workload
}

/// Parse `path`, trusting Kubernetes roots at the kubelet's places and at
/// `roots`; see the module docs for what is a claim.
#[must_use]
pub fn parse_path(path: &str, roots: &KubeRoots) -> Parsed {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let root_len = roots.prefix_len(&segs);
    let mut scan = Scan::default();
    for (depth, seg) in segs.iter().enumerate() {
        if root_len == Some(depth) {
            scan.configured_root();
        }
        scan.segment(depth, seg);
    }
    if root_len == Some(segs.len()) {
        scan.configured_root();
    }
    scan.finish()
}

const CONTAINER_ID_LEN: usize = 64;
/// systemd's `UNIT_NAME_MAX` (256) less the NUL.
const UNIT_NAME_MAX: usize = 255;
/// logind session ids are short; bounds what we accept.
const SESSION_ID_MAX: usize = 32;
/// Unit types whose cgroups hold processes (slices are handled apart).
const PROCESS_UNIT_SUFFIXES: [&str; 5] = [".service", ".scope", ".socket", ".mount", ".swap"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    /// The tier directory or slice component; guaranteed pods have none.
    fn from_tier(s: &str) -> Option<Self> {
        match s {
            "burstable" => Some(Self::Burstable),
            "besteffort" => Some(Self::BestEffort),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Guaranteed => "guaranteed",
            Self::Burstable => "burstable",
            Self::BestEffort => "besteffort",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    Containerd,
    CriO,
    Docker,
    Podman,
}

impl Runtime {
    fn as_str(self) -> &'static str {
        match self {
            Self::Containerd => "containerd",
            Self::CriO => "cri-o",
            Self::Docker => "docker",
            Self::Podman => "podman",
        }
    }
}

/// What a `<prefix>-<id>` leaf holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Container(Runtime),
    /// The runtime's monitor process, a sibling of the container.
    Conmon,
}

fn leaf_kind(prefix: &str) -> Option<Leaf> {
    match prefix {
        "cri-containerd" => Some(Leaf::Container(Runtime::Containerd)),
        "crio" => Some(Leaf::Container(Runtime::CriO)),
        "docker" => Some(Leaf::Container(Runtime::Docker)),
        "libpod" => Some(Leaf::Container(Runtime::Podman)),
        "crio-conmon" | "libpod-conmon" => Some(Leaf::Conmon),
        _ => None,
    }
}

/// The previous segment; several forms are only recognised by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Prev {
    #[default]
    Root,
    Other,
    /// A slice that is not specially handled.
    Slice,
    UserRoot,
    UserSlice(u32),
    UserManager,
    KubeRoot,
    KubeQos(Qos),
    Pod,
    Container,
    DockerRoot,
    LibpodParent,
    CtrdNs(&'static str),
}

impl Prev {
    /// Whether systemd could have created a unit's cgroup here: under a
    /// slice, the root, or the root of a nested manager (user or container).
    fn holds_units(self) -> bool {
        matches!(
            self,
            Self::Root
                | Self::Slice
                | Self::UserRoot
                | Self::UserSlice(_)
                | Self::UserManager
                | Self::KubeRoot
                | Self::KubeQos(_)
                | Self::Pod
                | Self::Container
        )
    }

    /// Whether a pod of this `QoS` class may sit here.
    fn fits_pod(self, qos: Qos) -> bool {
        match self {
            Self::KubeRoot => qos == Qos::Guaranteed,
            Self::KubeQos(q) => q == qos,
            _ => false,
        }
    }
}

enum KubeSlice {
    Root,
    Qos(Qos),
    Pod(Qos, String),
}

/// `[prefix-]kubepods[-<qos>][-pod<uid_>].slice`; systemd slice names spell
/// out their ancestry with `-`, hence the escaped UID.
fn kube_slice(seg: &str) -> Option<KubeSlice> {
    let stem = seg.strip_suffix(".slice")?;
    let mut parts = stem.split('-');
    loop {
        match parts.next()? {
            "kubepods" => break,
            "" => return None,
            _ => {}
        }
    }
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => Some(KubeSlice::Root),
        (Some(one), None, _) => match Qos::from_tier(one) {
            Some(q) => Some(KubeSlice::Qos(q)),
            None => Some(KubeSlice::Pod(Qos::Guaranteed, pod_part(one, b'_')?)),
        },
        (Some(tier), Some(pod), None) => {
            Some(KubeSlice::Pod(Qos::from_tier(tier)?, pod_part(pod, b'_')?))
        }
        _ => None,
    }
}

fn pod_part(s: &str, sep: u8) -> Option<String> {
    pod_uid(s.strip_prefix("pod")?, sep)
}

/// A UUID with `sep` between groups, or a static pod's 32-hex hash; normalised.
fn pod_uid(raw: &str, sep: u8) -> Option<String> {
    let b = raw.as_bytes();
    let valid = match b.len() {
        36 => b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == sep,
            _ => c.is_ascii_hexdigit(),
        }),
        32 => b.iter().all(u8::is_ascii_hexdigit),
        _ => false,
    };
    valid.then(|| {
        b.iter()
            .map(|&c| {
                if c == sep {
                    '-'
                } else {
                    char::from(c.to_ascii_lowercase())
                }
            })
            .collect()
    })
}

fn is_container_id(s: &str) -> bool {
    s.len() == CONTAINER_ID_LEN && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// `<prefix>-<id>[.scope]` -> (leaf, id, is a scope unit).
fn prefixed_leaf(seg: &str) -> Option<(Leaf, &str, bool)> {
    let (name, scoped) = match seg.strip_suffix(".scope") {
        Some(name) => (name, true),
        None => (seg, false),
    };
    let (prefix, id) = name.rsplit_once('-')?;
    if !is_container_id(id) {
        return None;
    }
    Some((leaf_kind(prefix)?, id, scoped))
}

/// Canonical decimal as systemd and logind print it: no sign, no leading zeros.
fn decimal(s: &str) -> Option<u32> {
    let canonical = !s.is_empty()
        && s.bytes().all(|c| c.is_ascii_digit())
        && (s.len() == 1 || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// A uid as used in `user-<uid>.slice`; `(uid_t)-1` is "no uid".
fn uid(s: &str) -> Option<u32> {
    decimal(s).filter(|&u| u != u32::MAX)
}

fn session_name(seg: &str) -> Option<&str> {
    let id = seg.strip_prefix("session-")?.strip_suffix(".scope")?;
    let valid = !id.is_empty()
        && id.len() <= SESSION_ID_MAX
        && id.bytes().all(|c| c.is_ascii_alphanumeric());
    valid.then_some(id)
}

fn is_unit_name(seg: &str, suffixes: &[&str]) -> bool {
    seg.len() <= UNIT_NAME_MAX
        && seg.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b':' | b'-' | b'_' | b'.' | b'\\' | b'@')
        })
        && suffixes.iter().any(|suffix| {
            seg.strip_suffix(suffix)
                .is_some_and(|stem| !stem.is_empty())
        })
}

/// Whose units the cgroups at this point of the path are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Manager {
    /// The host's PID 1.
    #[default]
    System,
    /// `user@<uid>.service`, running as that uid.
    User(u32),
    /// A manager inside a container.
    Nested,
}

#[derive(Default)]
struct Scan {
    w: CgroupWorkload,
    prev: Prev,
    /// Below a container or unit, whose owner may name cgroups freely, or
    /// below a Kubernetes root out of place: what follows is a claim.
    inside: bool,
    /// The workload as it stood when the path first claimed something below
    /// the boundary, and whether its unit was the system manager's.
    trusted: Option<(CgroupWorkload, bool)>,
    manager: Manager,
    /// Whether `w.unit` was named where the host's system manager names units.
    unit_system: bool,
    user_unit: Option<(u32, String)>,
}

impl Scan {
    fn segment(&mut self, depth: usize, seg: &str) {
        let prev = self.prev;
        self.prev = Prev::Other;
        if self.user_hierarchy(prev, seg)
            || self.colon_leaf(prev, seg)
            || self.kubernetes(prev, seg)
            || self.container(prev, seg)
            || self.unit(prev, seg)
        {
            return;
        }
        self.prev = match seg {
            "docker" => Prev::DockerRoot,
            "libpod_parent" => Prev::LibpodParent,
            "default" if depth == 0 => Prev::CtrdNs("default"),
            "k8s.io" if depth == 0 => Prev::CtrdNs("k8s.io"),
            // podman's inner cgroup: the same container.
            "container" if prev == Prev::Container => Prev::Container,
            _ => Prev::Other,
        };
    }

    /// Called before every identity found: past the boundary, the first one
    /// freezes what the host vouches for, and the rest is a claim.
    fn identity(&mut self) {
        if self.inside && self.trusted.is_none() {
            self.trusted = Some((self.w.clone(), self.unit_system));
        }
    }

    fn set_unit(&mut self, unit: Option<&str>) {
        self.w.unit = unit.map(str::to_owned);
        self.unit_system = self.manager == Manager::System;
        if let (Manager::User(uid), Some(unit)) = (self.manager, unit) {
            self.user_unit = Some((uid, unit.to_owned()));
        }
    }

    /// A root the operator configured: trusted afresh, whatever encloses it.
    /// Units below it are the enclosing manager's (the node's, for kind).
    fn configured_root(&mut self) {
        self.w = CgroupWorkload::default();
        self.prev = Prev::KubeRoot;
        self.inside = false;
        self.trusted = None;
    }

    fn finish(self) -> Parsed {
        let (workload, claim, unit_system) = match self.trusted {
            Some((trusted, unit_system)) => {
                let claim = self.w;
                let empty = claim.kind == WorkloadKind::Host
                    && claim.pod_uid.is_none()
                    && claim.container_id.is_none()
                    && claim.unit.is_none();
                (trusted, (!empty).then_some(claim), unit_system)
            }
            None => (self.w, None, self.unit_system),
        };
        Parsed {
            system_unit: unit_system && workload.unit.is_some(),
            workload,
            claim,
            user_unit: self.user_unit,
        }
    }

    /// A Kubernetes root: trusted only where the host's managers alone can
    /// make it (the top level, or below host slices); elsewhere whoever can
    /// make directories there could name it so, and it starts a claim.
    fn kube_root_at(&mut self, prev: Prev) {
        if !matches!(
            prev,
            Prev::Root | Prev::Slice | Prev::UserRoot | Prev::UserSlice(_)
        ) {
            self.inside = true;
        }
        self.kube_root();
    }

    /// `/user.slice/user-<uid>.slice/{session-<n>.scope,user@<uid>.service}`.
    fn user_hierarchy(&mut self, prev: Prev, seg: &str) -> bool {
        match prev {
            Prev::Root if seg == "user.slice" => {
                self.prev = Prev::UserRoot;
                true
            }
            Prev::UserRoot => {
                let Some(uid) = seg
                    .strip_prefix("user-")
                    .and_then(|s| s.strip_suffix(".slice"))
                    .and_then(uid)
                else {
                    return false;
                };
                self.w.session_uid = Some(uid);
                self.prev = Prev::UserSlice(uid);
                true
            }
            Prev::UserSlice(slice_uid) => {
                if let Some(id) = session_name(seg) {
                    self.identity();
                    self.w.kind = WorkloadKind::Session;
                    self.set_unit(Some(seg));
                    self.w.session_id = decimal(id);
                    self.inside = true;
                    return true;
                }
                let manager_uid = seg
                    .strip_prefix("user@")
                    .and_then(|s| s.strip_suffix(".service"))
                    .and_then(uid);
                if manager_uid != Some(slice_uid) {
                    return false;
                }
                self.identity();
                self.w.kind = WorkloadKind::Service;
                self.set_unit(Some(seg));
                self.inside = true;
                self.manager = Manager::User(slice_uid);
                self.prev = Prev::UserManager;
                true
            }
            _ => false,
        }
    }

    /// `kubepods[-<qos>]-pod<uid_>.slice:<prefix>:<id>`: a systemd-style
    /// cgroupsPath taken literally as a directory name (v1/hybrid setups).
    fn colon_leaf(&mut self, prev: Prev, seg: &str) -> bool {
        let mut parts = seg.split(':');
        let (Some(slice), Some(prefix), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let (Some(KubeSlice::Pod(qos, pod)), Some(leaf), true) =
            (kube_slice(slice), leaf_kind(prefix), is_container_id(id))
        else {
            return false;
        };
        // The slice name spells out its ancestry, which may not exist as directories.
        if !prev.fits_pod(qos) {
            self.kube_root_at(prev);
        }
        self.pod(qos, pod);
        match leaf {
            Leaf::Container(runtime) => {
                self.enter_container(Prev::Pod, Some(runtime), id, None, None);
            }
            Leaf::Conmon => self.conmon(Prev::Pod, None),
        }
        true
    }

    fn kubernetes(&mut self, prev: Prev, seg: &str) -> bool {
        if seg == "kubepods" {
            self.kube_root_at(prev);
            return true;
        }
        if let Some(level) = kube_slice(seg) {
            match level {
                KubeSlice::Root => self.kube_root_at(prev),
                KubeSlice::Qos(qos) if prev == Prev::KubeRoot => self.kube_qos(qos),
                KubeSlice::Pod(qos, pod) if prev.fits_pod(qos) => self.pod(qos, pod),
                // Out of place: not trusted, and nothing below it is either.
                _ => {}
            }
            return true;
        }
        // cgroupfs driver: plain directory names.
        if prev == Prev::KubeRoot
            && let Some(qos) = Qos::from_tier(seg)
        {
            self.kube_qos(qos);
            return true;
        }
        let qos = match prev {
            Prev::KubeRoot => Qos::Guaranteed,
            Prev::KubeQos(qos) => qos,
            _ => return false,
        };
        match pod_part(seg, b'-') {
            Some(pod) => {
                self.pod(qos, pod);
                true
            }
            None => false,
        }
    }

    fn kube_root(&mut self) {
        self.identity();
        self.w = CgroupWorkload {
            session_uid: self.w.session_uid,
            ..CgroupWorkload::default()
        };
        self.prev = Prev::KubeRoot;
    }

    fn kube_qos(&mut self, qos: Qos) {
        self.identity();
        self.w.qos = Some(qos.as_str().to_owned());
        self.prev = Prev::KubeQos(qos);
    }

    fn pod(&mut self, qos: Qos, pod: String) {
        self.identity();
        self.w.kind = WorkloadKind::Pod;
        self.w.pod_uid = Some(pod);
        self.w.qos = Some(qos.as_str().to_owned());
        self.prev = Prev::Pod;
    }

    fn container(&mut self, prev: Prev, seg: &str) -> bool {
        if is_container_id(seg) {
            let (runtime, namespace) = match prev {
                Prev::Pod => (None, None),
                Prev::DockerRoot => (Some(Runtime::Docker), None),
                Prev::CtrdNs(ns) => (Some(Runtime::Containerd), Some(ns)),
                _ => return false,
            };
            self.enter_container(prev, runtime, seg, None, namespace);
            return true;
        }
        let Some((leaf, id, scoped)) = prefixed_leaf(seg) else {
            return false;
        };
        let placed = if scoped {
            prev.holds_units()
        } else {
            matches!(prev, Prev::Pod | Prev::LibpodParent)
        };
        if !placed {
            return false;
        }
        let unit = scoped.then_some(seg);
        match leaf {
            Leaf::Container(runtime) => self.enter_container(prev, Some(runtime), id, unit, None),
            Leaf::Conmon => self.conmon(prev, unit),
        }
        true
    }

    fn enter_container(
        &mut self,
        prev: Prev,
        runtime: Option<Runtime>,
        id: &str,
        unit: Option<&str>,
        namespace: Option<&str>,
    ) {
        self.identity();
        if prev != Prev::Pod {
            self.w.pod_uid = None;
            self.w.qos = None;
        }
        self.w.kind = WorkloadKind::Container;
        self.w.container_id = Some(id.to_owned());
        self.w.runtime = runtime.map(|r| r.as_str().to_owned());
        self.w.containerd_namespace = namespace.map(str::to_owned);
        self.set_unit(unit);
        self.w.session_id = None;
        self.inside = true;
        // Units below are the container's own systemd's.
        self.manager = Manager::Nested;
        self.prev = Prev::Container;
    }

    /// The monitor belongs to the pod (or is a service of its own), not to the container.
    fn conmon(&mut self, prev: Prev, unit: Option<&str>) {
        self.identity();
        if prev == Prev::Pod {
            self.w.kind = WorkloadKind::Pod;
        } else {
            self.w.kind = if unit.is_some() {
                WorkloadKind::Service
            } else {
                WorkloadKind::Host
            };
            self.w.pod_uid = None;
            self.w.qos = None;
        }
        self.w.container_id = None;
        self.w.runtime = None;
        self.w.containerd_namespace = None;
        self.set_unit(unit);
        self.w.session_id = None;
        self.inside = true;
    }

    fn unit(&mut self, prev: Prev, seg: &str) -> bool {
        if !prev.holds_units() {
            return false;
        }
        if is_unit_name(seg, &[".slice"]) {
            self.prev = Prev::Slice;
            return true;
        }
        if !is_unit_name(seg, &PROCESS_UNIT_SUFFIXES) {
            return false;
        }
        self.identity();
        // PID 1's own scope: the enclosing kind (host, container, user manager) stands.
        if seg != "init.scope" {
            self.w.kind = WorkloadKind::Service;
        }
        self.set_unit(Some(seg));
        self.w.session_id = None;
        self.inside = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: &str = "9bcb30efecaadfa3e489a40e3ad0a1ad33cf83900c2c76aa869ffa4099a47d7e";
    const C2: &str = "4656816d6883380f5300ff46d90c80e6eb3eacc0eef7b083c82d4b9089de8c04";
    const POD: &str = "b4ac4218-25f3-48ec-821f-3e95d98bb26a";
    const POD_: &str = "b4ac4218_25f3_48ec_821f_3e95d98bb26a";
    const POD2: &str = "998842d9-e219-42c3-82b8-42a239952351";
    const STATIC_POD: &str = "fb8d0735d5d45e391224dd0aab4d5613";

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    fn host() -> CgroupWorkload {
        CgroupWorkload::default()
    }

    fn service(unit: &str) -> CgroupWorkload {
        CgroupWorkload {
            kind: WorkloadKind::Service,
            unit: s(unit),
            ..host()
        }
    }

    fn pod(uid: &str, qos: &str) -> CgroupWorkload {
        CgroupWorkload {
            kind: WorkloadKind::Pod,
            pod_uid: s(uid),
            qos: s(qos),
            ..host()
        }
    }

    fn pod_container(
        uid: &str,
        qos: &str,
        id: &str,
        runtime: Option<&str>,
        unit: Option<&str>,
    ) -> CgroupWorkload {
        CgroupWorkload {
            kind: WorkloadKind::Container,
            container_id: s(id),
            runtime: runtime.map(str::to_owned),
            unit: unit.map(str::to_owned),
            ..pod(uid, qos)
        }
    }

    fn container(id: &str, runtime: &str, unit: Option<&str>) -> CgroupWorkload {
        CgroupWorkload {
            kind: WorkloadKind::Container,
            container_id: s(id),
            runtime: s(runtime),
            unit: unit.map(str::to_owned),
            ..host()
        }
    }

    /// (path, expected, nested)
    fn cases() -> Vec<(String, CgroupWorkload, bool)> {
        let sd_pod = |qos: &str| match qos {
            "guaranteed" => format!("/kubepods.slice/kubepods-pod{POD_}.slice"),
            q => format!("/kubepods.slice/kubepods-{q}.slice/kubepods-{q}-pod{POD_}.slice"),
        };
        let scope = |prefix: &str, id: &str| format!("{prefix}-{id}.scope");
        let mut v = vec![
            // Host and plain systemd.
            ("/".into(), host(), false),
            ("".into(), host(), false),
            ("/system.slice".into(), host(), false),
            ("/user.slice".into(), host(), false),
            ("/some/test/dir".into(), host(), false),
            (
                "/init.scope".into(),
                CgroupWorkload {
                    unit: s("init.scope"),
                    ..host()
                },
                false,
            ),
            ("/system.slice/cron.service".into(), service("cron.service"), false),
            ("/system.slice/nginx.service".into(), service("nginx.service"), false),
            ("//system.slice//nginx.service//".into(), service("nginx.service"), false),
            (
                "/system.slice/system-getty.slice/getty@tty1.service".into(),
                service("getty@tty1.service"),
                false,
            ),
            ("/system.slice/foo.service/payload".into(), service("foo.service"), false),
            // A delegated service cannot rename itself by nesting a unit-like name.
            ("/system.slice/foo.service/sshd.service".into(), service("foo.service"), false),
            ("/system.slice/boot-efi.mount".into(), service("boot-efi.mount"), false),
            ("/system.slice/run-r3f2a9c.scope".into(), service("run-r3f2a9c.scope"), false),
            (
                "/machine.slice/machine-qemu\\x2d1\\x2dvm.scope".into(),
                service("machine-qemu\\x2d1\\x2dvm.scope"),
                false,
            ),
            // User sessions and managers.
            (
                "/user.slice/user-1000.slice".into(),
                CgroupWorkload {
                    session_uid: Some(1000),
                    ..host()
                },
                false,
            ),
            (
                "/user.slice/user-1000.slice/session-3.scope".into(),
                CgroupWorkload {
                    kind: WorkloadKind::Session,
                    unit: s("session-3.scope"),
                    session_id: Some(3),
                    session_uid: Some(1000),
                    ..host()
                },
                false,
            ),
            (
                "/user.slice/user-120.slice/session-c1.scope".into(),
                CgroupWorkload {
                    kind: WorkloadKind::Session,
                    unit: s("session-c1.scope"),
                    session_uid: Some(120),
                    ..host()
                },
                false,
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service".into(),
                CgroupWorkload {
                    session_uid: Some(1000),
                    ..service("user@1000.service")
                },
                false,
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service/init.scope".into(),
                CgroupWorkload {
                    session_uid: Some(1000),
                    ..service("init.scope")
                },
                true,
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service".into(),
                CgroupWorkload {
                    session_uid: Some(1000),
                    ..service("foo.service")
                },
                true,
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-1d2e.scope".into(),
                CgroupWorkload {
                    session_uid: Some(1000),
                    ..service("vte-spawn-1d2e.scope")
                },
                true,
            ),
            // Mismatched manager uid: a plain unit, session_uid from the slice only.
            (
                "/user.slice/user-1000.slice/user@0.service".into(),
                CgroupWorkload {
                    session_uid: Some(1000),
                    ..service("user@0.service")
                },
                false,
            ),
            // Sessions and uids only from the host's user.slice.
            (
                "/user.slice/user-1000.slice/user@1000.service/user.slice/user-0.slice/session-1.scope".into(),
                CgroupWorkload {
                    session_uid: Some(1000),
                    ..service("session-1.scope")
                },
                true,
            ),
            ("/user.slice/user-01000.slice".into(), host(), false),
            ("/user.slice/user-+1000.slice".into(), host(), false),
            ("/user.slice/user-4294967295.slice".into(), host(), false),
            ("/user.slice/user-4294967296.slice".into(), host(), false),
            // Kubernetes, systemd driver.
            (sd_pod("besteffort"), pod(POD, "besteffort"), false),
            (sd_pod("burstable"), pod(POD, "burstable"), false),
            (sd_pod("guaranteed"), pod(POD, "guaranteed"), false),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{STATIC_POD}.slice"),
                pod(STATIC_POD, "burstable"),
                false,
            ),
            (
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice", POD_.to_uppercase()),
                pod(POD, "besteffort"),
                false,
            ),
            (
                "/kubepods.slice".into(),
                host(),
                false,
            ),
            (
                "/kubepods.slice/kubepods-burstable.slice".into(),
                CgroupWorkload {
                    qos: s("burstable"),
                    ..host()
                },
                false,
            ),
        ];
        for qos in ["besteffort", "burstable", "guaranteed"] {
            for (prefix, runtime) in [
                ("cri-containerd", "containerd"),
                ("crio", "cri-o"),
                ("docker", "docker"),
                ("libpod", "podman"),
            ] {
                let leaf = scope(prefix, C1);
                v.push((
                    format!("{}/{leaf}", sd_pod(qos)),
                    pod_container(POD, qos, C1, Some(runtime), Some(&leaf)),
                    false,
                ));
            }
            let conmon = scope("crio-conmon", C1);
            v.push((
                format!("{}/{conmon}", sd_pod(qos)),
                CgroupWorkload {
                    unit: s(&conmon),
                    ..pod(POD, qos)
                },
                false,
            ));
        }
        let mut more = vec![
            // Colon-joined leaf (cgroupsPath taken literally).
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_}.slice:cri-containerd:{C1}"
                ),
                pod_container(POD, "burstable", C1, Some("containerd"), None),
                false,
            ),
            (
                format!("/kubepods-burstable-pod{POD_}.slice:cri-containerd:{C1}"),
                pod_container(POD, "burstable", C1, Some("containerd"), None),
                false,
            ),
            (
                format!("/kubepods.slice/kubepods-pod{POD_}.slice:crio:{C1}"),
                pod_container(POD, "guaranteed", C1, Some("cri-o"), None),
                false,
            ),
            // Kubernetes, cgroupfs driver.
            (
                format!("/kubepods/besteffort/pod{POD}"),
                pod(POD, "besteffort"),
                false,
            ),
            (
                format!("/kubepods/besteffort/pod{POD}/{C1}"),
                pod_container(POD, "besteffort", C1, None, None),
                false,
            ),
            (
                format!("/kubepods/burstable/pod{POD}/{C1}"),
                pod_container(POD, "burstable", C1, None, None),
                false,
            ),
            (
                format!("/kubepods/pod{POD}/{C1}"),
                pod_container(POD, "guaranteed", C1, None, None),
                false,
            ),
            (
                format!("/kubepods/burstable/pod{POD}/crio-{C1}"),
                pod_container(POD, "burstable", C1, Some("cri-o"), None),
                false,
            ),
            (
                format!("/kubepods/burstable/pod{POD}/crio-conmon-{C1}"),
                pod(POD, "burstable"),
                false,
            ),
            (
                format!("/kubepods/burstable/pod{STATIC_POD}/{C1}"),
                pod_container(STATIC_POD, "burstable", C1, None, None),
                false,
            ),
            // Bogus pod / container ids yield nothing bogus.
            (
                "/kubepods/besteffort/podnot-a-uid/x".into(),
                CgroupWorkload {
                    qos: s("besteffort"),
                    ..host()
                },
                false,
            ),
            (
                format!("/kubepods/besteffort/podnot-a-uid/{C1}"),
                CgroupWorkload {
                    qos: s("besteffort"),
                    ..host()
                },
                false,
            ),
            (
                format!("/kubepods/besteffort/pod{}/{C1}", &POD[1..]),
                CgroupWorkload {
                    qos: s("besteffort"),
                    ..host()
                },
                false,
            ),
            (
                format!("/kubepods/besteffort/pod{POD}/{}", &C1[1..]),
                pod(POD, "besteffort"),
                false,
            ),
            (
                format!("/kubepods/besteffort/pod{POD}/{}", C1.to_uppercase()),
                pod(POD, "besteffort"),
                false,
            ),
            (
                format!("/kubepods/besteffort/pod{POD_}"),
                CgroupWorkload {
                    qos: s("besteffort"),
                    ..host()
                },
                false,
            ),
            // A burstable pod slice under the besteffort tier is out of place.
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-burstable-pod{POD_}.slice"
                ),
                CgroupWorkload {
                    qos: s("besteffort"),
                    ..host()
                },
                false,
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice/cri-containerd-{}.scope",
                    &C1[2..]
                ),
                CgroupWorkload {
                    unit: Some(format!("cri-containerd-{}.scope", &C1[2..])),
                    ..service("x")
                }
                .with_pod(POD, "besteffort"),
                false,
            ),
            // Nested: Kubernetes in Docker; the innermost pod wins.
            (
                format!("/docker/{C2}/kubepods/besteffort/pod{POD}/{C1}"),
                pod_container(POD, "besteffort", C1, None, None),
                true,
            ),
            (
                format!("/system.slice/docker-{C2}.scope/kubepods/burstable/pod{POD}/{C1}"),
                pod_container(POD, "burstable", C1, None, None),
                true,
            ),
            (
                format!("/system.slice/docker-{C2}.scope/kubepods/burstable/pod{POD}"),
                pod(POD, "burstable"),
                true,
            ),
            (
                format!(
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{POD_}.slice/cri-containerd-{C1}.scope"
                ),
                pod_container(
                    POD,
                    "besteffort",
                    C1,
                    Some("containerd"),
                    Some(&format!("cri-containerd-{C1}.scope")),
                ),
                false,
            ),
            (
                format!(
                    "/system.slice/docker-{C2}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{POD_}.slice/cri-containerd-{C1}.scope"
                ),
                pod_container(
                    POD,
                    "guaranteed",
                    C1,
                    Some("containerd"),
                    Some(&format!("cri-containerd-{C1}.scope")),
                ),
                true,
            ),
            // A pod nested in another pod's container: the outer pod is gone.
            (
                format!("/kubepods/pod{POD2}/{C2}/kubepods/besteffort/pod{POD}"),
                pod(POD, "besteffort"),
                true,
            ),
            // Plain containers.
            (
                format!("/docker/{C1}"),
                container(C1, "docker", None),
                false,
            ),
            (
                format!("/system.slice/docker-{C1}.scope"),
                container(C1, "docker", Some(&format!("docker-{C1}.scope"))),
                false,
            ),
            (
                format!("/docker/{C2}/docker/{C1}"),
                container(C1, "docker", None),
                true,
            ),
            (
                format!("/machine.slice/libpod-{C1}.scope"),
                container(C1, "podman", Some(&format!("libpod-{C1}.scope"))),
                false,
            ),
            (
                format!("/machine.slice/libpod-{C1}.scope/container"),
                container(C1, "podman", Some(&format!("libpod-{C1}.scope"))),
                false,
            ),
            (
                format!("/machine.slice/libpod-conmon-{C1}.scope"),
                service(&format!("libpod-conmon-{C1}.scope")),
                false,
            ),
            (
                format!("/libpod_parent/libpod-{C1}"),
                container(C1, "podman", None),
                false,
            ),
            (
                format!(
                    "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{C1}.scope"
                ),
                CgroupWorkload {
                    session_uid: Some(1000),
                    ..container(C1, "podman", Some(&format!("libpod-{C1}.scope")))
                },
                true,
            ),
            (
                format!(
                    "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{C1}.scope/container"
                ),
                CgroupWorkload {
                    session_uid: Some(1000),
                    ..container(C1, "podman", Some(&format!("libpod-{C1}.scope")))
                },
                true,
            ),
            (
                format!("/default/{C1}"),
                CgroupWorkload {
                    containerd_namespace: s("default"),
                    ..container(C1, "containerd", None)
                },
                false,
            ),
            (
                format!("/k8s.io/{C1}"),
                CgroupWorkload {
                    containerd_namespace: s("k8s.io"),
                    ..container(C1, "containerd", None)
                },
                false,
            ),
            ("/default/not-an-id".into(), host(), false),
            (format!("/other/{C1}"), host(), false),
            (format!("/system.slice/default/{C1}"), host(), false),
            // systemd inside a container: the service keeps its container.
            (
                format!("/system.slice/docker-{C1}.scope/system.slice/nginx.service"),
                CgroupWorkload {
                    container_id: s(C1),
                    runtime: s("docker"),
                    ..service("nginx.service")
                },
                true,
            ),
            (
                format!("/machine.slice/libpod-{C1}.scope/container/init.scope"),
                container(C1, "podman", Some("init.scope")),
                true,
            ),
            (
                format!("/docker/{C1}/init.scope"),
                container(C1, "docker", Some("init.scope")),
                true,
            ),
            // Container scopes only where systemd creates units.
            (
                format!("/system.slice/foo.service/docker-{C1}.scope"),
                service("foo.service"),
                false,
            ),
            // A delegated service may fake a container below itself: flagged.
            (
                format!("/system.slice/foo.service/docker/{C1}"),
                container(C1, "docker", None),
                true,
            ),
        ];
        v.append(&mut more);
        v
    }

    impl CgroupWorkload {
        fn with_pod(self, uid: &str, qos: &str) -> Self {
            Self {
                pod_uid: s(uid),
                qos: s(qos),
                ..self
            }
        }
    }

    /// Every form: what the path names, either trusted (`nested` false) or
    /// as the claim below a delegated cgroup (`nested` true).
    #[test]
    fn table() {
        for (path, want, nested) in cases() {
            let p = parse_path(&path, &KubeRoots::default());
            if nested {
                assert_eq!(p.claim.as_ref(), Some(&want), "{path}");
                assert_ne!(p.workload, want, "{path}");
            } else {
                assert_eq!((&p.workload, &p.claim), (&want, &None), "{path}");
            }
        }
    }

    /// What the host vouches for when a path goes on below a delegated cgroup,
    /// and what the rest claims. The attacks of issue 9 (class 1) are here:
    /// pods and containers named inside a user manager, a delegated service or
    /// a container, and Kubernetes roots out of place.
    #[test]
    fn trust_boundary() {
        let um = "/user.slice/user-1000.slice/user@1000.service";
        let manager = || CgroupWorkload {
            session_uid: Some(1000),
            ..service("user@1000.service")
        };
        let sd_pod = format!(
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice/cri-containerd-{C1}.scope"
        );
        let fake_pod = pod_container(
            POD,
            "besteffort",
            C1,
            Some("containerd"),
            Some(&format!("cri-containerd-{C1}.scope")),
        );
        let fs_pod = pod_container(POD, "besteffort", C1, None, None);
        let docker_c2 = container(C2, "docker", Some(&format!("docker-{C2}.scope")));
        // (path, trusted, claim, system_unit, user_unit)
        type Case = (
            String,
            CgroupWorkload,
            Option<CgroupWorkload>,
            bool,
            Option<(u32, String)>,
        );
        let cases: Vec<Case> = vec![
            // A user manager's subtree is the user's to name.
            (
                format!("{um}/{sd_pod}"),
                manager(),
                Some(CgroupWorkload {
                    session_uid: Some(1000),
                    ..fake_pod.clone()
                }),
                true,
                Some((1000, format!("cri-containerd-{C1}.scope"))),
            ),
            (
                format!("{um}/kubepods/besteffort/pod{POD}/{C1}"),
                manager(),
                Some(CgroupWorkload {
                    session_uid: Some(1000),
                    ..fs_pod.clone()
                }),
                true,
                None,
            ),
            (
                format!("{um}/app.slice/backup.service"),
                manager(),
                Some(CgroupWorkload {
                    session_uid: Some(1000),
                    ..service("backup.service")
                }),
                true,
                Some((1000, "backup.service".into())),
            ),
            (
                format!("{um}/user.slice/libpod-{C1}.scope/container/init.scope"),
                manager(),
                Some(CgroupWorkload {
                    session_uid: Some(1000),
                    ..container(C1, "podman", Some("init.scope"))
                }),
                true,
                // The container's own init.scope is not the user's unit.
                Some((1000, format!("libpod-{C1}.scope"))),
            ),
            (um.to_owned(), manager(), None, true, None),
            // A Delegate=yes service.
            (
                format!("/system.slice/ci.service/kubepods/besteffort/pod{POD}/{C1}"),
                service("ci.service"),
                Some(fs_pod.clone()),
                true,
                None,
            ),
            (
                format!("/system.slice/ci.service/{sd_pod}"),
                service("ci.service"),
                Some(fake_pod.clone()),
                true,
                None,
            ),
            (
                format!("/system.slice/ci.service/docker/{C1}"),
                service("ci.service"),
                Some(container(C1, "docker", None)),
                true,
                None,
            ),
            // A container's own tree (cgroup namespace, nested runtimes, kind).
            (
                format!("/libpod_parent/libpod-{C2}/{sd_pod}"),
                container(C2, "podman", None),
                Some(fake_pod.clone()),
                false,
                None,
            ),
            (
                format!("/system.slice/docker-{C2}.scope/{sd_pod}"),
                docker_c2.clone(),
                Some(fake_pod.clone()),
                true,
                None,
            ),
            (
                format!("/system.slice/docker-{C2}.scope/system.slice/nginx.service"),
                docker_c2.clone(),
                Some(CgroupWorkload {
                    container_id: s(C2),
                    runtime: s("docker"),
                    ..service("nginx.service")
                }),
                true,
                None,
            ),
            (
                format!("/kubepods/pod{POD2}/{C2}/kubepods/besteffort/pod{POD}/{C1}"),
                pod_container(POD2, "guaranteed", C2, None, None),
                Some(fs_pod.clone()),
                false,
                None,
            ),
            // A Kubernetes root out of place: below a plain directory
            // (which root may have chowned to anyone).
            (
                format!("/scratch/kubepods/besteffort/pod{POD}/{C1}"),
                host(),
                Some(fs_pod.clone()),
                false,
                None,
            ),
            (
                format!("/scratch/{sd_pod}"),
                host(),
                Some(fake_pod.clone()),
                false,
                None,
            ),
            (
                format!("/scratch/kubepods-besteffort-pod{POD_}.slice:cri-containerd:{C1}"),
                host(),
                Some(pod_container(
                    POD,
                    "besteffort",
                    C1,
                    Some("containerd"),
                    None,
                )),
                false,
                None,
            ),
            // At the kubelet's places: trusted.
            (format!("/{sd_pod}"), fake_pod.clone(), None, true, None),
            (
                format!("/kubepods/besteffort/pod{POD}/{C1}"),
                fs_pod.clone(),
                None,
                false,
                None,
            ),
            (
                format!(
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{POD_}.slice/cri-containerd-{C1}.scope"
                ),
                fake_pod.clone(),
                None,
                true,
                None,
            ),
            // A session scope is not delegated, but nothing below it is logind's.
            (
                format!("/user.slice/user-1000.slice/session-3.scope/{sd_pod}"),
                CgroupWorkload {
                    kind: WorkloadKind::Session,
                    unit: s("session-3.scope"),
                    session_id: Some(3),
                    session_uid: Some(1000),
                    ..host()
                },
                Some(CgroupWorkload {
                    session_uid: Some(1000),
                    ..fake_pod.clone()
                }),
                true,
                None,
            ),
        ];
        for (path, trusted, claim, system_unit, user_unit) in cases {
            let p = parse_path(&path, &KubeRoots::default());
            assert_eq!(
                p,
                Parsed {
                    workload: trusted,
                    claim,
                    system_unit,
                    user_unit,
                },
                "{path}"
            );
        }
    }

    /// `--kubepods-root`: the operator's word makes a nested root trusted
    /// (kind), and only that root.
    #[test]
    fn configured_roots() {
        let node = format!("/system.slice/docker-{C2}.scope/kubelet.slice/kubelet-kubepods.slice");
        let pod_path = format!(
            "{node}/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{POD_}.slice/cri-containerd-{C1}.scope"
        );
        let roots = KubeRoots::new(std::slice::from_ref(&node)).unwrap();
        let p = parse_path(&pod_path, &roots);
        assert_eq!(
            p.workload,
            pod_container(
                POD,
                "besteffort",
                C1,
                Some("containerd"),
                Some(&format!("cri-containerd-{C1}.scope"))
            )
        );
        assert_eq!(p.claim, None);
        // The scope is the node's systemd's, not the host's.
        assert!(!p.system_unit);
        // Without the root: the node container, claiming the pod.
        let plain = parse_path(&pod_path, &KubeRoots::default());
        assert_eq!(
            plain.workload,
            container(C2, "docker", Some(&format!("docker-{C2}.scope")))
        );
        assert_eq!(plain.claim.map(|c| c.pod_uid), Some(s(POD)));
        // The root itself, and a sibling that only starts like it.
        assert_eq!(parse_path(&node, &roots).workload, host());
        let sibling = pod_path.replace("kubelet-kubepods.slice/", "kubelet-kubepods2.slice/");
        assert_eq!(parse_path(&sibling, &roots).workload.pod_uid, None);
        // Below a pod of a configured root, the container is again a boundary.
        let deeper = format!("{pod_path}/kubepods/pod{POD2}/{C2}");
        let d = parse_path(&deeper, &roots);
        assert_eq!(d.workload.pod_uid, s(POD));
        assert_eq!(d.claim.and_then(|c| c.pod_uid), s(POD2));
        // A top-level root the operator names: its units are the host's.
        let top = KubeRoots::new(&["/k8s"]).unwrap();
        let t = parse_path(&format!("/k8s/besteffort/pod{POD}/{C1}"), &top);
        assert_eq!(t.workload, pod_container(POD, "besteffort", C1, None, None));
        assert!(KubeRoots::new(&["relative/x"]).is_err());
        assert!(KubeRoots::new(&["/"]).is_err());
        assert!(KubeRoots::new(&["/a/../b"]).is_err());
    }

    #[test]
    fn truncations_do_not_panic() {
        for (path, _, _) in cases() {
            for end in (0..=path.len()).filter(|&i| path.is_char_boundary(i)) {
                let w = parse(&path[..end]);
                check_invariants(&w);
            }
            for start in (0..=path.len()).filter(|&i| path.is_char_boundary(i)) {
                check_invariants(&parse(&path[start..]));
            }
        }
    }

    fn check_invariants(w: &CgroupWorkload) {
        if let Some(id) = &w.container_id {
            assert!(is_container_id(id), "{w:?}");
        }
        if let Some(uid) = &w.pod_uid {
            assert!(uid.len() == 36 || uid.len() == 32, "{w:?}");
            assert!(
                uid.bytes()
                    .all(|c| c == b'-' || matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{w:?}"
            );
        }
        if let Some(unit) = &w.unit {
            assert!(unit.len() <= UNIT_NAME_MAX, "{w:?}");
        }
        match w.kind {
            WorkloadKind::Pod => assert!(w.pod_uid.is_some() && w.container_id.is_none(), "{w:?}"),
            WorkloadKind::Container => assert!(w.container_id.is_some(), "{w:?}"),
            WorkloadKind::Session => assert!(w.session_uid.is_some(), "{w:?}"),
            WorkloadKind::Service | WorkloadKind::Host => {}
        }
    }

    #[test]
    fn garbage_does_not_panic() {
        const PIECES: &[&str] = &[
            "/",
            "//",
            "-",
            "_",
            ":",
            ".",
            "..",
            "@",
            "\\",
            "é",
            "\0",
            "pod",
            "kubepods",
            ".slice",
            ".scope",
            ".service",
            "user-",
            "user@",
            "session-",
            "docker",
            "crio",
            "cri-containerd",
            "libpod",
            "conmon",
            "besteffort",
            "burstable",
            "default",
            "0",
            "1000",
            "abc",
            POD,
            POD_,
            C1,
            STATIC_POD,
            "container",
            "user.slice",
        ];
        // xorshift64: deterministic, no dependency.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = next() % 24;
            let path: String = (0..len)
                .filter_map(|_| PIECES.get((next() % PIECES.len() as u64) as usize).copied())
                .collect();
            check_invariants(&parse(&path));
        }
    }

    #[test]
    fn huge_inputs() {
        check_invariants(&parse(&"/".repeat(1 << 20)));
        check_invariants(&parse(&"a".repeat(1 << 20)));
        check_invariants(&parse(&"-".repeat(1 << 20)));
        check_invariants(&parse(&format!("{}.slice", "kubepods-".repeat(1 << 16))));
        let deep = format!("/kubepods/besteffort/pod{POD}/{C1}").repeat(1 << 12);
        assert_eq!(
            parse(&deep),
            pod_container(POD, "besteffort", C1, None, None)
        );
        let long_unit = format!("/system.slice/{}.service", "a".repeat(UNIT_NAME_MAX));
        assert_eq!(parse(&long_unit), host());
    }

    #[test]
    fn kind_serializes_snake_case() -> Result<(), serde_json::Error> {
        assert_eq!(serde_json::to_string(&WorkloadKind::Pod)?, "\"pod\"");
        assert_eq!(serde_json::to_string(&WorkloadKind::Host)?, "\"host\"");
        Ok(())
    }
}
