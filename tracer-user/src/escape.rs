//! Reversible text form of raw bytes (argv, paths), for JSON.
//!
//! Linux argv and paths are bytes, not text. The rule, applied to every value:
//! - valid UTF-8 passes through unchanged, except `\`, which becomes `\\`;
//! - each byte that is not part of valid UTF-8 becomes `\xNN` (two lowercase hex digits).
//!
//! So `unescape(escape(b)) == b` for all bytes, plain text stays readable, and JSON
//! string escaping (done by serde_json) keeps newlines and quotes from breaking a line.
//!
//! JSON escaping alone does not keep a terminal safe: serde_json writes DEL, the
//! C1 controls (U+0080..U+009F, `\u{9b}` is a one-character CSI on many
//! terminals) and the bidi overrides raw. Every JSON line the tracer writes goes
//! through [`to_writer`], which writes those characters as `\uXXXX` escapes: the
//! same JSON value, but `cat`, `less` or `tracer tail --json` show nothing hostile.
use std::{borrow::Cow, fmt::Write as _, io};

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

/// Characters that must not reach a terminal raw: controls (C0, DEL, C1: escape
/// sequences) and the bidi marks, embeddings, overrides and isolates (text that
/// reads differently from what it is).
pub fn terminal_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Whether `s` may hold a [`terminal_unsafe`] character: a quick byte test
/// (DEL, and the lead bytes of U+0080..U+009F, U+061C and U+2000..U+2FFF) so
/// plain text is passed through without decoding.
fn may_be_unsafe(s: &str) -> bool {
    s.bytes()
        .any(|b| matches!(b, 0x00..=0x1f | 0x7f | 0xc2 | 0xd8 | 0xe2))
}

/// Writes `s` (text inside a JSON string, already JSON-escaped where serde_json
/// escapes) with every [`terminal_unsafe`] character as a `\uXXXX` escape. All
/// such characters are in the Basic Multilingual Plane: one escape each.
fn write_json_safe<W: ?Sized + io::Write>(w: &mut W, s: &str) -> io::Result<()> {
    if !may_be_unsafe(s) {
        return w.write_all(s.as_bytes());
    }
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if terminal_unsafe(c) {
            w.write_all(&s.as_bytes()[start..i])?;
            write!(w, "\\u{:04x}", u32::from(c))?;
            start = i + c.len_utf8();
        }
    }
    w.write_all(&s.as_bytes()[start..])
}

/// serde_json's compact form, with the string contents of [`write_json_safe`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SafeFormatter;

impl serde_json::ser::Formatter for SafeFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        write_json_safe(writer, fragment)
    }
}

/// `serde_json::to_writer` with [`SafeFormatter`]: what every JSON line the
/// tracer writes (output files, stdout, the tail socket) is made with.
pub fn to_writer<W: io::Write, T: ?Sized + serde::Serialize>(
    writer: W,
    value: &T,
) -> serde_json::Result<()> {
    value.serialize(&mut serde_json::Serializer::with_formatter(
        writer,
        SafeFormatter,
    ))
}

/// [`to_writer`] into a new buffer.
pub fn to_vec<T: ?Sized + serde::Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    to_writer(&mut out, value)?;
    Ok(out)
}

/// A line already known to be valid JSON (it parsed), made safe for a terminal
/// without changing its value: [`terminal_unsafe`] characters other than JSON
/// whitespace can only stand raw inside strings (JSON allows no raw C0 control
/// there and no other character outside them), where `\uXXXX` means the same;
/// a raw carriage return is whitespace between tokens, where a space means the
/// same. For lines written by something else (an older tracer, another tool).
pub fn json_line_safe(line: &str) -> Cow<'_, str> {
    if !may_be_unsafe(line) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        match c {
            '\r' => out.push(' '),
            // Tab and newline are JSON whitespace too; tabs are harmless, and
            // a line holds no newline.
            '\t' | '\n' => out.push(c),
            c if terminal_unsafe(c) => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
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

    /// Hostile text: (what, the string) for the JSON writers below.
    const HOSTILE: &[(&str, &str)] = &[
        ("plain", "plain text, é and 日本"),
        ("ESC CSI", "a\x1b[2Jb"),
        ("C1 CSI", "a\u{9b}31mred"),
        ("C1 OSC and ST", "\u{9d}0;title\u{9c}"),
        ("every C1", "\u{80}\u{85}\u{8d}\u{9f}"),
        ("DEL", "x\u{7f}y"),
        ("RLO", "evil\u{202e}txt.exe"),
        ("embeddings and PDF", "\u{202a}\u{202b}\u{202c}\u{202d}"),
        ("isolates", "\u{2066}\u{2067}\u{2068}\u{2069}"),
        ("marks", "\u{200e}\u{200f}\u{61c}"),
        ("bell, CR, newline", "\u{7}\r\n\t"),
        ("neighbours stay", "\u{a0}\u{2010}\u{2029}\u{206a}\u{202f}"),
        ("escaped form as text", "\\u009b \\x1b"),
    ];

    fn no_unsafe_char(s: &str) -> bool {
        !s.chars().any(|c| terminal_unsafe(c) && !matches!(c, '\t'))
    }

    #[test]
    fn json_writer_escapes_what_a_terminal_would_run() {
        for (what, text) in HOSTILE {
            // A string value, an object key and a nested Value all go through it.
            let mut v = serde_json::json!({ "argv": [text] });
            v[*text] = serde_json::json!({ "k": text });
            let out = String::from_utf8(to_vec(&v).unwrap()).unwrap();
            assert!(no_unsafe_char(&out), "{what}: {out:?}");
            let back: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(back, v, "{what}");
            // Text that needs nothing is written as serde_json writes it.
            if no_unsafe_char(text) && !text.contains(['\r', '\n', '\u{7}']) {
                assert_eq!(out, serde_json::to_string(&v).unwrap(), "{what}");
            }
        }
        // The exact form: four lowercase hex digits, one escape per character.
        assert_eq!(
            String::from_utf8(to_vec("a\u{9b}\u{7f}\u{202e}b").unwrap()).unwrap(),
            r#""a\u009b\u007f\u202eb""#
        );
    }

    #[test]
    fn a_line_from_elsewhere_is_made_safe_with_the_same_value() {
        for (what, text) in HOSTILE {
            let mut v = serde_json::json!({ "s": text });
            v[*text] = serde_json::json!(1);
            let line = serde_json::to_string(&v).unwrap();
            let safe = json_line_safe(&line);
            assert!(no_unsafe_char(&safe), "{what}: {safe:?}");
            let a: serde_json::Value = serde_json::from_str(&line).unwrap();
            let b: serde_json::Value = serde_json::from_str(&safe).unwrap();
            assert_eq!(a, b, "{what}");
        }
        // Raw CR between tokens (valid JSON whitespace) becomes a space.
        let line = "{\"a\":1,\r\"b\":\"\u{9b}\"}";
        assert_eq!(json_line_safe(line), "{\"a\":1, \"b\":\"\\u009b\"}");
        assert!(matches!(json_line_safe("{\"a\":\"b\"}"), Cow::Borrowed(_)));
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
