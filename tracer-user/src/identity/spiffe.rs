//! SPIFFE IDs for executors, SPIRE-style.
//!
//! A registration file lists entries, each a SPIFFE ID plus selectors; an
//! entry applies when all its selectors hold for the workload. Kubernetes
//! pods that no entry matches can get `spiffe://<td>/ns/<ns>/sa/<sa>`.
//! The file format and every selector are described in docs/registrations.md.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

const SCHEME: &str = "spiffe://";
/// SPIFFE-ID standard §2.3: the whole URI.
const MAX_ID_LEN: usize = 2048;
/// SPIFFE-ID standard §2.3: RFC 3986's limit on the host.
const MAX_TRUST_DOMAIN_LEN: usize = 255;
const SELECTOR_TYPES: &str = "k8s, unix, systemd, cgroup";
const K8S_NAMES: &str = "ns, sa, pod-label, pod-name, pod-uid, container-name, container-image";
const UNIX_NAMES: &str = "uid, user, gid, path";
/// systemd.unit(5) types; a unit name without one of these is a typo.
const UNIT_SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".target",
    ".path",
    ".timer",
    ".slice",
    ".scope",
];

/// What is known about an executor, from which its selectors derive.
#[derive(Debug, Default, Clone)]
pub struct WorkloadFacts<'a> {
    pub namespace: Option<&'a str>,
    pub service_account: Option<&'a str>,
    pub pod_name: Option<&'a str>,
    pub pod_uid: Option<&'a str>,
    pub pod_labels: Option<&'a BTreeMap<String, String>>,
    pub container_name: Option<&'a str>,
    pub container_image: Option<&'a str>,
    pub uid: Option<u32>,
    pub user: Option<&'a str>,
    pub gid: Option<u32>,
    /// Executable.
    pub path: Option<&'a str>,
    /// A unit of the host's system manager.
    pub unit: Option<&'a str>,
    /// `(uid, unit)`: a unit of uid's user manager (`user@<uid>.service`).
    pub user_unit: Option<(u32, &'a str)>,
    pub cgroup_path: Option<&'a str>,
}

/// A pod's label selectors (`k8s:pod-label:<key>:<value>`), sorted.
pub fn label_selectors(labels: &BTreeMap<String, String>) -> Vec<String> {
    // Keys are unique and sorted, and the prefix is the same: already in order.
    labels
        .iter()
        .map(|(k, v)| format!("k8s:pod-label:{k}:{v}"))
        .collect()
}

/// The workload's selectors as strings ("k8s:ns:ci", ...), sorted, for the
/// event. Globs have no place here: the concrete "cgroup:path:<path>" is
/// included instead.
pub fn selectors(f: &WorkloadFacts<'_>) -> Vec<String> {
    fn add(out: &mut Vec<String>, prefix: &str, value: Option<impl fmt::Display>) {
        if let Some(value) = value {
            out.push(format!("{prefix}{value}"));
        }
    }
    let mut out = Vec::new();
    add(&mut out, "k8s:ns:", f.namespace);
    add(&mut out, "k8s:sa:", f.service_account);
    add(&mut out, "k8s:pod-name:", f.pod_name);
    add(&mut out, "k8s:pod-uid:", f.pod_uid);
    out.extend(f.pod_labels.map(label_selectors).unwrap_or_default());
    add(&mut out, "k8s:container-name:", f.container_name);
    add(&mut out, "k8s:container-image:", f.container_image);
    add(&mut out, "unix:uid:", f.uid);
    add(&mut out, "unix:user:", f.user);
    add(&mut out, "unix:gid:", f.gid);
    add(&mut out, "unix:path:", f.path);
    add(&mut out, "systemd:id:", f.unit);
    if let Some((uid, unit)) = f.user_unit {
        out.push(format!("systemd:user:{uid}:id:{unit}"));
    }
    add(&mut out, "cgroup:path:", f.cgroup_path);
    out.sort();
    out.dedup();
    out
}

/// What is wrong with a SPIFFE ID or trust domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum IdProblem {
    #[error("it is empty")]
    Empty,
    #[error("it is {0} bytes long, over the limit of {MAX_ID_LEN}")]
    TooLong(usize),
    #[error("it must start with \"spiffe://\" (lowercase)")]
    Scheme,
    #[error("the trust domain is missing")]
    MissingTrustDomain,
    #[error("the trust domain is {0} bytes long, over the limit of {MAX_TRUST_DOMAIN_LEN}")]
    TrustDomainTooLong(usize),
    #[error("the trust domain must not have a port")]
    Port,
    #[error("the trust domain must not have user info ('@')")]
    UserInfo,
    #[error("the trust domain must be lowercase")]
    Uppercase,
    #[error(
        "the trust domain may hold only lowercase letters, digits, '.', '-' and '_', not {0:?}"
    )]
    TrustDomainChar(char),
    #[error("give the bare trust domain name, without \"spiffe://\"")]
    TrustDomainWithScheme,
    #[error("it must not have a query ('?')")]
    Query,
    #[error("it must not have a fragment ('#')")]
    Fragment,
    #[error("the path has an empty segment ('//')")]
    EmptySegment,
    #[error("the path has a '.' or '..' segment")]
    DotSegment,
    #[error("the path must not end with '/'")]
    TrailingSlash,
    #[error("path segments may hold only letters, digits, '.', '-' and '_', not {0:?}")]
    PathChar(char),
}

/// What is wrong with a cgroup path glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum GlobProblem {
    #[error("it must start with '/' or '*' (cgroup paths are absolute)")]
    NotAbsolute,
    #[error("'***' is ambiguous: use '*' within a segment or '**' across segments")]
    TripleStar,
}

/// What is wrong with a selector.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectorProblem {
    #[error("expected <type>:<name>:<value>, e.g. \"k8s:ns:ci\"")]
    Shape,
    #[error("unknown selector type {0:?} (known: {SELECTOR_TYPES})")]
    UnknownType(String),
    #[error("unknown {ty} selector {name:?} (known: {known})")]
    UnknownName {
        ty: &'static str,
        name: String,
        known: &'static str,
    },
    #[error("the value is empty")]
    EmptyValue,
    #[error("the value has leading or trailing whitespace")]
    Whitespace,
    #[error("{0:?} is not a number from 0 to {max}", max = u32::MAX)]
    NotANumber(String),
    #[error("{value:?} is not a valid Kubernetes {what}")]
    K8sName { what: &'static str, value: String },
    #[error("expected k8s:pod-label:<key>:<value>")]
    LabelShape,
    #[error("{0:?} is not a valid Kubernetes label key")]
    LabelKey(String),
    #[error("{0:?} is not a valid Kubernetes label value")]
    LabelValue(String),
    #[error("{0:?} is not an absolute path")]
    RelativePath(String),
    #[error("{0:?} is not a systemd unit name (it needs a type suffix such as .service)")]
    Unit(String),
    #[error("expected systemd:user:<uid>:id:<unit>, e.g. \"systemd:user:1000:id:backup.service\"")]
    UserUnitShape,
    #[error("glob {pattern:?}: {problem}")]
    Glob {
        pattern: String,
        problem: GlobProblem,
    },
}

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

#[derive(Debug, Error)]
pub enum SpiffeError {
    #[error("invalid trust domain {trust_domain:?}: {problem}")]
    TrustDomain {
        trust_domain: String,
        problem: IdProblem,
    },
    #[error("invalid SPIFFE ID {id:?}: {problem}")]
    SpiffeId { id: String, problem: IdProblem },
    #[error("reading registrations {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// TOML syntax, or an unknown top-level key.
    #[error("{origin}: {}", source.to_string().trim_end())]
    Toml {
        origin: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error(
        "{origin}: trust_domain {file:?} differs from the tracer's --trust-domain {configured:?}"
    )]
    TrustDomainMismatch {
        origin: String,
        file: String,
        configured: String,
    },
    /// Boxed: by far the largest variant.
    #[error(transparent)]
    Entry(Box<EntryError>),
}

/// A registration entry that does not pass.
#[derive(Debug, Error)]
#[error("{origin}: {entry}: {problem}")]
pub struct EntryError {
    pub origin: String,
    pub entry: EntryLabel,
    pub problem: EntryProblem,
}

/// Checks `id` against the SPIFFE-ID standard.
pub fn validate_spiffe_id(id: &str) -> Result<(), SpiffeError> {
    check_id(id)
        .map(drop)
        .map_err(|problem| SpiffeError::SpiffeId {
            id: id.to_owned(),
            problem,
        })
}

/// Checks a bare trust domain name (no scheme) against the SPIFFE-ID standard.
pub fn validate_trust_domain(td: &str) -> Result<(), SpiffeError> {
    let checked = if td.contains("://") {
        Err(IdProblem::TrustDomainWithScheme)
    } else {
        check_trust_domain(td)
    };
    checked.map_err(|problem| SpiffeError::TrustDomain {
        trust_domain: td.to_owned(),
        problem,
    })
}

/// Returns the ID's trust domain.
fn check_id(id: &str) -> Result<&str, IdProblem> {
    if id.is_empty() {
        return Err(IdProblem::Empty);
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdProblem::TooLong(id.len()));
    }
    let rest = id.strip_prefix(SCHEME).ok_or(IdProblem::Scheme)?;
    // Checked before splitting so that "spiffe://td?x" is reported as a query.
    if rest.contains('?') {
        return Err(IdProblem::Query);
    }
    if rest.contains('#') {
        return Err(IdProblem::Fragment);
    }
    let (td, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    check_trust_domain(td)?;
    if let Some(path) = path.strip_prefix('/') {
        let mut segments = path.split('/').peekable();
        while let Some(segment) = segments.next() {
            if segment.is_empty() {
                return Err(if segments.peek().is_some() {
                    IdProblem::EmptySegment
                } else {
                    IdProblem::TrailingSlash
                });
            }
            if segment == "." || segment == ".." {
                return Err(IdProblem::DotSegment);
            }
            if let Some(c) = segment.chars().find(|&c| !is_path_char(c)) {
                return Err(IdProblem::PathChar(c));
            }
        }
    }
    Ok(td)
}

fn check_trust_domain(td: &str) -> Result<(), IdProblem> {
    if td.is_empty() {
        return Err(IdProblem::MissingTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(IdProblem::TrustDomainTooLong(td.len()));
    }
    if td.contains('@') {
        return Err(IdProblem::UserInfo);
    }
    if td.contains(':') {
        return Err(IdProblem::Port);
    }
    if td.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(IdProblem::Uppercase);
    }
    match td.chars().find(|&c| !is_trust_domain_char(c)) {
        Some(c) => Err(IdProblem::TrustDomainChar(c)),
        None => Ok(()),
    }
}

fn is_trust_domain_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// Whether `s` can stand as one SPIFFE ID path segment.
fn is_path_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && s.chars().all(is_path_char)
}

/// One precompiled selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    K8sNs(String),
    K8sSa(String),
    K8sPodLabel {
        key: String,
        value: String,
    },
    K8sPodName(String),
    K8sPodUid(String),
    K8sContainerName(String),
    K8sContainerImage(String),
    UnixUid(u32),
    UnixUser(String),
    UnixGid(u32),
    UnixPath(String),
    SystemdId(String),
    /// `systemd:user:<uid>:id:<unit>`: a unit of uid's user manager.
    SystemdUserId {
        uid: u32,
        unit: String,
    },
    CgroupPath(Glob),
}

impl Selector {
    /// Parses `type:name:value`. The value is everything after the second
    /// ':', so it may hold ':' itself (container images with a registry
    /// port); a pod label's key and value split at the value's last ':'.
    pub fn parse(s: &str) -> Result<Selector, SelectorProblem> {
        let mut parts = s.splitn(3, ':');
        let (Some(ty), Some(name), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SelectorProblem::Shape);
        };
        if value.is_empty() {
            return Err(SelectorProblem::EmptyValue);
        }
        if value.trim() != value {
            return Err(SelectorProblem::Whitespace);
        }
        let owned = || value.to_owned();
        let unknown = |ty, known| SelectorProblem::UnknownName {
            ty,
            name: name.to_owned(),
            known,
        };
        let k8s_name = |what, ok: bool| {
            if ok {
                Ok(value.to_owned())
            } else {
                Err(SelectorProblem::K8sName {
                    what,
                    value: value.to_owned(),
                })
            }
        };
        match ty {
            "k8s" => {
                match name {
                    "ns" => k8s_name("namespace name", is_dns_label(value)).map(Selector::K8sNs),
                    "sa" => k8s_name("service account name", is_dns_subdomain(value))
                        .map(Selector::K8sSa),
                    "pod-label" => parse_label(value),
                    "pod-name" => {
                        k8s_name("pod name", is_dns_subdomain(value)).map(Selector::K8sPodName)
                    }
                    "pod-uid" => Ok(Selector::K8sPodUid(owned())),
                    "container-name" => k8s_name("container name", is_dns_label(value))
                        .map(Selector::K8sContainerName),
                    "container-image" => Ok(Selector::K8sContainerImage(owned())),
                    _ => Err(unknown("k8s", K8S_NAMES)),
                }
            }
            "unix" => match name {
                "uid" => parse_id(value).map(Selector::UnixUid),
                "user" => Ok(Selector::UnixUser(owned())),
                "gid" => parse_id(value).map(Selector::UnixGid),
                "path" if value.starts_with('/') => Ok(Selector::UnixPath(owned())),
                "path" => Err(SelectorProblem::RelativePath(owned())),
                _ => Err(unknown("unix", UNIX_NAMES)),
            },
            "systemd" => match name {
                "id" if is_unit_name(value) => Ok(Selector::SystemdId(owned())),
                "id" => Err(SelectorProblem::Unit(owned())),
                "user" => parse_user_unit(value),
                _ => Err(unknown("systemd", "id, user")),
            },
            "cgroup" => match name {
                "path" => Glob::new(value)
                    .map(Selector::CgroupPath)
                    .map_err(|problem| SelectorProblem::Glob {
                        pattern: owned(),
                        problem,
                    }),
                _ => Err(unknown("cgroup", "path")),
            },
            _ => Err(SelectorProblem::UnknownType(ty.to_owned())),
        }
    }

    /// Whether the workload satisfies this selector; unknown facts never do.
    pub fn matches(&self, f: &WorkloadFacts<'_>) -> bool {
        fn is(fact: Option<&str>, want: &str) -> bool {
            fact == Some(want)
        }
        match self {
            Selector::K8sNs(v) => is(f.namespace, v),
            Selector::K8sSa(v) => is(f.service_account, v),
            Selector::K8sPodLabel { key, value } => f
                .pod_labels
                .and_then(|labels| labels.get(key))
                .is_some_and(|v| v == value),
            Selector::K8sPodName(v) => is(f.pod_name, v),
            Selector::K8sPodUid(v) => is(f.pod_uid, v),
            Selector::K8sContainerName(v) => is(f.container_name, v),
            Selector::K8sContainerImage(v) => is(f.container_image, v),
            Selector::UnixUid(n) => f.uid == Some(*n),
            Selector::UnixUser(v) => is(f.user, v),
            Selector::UnixGid(n) => f.gid == Some(*n),
            Selector::UnixPath(v) => is(f.path, v),
            Selector::SystemdId(v) => is(f.unit, v),
            Selector::SystemdUserId { uid, unit } => f.user_unit == Some((*uid, unit.as_str())),
            Selector::CgroupPath(glob) => f.cgroup_path.is_some_and(|p| glob.matches(p)),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::K8sNs(v) => write!(f, "k8s:ns:{v}"),
            Selector::K8sSa(v) => write!(f, "k8s:sa:{v}"),
            Selector::K8sPodLabel { key, value } => write!(f, "k8s:pod-label:{key}:{value}"),
            Selector::K8sPodName(v) => write!(f, "k8s:pod-name:{v}"),
            Selector::K8sPodUid(v) => write!(f, "k8s:pod-uid:{v}"),
            Selector::K8sContainerName(v) => write!(f, "k8s:container-name:{v}"),
            Selector::K8sContainerImage(v) => write!(f, "k8s:container-image:{v}"),
            Selector::UnixUid(n) => write!(f, "unix:uid:{n}"),
            Selector::UnixUser(v) => write!(f, "unix:user:{v}"),
            Selector::UnixGid(n) => write!(f, "unix:gid:{n}"),
            Selector::UnixPath(v) => write!(f, "unix:path:{v}"),
            Selector::SystemdId(v) => write!(f, "systemd:id:{v}"),
            Selector::SystemdUserId { uid, unit } => write!(f, "systemd:user:{uid}:id:{unit}"),
            Selector::CgroupPath(glob) => write!(f, "cgroup:path:{}", glob.pattern()),
        }
    }
}

/// `<uid>:id:<unit>`, the value of a `systemd:user:` selector.
fn parse_user_unit(value: &str) -> Result<Selector, SelectorProblem> {
    let (uid, rest) = value
        .split_once(':')
        .ok_or(SelectorProblem::UserUnitShape)?;
    let unit = rest
        .strip_prefix("id:")
        .ok_or(SelectorProblem::UserUnitShape)?;
    let uid = parse_id(uid)?;
    if !is_unit_name(unit) {
        return Err(SelectorProblem::Unit(unit.to_owned()));
    }
    Ok(Selector::SystemdUserId {
        uid,
        unit: unit.to_owned(),
    })
}

/// Kubernetes label keys and values hold no ':', so the last one separates them.
fn parse_label(kv: &str) -> Result<Selector, SelectorProblem> {
    let (key, value) = kv.rsplit_once(':').ok_or(SelectorProblem::LabelShape)?;
    if !is_label_key(key) {
        return Err(SelectorProblem::LabelKey(key.to_owned()));
    }
    // Kubernetes allows empty label values.
    if !value.is_empty() && !is_qualified_name(value) {
        return Err(SelectorProblem::LabelValue(value.to_owned()));
    }
    Ok(Selector::K8sPodLabel {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

fn parse_id(value: &str) -> Result<u32, SelectorProblem> {
    // u32's parser takes a leading '+', which no id as printed has.
    match value.parse() {
        Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(SelectorProblem::NotANumber(value.to_owned())),
    }
}

fn is_unit_name(s: &str) -> bool {
    UNIT_SUFFIXES
        .iter()
        .any(|suffix| s.strip_suffix(suffix).is_some_and(|stem| !stem.is_empty()))
        && !s.contains('/')
}

/// RFC 1123 label, as Kubernetes checks namespace and container names.
fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// RFC 1123 subdomain, as Kubernetes checks service account and pod names.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Kubernetes "qualified name": label values and the name part of label keys.
fn is_qualified_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// `[prefix/]name`, the prefix a DNS subdomain such as `app.kubernetes.io`.
fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_qualified_name(name),
        None => is_qualified_name(s),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Char(char),
    /// `?`: one character other than '/'.
    One,
    /// `*`: any run of characters other than '/'.
    Star,
    /// `**`: any run of characters.
    DoubleStar,
    /// Starts the optional `**/` of `/**/`, so that it also matches a lone '/'.
    OptDirs,
}

/// A glob over cgroup paths: `*` matches within one path segment, `**`
/// across segments (`/a/**/b` also matches `/a/b`), `?` one character other
/// than '/'. Everything else is literal.
///
/// Matching simulates the pattern as an NFA (one state per token), so it
/// takes time proportional to pattern × path whatever the stars, and
/// allocates nothing for patterns under 512 tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    toks: Vec<Tok>,
}

/// Bitset words on the stack for the two state sets; longer patterns allocate.
const GLOB_STACK_WORDS: usize = 16;

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, GlobProblem> {
        if !(pattern.starts_with('/') || pattern.starts_with('*')) {
            return Err(GlobProblem::NotAbsolute);
        }
        if pattern.contains("***") {
            return Err(GlobProblem::TripleStar);
        }
        let mut toks = Vec::with_capacity(pattern.len());
        let mut rest = pattern;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("/**/") {
                toks.extend([
                    Tok::Char('/'),
                    Tok::OptDirs,
                    Tok::DoubleStar,
                    Tok::Char('/'),
                ]);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("**") {
                toks.push(Tok::DoubleStar);
                rest = after;
            } else {
                toks.push(match c {
                    '*' => Tok::Star,
                    '?' => Tok::One,
                    c => Tok::Char(c),
                });
                rest = rest.get(c.len_utf8()..).unwrap_or_default();
            }
        }
        Ok(Glob {
            pattern: pattern.to_owned(),
            toks,
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, text: &str) -> bool {
        let words = (self.toks.len() + 1).div_ceil(64);
        let mut stack = [0u64; GLOB_STACK_WORDS];
        let mut heap = Vec::new();
        let buf = match stack.get_mut(..2 * words) {
            Some(buf) => buf,
            None => {
                heap.resize(2 * words, 0);
                heap.as_mut_slice()
            }
        };
        let (mut cur, mut next) = buf.split_at_mut(words);
        set_bit(cur, 0);
        self.close(cur);
        for c in text.chars() {
            next.fill(0);
            let mut from = 0;
            while let Some(i) = next_set_bit(cur, from) {
                match self.toks.get(i) {
                    Some(Tok::Char(want)) if *want == c => set_bit(next, i + 1),
                    Some(Tok::One) if c != '/' => set_bit(next, i + 1),
                    Some(Tok::Star) if c != '/' => set_bit(next, i),
                    Some(Tok::DoubleStar) => set_bit(next, i),
                    _ => {}
                }
                from = i + 1;
            }
            self.close(next);
            std::mem::swap(&mut cur, &mut next);
            if cur.iter().all(|&w| w == 0) {
                return false;
            }
        }
        next_set_bit(cur, self.toks.len()) == Some(self.toks.len())
    }

    /// Adds the states reachable without input; such moves only go forward,
    /// so one ascending pass suffices.
    fn close(&self, bits: &mut [u64]) {
        let mut from = 0;
        while let Some(i) = next_set_bit(bits, from) {
            match self.toks.get(i) {
                Some(Tok::Star | Tok::DoubleStar) => set_bit(bits, i + 1),
                Some(Tok::OptDirs) => {
                    set_bit(bits, i + 1);
                    // Past the DoubleStar and '/' that follow.
                    set_bit(bits, i + 3);
                }
                _ => {}
            }
            from = i + 1;
        }
    }
}

fn set_bit(bits: &mut [u64], i: usize) {
    if let Some(word) = bits.get_mut(i / 64) {
        *word |= 1 << (i % 64);
    }
}

/// The first set bit at or after `from`.
fn next_set_bit(bits: &[u64], from: usize) -> Option<usize> {
    let mut index = from / 64;
    let mut mask = !0u64 << (from % 64);
    while let Some(&word) = bits.get(index) {
        let masked = word & mask;
        if masked != 0 {
            return Some(index * 64 + masked.trailing_zeros() as usize);
        }
        index += 1;
        mask = !0;
    }
    None
}

/// The SPIFFE IDs a workload gets, and why.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    pub spiffe_ids: Vec<String>,
    /// Parallel to `spiffe_ids`: "entry:<index>" (1-based, file order) for a
    /// registration entry, "default" for the Kubernetes default.
    pub sources: Vec<String>,
}

impl Resolution {
    pub fn is_empty(&self) -> bool {
        self.spiffe_ids.is_empty()
    }
}

#[derive(Debug, Clone)]
struct Entry {
    spiffe_id: String,
    /// "entry:<index>", built once.
    source: String,
    /// Cheap comparisons first, globs last.
    selectors: Vec<Selector>,
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

/// Registration entries of one trust domain.
#[derive(Debug, Clone)]
pub struct Registry {
    trust_domain: String,
    /// "spiffe://<td>/ns/", for the Kubernetes default.
    default_prefix: String,
    default_k8s: bool,
    entries: Vec<Entry>,
}

impl Registry {
    /// A registry without entries; validates the trust domain.
    pub fn new(trust_domain: &str, default_k8s: bool) -> Result<Registry, SpiffeError> {
        validate_trust_domain(trust_domain)?;
        Ok(Registry {
            trust_domain: trust_domain.to_owned(),
            default_prefix: format!("{SCHEME}{trust_domain}/ns/"),
            default_k8s,
            entries: Vec::new(),
        })
    }

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

    /// The IDs of every entry whose selectors all hold, in file order; failing
    /// any, the Kubernetes default when it is on and can be formed.
    pub fn resolve(&self, f: &WorkloadFacts<'_>) -> Resolution {
        let mut resolution = Resolution::default();
        for entry in &self.entries {
            if entry.selectors.iter().all(|s| s.matches(f)) {
                resolution.spiffe_ids.push(entry.spiffe_id.clone());
                resolution.sources.push(entry.source.clone());
            }
        }
        if resolution.is_empty()
            && self.default_k8s
            && let (Some(ns), Some(sa)) = (f.namespace, f.service_account)
            && let Some(id) = self.default_id(ns, sa)
        {
            resolution.spiffe_ids.push(id);
            resolution.sources.push("default".to_owned());
        }
        resolution
    }

    /// `spiffe://<td>/ns/<ns>/sa/<sa>`, or None when that is no valid ID.
    fn default_id(&self, ns: &str, sa: &str) -> Option<String> {
        const SA: &str = "/sa/";
        let len = self.default_prefix.len() + ns.len() + SA.len() + sa.len();
        if !is_path_segment(ns) || !is_path_segment(sa) || len > MAX_ID_LEN {
            return None;
        }
        let mut id = String::with_capacity(len);
        id.push_str(&self.default_prefix);
        id.push_str(ns);
        id.push_str(SA);
        id.push_str(sa);
        Some(id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    pub fn default_k8s(&self) -> bool {
        self.default_k8s
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
    use super::*;

    const TD: &str = "example.org";
    const EXAMPLE: &str = include_str!("../../../deploy/registrations.example.toml");

    fn registry(text: &str) -> Registry {
        match Registry::from_toml(TD, true, text, "test.toml") {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    fn load_err(text: &str) -> String {
        match Registry::from_toml(TD, true, text, "test.toml") {
            Ok(r) => panic!("accepted, {} entries", r.len()),
            Err(e) => e.to_string(),
        }
    }

    fn ids(r: &Resolution) -> Vec<&str> {
        r.spiffe_ids.iter().map(String::as_str).collect()
    }

    #[test]
    fn spiffe_id_validation() {
        let long_path = format!("spiffe://{TD}/{}", "a".repeat(MAX_ID_LEN - 21));
        assert_eq!(long_path.len(), MAX_ID_LEN);
        let valid = [
            // The standard's own examples (§2.2).
            "spiffe://staging.example.com/payments/mysql",
            "spiffe://staging.example.com/payments/web-fe",
            "spiffe://k8s-west.example.com/ns/staging/sa/default",
            "spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453",
            // A signing authority's ID has no path (§3.1).
            "spiffe://example.org",
            "spiffe://td_1.example-x.org/A/b.c/d-e/f_g/..a/.b",
            long_path.as_str(),
        ];
        for id in valid {
            assert_eq!(check_id(id).map(drop), Ok(()), "{id}");
            assert!(validate_spiffe_id(id).is_ok(), "{id}");
        }
        let too_long = format!("{long_path}a");
        let long_td = format!("spiffe://{}/a", "a".repeat(256));
        let invalid = [
            ("", IdProblem::Empty),
            (too_long.as_str(), IdProblem::TooLong(MAX_ID_LEN + 1)),
            ("http://example.org/a", IdProblem::Scheme),
            ("SPIFFE://example.org/a", IdProblem::Scheme),
            ("spiffe:/example.org/a", IdProblem::Scheme),
            ("example.org/a", IdProblem::Scheme),
            ("spiffe://", IdProblem::MissingTrustDomain),
            ("spiffe:///a", IdProblem::MissingTrustDomain),
            (long_td.as_str(), IdProblem::TrustDomainTooLong(256)),
            ("spiffe://Example.org/a", IdProblem::Uppercase),
            ("spiffe://example.org:8443/a", IdProblem::Port),
            ("spiffe://user@example.org/a", IdProblem::UserInfo),
            ("spiffe://user:pw@example.org/a", IdProblem::UserInfo),
            ("spiffe://exa mple.org/a", IdProblem::TrustDomainChar(' ')),
            ("spiffe://ex%61mple.org/a", IdProblem::TrustDomainChar('%')),
            ("spiffe://example.org/a?x=1", IdProblem::Query),
            ("spiffe://example.org?x=1", IdProblem::Query),
            ("spiffe://example.org/a#frag", IdProblem::Fragment),
            ("spiffe://example.org/", IdProblem::TrailingSlash),
            ("spiffe://example.org/a/", IdProblem::TrailingSlash),
            ("spiffe://example.org//a", IdProblem::EmptySegment),
            ("spiffe://example.org/a//b", IdProblem::EmptySegment),
            ("spiffe://example.org/a/./b", IdProblem::DotSegment),
            ("spiffe://example.org/../a", IdProblem::DotSegment),
            ("spiffe://example.org/a/..", IdProblem::DotSegment),
            ("spiffe://example.org/a b", IdProblem::PathChar(' ')),
            ("spiffe://example.org/%41", IdProblem::PathChar('%')),
            ("spiffe://example.org/a:b", IdProblem::PathChar(':')),
            ("spiffe://example.org/café", IdProblem::PathChar('é')),
        ];
        for (id, problem) in invalid {
            assert_eq!(check_id(id), Err(problem), "{id}");
            let msg = validate_spiffe_id(id).map_err(|e| e.to_string()).err();
            assert!(msg.is_some_and(|m| m.contains(&format!("{id:?}"))), "{id}");
        }
    }

    #[test]
    fn trust_domain_validation() {
        for td in ["example.org", "trustdomain", "td-1.example_x.org", "a", "0"] {
            assert!(validate_trust_domain(td).is_ok(), "{td}");
        }
        let long = "a".repeat(256);
        let invalid = [
            ("", IdProblem::MissingTrustDomain),
            (long.as_str(), IdProblem::TrustDomainTooLong(256)),
            ("Example.org", IdProblem::Uppercase),
            ("example.org:8080", IdProblem::Port),
            ("user@example.org", IdProblem::UserInfo),
            ("spiffe://example.org", IdProblem::TrustDomainWithScheme),
            ("example.org/path", IdProblem::TrustDomainChar('/')),
            ("exa mple", IdProblem::TrustDomainChar(' ')),
        ];
        for (td, problem) in invalid {
            match validate_trust_domain(td) {
                Err(SpiffeError::TrustDomain {
                    trust_domain,
                    problem: got,
                }) => {
                    assert_eq!(trust_domain, td);
                    assert_eq!(got, problem, "{td}");
                }
                other => panic!("{td}: {other:?}"),
            }
        }
        assert_eq!(
            validate_trust_domain(&"a".repeat(255)).map_err(|e| e.to_string()),
            Ok(())
        );
        assert!(Registry::new("Example.org", true).is_err());
        assert!(Registry::from_toml("bad td", true, "", "x").is_err());
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
        assert!(msg.contains("unknown field `entries`"), "{msg}");
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
        let msg = Registry::load(TD, false, &path).unwrap_err().to_string();
        assert!(msg.contains("registrations.toml"), "{msg}");
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

    #[test]
    fn selector_parsing() {
        let ok = [
            ("k8s:ns:ci", Selector::K8sNs("ci".into())),
            ("k8s:sa:deployer", Selector::K8sSa("deployer".into())),
            (
                "k8s:pod-label:app.kubernetes.io/name:web",
                Selector::K8sPodLabel {
                    key: "app.kubernetes.io/name".into(),
                    value: "web".into(),
                },
            ),
            (
                "k8s:pod-label:tier:",
                Selector::K8sPodLabel {
                    key: "tier".into(),
                    value: String::new(),
                },
            ),
            (
                "k8s:pod-name:web-7d9f-x2x",
                Selector::K8sPodName("web-7d9f-x2x".into()),
            ),
            (
                "k8s:pod-uid:9eebccd2-12bf-40a6-b262-65fe0487d453",
                Selector::K8sPodUid("9eebccd2-12bf-40a6-b262-65fe0487d453".into()),
            ),
            (
                "k8s:container-name:app",
                Selector::K8sContainerName("app".into()),
            ),
            (
                "k8s:container-image:registry:5000/app:v1",
                Selector::K8sContainerImage("registry:5000/app:v1".into()),
            ),
            (
                "k8s:container-image:ghcr.io/o/app@sha256:0123abcd",
                Selector::K8sContainerImage("ghcr.io/o/app@sha256:0123abcd".into()),
            ),
            ("unix:uid:0", Selector::UnixUid(0)),
            ("unix:uid:4294967295", Selector::UnixUid(u32::MAX)),
            ("unix:user:backup", Selector::UnixUser("backup".into())),
            ("unix:gid:100", Selector::UnixGid(100)),
            (
                "unix:path:/usr/bin/rsync",
                Selector::UnixPath("/usr/bin/rsync".into()),
            ),
            (
                "unix:path:/opt/My App/run:it",
                Selector::UnixPath("/opt/My App/run:it".into()),
            ),
            (
                "systemd:id:backup.service",
                Selector::SystemdId("backup.service".into()),
            ),
            (
                "systemd:id:getty@tty1.service",
                Selector::SystemdId("getty@tty1.service".into()),
            ),
        ];
        for (text, want) in ok {
            assert_eq!(Selector::parse(text), Ok(want), "{text}");
            // Display gives the selector back as written.
            assert_eq!(Selector::parse(text).unwrap().to_string(), text);
        }
        let glob = Selector::parse("cgroup:path:/system.slice/*.service").unwrap();
        assert_eq!(glob.to_string(), "cgroup:path:/system.slice/*.service");

        let bad = [
            ("k8s", SelectorProblem::Shape),
            ("k8s:ns", SelectorProblem::Shape),
            ("k8s:ns:", SelectorProblem::EmptyValue),
            ("k8s:ns: ci", SelectorProblem::Whitespace),
            (
                "docker:label:a",
                SelectorProblem::UnknownType("docker".into()),
            ),
            (
                "unix:pid:1",
                SelectorProblem::UnknownName {
                    ty: "unix",
                    name: "pid".into(),
                    known: UNIX_NAMES,
                },
            ),
            ("unix:uid:root", SelectorProblem::NotANumber("root".into())),
            ("unix:uid:-1", SelectorProblem::NotANumber("-1".into())),
            ("unix:uid:+1", SelectorProblem::NotANumber("+1".into())),
            (
                "unix:gid:4294967296",
                SelectorProblem::NotANumber("4294967296".into()),
            ),
            (
                "unix:path:bin/sh",
                SelectorProblem::RelativePath("bin/sh".into()),
            ),
            ("systemd:id:backup", SelectorProblem::Unit("backup".into())),
            (
                "systemd:id:.service",
                SelectorProblem::Unit(".service".into()),
            ),
            (
                "k8s:ns:CI",
                SelectorProblem::K8sName {
                    what: "namespace name",
                    value: "CI".into(),
                },
            ),
            (
                "k8s:sa:-x",
                SelectorProblem::K8sName {
                    what: "service account name",
                    value: "-x".into(),
                },
            ),
            ("k8s:pod-label:app", SelectorProblem::LabelShape),
            (
                "k8s:pod-label::web",
                SelectorProblem::LabelKey(String::new()),
            ),
            (
                "k8s:pod-label:a/b/c:web",
                SelectorProblem::LabelKey("a/b/c".into()),
            ),
            (
                "k8s:pod-label:app:we b",
                SelectorProblem::LabelValue("we b".into()),
            ),
            (
                "cgroup:path:system.slice/*",
                SelectorProblem::Glob {
                    pattern: "system.slice/*".into(),
                    problem: GlobProblem::NotAbsolute,
                },
            ),
            (
                "cgroup:path:/a/***",
                SelectorProblem::Glob {
                    pattern: "/a/***".into(),
                    problem: GlobProblem::TripleStar,
                },
            ),
        ];
        for (text, want) in bad {
            assert_eq!(Selector::parse(text), Err(want), "{text}");
        }
    }

    #[test]
    fn glob_matching() {
        let table = [
            (
                "/system.slice/backup.service",
                "/system.slice/backup.service",
                true,
            ),
            (
                "/system.slice/backup.service",
                "/system.slice/backup.servicex",
                false,
            ),
            (
                "/system.slice/*.service",
                "/system.slice/backup.service",
                true,
            ),
            ("/system.slice/*.service", "/system.slice/.service", true),
            (
                "/system.slice/*.service",
                "/system.slice/a/b.service",
                false,
            ),
            ("/system.slice/*", "/system.slice/a", true),
            ("/system.slice/*", "/system.slice/a/b", false),
            ("/system.slice/**", "/system.slice/a/b", true),
            ("/system.slice/**", "/system.slice", false),
            ("/a/**/b", "/a/b", true),
            ("/a/**/b", "/a/x/b", true),
            ("/a/**/b", "/a/x/y/z/b", true),
            ("/a/**/b", "/a/xb", false),
            ("/a/**/b", "/ab", false),
            ("/a/**b", "/a/x/yb", true),
            ("**/backup.service", "/system.slice/backup.service", true),
            ("**/backup.service", "/backup.service", true),
            ("**", "/anything/at/all", true),
            ("*", "/x", false),
            ("/?", "/x", true),
            ("/?", "//", false),
            ("/?", "/", false),
            ("/?", "/é", true),
            ("/a?c", "/abc", true),
            ("/a?c", "/a/c", false),
            (
                "/user.slice/user-*.slice/**/*.scope",
                "/user.slice/user-1000.slice/session-2.scope",
                true,
            ),
            (
                "/user.slice/user-*.slice/**/*.scope",
                "/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope",
                true,
            ),
            (
                "/user.slice/user-*.slice/**/*.scope",
                "/user.slice/user-1000.slice/x.service",
                false,
            ),
            (
                "/kubepods.slice/**/cri-containerd-*.scope",
                "/kubepods.slice/kubepods-pod1.slice/cri-containerd-ab.scope",
                true,
            ),
            ("/a*b*c*d", "/aXbYcZd", true),
            ("/a*b*c*d", "/aXbYcZ", false),
            ("/[x]", "/[x]", true),
            ("/", "/", true),
            ("/", "", false),
        ];
        for (pattern, path, want) in table {
            let glob = Glob::new(pattern).unwrap();
            assert_eq!(glob.matches(path), want, "{pattern} ~ {path}");
        }
    }

    #[test]
    fn glob_long_patterns_and_many_stars() {
        // Past the stack buffer: the heap path must agree.
        let seg = "x".repeat(600);
        let glob = Glob::new(&format!("/**/{seg}/*")).unwrap();
        assert!(glob.toks.len() > GLOB_STACK_WORDS * 32);
        assert!(glob.matches(&format!("/a/b/{seg}/c")));
        assert!(!glob.matches(&format!("/a/b/{seg}/c/d")));
        // Stars that would make backtracking exponential stay linear.
        let glob = Glob::new("/**a**a**a**a**a**a**a**b").unwrap();
        assert!(!glob.matches(&format!("/{}", "a".repeat(4000))));
        assert!(glob.matches(&format!("/{}b", "a".repeat(4000))));
    }

    #[test]
    fn same_uid_and_binary_differ_by_service_account() {
        let r = registry(
            r#"
[[entry]]
spiffe_id = "spiffe://example.org/shop/api"
selectors = ["k8s:ns:shop", "k8s:sa:api"]

[[entry]]
spiffe_id = "spiffe://example.org/shop/worker"
selectors = ["k8s:ns:shop", "k8s:sa:worker"]
"#,
        );
        let base = WorkloadFacts {
            namespace: Some("shop"),
            uid: Some(1000),
            path: Some("/app/server"),
            ..Default::default()
        };
        let api = WorkloadFacts {
            service_account: Some("api"),
            ..base.clone()
        };
        let worker = WorkloadFacts {
            service_account: Some("worker"),
            ..base.clone()
        };
        assert_eq!(ids(&r.resolve(&api)), ["spiffe://example.org/shop/api"]);
        assert_eq!(
            ids(&r.resolve(&worker)),
            ["spiffe://example.org/shop/worker"]
        );
        assert_eq!(r.resolve(&api).sources, ["entry:1"]);
        // Without the service account neither entry holds, and no default can be formed.
        assert!(r.resolve(&base).is_empty());
    }

    #[test]
    fn all_selectors_must_hold() {
        let r = registry(
            r#"
[[entry]]
spiffe_id = "spiffe://example.org/shop/web"
selectors = ["k8s:ns:shop", "k8s:sa:web", "k8s:pod-label:app.kubernetes.io/name:web"]
"#,
        );
        let web = BTreeMap::from([("app.kubernetes.io/name".to_owned(), "web".to_owned())]);
        let other = BTreeMap::from([("app.kubernetes.io/name".to_owned(), "db".to_owned())]);
        let full = WorkloadFacts {
            namespace: Some("shop"),
            service_account: Some("web"),
            pod_labels: Some(&web),
            ..Default::default()
        };
        assert_eq!(ids(&r.resolve(&full)), ["spiffe://example.org/shop/web"]);
        let partial = [
            WorkloadFacts {
                pod_labels: None,
                ..full.clone()
            },
            WorkloadFacts {
                pod_labels: Some(&other),
                ..full.clone()
            },
            WorkloadFacts {
                service_account: None,
                ..full.clone()
            },
            WorkloadFacts {
                namespace: Some("ci"),
                ..full.clone()
            },
        ];
        for facts in partial {
            let got = r.resolve(&facts);
            assert!(
                !got.spiffe_ids
                    .contains(&"spiffe://example.org/shop/web".to_owned()),
                "{facts:?}"
            );
        }
    }

    #[test]
    fn several_matches_keep_file_order_and_suppress_default() {
        let r = registry(
            r#"
[[entry]]
spiffe_id = "spiffe://example.org/z-last-alphabetically"
selectors = ["k8s:ns:ci"]

[[entry]]
spiffe_id = "spiffe://example.org/no-match"
selectors = ["k8s:ns:prod"]

[[entry]]
spiffe_id = "spiffe://example.org/a-first-alphabetically"
selectors = ["unix:uid:1000", "k8s:ns:ci"]

[[entry]]
spiffe_id = "spiffe://example.org/by-cgroup"
selectors = ["cgroup:path:/kubepods.slice/**", "k8s:ns:ci"]
"#,
        );
        let facts = WorkloadFacts {
            namespace: Some("ci"),
            service_account: Some("deployer"),
            uid: Some(1000),
            cgroup_path: Some("/kubepods.slice/pod1/c1"),
            ..Default::default()
        };
        let got = r.resolve(&facts);
        assert_eq!(
            ids(&got),
            [
                "spiffe://example.org/z-last-alphabetically",
                "spiffe://example.org/a-first-alphabetically",
                "spiffe://example.org/by-cgroup",
            ]
        );
        assert_eq!(got.sources, ["entry:1", "entry:3", "entry:4"]);
        let json = serde_json::to_string(&got).unwrap();
        assert!(
            json.contains(r#""sources":["entry:1","entry:3","entry:4"]"#),
            "{json}"
        );
    }

    #[test]
    fn default_k8s_id() {
        let r = registry(
            "[[entry]]\nspiffe_id = \"spiffe://example.org/ci\"\nselectors = [\"k8s:ns:ci\"]\n",
        );
        let pod = WorkloadFacts {
            namespace: Some("shop"),
            service_account: Some("api"),
            ..Default::default()
        };
        let got = r.resolve(&pod);
        assert_eq!(ids(&got), ["spiffe://example.org/ns/shop/sa/api"]);
        assert_eq!(got.sources, ["default"]);
        assert!(validate_spiffe_id(&got.spiffe_ids[0]).is_ok());
        // A matching entry replaces the default.
        let ci = WorkloadFacts {
            namespace: Some("ci"),
            ..pod.clone()
        };
        assert_eq!(r.resolve(&ci).sources, ["entry:1"]);
        // Both namespace and service account are needed.
        assert!(
            r.resolve(&WorkloadFacts {
                service_account: None,
                ..pod.clone()
            })
            .is_empty()
        );
        assert!(
            r.resolve(&WorkloadFacts {
                namespace: None,
                ..pod.clone()
            })
            .is_empty()
        );
        // Names that would make an invalid ID are skipped, not errors.
        for (ns, sa) in [("shop", "a:b"), ("..", "api"), ("", "api"), ("shop", "a/b")] {
            let odd = WorkloadFacts {
                namespace: Some(ns),
                service_account: Some(sa),
                ..pod.clone()
            };
            assert!(r.resolve(&odd).is_empty(), "{ns} {sa}");
        }
        let long = "a".repeat(MAX_ID_LEN);
        assert!(
            r.resolve(&WorkloadFacts {
                service_account: Some(&long),
                ..pod.clone()
            })
            .is_empty()
        );
        // Switched off.
        let off = Registry::from_toml(TD, false, "", "x").unwrap();
        assert!(off.resolve(&pod).is_empty());
        let bare = Registry::new(TD, true).unwrap();
        assert!(bare.is_empty());
        assert_eq!(
            ids(&bare.resolve(&pod)),
            ["spiffe://example.org/ns/shop/sa/api"]
        );
    }

    #[test]
    fn host_service_by_unix_and_systemd() {
        let r = registry(
            r#"
[[entry]]
spiffe_id = "spiffe://example.org/host/backup"
selectors = ["systemd:id:backup.service", "unix:user:backup"]

[[entry]]
spiffe_id = "spiffe://example.org/host/rsync-as-root"
selectors = ["unix:uid:0", "unix:gid:0", "unix:path:/usr/bin/rsync"]

[[entry]]
spiffe_id = "spiffe://example.org/host/system-services"
selectors = ["cgroup:path:/system.slice/*.service"]
"#,
        );
        let backup = WorkloadFacts {
            uid: Some(34),
            user: Some("backup"),
            gid: Some(34),
            path: Some("/usr/bin/rsync"),
            unit: Some("backup.service"),
            cgroup_path: Some("/system.slice/backup.service"),
            ..Default::default()
        };
        let got = r.resolve(&backup);
        assert_eq!(
            ids(&got),
            [
                "spiffe://example.org/host/backup",
                "spiffe://example.org/host/system-services"
            ]
        );
        let root = WorkloadFacts {
            uid: Some(0),
            user: Some("root"),
            gid: Some(0),
            ..backup.clone()
        };
        assert_eq!(
            ids(&r.resolve(&root)),
            [
                "spiffe://example.org/host/rsync-as-root",
                "spiffe://example.org/host/system-services"
            ]
        );
        // A login shell: no unit, a user-slice cgroup; host processes get no default.
        let shell = WorkloadFacts {
            uid: Some(1000),
            user: Some("alice"),
            path: Some("/usr/bin/rsync"),
            cgroup_path: Some("/user.slice/user-1000.slice/session-3.scope"),
            ..Default::default()
        };
        assert!(r.resolve(&shell).is_empty());
    }

    #[test]
    fn selector_strings_for_events() {
        let labels = BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), "web".to_owned()),
            ("tier".to_owned(), "front".to_owned()),
        ]);
        let f = WorkloadFacts {
            namespace: Some("shop"),
            service_account: Some("web"),
            pod_name: Some("web-1"),
            pod_uid: Some("u-1"),
            pod_labels: Some(&labels),
            container_name: Some("app"),
            container_image: Some("registry:5000/app:v1"),
            uid: Some(1000),
            user: Some("app"),
            gid: Some(1000),
            path: Some("/app/server"),
            unit: None,
            user_unit: None,
            cgroup_path: Some("/kubepods.slice/pod1/c1"),
        };
        let got = selectors(&f);
        assert_eq!(
            got,
            [
                "cgroup:path:/kubepods.slice/pod1/c1",
                "k8s:container-image:registry:5000/app:v1",
                "k8s:container-name:app",
                "k8s:ns:shop",
                "k8s:pod-label:app.kubernetes.io/name:web",
                "k8s:pod-label:tier:front",
                "k8s:pod-name:web-1",
                "k8s:pod-uid:u-1",
                "k8s:sa:web",
                "unix:gid:1000",
                "unix:path:/app/server",
                "unix:uid:1000",
                "unix:user:app",
            ]
        );
        // Every string except the concrete cgroup path parses back and matches.
        for s in got.iter().filter(|s| !s.starts_with("cgroup:")) {
            let sel = Selector::parse(s).unwrap();
            assert!(sel.matches(&f), "{s}");
        }
        assert!(selectors(&WorkloadFacts::default()).is_empty());
    }
}
