//! The members of a line `tracer report` reads, borrowed from the line (no
//! `serde_json::Value`: a report reads gigabytes). Members it does not name
//! are skipped unread. A line whose named members have unexpected types is
//! counted as unreadable and skipped by the caller.
use std::{borrow::Cow, fmt, ops::Deref};

use serde::{Deserialize, Deserializer, de::Visitor};

/// A string borrowed from the line unless it holds escapes (serde's own `Cow`
/// always copies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Event<'a> {
    pub kind: Option<Text<'a>>,
    pub time: Option<Text<'a>>,
    pub executor: Option<Executor<'a>>,
    pub lineage: Option<Vec<Ancestor<'a>>>,
    pub action: Option<Action<'a>>,
    /// A `process` record (`--lineage ids`): describes an ancestor.
    pub process: Option<Ancestor<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Executor<'a> {
    pub exec_id: Option<Text<'a>>,
    /// `--lineage ids`: described in full by an earlier line.
    #[serde(rename = "ref")]
    pub by_ref: Option<bool>,
    pub pid: Option<u64>,
    pub binary: Option<Text<'a>>,
    pub argv: Option<Vec<Text<'a>>>,
    pub user: Option<User<'a>>,
    pub login: Option<Login<'a>>,
    pub requestor: Option<Requestor<'a>>,
    pub workload: Option<Workload<'a>>,
    pub identity: Option<Identity<'a>>,
}

/// `executor.requestor`: the members a report groups by.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Requestor<'a> {
    pub system: Option<Text<'a>>,
    pub run: Option<Text<'a>>,
    pub actor: Option<Text<'a>>,
    pub display: Option<Text<'a>>,
    pub claim: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub(crate) struct User<'a> {
    pub uid: Option<u64>,
    pub name: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Login<'a> {
    pub auid: Option<u64>,
    pub name: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Workload<'a> {
    pub kind: Option<Text<'a>>,
    pub container: Option<Container<'a>>,
    pub pod: Option<Pod<'a>>,
    pub unit: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Container<'a> {
    pub id: Option<Text<'a>>,
    pub name: Option<Text<'a>>,
    pub image: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Pod<'a> {
    pub name: Option<Text<'a>>,
    pub namespace: Option<Text<'a>>,
    pub service_account: Option<Text<'a>>,
    pub owner: Option<Owner<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Owner<'a> {
    pub kind: Option<Text<'a>>,
    pub name: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Identity<'a> {
    pub spiffe_ids: Option<Vec<Text<'a>>>,
}

/// A lineage entry (ancestor) or a `process` record.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Ancestor<'a> {
    pub exec_id: Option<Text<'a>>,
    pub pid: Option<u64>,
    pub binary: Option<Text<'a>>,
    pub argv: Option<Vec<Text<'a>>>,
    /// Present on an ancestor only where it differs from the executor's (a
    /// container's boundary); its content does not matter here.
    pub workload: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Action<'a> {
    pub destination: Option<Destination<'a>>,
    /// A connect summary (`--aggregate-connects`): how many connects.
    pub aggregate: Option<Aggregate>,
    /// An exit's resource usage.
    pub usage: Option<Usage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Destination<'a> {
    pub ip: Option<Text<'a>>,
    pub port: Option<u64>,
    /// The DNS name it was resolved from, when known.
    pub name: Option<Text<'a>>,
    pub service: Option<NamespacedName<'a>>,
    pub pod: Option<NamespacedName<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub(crate) struct NamespacedName<'a> {
    pub namespace: Option<Text<'a>>,
    pub name: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Aggregate {
    pub count: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Usage {
    pub cpu_user_ns: Option<u64>,
    pub cpu_system_ns: Option<u64>,
}

impl<'a> Event<'a> {
    pub(crate) fn parse(line: &'a [u8]) -> serde_json::Result<Event<'a>> {
        serde_json::from_slice(line)
    }
}
