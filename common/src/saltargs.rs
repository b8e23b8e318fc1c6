//! Salt's CLI argument conversion (`salt.utils.args.parse_input` and `yamlify_arg`): each
//! positional word is read as a YAML scalar or flow collection, `key=value` words are gathered
//! into one trailing `{"__kwarg__": true, ...}` map — the `arg` list a job is published with.
//!
//! The YAML reader here covers what a shell passes: plain scalars with YAML 1.1 typing as
//! PyYAML resolves them (and Salt's loader adjusts them: leading-zero integers are decimal,
//! timestamps stay strings), quoted strings, flow lists `[a, 1]` and flow maps `{a: 1}`, nested.
//! Anything else (block collections, anchors, tags, block scalars, errors) keeps the raw word,
//! which is also what Salt does with those in a CLI argument.

pub use crate::args::parse_kwarg;
use serde_json::{Map, Number, Value};

/// Deepest nesting of flow collections accepted in one argument.
const MAX_FLOW_DEPTH: usize = 64;

/// Salt's CLI arg parsing: each positional string is YAML-parsed ("3" → 3, "True" → true,
/// "[1, 2]" → list, "foo" → "foo", "" → ""; a YAML parse error keeps the raw string); each
/// `key=value` (key: a letter or `_`, then letters, digits, `_`, `.`, `-`; value not starting
/// with `=` and without a line break) becomes part of ONE trailing map
/// `{"__kwarg__": true, "key": yaml(value), ...}` appended after the positional args, only if
/// there are kwargs. A repeated key keeps its first position and its last value. Integers that
/// look like a jid (20 digits) stay strings, as Salt's `condition_input` does.
pub fn parse_cli_args(args: &[String]) -> Vec<Value> {
    let mut positional = Vec::with_capacity(args.len() + 1);
    let mut kwargs = Map::new();
    for arg in args {
        match parse_kwarg(arg) {
            Some((key, value)) => {
                kwargs.insert(key.to_string(), yamlify_arg(value));
            }
            None => positional.push(condition(yamlify_arg(arg))),
        }
    }
    if !kwargs.is_empty() {
        // Salt builds `{"__kwarg__": True}` first, then adds the pairs.
        let mut map = Map::new();
        map.insert("__kwarg__".into(), Value::Bool(true));
        for (key, value) in kwargs {
            map.insert(key, value);
        }
        positional.push(Value::Object(map));
    }
    positional
}

/// Salt's `yamlify_arg`: the YAML value of one CLI word, or the word itself where Salt keeps it.
pub fn yamlify_arg(arg: &str) -> Value {
    let raw = || Value::String(arg.to_string());
    let stripped = arg.trim();
    if stripped.is_empty() {
        return raw();
    }
    // YAML would read `1_000` as 1000; Salt keeps digits-and-underscores as they are.
    if arg.contains('_') && stripped.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return raw();
    }
    if arg.contains('#') {
        // Only a non-string value is taken, so a `#` that YAML reads as a comment loses nothing.
        return match load(arg) {
            Ok(Value::String(_) | Value::Null) | Err(()) => raw(),
            Ok(value) => value,
        };
    }
    if arg == "None" {
        return Value::Null;
    }
    match load(arg) {
        Err(()) => raw(),
        Ok(Value::Object(_)) if !arg.starts_with('{') => raw(),
        Ok(Value::Array(_)) if !arg.starts_with('[') => raw(),
        Ok(Value::String(s)) if s.is_empty() && (arg == "|" || arg == "!") => raw(),
        Ok(Value::Null) if stripped.starts_with('#') || arg == "!" => raw(),
        Ok(value) => value,
    }
}

/// Salt's `condition_input`: an integer whose decimal form is a jid is sent as a string.
fn condition(value: Value) -> Value {
    match &value {
        Value::Number(n) if !n.is_f64() => {
            let text = n.to_string();
            match text.len() == 20 && text.bytes().all(|b| b.is_ascii_digit()) {
                true => Value::String(text),
                false => value,
            }
        }
        _ => value,
    }
}

// ---------------------------------------------------------------------------------------------
// A small YAML reader: one document holding a scalar or a flow collection.

/// The YAML value of `text` (PyYAML `safe_load` with Salt's loader), or Err for anything this
/// reader does not handle or that is not valid YAML.
fn load(text: &str) -> Result<Value, ()> {
    let mut reader = Reader { chars: text.chars().collect(), pos: 0, depth: 0 };
    reader.skip_blank(true);
    if reader.starts_with("---") && reader.is_blank_at(reader.pos + 3) {
        reader.pos += 3;
        reader.skip_blank(true);
    }
    if reader.at_end() {
        return Ok(Value::Null);
    }
    let value = reader.block_node()?;
    reader.skip_blank(true);
    match reader.at_end() {
        true => Ok(value),
        false => Err(()),
    }
}

struct Reader {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

const BREAKS: &[char] = &['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'];

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || BREAKS.contains(&c)
}

impl Reader {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, at: usize) -> Option<char> {
        self.chars.get(at).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn starts_with(&self, text: &str) -> bool {
        text.chars().enumerate().all(|(i, c)| self.peek_at(self.pos + i) == Some(c))
    }

    /// End of text, or a space, tab or line break at `at`.
    fn is_blank_at(&self, at: usize) -> bool {
        self.peek_at(at).is_none_or(is_blank)
    }

    /// Skips spaces, tabs, line breaks and `#` comments (a comment must follow a blank or start
    /// the text). Returns whether anything was skipped.
    fn skip_blank(&mut self, comments: bool) -> bool {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if is_blank(c) {
                self.pos += 1;
            } else if c == '#' && comments && (self.pos == 0 || self.is_blank_at(self.pos - 1)) {
                while self.peek().is_some_and(|c| !BREAKS.contains(&c)) {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
        self.pos > start
    }

    /// The node at the top of the document (block context).
    fn block_node(&mut self) -> Result<Value, ()> {
        match self.peek().ok_or(())? {
            '[' | '{' => self.flow_collection(),
            '"' => self.double_quoted().map(Value::String),
            '\'' => self.single_quoted().map(Value::String),
            _ if self.plain_starts(false) => Ok(resolve_plain(&self.plain(false)?)),
            // Block sequences and mappings, anchors, aliases, tags, block scalars, directives,
            // reserved indicators: not read here.
            _ => Err(()),
        }
    }

    /// PyYAML's `check_plain`: whether a plain scalar may start here.
    fn plain_starts(&self, flow: bool) -> bool {
        let Some(c) = self.peek() else { return false };
        if is_blank(c) || "-?:,[]{}#&*!|>'\"%@`".contains(c) {
            let next_blank = self.is_blank_at(self.pos + 1);
            return !next_blank && (c == '-' || (!flow && (c == '?' || c == ':')));
        }
        true
    }

    /// A plain scalar. It ends at a comment (` #`), at `: ` (block context: then the text is a
    /// mapping, which is an error here), and in flow context also at `,?[]{}` and `:` before a
    /// flow indicator. Line breaks fold: one becomes a space, each further one a newline.
    fn plain(&mut self, flow: bool) -> Result<String, ()> {
        let mut out = String::new();
        loop {
            // A run of non-blank characters.
            while let Some(c) = self.peek() {
                if is_blank(c) {
                    break;
                }
                if c == ':' {
                    let next = self.peek_at(self.pos + 1);
                    let ends = next.is_none_or(is_blank)
                        || (flow && next.is_some_and(|n| ",[]{}".contains(n)));
                    if ends {
                        if !flow {
                            return Err(()); // `key: value` is a mapping
                        }
                        return Ok(out);
                    }
                }
                if flow && ",?[]{}".contains(c) {
                    return Ok(out);
                }
                out.push(c);
                self.pos += 1;
            }
            // A run of blanks: kept if more text follows on the same line, folded across lines.
            let (start, breaks) = self.skip_blanks();
            let Some(next) = self.peek() else {
                self.pos = start;
                return Ok(out);
            };
            if next == '#' || (flow && ",?[]{}:".contains(next)) {
                self.pos = start;
                return Ok(out);
            }
            self.push_folded(&mut out, start, breaks);
        }
    }

    /// Line folding inside quoted scalars: the blanks around line breaks collapse to one space,
    /// or to n-1 newlines for n breaks. `self.pos` is on the first blank.
    fn fold_quoted(&mut self, out: &mut String) {
        let (start, breaks) = self.skip_blanks();
        self.push_folded(out, start, breaks);
    }

    /// Moves past a run of blanks (spaces, tabs, line breaks; `\r\n` is one break): where it
    /// started, and how many line breaks it held.
    fn skip_blanks(&mut self) -> (usize, usize) {
        let start = self.pos;
        let mut breaks = 0;
        while let Some(c) = self.peek() {
            if !is_blank(c) {
                break;
            }
            if BREAKS.contains(&c) {
                if c == '\r' && self.peek_at(self.pos + 1) == Some('\n') {
                    self.pos += 1;
                }
                breaks += 1;
            }
            self.pos += 1;
        }
        (start, breaks)
    }

    /// The blanks from `start` to here, folded: kept on one line, one space for one break,
    /// n-1 newlines for n breaks.
    fn push_folded(&self, out: &mut String, start: usize, breaks: usize) {
        match breaks {
            0 => out.extend(&self.chars[start..self.pos]),
            1 => out.push(' '),
            n => out.extend(std::iter::repeat_n('\n', n - 1)),
        }
    }

    fn single_quoted(&mut self) -> Result<String, ()> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek().ok_or(())? {
                '\'' if self.peek_at(self.pos + 1) == Some('\'') => {
                    out.push('\'');
                    self.pos += 2;
                }
                '\'' => {
                    self.pos += 1;
                    return Ok(out);
                }
                c if is_blank(c) => self.fold_quoted(&mut out),
                c => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, ()> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek().ok_or(())? {
                '"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                '\\' => {
                    self.pos += 1;
                    let c = self.peek().ok_or(())?;
                    self.pos += 1;
                    let simple = match c {
                        '0' => Some('\0'),
                        'a' => Some('\u{7}'),
                        'b' => Some('\u{8}'),
                        't' | '\t' => Some('\t'),
                        'n' => Some('\n'),
                        'v' => Some('\u{b}'),
                        'f' => Some('\u{c}'),
                        'r' => Some('\r'),
                        'e' => Some('\u{1b}'),
                        ' ' => Some(' '),
                        '"' => Some('"'),
                        '/' => Some('/'),
                        '\\' => Some('\\'),
                        'N' => Some('\u{85}'),
                        '_' => Some('\u{a0}'),
                        'L' => Some('\u{2028}'),
                        'P' => Some('\u{2029}'),
                        _ => None,
                    };
                    if let Some(s) = simple {
                        out.push(s);
                        continue;
                    }
                    let len = match c {
                        'x' => 2,
                        'u' => 4,
                        'U' => 8,
                        c if BREAKS.contains(&c) => {
                            // An escaped line break joins the lines without a space.
                            if c == '\r' && self.peek() == Some('\n') {
                                self.pos += 1;
                            }
                            while self.peek().is_some_and(|c| c == ' ' || c == '\t') {
                                self.pos += 1;
                            }
                            continue;
                        }
                        _ => return Err(()),
                    };
                    let hex: String =
                        self.chars.get(self.pos..self.pos + len).ok_or(())?.iter().collect();
                    let code = u32::from_str_radix(&hex, 16).map_err(|_| ())?;
                    out.push(char::from_u32(code).ok_or(())?);
                    self.pos += len;
                }
                c if is_blank(c) => {
                    // Trailing blanks before a break are dropped by folding; inside a line kept.
                    self.fold_quoted(&mut out);
                }
                c => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn flow_collection(&mut self) -> Result<Value, ()> {
        self.depth += 1;
        if self.depth > MAX_FLOW_DEPTH {
            return Err(());
        }
        let open = self.peek().ok_or(())?;
        self.pos += 1;
        let value = match open {
            '[' => self.flow_sequence(),
            _ => self.flow_mapping(),
        };
        self.depth -= 1;
        value
    }

    fn flow_node(&mut self) -> Result<Value, ()> {
        match self.peek().ok_or(())? {
            '[' | '{' => self.flow_collection(),
            '"' => self.double_quoted().map(Value::String),
            '\'' => self.single_quoted().map(Value::String),
            _ if self.plain_starts(true) => Ok(resolve_plain(&self.plain(true)?)),
            _ => Err(()),
        }
    }

    /// After a key: `: value` (value may be empty), else no value.
    fn flow_value(&mut self, end: char) -> Result<Option<Value>, ()> {
        self.skip_blank(true);
        if self.peek() != Some(':') {
            return Ok(None);
        }
        self.pos += 1;
        self.skip_blank(true);
        match self.peek() {
            Some(c) if c == ',' || c == end => Ok(Some(Value::Null)),
            _ => self.flow_node().map(Some),
        }
    }

    /// `[a, b, k: v]` (a `k: v` entry is a one-pair map); a trailing comma is allowed.
    fn flow_sequence(&mut self) -> Result<Value, ()> {
        let mut items = Vec::new();
        loop {
            self.skip_blank(true);
            if self.peek() == Some(']') {
                self.pos += 1;
                return Ok(Value::Array(items));
            }
            let node = self.flow_node()?;
            let item = match self.flow_value(']')? {
                Some(value) => {
                    let mut pair = Map::new();
                    pair.insert(map_key(node)?, value);
                    Value::Object(pair)
                }
                None => node,
            };
            items.push(item);
            self.skip_blank(true);
            match self.peek().ok_or(())? {
                ',' => self.pos += 1,
                ']' => {}
                _ => return Err(()),
            }
        }
    }

    /// `{a: 1, b}` (`b` maps to null); a repeated key is an error, as in Salt's loader.
    fn flow_mapping(&mut self) -> Result<Value, ()> {
        let mut map = Map::new();
        loop {
            self.skip_blank(true);
            if self.peek() == Some('}') {
                self.pos += 1;
                return Ok(Value::Object(map));
            }
            let key = map_key(self.flow_node()?)?;
            let value = self.flow_value('}')?.unwrap_or(Value::Null);
            if map.insert(key, value).is_some() {
                return Err(());
            }
            self.skip_blank(true);
            match self.peek().ok_or(())? {
                ',' => self.pos += 1,
                '}' => {}
                _ => return Err(()),
            }
        }
    }
}

/// A YAML key as a JSON key: scalars as `json.dumps` writes them, collections refused
/// (unhashable in Python).
fn map_key(key: Value) -> Result<String, ()> {
    match key {
        Value::String(s) => Ok(s),
        Value::Null => Ok("null".into()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Array(_) | Value::Object(_) => Err(()),
    }
}

/// Whether PyYAML reads `text`, written plain, back as a string (no bool, null, int, float,
/// timestamp, merge or value tag): the YAML emitter quotes strings for which it is not.
pub fn plain_is_string(text: &str) -> bool {
    !(matches!(
        text,
        "" | "~"
            | "null"
            | "Null"
            | "NULL"
            | "<<"
            | "="
            | "yes"
            | "Yes"
            | "YES"
            | "no"
            | "No"
            | "NO"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    ) || is_yaml_int(text)
        || is_yaml_float(text)
        || is_yaml_timestamp(text))
}

/// PyYAML's timestamp regex: `YYYY-MM-DD`, or `YYYY-M-D` then `T`/`t`/blanks,
/// `H:MM:SS[.frac]` and an optional `[blanks](Z|+H[:MM]|-H[:MM])`.
fn is_yaml_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |at: usize, min: usize, max: usize| -> Option<usize> {
        let n = b[at.min(b.len())..].iter().take(max).take_while(|c| c.is_ascii_digit()).count();
        (n >= min).then_some(at + n)
    };
    let lit = |at: usize, c: u8| (b.get(at) == Some(&c)).then_some(at + 1);
    let date = || -> Option<usize> {
        let at = digits(0, 4, 4)?;
        let at = digits(lit(at, b'-')?, 1, 2)?;
        digits(lit(at, b'-')?, 1, 2)
    };
    let Some(at) = date() else { return false };
    if at == b.len() {
        // The date-only form wants exactly two-digit month and day.
        return b.len() == 10;
    }
    let time = || -> Option<usize> {
        let mut at = at;
        match b.get(at)? {
            b'T' | b't' => at += 1,
            b' ' | b'\t' => at += b[at..].iter().take_while(|c| matches!(c, b' ' | b'\t')).count(),
            _ => return None,
        }
        let at = digits(at, 1, 2)?;
        let at = digits(lit(at, b':')?, 2, 2)?;
        let mut at = digits(lit(at, b':')?, 2, 2)?;
        if b.get(at) == Some(&b'.') {
            at += 1 + b[at + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        }
        let zone_at = at + b[at..].iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
        match b.get(zone_at) {
            None => Some(at),
            Some(b'Z') => Some(zone_at + 1),
            Some(b'+' | b'-') => {
                let at = digits(zone_at + 1, 1, 2)?;
                match lit(at, b':') {
                    Some(after) => digits(after, 2, 2),
                    None => Some(at),
                }
            }
            _ => None,
        }
    };
    time() == Some(b.len())
}

/// What a plain (unquoted) YAML scalar means to PyYAML's `SafeLoader` with Salt's loader on
/// top (YAML 1.1: `yes`/`off` are booleans, `0664` is 664, timestamps stay text).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Plain {
    Null,
    Bool(bool),
    /// An integer that fits 64 bits (larger ones stay text).
    Int(Number),
    /// Finite or not (`.inf`, `.nan`).
    Float(f64),
    Str,
}

/// PyYAML's implicit typing of a plain scalar (YAML 1.1), with Salt's loader on top.
pub(crate) fn plain_type(text: &str) -> Plain {
    match text {
        "~" | "null" | "Null" | "NULL" | "" => return Plain::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Plain::Bool(true)
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Plain::Bool(false)
        }
        _ => {}
    }
    if is_yaml_int(text) {
        if let Some(Value::Number(n)) = yaml_int(text) {
            return Plain::Int(n);
        }
    } else if is_yaml_float(text) {
        if let Some(f) = yaml_float(text) {
            return Plain::Float(f);
        }
    }
    // Everything else, timestamps included (Salt's loader keeps them as text), is a string.
    Plain::Str
}

/// [`plain_type`] as JSON: numbers JSON cannot hold (beyond 64 bits, .inf, .nan) stay text.
fn resolve_plain(text: &str) -> Value {
    match plain_type(text) {
        Plain::Null => Value::Null,
        Plain::Bool(b) => Value::Bool(b),
        Plain::Int(n) => Value::Number(n),
        Plain::Float(f) => Number::from_f64(f).map_or_else(|| text.into(), Value::Number),
        Plain::Str => Value::String(text.to_string()),
    }
}

fn strip_sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

/// `:[0-5]?[0-9]` groups of a sexagesimal number, each at least one.
fn sexagesimal_tail(parts: &[&str]) -> bool {
    !parts.is_empty()
        && parts.iter().all(|p| match p.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
            _ => false,
        })
}

/// `[1-9][0-9_]*`
fn decimal_head(text: &str) -> bool {
    let b = text.as_bytes();
    !b.is_empty()
        && (b'1'..=b'9').contains(&b[0])
        && b[1..].iter().all(|c| c.is_ascii_digit() || *c == b'_')
}

/// PyYAML's int regex: `[-+]?0b[0-1_]+ | [-+]?0[0-7_]+ | [-+]?(0|[1-9][0-9_]*)
/// | [-+]?0x[0-9a-fA-F_]+ | [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+`.
fn is_yaml_int(text: &str) -> bool {
    let (_, body) = strip_sign(text);
    if let Some(bin) = body.strip_prefix("0b") {
        return !bin.is_empty() && bin.bytes().all(|c| matches!(c, b'0' | b'1' | b'_'));
    }
    if let Some(hex) = body.strip_prefix("0x") {
        return !hex.is_empty() && hex.bytes().all(|c| c.is_ascii_hexdigit() || c == b'_');
    }
    if let Some(oct) = body.strip_prefix('0') {
        return oct.bytes().all(|c| matches!(c, b'0'..=b'7' | b'_'));
    }
    let parts: Vec<&str> = body.split(':').collect();
    decimal_head(parts[0]) && (parts.len() == 1 || sexagesimal_tail(&parts[1..]))
}

/// PyYAML's `construct_yaml_int` after Salt's loader dropped leading zeros (so `010` is 10).
fn yaml_int(text: &str) -> Option<Value> {
    let (negative, body) = strip_sign(text);
    let stripped;
    let body = if body.starts_with('0')
        && body != "0"
        && !body.starts_with("0b")
        && !body.starts_with("0x")
    {
        // Salt's loader only strips when the text itself starts with 0 (not after a sign).
        if text.starts_with('0') {
            stripped = body.trim_start_matches('0');
            if stripped.is_empty() {
                "0"
            } else {
                stripped
            }
        } else {
            body
        }
    } else {
        body
    };
    let digits = body.replace('_', "");
    let magnitude: i128 = if digits == "0" {
        0
    } else if let Some(bin) = digits.strip_prefix("0b") {
        i128::from_str_radix(bin, 2).ok()?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if digits.starts_with('0') {
        i128::from_str_radix(&digits, 8).ok()?
    } else if digits.contains(':') {
        digits.split(':').try_fold(0i128, |acc, part| {
            acc.checked_mul(60)?.checked_add(part.parse::<i128>().ok()?)
        })?
    } else {
        digits.parse::<i128>().ok()?
    };
    let value = if negative { -magnitude } else { magnitude };
    if let Ok(v) = i64::try_from(value) {
        return Some(Value::from(v));
    }
    u64::try_from(value).ok().map(Value::from)
}

/// PyYAML's float regex: `[-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?
/// | \.[0-9][0-9_]*([eE][-+][0-9]+)? | [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
/// | [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN)` (a float needs a dot: `1e5` is a string).
fn is_yaml_float(text: &str) -> bool {
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (_, body) = strip_sign(text);
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    let digits_or_underscore = |s: &str| s.bytes().all(|c| c.is_ascii_digit() || c == b'_');
    let exponent = |s: &str| match s.as_bytes() {
        [] => true,
        [b'e' | b'E', b'-' | b'+', rest @ ..] => {
            !rest.is_empty() && rest.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    let Some((int, frac)) = body.split_once('.') else {
        return false;
    };
    let frac_len = frac.bytes().take_while(|c| c.is_ascii_digit() || *c == b'_').count();
    let (frac_digits, exp) = frac.split_at(frac_len);
    // `.5`: no sign allowed, a digit right after the dot.
    if int.is_empty() {
        return body.len() == text.len()
            && frac_digits.as_bytes().first().is_some_and(u8::is_ascii_digit)
            && exponent(exp);
    }
    let int_digit = int.as_bytes()[0].is_ascii_digit();
    if int_digit && digits_or_underscore(int) {
        return exponent(exp);
    }
    // Sexagesimal: `190:20:30.15`, no exponent.
    let parts: Vec<&str> = int.split(':').collect();
    int_digit && digits_or_underscore(parts[0]) && sexagesimal_tail(&parts[1..]) && exp.is_empty()
}

fn yaml_float(text: &str) -> Option<f64> {
    let lower = text.replace('_', "").to_lowercase();
    let (negative, body) = strip_sign(&lower);
    let magnitude: f64 = if matches!(body, ".inf" | ".nan") {
        body[1..].parse().ok()?
    } else if body.contains(':') {
        body.split(':').try_fold(0f64, |acc, part| Some(acc * 60.0 + part.parse::<f64>().ok()?))?
    } else {
        body.parse().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(arg: &str, expected: Value) {
        assert_eq!(yamlify_arg(arg), expected, "yamlify_arg({arg:?})");
    }

    #[test]
    fn scalars() {
        for (arg, expected) in [
            ("foo", json!("foo")),
            ("", json!("")),
            ("   ", json!("   ")),
            ("\n", json!("\n")),
            ("3", json!(3)),
            ("-3", json!(-3)),
            ("+3", json!(3)),
            ("0", json!(0)),
            ("3.5", json!(3.5)),
            ("-3.5", json!(-3.5)),
            ("1.", json!(1.0)),
            (".5", json!(0.5)),
            ("-.5", json!("-.5")),
            ("1.5e+3", json!(1500.0)),
            ("1.5e3", json!("1.5e3")), // YAML 1.1 needs the exponent sign
            ("1e5", json!("1e5")),     // ... and a dot
            ("1_000.5", json!(1000.5)),
            ("True", json!(true)),
            ("true", json!(true)),
            ("TRUE", json!(true)),
            ("yes", json!(true)),
            ("on", json!(true)),
            ("False", json!(false)),
            ("no", json!(false)),
            ("Off", json!(false)),
            ("tRue", json!("tRue")),
            ("y", json!("y")),
            ("None", json!(null)),
            ("null", json!(null)),
            ("~", json!(null)),
            ("NULL", json!(null)),
            ("none", json!("none")),
            ("007", json!(7)), // Salt's loader drops leading zeros: decimal, not octal
            ("010", json!(10)),
            ("0_7", json!("0_7")),
            ("08", json!("08")), // not an int pattern (8 is no octal digit): a string
            ("00", json!(0)),
            ("-010", json!(-8)), // after a sign Salt's loader leaves it: octal
            ("0x1F", json!(31)),
            ("0b101", json!(5)),
            ("1_000", json!("1_000")), // Salt keeps digits-and-underscores
            ("-1_000", json!(-1000)),
            ("1:30", json!(90)), // YAML 1.1 sexagesimal, as PyYAML
            ("1:30.5", json!(90.5)),
            ("0:30", json!("0:30")),
            ("12:61", json!("12:61")),
            ("9223372036854775807", json!(9223372036854775807i64)),
            ("18446744073709551615", json!(18446744073709551615u64)),
            ("99999999999999999999999", json!("99999999999999999999999")),
            (".inf", json!(".inf")),
            (".nan", json!(".nan")),
            ("2024-05-01", json!("2024-05-01")),
            ("10.0.0.1", json!("10.0.0.1")),
            ("  foo  ", json!("foo")),
            ("hello world", json!("hello world")),
            ("a  b", json!("a  b")),
            ("echo a=b", json!("echo a=b")),
            ("a,b", json!("a,b")),
            ("test,fail", json!("test,fail")),
            ("http://x:8080/y", json!("http://x:8080/y")),
            ("a:b", json!("a:b")),
            ("a]", json!("a]")),
            ("'foo'", json!("foo")),
            ("'it''s'", json!("it's")),
            ("'3'", json!("3")),
            ("\"3\"", json!("3")),
            ("\"a\\tb\\n\\u00e9\\x41\"", json!("a\tb\né\u{41}")),
            ("\"a\\qb\"", json!("\"a\\qb\"")),
            ("'unclosed", json!("'unclosed")),
            ("'a' b", json!("'a' b")),
            ("a\nb", json!("a b")),
            ("a\n\nb", json!("a\nb")),
            ("'a\n  b'", json!("a b")),
            ("-", json!("-")),
            ("- a", json!("- a")),
            ("-a", json!("-a")),
            ("a: b", json!("a: b")),
            ("a:", json!("a:")),
            ("? a", json!("? a")),
            (":a", json!(":a")),
            ("|", json!("|")),
            ("!", json!("!")),
            ("!!str 5", json!("!!str 5")), // tags and anchors are not read: raw (Salt: "5")
            ("&a b", json!("&a b")),       // (Salt: "b")
            ("*a", json!("*a")),
            ("@x", json!("@x")),
            ("%x", json!("%x")),
            ("---", json!(null)),
            ("--- 5", json!(5)),
            ("=", json!("=")),
            ("<<", json!("<<")),
            ("é", json!("é")),
            // A `#` only counts when YAML then gives a non-string.
            ("#", json!("#")),
            ("# x", json!("# x")),
            ("a #b", json!("a #b")),
            ("a#b", json!("a#b")),
            ("5 # five", json!(5)),
            ("[1, 2] # two", json!([1, 2])),
            ("'#'", json!("'#'")),
        ] {
            check(arg, expected);
        }
    }

    #[test]
    fn flow_collections() {
        for (arg, expected) in [
            ("[1, 2]", json!([1, 2])),
            ("[]", json!([])),
            ("[ ]", json!([])),
            ("{}", json!({})),
            ("[a, 1, true, null, 1.5, 'x y', \"z\"]", json!(["a", 1, true, null, 1.5, "x y", "z"])),
            ("[a b, c]", json!(["a b", "c"])),
            ("[1, 2,]", json!([1, 2])),
            ("[1,2]", json!([1, 2])),
            ("[1,\n 2]", json!([1, 2])),
            ("[a, [b, [c]], {d: e}]", json!(["a", ["b", ["c"]], {"d": "e"}])),
            ("[a: 1, b]", json!([{"a": 1}, "b"])),
            ("{a: 1, b: two}", json!({"a": 1, "b": "two"})),
            ("{a: [1, 2], b: {c: d}}", json!({"a": [1, 2], "b": {"c": "d"}})),
            ("{a, b: }", json!({"a": null, "b": null})),
            ("{\"a\":1}", json!({"a": 1})),
            ("{a:1}", json!({"a:1": null})), // PyYAML: no space, no separator
            ("{1: a, false: b, ~: c}", json!({"1": "a", "false": "b", "null": "c"})),
            ("{http://x: y}", json!({"http://x": "y"})),
            ("[a # comment\n, b]", json!(["a", "b"])),
            ("{a: 007}", json!({"a": 7})),
            // Errors keep the raw word.
            ("[1, 2", json!("[1, 2")),
            ("[1,,2]", json!("[1,,2]")),
            ("[,]", json!("[,]")),
            ("[1] x", json!("[1] x")),
            ("[a?b]", json!("[a?b]")),
            ("{a: 1, a: 2}", json!("{a: 1, a: 2}")),
            ("{[a]: 1}", json!("{[a]: 1}")),
            ("{a: 1", json!("{a: 1")),
            ("[*a]", json!("[*a]")),
            (" [1]", json!(" [1]")), // Salt wants the bracket first
            (" {a: 1}", json!(" {a: 1}")),
        ] {
            check(arg, expected);
        }
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        check(&deep, json!(deep));
        let ok = format!("{}1{}", "[".repeat(10), "]".repeat(10));
        assert!(yamlify_arg(&ok).is_array());
    }

    #[test]
    fn plain_typing() {
        for (text, string) in [
            ("foo", true),
            ("", false),
            ("true", false),
            ("No", false),
            ("y", true),
            ("12", false),
            ("012", false),
            ("08", true),
            ("1:30", false),
            ("1.5", false),
            ("1e5", true),
            (".inf", false),
            ("=", false),
            ("<<", false),
            ("2024-05-01", false),
            ("2024-5-1", true),
            ("2024-05-01T10:00:00", false),
            ("2024-5-1 1:00:00.5 +01:00", false),
            ("2024-05-01t10:00:00Z", false),
            ("2024-05-01 10:00", true),
            ("10.0.0.1", true),
        ] {
            assert_eq!(plain_is_string(text), string, "{text:?}");
        }
    }

    #[test]
    fn cli_args() {
        let args = |words: &[&str]| {
            parse_cli_args(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(args(&[]), Vec::<Value>::new());
        assert_eq!(args(&["echo hi"]), vec![json!("echo hi")]);
        assert_eq!(
            args(&["3", "True", "[1, 2]", ""]),
            vec![json!(3), json!(true), json!([1, 2]), json!("")]
        );
        assert_eq!(
            args(&["test,fail", "test=True"]),
            vec![json!("test,fail"), json!({"__kwarg__": true, "test": true})]
        );
        let got = args(&["a=1", "x", "b=[1]", "a=2", "c=", "d=x=y"]);
        assert_eq!(
            got,
            vec![json!("x"), json!({"__kwarg__": true, "a": 2, "b": [1], "c": "", "d": "x=y"})]
        );
        let keys: Vec<&String> = got[1].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["__kwarg__", "a", "b", "c", "d"]);
        // A jid-looking integer stays a string (positional only).
        assert_eq!(
            args(&["12345678901234567890", "123", "jid=12345678901234567890"]),
            vec![
                json!("12345678901234567890"),
                json!(123),
                json!({"__kwarg__": true, "jid": 12345678901234567890u64})
            ]
        );
    }
}
