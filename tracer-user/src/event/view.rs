//! A typed view of a written line (an event, a loss record, a notice, a
//! checkpoint...), for the commands that read lines back (`tail`, `verify`)
//! and for the chain. Only the members they read are named; others, and
//! members a newer version adds, are skipped. Strings are borrowed from the
//! line unless they hold escapes. A member of another type than expected
//! reads as absent (see [`super::lenient`]).
//!
//! The line itself stays the record: the chain hashes its bytes, never this.
use std::{borrow::Cow, collections::BTreeMap};

use serde::Deserialize;

use super::lenient::{self, Field, Present, lenient, object_field};

pub type Text<'a> = Cow<'a, str>;

/// A list as written: `None` where an element is of another type.
pub type List<'a> = Vec<Option<Text<'a>>>;

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Line<'a> {
    #[serde(deserialize_with = "lenient")]
    pub kind: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub time: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub executor: Option<Executor<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub action: Option<Action<'a>>,
    /// A loss record's counts by cause.
    #[serde(deserialize_with = "lenient")]
    pub lost: Option<BTreeMap<Text<'a>, Option<u64>>>,
    /// A loss record's declared gap (present even when not an object).
    #[serde(deserialize_with = "lenient")]
    pub gap: Option<Present<Gap<'a>>>,
    /// A `missed` notice's count.
    #[serde(deserialize_with = "lenient")]
    pub missed: Option<u64>,
    /// Why a `refused` notice turned the reader away.
    #[serde(deserialize_with = "lenient")]
    pub error: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub checkpoint: Option<Checkpoint<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub segment: Option<Segment<'a>>,
    /// The chain link of our own lines (present even when not an object).
    #[serde(deserialize_with = "lenient")]
    pub chain: Option<Present<Link<'a>>>,
    /// OCSF lines keep the link here.
    #[serde(deserialize_with = "lenient")]
    pub unmapped: Option<Unmapped<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Executor<'a> {
    #[serde(deserialize_with = "lenient")]
    pub exec_id: Option<Text<'a>>,
    /// `--lineage ids`: described by an earlier line of the file.
    #[serde(rename = "ref", deserialize_with = "lenient")]
    pub by_ref: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    pub pid: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub binary: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub user: Option<User<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub authority: Option<Authority>,
    #[serde(deserialize_with = "lenient")]
    pub login: Option<Login<'a>>,
    /// `executor.requestor`: its string members (system, display, fields,
    /// claim, inherited_from); others read as absent.
    #[serde(deserialize_with = "lenient")]
    pub requestor: Option<BTreeMap<Text<'a>, Option<Text<'a>>>>,
    #[serde(deserialize_with = "lenient")]
    pub workload: Option<Workload<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub identity: Option<Identity<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct User<'a> {
    #[serde(deserialize_with = "lenient")]
    pub uid: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub name: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Login<'a> {
    #[serde(deserialize_with = "lenient")]
    pub auid: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub name: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Workload<'a> {
    #[serde(deserialize_with = "lenient")]
    pub pod: Option<Pod<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub container: Option<Container<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub unit: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Pod<'a> {
    #[serde(deserialize_with = "lenient")]
    pub uid: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub name: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub namespace: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Container<'a> {
    #[serde(deserialize_with = "lenient")]
    pub id: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub name: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Identity<'a> {
    #[serde(deserialize_with = "lenient")]
    pub spiffe_ids: Option<List<'a>>,
}

/// What any kind of event did: each kind fills its own members.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Action<'a> {
    #[serde(deserialize_with = "lenient")]
    pub binary: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub argv: Option<List<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub argv_truncated: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    pub outcome: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub error: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub protocol: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub destination: Option<Endpoint<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub child_pid: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub exit_code: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub signal: Option<u64>,
    /// An exit's or a usage sample's resource use.
    #[serde(deserialize_with = "lenient")]
    pub usage: Option<UsageView>,
    /// A connect summary (`--aggregate-connects`).
    #[serde(deserialize_with = "lenient")]
    pub aggregate: Option<Aggregate<'a>>,
    /// The misses of a PATH search folded into an exec (`--exec-attempts fold`).
    #[serde(deserialize_with = "lenient")]
    pub path_search: Option<Vec<Option<PathAttempt<'a>>>>,
}

/// One entry of an exec's `action.path_search`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct PathAttempt<'a> {
    #[serde(deserialize_with = "lenient")]
    pub path: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub error: Option<Text<'a>>,
}

/// `action.usage`, the parts `tracer tail` shows.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UsageView {
    #[serde(deserialize_with = "lenient")]
    pub cpu_user_ns: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub cpu_system_ns: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub peak_rss_kib: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub lifetime_ns: Option<u64>,
}

/// `action.aggregate` of a connect summary.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Aggregate<'a> {
    #[serde(deserialize_with = "lenient")]
    pub count: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub window_s: Option<u64>,
    /// Connects by outcome, in outcome-name order.
    #[serde(deserialize_with = "lenient")]
    pub outcomes: Option<BTreeMap<Text<'a>, Option<u64>>>,
    /// Failures by error name.
    #[serde(deserialize_with = "lenient")]
    pub errors: Option<BTreeMap<Text<'a>, Option<u64>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Endpoint<'a> {
    #[serde(deserialize_with = "lenient")]
    pub ip: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub port: Option<u64>,
    /// A destination's name from DNS, and its CNAME target.
    #[serde(deserialize_with = "lenient")]
    pub name: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub cname: Option<Text<'a>>,
    /// `destination.service` (a Kubernetes Service).
    #[serde(deserialize_with = "lenient")]
    pub service: Option<KubeRef<'a>>,
    /// `destination.pod`.
    #[serde(deserialize_with = "lenient")]
    pub pod: Option<KubeRef<'a>>,
}

/// A Service or pod a destination belongs to.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct KubeRef<'a> {
    #[serde(deserialize_with = "lenient")]
    pub namespace: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub name: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub port_name: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub spiffe_id: Option<Text<'a>>,
}

/// A link of the hash chain (`chain`), or the checkpoint a segment names.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Link<'a> {
    #[serde(deserialize_with = "lenient")]
    pub seq: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub prev: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub hash: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Unmapped<'a> {
    #[serde(deserialize_with = "lenient")]
    pub chain: Option<Present<Link<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Gap<'a> {
    #[serde(deserialize_with = "lenient")]
    pub records: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub after_seq: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub after_hash: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Checkpoint<'a> {
    #[serde(deserialize_with = "lenient")]
    pub seq: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub hash: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub signature: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Segment<'a> {
    #[serde(deserialize_with = "lenient")]
    pub reason: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub detail: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub last_checkpoint: Option<Link<'a>>,
    #[serde(deserialize_with = "lenient")]
    pub unvouched: Option<Unvouched>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Unvouched {
    #[serde(deserialize_with = "lenient")]
    pub first_seq: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub last_seq: Option<u64>,
}

object_field!(
    Line, Executor, User, Login, Workload, Pod, Container, Identity, Action, Aggregate, Endpoint,
    Link, Unmapped, Gap, Checkpoint, Segment,
);
object_field!(KubeRef, PathAttempt);

/// `executor.authority`: what `tail` marks of it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Authority {
    #[serde(deserialize_with = "lenient")]
    pub capabilities: Option<Capabilities>,
    #[serde(deserialize_with = "lenient")]
    pub user_namespace: Option<UserNamespace>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    #[serde(deserialize_with = "lenient")]
    pub effective: Option<CapSet>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserNamespace {
    #[serde(deserialize_with = "lenient")]
    pub host: Option<bool>,
}

/// A capability set as written: `"all"`, or a list (only its length is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapSet {
    All,
    /// `{"all_except": [...]}`: that many of the kernel's capabilities missing.
    AllExcept(usize),
    Count(usize),
}

impl<'de> Field<'de> for CapSet {
    fn from_str(v: Cow<'de, str>) -> Option<Self> {
        (v == "all").then_some(CapSet::All)
    }
    fn from_seq<A: serde::de::SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut n = 0;
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(Some(CapSet::Count(n)))
    }
    fn from_map<A: serde::de::MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut missing = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "all_except" {
                missing = Some(map.next_value::<Vec<serde::de::IgnoredAny>>()?.len());
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(missing.map(CapSet::AllExcept))
    }
}

impl<'de> Field<'de> for Authority {
    fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        lenient::object(map)
    }
}

impl<'de> Field<'de> for UsageView {
    fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        lenient::object(map)
    }
}

impl<'de> Field<'de> for Capabilities {
    fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        lenient::object(map)
    }
}

impl<'de> Field<'de> for UserNamespace {
    fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        lenient::object(map)
    }
}

impl<'de> Field<'de> for Unvouched {
    fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        lenient::object(map)
    }
}

impl<'a> Line<'a> {
    /// Read one line (without its newline) as `serde_json::Value` would:
    /// refused where it refuses, with its error; JSON that is no object reads
    /// as having no members.
    pub fn parse(text: &'a [u8]) -> serde_json::Result<Line<'a>> {
        let mut de = serde_json::Deserializer::from_slice(text);
        let line = lenient::<_, Line>(&mut de).and_then(|l| {
            de.end()?;
            Ok(l.unwrap_or_default())
        });
        // Skipped members are only checked for syntax: a line that may hold
        // what only a full parse refuses is parsed in full too.
        if line.is_ok() && std::str::from_utf8(text).is_ok() && !needs_full_parse(text) {
            return line;
        }
        let value = serde_json::from_slice::<serde_json::Value>(text)?;
        match line {
            Ok(line) => Ok(line),
            // Only the view refused it: a repeated member, which Value reads as
            // its last. Read from the Value (strings then owned).
            Err(_) => Ok(lenient::<_, Line>(value)?.unwrap_or_default()),
        }
    }

    pub fn kind(&self) -> Option<&str> {
        self.kind.as_deref()
    }

    /// Where the chain link is: `chain`, or `unmapped.chain` in OCSF. A
    /// `chain` member that is no object hides `unmapped.chain`.
    pub fn link(&self) -> Option<&Link<'a>> {
        let chain = match &self.chain {
            Some(c) => c,
            None => self.unmapped.as_ref()?.chain.as_ref()?,
        };
        chain.0.as_ref()
    }
}

/// Whether a line may hold what `Value` refuses but a skip does not check: a
/// lone surrogate (taken as: any `\uD800`..`\uDFFF`, or text that looks like
/// one after a `\\`), or nesting deeper than its 128 levels (taken as: 128
/// or more `[` and `{` in all). Ours hold neither.
fn needs_full_parse(text: &[u8]) -> bool {
    let mut open = 0usize;
    for (i, &b) in text.iter().enumerate() {
        match b {
            b'[' | b'{' => open += 1,
            b'\\' => {
                if let [
                    b'u',
                    b'd' | b'D',
                    b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F',
                    ..,
                ] = text[i + 1..]
                {
                    return true;
                }
            }
            _ => {}
        }
    }
    open >= 128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_names_and_skips_the_rest() {
        let text = br#"{"kind":"exec","new":{"a":[1,2]},"executor":{"pid":42,"binary":"/bin/\"x\"","user":{"uid":0,"name":null}},"action":{"argv":["a",1,"b"],"argv_truncated":true}}"#;
        let l = Line::parse(text).unwrap();
        assert_eq!(l.kind(), Some("exec"));
        let ex = l.executor.as_ref().unwrap();
        assert_eq!(ex.pid, Some(42));
        // Escaped: owned; plain: borrowed.
        assert_eq!(ex.binary.as_deref(), Some("/bin/\"x\""));
        assert!(matches!(ex.binary, Some(Cow::Owned(_))));
        assert!(matches!(l.kind, Some(Cow::Borrowed(_))));
        let u = ex.user.as_ref().unwrap();
        assert_eq!((u.uid, u.name.as_deref()), (Some(0), None));
        let act = l.action.as_ref().unwrap();
        let argv: Vec<Option<&str>> = act.argv.iter().flatten().map(|a| a.as_deref()).collect();
        assert_eq!(argv, [Some("a"), None, Some("b")]);
        assert_eq!(act.argv_truncated, Some(true));
    }

    #[test]
    fn a_member_of_another_type_reads_as_absent() {
        let text = br#"{"kind":5,"executor":"x","action":{"destination":[1],"child_pid":-1,"signal":1.5,"argv":{"a":1}},"lost":{"b":"x","a":2,"a":3}}"#;
        let l = Line::parse(text).unwrap();
        assert!(l.kind.is_none() && l.executor.is_none());
        let act = l.action.as_ref().unwrap();
        assert!(act.destination.is_none() && act.argv.is_none());
        assert_eq!((act.child_pid, act.signal), (None, None));
        let lost = l.lost.unwrap();
        assert_eq!(lost.get("a"), Some(&Some(3)), "the last of a repeated name");
        assert_eq!(lost.get("b"), Some(&None));
        // JSON that is no object: no members.
        assert!(Line::parse(b"[1,2]").unwrap().kind.is_none());
        assert!(Line::parse(b"null").unwrap().kind.is_none());
    }

    #[test]
    fn links_and_presence() {
        let h = "ab".repeat(32);
        let ours = format!(r#"{{"kind":"exec","chain":{{"seq":3,"prev":"{h}","hash":"{h}"}}}}"#);
        let l = Line::parse(ours.as_bytes()).unwrap();
        assert_eq!(l.link().and_then(|c| c.seq), Some(3));
        let ocsf = format!(r#"{{"unmapped":{{"chain":{{"seq":4,"prev":"{h}","hash":"{h}"}}}}}}"#);
        let l = Line::parse(ocsf.as_bytes()).unwrap();
        assert_eq!(l.link().and_then(|c| c.seq), Some(4));
        // A `chain` that is there but no object hides `unmapped.chain`.
        let hidden = format!(r#"{{"chain":null,"unmapped":{{"chain":{{"seq":4,"prev":"{h}"}}}}}}"#);
        assert!(Line::parse(hidden.as_bytes()).unwrap().link().is_none());
        let l = Line::parse(br#"{"kind":"loss","gap":null}"#).unwrap();
        assert!(matches!(l.gap, Some(Present(None))));
        assert!(Line::parse(br#"{"kind":"loss"}"#).unwrap().gap.is_none());
    }

    /// Refused exactly where `Value` refuses, with the same message.
    #[test]
    fn refuses_what_value_refuses() {
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(200), "]".repeat(200));
        for text in [
            deep.as_bytes(),
            &b"{\"kind\":"[..],
            b"{\"x\":\"\\ud800\"}",
            b"{\"x\":\"\xff\"}",
            b"{\"x\":1} x",
            b"{\"x\":\"a\x01\"}",
            b"",
        ] {
            let want = serde_json::from_slice::<serde_json::Value>(text).unwrap_err();
            let got = Line::parse(text).unwrap_err();
            assert_eq!(got.to_string(), want.to_string(), "{text:?}");
        }
        // A repeated member reads as its last, as in a Value.
        let l = Line::parse(br#"{"kind":"exec","kind":"fork","action":{"child_pid":7}}"#).unwrap();
        assert_eq!(l.kind(), Some("fork"));
        assert_eq!(l.action.and_then(|a| a.child_pid), Some(7));
        // A pair of surrogates is one character: fine.
        assert!(Line::parse(b"{\"x\":\"\\ud83d\\ude00\"}").is_ok());
    }
}
