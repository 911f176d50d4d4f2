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
mod describe;
mod executor_cache;
pub mod file;
mod line;
pub mod ocsf;
mod output;
mod segment;
pub mod socket;

use std::{
    io,
    ops::Range,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::{
    chain::{Chain, Checkpointer},
    event::{Event, Host, Kind, LossRecord, Policy, ProcessRecord, now_unix_ns},
};
use describe::Described;
use executor_cache::ExecutorCache;
use line::ExecutorText;
use output::{LINK_BYTES, Output, Target};
use segment::unvouched_tail;
pub use segment::{ChainRef, Segment, Unvouched};
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

/// Default for [`SinkOptions::retry_buffer_bytes`].
pub const RETRY_BUFFER_BYTES: usize = 4 * 1024 * 1024;

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
    /// `--lineage ids`: describe each process a lineage names before the first
    /// event of a file (or of the tail stream) that names it.
    pub lineage_ids: bool,
}

pub struct Sinks {
    outputs: Vec<Output>,
    /// When the actions of the current batch happened (Unix ns), and where to
    /// report how long they took to reach the outputs.
    batch_times: Vec<i128>,
    latency: Option<prometheus_client::metrics::histogram::Histogram>,
    socket: Option<socket::SocketSink>,
    /// `--lineage ids`: what the tail stream has described (its own set: it
    /// may carry our JSON when no file does).
    socket_described: Option<Described>,
    lineage_ids: bool,
    /// Executors serialized once per process (taken out while in use).
    executors: Option<ExecutorCache>,
    line: Vec<u8>,
    ocsf_line: Vec<u8>,
    /// `--lineage ids`: an event's line in full and by reference.
    full_text: Text,
    brief_text: [Text; 2],
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
        if o.lineage_ids {
            for out in outputs.iter_mut().filter(|x| x.format == Format::Json) {
                out.describe_lineage();
            }
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
            socket_described: o.lineage_ids.then(Described::new),
            executors: Some(ExecutorCache::new()),
            lineage_ids: o.lineage_ids,
            line: Vec::with_capacity(4096),
            ocsf_line: Vec::with_capacity(4096),
            full_text: Text::default(),
            brief_text: Default::default(),
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

    /// Whether any output (or the tail stream) takes our JSON.
    fn needs_json(&self) -> bool {
        self.socket.is_some() || self.outputs.iter().any(|o| o.format == Format::Json)
    }

    fn emit<T: Serialize>(&mut self, ours: &T, ocsf: impl Fn(&mut Vec<u8>) -> usize) {
        if self.needs_json() {
            self.emit_json(ours);
        }
        self.emit_ocsf(ocsf);
    }

    fn emit_json(&mut self, ours: &impl Serialize) {
        self.line.clear();
        if crate::escape::to_writer(&mut self.line, ours).is_ok() {
            self.publish_line();
        }
    }

    /// `self.line` to the tail stream and every output of our JSON.
    fn publish_line(&mut self) {
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

    fn emit_ocsf(&mut self, ocsf: impl Fn(&mut Vec<u8>) -> usize) {
        if self.outputs.iter().any(|o| o.format == Format::Ocsf) {
            let at = ocsf(&mut self.ocsf_line);
            for o in self.outputs.iter_mut().filter(|o| o.format == Format::Ocsf) {
                o.push(&self.ocsf_line, at);
            }
        }
    }

    pub fn write_event(&mut self, ev: &Event) {
        if self.needs_json() {
            let mut executors = self.executors.take();
            // A successful exec is the first event of its image: nothing to reuse,
            // and most images (a build's compilers, a script's commands) have no other.
            let cached = match (ev.kind, executors.as_mut()) {
                (Kind::Exec, _) | (_, None) => None,
                (_, Some(c)) => c.json(&ev.executor),
            };
            let executor = cached.map_or(ExecutorText::Serialize, |(text, _)| {
                ExecutorText::Json(text)
            });
            if self.lineage_ids {
                self.emit_described(ev, executor, cached.map(|(_, fact)| fact));
            } else {
                self.line.clear();
                if line::write(&mut self.line, ev, executor, true).is_ok() {
                    self.publish_line();
                }
            }
            self.executors = executors;
        }
        self.emit_ocsf(|out| ocsf::write(&ocsf::event_to_ocsf(ev), out));
        if self.latency.is_some() {
            self.batch_times.push(ev.unix_ns());
        }
    }

    /// `--lineage ids`: each of our JSON outputs (and the tail stream) gets, before
    /// the event, a `process` record for each ancestor its current file has not
    /// described yet. The event describes its own executor in full, unless the
    /// file's last full description of the process (its exec event, or an
    /// earlier event) still holds: then the executor is named by reference and
    /// the lineage, when unchanged, left out. The tail stream always gets the
    /// executor in full (a client may join at any time). OCSF keeps the whole
    /// lineage (`process.ancestry`) on every event.
    ///
    /// `executor_fact`: the fingerprint of the cached executor text, if any.
    fn emit_described(
        &mut self,
        ev: &Event,
        executor: ExecutorText<'_>,
        executor_fact: Option<u64>,
    ) {
        let mut descriptions = Descriptions::new(ev);
        // Each text is serialized at most once, when an output needs it.
        let (full, brief) = (&mut self.full_text, &mut self.brief_text);
        full.reset();
        brief.iter_mut().for_each(Text::reset);
        let mut lineage = None;
        let exec_id = &ev.executor.exec_id;
        for o in self.outputs.iter_mut().filter(|o| o.format == Format::Json) {
            let mut by_ref = plan(o, ev, executor_fact, &mut lineage);
            let Some((line, _)) = text(by_ref, full, brief, ev, executor) else {
                continue;
            };
            let bound = if by_ref == Some(false) {
                0
            } else {
                descriptions.upper_bound()
            };
            o.make_file_room(line.len() + 1 + LINK_BYTES + bound);
            if by_ref.is_some() && plan(o, ev, executor_fact, &mut lineage) != by_ref {
                // The file rotated: the new one describes nothing yet.
                by_ref = None;
            }
            let Some((line, at)) = text(by_ref, full, brief, ev, executor) else {
                continue;
            };
            let Some(mut seen) = o.described.take() else {
                o.push(line, at);
                continue;
            };
            if by_ref != Some(false) {
                for (i, a) in ev.lineage.iter().enumerate() {
                    if a.brief
                        && !seen.has(&a.exec_id)
                        && let Some(text) = descriptions.get(i)
                        && o.push(text, text.len() - 1)
                    {
                        seen.add(&a.exec_id);
                    }
                }
            }
            if o.push(line, at) && by_ref.is_none() {
                let fact = executor_fact.or_else(|| full.executor_fact());
                let facts = fact.map(|executor| describe::Facts {
                    executor,
                    lineage: *lineage.get_or_insert_with(|| describe::lineage_fact(&ev.lineage)),
                });
                match facts {
                    Some(facts) => seen.add_executor(exec_id, facts),
                    None => seen.add(exec_id),
                }
            }
            o.described = Some(seen);
        }
        if let (Some(s), Some(seen)) = (&self.socket, &mut self.socket_described) {
            let Some((line, _)) = text(None, full, brief, ev, executor) else {
                return;
            };
            let mut line = line.to_vec();
            for (i, a) in ev.lineage.iter().enumerate() {
                if a.brief
                    && !seen.has(&a.exec_id)
                    && let Some(text) = descriptions.get(i)
                {
                    let mut line = text.to_vec();
                    line.push(b'\n');
                    s.publish(&Arc::from(line));
                    seen.add(&a.exec_id);
                }
            }
            line.push(b'\n');
            s.publish(&Arc::from(line));
            seen.add(exec_id);
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

/// How `o` can write `ev`: its executor by reference, with the lineage
/// (`Some(true)`) or without it (`Some(false)`, unchanged since the file
/// described the process), or in full (`None`). `lineage` caches the
/// lineage's fingerprint.
fn plan(
    o: &mut Output,
    ev: &Event,
    executor_fact: Option<u64>,
    lineage: &mut Option<u64>,
) -> Option<bool> {
    let facts = o.described.as_mut()?.facts(&ev.executor.exec_id)?;
    if Some(facts.executor) != executor_fact {
        return None;
    }
    let now = *lineage.get_or_insert_with(|| describe::lineage_fact(&ev.lineage));
    Some(now != facts.lineage)
}

/// The line `emit_described` writes: by reference (`Some(with_lineage)`) or in full.
fn text<'t>(
    by_ref: Option<bool>,
    full: &'t mut Text,
    brief: &'t mut [Text; 2],
    ev: &Event,
    executor: ExecutorText<'_>,
) -> Option<(&'t [u8], usize)> {
    match by_ref {
        None => full.get(|buf| line::write(buf, ev, executor, true)),
        Some(with_lineage) => brief[usize::from(with_lineage)]
            .get(|buf| line::write(buf, ev, ExecutorText::Ref, with_lineage)),
    }
}

/// A line serialized on first use: its text, where its chain link goes, and
/// where its executor is. The buffer is kept from event to event.
#[derive(Default)]
struct Text {
    buf: Vec<u8>,
    state: TextState,
}

#[derive(Default)]
enum TextState {
    #[default]
    NotYet,
    Failed,
    Done(usize, Range<usize>),
}

impl Text {
    /// For the next event.
    fn reset(&mut self) {
        self.buf.clear();
        self.state = TextState::NotYet;
    }

    fn get(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<Range<usize>>,
    ) -> Option<(&[u8], usize)> {
        if let TextState::NotYet = self.state {
            self.buf.clear();
            self.state = match write(&mut self.buf) {
                // The link goes last in the object.
                Ok(span) => TextState::Done(self.buf.len().saturating_sub(1), span),
                Err(_) => TextState::Failed,
            };
        }
        match &self.state {
            TextState::Done(at, _) => Some((self.buf.as_slice(), *at)),
            _ => None,
        }
    }

    /// The fingerprint of the executor this full line describes.
    fn executor_fact(&self) -> Option<u64> {
        match &self.state {
            TextState::Done(_, span) => self.buf.get(span.clone()).map(describe::executor_fact),
            _ => None,
        }
    }
}

/// The `process` records an event's lineage may need, each serialized at most
/// once whatever the number of outputs that need it.
struct Descriptions<'a> {
    ev: &'a Event,
    texts: Vec<Option<Vec<u8>>>,
}

impl<'a> Descriptions<'a> {
    fn new(ev: &'a Event) -> Self {
        Descriptions {
            ev,
            texts: vec![None; ev.lineage.len()],
        }
    }

    /// Bytes the records would take, from above: what a file must have room for.
    fn upper_bound(&self) -> usize {
        // Record frame (time, kind, host, policy) and link, beside the description.
        const FRAME: usize = 512 + LINK_BYTES;
        let escaped = |a: &crate::event::Ancestor| {
            // Escaping at most sixfolds a byte (`\u00XX`).
            64 + 6 * (a.binary.len() + a.argv.iter().map(|x| x.len() + 3).sum::<usize>())
        };
        self.ev
            .lineage
            .iter()
            .filter(|a| a.brief)
            .map(|a| {
                FRAME
                    + a.json
                        .as_ref()
                        .map_or_else(|| escaped(a), |j| j.get().len())
            })
            .sum()
    }

    /// The record describing the `i`th ancestor (no newline).
    fn get(&mut self, i: usize) -> Option<&[u8]> {
        let a = self.ev.lineage.get(i)?;
        let slot = self.texts.get_mut(i)?;
        if slot.is_none() {
            let process = a.description()?;
            let rec = ProcessRecord {
                time: self.ev.time,
                kind: "process",
                host: &self.ev.host,
                process: &process,
                policy: &self.ev.policy,
            };
            let mut text = Vec::with_capacity(process.get().len() + 512);
            crate::escape::to_writer(&mut text, &rec).ok()?;
            *slot = Some(text);
        }
        slot.as_deref()
    }
}
