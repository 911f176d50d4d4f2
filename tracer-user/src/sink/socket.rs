//! The live feed for `tracer tail`: a Unix socket (mode 0600, root only) that
//! streams our JSON lines to any number of readers.
//!
//! Publishing never waits on a reader: each reader has a queue bounded in lines
//! and in bytes, and all readers' queues together are bounded in bytes; a line
//! that does not fit is dropped for that reader only and counted, and the
//! reader is told with a `{"kind":"missed","missed":N}` line as soon as it
//! catches up. Readers past [`SocketLimits::max_clients`] are turned away.
use std::{
    collections::VecDeque,
    os::unix::fs::{FileTypeExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
};

use tokio::{
    io::AsyncWriteExt as _,
    net::{UnixListener, UnixStream},
    sync::Notify,
};

/// Lines a reader may fall behind before it starts missing events (default).
pub const CLIENT_QUEUE: usize = 16_384;
/// Bytes of lines a reader may fall behind by (default).
pub const CLIENT_QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// Bytes queued for all readers together (default).
pub const TOTAL_QUEUE_BYTES: usize = 32 * 1024 * 1024;
/// Readers served at once (default).
pub const MAX_CLIENTS: usize = 16;

/// What the readers may hold. A queued line is charged its full size to its
/// reader and to the total even though readers share it: a line only a
/// stalled reader still holds costs all of it, so the bound never undercounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketLimits {
    pub client_lines: usize,
    pub client_bytes: usize,
    pub total_bytes: usize,
    pub max_clients: usize,
}

impl Default for SocketLimits {
    fn default() -> Self {
        Self {
            client_lines: CLIENT_QUEUE,
            client_bytes: CLIENT_QUEUE_BYTES,
            total_bytes: TOTAL_QUEUE_BYTES,
            max_clients: MAX_CLIENTS,
        }
    }
}

/// Where `tracer run` serves, and `tracer tail` reads, unless told otherwise.
pub const DEFAULT_PATH: &str = "/run/tracer/tracer.sock";

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("tail socket {0}: another running tracer serves it")]
    InUse(PathBuf),
    #[error("tail socket {path}: {what}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("tail socket {0}: a file that is not a socket is in the way")]
    NotASocket(PathBuf),
}

/// Counters over all readers, for metrics.
#[derive(Default)]
pub struct SocketStats {
    /// Lines dropped for slow readers.
    pub missed: AtomicU64,
    /// Bytes of those lines.
    pub missed_bytes: AtomicU64,
    /// Readers turned away because [`SocketLimits::max_clients`] were connected.
    pub refused: AtomicU64,
    /// Bytes queued (and being written) for all readers now.
    pub queued_bytes: AtomicUsize,
}

#[derive(Default)]
struct Queue {
    lines: VecDeque<Arc<[u8]>>,
    /// Bytes in `lines` plus the line being written.
    bytes: usize,
    /// Lines this reader missed since it was last told.
    missed: u64,
    /// The reader went away: nothing more is queued.
    closed: bool,
}

struct Client {
    queue: Mutex<Queue>,
    ready: Notify,
}

pub struct SocketSink {
    clients: Arc<Mutex<Vec<Arc<Client>>>>,
    pub stats: Arc<SocketStats>,
    limits: SocketLimits,
    path: PathBuf,
    /// Set on drop, so readers find the socket closing.
    gone: Arc<AtomicBool>,
}

impl SocketSink {
    /// Bind `path` (replacing a stale socket left by a previous run) and accept
    /// readers in the background.
    pub fn bind(path: &Path, limits: SocketLimits) -> Result<SocketSink, SocketError> {
        let limits = SocketLimits {
            client_lines: limits.client_lines.max(1),
            ..limits
        };
        let io = |what: &'static str| {
            let path = path.to_owned();
            move |source| SocketError::Io { path, what, source }
        };
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(SocketError::NotASocket(path.to_owned()));
            }
            // A live tracer answers: never take its readers away. Only a
            // socket nobody listens on (a run that did not shut down) is removed.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse(path.to_owned()));
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
        let clients: Arc<Mutex<Vec<Arc<Client>>>> = Arc::new(Mutex::new(Vec::new()));
        let stats = Arc::new(SocketStats::default());
        let gone = Arc::new(AtomicBool::new(false));
        let (accept_clients, accept_stats, accept_gone) =
            (clients.clone(), stats.clone(), gone.clone());
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        if accept_gone.load(Ordering::Relaxed) {
                            return;
                        }
                        let Ok(mut c) = accept_clients.lock() else {
                            return;
                        };
                        // Readers that went away leave room.
                        c.retain(|c| c.queue.lock().is_ok_and(|q| !q.closed));
                        if c.len() >= limits.max_clients {
                            let n = accept_stats.refused.fetch_add(1, Ordering::Relaxed);
                            if n.is_multiple_of(100) {
                                tracing::warn!(
                                    max = limits.max_clients,
                                    "tail socket: too many readers, turning one away"
                                );
                            }
                            // Say why before closing; a new socket's buffer
                            // takes it without waiting.
                            let note = format!(
                                "{{\"kind\":\"refused\",\"error\":\"too many tail readers (--tail-clients {})\"}}\n",
                                limits.max_clients
                            );
                            let _ = stream.try_write(note.as_bytes());
                            drop(stream);
                            continue;
                        }
                        let client = Arc::new(Client {
                            queue: Mutex::new(Queue::default()),
                            ready: Notify::new(),
                        });
                        tokio::spawn(feed(stream, client.clone(), accept_stats.clone()));
                        c.push(client);
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
            stats,
            limits,
            path: path.to_owned(),
            gone,
        })
    }

    /// Offer one line (ending in '\n') to every reader, without waiting.
    pub fn publish(&self, line: &Arc<[u8]>) {
        let Ok(mut clients) = self.clients.lock() else {
            return;
        };
        let len = line.len();
        let stats = &self.stats;
        clients.retain(|c| {
            let Ok(mut q) = c.queue.lock() else {
                return false;
            };
            if q.closed {
                return false;
            }
            let total = stats.queued_bytes.load(Ordering::Relaxed);
            let fits = q.lines.len() < self.limits.client_lines
                && q.bytes.saturating_add(len) <= self.limits.client_bytes
                && total.saturating_add(len) <= self.limits.total_bytes;
            if fits {
                q.lines.push_back(line.clone());
                q.bytes += len;
                stats.queued_bytes.fetch_add(len, Ordering::Relaxed);
                drop(q);
                c.ready.notify_one();
            } else {
                q.missed += 1;
                stats.missed.fetch_add(1, Ordering::Relaxed);
                stats.missed_bytes.fetch_add(len as u64, Ordering::Relaxed);
            }
            true
        });
    }

    pub fn clients(&self) -> usize {
        self.clients.lock().map(|c| c.len()).unwrap_or(0)
    }
}

impl Drop for SocketSink {
    fn drop(&mut self) {
        self.gone.store(true, Ordering::Relaxed);
        if let Ok(mut clients) = self.clients.lock() {
            for c in clients.drain(..) {
                if let Ok(mut q) = c.queue.lock() {
                    q.closed = true;
                }
                c.ready.notify_one();
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Write queued lines to one reader; before a line, report what it missed.
/// A line stays charged to the queue until it is written: a reader stuck in
/// the middle of one still holds it.
async fn feed(mut stream: UnixStream, client: Arc<Client>, stats: Arc<SocketStats>) {
    loop {
        let next = match client.queue.lock() {
            Ok(mut q) if !q.closed => q
                .lines
                .pop_front()
                .map(|line| (line, std::mem::take(&mut q.missed))),
            _ => break,
        };
        let Some((line, missed)) = next else {
            client.ready.notified().await;
            continue;
        };
        let mut ok = true;
        if missed > 0 {
            let note = format!("{{\"kind\":\"missed\",\"missed\":{missed}}}\n");
            ok = stream.write_all(note.as_bytes()).await.is_ok();
        }
        ok = ok && stream.write_all(&line).await.is_ok();
        if let Ok(mut q) = client.queue.lock() {
            q.bytes = q.bytes.saturating_sub(line.len());
        }
        stats.queued_bytes.fetch_sub(line.len(), Ordering::Relaxed);
        if !ok {
            break;
        }
    }
    // Gone: release what is still queued.
    if let Ok(mut q) = client.queue.lock() {
        q.closed = true;
        let left: usize = q.lines.drain(..).map(|l| l.len()).sum();
        q.bytes = 0;
        stats.queued_bytes.fetch_sub(left, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt as _, BufReader};

    fn sock_path(name: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("tracer-sock-{}-{name}", std::process::id()));
        (dir.join("t.sock"), dir)
    }

    async fn wait_clients(sink: &SocketSink, n: usize) {
        while sink.clients() < n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_live_socket_is_never_taken_a_stale_one_is_replaced() {
        let (path, dir) = sock_path("owner");
        let first = SocketSink::bind(&path, SocketLimits::default()).unwrap();
        match SocketSink::bind(&path, SocketLimits::default()) {
            Err(SocketError::InUse(p)) => assert_eq!(p, path),
            other => panic!("a second tracer took the socket: {:?}", other.map(|_| ())),
        }
        assert!(path.exists(), "the refused bind removed the live socket");
        drop(first);
        // A run killed before its clean-up leaves its socket file behind.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        let again = SocketSink::bind(&path, SocketLimits::default()).unwrap();
        UnixStream::connect(&path).await.unwrap();
        drop(again);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn readers_get_lines_and_slow_ones_are_told_what_they_missed() {
        let (path, dir) = sock_path("lines");
        let sink = SocketSink::bind(&path, SocketLimits::default()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let fast = UnixStream::connect(&path).await.unwrap();
        let slow = UnixStream::connect(&path).await.unwrap();
        wait_clients(&sink, 2).await;
        // More than a queue's worth while nobody reads: both fall behind (the
        // socket buffer plus the queue fill up), publishing never blocks.
        let total = CLIENT_QUEUE * 4;
        for i in 0..total {
            let line: Arc<[u8]> = format!("{{\"n\":{i}}}\n").into_bytes().into();
            sink.publish(&line);
        }
        assert!(sink.stats.missed.load(Ordering::Relaxed) > 0);
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

    /// Large lines to a reader that never reads: what is queued stays within
    /// the byte caps (per reader and in total), the rest is counted as missed,
    /// and a reader that goes away releases its share.
    #[tokio::test]
    async fn queues_are_bounded_in_bytes() {
        let (path, dir) = sock_path("bytes");
        let limits = SocketLimits {
            client_lines: 1_000_000,
            client_bytes: 1024 * 1024,
            total_bytes: 1536 * 1024,
            max_clients: 2,
        };
        let sink = SocketSink::bind(&path, limits).unwrap();
        let a = UnixStream::connect(&path).await.unwrap();
        let b = UnixStream::connect(&path).await.unwrap();
        wait_clients(&sink, 2).await;
        // A third reader is turned away.
        let mut c = UnixStream::connect(&path).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_to_end(&mut c, &mut buf),
        )
        .await
        .expect("closed in time")
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["kind"], "refused", "told why, then closed");
        assert_eq!(sink.stats.refused.load(Ordering::Relaxed), 1);
        let line: Arc<[u8]> = vec![b'x'; 100 * 1024].into();
        for _ in 0..200 {
            sink.publish(&line);
            let queued = sink.stats.queued_bytes.load(Ordering::Relaxed);
            assert!(queued <= limits.total_bytes, "{queued}");
            tokio::task::yield_now().await;
        }
        let missed = sink.stats.missed.load(Ordering::Relaxed);
        // Two readers, 200 lines each; together at most ~1.5 MiB queued plus
        // what the kernel buffers took.
        assert!(missed >= 300, "missed {missed}");
        assert_eq!(
            sink.stats.missed_bytes.load(Ordering::Relaxed),
            missed * line.len() as u64
        );
        drop(a);
        drop(b);
        // Both writers find their reader gone on the next line and let go.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while sink.stats.queued_bytes.load(Ordering::Relaxed) > 0 {
            sink.publish(&Arc::from(b"{}\n".to_vec()));
            assert!(std::time::Instant::now() < deadline, "queues not released");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        drop(sink);
        let _ = std::fs::remove_dir_all(dir);
    }
}
