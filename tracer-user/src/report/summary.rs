//! What every output shows, in the shape of `--format json` (documented in
//! README.md, "tracer report"): keys are stable; new ones may be added.
use serde::Serialize;

use super::group::{Counts, CredKey, Dests, Grouper, IdentityKind, Stats};
use crate::verify;

/// Destinations listed per executor, credential or identity (by connects).
const TOP_DESTINATIONS: usize = 10;

#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub report_version: u32,
    /// Files in the order read (chain order).
    pub files: Vec<String>,
    pub period: Period,
    pub chain: Chain,
    pub totals: Counts,
    /// Credentials, shared ones first, then by executors and activity.
    pub credentials: Vec<Credential>,
    /// Executors, by id (referred to from `credentials[].executors`).
    pub executors: Vec<ExecutorOut>,
    /// Identities (SPIFFE ID, workload, login user), by kind then activity.
    pub identities: Vec<IdentityOut>,
    /// Who asked automation for the actions (`executor.requestor`): each
    /// run and actor, the executors and credentials its actions used, and
    /// their destinations; busiest first.
    pub requestors: Vec<RequestorOut>,
}

#[derive(Debug, Serialize)]
pub(crate) struct RequestorOut {
    pub system: String,
    pub run: Option<String>,
    pub actor: Option<String>,
    pub display: Option<String>,
    /// `runner` and/or `descendant`: where the claim entered the process tree.
    pub claims: Vec<String>,
    /// Ids in `executors`.
    pub executors: Vec<u32>,
    /// Credential ids (`uid:<n>`, `sa:<ns>/<name>`).
    pub credentials: Vec<String>,
    /// Executor and credential links not listed (past the limit).
    pub dropped: u64,
    #[serde(flatten)]
    pub activity: Activity,
}

#[derive(Debug, Serialize)]
pub(crate) struct Period {
    pub first: Option<String>,
    pub last: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Chain {
    /// `intact`, `tampered`, `gaps_declared`.
    pub verdict: &'static str,
    /// One line an operator reads.
    pub detail: String,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub tampered_at: Option<Tampered>,
    /// Gaps and unvouched stretches the tracer declared.
    pub declared: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Tampered {
    pub file: String,
    pub line: u64,
    pub seq: Option<u64>,
    pub problem: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct Activity {
    pub execs: u64,
    pub connects: u64,
    /// Distinct destinations; a floor when `destinations_at_least`.
    pub destinations: u64,
    pub destinations_at_least: bool,
    /// CPU seconds (user + system) from exit events and usage samples; null
    /// when none carried usage.
    pub cpu_seconds: Option<f64>,
    pub top_destinations: Vec<DestOut>,
}

#[derive(Debug, Serialize)]
pub(crate) struct DestOut {
    pub destination: String,
    pub connects: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Credential {
    /// `uid:<n>` or `sa:<namespace>/<name>`.
    pub id: String,
    /// `uid` or `service_account`.
    pub kind: &'static str,
    pub uid: Option<u64>,
    pub user: Option<String>,
    pub namespace: Option<String>,
    pub service_account: Option<String>,
    /// More than one executor acted under it.
    pub shared: bool,
    /// The executors that acted under it (busiest first), each with what it
    /// did under this credential.
    pub executors: Vec<CredExecutor>,
    /// Executors not listed (past the per-credential limit).
    pub executors_dropped: u64,
    #[serde(flatten)]
    pub activity: Activity,
}

#[derive(Debug, Serialize)]
pub(crate) struct CredExecutor {
    /// Its id in `executors`.
    pub executor: u32,
    #[serde(flatten)]
    pub activity: Activity,
}

#[derive(Debug, Serialize)]
pub(crate) struct ExecutorOut {
    pub id: u32,
    /// The pod's owner (`namespace/Kind/name`), `container NAME`, `unit NAME` or `host`.
    pub workload: String,
    pub spiffe_ids: Vec<String>,
    /// `cron`, `ssh`, `ci` (a known launcher) or `top` (the topmost process).
    pub root_kind: &'static str,
    pub root: String,
    /// Credential ids it acted under.
    pub credentials: Vec<String>,
    #[serde(flatten)]
    pub activity: Activity,
}

#[derive(Debug, Serialize)]
pub(crate) struct IdentityOut {
    /// `spiffe`, `workload` or `login`.
    pub kind: &'static str,
    pub name: String,
    #[serde(flatten)]
    pub activity: Activity,
}

pub(crate) fn cred_id(k: &CredKey) -> String {
    match k {
        CredKey::Uid(u) => format!("uid:{u}"),
        CredKey::ServiceAccount { namespace, name } => format!("sa:{namespace}/{name}"),
    }
}

fn top(d: &Dests) -> Vec<DestOut> {
    let mut v: Vec<(&str, u64)> = d.counts.iter().map(|(k, n)| (&**k, *n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.truncate(TOP_DESTINATIONS);
    v.into_iter()
        .map(|(k, n)| DestOut {
            destination: k.to_owned(),
            connects: n,
        })
        .collect()
}

fn activity(s: &Stats) -> Activity {
    Activity {
        execs: s.execs,
        connects: s.connects,
        destinations: s.dests.counts.len() as u64,
        destinations_at_least: s.dests.capped,
        cpu_seconds: s.usage_seen.then_some(s.cpu_ns as f64 / 1e9),
        top_destinations: top(&s.dests),
    }
}

pub(crate) fn chain(r: &verify::Report) -> Chain {
    let (verdict, detail) = match (&r.finding, r.declared.is_empty()) {
        (Some(f), _) => (
            "tampered",
            format!(
                "TAMPERED at {} line {}{}: {}; {} records verified before it, events after it are counted but not vouched for",
                f.file.display(),
                f.line,
                f.seq.map(|s| format!(" (seq {s})")).unwrap_or_default(),
                f.problem,
                r.records
            ),
        ),
        (None, false) => (
            "gaps_declared",
            format!(
                "intact, with {} gaps or unvouched stretches the tracer declared ({} records)",
                r.declared.len(),
                r.records
            ),
        ),
        (None, true) => ("intact", format!("intact ({} records)", r.records)),
    };
    let declared = r
        .declared
        .iter()
        .map(|d| {
            let what = match &d.what {
                verify::DeclaredKind::SinkGap { records } => {
                    format!("{records} records lost unwritten")
                }
                verify::DeclaredKind::Unvouched {
                    first,
                    last,
                    reason,
                } => {
                    format!("seq {first}..={last} not vouched for: {reason}")
                }
            };
            format!(
                "{} line {} (seq {}): {what}",
                d.file.display(),
                d.line,
                d.seq
            )
        })
        .collect();
    Chain {
        verdict,
        detail,
        records: r.records,
        first_seq: r.first_seq,
        last_seq: r.last_seq,
        tampered_at: r.finding.as_ref().map(|f| Tampered {
            file: f.file.display().to_string(),
            line: f.line,
            seq: f.seq,
            problem: f.problem.to_string(),
        }),
        declared,
    }
}

pub(crate) fn summarise(g: &Grouper, verified: &verify::Report) -> Summary {
    let executors: Vec<ExecutorOut> = g
        .executors
        .iter()
        .enumerate()
        .map(|(i, e)| ExecutorOut {
            id: i as u32,
            workload: e.key.workload.clone(),
            spiffe_ids: e.key.spiffe_ids.clone(),
            root_kind: e.key.root.kind,
            root: e.key.root.label.clone(),
            credentials: e
                .credentials
                .iter()
                .filter_map(|&c| g.credentials.get(c as usize))
                .map(|c| cred_id(&c.key))
                .collect(),
            activity: activity(&e.stats),
        })
        .collect();
    let mut credentials: Vec<Credential> = g
        .credentials
        .iter()
        .map(|c| {
            let (kind, uid, namespace, sa) = match &c.key {
                CredKey::Uid(u) => ("uid", Some(*u), None, None),
                CredKey::ServiceAccount { namespace, name } => (
                    "service_account",
                    None,
                    Some(namespace.clone()),
                    Some(name.clone()),
                ),
            };
            let mut ex: Vec<CredExecutor> = c
                .executors
                .iter()
                .filter_map(|&p| g.pairs.get(p as usize))
                .map(|p| CredExecutor {
                    executor: p.executor,
                    activity: activity(&p.stats),
                })
                .collect();
            // Busiest executor first.
            ex.sort_by_key(|x| {
                (
                    std::cmp::Reverse(x.activity.execs + x.activity.connects),
                    x.executor,
                )
            });
            Credential {
                id: cred_id(&c.key),
                kind,
                uid,
                user: c.user_name.clone(),
                namespace,
                service_account: sa,
                shared: c.executors.len() as u64 + c.executors_dropped > 1,
                executors: ex,
                executors_dropped: c.executors_dropped,
                activity: activity(&c.stats),
            }
        })
        .collect();
    credentials.sort_by(|a, b| {
        b.shared
            .cmp(&a.shared)
            .then(b.executors.len().cmp(&a.executors.len()))
            .then(
                (b.activity.execs + b.activity.connects)
                    .cmp(&(a.activity.execs + a.activity.connects)),
            )
            .then(a.id.cmp(&b.id))
    });
    let mut identities: Vec<IdentityOut> = g
        .identities
        .iter()
        .map(|i| IdentityOut {
            kind: match i.kind {
                IdentityKind::Spiffe => "spiffe",
                IdentityKind::Workload => "workload",
                IdentityKind::Login => "login",
            },
            name: i.name.clone(),
            activity: activity(&i.stats),
        })
        .collect();
    identities.sort_by(|a, b| {
        a.kind
            .cmp(b.kind)
            .then(
                (b.activity.execs + b.activity.connects)
                    .cmp(&(a.activity.execs + a.activity.connects)),
            )
            .then(a.name.cmp(&b.name))
    });
    let mut requestors: Vec<RequestorOut> = g
        .requestors
        .iter()
        .map(|r| RequestorOut {
            system: r.key.system.clone(),
            run: r.key.run.clone(),
            actor: r.key.actor.clone(),
            display: r.display.clone(),
            claims: r.claims.clone(),
            executors: r.executors.clone(),
            credentials: r
                .credentials
                .iter()
                .filter_map(|&c| g.credentials.get(c as usize))
                .map(|c| cred_id(&c.key))
                .collect(),
            dropped: r.dropped,
            activity: activity(&r.stats),
        })
        .collect();
    requestors.sort_by(|a, b| {
        (b.activity.execs + b.activity.connects)
            .cmp(&(a.activity.execs + a.activity.connects))
            .then_with(|| a.display.cmp(&b.display))
    });
    Summary {
        report_version: 1,
        files: verified
            .files
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        period: Period {
            first: g.first_time.clone(),
            last: g.last_time.clone(),
        },
        chain: chain(verified),
        totals: g.counts.clone(),
        credentials,
        executors,
        identities,
        requestors,
    }
}
