//! An event's line in our JSON, assembled from parts: the executor's text may
//! come from [`super::executor_cache`] (or be a reference, `--lineage ids`),
//! and where it sits in the line is known without parsing the line again.
//! The bytes are those of [`crate::escape::to_writer`] on the [`Event`] (a
//! unit test holds them equal).
use std::ops::Range;

use serde::Serialize;

use crate::event::{Action, Ancestor, Event, EventId, Host, Kind, Policy, UnixNanos};

/// The members before the executor, in [`Event`]'s order.
#[derive(Serialize)]
struct Head<'a> {
    event_id: &'a EventId,
    time: UnixNanos,
    kind: Kind,
    host: &'a Host,
}

/// The members after it.
#[derive(Serialize)]
struct Tail<'a> {
    /// Absent: `--lineage ids` and the same as on the line that described the
    /// executor (see [`super::describe::Facts`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    lineage: Option<&'a [Ancestor]>,
    action: &'a Action,
    policy: &'a Policy,
}

/// `--lineage ids`: the executor of an event whose process the file has
/// described in full already, by reference (see [`super::describe::Facts`]).
#[derive(Serialize)]
pub(super) struct ExecutorRef<'a> {
    pub(super) exec_id: &'a str,
    pub(super) pid: u32,
    pub(super) tid: u32,
    #[serde(rename = "ref")]
    pub(super) by_ref: bool,
}

/// How the executor goes into a line.
#[derive(Clone, Copy)]
pub(super) enum ExecutorText<'a> {
    /// Serialized already (the cache).
    Json(&'a [u8]),
    /// Serialize `ev.executor` now.
    Serialize,
    /// By reference.
    Ref,
}

/// Append `ev`'s line (no newline) to `out`, with `executor` and, if
/// `with_lineage`, the lineage. Returns where the executor's text is.
pub(super) fn write(
    out: &mut Vec<u8>,
    ev: &Event,
    executor: ExecutorText<'_>,
    with_lineage: bool,
) -> serde_json::Result<Range<usize>> {
    crate::escape::to_writer(
        &mut *out,
        &Head {
            event_id: &ev.event_id,
            time: ev.time,
            kind: ev.kind,
            host: &ev.host,
        },
    )?;
    // `{...}` becomes `{...,"executor":`.
    out.pop();
    out.extend_from_slice(br#","executor":"#);
    let start = out.len();
    match executor {
        ExecutorText::Json(text) => out.extend_from_slice(text),
        ExecutorText::Serialize => crate::escape::to_writer(&mut *out, &ev.executor)?,
        ExecutorText::Ref => crate::escape::to_writer(
            &mut *out,
            &ExecutorRef {
                exec_id: &ev.executor.exec_id,
                pid: ev.executor.pid,
                tid: ev.executor.tid,
                by_ref: true,
            },
        )?,
    }
    let span = start..out.len();
    // `{...}` after it becomes `,...}`.
    let tail = out.len();
    crate::escape::to_writer(
        &mut *out,
        &Tail {
            lineage: with_lineage.then_some(ev.lineage.as_slice()),
            action: &ev.action,
            policy: &ev.policy,
        },
    )?;
    if let Some(b) = out.get_mut(tail) {
        *b = b',';
    }
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sample_exec_event;

    #[test]
    fn the_same_bytes_as_the_event() {
        let mut other = sample_exec_event();
        other.lineage.clear();
        other.kind = Kind::Connect;
        for ev in [sample_exec_event(), other] {
            let want = crate::escape::to_vec(&ev).unwrap();
            let executor = crate::escape::to_vec(&ev.executor).unwrap();
            for x in [ExecutorText::Serialize, ExecutorText::Json(&executor)] {
                let mut out = b"left alone".to_vec();
                let span = write(&mut out, &ev, x, true).unwrap();
                assert_eq!(&out[..10], b"left alone");
                assert_eq!(
                    String::from_utf8_lossy(&out[10..]),
                    String::from_utf8_lossy(&want)
                );
                assert_eq!(&out[span], &executor[..]);
            }
        }
    }

    #[test]
    fn a_reference_and_no_lineage() {
        let ev = sample_exec_event();
        let mut out = Vec::new();
        let span = write(&mut out, &ev, ExecutorText::Ref, false).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["executor"],
            serde_json::json!({"exec_id": &*ev.executor.exec_id, "pid": ev.executor.pid,
                "tid": ev.executor.tid, "ref": true})
        );
        assert!(v.get("lineage").is_none());
        assert_eq!(v["policy"]["tracer_version"], ev.policy.tracer_version);
        let x: serde_json::Value = serde_json::from_slice(&out[span]).unwrap();
        assert_eq!(x, v["executor"]);
    }
}
