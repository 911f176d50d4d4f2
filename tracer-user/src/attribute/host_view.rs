//! What attribution reads of the host besides the records: a process's
//! /proc entry, when the table does not know it or a path is not cached.
//! Behind a trait so that unit tests feed it a fake host.
use crate::proc::scan::{self, ProcCgroups, ProcCwd, ProcSnapshot, ScanError};

/// The host's processes as /proc shows them now. Every call may block on
/// /proc (never for long: these are in-memory files).
pub trait HostView {
    /// Everything /proc says of process `pid` (a process the table does not
    /// know, or whose exec record was lost).
    fn snapshot(&self, pid: u32) -> Result<ProcSnapshot, ScanError>;
    /// Its working directory (the path of a new image's cwd on a cache miss).
    fn cwd(&self, pid: u32) -> Option<ProcCwd>;
    /// The cgroups it claims to be in (a cgroup id whose path is not cached).
    fn cgroups(&self, pid: u32) -> Option<ProcCgroups>;
}

/// This machine's /proc.
pub struct ProcHost;

impl HostView for ProcHost {
    fn snapshot(&self, pid: u32) -> Result<ProcSnapshot, ScanError> {
        scan::snapshot(pid)
    }

    fn cwd(&self, pid: u32) -> Option<ProcCwd> {
        scan::cwd(pid)
    }

    fn cgroups(&self, pid: u32) -> Option<ProcCgroups> {
        scan::cgroups(pid)
    }
}
