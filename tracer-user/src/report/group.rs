//! Aggregation: each event is attributed to its executor (workload, SPIFFE
//! IDs, lineage root: see [`super::root`]), to the credentials it acted under
//! (its uid; its pod's service account) and to its identities (SPIFFE ID,
//! workload, login user). Every table is bounded; what does not fit is counted.
use std::{collections::HashMap, hash::Hash, num::NonZeroUsize};

use lru::LruCache;

use super::{
    read::{Ancestor, Event, Executor, Text},
    root::{self, Argv, Proc, Root},
};

/// Bounds of the tables (distinct keys), so memory stays bounded whatever the
/// files hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub executors: usize,
    pub credentials: usize,
    pub identities: usize,
    /// Requestors: (system, run, actor) of `executor.requestor`.
    pub requestors: usize,
    /// Distinct destinations counted per executor, credential or identity;
    /// past it, the count reads "at least".
    pub destinations: usize,
    /// Executors listed per credential.
    pub executors_per_credential: usize,
    /// (credential, executor) pairs counted apart.
    pub pairs: usize,
    /// Distinct destinations counted per pair.
    pub pair_destinations: usize,
    /// Processes remembered for `--lineage ids` (by exec_id).
    pub processes: usize,
    /// Bytes of the longest line read (longer ones are skipped, unreadable).
    pub line_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            executors: 20_000,
            credentials: 20_000,
            identities: 20_000,
            requestors: 20_000,
            destinations: 256,
            executors_per_credential: 1_000,
            pairs: 50_000,
            pair_destinations: 32,
            processes: 65_536,
            // The tracer's own lines are far shorter (argv and lineage are capped).
            line_bytes: 64 << 20,
        }
    }
}

/// Argv elements kept of a remembered process, and bytes of each.
const ARGV_KEPT: usize = 4;
const ARG_BYTES: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CredKey {
    Uid(u64),
    ServiceAccount { namespace: String, name: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ExecKey {
    pub workload: String,
    pub spiffe_ids: Vec<String>,
    pub root: Root,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum IdentityKind {
    Spiffe,
    Workload,
    Login,
}

#[derive(Debug, Default)]
pub(crate) struct Dests {
    /// Destination -> connects, at most `Limits::destinations` of them.
    pub counts: HashMap<Box<str>, u64>,
    /// Connects to destinations that did not fit.
    pub overflow_connects: u64,
    /// Whether some destination did not fit: the distinct count is a floor.
    pub capped: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub execs: u64,
    pub connects: u64,
    pub exits: u64,
    pub dests: Dests,
    /// CPU time from exits and usage samples (only what is new per image).
    pub cpu_ns: u64,
    pub usage_seen: bool,
}

impl Stats {
    fn add(&mut self, what: &What, cap: usize) {
        match what {
            What::Exec => self.execs += 1,
            What::Connect { count, dest } => {
                self.connects += count;
                if let Some(key) = dest.as_deref() {
                    let d = &mut self.dests;
                    if let Some(n) = d.counts.get_mut(key) {
                        *n += count;
                    } else if d.counts.len() < cap {
                        d.counts.insert(key.into(), *count);
                    } else {
                        d.capped = true;
                        d.overflow_connects += count;
                    }
                }
            }
            What::Exit { cpu_ns } => {
                self.exits += 1;
                if let Some(ns) = cpu_ns {
                    self.cpu_ns = self.cpu_ns.saturating_add(*ns);
                    self.usage_seen = true;
                }
            }
            What::Usage { cpu_ns } => {
                self.cpu_ns = self.cpu_ns.saturating_add(*cpu_ns);
                self.usage_seen = true;
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct CredEntry {
    pub key: CredKey,
    /// The user name of a uid, as last seen.
    pub user_name: Option<String>,
    pub stats: Stats,
    /// Executors that acted under it, at most the limit: indices of `pairs`,
    /// which count what each did under this credential.
    pub executors: Vec<u32>,
    pub executors_dropped: u64,
}

/// What one executor did under one credential.
#[derive(Debug)]
pub(crate) struct PairEntry {
    pub executor: u32,
    pub stats: Stats,
}

#[derive(Debug)]
pub(crate) struct ExecEntry {
    pub key: ExecKey,
    pub stats: Stats,
    /// Credentials (indices) it acted under.
    pub credentials: Vec<u32>,
}

/// Who asked for the actions, by `executor.requestor`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RequestorKey {
    pub system: String,
    pub run: Option<String>,
    pub actor: Option<String>,
}

#[derive(Debug)]
pub(crate) struct RequestorEntry {
    pub key: RequestorKey,
    /// As first seen.
    pub display: Option<String>,
    /// `runner`, `descendant` as seen (a claim, see the threat model).
    pub claims: Vec<String>,
    pub stats: Stats,
    /// Executors and credentials (indices) its events were attributed to,
    /// at most `Limits::executors_per_credential` of each.
    pub executors: Vec<u32>,
    pub credentials: Vec<u32>,
    pub dropped: u64,
}

#[derive(Debug)]
pub(crate) struct IdentityEntry {
    pub kind: IdentityKind,
    pub name: String,
    pub stats: Stats,
}

/// What an event did, for the counters.
enum What {
    Exec,
    Connect {
        count: u64,
        dest: Option<String>,
    },
    Exit {
        cpu_ns: Option<u64>,
    },
    /// A usage sample: CPU time not yet counted for its image.
    Usage {
        cpu_ns: u64,
    },
}

/// Where an executor's events go: remembered per exec_id for the events that
/// name it by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attribution {
    executor: Option<u32>,
    pairs: Vec<u32>,
    credentials: Vec<u32>,
    identities: Vec<u32>,
    requestor: Option<u32>,
}

/// A process remembered for `--lineage ids` lineages.
struct Kept {
    binary: Box<str>,
    argv: Box<[Box<str>]>,
}

/// Counts of what was read and what did not fit.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct Counts {
    pub lines: u64,
    /// Lines that are not JSON or whose members have unexpected types.
    pub unreadable: u64,
    pub execs: u64,
    pub connects: u64,
    pub exits: u64,
    /// Events whose executor is by reference to a description not read (the
    /// file starts after it, or it was forgotten: see `processes` limit).
    pub unattributed: u64,
    /// Ancestors named by exec_id that no line read described.
    pub unknown_ancestors: u64,
    pub executors_dropped: u64,
    pub pairs_dropped: u64,
    pub credentials_dropped: u64,
    pub identities_dropped: u64,
    pub requestors_dropped: u64,
}

pub(crate) struct Grouper {
    pub limits: Limits,
    pub counts: Counts,
    pub executors: Vec<ExecEntry>,
    exec_index: HashMap<ExecKey, u32>,
    pub credentials: Vec<CredEntry>,
    cred_index: HashMap<CredKey, u32>,
    pub pairs: Vec<PairEntry>,
    pair_index: HashMap<(u32, u32), u32>,
    pub identities: Vec<IdentityEntry>,
    ident_index: HashMap<(IdentityKind, String), u32>,
    pub requestors: Vec<RequestorEntry>,
    req_index: HashMap<RequestorKey, u32>,
    procs: LruCache<Box<str>, Kept>,
    refs: LruCache<Box<str>, Attribution>,
    /// CPU time already counted per live image, from its usage samples
    /// (cumulative): a later sample or its exit adds only what is new.
    cpu_counted: LruCache<Box<str>, u64>,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
}

/// CPU time (user + system) of an exit's or usage sample's `action.usage`.
fn cpu_of(ev: &Event) -> Option<u64> {
    let u = ev.action.as_ref()?.usage.as_ref()?;
    match (u.cpu_user_ns, u.cpu_system_ns) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    }
}

fn lru<K: Hash + Eq, V>(n: usize) -> LruCache<K, V> {
    LruCache::new(NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN))
}

/// Index of `key` in a bounded table, adding it when there is room.
fn slot<K: Hash + Eq + Clone, E>(
    index: &mut HashMap<K, u32>,
    entries: &mut Vec<E>,
    cap: usize,
    dropped: &mut u64,
    key: &K,
    make: impl FnOnce() -> E,
) -> Option<u32> {
    if let Some(&i) = index.get(key) {
        return Some(i);
    }
    if entries.len() >= cap {
        *dropped += 1;
        return None;
    }
    let i = u32::try_from(entries.len()).ok()?;
    entries.push(make());
    index.insert(key.clone(), i);
    Some(i)
}

fn cut(s: &str, max: usize) -> Box<str> {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].into()
}

/// How a workload reads in the report: the pod's owner (or the pod), the
/// container, the systemd unit, or `host`.
pub(crate) fn workload_label(ex: &Executor) -> String {
    let Some(w) = &ex.workload else {
        return "host".to_owned();
    };
    let s = |t: &Option<Text>| t.as_deref().unwrap_or("?").to_owned();
    if let Some(p) = &w.pod {
        let ns = s(&p.namespace);
        return match &p.owner {
            Some(o) => format!("{ns}/{}/{}", s(&o.kind), s(&o.name)),
            None => format!("{ns}/Pod/{}", s(&p.name)),
        };
    }
    if let Some(c) = &w.container {
        return match (&c.name, &c.id) {
            (Some(n), _) => format!("container {}", &**n),
            (None, Some(id)) => format!("container {}", cut(id, 12)),
            _ => "container ?".to_owned(),
        };
    }
    if let Some(u) = &w.unit {
        return format!("unit {}", &**u);
    }
    "host".to_owned()
}

impl Grouper {
    pub(crate) fn new(limits: Limits) -> Grouper {
        Grouper {
            limits,
            counts: Counts::default(),
            executors: Vec::new(),
            exec_index: HashMap::new(),
            credentials: Vec::new(),
            cred_index: HashMap::new(),
            pairs: Vec::new(),
            pair_index: HashMap::new(),
            identities: Vec::new(),
            ident_index: HashMap::new(),
            requestors: Vec::new(),
            req_index: HashMap::new(),
            procs: lru(limits.processes),
            refs: lru(limits.processes),
            cpu_counted: lru(limits.processes),
            first_time: None,
            last_time: None,
        }
    }

    /// A line not read (too long).
    pub(crate) fn unreadable(&mut self) {
        self.counts.lines += 1;
        self.counts.unreadable += 1;
    }

    /// One line of a file (without its newline).
    pub(crate) fn line(&mut self, line: &[u8]) {
        self.counts.lines += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let Ok(ev) = Event::parse(line) else {
            self.counts.unreadable += 1;
            return;
        };
        self.event(&ev);
    }

    fn event(&mut self, ev: &Event) {
        if let Some(t) = ev.time.as_deref() {
            // RFC 3339 in UTC with a fixed number of digits: text order is time order.
            if self.first_time.as_deref().is_none_or(|f| t < f) {
                self.first_time = Some(t.to_owned());
            }
            if self.last_time.as_deref().is_none_or(|l| t > l) {
                self.last_time = Some(t.to_owned());
            }
        }
        match ev.kind.as_deref() {
            Some("process") => {
                if let Some(p) = &ev.process {
                    self.remember(p.exec_id.as_deref(), p.binary.as_deref(), p.argv.as_deref());
                }
                return;
            }
            Some("exec" | "connect" | "exit" | "fork" | "usage") => {}
            _ => return,
        }
        let Some(ex) = &ev.executor else { return };
        let what = match ev.kind.as_deref() {
            Some("exec") => {
                self.counts.execs += 1;
                What::Exec
            }
            Some("connect") => {
                let action = ev.action.as_ref();
                let count = action
                    .and_then(|a| a.aggregate.as_ref())
                    .and_then(|a| a.count)
                    .unwrap_or(1);
                self.counts.connects += count;
                What::Connect {
                    count,
                    dest: action.and_then(|a| a.destination.as_ref()).map(destination),
                }
            }
            Some("exit") => {
                self.counts.exits += 1;
                let cpu = cpu_of(ev);
                let counted = ex
                    .exec_id
                    .as_deref()
                    .and_then(|id| self.cpu_counted.pop(id));
                What::Exit {
                    cpu_ns: cpu.map(|ns| ns.saturating_sub(counted.unwrap_or(0))),
                }
            }
            Some("usage") => {
                let (Some(ns), Some(id)) = (cpu_of(ev), ex.exec_id.as_deref()) else {
                    return;
                };
                let counted = self.cpu_counted.put(id.into(), ns).unwrap_or(0);
                What::Usage {
                    cpu_ns: ns.saturating_sub(counted),
                }
            }
            // A fork describes the parent (the executor): nothing to count,
            // but it may describe a process for later references.
            _ => {
                if ex.by_ref != Some(true) {
                    self.attribute(ex, ev.lineage.as_deref());
                }
                return;
            }
        };
        let attribution = if ex.by_ref == Some(true) {
            let Some(a) = ex.exec_id.as_deref().and_then(|id| self.refs.get(id)) else {
                self.counts.unattributed += 1;
                return;
            };
            a.clone()
        } else {
            self.attribute(ex, ev.lineage.as_deref())
        };
        let cap = self.limits.destinations;
        if let Some(e) = attribution.executor
            && let Some(x) = self.executors.get_mut(e as usize)
        {
            x.stats.add(&what, cap);
        }
        for &c in &attribution.credentials {
            if let Some(x) = self.credentials.get_mut(c as usize) {
                x.stats.add(&what, cap);
            }
        }
        for &i in &attribution.identities {
            if let Some(x) = self.identities.get_mut(i as usize) {
                x.stats.add(&what, cap);
            }
        }
        for &p in &attribution.pairs {
            if let Some(x) = self.pairs.get_mut(p as usize) {
                x.stats.add(&what, self.limits.pair_destinations);
            }
        }
        if let Some(r) = attribution.requestor
            && let Some(x) = self.requestors.get_mut(r as usize)
        {
            x.stats.add(&what, cap);
        }
    }

    /// The requestor entry of `ex`, linked to its executor and credentials.
    fn requestor(
        &mut self,
        ex: &Executor,
        executor: Option<u32>,
        credentials: &[u32],
    ) -> Option<u32> {
        let r = ex.requestor.as_ref()?;
        let owned = |t: &Option<Text>| t.as_deref().map(|s| cut(s, 512).into_string());
        let key = RequestorKey {
            system: owned(&r.system).unwrap_or_else(|| "?".to_owned()),
            run: owned(&r.run),
            actor: owned(&r.actor),
        };
        let i = slot(
            &mut self.req_index,
            &mut self.requestors,
            self.limits.requestors,
            &mut self.counts.requestors_dropped,
            &key,
            || RequestorEntry {
                key: key.clone(),
                display: owned(&r.display),
                claims: Vec::new(),
                stats: Stats::default(),
                executors: Vec::new(),
                credentials: Vec::new(),
                dropped: 0,
            },
        )?;
        let cap = self.limits.executors_per_credential;
        let e = &mut self.requestors[i as usize];
        if let Some(c) = r.claim.as_deref()
            && !e.claims.iter().any(|x| x == c)
            && e.claims.len() < 4
        {
            e.claims.push(c.to_owned());
        }
        for (list, new) in [
            (&mut e.executors, executor.as_slice()),
            (&mut e.credentials, credentials),
        ] {
            for &n in new {
                if list.contains(&n) {
                    continue;
                }
                if list.len() >= cap {
                    e.dropped += 1;
                } else {
                    list.push(n);
                }
            }
        }
        Some(i)
    }

    fn remember(&mut self, exec_id: Option<&str>, binary: Option<&str>, argv: Option<&[Text]>) {
        let (Some(id), Some(binary)) = (exec_id, binary) else {
            return;
        };
        if self.procs.get(id).is_some() {
            return;
        }
        let argv = argv
            .unwrap_or_default()
            .iter()
            .take(ARGV_KEPT)
            .map(|a| cut(a, ARG_BYTES))
            .collect();
        self.procs.put(
            id.into(),
            Kept {
                binary: cut(binary, 4096),
                argv,
            },
        );
    }

    /// The executor, credentials and identities of a full executor, which
    /// later events of its process may name by reference.
    fn attribute(&mut self, ex: &Executor, lineage: Option<&[Ancestor]>) -> Attribution {
        self.remember(
            ex.exec_id.as_deref(),
            ex.binary.as_deref(),
            ex.argv.as_deref(),
        );
        let login: Option<String> = ex.login.as_ref().and_then(|l| {
            l.name
                .as_deref()
                .map(str::to_owned)
                .or_else(|| l.auid.map(|a| format!("auid {a}")))
        });
        let root = self.root(ex, lineage, login.as_deref());
        let spiffe_ids: Vec<String> = ex
            .identity
            .as_ref()
            .and_then(|i| i.spiffe_ids.as_ref())
            .map(|v| v.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default();
        let workload = workload_label(ex);
        let key = ExecKey {
            workload: workload.clone(),
            spiffe_ids: spiffe_ids.clone(),
            root,
        };
        let executor = slot(
            &mut self.exec_index,
            &mut self.executors,
            self.limits.executors,
            &mut self.counts.executors_dropped,
            &key,
            || ExecEntry {
                key: key.clone(),
                stats: Stats::default(),
                credentials: Vec::new(),
            },
        );
        let mut creds = Vec::with_capacity(2);
        let uid = ex.user.as_ref().and_then(|u| u.uid);
        if let Some(uid) = uid {
            creds.push(CredKey::Uid(uid));
        }
        if let Some(p) = ex.workload.as_ref().and_then(|w| w.pod.as_ref())
            && let Some(sa) = p.service_account.as_deref()
        {
            creds.push(CredKey::ServiceAccount {
                namespace: p.namespace.as_deref().unwrap_or("?").to_owned(),
                name: sa.to_owned(),
            });
        }
        let mut credentials = Vec::with_capacity(creds.len());
        let mut pairs = Vec::with_capacity(creds.len());
        for k in creds {
            let Some(c) = slot(
                &mut self.cred_index,
                &mut self.credentials,
                self.limits.credentials,
                &mut self.counts.credentials_dropped,
                &k,
                || CredEntry {
                    key: k.clone(),
                    user_name: None,
                    stats: Stats::default(),
                    executors: Vec::new(),
                    executors_dropped: 0,
                },
            ) else {
                continue;
            };
            credentials.push(c);
            let entry = &mut self.credentials[c as usize];
            if let CredKey::Uid(_) = entry.key
                && let Some(name) = ex.user.as_ref().and_then(|u| u.name.as_deref())
                && entry.user_name.as_deref() != Some(name)
            {
                entry.user_name = Some(name.to_owned());
            }
            if let Some(e) = executor {
                let pair = match self.pair_index.get(&(c, e)) {
                    Some(&p) => Some(p),
                    None if self.credentials[c as usize].executors.len()
                        >= self.limits.executors_per_credential =>
                    {
                        self.credentials[c as usize].executors_dropped += 1;
                        None
                    }
                    None => slot(
                        &mut self.pair_index,
                        &mut self.pairs,
                        self.limits.pairs,
                        &mut self.counts.pairs_dropped,
                        &(c, e),
                        || PairEntry {
                            executor: e,
                            stats: Stats::default(),
                        },
                    )
                    .inspect(|&p| self.credentials[c as usize].executors.push(p)),
                };
                pairs.extend(pair);
                let x = &mut self.executors[e as usize];
                if !x.credentials.contains(&c) {
                    x.credentials.push(c);
                }
            }
        }
        let mut ids = Vec::new();
        for s in spiffe_ids {
            ids.push((IdentityKind::Spiffe, s));
        }
        if workload != "host" {
            ids.push((IdentityKind::Workload, workload));
        }
        if let Some(l) = login {
            ids.push((IdentityKind::Login, l));
        }
        let mut identities = Vec::with_capacity(ids.len());
        for k in ids {
            if let Some(i) = slot(
                &mut self.ident_index,
                &mut self.identities,
                self.limits.identities,
                &mut self.counts.identities_dropped,
                &k,
                || IdentityEntry {
                    kind: k.0,
                    name: k.1.clone(),
                    stats: Stats::default(),
                },
            ) {
                identities.push(i);
            }
        }
        let requestor = self.requestor(ex, executor, &credentials);
        let a = Attribution {
            executor,
            pairs,
            credentials,
            identities,
            requestor,
        };
        if let Some(id) = ex.exec_id.as_deref() {
            match self.refs.get_mut(id) {
                Some(old) if *old == a => {}
                Some(old) => *old = a.clone(),
                None => {
                    self.refs.put(id.into(), a.clone());
                }
            }
        }
        a
    }

    fn root(&mut self, ex: &Executor, lineage: Option<&[Ancestor]>, login: Option<&str>) -> Root {
        // Ancestors walked: up to pid 1 or another workload (exclusive).
        let walked: Vec<&Ancestor> = lineage
            .unwrap_or_default()
            .iter()
            .take_while(|a| a.pid != Some(1) && a.workload.is_none())
            .collect();
        // Ancestors by exec_id only: look them up first (the cache is
        // borrowed for the walk below).
        for a in &walked {
            if a.binary.is_none()
                && let Some(id) = a.exec_id.as_deref()
                && self.procs.get(id).is_none()
            {
                self.counts.unknown_ancestors += 1;
            }
        }
        let empty: &[Text] = &[];
        let mut chain: Vec<Proc> = Vec::with_capacity(walked.len() + 1);
        chain.push(Proc {
            binary: ex.binary.as_deref().unwrap_or("?"),
            argv: Argv::Line(ex.argv.as_deref().unwrap_or(empty)),
        });
        for a in walked {
            match (
                &a.binary,
                a.exec_id.as_deref().and_then(|id| self.procs.peek(id)),
            ) {
                (Some(b), _) => chain.push(Proc {
                    binary: b,
                    argv: Argv::Line(a.argv.as_deref().unwrap_or(empty)),
                }),
                (None, Some(k)) => chain.push(Proc {
                    binary: &k.binary,
                    argv: Argv::Kept(&k.argv),
                }),
                (None, None) => chain.push(Proc {
                    binary: "?",
                    argv: Argv::Line(empty),
                }),
            }
        }
        root::root(&chain, login)
    }
}

/// How a destination reads: the Kubernetes service or pod, else the DNS
/// name, with the address and port.
fn destination(d: &super::read::Destination) -> String {
    let addr = match (d.ip.as_deref(), d.port) {
        (Some(ip), Some(p)) if ip.contains(':') => format!("[{ip}]:{p}"),
        (Some(ip), Some(p)) => format!("{ip}:{p}"),
        (Some(ip), None) => ip.to_owned(),
        (None, Some(p)) => format!("?:{p}"),
        (None, None) => "?".to_owned(),
    };
    let nn = |n: &super::read::NamespacedName| {
        format!(
            "{}/{}",
            n.namespace.as_deref().unwrap_or("?"),
            n.name.as_deref().unwrap_or("?")
        )
    };
    if let Some(s) = &d.service {
        format!("svc {} ({addr})", nn(s))
    } else if let Some(p) = &d.pod {
        format!("pod {} ({addr})", nn(p))
    } else if let Some(n) = d.name.as_deref() {
        format!("{n} ({addr})")
    } else {
        addr
    }
}
