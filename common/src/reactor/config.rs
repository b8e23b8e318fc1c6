//! The `reactor:` config value and tag matching: a pattern matches by fnmatch glob or, failing
//! that, as a regex anchored at both ends (the seed article's "glob or regular expression").

use super::Rule;
use crate::glob::{wrapped_regex, Glob, CONFIG_REGEX_SIZE_LIMIT};
use regex::Regex;
use serde_yaml::Value as Yaml;
use std::borrow::Cow;

/// Parses the master config's `reactor:` value: a list of single-key maps
/// `{pattern: [sls, ...]}` (a bare string for one SLS accepted). Salt silently ignores entries
/// of any other shape; we report every one of them.
pub fn parse_rules(value: &Yaml) -> Result<Vec<Rule>, Vec<String>> {
    let items = match value {
        Yaml::Null => return Ok(Vec::new()),
        Yaml::Sequence(items) => items,
        Yaml::String(path) => {
            return Err(vec![format!(
                "'{path}': a file holding the rules is not supported; list them here as \
                 `- 'tag/pattern': [/srv/reactor/file.sls]`"
            )])
        }
        Yaml::Mapping(_) => {
            return Err(vec!["expected a list of `- 'tag/pattern': [sls, ...]` entries, got a \
                             map (each pattern needs a leading `- `)"
                .into()])
        }
        other => return Err(vec![format!("expected a list of rules, got {}", kind(other))]),
    };
    let mut rules = Vec::new();
    let mut problems = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match rule(item) {
            Ok(rule) => rules.push(rule),
            Err(why) => problems.push(format!("entry {}: {why}", i + 1)),
        }
    }
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(problems)
    }
}

fn rule(item: &Yaml) -> Result<Rule, String> {
    let map = match item {
        Yaml::Mapping(map) if map.len() == 1 => map,
        Yaml::Mapping(map) => {
            return Err(format!(
                "expected one `pattern: [sls, ...]` pair, got {} (start each pattern with `- `)",
                map.len()
            ))
        }
        other => return Err(format!("expected `pattern: [sls, ...]`, got {}", kind(other))),
    };
    let (key, value) = map.iter().next().expect("one entry");
    let pattern = match key {
        Yaml::String(s) if !s.is_empty() => s.clone(),
        Yaml::Number(n) => n.to_string(),
        other => {
            return Err(format!("the tag pattern must be a non-empty string, got {}", kind(other)))
        }
    };
    let sls = match value {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Sequence(items) => items
            .iter()
            .map(|item| match item {
                Yaml::String(s) if !s.is_empty() => Ok(s.clone()),
                other => {
                    Err(format!("'{pattern}': an SLS path must be a string, got {}", kind(other)))
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => {
            return Err(format!("'{pattern}': expected a list of SLS paths, got {}", kind(other)))
        }
    };
    if sls.is_empty() {
        return Err(format!("'{pattern}' lists no SLS file"));
    }
    Ok(Rule { pattern, sls })
}

/// How an error message names a YAML value's type.
pub(super) fn kind(value: &Yaml) -> &'static str {
    match value {
        Yaml::Null => "nothing",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a map",
        Yaml::Tagged(_) => "a tagged value",
    }
}

/// Whether `pattern` matches `tag`: fnmatch glob, or failing that as a regex anchored at both
/// ends (an invalid regex simply does not match).
pub fn tag_matches(pattern: &str, tag: &str) -> bool {
    Matcher::new(pattern).matches(tag)
}

/// A rule's pattern, compiled both ways.
pub(super) struct Matcher {
    pattern: String,
    glob: Glob,
    regex: Result<Regex, String>,
}

impl Matcher {
    pub(super) fn new(pattern: &str) -> Matcher {
        let regex = wrapped_regex(r"\A(?:", pattern, r")\z", CONFIG_REGEX_SIZE_LIMIT)
            .map_err(|e| short(&e));
        Matcher { pattern: pattern.to_string(), glob: Glob::new(pattern), regex }
    }

    pub(super) fn matches(&self, tag: &str) -> bool {
        self.glob.is_match(tag) || self.regex.as_ref().is_ok_and(|r| r.is_match(tag))
    }

    /// The regexes that together decide [`Matcher::matches`]: the glob's, and the pattern's
    /// own when it is a valid regex.
    pub(super) fn regexes(&self) -> impl Iterator<Item = Cow<'_, str>> {
        let own = self.regex.as_ref().ok().map(|r| Cow::Borrowed(r.as_str()));
        std::iter::once(self.glob.as_regex()).chain(own)
    }

    /// A warning when the pattern looks like a regex but is not a valid one.
    pub(super) fn problem(&self) -> Option<String> {
        let looks_like_regex =
            self.pattern.contains(['\\', '(', ')', '|', '+', '^', '$', '{', '}']);
        match &self.regex {
            Err(e) if looks_like_regex => Some(format!(
                "pattern '{}' is not a valid regular expression ({e}); it only matches as a glob",
                self.pattern
            )),
            _ => None,
        }
    }

    pub(super) fn explain(&self, tag: &str, sls: &[String]) -> String {
        let p = &self.pattern;
        if self.glob.is_match(tag) {
            return format!("'{p}': matches as a glob -> {}", sls.join(", "));
        }
        match &self.regex {
            Ok(r) if r.is_match(tag) => format!("'{p}': matches as a regex -> {}", sls.join(", ")),
            Ok(_) => format!("'{p}': no match (glob: no; regex: no)"),
            Err(e) => format!("'{p}': no match (glob: no; regex: invalid, {e})"),
        }
    }
}

/// The last line of a regex error (the useful part of its multi-line report).
fn short(e: &regex::Error) -> String {
    let text = e.to_string();
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(&text);
    line.trim().trim_start_matches("error: ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_rules(yaml: &str, expected: Result<Vec<(&str, Vec<&str>)>, Vec<&str>>) {
        let value: Yaml = serde_yaml::from_str(yaml).unwrap();
        let got = parse_rules(&value);
        let expected = expected
            .map(|rules| {
                rules
                    .into_iter()
                    .map(|(p, s)| Rule {
                        pattern: p.to_string(),
                        sls: s.into_iter().map(String::from).collect(),
                    })
                    .collect::<Vec<_>>()
            })
            .map_err(|e| e.into_iter().map(String::from).collect::<Vec<_>>());
        assert_eq!(got, expected, "{yaml}");
    }

    #[test]
    fn rules() {
        check_rules(
            "- 'salt/auth':\n  - /srv/reactor/Minion.sls\n- 'salt/minion/Min*/start':\n  - /srv/reactor/auto.sls\n",
            Ok(vec![
                ("salt/auth", vec!["/srv/reactor/Minion.sls"]),
                ("salt/minion/Min*/start", vec!["/srv/reactor/auto.sls"]),
            ]),
        );
        check_rules("- a: /one.sls\n", Ok(vec![("a", vec!["/one.sls"])]));
        check_rules("- a: [/x.sls, /y.sls]\n", Ok(vec![("a", vec!["/x.sls", "/y.sls"])]));
        check_rules("null", Ok(vec![]));
        check_rules("[]", Ok(vec![]));
        check_rules(
            "- a: /x.sls\n  b: /y.sls\n- just-a-string\n- c: 5\n- d: []\n- e: [/ok, 7]\n",
            Err(vec![
                "entry 1: expected one `pattern: [sls, ...]` pair, got 2 (start each pattern with `- `)",
                "entry 2: expected `pattern: [sls, ...]`, got a string",
                "entry 3: 'c': expected a list of SLS paths, got a number",
                "entry 4: 'd' lists no SLS file",
                "entry 5: 'e': an SLS path must be a string, got a number",
            ]),
        );
        check_rules(
            "a: [/x.sls]\n",
            Err(vec!["expected a list of `- 'tag/pattern': [sls, ...]` entries, got a map (each pattern needs a leading `- `)"]),
        );
        check_rules("5", Err(vec!["expected a list of rules, got a number"]));
        let Err(e) = parse_rules(&Yaml::String("/etc/salt/reactor.conf".into())) else { panic!() };
        assert!(e[0].contains("not supported"), "{e:?}");
    }

    #[test]
    fn matching() {
        for (pattern, tag, expected) in [
            ("salt/auth", "salt/auth", true),
            ("salt/auth", "salt/authx", false),
            ("salt/minion/Min*/start", "salt/minion/Minion2/start", true),
            ("salt/minion/Min*/start", "salt/minion/other1/start", false),
            ("salt/job/*/ret/*", "salt/job/2024/ret/m1", true),
            ("web?", "web1", true),
            // Regex, anchored at both ends.
            (r"salt/minion/Min\d+/start", "salt/minion/Min42/start", true),
            (r"salt/minion/Min\d+/start", "salt/minion/Min42/start/x", false),
            (r"salt/minion/Min\d+/start", "xsalt/minion/Min42/start", false),
            ("salt/(auth|key)", "salt/key", true),
            ("salt/(auth|key)", "salt/keys", false),
            // `.` is a literal for the glob but any character for the regex.
            ("a.c", "abc", true),
            // Invalid regex: only the glob can match.
            ("salt/(auth", "salt/(auth", true),
            ("salt/(auth", "salt/auth", false),
            ("*/start", "salt/minion/x/start", true),
            ("*/start", "start", false),
        ] {
            assert_eq!(tag_matches(pattern, tag), expected, "{pattern} ~ {tag}");
        }
    }

    #[test]
    fn explain_and_problems() {
        let sls = vec!["/s.sls".to_string()];
        assert_eq!(
            Matcher::new("salt/*").explain("salt/auth", &sls),
            "'salt/*': matches as a glob -> /s.sls"
        );
        assert_eq!(
            Matcher::new(r"salt/a\w+").explain("salt/auth", &sls),
            r"'salt/a\w+': matches as a regex -> /s.sls"
        );
        assert_eq!(
            Matcher::new("x/*").explain("salt/auth", &sls),
            "'x/*': no match (glob: no; regex: no)"
        );
        let bad = Matcher::new("salt/(auth").explain("salt/auth", &sls);
        assert!(bad.starts_with("'salt/(auth': no match (glob: no; regex: invalid, "), "{bad}");
        assert!(Matcher::new("salt/(auth")
            .problem()
            .unwrap()
            .contains("not a valid regular expression"));
        // Glob-only syntax that happens not to be a regex is fine.
        assert_eq!(Matcher::new("*/start").problem(), None);
        assert_eq!(Matcher::new("salt/minion/*/start").problem(), None);
    }
}
