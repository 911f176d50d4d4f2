//! User and group names for uids and gids, read from `<root>/etc/passwd` and
//! `<root>/etc/group`.
//!
//! The root is configurable because in a container the host's files sit under
//! a host mount. Only the files are consulted, not NSS: the tracer must name
//! the ids the way the traced host does, without LDAP or sssd round trips.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How often a miss may stat the files to look for changes. Short, so an account
/// created just before it acts (useradd, then run) is named; a stat is ~1 µs, so
/// even a flood of unknown ids costs at most 50 stats a second.
const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_millis(20);

/// Cached uid -> user name and gid -> group name maps.
#[derive(Debug)]
pub struct UserDb {
    users: Table,
    groups: Table,
}

impl UserDb {
    pub fn new(root: impl Into<PathBuf>) -> UserDb {
        UserDb::with_reload_interval(root, DEFAULT_RELOAD_INTERVAL)
    }

    /// Like [`UserDb::new`], with a different minimum time between change checks.
    pub fn with_reload_interval(root: impl Into<PathBuf>, interval: Duration) -> UserDb {
        let root = root.into();
        let mut db = UserDb {
            users: Table::new(root.join("etc/passwd"), parse_passwd, interval),
            groups: Table::new(root.join("etc/group"), parse_group, interval),
        };
        db.users.load();
        db.groups.load();
        db
    }

    pub fn user_name(&mut self, uid: u32) -> Option<&str> {
        self.users.get(uid)
    }

    pub fn group_name(&mut self, gid: u32) -> Option<&str> {
        self.groups.get(gid)
    }
}

/// What identifies a version of a file: rewritten by rename (new inode) or in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    mtime: Option<SystemTime>,
    len: u64,
    ino: u64,
}

#[derive(Debug)]
struct Table {
    path: PathBuf,
    parse: fn(&str) -> HashMap<u32, String>,
    names: HashMap<u32, String>,
    /// Version of the loaded file; None when it was missing or unreadable.
    stamp: Option<Stamp>,
    last_check: Instant,
    interval: Duration,
    warned: bool,
}

impl Table {
    fn new(path: PathBuf, parse: fn(&str) -> HashMap<u32, String>, interval: Duration) -> Table {
        Table {
            path,
            parse,
            names: HashMap::new(),
            stamp: None,
            last_check: Instant::now(),
            interval,
            warned: false,
        }
    }

    fn get(&mut self, id: u32) -> Option<&str> {
        // Known ids never touch the filesystem.
        if !self.names.contains_key(&id) {
            self.refresh_if_due();
        }
        self.names.get(&id).map(String::as_str)
    }

    /// On a miss: at most once per interval, reload if the file changed.
    fn refresh_if_due(&mut self) {
        if self.last_check.elapsed() < self.interval {
            return;
        }
        self.last_check = Instant::now();
        let current = stamp_of(&self.path);
        if current.is_some() && current != self.stamp {
            self.load();
        }
    }

    fn load(&mut self) {
        self.last_check = Instant::now();
        // Stat before reading: a write racing with the read shows up as a
        // changed stamp at the next check instead of being missed.
        let stamp = stamp_of(&self.path);
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                self.names = (self.parse)(&String::from_utf8_lossy(&bytes));
                self.stamp = stamp;
                self.warned = false;
            }
            Err(err) => {
                if !self.warned {
                    tracing::warn!(path = %self.path.display(), %err, "cannot read; ids will not be named");
                    self.warned = true;
                }
            }
        }
    }
}

fn stamp_of(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        mtime: meta.modified().ok(),
        len: meta.len(),
        ino: meta.ino(),
    })
}

/// uid -> name from passwd(5) text: `name:passwd:uid:gid:gecos:home:shell`.
///
/// Skips comments, blank and malformed lines and NIS `+`/`-` entries; the
/// first entry for a uid wins, as with getpwuid(3).
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    parse_id_file(text, 7)
}

/// gid -> name from group(5) text: `name:passwd:gid:members`.
pub fn parse_group(text: &str) -> HashMap<u32, String> {
    parse_id_file(text, 4)
}

/// Both formats put the name first and the id third.
fn parse_id_file(text: &str, fields: usize) -> HashMap<u32, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.starts_with(['#', '+', '-']) {
            continue;
        }
        let parts: Vec<&str> = line.split(':').collect();
        if parts.len() != fields {
            continue;
        }
        let (Some(&name), Some(&id)) = (parts.first(), parts.get(2)) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let Some(id) = parse_id(id) else {
            continue;
        };
        map.entry(id).or_insert_with(|| name.to_owned());
    }
    map
}

/// Decimal digits only: `u32::from_str` would also take a leading '+'.
fn parse_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn passwd_lines() {
        let cases: &[(&str, &[(u32, &str)])] = &[
            ("root:x:0:0:root:/root:/bin/bash\n", &[(0, "root")]),
            (
                "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                 bin:x:2:2:bin:/bin:/usr/sbin/nologin\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                &[(1, "daemon"), (2, "bin"), (65534, "nobody")],
            ),
            // Empty gecos, and last line without a trailing newline.
            (
                "_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n\
                 alice:x:1000:1000:Alice Liddell,,,:/home/alice:/bin/bash",
                &[(42, "_apt"), (1000, "alice")],
            ),
            // Empty password, home and shell fields are still well-formed.
            ("svc::998:998:::\n", &[(998, "svc")]),
            // Comments, blank lines, CRLF.
            (
                "# local accounts\n\n   \nbob:x:1001:1001:Bob:/home/bob:/bin/sh\r\n",
                &[(1001, "bob")],
            ),
            // NIS compat entries are not accounts.
            ("+\n+@staff::::::\n-carol::::::\n+dave::1002:1002:::\n", &[]),
            // Garbage: too few or too many fields, empty name, bad ids.
            (
                "garbage\n\
                 short:x:5:5\n\
                 long:x:6:6:a:b:c:d\n\
                 :x:7:7::/:/bin/sh\n\
                 neg:x:-1:0::/:/bin/sh\n\
                 plus:x:+8:0::/:/bin/sh\n\
                 space:x: 9:0::/:/bin/sh\n\
                 hex:x:0x10:0::/:/bin/sh\n\
                 empty:x::0::/:/bin/sh\n",
                &[],
            ),
            // uid overflow is rejected; u32::MAX itself is a u32.
            (
                "big:x:4294967296:0::/:/bin/sh\n\
                 huge:x:99999999999999999999:0::/:/bin/sh\n\
                 max:x:4294967295:0::/:/bin/sh\n",
                &[(u32::MAX, "max")],
            ),
            // First entry wins for a duplicate uid.
            (
                "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0:toor:/root:/bin/sh\n",
                &[(0, "root")],
            ),
            ("", &[]),
        ];
        for (text, want) in cases {
            let got = parse_passwd(text);
            let want: HashMap<u32, String> =
                want.iter().map(|&(id, n)| (id, n.to_owned())).collect();
            assert_eq!(got, want, "input {text:?}");
        }
    }

    #[test]
    fn group_lines() {
        let cases: &[(&str, &[(u32, &str)])] = &[
            ("root:x:0:\n", &[(0, "root")]),
            (
                "adm:x:4:syslog,alice\nsudo:x:27:alice\nusers:x:100:\nnogroup:x:65534:",
                &[(4, "adm"), (27, "sudo"), (100, "users"), (65534, "nogroup")],
            ),
            // gshadow-style empty password field.
            ("docker::999:alice,bob\n", &[(999, "docker")]),
            ("# comment\n\n+\n-staff\n+@netgroup:::\n", &[]),
            (
                "short:x:5\nlong:x:6:a:b\nbad:x:abc:\nover:x:4294967296:\n",
                &[],
            ),
            ("wheel:x:10:root\nwheel2:x:10:\n", &[(10, "wheel")]),
        ];
        for (text, want) in cases {
            let got = parse_group(text);
            let want: HashMap<u32, String> =
                want.iter().map(|&(id, n)| (id, n.to_owned())).collect();
            assert_eq!(got, want, "input {text:?}");
        }
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempRoot(PathBuf);

    impl TempRoot {
        fn new() -> TempRoot {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "tracer-users-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(dir.join("etc")).unwrap();
            TempRoot(dir)
        }
    }

    impl Drop for TempRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn missing_files_are_empty() {
        let root = TempRoot::new();
        let mut db = UserDb::with_reload_interval(&root.0, Duration::ZERO);
        assert_eq!(db.user_name(0), None);
        assert_eq!(db.group_name(0), None);
        // The file appearing later is picked up.
        std::fs::write(root.0.join("etc/group"), "root:x:0:\n").unwrap();
        assert_eq!(db.group_name(0), Some("root"));
    }

    #[test]
    fn reloads_after_interval() {
        let root = TempRoot::new();
        let passwd = root.0.join("etc/passwd");
        let group = root.0.join("etc/group");
        std::fs::write(&passwd, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        std::fs::write(&group, "root:x:0:\n").unwrap();

        let interval = Duration::from_millis(300);
        let loaded = Instant::now();
        let mut db = UserDb::with_reload_interval(&root.0, interval);
        assert_eq!(db.user_name(0), Some("root"));
        assert_eq!(db.group_name(0), Some("root"));
        assert_eq!(db.user_name(1500), None);

        // Appending in place (same inode) like `useradd` without rename.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&passwd)
            .unwrap();
        f.write_all(b"newbie:x:1500:1500::/home/newbie:/bin/sh\n")
            .unwrap();
        drop(f);
        // Replacing by rename, like shadow-utils usually does.
        let tmp = root.0.join("etc/group+");
        std::fs::write(&tmp, "root:x:0:\nnewbie:x:1500:\n").unwrap();
        std::fs::rename(&tmp, &group).unwrap();

        // Within the interval of the last look at the files a miss stays a
        // miss (unless this machine was too slow to get here in time)...
        let miss = db.user_name(1500).is_none();
        assert!(miss || loaded.elapsed() >= interval);
        std::thread::sleep(interval + Duration::from_millis(20));
        // ...but is once the interval has passed.
        assert_eq!(db.user_name(1500), Some("newbie"));
        assert_eq!(db.group_name(1500), Some("newbie"));
        assert_eq!(db.user_name(0), Some("root"));

        // Known ids keep resolving even if the file disappears.
        std::fs::remove_file(&passwd).unwrap();
        std::thread::sleep(interval + Duration::from_millis(20));
        assert_eq!(db.user_name(4242), None);
        assert_eq!(db.user_name(1500), Some("newbie"));
    }

    #[test]
    fn real_root() {
        let mut db = UserDb::new("/");
        if Path::new("/etc/passwd").exists() {
            assert_eq!(db.user_name(0), Some("root"));
        }
    }
}
