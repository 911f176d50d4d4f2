//! One output (a file or stdout): its hash chain, signed checkpoints, the
//! retry buffer while writes fail, and the loss record declaring what that
//! buffer could not hold.

use std::{
    io::{self, Write as _},
    sync::Arc,
    time::Instant,
};

use serde::Serialize;

use super::{
    Format, RETRY_BUFFER_BYTES,
    describe::Described,
    file, ocsf,
    segment::{Segment, SegmentRecord},
};
use crate::{
    chain::{Chain, Checkpoint, Checkpointer, Link},
    event::{EventId, Host, LossCounts, LossRecord, Policy, SinkGap, UnixNanos},
};
pub(super) enum Target {
    Stdout(io::BufWriter<io::Stdout>),
    File(file::RotatingFile),
}

pub(super) struct Output {
    pub(super) name: String,
    pub(super) format: Format,
    pub(super) target: Target,
    /// Whole sealed lines not written yet: the current batch, and for a file
    /// whatever failed writes left, retried at each flush.
    pub(super) pending: Vec<u8>,
    /// Most bytes `pending` holds while writes fail; past it records are
    /// dropped before they are sealed, so the chain has no hole.
    pub(super) pending_max: usize,
    /// The last write failed: no early write until the next flush retries.
    pub(super) failing: bool,
    pub(super) chain: Chain,
    /// Signed checkpoints (our format only: OCSF has no class for them).
    pub(super) checkpoints: Option<Checkpointer>,
    pub(super) errors: u64,
    /// Records dropped since the last declared gap.
    pub(super) dropped: u64,
    pub(super) dropped_total: u64,
    /// Host and policy for the loss records declaring gaps.
    pub(super) origin: Option<(Arc<Host>, Arc<Policy>)>,
    /// `--lineage ids` (our JSON): the processes this file already describes.
    pub(super) described: Option<Described>,
}

/// A signed checkpoint record.
#[derive(Serialize)]
struct CheckpointRecord<'a> {
    event_id: EventId,
    time: UnixNanos,
    kind: &'static str,
    checkpoint: &'a Checkpoint,
}

/// Bytes a link adds to a record.
pub(super) const LINK_BYTES: usize = 200;

/// Sealed lines of a batch held before they are written, while writes work:
/// a batch of 4096 exec events is several MiB, and the buffer's room (which
/// it keeps) counts in the tracer's peak RSS.
const WRITE_EARLY_BYTES: usize = 256 * 1024;

impl Output {
    pub(super) fn new(name: String, format: Format, target: Target, chain: Chain) -> Output {
        Output {
            name,
            format,
            target,
            pending: Vec::with_capacity(64 * 1024),
            pending_max: RETRY_BUFFER_BYTES,
            failing: false,
            chain,
            checkpoints: None,
            errors: 0,
            dropped: 0,
            dropped_total: 0,
            origin: None,
            described: None,
        }
    }

    /// `--lineage ids`: this output tracks which processes its file describes,
    /// and rotates only between an event and the descriptions it needs.
    pub(super) fn describe_lineage(&mut self) {
        self.described = Some(Described::new());
        if let Target::File(f) = &mut self.target {
            f.rotate_manually();
        }
    }

    /// Before a group of lines (descriptions, then their event) of at most
    /// `group_bytes`: start a new file if the group would not fit in this one,
    /// so that it is never split across files. The new file describes nothing.
    pub(super) fn make_file_room(&mut self, group_bytes: usize) {
        let Target::File(f) = &self.target else {
            return;
        };
        let (size, max) = f.fill();
        let used = size + self.pending.len() as u64;
        if max == 0 || used == 0 || used + group_bytes as u64 <= max {
            return;
        }
        self.write_pending();
        // What could not be written stays for this file: rotate once it is.
        if self.failing || !self.pending.is_empty() {
            return;
        }
        let Target::File(f) = &mut self.target else {
            return;
        };
        let r = f.rotate_now();
        if let Some(d) = &mut self.described {
            d.forget_all();
        }
        if let Err(e) = r {
            self.fail(&format!("{:#}", anyhow::Error::from(e)));
        }
    }

    /// Whether a record of `len` bytes may be sealed now. Over the bound, a
    /// batch is written early; while writes fail the record must be dropped.
    /// An empty buffer always takes one record, however long.
    fn make_room(&mut self, len: usize) -> bool {
        let fits = |o: &Output| {
            o.pending.is_empty() || o.pending.len() + len + LINK_BYTES <= o.pending_max
        };
        if matches!(self.target, Target::Stdout(_)) {
            return true;
        }
        // A storm's batch goes out in pieces rather than whole: the buffer
        // (which keeps its room) stays small while writes work.
        if !self.failing && self.pending.len() + len + LINK_BYTES > WRITE_EARLY_BYTES {
            self.write_pending();
        }
        if fits(self) {
            return true;
        }
        if !self.failing {
            self.write_pending();
        }
        fits(self)
    }

    /// Seal a record (JSON text without newline, link at byte `at`) if there is
    /// room, else count it dropped.
    fn seal(&mut self, record: &[u8], at: usize) -> Option<Link> {
        // After a drop nothing is sealed until the gap is declared, which waits
        // for writing to work: one declaration per outage, where records went missing.
        if self.dropped > 0 && !self.failing {
            self.declare_gap();
        }
        if self.dropped > 0 || !self.make_room(record.len()) {
            self.dropped += 1;
            self.dropped_total += 1;
            return None;
        }
        let link = self.chain.seal(record, at, &mut self.pending);
        if let Target::Stdout(w) = &mut self.target {
            let r = w.write_all(&self.pending);
            self.pending.clear();
            if let Err(e) = r {
                self.fail(&e.to_string());
            }
        }
        Some(link)
    }

    /// Seal one record, then a checkpoint right after it if it is the
    /// `--checkpoint-records`th since the last.
    /// False when the record was dropped (the retry buffer is full).
    pub(super) fn push(&mut self, record: &[u8], at: usize) -> bool {
        let Some(link) = self.seal(record, at) else {
            return false;
        };
        if self
            .checkpoints
            .as_ref()
            .is_some_and(|cp| cp.due_by_count(link.seq))
        {
            self.checkpoint(Instant::now(), true);
        }
        true
    }

    /// A checkpoint record when one is due (always when `force`, if anything new).
    pub(super) fn checkpoint(&mut self, now: Instant, force: bool) {
        // No room: it comes once records can be written again (it is not
        // one of the records a gap counts).
        if self.checkpoints.is_none() || self.dropped > 0 || !self.make_room(512) {
            return;
        }
        let Some(cp) = &mut self.checkpoints else {
            return;
        };
        let Some((seq, hash)) = self.chain.head().filter(|&h| cp.due(Some(h), now, force)) else {
            return;
        };
        let signed = cp.sign(seq, hash, now);
        let t = UnixNanos::now();
        let rec = CheckpointRecord {
            event_id: EventId::new(t, 0),
            time: t,
            kind: "checkpoint",
            checkpoint: &signed,
        };
        if let Ok(text) = crate::escape::to_vec(&rec) {
            let at = text.len().saturating_sub(1);
            if let Some(link) = self.seal(&text, at)
                && let Some(cp) = &mut self.checkpoints
            {
                cp.sealed(link.seq);
            }
        }
    }

    /// Open a new segment: a record disowning `s`, and a checkpoint at once so
    /// that the disowning itself is signed.
    pub(super) fn start_segment(&mut self, s: &Segment) {
        let t = UnixNanos::now();
        let rec = SegmentRecord {
            event_id: EventId::new(t, 0),
            time: t,
            kind: "chain_segment",
            segment: s,
        };
        if let Ok(text) = serde_json::to_vec(&rec) {
            let at = text.len().saturating_sub(1);
            let _ = self.seal(&text, at);
            self.checkpoint(Instant::now(), true);
        }
    }

    /// Declare the records dropped since the last declaration: a loss record
    /// (`sink_error`, with `gap`) sealed where they would have been.
    fn declare_gap(&mut self) {
        let Some((host, policy)) = self.origin.clone() else {
            // Not reached: set before the first flush. Counted and logged
            // rather than dropping everything after.
            tracing::error!(sink = %self.name, records = self.dropped, "records dropped before the tracer knew its host; not declared in the output");
            self.dropped = 0;
            return;
        };
        let head = self.chain.head();
        let t = UnixNanos::now();
        let rec = LossRecord {
            event_id: EventId::new(t, 0),
            time: t,
            kind: "loss",
            host,
            lost: LossCounts {
                sink_error: self.dropped,
                ..LossCounts::default()
            },
            budget: Default::default(),
            gap: Some(SinkGap {
                records: self.dropped,
                after_seq: head.map(|(s, _)| s),
                after_hash: head.map(|(_, h)| h.to_owned()),
            }),
            policy,
        };
        let mut text = Vec::new();
        let at = match self.format {
            Format::Json => match serde_json::to_writer(&mut text, &rec) {
                Ok(()) => text.len().saturating_sub(1),
                Err(_) => return,
            },
            Format::Ocsf => ocsf::write(&ocsf::loss_to_ocsf(&rec), &mut text),
        };
        if !self.make_room(text.len()) {
            return;
        }
        tracing::warn!(sink = %self.name, records = self.dropped, "records dropped while writes failed (retry buffer full) are declared in a loss record (sink_error)");
        self.dropped = 0;
        let _ = self.seal(&text, at);
    }

    /// Write what is pending (files; stdout is written record by record), keeping
    /// what could not be written.
    fn write_pending(&mut self) {
        let Target::File(f) = &mut self.target else {
            return;
        };
        let mut written = 0;
        let r = f.write_lines_counted(&self.pending, &mut written);
        self.pending.drain(..written.min(self.pending.len()));
        if let Err(e) = r {
            self.failing = true;
            self.fail(&format!("{:#}", anyhow::Error::from(e)));
        }
    }

    pub(super) fn flush(&mut self) {
        self.failing = false;
        self.write_pending();
        // Writing works again: declare what was dropped, and write that too.
        if !self.failing && self.dropped > 0 {
            self.declare_gap();
            self.write_pending();
        }
        let r = match &mut self.target {
            Target::Stdout(w) => w.flush().map_err(|e| e.to_string()),
            Target::File(f) => f
                .flush()
                .map_err(|e| format!("{:#}", anyhow::Error::from(e))),
        };
        if let Err(e) = r {
            self.fail(&e);
        }
    }

    fn fail(&mut self, e: &str) {
        self.errors += 1;
        // The first failure and then every 1000th: a full disk must not flood stderr.
        if self.errors % 1000 == 1 {
            tracing::error!(sink = %self.name, error = %e, failures = self.errors, buffered_bytes = self.pending.len(), "writing events failed; keeping them to retry");
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::testutil::TempDir as Tmp;
    use crate::verify::{DeclaredKind, verify_files};

    pub(in crate::sink) fn output(name: &str, max: usize) -> (Tmp, PathBuf, Output) {
        let d = Tmp::new(name);
        let path = d.0.join("events.jsonl");
        let f = file::RotatingFile::open(&path, 0, 1).unwrap();
        let mut o = Output::new(name.into(), Format::Json, Target::File(f), Chain::genesis());
        o.pending_max = max;
        o.origin = Some((
            Arc::new(Host {
                name: "node".into(),
                boot_id: "2605d5f8-57d8-408d-b1f2-343252d21f8e".into(),
            }),
            Arc::new(Policy {
                tracer_version: "0.1.0",
                config_digest: "sha256:x".into(),
            }),
        ));
        (d, path, o)
    }

    pub(in crate::sink) fn push(o: &mut Output, i: usize) {
        let rec = format!(r#"{{"kind":"exec","i":{i},"pad":"{}"}}"#, "x".repeat(100));
        o.push(rec.as_bytes(), rec.len() - 1);
    }

    fn exec_count(path: &Path) -> usize {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| l.contains(r#""kind":"exec""#))
            .count()
    }

    fn set_failing(o: &mut Output, failing: bool) -> Option<std::fs::File> {
        let Target::File(f) = &mut o.target else {
            unreachable!()
        };
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        failing.then(|| f.replace_file(full))
    }

    #[test]
    fn failed_writes_are_retried_whole_and_once() {
        let (_d, path, mut o) = output("retry", RETRY_BUFFER_BYTES);
        for i in 0..3 {
            push(&mut o, i);
        }
        o.flush();
        let real = set_failing(&mut o, true).unwrap();
        for i in 3..40 {
            push(&mut o, i);
            if i % 7 == 0 {
                o.flush();
            }
        }
        o.flush();
        assert!(o.errors > 0);
        assert_eq!(exec_count(&path), 3);
        let Target::File(f) = &mut o.target else {
            unreachable!()
        };
        f.replace_file(real);
        o.flush();
        assert!(o.pending.is_empty());
        assert_eq!((o.dropped, o.dropped_total), (0, 0));
        assert_eq!(exec_count(&path), 40);
        let r = verify_files(std::slice::from_ref(&path), None).unwrap();
        assert!(r.intact() && r.declared.is_empty(), "{r:?}");
    }

    #[test]
    fn overflow_is_dropped_unsealed_and_declared_once_writing_works() {
        let max = 2000;
        let (_d, path, mut o) = output("overflow", max);
        push(&mut o, 0);
        o.flush();
        let real = set_failing(&mut o, true).unwrap();
        for i in 1..60 {
            push(&mut o, i);
            assert!(o.pending.len() <= max, "bounded: {}", o.pending.len());
            if i % 10 == 0 {
                o.flush();
            }
        }
        o.flush();
        let dropped = o.dropped_total;
        assert!(dropped > 30, "dropped {dropped}");
        let Target::File(f) = &mut o.target else {
            unreachable!()
        };
        f.replace_file(real);
        o.flush();
        push(&mut o, 60);
        o.flush();
        let kept = exec_count(&path);
        assert_eq!(kept as u64 + dropped, 61);
        let r = verify_files(std::slice::from_ref(&path), None).unwrap();
        assert!(r.intact(), "{r:?}");
        let declared: u64 = r
            .declared
            .iter()
            .map(|d| match d.what {
                DeclaredKind::SinkGap { records } => records,
                DeclaredKind::Unvouched { .. } => panic!("{d:?}"),
            })
            .sum();
        assert_eq!(declared, dropped);
        assert_eq!(r.declared.len(), 1, "one declaration for one outage");
        // The last record is the one pushed after recovery, not lost behind a gap.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().last().unwrap().contains(r#""i":60"#));
    }
}
