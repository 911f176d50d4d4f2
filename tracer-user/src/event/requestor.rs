//! `executor.requestor`: who asked an automation system (a CI run, a
//! workflow) for the action, as that system wrote it into the environment of
//! the processes it started. A claim, not proof: any process can set these
//! variables for its children (see docs/threat-model.md); `claim` and
//! `inherited_from` say where the claim entered the process tree.
use std::sync::Arc;

use serde::{Serialize, ser::SerializeMap as _};

/// Field names the object itself uses: a profile's fields may not take them.
pub const RESERVED_FIELDS: &[&str] = &[
    "system",
    "display",
    "source",
    "inherited_from",
    "claim",
    "truncated",
    "overrides",
];

/// Where the values were first seen, relative to the system's own agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestorClaim {
    /// The image whose environment introduced them was started by a process
    /// the profile names as the system's agent (`Runner.Worker`, `gitlab-runner`).
    Runner,
    /// Introduced further down (or the parent was not known): some process
    /// below the agent, or no agent at all, set them.
    Descendant,
}

/// The values a profile kept from one environment: what two images compare
/// on to tell whether the second carries the first's requestor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestorValues {
    /// The profile's name (`github-actions`).
    pub system: Arc<str>,
    /// (field name, value), in the profile's order; values escaped and cut.
    pub fields: Vec<(Arc<str>, String)>,
    /// Some value was longer than the bound and was cut.
    pub truncated: bool,
    /// The profile's display template filled in.
    pub display: String,
}

impl RequestorValues {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| &**k == field)
            .map(|(_, v)| v.as_str())
    }

    /// Heap bytes, roughly and from above.
    pub fn approx_bytes(&self) -> usize {
        64 + self.system.len()
            + self.display.len()
            + self
                .fields
                .iter()
                .map(|(k, v)| 56 + k.len() + v.len())
                .sum::<usize>()
    }
}

/// The requestor an image replaced: its origin and the old values of the
/// fields that differ (None: the old one did not have the field), sorted
/// by field name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Overrides {
    pub inherited_from: Arc<str>,
    pub system: Arc<str>,
    pub fields: Vec<(Arc<str>, Option<String>)>,
}

/// `executor.requestor`. Shared (`Arc`) by every image that carries the same
/// values from the same origin: thousands of execs of one CI step hold one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requestor {
    pub values: RequestorValues,
    /// exec_id of the image whose environment introduced these values.
    pub inherited_from: Arc<str>,
    pub claim: RequestorClaim,
    /// The origin's parent carried another requestor, which this one replaced.
    pub overrides: Option<Overrides>,
}

impl Requestor {
    /// Heap bytes, roughly and from above (the process table's budget).
    pub fn approx_bytes(&self) -> usize {
        16 + 64
            + self.values.approx_bytes()
            + self.inherited_from.len()
            + self.overrides.as_ref().map_or(0, |o| {
                48 + o.inherited_from.len()
                    + o.fields
                        .iter()
                        .map(|(k, v)| 56 + k.len() + v.as_ref().map_or(0, String::len))
                        .sum::<usize>()
            })
    }
}

struct OverriddenFields<'a>(&'a [(Arc<str>, Option<String>)]);

impl Serialize for OverriddenFields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(&**k, v)?;
        }
        m.end()
    }
}

impl Serialize for Overrides {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Names sorted, as OCSF's `unmapped` has them too.
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("fields", &OverriddenFields(&self.fields))?;
        m.serialize_entry("inherited_from", &*self.inherited_from)?;
        m.serialize_entry("system", &*self.system)?;
        m.end()
    }
}

/// `{"system": .., <fields>.., "display": .., "source": "environment",
/// "inherited_from": .., "claim": .., "truncated": true?, "overrides": {..}?}`
impl Serialize for Requestor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = &self.values;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("system", &*v.system)?;
        for (k, val) in &v.fields {
            m.serialize_entry(&**k, val)?;
        }
        m.serialize_entry("display", &v.display)?;
        m.serialize_entry("source", "environment")?;
        m.serialize_entry("inherited_from", &*self.inherited_from)?;
        m.serialize_entry("claim", &self.claim)?;
        if v.truncated {
            m.serialize_entry("truncated", &true)?;
        }
        if let Some(o) = &self.overrides {
            m.serialize_entry("overrides", o)?;
        }
        m.end()
    }
}
