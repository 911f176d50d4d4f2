//! connect (and a first unconnected send) as Network Activity (4001).
use super::{
    FAILURE, Origin, SUCCESS, header,
    model::{Class, ConnectionInfo, Enum, NetworkEndpoint},
    process::{EventRecord, actor, process},
    unmapped::{ActionView, DestinationView, EventUnmapped},
};
use crate::event::{ConnectAction, Endpoint, Event, Outcome};

const NETWORK_ACTIVITY: Class = Class {
    uid: 4001,
    name: "Network Activity",
    category_uid: 4,
    category_name: "Network Activity",
};

const OPEN: Enum = (1, "Open");
const FAIL: Enum = (4, "Fail");
const REFUSE: Enum = (5, "Refuse");
const TRAFFIC: Enum = (6, "Traffic");

const STATUS_UNKNOWN: Enum = (0, "Unknown");
/// A non-blocking connect that has not completed: neither success nor failure yet.
const IN_PROGRESS: Enum = (99, "In Progress");

/// Our connects all go out.
const OUTBOUND: Enum = (2, "Outbound");

pub(super) fn connect<'a>(ev: &'a Event, a: &'a ConnectAction) -> EventRecord<'a> {
    let x = &ev.executor;
    let (activity, status) = match a.outcome {
        // A first unconnected send is traffic, not a connection being opened.
        _ if a.method == "sendmsg" => (TRAFFIC, STATUS_UNKNOWN),
        Outcome::Success => (OPEN, SUCCESS),
        Outcome::InProgress => (OPEN, IN_PROGRESS),
        Outcome::Unknown => (OPEN, STATUS_UNKNOWN),
        Outcome::Failure if a.error.as_deref() == Some("ECONNREFUSED") => (REFUSE, FAILURE),
        Outcome::Failure => (FAIL, FAILURE),
    };
    let action = ActionView {
        aggregate: a.aggregate.as_deref(),
        destination: DestinationView::of(&a.destination),
        in_syscall: Some(a.in_syscall),
        method: Some(a.method),
        outcome_from: a.outcome_from,
        socket_cookie: Some(a.socket_cookie),
        socket_family: a.socket_family,
        ..ActionView::default()
    };
    let mut r = header(
        &NETWORK_ACTIVITY,
        activity,
        Origin::of(ev),
        &["host", "container"],
        EventUnmapped::new(ev, &x.argv, Some(action)),
    );
    r.set_status(status);
    r.set_error(a.error.as_deref());
    if let Some(g) = &a.aggregate {
        // OCSF's base event aggregates this way: `count` events of the same
        // kind, between `start_time` and `end_time`.
        r.count = Some(g.count);
        r.start_time = Some(g.first_time.millis());
        r.end_time = Some(g.last_time.millis());
    }
    let p = process(ev, &x.binary, &x.argv, Some(&x.exec_id));
    r.actor = Some(actor(x, Some(p)));
    r.dst_endpoint = Some(endpoint(&a.destination));
    r.src_endpoint = a.source.as_ref().map(endpoint);
    let num = protocol_num(&a.protocol);
    r.connection_info = Some(ConnectionInfo {
        direction: OUTBOUND.1,
        direction_id: OUTBOUND.0,
        // IANA names are lowercase words; an unknown protocol is only a number.
        protocol_name: num
            .filter(|_| a.protocol.parse::<u8>().is_err())
            .map(|_| a.protocol.as_str()),
        protocol_num: num,
        protocol_ver_id: if a.family == "ipv6" { 6 } else { 4 },
    });
    r
}

fn endpoint(e: &Endpoint) -> NetworkEndpoint<'_> {
    NetworkEndpoint {
        ip: &e.ip,
        name: e.pod.as_ref().map(|p| p.name.as_str()),
        port: e.port,
        svc_name: e
            .service
            .as_ref()
            .map(|s| format!("{}/{}", s.namespace, s.name)),
        hostname: e.name.as_deref(),
    }
}

/// IANA protocol number for our protocol names (or a bare number).
fn protocol_num(p: &str) -> Option<u8> {
    match p {
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmpv6" => Some(58),
        "sctp" => Some(132),
        n => n.parse().ok(),
    }
}
