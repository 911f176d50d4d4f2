//! argv and paths are bytes: the escaped text always maps back to the same bytes,
//! and NUL-separated argv splits into the arguments it was made of.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tracer::escape::{escape, split_argv, unescape};

fuzz_target!(|data: &[u8]| {
    let e = escape(data);
    assert_eq!(unescape(&e).as_deref(), Ok(data));
    let parts = split_argv(data);
    let back: Vec<Vec<u8>> = parts.iter().map(|p| unescape(p).unwrap()).collect();
    let mut joined = back.join(&0u8);
    if data.last() == Some(&0) {
        joined.push(0);
    }
    assert_eq!(joined, data);
});
