//! The one pass over a reactor template's tokens before minijinja compiles it (minijinja's own
//! tokenizer, so strings, comments and raw text are never touched, and lines stay where they
//! were): list and dict literals become mutable (`mutable`), values assigned to namespace
//! attributes are checked, and expressions that minijinja's parser would recurse on without
//! its own limit are refused.
//!
//! minijinja bounds the nesting of parentheses, brackets and statements (150 levels) but not
//! a chain of unary operators (`- - - 1`, `not not x`) or of inline conditionals
//! (`a if b else c if d else …`): tens of thousands of them (within the size of an SLS file)
//! overflowed the stack while parsing (found by fuzzing `reactor_sls`).

use super::mutable::{FILTER, NAMESPACE_FILTER};
use minijinja::machinery::{tokenize, Token, WhitespaceConfig};
use std::borrow::Cow;

/// Unary operators in a row, in one expression: `- -x` and `not not x` are as far as real
/// templates go.
const MAX_UNARY_RUN: usize = 16;
/// Inline `else`s in one `{{ }}` or `{% %}`.
const MAX_ELSES: usize = 64;

/// `source` with the value of every `{% set ns.attr = … %}` as `(…)|_namespace_value(ns)`,
/// and with `literals` every list and dict literal of its expressions wrapped as
/// `([…]|_mutable)`. `Err` (line, why) for an expression nested past [`MAX_UNARY_RUN`] or
/// [`MAX_ELSES`]. A source the tokenizer refuses is returned as it is (compiling it then
/// reports the error, with its line).
pub(super) fn rewrite(source: &str, literals: bool) -> Result<Cow<'_, str>, (usize, String)> {
    let mutable = format!("|{FILTER})");
    // Text to insert at an offset; "(" opens, anything else closes.
    let mut inserts: Vec<(usize, String)> = Vec::new();
    // Open brackets: their offset, or None for a subscript `x[…]`.
    let mut open: Vec<Option<usize>> = Vec::new();
    let mut after_value = false;
    let mut set = SetStatement::None;
    let (mut unary_run, mut elses) = (0, 0);
    for token in tokenize(source, false, Default::default(), WhitespaceConfig::default()) {
        let Ok((token, span)) = token else { return Ok(Cow::Borrowed(source)) };
        let start = span.start_offset as usize;
        let end = span.end_offset as usize;
        match token {
            Token::BracketOpen => open.push((!after_value).then_some(start)),
            Token::BraceOpen => open.push(Some(start)),
            Token::BracketClose | Token::BraceClose => {
                if let (Some(Some(at)), true) = (open.pop(), literals) {
                    inserts.push((at, "(".into()));
                    inserts.push((end, mutable.clone()));
                }
            }
            Token::VariableStart | Token::BlockStart | Token::VariableEnd | Token::BlockEnd => {
                open.clear();
                elses = 0;
            }
            _ => {}
        }
        unary_run = match (&token, after_value) {
            (Token::Minus | Token::Ident("not"), false) => unary_run + 1,
            _ => 0,
        };
        elses += usize::from(matches!(token, Token::Ident("else")));
        if unary_run > MAX_UNARY_RUN || elses > MAX_ELSES {
            let what = match unary_run > MAX_UNARY_RUN {
                true => format!("more than {MAX_UNARY_RUN} unary operators in a row"),
                false => format!("more than {MAX_ELSES} inline 'else's in one expression"),
            };
            return Err((
                span.start_line as usize,
                format!("expression nested too deeply: {what}"),
            ));
        }
        set = match (set, &token) {
            (_, Token::BlockStart) => SetStatement::Start,
            (SetStatement::Start, Token::Ident("set")) => SetStatement::Target(Target::default()),
            (SetStatement::Target(mut target), t) => match t {
                Token::Assign | Token::Pipe | Token::BlockEnd => {
                    target.end_item(source);
                    match (t, target.objects.is_empty()) {
                        (_, true) | (Token::BlockEnd, _) => SetStatement::None,
                        (Token::Assign, false) => {
                            inserts.push((end, "(".into()));
                            SetStatement::Value(target.objects)
                        }
                        _ => SetStatement::Filter(target.objects),
                    }
                }
                Token::Comma | Token::ParenOpen | Token::ParenClose => {
                    target.end_item(source);
                    SetStatement::Target(target)
                }
                Token::Dot => {
                    target.last_dot = Some(start);
                    SetStatement::Target(target)
                }
                _ => {
                    target.item_start.get_or_insert(start);
                    SetStatement::Target(target)
                }
            },
            (SetStatement::Value(objects), Token::BlockEnd) => {
                inserts.push((start, format!(")|{NAMESPACE_FILTER}({})", objects.join(", "))));
                SetStatement::None
            }
            (SetStatement::Filter(objects), Token::BlockEnd) => {
                inserts.push((start, format!("|{NAMESPACE_FILTER}({})", objects.join(", "))));
                SetStatement::None
            }
            (keep @ (SetStatement::Value(_) | SetStatement::Filter(_)), _) => keep,
            _ => SetStatement::None,
        };
        after_value = match token {
            // `for [a, b] in …` and `set [a, b] = …` are targets, not literals.
            Token::Ident(word) => !matches!(
                word,
                "and" | "or" | "not" | "in" | "is" | "if" | "elif" | "else" | "do" | "return"
            ),
            Token::Str(_)
            | Token::String(_)
            | Token::Int(_)
            | Token::Int128(_)
            | Token::Float(_)
            | Token::ParenClose
            | Token::BracketClose
            | Token::BraceClose => true,
            _ => false,
        };
    }
    if inserts.is_empty() {
        return Ok(Cow::Borrowed(source));
    }
    // A close's offset is past its bracket; opens and closes never share an offset except a
    // close directly followed by an open (`[][]`), where the close must come first. Inserts at
    // one offset otherwise keep their order (a literal's close before its `set`'s).
    inserts.sort_by_key(|(at, what)| (*at, what == "("));
    let mut out = String::with_capacity(source.len() + inserts.len() * 8);
    let mut last = 0;
    for (at, what) in inserts {
        out.push_str(&source[last..at]);
        out.push_str(&what);
        last = at;
    }
    out.push_str(&source[last..]);
    Ok(Cow::Owned(out))
}

/// Where [`rewrite`] is in a `{% set … %}` statement.
enum SetStatement<'s> {
    None,
    /// Just after `{%`.
    Start,
    /// In the target.
    Target(Target<'s>),
    /// In the value assigned to these objects' attributes (`ns.a` of `ns.a.b = …`).
    Value(Vec<&'s str>),
    /// In the filters of a block assignment to these objects' attributes
    /// (`{% set ns.b | upper %}…{% endset %}`).
    Filter(Vec<&'s str>),
}

/// A `set` target being read: each item's text up to its last `.` is an object assigned into
/// (minijinja takes `ns.a.b`: the attribute `b` of `ns.a`).
#[derive(Default)]
struct Target<'s> {
    objects: Vec<&'s str>,
    item_start: Option<usize>,
    last_dot: Option<usize>,
}

impl<'s> Target<'s> {
    fn end_item(&mut self, source: &'s str) {
        if let (Some(from), Some(to)) = (self.item_start.take(), self.last_dot.take()) {
            // `{% set .a = 1 %}`: a syntax error minijinja reports.
            let Some(object) = source.get(from..to).map(str::trim) else { return };
            if !object.is_empty() && !self.objects.contains(&object) {
                self.objects.push(object);
            }
        }
    }
}
