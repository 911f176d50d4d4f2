//! Rendering for `tracer tail`: one compact, terminal-safe line per event (or the
//! JSON as written with `--json`), filtered and written to stdout per batch.
use std::io::{self, Write as _};

use anyhow::Context as _;

use super::{Filter, base_name};
use crate::event::view::{self, Line};

const DIM: &str = "2";
const BOLD_RED: &str = "1;31";
const RED: &str = "31";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const BLUE: &str = "34";
const MAGENTA: &str = "35";
const CYAN: &str = "36";

fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

/// Characters that must not reach a terminal raw: controls (escape sequences)
/// and bidi controls (text that reads differently from what it is).
fn unsafe_char(c: char) -> bool {
    crate::escape::terminal_unsafe(c)
}

fn escape_char(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        '\x1b' => out.push_str("\\e"),
        c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c => out.push_str(&format!("\\u{:04x}", c as u32)),
    }
}

/// A field for display, with unsafe characters escaped.
/// ` shop/cart:https pod shop/cart-0 (spiffe://…)`: the destination's
/// Service (with its port's name) and pod, each part made safe to print;
/// empty when the event names neither.
fn destination_names(d: &view::Endpoint<'_>) -> String {
    let mut out = String::new();
    let named = |r: &view::KubeRef<'_>| {
        Some(clean(&format!(
            "{}/{}",
            r.namespace.as_deref()?,
            r.name.as_deref()?
        )))
    };
    if let Some(svc) = d.service.as_ref()
        && let Some(n) = named(svc)
    {
        out.push(' ');
        out.push_str(&n);
        if let Some(p) = svc.port_name.as_deref() {
            out.push(':');
            out.push_str(&clean(p));
        }
    }
    if let Some(pod) = d.pod.as_ref()
        && let Some(n) = named(pod)
    {
        out.push_str(" pod ");
        out.push_str(&n);
        if let Some(id) = pod.spiffe_id.as_deref() {
            out.push_str(&format!(" ({})", clean(id)));
        }
    }
    out
}

fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if unsafe_char(c) {
            escape_char(c, &mut out);
        } else {
            out.push(c);
        }
    }
    out
}

/// Quote for a POSIX shell where needed; `$'…'` where there are characters to escape.
fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_owned();
    }
    if s.chars().any(unsafe_char) {
        let mut out = String::from("$'");
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("\\'"),
                c if unsafe_char(c) => escape_char(c, &mut out),
                c => out.push(c),
            }
        }
        out.push('\'');
        return out;
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `2026-11-23T20:21:47.123456789Z` -> `2026-11-23T20:21:47.123Z`.
fn short_time(t: &str) -> String {
    match t.get(..23) {
        Some(head) if t.as_bytes().get(19) == Some(&b'.') && t.ends_with('Z') => format!("{head}Z"),
        _ => clean(t),
    }
}

fn identity(ex: Option<&view::Executor>) -> String {
    let id = ex.and_then(|ex| {
        ex.identity
            .as_ref()?
            .spiffe_ids
            .as_ref()?
            .first()?
            .as_deref()
    });
    if let Some(id) = id {
        return clean(id);
    }
    let w = ex.and_then(|ex| ex.workload.as_ref());
    if let Some(pod) = w.and_then(|w| w.pod.as_ref()) {
        let ns = pod.namespace.as_deref().unwrap_or("?");
        let name = pod.name.as_deref().or(pod.uid.as_deref()).unwrap_or("?");
        return clean(&format!("{ns}/{name}"));
    }
    if let Some(c) = w.and_then(|w| w.container.as_ref()) {
        let id = c.id.as_deref().map(|id| id.get(..12).unwrap_or(id));
        if let Some(name) = c.name.as_deref().or(id) {
            return clean(&format!("container:{name}"));
        }
    }
    match w.and_then(|w| w.unit.as_deref()) {
        Some(unit) => clean(unit),
        None => "host".to_owned(),
    }
}

fn user(ex: Option<&view::Executor>) -> String {
    let u = ex.and_then(|ex| ex.user.as_ref());
    let mut s = match (u.and_then(|u| u.name.as_deref()), u.and_then(|u| u.uid)) {
        (Some(name), _) => clean(name),
        (None, Some(uid)) => uid.to_string(),
        (None, None) => "?".to_owned(),
    };
    if let Some(login) = ex.and_then(|ex| ex.login.as_ref()) {
        let who = match (login.name.as_deref(), login.auid) {
            (Some(name), _) => clean(name),
            (None, Some(auid)) => auid.to_string(),
            (None, None) => "?".to_owned(),
        };
        s.push_str(" auid=");
        s.push_str(&who);
    }
    s.push_str(authority_marks(ex, u.and_then(|u| u.uid)));
    s
}

/// Where the executor's authority is not what its uid suggests: a user that
/// holds capabilities (`[caps+]`), root without all of them (`[caps-]`), a
/// process in a user namespace other than the host's (`[userns]`).
fn authority_marks(ex: Option<&view::Executor>, uid: Option<u64>) -> &'static str {
    let Some(a) = ex.and_then(|ex| ex.authority.as_ref()) else {
        return "";
    };
    let effective = a.capabilities.as_ref().and_then(|c| c.effective);
    let caps = match (uid, effective) {
        (Some(0), Some(view::CapSet::Count(_) | view::CapSet::AllExcept(_))) => " [caps-]",
        (Some(u), Some(view::CapSet::All | view::CapSet::AllExcept(_))) if u != 0 => " [caps+]",
        (Some(u), Some(view::CapSet::Count(n))) if u != 0 && n > 0 => " [caps+]",
        _ => "",
    };
    let userns = a.user_namespace.as_ref().and_then(|n| n.host) == Some(false);
    match (caps, userns) {
        ("", true) => " [userns]",
        (" [caps-]", true) => " [caps-] [userns]",
        (" [caps+]", true) => " [caps+] [userns]",
        (c, _) => c,
    }
}

fn outcome(act: Option<&view::Action>, color: bool) -> String {
    let o = act.and_then(|a| a.outcome.as_deref()).unwrap_or("?");
    let code = match o {
        "success" => GREEN,
        "in_progress" => YELLOW,
        _ => RED,
    };
    let mut s = clean(o);
    if let Some(e) = act.and_then(|a| a.error.as_deref()) {
        s.push_str(&format!(" ({})", clean(e)));
    }
    paint(color, code, &s)
}

/// A summary's outcomes: `success 38, failure 3 (ECONNREFUSED 3)`, the
/// outcomes with none left out.
fn aggregate_outcomes(g: &view::Aggregate, color: bool) -> String {
    let mut parts = Vec::new();
    for name in ["success", "in_progress", "failure", "unknown"] {
        let n = g
            .outcomes
            .as_ref()
            .and_then(|o| o.get(name).copied().flatten())
            .unwrap_or(0);
        if n == 0 {
            continue;
        }
        let code = match name {
            "success" => GREEN,
            "in_progress" => YELLOW,
            _ => RED,
        };
        let mut s = format!("{name} {n}");
        if name == "failure" {
            let errors: Vec<String> = g
                .errors
                .iter()
                .flatten()
                .map(|(e, n)| format!("{} {}", clean(e), n.unwrap_or(0)))
                .collect();
            if !errors.is_empty() {
                s.push_str(&format!(" ({})", errors.join(", ")));
            }
        }
        parts.push(paint(color, code, &s));
    }
    if parts.is_empty() {
        return "?".to_owned();
    }
    parts.join(", ")
}

/// Causes in the order the event format lists them; unknown ones after.
const KNOWN_LOSSES: [&str; 7] = [
    "ring_full",
    "read_fault",
    "pending_full",
    "scratch",
    "malformed",
    "sink_error",
    "sends_unreported",
];

/// `!! tracer lost N events: cause=n ...` of a loss record.
fn loss_line(ev: &Line, color: bool) -> String {
    let lost = ev.lost.as_ref();
    let total: u64 = lost.map_or(0, |m| m.values().flatten().sum());
    let mut causes: Vec<(String, u64)> = KNOWN_LOSSES
        .iter()
        .filter_map(|k| Some((k.to_string(), (*lost?.get(*k)?)?)))
        .collect();
    if let Some(m) = lost {
        causes.extend(
            m.iter()
                .filter(|(k, _)| !KNOWN_LOSSES.contains(&k.as_ref()))
                .filter_map(|(k, v)| Some((clean(k), (*v)?))),
        );
    }
    let detail: Vec<String> = causes
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    let s = if total == 1 { "" } else { "s" };
    let mut msg = format!("!! tracer lost {total} event{s}");
    if !detail.is_empty() {
        msg.push_str(": ");
        msg.push_str(&detail.join(" "));
    }
    let time = short_time(ev.time.as_deref().unwrap_or("?"));
    format!(
        "{} {}",
        paint(color, DIM, &time),
        paint(color, BOLD_RED, &msg)
    )
}

/// One line for a human: time, kind, identity, user, then what was done.
pub(crate) fn compact_line(ev: &Line, color: bool) -> String {
    let kind = ev.kind().unwrap_or("?");
    match kind {
        "missed" => {
            let n = ev.missed.unwrap_or(0);
            let s = if n == 1 { "" } else { "s" };
            return paint(
                color,
                BOLD_RED,
                &format!("!! {n} event{s} missed by this reader"),
            );
        }
        "loss" => return loss_line(ev, color),
        _ => {}
    }
    let ex = ev.executor.as_ref();
    let act = ev.action.as_ref();
    let kind_code = match kind {
        "exec" => GREEN,
        "connect" => CYAN,
        "fork" => BLUE,
        _ => MAGENTA,
    };
    let mut out = format!(
        "{} {} {} {}",
        paint(color, DIM, &short_time(ev.time.as_deref().unwrap_or("?"))),
        paint(color, kind_code, &format!("{:<7}", clean(kind))),
        paint(color, YELLOW, &identity(ex)),
        user(ex),
    );
    let binary = act
        .and_then(|a| a.binary.as_deref())
        .or(ex.and_then(|ex| ex.binary.as_deref()))
        .unwrap_or("?");
    out.push(' ');
    out.push_str(&paint(color, "1", &shell_quote(binary)));
    let pid = ex.and_then(|ex| ex.pid).unwrap_or(0);
    match kind {
        "exec" => {
            let argv: Vec<&str> = act
                .and_then(|a| a.argv.as_ref())
                .map(|a| a.iter().flatten().map(|s| s.as_ref()).collect())
                .unwrap_or_default();
            // argv[0] is news only when it is not the binary (busybox applets, `-bash`).
            let args = match argv.split_first() {
                Some((a0, rest)) if *a0 == binary || *a0 == base_name(binary) => rest,
                Some((a0, rest)) => {
                    out.push_str(&format!(" [{}]", shell_quote(a0)));
                    rest
                }
                None => &[],
            };
            for a in args {
                out.push(' ');
                out.push_str(&shell_quote(a));
            }
            if act.and_then(|a| a.argv_truncated) == Some(true) {
                out.push_str(" [truncated]");
            }
            // A PATH search's misses, folded in: how many (the JSON has which).
            let misses = act.and_then(|a| a.path_search.as_ref()).map_or(0, Vec::len);
            if misses > 0 {
                let s = if misses == 1 { "" } else { "es" };
                out.push_str(&format!(" [after {misses} PATH miss{s}]"));
            }
            if act
                .and_then(|a| a.outcome.as_deref())
                .is_some_and(|o| o != "success")
            {
                out.push_str(" -> ");
                out.push_str(&outcome(act, color));
            }
        }
        "connect" => {
            let dst = act.and_then(|a| a.destination.as_ref());
            let ip = clean(dst.and_then(|d| d.ip.as_deref()).unwrap_or("?"));
            let port = dst
                .and_then(|d| d.port)
                .map_or("?".to_owned(), |p| p.to_string());
            let mut addr = if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            };
            if let Some(name) = dst.and_then(|d| d.name.as_deref()) {
                addr.push_str(&format!(" ({})", clean(name)));
            }
            let protocol = act.and_then(|a| a.protocol.as_deref()).unwrap_or("?");
            // Kubernetes names of the destination: `-> shop/cart:https pod shop/cart-0 (spiffe://…)`.
            let addr = match dst.map(destination_names).filter(|n| !n.is_empty()) {
                Some(names) => format!("{addr} ->{names}"),
                None => addr,
            };
            match act.and_then(|a| a.aggregate.as_ref()) {
                // A summary: how many, and how they went.
                Some(g) => out.push_str(&format!(
                    " {} {addr} \u{d7}{} -> {}",
                    clean(protocol),
                    g.count.map_or("?".to_owned(), |n| n.to_string()),
                    aggregate_outcomes(g, color)
                )),
                None => out.push_str(&format!(
                    " {} {addr} -> {}",
                    clean(protocol),
                    outcome(act, color)
                )),
            }
        }
        "fork" => {
            let child = act.and_then(|a| a.child_pid).unwrap_or(0);
            out.push_str(&format!(" pid {pid} -> child {child}"));
        }
        "exit" => match act.and_then(|a| a.signal) {
            Some(sig) => out.push_str(&format!(" pid {pid} killed by signal {sig}")),
            None => out.push_str(&format!(
                " pid {pid} exited {}",
                act.and_then(|a| a.exit_code).unwrap_or(0)
            )),
        },
        "usage" => {
            out.push_str(&format!(" pid {pid}"));
            if let Some(u) = act.and_then(|a| a.usage.as_ref()) {
                out.push_str(&usage_text(u));
            }
        }
        _ => {}
    }
    // Who asked for it, when automation did: `[github-actions: octo/app#1/1 by alice]`.
    if let Some(r) = ex.and_then(|ex| ex.requestor.as_ref()) {
        let get = |k: &str| r.get(k).and_then(|v| v.as_deref()).unwrap_or("?");
        out.push_str(&paint(
            color,
            DIM,
            &format!(" [{}: {}]", clean(get("system")), clean(get("display"))),
        ));
    }
    out
}

/// ` cpu 12.3s (user 10.1s) rss 45.2MiB up 3h2m`: what a usage sample says.
fn usage_text(u: &crate::event::view::UsageView) -> String {
    let secs = |ns: u64| ns as f64 / 1e9;
    let mut s = String::new();
    if let (Some(user), Some(system)) = (u.cpu_user_ns, u.cpu_system_ns) {
        s.push_str(&format!(
            " cpu {:.1}s (user {:.1}s)",
            secs(user.saturating_add(system)),
            secs(user)
        ));
    }
    if let Some(kib) = u.peak_rss_kib {
        s.push_str(&format!(" peak rss {:.1}MiB", kib as f64 / 1024.0));
    }
    if let Some(ns) = u.lifetime_ns {
        let m = ns / 60_000_000_000;
        s.push_str(&match m {
            0 => format!(" up {}s", ns / 1_000_000_000),
            1..60 => format!(" up {m}m"),
            _ => format!(" up {}h{}m", m / 60, m % 60),
        });
    }
    s
}

/// Filters and prints; output is written per batch.
pub(super) struct Printer {
    filter: Filter,
    json: bool,
    color: bool,
    left: Option<u64>,
    buf: Vec<u8>,
    /// Following a file: what it described, to join `executor.ref` with
    /// (the tail socket always carries executors in full).
    executors: Option<super::described::Executors>,
}

impl Printer {
    /// Print what `filter` passes, stopping after `left` counted matches.
    pub(super) fn new(filter: Filter, json: bool, color: bool, left: Option<u64>) -> Printer {
        Printer {
            filter,
            json,
            color,
            left,
            buf: Vec::with_capacity(64 * 1024),
            executors: None,
        }
    }

    /// Join executors by reference with the file's earlier descriptions.
    pub(super) fn join_references(&mut self) {
        self.executors = Some(super::described::Executors::new());
    }

    /// Handle one line; true once `--count` matches have been printed.
    pub(super) fn line(&mut self, line: &str) -> bool {
        if line.trim().is_empty() {
            return false;
        }
        let ev = match Line::parse(line.as_bytes()) {
            Ok(ev) => ev,
            Err(e) => {
                let head: String = line.chars().take(120).collect();
                eprintln!(
                    "tracer tail: skipping a line that is not JSON ({e}): {}",
                    clean(&head)
                );
                return false;
            }
        };
        // An executor by reference reads as the one it refers to.
        let joined = self.executors.as_mut().and_then(|x| x.join(line, &ev));
        let joined_ev = joined
            .as_deref()
            .and_then(|j| Line::parse(j.as_bytes()).ok());
        let ev = joined_ev.as_ref().unwrap_or(&ev);
        if !self.filter.matches(ev) {
            return false;
        }
        if self.json {
            // The tracer writes these escaped already; a file written by
            // something else (or an older version) may not have.
            self.buf
                .extend_from_slice(crate::escape::json_line_safe(line).as_bytes());
        } else {
            self.buf
                .extend_from_slice(compact_line(ev, self.color).as_bytes());
        }
        self.buf.push(b'\n');
        if self.filter.is_notice(ev) {
            return false;
        }
        match &mut self.left {
            Some(left) => {
                *left = left.saturating_sub(1);
                *left == 0
            }
            None => false,
        }
    }

    /// Write what was printed; false once stdout is closed (`tracer tail | head`).
    pub(super) fn flush(&mut self) -> anyhow::Result<bool> {
        if self.buf.is_empty() {
            return Ok(true);
        }
        let mut out = io::stdout().lock();
        let r = out.write_all(&self.buf).and_then(|()| out.flush());
        self.buf.clear();
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e).context("cannot write to stdout"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{connect_event, exec_event, filter, loss_event, parsed};
    use super::*;
    use serde_json::{Value, json};

    fn show(ev: &Value, color: bool) -> String {
        compact_line(&parsed(&ev.to_string()), color)
    }

    #[test]
    fn compact_lines() {
        assert_eq!(
            show(&exec_event(), false),
            "2026-11-23T20:21:47.123Z exec    spiffe://example.org/ns/shop/sa/web deploy auid=alice \
             /usr/bin/curl -s 'http://x/a b' 'it'\\''s'"
        );
        let mut ev = exec_event();
        ev["executor"]["identity"]["spiffe_ids"] = json!([]);
        ev["executor"]["login"] = Value::Null;
        ev["executor"]["user"]["name"] = Value::Null;
        ev["action"] = json!({"binary": "/bin/busybox", "argv": ["ls", "-l", "a\u{1b}[2Jb", ""], "argv_truncated": true, "outcome": "failure", "error": "ENOENT"});
        assert_eq!(
            show(&ev, false),
            "2026-11-23T20:21:47.123Z exec    shop/web-7d9f 1001 /bin/busybox [ls] -l $'a\\e[2Jb' '' [truncated] \
             -> failure (ENOENT)"
        );
        let mut found = exec_event();
        found["action"]["path_search"] = json!([
            {"path": "/root/.cargo/bin/curl", "error": "ENOENT"},
            {"path": "/usr/local/bin/curl", "error": "EACCES"}
        ]);
        assert!(
            show(&found, false).ends_with(" 'it'\\''s' [after 2 PATH misses]"),
            "{}",
            show(&found, false)
        );
        ev["executor"]["workload"]["pod"] = Value::Null;
        ev["executor"]["workload"]["container"]["name"] = Value::Null;
        assert!(show(&ev, false).contains(" container:0123456789ab 1001 "));
        ev["executor"]["workload"]["container"] = Value::Null;
        ev["executor"]["workload"]["unit"] = json!("nginx.service");
        assert!(show(&ev, false).contains(" nginx.service 1001 "));
        ev["executor"]["workload"]["unit"] = Value::Null;
        assert!(show(&ev, false).contains(" host 1001 "));

        assert_eq!(
            show(&connect_event("2001:db8::7", 8443), false),
            "2026-11-23T20:21:47.123Z connect spiffe://example.org/ns/shop/sa/web deploy auid=alice \
             /usr/bin/curl tcp [2001:db8::7]:8443 -> failure (ECONNREFUSED)"
        );
        let mut ok = connect_event("10.1.2.3", 443);
        ok["action"]["outcome"] = json!("success");
        ok["action"]["error"] = Value::Null;
        assert!(show(&ok, false).ends_with(" /usr/bin/curl tcp 10.1.2.3:443 -> success"));
        // Who asked for it, made safe to print.
        let mut ci = ok.clone();
        ci["executor"]["requestor"] = json!({"system": "github-actions",
            "display": "octo/app#9001/1 by \u{1b}[2Jalice", "claim": "runner"});
        assert!(
            show(&ci, false)
                .ends_with(" -> success [github-actions: octo/app#9001/1 by \\e[2Jalice]"),
            "{}",
            show(&ci, false)
        );
        // Kubernetes names of the destination, made safe to print.
        let mut named = ok.clone();
        named["action"]["destination"]["service"] =
            json!({"namespace": "shop", "name": "cart", "port_name": "https"});
        assert!(
            show(&named, false).ends_with(" tcp 10.1.2.3:443 -> shop/cart:https -> success"),
            "{}",
            show(&named, false)
        );
        named["action"]["destination"]["service"] = Value::Null;
        named["action"]["destination"]["pod"] = json!({"namespace": "shop", "name": "cart-0\u{1b}",
            "spiffe_id": "spiffe://example.org/ns/shop/sa/cart"});
        assert!(
            show(&named, false).ends_with(
                " tcp 10.1.2.3:443 -> pod shop/cart-0\\e (spiffe://example.org/ns/shop/sa/cart) -> success"
            ),
            "{}",
            show(&named, false)
        );
        let mut dns_named = ok.clone();
        dns_named["action"]["destination"]["name"] = json!("api.shop.example");
        assert!(
            show(&dns_named, false)
                .ends_with(" /usr/bin/curl tcp 10.1.2.3:443 (api.shop.example) -> success")
        );
        // A summary (`--aggregate-connects`): how many, and how they went.
        let mut summary = ok.clone();
        summary["action"]["aggregate"] = json!({
            "window_s": 2, "count": 41,
            "first_time": "2026-11-23T20:21:45.123456789Z",
            "last_time": "2026-11-23T20:21:47.123456789Z",
            "outcomes": {"success": 38, "in_progress": 0, "failure": 3, "unknown": 0},
            "errors": {"ECONNREFUSED": 2, "ETIMEDOUT": 1}
        });
        assert!(
            show(&summary, false).ends_with(
                " /usr/bin/curl tcp 10.1.2.3:443 \u{d7}41 -> success 38, failure 3 (ECONNREFUSED 2, ETIMEDOUT 1)"
            ),
            "{}",
            show(&summary, false)
        );

        assert_eq!(
            show(&loss_event(), false),
            "2026-11-23T20:21:47.123Z !! tracer lost 12 events: ring_full=10 sink_error=2"
        );
        assert_eq!(
            show(&json!({"kind": "missed", "missed": 12}), false),
            "!! 12 events missed by this reader"
        );
        assert_eq!(
            show(&json!({"kind": "missed", "missed": 1}), false),
            "!! 1 event missed by this reader"
        );
        // Colour wraps fields in escape sequences; the text is the same.
        let coloured = show(&exec_event(), true);
        assert!(coloured.contains("\x1b[32mexec   \x1b[0m"), "{coloured:?}");
    }
    #[test]
    fn printer_counts_matches_not_notices() {
        let mut p = Printer {
            filter: filter(&["--kind", "exec"]).unwrap(),
            json: true,
            color: false,
            left: Some(2),
            buf: Vec::new(),
            executors: None,
        };
        let exec = exec_event().to_string();
        assert!(!p.line(&connect_event("10.0.0.1", 1).to_string()));
        assert!(!p.line(&exec));
        assert!(!p.line("{\"kind\":\"missed\",\"missed\":3}"));
        assert!(!p.line("not json"));
        assert!(p.line(&exec));
        let out = String::from_utf8(p.buf).unwrap();
        assert_eq!(
            out,
            format!("{exec}\n{{\"kind\":\"missed\",\"missed\":3}}\n{exec}\n")
        );
    }

    #[test]
    fn authority_marks_what_the_uid_does_not_say() {
        let cases: &[(u64, Value, &str)] = &[
            (
                0,
                json!({"capabilities": {"effective": "all"}, "user_namespace": {"host": true}}),
                "",
            ),
            (
                1001,
                json!({"capabilities": {"effective": []}, "user_namespace": {"host": true}}),
                "",
            ),
            (
                1001,
                json!({"capabilities": {"effective": ["CAP_NET_RAW"]}}),
                " [caps+]",
            ),
            (
                0,
                json!({"capabilities": {"effective": {"all_except": ["CAP_SYS_RESOURCE"]}}}),
                " [caps-]",
            ),
            (
                0,
                json!({"capabilities": {"effective": ["CAP_CHOWN"]}}),
                " [caps-]",
            ),
            (
                65534,
                json!({"capabilities": {"effective": "all"}, "user_namespace": {"host": false}}),
                " [caps+] [userns]",
            ),
            (
                1001,
                json!({"capabilities": null, "user_namespace": {"host": false}}),
                " [userns]",
            ),
            (0, json!({"capabilities": {"effective": 7}}), ""),
        ];
        for (uid, authority, want) in cases {
            let mut ev = exec_event();
            ev["executor"]["user"]["name"] = Value::Null;
            ev["executor"]["login"] = Value::Null;
            ev["executor"]["user"]["uid"] = json!(uid);
            ev["executor"]["authority"] = authority.clone();
            let line = show(&ev, false);
            assert!(
                line.contains(&format!(" {uid}{want} /")),
                "{authority}: {line}"
            );
        }
    }
}
