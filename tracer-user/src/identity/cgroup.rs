//! cgroup id -> path, and where the hierarchies are mounted.
//!
//! `bpf_get_current_cgroup_id()` returns the inode number of the cgroup's
//! directory in the v2 hierarchy, so the map is built by walking that
//! hierarchy wherever it is mounted: `/sys/fs/cgroup` on pure v2 hosts,
//! `/sys/fs/cgroup/unified` on hybrid ones, somewhere else in containers (and
//! at a private mount the tracer makes on hosts that mount no cgroup2 at all).
//!
//! On cgroup v1 hosts every task's v2 cgroup is the root, and containers live
//! in the v1 controller hierarchies only. The probes then also read the task's
//! cgroup in one v1 controller ([`choose_v1_controller`]); its id is the inode
//! number of the directory in that controller's mount, so a second resolver
//! walks that mount the same way.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::escape::escape;

const MOUNTINFO: &str = "/proc/self/mountinfo";
const DEFAULT_RESCAN_INTERVAL: Duration = Duration::from_millis(200);
/// Far deeper than real hierarchies; bounds the walk should something loop.
const MAX_DEPTH: usize = 64;
/// Forget remembered unknown ids past this many, so the set cannot grow unbounded.
const MAX_UNKNOWN: usize = 4096;
/// How long a cgroup the last walk did not find stays resolvable. It was learned
/// from a mkdir event or an earlier walk and its rmdir event has not been read
/// yet: the walk can run after the directory is gone but before the events of
/// the processes that lived in it are attributed.
const MISSING_TTL: Duration = Duration::from_secs(60);
/// Bound on such entries, should a host create and remove cgroups very fast.
const MAX_MISSING: usize = 65_536;
/// The longest path a kernel cgroup record carries whole. The `cgroup:*`
/// tracepoints format the path into a buffer of `TRACE_CGROUP_PATH_LEN` (1024)
/// bytes, and the probe copies as many ([`tracer_common::CGROUP_PATH_MAX`]): a
/// longer path arrives cut to 1023 bytes, maybe mid-name, maybe mid-character.
/// A path of this length may therefore be cut.
const RECORD_PATH_MAX: usize = tracer_common::CGROUP_PATH_MAX - 1;

#[derive(Debug, Error)]
pub enum CgroupError {
    #[error("reading {MOUNTINFO}")]
    Mountinfo(#[source] io::Error),
    #[error("no cgroup2 file system is mounted (per {MOUNTINFO})")]
    NoCgroup2Mount,
}

/// A cgroup file system, as a line of `/proc/<pid>/mountinfo` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub mount_point: PathBuf,
    /// The directory of the hierarchy mounted there: `/`, unless a subtree is
    /// bind-mounted or the reader is in a cgroup namespace.
    pub root: PathBuf,
    /// `cgroup2`; otherwise a v1 hierarchy.
    pub v2: bool,
    /// The super options: for v1, the controllers (`rw,memory`,
    /// `rw,cpu,cpuacct`, `rw,xattr,name=systemd`).
    pub super_options: String,
}

impl CgroupMount {
    /// Whether this v1 hierarchy has `controller` bound to it.
    pub fn has_controller(&self, controller: &str) -> bool {
        !self.v2 && self.super_options.split(',').any(|o| o == controller)
    }
}

/// Every `cgroup` and `cgroup2` mount in `/proc/<pid>/mountinfo` text, in order.
///
/// Line format (proc(5)): `id parent major:minor root mount-point options
/// [optional fields...] - fstype source super-options`.
pub fn parse_mountinfo_cgroups(text: &str) -> Vec<CgroupMount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            // The separator follows at least six fields; optional fields vary in number.
            let sep = fields.iter().skip(6).position(|&f| f == "-")? + 6;
            // fstype, source and super options all follow it.
            if fields.len() < sep + 4 {
                return None;
            }
            let fstype = *fields.get(sep + 1)?;
            let root = *fields.get(3)?;
            let mount_point = *fields.get(4)?;
            let v2 = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            mount_point.starts_with('/').then(|| CgroupMount {
                mount_point: unescape(mount_point),
                root: unescape(root),
                v2,
                super_options: fields.get(sep + 3).copied().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// Mount point of the first `cgroup2` mount in `/proc/<pid>/mountinfo` text.
pub fn parse_mountinfo_cgroup2(text: &str) -> Option<PathBuf> {
    parse_mountinfo_cgroups(text)
        .into_iter()
        .find(|m| m.v2)
        .map(|m| m.mount_point)
}

/// The v1 controllers whose hierarchy the probes can read each task's cgroup in,
/// in order of preference: (controller, `enum cgroup_subsys_id` value, the
/// `hierarchy` events name). memory and pids are mounted on every v1 host that
/// runs containers; cpu is usually co-mounted with cpuacct (`cpu,cpuacct`).
pub const V1_CONTROLLERS: [(&str, &str, &str); 3] = [
    ("memory", "memory_cgrp_id", "v1:memory"),
    ("pids", "pids_cgrp_id", "v1:pids"),
    ("cpu", "cpu_cgrp_id", "v1:cpu"),
];

/// The one v1 controller hierarchy the tracer reads cgroups in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Controller {
    /// `memory`, `pids` or `cpu`.
    pub name: &'static str,
    /// Its `enum cgroup_subsys_id` value in kernel BTF (`memory_cgrp_id`).
    pub subsys_id: &'static str,
    /// What events say a path came from (`v1:memory`).
    pub hierarchy: &'static str,
    /// Where its hierarchy is mounted.
    pub mount: PathBuf,
}

/// The first of [`V1_CONTROLLERS`] mounted as a v1 hierarchy, at the root of
/// that hierarchy (a mount of a subtree would name cgroups relative to it).
/// None on a pure v2 host, where there is nothing to read.
pub fn choose_v1_controller(mounts: &[CgroupMount]) -> Option<V1Controller> {
    V1_CONTROLLERS
        .iter()
        .find_map(|&(name, subsys_id, hierarchy)| {
            mounts
                .iter()
                .find(|m| m.has_controller(name) && m.root == Path::new("/"))
                .map(|m| V1Controller {
                    name,
                    subsys_id,
                    hierarchy,
                    mount: m.mount_point.clone(),
                })
        })
}

/// The v1 controller to read, from this process's mountinfo, with its
/// hierarchy id from `/proc/self/cgroup` (0 when that does not say).
pub fn discover_v1() -> Result<Option<(V1Controller, u32)>, CgroupError> {
    let text = std::fs::read_to_string(MOUNTINFO).map_err(CgroupError::Mountinfo)?;
    let Some(v1) = choose_v1_controller(&parse_mountinfo_cgroups(&text)) else {
        return Ok(None);
    };
    let hierarchy_id = std::fs::read("/proc/self/cgroup")
        .ok()
        .and_then(|t| crate::proc::scan::parse_cgroup_v1_line(&t, v1.name).map(|(id, _)| id))
        .unwrap_or(0);
    Ok(Some((v1, hierarchy_id)))
}

/// Decodes the kernel's `\ooo` escapes (space, tab, newline, backslash).
fn unescape(s: &str) -> PathBuf {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\'
            && let Some(code) = bytes.get(i + 1..i + 4).and_then(octal_byte)
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(b);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

fn octal_byte(digits: &[u8]) -> Option<u8> {
    digits.iter().try_fold(0u8, |acc, &d| {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        acc.checked_mul(8)?.checked_add(d - b'0')
    })
}

/// Cached cgroup id -> path (relative to the v2 root, with a leading '/').
///
/// Paths are in the reversible spelling of [`escape`] (bytes that are not
/// UTF-8 as `\xNN`, `\` doubled), whichever way they were learned: the walk,
/// the kernel's `cgroup:*` records ([`CgroupResolver::learn`]) or a process's
/// `/proc/<pid>/cgroup` ([`crate::proc::scan::parse_cgroup_v2_line`]).
#[derive(Debug)]
pub struct CgroupResolver {
    mount: PathBuf,
    paths: HashMap<u64, Arc<str>>,
    /// Known cgroups the latest walk did not find, with when it missed them.
    missing: HashMap<u64, (Arc<str>, Instant)>,
    /// Cgroups known only by a path the kernel's record cut short (see
    /// [`RECORD_PATH_MAX`]) and not yet found whole: the cut path, for want of
    /// better, which [`CgroupResolver::is_cut`] says it is.
    cut: HashMap<u64, Arc<str>>,
    /// Ids still absent after a walk that started after they were asked for;
    /// they do not trigger walks again until some other miss causes one.
    unknown: HashSet<u64>,
    last_scan: Option<Instant>,
    rescan_interval: Duration,
    scans: u64,
}

impl CgroupResolver {
    /// Finds the cgroup2 mount in /proc/self/mountinfo.
    pub fn discover() -> Result<CgroupResolver, CgroupError> {
        let text = std::fs::read_to_string(MOUNTINFO).map_err(CgroupError::Mountinfo)?;
        let mount = parse_mountinfo_cgroup2(&text).ok_or(CgroupError::NoCgroup2Mount)?;
        Ok(CgroupResolver::with_mount(mount))
    }

    /// Uses a known mount point; nothing is read until the first lookup.
    pub fn with_mount(mount: PathBuf) -> CgroupResolver {
        CgroupResolver {
            mount,
            paths: HashMap::new(),
            missing: HashMap::new(),
            cut: HashMap::new(),
            unknown: HashSet::new(),
            last_scan: None,
            rescan_interval: DEFAULT_RESCAN_INTERVAL,
            scans: 0,
        }
    }

    #[cfg(test)]
    /// Minimum time between two full walks of the hierarchy.
    pub fn with_rescan_interval(mut self, interval: Duration) -> CgroupResolver {
        self.rescan_interval = interval;
        self
    }

    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// Path relative to the v2 root, with a leading '/' ("/" for the root,
    /// "/system.slice/ssh.service"), or None if unknown.
    ///
    /// A cgroup known only by a cut path (see [`RECORD_PATH_MAX`]) counts as a
    /// miss: a walk may find it whole. When none does, the cut path is
    /// returned, and [`Self::is_cut`] says so.
    pub fn path(&mut self, id: u64) -> Option<Arc<str>> {
        if let Some(path) = self.whole_cached(id) {
            return Some(path);
        }
        if self.unknown.contains(&id) {
            return self.cut.get(&id).cloned();
        }
        let due = self
            .last_scan
            .is_none_or(|at| at.elapsed() >= self.rescan_interval);
        if !due {
            // Not remembered as unknown: the walk it missed may still find it.
            return self.cut.get(&id).cloned();
        }
        self.rescan();
        if let Some(found) = self.whole_cached(id) {
            return Some(found);
        }
        if self.unknown.len() >= MAX_UNKNOWN {
            self.unknown.clear();
        }
        self.unknown.insert(id);
        self.cut.get(&id).cloned()
    }

    /// The cached path only: never touches the filesystem.
    /// The cached path; on a miss, the path `claimed` gives (what the process
    /// itself reports, read only then), accepted only if that directory's inode
    /// is `id` (the process may have moved since), else a rescan.
    pub fn path_verified(
        &mut self,
        id: u64,
        claimed: impl FnOnce() -> Option<String>,
    ) -> Option<Arc<str>> {
        if let Some(p) = self.whole_cached(id) {
            return Some(p);
        }
        match claimed().filter(|rel| self.id_of(rel) == Some(id)) {
            Some(rel) => {
                self.insert(id, &rel);
                self.path_cached(id)
            }
            None => self.path(id),
        }
    }

    /// The cached path, a cut one included ([`Self::is_cut`]).
    pub fn path_cached(&self, id: u64) -> Option<Arc<str>> {
        self.whole_cached(id).or_else(|| self.cut.get(&id).cloned())
    }

    fn whole_cached(&self, id: u64) -> Option<Arc<str>> {
        self.paths
            .get(&id)
            .or_else(|| self.missing.get(&id).map(|(path, _)| path))
            .cloned()
    }

    /// Whether the path known for `id` is one the kernel's record cut short
    /// and nothing has found whole since.
    pub fn is_cut(&self, id: u64) -> bool {
        self.cut.contains_key(&id) && self.whole_cached(id).is_none()
    }

    /// Path (in the [`escape`] spelling) -> id, by stat() of the directory
    /// (inode number).
    pub fn id_of(&self, rel_path: &str) -> Option<u64> {
        let raw = crate::escape::unescape(rel_path.trim_start_matches('/')).ok()?;
        let rel = Path::new(OsStr::from_bytes(&raw));
        // Only plain names: ".." or a second root would leave the hierarchy.
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return None;
        }
        let meta = std::fs::symlink_metadata(self.mount.join(rel)).ok()?;
        meta.is_dir().then(|| meta.ino())
    }

    /// Records a cgroup the kernel named (a `cgroup_mkdir` or `cgroup_rename`
    /// record): `raw` is the path's bytes, relative to the hierarchy's root.
    ///
    /// A path of [`RECORD_PATH_MAX`] bytes may have been cut: the cgroup is
    /// then looked for by its id (which the kernel gave, and nobody can forge)
    /// below the last whole directory of the cut path. Found: its whole path.
    /// Not found (already removed, or moved): the cut path, marked cut, until a
    /// walk or a process's /proc claim finds it whole.
    pub fn learn(&mut self, id: u64, raw: &[u8]) {
        if raw.len() < RECORD_PATH_MAX {
            self.insert(id, &escape(raw));
            return;
        }
        match self.find_below(id, raw) {
            Some(whole) => self.insert(id, &whole),
            None => {
                self.paths.remove(&id);
                self.missing.remove(&id);
                if self.cut.len() >= MAX_MISSING {
                    self.cut.clear();
                }
                self.cut.insert(id, Arc::from(escape(raw)));
            }
        }
    }

    /// The whole path of cgroup `id`, searched for below the deepest directory
    /// `cut` (a path the kernel cut short) names whole, and there only in the
    /// entries whose name starts with the part of a name after it: the cut name
    /// is the cgroup's own or an ancestor's. So a subtree's owner cannot make
    /// each such search walk all its other cgroups.
    fn find_below(&self, id: u64, cut: &[u8]) -> Option<String> {
        let slash = cut.iter().rposition(|&b| b == b'/')?;
        let (parent, partial) = (&cut[..slash], &cut[slash + 1..]);
        let rel = Path::new(OsStr::from_bytes(
            parent.strip_prefix(b"/").unwrap_or(parent),
        ));
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return None;
        }
        let depth = rel.components().count() + 1;
        let parent_rel = escape(parent);
        for entry in std::fs::read_dir(self.mount.join(rel)).ok()? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            if !name.as_bytes().starts_with(partial) {
                continue;
            }
            let child_rel = format!("{parent_rel}/{}", escape(name.as_bytes()));
            let mut found = None;
            // visit() takes no symlink and no file: only directories count.
            let _ = visit(&entry.path(), &child_rel, depth, &mut |ino, path| {
                if ino == id {
                    found = Some(path.to_owned());
                }
                found.is_some()
            });
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Records a cgroup learned elsewhere, its path in the [`escape`] spelling.
    pub fn insert(&mut self, id: u64, path: &str) {
        self.unknown.remove(&id);
        self.missing.remove(&id);
        self.cut.remove(&id);
        self.paths.insert(id, Arc::from(path));
    }

    /// Forgets a cgroup (e.g. on an rmdir event).
    pub fn remove(&mut self, id: u64) {
        self.paths.remove(&id);
        self.missing.remove(&id);
        self.cut.remove(&id);
    }

    /// Rebuilds the map from the file system. What the walk no longer finds is
    /// kept a while (see [`MISSING_TTL`]), so a rescan never undoes a mkdir event
    /// whose cgroup is already gone from disk.
    fn rescan(&mut self) {
        let now = Instant::now();
        self.last_scan = Some(now);
        self.scans += 1;
        match walk(&self.mount) {
            Ok(fresh) => {
                self.missing.retain(|id, (_, since)| {
                    !fresh.contains_key(id) && now.duration_since(*since) < MISSING_TTL
                });
                for (id, path) in self.paths.drain() {
                    if !fresh.contains_key(&id) {
                        self.missing.entry(id).or_insert((path, now));
                    }
                }
                if self.missing.len() > MAX_MISSING {
                    self.missing.clear();
                }
                self.cut.retain(|id, _| !fresh.contains_key(id));
                self.paths = fresh;
                self.unknown.clear();
            }
            // Keep what we had: a failed walk says nothing about the cgroups.
            Err(err) => {
                tracing::warn!(mount = %self.mount.display(), %err, "cannot walk the cgroup hierarchy");
            }
        }
    }
}

/// id -> path for every directory under `mount`, without following symlinks.
fn walk(mount: &Path) -> io::Result<HashMap<u64, Arc<str>>> {
    let mut paths = HashMap::new();
    visit(mount, "", 0, &mut |ino, path| {
        paths.insert(ino, Arc::from(if path.is_empty() { "/" } else { path }));
        false
    })?;
    Ok(paths)
}

/// Calls `f(inode, path)` for `start` (whose path relative to the hierarchy's
/// root is `rel`, "" for the root, at `depth`) and every directory below it,
/// down to [`MAX_DEPTH`], without following symlinks, until `f` returns true.
fn visit(
    start: &Path,
    rel: &str,
    depth: usize,
    f: &mut dyn FnMut(u64, &str) -> bool,
) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(start)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    if f(meta.ino(), rel) {
        return Ok(());
    }
    // (directory on disk, its path relative to the root, depth)
    let mut stack = vec![(start.to_path_buf(), rel.to_owned(), depth)];
    let first = depth;
    while let Some((dir, rel, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Removed since we listed its parent.
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) if depth == first => return Err(err),
            Err(err) => {
                tracing::debug!(dir = %dir.display(), %err, "skipping cgroup directory");
                continue;
            }
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            // d_type: skips the many control files without a stat each.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if !kind.is_dir() {
                continue;
            }
            // lstat, like symlink_metadata: an entry swapped for a symlink is not followed.
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_dir() {
                continue;
            }
            // Names are bytes: the same reversible spelling as the kernel's
            // records and /proc/<pid>/cgroup get, never a lossy one.
            let name = entry.file_name();
            let child_rel = format!("{rel}/{}", escape(name.as_bytes()));
            if f(meta.ino(), &child_rel) {
                return Ok(());
            }
            if depth + 1 < MAX_DEPTH {
                stack.push((entry.path(), child_rel, depth + 1));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn mountinfo() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "pure v2 host",
                "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n\
                 24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw\n\
                 35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
                Some("/sys/fs/cgroup"),
            ),
            (
                "hybrid host",
                "25 24 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n\
                 26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate\n\
                 27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd\n\
                 30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory\n",
                Some("/sys/fs/cgroup/unified"),
            ),
            (
                "hybrid host without optional fields",
                "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                 32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                 41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
                Some("/sys/fs/cgroup/unified"),
            ),
            (
                "container (source says cgroup, fstype cgroup2)",
                "1038 976 0:327 / / rw,relatime master:410 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X:/var/lib/docker/overlay2/l/Y,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/var/lib/docker/overlay2/abc/work\n\
                 1039 1038 0:330 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n\
                 1044 1038 0:331 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro\n\
                 1045 1044 0:29 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot\n\
                 1050 1038 0:29 / /host/sys/fs/cgroup rw,relatime shared:4 - cgroup2 cgroup2 rw\n",
                Some("/sys/fs/cgroup"),
            ),
            (
                "several optional fields",
                "40 31 0:38 / /sys/fs/cgroup rw,relatime shared:5 master:3 propagate_from:2 unbindable - cgroup2 cgroup2 rw\n",
                Some("/sys/fs/cgroup"),
            ),
            (
                "escaped mount point",
                "77 22 0:45 / /mnt/my\\040cgroup\\011tab\\134x rw,relatime shared:40 - cgroup2 none rw\n",
                Some("/mnt/my cgroup\ttab\\x"),
            ),
            (
                "garbage before the real line",
                "garbage\n\
                 1 2 3 - cgroup2 cgroup2 rw\n\
                 \n\
                 12 1 0:1 / /x rw - cgroup2\n\
                 13 1 0:1 / /y rw cgroup2 cgroup2 rw\n\
                 40 31 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n",
                Some("/sys/fs/cgroup"),
            ),
            (
                "a directory named cgroup2 is not the fs type",
                "50 22 0:50 / /cgroup2 rw,relatime - tmpfs cgroup2 rw\n",
                None,
            ),
            (
                "v1 only",
                "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n",
                None,
            ),
            ("empty", "", None),
        ];
        for (what, text, want) in cases {
            assert_eq!(
                parse_mountinfo_cgroup2(text).as_deref(),
                want.map(Path::new),
                "{what}"
            );
        }
    }

    /// Real `/proc/self/mountinfo` cgroup lines.
    const V1_ONLY_AL2: &str = "24 23 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:7 - tmpfs tmpfs ro,mode=755\n\
        25 24 0:22 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:8 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd\n\
        28 24 0:25 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,net_cls,net_prio\n\
        29 24 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct\n\
        30 24 0:27 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,pids\n\
        31 24 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory\n\
        32 24 0:29 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,blkio\n";
    const HYBRID_UBUNTU_2004: &str = "35 24 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n\
        36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate\n\
        37 35 0:32 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd\n\
        41 35 0:36 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids\n\
        44 35 0:39 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,cpu,cpuacct\n\
        45 35 0:40 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:20 - cgroup cgroup rw,memory\n";
    /// This project's test machines: cpu and cpuacct mounted apart.
    const HYBRID_SEPARATE_CPU: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
        33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n\
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
        39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n\
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    const PURE_V2: &str = "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n\
        35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
    /// Inside a docker container on a v1 host: subtrees of the host's hierarchies.
    const V1_CONTAINER: &str = "1150 1149 0:93 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755\n\
        1151 1150 0:28 /docker/4f1c3c6a /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:12 - cgroup memory rw,memory\n\
        1152 1150 0:27 /docker/4f1c3c6a /sys/fs/cgroup/pids ro,nosuid,nodev,noexec,relatime master:11 - cgroup pids rw,pids\n\
        1153 1150 0:26 /docker/4f1c3c6a /sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,noexec,relatime master:10 - cgroup cpu,cpuacct rw,cpu,cpuacct\n";

    #[test]
    fn v1_controller_choice() {
        type Case<'a> = (
            &'a str,
            String,
            Option<&'a str>,
            Option<(&'a str, &'a str, &'a str)>,
        );
        let cases: Vec<Case> = vec![
            (
                "v1 only (Amazon Linux 2)",
                V1_ONLY_AL2.into(),
                None,
                Some(("memory", "memory_cgrp_id", "/sys/fs/cgroup/memory")),
            ),
            (
                "hybrid (Ubuntu 20.04)",
                HYBRID_UBUNTU_2004.into(),
                Some("/sys/fs/cgroup/unified"),
                Some(("memory", "memory_cgrp_id", "/sys/fs/cgroup/memory")),
            ),
            (
                "hybrid, cpu and cpuacct apart",
                HYBRID_SEPARATE_CPU.into(),
                Some("/sys/fs/cgroup/unified"),
                Some(("memory", "memory_cgrp_id", "/sys/fs/cgroup/memory")),
            ),
            ("pure v2", PURE_V2.into(), Some("/sys/fs/cgroup"), None),
            (
                "no memory controller (cgroup_disable=memory)",
                V1_ONLY_AL2
                    .lines()
                    .filter(|l| !l.ends_with(",memory"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                None,
                Some(("pids", "pids_cgrp_id", "/sys/fs/cgroup/pids")),
            ),
            (
                "only cpu,cpuacct",
                V1_ONLY_AL2
                    .lines()
                    .filter(|l| !l.ends_with(",memory") && !l.ends_with(",pids"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                None,
                Some(("cpu", "cpu_cgrp_id", "/sys/fs/cgroup/cpu,cpuacct")),
            ),
            (
                "cpuacct alone is not cpu",
                "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n\
                 40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
                    .into(),
                None,
                None,
            ),
            ("container: subtrees only", V1_CONTAINER.into(), None, None),
            (
                "a subtree mount does not shadow the root mount",
                format!(
                    "{}90 22 0:28 / /host/memory rw,relatime - cgroup cgroup rw,memory\n",
                    V1_CONTAINER
                ),
                None,
                Some(("memory", "memory_cgrp_id", "/host/memory")),
            ),
            (
                "a tmpfs named like a controller",
                "50 22 0:50 / /sys/fs/cgroup/memory rw,relatime - tmpfs cgroup rw,memory\n".into(),
                None,
                None,
            ),
            ("empty", String::new(), None, None),
        ];
        for (what, text, want_v2, want_v1) in &cases {
            let mounts = parse_mountinfo_cgroups(text);
            assert_eq!(
                parse_mountinfo_cgroup2(text).as_deref(),
                want_v2.map(Path::new),
                "{what}"
            );
            let got = choose_v1_controller(&mounts);
            let got = got
                .as_ref()
                .map(|c| (c.name, c.subsys_id, c.mount.to_str().unwrap()));
            assert_eq!(got, *want_v1, "{what}");
            if let Some(c) = choose_v1_controller(&mounts) {
                assert_eq!(c.hierarchy, format!("v1:{}", c.name), "{what}");
            }
        }
        // What the parser keeps of a line.
        let m = parse_mountinfo_cgroups(V1_CONTAINER);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].root, Path::new("/docker/4f1c3c6a"));
        assert_eq!(m[2].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(m[2].has_controller("cpu") && m[2].has_controller("cpuacct"));
        let h = parse_mountinfo_cgroups(HYBRID_UBUNTU_2004);
        assert_eq!(h.iter().filter(|m| m.v2).count(), 1);
        assert!(!h[0].has_controller("memory"), "v2 binds no v1 controller");
        assert!(!h[1].has_controller("systemd"));
    }

    #[test]
    fn unescape_edge_cases() {
        let cases: &[(&str, &[u8])] = &[
            ("/a\\040b", b"/a b"),
            ("/trailing\\", b"/trailing\\"),
            ("/short\\04", b"/short\\04"),
            ("/not\\089octal", b"/not\\089octal"),
            ("/overflow\\777", b"/overflow\\777"),
            ("/utf8\\303\\251", "/utf8é".as_bytes()),
            ("/raw\\377", b"/raw\xff"),
        ];
        for (input, want) in cases {
            assert_eq!(
                unescape(input).into_os_string().into_vec(),
                want.to_vec(),
                "{input:?}"
            );
        }
    }

    static N: AtomicU32 = AtomicU32::new(0);

    fn unique(prefix: &str) -> String {
        format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Directories removed (deepest first) on drop, even if the test fails.
    struct DirGuard {
        dirs: Vec<PathBuf>,
        remove_all: bool,
    }

    impl Drop for DirGuard {
        fn drop(&mut self) {
            for dir in self.dirs.iter().rev() {
                let res = if self.remove_all {
                    std::fs::remove_dir_all(dir)
                } else {
                    std::fs::remove_dir(dir)
                };
                if let Err(err) = res {
                    eprintln!("cleanup of {}: {err}", dir.display());
                }
            }
        }
    }

    #[test]
    fn fake_tree() {
        let top = std::env::temp_dir().join(unique("tracer-cgroup-test"));
        let guard = DirGuard {
            dirs: vec![top.clone()],
            remove_all: true,
        };
        std::fs::create_dir_all(top.join("a/b c/d")).unwrap();
        std::fs::create_dir_all(top.join("elsewhere")).unwrap();
        std::fs::write(top.join("a/cgroup.procs"), "").unwrap();
        std::os::unix::fs::symlink(top.join("elsewhere"), top.join("a/link")).unwrap();
        // Deeper than the bound: the walk stops there.
        let deep: PathBuf = (0..MAX_DEPTH + 2).map(|_| "x").collect();
        std::fs::create_dir_all(top.join(&deep)).unwrap();

        let mut cg = CgroupResolver::with_mount(top.clone()).with_rescan_interval(Duration::ZERO);
        for rel in ["/", "/a", "/a/b c", "/a/b c/d", "/elsewhere"] {
            let id = cg.id_of(rel).unwrap();
            assert_eq!(cg.path(id).as_deref(), Some(rel));
        }
        assert_eq!(cg.id_of("/a/cgroup.procs"), None);
        assert_eq!(cg.id_of("/a/../a"), None);
        assert_eq!(cg.id_of("/nope"), None);
        // The symlink names no cgroup; its target resolves under its own name.
        let target = cg.id_of("/elsewhere").unwrap();
        assert_eq!(cg.path(target).as_deref(), Some("/elsewhere"));
        assert!(!cg.paths.values().any(|p| p.contains("link")));
        // Depth bound: level MAX_DEPTH is the last one recorded.
        let max_depth = cg.paths.values().map(|p| p.matches('/').count()).max();
        assert_eq!(max_depth, Some(MAX_DEPTH));
        drop(guard);
    }

    /// One cgroup, one spelling: the walk, the kernel's record and the
    /// process's /proc claim give the same text for the same raw bytes, and
    /// that text leads back to the directory.
    #[test]
    fn a_name_has_one_spelling_however_it_is_learned() {
        let top = std::env::temp_dir().join(unique("tracer-cgroup-spelling"));
        let _guard = DirGuard {
            dirs: vec![top.clone()],
            remove_all: true,
        };
        let names: &[(&[u8], &str)] = &[
            (b"\xff\xfe", "\\xff\\xfe"),
            (b"bad\xc3(", "bad\\xc3("),
            (b"back\\slash", "back\\\\slash"),
            (b"\\xff", "\\\\xff"),
            (b"caf\xc3\xa9", "caf\u{e9}"),
            (b"lf\nin name", "lf\nin name"),
        ];
        for (raw, spelled) in names {
            let mut rel = b"/outer/".to_vec();
            rel.extend_from_slice(raw);
            let dir = top.join(OsStr::from_bytes(&rel[1..]));
            std::fs::create_dir_all(&dir).unwrap();
            let want = format!("/outer/{spelled}");
            let id = std::fs::symlink_metadata(&dir).unwrap().ino();

            let mut walked =
                CgroupResolver::with_mount(top.clone()).with_rescan_interval(Duration::ZERO);
            assert_eq!(
                walked.path(id).as_deref(),
                Some(want.as_str()),
                "walk {raw:?}"
            );

            let mut told = CgroupResolver::with_mount(top.clone());
            told.learn(id, &rel);
            assert_eq!(
                told.path_cached(id).as_deref(),
                Some(want.as_str()),
                "record {raw:?}"
            );

            // /proc/<pid>/cgroup holds the raw bytes too (a newline in a name
            // splits its line: that claim is simply not the cgroup).
            let mut proc_line = b"0::".to_vec();
            proc_line.extend_from_slice(&rel);
            proc_line.push(b'\n');
            let claimed = crate::proc::scan::parse_cgroup_v2_line(&proc_line);
            if !raw.contains(&b'\n') {
                assert_eq!(claimed.as_deref(), Some(want.as_str()), "claim {raw:?}");
            }
            let mut verified = CgroupResolver::with_mount(top.clone());
            assert_eq!(
                verified.path_verified(id, || claimed).as_deref(),
                Some(want.as_str()),
                "verified claim {raw:?}"
            );
            assert_eq!(
                walked.id_of(&want),
                Some(id),
                "back to the directory {raw:?}"
            );
        }
        // A spelling that is no escape names nothing.
        let cg = CgroupResolver::with_mount(top.clone());
        assert_eq!(cg.id_of("/outer/\\q"), None);
    }

    /// Bytes of `path` as a kernel record carries them: at most 1023.
    fn as_recorded(path: &[u8]) -> &[u8] {
        &path[..path.len().min(RECORD_PATH_MAX)]
    }

    /// A path the kernel's record cut short is completed by the cgroup's id
    /// (below the last directory the cut path names whole), whatever byte the
    /// cut falls on; what cannot be completed stays marked cut until a walk or
    /// a verified claim finds it whole.
    #[test]
    fn a_path_the_kernel_cut_is_completed_by_id_or_marked_cut() {
        let top = std::env::temp_dir().join(unique("tracer-cgroup-long"));
        let _guard = DirGuard {
            dirs: vec![top.clone()],
            remove_all: true,
        };
        let level = |c: char| c.to_string().repeat(200);
        // Five levels of 201 bytes: the fifth name starts at byte 805; the
        // cut (1023) lands in its middle, or (padded) mid-character.
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        let base: Vec<u8> = ['a', 'b', 'c', 'd']
            .iter()
            .flat_map(|&c| format!("/{}", level(c)).into_bytes())
            .collect();
        let mid_name = [base.clone(), format!("/{}", "e".repeat(250)).into_bytes()].concat();
        cases.push(("cut mid-name", mid_name));
        // 'é' is two bytes at 1022..1024: the cut keeps only its first.
        let pad = 1022 - base.len() - 1;
        let mid_char = [
            base.clone(),
            format!("/{}\u{e9}tail", "f".repeat(pad)).into_bytes(),
        ]
        .concat();
        cases.push(("cut mid-character", mid_char));
        // Not UTF-8 and a backslash across the cut.
        let raw_bytes = [
            base.clone(),
            b"/".to_vec(),
            vec![b'g'; 1022 - base.len() - 1],
            b"\xff\\\xfe".to_vec(),
        ]
        .concat();
        cases.push(("raw bytes", raw_bytes));
        // A name shorter than the cut, below a directory the cut falls in.
        let deeper = [base.clone(), format!("/{}/h", "g".repeat(240)).into_bytes()].concat();
        cases.push(("cut in an ancestor's name", deeper));

        for (what, full) in &cases {
            assert!(full.len() > RECORD_PATH_MAX, "{what}");
            let dir = top.join(OsStr::from_bytes(&full[1..]));
            std::fs::create_dir_all(&dir).unwrap();
            let id = std::fs::symlink_metadata(&dir).unwrap().ino();
            let whole = escape(full);

            let mut cg = CgroupResolver::with_mount(top.clone());
            cg.learn(id, as_recorded(full));
            assert_eq!(
                cg.path_cached(id).as_deref(),
                Some(whole.as_str()),
                "{what}"
            );
            assert!(!cg.is_cut(id), "{what}");
            assert_eq!(cg.scans, 0, "{what}: found without a full walk");
        }

        // Not on disk (removed before its record was read): the cut path,
        // marked cut, and no walk finds more.
        let (_, full) = &cases[0];
        let recorded = as_recorded(full);
        let gone = u64::MAX - 7;
        let mut cg = CgroupResolver::with_mount(top.clone()).with_rescan_interval(Duration::ZERO);
        cg.learn(gone, recorded);
        assert!(cg.is_cut(gone));
        assert_eq!(cg.path(gone).as_deref(), Some(escape(recorded).as_str()));
        assert!(cg.is_cut(gone));
        assert_eq!(
            cg.path_verified(gone, || None).as_deref(),
            Some(escape(recorded).as_str())
        );
        cg.remove(gone);
        assert_eq!(cg.path(gone), None);
        assert!(!cg.is_cut(gone));

        // Searched below the wrong directory (moved since): a walk finds it whole.
        let dir = top.join(OsStr::from_bytes(&full[1..]));
        let id = std::fs::symlink_metadata(&dir).unwrap().ino();
        let elsewhere = [b"/elsewhere".as_slice(), &recorded[10..]].concat();
        let mut cg = CgroupResolver::with_mount(top.clone()).with_rescan_interval(Duration::ZERO);
        cg.learn(id, &elsewhere);
        assert!(cg.is_cut(id));
        assert_eq!(cg.path(id).as_deref(), Some(escape(full).as_str()));
        assert!(!cg.is_cut(id));
        // ... or a process's claim, checked by inode.
        let mut cg = CgroupResolver::with_mount(top.clone());
        cg.learn(id, &elsewhere);
        assert_eq!(
            cg.path_verified(id, || Some(escape(full))).as_deref(),
            Some(escape(full).as_str())
        );
        assert!(!cg.is_cut(id));

        // A rename the kernel cut and that cannot be completed replaces the
        // old whole path: the old one is no longer true.
        let mut cg = CgroupResolver::with_mount(top.clone());
        cg.insert(gone, "/old/name");
        cg.learn(gone, recorded);
        assert!(cg.is_cut(gone));
        // The search goes only into names that start as the cut one does.
        std::fs::create_dir_all(top.join("prune/other/target")).unwrap();
        let target = cg.id_of("/prune/other/target").unwrap();
        assert_eq!(
            cg.find_below(target, b"/prune/oth").as_deref(),
            Some("/prune/other/target")
        );
        assert_eq!(cg.find_below(target, b"/prune/tar"), None);
        assert_eq!(
            cg.find_below(target, b"/prune/other/tar").as_deref(),
            Some("/prune/other/target")
        );
        // A path shorter than the bound is taken as it is.
        cg.learn(gone, b"/short");
        assert!(!cg.is_cut(gone));
        assert_eq!(cg.path_cached(gone).as_deref(), Some("/short"));
    }

    #[test]
    fn rescans_are_rate_limited() {
        let top = std::env::temp_dir().join(unique("tracer-cgroup-rate"));
        let _guard = DirGuard {
            dirs: vec![top.clone()],
            remove_all: true,
        };
        std::fs::create_dir_all(top.join("old")).unwrap();
        let interval = Duration::from_millis(200);
        let mut cg = CgroupResolver::with_mount(top.clone()).with_rescan_interval(interval);
        let old = cg.id_of("/old").unwrap();
        assert_eq!(cg.path(old).as_deref(), Some("/old"));
        assert_eq!(cg.scans, 1);

        // A flood of one unknown id: at most the one walk it already had.
        for _ in 0..1000 {
            assert_eq!(cg.path(u64::MAX), None);
        }
        // A flood of distinct unknown ids: none are due within the interval.
        for id in 0..1000 {
            cg.path(u64::MAX - 1 - id);
        }
        assert!(cg.scans <= 2, "{} scans", cg.scans);
        // Hits never walk.
        for _ in 0..1000 {
            assert_eq!(cg.path(old).as_deref(), Some("/old"));
        }
        let scans = cg.scans;

        // A cgroup created now is found by the next walk once one is due.
        std::fs::create_dir(top.join("new")).unwrap();
        let new = cg.id_of("/new").unwrap();
        std::thread::sleep(interval + Duration::from_millis(20));
        assert_eq!(cg.path(new).as_deref(), Some("/new"));
        assert_eq!(cg.scans, scans + 1);

        // Event-driven updates.
        cg.insert(7, "/from/event");
        assert_eq!(cg.path(7).as_deref(), Some("/from/event"));
        cg.remove(7);
        assert!(!cg.paths.contains_key(&7));
    }

    /// A cgroup learned from a mkdir event and removed from disk before its
    /// rmdir event is read: walks in between do not forget it; the rmdir does.
    #[test]
    fn a_walk_does_not_forget_a_cgroup_whose_rmdir_is_unread() {
        let top = std::env::temp_dir().join(unique("tracer-cgroup-missing"));
        let _guard = DirGuard {
            dirs: vec![top.clone()],
            remove_all: true,
        };
        std::fs::create_dir_all(top.join("short")).unwrap();
        let mut cg = CgroupResolver::with_mount(top.clone()).with_rescan_interval(Duration::ZERO);
        let short = cg.id_of("/short").unwrap();
        cg.insert(short, "/short");
        cg.insert(7, "/from/mkdir/event");
        std::fs::remove_dir(top.join("short")).unwrap();
        // Another id's miss forces walks that no longer see either.
        assert_eq!(cg.path(u64::MAX), None);
        assert_eq!(cg.path(u64::MAX - 1), None);
        assert_eq!(cg.path(short).as_deref(), Some("/short"));
        assert_eq!(cg.path(7).as_deref(), Some("/from/mkdir/event"));
        // A directory the walk does find is current, not a missing copy.
        std::fs::create_dir(top.join("renamed")).unwrap();
        let renamed = cg.id_of("/renamed").unwrap();
        cg.insert(renamed, "/old-name");
        assert_eq!(cg.path(u64::MAX - 2), None);
        assert_eq!(cg.path(renamed).as_deref(), Some("/renamed"));
        cg.remove(short);
        cg.remove(7);
        assert_eq!(cg.path_cached(short), None);
        assert_eq!(cg.path_cached(7), None);
    }

    #[test]
    fn live_v2_hierarchy() {
        let mut cg = match CgroupResolver::discover() {
            Ok(cg) => cg,
            // A cgroup v1 host: nothing mounts the v2 hierarchy.
            Err(CgroupError::NoCgroup2Mount) => {
                crate::skip(
                    "live_v2_hierarchy",
                    "no cgroup2 mount here (a cgroup v1 host)",
                );
                return;
            }
            Err(e) => panic!("{}", crate::error_chain(&e)),
        };
        let mount = cg.mount().to_path_buf();
        let parent_rel = format!("/{}", unique("tracer-test"));
        let child_rel = format!("{parent_rel}/child");
        let parent = mount.join(parent_rel.trim_start_matches('/'));
        let child = parent.join("child");
        // Pushed only once created, so Drop removes exactly what exists, child first.
        let mut guard = DirGuard {
            dirs: Vec::new(),
            remove_all: false,
        };
        std::fs::create_dir(&parent).unwrap();
        guard.dirs.push(parent.clone());
        std::fs::create_dir(&child).unwrap();
        guard.dirs.push(child.clone());

        let root_id = cg.id_of("/").unwrap();
        assert_eq!(cg.path(root_id).as_deref(), Some("/"));
        for rel in [&parent_rel, &child_rel] {
            let id = cg.id_of(rel).unwrap();
            assert_eq!(cg.path(id).as_deref(), Some(rel.as_str()), "id {id}");
        }
        // Our own cgroup, as /proc/self/cgroup names it, resolves both ways.
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        if let Some(own) = own.lines().find_map(|l| l.strip_prefix("0::")) {
            let id = cg.id_of(own).unwrap();
            assert_eq!(cg.path(id).as_deref(), Some(own));
        }
        drop(guard);
        assert!(!parent.exists());
    }
}
