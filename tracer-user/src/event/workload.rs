//! Who the executor is: the workload its cgroup (and the Kubernetes API)
//! names, and the identity attributed to it.
use std::sync::Arc;

use serde::Serialize;

/// What the cgroup (and the Kubernetes API) say the executor belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    pub kind: crate::identity::workload::WorkloadKind,
    pub container: Option<Container>,
    pub pod: Option<Pod>,
    /// systemd unit (`nginx.service`, `session-3.scope`).
    pub unit: Option<String>,
    /// What the cgroup path names below a subtree the workload (or its owner)
    /// can write: shown, never taken as identity. Absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
}

/// A workload a cgroup path claims below a delegated cgroup (a user manager,
/// a `Delegate=yes` service, a container) or a Kubernetes root out of place.
/// Whoever owns that subtree chose these names; nothing is looked up for them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    pub kind: crate::identity::workload::WorkloadKind,
    pub pod_uid: Option<String>,
    pub container_id: Option<String>,
    pub runtime: Option<String>,
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Container {
    pub id: String,
    pub runtime: Option<String>,
    pub name: Option<String>,
    pub image: Option<String>,
    /// The containerd namespace of a plain containerd container.
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pod {
    pub uid: String,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub service_account: Option<String>,
    /// Shared with the pod cache: an event does not copy them.
    pub labels: Option<Arc<crate::identity::kube::Labels>>,
    /// Labels were left out to stay within the per-pod cap; absent when none were.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub labels_truncated: bool,
    pub owner: Option<PodOwner>,
    /// Whether this container mounts the pod's service account token (pod
    /// spec); shown as `executor.credentials.service_account_token`.
    #[serde(skip)]
    pub service_account_token: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodOwner {
    pub kind: String,
    pub name: String,
    /// The pod's own controller (`ReplicaSet/web-5d9f8b7c6`,
    /// `Job/backup-29935080`) when `kind`/`name` were inferred from its name
    /// by Kubernetes' naming conventions; absent when the pod names its owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityStatus {
    /// Everything the workload kind calls for is known.
    Resolved,
    /// A pod or container whose metadata could not be had in time: only what the
    /// cgroup path gave (pod UID, container id).
    Partial,
    /// Not even the cgroup path is known.
    Unresolved,
}

impl IdentityStatus {
    /// The serialized name (metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityStatus::Resolved => "resolved",
            IdentityStatus::Partial => "partial",
            IdentityStatus::Unresolved => "unresolved",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    pub spiffe_ids: Vec<String>,
    pub selectors: Selectors,
    /// Per SPIFFE ID, where it came from: `entry:<n>` of the registration file, or `default`.
    pub source: Vec<String>,
    pub status: IdentityStatus,
}

/// An identity's selectors, written as one sorted list. The pod's label
/// selectors are built once per pod version and shared by every identity of
/// the pod (one per binary, user...), not copied into each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selectors {
    /// Sorted; shared.
    pub labels: Arc<[String]>,
    /// Sorted; this identity's own.
    pub own: Vec<String>,
}

impl Selectors {
    /// Both lists merged, in order, without duplicates.
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        let (mut a, mut b) = (self.labels.iter().peekable(), self.own.iter().peekable());
        let mut last: Option<&String> = None;
        std::iter::from_fn(move || {
            loop {
                let next = match (a.peek(), b.peek()) {
                    (Some(x), Some(y)) if x <= y => a.next(),
                    (Some(_), Some(_)) => b.next(),
                    (Some(_), None) => a.next(),
                    (None, _) => b.next(),
                }?;
                if last != Some(next) {
                    last = Some(next);
                    return Some(next);
                }
            }
        })
    }

    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().cloned().collect()
    }

    #[cfg(test)]
    pub fn contains(&self, s: &str) -> bool {
        self.iter().any(|x| x == s)
    }

    /// Heap bytes of this identity's own selectors (the shared ones are the pod's).
    pub fn own_bytes(&self) -> usize {
        self.own.iter().map(|s| s.len() + 32).sum()
    }
}

impl From<Vec<String>> for Selectors {
    fn from(mut own: Vec<String>) -> Self {
        own.sort();
        own.dedup();
        Self {
            labels: Arc::from(Vec::new()),
            own,
        }
    }
}

impl Serialize for Selectors {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shared label selectors and an identity's own come out as one sorted
    /// list without duplicates.
    #[test]
    fn selectors_merge_in_order() {
        let sel = Selectors {
            labels: Arc::from(vec![
                "k8s:pod-label:a:1".to_owned(),
                "k8s:pod-label:b:2".to_owned(),
            ]),
            own: vec![
                "cgroup:path:/x".to_owned(),
                "k8s:ns:shop".to_owned(),
                "k8s:pod-label:b:2".to_owned(),
                "unix:uid:0".to_owned(),
            ],
        };
        let want = [
            "cgroup:path:/x",
            "k8s:ns:shop",
            "k8s:pod-label:a:1",
            "k8s:pod-label:b:2",
            "unix:uid:0",
        ];
        assert_eq!(sel.to_vec(), want);
        assert_eq!(serde_json::to_value(&sel).unwrap(), serde_json::json!(want));
        assert!(sel.contains("k8s:pod-label:a:1") && !sel.contains("k8s:pod-label:c:3"));
        assert_eq!(Selectors::default().to_vec(), Vec::<String>::new());
    }
}
