//! `--versions-report` on the five real binaries (Salt's `--versions-report` layout, one
//! implementation in `halite_common::versions`), and `halite-run manage.versions` against
//! real and hand-driven minions.

use halite_tests::{bin, run};
use std::process::Command;

const BINARIES: [&str; 5] =
    ["halite-master", "halite-minion", "halite", "halite-key", "halite-run"];

#[test]
fn every_binary_prints_the_same_versions_report_in_salts_layout() {
    let mut reports = Vec::new();
    for name in BINARIES {
        // No config is read: the report works on a host where nothing is set up yet.
        let out = run(Command::new(bin(name)).args(["-c", "/nonexistent", "--versions-report"]));
        assert_eq!(out.status, Some(0), "{name}: {out:?}");
        assert_eq!(out.stderr, "", "{name}");
        reports.push(out.stdout);
    }
    assert!(reports.iter().all(|r| *r == reports[0]), "the binaries disagree: {reports:#?}");
    let report = &reports[0];
    let lines: Vec<&str> = report.lines().collect();
    let titles: Vec<&str> = lines.iter().copied().filter(|l| l.ends_with(':')).collect();
    assert_eq!(
        titles,
        ["Halite Version:", "Rust Version:", "Dependency Versions:", "System Versions:"],
        "{report}"
    );
    // Every section ends with Salt's line of one space; every row is `name: value` with the
    // names right-aligned to one column.
    assert_eq!(lines.iter().filter(|l| **l == " ").count(), 4, "{report}");
    assert!(report.ends_with("\n \n"), "{report:?}");
    let rows: Vec<&str> =
        lines.iter().copied().filter(|l| *l != " " && !titles.contains(l)).collect();
    let colon = rows[0].find(": ").expect("a row");
    for row in &rows {
        assert_eq!(row.find(": "), Some(colon), "misaligned row {row:?} in\n{report}");
        assert!(row.starts_with(' '), "{row:?}");
    }
    let value = |name: &str| {
        rows.iter()
            .find_map(|r| r.trim_start().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} row in\n{report}"))
    };
    assert_eq!(value("Halite"), env!("CARGO_PKG_VERSION"));
    for name in ["libsodium", "mio", "minijinja", "serde_json", "sodiumoxide", "rustc"] {
        assert!(value(name).chars().next().is_some_and(|c| c.is_ascii_digit()), "{name}");
    }
    let uname = |flag: &str| run(Command::new("uname").arg(flag)).stdout.trim().to_string();
    assert_eq!(value("system"), uname("-s"));
    assert_eq!(value("release"), uname("-r"));
    assert_eq!(value("machine"), uname("-m"));
}
