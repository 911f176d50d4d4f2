//! The selector grammar (`<type>:<name>:<value>`): parsing and checking
//! selectors, matching them against a workload, and a workload's own
//! selectors as strings for events.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

use super::WorkloadFacts;
use crate::glob::{Glob, GlobProblem};

const SELECTOR_TYPES: &str = "k8s, unix, systemd, cgroup";
const K8S_NAMES: &str = "ns, sa, pod-label, pod-name, pod-uid, container-name, container-image";
const UNIX_NAMES: &str = "uid, user, gid, path";
/// systemd.unit(5) types; a unit name without one of these is a typo.
const UNIT_SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".target",
    ".path",
    ".timer",
    ".slice",
    ".scope",
];

/// A pod's label selectors (`k8s:pod-label:<key>:<value>`), sorted.
pub fn label_selectors(labels: &BTreeMap<String, String>) -> Vec<String> {
    // Keys are unique and sorted, and the prefix is the same: already in order.
    labels
        .iter()
        .map(|(k, v)| format!("k8s:pod-label:{k}:{v}"))
        .collect()
}

/// The workload's selectors as strings ("k8s:ns:ci", ...), sorted, for the
/// event. Globs have no place here: the concrete "cgroup:path:<path>" is
/// included instead.
pub fn selectors(f: &WorkloadFacts<'_>) -> Vec<String> {
    fn add(out: &mut Vec<String>, prefix: &str, value: Option<impl fmt::Display>) {
        if let Some(value) = value {
            out.push(format!("{prefix}{value}"));
        }
    }
    let mut out = Vec::new();
    add(&mut out, "k8s:ns:", f.namespace);
    add(&mut out, "k8s:sa:", f.service_account);
    add(&mut out, "k8s:pod-name:", f.pod_name);
    add(&mut out, "k8s:pod-uid:", f.pod_uid);
    out.extend(f.pod_labels.map(label_selectors).unwrap_or_default());
    add(&mut out, "k8s:container-name:", f.container_name);
    add(&mut out, "k8s:container-image:", f.container_image);
    add(&mut out, "unix:uid:", f.uid);
    add(&mut out, "unix:user:", f.user);
    add(&mut out, "unix:gid:", f.gid);
    add(&mut out, "unix:path:", f.path);
    add(&mut out, "systemd:id:", f.unit);
    if let Some((uid, unit)) = f.user_unit {
        out.push(format!("systemd:user:{uid}:id:{unit}"));
    }
    add(&mut out, "cgroup:path:", f.cgroup_path);
    out.sort();
    out.dedup();
    out
}

/// What is wrong with a selector.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectorProblem {
    #[error("expected <type>:<name>:<value>, e.g. \"k8s:ns:ci\"")]
    Shape,
    #[error("unknown selector type {0:?} (known: {SELECTOR_TYPES})")]
    UnknownType(String),
    #[error("unknown {ty} selector {name:?} (known: {known})")]
    UnknownName {
        ty: &'static str,
        name: String,
        known: &'static str,
    },
    #[error("the value is empty")]
    EmptyValue,
    #[error("the value has leading or trailing whitespace")]
    Whitespace,
    #[error("{0:?} is not a number from 0 to {max}", max = u32::MAX)]
    NotANumber(String),
    #[error("{value:?} is not a valid Kubernetes {what}")]
    K8sName { what: &'static str, value: String },
    #[error("expected k8s:pod-label:<key>:<value>")]
    LabelShape,
    #[error("{0:?} is not a valid Kubernetes label key")]
    LabelKey(String),
    #[error("{0:?} is not a valid Kubernetes label value")]
    LabelValue(String),
    #[error("{0:?} is not an absolute path")]
    RelativePath(String),
    #[error("{0:?} is not a systemd unit name (it needs a type suffix such as .service)")]
    Unit(String),
    #[error("expected systemd:user:<uid>:id:<unit>, e.g. \"systemd:user:1000:id:backup.service\"")]
    UserUnitShape,
    #[error("glob {pattern:?}: {problem}")]
    Glob {
        pattern: String,
        problem: GlobProblem,
    },
}

/// One precompiled selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    K8sNs(String),
    K8sSa(String),
    K8sPodLabel {
        key: String,
        value: String,
    },
    K8sPodName(String),
    K8sPodUid(String),
    K8sContainerName(String),
    K8sContainerImage(String),
    UnixUid(u32),
    UnixUser(String),
    UnixGid(u32),
    UnixPath(String),
    SystemdId(String),
    /// `systemd:user:<uid>:id:<unit>`: a unit of uid's user manager.
    SystemdUserId {
        uid: u32,
        unit: String,
    },
    CgroupPath(Glob),
}

impl Selector {
    /// Parses `type:name:value`. The value is everything after the second
    /// ':', so it may hold ':' itself (container images with a registry
    /// port); a pod label's key and value split at the value's last ':'.
    pub fn parse(s: &str) -> Result<Selector, SelectorProblem> {
        let mut parts = s.splitn(3, ':');
        let (Some(ty), Some(name), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SelectorProblem::Shape);
        };
        if value.is_empty() {
            return Err(SelectorProblem::EmptyValue);
        }
        if value.trim() != value {
            return Err(SelectorProblem::Whitespace);
        }
        let owned = || value.to_owned();
        let unknown = |ty, known| SelectorProblem::UnknownName {
            ty,
            name: name.to_owned(),
            known,
        };
        let k8s_name = |what, ok: bool| {
            if ok {
                Ok(value.to_owned())
            } else {
                Err(SelectorProblem::K8sName {
                    what,
                    value: value.to_owned(),
                })
            }
        };
        match ty {
            "k8s" => {
                match name {
                    "ns" => k8s_name("namespace name", is_dns_label(value)).map(Selector::K8sNs),
                    "sa" => k8s_name("service account name", is_dns_subdomain(value))
                        .map(Selector::K8sSa),
                    "pod-label" => parse_label(value),
                    "pod-name" => {
                        k8s_name("pod name", is_dns_subdomain(value)).map(Selector::K8sPodName)
                    }
                    "pod-uid" => Ok(Selector::K8sPodUid(owned())),
                    "container-name" => k8s_name("container name", is_dns_label(value))
                        .map(Selector::K8sContainerName),
                    "container-image" => Ok(Selector::K8sContainerImage(owned())),
                    _ => Err(unknown("k8s", K8S_NAMES)),
                }
            }
            "unix" => match name {
                "uid" => parse_id(value).map(Selector::UnixUid),
                "user" => Ok(Selector::UnixUser(owned())),
                "gid" => parse_id(value).map(Selector::UnixGid),
                "path" if value.starts_with('/') => Ok(Selector::UnixPath(owned())),
                "path" => Err(SelectorProblem::RelativePath(owned())),
                _ => Err(unknown("unix", UNIX_NAMES)),
            },
            "systemd" => match name {
                "id" if is_unit_name(value) => Ok(Selector::SystemdId(owned())),
                "id" => Err(SelectorProblem::Unit(owned())),
                "user" => parse_user_unit(value),
                _ => Err(unknown("systemd", "id, user")),
            },
            "cgroup" => match name {
                "path" => Glob::new(value)
                    .map(Selector::CgroupPath)
                    .map_err(|problem| SelectorProblem::Glob {
                        pattern: owned(),
                        problem,
                    }),
                _ => Err(unknown("cgroup", "path")),
            },
            _ => Err(SelectorProblem::UnknownType(ty.to_owned())),
        }
    }

    /// Whether the workload satisfies this selector; unknown facts never do.
    pub fn matches(&self, f: &WorkloadFacts<'_>) -> bool {
        fn is(fact: Option<&str>, want: &str) -> bool {
            fact == Some(want)
        }
        match self {
            Selector::K8sNs(v) => is(f.namespace, v),
            Selector::K8sSa(v) => is(f.service_account, v),
            Selector::K8sPodLabel { key, value } => f
                .pod_labels
                .and_then(|labels| labels.get(key))
                .is_some_and(|v| v == value),
            Selector::K8sPodName(v) => is(f.pod_name, v),
            Selector::K8sPodUid(v) => is(f.pod_uid, v),
            Selector::K8sContainerName(v) => is(f.container_name, v),
            Selector::K8sContainerImage(v) => is(f.container_image, v),
            Selector::UnixUid(n) => f.uid == Some(*n),
            Selector::UnixUser(v) => is(f.user, v),
            Selector::UnixGid(n) => f.gid == Some(*n),
            Selector::UnixPath(v) => is(f.path, v),
            Selector::SystemdId(v) => is(f.unit, v),
            Selector::SystemdUserId { uid, unit } => f.user_unit == Some((*uid, unit.as_str())),
            Selector::CgroupPath(glob) => f.cgroup_path.is_some_and(|p| glob.matches(p)),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::K8sNs(v) => write!(f, "k8s:ns:{v}"),
            Selector::K8sSa(v) => write!(f, "k8s:sa:{v}"),
            Selector::K8sPodLabel { key, value } => write!(f, "k8s:pod-label:{key}:{value}"),
            Selector::K8sPodName(v) => write!(f, "k8s:pod-name:{v}"),
            Selector::K8sPodUid(v) => write!(f, "k8s:pod-uid:{v}"),
            Selector::K8sContainerName(v) => write!(f, "k8s:container-name:{v}"),
            Selector::K8sContainerImage(v) => write!(f, "k8s:container-image:{v}"),
            Selector::UnixUid(n) => write!(f, "unix:uid:{n}"),
            Selector::UnixUser(v) => write!(f, "unix:user:{v}"),
            Selector::UnixGid(n) => write!(f, "unix:gid:{n}"),
            Selector::UnixPath(v) => write!(f, "unix:path:{v}"),
            Selector::SystemdId(v) => write!(f, "systemd:id:{v}"),
            Selector::SystemdUserId { uid, unit } => write!(f, "systemd:user:{uid}:id:{unit}"),
            Selector::CgroupPath(glob) => write!(f, "cgroup:path:{}", glob.pattern()),
        }
    }
}

/// `<uid>:id:<unit>`, the value of a `systemd:user:` selector.
fn parse_user_unit(value: &str) -> Result<Selector, SelectorProblem> {
    let (uid, rest) = value
        .split_once(':')
        .ok_or(SelectorProblem::UserUnitShape)?;
    let unit = rest
        .strip_prefix("id:")
        .ok_or(SelectorProblem::UserUnitShape)?;
    let uid = parse_id(uid)?;
    if !is_unit_name(unit) {
        return Err(SelectorProblem::Unit(unit.to_owned()));
    }
    Ok(Selector::SystemdUserId {
        uid,
        unit: unit.to_owned(),
    })
}

/// Kubernetes label keys and values hold no ':', so the last one separates them.
fn parse_label(kv: &str) -> Result<Selector, SelectorProblem> {
    let (key, value) = kv.rsplit_once(':').ok_or(SelectorProblem::LabelShape)?;
    if !is_label_key(key) {
        return Err(SelectorProblem::LabelKey(key.to_owned()));
    }
    // Kubernetes allows empty label values.
    if !value.is_empty() && !is_qualified_name(value) {
        return Err(SelectorProblem::LabelValue(value.to_owned()));
    }
    Ok(Selector::K8sPodLabel {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

fn parse_id(value: &str) -> Result<u32, SelectorProblem> {
    // u32's parser takes a leading '+', which no id as printed has.
    match value.parse() {
        Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(SelectorProblem::NotANumber(value.to_owned())),
    }
}

fn is_unit_name(s: &str) -> bool {
    UNIT_SUFFIXES
        .iter()
        .any(|suffix| s.strip_suffix(suffix).is_some_and(|stem| !stem.is_empty()))
        && !s.contains('/')
}

/// RFC 1123 label, as Kubernetes checks namespace and container names.
fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// RFC 1123 subdomain, as Kubernetes checks service account and pod names.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Kubernetes "qualified name": label values and the name part of label keys.
fn is_qualified_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// `[prefix/]name`, the prefix a DNS subdomain such as `app.kubernetes.io`.
fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_qualified_name(name),
        None => is_qualified_name(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_parsing() {
        let ok = [
            ("k8s:ns:ci", Selector::K8sNs("ci".into())),
            ("k8s:sa:deployer", Selector::K8sSa("deployer".into())),
            (
                "k8s:pod-label:app.kubernetes.io/name:web",
                Selector::K8sPodLabel {
                    key: "app.kubernetes.io/name".into(),
                    value: "web".into(),
                },
            ),
            (
                "k8s:pod-label:tier:",
                Selector::K8sPodLabel {
                    key: "tier".into(),
                    value: String::new(),
                },
            ),
            (
                "k8s:pod-name:web-7d9f-x2x",
                Selector::K8sPodName("web-7d9f-x2x".into()),
            ),
            (
                "k8s:pod-uid:9eebccd2-12bf-40a6-b262-65fe0487d453",
                Selector::K8sPodUid("9eebccd2-12bf-40a6-b262-65fe0487d453".into()),
            ),
            (
                "k8s:container-name:app",
                Selector::K8sContainerName("app".into()),
            ),
            (
                "k8s:container-image:registry:5000/app:v1",
                Selector::K8sContainerImage("registry:5000/app:v1".into()),
            ),
            (
                "k8s:container-image:ghcr.io/o/app@sha256:0123abcd",
                Selector::K8sContainerImage("ghcr.io/o/app@sha256:0123abcd".into()),
            ),
            ("unix:uid:0", Selector::UnixUid(0)),
            ("unix:uid:4294967295", Selector::UnixUid(u32::MAX)),
            ("unix:user:backup", Selector::UnixUser("backup".into())),
            ("unix:gid:100", Selector::UnixGid(100)),
            (
                "unix:path:/usr/bin/rsync",
                Selector::UnixPath("/usr/bin/rsync".into()),
            ),
            (
                "unix:path:/opt/My App/run:it",
                Selector::UnixPath("/opt/My App/run:it".into()),
            ),
            (
                "systemd:id:backup.service",
                Selector::SystemdId("backup.service".into()),
            ),
            (
                "systemd:id:getty@tty1.service",
                Selector::SystemdId("getty@tty1.service".into()),
            ),
        ];
        for (text, want) in ok {
            assert_eq!(Selector::parse(text), Ok(want), "{text}");
            // Display gives the selector back as written.
            assert_eq!(Selector::parse(text).unwrap().to_string(), text);
        }
        let glob = Selector::parse("cgroup:path:/system.slice/*.service").unwrap();
        assert_eq!(glob.to_string(), "cgroup:path:/system.slice/*.service");

        let bad = [
            ("k8s", SelectorProblem::Shape),
            ("k8s:ns", SelectorProblem::Shape),
            ("k8s:ns:", SelectorProblem::EmptyValue),
            ("k8s:ns: ci", SelectorProblem::Whitespace),
            (
                "docker:label:a",
                SelectorProblem::UnknownType("docker".into()),
            ),
            (
                "unix:pid:1",
                SelectorProblem::UnknownName {
                    ty: "unix",
                    name: "pid".into(),
                    known: UNIX_NAMES,
                },
            ),
            ("unix:uid:root", SelectorProblem::NotANumber("root".into())),
            ("unix:uid:-1", SelectorProblem::NotANumber("-1".into())),
            ("unix:uid:+1", SelectorProblem::NotANumber("+1".into())),
            (
                "unix:gid:4294967296",
                SelectorProblem::NotANumber("4294967296".into()),
            ),
            (
                "unix:path:bin/sh",
                SelectorProblem::RelativePath("bin/sh".into()),
            ),
            ("systemd:id:backup", SelectorProblem::Unit("backup".into())),
            (
                "systemd:id:.service",
                SelectorProblem::Unit(".service".into()),
            ),
            (
                "k8s:ns:CI",
                SelectorProblem::K8sName {
                    what: "namespace name",
                    value: "CI".into(),
                },
            ),
            (
                "k8s:sa:-x",
                SelectorProblem::K8sName {
                    what: "service account name",
                    value: "-x".into(),
                },
            ),
            ("k8s:pod-label:app", SelectorProblem::LabelShape),
            (
                "k8s:pod-label::web",
                SelectorProblem::LabelKey(String::new()),
            ),
            (
                "k8s:pod-label:a/b/c:web",
                SelectorProblem::LabelKey("a/b/c".into()),
            ),
            (
                "k8s:pod-label:app:we b",
                SelectorProblem::LabelValue("we b".into()),
            ),
            (
                "cgroup:path:system.slice/*",
                SelectorProblem::Glob {
                    pattern: "system.slice/*".into(),
                    problem: GlobProblem::NotAbsolute,
                },
            ),
            (
                "cgroup:path:/a/***",
                SelectorProblem::Glob {
                    pattern: "/a/***".into(),
                    problem: GlobProblem::TripleStar,
                },
            ),
        ];
        for (text, want) in bad {
            assert_eq!(Selector::parse(text), Err(want), "{text}");
        }
    }

    #[test]
    fn selector_strings_for_events() {
        let labels = BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), "web".to_owned()),
            ("tier".to_owned(), "front".to_owned()),
        ]);
        let f = WorkloadFacts {
            namespace: Some("shop"),
            service_account: Some("web"),
            pod_name: Some("web-1"),
            pod_uid: Some("u-1"),
            pod_labels: Some(&labels),
            container_name: Some("app"),
            container_image: Some("registry:5000/app:v1"),
            uid: Some(1000),
            user: Some("app"),
            gid: Some(1000),
            path: Some("/app/server"),
            unit: None,
            user_unit: None,
            cgroup_path: Some("/kubepods.slice/pod1/c1"),
        };
        let got = selectors(&f);
        assert_eq!(
            got,
            [
                "cgroup:path:/kubepods.slice/pod1/c1",
                "k8s:container-image:registry:5000/app:v1",
                "k8s:container-name:app",
                "k8s:ns:shop",
                "k8s:pod-label:app.kubernetes.io/name:web",
                "k8s:pod-label:tier:front",
                "k8s:pod-name:web-1",
                "k8s:pod-uid:u-1",
                "k8s:sa:web",
                "unix:gid:1000",
                "unix:path:/app/server",
                "unix:uid:1000",
                "unix:user:app",
            ]
        );
        // Every string except the concrete cgroup path parses back and matches.
        for s in got.iter().filter(|s| !s.starts_with("cgroup:")) {
            let sel = Selector::parse(s).unwrap();
            assert!(sel.matches(&f), "{s}");
        }
        assert!(selectors(&WorkloadFacts::default()).is_empty());
    }
}
