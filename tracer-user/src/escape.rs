//! Reversible text form of raw bytes (argv, paths), for JSON.
//!
//! Linux argv and paths are bytes, not text. The rule, applied to every value:
//! - valid UTF-8 passes through unchanged, except `\`, which becomes `\\`;
//! - each byte that is not part of valid UTF-8 becomes `\xNN` (two lowercase hex digits).
//!
//! So `unescape(escape(b)) == b` for all bytes, plain text stays readable, and JSON
//! string escaping (done by serde_json) keeps newlines and quotes from breaking a line.
use std::fmt::Write as _;

pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if valid.contains('\\') {
            out.push_str(&valid.replace('\\', "\\\\"));
        } else {
            out.push_str(valid);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad escape at byte {0}")]
pub struct UnescapeError(pub usize);

/// Inverse of [`escape`], for consumers and tests.
pub fn unescape(s: &str) -> Result<Vec<u8>, UnescapeError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = s.get(i + 2..i + 4).ok_or(UnescapeError(i))?;
                let v = u8::from_str_radix(hex, 16).map_err(|_| UnescapeError(i))?;
                out.push(v);
                i += 4;
            }
            _ => return Err(UnescapeError(i)),
        }
    }
    Ok(out)
}

/// Split NUL-separated argv bytes (as the kernel lays them out) into escaped values.
/// A trailing NUL ends the last argument; it does not start an empty one.
pub fn split_argv(bytes: &[u8]) -> Vec<String> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let body = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    body.split(|b| *b == 0).map(escape).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"plain", "plain"),
            (b"with space", "with space"),
            (b"new\nline", "new\nline"),
            (b"back\\slash", "back\\\\slash"),
            (b"\xff", "\\xff"),
            (b"caf\xc3\xa9", "café"),
            (b"bad\xc3(", "bad\\xc3("),
            (b"\\x41", "\\\\x41"),
            (b"\x00", "\u{0}"),
        ];
        for (raw, want) in cases {
            let got = escape(raw);
            assert_eq!(&got, want, "{raw:?}");
            assert_eq!(unescape(&got).unwrap(), *raw);
        }
    }

    #[test]
    fn round_trip_every_byte_pair() {
        for a in 0..=255u8 {
            for b in [0u8, b'\\', b'x', 0x80, 0xc3, 0xff, b'a'] {
                let raw = [a, b, a];
                assert_eq!(unescape(&escape(&raw)).unwrap(), raw);
            }
        }
    }

    #[test]
    fn bad_escapes_are_errors() {
        assert!(unescape("\\").is_err());
        assert!(unescape("\\q").is_err());
        assert!(unescape("\\x4").is_err());
        assert!(unescape("\\xzz").is_err());
    }

    #[test]
    fn argv_split() {
        assert_eq!(split_argv(b""), Vec::<String>::new());
        assert_eq!(split_argv(b"a\0b\0"), vec!["a", "b"]);
        assert_eq!(split_argv(b"a\0\0b\0"), vec!["a", "", "b"]);
        assert_eq!(split_argv(b"a\0b"), vec!["a", "b"]);
        assert_eq!(split_argv(b"\0"), vec![""]);
        assert_eq!(split_argv(b"x\xff\0"), vec!["x\\xff"]);
    }
}
