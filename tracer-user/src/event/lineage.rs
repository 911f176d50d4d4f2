//! The executor's ancestors, each serialized once per process image.
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use super::{Identity, ImageSource, Workload};

#[derive(Debug, Clone)]
pub struct Ancestor {
    pub exec_id: Arc<str>,
    pub pid: u32,
    pub binary: Arc<str>,
    pub argv: Arc<[String]>,
    /// `argv` was cut to `--lineage-argv-max` bytes.
    pub argv_truncated: bool,
    /// Where binary and argv came from, when not from the kernel at the exec
    /// (see `Executor::image_source`).
    pub image_source: Option<ImageSource>,
    /// Only where it differs from the executor's (a shell started by `kubectl exec`,
    /// a process that moved cgroups).
    pub workload: Option<Arc<Workload>>,
    pub identity: Option<Arc<Identity>>,
    /// The four fields above, serialized once per process image: an ancestor's
    /// argv goes into every event of its descendants, and escaping it again each
    /// time was the largest cost of a storm.
    pub json: Option<Arc<RawValue>>,
    /// `--lineage ids`: written as `exec_id` and `pid` only (plus `workload` and
    /// `identity` where they differ); the sink makes sure the file already
    /// describes the process ([`ProcessRecord`]).
    pub brief: bool,
}

/// What `lineage` holds for each ancestor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LineageMode {
    /// Each ancestor's binary and argv, on every event: each line stands alone.
    #[default]
    Full,
    /// Each ancestor's exec_id and pid (and its workload and identity where they
    /// differ from the executor's); its binary and argv are in a line written
    /// earlier in the same file: its own event, or a `process` record.
    Ids,
}

/// `kind: "process"`: the description of a process that an event's lineage
/// names by exec_id only (`--lineage ids`), written before that event in the
/// same file when no earlier line of the file describes it.
#[derive(Serialize)]
pub struct ProcessRecord<'a> {
    pub time: super::UnixNanos,
    pub kind: &'static str,
    pub host: &'a super::Host,
    /// What a full lineage entry says of it: exec_id, pid, binary, argv (cut
    /// to `--lineage-argv-max`), argv_truncated, image_source.
    pub process: &'a RawValue,
    pub policy: &'a super::Policy,
}

/// The part of an [`Ancestor`] that never changes for a process image.
#[derive(Serialize)]
pub struct AncestorBase<'a> {
    pub exec_id: &'a str,
    pub pid: u32,
    pub binary: &'a str,
    pub argv: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub argv_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_source: Option<ImageSource>,
}

impl Ancestor {
    /// The process's own description (the serialized [`AncestorBase`]).
    pub fn description(&self) -> Option<Arc<RawValue>> {
        if let Some(raw) = &self.json {
            return Some(raw.clone());
        }
        Ancestor::base_json(&AncestorBase {
            exec_id: &self.exec_id,
            pid: self.pid,
            binary: &self.binary,
            argv: &self.argv,
            argv_truncated: self.argv_truncated,
            image_source: self.image_source,
        })
    }

    /// Serialize the unchanging fields once, as every line is
    /// ([`crate::escape::to_writer`]): this text goes into lines verbatim.
    pub fn base_json(base: &AncestorBase) -> Option<Arc<RawValue>> {
        let text = String::from_utf8(crate::escape::to_vec(base).ok()?).ok()?;
        RawValue::from_string(text).ok().map(Arc::from)
    }
}

impl Serialize for Ancestor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        if self.brief {
            let n = 2 + usize::from(self.workload.is_some()) + usize::from(self.identity.is_some());
            let mut m = s.serialize_struct("Ancestor", n)?;
            m.serialize_field("exec_id", &self.exec_id)?;
            m.serialize_field("pid", &self.pid)?;
            if let Some(w) = &self.workload {
                m.serialize_field("workload", w)?;
            }
            if let Some(i) = &self.identity {
                m.serialize_field("identity", i)?;
            }
            return m.end();
        }
        if let (Some(raw), None, None) = (&self.json, &self.workload, &self.identity) {
            return raw.serialize(s);
        }
        let n = 4
            + usize::from(self.argv_truncated)
            + usize::from(self.image_source.is_some())
            + usize::from(self.workload.is_some())
            + usize::from(self.identity.is_some());
        let mut m = s.serialize_struct("Ancestor", n)?;
        m.serialize_field("exec_id", &self.exec_id)?;
        m.serialize_field("pid", &self.pid)?;
        m.serialize_field("binary", &self.binary)?;
        m.serialize_field("argv", &self.argv)?;
        if self.argv_truncated {
            m.serialize_field("argv_truncated", &true)?;
        }
        if let Some(src) = &self.image_source {
            m.serialize_field("image_source", src)?;
        }
        if let Some(w) = &self.workload {
            m.serialize_field("workload", w)?;
        }
        if let Some(i) = &self.identity {
            m.serialize_field("identity", i)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ancestors_pasted_json_is_escaped_like_the_line() {
        let argv = vec!["sh".to_owned(), "a\u{9b}2J\u{7f}\u{202e}b\u{1b}".to_owned()];
        let raw = Ancestor::base_json(&AncestorBase {
            exec_id: "x",
            pid: 1,
            binary: "/bin/\u{2066}sh",
            argv: &argv,
            argv_truncated: false,
            image_source: None,
        })
        .unwrap();
        let text = raw.get();
        assert!(
            !text.chars().any(crate::escape::terminal_unsafe),
            "{text:?}"
        );
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["argv"], serde_json::json!(argv));
        assert_eq!(v["binary"], "/bin/\u{2066}sh");
    }
}
