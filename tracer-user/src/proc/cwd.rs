//! The working directory of a new exec image.
//!
//! The probe walks the directory's dentries at the exec and the record
//! carries its path ([`crate::decode::WalkedCwd`]): nothing here runs for
//! it. Where the walk cannot run (a kernel without `fs_struct.root` in its
//! BTF, a read fault), the probe still captures which directory it is (the
//! `fs->pwd` dentry and vfsmount addresses and the inode number), and the
//! path comes from `/proc/<pid>/cwd`, read once per directory and kept
//! briefly: a storm of children in one directory then costs one lookup
//! instead of one each, and a child that exits before we look still gets its
//! directory when a sibling's was read.
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{decode::WalkedCwd, escape::escape, event::CwdSource, proc::scan::ProcCwd};

/// How an image's cwd was learned and what is odd about it (see the
/// `cwd_*` fields of the executor).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CwdMarks {
    /// None while the cwd is unknown.
    pub source: Option<CwdSource>,
    pub truncated: bool,
    pub outside_root: bool,
}

/// What /proc puts before a path that is not under the reader's root.
const UNREACHABLE: &str = "(unreachable)";

/// The cwd the probe's walk found, escaped for JSON, and its marks.
pub fn from_walk(w: &WalkedCwd) -> (Arc<str>, CwdMarks) {
    let marks = CwdMarks {
        source: Some(CwdSource::Kernel),
        truncated: w.truncated,
        outside_root: w.outside_root,
    };
    (escape(&w.path).into(), marks)
}

/// An escaped cwd read from /proc, and its marks: the kernel writes a
/// directory outside the process's root as `(unreachable)/path`, which
/// becomes the walk's form (the path, marked outside the root).
pub fn from_proc(path: Option<Arc<str>>) -> (Option<Arc<str>>, CwdMarks) {
    let Some(path) = path else {
        return (None, CwdMarks::default());
    };
    let mut marks = CwdMarks {
        source: Some(CwdSource::Proc),
        ..CwdMarks::default()
    };
    let path = match path.strip_prefix(UNREACHABLE) {
        Some(rest) if rest.starts_with('/') => {
            marks.outside_root = true;
            rest.into()
        }
        _ => path,
    };
    (Some(path), marks)
}

/// (dentry address, vfsmount address, inode number); all zero when unknown.
pub type CwdKey = (u64, u64, u64);

pub struct CwdCache {
    paths: HashMap<CwdKey, (Arc<str>, Instant)>,
    /// A renamed directory keeps its key: entries expire so a new name shows soon.
    ttl: Duration,
    capacity: usize,
    pub hits: u64,
    pub misses: u64,
}

impl Default for CwdCache {
    fn default() -> Self {
        CwdCache::new(Duration::from_secs(2), 8192)
    }
}

impl CwdCache {
    pub fn new(ttl: Duration, capacity: usize) -> CwdCache {
        CwdCache {
            paths: HashMap::new(),
            ttl,
            capacity: capacity.max(1),
            hits: 0,
            misses: 0,
        }
    }

    /// The cwd of a process whose exec the kernel saw in directory `key`;
    /// `read` gives the process's cwd as /proc shows it now, and is called
    /// only on a miss.
    pub fn lookup(
        &mut self,
        key: CwdKey,
        now: Instant,
        read: impl FnOnce() -> Option<ProcCwd>,
    ) -> Option<Arc<str>> {
        let known = key.0 != 0 && key.2 != 0;
        if known
            && let Some((path, at)) = self.paths.get(&key)
            && now.duration_since(*at) < self.ttl
        {
            self.hits += 1;
            return Some(path.clone());
        }
        self.misses += 1;
        let cwd = read()?;
        let path: Arc<str> = escape(&cwd.path).into();
        if !known {
            return Some(path);
        }
        // The inode is that of the directory itself, in whatever mount
        // namespace the process lives. A different one means the process
        // changed directory after its exec: that path is not the exec's cwd.
        match cwd.ino {
            Some(ino) if ino == key.2 => {}
            Some(_) => return None,
            None => return Some(path),
        }
        if self.paths.len() >= self.capacity {
            self.paths
                .retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
            if self.paths.len() >= self.capacity {
                self.paths.clear();
            }
        }
        self.paths.insert(key, (path.clone(), now));
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;
    use crate::proc::scan;

    fn key_of(path: &str) -> CwdKey {
        let m = std::fs::metadata(path).unwrap();
        // Any non-zero stand-ins for the kernel addresses.
        (0xffff_0000_0000_1000, 0xffff_0000_0000_2000, m.ino())
    }

    #[test]
    fn reads_once_per_directory_until_it_expires() {
        let me = std::process::id();
        let cwd = std::env::current_dir().unwrap();
        let key = key_of(cwd.to_str().unwrap());
        let mut c = CwdCache::new(Duration::from_secs(2), 4);
        let t0 = Instant::now();
        let p = c.lookup(key, t0, || scan::cwd(me)).unwrap();
        assert_eq!(&*p, cwd.to_str().unwrap());
        assert_eq!((c.hits, c.misses), (0, 1));
        // Another process in the same directory, even one already gone.
        assert_eq!(
            c.lookup(key, t0, || scan::cwd(u32::MAX)).as_deref(),
            Some(&*p)
        );
        assert_eq!((c.hits, c.misses), (1, 1));
        assert!(
            c.lookup(key, t0 + Duration::from_secs(3), || scan::cwd(u32::MAX))
                .is_none()
        );
        assert_eq!(c.misses, 2);
    }

    #[test]
    fn marks_of_a_proc_cwd() {
        let proc = Some(CwdSource::Proc);
        let cases: &[(Option<&str>, Option<&str>, CwdMarks)] = &[
            (None, None, CwdMarks::default()),
            (
                Some("/tmp/x"),
                Some("/tmp/x"),
                CwdMarks {
                    source: proc,
                    ..CwdMarks::default()
                },
            ),
            (
                Some("(unreachable)/srv/jail-outside"),
                Some("/srv/jail-outside"),
                CwdMarks {
                    source: proc,
                    outside_root: true,
                    ..CwdMarks::default()
                },
            ),
            // A directory that is merely named so, under the root.
            (
                Some("(unreachable)x"),
                Some("(unreachable)x"),
                CwdMarks {
                    source: proc,
                    ..CwdMarks::default()
                },
            ),
        ];
        for (input, path, marks) in cases {
            let (got, got_marks) = from_proc(input.map(Arc::from));
            assert_eq!(got.as_deref(), *path, "{input:?}");
            assert_eq!(got_marks, *marks, "{input:?}");
        }
        let (path, marks) = from_walk(&WalkedCwd {
            path: b"...\\/b\xff".to_vec(),
            truncated: true,
            outside_root: false,
        });
        assert_eq!(&*path, "...\\\\/b\\xff");
        assert_eq!(
            marks,
            CwdMarks {
                source: Some(CwdSource::Kernel),
                truncated: true,
                outside_root: false
            }
        );
    }

    #[test]
    fn a_directory_changed_since_the_exec_is_not_reported() {
        let me = std::process::id();
        let mut c = CwdCache::default();
        // The kernel saw another directory: our cwd now is not that one.
        let wrong = (1, 2, u64::MAX);
        assert!(c.lookup(wrong, Instant::now(), || scan::cwd(me)).is_none());
        assert!(
            c.lookup(wrong, Instant::now(), || scan::cwd(u32::MAX))
                .is_none()
        );
        // Unknown keys (failed exec, old kernel data) always read /proc.
        assert!(
            c.lookup((0, 0, 0), Instant::now(), || scan::cwd(me))
                .is_some()
        );
        assert_eq!(c.hits, 0);
    }
}
