//! Padding a render may ask for: `'%3000000000s' | format(x)`, `'{:>3000000000}'.format(x)`
//! and `s | indent(3000000000)` had minijinja allocate the width before anything could refuse
//! it (a failed allocation aborts the process; a width past `usize` panicked). A width or
//! precision over [`MAX_WIDTH`] in a `format` filter's or `str.format` method's format string,
//! or an `indent` wider than that, is refused.

use minijinja::value::{Kwargs, Rest, StringInput, Value};
use minijinja::{Error, ErrorKind, State};

/// The widest field a format may ask for: a value bigger than a whole render's output is an
/// error anyway.
pub(super) const MAX_WIDTH: usize = super::render::MAX_OUTPUT;

/// The `format` filter (printf style), refusing a field wider than [`MAX_WIDTH`].
pub(super) fn format_filter(
    state: &State,
    format: &Value,
    args: Rest<Value>,
) -> Result<Value, Error> {
    check(format)?;
    minijinja::filters::format(state, format, args)
}

/// The `indent` filter, refusing a width over [`MAX_WIDTH`].
pub(super) fn indent_filter(
    value: StringInput<'_>,
    width: Option<usize>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    if width.is_some_and(|w| w > MAX_WIDTH) {
        return Err(Error::new(ErrorKind::InvalidOperation, wide()));
    }
    minijinja::filters::indent(value, width, first, blank, kwargs)
}

/// pycompat's Python methods, `str.format` refusing a field wider than [`MAX_WIDTH`].
pub(super) fn unknown_method(
    state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if method == "format" {
        check(value)?;
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

fn check(format: &Value) -> Result<(), Error> {
    match format.as_str().and_then(too_wide) {
        Some(why) => Err(Error::new(ErrorKind::InvalidOperation, why)),
        None => Ok(()),
    }
}

/// Why `format` may not be used: a number over [`MAX_WIDTH`] in one of its fields, printf
/// style (`%` to the conversion letter, past a `(key)`) or `str.format` style (after the `:`
/// of a `{…}`). Text outside the fields is not looked at.
fn too_wide(format: &str) -> Option<String> {
    let bytes = format.as_bytes();
    let mut specs: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let mut start = i + 1;
                if bytes.get(start) == Some(&b'(') {
                    start = format[start..].find(')').map_or(bytes.len(), |at| start + at + 1);
                }
                let end = format[start..]
                    .find(|c: char| c.is_ascii_alphabetic() || c == '%')
                    .map_or(bytes.len(), |at| start + at);
                specs.push(&format[start..end]);
                i = end + 1;
            }
            b'{' if bytes.get(i + 1) == Some(&b'{') => i += 2,
            b'{' => match format[i..].find('}') {
                Some(at) => {
                    let field = &format[i + 1..i + at];
                    specs.extend(field.split_once(':').map(|(_, spec)| spec));
                    i += at + 1;
                }
                None => i += 1,
            },
            _ => i += 1,
        }
    }
    let too_big =
        |run: &str| !run.is_empty() && run.parse::<usize>().map_or(true, |n| n > MAX_WIDTH);
    specs.iter().any(|spec| spec.split(|c: char| !c.is_ascii_digit()).any(too_big)).then(wide)
}

fn wide() -> String {
    format!("a format field may be at most {MAX_WIDTH} characters wide")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_wider_than_a_render_are_refused_and_the_rest_left_alone() {
        for wide in [
            "%3000000000s",
            "%18446744068613951616s",
            "%-.2000000f",
            "%(name)3000000000s",
            "{:>3000000000}",
            "{0:.99999999999999999999}",
            "a {x:*^2000000} b",
        ] {
            assert!(too_wide(wide).is_some(), "{wide}");
        }
        for fine in [
            "%s",
            "%-20s|%05d|%.2f",
            "%(name)s",
            "100%% of 123456789012",
            "{}: 123456789012",
            "{{3000000000}}",
            "{:>20}",
            "{0:,.2f}",
            "é %s ✓ {}",
            "%",
            "{",
        ] {
            assert_eq!(too_wide(fine), None, "{fine}");
        }
    }
}
