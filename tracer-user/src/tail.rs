//! `tracer tail`: show the events of a running tracer (its Unix socket) or of an
//! event file (followed across rotations), filtered, as compact lines or raw JSON.
use std::{
    fs::{self, File},
    io::{self, IsTerminal as _, Write as _},
    net::IpAddr,
    os::unix::fs::{FileExt as _, MetadataExt as _},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

pub const DEFAULT_SOCKET: &str = "/run/tracer/tracer.sock";
/// How often a followed file is checked for new lines and rotation.
const POLL: Duration = Duration::from_millis(200);
const KINDS: [&str; 5] = ["exec", "connect", "fork", "exit", "loss"];

#[derive(clap::Args, Debug, Default, Clone)]
pub struct TailArgs {
    /// Unix socket of a running `tracer run` (default /run/tracer/tracer.sock)
    #[arg(long, value_name = "PATH", conflicts_with = "file")]
    pub socket: Option<PathBuf>,
    /// Follow this event file instead, across rotations
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Print the JSON objects instead of compact lines (as written, but with
    /// controls, DEL, C1 and bidi controls as `\uXXXX` escapes: the same value)
    #[arg(long)]
    pub json: bool,
    /// Start from the beginning of the file (default: only new events)
    #[arg(long, requires = "file")]
    pub from_start: bool,
    /// Only these kinds: exec, connect, fork, exit, loss (repeatable or comma-separated).
    /// All given filters must match.
    #[arg(long, value_name = "KIND")]
    pub kind: Vec<String>,
    /// Any of the executor's SPIFFE IDs matches this glob (`*`, `?`; `\` escapes)
    #[arg(long, value_name = "GLOB")]
    pub spiffe_id: Option<String>,
    /// Pod namespace (glob)
    #[arg(long, value_name = "GLOB")]
    pub namespace: Option<String>,
    /// Pod name (glob)
    #[arg(long, value_name = "GLOB")]
    pub pod: Option<String>,
    /// User name or numeric uid
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Login (audit) uid
    #[arg(long, value_name = "UID")]
    pub auid: Option<u32>,
    /// Glob on the executor's or the exec'd binary; without `/` it may match the base name
    #[arg(long, value_name = "GLOB")]
    pub binary: Option<String>,
    /// Connect destination: IP, IP/PREFIX (v4 or v6), :PORT, IP:PORT or [IPv6]:PORT
    #[arg(long, value_name = "DEST")]
    pub dest: Option<String>,
    /// Stop after N matching events (for scripts and tests)
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

/// A glob over characters: `*` any run, `?` one, `\` makes the next one literal.
#[derive(Debug, Clone, PartialEq)]
struct Glob(Vec<Tok>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Lit(char),
    One,
    Any,
}

impl Glob {
    fn parse(flag: &str, pattern: &str) -> anyhow::Result<Glob> {
        if pattern.is_empty() {
            bail!("--{flag}: empty pattern");
        }
        let mut toks = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            toks.push(match c {
                '*' => Tok::Any,
                '?' => Tok::One,
                '\\' => match chars.next() {
                    Some(c) => Tok::Lit(c),
                    None => bail!("--{flag}: `{pattern}` ends with a lone `\\`"),
                },
                c => Tok::Lit(c),
            });
        }
        Ok(Glob(toks))
    }

    fn matches(&self, s: &str) -> bool {
        let text: Vec<char> = s.chars().collect();
        let toks = &self.0;
        let (mut p, mut i) = (0, 0);
        // Last `*` seen and where in the text it is tried up to: with only `*` as
        // a variable-length token, backtracking to the last one suffices.
        let mut star: Option<(usize, usize)> = None;
        while i < text.len() {
            match toks.get(p) {
                Some(Tok::Any) => {
                    star = Some((p, i));
                    p += 1;
                }
                Some(Tok::One) => {
                    p += 1;
                    i += 1;
                }
                Some(Tok::Lit(c)) if *c == text[i] => {
                    p += 1;
                    i += 1;
                }
                _ => match star {
                    Some((sp, si)) => {
                        p = sp + 1;
                        i = si + 1;
                        star = Some((sp, si + 1));
                    }
                    None => return false,
                },
            }
        }
        toks[p..].iter().all(|t| *t == Tok::Any)
    }

    fn has_slash(&self) -> bool {
        self.0.contains(&Tok::Lit('/'))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum UserSel {
    Uid(u32),
    Name(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(s: &str) -> Option<Net> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            // Digits only: `u8::from_str` would also take `+8`.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Net { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Dest {
    net: Option<Net>,
    port: Option<u16>,
}

impl Dest {
    fn parse(s: &str) -> Option<Dest> {
        let port = |p: &str| -> Option<u16> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        if let Some(p) = s.strip_prefix(':').filter(|p| !p.starts_with(':')) {
            return Some(Dest {
                net: None,
                port: Some(port(p)?),
            });
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (inner, after) = rest.split_once(']')?;
            let net = Net::parse(inner).filter(|n| n.addr.is_ipv6())?;
            let port = match after {
                "" => None,
                a => Some(port(a.strip_prefix(':')?)?),
            };
            return Some(Dest {
                net: Some(net),
                port,
            });
        }
        match s.matches(':').count() {
            // IPv4 (or CIDR) with a port.
            1 => {
                let (ip, p) = s.split_once(':')?;
                let net = Net::parse(ip).filter(|n| n.addr.is_ipv4())?;
                Some(Dest {
                    net: Some(net),
                    port: Some(port(p)?),
                })
            }
            _ => Some(Dest {
                net: Some(Net::parse(s)?),
                port: None,
            }),
        }
    }

    fn matches(&self, ip: Option<IpAddr>, port: Option<u64>) -> bool {
        if let Some(want) = self.port
            && port != Some(u64::from(want))
        {
            return false;
        }
        match self.net {
            None => true,
            // A v6 socket reaching a v4 peer reports it as ::ffff:a.b.c.d.
            Some(net) => ip.is_some_and(|ip| net.contains(ip) || net.contains(ip.to_canonical())),
        }
    }
}

/// The event filters of `tracer tail`; all given must match.
///
/// `missed` notices always pass (they are about this reader); `loss` reports pass
/// unless `--kind` leaves them out, since the lost events could have matched any
/// filter. Neither counts towards `--count` unless asked for with `--kind loss`.
#[derive(Debug, Clone)]
pub struct Filter {
    kinds: Vec<String>,
    spiffe_id: Option<Glob>,
    namespace: Option<Glob>,
    pod: Option<Glob>,
    user: Option<UserSel>,
    auid: Option<u32>,
    binary: Option<Glob>,
    dest: Option<Dest>,
}

impl Filter {
    pub fn from_args(a: &TailArgs) -> anyhow::Result<Filter> {
        let mut kinds = Vec::new();
        for k in a.kind.iter().flat_map(|k| k.split(',')).map(str::trim) {
            if !KINDS.contains(&k) {
                bail!(
                    "--kind: unknown kind `{k}` (expected one of {})",
                    KINDS.join(", ")
                );
            }
            kinds.push(k.to_owned());
        }
        let glob =
            |flag: &str, p: &Option<String>| p.as_deref().map(|p| Glob::parse(flag, p)).transpose();
        let user = a.user.as_deref().map(|u| match u.parse::<u32>() {
            Ok(uid) => UserSel::Uid(uid),
            Err(_) => UserSel::Name(u.to_owned()),
        });
        if user == Some(UserSel::Name(String::new())) {
            bail!("--user: empty name");
        }
        let dest = match a.dest.as_deref() {
            Some(d) => Some(Dest::parse(d).with_context(|| {
                format!("--dest: `{d}` is not an IP, IP/PREFIX, :PORT, IP:PORT or [IPv6]:PORT")
            })?),
            None => None,
        };
        Ok(Filter {
            kinds,
            spiffe_id: glob("spiffe-id", &a.spiffe_id)?,
            namespace: glob("namespace", &a.namespace)?,
            pod: glob("pod", &a.pod)?,
            user,
            auid: a.auid,
            binary: glob("binary", &a.binary)?,
            dest,
        })
    }

    pub fn matches(&self, ev: &Value) -> bool {
        let kind = ev["kind"].as_str().unwrap_or_default();
        match kind {
            "missed" => return true,
            "loss" => return self.kinds.is_empty() || self.wants("loss"),
            _ => {}
        }
        if !self.kinds.is_empty() && !self.wants(kind) {
            return false;
        }
        let ex = &ev["executor"];
        let glob_on = |g: &Option<Glob>, v: &Value| {
            g.as_ref()
                .is_none_or(|g| v.as_str().is_some_and(|s| g.matches(s)))
        };
        if let Some(g) = &self.spiffe_id {
            let ids = ex["identity"]["spiffe_ids"].as_array();
            if !ids.is_some_and(|ids| ids.iter().filter_map(Value::as_str).any(|id| g.matches(id)))
            {
                return false;
            }
        }
        if !glob_on(&self.namespace, &ex["workload"]["pod"]["namespace"])
            || !glob_on(&self.pod, &ex["workload"]["pod"]["name"])
        {
            return false;
        }
        match &self.user {
            Some(UserSel::Uid(uid)) if ex["user"]["uid"].as_u64() != Some(u64::from(*uid)) => {
                return false;
            }
            Some(UserSel::Name(name)) if ex["user"]["name"].as_str() != Some(name) => return false,
            _ => {}
        }
        if let Some(auid) = self.auid
            && ex["login"]["auid"].as_u64() != Some(u64::from(auid))
        {
            return false;
        }
        if let Some(g) = &self.binary {
            let hit = |v: &Value| {
                v.as_str()
                    .is_some_and(|b| g.matches(b) || (!g.has_slash() && g.matches(base_name(b))))
            };
            if !hit(&ex["binary"]) && !hit(&ev["action"]["binary"]) {
                return false;
            }
        }
        if let Some(d) = &self.dest {
            let dst = &ev["action"]["destination"];
            let ip = dst["ip"].as_str().and_then(|s| s.parse().ok());
            if !d.matches(ip, dst["port"].as_u64()) {
                return false;
            }
        }
        true
    }

    /// A matching line that does not count towards `--count`.
    fn is_notice(&self, ev: &Value) -> bool {
        match ev["kind"].as_str() {
            Some("missed") => true,
            Some("loss") => !self.wants("loss"),
            _ => false,
        }
    }

    fn wants(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

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

fn identity(ex: &Value) -> String {
    if let Some(id) = ex["identity"]["spiffe_ids"][0].as_str() {
        return clean(id);
    }
    let w = &ex["workload"];
    let pod = &w["pod"];
    if pod.is_object() {
        let ns = pod["namespace"].as_str().unwrap_or("?");
        let name = pod["name"].as_str().or(pod["uid"].as_str()).unwrap_or("?");
        return clean(&format!("{ns}/{name}"));
    }
    let c = &w["container"];
    if c.is_object() {
        let id = c["id"].as_str().map(|id| id.get(..12).unwrap_or(id));
        if let Some(name) = c["name"].as_str().or(id) {
            return clean(&format!("container:{name}"));
        }
    }
    match w["unit"].as_str() {
        Some(unit) => clean(unit),
        None => "host".to_owned(),
    }
}

fn user(ex: &Value) -> String {
    let u = &ex["user"];
    let mut s = match (u["name"].as_str(), u["uid"].as_u64()) {
        (Some(name), _) => clean(name),
        (None, Some(uid)) => uid.to_string(),
        (None, None) => "?".to_owned(),
    };
    let login = &ex["login"];
    if login.is_object() {
        let who = match (login["name"].as_str(), login["auid"].as_u64()) {
            (Some(name), _) => clean(name),
            (None, Some(auid)) => auid.to_string(),
            (None, None) => "?".to_owned(),
        };
        s.push_str(" auid=");
        s.push_str(&who);
    }
    s
}

fn outcome(act: &Value, color: bool) -> String {
    let o = act["outcome"].as_str().unwrap_or("?");
    let code = match o {
        "success" => GREEN,
        "in_progress" => YELLOW,
        _ => RED,
    };
    let mut s = clean(o);
    if let Some(e) = act["error"].as_str() {
        s.push_str(&format!(" ({})", clean(e)));
    }
    paint(color, code, &s)
}

/// One line for a human: time, kind, identity, user, then what was done.
pub fn compact_line(ev: &Value, color: bool) -> String {
    let kind = ev["kind"].as_str().unwrap_or("?");
    match kind {
        "missed" => {
            let n = ev["missed"].as_u64().unwrap_or(0);
            let s = if n == 1 { "" } else { "s" };
            return paint(
                color,
                BOLD_RED,
                &format!("!! {n} event{s} missed by this reader"),
            );
        }
        "loss" => {
            let lost = ev["lost"].as_object();
            let total: u64 = lost.map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
            // Causes in the order the event format lists them; unknown ones after.
            let known = [
                "ring_full",
                "read_fault",
                "pending_full",
                "scratch",
                "malformed",
                "sink_error",
                "sends_unreported",
            ];
            let mut causes: Vec<(String, u64)> = known
                .iter()
                .filter_map(|k| Some((k.to_string(), lost?.get(*k)?.as_u64()?)))
                .collect();
            if let Some(m) = lost {
                causes.extend(
                    m.iter()
                        .filter(|(k, _)| !known.contains(&k.as_str()))
                        .filter_map(|(k, v)| Some((clean(k), v.as_u64()?))),
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
            let time = short_time(ev["time"].as_str().unwrap_or("?"));
            return format!(
                "{} {}",
                paint(color, DIM, &time),
                paint(color, BOLD_RED, &msg)
            );
        }
        _ => {}
    }
    let ex = &ev["executor"];
    let act = &ev["action"];
    let kind_code = match kind {
        "exec" => GREEN,
        "connect" => CYAN,
        "fork" => BLUE,
        _ => MAGENTA,
    };
    let mut out = format!(
        "{} {} {} {}",
        paint(color, DIM, &short_time(ev["time"].as_str().unwrap_or("?"))),
        paint(color, kind_code, &format!("{:<7}", clean(kind))),
        paint(color, YELLOW, &identity(ex)),
        user(ex),
    );
    let binary = act["binary"]
        .as_str()
        .or(ex["binary"].as_str())
        .unwrap_or("?");
    out.push(' ');
    out.push_str(&paint(color, "1", &shell_quote(binary)));
    match kind {
        "exec" => {
            let argv: Vec<&str> = act["argv"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
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
            if act["argv_truncated"].as_bool() == Some(true) {
                out.push_str(" [truncated]");
            }
            if act["outcome"].as_str().is_some_and(|o| o != "success") {
                out.push_str(" -> ");
                out.push_str(&outcome(act, color));
            }
        }
        "connect" => {
            let dst = &act["destination"];
            let ip = clean(dst["ip"].as_str().unwrap_or("?"));
            let port = dst["port"]
                .as_u64()
                .map_or("?".to_owned(), |p| p.to_string());
            let addr = if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            };
            out.push_str(&format!(
                " {} {addr} -> {}",
                clean(act["protocol"].as_str().unwrap_or("?")),
                outcome(act, color)
            ));
        }
        "fork" => {
            let pid = ex["pid"].as_u64().unwrap_or(0);
            let child = act["child_pid"].as_u64().unwrap_or(0);
            out.push_str(&format!(" pid {pid} -> child {child}"));
        }
        "exit" => {
            let pid = ex["pid"].as_u64().unwrap_or(0);
            match act["signal"].as_u64() {
                Some(sig) => out.push_str(&format!(" pid {pid} killed by signal {sig}")),
                None => out.push_str(&format!(
                    " pid {pid} exited {}",
                    act["exit_code"].as_u64().unwrap_or(0)
                )),
            }
        }
        _ => {}
    }
    out
}

/// Follows an event file across rotations (`FILE` renamed to `FILE.1` and a new
/// `FILE` created) and truncation, returning whole lines.
pub struct FileFollower {
    path: PathBuf,
    file: File,
    /// (dev, inode) of `file`.
    id: (u64, u64),
    pos: u64,
    /// Bytes of a line whose newline has not been written yet.
    partial: Vec<u8>,
    /// Started mid-line: drop bytes up to the first newline.
    skip_to_newline: bool,
}

/// Read at most this much per poll, so a large file does not become one huge batch.
const POLL_BYTES: u64 = 1 << 20;
/// Rotated files looked at when searching for the one being read.
const MAX_ROTATED: usize = 10_000;

impl FileFollower {
    /// From the start of the file, or from its end (only new lines).
    pub fn open(path: &Path, from_start: bool) -> io::Result<FileFollower> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let mut f = FileFollower {
            path: path.to_owned(),
            file,
            id: (meta.dev(), meta.ino()),
            pos: 0,
            partial: Vec::new(),
            skip_to_newline: false,
        };
        if !from_start && meta.len() > 0 {
            f.pos = meta.len();
            let mut last = [0u8];
            f.file.read_exact_at(&mut last, meta.len() - 1)?;
            f.skip_to_newline = last[0] != b'\n';
        }
        Ok(f)
    }

    /// Lines written since the last call (empty if none).
    pub fn poll_lines(&mut self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        // Look at the path before draining: whatever the writer put in the old
        // file before renaming it away is then read below.
        let at_path = match fs::metadata(&self.path) {
            Ok(m) => Some((m.dev(), m.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let len = self.file.metadata()?.len();
        if len < self.pos {
            let line_start = self.pos - self.partial.len() as u64;
            self.partial.clear();
            // Only a partial line cut away (the writer trimmed it after a crash):
            // what was shown stays shown. Anything more: read it all again.
            self.pos = if len >= line_start { line_start } else { 0 };
            self.skip_to_newline = false;
        }
        let at_end = self.drain(&mut out, POLL_BYTES)?;
        if at_end && at_path.is_some_and(|id| id != self.id) {
            self.follow_rotation(&mut out)?;
        }
        Ok(out)
    }

    /// Read from `pos` on, at most `limit` bytes; true if the end was reached.
    fn drain(&mut self, out: &mut Vec<String>, limit: u64) -> io::Result<bool> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = 0u64;
        while read < limit {
            let n = self.file.read_at(&mut buf, self.pos)?;
            if n == 0 {
                return Ok(true);
            }
            self.pos += n as u64;
            read += n as u64;
            self.take(&buf[..n], out);
        }
        Ok(false)
    }

    fn take(&mut self, mut chunk: &[u8], out: &mut Vec<String>) {
        if self.skip_to_newline {
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    chunk = &chunk[i + 1..];
                    self.skip_to_newline = false;
                }
                None => return,
            }
        }
        let old = self.partial.len();
        self.partial.extend_from_slice(chunk);
        let mut start = 0;
        for i in old..self.partial.len() {
            if self.partial[i] == b'\n' {
                out.push(String::from_utf8_lossy(&self.partial[start..i]).into_owned());
                start = i + 1;
            }
        }
        self.partial.drain(..start);
    }

    /// The file being read is final and drained; read any files rotated after it
    /// (several rotations between two polls), oldest first, then the new file.
    fn follow_rotation(&mut self, out: &mut Vec<String>) -> io::Result<()> {
        self.end_of_file(out);
        let mut newer = Vec::new();
        let mut found = false;
        for k in 1..=MAX_ROTATED {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{k}"));
            match File::open(&p) {
                Ok(f) => {
                    let m = f.metadata()?;
                    if (m.dev(), m.ino()) == self.id {
                        found = true;
                        break;
                    }
                    newer.push((f, (m.dev(), m.ino())));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            }
        }
        if !found {
            // Ours was deleted (or renamed some other way): which of the numbered
            // files came after it cannot be told.
            newer.clear();
        }
        for (f, id) in newer.into_iter().rev() {
            self.switch(f, id);
            self.drain(out, u64::MAX)?;
            self.end_of_file(out);
        }
        match File::open(&self.path) {
            Ok(f) => {
                let m = f.metadata()?;
                self.switch(f, (m.dev(), m.ino()));
                self.drain(out, POLL_BYTES)?;
            }
            // Rotated again just now: the next poll sees it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn switch(&mut self, file: File, id: (u64, u64)) {
        self.file = file;
        self.id = id;
        self.pos = 0;
        self.partial.clear();
        self.skip_to_newline = false;
    }

    /// A file that will not grow: its unterminated last line is a line too.
    fn end_of_file(&mut self, out: &mut Vec<String>) {
        if !self.partial.is_empty() {
            out.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
        }
    }
}

/// Filters and prints; output is written per batch.
struct Printer {
    filter: Filter,
    json: bool,
    color: bool,
    left: Option<u64>,
    buf: Vec<u8>,
}

impl Printer {
    /// Handle one line; true once `--count` matches have been printed.
    fn line(&mut self, line: &str) -> bool {
        if line.trim().is_empty() {
            return false;
        }
        let ev: Value = match serde_json::from_str(line) {
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
        if !self.filter.matches(&ev) {
            return false;
        }
        if self.json {
            // The tracer writes these escaped already; a file written by
            // something else (or an older version) may not have.
            self.buf
                .extend_from_slice(crate::escape::json_line_safe(line).as_bytes());
        } else {
            self.buf
                .extend_from_slice(compact_line(&ev, self.color).as_bytes());
        }
        self.buf.push(b'\n');
        if self.filter.is_notice(&ev) {
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
    fn flush(&mut self) -> anyhow::Result<bool> {
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

pub async fn run(args: TailArgs) -> anyhow::Result<()> {
    let filter = Filter::from_args(&args)?;
    let color = !args.json
        && io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut printer = Printer {
        filter,
        json: args.json,
        color,
        left: args.count,
        buf: Vec::with_capacity(64 * 1024),
    };
    if args.count == Some(0) {
        return Ok(());
    }
    match &args.file {
        Some(path) => follow_file(path, args.from_start, &mut printer).await,
        None => {
            let path = args
                .socket
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
            read_socket(&path, &mut printer).await
        }
    }
}

async fn read_socket(path: &Path, printer: &mut Printer) -> anyhow::Result<()> {
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .with_context(|| {
            format!(
                "cannot connect to {} (is `tracer run --socket {}` running, and may you open it?)",
                path.display(),
                path.display()
            )
        })?;
    let mut reader = tokio::io::BufReader::with_capacity(256 * 1024, stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            printer.flush()?;
            return Ok(());
        }
        let text = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line));
        if text.starts_with("{\"kind\":\"refused\"") {
            let v: Value = serde_json::from_str(&text).unwrap_or_default();
            bail!(
                "{}: {}",
                path.display(),
                v["error"]
                    .as_str()
                    .unwrap_or("the tracer turned this reader away")
            );
        }
        let done = printer.line(&text);
        // Write when nothing more is waiting: one write per burst, not per line.
        if done || reader.buffer().is_empty() {
            let open = printer.flush()?;
            if done || !open {
                return Ok(());
            }
        }
    }
}

async fn follow_file(path: &Path, from_start: bool, printer: &mut Printer) -> anyhow::Result<()> {
    let mut follower = FileFollower::open(path, from_start)
        .with_context(|| format!("cannot open {}", path.display()))?;
    loop {
        // Blocking reads of a local file, a bounded amount per poll: fine on the
        // runtime that only runs this.
        let lines = follower
            .poll_lines()
            .with_context(|| format!("reading {}", path.display()))?;
        let mut done = false;
        for l in &lines {
            if printer.line(l) {
                done = true;
                break;
            }
        }
        if !printer.flush()? || done {
            return Ok(());
        }
        if lines.is_empty() {
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;
    use serde_json::json;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        tail: TailArgs,
    }

    fn filter(args: &[&str]) -> anyhow::Result<Filter> {
        let cli = Cli::try_parse_from(std::iter::once("tail").chain(args.iter().copied()))?;
        Filter::from_args(&cli.tail)
    }

    fn exec_event() -> Value {
        json!({
            "event_id": "1795465307123456789-0000042",
            "time": "2026-11-23T20:21:47.123456789Z",
            "kind": "exec",
            "host": {"name": "node-1", "boot_id": "b"},
            "executor": {
                "exec_id": "abc", "pid": 42, "tid": 42, "ppid": 1,
                "binary": "/usr/bin/bash", "argv": ["bash"], "cwd": "/", "comm": "bash",
                "start_time": "2026-11-23T20:00:00.000000000Z",
                "user": {"uid": 1001, "name": "deploy", "gid": 1001, "group": null, "euid": 1001, "egid": 1001},
                "login": {"auid": 1000, "name": "alice", "session_id": 3, "tty": "pts/0"},
                "cgroup": {"id": 7, "path": "/kubepods/x"},
                "namespaces": {"pid": 1, "mnt": 2, "net": 3},
                "workload": {
                    "kind": "pod",
                    "container": {"id": "0123456789abcdef0123", "runtime": "containerd", "name": "web", "image": "nginx"},
                    "pod": {"uid": "u-1", "name": "web-7d9f", "namespace": "shop", "service_account": "web", "labels": null, "owner": null},
                    "unit": null
                },
                "identity": {"spiffe_ids": ["spiffe://example.org/ns/shop/sa/web"], "selectors": [], "source": ["default"], "status": "resolved"}
            },
            "lineage": [],
            "action": {"binary": "/usr/bin/curl", "argv": ["curl", "-s", "http://x/a b", "it's"], "argv_truncated": false, "outcome": "success", "error": null},
            "policy": {"tracer_version": "0.1.0", "config_digest": "sha256:00"}
        })
    }

    fn connect_event(ip: &str, port: u16) -> Value {
        let mut ev = exec_event();
        ev["kind"] = json!("connect");
        ev["executor"]["binary"] = json!("/usr/bin/curl");
        ev["action"] = json!({
            "protocol": "tcp", "family": if ip.contains(':') { "ipv6" } else { "ipv4" },
            "destination": {"ip": ip, "port": port}, "source": null,
            "outcome": "failure", "error": "ECONNREFUSED"
        });
        ev
    }

    fn loss_event() -> Value {
        json!({
            "event_id": "x", "time": "2026-11-23T20:21:47.123456789Z", "kind": "loss",
            "host": {"name": "node-1", "boot_id": "b"},
            "lost": {"ring_full": 10, "read_fault": 0, "pending_full": 0, "scratch": 0, "malformed": 0, "sink_error": 2},
            "policy": {"tracer_version": "0.1.0", "config_digest": "sha256:00"}
        })
    }

    #[test]
    fn filters_each_and_together() {
        let exec = exec_event();
        let conn = connect_event("10.1.2.3", 443);
        let conn6 = connect_event("2001:db8::7", 8443);
        let mapped = connect_event("::ffff:10.1.2.3", 443);
        let missed = json!({"kind": "missed", "missed": 3});
        let loss = loss_event();
        let mut other = exec_event();
        other["executor"]["user"] =
            json!({"uid": 0, "name": "root", "gid": 0, "group": "root", "euid": 0, "egid": 0});
        other["executor"]["login"] = Value::Null;
        other["executor"]["workload"]["pod"] = Value::Null;
        other["executor"]["identity"]["spiffe_ids"] = json!([]);
        other["action"]["binary"] = json!("/bin/ls");
        other["executor"]["binary"] = json!("/bin/sh");

        type Case<'a> = (&'a [&'a str], &'a Value, bool);
        let cases: &[Case<'_>] = &[
            (&[], &exec, true),
            (&[], &other, true),
            (&["--kind", "exec"], &exec, true),
            (&["--kind", "connect"], &exec, false),
            (&["--kind", "connect", "--kind", "exec"], &exec, true),
            (&["--kind", "connect,exec"], &exec, true),
            (
                &["--spiffe-id", "spiffe://example.org/ns/shop/*"],
                &exec,
                true,
            ),
            (
                &["--spiffe-id", "spiffe://example.org/ns/sho?/sa/web"],
                &exec,
                true,
            ),
            (
                &["--spiffe-id", "spiffe://example.org/ns/prod/*"],
                &exec,
                false,
            ),
            (&["--spiffe-id", "*"], &other, false),
            (&["--namespace", "shop"], &exec, true),
            (&["--namespace", "sh"], &exec, false),
            (&["--namespace", "shop"], &other, false),
            (&["--pod", "web-*"], &exec, true),
            (&["--pod", "api-*"], &exec, false),
            (&["--user", "deploy"], &exec, true),
            (&["--user", "1001"], &exec, true),
            (&["--user", "0"], &exec, false),
            (&["--user", "root"], &other, true),
            (&["--auid", "1000"], &exec, true),
            (&["--auid", "1001"], &exec, false),
            (&["--auid", "1000"], &other, false),
            (&["--binary", "/usr/bin/curl"], &exec, true),
            (&["--binary", "/usr/bin/bash"], &exec, true),
            (&["--binary", "curl"], &exec, true),
            (&["--binary", "/usr/*/cu?l"], &exec, true),
            (&["--binary", "/usr/bin/wget"], &exec, false),
            (&["--binary", "/*/ls"], &other, true),
            (&["--binary", "bin/ls"], &other, false),
            (&["--dest", "10.1.2.3"], &conn, true),
            (&["--dest", "10.1.2.4"], &conn, false),
            (&["--dest", "10.0.0.0/8"], &conn, true),
            (&["--dest", "10.1.0.0/16"], &conn, true),
            (&["--dest", "10.2.0.0/16"], &conn, false),
            (&["--dest", "0.0.0.0/0"], &conn, true),
            (&["--dest", "0.0.0.0/0"], &conn6, false),
            (&["--dest", ":443"], &conn, true),
            (&["--dest", ":80"], &conn, false),
            (&["--dest", "10.1.2.3:443"], &conn, true),
            (&["--dest", "10.1.2.3:80"], &conn, false),
            (&["--dest", "10.0.0.0/8:443"], &conn, true),
            (&["--dest", "2001:db8::7"], &conn6, true),
            (&["--dest", "2001:db8::/32"], &conn6, true),
            (&["--dest", "2001:db9::/32"], &conn6, false),
            (&["--dest", "[2001:db8::7]:8443"], &conn6, true),
            (&["--dest", "[2001:db8::/32]:8443"], &conn6, true),
            (&["--dest", "[2001:db8::7]:443"], &conn6, false),
            (&["--dest", "::/0"], &conn, false),
            (&["--dest", "10.0.0.0/8"], &mapped, true),
            (&["--dest", ":443"], &exec, false),
            // AND
            (
                &["--kind", "connect", "--dest", ":443", "--user", "deploy"],
                &conn,
                true,
            ),
            (
                &["--kind", "connect", "--dest", ":443", "--user", "root"],
                &conn,
                false,
            ),
            (
                &[
                    "--namespace",
                    "shop",
                    "--pod",
                    "web-*",
                    "--auid",
                    "1000",
                    "--binary",
                    "curl",
                ],
                &exec,
                true,
            ),
            (
                &[
                    "--namespace",
                    "shop",
                    "--pod",
                    "web-*",
                    "--auid",
                    "1000",
                    "--binary",
                    "ls",
                ],
                &exec,
                false,
            ),
            // Notices.
            (&["--kind", "exec", "--user", "nobody"], &missed, true),
            (&["--user", "nobody"], &loss, true),
            (&["--kind", "exec"], &loss, false),
            (&["--kind", "loss"], &loss, true),
            (&["--kind", "loss"], &exec, false),
        ];
        for (args, ev, want) in cases {
            let f = filter(args).unwrap();
            assert_eq!(f.matches(ev), *want, "{args:?} on {}", ev["kind"]);
        }
        let f = filter(&[]).unwrap();
        assert!(f.is_notice(&missed) && f.is_notice(&loss) && !f.is_notice(&exec));
        assert!(!filter(&["--kind", "loss"]).unwrap().is_notice(&loss));
    }

    #[test]
    fn bad_filters_name_their_flag() {
        for (args, flag) in [
            (&["--dest", "10.0.0.0/33"][..], "--dest"),
            (&["--dest", "10.0.0.300"], "--dest"),
            (&["--dest", "2001:db8::/129"], "--dest"),
            (&["--dest", "10.0.0.1:99999"], "--dest"),
            (&["--dest", ":"], "--dest"),
            (&["--dest", "[10.0.0.1]:80"], "--dest"),
            (&["--dest", "[::1]80"], "--dest"),
            (&["--dest", "10.0.0.0/+8"], "--dest"),
            (&["--dest", "host.example"], "--dest"),
            (&["--binary", "/usr/bin/\\"], "--binary"),
            (&["--spiffe-id", ""], "--spiffe-id"),
            (&["--pod", "x\\"], "--pod"),
            (&["--kind", "open"], "--kind"),
        ] {
            let err = filter(args)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.starts_with(flag), "{args:?}: {err}");
        }
        assert!(
            filter(&["--socket", "/a", "--file", "/b"]).is_err(),
            "exclusive"
        );
    }

    #[test]
    fn globs() {
        for (pat, s, want) in [
            ("*", "", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("*.service", "nginx.service", true),
            ("?", "é", true),
            ("??", "é", false),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("/usr/bin/[", "/usr/bin/[", true),
            ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
        ] {
            let g = Glob::parse("x", pat).unwrap();
            assert_eq!(g.matches(s), want, "{pat} on {s}");
        }
    }

    #[test]
    fn compact_lines() {
        assert_eq!(
            compact_line(&exec_event(), false),
            "2026-11-23T20:21:47.123Z exec    spiffe://example.org/ns/shop/sa/web deploy auid=alice \
             /usr/bin/curl -s 'http://x/a b' 'it'\\''s'"
        );
        let mut ev = exec_event();
        ev["executor"]["identity"]["spiffe_ids"] = json!([]);
        ev["executor"]["login"] = Value::Null;
        ev["executor"]["user"]["name"] = Value::Null;
        ev["action"] = json!({"binary": "/bin/busybox", "argv": ["ls", "-l", "a\u{1b}[2Jb", ""], "argv_truncated": true, "outcome": "failure", "error": "ENOENT"});
        assert_eq!(
            compact_line(&ev, false),
            "2026-11-23T20:21:47.123Z exec    shop/web-7d9f 1001 /bin/busybox [ls] -l $'a\\e[2Jb' '' [truncated] \
             -> failure (ENOENT)"
        );
        ev["executor"]["workload"]["pod"] = Value::Null;
        ev["executor"]["workload"]["container"]["name"] = Value::Null;
        assert!(compact_line(&ev, false).contains(" container:0123456789ab 1001 "));
        ev["executor"]["workload"]["container"] = Value::Null;
        ev["executor"]["workload"]["unit"] = json!("nginx.service");
        assert!(compact_line(&ev, false).contains(" nginx.service 1001 "));
        ev["executor"]["workload"]["unit"] = Value::Null;
        assert!(compact_line(&ev, false).contains(" host 1001 "));

        assert_eq!(
            compact_line(&connect_event("2001:db8::7", 8443), false),
            "2026-11-23T20:21:47.123Z connect spiffe://example.org/ns/shop/sa/web deploy auid=alice \
             /usr/bin/curl tcp [2001:db8::7]:8443 -> failure (ECONNREFUSED)"
        );
        let mut ok = connect_event("10.1.2.3", 443);
        ok["action"]["outcome"] = json!("success");
        ok["action"]["error"] = Value::Null;
        assert!(compact_line(&ok, false).ends_with(" /usr/bin/curl tcp 10.1.2.3:443 -> success"));

        assert_eq!(
            compact_line(&loss_event(), false),
            "2026-11-23T20:21:47.123Z !! tracer lost 12 events: ring_full=10 sink_error=2"
        );
        assert_eq!(
            compact_line(&json!({"kind": "missed", "missed": 12}), false),
            "!! 12 events missed by this reader"
        );
        assert_eq!(
            compact_line(&json!({"kind": "missed", "missed": 1}), false),
            "!! 1 event missed by this reader"
        );
        // Colour wraps fields in escape sequences; the text is the same.
        let coloured = compact_line(&exec_event(), true);
        assert!(coloured.contains("\x1b[32mexec   \x1b[0m"), "{coloured:?}");
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "tracer-tail-{}-{}-{name}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn append(path: &Path, s: &str) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    #[test]
    fn follower_sees_every_line_once_across_a_rotation() {
        let dir = TempDir::new("rename");
        let path = dir.0.join("events.json");
        append(&path, "old-1\nold-2\n");
        let mut f = FileFollower::open(&path, false).unwrap();
        let mut seen = f.poll_lines().unwrap();
        assert!(seen.is_empty(), "starts at the end");
        append(&path, "a\nb\npart");
        seen.extend(f.poll_lines().unwrap());
        append(&path, "ial\nc\n");
        // Rotate, write to the new file before the follower looks.
        fs::rename(&path, dir.0.join("events.json.1")).unwrap();
        append(&path, "d\ne\n");
        seen.extend(f.poll_lines().unwrap());
        append(&path, "f\n");
        seen.extend(f.poll_lines().unwrap());
        seen.extend(f.poll_lines().unwrap());
        assert_eq!(seen, ["a", "b", "partial", "c", "d", "e", "f"]);

        let mut f = FileFollower::open(&path, true).unwrap();
        assert_eq!(f.poll_lines().unwrap(), ["d", "e", "f"]);
    }

    #[test]
    fn follower_keeps_up_with_several_rotations_between_polls() {
        let dir = TempDir::new("many");
        let path = dir.0.join("events.json");
        let mut w = crate::sink::file::RotatingFile::open(&path, 64, 50).unwrap();
        let mut f = FileFollower::open(&path, true).unwrap();
        let mut want = Vec::new();
        let mut seen = Vec::new();
        let mut n = 0;
        for round in 0..40 {
            // 0 to ~12 rotations' worth per round.
            for _ in 0..(round % 7) * 11 {
                let line = format!("{{\"n\":{n}}}");
                w.write_lines(format!("{line}\n").as_bytes()).unwrap();
                want.push(line);
                n += 1;
            }
            seen.extend(f.poll_lines().unwrap());
        }
        seen.extend(f.poll_lines().unwrap());
        assert!(w.rotations() > 20, "{}", w.rotations());
        assert_eq!(seen, want);
    }

    #[test]
    fn follower_handles_truncation() {
        let dir = TempDir::new("trunc");
        let path = dir.0.join("events.json");
        append(&path, "a\nb\nhal");
        let mut f = FileFollower::open(&path, true).unwrap();
        assert_eq!(f.poll_lines().unwrap(), ["a", "b"]);
        // A restarted writer trims the partial line: nothing shown again.
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4)
            .unwrap();
        append(&path, "c\n");
        assert_eq!(f.poll_lines().unwrap(), ["c"]);
        // Truncated to nothing (copytruncate): read from the start.
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&path, "d\n");
        assert_eq!(f.poll_lines().unwrap(), ["d"]);
    }

    #[test]
    fn printer_counts_matches_not_notices() {
        let mut p = Printer {
            filter: filter(&["--kind", "exec"]).unwrap(),
            json: true,
            color: false,
            left: Some(2),
            buf: Vec::new(),
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

    #[tokio::test]
    async fn socket_errors_name_the_path() {
        let dir = TempDir::new("sock");
        let path = dir.0.join("none.sock");
        let args = TailArgs {
            socket: Some(path.clone()),
            ..TailArgs::default()
        };
        let err = format!("{:#}", run(args).await.err().unwrap());
        assert!(err.contains(&path.display().to_string()), "{err}");
        let args = TailArgs {
            file: Some(dir.0.join("none.json")),
            ..TailArgs::default()
        };
        let err = format!("{:#}", run(args).await.err().unwrap());
        assert!(err.contains("none.json"), "{err}");
    }

    #[tokio::test]
    async fn reads_the_socket_until_eof() {
        let dir = TempDir::new("eof");
        let path = dir.0.join("t.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"{\"kind\":\"loss\",\"lost\":{}}\n")
                .await
                .unwrap();
        });
        // Filtered out: nothing reaches the test's stdout.
        let args = TailArgs {
            socket: Some(path),
            kind: vec!["exec".into()],
            ..TailArgs::default()
        };
        run(args).await.unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_refused_reader_says_why() {
        let dir = TempDir::new("refused");
        let path = dir.0.join("t.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(
                b"{\"kind\":\"refused\",\"error\":\"too many tail readers (--tail-clients 1)\"}\n",
            )
            .await
            .unwrap();
        });
        let args = TailArgs {
            socket: Some(path),
            ..TailArgs::default()
        };
        let err = format!("{:#}", run(args).await.err().unwrap());
        assert!(err.contains("too many tail readers"), "{err}");
        server.await.unwrap();
    }
}
