//! The event filter of `tracer tail`: kind, SPIFFE ID, pod, user, login uid,
//! binary, destination and the destination's Service, all of which must match.
use std::net::IpAddr;

use anyhow::{Context as _, anyhow, bail};

use super::{TailArgs, base_name};
use crate::event::view::Line;
use crate::glob::{Glob, TextGlobProblem};

/// `process` records (`--lineage ids`: descriptions of ancestors, not actions)
/// show only when asked for by name.
const KINDS: [&str; 7] = [
    "exec", "connect", "fork", "exit", "usage", "loss", "process",
];

/// A filter's glob, in text mode (`*` any run, `?` one, `\` makes the next
/// one literal), its problems named after `--flag`.
fn parse_glob(flag: &str, pattern: &str) -> anyhow::Result<Glob> {
    Glob::text(pattern).map_err(|problem| match problem {
        TextGlobProblem::Empty => anyhow!("--{flag}: empty pattern"),
        TextGlobProblem::LoneBackslash => anyhow!("--{flag}: `{pattern}` ends with a lone `\\`"),
    })
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
pub(crate) struct Filter {
    kinds: Vec<String>,
    spiffe_id: Option<Glob>,
    namespace: Option<Glob>,
    pod: Option<Glob>,
    user: Option<UserSel>,
    auid: Option<u32>,
    binary: Option<Glob>,
    dest: Option<Dest>,
    /// `--dest-service`: glob on `namespace/name`.
    dest_service: Option<Glob>,
    /// `--dest-name`: glob on the DNS name or its CNAME target (lower-case).
    dest_name: Option<Glob>,
    /// `--requestor`: glob on the requestor's display, system or a field's value.
    requestor: Option<Glob>,
}

impl Filter {
    pub(crate) fn from_args(a: &TailArgs) -> anyhow::Result<Filter> {
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
            |flag: &str, p: &Option<String>| p.as_deref().map(|p| parse_glob(flag, p)).transpose();
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
        let dest_service = match a.dest_service.as_deref() {
            Some(p) if !p.contains('/') => {
                bail!("--dest-service: `{p}` is not NAMESPACE/NAME (a glob, e.g. `shop/*`)")
            }
            p => p.map(|p| parse_glob("dest-service", p)).transpose()?,
        };
        Ok(Filter {
            kinds,
            dest_service,
            spiffe_id: glob("spiffe-id", &a.spiffe_id)?,
            namespace: glob("namespace", &a.namespace)?,
            pod: glob("pod", &a.pod)?,
            user,
            auid: a.auid,
            binary: glob("binary", &a.binary)?,
            dest,
            // DNS names are reported lower-cased.
            requestor: glob("requestor", &a.requestor)?,
            dest_name: glob(
                "dest-name",
                &a.dest_name.as_deref().map(str::to_ascii_lowercase),
            )?,
        })
    }

    pub(crate) fn matches(&self, ev: &Line) -> bool {
        let kind = ev.kind().unwrap_or_default();
        match kind {
            "missed" => return true,
            "loss" => return self.kinds.is_empty() || self.wants("loss"),
            "process" => return self.wants("process"),
            _ => {}
        }
        if !self.kinds.is_empty() && !self.wants(kind) {
            return false;
        }
        let ex = ev.executor.as_ref();
        let glob_on = |g: &Option<Glob>, v: Option<&str>| {
            g.as_ref().is_none_or(|g| v.is_some_and(|s| g.matches(s)))
        };
        if let Some(g) = &self.spiffe_id {
            let ids = ex
                .and_then(|ex| ex.identity.as_ref())
                .and_then(|id| id.spiffe_ids.as_ref());
            if !ids.is_some_and(|ids| ids.iter().flatten().any(|id| g.matches(id))) {
                return false;
            }
        }
        let pod = ex
            .and_then(|ex| ex.workload.as_ref())
            .and_then(|w| w.pod.as_ref());
        if !glob_on(&self.namespace, pod.and_then(|p| p.namespace.as_deref()))
            || !glob_on(&self.pod, pod.and_then(|p| p.name.as_deref()))
        {
            return false;
        }
        let user = ex.and_then(|ex| ex.user.as_ref());
        match &self.user {
            Some(UserSel::Uid(uid)) if user.and_then(|u| u.uid) != Some(u64::from(*uid)) => {
                return false;
            }
            Some(UserSel::Name(name)) if user.and_then(|u| u.name.as_deref()) != Some(name) => {
                return false;
            }
            _ => {}
        }
        if let Some(auid) = self.auid
            && ex.and_then(|ex| ex.login.as_ref()?.auid) != Some(u64::from(auid))
        {
            return false;
        }
        if let Some(g) = &self.requestor {
            let r = ex.and_then(|ex| ex.requestor.as_ref());
            // Every string member: display, system, the fields, claim and
            // inherited_from (an exec_id matches only itself).
            if !r.is_some_and(|r| r.values().flatten().any(|v| g.matches(v))) {
                return false;
            }
        }
        let act = ev.action.as_ref();
        if let Some(g) = &self.binary {
            let hit = |b: Option<&str>| {
                b.is_some_and(|b| g.matches(b) || (!g.has_slash() && g.matches(base_name(b))))
            };
            if !hit(ex.and_then(|ex| ex.binary.as_deref()))
                && !hit(act.and_then(|a| a.binary.as_deref()))
            {
                return false;
            }
        }
        if let Some(d) = &self.dest {
            let dst = act.and_then(|a| a.destination.as_ref());
            let ip = dst
                .and_then(|d| d.ip.as_deref())
                .and_then(|s| s.parse().ok());
            if !d.matches(ip, dst.and_then(|d| d.port)) {
                return false;
            }
        }
        if let Some(g) = &self.dest_service {
            let svc = act
                .and_then(|a| a.destination.as_ref())
                .and_then(|d| d.service.as_ref());
            let named = svc.and_then(|s| {
                Some(format!(
                    "{}/{}",
                    s.namespace.as_deref()?,
                    s.name.as_deref()?
                ))
            });
            if !named.is_some_and(|n| g.matches(&n)) {
                return false;
            }
        }
        if let Some(g) = &self.dest_name {
            let dst = act.and_then(|a| a.destination.as_ref());
            let hit = |n: Option<&str>| n.is_some_and(|n| g.matches(n));
            if !hit(dst.and_then(|d| d.name.as_deref()))
                && !hit(dst.and_then(|d| d.cname.as_deref()))
            {
                return false;
            }
        }
        true
    }

    /// A matching line that does not count towards `--count`.
    pub(super) fn is_notice(&self, ev: &Line) -> bool {
        match ev.kind() {
            Some("missed") => true,
            Some("loss") => !self.wants("loss"),
            _ => false,
        }
    }

    fn wants(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{connect_event, exec_event, filter, loss_event, parsed};
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn filters_each_and_together() {
        let exec = exec_event();
        let conn = connect_event("10.1.2.3", 443);
        let conn6 = connect_event("2001:db8::7", 8443);
        let mapped = connect_event("::ffff:10.1.2.3", 443);
        let mut named = connect_event("10.96.3.7", 443);
        named["action"]["destination"]["service"] =
            json!({"namespace": "shop", "name": "cart", "port_name": "https"});
        let mut dns_named = connect_event("10.1.2.3", 443);
        dns_named["action"]["destination"]["name"] = json!("api.shop.example");
        dns_named["action"]["destination"]["cname"] = json!("edge.cdn.example");
        let missed = json!({"kind": "missed", "missed": 3});
        let loss = loss_event();
        let process = json!({"time": "2026-11-23T20:21:47.123456789Z", "kind": "process",
            "process": {"exec_id": "x", "pid": 7, "binary": "/bin/sh", "argv": ["sh"]}});
        let mut other = exec_event();
        other["executor"]["user"] =
            json!({"uid": 0, "name": "root", "gid": 0, "group": "root", "euid": 0, "egid": 0});
        other["executor"]["login"] = Value::Null;
        other["executor"]["workload"]["pod"] = Value::Null;
        other["executor"]["identity"]["spiffe_ids"] = json!([]);
        other["action"]["binary"] = json!("/bin/ls");
        other["executor"]["binary"] = json!("/bin/sh");
        let mut ci = exec_event();
        ci["executor"]["requestor"] = json!({"system": "github-actions", "run": "9001",
            "attempt": "1", "actor": "alice", "display": "octo/app#9001/1 by alice",
            "source": "environment", "inherited_from": "AAAA", "claim": "runner"});

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
            (&["--dest-service", "shop/cart"], &named, true),
            (&["--dest-service", "shop/*"], &named, true),
            (&["--dest-service", "*/cart"], &named, true),
            (&["--dest-service", "shop/car"], &named, false),
            (&["--dest-service", "prod/cart"], &named, false),
            (&["--dest-service", "*/*"], &conn, false),
            (&["--dest-service", "*/*"], &exec, false),
            (
                &["--dest-service", "shop/cart", "--dest", ":443"],
                &named,
                true,
            ),
            (
                &["--dest-service", "shop/cart", "--dest", ":80"],
                &named,
                false,
            ),
            (&["--dest-name", "api.shop.example"], &dns_named, true),
            (&["--dest-name", "*.shop.example"], &dns_named, true),
            (&["--dest-name", "API.Shop.*"], &dns_named, true),
            (&["--dest-name", "*.cdn.example"], &dns_named, true),
            (&["--dest-name", "*.other.example"], &dns_named, false),
            (&["--dest-name", "*"], &conn, false),
            (&["--dest-name", "*"], &exec, false),
            (&["--requestor", "octo/app#*"], &ci, true),
            (&["--requestor", "github-*"], &ci, true),
            (&["--requestor", "alice"], &ci, true),
            (&["--requestor", "9001"], &ci, true),
            (&["--requestor", "bob"], &ci, false),
            (&["--requestor", "*"], &exec, false),
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
            // Descriptions of ancestors (`--lineage ids`): only when asked for.
            (&[], &process, false),
            (&["--user", "nobody"], &process, false),
            (&["--kind", "process"], &process, true),
            (&["--kind", "process"], &exec, false),
        ];
        for (args, ev, want) in cases {
            let f = filter(args).unwrap();
            let text = ev.to_string();
            let got = f.matches(&parsed(&text));
            assert_eq!(got, *want, "{args:?} on {}", ev["kind"]);
        }
        let f = filter(&[]).unwrap();
        let (missed, loss, exec) = (missed.to_string(), loss.to_string(), exec.to_string());
        let (missed, loss, exec) = (parsed(&missed), parsed(&loss), parsed(&exec));
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
            (&["--dest-service", "cart"], "--dest-service"),
            (&["--dest-service", "shop/\\"], "--dest-service"),
        ] {
            let err = filter(args)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.starts_with(flag), "{args:?}: {err}");
        }
        // The glob errors word for word.
        let err = |args: &[&str]| filter(args).err().map(|e| e.to_string());
        assert_eq!(
            err(&["--pod", "x\\"]).as_deref(),
            Some("--pod: `x\\` ends with a lone `\\`")
        );
        assert_eq!(
            err(&["--binary", ""]).as_deref(),
            Some("--binary: empty pattern")
        );
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
            let g = parse_glob("x", pat).unwrap();
            assert_eq!(g.matches(s), want, "{pat} on {s}");
        }
    }
}
