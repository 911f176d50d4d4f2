//! The crate's one glob engine, in two modes sharing one matcher:
//!
//! - path mode ([`Glob::new`]), for `cgroup:path:` selectors in SPIFFE
//!   registrations (docs/registrations.md): `*` within one path segment, `**`
//!   across segments (`/a/**/b` also matches `/a/b`), `?` one character other
//!   than '/', everything else literal (`[` and `\` included);
//! - text mode ([`Glob::text`]), for the filters of `tracer tail`: `*` any run
//!   of characters ('/' included: path mode's `**` without the segment rule),
//!   `?` any one character, `\` makes the next character literal.
//!
//! Either way the pattern compiles to tokens matched as an NFA, in time linear
//! in pattern × text whatever the stars.
//!
//! Not `globset`: its `[...]` classes and `**` only as a whole path component
//! would change the documented matching of registrations already written.

use thiserror::Error;

/// What is wrong with a cgroup path glob (path mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum GlobProblem {
    #[error("it must start with '/' or '*' (cgroup paths are absolute)")]
    NotAbsolute,
    #[error("'***' is ambiguous: use '*' within a segment or '**' across segments")]
    TripleStar,
}

/// What is wrong with a text-mode glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub(crate) enum TextGlobProblem {
    #[error("empty pattern")]
    Empty,
    #[error("ends with a lone `\\`")]
    LoneBackslash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Char(char),
    /// Path mode's `?`: one character other than '/'.
    One,
    /// Text mode's `?`: any one character.
    AnyOne,
    /// Path mode's `*`: any run of characters other than '/'.
    Star,
    /// Path mode's `**`, text mode's `*`: any run of characters.
    DoubleStar,
    /// Starts the optional `**/` of `/**/`, so that it also matches a lone '/'.
    OptDirs,
}

/// A glob, in path mode ([`Glob::new`]) or text mode ([`Glob::text`]); see
/// the module documentation for each mode's syntax. It must match the whole
/// text.
///
/// Matching simulates the pattern as an NFA (one state per token), so it
/// takes time proportional to pattern × text whatever the stars, and
/// allocates nothing for patterns under 512 tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    toks: Vec<Tok>,
}

/// Bitset words on the stack for the two state sets; longer patterns allocate.
const GLOB_STACK_WORDS: usize = 16;

impl Glob {
    /// A path-mode glob over cgroup paths: `*` matches within one path
    /// segment, `**` across segments (`/a/**/b` also matches `/a/b`), `?` one
    /// character other than '/'. Everything else is literal.
    pub fn new(pattern: &str) -> Result<Glob, GlobProblem> {
        if !(pattern.starts_with('/') || pattern.starts_with('*')) {
            return Err(GlobProblem::NotAbsolute);
        }
        if pattern.contains("***") {
            return Err(GlobProblem::TripleStar);
        }
        let mut toks = Vec::with_capacity(pattern.len());
        let mut rest = pattern;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("/**/") {
                toks.extend([
                    Tok::Char('/'),
                    Tok::OptDirs,
                    Tok::DoubleStar,
                    Tok::Char('/'),
                ]);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("**") {
                toks.push(Tok::DoubleStar);
                rest = after;
            } else {
                toks.push(match c {
                    '*' => Tok::Star,
                    '?' => Tok::One,
                    c => Tok::Char(c),
                });
                rest = rest.get(c.len_utf8()..).unwrap_or_default();
            }
        }
        Ok(Glob {
            pattern: pattern.to_owned(),
            toks,
        })
    }

    /// A text-mode glob: `*` matches any run of characters, '/' included,
    /// `?` any one character, and `\` makes the next character literal.
    pub(crate) fn text(pattern: &str) -> Result<Glob, TextGlobProblem> {
        if pattern.is_empty() {
            return Err(TextGlobProblem::Empty);
        }
        let mut toks = Vec::with_capacity(pattern.len());
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            toks.push(match c {
                '*' => Tok::DoubleStar,
                '?' => Tok::AnyOne,
                '\\' => Tok::Char(chars.next().ok_or(TextGlobProblem::LoneBackslash)?),
                c => Tok::Char(c),
            });
        }
        Ok(Glob {
            pattern: pattern.to_owned(),
            toks,
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, text: &str) -> bool {
        let words = (self.toks.len() + 1).div_ceil(64);
        let mut stack = [0u64; GLOB_STACK_WORDS];
        let mut heap = Vec::new();
        let buf = match stack.get_mut(..2 * words) {
            Some(buf) => buf,
            None => {
                heap.resize(2 * words, 0);
                heap.as_mut_slice()
            }
        };
        let (mut cur, mut next) = buf.split_at_mut(words);
        set_bit(cur, 0);
        self.close(cur);
        for c in text.chars() {
            next.fill(0);
            let mut from = 0;
            while let Some(i) = next_set_bit(cur, from) {
                match self.toks.get(i) {
                    Some(Tok::Char(want)) if *want == c => set_bit(next, i + 1),
                    Some(Tok::One) if c != '/' => set_bit(next, i + 1),
                    Some(Tok::AnyOne) => set_bit(next, i + 1),
                    Some(Tok::Star) if c != '/' => set_bit(next, i),
                    Some(Tok::DoubleStar) => set_bit(next, i),
                    _ => {}
                }
                from = i + 1;
            }
            self.close(next);
            std::mem::swap(&mut cur, &mut next);
            if cur.iter().all(|&w| w == 0) {
                return false;
            }
        }
        next_set_bit(cur, self.toks.len()) == Some(self.toks.len())
    }

    /// Whether the pattern names a literal '/' (escaped or not): a text-mode
    /// glob without one may be meant for a base name.
    pub(crate) fn has_slash(&self) -> bool {
        self.toks.contains(&Tok::Char('/'))
    }

    /// Adds the states reachable without input; such moves only go forward,
    /// so one ascending pass suffices.
    fn close(&self, bits: &mut [u64]) {
        let mut from = 0;
        while let Some(i) = next_set_bit(bits, from) {
            match self.toks.get(i) {
                Some(Tok::Star | Tok::DoubleStar) => set_bit(bits, i + 1),
                Some(Tok::OptDirs) => {
                    set_bit(bits, i + 1);
                    // Past the DoubleStar and '/' that follow.
                    set_bit(bits, i + 3);
                }
                _ => {}
            }
            from = i + 1;
        }
    }
}

fn set_bit(bits: &mut [u64], i: usize) {
    if let Some(word) = bits.get_mut(i / 64) {
        *word |= 1 << (i % 64);
    }
}

/// The first set bit at or after `from`.
fn next_set_bit(bits: &[u64], from: usize) -> Option<usize> {
    let mut index = from / 64;
    let mut mask = !0u64 << (from % 64);
    while let Some(&word) = bits.get(index) {
        let masked = word & mask;
        if masked != 0 {
            return Some(index * 64 + masked.trailing_zeros() as usize);
        }
        index += 1;
        mask = !0;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matching() {
        let table = [
            (
                "/system.slice/backup.service",
                "/system.slice/backup.service",
                true,
            ),
            (
                "/system.slice/backup.service",
                "/system.slice/backup.servicex",
                false,
            ),
            (
                "/system.slice/*.service",
                "/system.slice/backup.service",
                true,
            ),
            ("/system.slice/*.service", "/system.slice/.service", true),
            (
                "/system.slice/*.service",
                "/system.slice/a/b.service",
                false,
            ),
            ("/system.slice/*", "/system.slice/a", true),
            ("/system.slice/*", "/system.slice/a/b", false),
            ("/system.slice/**", "/system.slice/a/b", true),
            ("/system.slice/**", "/system.slice", false),
            ("/a/**/b", "/a/b", true),
            ("/a/**/b", "/a/x/b", true),
            ("/a/**/b", "/a/x/y/z/b", true),
            ("/a/**/b", "/a/xb", false),
            ("/a/**/b", "/ab", false),
            ("/a/**b", "/a/x/yb", true),
            ("**/backup.service", "/system.slice/backup.service", true),
            ("**/backup.service", "/backup.service", true),
            ("**", "/anything/at/all", true),
            ("*", "/x", false),
            ("/?", "/x", true),
            ("/?", "//", false),
            ("/?", "/", false),
            ("/?", "/é", true),
            ("/a?c", "/abc", true),
            ("/a?c", "/a/c", false),
            (
                "/user.slice/user-*.slice/**/*.scope",
                "/user.slice/user-1000.slice/session-2.scope",
                true,
            ),
            (
                "/user.slice/user-*.slice/**/*.scope",
                "/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope",
                true,
            ),
            (
                "/user.slice/user-*.slice/**/*.scope",
                "/user.slice/user-1000.slice/x.service",
                false,
            ),
            (
                "/kubepods.slice/**/cri-containerd-*.scope",
                "/kubepods.slice/kubepods-pod1.slice/cri-containerd-ab.scope",
                true,
            ),
            ("/a*b*c*d", "/aXbYcZd", true),
            ("/a*b*c*d", "/aXbYcZ", false),
            ("/[x]", "/[x]", true),
            ("/", "/", true),
            ("/", "", false),
        ];
        for (pattern, path, want) in table {
            let glob = Glob::new(pattern).unwrap();
            assert_eq!(glob.matches(path), want, "{pattern} ~ {path}");
        }
    }

    #[test]
    fn glob_long_patterns_and_many_stars() {
        // Past the stack buffer: the heap path must agree.
        let seg = "x".repeat(600);
        let glob = Glob::new(&format!("/**/{seg}/*")).unwrap();
        assert!(glob.toks.len() > GLOB_STACK_WORDS * 32);
        assert!(glob.matches(&format!("/a/b/{seg}/c")));
        assert!(!glob.matches(&format!("/a/b/{seg}/c/d")));
        // Stars that would make backtracking exponential stay linear.
        let glob = Glob::new("/**a**a**a**a**a**a**a**b").unwrap();
        assert!(!glob.matches(&format!("/{}", "a".repeat(4000))));
        assert!(glob.matches(&format!("/{}b", "a".repeat(4000))));
    }

    #[test]
    fn text_mode_matching() {
        let table = [
            // `*` crosses '/', `?` takes it: no segment rule.
            (
                "spiffe://example.org/*",
                "spiffe://example.org/ns/a/sa/b",
                true,
            ),
            ("a?b", "a/b", true),
            ("*", "", true),
            ("*", "/x/y", true),
            ("**", "abc", true),
            ("***", "a/b", true),
            // `/**/` is nothing special: both '/' are literal.
            ("a/*/b", "a/b", false),
            ("a/*/b", "a//b", true),
            // No leading '/' needed, and the whole text must match.
            ("web-*", "web-1", true),
            ("web-*", "xweb-1", false),
            ("sh", "shop", false),
            // `\` escapes whatever follows, `\\` a backslash itself.
            ("\\?", "?", true),
            ("\\?", "x", false),
            ("a\\\\b", "a\\b", true),
            ("\\a", "a", true),
            ("[ab]", "[ab]", true),
            ("[ab]", "a", false),
        ];
        for (pattern, text, want) in table {
            let glob = Glob::text(pattern).unwrap();
            assert_eq!(glob.matches(text), want, "{pattern} ~ {text}");
        }
        // Stars that would make backtracking exponential stay linear.
        let glob = Glob::text("*a*a*a*a*a*a*a*b").unwrap();
        assert!(!glob.matches(&"a".repeat(4000)));
        assert!(glob.matches(&format!("{}b", "a".repeat(4000))));
    }

    #[test]
    fn text_mode_problems_and_slashes() {
        assert_eq!(Glob::text(""), Err(TextGlobProblem::Empty));
        assert_eq!(Glob::text("a\\"), Err(TextGlobProblem::LoneBackslash));
        assert_eq!(Glob::text("\\\\\\"), Err(TextGlobProblem::LoneBackslash));
        assert!(Glob::text("\\\\").is_ok());
        // Path mode's errors are not text mode's.
        assert!(Glob::text("rel/***").is_ok());
        assert_eq!(Glob::text("a*").unwrap().pattern(), "a*");
        assert!(Glob::text("/*/ls").unwrap().has_slash());
        assert!(Glob::text("a\\/b").unwrap().has_slash());
        assert!(!Glob::text("cu?l").unwrap().has_slash());
        // The same pattern in the two modes is two globs.
        assert_ne!(Glob::new("/a*").unwrap(), Glob::text("/a*").unwrap());
    }
}
