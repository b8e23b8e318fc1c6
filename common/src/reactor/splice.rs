//! The splice pass after Jinja: the formatter leaves a reference for each `{{ }}` value, and
//! this small YAML lexer finds where each one sits (a whole node, inside `'…'` or `"…"`, part of
//! a longer plain scalar, in a block scalar or a comment) and writes the value encoded for that
//! place, so that no value can end the scalar it is in.

use super::emit;
use std::cell::Cell;

/// A reference is `OPEN`, the slot's decimal index, `CLOSE`: private-use characters that
/// `emit` always escapes, so event data never writes one (a stray one is an error).
pub(super) const OPEN: char = '\u{f8f0}';
pub(super) const CLOSE: char = '\u{f8f1}';

/// One `{{ }}` value, in its two spellings.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Slot {
    /// As a whole YAML node: `emit::scalar`, one-line JSON, `null`, `True`.
    pub node: String,
    /// As text inside a string: Python's `str()`, what Salt's Jinja writes.
    pub text: String,
}

/// The reference the formatter writes for slot `index`.
pub(super) fn reference(index: usize) -> String {
    format!("{OPEN}{index}{CLOSE}")
}

/// Why the rendered text could not take its values; `line` is 1-based.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SpliceError {
    pub line: usize,
    pub message: String,
}

/// `src` with every reference replaced by its slot, encoded for where it sits. Output above
/// `max` bytes is an error.
pub(super) fn splice(src: &str, slots: &[Slot], max: usize) -> Result<String, SpliceError> {
    let mut at = 0;
    while let Some(found) = src[at..].find([OPEN, CLOSE]) {
        match reference_at(src, at + found) {
            Some((index, end)) if index < slots.len() => at = end,
            _ => return Err(error_at(src, at + found, "a reserved character (U+F8F0/U+F8F1)")),
        }
    }
    if at == 0 {
        return Ok(src.to_string());
    }
    let mut s = Splicer {
        src,
        slots,
        max,
        pos: 0,
        out: String::with_capacity(src.len()),
        flow: 0,
        parent: -1,
        open_plain: false,
        adjacent: false,
        line: Line::default(),
        col_mark: Cell::new((0, 0)),
    };
    while s.pos < src.len() {
        s.start_line();
        if !s.tokens()? {
            s.end_line();
        }
    }
    Ok(s.out)
}

/// The slot index and end of the reference at byte `at`, if one is there.
fn reference_at(src: &str, at: usize) -> Option<(usize, usize)> {
    let rest = src[at..].strip_prefix(OPEN)?;
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let index = rest[..digits].parse().ok()?;
    let after = rest[digits..].strip_prefix(CLOSE)?;
    Some((index, src.len() - after.len()))
}

fn error_at(src: &str, at: usize, what: &str) -> SpliceError {
    let line = src[..at].matches('\n').count() + 1;
    SpliceError { line, message: format!("{what} cannot be placed here") }
}

/// Literal text and references, in order.
enum Piece<'a> {
    Text(&'a str),
    Value(usize),
}

fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = text[at..].find(OPEN) {
        let start = at + found;
        let Some((index, end)) = reference_at(text, start) else { break };
        if start > at {
            out.push(Piece::Text(&text[at..start]));
        }
        out.push(Piece::Value(index));
        at = end;
    }
    if at < text.len() {
        out.push(Piece::Text(&text[at..]));
    }
    out
}

fn blankz(c: Option<char>) -> bool {
    matches!(c, None | Some(' ' | '\t' | '\n' | '\r'))
}

/// `,[]{}`: what ends a plain scalar in flow context.
fn flow_char(c: Option<char>) -> bool {
    c.is_some_and(|c| ",[]{}".contains(c))
}

fn is_break(c: char) -> bool {
    c == '\n' || c == '\r'
}

/// What the lexer knows about the current line.
#[derive(Default)]
struct Line {
    start: usize,
    indent: usize,
    /// This line may continue the previous line's plain scalar: values must be plain text.
    strict: bool,
    tokens: usize,
    /// The first token held no value.
    first_clean: bool,
    last_token_col: usize,
    /// The column of the line's innermost block collection (its last key or `- `).
    structure_col: Option<usize>,
}

struct Splicer<'a> {
    src: &'a str,
    slots: &'a [Slot],
    max: usize,
    pos: usize,
    out: String,
    flow: usize,
    /// The innermost block collection's column, as far as the lexer can tell (-1: unknown).
    parent: isize,
    /// The last non-blank line ended in a plain scalar, which the next line may continue.
    open_plain: bool,
    /// The last token was a quoted scalar or the end of a nested flow collection: saphyr-parser
    /// then takes a `:` right after it (blanks, breaks and comments between) as a value
    /// indicator even without a blank after it (`{"k":v}`).
    adjacent: bool,
    line: Line,
    /// A (byte offset, column) on the current line, so columns cost O(1) amortised: a line
    /// of many values (a loop over event data) must not make the pass quadratic.
    col_mark: Cell<(usize, usize)>,
}

impl Splicer<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.src[self.pos..].chars().nth(1)
    }

    fn col(&self) -> usize {
        let (mut at, mut col) = self.col_mark.get();
        if at < self.line.start || at > self.pos {
            (at, col) = (self.line.start, 0);
        }
        col += self.src[at..self.pos].chars().count();
        self.col_mark.set((self.pos, col));
        col
    }

    fn error(&self, what: &str) -> SpliceError {
        error_at(self.src, self.pos, what)
    }

    fn copy_char(&mut self) {
        if let Some(c) = self.peek() {
            self.out.push(c);
            self.pos += c.len_utf8();
        }
    }

    fn copy_to(&mut self, end: usize) {
        self.out.push_str(&self.src[self.pos..end]);
        self.pos = end;
    }

    /// Consumes `\r\n`, `\n` or `\r` if there.
    fn line_break(&mut self) {
        let rest = &self.src[self.pos..];
        let len =
            if rest.starts_with("\r\n") { 2 } else { usize::from(rest.starts_with(is_break)) };
        self.copy_to(self.pos + len);
    }

    fn grew(&self) -> Result<(), SpliceError> {
        if self.out.len() > self.max {
            return Err(SpliceError {
                line: 1,
                message: format!("rendered text is larger than {} bytes", self.max),
            });
        }
        Ok(())
    }

    /// Writes a value's encoding; on a strict line only if YAML reads it the same as plain text.
    fn put(&mut self, encoded: &str) -> Result<(), SpliceError> {
        if self.line.strict && !emit::plain_chars_ok(encoded) {
            return Err(self.error(
                "a value on a line that may continue the plain scalar of the line before \
                 (quote that scalar) that is not plain text",
            ));
        }
        self.out.push_str(encoded);
        self.grew()
    }

    fn start_line(&mut self) {
        let rest = &self.src[self.pos..];
        let indent = rest.len() - rest.trim_start_matches(' ').len();
        let first = rest.trim_start_matches([' ', '\t']).chars().next();
        self.line = Line { start: self.pos, indent, ..Line::default() };
        match first {
            None | Some('\n' | '\r') => {}
            Some('#') => self.open_plain = false,
            Some(_) => {
                self.line.strict =
                    self.open_plain && (self.flow > 0 || indent as isize > self.parent);
                self.open_plain = false;
            }
        }
    }

    fn end_line(&mut self) {
        if self.line.tokens == 0 {
            return;
        }
        if let Some(col) = self.line.structure_col {
            self.parent = col as isize;
        } else if self.flow == 0 && self.parent >= self.line.indent as isize {
            self.parent = -1;
        }
    }

    fn note_token(&mut self, col: usize, clean: bool) {
        if self.line.tokens == 0 {
            self.line.first_clean = clean;
        }
        self.line.tokens += 1;
        self.line.last_token_col = col;
    }

    /// The tokens of one line (quoted scalars may run over several). Returns true when a block
    /// scalar took over and the line is already ended.
    fn tokens(&mut self) -> Result<bool, SpliceError> {
        loop {
            let Some(c) = self.peek() else { return Ok(false) };
            let next = self.peek_second();
            let line_start = self.pos == self.line.start;
            let adjacent = self.adjacent;
            if !matches!(c, '\n' | '\r' | ' ' | '\t' | '#') {
                self.adjacent = false;
            }
            match c {
                '\n' | '\r' => {
                    self.line_break();
                    return Ok(false);
                }
                ' ' | '\t' => self.copy_char(),
                '#' => self.comment()?,
                '\'' => {
                    self.single_quoted()?;
                    self.adjacent = true;
                }
                '"' => {
                    self.double_quoted()?;
                    self.adjacent = true;
                }
                '[' | '{' => {
                    self.flow += 1;
                    self.copy_char();
                }
                ']' | '}' => {
                    self.flow = self.flow.saturating_sub(1);
                    self.copy_char();
                    self.adjacent = self.flow > 0;
                }
                ',' if self.flow > 0 => self.copy_char(),
                // As saphyr-parser reads it: in flow context a `:` before anything else (`[:x]`)
                // starts a plain scalar.
                ':' if blankz(next) || (self.flow > 0 && (adjacent || flow_char(next))) => {
                    if self.flow == 0 {
                        self.line.structure_col = Some(self.line.last_token_col);
                        if self.line.tokens == 1 && self.line.first_clean {
                            // A continuation cannot hold `: `: this line starts a new key.
                            self.line.strict = false;
                        }
                    }
                    self.copy_char();
                }
                '-' | '?' if blankz(next) => {
                    if c == '-' && self.flow == 0 {
                        self.line.structure_col = Some(self.col());
                    }
                    self.copy_char();
                }
                '|' | '>' if self.flow == 0 => {
                    self.block_scalar()?;
                    return Ok(true);
                }
                '&' | '*' | '!' => self.property()?,
                '%' if line_start => self.directive()?,
                '-' | '.' if line_start && self.document_marker(c) => {
                    self.copy_to(self.pos + 3);
                    self.flow = 0;
                }
                _ => self.plain()?,
            }
        }
    }

    fn document_marker(&self, c: char) -> bool {
        let rest = &self.src[self.pos..];
        rest.starts_with(&String::from(c).repeat(3)) && blankz(rest[3..].chars().next())
    }

    /// To the end of the line; a value is written double-quoted, on one line.
    fn comment(&mut self) -> Result<(), SpliceError> {
        let rest = &self.src[self.pos..];
        let end = self.pos + rest.find(is_break).unwrap_or(rest.len());
        for piece in pieces(&self.src[self.pos..end]) {
            match piece {
                Piece::Text(text) => self.out.push_str(text),
                Piece::Value(i) => {
                    self.out.push_str(&emit::quoted(&self.slots[i].text));
                    self.grew()?;
                }
            }
        }
        self.pos = end;
        Ok(())
    }

    /// An anchor, alias or tag: no value may be part of one.
    fn property(&mut self) -> Result<(), SpliceError> {
        let flow = self.flow > 0;
        let rest = &self.src[self.pos..];
        let len = rest
            .find(|c: char| blankz(Some(c)) || (flow && ",[]{}".contains(c)))
            .unwrap_or(rest.len());
        if rest[..len].contains(OPEN) {
            return Err(self.error("a value in an anchor, alias or tag"));
        }
        self.copy_to(self.pos + len);
        Ok(())
    }

    fn directive(&mut self) -> Result<(), SpliceError> {
        let rest = &self.src[self.pos..];
        let len = rest.find(is_break).unwrap_or(rest.len());
        if rest[..len].contains(OPEN) {
            return Err(self.error("a value in a directive"));
        }
        self.copy_to(self.pos + len);
        Ok(())
    }

    /// Where the plain scalar starting here ends (trailing blanks excluded), as saphyr-parser (the
    /// loader) sees it: in flow context `:?` does not end it.
    fn plain_end(&self) -> usize {
        let flow = self.flow > 0;
        let rest = &self.src[self.pos..];
        let mut end = self.pos;
        let mut prev = ' ';
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let next = chars.peek().map(|&(_, n)| n);
            let stop = is_break(c)
                || (c == ':' && (blankz(next) || (flow && flow_char(next))))
                || (flow && ",[]{}".contains(c))
                || (c == '#' && (prev == ' ' || prev == '\t') && i > 0);
            if stop {
                break;
            }
            if c != ' ' && c != '\t' {
                end = self.pos + i + c.len_utf8();
            }
            prev = c;
        }
        end
    }

    fn plain(&mut self) -> Result<(), SpliceError> {
        let (start, col) = (self.pos, self.col());
        let end = self.plain_end();
        let text = &self.src[start..end];
        let has_values = text.contains(OPEN);
        self.note_token(col, !has_values);
        if !has_values {
            self.copy_to(end);
        } else if let Some((i, _)) = reference_at(self.src, start).filter(|&(_, e)| e == end) {
            self.put(&self.slots[i].node)?;
        } else if self.line.strict {
            for piece in pieces(text) {
                match piece {
                    Piece::Text(text) => self.out.push_str(text),
                    Piece::Value(i) => self.put(&self.slots[i].text)?,
                }
            }
        } else {
            // Text around a value: the whole scalar becomes one double-quoted string.
            self.out.push('"');
            for piece in pieces(text) {
                match piece {
                    Piece::Text(text) => emit::push_escaped(&mut self.out, text),
                    Piece::Value(i) => emit::push_escaped(&mut self.out, &self.slots[i].text),
                }
            }
            self.out.push('"');
            self.grew()?;
        }
        self.pos = end;
        let after = self.src[end..].trim_start_matches([' ', '\t']);
        if after.is_empty() || after.starts_with(is_break) {
            self.open_plain = true;
        }
        Ok(())
    }

    /// `'…'`: the value with `'` doubled, or the whole scalar rewritten double-quoted when a
    /// value has characters a single-quoted scalar cannot carry.
    fn single_quoted(&mut self) -> Result<(), SpliceError> {
        let (start, col) = (self.pos, self.col());
        let bytes = self.src.as_bytes();
        let mut i = start + 1;
        let closed = loop {
            match bytes.get(i) {
                None => break false,
                Some(b'\'') if bytes.get(i + 1) == Some(&b'\'') => i += 2,
                Some(b'\'') => break true,
                Some(_) => i += 1,
            }
        };
        let inner = &self.src[start + 1..i];
        let end = if closed { i + 1 } else { i };
        let has_values = inner.contains(OPEN);
        self.note_token(col, !has_values);
        if !has_values {
            self.copy_to(end);
            return Ok(());
        }
        if !closed {
            return Err(self.error("a value in an unterminated quoted scalar"));
        }
        let parts = pieces(inner);
        let fits = parts.iter().all(|p| match p {
            Piece::Value(i) => !self.slots[*i].text.chars().any(emit::needs_escape),
            Piece::Text(_) => true,
        });
        if self.line.strict || fits {
            self.out.push('\'');
            for piece in parts {
                match piece {
                    Piece::Text(text) => self.out.push_str(text),
                    Piece::Value(i) => self.put(&self.slots[i].text.replace('\'', "''"))?,
                }
            }
            self.out.push('\'');
        } else {
            self.out.push('"');
            for piece in parts {
                match piece {
                    Piece::Text(text) => {
                        for c in text.replace("''", "'").chars() {
                            match c {
                                '"' => self.out.push_str("\\\""),
                                '\\' => self.out.push_str("\\\\"),
                                c => self.out.push(c),
                            }
                        }
                    }
                    Piece::Value(i) => emit::push_escaped(&mut self.out, &self.slots[i].text),
                }
            }
            self.out.push('"');
            self.grew()?;
        }
        self.pos = end;
        Ok(())
    }

    /// `"…"`: the value with YAML's double-quote escapes.
    fn double_quoted(&mut self) -> Result<(), SpliceError> {
        let (start, col) = (self.pos, self.col());
        let mut chars = self.src[start + 1..].char_indices();
        let mut end = self.src.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((j, OPEN)) = chars.next() {
                        self.pos = start + 1 + j;
                        return Err(self.error("a value right after a backslash"));
                    }
                }
                '"' => {
                    end = start + 1 + i + 1;
                    break;
                }
                _ => {}
            }
        }
        let text = &self.src[start..end];
        let has_values = text.contains(OPEN);
        self.note_token(col, !has_values);
        for piece in pieces(text) {
            match piece {
                Piece::Text(text) => self.out.push_str(text),
                Piece::Value(i) if self.line.strict => self.put(&self.slots[i].text)?,
                Piece::Value(i) => {
                    emit::push_escaped(&mut self.out, &self.slots[i].text);
                    self.grew()?;
                }
            }
        }
        self.pos = end;
        Ok(())
    }

    /// `|` or `>`: the header, then every line indented at least as the content. A value's line
    /// breaks are indented like the line it sits on; what a block scalar cannot carry (other
    /// breaks, control characters) is refused, and so is a value that would change the
    /// detected indentation.
    fn block_scalar(&mut self) -> Result<(), SpliceError> {
        let parent = self.line.structure_col.map_or(self.parent, |c| c as isize);
        self.copy_char();
        let mut explicit = None;
        while let Some(c @ ('0'..='9' | '+' | '-')) = self.peek() {
            if let Some(d) = c.to_digit(10) {
                explicit = Some(d as usize);
            }
            self.copy_char();
        }
        loop {
            match self.peek() {
                None => return Ok(()),
                Some('#') => self.comment()?,
                Some(c) if is_break(c) => break,
                Some(OPEN) => return Err(self.error("a value in a block scalar header")),
                Some(_) => self.copy_char(),
            }
        }
        self.line_break();
        self.end_line();
        self.open_plain = false;
        let floor = (parent + 1).max(1) as usize;
        let (mut content, mut max_blank) = (None, 0);
        while self.pos < self.src.len() {
            let rest = &self.src[self.pos..];
            let spaces = rest.len() - rest.trim_start_matches(' ').len();
            if rest[spaces..].is_empty() || rest[spaces..].starts_with(is_break) {
                if content.is_none() {
                    max_blank = max_blank.max(spaces);
                }
                self.copy_to(self.pos + spaces);
                self.line_break();
                continue;
            }
            let first_line = content.is_none();
            let indent = *content.get_or_insert(match explicit {
                Some(m) => parent.max(0) as usize + m,
                None => spaces.max(max_blank).max(floor),
            });
            if spaces < indent {
                return Ok(());
            }
            let line_start = self.pos;
            self.copy_to(self.pos + spaces);
            while let Some(c) = self.peek() {
                if is_break(c) {
                    break;
                }
                let Some((i, end)) = reference_at(self.src, self.pos) else {
                    self.copy_char();
                    continue;
                };
                let text = &self.slots[i].text;
                if text.chars().any(|c| c != '\n' && c != '\t' && emit::needs_escape(c)) {
                    return Err(self.error("a value with line breaks or control characters that cannot be in a block scalar"));
                }
                let at_start = self.pos == line_start + spaces;
                if first_line
                    && at_start
                    && explicit.is_none()
                    && !text.starts_with(|c: char| !c.is_whitespace())
                {
                    return Err(self.error("an empty value or one starting with a blank, which cannot start a block scalar"));
                }
                let indented = text.replace('\n', &format!("\n{}", " ".repeat(spaces)));
                self.out.push_str(&indented);
                self.grew()?;
                self.pos = end;
            }
            self.line_break();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(node: &str, text: &str) -> Slot {
        Slot { node: node.to_string(), text: text.to_string() }
    }

    #[track_caller]
    fn check(template: &str, slots: &[Slot], expected: Result<&str, (usize, &str)>) {
        let src = template.replace("@0", &reference(0)).replace("@1", &reference(1));
        match (splice(&src, slots, 1 << 20), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{template}"),
            (Err(e), Err((line, want))) => {
                assert_eq!(e.line, line, "{template}: {e:?}");
                assert!(e.message.contains(want), "{template}: {e:?}");
            }
            (got, want) => panic!("{template}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn each_place_gets_its_encoding() {
        let s = [slot("\"it's: \\\"x\\\"\"", "it's: \"x\""), slot("True", "True")];
        for (template, expected) in [
            ("a: @0\n", "a: \"it's: \\\"x\\\"\"\n"),
            ("a: '@0'\n", "a: 'it''s: \"x\"'\n"),
            ("a: \"@0\"\n", "a: \"it's: \\\"x\\\"\"\n"),
            ("a: [@0, '@1', \"@1\"]\n", "a: [\"it's: \\\"x\\\"\", 'True', \"True\"]\n"),
            ("a: {k: x@0}\n", "a: {k: \"xit's: \\\"x\\\"\"}\n"),
            ("a: echo @1 @0 # @0\n", "a: \"echo True it's: \\\"x\\\"\" # \"it's: \\\"x\\\"\"\n"),
            ("a: '@1''s'\n", "a: 'True''s'\n"),
            ("a: |\n  x @0\n  y\nb: @1\n", "a: |\n  x it's: \"x\"\n  y\nb: True\n"),
            ("a: >-\n\n  @1\n", "a: >-\n\n  True\n"),
            ("a: b\n  @1\n", "a: b\n  True\n"),
            ("@1: '@1'\n", "True: 'True'\n"),
            ("--- @1\n...\n", "--- True\n...\n"),
            ("no values\n", "no values\n"),
        ] {
            check(template, &s, Ok(expected));
        }
    }

    #[test]
    fn line_breaks_in_values() {
        let s = [slot("\"x\\ny\"", "x\ny"), slot("\"a\\u2028\"", "a\u{2028}")];
        check("a: '@0'\n", &s, Ok("a: \"x\\ny\"\n"));
        check("a: 'it''s @0'\n", &s, Ok("a: \"it's x\\ny\"\n"));
        check("a:\n  - |\n    @0\n", &s, Ok("a:\n  - |\n    x\n    y\n"));
        check("a: |\n  @1\n", &s, Err((2, "cannot be in a block scalar")));
        check("# @0\n", &s, Ok("# \"x\\ny\"\n"));
    }

    #[test]
    fn flow_colons_as_saphyr_reads_them() {
        let s = [slot("\"a, b\"", "a, b")];
        // A `:` before anything else starts a plain scalar; `:?` does not end one.
        check("a: [:@0]\n", &s, Ok("a: [\":a, b\"]\n"));
        check("a: [x, :@0]\n", &s, Ok("a: [x, \":a, b\"]\n"));
        check("a: [x:?@0]\n", &s, Ok("a: [\"x:?a, b\"]\n"));
        check("a: [@0:?x]\n", &s, Ok("a: [\"a, b:?x\"]\n"));
        // Right after a quoted key or a nested collection a `:` is the value indicator.
        check("a: [\"k\":@0]\n", &s, Ok("a: [\"k\":\"a, b\"]\n"));
        check("a: {'k' :@0}\n", &s, Ok("a: {'k' :\"a, b\"}\n"));
        check("a: [[k]:@0]\n", &s, Ok("a: [[k]:\"a, b\"]\n"));
        check("a: [k:, @0]\n", &s, Ok("a: [k:, \"a, b\"]\n"));
    }

    #[test]
    fn refusals() {
        let s = [slot("\"a, b\"", "a, b"), slot(" x", " x")];
        check("a: &@0 x\n", &s, Err((1, "anchor, alias or tag")));
        check("a: \"\\@0\"\n", &s, Err((1, "backslash")));
        check("a: [x\n  @0]\n", &s, Err((2, "may continue")));
        check("a: |\n  @1\n", &s, Err((2, "cannot start a block scalar")));
        check("a: \u{f8f0}9\u{f8f1}\n", &s, Err((1, "reserved character")));
        check("a: \u{f8f1}\n", &s, Err((1, "reserved character")));
        check("a: '@0\n", &s, Err((1, "unterminated")));
        // Many values on one line: linear, not quadratic, in the line's length.
        let long = format!("a: [{}]\n", format!("{}, ", reference(0)).repeat(100_000));
        assert_eq!(splice(&long, &s[..1], 1 << 24).unwrap().len(), long.len() - 100_000);
        let big = [slot("xxxx", "xxxx")];
        let src = format!("a: {}\n", reference(0).repeat(4));
        assert!(splice(&src, &big, 10).unwrap_err().message.contains("larger than 10"));
    }
}
