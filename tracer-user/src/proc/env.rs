//! The environment an image started with (NUL-separated `NAME=value`, as the
//! probe copies it from the new stack or `/proc/<pid>/environ` shows it), cut
//! down to what the tracer reports: the dynamic loader's variables. The rest
//! (tokens, passwords) is dropped here, never kept or emitted.
use std::sync::Arc;

use crate::{escape::escape, event::LoaderEnv};

/// Variables that make the dynamic loader load or search for other code.
pub const LOADER_VARS: &[&str] = &["LD_AUDIT", "LD_LIBRARY_PATH", "LD_PRELOAD"];

/// The loader variables set in `env`; None when none is. The first definition
/// of a name wins, as glibc's `getenv` finds it.
pub fn loader_env(env: &[u8]) -> Option<Arc<LoaderEnv>> {
    let mut out = LoaderEnv::new();
    // Only entries that start with `LD_` matter: find those (SIMD search)
    // rather than walking every entry of an environment of a few KiB.
    let starts = memchr::memmem::find_iter(env, b"LD_").filter(|&at| at == 0 || env[at - 1] == 0);
    for start in starts {
        let rest = &env[start..];
        let entry = &rest[..memchr::memchr(0, rest).unwrap_or(rest.len())];
        let Some(eq) = memchr::memchr(b'=', entry) else {
            continue;
        };
        let (name, value) = (&entry[..eq], &entry[eq + 1..]);
        if let Some(known) = LOADER_VARS.iter().find(|v| v.as_bytes() == name) {
            out.entry((*known).to_owned())
                .or_insert_with(|| escape(value));
        }
    }
    (!out.is_empty()).then(|| Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_loader_variables() {
        type Case<'a> = (&'a [u8], &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            (b"", &[]),
            (b"PATH=/usr/bin\0HOME=/root\0", &[]),
            (
                b"PATH=/bin\0LD_PRELOAD=/tmp/evil.so\0AWS_SECRET_ACCESS_KEY=x\0",
                &[("LD_PRELOAD", "/tmp/evil.so")],
            ),
            // A cut copy: the last entry may lack its NUL; first definition wins.
            (
                b"LD_LIBRARY_PATH=/a:/b\0LD_AUDIT=/x.so\0LD_PRELOAD=1\0LD_PRELOAD=2",
                &[
                    ("LD_AUDIT", "/x.so"),
                    ("LD_LIBRARY_PATH", "/a:/b"),
                    ("LD_PRELOAD", "1"),
                ],
            ),
            // Not loader variables, or not assignments.
            (b"LD_DEBUG=all\0LD_PRELOAD\0XLD_PRELOAD=y\0", &[]),
            // Empty value is still set (and still loads nothing, but was asked for).
            (b"LD_PRELOAD=\0", &[("LD_PRELOAD", "")]),
            // Bytes that are not UTF-8 are escaped, not lost.
            (
                b"LD_PRELOAD=/tmp/\xff.so\0",
                &[("LD_PRELOAD", "/tmp/\\xff.so")],
            ),
        ];
        for (env, want) in cases {
            let got = loader_env(env);
            let got: Vec<(String, String)> = got
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(env));
        }
    }
}
