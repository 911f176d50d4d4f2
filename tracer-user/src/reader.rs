//! Drains the kernel ring buffer in batches. The probes wake us only when the
//! ring is an eighth full; otherwise a short timer drains it. Reading the ring is
//! plain memory access, so a storm costs one timer tick per batch, not a wake-up
//! and a syscall per record.
use std::{io, time::Duration};

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use crate::decode::{Record, decode};

pub(crate) struct Reader {
    ring: AsyncFd<RingBuf<MapData>>,
    poll: tokio::time::Interval,
    /// Records that failed validation; counted as loss.
    pub malformed: u64,
}

impl Reader {
    /// `poll`: how often the ring is drained without a wake-up (the latency bound
    /// of a quiet trickle of events).
    pub(crate) fn new(ring: RingBuf<MapData>, poll: Duration) -> io::Result<Self> {
        let mut poll = tokio::time::interval(poll.max(Duration::from_millis(1)));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Self {
            poll,
            // SAFETY: the ring buffer owns its fd for as long as the AsyncFd owns the
            // ring, and nothing else closes it.
            ring: unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
                .map_err(io::Error::from)?,
            malformed: 0,
        })
    }

    /// Wait until records are there (a wake-up or the poll timer), then move up to
    /// `max` of them into `out`. Cancel-safe: records stay in the ring until read here.
    pub(crate) async fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> io::Result<()> {
        loop {
            let ticked = tokio::select! {
                guard = self.ring.readable_mut() => {
                    let mut guard = guard?;
                    if read(guard.get_inner_mut(), out, max, &mut self.malformed) {
                        guard.clear_ready();
                    }
                    false
                }
                _ = self.poll.tick() => true,
            };
            if ticked {
                read(self.ring.get_mut(), out, max, &mut self.malformed);
            }
            if !out.is_empty() {
                return Ok(());
            }
        }
    }

    /// Up to `max` records in the ring now, without waiting; true when it
    /// was read to its end.
    pub(crate) fn read_now(&mut self, out: &mut Vec<Record>, max: usize) -> bool {
        read(self.ring.get_mut(), out, max, &mut self.malformed)
    }

    /// Whatever is in the ring right now, without waiting (start-up replay, shutdown).
    pub(crate) fn drain_now(&mut self, out: &mut Vec<Record>) {
        read(self.ring.get_mut(), out, usize::MAX, &mut self.malformed);
    }
}

/// Read up to `max` records; true when the ring was emptied.
fn read(
    ring: &mut RingBuf<MapData>,
    out: &mut Vec<Record>,
    max: usize,
    malformed: &mut u64,
) -> bool {
    let mut n = 0;
    while let Some(item) = ring.next() {
        push(&item, out, malformed);
        n += 1;
        if n >= max {
            return false;
        }
    }
    true
}

fn push(item: &[u8], out: &mut Vec<Record>, malformed: &mut u64) {
    match decode(item) {
        Ok(r) => out.push(r),
        Err(e) => {
            *malformed += 1;
            tracing::debug!("dropping malformed record: {e}");
        }
    }
}
