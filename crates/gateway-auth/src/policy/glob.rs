//! Glob patterns over names: `*` matches any run of characters (also none), `?` exactly one
//! character, everything else itself. Case-sensitive; no escapes, no character classes, and a
//! pattern is matched against the whole text (it is anchored at both ends).
//!
//! Matching runs in `O(pattern × text)` at worst and never recurses, so a hostile pattern
//! cannot blow the stack or the CPU budget of a request.

use std::fmt;

/// Longest accepted pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;

/// A validated glob pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    kind: GlobKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GlobKind {
    /// `*`, `**`…: everything, including the empty text.
    Any,
    /// No wildcard: plain equality.
    Exact,
    /// The general case.
    Wild,
}

impl Glob {
    /// Validates `pattern`. Rejected: the empty pattern (write `*` to match anything, or leave
    /// the field out), patterns longer than [`MAX_PATTERN_LEN`] bytes, and control characters.
    ///
    /// # Errors
    /// A client-readable description of the problem.
    pub fn new(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("empty pattern; use \"*\" to match anything".to_owned());
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(format!("pattern longer than {MAX_PATTERN_LEN} bytes"));
        }
        if pattern.chars().any(char::is_control) {
            return Err("pattern contains a control character".to_owned());
        }
        let kind = if pattern.bytes().all(|b| b == b'*') {
            GlobKind::Any
        } else if pattern.bytes().any(|b| b == b'*' || b == b'?') {
            GlobKind::Wild
        } else {
            GlobKind::Exact
        };
        Ok(Self {
            pattern: pattern.to_owned(),
            kind,
        })
    }

    /// The pattern text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `text` matches.
    #[must_use]
    pub fn matches(&self, text: &str) -> bool {
        match self.kind {
            GlobKind::Any => true,
            GlobKind::Exact => self.pattern == text,
            GlobKind::Wild => wild_match(self.pattern.as_bytes(), text.as_bytes()),
        }
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.pattern)
    }
}

/// Length of the UTF-8 sequence starting at `text[at]` (1 past the end or on a stray byte).
fn char_len(text: &[u8], at: usize) -> usize {
    let len = match text.get(at) {
        Some(&b) if b >= 0xF0 => 4,
        Some(&b) if b >= 0xE0 => 3,
        Some(&b) if b >= 0xC0 => 2,
        _ => 1,
    };
    len.min(text.len().saturating_sub(at)).max(1)
}

/// Iterative wildcard matching with single-star backtracking. Both inputs are valid UTF-8;
/// `?` consumes one whole character and a backtracking `*` grows by whole characters, so the
/// text position is always on a character boundary when a wildcard is applied.
fn wild_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Position after the last `*` seen, and the text position that star currently ends at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            Some(b'?') => {
                p += 1;
                t += char_len(text, t);
                continue;
            }
            Some(&c) if text.get(t) == Some(&c) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((after_star, star_end)) => {
                let grown = star_end + char_len(text, star_end);
                star = Some((after_star, grown));
                p = after_star;
                t = grown;
            }
            None => return false,
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&b| b == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).unwrap().matches(text)
    }

    #[test]
    fn literals_stars_and_question_marks() {
        assert!(m("read_file", "read_file"));
        assert!(!m("read_file", "read_files"));
        assert!(!m("Read_file", "read_file"), "case-sensitive");
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("read_*", "read_"));
        assert!(m("read_*", "read_file"));
        assert!(!m("read_*", "write_file"));
        assert!(m("*_file", "write_file"));
        assert!(m("*file*", "a-file-b"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
        assert!(m("?", "x"));
        assert!(!m("?", ""));
        assert!(!m("?", "xy"));
        assert!(m("v?", "v1"));
        assert!(m("file:///etc/*", "file:///etc/passwd"));
        assert!(!m("file:///etc/*", "file:///home/etc/passwd"));
        assert!(m("**a", "bba"));
        assert!(m("*?", "x"));
        assert!(!m("*?", ""));
    }

    #[test]
    fn question_mark_is_one_character_not_one_byte() {
        assert!(m("?", "é"));
        assert!(m("caf?", "café"));
        assert!(m("*é", "caféé"));
        assert!(m("?*?", "日本"));
        assert!(!m("???", "日本"));
        assert!(m("日*", "日本語"));
    }

    #[test]
    fn agrees_with_a_recursive_reference_matcher() {
        fn reference(p: &[char], t: &[char]) -> bool {
            match p.split_first() {
                None => t.is_empty(),
                Some(('*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
                Some(('?', rest)) => !t.is_empty() && reference(rest, &t[1..]),
                Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
            }
        }
        let alphabet = ['a', 'b', 'é', '*', '?'];
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let plen = 1 + (next() % 6) as usize;
            let tlen = (next() % 7) as usize;
            let p: String = (0..plen).map(|_| alphabet[(next() % 5) as usize]).collect();
            // Texts may contain `*` and `?` too: they are ordinary characters there.
            let t: String = (0..tlen).map(|_| alphabet[(next() % 5) as usize]).collect();
            let expected = reference(&p.chars().collect::<Vec<_>>(), &t.chars().collect::<Vec<_>>());
            assert_eq!(m(&p, &t), expected, "pattern {p:?} text {t:?}");
        }
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert!(Glob::new("").is_err());
        assert!(Glob::new("a\nb").is_err());
        assert!(Glob::new(&"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
        assert!(Glob::new(&"a".repeat(MAX_PATTERN_LEN)).is_ok());
    }

    #[test]
    fn long_hostile_input_is_fast() {
        let g = Glob::new(&format!("{}b", "*a".repeat(40))).unwrap();
        assert!(!g.matches(&"a".repeat(10_000)));
    }
}
