//! Test kernels: Debian's cloud kernel packages fetched through a private apt
//! state and unpacked (never installed) into a cache under `target/vmtest/kernels`.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, Result, bail};

use super::{Dirs, image_key, parse_key};
use crate::{output, run};

/// Suites the kernels come from: 5.10 is bullseye's, 6.1 bookworm's, and the
/// `6.12.*+deb12` kernels are bookworm's too (bookworm-security, then point
/// releases; bookworm-backports only has `+bpo` builds, which are not used).
const SUITES: &[&str] = &[
    "bullseye",
    "bullseye-security",
    "bookworm",
    "bookworm-security",
];
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
const DEFAULT_SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Re-read the package lists when they are older than this and a kernel is missing.
const APT_LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A private apt state: its own sources list, lists and cache under
/// `target/vmtest/apt`, on the mirror this machine's sources already use.
pub(super) struct AptState {
    opts: Vec<String>,
    lists: PathBuf,
    stamp: PathBuf,
    fresh: bool,
}

impl AptState {
    fn new(dir: &Path) -> Result<Self> {
        let lists = dir.join("lists");
        let cache = dir.join("cache");
        for d in [lists.join("partial"), cache.join("archives/partial")] {
            fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        let sources = dir.join("sources.list");
        let stamp = dir.join("updated");
        let text = private_sources();
        if fs::read_to_string(&sources).ok().as_deref() != Some(text.as_str()) {
            fs::write(&sources, &text).with_context(|| format!("writing {}", sources.display()))?;
            let _ = fs::remove_file(&stamp);
        }
        let mut opts: Vec<String> = vec![
            format!("Dir::Etc::SourceList={}", sources.display()),
            "Dir::Etc::SourceParts=/dev/null".into(),
            format!("Dir::State::Lists={}", lists.display()),
            format!("Dir::Cache={}", cache.display()),
            // The _apt user cannot write under target/.
            "APT::Sandbox::User=root".into(),
            "Acquire::Languages=none".into(),
        ];
        // appstream's DEP-11 metadata (from the host's apt.conf.d) is not wanted here.
        for t in [
            "DEP-11",
            "DEP-11-icons-small",
            "DEP-11-icons",
            "DEP-11-icons-hidpi",
        ] {
            opts.push(format!(
                "Acquire::IndexTargets::deb::{t}::DefaultEnabled=false"
            ));
        }
        Ok(Self {
            opts: opts.into_iter().flat_map(|o| ["-o".into(), o]).collect(),
            lists,
            stamp,
            fresh: false,
        })
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.args(&self.opts).env("DEBIAN_FRONTEND", "noninteractive");
        c
    }

    /// `apt-get update` for the private state, unless done within a day (or
    /// already in this run, with `force`).
    fn update(&mut self, force: bool) -> Result<()> {
        if self.fresh {
            return Ok(());
        }
        let recent = fs::metadata(&self.stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < APT_LISTS_MAX_AGE);
        let has_lists = fs::read_dir(&self.lists)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
            })
            .unwrap_or(false);
        if recent && has_lists && !force {
            return Ok(());
        }
        run(self.cmd("apt-get").args(["update", "-q"]))
            .context("apt-get update (private state for the test kernels)")?;
        fs::write(&self.stamp, "").with_context(|| format!("writing {}", self.stamp.display()))?;
        self.fresh = true;
        Ok(())
    }

    /// The newest `linux-image-<key>.*-cloud-amd64` (signed) package name.
    fn newest_image(&self, key: &str) -> Result<Option<String>> {
        let (major, minor) = parse_key(key).context("kernel key")?;
        let pattern = format!(r"^linux-image-{major}\.{minor}\.[0-9]+[-+][0-9a-z]+-cloud-amd64$");
        let mut c = self.cmd("apt-cache");
        c.args(["search", "--names-only", &pattern]);
        let listed = output(&mut c).with_context(|| format!("{c:?} failed"))?;
        let prefix = format!("linux-image-{major}.{minor}.");
        Ok(listed
            .lines()
            .filter_map(|l| l.split(" - ").next())
            .map(str::trim)
            .filter(|n| is_cloud_image(n, &prefix))
            .max_by_key(|n| version_numbers(n))
            .map(str::to_string))
    }
}

/// `linux-image-5.10.0-46-cloud-amd64` or `linux-image-6.12.117+deb12-cloud-amd64`
/// (not `-dbg`, `-unsigned`, `+bpo`).
fn is_cloud_image(name: &str, prefix: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(prefix)
        .and_then(|r| r.strip_suffix("-cloud-amd64"))
    else {
        return false;
    };
    let (patch, abi) = match rest.split_once('-') {
        Some(p) => p,
        None => match rest.split_once("+deb") {
            Some(p) => p,
            None => return false,
        },
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(patch) && digits(abi)
}

/// Every run of digits in `s`, in order: the sort key for "newest".
fn version_numbers(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The main and security mirrors (and keyring) of this machine's Debian sources,
/// for suites it may not list itself (bullseye).
fn private_sources() -> String {
    let entries = host_sources();
    let pick = |security: bool| {
        entries
            .iter()
            .find(|e| e.suite.ends_with("-security") == security && e.uri.contains("debian"))
    };
    let main = pick(false);
    let security = pick(true);
    let main_uri = main.map_or(DEFAULT_MIRROR.to_string(), |e| e.uri.clone());
    let security_uri =
        security
            .map(|e| e.uri.clone())
            .unwrap_or_else(|| match main_uri.strip_suffix("/debian") {
                Some(base) => format!("{base}/debian-security"),
                None => DEFAULT_SECURITY_MIRROR.to_string(),
            });
    let keyring = main.and_then(|e| e.signed_by.clone()).or_else(|| {
        Path::new(DEBIAN_KEYRING)
            .exists()
            .then(|| DEBIAN_KEYRING.into())
    });
    let mut opts = "arch=amd64".to_string();
    if let Some(k) = keyring {
        opts.push_str(&format!(" signed-by={k}"));
    }
    let mut text =
        String::from("# Written by `cargo xtask vmtest`: where the test kernels come from.\n");
    for suite in SUITES {
        let uri = if suite.ends_with("-security") {
            &security_uri
        } else {
            &main_uri
        };
        text.push_str(&format!("deb [{opts}] {uri} {suite} main\n"));
    }
    text
}

struct SourceEntry {
    uri: String,
    suite: String,
    /// A keyring path (inline keys are not carried over).
    signed_by: Option<String>,
}

/// `deb` entries of /etc/apt/sources.list and sources.list.d (one-line and deb822).
fn host_sources() -> Vec<SourceEntry> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(d) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = d.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    let mut entries = Vec::new();
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        match f.extension().and_then(|e| e.to_str()) {
            Some("sources") => entries.extend(parse_deb822(&text)),
            Some("list") => entries.extend(parse_one_line(&text)),
            _ => {}
        }
    }
    entries
}

fn parse_one_line(text: &str) -> Vec<SourceEntry> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let mut rest = rest.trim();
        let mut signed_by = None;
        if let Some(r) = rest.strip_prefix('[') {
            let Some((options, after)) = r.split_once(']') else {
                continue;
            };
            for o in options.split_whitespace() {
                if let Some(v) = o.strip_prefix("signed-by=")
                    && v.starts_with('/')
                {
                    signed_by = Some(v.to_string());
                }
            }
            rest = after.trim();
        }
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            entries.push(SourceEntry {
                uri: uri.trim_end_matches('/').to_string(),
                suite: suite.to_string(),
                signed_by,
            });
        }
    }
    entries
}

fn parse_deb822(text: &str) -> Vec<SourceEntry> {
    let mut entries = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                // Continuation (e.g. an inline key): not needed here.
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        if !get("types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"))
            || get("enabled").is_some_and(|e| e.eq_ignore_ascii_case("no"))
        {
            continue;
        }
        let signed_by = get("signed-by")
            .filter(|v| v.starts_with('/'))
            .map(str::to_string);
        for uri in get("uris").unwrap_or("").split_whitespace() {
            for suite in get("suites").unwrap_or("").split_whitespace() {
                entries.push(SourceEntry {
                    uri: uri.trim_end_matches('/').to_string(),
                    suite: suite.to_string(),
                    signed_by: signed_by.clone(),
                });
            }
        }
    }
    entries
}

/// `target/vmtest/kernels/<key>/boot/vmlinuz-*`, downloaded and unpacked when missing.
pub(super) fn kernel_image(dirs: &Dirs, key: &str, apt: &mut Option<AptState>) -> Result<PathBuf> {
    let key = image_key(key);
    let dir = dirs.kernel(key);
    if let Some(image) = find_vmlinuz(&dir) {
        return Ok(image);
    }
    if apt.is_none() {
        *apt = Some(AptState::new(&dirs.apt())?);
    }
    let apt = apt.as_mut().context("apt state")?;
    apt.update(false)?;
    let name = match apt.newest_image(key)? {
        Some(n) => n,
        None => {
            apt.update(true)?;
            apt.newest_image(key)?.with_context(|| {
                format!(
                    "no linux-image-{key}.*-cloud-amd64 package in {} ({})",
                    SUITES.join(", "),
                    dirs.apt().join("sources.list").display()
                )
            })?
        }
    };
    let dl = dirs.base.join("kernels/.download");
    let _ = fs::remove_dir_all(&dl);
    fs::create_dir_all(&dl).with_context(|| format!("creating {}", dl.display()))?;
    let download = |apt: &AptState| {
        run(apt
            .cmd("apt-get")
            .current_dir(&dl)
            .args(["download", "-q", &name]))
    };
    if download(apt).is_err() {
        // Stale lists name a file the mirror no longer has.
        apt.update(true)?;
        download(apt).with_context(|| format!("downloading {name}"))?;
    }
    let deb = fs::read_dir(&dl)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {name} left no .deb in {}", dl.display()))?;
    let tmp = dirs.base.join(format!("kernels/.{key}.unpack"));
    let _ = fs::remove_dir_all(&tmp);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
    if find_vmlinuz(&tmp).is_none() {
        bail!("{} has no boot/vmlinuz-*", deb.display());
    }
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir)
        .with_context(|| format!("moving {} to {}", tmp.display(), dir.display()))?;
    let _ = fs::remove_dir_all(&dl);
    find_vmlinuz(&dir).with_context(|| format!("no vmlinuz in {}", dir.display()))
}

fn find_vmlinuz(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir.join("boot"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_image_names() {
        assert!(is_cloud_image(
            "linux-image-5.10.0-46-cloud-amd64",
            "linux-image-5.10."
        ));
        assert!(is_cloud_image(
            "linux-image-6.12.117+deb12-cloud-amd64",
            "linux-image-6.12."
        ));
        assert!(!is_cloud_image(
            "linux-image-6.12.117+deb12-cloud-amd64",
            "linux-image-6.1."
        ));
        assert!(!is_cloud_image(
            "linux-image-6.1.0-57-cloud-amd64-unsigned",
            "linux-image-6.1."
        ));
        assert!(!is_cloud_image(
            "linux-image-6.12.12+bpo-cloud-amd64",
            "linux-image-6.12."
        ));
        let newest = [
            "linux-image-6.12.95+deb12-cloud-amd64",
            "linux-image-6.12.117+deb12-cloud-amd64",
        ]
        .into_iter()
        .max_by_key(|n| version_numbers(n));
        assert_eq!(newest, Some("linux-image-6.12.117+deb12-cloud-amd64"));
    }

    #[test]
    fn sources() {
        let one = parse_one_line(
            "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian/ bookworm main\n# x\n",
        );
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].uri, "http://m.example/debian");
        assert_eq!(one[0].signed_by.as_deref(), Some("/k.gpg"));
        let d = parse_deb822(
            "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
             Types: deb\nURIs: http://m.example/debian-security\nSuites: bookworm-security\n",
        );
        assert_eq!(d.len(), 3);
        assert_eq!(d[2].suite, "bookworm-security");
    }
}
