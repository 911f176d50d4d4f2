#![no_std]
// The probes are the `tracer-probes` binary (src/main.rs). This empty library lets
// tracer-user name this crate as a build dependency so cargo rebuilds on changes.
