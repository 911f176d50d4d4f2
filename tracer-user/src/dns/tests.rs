use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use tracer_common::{AF_INET, DNS_ANSWER, DNS_QUERY};

use super::*;
use crate::decode::Dns;

/// A name in wire form, uncompressed.
fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

fn header(id: u16, flags: u16, qd: u16, an: u16) -> Vec<u8> {
    let mut h = Vec::new();
    for v in [id, flags, qd, an, 0, 0] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h
}

fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = header(id, 0x0100, 1, 0);
    m.extend(wire_name(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

/// An answer record: owner as a pointer to `owner_at` or a full name.
fn rr(owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut r = owner.to_vec();
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&ttl.to_be_bytes());
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

/// The answer to `query(id, name, qtype)` with `records` (their count set).
fn answer(id: u16, name: &str, qtype: u16, records: &[Vec<u8>]) -> Vec<u8> {
    let mut m = query(id, name, qtype);
    m[2..4].copy_from_slice(&0x8180u16.to_be_bytes());
    m[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
    for r in records {
        m.extend_from_slice(r);
    }
    m
}

/// Pointer to the question's name (offset 12), as servers compress it.
const AT_QNAME: [u8; 2] = [0xc0, 0x0c];

/// (address, name, CNAME target, TTL) as an answer gives them.
type Named = (IpAddr, &'static str, Option<&'static str>, u32);

#[test]
fn parses_answers() {
    struct Case {
        what: &'static str,
        msg: Vec<u8>,
        want: Result<Vec<Named>, ()>,
    }
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    let v6: IpAddr = IpAddr::V6("2001:db8::7".parse::<Ipv6Addr>().unwrap());
    let cname_chain = {
        // www.example.com CNAME edge.cdn.example.net CNAME e1.cdn.example.net A 192.0.2.9
        let mut recs = vec![rr(&AT_QNAME, 5, 300, &wire_name("edge.cdn.example.net"))];
        recs.push(rr(
            &wire_name("edge.cdn.example.net"),
            5,
            60,
            &wire_name("e1.cdn.example.net"),
        ));
        recs.push(rr(&wire_name("e1.cdn.example.net"), 1, 20, &[192, 0, 2, 9]));
        answer(7, "www.example.com", 1, &recs)
    };
    let truncated = {
        let m = answer(3, "a.example", 1, &[rr(&AT_QNAME, 1, 60, &[10, 0, 0, 1])]);
        m[..m.len() - 3].to_vec()
    };
    let pointer_loop = {
        // The answer's owner is a pointer to itself.
        let mut m = answer(4, "a.example", 1, &[]);
        let at = m.len() as u16;
        m[6..8].copy_from_slice(&1u16.to_be_bytes());
        m.extend(rr(&(0xc000 | at).to_be_bytes(), 1, 60, &[10, 0, 0, 1]));
        m
    };
    let two_pointer_loop = {
        let mut m = answer(4, "a.example", 1, &[]);
        let at = m.len() as u16;
        m[6..8].copy_from_slice(&1u16.to_be_bytes());
        // owner -> at+2 -> at
        let mut owner = (0xc000 | (at + 2)).to_be_bytes().to_vec();
        owner.extend_from_slice(&(0xc000 | at).to_be_bytes());
        m.extend(rr(&owner, 1, 60, &[10, 0, 0, 1]));
        m
    };
    let cases = [
        Case {
            what: "A",
            msg: answer(
                1,
                "svc.example",
                1,
                &[rr(&AT_QNAME, 1, 120, &[10, 1, 2, 3])],
            ),
            want: Ok(vec![(v4(10, 1, 2, 3), "svc.example", None, 120)]),
        },
        Case {
            what: "AAAA",
            msg: answer(2, "svc.example", 28, &[rr(&AT_QNAME, 28, 30, &v6_bytes())]),
            want: Ok(vec![(v6, "svc.example", None, 30)]),
        },
        Case {
            what: "mixed case (0x20) name is lower-cased",
            msg: answer(1, "SvC.ExAmple", 1, &[rr(&AT_QNAME, 1, 5, &[10, 1, 2, 4])]),
            want: Ok(vec![(v4(10, 1, 2, 4), "svc.example", None, 5)]),
        },
        Case {
            what: "CNAME chain: the name asked, the target, the smallest TTL",
            msg: cname_chain,
            want: Ok(vec![(
                v4(192, 0, 2, 9),
                "www.example.com",
                Some("e1.cdn.example.net"),
                20,
            )]),
        },
        Case {
            what: "an address for another name is not taken",
            msg: answer(
                1,
                "svc.example",
                1,
                &[rr(&wire_name("other.example"), 1, 60, &[10, 9, 9, 9])],
            ),
            want: Ok(vec![]),
        },
        Case {
            what: "odd bytes in a label are escaped",
            msg: answer(1, "a.b", 1, &[rr(&AT_QNAME, 1, 60, &[10, 0, 0, 2])])
                .into_iter()
                .enumerate()
                .map(|(i, b)| if i == 13 { b'\n' } else { b })
                .collect(),
            want: Ok(vec![(v4(10, 0, 0, 2), "\\010.b", None, 60)]),
        },
        Case {
            what: "truncated",
            msg: truncated,
            want: Err(()),
        },
        Case {
            what: "compression pointer to itself",
            msg: pointer_loop,
            want: Err(()),
        },
        Case {
            what: "compression pointers in a cycle",
            msg: two_pointer_loop,
            want: Err(()),
        },
        Case {
            what: "counts larger than the message",
            msg: {
                let mut m = answer(1, "a.example", 1, &[]);
                m[6..8].copy_from_slice(&0xffffu16.to_be_bytes());
                m
            },
            want: Err(()),
        },
        Case {
            what: "a query is not an answer",
            msg: query(1, "a.example", 1),
            want: Err(()),
        },
        Case {
            what: "empty",
            msg: vec![],
            want: Err(()),
        },
        Case {
            what: "header only",
            msg: header(1, 0x8180, 0, 0),
            want: Err(()),
        },
    ];
    for c in cases {
        let got = parse_answer(&c.msg)
            .map(|(_, _, _, a)| {
                a.into_iter()
                    .map(|a| (a.ip, a.name, a.cname, a.ttl))
                    .collect::<Vec<_>>()
            })
            .map_err(|_| ());
        let want = c.want.map(|v| {
            v.into_iter()
                .map(|(ip, n, c, t)| (ip, n.to_owned(), c.map(str::to_owned), t))
                .collect::<Vec<_>>()
        });
        assert_eq!(got, want, "{}", c.what);
    }
}

fn v6_bytes() -> [u8; 16] {
    "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets()
}

/// Every prefix and every single-byte change of a real answer: never a
/// panic, never a hang.
#[test]
fn mangled_answers_never_panic() {
    let msg = answer(
        9,
        "www.example.com",
        1,
        &[
            rr(&AT_QNAME, 5, 300, &wire_name("edge.example.net")),
            rr(&wire_name("edge.example.net"), 1, 20, &[192, 0, 2, 9]),
        ],
    );
    for n in 0..msg.len() {
        let _ = parse_answer(&msg[..n]);
    }
    for i in 0..msg.len() {
        for b in [0x00, 0x01, 0x3f, 0x40, 0xc0, 0xc0 | (i as u8 & 0x3f), 0xff] {
            let mut m = msg.clone();
            m[i] = b;
            let _ = parse_answer(&m);
            let _ = parse_query(&m);
        }
    }
}

fn dns(direction: u16, cookie: u64, message: Vec<u8>) -> Dns {
    Dns {
        ts_boot_ns: 0,
        cookie,
        direction,
        truncated: false,
        protocol: 17,
        family: AF_INET,
        server: [0; 16],
        message,
    }
}

const NETNS: u32 = 4026531840;

#[test]
fn answers_name_addresses_of_the_querying_namespace_only() {
    let now = Instant::now();
    let ip = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    let mut d = DnsNames::default();
    d.socket(77, 53, NETNS);
    d.message(&dns(DNS_QUERY, 77, query(5, "svc.example", 1)), now);
    let ans = answer(5, "svc.example", 1, &[rr(&AT_QNAME, 1, 0, &[10, 1, 2, 3])]);
    // Another socket, another id: not what was asked.
    d.message(&dns(DNS_ANSWER, 78, ans.clone()), now);
    d.message(
        &dns(
            DNS_ANSWER,
            77,
            answer(6, "svc.example", 1, &[rr(&AT_QNAME, 1, 0, &[10, 1, 2, 3])]),
        ),
        now,
    );
    assert_eq!(d.lookup(NETNS, ip, now), None);
    assert_eq!(d.counts.unmatched, 2);
    d.message(&dns(DNS_ANSWER, 77, ans.clone()), now);
    let (name, cname) = d.lookup(NETNS, ip, now).expect("named");
    assert_eq!((&*name, cname), ("svc.example", None));
    assert_eq!(d.lookup(NETNS + 1, ip, now), None, "another namespace");
    // Answered once: a replay is unmatched.
    d.message(&dns(DNS_ANSWER, 77, ans), now);
    assert_eq!(d.counts.unmatched, 3);
    // TTL 0: kept for the floor and the grace, then gone.
    let later = now + TTL_FLOOR + TTL_GRACE - Duration::from_secs(1);
    assert!(d.lookup(NETNS, ip, later).is_some());
    assert_eq!(d.lookup(NETNS, ip, later + Duration::from_secs(2)), None);
    assert_eq!(d.bytes(), 0);
}

#[test]
fn queries_from_unknown_sockets_are_counted() {
    let mut d = DnsNames::default();
    d.message(
        &dns(DNS_QUERY, 1, query(5, "svc.example", 1)),
        Instant::now(),
    );
    assert_eq!(d.counts.unknown_socket, 1);
}

#[test]
fn names_stay_within_their_bytes() {
    let now = Instant::now();
    let per_ns = 20 * (ENTRY_OVERHEAD + 16);
    let mut d = DnsNames::new(3 * per_ns, per_ns);
    for ns in 0..5u32 {
        d.socket(u64::from(ns), 53, ns);
        for i in 0..100u16 {
            let name = format!("h{i:04}.example");
            d.message(&dns(DNS_QUERY, u64::from(ns), query(i, &name, 1)), now);
            let ip = [10, ns as u8, (i >> 8) as u8, i as u8];
            d.message(
                &dns(
                    DNS_ANSWER,
                    u64::from(ns),
                    answer(i, &name, 1, &[rr(&AT_QNAME, 1, 60, &ip)]),
                ),
                now,
            );
            assert!(d.bytes() <= 3 * per_ns);
            for n in d.netns.values() {
                assert!(n.bytes <= per_ns);
            }
        }
    }
    assert_eq!(d.counts.names, 500);
    let held: usize = d
        .netns
        .values()
        .map(|n| n.names.as_ref().map_or(0, LruCache::len))
        .sum();
    assert!(held <= 3 * 20 + 1, "{held}");
    assert_eq!(d.counts.evicted, 500 - held as u64);
    // The newest of the last namespace is there.
    let ip = IpAddr::V4(Ipv4Addr::new(10, 4, 0, 99));
    assert_eq!(
        d.lookup(4, ip, now).map(|n| n.0.to_string()),
        Some("h0099.example".into())
    );
}
