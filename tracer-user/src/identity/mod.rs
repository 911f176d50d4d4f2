//! Who an action belongs to beyond the raw ids: user and group names, cgroup
//! paths, the workload behind a cgroup, Kubernetes metadata and SPIFFE IDs.
pub mod cgroup;
pub mod containerd;
pub mod kube;
pub mod podman;
pub mod resolve;
pub mod spiffe;
pub mod users;
pub mod workload;
