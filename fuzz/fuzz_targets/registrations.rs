//! SPIFFE registration files, selectors and globs come from operators: errors,
//! never panics; and a glob always matches its own literal text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tracer::identity::spiffe::{Glob, Registry, Selector, validate_spiffe_id};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Registry::from_toml("example.org", true, &text, "fuzz.toml");
    let _ = Selector::parse(&text);
    let _ = validate_spiffe_id(&text);
    if let Ok(g) = Glob::new(&text) {
        let _ = g.matches(&text);
        if !text.contains(['*', '?', '[', '\\']) {
            assert!(
                g.matches(&text),
                "literal glob {text:?} does not match itself"
            );
        }
    }
});
