//! Destination names from the DNS answers a network namespace's own sockets
//! received: the cgroup skb probes copy queries (to port 53) and answers (from
//! port 53); an answer is believed only when it comes to the socket that sent a
//! matching query (same id and question), and what it says (A/AAAA, through any
//! CNAME chain) names those addresses in that socket's network namespace until
//! the TTL runs out. The socket's namespace comes from its connect (or first
//! send) to port 53, which the sock_addr hooks report with the caller's
//! namespaces.
//!
//! Messages are parsed with `simple-dns`, after a guard against compression
//! pointer cycles (which it would follow forever). Everything here is bounded:
//! sockets, outstanding queries, and names (in bytes, per namespace and overall);
//! what is dropped is counted.
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    num::NonZeroUsize,
    sync::Arc,
    time::{Duration, Instant},
};

use lru::LruCache;
use simple_dns::{Packet, PacketFlag, rdata::RData};
use tracer_common::{AF_INET6, DNS_ANSWER, DNS_QUERY};

use crate::decode::Dns;

/// DNS sockets remembered (cookie -> network namespace).
const SOCKETS_MAX: usize = 8192;
/// Queries waiting for their answer.
const QUERIES_MAX: usize = 8192;
/// How long a query waits for its answer (resolvers give up after ~5 s a try).
const QUERY_WAIT: Duration = Duration::from_secs(30);
/// Names kept for an address at least this long whatever the TTL says (local
/// servers answer with TTL 0), and this much past the TTL: a connect right
/// after the answer expired still comes from that lookup.
const TTL_FLOOR: Duration = Duration::from_secs(10);
const TTL_GRACE: Duration = Duration::from_secs(30);
/// TTLs above this are cut (a day).
const TTL_MAX: Duration = Duration::from_secs(86_400);
/// Bytes of names kept overall and per network namespace.
pub(crate) const NAMES_BYTES_MAX: usize = 4 << 20;
pub(crate) const NAMES_BYTES_PER_NETNS_MAX: usize = 512 << 10;
/// What one remembered address costs besides its names (key, LRU links, times).
const ENTRY_OVERHEAD: usize = 96;
/// CNAME hops followed from the question's name.
const CNAME_HOPS_MAX: usize = 8;

/// What a DNS answer says about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub ip: IpAddr,
    /// The name the client asked for.
    pub name: String,
    /// Where a CNAME chain led, when there was one.
    pub cname: Option<String>,
    pub ttl: u32,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParseError {
    #[error("a compression pointer loop")]
    PointerLoop,
    #[error("section counts larger than the message")]
    Counts,
    #[error("not a DNS message: {0}")]
    Malformed(String),
    #[error("no question")]
    NoQuestion,
}

/// A name as written in the message, lower-cased, no trailing dot; bytes
/// outside letters, digits, `-` and `_` as `\DDD` (RFC 1035 master file form),
/// so a label can never pass for punctuation or a control character.
fn name_text<'a>(labels: impl Iterator<Item = &'a [u8]>) -> String {
    let mut out = String::new();
    for (i, label) in labels.enumerate() {
        if i > 0 {
            out.push('.');
        }
        for &b in label {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                out.push(b.to_ascii_lowercase() as char);
            } else {
                out.push_str(&format!("\\{b:03}"));
            }
        }
    }
    out
}

/// A pointer-only cycle (a pointer to a pointer ... back to the first) is the
/// one shape `simple-dns` would follow forever: a cycle through any label ends
/// at its 255-byte name limit. Every offset that looks like a pointer is
/// checked, wherever it is; a false alarm costs one answer.
fn has_pointer_cycle(msg: &[u8]) -> bool {
    let target = |i: usize| -> Option<usize> {
        let hi = *msg.get(i)?;
        let lo = *msg.get(i + 1)?;
        (hi & 0xc0 == 0xc0).then(|| (usize::from(hi & 0x3f) << 8) | usize::from(lo))
    };
    // 0: unvisited, 1: on the current path, 2: done.
    let mut state = vec![0u8; msg.len()];
    for start in 0..msg.len() {
        let mut path = Vec::new();
        let mut at = start;
        loop {
            match state.get(at) {
                Some(0) => {}
                Some(1) => return true,
                _ => break,
            }
            state[at] = 1;
            path.push(at);
            match target(at) {
                Some(t) => at = t,
                None => break,
            }
        }
        for p in path {
            state[p] = 2;
        }
    }
    false
}

fn parse(msg: &[u8]) -> Result<Packet<'_>, ParseError> {
    // Each question takes 5 bytes at least and each record 11: counts that
    // cannot fit are refused before anything is allocated for them.
    if msg.len() >= 12 {
        let n = |i: usize| usize::from(u16::from_be_bytes([msg[i], msg[i + 1]]));
        if n(4) * 5 + (n(6) + n(8) + n(10)) * 11 > msg.len() - 12 {
            return Err(ParseError::Counts);
        }
    }
    if has_pointer_cycle(msg) {
        return Err(ParseError::PointerLoop);
    }
    Packet::parse(msg).map_err(|e| ParseError::Malformed(e.to_string()))
}

/// A query's id and question (name, type).
pub(crate) fn parse_query(msg: &[u8]) -> Result<(u16, String, u16), ParseError> {
    let p = parse(msg)?;
    let q = p.questions.first().ok_or(ParseError::NoQuestion)?;
    Ok((p.id(), name_text(q.qname.as_bytes()), u16::from(q.qtype)))
}

/// An answer's id, question and the addresses it gives for the question's
/// name, directly or through CNAMEs.
pub(crate) fn parse_answer(msg: &[u8]) -> Result<(u16, String, u16, Vec<Answer>), ParseError> {
    let p = parse(msg)?;
    let q = p.questions.first().ok_or(ParseError::NoQuestion)?;
    if !p.has_flags(PacketFlag::RESPONSE) {
        return Err(ParseError::Malformed("not a response".into()));
    }
    let qname = name_text(q.qname.as_bytes());
    let qtype = u16::from(q.qtype);
    // Follow the chain from the question's name; remember the smallest TTL on it.
    let mut chain = vec![qname.clone()];
    let mut ttl = u32::MAX;
    for _ in 0..CNAME_HOPS_MAX {
        let Some(last) = chain.last() else { break };
        let next = p.answers.iter().find_map(|rr| match &rr.rdata {
            RData::CNAME(c) if name_text(rr.name.as_bytes()) == *last => {
                Some((name_text(c.0.as_bytes()), rr.ttl))
            }
            _ => None,
        });
        match next {
            Some((target, t)) if !chain.contains(&target) => {
                ttl = ttl.min(t);
                chain.push(target);
            }
            _ => break,
        }
    }
    let cname = (chain.len() > 1).then(|| chain[chain.len() - 1].clone());
    let mut out = Vec::new();
    for rr in &p.answers {
        let ip = match &rr.rdata {
            RData::A(a) => IpAddr::V4(Ipv4Addr::from(a.address)),
            RData::AAAA(a) => IpAddr::V6(Ipv6Addr::from(a.address)),
            _ => continue,
        };
        if !chain.contains(&name_text(rr.name.as_bytes())) {
            continue;
        }
        out.push(Answer {
            ip,
            name: qname.clone(),
            cname: cname.clone(),
            ttl: ttl.min(rr.ttl),
        });
    }
    Ok((p.id(), qname, qtype, out))
}

/// What became of DNS messages; exported as metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DnsCounts {
    /// Queries seen and remembered.
    pub queries: u64,
    /// Answers that matched a query and named addresses.
    pub answers: u64,
    /// Addresses named.
    pub names: u64,
    /// Messages that did not parse (or were cut at the probe's copy size).
    pub malformed: u64,
    /// Messages cut at the probe's copy size.
    pub truncated: u64,
    /// Answers no outstanding query of that socket asked for (unsolicited,
    /// late, or their query evicted).
    pub unmatched: u64,
    /// Queries from a socket whose network namespace is not known (its
    /// connect to port 53 was not seen).
    pub unknown_socket: u64,
    /// Names dropped to stay within the byte bounds before their TTL ran out.
    pub evicted: u64,
    /// Queries evicted before their answer came.
    pub queries_evicted: u64,
}

struct Query {
    netns: u32,
    qname: String,
    qtype: u16,
    at: Instant,
}

struct Entry {
    name: Arc<str>,
    cname: Option<Arc<str>>,
    until: Instant,
}

impl Entry {
    fn bytes(&self) -> usize {
        ENTRY_OVERHEAD + self.name.len() + self.cname.as_ref().map_or(0, |c| c.len())
    }
}

#[derive(Default)]
struct Netns {
    names: Option<LruCache<IpAddr, Entry>>,
    bytes: usize,
}

/// The names a network namespace's DNS answers gave its addresses.
pub(crate) struct DnsNames {
    sockets: LruCache<u64, u32>,
    queries: LruCache<(u64, u16), Query>,
    netns: HashMap<u32, Netns>,
    bytes: usize,
    bytes_max: usize,
    bytes_per_netns_max: usize,
    pub counts: DnsCounts,
}

impl Default for DnsNames {
    fn default() -> Self {
        Self::new(NAMES_BYTES_MAX, NAMES_BYTES_PER_NETNS_MAX)
    }
}

fn cap(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

/// A destination as the probes report it, v4-mapped IPv6 as IPv4.
pub(crate) fn ip_of(family: u16, addr: &[u8; 16]) -> IpAddr {
    if family == AF_INET6 {
        let v6 = Ipv6Addr::from(*addr);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    } else {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    }
}

impl DnsNames {
    pub(crate) fn new(bytes_max: usize, bytes_per_netns_max: usize) -> Self {
        Self {
            sockets: LruCache::new(cap(SOCKETS_MAX)),
            queries: LruCache::new(cap(QUERIES_MAX)),
            netns: HashMap::new(),
            bytes: 0,
            bytes_max,
            bytes_per_netns_max: bytes_per_netns_max.min(bytes_max),
            counts: DnsCounts::default(),
        }
    }

    /// Bytes held by names.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// A connect (or first send) to port 53: the socket's namespace.
    pub(crate) fn socket(&mut self, cookie: u64, dport: u16, netns: u32) {
        if dport == 53 {
            self.sockets.put(cookie, netns);
        }
    }

    pub(crate) fn message(&mut self, d: &Dns, now: Instant) {
        if d.truncated {
            self.counts.truncated += 1;
        }
        match d.direction {
            DNS_QUERY => self.query(d, now),
            DNS_ANSWER => self.answer(d, now),
            _ => self.counts.malformed += 1,
        }
    }

    fn query(&mut self, d: &Dns, now: Instant) {
        let Some(&netns) = self.sockets.get(&d.cookie) else {
            self.counts.unknown_socket += 1;
            return;
        };
        let Ok((id, qname, qtype)) = parse_query(&d.message) else {
            self.counts.malformed += 1;
            return;
        };
        self.counts.queries += 1;
        let q = Query {
            netns,
            qname,
            qtype,
            at: now,
        };
        if let Some((key, _)) = self.queries.push((d.cookie, id), q)
            && key != (d.cookie, id)
        {
            self.counts.queries_evicted += 1;
        }
    }

    fn answer(&mut self, d: &Dns, now: Instant) {
        let (id, qname, qtype, answers) = match parse_answer(&d.message) {
            Ok(a) => a,
            Err(_) => {
                self.counts.malformed += 1;
                return;
            }
        };
        let key = (d.cookie, id);
        let matched = self.queries.peek(&key).is_some_and(|q| {
            q.qname == qname && q.qtype == qtype && now.duration_since(q.at) <= QUERY_WAIT
        });
        if !matched {
            self.counts.unmatched += 1;
            return;
        }
        let Some(q) = self.queries.pop(&key) else {
            return;
        };
        self.counts.answers += 1;
        for a in answers {
            self.learn(q.netns, a, now);
        }
    }

    fn learn(&mut self, netns: u32, a: Answer, now: Instant) {
        let keep = Duration::from_secs(u64::from(a.ttl))
            .max(TTL_FLOOR)
            .min(TTL_MAX)
            + TTL_GRACE;
        let entry = Entry {
            name: a.name.into(),
            cname: a.cname.map(Into::into),
            until: now + keep,
        };
        let size = entry.bytes();
        if size > self.bytes_per_netns_max {
            self.counts.evicted += 1;
            return;
        }
        let per_max = self.bytes_per_netns_max;
        let ns = self.netns.entry(netns).or_default();
        let names = ns.names.get_or_insert_with(LruCache::unbounded);
        if let Some(old) = names.put(a.ip, entry) {
            ns.bytes -= old.bytes();
            self.bytes -= old.bytes();
        }
        ns.bytes += size;
        self.bytes += size;
        self.counts.names += 1;
        // This namespace's own bound first, then the overall one (taken from
        // the namespace holding the most, so one cannot starve the others).
        while ns.bytes > per_max {
            let Some((_, old)) = names.pop_lru() else {
                break;
            };
            ns.bytes -= old.bytes();
            self.bytes -= old.bytes();
            self.counts.evicted += 1;
        }
        while self.bytes > self.bytes_max {
            let Some((&big, _)) = self.netns.iter().max_by_key(|(_, n)| n.bytes) else {
                break;
            };
            let Some(ns) = self.netns.get_mut(&big) else {
                break;
            };
            let Some((_, old)) = ns.names.as_mut().and_then(LruCache::pop_lru) else {
                self.netns.remove(&big);
                continue;
            };
            ns.bytes -= old.bytes();
            self.bytes -= old.bytes();
            self.counts.evicted += 1;
        }
        self.netns.retain(|_, n| n.bytes > 0);
    }

    /// The name `netns`'s DNS answers gave `ip`, and the CNAME target, if any
    /// and still fresh.
    pub(crate) fn lookup(
        &mut self,
        netns: u32,
        ip: IpAddr,
        now: Instant,
    ) -> Option<(Arc<str>, Option<Arc<str>>)> {
        let ns = self.netns.get_mut(&netns)?;
        let names = ns.names.as_mut()?;
        let e = names.get(&ip)?;
        if e.until > now {
            return Some((e.name.clone(), e.cname.clone()));
        }
        if let Some(old) = names.pop(&ip) {
            ns.bytes -= old.bytes();
            self.bytes -= old.bytes();
        }
        None
    }
}

/// For the `dns` fuzz target: `data` as a query, as an answer, and as the
/// answer to itself taken as a query, through the name cache.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    let _ = parse_query(data);
    let _ = parse_answer(data);
    let now = Instant::now();
    let mut names = DnsNames::new(4096, 1024);
    names.socket(1, 53, 1);
    let msg = |direction| Dns {
        ts_boot_ns: 0,
        cookie: 1,
        direction,
        truncated: false,
        protocol: 17,
        family: tracer_common::AF_INET,
        server: [0; 16],
        message: data.to_vec(),
    };
    names.message(&msg(DNS_QUERY), now);
    names.message(&msg(DNS_ANSWER), now);
    for a in parse_answer(data).map(|a| a.3).unwrap_or_default() {
        let _ = names.lookup(1, a.ip, now);
    }
}

#[cfg(test)]
mod tests;
