//! The runtime of the async services that wait on others or answer them
//! (see `run`'s module doc for the thread split).
use anyhow::{Context as _, Result};

/// The runtime of the async services (see the module's doc): one worker
/// thread, `tracer-services`. Shut down without waiting when `run` returns,
/// as the caller's runtime would have done with these tasks.
pub(super) struct Services {
    /// Taken on drop.
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl Services {
    pub(super) fn start() -> Result<Services> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tracer-services")
            .enable_all()
            .build()
            .context("starting the services' runtime")?;
        Ok(Services {
            handle: rt.handle().clone(),
            rt: Some(rt),
        })
    }

    pub(super) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        // Dropping a runtime inside another's async context panics; this
        // shuts it down without blocking.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
