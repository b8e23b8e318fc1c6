//! Minion id validation, applied before an id is ever used to build a path.

use std::fmt;

/// Longest id accepted, in bytes (a file name must fit in 255).
pub const MAX_ID_BYTES: usize = 200;

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    Empty,
    TooLong(usize),
    /// Contains `/`, `\`, NUL, a control character, or a glob/list character
    /// (`*`, `?`, `[`, `]`, `,`) that would widen a target or a key match built from it.
    BadChar(char),
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
        }
    }
}

impl std::error::Error for IdError {}

/// Accepts what Salt's `valid_id` accepts (spaces, dots inside, unicode) minus anything that
/// could name another file (separators, NUL, control characters, a leading `.`, `..`) or that a
/// glob or list built from the id would read as more than one minion (`*?[],`): reactors paste
/// ids into `match:` and `tgt:`, so an id like `Min,*` must never exist.
pub fn validate_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong(id.len()));
    }
    let forbidden =
        |c: char| matches!(c, '/' | '\\' | '*' | '?' | '[' | ']' | ',') || c.is_control();
    if let Some(c) = id.chars().find(|&c| forbidden(c)) {
        return Err(IdError::BadChar(c));
    }
    if id.starts_with('.') || id.contains("..") {
        return Err(IdError::Dots);
    }
    Ok(())
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
        ] {
            assert_eq!(validate_id(bad), Err(err), "{bad:?}");
        }
    }
}
