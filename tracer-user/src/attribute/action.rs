//! The action parts of connect and exit events, from their kernel records.
use tracer_common::{AF_INET6, CONNECT_IN_SYSCALL, CONNECT_OP_SENDMSG, RESULT_FROM_STATE};

use crate::{
    errno,
    event::{ConnectAction, Endpoint, ExitAction, Outcome},
};

pub(super) fn exit_action(code: u32) -> ExitAction {
    let signal = code & 0x7f;
    if signal != 0 {
        ExitAction {
            exit_code: 128 + signal,
            signal: Some(signal),
        }
    } else {
        ExitAction {
            exit_code: (code >> 8) & 0xff,
            signal: None,
        }
    }
}

fn ip_string(family: u16, addr: &[u8; 16]) -> String {
    if family == AF_INET6 {
        std::net::Ipv6Addr::from(*addr).to_string()
    } else {
        std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string()
    }
}

/// An address as reported: a v4-mapped IPv6 address as the IPv4 it carries.
/// Returns (family, ip text, whether it was mapped).
fn reported_address(family: u16, addr: &[u8; 16]) -> (&'static str, String, bool) {
    if family == AF_INET6 {
        let v6 = std::net::Ipv6Addr::from(*addr);
        if let Some(v4) = v6.to_ipv4_mapped() {
            return ("ipv4", v4.to_string(), true);
        }
        ("ipv6", v6.to_string(), false)
    } else {
        ("ipv4", ip_string(family, addr), false)
    }
}

/// The connect as the cgroup hook saw it; its outcome follows (see `outcome`).
pub(super) fn connect_action(c: &tracer_common::ConnectRecord) -> ConnectAction {
    let protocol = match c.protocol {
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        1 => "icmp".to_owned(),
        58 => "icmpv6".to_owned(),
        132 => "sctp".to_owned(),
        n => n.to_string(),
    };
    let (family, ip, mapped) = reported_address(c.family, &c.daddr);
    ConnectAction {
        method: if c.op == CONNECT_OP_SENDMSG {
            "sendmsg"
        } else {
            "connect"
        },
        in_syscall: c.flags & CONNECT_IN_SYSCALL != 0,
        protocol,
        family,
        socket_family: mapped.then_some("ipv6"),
        destination: Endpoint {
            ip,
            port: c.dport,
            name: None,
            cname: None,
        },
        source: None,
        outcome: Outcome::Unknown,
        error: None,
        outcome_from: None,
        socket_cookie: c.cookie,
        aggregate: None,
    }
}

/// Fill in what became of a connect.
pub fn apply_result(a: &mut ConnectAction, r: &tracer_common::ConnectResultRecord) {
    let (outcome, error) = match r.errno {
        0 => (Outcome::Success, None),
        errno::EINPROGRESS => (Outcome::InProgress, None),
        n => (Outcome::Failure, Some(errno::name(n))),
    };
    a.outcome = outcome;
    a.error = error;
    a.outcome_from = Some(if r.source_of == RESULT_FROM_STATE {
        "socket"
    } else {
        "syscall"
    });
    if r.source_known != 0 && r.sport != 0 {
        let (_, ip, _) = reported_address(r.family, &r.saddr);
        a.source = Some(Endpoint {
            ip,
            port: r.sport,
            name: None,
            cname: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status() {
        assert_eq!(exit_action(0).exit_code, 0);
        assert_eq!(exit_action(3 << 8).exit_code, 3);
        let k = exit_action(9);
        assert_eq!((k.exit_code, k.signal), (137, Some(9)));
    }

    #[test]
    fn connect_outcomes_and_addresses() {
        use tracer_common::{ConnectResultRecord, RESULT_FROM_STATE, RESULT_FROM_SYSCALL};
        let mut c = tracer_common::ConnectRecord {
            family: tracer_common::AF_INET,
            protocol: 6,
            dport: 80,
            op: tracer_common::CONNECT_OP_CONNECT,
            flags: CONNECT_IN_SYSCALL,
            cookie: 42,
            ..Default::default()
        };
        c.daddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let mut a = connect_action(&c);
        assert_eq!(a.destination.ip, "127.0.0.1");
        assert_eq!(
            (a.method, a.in_syscall, a.socket_cookie),
            ("connect", true, 42)
        );
        assert_eq!((a.outcome, a.outcome_from), (Outcome::Unknown, None));
        assert!(a.source.is_none());

        // (errno, from) -> (outcome, error, outcome_from)
        let cases = [
            (0, RESULT_FROM_STATE, Outcome::Success, None, "socket"),
            (
                111,
                RESULT_FROM_STATE,
                Outcome::Failure,
                Some("ECONNREFUSED"),
                "socket",
            ),
            (
                110,
                RESULT_FROM_STATE,
                Outcome::Failure,
                Some("ETIMEDOUT"),
                "socket",
            ),
            (
                104,
                RESULT_FROM_STATE,
                Outcome::Failure,
                Some("ECONNRESET"),
                "socket",
            ),
            (
                101,
                RESULT_FROM_SYSCALL,
                Outcome::Failure,
                Some("ENETUNREACH"),
                "syscall",
            ),
            (
                errno::EINPROGRESS,
                RESULT_FROM_SYSCALL,
                Outcome::InProgress,
                None,
                "syscall",
            ),
        ];
        for (errno, from, outcome, error, outcome_from) in cases {
            let mut r = ConnectResultRecord {
                cookie: 42,
                errno,
                source_of: from,
                family: tracer_common::AF_INET,
                sport: 5555,
                source_known: 1,
                ..Default::default()
            };
            r.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
            apply_result(&mut a, &r);
            assert_eq!(a.outcome, outcome, "{errno}");
            assert_eq!(a.error.as_deref(), error, "{errno}");
            assert_eq!(a.outcome_from, Some(outcome_from), "{errno}");
            let src = a.source.as_ref().unwrap();
            assert_eq!((src.ip.as_str(), src.port), ("127.0.0.1", 5555));
        }

        c.family = AF_INET6;
        c.daddr = std::net::Ipv6Addr::LOCALHOST.octets();
        c.protocol = 17;
        c.op = tracer_common::CONNECT_OP_SENDMSG;
        c.flags = 0;
        let a = connect_action(&c);
        assert_eq!(
            (a.destination.ip.as_str(), a.family, a.protocol.as_str()),
            ("::1", "ipv6", "udp")
        );
        assert_eq!(
            (a.method, a.in_syscall, a.socket_family),
            ("sendmsg", false, None)
        );

        // v4-mapped: reported as the IPv4 it carries, the socket's family noted.
        c.daddr = std::net::Ipv4Addr::new(10, 1, 2, 3)
            .to_ipv6_mapped()
            .octets();
        let a = connect_action(&c);
        assert_eq!(
            (a.destination.ip.as_str(), a.family, a.socket_family),
            ("10.1.2.3", "ipv4", Some("ipv6"))
        );
    }
}
