//! `--versions-report` for every binary: Salt's `salt --versions-report` layout (salt/version.py
//! `versions_report`) with Halite's facts: its version (and git commit when the build knew
//! it), the compiler, key dependencies as `Cargo.lock` pinned them (libsodium's version as
//! loaded at run time), and the host read at run time (`uname`, os-release).

/// One report section: a title and its `(name, value)` rows; `None` prints "Not Installed".
type Section = (&'static str, Vec<(String, Option<String>)>);

const NOT_INSTALLED: &str = "Not Installed";

/// The whole report, as printed (ends with Salt's `" "` line and a newline).
pub fn report() -> String {
    format(&sections())
}

fn sections() -> Vec<Section> {
    let mut halite = vec![("Halite".to_string(), Some(env!("CARGO_PKG_VERSION").to_string()))];
    if let Some(commit) = option_env!("HALITE_GIT_COMMIT").filter(|c| !c.is_empty()) {
        halite.push(("commit".into(), Some(commit.into())));
    }
    let rustc = Some(env!("HALITE_RUSTC_VERSION").to_string()).filter(|v| !v.is_empty());
    let mut deps: Vec<(String, Option<String>)> = env!("HALITE_DEPENDENCY_VERSIONS")
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, version)| (name.to_string(), Some(version.to_string())))
        .map(|(name, version)| (name, version.filter(|v| !v.is_empty())))
        .collect();
    crate::crypto::init();
    deps.push(("libsodium".into(), Some(sodiumoxide::version::version_string().into())));
    vec![
        ("Halite Version", halite),
        ("Rust Version", vec![("rustc".into(), rustc)]),
        ("Dependency Versions", deps),
        ("System Versions", system()),
    ]
}

/// Salt's `system_information`: `uname` and os-release (`dist` as distro's short form,
/// `version` with the distribution's full name).
fn system() -> Vec<(String, Option<String>)> {
    let uname = uname();
    let release = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| os_release(&text))
        .unwrap_or_default();
    let field = |key: &str| {
        release.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_default()
    };
    let join = |parts: [&str; 3]| {
        let words: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        Some(words.join(" ")).filter(|s| !s.is_empty())
    };
    let (version_id, codename) = (field("VERSION_ID"), field("VERSION_CODENAME"));
    vec![
        ("dist".into(), join([field("ID"), version_id, codename])),
        ("locale".into(), Some("utf-8".into())),
        ("machine".into(), uname.machine),
        ("release".into(), uname.release),
        ("system".into(), uname.sysname),
        ("version".into(), join([field("NAME"), version_id, codename])),
    ]
}

#[derive(Default)]
struct Uname {
    sysname: Option<String>,
    release: Option<String>,
    machine: Option<String>,
}

fn uname() -> Uname {
    // SAFETY: `uname` fills the zeroed struct it is given; each field is NUL-terminated.
    let mut raw: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut raw) } != 0 {
        return Uname::default();
    }
    let text = |field: &[libc::c_char]| {
        let bytes: Vec<u8> = field.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
        Some(String::from_utf8_lossy(&bytes).into_owned()).filter(|s| !s.is_empty())
    };
    Uname { sysname: text(&raw.sysname), release: text(&raw.release), machine: text(&raw.machine) }
}

/// os-release(5) assignments: `KEY=value`, the value maybe in single or double quotes
/// (backslash escapes inside double quotes); comments and malformed lines skipped.
fn os_release(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((key, value)) = line.split_once('=') else { continue };
        if line.starts_with('#') || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let value = if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            let mut unescaped = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                unescaped.push(if c == '\\' { chars.next().unwrap_or('\\') } else { c });
            }
            unescaped
        } else if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            inner.to_string()
        } else {
            value.to_string()
        };
        // A report line stays one line.
        let value: String = value.chars().filter(|c| !c.is_control()).collect();
        out.push((key.to_string(), value));
    }
    out
}

/// Salt's layout: every name right-aligned to one width (the longest name of the
/// dependency and system sections, at least "Not Installed", plus one), rows sorted
/// case-insensitively, each section closed by a line holding one space.
fn format(sections: &[Section]) -> String {
    let pad = sections
        .iter()
        .filter(|(title, _)| matches!(*title, "Dependency Versions" | "System Versions"))
        .flat_map(|(_, rows)| rows.iter().map(|(name, _)| name.chars().count()))
        .chain([NOT_INSTALLED.len()])
        .max()
        .unwrap_or(0)
        + 1;
    let mut lines = Vec::new();
    for (title, rows) in sections {
        lines.push(format!("{title}:"));
        let mut rows: Vec<&(String, Option<String>)> = rows.iter().collect();
        rows.sort_by_key(|(name, _)| name.to_lowercase());
        for (name, value) in rows {
            lines.push(format!("{name:>pad$}: {}", value.as_deref().unwrap_or(NOT_INSTALLED)));
        }
        lines.push(" ".into());
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.map(String::from))).collect()
    }

    #[test]
    fn layout_is_salts() {
        let sections = vec![
            ("Halite Version", rows(&[("Halite", Some("0.1.0"))])),
            ("Dependency Versions", rows(&[("mio", Some("1.2.5")), ("argh", None)])),
            ("System Versions", rows(&[("system", Some("Linux")), ("Machine", Some("x86_64"))])),
        ];
        let expected = "Halite Version:\n        Halite: 0.1.0\n \nDependency Versions:\n\
                        \x20         argh: Not Installed\n           mio: 1.2.5\n \n\
                        System Versions:\n       Machine: x86_64\n        system: Linux\n \n";
        assert_eq!(format(&sections), expected);
        // A long name widens every row, as in Salt.
        let wide = vec![("Dependency Versions", rows(&[("minijinja-contrib-extra", Some("1"))]))];
        assert_eq!(format(&wide), "Dependency Versions:\n minijinja-contrib-extra: 1\n \n");
    }

    #[test]
    fn os_release_values_are_unquoted_and_kept_on_one_line() {
        let text = "# comment\nNAME=\"Debian GNU/Linux\"\nVERSION_ID='12'\nID=debian\n\
                    BAD LINE\nPRETTY=\"a \\\"b\\\" \\\\ c\"\nEVIL=\"x\u{1b}[2Jy\"\n";
        let got = os_release(text);
        let get = |k: &str| got.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("NAME"), Some("Debian GNU/Linux"));
        assert_eq!(get("VERSION_ID"), Some("12"));
        assert_eq!(get("ID"), Some("debian"));
        assert_eq!(get("PRETTY"), Some("a \"b\" \\ c"));
        assert_eq!(get("EVIL"), Some("x[2Jy"));
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn the_report_names_every_dependency_with_a_version() {
        let report = report();
        for name in ["Halite", "rustc", "libsodium", "minijinja", "mio", "serde_json", "machine"] {
            let line = report
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no {name} in\n{report}"));
            assert!(!line.ends_with(NOT_INSTALLED), "{line}");
        }
    }
}
