//! The glob engine for `cgroup:path:` selectors: `*`, `**` and `?` over
//! cgroup paths, matched as an NFA in time linear in pattern × path.

use thiserror::Error;

/// What is wrong with a cgroup path glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum GlobProblem {
    #[error("it must start with '/' or '*' (cgroup paths are absolute)")]
    NotAbsolute,
    #[error("'***' is ambiguous: use '*' within a segment or '**' across segments")]
    TripleStar,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Char(char),
    /// `?`: one character other than '/'.
    One,
    /// `*`: any run of characters other than '/'.
    Star,
    /// `**`: any run of characters.
    DoubleStar,
    /// Starts the optional `**/` of `/**/`, so that it also matches a lone '/'.
    OptDirs,
}

/// A glob over cgroup paths: `*` matches within one path segment, `**`
/// across segments (`/a/**/b` also matches `/a/b`), `?` one character other
/// than '/'. Everything else is literal.
///
/// Matching simulates the pattern as an NFA (one state per token), so it
/// takes time proportional to pattern × path whatever the stars, and
/// allocates nothing for patterns under 512 tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    toks: Vec<Tok>,
}

/// Bitset words on the stack for the two state sets; longer patterns allocate.
const GLOB_STACK_WORDS: usize = 16;

impl Glob {
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
}
