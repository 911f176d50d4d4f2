//! The one place that defines what the tracer emits. Sinks only serialize these
//! types; field meanings are documented in README.md ("Event reference").
//! The event and its executor are here; its parts, the loss record and time
//! each have a module, and [`view`] reads written lines back.
mod action;
pub mod authority;
mod lenient;
mod lineage;
mod loss;
mod requestor;
#[cfg(test)]
mod sample;
mod time;
pub mod view;
mod workload;

use std::sync::Arc;

use serde::Serialize;

use crate::filehash::{FileVersion, HashState, HashStatus};

pub use action::{
    Action, Aggregate, ConnectAction, DestPod, DestService, Endpoint, ExecAction, ExitAction,
    ForkAction, Outcome, OutcomeCounts, PathAttempt, Usage, UsageAction, UsageSince,
};
pub use authority::{Authority, Capabilities, NsUid, Seccomp, UserNamespace};
pub use lineage::{Ancestor, AncestorBase, LineageMode, ProcessRecord};
pub use loss::{BudgetCounts, LossCounts, LossRecord, SinkGap};
pub use requestor::{Overrides, RESERVED_FIELDS, Requestor, RequestorClaim, RequestorValues};
#[cfg(test)]
pub(crate) use sample::{sample_exec_event, sample_executor};
pub(crate) use time::push_padded;
pub use time::{EventId, UnixNanos, event_id, now_unix_ns, rfc3339_nanos};
pub use workload::{
    Claim, Container, Identity, IdentityStatus, Pod, PodOwner, Selectors, Workload,
};

/// Shared by every event of a run.
#[derive(Debug, Serialize)]
pub struct Host {
    pub name: String,
    pub boot_id: String,
}

/// Which attribution settings were in force.
#[derive(Debug, Serialize)]
pub struct Policy {
    pub tracer_version: &'static str,
    pub config_digest: String,
}

#[derive(Debug, Serialize)]
pub struct Event {
    pub event_id: EventId,
    pub time: UnixNanos,
    pub kind: Kind,
    pub host: Arc<Host>,
    pub executor: Executor,
    pub lineage: Vec<Ancestor>,
    pub action: Action,
    pub policy: Arc<Policy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Exec,
    Connect,
    Fork,
    Exit,
    Usage,
}

fn argv_bytes(argv: &[String]) -> usize {
    argv.iter().map(|a| a.len() + 40).sum()
}

impl Event {
    /// Heap bytes this event holds, roughly and from above: what an event
    /// waiting in a queue costs against the budget. Values shared with the
    /// process table or the identity memo are counted as if owned.
    pub fn approx_bytes(&self) -> usize {
        const FIXED: usize = 2048;
        let e = &self.executor;
        let mut n =
            FIXED + e.binary.len() + argv_bytes(&e.argv) + e.cwd.as_ref().map_or(0, |c| c.len());
        n += e.loader_env.as_ref().map_or(0, |env| {
            env.iter().map(|(k, v)| k.len() + v.len() + 80).sum()
        });
        n += e
            .credentials
            .env
            .as_ref()
            .map_or(0, |c| c.names.iter().map(|k| k.len() + 40).sum());
        n += e.cgroup.path.as_ref().map_or(0, |p| p.len());
        n += e.requestor.as_ref().map_or(0, |r| r.approx_bytes());
        if let Some(pod) = &e.workload.pod {
            n += pod
                .labels
                .as_ref()
                .map_or(0, |l| l.iter().map(|(k, v)| k.len() + v.len() + 80).sum());
        }
        for a in &self.lineage {
            n += 256 + a.binary.len() + argv_bytes(&a.argv);
            n += a.json.as_ref().map_or(0, |j| j.get().len());
        }
        if let Action::Exec(x) = &self.action
            && !Arc::ptr_eq(&x.argv, &e.argv)
        {
            n += x.binary.len() + argv_bytes(&x.argv);
        }
        if let Action::Exec(x) = &self.action {
            n += x
                .path_search
                .iter()
                .map(|a| a.path.len() + 64)
                .sum::<usize>();
        }
        n
    }

    /// When the action happened, Unix ns: the number the event id starts with.
    pub fn unix_ns(&self) -> i128 {
        self.event_id.time.0
    }
}

impl Kind {
    /// The serialized name (metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Exec => "exec",
            Kind::Connect => "connect",
            Kind::Fork => "fork",
            Kind::Exit => "exit",
            Kind::Usage => "usage",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Executor {
    pub exec_id: Arc<str>,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub binary: Arc<str>,
    pub argv: Arc<[String]>,
    /// `argv` is cut: the kernel's capture bound, the /proc read bound, or the
    /// process table's bound on what it keeps for an image's later events (its
    /// exec event has all the kernel captured).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub argv_truncated: bool,
    /// Where `binary`, `argv` and `loader_env` came from: `exec` (the kernel, at
    /// the exec), `proc` (read from /proc later: the image predates the tracer or
    /// its exec record was lost; a process can rewrite its own cmdline and
    /// environment, so this is weaker evidence), `comm` (only the kernel's
    /// 16-byte name is known).
    pub image_source: ImageSource,
    /// The executed file as the kernel opened it: its file system's device and
    /// its inode, in the executor's mount namespace (`namespaces.mnt`), and
    /// the SHA-256 of its content (`hash` says whether `sha256` is there).
    pub file: Option<FileId>,
    /// Values of the dynamic loader's variables in the image's environment at
    /// exec (`LD_PRELOAD`, `LD_LIBRARY_PATH`, `LD_AUDIT`): code injected into
    /// the image. Absent when none is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loader_env: Option<Arc<LoaderEnv>>,
    /// Credentials the image held: the names (never the values) of the
    /// credential variables in its environment at exec, and for a pod's
    /// container whether its service account token is mounted. Absent when
    /// there is nothing to say.
    #[serde(skip_serializing_if = "Credentials::is_empty")]
    pub credentials: Credentials,
    pub cwd: Option<Arc<str>>,
    /// Where `cwd` came from: `kernel` (the probe's walk of the directory's
    /// dentries at the exec) or `proc` (`/proc/<pid>/cwd`, read later: the
    /// walk could not run, or the image predates the tracer). Absent with a
    /// null cwd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd_source: Option<CwdSource>,
    /// `cwd` is cut: deeper than the walk goes; it holds the deepest
    /// components after `...`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cwd_truncated: bool,
    /// The directory is not under the process's root (a chroot it is outside
    /// of, a detached mount): `cwd` is the path from the top of its mount
    /// namespace.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cwd_outside_root: bool,
    pub comm: String,
    pub start_time: UnixNanos,
    pub user: User,
    /// What the executor may do, as the kernel held it at the action: its
    /// capability sets, no_new_privs, seccomp mode and user namespace.
    pub authority: Authority,
    pub login: Option<Login>,
    /// Who asked an automation system for this (a CI run and its actor), as
    /// the system wrote it into the environment: see [`Requestor`]. Absent
    /// when no profile matched the image's or an ancestor's environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requestor: Option<Arc<Requestor>>,
    pub cgroup: Cgroup,
    pub namespaces: Namespaces,
    pub workload: Arc<Workload>,
    pub identity: Arc<Identity>,
}

impl Executor {
    /// Whether `self` and `other` serialize to the same bytes: shared values
    /// compare by pointer first, then by content, so a cache keyed on this is
    /// never fooled by an address reused for another value.
    pub fn serializes_like(&self, o: &Executor) -> bool {
        fn same<T: PartialEq + ?Sized>(a: &Arc<T>, b: &Arc<T>) -> bool {
            Arc::ptr_eq(a, b) || **a == **b
        }
        self.pid == o.pid
            && self.tid == o.tid
            && self.ppid == o.ppid
            && self.argv_truncated == o.argv_truncated
            && self.image_source == o.image_source
            && self.start_time == o.start_time
            && same(&self.exec_id, &o.exec_id)
            && same(&self.binary, &o.binary)
            && same(&self.argv, &o.argv)
            && self.file == o.file
            && match (&self.loader_env, &o.loader_env) {
                (Some(a), Some(b)) => same(a, b),
                (a, b) => a.is_none() && b.is_none(),
            }
            && self.credentials.serializes_like(&o.credentials)
            && self.cwd == o.cwd
            && self.cwd_source == o.cwd_source
            && self.cwd_truncated == o.cwd_truncated
            && self.cwd_outside_root == o.cwd_outside_root
            && self.comm == o.comm
            && self.user == o.user
            && self.authority == o.authority
            && self.login == o.login
            && match (&self.requestor, &o.requestor) {
                (Some(a), Some(b)) => same(a, b),
                (a, b) => a.is_none() && b.is_none(),
            }
            && self.cgroup == o.cgroup
            && self.namespaces == o.namespaces
            && same(&self.workload, &o.workload)
            && same(&self.identity, &o.identity)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    Exec,
    Proc,
    Comm,
}

/// Where an executor's working directory came from ([`Executor::cwd_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CwdSource {
    Kernel,
    Proc,
}

/// A file by what the kernel knows it as: `dev` is `major:minor`; its
/// content's SHA-256 when `hash` is `sha256` (see `filehash`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileId {
    pub dev: String,
    pub ino: u64,
    pub hash: HashStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Arc<str>>,
    /// The version hashed (size and ctime too): to look the hash up again.
    #[serde(skip)]
    pub version: FileVersion,
}

impl FileId {
    pub fn new(version: FileVersion, state: &HashState) -> Self {
        Self {
            dev: version.dev(),
            ino: version.ino,
            hash: state.status(),
            sha256: state.sha256(),
            version,
        }
    }
}

/// Loader variable name -> value, in name order.
pub type LoaderEnv = std::collections::BTreeMap<String, String>;

/// The names of the credential variables an image's environment held at its
/// exec (`--credential-env` patterns), sorted; shared by the image's table
/// entry and its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CredentialEnv {
    pub names: Vec<String>,
    /// Not all of the environment was seen (the probe's copy was cut or a
    /// page was unreadable), or it had more names than are kept.
    pub incomplete: bool,
}

/// `executor.credentials`: `{"env": [names], "env_incomplete": true,
/// "service_account_token": bool}`, each part only when known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credentials {
    pub env: Option<Arc<CredentialEnv>>,
    /// The container mounts its pod's service account token (from the pod
    /// spec); None when not a pod's container or its spec is not known.
    pub service_account_token: Option<bool>,
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.env.is_none() && self.service_account_token.is_none()
    }

    fn serializes_like(&self, o: &Credentials) -> bool {
        self.service_account_token == o.service_account_token
            && match (&self.env, &o.env) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                (a, b) => a.is_none() && b.is_none(),
            }
    }
}

impl Serialize for Credentials {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let incomplete = self.env.as_ref().is_some_and(|e| e.incomplete);
        let len = usize::from(self.env.is_some())
            + usize::from(incomplete)
            + usize::from(self.service_account_token.is_some());
        let mut m = s.serialize_map(Some(len))?;
        if let Some(env) = &self.env {
            m.serialize_entry("env", &env.names)?;
            if incomplete {
                m.serialize_entry("env_incomplete", &true)?;
            }
        }
        if let Some(t) = self.service_account_token {
            m.serialize_entry("service_account_token", &t)?;
        }
        m.end()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub uid: u32,
    pub name: Option<String>,
    pub gid: u32,
    pub group: Option<String>,
    pub euid: u32,
    pub egid: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Login {
    pub auid: u32,
    pub name: Option<String>,
    pub session_id: Option<u32>,
    pub tty: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cgroup {
    /// cgroup v2 id, captured in the kernel.
    pub id: u64,
    /// The cgroup the workload is named from, relative to the root of
    /// `hierarchy`.
    pub path: Option<Arc<str>>,
    /// Which hierarchy `path` is in: `v2`, or `v1:<controller>` (`v1:memory`)
    /// where the v2 cgroup is the root and the task sits below the root of
    /// that v1 controller's hierarchy (cgroup v1 hosts).
    pub hierarchy: &'static str,
    /// The cgroup id in the v1 controller hierarchy the tracer reads; null
    /// where it reads none (no v1 hierarchy mounted).
    pub v1_id: Option<u64>,
    /// `path` is only the start of the cgroup's path: the kernel's record cut
    /// it (longer than 1023 bytes) and the cgroup could not be found whole by
    /// its id. Written only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
}

impl Cgroup {
    /// The path the workload and identity are named from: `path`, or where that
    /// was cut, the deepest cgroup it names whole (an ancestor, which holds the
    /// process too), never a name cut short (a cut `ssh.service-x` would read
    /// `ssh.service`).
    pub fn naming_path(&self) -> Option<Arc<str>> {
        naming_path(self.path.as_ref(), self.path_truncated)
    }
}

/// See [`Cgroup::naming_path`].
pub fn naming_path(path: Option<&Arc<str>>, truncated: bool) -> Option<Arc<str>> {
    let path = path?;
    if !truncated {
        return Some(path.clone());
    }
    match path.rfind('/') {
        Some(0) | None => Some(Arc::from("/")),
        Some(i) => Some(Arc::from(&path[..i])),
    }
}

/// [`Cgroup::hierarchy`] of a v2 path.
pub const HIERARCHY_V2: &str = "v2";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Namespaces {
    pub pid: u32,
    pub mnt: u32,
    pub net: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        sample_exec_event()
    }

    /// An ancestor's fields are serialized once and pasted into lines as they

    #[test]
    fn a_cut_path_names_its_deepest_whole_cgroup() {
        let cases: &[(Option<&str>, bool, Option<&str>)] = &[
            (None, false, None),
            (None, true, None),
            (Some("/a/b"), false, Some("/a/b")),
            (Some("/a/b"), true, Some("/a")),
            (Some("/a/b/"), true, Some("/a/b")),
            (Some("/abc"), true, Some("/")),
            (Some("abc"), true, Some("/")),
        ];
        for (path, cut, want) in cases {
            let path: Option<Arc<str>> = path.map(Arc::from);
            assert_eq!(
                naming_path(path.as_ref(), *cut).as_deref(),
                *want,
                "{path:?} {cut}"
            );
        }
    }

    #[test]
    fn event_serializes_to_one_line_with_the_documented_shape() {
        let line = serde_json::to_string(&sample()).unwrap();
        assert!(!line.contains('\n'), "one line: {line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        // serde_json's Map sorts keys; the line itself keeps declaration order.
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "action", "event_id", "executor", "host", "kind", "lineage", "policy", "time"
            ]
        );
        assert!(line.starts_with("{\"event_id\":"), "{line}");
        assert_eq!(v["kind"], "exec");
        assert_eq!(v["executor"]["user"]["name"], "deploy");
        assert_eq!(v["executor"]["user"]["group"], serde_json::Value::Null);
        assert_eq!(v["executor"]["login"], serde_json::Value::Null);
        assert_eq!(v["executor"]["cgroup"]["path"], "/system.slice/x.service");
        assert_eq!(v["executor"]["cgroup"]["hierarchy"], "v2");
        assert_eq!(v["executor"]["cgroup"]["v1_id"], serde_json::Value::Null);
        assert_eq!(v["lineage"][0]["binary"], "/sbin/init");
        // Lineage entries carry identity only where it differs.
        assert!(v["lineage"][0].get("identity").is_none());
        assert_eq!(v["executor"]["workload"]["kind"], "service");
        assert_eq!(v["executor"]["identity"]["status"], "resolved");
        // The newline is escaped by JSON; the invalid byte by our reversible escape.
        assert_eq!(v["action"]["argv"][1], "a\nb\\xff");
        assert_eq!(
            crate::escape::unescape(v["action"]["argv"][1].as_str().unwrap()).unwrap(),
            b"a\nb\xff"
        );
        assert_eq!(v["action"]["outcome"], "success");
        assert_eq!(v["action"]["error"], serde_json::Value::Null);
    }

    #[test]
    fn serializes_kinds_and_outcomes() {
        assert_eq!(serde_json::to_string(&Kind::Exec).unwrap(), "\"exec\"");
        for k in [
            Kind::Exec,
            Kind::Connect,
            Kind::Fork,
            Kind::Exit,
            Kind::Usage,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for st in [
            IdentityStatus::Resolved,
            IdentityStatus::Partial,
            IdentityStatus::Unresolved,
        ] {
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
        }
        assert_eq!(
            serde_json::to_string(&Outcome::InProgress).unwrap(),
            "\"in_progress\""
        );
    }
}
