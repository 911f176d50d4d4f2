//! `executor.requestor`: matched from an image's own environment at its exec
//! (or at the /proc scan), else inherited, so that a process three levels
//! under a CI step still names the run even if its environment was cleaned
//! (`env -i`, sudo).
use std::sync::Arc;

use super::Attributor;
use crate::{
    event::{Overrides, Requestor, RequestorClaim, RequestorValues},
    proc::table::Process,
};

/// The fields of `old` that `new` changes, with their old values (None: `old`
/// did not have the field).
fn changed(old: &RequestorValues, new: &RequestorValues) -> Vec<(Arc<str>, Option<String>)> {
    let mut out: Vec<(Arc<str>, Option<String>)> = new
        .fields
        .iter()
        .filter(|(k, v)| old.get(k) != Some(v.as_str()))
        .map(|(k, _)| (k.clone(), old.get(k).map(str::to_owned)))
        .collect();
    out.extend(
        old.fields
            .iter()
            .filter(|(k, _)| new.get(k).is_none())
            .map(|(k, v)| (k.clone(), Some(v.clone()))),
    );
    out.sort();
    out
}

impl Attributor {
    /// The requestor of image `p`, whose environment at exec was `env`.
    ///
    /// What it would inherit is its process's previous entry (its fork
    /// child, which carries its parent's, or the image it replaced) when that
    /// is the same process, else its parent's. Its own environment naming
    /// the same values keeps that one (same origin, same `Arc`); naming
    /// other values makes this image the origin, overriding what it would
    /// have inherited; naming none inherits.
    pub(super) fn requestor_of(&self, p: &Process, env: &[u8]) -> Option<Arc<Requestor>> {
        // A parent that started after its child is a reused pid, not the parent.
        let parent = self
            .table
            .get(p.ppid)
            .filter(|q| q.pid != p.pid && q.start_ticks <= p.start_ticks);
        let before = self
            .table
            .get(p.pid)
            .filter(|q| q.start_ticks == p.start_ticks)
            .and_then(|q| q.requestor.clone())
            .or_else(|| parent.and_then(|q| q.requestor.clone()));
        let Some(found) = self.requestor_profiles.find(env) else {
            return before;
        };
        if let Some(b) = &before
            && b.values == found.values
        {
            return before;
        }
        let claim = match parent {
            Some(q) if self.requestor_profiles.is_agent(&found, &q.binary, &q.argv) => {
                RequestorClaim::Runner
            }
            _ => RequestorClaim::Descendant,
        };
        let overrides = before.map(|b| Overrides {
            inherited_from: b.inherited_from.clone(),
            system: b.values.system.clone(),
            fields: changed(&b.values, &found.values),
        });
        Some(Arc::new(Requestor {
            values: found.values,
            inherited_from: p.exec_id.clone(),
            claim,
            overrides,
        }))
    }
}
