//! Padding a render may ask for: `'%3000000000s' | format(x)`, `'{:>3000000000}'.format(x)`
//! and `s | indent(3000000000)` had minijinja allocate the width before anything could refuse
//! it (a failed allocation aborts the process; a width past `usize` panicked). The widths and
//! precisions of a `format` filter's printf fields, of a `str.format` string's fields, and an
//! `indent` times its lines, may add up to [`MAX_WIDTH`]; past it the call is refused.

use minijinja::value::{Kwargs, Rest, StringInput, Value};
use minijinja::{Error, ErrorKind, State};

/// The widest field a format may ask for: a value bigger than a whole render's output is an
/// error anyway.
pub(super) const MAX_WIDTH: usize = super::render::MAX_OUTPUT;

/// The `format` filter (printf style), refusing fields wider than [`MAX_WIDTH`] in all.
pub(super) fn format_filter(
    state: &State,
    format: &Value,
    args: Rest<Value>,
) -> Result<Value, Error> {
    if let Some(text) = format.as_str() {
        check(total(printf_specs(text)))?;
    }
    minijinja::filters::format(state, format, args)
}

/// The `indent` filter, refusing indentation over [`MAX_WIDTH`] in all (the width, given by
/// position or by name, times the lines).
pub(super) fn indent_filter(
    value: StringInput<'_>,
    width: Option<usize>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let by_name: Option<usize> = kwargs.peek("width")?;
    let lines = value.as_str().matches('\n').count() + 1;
    let total = width.or(by_name).unwrap_or(0).checked_mul(lines);
    check(total.filter(|&t| t <= MAX_WIDTH).ok_or(()))?;
    minijinja::filters::indent(value, width, first, blank, kwargs)
}

/// pycompat's Python methods, `str.format` refusing fields wider than [`MAX_WIDTH`] in all.
pub(super) fn unknown_method(
    state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if let (Some(text), "format") = (value.as_str(), method) {
        check(total(brace_specs(text)))?;
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

fn check(total: Result<usize, ()>) -> Result<(), Error> {
    match total {
        Ok(_) => Ok(()),
        Err(()) => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("format fields may be at most {MAX_WIDTH} characters wide in all"),
        )),
    }
}

/// The widths and precisions of `specs` added up; `Err` past [`MAX_WIDTH`].
fn total<'a>(specs: impl Iterator<Item = &'a str>) -> Result<usize, ()> {
    let mut sum: usize = 0;
    for spec in specs {
        for run in spec.split(|c: char| !c.is_ascii_digit()).filter(|r| !r.is_empty()) {
            let n = run.parse::<usize>().map_err(drop)?;
            sum = sum.checked_add(n).filter(|&s| s <= MAX_WIDTH).ok_or(())?;
        }
    }
    Ok(sum)
}

/// The specs of a printf-style format's fields: from after `%` (and a `(key)`) to the
/// conversion letter, as minijinja reads them; `%%` is text.
fn printf_specs(format: &str) -> impl Iterator<Item = &str> {
    let mut rest = format;
    std::iter::from_fn(move || loop {
        let at = rest.find('%')?;
        let mut field = &rest[at + 1..];
        if let Some(after) = field.strip_prefix('%') {
            rest = after;
            continue;
        }
        if let Some(key) = field.strip_prefix('(') {
            field = key.find(')').map_or("", |close| &key[close + 1..]);
        }
        let end = field.find(|c: char| c.is_ascii_alphabetic() || c == '%').unwrap_or(field.len());
        rest = &field[end..];
        return Some(&field[..end]);
    })
}

/// The specs of a `str.format` format's fields: after the `:` of a `{…}` (a `[…]` in the
/// field's name may hold `:` or `}`), as minijinja reads them; `{{` is text.
fn brace_specs(format: &str) -> impl Iterator<Item = &str> {
    let mut rest = format;
    std::iter::from_fn(move || loop {
        let at = rest.find('{')?;
        let field = &rest[at + 1..];
        if let Some(after) = field.strip_prefix('{') {
            rest = after;
            continue;
        }
        let bytes = field.as_bytes();
        let mut i = 0;
        while i < bytes.len() && !matches!(bytes[i], b':' | b'}') {
            if bytes[i] == b'[' {
                match field[i..].find(']') {
                    Some(close) => i += close,
                    None => i = bytes.len() - 1,
                }
            }
            i += 1;
        }
        let end = field[i..].find('}').map_or(field.len(), |close| i + close);
        rest = &field[end..];
        if bytes.get(i) == Some(&b':') {
            return Some(&field[i + 1..end]);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_wider_than_a_render_in_all_are_refused_and_the_rest_left_alone() {
        let printf = |f: &str| total(printf_specs(f)).is_err();
        let brace = |f: &str| total(brace_specs(f)).is_err();
        for wide in [
            "%3000000000s",
            "%18446744068613951616s",
            "%-.2000000f",
            "%(name)3000000000s",
            "%(a)600000s %(b)600000s",
        ] {
            assert!(printf(wide), "{wide}");
        }
        for wide in [
            "{:>3000000000}",
            "{0:.99999999999999999999}",
            "a {x:*^2000000} b",
            "{0[}]:>3000000000}",
            "{0[:]:>3000000000}",
            &"{:>1000000}".repeat(8),
        ] {
            assert!(brace(wide), "{wide}");
        }
        for fine in ["%s", "%-20s|%05d|%.2f", "%(name)s", "100%% of 123456789012", "%", "é %s"] {
            assert!(!printf(fine), "{fine}");
        }
        for fine in
            ["{}: 123456789012", "{{3000000000}}", "{:>20}", "{0:,.2f}", "{", "é {} ✓", "{0[a]}{1}"]
        {
            assert!(!brace(fine), "{fine}");
        }
        // JSON text in a printf format is not a field.
        assert!(!printf("{\"Size\": 10737418240, \"Name\": \"%s\"}"));
        assert!(!brace("{ %3000000000s }") && printf("{ %3000000000s }"));
    }
}
