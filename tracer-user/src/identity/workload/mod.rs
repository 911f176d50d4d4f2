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

use scan::Scan;

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

mod scan;
mod segments;
#[cfg(test)]
mod tests;
