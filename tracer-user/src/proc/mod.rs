//! The process table: seeded from /proc, kept by fork/exec/exit records.
pub mod cwd;
pub mod env;
pub mod intern;
pub mod requestor;
pub mod scan;
pub mod table;
