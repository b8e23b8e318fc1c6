//! The commented default configs shipped in `dist/etc/` (installed as `/etc/halite/master`
//! and `/etc/halite/minion`) stay true: uncommented, each parses without a problem or an
//! unknown key, names every key the daemon reads, and gives exactly the default config.

use halite_common::config::{parse_master, parse_minion, Loaded};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn dist(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/etc").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The file with its settings uncommented. Salt's convention: `#key: value` (no space after
/// the `#`) is a setting, `#  ...` right below one continues its value, `# text` is prose.
fn uncomment(text: &str) -> String {
    let mut out = String::new();
    let mut in_setting = false;
    for line in text.lines() {
        let setting = line.strip_prefix('#').filter(|rest| {
            let starts_key = rest.starts_with(|c: char| c.is_ascii_lowercase());
            let continues = in_setting && rest.starts_with("  ");
            starts_key || continues
        });
        in_setting = setting.is_some();
        out.push_str(setting.unwrap_or(""));
        out.push('\n');
    }
    out
}

/// The top-level keys the file sets once uncommented.
fn keys(uncommented: &str) -> BTreeSet<String> {
    uncommented
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
        .collect()
}

#[track_caller]
fn check_keys<T>(name: &str, loaded: &Loaded<T>, uncommented: &str) {
    assert_eq!(loaded.warnings, Vec::<String>::new(), "dist/etc/{name} names unknown keys");
    let named = keys(uncommented);
    let missing: Vec<_> = loaded.keys.difference(&named).collect();
    assert!(missing.is_empty(), "dist/etc/{name} does not document {missing:?}");
    let extra: Vec<_> = named.difference(&loaded.keys).collect();
    assert!(extra.is_empty(), "dist/etc/{name} names keys the daemon does not read: {extra:?}");
}

#[test]
fn uncommenting_finds_settings_and_their_continuations_only() {
    let text = "# prose: not a key\n#a: 1\n#b:\n#  base:\n#    - /x\n#   e.g. c: 2\n\n#  d: 3\n";
    assert_eq!(uncomment(text), "\na: 1\nb:\n  base:\n    - /x\n   e.g. c: 2\n\n\n");
    assert_eq!(keys(&uncomment(text)), ["a", "b"].map(String::from).into());
}

#[test]
fn the_master_config_names_every_key_with_its_default() {
    let cwd = PathBuf::from("/");
    let text = uncomment(&dist("master"));
    let loaded = parse_master(&text, &cwd).unwrap_or_else(|e| panic!("dist/etc/master:\n{e}"));
    check_keys("master", &loaded, &text);

    // `event_return: redis` is the one line that shows a value rather than the default.
    let mut config = loaded.config;
    let redis = parse_master("event_return: redis", &cwd).unwrap().config.event_return;
    assert_eq!(config.event_return.take(), redis, "the redis.* lines must show the defaults");
    assert_eq!(config, parse_master("", &cwd).unwrap().config, "a line shows another value");
}

#[test]
fn the_minion_config_names_every_key_with_its_default() {
    let cwd = PathBuf::from("/");
    let text = uncomment(&dist("minion"));
    let loaded =
        parse_minion(&text, &cwd, "web1").unwrap_or_else(|e| panic!("dist/etc/minion:\n{e}"));
    check_keys("minion", &loaded, &text);
    assert_eq!(loaded.config, parse_minion("", &cwd, "web1").unwrap().config);
}
