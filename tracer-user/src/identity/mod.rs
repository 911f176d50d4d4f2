//! Who an action belongs to beyond the raw ids: user and group names, cgroup
//! paths, the workload behind a cgroup, Kubernetes metadata and SPIFFE IDs.
pub mod cgroup;
pub mod containerd;
pub mod kube;
pub mod podman;
pub mod resolve;
pub mod services;
pub mod spiffe;
pub mod users;
pub mod waiting;
pub mod workload;

use std::sync::atomic::{AtomicU64, Ordering};

/// A source of metadata that events may wait for (the pod watch, containerd's
/// answers) says when it learned something: waiters are woken, and the count
/// lets the queue of waiting events skip resolving again when nothing changed
/// (a wake-up that came while the loop was busy is lost; the count is not).
#[derive(Debug, Default)]
pub struct Changed {
    notify: tokio::sync::Notify,
    generation: AtomicU64,
}

impl Changed {
    pub fn signal(&self) {
        self.generation.fetch_add(1, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Changes so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}
