//! The arguments of `tracer tail`: where to read (socket or file), how to print,
//! and which events to show.
use std::path::PathBuf;

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
    /// Only these kinds: exec, connect, fork, exit, usage, loss (repeatable or comma-separated).
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
    /// Connect destination's Kubernetes Service, NAMESPACE/NAME (a glob on
    /// that text: `shop/cart`, `shop/*`, `*/cart`)
    #[arg(long, value_name = "NS/NAME")]
    pub dest_service: Option<String>,
    /// Glob on a connect destination's name from DNS (or its CNAME target);
    /// names are lower-case, so is the pattern
    #[arg(long, value_name = "GLOB")]
    pub dest_name: Option<String>,
    /// Glob on the executor's requestor (`executor.requestor`): its display
    /// string (`octo/app#9001/1 by alice`), its system (`github-actions`) or
    /// any of its fields' values (actor, run, ...)
    #[arg(long, value_name = "GLOB")]
    pub requestor: Option<String>,
    /// Stop after N matching events (for scripts and tests)
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}
