//! What the executor did: exec, connect, exit or fork, and its outcome.
use std::sync::Arc;

use serde::Serialize;

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Action {
    Exec(ExecAction),
    Connect(ConnectAction),
    Exit(ExitAction),
    Fork(ForkAction),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    InProgress,
    Failure,
    /// The kernel gave no result: an unconnected send (its delivery is not
    /// tracked), or a connect whose result the probes could not see (a UDP
    /// connect through io_uring or a compat syscall).
    Unknown,
}

#[derive(Debug, Serialize)]
pub struct ExecAction {
    pub binary: Arc<str>,
    pub argv: Arc<[String]>,
    pub argv_truncated: bool,
    pub outcome: Outcome,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
}

#[derive(Debug, Serialize)]
pub struct ConnectAction {
    /// `connect`, or `sendmsg`: the first datagram an unconnected socket sent to
    /// this destination (`sendto`/`sendmsg` with an address).
    pub method: &'static str,
    /// The probe ran inside the native `connect` syscall; false for io_uring,
    /// TCP Fast Open, 32-bit compat syscalls and unconnected sends.
    pub in_syscall: bool,
    pub protocol: String,
    /// Of the destination as reported: a v4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) is reported as IPv4.
    pub family: &'static str,
    /// The socket's own family when it differs from `family` (`ipv6` for a
    /// v4-mapped destination).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_family: Option<&'static str>,
    pub destination: Endpoint,
    pub source: Option<Endpoint>,
    pub outcome: Outcome,
    pub error: Option<String>,
    /// Where the outcome came from: `syscall` (the connect's return value),
    /// `socket` (the TCP socket left SYN_SENT), or null (not known when the
    /// event went out).
    pub outcome_from: Option<&'static str>,
    /// The socket's cookie: unique per socket for the boot, joins the events
    /// of one socket.
    pub socket_cookie: u64,
}

#[derive(Debug, Serialize)]
pub struct ExitAction {
    /// Exit status as the shell shows it: the code, or 128 + signal.
    pub exit_code: u32,
    pub signal: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct ForkAction {
    pub child_pid: u32,
}
