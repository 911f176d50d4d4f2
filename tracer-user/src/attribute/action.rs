//! The action parts of connect and exit events, from their kernel records.
use tracer_common::{AF_INET6, CONNECT_IN_SYSCALL, CONNECT_OP_SENDMSG, RESULT_FROM_STATE};

use crate::{
    errno,
    event::{ConnectAction, Endpoint, ExitAction, Outcome, Usage, UsageSince},
};

pub(super) fn exit_action(code: u32, usage: Option<Usage>) -> ExitAction {
    let signal = code & 0x7f;
    if signal != 0 {
        ExitAction {
            exit_code: 128 + signal,
            signal: Some(signal),
            usage,
        }
    } else {
        ExitAction {
            exit_code: (code >> 8) & 0xff,
            signal: None,
            usage,
        }
    }
}

/// What an image used, from the process's CPU time at its exit (`end`) and
/// at the image's start (`base`: its exec, or zero for a process whose exec
/// the tracer did not see), as /proc/<pid>/stat reports it: the scheduler's
/// exact runtime, split between user and system in the ratio of the
/// tick-sampled `utime` and `stime` (the kernel's `cputime_adjust`).
pub(super) fn usage(
    end: &tracer_common::CpuUsage,
    base_runtime_ns: Option<u64>,
    maxrss_pages: u64,
    page_size: u64,
    lifetime_ns: u64,
) -> Usage {
    let rtime = end.runtime_ns.saturating_sub(base_runtime_ns.unwrap_or(0));
    let (u, s) = (end.utime_ns, end.stime_ns);
    let user = match (u, s) {
        (_, 0) => rtime,
        (0, _) => 0,
        // u128: runtime times a tick sum overflows u64 past ~4 s x 4 s.
        _ => u64::try_from(u128::from(rtime) * u128::from(u) / (u128::from(u) + u128::from(s)))
            .unwrap_or(rtime),
    };
    Usage {
        cpu_user_ns: user,
        cpu_system_ns: rtime - user.min(rtime),
        peak_rss_kib: maxrss_pages.saturating_mul(page_size) / 1024,
        lifetime_ns,
        since: if base_runtime_ns.is_some() {
            UsageSince::Exec
        } else {
            UsageSince::Start
        },
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
            ..Default::default()
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
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status() {
        assert_eq!(exit_action(0, None).exit_code, 0);
        assert_eq!(exit_action(3 << 8, None).exit_code, 3);
        let k = exit_action(9, None);
        assert_eq!((k.exit_code, k.signal), (137, Some(9)));
    }

    #[test]
    fn usage_splits_runtime_as_proc_does() {
        use tracer_common::CpuUsage;
        let cpu = |u: u64, s: u64, r: u64| CpuUsage {
            utime_ns: u,
            stime_ns: s,
            runtime_ns: r,
        };
        const S: u64 = 1_000_000_000;
        // (at exit, runtime at exec, want (user, system, since)).
        let cases = [
            // A busy loop: all user; 0.1 s before the exec is not the image's.
            (
                cpu(3 * S, 0, 3 * S),
                Some(S / 10),
                (3 * S - S / 10, 0, UsageSince::Exec),
            ),
            // Ticks say 3:1; the exact runtime is split so.
            (
                cpu(3 * S, S, 8 * S),
                None,
                (6 * S, 2 * S, UsageSince::Start),
            ),
            // Too short for a tick: the runtime is the user's (as the kernel does).
            (cpu(0, 0, 700_000), None, (700_000, 0, UsageSince::Start)),
            (
                cpu(0, 4_000_000, 5_000_000),
                None,
                (0, 5_000_000, UsageSince::Start),
            ),
            // Hours of both: no overflow.
            (
                cpu(40_000 * S, 30_000 * S, 70_000 * S),
                None,
                (40_000 * S, 30_000 * S, UsageSince::Start),
            ),
            // A base past the end (a counter the kernel reset): zero, not a wrap.
            (cpu(S, 0, S), Some(2 * S), (0, 0, UsageSince::Exec)),
        ];
        for (end, base, (user, system, since)) in cases {
            let u = usage(&end, base, 100, 4096, 5);
            assert_eq!(
                (u.cpu_user_ns, u.cpu_system_ns, u.since),
                (user, system, since),
                "{end:?} {base:?}"
            );
            assert_eq!((u.peak_rss_kib, u.lifetime_ns), (400, 5));
        }
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
