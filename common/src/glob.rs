//! Shell-style globs with Python `fnmatch` semantics (`*` crosses `/`, `[!..]` negates), as Salt
//! uses for key names, targets and reactor tags.

use regex::{Regex, RegexBuilder};

/// Compiled size limit of a regular expression from outside (a target, a glob's `[class]`): it
/// bounds the compile's time and memory (about 2 ms here at the limit; Unicode classes such as
/// `\w` are what grow it: `\w{5}` fits, `\w{10}` does not).
pub const REGEX_SIZE_LIMIT: usize = 256 << 10;
/// The regex crate's own limit, for patterns from the master's configuration (reactor tags,
/// autosign lists, event subscriptions), which are the operator's.
pub const CONFIG_REGEX_SIZE_LIMIT: usize = 10 << 20;

/// A compiled glob.
#[derive(Debug, Clone)]
pub struct Glob {
    matcher: Matcher,
    /// The pattern, for [`Glob::as_regex`].
    pattern: Box<str>,
}

/// How a glob is matched: a pattern of only `*`, `?` and literal characters (nearly every
/// glob) without the regex engine, whose compile costs tens of microseconds per `*` (it builds
/// a Unicode `.` automaton: seconds for a hostile `*a*a*…` of a few kilobytes); a pattern with
/// a `[class]` through the regex `translate` makes.
#[derive(Debug, Clone)]
enum Matcher {
    /// The pattern cut at its `*`s: the first piece matches at the start of the name, the
    /// last at its end, the others leftmost in order between them.
    Wild(Vec<Vec<Token>>),
    Regex(Regex),
    /// A pattern whose `[class]` the regex engine refuses (a reversed range like `[z-a]`,
    /// which Python's fnmatch silently empties, or one over [`REGEX_SIZE_LIMIT`]): the whole
    /// pattern taken literally.
    Literal,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    /// `?`: any one character.
    One,
    Char(char),
}

impl Glob {
    /// Compiles `pattern`; every pattern is valid (an unclosed `[` is a literal, as in Python).
    pub fn new(pattern: &str) -> Glob {
        if !compiles(pattern) {
            let pieces = pattern
                .split('*')
                .map(|piece| {
                    piece.chars().map(|c| if c == '?' { Token::One } else { Token::Char(c) })
                })
                .map(Iterator::collect)
                .collect();
            return Glob { matcher: Matcher::Wild(pieces), pattern: pattern.into() };
        }
        let matcher = RegexBuilder::new(&translate(pattern))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_or(Matcher::Literal, Matcher::Regex);
        Glob { matcher, pattern: pattern.into() }
    }

    pub fn is_match(&self, name: &str) -> bool {
        match &self.matcher {
            Matcher::Wild(pieces) => wild_match(pieces, name),
            Matcher::Regex(regex) => regex.is_match(name),
            Matcher::Literal => *self.pattern == *name,
        }
    }

    /// The anchored regex the glob is equal to (for building a `RegexSet` of many globs),
    /// written only when asked.
    pub fn as_regex(&self) -> std::borrow::Cow<'_, str> {
        match &self.matcher {
            Matcher::Wild(_) => translate(&self.pattern).into(),
            Matcher::Regex(regex) => regex.as_str().into(),
            Matcher::Literal => format!("(?s)^{}$", regex::escape(&self.pattern)).into(),
        }
    }
}

/// `*`/`?` matching of a pattern cut at its `*`s: the first piece at the start, the last at
/// the end, each other one at its leftmost place after the one before (leftmost is never
/// worse: a `*` takes whatever is skipped). No backtracking: at most name × longest piece
/// steps, however many `*`s.
fn wild_match(pieces: &[Vec<Token>], name: &str) -> bool {
    let (first, rest) = pieces.split_first().expect("split gives at least one piece");
    let Some((last, middle)) = rest.split_last() else {
        return piece_at(first, name, 0) == Some(name.len());
    };
    let Some(mut at) = piece_at(first, name, 0) else { return false };
    // The last piece's place: as many characters before the end as it has tokens.
    let tail = match last.len() {
        0 => name.len(),
        n => match name[at..].char_indices().rev().nth(n - 1) {
            Some((i, _)) => at + i,
            None => return false,
        },
    };
    let within = &name[..tail];
    for piece in middle {
        let found = within[at..]
            .char_indices()
            .map(|(i, _)| at + i)
            .chain(std::iter::once(tail))
            .find_map(|start| piece_at(piece, within, start));
        match found {
            Some(end) => at = end,
            None => return false,
        }
    }
    piece_at(last, name, tail) == Some(name.len())
}

/// Where `piece` ends when it matches `name` from byte `at`.
fn piece_at(piece: &[Token], name: &str, at: usize) -> Option<usize> {
    let mut chars = name[at..].chars();
    let mut end = at;
    for token in piece {
        let c = chars.next()?;
        if let Token::Char(want) = token {
            if *want != c {
                return None;
            }
        }
        end += c.len_utf8();
    }
    Some(end)
}

/// `fnmatch.fnmatchcase(name, pattern)`.
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    if !has_magic(pattern) {
        return name == pattern;
    }
    Glob::new(pattern).is_match(name)
}

/// `pattern` as a regex anchored at both ends, or `None` when it is not a valid regex.
pub fn anchored_regex(pattern: &str) -> Option<Regex> {
    wrapped_regex(r"\A(?:", pattern, r")\z", CONFIG_REGEX_SIZE_LIMIT).ok()
}

/// `pattern` compiled inside `open`…`close`, within `limit` bytes compiled. The pattern must be a
/// regex on its own first: wrapped blindly, `x)|(.*` would become `\A(?:x)|(.*)\z` and match
/// everything. That is checked by parsing it, not compiling it: the compile is most of a
/// regex's cost, and is then paid once.
pub fn wrapped_regex(
    open: &str,
    pattern: &str,
    close: &str,
    limit: usize,
) -> Result<Regex, regex::Error> {
    regex_syntax::Parser::new().parse(pattern).map_err(|e| regex::Error::Syntax(e.to_string()))?;
    RegexBuilder::new(&format!("{open}{pattern}{close}")).size_limit(limit).build()
}

/// Whether [`Glob::new`] compiles a regex for `pattern` (it has a `[class]`): what a caller
/// bounding the regexes it compiles counts.
pub fn compiles(pattern: &str) -> bool {
    pattern.contains('[')
}

/// Whether `pattern` contains glob metacharacters.
pub fn has_magic(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Python's `fnmatch.translate`, anchored at both ends. Linear in the pattern: Python scans
/// from each `[` to the end for its `]`, so a pattern of 20,000 unclosed `[` (a hostile
/// target fits 64 KiB) took seconds; here the next `]` after each position is found in one
/// pass first.
fn translate(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut next_close = vec![chars.len(); chars.len() + 1];
    for k in (0..chars.len()).rev() {
        #[cfg(test)]
        SCANNED.with(|n| n.set(n.get() + 1));
        next_close[k] = if chars[k] == ']' { k } else { next_close[k + 1] };
    }
    let mut out = String::from("(?s)^");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                while i < chars.len() && chars[i] == '*' {
                    i += 1;
                }
                out.push_str(".*");
            }
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                j = next_close[j];
                if j >= chars.len() {
                    out.push_str("\\[");
                    continue;
                }
                let mut class: String = chars[i..j].iter().collect();
                i = j + 1;
                let negate = class.starts_with('!');
                if negate {
                    class.remove(0);
                }
                let escaped: String = class
                    .chars()
                    .map(|ch| match ch {
                        '\\' | '[' | ']' | '^' | '&' | '~' => format!("\\{ch}"),
                        _ => ch.to_string(),
                    })
                    .collect();
                out.push('[');
                if negate {
                    out.push('^');
                }
                out.push_str(&escaped);
                out.push(']');
            }
            _ => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

#[cfg(test)]
thread_local! {
    /// Characters [`translate`] has looked at on this thread, looking for `]`.
    static SCANNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing the target parser: 20,000 `[` with no `]` (a compound target's
    /// glob) cost seconds, each `[` scanning to the end for its `]`.
    #[test]
    fn unclosed_brackets_cost_one_pass() {
        for pattern in
            ["[".repeat(20_000), format!("{}]", "[!".repeat(10_000)), "a[]".repeat(5_000)]
        {
            let before = SCANNED.with(|n| n.get());
            let regex = translate(&pattern);
            let scanned = SCANNED.with(|n| n.get()) - before;
            assert!(scanned <= pattern.len(), "{scanned} characters scanned for {}", pattern.len());
            assert!(regex.starts_with("(?s)^") && regex.ends_with('$'));
        }
        assert!(fnmatch(&"[".repeat(20_000), &"[".repeat(20_000)));
        assert!(fnmatch("a[!", "a[!"));
        assert!(fnmatch("ab", "a[]b]") && fnmatch("a]", "a[]b]") && !fnmatch("ac", "a[]b]"));
    }

    #[test]
    fn python_fnmatch_cases() {
        for (name, pattern, expected) in [
            ("salt/auth", "salt/auth", true),
            ("salt/minion/Minion2/start", "salt/minion/Min*/start", true),
            ("salt/minion/minion1/start", "salt/minion/Min*/start", false),
            ("salt/job/1/ret/m", "salt/job/*", true),
            ("web1", "web?", true),
            ("web10", "web?", false),
            ("web1", "web[0-9]", true),
            ("weba", "web[!0-9]", true),
            ("web1", "web[!0-9]", false),
            ("a[b", "a[b", true),
            ("a]", "a[]]", true),
            ("a.b", "a.b", true),
            ("axb", "a.b", false),
            ("line\nbreak", "line*", true),
            ("x^y", "x[^]y", true),
            ("", "*", true),
            ("web[z-a]", "web[z-a]", true),
            ("webq", "web[z-a]", false),
            ("a-b", "a[a-\\]b", false),
        ] {
            assert_eq!(fnmatch(name, pattern), expected, "{name} ~ {pattern}");
        }
    }

    #[test]
    fn anchored_regexes_cannot_escape_their_anchors() {
        assert!(anchored_regex("db[0-9]+").unwrap().is_match("db12"));
        assert!(!anchored_regex("db[0-9]+").unwrap().is_match("xdb12"));
        assert!(anchored_regex("x)|(.*").is_none());
        assert!(anchored_regex("(unclosed").is_none());
    }

    /// The regex-free matcher agrees with the regex `translate` makes, over every pattern of
    /// up to five tokens from `*`, `?`, `a`, `b`, `/`, a newline and a two-byte char, against
    /// every name of up to four characters from `a`, `b`, a newline and that char.
    #[test]
    fn wildcards_match_as_the_translated_regex_does() {
        let alphabet = ['*', '?', 'a', 'b', '/', '\n', 'é'];
        let names: Vec<String> = {
            let mut names = vec![String::new()];
            for _ in 0..4 {
                let longer: Vec<String> = names
                    .iter()
                    .filter(|n| n.chars().count() == names.last().unwrap().chars().count())
                    .flat_map(|n| ['a', 'b', '\n', 'é'].map(|c| format!("{n}{c}")))
                    .collect();
                names.extend(longer);
            }
            names
        };
        let mut patterns = vec![String::new()];
        let mut last = patterns.clone();
        for _ in 0..5 {
            last = last.iter().flat_map(|p| alphabet.map(|c| format!("{p}{c}"))).collect();
            patterns.extend(last.iter().cloned());
        }
        for pattern in &patterns {
            let glob = Glob::new(pattern);
            assert!(matches!(glob.matcher, Matcher::Wild(_)), "{pattern:?}");
            let regex = Regex::new(&translate(pattern)).unwrap();
            for name in &names {
                assert_eq!(glob.is_match(name), regex.is_match(name), "{name:?} ~ {pattern:?}");
            }
        }
    }

    /// A long pattern (one a hostile reaction could build from event data, `*a*a*…`) is
    /// matched without the regex engine (whose compile of it takes seconds) and without
    /// backtracking.
    #[test]
    fn long_hostile_patterns_match_without_the_regex_engine() {
        let hostile = "*a".repeat(5000) + "b";
        let glob = Glob::new(&hostile);
        assert!(matches!(glob.matcher, Matcher::Wild(_)));
        assert!(!glob.is_match(&"a".repeat(200)));
        assert!(glob.is_match(&("a".repeat(5000) + "b")));
        let long = "*".to_string() + &"a".repeat(300) + "b";
        assert!(!Glob::new(&long).is_match(&"a".repeat(4096)));
    }

    #[test]
    fn no_pattern_panics() {
        let alphabet = ['[', ']', '!', '-', 'a', 'z', '\\', '*', '?', '^', '&', '~'];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    for d in alphabet {
                        let pattern: String = [a, b, c, d].iter().collect();
                        let _ = fnmatch("az-", &pattern);
                    }
                }
            }
        }
    }
}
