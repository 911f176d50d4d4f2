//! The walk down a cgroup path, segment by segment, that tells what the
//! host vouches for from what the path merely claims.

use super::{
    CgroupWorkload, Parsed, WorkloadKind,
    segments::{
        KubeSlice, Leaf, PROCESS_UNIT_SUFFIXES, Qos, Runtime, decimal, is_container_id,
        is_unit_name, kube_slice, leaf_kind, pod_part, prefixed_leaf, session_name, uid,
    },
};

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
pub(super) struct Scan {
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
    pub(super) fn segment(&mut self, depth: usize, seg: &str) {
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
    pub(super) fn configured_root(&mut self) {
        self.w = CgroupWorkload::default();
        self.prev = Prev::KubeRoot;
        self.inside = false;
        self.trusted = None;
    }

    pub(super) fn finish(self) -> Parsed {
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
