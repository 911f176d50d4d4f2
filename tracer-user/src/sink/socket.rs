//! The live feed for `tracer tail`: a Unix socket (mode 0600, root only) that
//! streams our JSON lines to any number of readers.
//!
//! Publishing never waits on a reader: each reader has a bounded queue; when it is
//! full the line is dropped for that reader only and counted, and the reader is told
//! with a `{"kind":"missed","missed":N}` line as soon as it catches up.
use std::{
    os::unix::fs::{FileTypeExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{
    io::AsyncWriteExt as _,
    net::{UnixListener, UnixStream},
    sync::mpsc,
};

/// Lines a reader may fall behind before it starts missing events (default).
pub const CLIENT_QUEUE: usize = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("tail socket {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("tail socket {0}: a file that is not a socket is in the way")]
    NotASocket(PathBuf),
}

struct Client {
    tx: mpsc::Sender<Arc<[u8]>>,
    missed: Arc<AtomicU64>,
}

pub struct SocketSink {
    clients: Arc<Mutex<Vec<Client>>>,
    /// Lines dropped for slow readers, over all readers.
    pub missed_total: Arc<AtomicU64>,
    path: PathBuf,
}

impl SocketSink {
    /// Bind `path` (replacing a stale socket left by a previous run) and accept
    /// readers in the background.
    pub fn bind(path: &Path, queue: usize) -> Result<SocketSink, SocketError> {
        let queue = queue.max(1);
        let io = |what: &'static str| {
            let path = path.to_owned();
            move |source| SocketError::Io { path, what, source }
        };
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(SocketError::NotASocket(path.to_owned()));
            }
            std::fs::remove_file(path).map_err(io("removing the stale socket"))?;
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io("creating its directory"))?;
        }
        let listener = UnixListener::bind(path).map_err(io("binding"))?;
        // Events name users and commands: readable by root only.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io("setting mode 0600"))?;
        let clients: Arc<Mutex<Vec<Client>>> = Arc::new(Mutex::new(Vec::new()));
        let missed_total = Arc::new(AtomicU64::new(0));
        let accept_clients = clients.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let (tx, rx) = mpsc::channel(queue);
                        let missed = Arc::new(AtomicU64::new(0));
                        tokio::spawn(feed(stream, rx, missed.clone()));
                        if let Ok(mut c) = accept_clients.lock() {
                            c.push(Client { tx, missed });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "tail socket accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(SocketSink {
            clients,
            missed_total,
            path: path.to_owned(),
        })
    }

    /// Offer one line (ending in '\n') to every reader, without waiting.
    pub fn publish(&self, line: &Arc<[u8]>) {
        let Ok(mut clients) = self.clients.lock() else {
            return;
        };
        clients.retain(|c| match c.tx.try_send(line.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                c.missed.fetch_add(1, Ordering::Relaxed);
                self.missed_total.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    pub fn clients(&self) -> usize {
        self.clients.lock().map(|c| c.len()).unwrap_or(0)
    }
}

impl Drop for SocketSink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Write queued lines to one reader; before a line, report what it missed.
async fn feed(mut stream: UnixStream, mut rx: mpsc::Receiver<Arc<[u8]>>, missed: Arc<AtomicU64>) {
    while let Some(line) = rx.recv().await {
        let n = missed.swap(0, Ordering::Relaxed);
        if n > 0 {
            let note = format!("{{\"kind\":\"missed\",\"missed\":{n}}}\n");
            if stream.write_all(note.as_bytes()).await.is_err() {
                return;
            }
        }
        if stream.write_all(&line).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt as _, BufReader};

    #[tokio::test]
    async fn readers_get_lines_and_slow_ones_are_told_what_they_missed() {
        let dir = std::env::temp_dir().join(format!("tracer-sock-{}", std::process::id()));
        let path = dir.join("t.sock");
        let sink = SocketSink::bind(&path, CLIENT_QUEUE).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let fast = UnixStream::connect(&path).await.unwrap();
        let slow = UnixStream::connect(&path).await.unwrap();
        while sink.clients() < 2 {
            tokio::task::yield_now().await;
        }
        // More than a queue's worth while nobody reads: both fall behind (the
        // socket buffer plus the queue fill up), publishing never blocks.
        let total = CLIENT_QUEUE * 4;
        for i in 0..total {
            let line: Arc<[u8]> = format!("{{\"n\":{i}}}\n").into_bytes().into();
            sink.publish(&line);
        }
        assert!(sink.missed_total.load(Ordering::Relaxed) > 0);
        drop(slow);
        let mut lines = BufReader::new(fast).lines();
        let mut seen = 0usize;
        let mut missed = 0usize;
        let mut end_sent = false;
        loop {
            let next =
                tokio::time::timeout(std::time::Duration::from_millis(300), lines.next_line())
                    .await;
            let Ok(l) = next else {
                // Drained: one more line makes the writer report what was missed.
                assert!(!end_sent, "end line never arrived");
                sink.publish(&Arc::from(b"{\"end\":true}\n".to_vec()));
                end_sent = true;
                continue;
            };
            let l = l.unwrap().expect("socket open");
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            if v["end"] == true {
                break;
            }
            if v["kind"] == "missed" {
                missed += v["missed"].as_u64().unwrap() as usize;
            } else {
                seen += 1;
            }
        }
        assert!(missed > 0, "the reader was told");
        assert_eq!(seen + missed, total, "every line accounted for");
        drop(sink);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
