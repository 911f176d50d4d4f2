//! The tracer's user space, in the order an event travels:
//!
//! ```text
//! probes (load, attach) -> reader (ring buffer) -> decode (bytes -> records)
//!   -> proc (process table) -> identity (users, cgroups) -> attribute (record -> Event)
//!   -> sink (JSON lines, sealed into a hash chain: `chain`)
//! ```
//!
//! `cli` wires the stages together for `tracer run`; `main.rs` only calls it.
pub(crate) mod aggregate;
pub mod attribute;
pub(crate) mod btf;
pub(crate) mod budget;
pub(crate) mod chain;
pub mod cli;
pub(crate) mod config;
pub mod decode;
pub mod dns;
pub(crate) mod errno;
pub mod escape;
pub mod event;
pub(crate) mod exec_id;
pub(crate) mod filehash;
pub mod glob;
pub(crate) mod host;
pub mod identity;
pub(crate) mod kernel_check;
pub(crate) mod loss;
pub(crate) mod metrics;
pub(crate) mod outcome;
pub(crate) mod probes;
pub mod proc;
pub(crate) mod reader;
pub mod report;
pub(crate) mod run;
pub(crate) mod search;
pub mod sink;
pub(crate) mod tail;
pub(crate) mod verify;

/// Helpers the unit tests of several modules share.
#[cfg(test)]
pub(crate) mod testutil;

/// An error and each of its causes, joined by ": " as anyhow's `{:#}` prints
/// them: for logs and records, where only `Display` of the outer error would
/// drop the cause (error messages name their context, not their source).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// A test that cannot run here says so loudly: `SKIPPED: <test>: <why>` on
/// stderr (seen with `--nocapture`), a line appended to `$TRACER_SKIP_LOG` when
/// set (to count skips), and a failure instead when `$TRACER_NO_SKIP` is set.
/// Only for what a test machine may legitimately lack; what `cargo xtask
/// setup` installs is required, not skipped.
#[cfg(test)]
pub(crate) fn skip(test: &str, why: &str) {
    if std::env::var_os("TRACER_NO_SKIP").is_some() {
        panic!("{test}: {why} (TRACER_NO_SKIP is set, so this fails instead of skipping)");
    }
    eprintln!("SKIPPED: {test}: {why}");
    if let Some(log) = std::env::var_os("TRACER_SKIP_LOG") {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "SKIPPED: {test}: {why}");
        }
    }
}
