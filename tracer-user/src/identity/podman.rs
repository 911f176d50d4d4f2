//! Names and images of podman containers, from podman's own store.
//!
//! The cgroup path (`/libpod_parent/libpod-<id>`, `/machine.slice/libpod-<id>.scope`)
//! gives only the container id. Rootful podman has no daemon to ask; what it
//! knows about a container is in containers/storage's
//! `<graphroot>/<driver>-containers/containers.json`, written by podman (as
//! root, in a root-only directory) when the container is created, i.e. before
//! any of its processes run. Each entry has the id, the names (the first is
//! podman's container name) and a `metadata` string holding JSON with
//! `image-name`, the image as the user named it.
//!
//! Nothing the container itself can write is read. Lookups happen only for
//! podman cgroups, and the file is re-read only on a miss and when it changed.
use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use serde::Deserialize;

/// Where rootful podman keeps its store unless `storage.conf` says otherwise.
const DEFAULT_GRAPHROOT: &str = "/var/lib/containers/storage";
const STORAGE_CONF: &str = "/etc/containers/storage.conf";
/// Bounds the names kept for containers that are gone.
const MAX_ENTRIES: usize = 16_384;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodmanContainer {
    pub name: Option<String>,
    pub image: Option<String>,
}

/// Container id -> name and image, read lazily from podman's store.
pub struct PodmanStore {
    graphroot: PathBuf,
    by_id: HashMap<String, Arc<PodmanContainer>>,
    /// (file, modification time, length) as last read.
    seen: HashMap<PathBuf, (SystemTime, u64)>,
}

impl PodmanStore {
    /// The system store: `graphroot` from `/etc/containers/storage.conf`, else
    /// `/var/lib/containers/storage`.
    #[must_use]
    pub fn system() -> Self {
        let graphroot = fs::read_to_string(STORAGE_CONF)
            .ok()
            .and_then(|t| graphroot_from_conf(&t))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_GRAPHROOT));
        Self::new(graphroot)
    }

    #[must_use]
    pub fn new(graphroot: PathBuf) -> Self {
        Self {
            graphroot,
            by_id: HashMap::new(),
            seen: HashMap::new(),
        }
    }

    /// What podman says about container `id` (64 hex), if anything.
    pub fn lookup(&mut self, id: &str) -> Option<Arc<PodmanContainer>> {
        if let Some(c) = self.by_id.get(id) {
            return Some(c.clone());
        }
        self.reload();
        self.by_id.get(id).cloned()
    }

    /// Re-read every `*-containers/containers.json` that changed since last read.
    fn reload(&mut self) {
        let Ok(dir) = fs::read_dir(&self.graphroot) else {
            return;
        };
        for entry in dir.flatten() {
            let is_store = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.ends_with("-containers"));
            if !is_store {
                continue;
            }
            let file = entry.path().join("containers.json");
            let Ok(meta) = fs::metadata(&file) else {
                continue;
            };
            let stamp = (
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            );
            if self.seen.get(&file) == Some(&stamp) {
                continue;
            }
            let Some(found) = read_containers_json(&file) else {
                continue;
            };
            self.seen.insert(file, stamp);
            if self.by_id.len() + found.len() > MAX_ENTRIES {
                self.by_id.clear();
            }
            for (id, c) in found {
                self.by_id.insert(id, Arc::new(c));
            }
        }
    }
}

fn read_containers_json(file: &Path) -> Option<Vec<(String, PodmanContainer)>> {
    let text = fs::read(file).ok()?;
    match parse_containers_json(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!("podman store {}: {e}", file.display());
            None
        }
    }
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    metadata: String,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(rename = "image-name")]
    image_name: Option<String>,
    name: Option<String>,
}

/// The entries of a `containers.json`.
///
/// # Errors
/// When the text is not the expected JSON array.
pub fn parse_containers_json(
    text: &[u8],
) -> Result<Vec<(String, PodmanContainer)>, serde_json::Error> {
    let entries: Vec<Entry> = serde_json::from_slice(text)?;
    Ok(entries
        .into_iter()
        .map(|e| {
            // Containers made by other tools (buildah) have other metadata.
            let meta: Metadata = serde_json::from_str(&e.metadata).unwrap_or_default();
            let name = e
                .names
                .into_iter()
                .next()
                .or(meta.name)
                .filter(|n| !n.is_empty());
            let image = meta.image_name.filter(|n| !n.is_empty());
            (e.id, PodmanContainer { name, image })
        })
        .collect())
}

/// `graphroot = "..."` in the `[storage]` table of `storage.conf`.
fn graphroot_from_conf(text: &str) -> Option<PathBuf> {
    let mut in_storage = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_storage = line == "[storage]";
            continue;
        }
        if !in_storage {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() == "graphroot" {
            let v = value.trim().trim_matches(|c| c == '"' || c == '\'');
            return (!v.is_empty()).then(|| PathBuf::from(v));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "e7619bef593b093ea9435836b794627a78947dd8877a707c0fe61a8dc77a7d24";

    /// As podman 4.3 writes it.
    fn sample(id: &str, name: &str, image: &str) -> String {
        format!(
            r#"[{{"id":"{id}","names":["{name}"],"image":"1b9c","layer":"c2b8","metadata":"{{\"image-name\":\"{image}\",\"image-id\":\"1b9c\",\"name\":\"{name}\",\"created-at\":1796087526}}","created":"2026-12-01T01:12:06.185873693Z","flags":{{"MountLabel":"","ProcessLabel":""}}}}]"#
        )
    }

    #[test]
    fn parses_podman_entries() {
        let v = parse_containers_json(sample(ID, "web", "localhost/app:1").as_bytes()).unwrap();
        assert_eq!(
            v,
            vec![(
                ID.to_owned(),
                PodmanContainer {
                    name: Some("web".into()),
                    image: Some("localhost/app:1".into()),
                }
            )]
        );
    }

    #[test]
    fn tolerates_foreign_metadata_and_empty_store() {
        let v = parse_containers_json(
            format!(r#"[{{"id":"{ID}","names":[],"metadata":"not json"}}]"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(v, vec![(ID.to_owned(), PodmanContainer::default())]);
        assert!(parse_containers_json(b"[]").unwrap().is_empty());
        assert!(parse_containers_json(b"{").is_err());
    }

    #[test]
    fn store_rereads_on_miss_when_changed() {
        let root = std::env::temp_dir().join(format!("podman-store-{}", std::process::id()));
        let dir = root.join("overlay-containers");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("containers.json"), "[]").unwrap();
        let mut store = PodmanStore::new(root.clone());
        assert_eq!(store.lookup(ID), None);
        fs::write(
            dir.join("containers.json"),
            sample(ID, "db", "localhost/db:2"),
        )
        .unwrap();
        let c = store.lookup(ID).expect("found after the store changed");
        assert_eq!(c.name.as_deref(), Some("db"));
        assert_eq!(c.image.as_deref(), Some("localhost/db:2"));
        // Removed from podman's store: still known for late events.
        fs::write(dir.join("containers.json"), "[]").unwrap();
        assert!(store.lookup(ID).is_some());
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn graphroot_comes_from_the_storage_table() {
        let conf = "[storage]\ndriver = \"overlay\"\ngraphroot = \"/srv/containers\"\n[storage.options]\ngraphroot = \"/nope\"\n";
        assert_eq!(
            graphroot_from_conf(conf),
            Some(PathBuf::from("/srv/containers"))
        );
        assert_eq!(graphroot_from_conf("[engine]\ngraphroot = \"/x\"\n"), None);
    }
}
