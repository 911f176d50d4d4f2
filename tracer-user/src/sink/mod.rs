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
    event::{Event, LossRecord, event_id, now_unix_ns, rfc3339_nanos},
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
    #[error(transparent)]
    Socket(#[from] socket::SocketError),
}

enum Target {
    Stdout(io::BufWriter<io::Stdout>),
    File(file::RotatingFile),
}

struct Output {
    name: String,
    format: Format,
    target: Target,
    /// Whole sealed lines of the current batch, written at flush.
    pending: Vec<u8>,
    chain: Chain,
    /// Signed checkpoints (our format only: OCSF has no class for them).
    checkpoints: Option<Checkpointer>,
    errors: u64,
}

/// A signed checkpoint record.
#[derive(Serialize)]
struct CheckpointRecord<'a> {
    event_id: String,
    time: String,
    kind: &'static str,
    checkpoint: &'a Checkpoint,
}

impl Output {
    fn new(name: String, format: Format, target: Target, chain: Chain) -> Output {
        Output {
            name,
            format,
            target,
            pending: Vec::with_capacity(64 * 1024),
            chain,
            checkpoints: None,
            errors: 0,
        }
    }

    /// Seal one record (JSON text without newline) into the chain; its link goes
    /// in at byte `at`.
    fn push(&mut self, record: &[u8], at: usize) -> Link {
        let link = self.chain.seal(record, at, &mut self.pending);
        if let Target::Stdout(w) = &mut self.target {
            let r = w.write_all(&self.pending);
            self.pending.clear();
            if let Err(e) = r {
                self.fail(&e.to_string());
            }
        }
        link
    }

    /// A checkpoint record when one is due (always when `force`, if anything new).
    fn checkpoint(&mut self, now: Instant, force: bool) {
        let Some(cp) = &mut self.checkpoints else {
            return;
        };
        let Some((seq, hash)) = self.chain.head().filter(|&h| cp.due(Some(h), now, force)) else {
            return;
        };
        let signed = cp.sign(seq, hash, now);
        let t = now_unix_ns();
        let rec = CheckpointRecord {
            event_id: event_id(t, 0),
            time: rfc3339_nanos(t),
            kind: "checkpoint",
            checkpoint: &signed,
        };
        if let Ok(text) = crate::escape::to_vec(&rec) {
            let at = text.len().saturating_sub(1);
            let link = self.push(&text, at);
            if let Some(cp) = &mut self.checkpoints {
                cp.sealed(link.seq);
            }
        }
    }

    fn flush(&mut self) {
        let r = match &mut self.target {
            Target::Stdout(w) => w.flush().map_err(|e| e.to_string()),
            Target::File(f) => {
                let r = f
                    .write_lines(&self.pending)
                    .and_then(|()| f.flush())
                    .map_err(|e| format!("{:#}", anyhow::Error::from(e)));
                self.pending.clear();
                r
            }
        };
        if let Err(e) = r {
            self.fail(&e);
        }
    }

    fn fail(&mut self, e: &str) {
        self.errors += 1;
        // The first failure and then every 1000th: a full disk must not flood stderr.
        if self.errors % 1000 == 1 {
            tracing::error!(sink = %self.name, error = %e, failures = self.errors, "writing events failed");
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
            Ok(Output::new(
                path.display().to_string(),
                format,
                Target::File(f),
                chain,
            ))
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
                out.checkpoints = Some(Checkpointer::new(
                    key.clone(),
                    o.checkpoint_records,
                    o.checkpoint_every,
                ));
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

    /// Failed writes per output, for metrics.
    pub fn errors(&self) -> Vec<(String, u64)> {
        self.outputs
            .iter()
            .map(|o| (o.name.clone(), o.errors))
            .collect()
    }

    fn emit<T: Serialize>(&mut self, ours: &T, ocsf: impl Fn() -> serde_json::Value) {
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
            let at = ocsf_with_unmapped_last(ocsf(), &mut self.ocsf_line);
            for o in self.outputs.iter_mut().filter(|o| o.format == Format::Ocsf) {
                o.push(&self.ocsf_line, at);
            }
        }
    }

    pub fn write_event(&mut self, ev: &Event) {
        self.emit(ev, || ocsf::event_to_ocsf(ev));
        if self.latency.is_some() {
            self.batch_times.push(ev.unix_ns());
        }
    }

    /// Observe each event's latency (action to written line) into `h` at flush.
    pub fn observe_latency(&mut self, h: prometheus_client::metrics::histogram::Histogram) {
        self.latency = Some(h);
    }

    pub fn write_loss(&mut self, l: &LossRecord) {
        self.emit(l, || ocsf::loss_to_ocsf(l));
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
        }
    }
}

/// Serialize an OCSF object with `unmapped` as its last member, into `out`
/// (cleared first); returns where the chain link goes: last inside `unmapped`
/// (OCSF allows no attribute of ours at the top level).
fn ocsf_with_unmapped_last(mut v: serde_json::Value, out: &mut Vec<u8>) -> usize {
    out.clear();
    let unmapped = v.as_object_mut().and_then(|m| m.remove("unmapped"));
    let _ = crate::escape::to_writer(&mut *out, &v);
    match unmapped {
        Some(u) if u.as_object().is_some_and(|m| !m.is_empty()) && out.ends_with(b"}") => {
            out.pop();
            if out.len() > 1 {
                out.push(b',');
            }
            out.extend_from_slice(b"\"unmapped\":");
            let _ = crate::escape::to_writer(&mut *out, &u);
            out.push(b'}');
            out.len() - 2
        }
        // Never the case for our records; the link then goes at the top level.
        _ => out.len().saturating_sub(1),
    }
}
