//! One JSON object per line, to stdout or a file. A line is written whole into the
//! buffer before it reaches the file, and the buffer is flushed once per batch.
use std::{
    fs::OpenOptions,
    io::{self, BufWriter, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open output file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing events to {target}: {source}")]
    Write {
        target: String,
        #[source]
        source: io::Error,
    },
}

pub struct JsonSink {
    out: BufWriter<Box<dyn Write + Send>>,
    target: String,
    line: Vec<u8>,
}

impl JsonSink {
    pub fn stdout() -> Self {
        Self::new(Box::new(io::stdout()), "stdout".into())
    }

    /// Append to `path`, created mode 0600: events name users and commands.
    pub fn file(path: &Path) -> Result<Self, SinkError> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| SinkError::Open {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self::new(Box::new(f), path.display().to_string()))
    }

    fn new(w: Box<dyn Write + Send>, target: String) -> Self {
        Self {
            out: BufWriter::with_capacity(256 * 1024, w),
            target,
            line: Vec::with_capacity(4096),
        }
    }

    fn err(&self, source: io::Error) -> SinkError {
        SinkError::Write {
            target: self.target.clone(),
            source,
        }
    }

    pub fn write<T: Serialize>(&mut self, value: &T) -> Result<(), SinkError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, value).map_err(|e| self.err(io::Error::other(e)))?;
        self.line.push(b'\n');
        let r = self.out.write_all(&self.line);
        r.map_err(|e| self.err(e))
    }

    pub fn flush(&mut self) -> Result<(), SinkError> {
        let r = self.out.flush();
        r.map_err(|e| self.err(e))
    }
}
