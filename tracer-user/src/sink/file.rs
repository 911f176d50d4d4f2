//! A size-rotated event log: `FILE` is written, `FILE.1` is the newest rotated
//! file, `FILE.<keep>` the oldest.
//!
//! Every file holds whole lines only: rotation happens between lines, a failed
//! write is cut back to the last whole line, and a partial line left by a crash
//! is trimmed on open. Readers (`tracer tail --file`) can rely on that.
use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::{FileExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum FileSinkError {
    #[error("{what} {path}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{0}: not a regular file")]
    NotAFile(PathBuf),
    #[error("{0}: refusing to follow a symbolic link")]
    Symlink(PathBuf),
    #[error("a batch written to {0} does not end with a newline")]
    PartialLine(PathBuf),
}

fn io_err(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> FileSinkError {
    let path = path.to_owned();
    move |source| FileSinkError::Io { path, what, source }
}

/// `FILE.n`, the `n`th rotated file beside `base` (`FILE.1` the newest, higher
/// numbers older). The one place that spells rotated names: the sink, its
/// restart and `tracer tail --file` all go through it and [`rotated_files`].
pub(crate) fn rotated_path(base: &Path, n: usize) -> PathBuf {
    let mut p = base.as_os_str().to_owned();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

/// The rotated files that exist beside `base`: (n, path) for every `FILE.<n>`
/// with n > 0, in no particular order.
pub(crate) fn rotated_files(base: &Path) -> Result<Vec<(usize, PathBuf)>, FileSinkError> {
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = base.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir, "cannot list"))? {
        let entry = entry.map_err(io_err(dir, "cannot list"))?;
        let n = entry
            .file_name()
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .filter(|k| k.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|k| k.parse::<usize>().ok());
        if let Some(n) = n.filter(|n| *n > 0) {
            out.push((n, entry.path()));
        }
    }
    Ok(out)
}

pub struct RotatingFile {
    path: PathBuf,
    file: File,
    /// Bytes in the current file.
    size: u64,
    max_bytes: u64,
    keep: usize,
    rotations: u64,
    /// Rotate by size while writing; off when the owner rotates between groups
    /// of lines itself ([`RotatingFile::rotate_now`]).
    auto_rotate: bool,
}

impl RotatingFile {
    /// Open (append) `path` with mode 0600, trimming a partial last line left by
    /// a crash. `max_bytes` 0 never rotates; `keep` rotated files are kept.
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> Result<RotatingFile, FileSinkError> {
        let (file, size) = open_log(path)?;
        Ok(RotatingFile {
            path: path.to_owned(),
            file,
            size,
            max_bytes,
            keep,
            rotations: 0,
            auto_rotate: true,
        })
    }

    /// Leave rotation to the owner: lines that must share a file (a process's
    /// description and the events naming it, `--lineage ids`) are never split
    /// by a rotation the owner did not choose.
    pub(crate) fn rotate_manually(&mut self) {
        self.auto_rotate = false;
    }

    /// Bytes in the current file, and the size it rotates at (0: never).
    pub(crate) fn fill(&self) -> (u64, u64) {
        (self.size, self.max_bytes)
    }

    /// Start a new file now, unless the current one is empty.
    pub(crate) fn rotate_now(&mut self) -> Result<(), FileSinkError> {
        if self.size == 0 || self.max_bytes == 0 {
            return Ok(());
        }
        self.rotate()
    }

    /// [`RotatingFile::write_lines_counted`] without the count (for tests).
    #[cfg(test)]
    pub fn write_lines(&mut self, lines: &[u8]) -> Result<(), FileSinkError> {
        self.write_lines_counted(lines, &mut 0)
    }

    /// Append whole lines, rotating between lines so that no file passes
    /// `max_bytes` unless a single line does (it then goes alone into a file),
    /// adding to `written` the bytes (whole lines) that reached a file, also when it fails part way: the caller keeps the
    /// rest to retry, and must not write the first part twice.
    pub fn write_lines_counted(
        &mut self,
        lines: &[u8],
        written: &mut usize,
    ) -> Result<(), FileSinkError> {
        if lines.is_empty() {
            return Ok(());
        }
        if lines.last() != Some(&b'\n') {
            return Err(FileSinkError::PartialLine(self.path.clone()));
        }
        if self.max_bytes == 0 || !self.auto_rotate {
            self.append(lines)?;
            *written += lines.len();
            return Ok(());
        }
        let mut rest = lines;
        let mut just_rotated = false;
        while !rest.is_empty() {
            let room =
                usize::try_from(self.max_bytes.saturating_sub(self.size)).unwrap_or(usize::MAX);
            let fit = if rest.len() <= room {
                rest.len()
            } else {
                // The longest run of whole lines that fits.
                rest[..room]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1)
            };
            if fit > 0 {
                self.append(&rest[..fit])?;
                *written += fit;
                rest = &rest[fit..];
                just_rotated = false;
            } else if self.size > 0 && !just_rotated {
                self.rotate()?;
                just_rotated = true;
            } else {
                // A line larger than max_bytes, in a fresh file: it goes alone.
                let end = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| i + 1);
                self.append(&rest[..end])?;
                *written += end;
                rest = &rest[end..];
                just_rotated = false;
            }
        }
        Ok(())
    }

    fn append(&mut self, chunk: &[u8]) -> Result<(), FileSinkError> {
        if let Err(e) = self.file.write_all(chunk) {
            // A short write (disk full) must not leave half a line behind.
            let _ = self.file.set_len(self.size);
            return Err(io_err(&self.path, "cannot write")(e));
        }
        self.size += chunk.len() as u64;
        Ok(())
    }

    /// path.(keep-1) -> path.keep ... path -> path.1, then a fresh path.
    fn rotate(&mut self) -> Result<(), FileSinkError> {
        let ignore_missing = |r: io::Result<()>| match r {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        // Beyond keep: leftovers of a run that kept more (path.keep itself is
        // replaced by the rename below).
        let existing = rotated_files(&self.path)?;
        for (n, stale) in &existing {
            if *n > self.keep {
                ignore_missing(fs::remove_file(stale)).map_err(io_err(stale, "cannot remove"))?;
            }
        }
        // Shift only as far as files exist: a large keep costs nothing.
        let top = existing
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| *n < self.keep)
            .max()
            .unwrap_or(0);
        for k in (1..=top).rev() {
            let from = rotated_path(&self.path, k);
            ignore_missing(fs::rename(&from, rotated_path(&self.path, k + 1)))
                .map_err(io_err(&from, "cannot rename"))?;
        }
        // Missing if an earlier rotation renamed it but could not open a new one.
        if self.keep == 0 {
            ignore_missing(fs::remove_file(&self.path))
                .map_err(io_err(&self.path, "cannot remove"))?;
        } else {
            ignore_missing(fs::rename(&self.path, rotated_path(&self.path, 1)))
                .map_err(io_err(&self.path, "cannot rename"))?;
        }
        let (file, size) = open_log(&self.path)?;
        self.file = file;
        self.size = size;
        self.rotations += 1;
        Ok(())
    }

    /// Writes go straight to the file (whole lines, one `write_all` each); there
    /// is no user-space buffer to flush.
    pub fn flush(&mut self) -> Result<(), FileSinkError> {
        self.file
            .flush()
            .map_err(io_err(&self.path, "cannot flush"))
    }

    #[cfg(test)]
    /// fdatasync: the lines written so far survive a power loss.
    pub fn sync(&mut self) -> Result<(), FileSinkError> {
        self.file
            .sync_data()
            .map_err(io_err(&self.path, "cannot sync"))
    }

    /// The last record written: the last line of the file, or of `FILE.1` when
    /// the file is empty (just rotated). Lets a new run go on with the hash chain.
    pub fn last_record(&self) -> Result<Option<Vec<u8>>, FileSinkError> {
        if let Some(line) =
            last_line(&self.file, self.size).map_err(io_err(&self.path, "cannot read"))?
        {
            return Ok(Some(line));
        }
        let prev = rotated_path(&self.path, 1);
        match File::open(&prev) {
            Ok(f) => {
                let size = f.metadata().map_err(io_err(&prev, "cannot stat"))?.len();
                let whole = whole_lines_len(&f, size).map_err(io_err(&prev, "cannot read"))?;
                last_line(&f, whole).map_err(io_err(&prev, "cannot read"))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&prev, "cannot open")(e)),
        }
    }

    #[cfg(test)]
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    /// Swap the open file (tests: `/dev/full` makes every write fail).
    #[cfg(test)]
    pub(crate) fn replace_file(&mut self, f: File) -> File {
        std::mem::replace(&mut self.file, f)
    }
}

/// Open for append with mode 0600; return the file and its size after trimming a
/// partial last line.
fn open_log(path: &Path) -> Result<(File, u64), FileSinkError> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        // A root daemon appending to (and chmodding) whatever a link points at
        // would be a gift to anyone who can write the directory.
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                FileSinkError::Symlink(path.to_owned())
            } else {
                io_err(path, "cannot open")(e)
            }
        })?;
    let meta = file.metadata().map_err(io_err(path, "cannot stat"))?;
    if !meta.is_file() {
        return Err(FileSinkError::NotAFile(path.to_owned()));
    }
    // Also corrects a mode the umask narrowed at creation.
    if meta.permissions().mode() & 0o7777 != 0o600 {
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err(path, "cannot chmod"))?;
    }
    let size = meta.len();
    let whole = whole_lines_len(&file, size).map_err(io_err(path, "cannot read"))?;
    if whole != size {
        file.set_len(whole)
            .map_err(io_err(path, "cannot truncate"))?;
        tracing::warn!(
            path = %path.display(),
            bytes = size - whole,
            "trimmed a partial last line (an earlier write was cut short)"
        );
    }
    Ok((file, whole))
}

/// The last line of the first `size` bytes (which end with a newline), without
/// the newline. Read backwards in chunks: a record can be long (argv, lineage).
fn last_line(file: &File, size: u64) -> io::Result<Option<Vec<u8>>> {
    /// Past this, the line is not one of ours; a chain then starts afresh.
    const LONGEST: u64 = 64 * 1024 * 1024;
    if size == 0 {
        return Ok(None);
    }
    let end = size - 1; // the final newline
    let mut start = end;
    let mut buf = [0u8; 8192];
    while start > 0 && end - start < LONGEST {
        let from = start.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(start - from) as usize];
        file.read_exact_at(chunk, from)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            start = from + i as u64 + 1;
            break;
        }
        start = from;
    }
    let mut line = vec![0u8; (end - start) as usize];
    file.read_exact_at(&mut line, start)?;
    Ok(Some(line))
}

/// Length of the file up to and including its last '\n'.
fn whole_lines_len(file: &File, size: u64) -> io::Result<u64> {
    let mut buf = [0u8; 8192];
    let mut end = size;
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::TempDir;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// Deterministic lines of 1..=`max` bytes (newline included).
    fn lines(n: usize, max: usize) -> Vec<Vec<u8>> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let len = (x % max as u64) as usize;
                let mut l = format!("{i}:").into_bytes();
                l.resize(len.max(l.len()), b'a' + (i % 26) as u8);
                l.truncate(max - 1);
                l.push(b'\n');
                l
            })
            .collect()
    }

    #[test]
    fn rotates_at_the_bound_without_splitting_lines() {
        let dir = TempDir::new("bound");
        let path = dir.0.join("events.json");
        let max = 200u64;
        let mut f = RotatingFile::open(&path, max, 10_000).unwrap();
        let input = lines(800, 60);
        let mut all = Vec::new();
        // Batches of 1..=17 lines.
        let mut i = 0;
        let mut batch_len = 1;
        while i < input.len() {
            let end = (i + batch_len).min(input.len());
            let batch: Vec<u8> = input[i..end].concat();
            f.write_lines(&batch).unwrap();
            all.extend_from_slice(&batch);
            i = end;
            batch_len = batch_len % 17 + 1;
        }
        f.flush().unwrap();
        f.sync().unwrap();
        let n = f.rotations() as usize;
        assert!(n > 50, "rotated {n} times");
        let mut files: Vec<Vec<u8>> = (1..=n)
            .rev()
            .map(|k| fs::read(rotated_path(&path, k)).unwrap())
            .collect();
        files.push(fs::read(&path).unwrap());
        assert!(!rotated_path(&path, n + 1).exists());
        assert_eq!(files.concat(), all, "every byte once, in order");
        for (k, w) in files.windows(2).enumerate() {
            let (full, next) = (&w[0], &w[1]);
            assert!(full.len() as u64 <= max, "file {k} is {} bytes", full.len());
            assert_eq!(full.last(), Some(&b'\n'));
            // Rotated only because the next line would not fit.
            let first_next = next.iter().position(|&b| b == b'\n').unwrap() + 1;
            assert!(
                (full.len() + first_next) as u64 > max,
                "file {k} rotated early"
            );
        }
    }

    #[test]
    fn keeps_only_keep_files_all_mode_0600() {
        let dir = TempDir::new("keep");
        let path = dir.0.join("events.json");
        // A leftover from a run that kept more.
        fs::write(rotated_path(&path, 7), b"old\n").unwrap();
        let mut f = RotatingFile::open(&path, 50, 3).unwrap();
        assert_eq!(mode(&path), 0o600);
        let input = lines(300, 30);
        for l in &input {
            f.write_lines(l).unwrap();
        }
        assert!(f.rotations() > 10);
        for k in 1..=3 {
            assert_eq!(mode(&rotated_path(&path, k)), 0o600, "{k}");
        }
        assert_eq!(mode(&path), 0o600);
        let mut names: Vec<String> = fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "events.json",
                "events.json.1",
                "events.json.2",
                "events.json.3"
            ]
        );
        // The newest lines survive, in order.
        let kept = [3, 2, 1]
            .map(|k| fs::read(rotated_path(&path, k)).unwrap())
            .concat();
        let kept = [kept, fs::read(&path).unwrap()].concat();
        assert!(input.concat().ends_with(&kept));
    }

    #[test]
    fn narrows_wider_permissions_of_an_existing_file() {
        let dir = TempDir::new("mode");
        let path = dir.0.join("events.json");
        fs::write(&path, b"x\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let _f = RotatingFile::open(&path, 0, 1).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"x\n");
    }

    #[test]
    fn trims_a_partial_last_line_on_open() {
        let dir = TempDir::new("crash");
        let path = dir.0.join("events.json");
        fs::write(&path, b"{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        let mut f = RotatingFile::open(&path, 0, 1).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"a\":1}\n{\"b\":2}\n");
        f.write_lines(b"{\"d\":4}\n").unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            b"{\"a\":1}\n{\"b\":2}\n{\"d\":4}\n"
        );

        // No newline at all, longer than one read chunk.
        let path = dir.0.join("other.json");
        fs::write(&path, vec![b'z'; 20_000]).unwrap();
        let _f = RotatingFile::open(&path, 0, 1).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn a_line_larger_than_max_goes_alone_into_a_fresh_file() {
        let dir = TempDir::new("big");
        let path = dir.0.join("events.json");
        let mut f = RotatingFile::open(&path, 10, 5).unwrap();
        let big = [vec![b'x'; 30], vec![b'\n']].concat();
        f.write_lines(&[b"short\n".as_slice(), &big, b"y\n"].concat())
            .unwrap();
        assert_eq!(fs::read(rotated_path(&path, 2)).unwrap(), b"short\n");
        assert_eq!(fs::read(rotated_path(&path, 1)).unwrap(), big);
        assert_eq!(fs::read(&path).unwrap(), b"y\n");
        assert_eq!(f.rotations(), 2);
        // Alone in an empty file: no rotation before it.
        let path = dir.0.join("fresh.json");
        let mut f = RotatingFile::open(&path, 10, 5).unwrap();
        f.write_lines(&big).unwrap();
        assert_eq!(f.rotations(), 0);
        assert_eq!(fs::read(&path).unwrap(), big);
    }

    #[test]
    fn refuses_a_batch_without_final_newline_and_zero_never_rotates() {
        let dir = TempDir::new("misc");
        let path = dir.0.join("events.json");
        let mut f = RotatingFile::open(&path, 0, 1).unwrap();
        assert!(matches!(
            f.write_lines(b"a\nb"),
            Err(FileSinkError::PartialLine(_))
        ));
        for l in lines(500, 40) {
            f.write_lines(&l).unwrap();
        }
        assert_eq!(f.rotations(), 0);
        assert!(!rotated_path(&path, 1).exists());
    }
}
