//! Where events go. Sinks translate the event model (our JSON, or OCSF) and
//! write it; they never look anything up.
//!
//! Several sinks run at once: the main output (stdout or a rotated file, in our
//! format or OCSF), an optional extra OCSF file, and the tail socket (our format).
//! An event is serialized once per format. A sink that fails to write is counted
//! and logged; the others go on.
pub mod file;
pub mod ocsf;
pub mod socket;

use std::{
    io::{self, Write as _},
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Serialize;

use crate::event::{Event, LossRecord};

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
    /// Whole lines of the current batch, written at flush.
    pending: Vec<u8>,
    errors: u64,
}

impl Output {
    fn push(&mut self, line: &[u8]) {
        match &mut self.target {
            Target::Stdout(w) => {
                if let Err(e) = w.write_all(line) {
                    self.fail(&e.to_string());
                }
            }
            Target::File(_) => self.pending.extend_from_slice(line),
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
}

pub struct Sinks {
    outputs: Vec<Output>,
    socket: Option<socket::SocketSink>,
    line: Vec<u8>,
}

impl Sinks {
    /// Open files now (a wrong path fails before anything touches the kernel);
    /// the socket is bound by [`Sinks::bind_socket`] inside the runtime.
    pub fn open(o: &SinkOptions<'_>) -> Result<Sinks, SinkError> {
        let open_file = |path: &Path, format: Format| -> Result<Output, SinkError> {
            let f = file::RotatingFile::open(path, o.rotate_bytes, o.rotate_keep).map_err(
                |source| SinkError::Open {
                    path: path.to_owned(),
                    source,
                },
            )?;
            Ok(Output {
                name: path.display().to_string(),
                format,
                target: Target::File(f),
                pending: Vec::with_capacity(64 * 1024),
                errors: 0,
            })
        };
        let mut outputs = vec![match o.output {
            Some(path) => open_file(path, o.format)?,
            None => Output {
                name: "stdout".into(),
                format: o.format,
                target: Target::Stdout(io::BufWriter::with_capacity(256 * 1024, io::stdout())),
                pending: Vec::new(),
                errors: 0,
            },
        }];
        if let Some(path) = o.ocsf_output {
            outputs.push(open_file(path, Format::Ocsf)?);
        }
        Ok(Sinks {
            outputs,
            socket: None,
            line: Vec::with_capacity(4096),
        })
    }

    pub fn bind_socket(&mut self, path: &Path, queue: usize) -> Result<(), SinkError> {
        self.socket = Some(socket::SocketSink::bind(path, queue)?);
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
            if serde_json::to_writer(&mut self.line, ours).is_ok() {
                self.line.push(b'\n');
                if let Some(s) = &self.socket {
                    let shared: Arc<[u8]> = Arc::from(self.line.as_slice());
                    s.publish(&shared);
                }
                for o in self.outputs.iter_mut().filter(|o| o.format == Format::Json) {
                    o.push(&self.line);
                }
            }
        }
        if self.outputs.iter().any(|o| o.format == Format::Ocsf) {
            let mut line = ocsf().to_string().into_bytes();
            line.push(b'\n');
            for o in self.outputs.iter_mut().filter(|o| o.format == Format::Ocsf) {
                o.push(&line);
            }
        }
    }

    pub fn write_event(&mut self, ev: &Event) {
        self.emit(ev, || ocsf::event_to_ocsf(ev));
    }

    pub fn write_loss(&mut self, l: &LossRecord) {
        self.emit(l, || ocsf::loss_to_ocsf(l));
    }

    /// End of a batch: everything written so far reaches the files.
    pub fn flush(&mut self) {
        for o in &mut self.outputs {
            o.flush();
        }
    }
}
