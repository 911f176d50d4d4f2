//! `--format html`: one self-contained page. No script, no external fetch
//! (the Content-Security-Policy forbids both), inline CSS and SVG only. Every
//! string from the events (names, argv) is written through [`esc`]: a
//! workload controls those, so a hostile `<script>` reads as text.
//!
//! The numbers are also in `data-*` attributes and element ids, for tests
//! (and scripts of the reader's own) to read the page back.
use std::{collections::HashMap, fmt::Write as _};

use anyhow::Result;

use super::summary::{Activity, Summary};

/// Text for HTML element content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Controls have no business in a page; show them as escapes.
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `s` cut to `max` characters for a label in the picture (the tables keep it whole).
fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn dests(a: &Activity) -> String {
    if a.destinations_at_least {
        format!("&ge;{}", a.destinations)
    } else {
        a.destinations.to_string()
    }
}

/// The five destinations reached most, with their connects, one a line.
fn top5(a: &Activity) -> String {
    a.top_destinations
        .iter()
        .take(5)
        .map(|d| format!("<code>{}</code>&nbsp;({})", esc(&d.destination), d.connects))
        .collect::<Vec<_>>()
        .join("<br>")
}

fn cpu(a: &Activity) -> String {
    a.cpu_seconds
        .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}"))
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
.meta{color:#5a6272} .ok{color:#176b2c;font-weight:600} .bad{color:#b3261e;font-weight:600}
table{border-collapse:collapse;margin:4px 0 12px} td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #e3e6ec;vertical-align:top}
th{background:#f3f5f8;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.cred td{background:#fafbfc;font-weight:600} tr.exec td:first-child{padding-left:28px}
.shared{background:#b3261e;color:#fff;border-radius:3px;padding:0 6px;font-size:12px}
code{font:12px ui-monospace,monospace;word-break:break-all}
svg text{font:12px system-ui,sans-serif} .lbl{fill:#1d2330} .sub{fill:#5a6272;font-size:11px}
";

/// Nodes of each column drawn, at most.
const PICTURE_CREDENTIALS: usize = 12;
const PICTURE_EXECUTORS: usize = 24;
const PICTURE_DESTINATIONS: usize = 16;

/// The picture: credentials -> executors -> top destinations.
fn picture(s: &Summary) -> String {
    let creds: Vec<_> = s.credentials.iter().take(PICTURE_CREDENTIALS).collect();
    let mut execs: Vec<u32> = Vec::new();
    for c in &creds {
        for e in c.executors.iter().map(|x| x.executor) {
            if !execs.contains(&e) && execs.len() < PICTURE_EXECUTORS {
                execs.push(e);
            }
        }
    }
    let mut dest_rank: HashMap<&str, u64> = HashMap::new();
    for &e in &execs {
        if let Some(x) = s.executors.get(e as usize) {
            for d in x.activity.top_destinations.iter().take(3) {
                *dest_rank.entry(&d.destination).or_default() += d.connects;
            }
        }
    }
    let mut dests: Vec<(&str, u64)> = dest_rank.into_iter().collect();
    dests.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    dests.truncate(PICTURE_DESTINATIONS);

    let row = 46.0_f64;
    let n = creds.len().max(execs.len()).max(dests.len()).max(1);
    let height = n as f64 * row + 40.0;
    let (w, x0, x1, x2, bw) = (1180.0, 10.0, 430.0, 860.0, 300.0);
    let y = |i: usize, of: usize| 30.0 + (height - 40.0) * (i as f64 + 0.5) / of.max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg id="picture" width="{w}" height="{height}" viewBox="0 0 {w} {height}" role="img" aria-label="credentials, executors and destinations">"#
    );
    let _ = write!(
        svg,
        r##"<text x="{x0}" y="16" class="sub">CREDENTIAL</text><text x="{x1}" y="16" class="sub">EXECUTOR (workload | lineage root)</text><text x="{x2}" y="16" class="sub">DESTINATION (connects)</text>"##
    );
    let epos: HashMap<u32, f64> = execs
        .iter()
        .enumerate()
        .map(|(i, &e)| (e, y(i, execs.len())))
        .collect();
    let dpos: HashMap<&str, f64> = dests
        .iter()
        .enumerate()
        .map(|(i, (d, _))| (*d, y(i, dests.len())))
        .collect();
    // Edges first, under the boxes.
    for (i, c) in creds.iter().enumerate() {
        let cy = y(i, creds.len());
        let color = if c.shared { "#b3261e" } else { "#8a93a3" };
        for ce in &c.executors {
            if let Some(ey) = epos.get(&ce.executor) {
                let _ = write!(
                    svg,
                    r#"<path d="M{} {cy} C{} {cy} {} {ey} {x1} {ey}" stroke="{color}" stroke-width="{}" fill="none" opacity="0.7"/>"#,
                    x0 + bw,
                    x0 + bw + 60.0,
                    x1 - 60.0,
                    if c.shared { 2.5 } else { 1.2 }
                );
            }
        }
    }
    for &e in &execs {
        let (Some(x), Some(ey)) = (s.executors.get(e as usize), epos.get(&e)) else {
            continue;
        };
        for d in x.activity.top_destinations.iter().take(3) {
            if let Some(dy) = dpos.get(d.destination.as_str()) {
                let _ = write!(
                    svg,
                    r##"<path d="M{} {ey} C{} {ey} {} {dy} {x2} {dy}" stroke="#3a6fd8" stroke-width="1.2" fill="none" opacity="0.6"/>"##,
                    x1 + bw,
                    x1 + bw + 60.0,
                    x2 - 60.0,
                );
            }
        }
    }
    let node = |svg: &mut String,
                x: f64,
                yc: f64,
                fill: &str,
                stroke: &str,
                a: &str,
                b: &str,
                id: &str| {
        let _ = write!(
            svg,
            r#"<g id="{id}"><rect x="{x}" y="{}" width="{bw}" height="36" rx="5" fill="{fill}" stroke="{stroke}"/><text x="{}" y="{}" class="lbl">{}</text><text x="{}" y="{}" class="sub">{}</text></g>"#,
            yc - 18.0,
            x + 8.0,
            yc - 3.0,
            esc(&short(a, 44)),
            x + 8.0,
            yc + 12.0,
            esc(&short(b, 50)),
        );
    };
    for (i, c) in creds.iter().enumerate() {
        let name = match &c.user {
            Some(u) => format!("{} ({u})", c.id),
            None => c.id.clone(),
        };
        let sub = format!(
            "{}{} executors, {} execs, {} connects",
            if c.shared { "SHARED: " } else { "" },
            c.executors.len() as u64 + c.executors_dropped,
            c.activity.execs,
            c.activity.connects
        );
        let (fill, stroke) = if c.shared {
            ("#fdecea", "#b3261e")
        } else {
            ("#f3f5f8", "#8a93a3")
        };
        node(
            &mut svg,
            x0,
            y(i, creds.len()),
            fill,
            stroke,
            &name,
            &sub,
            &format!("pic-cred-{i}"),
        );
    }
    for &e in &execs {
        let (Some(x), Some(ey)) = (s.executors.get(e as usize), epos.get(&e)) else {
            continue;
        };
        let a = format!("#{} {} | {}", x.id, x.workload, x.root);
        let mut b = format!(
            "{} execs, {} connects",
            x.activity.execs, x.activity.connects
        );
        if let Some(id) = x.spiffe_ids.first() {
            b = format!("{id} · {b}");
        }
        node(
            &mut svg,
            x1,
            *ey,
            "#eef3fd",
            "#3a6fd8",
            &a,
            &b,
            &format!("pic-exec-{e}"),
        );
    }
    for (i, (d, n)) in dests.iter().enumerate() {
        node(
            &mut svg,
            x2,
            y(i, dests.len()),
            "#f1f8f3",
            "#2e7d4f",
            d,
            &format!("{n} connects"),
            &format!("pic-dest-{i}"),
        );
    }
    svg.push_str("</svg>");
    svg
}

pub(crate) fn render(s: &Summary) -> Result<String> {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    // No network, no script: only inline style and data: images.
    h.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width\"><title>tracer report</title><style>");
    h.push_str(STYLE);
    h.push_str("</style></head><body>");
    let _ = write!(
        h,
        r#"<h1>tracer report</h1><div class="meta">{} files · {} … {}</div>"#,
        s.files.len(),
        esc(s.period.first.as_deref().unwrap_or("-")),
        esc(s.period.last.as_deref().unwrap_or("-")),
    );
    let cls = if s.chain.verdict == "intact" {
        "ok"
    } else {
        "bad"
    };
    let _ = write!(
        h,
        r#"<p>Chain: <span id="chain-verdict" data-verdict="{}" class="{cls}">{}</span></p>"#,
        esc(s.chain.verdict),
        esc(&s.chain.detail)
    );
    if !s.chain.declared.is_empty() {
        h.push_str("<ul>");
        for d in &s.chain.declared {
            let _ = write!(h, "<li>{}</li>", esc(d));
        }
        h.push_str("</ul>");
    }
    let t = &s.totals;
    let _ = write!(
        h,
        r#"<p class="meta" id="totals" data-lines="{}" data-execs="{}" data-connects="{}" data-exits="{}" data-unreadable="{}" data-unattributed="{}">{} lines · {} execs · {} connects · {} exits · {} unreadable · {} unattributed</p>"#,
        t.lines,
        t.execs,
        t.connects,
        t.exits,
        t.unreadable,
        t.unattributed,
        t.lines,
        t.execs,
        t.connects,
        t.exits,
        t.unreadable,
        t.unattributed
    );
    if t.executors_dropped + t.credentials_dropped + t.identities_dropped + t.pairs_dropped > 0 {
        let _ = write!(
            h,
            r#"<p class="bad" id="dropped">Limits reached: events of {} executors, {} credentials, {} identities, {} credential-executor pairs not counted.</p>"#,
            t.executors_dropped, t.credentials_dropped, t.identities_dropped, t.pairs_dropped
        );
    }
    h.push_str("<h2>Who used which credential, and reached what</h2>");
    h.push_str(&picture(s));

    h.push_str("<h2>Credentials and their executors</h2><table id=\"credentials\"><tr><th>Credential / executor</th><th>Executors</th><th>Execs</th><th>Connects</th><th>Destinations</th><th>CPU s</th><th>Top destinations</th></tr>");
    for c in &s.credentials {
        let name = match &c.user {
            Some(u) => format!("{} ({})", esc(&c.id), esc(u)),
            None => esc(&c.id),
        };
        let n_exec = c.executors.len() as u64 + c.executors_dropped;
        let _ = write!(
            h,
            r#"<tr class="cred" data-credential="{}" data-shared="{}" data-executors="{n_exec}" data-execs="{}" data-connects="{}" data-destinations="{}"><td>{name} {}</td><td class="n">{n_exec}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td></td></tr>"#,
            esc(&c.id),
            c.shared,
            c.activity.execs,
            c.activity.connects,
            c.activity.destinations,
            if c.shared {
                r#"<span class="shared">SHARED</span>"#
            } else {
                ""
            },
            c.activity.execs,
            c.activity.connects,
            dests(&c.activity),
            cpu(&c.activity),
        );
        for ce in &c.executors {
            let Some(x) = s.executors.get(ce.executor as usize) else {
                continue;
            };
            let a = &ce.activity;
            let spiffe = if x.spiffe_ids.is_empty() {
                String::new()
            } else {
                format!("<br><code>{}</code>", esc(&x.spiffe_ids.join(", ")))
            };
            let top = top5(a);
            let _ = write!(
                h,
                r#"<tr class="exec" data-credential="{}" data-executor="{}" data-execs="{}" data-connects="{}"><td>#{} {} · {}: <code>{}</code>{spiffe}</td><td></td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td>{}</td></tr>"#,
                esc(&c.id),
                x.id,
                a.execs,
                a.connects,
                x.id,
                esc(&x.workload),
                esc(x.root_kind),
                esc(&x.root),
                a.execs,
                a.connects,
                dests(a),
                cpu(a),
                top,
            );
        }
    }
    h.push_str("</table>");

    h.push_str("<h2>Identities</h2><table id=\"identities\"><tr><th>Kind</th><th>Identity</th><th>Execs</th><th>Connects</th><th>Destinations</th><th>CPU s</th><th>Top destinations</th></tr>");
    for i in &s.identities {
        let top = top5(&i.activity);
        let _ = write!(
            h,
            r#"<tr data-identity-kind="{}" data-identity="{}" data-execs="{}" data-connects="{}"><td>{}</td><td><code>{}</code></td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td>{}</td></tr>"#,
            i.kind,
            esc(&i.name),
            i.activity.execs,
            i.activity.connects,
            i.kind,
            esc(&i.name),
            i.activity.execs,
            i.activity.connects,
            dests(&i.activity),
            cpu(&i.activity),
            top,
        );
    }
    h.push_str("</table>");
    if !s.requestors.is_empty() {
        h.push_str("<h2>Requestors</h2><p class=\"meta\">Who asked automation for the actions, as its environment claims (see the threat model: a claim, joined by run id with the CI system's own audit log).</p><table id=\"requestors\"><tr><th>System</th><th>Requestor</th><th>Claim</th><th>Executors</th><th>Credentials</th><th>Execs</th><th>Connects</th><th>Destinations</th><th>Top destinations</th></tr>");
        for r in &s.requestors {
            let top = top5(&r.activity);
            let executors: Vec<String> = r.executors.iter().map(|e| format!("#{e}")).collect();
            let creds: Vec<String> = r.credentials.iter().map(|c| esc(c)).collect();
            let _ = write!(
                h,
                r#"<tr data-requestor-system="{}" data-requestor-run="{}" data-requestor-actor="{}" data-execs="{}" data-connects="{}"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td>{}</td></tr>"#,
                esc(&r.system),
                esc(r.run.as_deref().unwrap_or("")),
                esc(r.actor.as_deref().unwrap_or("")),
                r.activity.execs,
                r.activity.connects,
                esc(&r.system),
                esc(r.display.as_deref().unwrap_or("-")),
                esc(&r.claims.join(", ")),
                executors.join(" "),
                creds.join("<br>"),
                r.activity.execs,
                r.activity.connects,
                dests(&r.activity),
                top,
            );
        }
        h.push_str("</table>");
    }
    let files: Vec<String> = s.files.iter().map(|f| esc(f)).collect();
    let _ = write!(
        h,
        r#"<p class="meta">Files: {}</p></body></html>"#,
        files.join(", ")
    );
    h.push('\n');
    Ok(h)
}
