//! SPIFFE IDs for executors, SPIRE-style: a `Registry` gives a workload the IDs
//! of the entries whose selectors all hold, or for a Kubernetes pod
//! `spiffe://<td>/ns/<ns>/sa/<sa>`. File format: docs/registrations.md.

mod id;
mod registrations;
mod selector;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use serde::Serialize;
use thiserror::Error;

/// `cgroup:path:` globs: path mode of the crate's one glob engine.
pub use crate::glob::{Glob, GlobProblem};
pub use id::{IdProblem, validate_spiffe_id, validate_trust_domain};
use id::{MAX_ID_LEN, SCHEME, is_path_segment};
pub use registrations::{EntryError, EntryLabel, EntryProblem};
pub use selector::{Selector, SelectorProblem, label_selectors, selectors};

/// What is known about an executor, from which its selectors derive.
#[derive(Debug, Default, Clone)]
pub struct WorkloadFacts<'a> {
    pub namespace: Option<&'a str>,
    pub service_account: Option<&'a str>,
    pub pod_name: Option<&'a str>,
    pub pod_uid: Option<&'a str>,
    pub pod_labels: Option<&'a BTreeMap<String, String>>,
    pub container_name: Option<&'a str>,
    pub container_image: Option<&'a str>,
    pub uid: Option<u32>,
    pub user: Option<&'a str>,
    pub gid: Option<u32>,
    /// Executable.
    pub path: Option<&'a str>,
    /// A unit of the host's system manager.
    pub unit: Option<&'a str>,
    /// `(uid, unit)`: a unit of uid's user manager (`user@<uid>.service`).
    pub user_unit: Option<(u32, &'a str)>,
    pub cgroup_path: Option<&'a str>,
}

#[derive(Debug, Error)]
pub enum SpiffeError {
    #[error("invalid trust domain {trust_domain:?}: {problem}")]
    TrustDomain {
        trust_domain: String,
        problem: IdProblem,
    },
    #[error("invalid SPIFFE ID {id:?}: {problem}")]
    SpiffeId { id: String, problem: IdProblem },
    #[error("reading registrations {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// TOML syntax, or an unknown top-level key: the source says which.
    #[error("{origin}")]
    Toml {
        origin: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error(
        "{origin}: trust_domain {file:?} differs from the tracer's --trust-domain {configured:?}"
    )]
    TrustDomainMismatch {
        origin: String,
        file: String,
        configured: String,
    },
    /// Boxed: by far the largest variant.
    #[error(transparent)]
    Entry(Box<EntryError>),
}

/// The SPIFFE IDs a workload gets, and why.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    pub spiffe_ids: Vec<String>,
    /// Parallel to `spiffe_ids`: "entry:<index>" (1-based, file order) for a
    /// registration entry, "default" for the Kubernetes default.
    pub sources: Vec<String>,
}

impl Resolution {
    pub fn is_empty(&self) -> bool {
        self.spiffe_ids.is_empty()
    }
}

#[derive(Debug, Clone)]
struct Entry {
    spiffe_id: String,
    /// "entry:<index>", built once.
    source: String,
    /// Cheap comparisons first, globs last.
    selectors: Vec<Selector>,
}

/// Registration entries of one trust domain.
#[derive(Debug, Clone)]
pub struct Registry {
    trust_domain: String,
    /// "spiffe://<td>/ns/", for the Kubernetes default.
    default_prefix: String,
    default_k8s: bool,
    entries: Vec<Entry>,
}

impl Registry {
    /// A registry without entries; validates the trust domain.
    pub fn new(trust_domain: &str, default_k8s: bool) -> Result<Registry, SpiffeError> {
        validate_trust_domain(trust_domain)?;
        Ok(Registry {
            trust_domain: trust_domain.to_owned(),
            default_prefix: format!("{SCHEME}{trust_domain}/ns/"),
            default_k8s,
            entries: Vec::new(),
        })
    }

    /// The IDs of every entry whose selectors all hold, in file order; failing
    /// any, the Kubernetes default when it is on and can be formed.
    pub fn resolve(&self, f: &WorkloadFacts<'_>) -> Resolution {
        let mut resolution = Resolution::default();
        for entry in &self.entries {
            if entry.selectors.iter().all(|s| s.matches(f)) {
                resolution.spiffe_ids.push(entry.spiffe_id.clone());
                resolution.sources.push(entry.source.clone());
            }
        }
        if resolution.is_empty()
            && self.default_k8s
            && let (Some(ns), Some(sa)) = (f.namespace, f.service_account)
            && let Some(id) = self.default_id(ns, sa)
        {
            resolution.spiffe_ids.push(id);
            resolution.sources.push("default".to_owned());
        }
        resolution
    }

    /// `spiffe://<td>/ns/<ns>/sa/<sa>`, or None when that is no valid ID.
    fn default_id(&self, ns: &str, sa: &str) -> Option<String> {
        const SA: &str = "/sa/";
        let len = self.default_prefix.len() + ns.len() + SA.len() + sa.len();
        if !is_path_segment(ns) || !is_path_segment(sa) || len > MAX_ID_LEN {
            return None;
        }
        let mut id = String::with_capacity(len);
        id.push_str(&self.default_prefix);
        id.push_str(ns);
        id.push_str(SA);
        id.push_str(sa);
        Some(id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    pub fn default_k8s(&self) -> bool {
        self.default_k8s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TD: &str = "example.org";

    fn registry(text: &str) -> Registry {
        match Registry::from_toml(TD, true, text, "test.toml") {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    fn ids(r: &Resolution) -> Vec<&str> {
        r.spiffe_ids.iter().map(String::as_str).collect()
    }

    #[test]
    fn same_uid_and_binary_differ_by_service_account() {
        let r = registry(
            r#"
[[entry]]
spiffe_id = "spiffe://example.org/shop/api"
selectors = ["k8s:ns:shop", "k8s:sa:api"]

[[entry]]
spiffe_id = "spiffe://example.org/shop/worker"
selectors = ["k8s:ns:shop", "k8s:sa:worker"]
"#,
        );
        let base = WorkloadFacts {
            namespace: Some("shop"),
            uid: Some(1000),
            path: Some("/app/server"),
            ..Default::default()
        };
        let api = WorkloadFacts {
            service_account: Some("api"),
            ..base.clone()
        };
        let worker = WorkloadFacts {
            service_account: Some("worker"),
            ..base.clone()
        };
        assert_eq!(ids(&r.resolve(&api)), ["spiffe://example.org/shop/api"]);
        assert_eq!(
            ids(&r.resolve(&worker)),
            ["spiffe://example.org/shop/worker"]
        );
        assert_eq!(r.resolve(&api).sources, ["entry:1"]);
        // Without the service account neither entry holds, and no default can be formed.
        assert!(r.resolve(&base).is_empty());
    }

    #[test]
    fn all_selectors_must_hold() {
        let r = registry(
            r#"
[[entry]]
spiffe_id = "spiffe://example.org/shop/web"
selectors = ["k8s:ns:shop", "k8s:sa:web", "k8s:pod-label:app.kubernetes.io/name:web"]
"#,
        );
        let web = BTreeMap::from([("app.kubernetes.io/name".to_owned(), "web".to_owned())]);
        let other = BTreeMap::from([("app.kubernetes.io/name".to_owned(), "db".to_owned())]);
        let full = WorkloadFacts {
            namespace: Some("shop"),
            service_account: Some("web"),
            pod_labels: Some(&web),
            ..Default::default()
        };
        assert_eq!(ids(&r.resolve(&full)), ["spiffe://example.org/shop/web"]);
        let partial = [
            WorkloadFacts {
                pod_labels: None,
                ..full.clone()
            },
            WorkloadFacts {
                pod_labels: Some(&other),
                ..full.clone()
            },
            WorkloadFacts {
                service_account: None,
                ..full.clone()
            },
            WorkloadFacts {
                namespace: Some("ci"),
                ..full.clone()
            },
        ];
        for facts in partial {
            let got = r.resolve(&facts);
            assert!(
                !got.spiffe_ids
                    .contains(&"spiffe://example.org/shop/web".to_owned()),
                "{facts:?}"
            );
        }
    }

    #[test]
    fn several_matches_keep_file_order_and_suppress_default() {
        let r = registry(
            r#"
[[entry]]
spiffe_id = "spiffe://example.org/z-last-alphabetically"
selectors = ["k8s:ns:ci"]

[[entry]]
spiffe_id = "spiffe://example.org/no-match"
selectors = ["k8s:ns:prod"]

[[entry]]
spiffe_id = "spiffe://example.org/a-first-alphabetically"
selectors = ["unix:uid:1000", "k8s:ns:ci"]

[[entry]]
spiffe_id = "spiffe://example.org/by-cgroup"
selectors = ["cgroup:path:/kubepods.slice/**", "k8s:ns:ci"]
"#,
        );
        let facts = WorkloadFacts {
            namespace: Some("ci"),
            service_account: Some("deployer"),
            uid: Some(1000),
            cgroup_path: Some("/kubepods.slice/pod1/c1"),
            ..Default::default()
        };
        let got = r.resolve(&facts);
        assert_eq!(
            ids(&got),
            [
                "spiffe://example.org/z-last-alphabetically",
                "spiffe://example.org/a-first-alphabetically",
                "spiffe://example.org/by-cgroup",
            ]
        );
        assert_eq!(got.sources, ["entry:1", "entry:3", "entry:4"]);
        let json = serde_json::to_string(&got).unwrap();
        assert!(
            json.contains(r#""sources":["entry:1","entry:3","entry:4"]"#),
            "{json}"
        );
    }

    #[test]
    fn default_k8s_id() {
        let r = registry(
            "[[entry]]\nspiffe_id = \"spiffe://example.org/ci\"\nselectors = [\"k8s:ns:ci\"]\n",
        );
        let pod = WorkloadFacts {
            namespace: Some("shop"),
            service_account: Some("api"),
            ..Default::default()
        };
        let got = r.resolve(&pod);
        assert_eq!(ids(&got), ["spiffe://example.org/ns/shop/sa/api"]);
        assert_eq!(got.sources, ["default"]);
        assert!(validate_spiffe_id(&got.spiffe_ids[0]).is_ok());
        // A matching entry replaces the default.
        let ci = WorkloadFacts {
            namespace: Some("ci"),
            ..pod.clone()
        };
        assert_eq!(r.resolve(&ci).sources, ["entry:1"]);
        // Both namespace and service account are needed.
        assert!(
            r.resolve(&WorkloadFacts {
                service_account: None,
                ..pod.clone()
            })
            .is_empty()
        );
        assert!(
            r.resolve(&WorkloadFacts {
                namespace: None,
                ..pod.clone()
            })
            .is_empty()
        );
        // Names that would make an invalid ID are skipped, not errors.
        for (ns, sa) in [("shop", "a:b"), ("..", "api"), ("", "api"), ("shop", "a/b")] {
            let odd = WorkloadFacts {
                namespace: Some(ns),
                service_account: Some(sa),
                ..pod.clone()
            };
            assert!(r.resolve(&odd).is_empty(), "{ns} {sa}");
        }
        let long = "a".repeat(MAX_ID_LEN);
        assert!(
            r.resolve(&WorkloadFacts {
                service_account: Some(&long),
                ..pod.clone()
            })
            .is_empty()
        );
        // Switched off.
        let off = Registry::from_toml(TD, false, "", "x").unwrap();
        assert!(off.resolve(&pod).is_empty());
        let bare = Registry::new(TD, true).unwrap();
        assert!(bare.is_empty());
        assert_eq!(
            ids(&bare.resolve(&pod)),
            ["spiffe://example.org/ns/shop/sa/api"]
        );
    }

    #[test]
    fn host_service_by_unix_and_systemd() {
        let r = registry(
            r#"
[[entry]]
spiffe_id = "spiffe://example.org/host/backup"
selectors = ["systemd:id:backup.service", "unix:user:backup"]

[[entry]]
spiffe_id = "spiffe://example.org/host/rsync-as-root"
selectors = ["unix:uid:0", "unix:gid:0", "unix:path:/usr/bin/rsync"]

[[entry]]
spiffe_id = "spiffe://example.org/host/system-services"
selectors = ["cgroup:path:/system.slice/*.service"]
"#,
        );
        let backup = WorkloadFacts {
            uid: Some(34),
            user: Some("backup"),
            gid: Some(34),
            path: Some("/usr/bin/rsync"),
            unit: Some("backup.service"),
            cgroup_path: Some("/system.slice/backup.service"),
            ..Default::default()
        };
        let got = r.resolve(&backup);
        assert_eq!(
            ids(&got),
            [
                "spiffe://example.org/host/backup",
                "spiffe://example.org/host/system-services"
            ]
        );
        let root = WorkloadFacts {
            uid: Some(0),
            user: Some("root"),
            gid: Some(0),
            ..backup.clone()
        };
        assert_eq!(
            ids(&r.resolve(&root)),
            [
                "spiffe://example.org/host/rsync-as-root",
                "spiffe://example.org/host/system-services"
            ]
        );
        // A login shell: no unit, a user-slice cgroup; host processes get no default.
        let shell = WorkloadFacts {
            uid: Some(1000),
            user: Some("alice"),
            path: Some("/usr/bin/rsync"),
            cgroup_path: Some("/user.slice/user-1000.slice/session-3.scope"),
            ..Default::default()
        };
        assert!(r.resolve(&shell).is_empty());
    }
}
