//! Salt targeting: whether a job's `tgt` / `tgt_type` (glob, pcre, list, grain, grain_pcre,
//! compound) selects a minion, judged from its id and, when known, its grains. Pure: the master
//! uses it to compute the expected minions and publishes only to those.

use crate::glob::{self, Glob};
use crate::logging::clip;
use crate::pyrepr::python_str;
use regex::Regex;
use serde_json::{Map, Value};
use std::fmt;

/// Longest target accepted, in bytes (a list target counts all its ids).
pub const MAX_TARGET_BYTES: usize = 64 * 1024;
/// Most words in a compound expression.
pub const MAX_COMPOUND_WORDS: usize = 1000;
/// Deepest nesting of `(` and `not` in a compound expression.
pub const MAX_COMPOUND_DEPTH: usize = 64;
/// Most delimiters in one grain expression (each one is a key prefix to try).
const MAX_GRAIN_DELIMITERS: usize = 64;
/// Most regular expressions one target compiles (`pcre`, each `E@`, each value a `P@`/`J@` or
/// grain_pcre expression can split into, each glob with a `[class]`). A compile costs 0.1–2 ms
/// (within [`glob::REGEX_SIZE_LIMIT`]) on the master's loop: without a bound, a compound target
/// of 500 `E@\w{20}` words (from a reaction fed with event data) held it for seconds.
pub const MAX_TARGET_REGEXES: usize = 32;
/// Steps one grain match may take over a minion's grains before it gives up (no match):
/// bounds the work a hostile grain tree or expression can cause.
const GRAIN_MATCH_BUDGET: usize = 10_000;

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// A `tgt_type` Halite does not know.
    UnknownType(String),
    /// A regular expression that does not compile (pcre, `E@`, `P@`, grain_pcre).
    BadRegex { pattern: String, message: String },
    /// A malformed compound expression.
    BadCompound { expr: String, message: String },
    /// A grain expression without a `key:value` shape.
    BadGrain(String),
    /// An empty target (or a list with no ids).
    Empty,
    /// Over [`MAX_TARGET_BYTES`] bytes or [`MAX_COMPOUND_WORDS`] words.
    TooLarge { what: &'static str, len: usize, max: usize },
    /// `tgt` of the wrong JSON type for its `tgt_type` (only "list" takes a JSON list).
    BadValue(String),
    /// Over [`MAX_TARGET_REGEXES`] regular expressions to compile.
    TooManyRegexes,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::UnknownType(t) => write!(
                f,
                "unknown target type '{t}' (use glob, pcre, list, grain, grain_pcre or compound)"
            ),
            TargetError::BadRegex { pattern, message } => {
                write!(f, "invalid regular expression '{}': {message}", clip(pattern))
            }
            TargetError::BadCompound { expr, message } => {
                write!(f, "invalid compound target '{}': {message}", clip(expr))
            }
            TargetError::BadGrain(message) => write!(f, "invalid grain target: {message}"),
            TargetError::Empty => f.write_str("empty target"),
            TargetError::TooLarge { what, len, max } => {
                write!(f, "target too large: {len} {what}, over {max}")
            }
            TargetError::BadValue(message) => write!(f, "invalid target: {message}"),
            TargetError::TooManyRegexes => write!(
                f,
                "target too large: over {MAX_TARGET_REGEXES} regular expressions (E@, P@, J@, \
                 pcre, grain_pcre, globs with [classes]) to compile"
            ),
        }
    }
}

impl std::error::Error for TargetError {}

/// A parsed, validated target.
#[derive(Debug, Clone)]
pub struct Target {
    node: Node,
}

#[derive(Debug, Clone)]
enum Node {
    Glob(GlobPattern),
    Pcre(Regex),
    List(Vec<String>),
    Grain(GrainMatch),
    /// `I@`/`J@`, tgt_type `pillar`/`pillar_pcre`: Salt's `subdict_match` on the pillar.
    Pillar(GrainMatch),
    Not(Box<Node>),
    All(Vec<Node>),
    Any(Vec<Node>),
}

impl Target {
    /// `tgt` as a JSON value: a string, or (for "list") a list of strings or a comma-separated
    /// string. `tgt_type` is Salt's name: "glob", "pcre", "list", "grain", "grain_pcre",
    /// "compound".
    pub fn parse(tgt: &Value, tgt_type: &str) -> Result<Target, TargetError> {
        let compiles = &mut Compiles(0);
        let text = || text_target(tgt, tgt_type);
        let node = match tgt_type {
            "glob" => Node::Glob(GlobPattern::new(text()?, compiles)?),
            "pcre" => Node::Pcre(compile_pcre(text()?, compiles)?),
            "list" => Node::List(list_target(tgt)?),
            "grain" => Node::Grain(GrainMatch::new(text()?, ":", false, compiles)?),
            "grain_pcre" => Node::Grain(GrainMatch::new(text()?, ":", true, compiles)?),
            "pillar" => Node::Pillar(GrainMatch::new(text()?, ":", false, compiles)?),
            "pillar_pcre" => Node::Pillar(GrainMatch::new(text()?, ":", true, compiles)?),
            "compound" => parse_compound(text()?, compiles)?,
            other => return Err(TargetError::UnknownType(other.to_string())),
        };
        Ok(Target { node })
    }

    /// Whether minion `id` with these grains (None = unknown) is targeted. Grain terms never
    /// match unknown grains (so `not G@...` does).
    pub fn matches(&self, id: &str, grains: Option<&Map<String, Value>>) -> bool {
        self.node.matches(id, &Data { grains, pillar: None })
    }

    /// [`Target::matches`] with the minion's compiled pillar too (None = unknown): pillar
    /// terms never match an unknown pillar (so `not I@...` does).
    pub fn matches_with(
        &self,
        id: &str,
        grains: Option<&Map<String, Value>>,
        pillar: Option<&Map<String, Value>>,
    ) -> bool {
        self.node.matches(id, &Data { grains, pillar })
    }

    /// The only ids this target can match, when it names them: a glob without magic
    /// characters or a list. The master then looks them up instead of testing every minion.
    pub fn exact_ids(&self) -> Option<Vec<&str>> {
        match &self.node {
            Node::Glob(GlobPattern::Exact(id)) => Some(vec![id.as_str()]),
            Node::List(ids) => Some(ids.iter().map(String::as_str).collect()),
            _ => None,
        }
    }

    /// Whether the answer depends on grains (the master may then have to guess for minions
    /// whose grains it has not cached yet).
    pub fn uses_grains(&self) -> bool {
        self.node.uses(&|node| matches!(node, Node::Grain(_)))
    }

    /// Whether the answer depends on the minions' pillar (`I@`, `J@`, `pillar`).
    pub fn uses_pillar(&self) -> bool {
        self.node.uses(&|node| matches!(node, Node::Pillar(_)))
    }
}

/// What a target is matched against besides the id.
struct Data<'a> {
    grains: Option<&'a Map<String, Value>>,
    pillar: Option<&'a Map<String, Value>>,
}

impl Node {
    fn matches(&self, id: &str, data: &Data) -> bool {
        match self {
            Node::Glob(glob) => glob.is_match(id),
            Node::Pcre(regex) => regex.is_match(id),
            Node::List(ids) => ids.iter().any(|listed| listed == id),
            Node::Grain(grain) => data.grains.is_some_and(|g| grain.matches(g)),
            Node::Pillar(pillar) => data.pillar.is_some_and(|p| pillar.matches(p)),
            Node::Not(inner) => !inner.matches(id, data),
            Node::All(nodes) => nodes.iter().all(|n| n.matches(id, data)),
            Node::Any(nodes) => nodes.iter().any(|n| n.matches(id, data)),
        }
    }

    /// Whether this node or one inside it is a `term`.
    fn uses(&self, term: &dyn Fn(&Node) -> bool) -> bool {
        match self {
            Node::Not(inner) => inner.uses(term),
            Node::All(nodes) | Node::Any(nodes) => nodes.iter().any(|n| n.uses(term)),
            leaf => term(leaf),
        }
    }
}

/// The string form of a target, bounded and non-blank.
fn text_target<'a>(tgt: &'a Value, tgt_type: &str) -> Result<&'a str, TargetError> {
    let Value::String(text) = tgt else {
        return Err(TargetError::BadValue(format!(
            "a {tgt_type} target must be a string, not {}",
            json_type(tgt)
        )));
    };
    check_size(text.len())?;
    if text.trim().is_empty() {
        return Err(TargetError::Empty);
    }
    Ok(text)
}

fn check_size(len: usize) -> Result<(), TargetError> {
    if len > MAX_TARGET_BYTES {
        return Err(TargetError::TooLarge { what: "bytes", len, max: MAX_TARGET_BYTES });
    }
    Ok(())
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A list target: `"a,b"` (split on commas, empty pieces dropped, no trimming — as Salt) or
/// `["a", "b"]`.
fn list_target(tgt: &Value) -> Result<Vec<String>, TargetError> {
    let ids: Vec<String> = match tgt {
        Value::String(text) => {
            check_size(text.len())?;
            split_list(text)
        }
        Value::Array(items) => {
            check_size(items.iter().map(|i| i.as_str().map_or(0, str::len) + 1).sum())?;
            let mut ids = Vec::with_capacity(items.len());
            for item in items {
                let Value::String(id) = item else {
                    return Err(TargetError::BadValue(format!(
                        "a list target holds strings, not {}",
                        json_type(item)
                    )));
                };
                if !id.is_empty() {
                    ids.push(id.clone());
                }
            }
            ids
        }
        other => {
            return Err(TargetError::BadValue(format!(
                "a list target must be a string or a list, not {}",
                json_type(other)
            )))
        }
    };
    if ids.is_empty() {
        return Err(TargetError::Empty);
    }
    Ok(ids)
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',').filter(|s| !s.is_empty()).map(String::from).collect()
}

/// How many regular expressions a target has compiled so far, against [`MAX_TARGET_REGEXES`].
struct Compiles(usize);

impl Compiles {
    /// Counts one more compile, or refuses it.
    fn one(&mut self) -> Result<(), TargetError> {
        self.0 += 1;
        match self.0 > MAX_TARGET_REGEXES {
            true => Err(TargetError::TooManyRegexes),
            false => Ok(()),
        }
    }
}

/// Python `re.match`: anchored at the start of the id only.
fn compile_pcre(pattern: &str, compiles: &mut Compiles) -> Result<Regex, TargetError> {
    compiles.one()?;
    compile_anchored(pattern)
        .map_err(|message| TargetError::BadRegex { pattern: pattern.to_string(), message })
}

fn compile_anchored(pattern: &str) -> Result<Regex, String> {
    glob::wrapped_regex("^(?:", pattern, ")", glob::REGEX_SIZE_LIMIT).map_err(|e| e.to_string())
}

/// An fnmatch pattern; patterns without magic characters compare as plain strings.
#[derive(Debug, Clone)]
enum GlobPattern {
    Exact(String),
    Glob(Glob),
}

impl GlobPattern {
    fn new(pattern: &str, compiles: &mut Compiles) -> Result<GlobPattern, TargetError> {
        if glob::compiles(pattern) {
            compiles.one()?;
        }
        Ok(GlobPattern::of(pattern))
    }

    /// Uncounted: for [`GrainMatch::value_match`]'s fallback, which the patterns compiled
    /// ahead should leave unused.
    fn of(pattern: &str) -> GlobPattern {
        match glob::has_magic(pattern) {
            true => GlobPattern::Glob(Glob::new(pattern)),
            false => GlobPattern::Exact(pattern.to_string()),
        }
    }

    fn is_match(&self, name: &str) -> bool {
        match self {
            GlobPattern::Exact(text) => text == name,
            GlobPattern::Glob(glob) => glob.is_match(name),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Grains: Salt's `subdict_match`.

/// `key:value` against the grains, as Salt's `salt.utils.data.subdict_match`: the key is a
/// delimiter path into nested maps (numeric parts index lists), longer keys are tried first so
/// `a:b:c` matches `{"a": {"b": "c"}}` before `{"a": "b:c"}`; a list matches if any member does;
/// the value is an fnmatch glob (or a start-anchored regex for `P@`/grain_pcre), and both sides
/// are compared lower-cased.
#[derive(Debug, Clone)]
struct GrainMatch {
    expr: String,
    delimiter: String,
    regex: bool,
    /// Every value pattern the expression can produce (the text after each delimiter), compiled.
    patterns: Vec<(String, ValuePattern)>,
}

#[derive(Debug, Clone)]
enum ValuePattern {
    Glob(GlobPattern),
    /// None: not a valid regex (that split of the expression can never match).
    Regex(Option<Regex>),
}

impl ValuePattern {
    fn new(pattern: &str, regex: bool) -> ValuePattern {
        let lower = pattern.to_lowercase();
        match regex {
            true => ValuePattern::Regex(compile_anchored(&lower).ok()),
            false => ValuePattern::Glob(GlobPattern::of(&lower)),
        }
    }

    fn is_match(&self, text: &str) -> bool {
        match self {
            ValuePattern::Glob(glob) => glob.is_match(text),
            ValuePattern::Regex(regex) => regex.as_ref().is_some_and(|r| r.is_match(text)),
        }
    }
}

impl GrainMatch {
    fn new(
        expr: &str,
        delimiter: &str,
        regex: bool,
        compiles: &mut Compiles,
    ) -> Result<GrainMatch, TargetError> {
        let delimiters = expr.matches(delimiter).count();
        if delimiters == 0 {
            return Err(TargetError::BadGrain(format!(
                "'{}' is not <grain>{delimiter}<value>",
                clip(expr)
            )));
        }
        if delimiters > MAX_GRAIN_DELIMITERS {
            return Err(TargetError::BadGrain(format!(
                "'{}' has {delimiters} '{delimiter}', over {MAX_GRAIN_DELIMITERS}",
                clip(expr)
            )));
        }
        if expr.starts_with(delimiter) {
            return Err(TargetError::BadGrain(format!(
                "'{}' has no grain name before '{delimiter}'",
                clip(expr)
            )));
        }
        let splits: Vec<&str> = expr.split(delimiter).collect();
        let mut patterns: Vec<(String, ValuePattern)> = Vec::new();
        for idx in 1..splits.len() {
            // Each value the match can test: the text after a delimiter, and that text with
            // each leading `*:` taken off (`dict_match` does, whatever the delimiter).
            let mut pattern = splits[idx..].join(delimiter);
            loop {
                if patterns.iter().all(|(p, _)| *p != pattern) {
                    if regex || glob::compiles(&pattern) {
                        compiles.one()?;
                    }
                    let compiled = ValuePattern::new(&pattern, regex);
                    patterns.push((pattern.clone(), compiled));
                }
                match pattern.strip_prefix("*:") {
                    Some(rest) => pattern = rest.to_string(),
                    None => break,
                }
            }
        }
        if regex && patterns.iter().all(|(_, p)| matches!(p, ValuePattern::Regex(None))) {
            // No split of the expression gives a usable regex: report the likeliest intent,
            // everything after the first delimiter.
            let pattern = splits[1..].join(delimiter);
            let message = compile_anchored(&pattern.to_lowercase()).err().unwrap_or_default();
            return Err(TargetError::BadRegex { pattern, message });
        }
        Ok(GrainMatch { expr: expr.to_string(), delimiter: delimiter.to_string(), regex, patterns })
    }

    fn matches(&self, grains: &Map<String, Value>) -> bool {
        let mut budget = GRAIN_MATCH_BUDGET;
        self.subdict_match(grains, &self.expr, &mut budget)
    }

    fn subdict_match(&self, data: &Map<String, Value>, expr: &str, budget: &mut usize) -> bool {
        if !spend(budget) {
            return false;
        }
        let splits: Vec<&str> = expr.split(self.delimiter.as_str()).collect();
        // Longest key first: `a:b:c` tries key `a:b` (value `c`), then key `a` (value `b:c`).
        for idx in (1..splits.len()).rev() {
            let key = splits[..idx].join(&self.delimiter);
            let (pattern, found) = match key.as_str() {
                "*" => (expr.to_string(), Some(Found::Map(data))),
                _ => (
                    splits[idx..].join(&self.delimiter),
                    self.traverse(data, &key).map(Found::Value),
                ),
            };
            let matched = match found {
                None => false,
                Some(Found::Map(map)) => self.dict_match(map, &pattern, budget),
                Some(Found::Value(Value::Object(map))) if map.is_empty() => false,
                Some(Found::Value(Value::Object(map))) => self.dict_match(map, &pattern, budget),
                Some(Found::Value(Value::Array(members))) => members.iter().any(|member| {
                    matches!(member, Value::Object(m) if self.dict_match(m, &pattern, budget))
                        || self.value_match(member, &pattern)
                }),
                Some(Found::Value(value)) => self.value_match(value, &pattern),
            };
            if matched {
                return true;
            }
        }
        false
    }

    /// Salt's `_dict_match`: the pattern names a key of the map, or matches below it; a leading
    /// `*:` searches every value of the map.
    fn dict_match(&self, target: &Map<String, Value>, pattern: &str, budget: &mut usize) -> bool {
        if !spend(budget) {
            return false;
        }
        let (wildcard, pattern) = match pattern.strip_prefix("*:") {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        if pattern == "*" || target.contains_key(pattern) {
            return true;
        }
        if self.subdict_match(target, pattern, budget) {
            return true;
        }
        wildcard
            && target.values().any(|value| match value {
                Value::Object(map) => self.dict_match(map, pattern, budget),
                Value::Array(items) => items.iter().any(|item| self.value_match(item, pattern)),
                other => self.value_match(other, pattern),
            })
    }

    fn traverse<'a>(&self, data: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
        traverse_dict_and_list(data, key, &self.delimiter)
    }

    /// Salt's `_match`: `str(target).lower()` against the lower-cased pattern.
    fn value_match(&self, target: &Value, pattern: &str) -> bool {
        let text = python_str(target).to_lowercase();
        match self.patterns.iter().find(|(p, _)| p == pattern) {
            Some((_, compiled)) => compiled.is_match(&text),
            None => ValuePattern::new(pattern, self.regex).is_match(&text),
        }
    }
}

enum Found<'a> {
    Map(&'a Map<String, Value>),
    Value(&'a Value),
}

fn spend(budget: &mut usize) -> bool {
    match budget.checked_sub(1) {
        Some(left) => {
            *budget = left;
            true
        }
        None => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Compound expressions: Salt's `compound_match`.

#[derive(Debug, Clone)]
enum Token {
    And,
    Or,
    Not,
    Open,
    Close,
    Term(Node),
}

/// Words split on whitespace (so parentheses are words of their own, as Salt requires);
/// `and`, `or`, `not`, `(`, `)`; `G@`/`P@` grain glob/regex (`G<d>@` picks delimiter `d`),
/// `E@` regex on the id, `L@` comma list, anything else a glob. `not` binds tightest, then
/// `and`, then `or`; `a not b` means `a and not b` (Salt inserts the `and`); two targets with
/// no operator between them are an error.
fn parse_compound(expr: &str, compiles: &mut Compiles) -> Result<Node, TargetError> {
    let words: Vec<&str> = expr.split_whitespace().collect();
    if words.len() > MAX_COMPOUND_WORDS {
        return Err(TargetError::TooLarge {
            what: "words",
            len: words.len(),
            max: MAX_COMPOUND_WORDS,
        });
    }
    let mut tokens: Vec<(Token, &str)> = Vec::with_capacity(words.len() + 4);
    for word in words {
        let token = match word {
            "and" => Token::And,
            "or" => Token::Or,
            "not" => Token::Not,
            "(" => Token::Open,
            ")" => Token::Close,
            _ => Token::Term(parse_term(word, expr, compiles)?),
        };
        if matches!(token, Token::Not)
            && matches!(tokens.last(), Some((Token::Term(_) | Token::Close, _)))
        {
            tokens.push((Token::And, "and"));
        }
        tokens.push((token, word));
    }
    let mut parser = Parser { expr, tokens, pos: 0, depth: 0 };
    let node = parser.or()?;
    match parser.tokens.get(parser.pos) {
        None => Ok(node),
        Some((Token::Close, _)) => Err(parser.error("')' without a matching '('".into())),
        Some((_, word)) => {
            let word = word.to_string();
            Err(parser.error(format!("missing 'and' or 'or' before '{word}'")))
        }
    }
}

/// One word of a compound expression: an engine term or a glob.
fn parse_term(word: &str, expr: &str, compiles: &mut Compiles) -> Result<Node, TargetError> {
    let bad = |message: String| TargetError::BadCompound { expr: expr.to_string(), message };
    let Some((engine, delimiter, pattern)) = split_engine(word) else {
        if word.starts_with('(') || word.ends_with(')') {
            return Err(bad(format!(
                "'{word}': parentheses must be separate words, e.g. '( a or b ) and c'"
            )));
        }
        return Ok(Node::Glob(GlobPattern::new(word, compiles)?));
    };
    let mut delimiter_buf = [0u8; 4];
    let delimiter: &str = match delimiter {
        Some(d) => d.encode_utf8(&mut delimiter_buf),
        None => ":",
    };
    match engine {
        'G' => Ok(Node::Grain(GrainMatch::new(pattern, delimiter, false, compiles)?)),
        'P' => Ok(Node::Grain(GrainMatch::new(pattern, delimiter, true, compiles)?)),
        'I' => Ok(Node::Pillar(GrainMatch::new(pattern, delimiter, false, compiles)?)),
        'J' => Ok(Node::Pillar(GrainMatch::new(pattern, delimiter, true, compiles)?)),
        'E' => Ok(Node::Pcre(compile_pcre(pattern, compiles)?)),
        'L' => match split_list(pattern) {
            ids if ids.is_empty() => Err(bad(format!("'{word}' lists no minion"))),
            ids => Ok(Node::List(ids)),
        },
        other => {
            let what = match other {
                'S' => "subnet",
                'N' => "nodegroup",
                _ => "range",
            };
            Err(bad(format!("{other}@ ({what}) targeting is not supported")))
        }
    }
}

/// Salt's `parse_target`: `<engine>[<delimiter>]@<pattern>`, engine one of G P I J L N S E R
/// (a delimiter only after G P I J); a word not of this shape is a glob.
fn split_engine(word: &str) -> Option<(char, Option<char>, &str)> {
    let mut chars = word.char_indices();
    let (_, engine) = chars.next()?;
    if !"GPIJLNSER".contains(engine) {
        return None;
    }
    let (i1, c1) = chars.next()?;
    if "GPIJ".contains(engine) {
        if let Some((i2, '@')) = chars.next() {
            let rest = &word[i2 + 1..];
            if !rest.is_empty() {
                return Some((engine, Some(c1), rest));
            }
        }
    }
    let rest = &word[i1 + c1.len_utf8()..];
    (c1 == '@' && !rest.is_empty()).then_some((engine, None, rest))
}

struct Parser<'a> {
    expr: &'a str,
    tokens: Vec<(Token, &'a str)>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, message: String) -> TargetError {
        TargetError::BadCompound { expr: self.expr.to_string(), message }
    }

    fn eat(&mut self, want: fn(&Token) -> bool) -> bool {
        let hit = self.tokens.get(self.pos).is_some_and(|(t, _)| want(t));
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn enter(&mut self) -> Result<(), TargetError> {
        self.depth += 1;
        match self.depth > MAX_COMPOUND_DEPTH {
            true => Err(self
                .error(format!("nested deeper than {MAX_COMPOUND_DEPTH} levels of '(' and 'not'"))),
            false => Ok(()),
        }
    }

    fn or(&mut self) -> Result<Node, TargetError> {
        let mut nodes = vec![self.and()?];
        while self.eat(|t| matches!(t, Token::Or)) {
            nodes.push(self.and()?);
        }
        Ok(match nodes.len() {
            1 => nodes.pop().expect("one node"),
            _ => Node::Any(nodes),
        })
    }

    fn and(&mut self) -> Result<Node, TargetError> {
        let mut nodes = vec![self.not()?];
        while self.eat(|t| matches!(t, Token::And)) {
            nodes.push(self.not()?);
        }
        Ok(match nodes.len() {
            1 => nodes.pop().expect("one node"),
            _ => Node::All(nodes),
        })
    }

    fn not(&mut self) -> Result<Node, TargetError> {
        if !self.eat(|t| matches!(t, Token::Not)) {
            return self.primary();
        }
        self.enter()?;
        let inner = self.not()?;
        self.depth -= 1;
        Ok(Node::Not(Box::new(inner)))
    }

    fn primary(&mut self) -> Result<Node, TargetError> {
        let Some((token, word)) = self.tokens.get(self.pos) else {
            return Err(self.error("ends where a target was expected".into()));
        };
        let word = word.to_string();
        self.pos += 1;
        match token {
            Token::Term(node) => Ok(node.clone()),
            Token::Open => {
                self.enter()?;
                let inner = self.or()?;
                if !self.eat(|t| matches!(t, Token::Close)) {
                    return Err(self.error("'(' without a matching ')'".into()));
                }
                self.depth -= 1;
                Ok(inner)
            }
            Token::Close => Err(self.error("')' where a target was expected".into())),
            Token::And | Token::Or | Token::Not => {
                Err(self.error(format!("'{word}' where a target was expected")))
            }
        }
    }
}

/// Salt's `traverse_dict_and_list`: walks `key` (`delimiter`-separated) through maps, and
/// through lists by index (negative from the end) or by the first embedded map holding the
/// key; `None` where Salt would return its default. Grain targets and `pillar.get` use it.
pub fn traverse_dict_and_list<'a>(
    data: &'a Map<String, Value>,
    key: &str,
    delimiter: &str,
) -> Option<&'a Value> {
    let mut parts = key.split(delimiter);
    let mut ptr = data.get(parts.next()?)?;
    for part in parts {
        ptr = match ptr {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => match part.trim().parse::<i64>() {
                Ok(index) => {
                    let len = items.len() as i64;
                    let at = if index < 0 { len + index } else { index };
                    items.get(usize::try_from(at).ok()?)?
                }
                Err(_) => items.iter().find_map(|item| item.as_object()?.get(part))?,
            },
            _ => return None,
        };
    }
    Some(ptr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grains() -> Map<String, Value> {
        json!({
            "os": "Debian",
            "os_family": "Debian",
            "osrelease": "12",
            "num_cpus": 4,
            "virtual": "kvm",
            "empty": {},
            "roles": ["web", "db"],
            "ipv6": ["::1", "fe80::1"],
            "ssd": true,
            "kernel": {"name": "Linux", "release": "6.1.0"},
            "url": "http://a:b",
            "disks": [{"name": "sda", "size": 100}, {"name": "sdb"}],
            "time": "10:30"
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[track_caller]
    fn check(tgt: Value, tgt_type: &str, cases: &[(&str, bool)]) {
        let target = Target::parse(&tgt, tgt_type)
            .unwrap_or_else(|e| panic!("{tgt} ({tgt_type}) refused: {e}"));
        let g = grains();
        for (id, expected) in cases {
            assert_eq!(target.matches(id, Some(&g)), *expected, "{tgt} ({tgt_type}) on {id}");
        }
    }

    #[track_caller]
    fn check_grain(expr: &str, tgt_type: &str, expected: bool) {
        let target = Target::parse(&json!(expr), tgt_type)
            .unwrap_or_else(|e| panic!("{expr} ({tgt_type}) refused: {e}"));
        assert_eq!(target.matches("m1", Some(&grains())), expected, "{expr} ({tgt_type})");
        assert!(!target.matches("m1", None), "{expr}: unknown grains never match");
        assert!(target.uses_grains());
    }

    #[test]
    fn only_targets_that_name_their_ids_give_them() {
        let parse = |tgt: Value, kind| Target::parse(&tgt, kind).unwrap();
        assert_eq!(parse("web1".into(), "glob").exact_ids(), Some(vec!["web1"]));
        assert_eq!(parse("a,b".into(), "list").exact_ids(), Some(vec!["a", "b"]));
        assert_eq!(parse("web*".into(), "glob").exact_ids(), None);
        assert_eq!(parse("web[12]".into(), "glob").exact_ids(), None);
        assert_eq!(parse("web1".into(), "pcre").exact_ids(), None);
        assert_eq!(parse("web1 or db1".into(), "compound").exact_ids(), None);
    }

    #[test]
    fn glob() {
        check(json!("*"), "glob", &[("web1", true), ("", true)]);
        check(
            json!("web*"),
            "glob",
            &[("web1", true), ("web", true), ("db1", false), ("aweb1", false)],
        );
        check(json!("web?"), "glob", &[("web1", true), ("web10", false)]);
        check(json!("web[12]"), "glob", &[("web1", true), ("web3", false)]);
        check(json!("web[!12]"), "glob", &[("web1", false), ("web3", true)]);
        check(json!("Web1"), "glob", &[("web1", false), ("Web1", true)]);
        check(json!("a.b"), "glob", &[("a.b", true), ("axb", false)]);
    }

    #[test]
    fn pcre_is_anchored_at_the_start_only() {
        check(json!("web"), "pcre", &[("web1", true), ("web", true), ("aweb", false)]);
        check(json!("web\\d+$"), "pcre", &[("web12", true), ("web12x", false)]);
        check(json!("(web|db)1"), "pcre", &[("db1", true), ("web1x", true), ("x1", false)]);
        check(json!(".*1"), "pcre", &[("web1", true), ("web2", false)]);
        check(json!("a|b"), "pcre", &[("bx", true), ("xa", false)]);
    }

    #[test]
    fn list() {
        check(
            json!("web1,db1"),
            "list",
            &[("web1", true), ("db1", true), ("web", false), ("web1,db1", false)],
        );
        check(json!(["web1", "db1"]), "list", &[("db1", true), ("x", false)]);
        check(json!("web1"), "list", &[("web1", true), ("web2", false)]);
        check(json!(",web1,,"), "list", &[("web1", true), ("", false)]);
        // No trimming, as Salt: " db1" is another id.
        check(json!("web1, db1"), "list", &[("db1", false), (" db1", true)]);
        check(json!("web*"), "list", &[("web1", false), ("web*", true)]);
    }

    #[test]
    fn grain_glob() {
        for (expr, expected) in [
            ("os:Debian", true),
            ("os:debian", true),  // case-insensitive, as Salt
            ("OS:Debian", false), // ... but keys are exact
            ("os:Deb*", true),
            ("os:Ubuntu", false),
            ("os_family:D?bian", true),
            ("roles:web", true),
            ("roles:db", true),
            ("roles:mail", false),
            ("roles:w*", true),
            ("num_cpus:4", true),
            ("num_cpus:[3-5]", true),
            ("ssd:True", true),
            ("ssd:true", true),
            ("kernel:name:Linux", true),
            ("kernel:name:linux", true),
            ("kernel:release:6.*", true),
            ("kernel:name", true), // key exists in the map
            ("kernel:nope", false),
            ("kernel:*", true),
            ("url:http://a:b", true), // key `url` then value `http://a:b`
            ("url:http*", true),
            ("ipv6:fe80::1", true),
            ("ipv6:::1", true),
            ("disks:name:sdb", true), // list of maps: first map holding the key
            ("disks:0:name:sda", true),
            ("disks:1:name:sdb", true),
            ("disks:-1:name:sdb", true),
            ("disks:5:name:sda", false),
            ("disks:sda", false),
            ("time:10:30", true),
            ("empty:*", false), // an empty map never matches
            ("missing:*", false),
            ("*:Debian", true), // `*` key: any top-level value
            ("*:kvm", true),
            ("*:nothing", false),
            ("*:web", true),
            ("*:Linux", false), // `*:` looks one level down only
            ("*:release", true),
        ] {
            check_grain(expr, "grain", expected);
        }
    }

    #[test]
    fn grain_pcre() {
        for (expr, expected) in [
            ("os:(Debian|Ubuntu)", true),
            ("os:deb", true), // start-anchored, lower-cased
            ("os:ebian", false),
            ("os:Debian$", true),
            ("roles:d.", true),
            ("kernel:release:6\\.1", true),
            ("num_cpus:[0-9]+", true),
            ("osrelease:1[0-1]", false),
        ] {
            check_grain(expr, "grain_pcre", expected);
        }
        // One split compiles (`(name:linux)`), the other (`linux)`) does not: accepted.
        check_grain("kernel:(name:linux)", "grain_pcre", false);
        check_grain("time:10:3.", "grain_pcre", true);
    }

    #[test]
    fn grain_match_is_bounded() {
        // A deep grain tree and a long expression: no blow-up, just an answer.
        let mut deep = json!("leaf");
        for _ in 0..100 {
            deep = json!({ "a": deep });
        }
        let mut grains = Map::new();
        grains.insert("a".into(), deep);
        let expr = format!("*:{}", vec!["a"; 60].join(":"));
        let target = Target::parse(&json!(expr), "grain").unwrap();
        assert!(target.matches("m", Some(&grains)));
        let expr = format!("a:{}:leaf", vec!["a"; 60].join(":"));
        let target = Target::parse(&json!(expr), "grain").unwrap();
        assert!(!target.matches("m", Some(&grains)));
        // `*:` at every level over a wide tree would try every path: the budget stops it.
        let mut wide = json!("leaf");
        for _ in 0..5 {
            let level: Map<String, Value> =
                (0..8).map(|i| (format!("k{i}"), wide.clone())).collect();
            wide = Value::Object(level);
        }
        let grains = wide.as_object().unwrap();
        let expr = format!("{}nomatch", "*:".repeat(40));
        let target = Target::parse(&json!(expr), "grain").unwrap();
        assert!(!target.matches("m", Some(grains)));
    }

    #[test]
    fn compound() {
        let ids = ["web1", "web2", "db1", "mail"];
        for (expr, expected) in [
            ("web*", vec!["web1", "web2"]),
            ("web* and G@os:Debian", vec!["web1", "web2"]),
            ("web* and G@os:Ubuntu", vec![]),
            ("web* or db1", vec!["web1", "web2", "db1"]),
            ("web* and not web2", vec!["web1"]),
            ("web* not web2", vec!["web1"]), // Salt inserts the `and`
            ("not web*", vec!["db1", "mail"]),
            ("not not web1", vec!["web1"]),
            ("E@^(web|db)1$", vec!["web1", "db1"]),
            ("E@web", vec!["web1", "web2"]),
            ("L@web2,mail", vec!["web2", "mail"]),
            ("L@web2,mail and not mail", vec!["web2"]),
            ("G@roles:web and E@db", vec!["db1"]),
            ("P@os:(Debian|Ubuntu) and L@mail", vec!["mail"]),
            ("G;@kernel;name;Linux and mail", vec!["mail"]),
            ("G@@os@Debian and mail", vec!["mail"]),
            // `not` binds tighter than `and`, `and` tighter than `or`.
            ("db1 or web1 and mail", vec!["db1"]),
            ("( db1 or web1 ) and web*", vec!["web1"]),
            ("db1 or not web* and not db1", vec!["db1", "mail"]),
            ("not ( web1 or db1 )", vec!["web2", "mail"]),
            ("( ( web1 ) )", vec!["web1"]),
            ("X@web1", vec![]), // not an engine: a glob
            ("G@", vec![]),     // no pattern: a glob
            ("  web1   or\tdb1 ", vec!["web1", "db1"]),
        ] {
            let target = Target::parse(&json!(expr), "compound")
                .unwrap_or_else(|e| panic!("{expr} refused: {e}"));
            let got: Vec<&str> =
                ids.iter().copied().filter(|id| target.matches(id, Some(&grains()))).collect();
            assert_eq!(got, expected, "{expr}");
        }
        let target = Target::parse(&json!("web* and not G@os:Ubuntu"), "compound").unwrap();
        assert!(target.uses_grains());
        assert!(target.matches("web1", None)); // unknown grains: the G@ term is false
        let target = Target::parse(&json!("web* and G@os:Debian"), "compound").unwrap();
        assert!(!target.matches("web1", None));
        let target = Target::parse(&json!("web* or db*"), "compound").unwrap();
        assert!(!target.uses_grains());
        assert!(target.matches("db1", None));
    }

    #[test]
    fn pillar_terms_match_the_compiled_pillar_like_grains() {
        let pillar = json!({"role": "web", "deep": {"list": ["a", "b"]}, "port": 8080});
        let pillar = pillar.as_object().unwrap();
        for (tgt, tgt_type, want) in [
            ("I@role:web", "compound", true),
            ("I@role:w*", "compound", true),
            ("I@role:db", "compound", false),
            ("I@deep:list:b", "compound", true),
            ("I@port:8080", "compound", true),
            ("J@role:^w.b$", "compound", true),
            ("I%@deep%list%a", "compound", true),
            ("minion1 and not I@role:db", "compound", true),
            ("role:web", "pillar", true),
            ("role:W*", "pillar", true),
            ("role:d.*", "pillar_pcre", false),
        ] {
            let target = Target::parse(&json!(tgt), tgt_type).unwrap();
            assert!(target.uses_pillar() && !target.uses_grains(), "{tgt}");
            assert_eq!(target.matches_with("minion1", None, Some(pillar)), want, "{tgt}");
        }
        // An unknown pillar never matches a pillar term; `not` of one does.
        let target = Target::parse(&json!("I@role:web"), "compound").unwrap();
        assert!(!target.matches("minion1", None));
        let target = Target::parse(&json!("not I@role:web"), "compound").unwrap();
        assert!(target.matches_with("minion1", None, None));
        assert!(!Target::parse(&json!("web* and G@os:x"), "compound").unwrap().uses_pillar());
    }

    #[track_caller]
    fn check_err(tgt: Value, tgt_type: &str, expected: fn(&TargetError) -> bool) {
        match Target::parse(&tgt, tgt_type) {
            Ok(_) => panic!("{tgt} ({tgt_type}) accepted"),
            Err(e) => {
                assert!(expected(&e), "{tgt} ({tgt_type}): unexpected {e:?}");
                assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn errors() {
        use TargetError as E;
        let compound = |e: &E| matches!(e, E::BadCompound { .. });
        let regex = |e: &E| matches!(e, E::BadRegex { .. });
        let grain = |e: &E| matches!(e, E::BadGrain(_));
        let empty = |e: &E| matches!(e, E::Empty);
        let value = |e: &E| matches!(e, E::BadValue(_));
        check_err(
            json!("web1"),
            "nodegroup",
            |e| matches!(e, E::UnknownType(t) if t == "nodegroup"),
        );
        check_err(json!("web1"), "", |e| matches!(e, E::UnknownType(_)));
        for tgt_type in ["glob", "pcre", "grain", "grain_pcre", "compound", "list"] {
            check_err(json!(""), tgt_type, empty);
            check_err(json!(7), tgt_type, value);
            check_err(json!(null), tgt_type, value);
        }
        for tgt_type in ["glob", "pcre", "compound"] {
            check_err(json!("  "), tgt_type, empty);
            check_err(json!(["a"]), tgt_type, value);
        }
        check_err(json!(","), "list", empty);
        check_err(json!([]), "list", empty);
        check_err(json!([""]), "list", empty);
        check_err(json!(["a", 1]), "list", value);
        check_err(json!({"a": 1}), "list", value);
        check_err(json!("web("), "pcre", regex);
        check_err(json!("a)|(b"), "pcre", regex);
        check_err(json!("(?<=a)b"), "pcre", regex); // look-behind: not supported
        check_err(json!("os"), "grain", grain);
        check_err(json!(":Debian"), "grain", grain);
        check_err(json!(format!("a{}", ":".repeat(65))), "grain", grain);
        check_err(json!("os:("), "grain_pcre", regex);
        check_err(json!("os"), "grain_pcre", grain);
        for expr in [
            "web1 db1",
            "web1 and",
            "and web1",
            "or web1",
            "web1 or",
            "not",
            "web1 not",
            "( web1",
            "web1 )",
            "( )",
            "( and web1 )",
            "web1 ( db1 )",
            "( web1 ) db1",
            "web1 and or db1",
            "(web1 or db1)",
            "( web1 or db1)",
            "S@10.0.0.0/8",
            "N@group",
            "R@%range",
            "L@,",
        ] {
            check_err(json!(expr), "compound", compound);
        }
        check_err(json!("E@web("), "compound", regex);
        check_err(json!("web1 and P@os:("), "compound", regex);
        check_err(json!("G@os"), "compound", grain);
    }

    #[test]
    fn sizes_are_bounded() {
        let big = "a".repeat(MAX_TARGET_BYTES + 1);
        for tgt_type in ["glob", "pcre", "list", "grain", "compound"] {
            check_err(json!(big), tgt_type, |e| {
                matches!(e, TargetError::TooLarge { what: "bytes", .. })
            });
        }
        let ids: Vec<String> = (0..20_000).map(|i| format!("minion{i}")).collect();
        check_err(json!(ids), "list", |e| matches!(e, TargetError::TooLarge { .. }));
        let words = vec!["a"; 501].join(" or ");
        check_err(json!(words), "compound", |e| {
            matches!(e, TargetError::TooLarge { what: "words", len: 1001, max: 1000 })
        });
        let words = vec!["a"; 500].join(" or ");
        assert!(Target::parse(&json!(words), "compound").is_ok());
        // Deep nesting is refused, not a stack overflow.
        let deep = format!("{}a{}", "( ".repeat(400), " )".repeat(400));
        check_err(json!(deep), "compound", |e| matches!(e, TargetError::BadCompound { .. }));
        let nots = format!("{}a", "not ".repeat(900));
        check_err(json!(nots), "compound", |e| matches!(e, TargetError::BadCompound { .. }));
        let ok = format!("{}a{}", "( ".repeat(60), " )".repeat(60));
        assert!(Target::parse(&json!(ok), "compound").unwrap().matches("a", None));
        // A regex that would compile huge is an error, not an allocation.
        check_err(json!("(\\w{500}){500}"), "pcre", |e| matches!(e, TargetError::BadRegex { .. }));
        check_err(json!("\\w{10}"), "pcre", |e| matches!(e, TargetError::BadRegex { .. }));
        assert!(Target::parse(&json!("\\w{5}"), "pcre").is_ok());
    }

    /// Every regex a target compiles costs the master's loop up to ~2 ms: 500 `E@\w{5}` words
    /// (a reaction's target built from event data) held it for seconds. Refused past
    /// MAX_TARGET_REGEXES, whichever kind of term compiles them.
    #[test]
    fn the_regexes_one_target_compiles_are_bounded() {
        let too_many = |e: &TargetError| matches!(e, TargetError::TooManyRegexes);
        let words = |word: &str, n: usize| vec![word; n].join(" or ");
        for word in ["E@\\w{5}", "web[0-9]", "P@os:deb.*", "G@os:deb[!x]", "J@role:w.*"] {
            assert!(Target::parse(&json!(words(word, MAX_TARGET_REGEXES)), "compound").is_ok());
            check_err(json!(words(word, MAX_TARGET_REGEXES + 1)), "compound", too_many);
        }
        // Globs without a class compile nothing, however many.
        assert!(Target::parse(&json!(words("web*", 400)), "compound").is_ok());
        // A P@ expression compiles one regex per way it splits into key and value.
        let splits = format!("P@{}", vec!["a"; MAX_TARGET_REGEXES + 2].join(":"));
        check_err(json!(splits), "compound", too_many);
        let splits = vec!["a"; MAX_TARGET_REGEXES + 2].join(":");
        check_err(json!(splits), "grain_pcre", too_many);
        // `*:` is taken off a value whatever the delimiter: that value is compiled (and
        // counted) ahead too, not while matching each minion.
        let stripped = words("G,@os,*:w[0-9]", MAX_TARGET_REGEXES / 2 + 1);
        check_err(json!(stripped), "compound", too_many);
        let e = Target::parse(&json!(words("E@a", 40)), "compound").unwrap_err();
        assert!(e.to_string().contains("over 32 regular expressions"), "{e}");
        // A glob whose class would compile past the size limit is taken literally.
        let huge = "[!x]".repeat(4000);
        assert!(!Target::parse(&json!(huge), "glob").unwrap().matches(&"a".repeat(4000), None));
        assert!(Target::parse(&json!(huge), "glob").unwrap().matches(&huge, None));
    }
}
