//! Minion id validation, applied before an id is ever used to build a path.

use std::fmt;

/// Longest id accepted, in bytes (a file name must fit in 255).
pub const MAX_ID_BYTES: usize = 200;

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    Empty,
    TooLong(usize),
    /// Contains `/`, `\`, NUL, a control character, an invisible format character (bidi
    /// overrides, zero-width characters), a line or paragraph separator, or a glob/list
    /// character (`*`, `?`, `[`, `]`, `,`) that would widen a target or a key match built from it.
    BadChar(char),
    /// Starts or ends with whitespace: shown the same as the trimmed id, and out of reach of
    /// `halite-key`, which trims its patterns.
    EdgeSpace,
    /// Starts with `.` (hidden and temp files), or contains `..`.
    Dots,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Empty => f.write_str("minion id is empty"),
            IdError::TooLong(n) => write!(f, "minion id is {n} bytes, over {MAX_ID_BYTES}"),
            IdError::BadChar(c) => write!(f, "minion id contains forbidden character {c:?}"),
            IdError::Dots => f.write_str("minion id starts with '.' or contains '..'"),
            IdError::EdgeSpace => f.write_str("minion id starts or ends with whitespace"),
        }
    }
}

impl std::error::Error for IdError {}

/// Accepts what Salt's `valid_id` accepts (spaces, dots inside, unicode) minus anything that
/// could name another file (separators, NUL, control characters, a leading `.`, `..`) or that a
/// glob or list built from the id would read as more than one minion (`*?[],`): reactors paste
/// ids into `match:` and `tgt:`, so an id like `Min,*` must never exist. Ids are also shown to
/// the operator who accepts keys, so nothing that changes how the others display is allowed:
/// no Unicode control (Cc), format (Cf: bidi overrides, zero-width characters) or separator
/// (Zl, Zp) characters, and no whitespace at either end. Salt is laxer here on purpose.
pub fn validate_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong(id.len()));
    }
    let forbidden = |c: char| {
        matches!(c, '/' | '\\' | '*' | '?' | '[' | ']' | ',') || c.is_control() || is_invisible(c)
    };
    if let Some(c) = id.chars().find(|&c| forbidden(c)) {
        return Err(IdError::BadChar(c));
    }
    if id.starts_with(char::is_whitespace) || id.ends_with(char::is_whitespace) {
        return Err(IdError::EdgeSpace);
    }
    if id.starts_with('.') || id.contains("..") {
        return Err(IdError::Dots);
    }
    Ok(())
}

/// Unicode's format characters (general category Cf, Unicode 15) and the line and paragraph
/// separators (Zl, Zp): invisible, or they reorder or break the text around them.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{890}'..='\u{891}'
        | '\u{8e2}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
        | '\u{110bd}' | '\u{110cd}' | '\u{13430}'..='\u{1343f}' | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}' | '\u{e0001}' | '\u{e0020}'..='\u{e007f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for good in ["minion1", "Minion2", "web-1.example.com", "with space", "ünïcode", "a.b"] {
            assert_eq!(validate_id(good), Ok(()), "{good}");
        }
        let long = "x".repeat(MAX_ID_BYTES + 1);
        for (bad, err) in [
            ("", IdError::Empty),
            (long.as_str(), IdError::TooLong(MAX_ID_BYTES + 1)),
            ("../x", IdError::BadChar('/')),
            ("a/../b", IdError::BadChar('/')),
            ("a\\b", IdError::BadChar('\\')),
            ("nul\0", IdError::BadChar('\0')),
            ("new\nline", IdError::BadChar('\n')),
            ("esc\x1b", IdError::BadChar('\x1b')),
            ("..", IdError::Dots),
            (".", IdError::Dots),
            ("a..b", IdError::Dots),
            (".hidden", IdError::Dots),
            (".tmp-x", IdError::Dots),
            ("Min,*", IdError::BadChar(',')),
            ("web*", IdError::BadChar('*')),
            ("w?b", IdError::BadChar('?')),
            ("w[1]", IdError::BadChar('[')),
            // Spoofing `halite-key -L`: bidi overrides and isolates, invisible and line
            // separators, and ids that differ from another only by edge whitespace.
            ("evil\u{202e}gnp.exe", IdError::BadChar('\u{202e}')),
            ("a\u{202a}b", IdError::BadChar('\u{202a}')),
            ("a\u{2066}b", IdError::BadChar('\u{2066}')),
            ("a\u{2069}", IdError::BadChar('\u{2069}')),
            ("web1\u{2028}web2", IdError::BadChar('\u{2028}')),
            ("web1\u{2029}web2", IdError::BadChar('\u{2029}')),
            ("zero\u{200b}width", IdError::BadChar('\u{200b}')),
            ("bom\u{feff}", IdError::BadChar('\u{feff}')),
            ("soft\u{ad}hyphen", IdError::BadChar('\u{ad}')),
            ("tag\u{e0041}", IdError::BadChar('\u{e0041}')),
            ("c1\u{85}", IdError::BadChar('\u{85}')),
            ("trailing ", IdError::EdgeSpace),
            (" leading", IdError::EdgeSpace),
            ("nbsp\u{a0}", IdError::EdgeSpace),
            ("\u{3000}ideographic", IdError::EdgeSpace),
        ] {
            assert_eq!(validate_id(bad), Err(err), "{bad:?}");
        }
    }
}
