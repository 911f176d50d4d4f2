//! The registration file loader: TOML entries compiled into a `Registry`,
//! and the errors that name the file, the entry and what is wrong with it.

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

use super::id::{IdProblem, check_id};
use super::selector::{Selector, SelectorProblem};
use super::{Entry, Registry, SpiffeError};

/// Names a registration entry in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryLabel {
    /// 1-based, in file order.
    pub index: usize,
    pub line: usize,
    pub spiffe_id: Option<String>,
}

impl fmt::Display for EntryLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.spiffe_id {
            Some(id) => write!(
                f,
                "entry {} (line {}, spiffe_id {id:?})",
                self.index, self.line
            ),
            None => write!(
                f,
                "entry {} (line {}, without spiffe_id)",
                self.index, self.line
            ),
        }
    }
}

/// What is wrong with a registration entry.
#[derive(Debug, Error)]
pub enum EntryProblem {
    /// Unknown key, missing spiffe_id, wrong value type: serde's message.
    #[error("{0}")]
    Shape(String),
    #[error("invalid spiffe_id: {0}")]
    SpiffeId(IdProblem),
    #[error("its trust domain {found:?} is not the tracer's --trust-domain {configured:?}")]
    ForeignTrustDomain { found: String, configured: String },
    #[error("it has no selectors (an entry must name at least one, or it would match everything)")]
    NoSelectors,
    #[error("selector {selector:?}: {problem}")]
    Selector {
        selector: String,
        problem: SelectorProblem,
    },
}

/// A registration entry that does not pass.
#[derive(Debug, Error)]
#[error("{origin}: {entry}: {problem}")]
pub struct EntryError {
    pub origin: String,
    pub entry: EntryLabel,
    pub problem: EntryProblem,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    trust_domain: Option<String>,
    // Tables first, so that an entry's errors can name its index and line.
    #[serde(default)]
    entry: Vec<toml::Spanned<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    spiffe_id: String,
    // Missing is reported as "no selectors", clearer than "missing field".
    #[serde(default)]
    selectors: Vec<String>,
}

impl Registry {
    /// Parses a registration file's text; `origin` names it in errors.
    pub fn from_toml(
        trust_domain: &str,
        default_k8s: bool,
        text: &str,
        origin: &str,
    ) -> Result<Registry, SpiffeError> {
        let mut registry = Registry::new(trust_domain, default_k8s)?;
        let raw: RawFile = toml::from_str(text).map_err(|source| SpiffeError::Toml {
            origin: origin.to_owned(),
            source: Box::new(source),
        })?;
        if let Some(file_td) = raw.trust_domain
            && file_td != trust_domain
        {
            return Err(SpiffeError::TrustDomainMismatch {
                origin: origin.to_owned(),
                file: file_td,
                configured: trust_domain.to_owned(),
            });
        }
        registry.entries.reserve(raw.entry.len());
        for (i, spanned) in raw.entry.into_iter().enumerate() {
            let index = i + 1;
            let line = line_of(text, spanned.span().start);
            let table = spanned.into_inner();
            let spiffe_id = table
                .get("spiffe_id")
                .and_then(toml::Value::as_str)
                .map(str::to_owned);
            let entry = compile_entry(table, index, trust_domain).map_err(|problem| {
                SpiffeError::Entry(Box::new(EntryError {
                    origin: origin.to_owned(),
                    entry: EntryLabel {
                        index,
                        line,
                        spiffe_id,
                    },
                    problem,
                }))
            })?;
            registry.entries.push(entry);
        }
        Ok(registry)
    }

    /// Reads and parses a registration file.
    pub fn load(
        trust_domain: &str,
        default_k8s: bool,
        path: &Path,
    ) -> Result<Registry, SpiffeError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpiffeError::Read {
            path: path.to_owned(),
            source,
        })?;
        Registry::from_toml(
            trust_domain,
            default_k8s,
            &text,
            &path.display().to_string(),
        )
    }
}

fn compile_entry(
    table: toml::Table,
    index: usize,
    trust_domain: &str,
) -> Result<Entry, EntryProblem> {
    let raw: RawEntry = toml::Value::Table(table)
        .try_into()
        // serde's message may span lines ("...\nin `selectors`"); keep it on one.
        .map_err(|err| EntryProblem::Shape(err.to_string().trim_end().replace('\n', " ")))?;
    let id_td = check_id(&raw.spiffe_id).map_err(EntryProblem::SpiffeId)?;
    if id_td != trust_domain {
        return Err(EntryProblem::ForeignTrustDomain {
            found: id_td.to_owned(),
            configured: trust_domain.to_owned(),
        });
    }
    if raw.selectors.is_empty() {
        return Err(EntryProblem::NoSelectors);
    }
    let mut selectors = raw
        .selectors
        .iter()
        .map(|s| {
            Selector::parse(s).map_err(|problem| EntryProblem::Selector {
                selector: s.clone(),
                problem,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Stable: the rest keep file order.
    selectors.sort_by_key(|s| matches!(s, Selector::CgroupPath(_)));
    Ok(Entry {
        spiffe_id: raw.spiffe_id,
        source: format!("entry:{index}"),
        selectors,
    })
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::identity::spiffe::{Resolution, WorkloadFacts};

    const TD: &str = "example.org";
    const EXAMPLE: &str = include_str!("../../../../deploy/registrations.example.toml");

    fn registry(text: &str) -> Registry {
        match Registry::from_toml(TD, true, text, "test.toml") {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    fn load_err(text: &str) -> String {
        match Registry::from_toml(TD, true, text, "test.toml") {
            Ok(r) => panic!("accepted, {} entries", r.len()),
            Err(e) => chain(&e),
        }
    }

    /// The message and its sources, as `{:#}` prints them.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut msg = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        msg
    }

    fn ids(r: &Resolution) -> Vec<&str> {
        r.spiffe_ids.iter().map(String::as_str).collect()
    }

    #[test]
    fn toml_errors_name_the_entry() {
        let first =
            "[[entry]]\nspiffe_id = \"spiffe://example.org/ok\"\nselectors = [\"k8s:ns:a\"]\n\n";
        // (second entry's body, what the message must also say)
        let cases = [
            (
                "spiffe_id = \"spiffe://example.org/b\"\nselectors = [\"k8s:ns:a\"]\nselector = [\"x\"]",
                "unknown field `selector`",
            ),
            ("selectors = [\"k8s:ns:a\"]", "missing field `spiffe_id`"),
            (
                "spiffe_id = \"spiffe://example.org/b\"\nselectors = []",
                "no selectors",
            ),
            ("spiffe_id = \"spiffe://example.org/b\"", "no selectors"),
            (
                "spiffe_id = \"spiffe://example.org/b\"\nselectors = [\"k8s:ns:a\", \"kube:ns:a\"]",
                "selector \"kube:ns:a\": unknown selector type \"kube\"",
            ),
            (
                "spiffe_id = \"spiffe://example.org/b\"\nselectors = [\"k8s:namespace:a\"]",
                "selector \"k8s:namespace:a\": unknown k8s selector \"namespace\"",
            ),
            (
                "spiffe_id = \"spiffe://example.org/b/\"\nselectors = [\"k8s:ns:a\"]",
                "invalid spiffe_id: the path must not end with '/'",
            ),
            (
                "spiffe_id = \"spiffe://other.org/b\"\nselectors = [\"k8s:ns:a\"]",
                "trust domain \"other.org\" is not the tracer's --trust-domain \"example.org\"",
            ),
            (
                "spiffe_id = \"spiffe://example.org/b\"\nselectors = \"k8s:ns:a\"",
                "expected a sequence",
            ),
        ];
        for (body, what) in cases {
            let text = format!("{first}[[entry]]\n{body}\n");
            let msg = load_err(&text);
            assert!(msg.starts_with("test.toml: entry 2 (line 5, "), "{msg}");
            assert!(msg.contains(what), "{msg}");
            if body.starts_with("spiffe_id") {
                let id = body.split('"').nth(1).unwrap();
                assert!(msg.contains(&format!("spiffe_id {id:?}")), "{msg}");
            } else {
                assert!(msg.contains("without spiffe_id"), "{msg}");
            }
        }
    }

    #[test]
    fn toml_file_level_errors() {
        let msg = load_err("[[entries]]\nspiffe_id = \"spiffe://example.org/a\"\n");
        assert!(msg.starts_with("test.toml: "), "{msg}");
        // Once: the source is not repeated in the message above it.
        assert_eq!(msg.matches("unknown field `entries`").count(), 1, "{msg}");
        let msg = load_err("trust_domain = \"other.org\"\n");
        assert!(
            msg.contains("\"other.org\"") && msg.contains("\"example.org\""),
            "{msg}"
        );
        let msg = load_err("[[entry]\n");
        assert!(msg.contains("line 1"), "{msg}");
        // An empty file is a registry without entries.
        let r = registry("");
        assert!(r.is_empty());
        assert_eq!(r.trust_domain(), TD);
        let r = registry("trust_domain = \"example.org\"\n");
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn load_reads_files() {
        let dir = std::env::temp_dir().join(format!("spiffe-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("registrations.toml");
        std::fs::write(&path, EXAMPLE).unwrap();
        let r = Registry::load(TD, false, &path).unwrap();
        assert!(!r.default_k8s());
        assert_eq!(r.len(), registry(EXAMPLE).len());
        std::fs::write(&path, "[[entry]]\nspiffe_id = \"spiffe://example.org/x\"\n").unwrap();
        let msg = Registry::load(TD, false, &path).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("{}: entry 1", path.display())),
            "{msg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let msg = chain(&Registry::load(TD, false, &path).unwrap_err());
        assert!(msg.contains("registrations.toml"), "{msg}");
        assert_eq!(msg.matches("(os error 2)").count(), 1, "{msg}");
    }

    #[test]
    fn example_file_parses() {
        let r = registry(EXAMPLE);
        assert_eq!(r.len(), 6);
        let labels = BTreeMap::from([("app.kubernetes.io/name".to_owned(), "web".to_owned())]);
        let web = WorkloadFacts {
            namespace: Some("shop"),
            service_account: Some("web"),
            pod_labels: Some(&labels),
            cgroup_path: Some(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-ab12.scope",
            ),
            ..Default::default()
        };
        let got = r.resolve(&web);
        assert_eq!(
            ids(&got),
            [
                "spiffe://example.org/shop/web",
                "spiffe://example.org/k8s/burstable"
            ]
        );
        assert_eq!(got.sources, ["entry:2", "entry:6"]);
    }
}
