//! Where events go. Sinks translate the event model (our JSON, or OCSF) and
//! write it; they never look anything up.
//!
//! Several sinks run at once: the main output (stdout or a rotated file, in our
//! format or OCSF), an optional extra OCSF file, and the tail socket (our format).
//! An event is serialized once per format ([`crate::escape::to_writer`]: no
//! character a terminal would act on is written raw). A sink that fails to
//! write is counted and logged; the others go on.
//!
//! Each output (file or stdout) seals its records into its own hash chain
//! ([`crate::chain`]), carried across rotations and restarts, and with a signing
//! key adds signed checkpoint records. The tail socket is a live view: unsealed.
pub mod file;
pub mod ocsf;
pub mod socket;

use std::{
    io::{self, Write as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::{
    chain::{Chain, Checkpoint, Checkpointer, Link},
    event::{
        Event, EventId, Host, LossCounts, LossRecord, Policy, SinkGap, UnixNanos, now_unix_ns,
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Our own JSON (docs/event.schema.json).
    Json,
    /// OCSF 1.8.0 (Process Activity, Network Activity).
    Ocsf,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open output file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: file::FileSinkError,
    },
    #[error("cannot check the tail of {path} against its last checkpoint")]
    Resume {
        path: PathBuf,
        #[source]
        source: anyhow::Error,
    },
    #[error(transparent)]
    Socket(#[from] socket::SocketError),
}

/// What a tracer going on with `path` (whose chain's head `chain` is) cannot
/// vouch for: records after the last checkpoint that verifies with `key`, in
/// `path` or, when it has none, `path.1`. `None` when the file ends with such
/// a checkpoint, or is new.
fn unvouched_tail(
    path: &Path,
    chain: &Chain,
    key: &ed25519_dalek::VerifyingKey,
) -> anyhow::Result<Option<Segment>> {
    let Some((head, _)) = chain.head() else {
        return Ok(None);
    };
    let mut files = vec![path.to_owned()];
    let mut report = crate::verify::verify_files(&files, Some(key))?;
    let rotated = file::rotated_path(path, 1);
    if report.last_checkpoint.is_none() && rotated.exists() {
        files.insert(0, rotated);
        report = crate::verify::verify_files(&files, Some(key))?;
    }
    let names = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let last_checkpoint = report
        .last_checkpoint
        .clone()
        .map(|(seq, hash)| ChainRef { seq, hash });
    let (reason, detail) = match (&report.finding, &last_checkpoint) {
        (None, Some(cp)) if cp.seq == head => return Ok(None),
        (Some(f), _) => (
            "chain_broken",
            format!("{} line {}: {}", f.file.display(), f.line, f.problem),
        ),
        (None, Some(cp)) => (
            "unsigned_tail",
            format!(
                "{} records after checkpoint seq {} are covered by no signature (the previous run stopped without a last checkpoint, or someone else wrote them)",
                head - cp.seq,
                cp.seq
            ),
        ),
        (None, None) => (
            "no_checkpoint",
            format!("no checkpoint signed by this key in {names}"),
        ),
    };
    // Clamped: with a broken chain the head's seq may be anything.
    let first_seq = match &last_checkpoint {
        Some(cp) => cp.seq.saturating_add(1),
        None => report.first_seq.unwrap_or(0),
    }
    .min(head);
    Ok(Some(Segment {
        reason,
        detail,
        last_checkpoint,
        unvouched: Unvouched {
            first_seq,
            last_seq: head,
            records: (head - first_seq).saturating_add(1),
        },
    }))
}

enum Target {
    Stdout(io::BufWriter<io::Stdout>),
    File(file::RotatingFile),
}

/// Default for [`SinkOptions::retry_buffer_bytes`].
pub const RETRY_BUFFER_BYTES: usize = 4 * 1024 * 1024;

struct Output {
    name: String,
    format: Format,
    target: Target,
    /// Whole sealed lines not written yet: the current batch, and for a file
    /// whatever failed writes left, retried at each flush.
    pending: Vec<u8>,
    /// Most bytes `pending` holds while writes fail; past it records are
    /// dropped before they are sealed, so the chain has no hole.
    pending_max: usize,
    /// The last write failed: no early write until the next flush retries.
    failing: bool,
    chain: Chain,
    /// Signed checkpoints (our format only: OCSF has no class for them).
    checkpoints: Option<Checkpointer>,
    errors: u64,
    /// Records dropped since the last declared gap.
    dropped: u64,
    dropped_total: u64,
    /// Host and policy for the loss records declaring gaps.
    origin: Option<(Arc<Host>, Arc<Policy>)>,
}

/// A signed checkpoint record.
#[derive(Serialize)]
struct CheckpointRecord<'a> {
    event_id: EventId,
    time: UnixNanos,
    kind: &'static str,
    checkpoint: &'a Checkpoint,
}

/// A `chain_segment` record: written first when the tracer goes on with a
/// file whose tail no valid checkpoint of its key covers.
#[derive(Debug, Serialize)]
struct SegmentRecord<'a> {
    event_id: EventId,
    time: UnixNanos,
    kind: &'static str,
    segment: &'a Segment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// `unsigned_tail` (chain intact, no checkpoint after it), `no_checkpoint`
    /// (none signed by this key in the files read) or `chain_broken`.
    pub reason: &'static str,
    pub detail: String,
    /// The last record vouched for: a checkpoint record's own link.
    pub last_checkpoint: Option<ChainRef>,
    pub unvouched: Unvouched,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainRef {
    pub seq: u64,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unvouched {
    pub first_seq: u64,
    pub last_seq: u64,
    pub records: u64,
}

/// Bytes a link adds to a record.
const LINK_BYTES: usize = 200;

impl Output {
    fn new(name: String, format: Format, target: Target, chain: Chain) -> Output {
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
        }
    }

    /// Whether a record of `len` bytes may be sealed now. Over the bound, a
    /// batch is written early; while writes fail the record must be dropped.
    /// An empty buffer always takes one record, however long.
    fn make_room(&mut self, len: usize) -> bool {
        let fits = |o: &Output| {
            o.pending.is_empty() || o.pending.len() + len + LINK_BYTES <= o.pending_max
        };
        if matches!(self.target, Target::Stdout(_)) || fits(self) {
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
    fn push(&mut self, record: &[u8], at: usize) {
        let Some(link) = self.seal(record, at) else {
            return;
        };
        if self
            .checkpoints
            .as_ref()
            .is_some_and(|cp| cp.due_by_count(link.seq))
        {
            self.checkpoint(Instant::now(), true);
        }
    }

    /// A checkpoint record when one is due (always when `force`, if anything new).
    fn checkpoint(&mut self, now: Instant, force: bool) {
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
    fn start_segment(&mut self, s: &Segment) {
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

    fn flush(&mut self) {
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

/// How to set the sinks up.
pub struct SinkOptions<'a> {
    pub output: Option<&'a Path>,
    pub format: Format,
    pub rotate_bytes: u64,
    pub rotate_keep: usize,
    /// An extra file in OCSF, beside the main output.
    pub ocsf_output: Option<&'a Path>,
    pub socket: Option<&'a Path>,
    /// Sign a checkpoint every `checkpoint_records` records or `checkpoint_every`.
    pub signing_key: Option<SigningKey>,
    pub checkpoint_records: u64,
    pub checkpoint_every: Duration,
    /// Bound of each output file's retry buffer ([`RETRY_BUFFER_BYTES`]).
    pub retry_buffer_bytes: usize,
}

pub struct Sinks {
    outputs: Vec<Output>,
    /// When the actions of the current batch happened (Unix ns), and where to
    /// report how long they took to reach the outputs.
    batch_times: Vec<i128>,
    latency: Option<prometheus_client::metrics::histogram::Histogram>,
    socket: Option<socket::SocketSink>,
    line: Vec<u8>,
    ocsf_line: Vec<u8>,
}

impl Sinks {
    /// Open files now (a wrong path fails before anything touches the kernel);
    /// the socket is bound by [`Sinks::bind_socket`] inside the runtime.
    pub fn open(o: &SinkOptions<'_>) -> Result<Sinks, SinkError> {
        let open_file = |path: &Path, format: Format| -> Result<Output, SinkError> {
            let open_err = |source| SinkError::Open {
                path: path.to_owned(),
                source,
            };
            let f =
                file::RotatingFile::open(path, o.rotate_bytes, o.rotate_keep).map_err(open_err)?;
            // Go on with the chain of what is already there (restart, rotation).
            let last = f.last_record().map_err(open_err)?;
            let chain = Chain::after(last.as_deref());
            let mut out = Output::new(path.display().to_string(), format, Target::File(f), chain);
            out.pending_max = o.retry_buffer_bytes;
            Ok(out)
        };
        let mut outputs = vec![match o.output {
            Some(path) => open_file(path, o.format)?,
            None => Output::new(
                "stdout".into(),
                o.format,
                Target::Stdout(io::BufWriter::with_capacity(256 * 1024, io::stdout())),
                Chain::genesis(),
            ),
        }];
        if let Some(path) = o.ocsf_output {
            outputs.push(open_file(path, Format::Ocsf)?);
        }
        if let Some(key) = &o.signing_key {
            for out in outputs.iter_mut().filter(|x| x.format == Format::Json) {
                let head = out.chain.head().map(|(seq, _)| seq);
                out.checkpoints = Some(
                    Checkpointer::new(key.clone(), o.checkpoint_records, o.checkpoint_every)
                        .starting_after(head),
                );
            }
            // Going on with a file: vouch only for what a checkpoint of this key
            // covers; anything after it may have been written by anyone.
            if let Some(path) = o.output.filter(|_| o.format == Format::Json) {
                let segment = unvouched_tail(path, &outputs[0].chain, &key.verifying_key())
                    .map_err(|source| SinkError::Resume {
                        path: path.to_owned(),
                        source,
                    })?;
                if let Some(segment) = segment {
                    tracing::warn!(
                        path = %path.display(),
                        reason = segment.reason,
                        detail = %segment.detail,
                        records = segment.unvouched.records,
                        "the file's last records are covered by no checkpoint of this key; starting a new chain segment that does not vouch for them"
                    );
                    outputs[0].start_segment(&segment);
                }
            }
        }
        Ok(Sinks {
            outputs,
            batch_times: Vec::with_capacity(4096),
            latency: None,
            socket: None,
            line: Vec::with_capacity(4096),
            ocsf_line: Vec::with_capacity(4096),
        })
    }

    pub fn bind_socket(
        &mut self,
        path: &Path,
        limits: socket::SocketLimits,
    ) -> Result<(), SinkError> {
        self.socket = Some(socket::SocketSink::bind(path, limits)?);
        Ok(())
    }

    pub fn socket(&self) -> Option<&socket::SocketSink> {
        self.socket.as_ref()
    }

    /// Host and policy for the loss records that declare an output's gaps.
    pub fn set_origin(&mut self, host: Arc<Host>, policy: Arc<Policy>) {
        for o in &mut self.outputs {
            o.origin = Some((host.clone(), policy.clone()));
        }
    }

    /// Records dropped per output (retry buffer full while writes failed).
    pub fn dropped(&self) -> Vec<(String, u64)> {
        self.outputs
            .iter()
            .map(|o| (o.name.clone(), o.dropped_total))
            .collect()
    }

    /// Failed writes per output, for metrics.
    pub fn errors(&self) -> Vec<(String, u64)> {
        self.outputs
            .iter()
            .map(|o| (o.name.clone(), o.errors))
            .collect()
    }

    fn emit<T: Serialize>(&mut self, ours: &T, ocsf: impl Fn(&mut Vec<u8>) -> usize) {
        let needs_json =
            self.socket.is_some() || self.outputs.iter().any(|o| o.format == Format::Json);
        if needs_json {
            self.line.clear();
            if crate::escape::to_writer(&mut self.line, ours).is_ok() {
                if let Some(s) = &self.socket {
                    self.line.push(b'\n');
                    let shared: Arc<[u8]> = Arc::from(self.line.as_slice());
                    s.publish(&shared);
                    self.line.pop();
                }
                // The link goes last in the object.
                let at = self.line.len().saturating_sub(1);
                for o in self.outputs.iter_mut().filter(|o| o.format == Format::Json) {
                    o.push(&self.line, at);
                }
            }
        }
        if self.outputs.iter().any(|o| o.format == Format::Ocsf) {
            let at = ocsf(&mut self.ocsf_line);
            for o in self.outputs.iter_mut().filter(|o| o.format == Format::Ocsf) {
                o.push(&self.ocsf_line, at);
            }
        }
    }

    pub fn write_event(&mut self, ev: &Event) {
        self.emit(ev, |out| ocsf::write(&ocsf::event_to_ocsf(ev), out));
        if self.latency.is_some() {
            self.batch_times.push(ev.unix_ns());
        }
    }

    /// Observe each event's latency (action to written line) into `h` at flush.
    pub fn observe_latency(&mut self, h: prometheus_client::metrics::histogram::Histogram) {
        self.latency = Some(h);
    }

    pub fn write_loss(&mut self, l: &LossRecord) {
        self.emit(l, |out| ocsf::write(&ocsf::loss_to_ocsf(l), out));
    }

    /// End of a batch: everything written so far reaches the files, after a
    /// checkpoint if one is due.
    pub fn flush(&mut self) {
        let now = Instant::now();
        for o in &mut self.outputs {
            o.checkpoint(now, false);
            o.flush();
        }
        if let Some(h) = &self.latency
            && !self.batch_times.is_empty()
        {
            let written = now_unix_ns();
            for t in self.batch_times.drain(..) {
                h.observe((written - t).max(0) as f64 / 1e9);
            }
        }
    }

    /// Shutdown: a last checkpoint covers every record written.
    pub fn close(&mut self) {
        let now = Instant::now();
        for o in &mut self.outputs {
            o.checkpoint(now, true);
            o.flush();
            if !o.pending.is_empty() || o.dropped > 0 {
                tracing::error!(
                    sink = %o.name,
                    bytes = o.pending.len(),
                    dropped = o.dropped,
                    "stopping with records that could not be written; they are lost"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{DeclaredKind, verify_files};

    use crate::testutil::TempDir as Tmp;

    fn output(name: &str, max: usize) -> (Tmp, PathBuf, Output) {
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

    fn push(o: &mut Output, i: usize) {
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

    #[test]
    fn a_tail_no_checkpoint_of_this_key_covers_is_disowned() {
        let key = SigningKey::from_bytes(&[5u8; 32]);
        let other = SigningKey::from_bytes(&[6u8; 32]);
        let append = |p: &Path, text: &[u8]| {
            let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
            f.write_all(text).unwrap();
        };
        // A line linked onto the file's last, as anyone can compute it.
        let forge = |p: &Path| {
            let text = std::fs::read(p).unwrap();
            let last = text[..text.len() - 1]
                .rsplit(|&b| b == b'\n')
                .next()
                .unwrap();
            let mut c = Chain::after(Some(last));
            let mut out = Vec::new();
            c.seal(br#"{"kind":"exec","forged":1}"#, 25, &mut out);
            append(p, &out);
        };
        // (name, signing key of the earlier run, records, then what happens to
        // the file) -> reason (None: nothing to disown), first and last seq.
        type Edit<'a> = &'a dyn Fn(&Path);
        type Want = Option<(&'static str, u64, u64)>;
        let cases: [(&str, Option<&SigningKey>, Edit, Want); 5] = [
            ("ends with a checkpoint", Some(&key), &|_| {}, None),
            (
                "forged line after it",
                Some(&key),
                &forge,
                Some(("unsigned_tail", 4, 4)),
            ),
            (
                "no key before",
                None,
                &|_| {},
                Some(("no_checkpoint", 0, 2)),
            ),
            (
                "another key",
                Some(&other),
                &|_| {},
                Some(("chain_broken", 0, 3)),
            ),
            // No link on the last line: the chain starts over at 0 and verify
            // reports the tampering itself; there is nothing to disown.
            (
                "garbage appended",
                Some(&key),
                &|p| append(p, b"{\"kind\":\"exec\"}\n"),
                None,
            ),
        ];
        for (name, signed_by, edit, want) in cases {
            let (_d, path, mut o) = output(&format!("tail-{}", name.replace(' ', "-")), 1 << 20);
            o.checkpoints =
                signed_by.map(|k| Checkpointer::new(k.clone(), 1000, Duration::from_secs(3600)));
            for i in 0..3 {
                push(&mut o, i);
            }
            o.checkpoint(Instant::now(), true);
            o.flush();
            edit(&path);
            let f = file::RotatingFile::open(&path, 0, 1).unwrap();
            let chain = Chain::after(f.last_record().unwrap().as_deref());
            let got = unvouched_tail(&path, &chain, &key.verifying_key()).unwrap();
            let got = got.map(|s| (s.reason, s.unvouched.first_seq, s.unvouched.last_seq));
            assert_eq!(got, want, "{name}");
        }
    }
}
