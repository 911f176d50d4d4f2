//! A config file is operator input: any text gives flags or an error naming the
//! problem, and the flags it gives parse (or fail) like command-line flags.
#![no_main]
use std::{ffi::OsString, path::Path};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(args) = tracer::cli::config_text_args(text, Path::new("fuzz.toml")) {
        let mut argv: Vec<OsString> = vec!["tracer".into(), "check-config".into()];
        argv.extend(args);
        let _ = tracer::cli::parse(argv);
    }
});
