//! `--format table`: aligned columns for a terminal. Strings from events are
//! shown with terminal-unsafe characters escaped (see [`crate::escape`]).
use std::fmt::Write as _;

use super::summary::{Activity, Summary};

fn safe(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if crate::escape::terminal_unsafe(c) {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn dests(a: &Activity) -> String {
    if a.destinations_at_least {
        format!(">={}", a.destinations)
    } else {
        a.destinations.to_string()
    }
}

/// The three destinations reached most, comma-separated.
fn top3(a: &Activity) -> String {
    a.top_destinations
        .iter()
        .take(3)
        .map(|d| safe(&d.destination))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cpu(a: &Activity) -> String {
    a.cpu_seconds
        .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}"))
}

/// Characters a terminal shows (color sequences take no room).
fn width(s: &str) -> usize {
    let mut n = 0;
    let mut in_seq = false;
    for c in s.chars() {
        match (in_seq, c) {
            (false, '\x1b') => in_seq = true,
            (true, 'm') => in_seq = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// Rows as columns padded to the widest cell.
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| width(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(width(c));
            }
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, c) in cells.enumerate() {
            let pad = w.get(i).copied().unwrap_or(0).saturating_sub(width(c));
            s.push_str(c);
            s.extend(std::iter::repeat_n(' ', pad + 2));
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut out, &mut head.iter().copied());
    for r in rows {
        line(&mut out, &mut r.iter().map(String::as_str));
    }
    out
}

pub(crate) fn render(s: &Summary, color: bool) -> String {
    let (bold, red, off) = if color {
        ("\x1b[1m", "\x1b[31m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{bold}tracer report{off}: {} files, {} .. {}",
        s.files.len(),
        safe(s.period.first.as_deref().unwrap_or("-")),
        safe(s.period.last.as_deref().unwrap_or("-"))
    );
    let warn = if s.chain.verdict == "intact" { "" } else { red };
    let _ = writeln!(out, "chain: {warn}{}{off}", safe(&s.chain.detail));
    for d in &s.chain.declared {
        let _ = writeln!(out, "  declared: {}", safe(d));
    }
    let t = &s.totals;
    let _ = writeln!(
        out,
        "events: {} lines, {} execs, {} connects, {} exits; {} unreadable, {} unattributed",
        t.lines, t.execs, t.connects, t.exits, t.unreadable, t.unattributed
    );
    if t.executors_dropped + t.credentials_dropped + t.identities_dropped + t.pairs_dropped > 0 {
        let _ = writeln!(
            out,
            "{red}limits reached{off}: events of {} executors, {} credentials, {} identities, {} credential-executor pairs not counted",
            t.executors_dropped, t.credentials_dropped, t.identities_dropped, t.pairs_dropped
        );
    }

    let _ = writeln!(
        out,
        "\n{bold}Credentials and the executors that used them{off}"
    );
    let mut rows = Vec::new();
    for c in &s.credentials {
        let name = match (c.kind, &c.user) {
            ("uid", Some(u)) => format!("{} ({})", c.id, safe(u)),
            _ => safe(&c.id),
        };
        let flag = if c.shared {
            format!("{red}SHARED{off}")
        } else {
            String::new()
        };
        rows.push(vec![
            name,
            flag,
            (c.executors.len() as u64 + c.executors_dropped).to_string(),
            c.activity.execs.to_string(),
            c.activity.connects.to_string(),
            dests(&c.activity),
            cpu(&c.activity),
            String::new(),
        ]);
        for ce in &c.executors {
            let Some(x) = s.executors.get(ce.executor as usize) else {
                continue;
            };
            let a = &ce.activity;
            let mut who = format!("  #{} {} | {}", x.id, safe(&x.workload), safe(&x.root));
            if !x.spiffe_ids.is_empty() {
                let _ = write!(who, " | {}", safe(&x.spiffe_ids.join(",")));
            }
            rows.push(vec![
                who,
                String::new(),
                String::new(),
                a.execs.to_string(),
                a.connects.to_string(),
                dests(a),
                cpu(a),
                top3(a),
            ]);
        }
    }
    out.push_str(&table(
        &[
            "CREDENTIAL / EXECUTOR",
            "",
            "EXECUTORS",
            "EXECS",
            "CONNECTS",
            "DESTS",
            "CPU S",
            "TOP DESTINATIONS",
        ],
        &rows,
    ));

    if !s.requestors.is_empty() {
        let _ = writeln!(
            out,
            "\n{bold}Requestors (claimed by automation's environment){off}"
        );
        let rows: Vec<Vec<String>> = s
            .requestors
            .iter()
            .map(|r| {
                let executors = r
                    .executors
                    .iter()
                    .map(|e| format!("#{e}"))
                    .collect::<Vec<_>>()
                    .join(",");
                vec![
                    safe(&r.system),
                    safe(r.display.as_deref().unwrap_or("-")),
                    safe(&r.claims.join(",")),
                    executors,
                    safe(&r.credentials.join(",")),
                    r.activity.execs.to_string(),
                    r.activity.connects.to_string(),
                    dests(&r.activity),
                    top3(&r.activity),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "SYSTEM",
                "REQUESTOR",
                "CLAIM",
                "EXECUTORS",
                "CREDENTIALS",
                "EXECS",
                "CONNECTS",
                "DESTS",
                "TOP DESTINATIONS",
            ],
            &rows,
        ));
    }

    let _ = writeln!(out, "\n{bold}Identities{off}");
    let rows: Vec<Vec<String>> = s
        .identities
        .iter()
        .map(|i| {
            vec![
                i.kind.to_owned(),
                safe(&i.name),
                i.activity.execs.to_string(),
                i.activity.connects.to_string(),
                dests(&i.activity),
                cpu(&i.activity),
                top3(&i.activity),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "KIND",
            "IDENTITY",
            "EXECS",
            "CONNECTS",
            "DESTS",
            "CPU S",
            "TOP DESTINATIONS",
        ],
        &rows,
    ));
    out
}
