//! Command-line parsing shared by every binary: argh, but with Salt's exit status 64 for a
//! usage error (argh itself exits 1, which `halite-key` uses for "no key matched"); and Salt's
//! `key=value` split of call arguments, shared by the CLI and the minion.

use argh::FromArgs;

/// Exit status for a usage error (BSD `EX_USAGE`, as Salt's CLIs).
pub const EXIT_USAGE: i32 = 64;

/// Parses `std::env::args()` into `T`; prints help and exits 0 for `--help`, prints the error
/// and exits 64 for anything malformed.
pub fn from_env<T: FromArgs>() -> T {
    from_env_with_aliases(&[])
}

/// [`from_env`], with Salt's other spellings of a long option (`aliases`: spelling → the one
/// argh knows, e.g. `--batch` → `--batch-size`) rewritten first.
pub fn from_env_with_aliases<T: FromArgs>(aliases: &[(&str, &str)]) -> T {
    let all: Vec<String> = std::env::args().collect();
    let name = all
        .first()
        .and_then(|p| std::path::Path::new(p).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("halite")
        .to_string();
    let rest = split_long_options(&all[1.min(all.len())..], aliases);
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match T::from_args(&[&name], &rest) {
        Ok(args) => args,
        Err(early) => match early.status {
            Ok(()) => {
                print!("{}", early.output);
                std::process::exit(0);
            }
            Err(()) => {
                eprint!("{}", early.output);
                eprintln!("Run {name} --help for more information.");
                std::process::exit(EXIT_USAGE);
            }
        },
    }
}

/// `--out=json` as `--out json`: Salt's CLIs (optparse) take both spellings and argh only the
/// second; an alias becomes the name argh knows. Nothing after a `--` is touched.
fn split_long_options(args: &[String], aliases: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut options = true;
    let name_of = |name: &str| {
        aliases.iter().find(|(alias, _)| *alias == name).map_or(name, |(_, real)| real).to_string()
    };
    for arg in args {
        match arg.split_once('=') {
            Some((name, value)) if options && name.starts_with("--") && name.len() > 2 => {
                out.push(name_of(name));
                out.push(value.to_string());
            }
            _ if options && arg.starts_with("--") && arg.len() > 2 => out.push(name_of(arg)),
            _ => {
                options &= arg != "--";
                out.push(arg.clone());
            }
        }
    }
    out
}

/// `key=value` as Salt's `KWARG_REGEX` (`^([^\d\W][\w.-]*)=(?!=)(.*)$`) splits it, else None.
pub fn parse_kwarg(arg: &str) -> Option<(&str, &str)> {
    let (key, value) = arg.split_once('=')?;
    let mut chars = key.chars();
    let first = chars.next()?;
    if !(first.is_alphabetic() || first == '_') {
        return None;
    }
    if !chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return None;
    }
    if value.starts_with('=') {
        return None;
    }
    // `.` stops at a line break; `$` also matches just before a final one.
    let value = value.strip_suffix('\n').unwrap_or(value);
    if value.contains('\n') {
        return None;
    }
    Some((key, value))
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_options_may_carry_their_value_after_an_equals_sign() {
        let args: Vec<String> =
            ["--out=json", "-t", "5", "*", "cmd.run", "echo a=b", "--", "--timeout=3", "x=--y"]
                .map(String::from)
                .to_vec();
        assert_eq!(
            super::split_long_options(&args, &[]),
            ["--out", "json", "-t", "5", "*", "cmd.run", "echo a=b", "--", "--timeout=3", "x=--y"]
        );
        let empty: Vec<String> = vec!["--out=".into()];
        assert_eq!(super::split_long_options(&empty, &[]), ["--out", ""]);
        let aliased: Vec<String> =
            ["--batch", "2", "--batch=3", "--batch-size", "4", "--", "--batch"]
                .map(String::from)
                .to_vec();
        assert_eq!(
            super::split_long_options(&aliased, &[("--batch", "--batch-size")]),
            ["--batch-size", "2", "--batch-size", "3", "--batch-size", "4", "--", "--batch"]
        );
    }

    use super::*;

    #[test]
    fn kwargs() {
        for (arg, expected) in [
            ("a=b", Some(("a", "b"))),
            ("_a=", Some(("_a", ""))),
            ("a=", Some(("a", ""))),
            ("a.b-c_1=x=y", Some(("a.b-c_1", "x=y"))),
            ("_x.y-z=1=2", Some(("_x.y-z", "1=2"))),
            ("é=1", Some(("é", "1"))),
            ("a=b\n", Some(("a", "b"))),
            ("=a", None),
            ("1a=b", None),
            ("-a=b", None),
            ("a b=c", None),
            ("echo a=b", None),
            ("sed -e s/=/:/g", None),
            ("a==b", None),
            ("a=b\nc", None),
            ("ab", None),
        ] {
            assert_eq!(parse_kwarg(arg), expected, "{arg:?}");
        }
    }
}
