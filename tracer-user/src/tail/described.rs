//! `--lineage ids` files name the executor of a later event of a process by
//! reference (`executor.ref`): the reader joins it with the executor of the
//! latest line of the file that described the process in full, so filters
//! and the compact view see the binary, user and workload as on any other line.
use std::num::NonZeroUsize;

use lru::LruCache;
use serde::Deserialize;
use serde_json::{Value, value::RawValue};

use crate::event::view::Line;

/// Executors remembered; bounded in bytes too.
const ENTRIES: usize = 4096;
const MAX_BYTES: usize = 16 * 1024 * 1024;

pub(super) struct Executors {
    lru: LruCache<String, String>,
    bytes: usize,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    executor: Option<&'a RawValue>,
}

impl Executors {
    pub(super) fn new() -> Executors {
        Executors {
            lru: LruCache::new(NonZeroUsize::new(ENTRIES).unwrap_or(NonZeroUsize::MIN)),
            bytes: 0,
        }
    }

    /// `line` (parsed as `ev`) with its executor in full: the same line when
    /// it has it, the joined line when the executor is by reference and
    /// described earlier, None when it is by reference to nothing seen (the
    /// reader started after the description).
    pub(super) fn join(&mut self, line: &str, ev: &Line) -> Option<String> {
        let ex = ev.executor.as_ref()?;
        let exec_id = ex.exec_id.as_deref()?;
        if ex.by_ref != Some(true) {
            if ev.kind.as_deref() != Some("process")
                && let Ok(Raw {
                    executor: Some(raw),
                }) = serde_json::from_str::<Raw>(line)
            {
                self.remember(exec_id, raw.get());
            }
            return None;
        }
        let described = self.lru.get(exec_id)?;
        let mut full: Value = serde_json::from_str(described).ok()?;
        let mut v: Value = serde_json::from_str(line).ok()?;
        let obj = v.as_object_mut()?;
        if let (Some(dst), Some(src)) = (full.as_object_mut(), obj.get("executor")) {
            for k in ["pid", "tid"] {
                if let Some(x) = src.get(k) {
                    dst.insert(k.to_owned(), x.clone());
                }
            }
        }
        obj.insert("executor".to_owned(), full);
        serde_json::to_string(&v).ok()
    }

    fn remember(&mut self, exec_id: &str, executor: &str) {
        let cost = |k: &str, v: &str| k.len() + v.len() + 64;
        self.bytes += cost(exec_id, executor);
        if let Some((k, v)) = self.lru.push(exec_id.to_owned(), executor.to_owned()) {
            self.bytes = self.bytes.saturating_sub(cost(&k, &v));
        }
        while self.bytes > MAX_BYTES && self.lru.len() > 1 {
            match self.lru.pop_lru() {
                Some((k, v)) => self.bytes = self.bytes.saturating_sub(cost(&k, &v)),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(x: &mut Executors, line: &str) -> Option<Value> {
        let ev = Line::parse(line.as_bytes()).unwrap();
        x.join(line, &ev).map(|s| serde_json::from_str(&s).unwrap())
    }

    #[test]
    fn a_reference_reads_as_the_latest_full_description() {
        let mut x = Executors::new();
        let full = |uid: u32| {
            format!(
                r#"{{"kind":"exec","executor":{{"exec_id":"A","pid":7,"tid":7,"binary":"/bin/sh","user":{{"uid":{uid}}}}},"lineage":[],"action":{{}}}}"#
            )
        };
        let by_ref = r#"{"kind":"connect","executor":{"exec_id":"A","pid":7,"tid":9,"ref":true},"action":{"destination":{"port":1}},"chain":{"seq":3}}"#;
        let unknown = r#"{"kind":"connect","executor":{"exec_id":"B","pid":8,"tid":8,"ref":true},"action":{}}"#;
        assert_eq!(joined(&mut x, by_ref), None, "nothing described yet");
        assert_eq!(joined(&mut x, &full(0)), None, "already whole");
        let v = joined(&mut x, by_ref).unwrap();
        assert_eq!(v["executor"]["binary"], "/bin/sh");
        assert_eq!(v["executor"]["tid"], 9, "the reference's own thread");
        assert_eq!(v["action"]["destination"]["port"], 1);
        assert_eq!(v["chain"]["seq"], 3);
        assert!(v["executor"].get("ref").is_none());
        // A process record describes no executor.
        let record = r#"{"kind":"process","process":{"exec_id":"A","pid":7,"binary":"/x"}}"#;
        assert_eq!(joined(&mut x, record), None);
        // Described again after a setuid: the latest wins.
        joined(&mut x, &full(5));
        assert_eq!(
            joined(&mut x, by_ref).unwrap()["executor"]["user"]["uid"],
            5
        );
        assert_eq!(joined(&mut x, unknown), None);
    }

    #[test]
    fn bounded() {
        let mut x = Executors::new();
        let big = "x".repeat(8 * 1024);
        for i in 0..ENTRIES + 10 {
            x.remember(&format!("e{i}"), &big);
        }
        assert!(x.lru.len() <= ENTRIES);
        assert!(x.bytes <= MAX_BYTES);
    }
}
