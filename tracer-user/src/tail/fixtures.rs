//! Test fixtures shared by the `tracer tail` tests: sample events, a filter
//! parsed from command-line flags, and a temporary directory.
use clap::Parser as _;
use serde_json::{Value, json};

use super::{Filter, TailArgs};
use crate::event::view::Line;

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    tail: TailArgs,
}

pub(super) fn filter(args: &[&str]) -> anyhow::Result<Filter> {
    let cli = Cli::try_parse_from(std::iter::once("tail").chain(args.iter().copied()))?;
    Filter::from_args(&cli.tail)
}

/// A line as `tail` reads it.
pub(super) fn parsed(text: &str) -> Line<'_> {
    Line::parse(text.as_bytes()).unwrap()
}

pub(super) fn exec_event() -> Value {
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

pub(super) fn connect_event(ip: &str, port: u16) -> Value {
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

pub(super) fn loss_event() -> Value {
    json!({
        "event_id": "x", "time": "2026-11-23T20:21:47.123456789Z", "kind": "loss",
        "host": {"name": "node-1", "boot_id": "b"},
        "lost": {"ring_full": 10, "read_fault": 0, "pending_full": 0, "scratch": 0, "malformed": 0, "sink_error": 2},
        "policy": {"tracer_version": "0.1.0", "config_digest": "sha256:00"}
    })
}

pub(super) use crate::testutil::TempDir;
