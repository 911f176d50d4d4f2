//! DNS messages as the probes copy them (any bytes a workload can send from
//! or to port 53): parsing and the name cache never panic or hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tracer::dns::fuzz(data));
