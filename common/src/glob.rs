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
        let regex = Regex::new(&translate(pattern)).expect("translated globs are valid regexes");
        Glob { regex }
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }
}

/// `fnmatch.fnmatchcase(name, pattern)`.
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    if !has_magic(pattern) {
        return name == pattern;
    }
    Glob::new(pattern).is_match(name)
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
        ] {
            assert_eq!(fnmatch(name, pattern), expected, "{name} ~ {pattern}");
        }
    }
}
