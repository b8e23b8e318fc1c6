//! Shell-style globs with Python `fnmatch` semantics (`*` crosses `/`, `[!..]` negates), as Salt
//! uses for key names, targets and reactor tags.

use regex::Regex;

/// A compiled glob.
#[derive(Debug, Clone)]
pub struct Glob {
    regex: Regex,
}

impl Glob {
    /// Compiles `pattern`; every pattern is valid (an unclosed `[` is a literal, as in Python).
    pub fn new(pattern: &str) -> Glob {
        // A class the regex engine refuses (a reversed range like `[z-a]`, which Python's
        // fnmatch silently empties) makes the whole pattern literal rather than a panic.
        let regex = Regex::new(&translate(pattern)).unwrap_or_else(|_| {
            Regex::new(&format!("(?s)^{}$", regex::escape(pattern)))
                .expect("escaped text is a valid regex")
        });
        Glob { regex }
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }

    /// The anchored regex the glob compiled to (for building a `RegexSet` of many globs).
    pub fn as_regex(&self) -> &str {
        self.regex.as_str()
    }
}

/// `fnmatch.fnmatchcase(name, pattern)`.
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    if !has_magic(pattern) {
        return name == pattern;
    }
    Glob::new(pattern).is_match(name)
}

/// `pattern` as a regex anchored at both ends, or `None` when it is not a valid regex.
///
/// The pattern must compile on its own first: wrapped blindly, `x)|(.*` would become
/// `\A(?:x)|(.*)\z` and match everything.
pub fn anchored_regex(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()?;
    Regex::new(&format!(r"\A(?:{pattern})\z")).ok()
}

/// Whether `pattern` contains glob metacharacters.
pub fn has_magic(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Python's `fnmatch.translate`, anchored at both ends.
fn translate(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
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
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
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
mod tests {
    use super::*;

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
