//! Whether JSON text is byte for byte what `serde_json::to_string` writes for the `Value` it
//! parses to, so that a peer's JSON can be copied into a line instead of parsed and written
//! again. Anything else (whitespace, `\/`, `\u0041`, a float, a number out of `i64`/`u64`, a
//! duplicate key, a lone surrogate, very deep nesting) is "not canonical" and takes the
//! parsing path, which decides what it means.

/// Nesting deeper than this is left to the parser (serde_json refuses past 128).
const MAX_DEPTH: usize = 64;
/// Objects with more keys than this are left to the parser: duplicate keys are found by
/// comparing each key with the ones before it.
const MAX_KEYS: usize = 32;

/// `text` is one JSON value exactly as serde_json's compact writer writes it (with
/// `preserve_order`: keys in the order given, none twice).
pub fn is_canonical(text: &str) -> bool {
    let mut scan = Scan { bytes: text.as_bytes(), at: 0, keys: Vec::new() };
    scan.value(0) && scan.at == scan.bytes.len()
}

struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The keys of the objects being read, innermost last: one buffer for the whole text.
    keys: Vec<&'a [u8]>,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let ok = self.peek() == Some(byte);
        self.at += ok as usize;
        ok
    }

    fn word(&mut self, word: &[u8]) -> bool {
        let ok = self.bytes[self.at..].starts_with(word);
        self.at += if ok { word.len() } else { 0 };
        ok
    }

    fn value(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'n') => self.word(b"null"),
            Some(b't') => self.word(b"true"),
            Some(b'f') => self.word(b"false"),
            Some(b'"') => self.string(),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            Some(b'[') if depth < MAX_DEPTH => self.array(depth + 1),
            Some(b'{') if depth < MAX_DEPTH => self.object(depth + 1),
            _ => false,
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        self.at += 1;
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        self.at += 1;
        if self.eat(b'}') {
            return true;
        }
        let base = self.keys.len();
        let done = self.members(base, depth);
        self.keys.truncate(base);
        done
    }

    /// An object's members, after its `{`; its keys go in `self.keys` from `base`.
    fn members(&mut self, base: usize, depth: usize) -> bool {
        loop {
            let start = self.at;
            if self.peek() != Some(b'"') || !self.string() {
                return false;
            }
            // Canonical strings are equal exactly when their texts are.
            let (bytes, key) = (self.bytes, start..self.at);
            let seen = &self.keys[base..];
            if seen.len() == MAX_KEYS || seen.contains(&&bytes[key.clone()]) {
                return false;
            }
            self.keys.push(&bytes[key]);
            if !self.eat(b':') || !self.value(depth) {
                return false;
            }
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    /// A string as serde_json escapes it: `"` and `\` as `\"` and `\\`; backspace, tab,
    /// newline, form feed and carriage return by their short escapes; other control characters
    /// as `\u00xx` in lowercase hex; everything else (DEL and non-ASCII included) as it is.
    /// The text is a `&str`, so what is not escaped is valid UTF-8 already.
    fn string(&mut self) -> bool {
        self.at += 1;
        loop {
            let Some(byte) = self.peek() else { return false };
            self.at += 1;
            match byte {
                b'"' => return true,
                0x00..=0x1f => return false,
                b'\\' => {
                    let Some(escape) = self.peek() else { return false };
                    self.at += 1;
                    match escape {
                        b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r' => {}
                        b'u' => {
                            let Some(hex) = self.bytes.get(self.at..self.at + 4) else {
                                return false;
                            };
                            self.at += 4;
                            let code = match hex {
                                [b'0', b'0', hi @ (b'0' | b'1'), lo] => match lo {
                                    b'0'..=b'9' => (hi - b'0') * 16 + (lo - b'0'),
                                    b'a'..=b'f' => (hi - b'0') * 16 + (lo - b'a' + 10),
                                    _ => return false,
                                },
                                _ => return false,
                            };
                            if matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return false; // written with its short escape
                            }
                        }
                        _ => return false,
                    }
                }
                _ => {}
            }
        }
    }

    /// An integer serde_json reads as `u64` or `i64` and writes back with the same digits:
    /// no leading zero, no `-0`, within range. Floats are not canonical (their shortest
    /// form is the writer's business).
    fn integer(&mut self) -> bool {
        let start = self.at;
        let negative = self.eat(b'-');
        let digits = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        let text = &self.bytes[digits..self.at];
        if text.is_empty() || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return false;
        }
        if text[0] == b'0' {
            return text.len() == 1 && !negative;
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).expect("ASCII digits");
        match negative {
            true => text.parse::<i64>().is_ok(),
            false => text.parse::<u64>().is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What the canonical path relies on: text it accepts parses, and writes back unchanged.
    #[track_caller]
    fn check(text: &str) -> bool {
        let canonical = is_canonical(text);
        if canonical {
            let value: Value = serde_json::from_str(text).expect("canonical text parses");
            assert_eq!(serde_json::to_string(&value).unwrap(), text);
        }
        canonical
    }

    #[test]
    fn what_serde_json_writes_is_canonical() {
        for text in [
            "null",
            "true",
            "0",
            "-1",
            "18446744073709551615",
            "-9223372036854775808",
            r#""""#,
            r#""a\"b\\c\nd\te\u0000\u001f""#,
            "\"\u{7f}é😀\"",
            "[]",
            "{}",
            r#"{"a":[1,{"b":null}],"c":"d"}"#,
            r#"{"b":1,"a":2}"#,
        ] {
            assert!(check(text), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(check(&deep));
    }

    #[test]
    fn anything_the_writer_would_change_is_not() {
        for text in [
            "",
            " 1",
            "1 ",
            "{\"a\":\n1}",
            "[1, 2]",
            r#""\/""#,
            r#""\u0041""#,
            r#""\u000A""#,
            r#""\u000a""#,
            r#""\ud800""#,
            r#""\ud83d\ude00""#,
            "\"a\nb\"",
            "1.0",
            "1e3",
            "-0",
            "01",
            "18446744073709551616",
            "-9223372036854775809",
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,}"#,
            "[1,]",
            "nul",
            "[",
            "\"",
            r#""\"#,
            r#""\u00"#,
        ] {
            assert!(!check(text), "{text:?}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(!check(&deep));
        let keys: Vec<String> = (0..=MAX_KEYS).map(|k| format!("\"k{k}\":0")).collect();
        assert!(!check(&format!("{{{}}}", keys.join(","))));
    }

    /// Every text made of JSON's tokens, up to five of them, that is canonical parses and
    /// writes back unchanged, and what serde_json writes for them is canonical (floats aside).
    #[test]
    fn canonical_texts_round_trip_exactly() {
        let tokens =
            ["{", "}", "[", "]", ",", ":", "\"a\"", "\"\\u0001\"", "1", "-2", "null", "2.5"];
        let mut texts = vec![String::new()];
        let mut last = texts.clone();
        for _ in 0..5 {
            last = last.iter().flat_map(|t| tokens.map(|k| format!("{t}{k}"))).collect();
            texts.extend(last.iter().cloned());
        }
        let mut canonical = 0;
        for text in &texts {
            canonical += check(text) as usize;
            // Floats are left to the writer (no token but 2.5 holds a '.').
            if let Ok(value) = serde_json::from_str::<Value>(text) {
                let written = serde_json::to_string(&value).unwrap();
                assert!(written.contains('.') || check(&written), "{text:?}");
            }
        }
        assert!(canonical >= 60, "only {canonical} canonical texts");
    }

    /// Random values (every control character, quotes, backslashes, surrogate-pair characters,
    /// integers at both ends of `i64`/`u64`, nesting): what serde_json writes is canonical;
    /// with a space or a duplicate key spliced in, it is not.
    #[test]
    fn written_values_are_canonical_and_edits_of_them_are_not() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        fn value(next: &mut dyn FnMut(u64) -> u64, depth: u32) -> Value {
            let chars = ['a', '"', '\\', '/', '\u{7f}', 'é', '😀', '\n', '\u{1}', '\u{1f}', ' '];
            match next(if depth > 3 { 5 } else { 7 }) {
                0 => Value::Null,
                1 => Value::Bool(next(2) == 0),
                2 => [0, 1, u64::MAX, i64::MAX as u64][next(4) as usize].into(),
                3 => [-1, i64::MIN][next(2) as usize].into(),
                4 => (0..next(6))
                    .map(|_| chars[next(chars.len() as u64) as usize])
                    .collect::<String>()
                    .into(),
                5 => (0..next(4)).map(|_| value(next, depth + 1)).collect(),
                _ => (0..next(4))
                    .map(|k| (format!("k{k}\u{7}"), value(next, depth + 1)))
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            }
        }
        let mut dups = 0;
        for _ in 0..20_000 {
            let written = serde_json::to_string(&value(&mut next, 0)).unwrap();
            assert!(check(&written), "{written}");
            assert!(!check(&format!("{written} ")));
            if let Some(rest) = written.strip_prefix("{\"k0\\u0007\":") {
                let doubled = format!("{{\"k0\\u0007\":null,\"k0\\u0007\":{rest}");
                assert!(!check(&doubled), "{doubled}");
                dups += 1;
            }
        }
        assert!(dups > 100, "{dups} objects with a key doubled");
    }
}
