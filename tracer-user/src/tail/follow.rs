//! Following an event file as it grows, is rotated (`FILE` -> `FILE.1` ...) or
//! is truncated, for `tracer tail --file`.
use std::{
    fs::{self, File},
    io,
    os::unix::fs::{FileExt as _, MetadataExt as _},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;

use super::Printer;
use crate::sink::file::rotated_path;

/// How often a followed file is checked for new lines and rotation.
const POLL: Duration = Duration::from_millis(200);

/// Follows an event file across rotations (`FILE` renamed to `FILE.1` and a new
/// `FILE` created) and truncation, returning whole lines.
pub(crate) struct FileFollower {
    path: PathBuf,
    file: File,
    /// (dev, inode) of `file`.
    id: (u64, u64),
    pos: u64,
    /// Bytes of a line whose newline has not been written yet.
    partial: Vec<u8>,
    /// Started mid-line: drop bytes up to the first newline.
    skip_to_newline: bool,
}

/// Read at most this much per poll, so a large file does not become one huge batch.
const POLL_BYTES: u64 = 1 << 20;
/// Rotated files looked at when searching for the one being read.
const MAX_ROTATED: usize = 10_000;

impl FileFollower {
    /// From the start of the file, or from its end (only new lines).
    pub(crate) fn open(path: &Path, from_start: bool) -> io::Result<FileFollower> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let mut f = FileFollower {
            path: path.to_owned(),
            file,
            id: (meta.dev(), meta.ino()),
            pos: 0,
            partial: Vec::new(),
            skip_to_newline: false,
        };
        if !from_start && meta.len() > 0 {
            f.pos = meta.len();
            let mut last = [0u8];
            f.file.read_exact_at(&mut last, meta.len() - 1)?;
            f.skip_to_newline = last[0] != b'\n';
        }
        Ok(f)
    }

    /// Lines written since the last call (empty if none).
    pub(crate) fn poll_lines(&mut self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        // Look at the path before draining: whatever the writer put in the old
        // file before renaming it away is then read below.
        let at_path = match fs::metadata(&self.path) {
            Ok(m) => Some((m.dev(), m.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let len = self.file.metadata()?.len();
        if len < self.pos {
            let line_start = self.pos - self.partial.len() as u64;
            self.partial.clear();
            // Only a partial line cut away (the writer trimmed it after a crash):
            // what was shown stays shown. Anything more: read it all again.
            self.pos = if len >= line_start { line_start } else { 0 };
            self.skip_to_newline = false;
        }
        let at_end = self.drain(&mut out, POLL_BYTES)?;
        if at_end && at_path.is_some_and(|id| id != self.id) {
            self.follow_rotation(&mut out)?;
        }
        Ok(out)
    }

    /// Read from `pos` on, at most `limit` bytes; true if the end was reached.
    fn drain(&mut self, out: &mut Vec<String>, limit: u64) -> io::Result<bool> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = 0u64;
        while read < limit {
            let n = self.file.read_at(&mut buf, self.pos)?;
            if n == 0 {
                return Ok(true);
            }
            self.pos += n as u64;
            read += n as u64;
            self.take(&buf[..n], out);
        }
        Ok(false)
    }

    fn take(&mut self, mut chunk: &[u8], out: &mut Vec<String>) {
        if self.skip_to_newline {
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    chunk = &chunk[i + 1..];
                    self.skip_to_newline = false;
                }
                None => return,
            }
        }
        let old = self.partial.len();
        self.partial.extend_from_slice(chunk);
        let mut start = 0;
        for i in old..self.partial.len() {
            if self.partial[i] == b'\n' {
                out.push(String::from_utf8_lossy(&self.partial[start..i]).into_owned());
                start = i + 1;
            }
        }
        self.partial.drain(..start);
    }

    /// The file being read is final and drained; read any files rotated after it
    /// (several rotations between two polls), oldest first, then the new file.
    fn follow_rotation(&mut self, out: &mut Vec<String>) -> io::Result<()> {
        self.end_of_file(out);
        let mut newer = Vec::new();
        let mut found = false;
        for k in 1..=MAX_ROTATED {
            match File::open(rotated_path(&self.path, k)) {
                Ok(f) => {
                    let m = f.metadata()?;
                    if (m.dev(), m.ino()) == self.id {
                        found = true;
                        break;
                    }
                    newer.push((f, (m.dev(), m.ino())));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            }
        }
        if !found {
            // Ours was deleted (or renamed some other way): which of the numbered
            // files came after it cannot be told.
            newer.clear();
        }
        for (f, id) in newer.into_iter().rev() {
            self.switch(f, id);
            self.drain(out, u64::MAX)?;
            self.end_of_file(out);
        }
        match File::open(&self.path) {
            Ok(f) => {
                let m = f.metadata()?;
                self.switch(f, (m.dev(), m.ino()));
                self.drain(out, POLL_BYTES)?;
            }
            // Rotated again just now: the next poll sees it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn switch(&mut self, file: File, id: (u64, u64)) {
        self.file = file;
        self.id = id;
        self.pos = 0;
        self.partial.clear();
        self.skip_to_newline = false;
    }

    /// A file that will not grow: its unterminated last line is a line too.
    fn end_of_file(&mut self, out: &mut Vec<String>) {
        if !self.partial.is_empty() {
            out.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
        }
    }
}

/// Print the lines of `path` as it grows, until `--count` matches are printed
/// or stdout is closed.
pub(super) async fn follow_file(
    path: &Path,
    from_start: bool,
    printer: &mut Printer,
) -> anyhow::Result<()> {
    let mut follower = FileFollower::open(path, from_start)
        .with_context(|| format!("cannot open {}", path.display()))?;
    loop {
        // Blocking reads of a local file, a bounded amount per poll: fine on the
        // runtime that only runs this.
        let lines = follower
            .poll_lines()
            .with_context(|| format!("reading {}", path.display()))?;
        let mut done = false;
        for l in &lines {
            if printer.line(l) {
                done = true;
                break;
            }
        }
        if !printer.flush()? || done {
            return Ok(());
        }
        if lines.is_empty() {
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::TempDir;
    use super::*;
    use std::io::Write as _;

    fn append(path: &Path, s: &str) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    #[test]
    fn follower_sees_every_line_once_across_a_rotation() {
        let dir = TempDir::new("rename");
        let path = dir.0.join("events.json");
        append(&path, "old-1\nold-2\n");
        let mut f = FileFollower::open(&path, false).unwrap();
        let mut seen = f.poll_lines().unwrap();
        assert!(seen.is_empty(), "starts at the end");
        append(&path, "a\nb\npart");
        seen.extend(f.poll_lines().unwrap());
        append(&path, "ial\nc\n");
        // Rotate, write to the new file before the follower looks.
        fs::rename(&path, rotated_path(&path, 1)).unwrap();
        append(&path, "d\ne\n");
        seen.extend(f.poll_lines().unwrap());
        append(&path, "f\n");
        seen.extend(f.poll_lines().unwrap());
        seen.extend(f.poll_lines().unwrap());
        assert_eq!(seen, ["a", "b", "partial", "c", "d", "e", "f"]);

        let mut f = FileFollower::open(&path, true).unwrap();
        assert_eq!(f.poll_lines().unwrap(), ["d", "e", "f"]);
    }

    #[test]
    fn follower_keeps_up_with_several_rotations_between_polls() {
        let dir = TempDir::new("many");
        let path = dir.0.join("events.json");
        let mut w = crate::sink::file::RotatingFile::open(&path, 64, 50).unwrap();
        let mut f = FileFollower::open(&path, true).unwrap();
        let mut want = Vec::new();
        let mut seen = Vec::new();
        let mut n = 0;
        for round in 0..40 {
            // 0 to ~12 rotations' worth per round.
            for _ in 0..(round % 7) * 11 {
                let line = format!("{{\"n\":{n}}}");
                w.write_lines(format!("{line}\n").as_bytes()).unwrap();
                want.push(line);
                n += 1;
            }
            seen.extend(f.poll_lines().unwrap());
        }
        seen.extend(f.poll_lines().unwrap());
        assert!(w.rotations() > 20, "{}", w.rotations());
        assert_eq!(seen, want);
    }

    #[test]
    fn follower_handles_truncation() {
        let dir = TempDir::new("trunc");
        let path = dir.0.join("events.json");
        append(&path, "a\nb\nhal");
        let mut f = FileFollower::open(&path, true).unwrap();
        assert_eq!(f.poll_lines().unwrap(), ["a", "b"]);
        // A restarted writer trims the partial line: nothing shown again.
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4)
            .unwrap();
        append(&path, "c\n");
        assert_eq!(f.poll_lines().unwrap(), ["c"]);
        // Truncated to nothing (copytruncate): read from the start.
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&path, "d\n");
        assert_eq!(f.poll_lines().unwrap(), ["d"]);
    }
}
