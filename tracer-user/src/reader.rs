//! Drains the kernel ring buffer in batches. One wake-up reads everything that is
//! there (up to a batch bound), so a storm costs one epoll wake-up per batch.
use std::io;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use crate::decode::{Record, decode};

pub struct Reader {
    ring: AsyncFd<RingBuf<MapData>>,
    /// Records that failed validation; counted as loss.
    pub malformed: u64,
}

impl Reader {
    pub fn new(ring: RingBuf<MapData>) -> io::Result<Self> {
        Ok(Self {
            // SAFETY: the ring buffer owns its fd for as long as the AsyncFd owns the
            // ring, and nothing else closes it.
            ring: unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
                .map_err(io::Error::from)?,
            malformed: 0,
        })
    }

    /// Wait until records are there, then move up to `max` of them into `out`.
    /// Cancel-safe: records stay in the ring until read here.
    pub async fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> io::Result<()> {
        let mut guard = self.ring.readable_mut().await?;
        let ring = guard.get_inner_mut();
        let mut emptied = true;
        let mut n = 0;
        while let Some(item) = ring.next() {
            match decode(&item) {
                Ok(r) => out.push(r),
                Err(e) => {
                    self.malformed += 1;
                    tracing::debug!("dropping malformed record: {e}");
                }
            }
            n += 1;
            if n >= max {
                emptied = false;
                break;
            }
        }
        if emptied {
            guard.clear_ready();
        }
        Ok(())
    }

    /// Whatever is in the ring right now, without waiting (start-up replay, shutdown).
    pub fn drain_now(&mut self, out: &mut Vec<Record>) {
        let ring = self.ring.get_mut();
        while let Some(item) = ring.next() {
            match decode(&item) {
                Ok(r) => out.push(r),
                Err(_) => self.malformed += 1,
            }
        }
    }
}
