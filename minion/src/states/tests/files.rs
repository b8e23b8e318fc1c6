//! The `file` states, one state per case, in a fresh directory.

use super::super::perms::{default_file_mode, me};
use super::*;
use std::os::unix::fs::PermissionsExt;

/// Runs `body` (one state; `{d}` is the temp directory) and returns its result.
#[track_caller]
fn one(dir: &TempDir, extra: &[(&str, &str)], body: &str, test: bool) -> Map<String, Value> {
    let body = body.replace("{d}", &dir.root().display().to_string());
    let mut files: Vec<(&str, &str)> = vec![("one.sls", &body)];
    files.extend_from_slice(extra);
    let fs = MemFs::new(&files);
    let answer = sls(&fs, "one", &opts(test));
    let r = results(&answer);
    assert_eq!(r.len(), 1, "{}", answer.value);
    r.into_iter().next().unwrap().1
}

#[track_caller]
fn check(ret: &Map<String, Value>, result: Value, comment: &str, changes: Value) {
    assert_eq!(
        (&ret["result"], ret["comment"].as_str().unwrap_or("?"), &ret["changes"]),
        (&result, comment, &changes)
    );
}

fn mode(path: &str) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn managed_options() {
    let dir = TempDir::new();
    let f = dir.path("f");
    let ret = one(
        &dir,
        &[],
        "{d}/f:\n  file.managed:\n    - contents:\n      - a\n      - b\n    - mode: 600\n",
        false,
    );
    check(
        &ret,
        json!(true),
        &format!("File {f} updated"),
        json!({"diff": "New file", "mode": "0600"}),
    );
    assert_eq!((std::fs::read_to_string(&f).unwrap(), mode(&f)), ("a\nb\n".to_string(), 0o600));

    let ret = one(
        &dir,
        &[],
        "{d}/f:\n  file.managed:\n    - contents: |\n        a\n        b\n    - mode: '0640'\n",
        false,
    );
    check(&ret, json!(true), &format!("File {f} updated"), json!({"mode": "0640"}));

    std::fs::write(&f, "local edit\n").unwrap();
    let ret = one(
        &dir,
        &[],
        "{d}/f:\n  file.managed:\n    - contents: other\n    - replace: False\n",
        false,
    );
    check(
        &ret,
        json!(true),
        &format!("File {f} exists with proper permissions. No changes made."),
        json!({}),
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "local edit\n");

    let ret = one(&dir, &[], "{d}/f:\n  file.managed:\n    - contents: new text\n", false);
    check(
        &ret,
        json!(true),
        &format!("File {f} updated"),
        json!({"diff": "--- \n+++ \n@@ -1 +1 @@\n-local edit\n+new text\n"}),
    );
    assert_eq!(mode(&f), 0o640, "an existing file keeps its mode");

    let ret = one(&dir, &[], "{d}/deep/er/f:\n  file.managed:\n    - contents: x\n", false);
    check(&ret, json!(false), "Parent directory not present", json!({}));
    let ret = one(
        &dir,
        &[],
        "{d}/deep/er/f:\n  file.managed:\n    - contents: x\n    - makedirs: True\n",
        false,
    );
    assert_eq!(ret["result"], json!(true), "{ret:?}");

    let ret = one(&dir, &[], "{d}/g:\n  file.managed:\n    - source: salt://nope\n", false);
    check(&ret, json!(false), "Source file salt://nope not found in saltenv 'base'", json!({}));

    let empty = dir.path("empty");
    let ret = one(&dir, &[], "{d}/empty:\n  file.managed\n", false);
    check(
        &ret,
        json!(true),
        "Empty file",
        json!({"new": format!("file {empty} created"), "mode": default_file_mode()}),
    );

    let local = dir.path("local-source");
    std::fs::write(&local, "from disk\n").unwrap();
    let ret =
        one(&dir, &[], &format!("{{d}}/copy:\n  file.managed:\n    - source: {local}\n"), false);
    assert_eq!(ret["result"], json!(true), "{ret:?}");
    assert_eq!(std::fs::read_to_string(dir.path("copy")).unwrap(), "from disk\n");

    let ret = one(
        &dir,
        &[("bin", "\0\x01")],
        "{d}/copy:\n  file.managed:\n    - source: salt://bin\n",
        false,
    );
    assert_eq!(ret["changes"], json!({"diff": "Replace text file with binary file"}));
}

/// A user and a group of this host other than the minion's own: (name, id).
fn someone_else() -> ((String, u32), (String, u32)) {
    let me = me();
    let pick = |file: &str, not: u32| {
        let text = std::fs::read_to_string(file).unwrap();
        text.lines()
            .find_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                let id = f.get(2)?.parse::<u32>().ok()?;
                (id != not).then(|| (f[0].to_string(), id))
            })
            .expect("a second user and group")
    };
    (pick("/etc/passwd", me.uid), pick("/etc/group", me.gid))
}

fn owner(path: &str) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

/// `user`/`group` are set with chown when the minion may (root), and reported as Salt's
/// `check_perms` does when it may not.
#[test]
fn managed_directory_and_symlink_owners() {
    let dir = TempDir::new();
    let me = me();
    let ((user, uid), (group, gid)) = someone_else();
    let f = dir.path("f");
    let body = format!(
        "{{d}}/f:\n  file.managed:\n    - contents: x\n    - user: {uid}\n    - group: {group}\n"
    );
    let ret = one(&dir, &[], &body, true);
    check(&ret, Value::Null, &format!("The file {f} is set to be changed\nNote: No changes made, actual changes may\nbe different due to other states."), json!({"newfile": f}));
    let ret = one(&dir, &[], &body, false);
    let created =
        json!({"diff": "New file", "mode": default_file_mode(), "user": user, "group": group});
    if me.uid == 0 {
        check(&ret, json!(true), &format!("File {f} updated"), created);
        assert_eq!(owner(&f), (uid, gid));
        let again = one(&dir, &[], &body, false);
        check(&again, json!(true), &format!("File {f} is in the correct state"), json!({}));
        let back = body.replace(&format!("user: {uid}"), "user: 0");
        let ret = one(&dir, &[], &back, true);
        assert_eq!((&ret["result"], &ret["changes"]), (&Value::Null, &json!({"user": me_name()})));
        let ret = one(&dir, &[], &back, false);
        check(&ret, json!(true), &format!("File {f} updated"), json!({"user": me_name()}));
        assert_eq!(owner(&f), (0, gid));
        // A chown clears setuid; the mode asked for must survive it, new file or not.
        let suid = dir.path("suid");
        let body = format!(
            "{{d}}/suid:\n  file.managed:\n    - contents: x\n    - mode: 4755\n    - user: {uid}\n"
        );
        let ret = one(&dir, &[], &body, false);
        assert_eq!(ret["result"], json!(true), "{ret:?}");
        assert_eq!((mode(&suid), owner(&suid).0), (0o4755, uid));
        let again = one(&dir, &[], &body.replace("contents: x", "contents: y"), false);
        assert_eq!(again["changes"].get("mode"), None, "{again:?}");
        assert_eq!(mode(&suid), 0o4755);
        // A user's setuid file given to root, no mode asked for: the chown cleared setuid
        // and it stays cleared (it was put back, and the user's program ran as root).
        std::fs::write(dir.path("theirs"), "#!/bin/sh\n").unwrap();
        std::os::unix::fs::chown(dir.path("theirs"), Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(dir.path("theirs"), PermissionsExt::from_mode(0o4755)).unwrap();
        let body = "{d}/theirs:\n  file.managed:\n    - replace: False\n    - user: 0\n";
        let ret = one(&dir, &[], body, false);
        assert_eq!(ret["result"], json!(true), "{ret:?}");
        assert_eq!((mode(&dir.path("theirs")), owner(&dir.path("theirs")).0), (0o755, 0));
        // New contents, an owner and a mode: all three given to the new file before it has
        // the name (changed by name afterwards, a file swapped in meanwhile got them).
        std::fs::write(dir.path("f3"), "old\n").unwrap();
        let body = format!(
            "{{d}}/f3:\n  file.managed:\n    - contents: new\n    - user: {uid}\n    - mode: 600\n"
        );
        let ret = one(&dir, &[], &body, false);
        let keys: Vec<&String> = ret["changes"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["diff", "user", "mode"], "{ret:?}");
        assert_eq!((mode(&dir.path("f3")), owner(&dir.path("f3")).0), (0o600, uid));
        // Root's setuid program, its name replaced since, left in a user's directory: new
        // contents there keep the owner, not the setuid bit.
        let home = dir.path("home");
        std::fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
        std::fs::write(format!("{home}/tool"), "ELF").unwrap();
        std::fs::set_permissions(format!("{home}/tool"), PermissionsExt::from_mode(0o4755))
            .unwrap();
        let ret =
            one(&dir, &[], "{d}/home/tool:\n  file.managed:\n    - contents: admin's\n", false);
        assert_eq!(ret["result"], json!(true), "{ret:?}");
        let tool = format!("{home}/tool");
        assert_eq!((mode(&tool), owner(&tool).0), (0o755, 0));
        // Root's old shadow there (linked by the user before `passwd` replaced it): kept
        // contents are not given to the user, nor made readable to everyone.
        std::fs::write(format!("{home}/old"), "root:$6$").unwrap();
        std::fs::set_permissions(format!("{home}/old"), PermissionsExt::from_mode(0o640)).unwrap();
        let body =
            format!("{{d}}/home/old:\n  file.managed:\n    - replace: False\n    - user: {uid}\n");
        let old = format!("{home}/old");
        let refused = format!(
            "Failed to change permissions: {old} is uid 0's, mode 0640, in a directory other \
             users can write: not made readable to others in place"
        );
        let ret = one(&dir, &[], &body, false);
        check(&ret, json!(false), &refused, json!({}));
        let body = "{d}/home/old:\n  file.managed:\n    - replace: False\n    - mode: 644\n";
        let ret = one(&dir, &[], body, false);
        assert_eq!(ret["result"], json!(false), "{ret:?}");
        let comment = ret["comment"].as_str().unwrap();
        assert!(comment.ends_with("not made readable to others in place"), "{comment}");
        assert_eq!((mode(&old), owner(&old).0), (0o640, 0));
        // A group and a mode that only together give the group read: refused before either
        // is made (the group went through, then the mode was refused, on every run).
        std::fs::set_permissions(&old, PermissionsExt::from_mode(0o600)).unwrap();
        let body = format!(
            "{{d}}/home/old:\n  file.managed:\n    - replace: False\n    - group: {group}\n    - mode: 640\n"
        );
        let ret = one(&dir, &[], &body, false);
        assert_eq!(ret["result"], json!(false), "{ret:?}");
        assert_eq!((mode(&old), owner(&old)), (0o600, (0, 0)), "half changed: {ret:?}");
        // The user makes its home setgid (its group): root's 0640 file there, given new
        // contents, keeps root's group (the new file took the directory's).
        std::fs::set_permissions(&home, PermissionsExt::from_mode(0o2755)).unwrap();
        std::fs::write(format!("{home}/db.conf"), "old secret").unwrap();
        std::os::unix::fs::chown(format!("{home}/db.conf"), Some(0), Some(0)).unwrap();
        std::fs::set_permissions(format!("{home}/db.conf"), PermissionsExt::from_mode(0o640))
            .unwrap();
        let body = "{d}/home/db.conf:\n  file.managed:\n    - contents: new secret\n";
        let ret = one(&dir, &[], body, false);
        assert_eq!(ret["result"], json!(true), "{ret:?}");
        let db = format!("{home}/db.conf");
        assert_eq!((mode(&db), owner(&db)), (0o640, (0, 0)));
        // replace: False through a symlink: the owner and the mode both go to the target.
        let target = dir.path("target");
        std::fs::write(&target, "t").unwrap();
        std::os::unix::fs::symlink(&target, dir.path("via")).unwrap();
        let body = format!(
            "{{d}}/via:\n  file.managed:\n    - replace: False\n    - contents: x\n    - mode: 600\n    - user: {uid}\n"
        );
        let ret = one(&dir, &[], &body, false);
        assert_eq!(ret["result"], json!(true), "{ret:?}");
        assert_eq!((mode(&target), owner(&target).0), (0o600, uid));
        assert_eq!(owner(&dir.path("via")).0, 0, "the link itself is untouched");
    } else {
        let mut changes = created;
        changes.as_object_mut().unwrap().retain(|k, _| k == "diff" || k == "mode");
        check(
            &ret,
            json!(false),
            &format!("Failed to change user to {user}\nFailed to change group to {group}"),
            changes,
        );
        assert_eq!(owner(&f), (me.uid, me.gid), "nothing half-changed");
    }
    let ret = one(
        &dir,
        &[],
        "{d}/f:\n  file.managed:\n    - contents: x\n    - user: no-such-user-here\n",
        false,
    );
    check(&ret, json!(false), "User no-such-user-here is not available ", json!({}));

    let d = dir.path("d");
    let body = format!("{{d}}/d:\n  file.directory:\n    - user: {user}\n");
    let ret = one(&dir, &[], &body, false);
    if me.uid == 0 {
        check(
            &ret,
            json!(true),
            &format!("Directory {d} updated"),
            json!({d.clone(): "New Dir", "user": user}),
        );
        assert_eq!(owner(&d).0, uid);
        let ret = one(&dir, &[], &body, false);
        check(&ret, json!(true), &format!("The directory {d} is in the correct state"), json!({}));
    } else {
        check(
            &ret,
            json!(false),
            &format!("Failed to change user to {user}"),
            json!({d.clone(): "New Dir"}),
        );
    }

    let link = dir.path("link");
    let body =
        format!("{{d}}/link:\n  file.symlink:\n    - target: /etc/hosts\n    - user: {user}\n");
    let ret = one(&dir, &[], &body, false);
    let made = format!("Created new symlink {link} -> /etc/hosts");
    if me.uid == 0 {
        check(&ret, json!(true), &made, json!({"new": link}));
        assert_eq!(owner(&link).0, uid, "the link itself, not /etc/hosts");
        assert_eq!(owner("/etc/hosts").0, 0);
    } else {
        check(
            &ret,
            json!(false),
            &format!("{made}, but was unable to set ownership to {user}:{}", ret_group(uid)),
            json!({"new": link}),
        );
    }
}

fn me_name() -> String {
    super::super::perms::user_name(me().uid)
}

/// The primary group's name of `uid`, as `file.symlink` defaults it.
fn ret_group(uid: u32) -> String {
    let gid = super::super::perms::primary_group(uid).unwrap();
    super::super::perms::group_name(gid)
}

#[test]
fn directory_states() {
    let dir = TempDir::new();
    let d = dir.path("a/b");
    let body = "{d}/a/b:\n  file.directory:\n    - mode: 750\n    - makedirs: True\n";
    let ret = one(&dir, &[], body, true);
    check(
        &ret,
        Value::Null,
        &format!("The following files will be changed:\n{d}: directory - new\n"),
        json!({d.clone(): {"directory": "new"}}),
    );
    let ret = one(&dir, &[], body, false);
    check(&ret, json!(true), &format!("Directory {d} updated"), json!({d.clone(): "New Dir"}));
    assert_eq!(mode(&d), 0o750);
    let ret = one(&dir, &[], body, false);
    check(&ret, json!(true), &format!("The directory {d} is in the correct state"), json!({}));
    let ret = one(&dir, &[], "{d}/a/b:\n  file.directory:\n    - dir_mode: 700\n", false);
    check(&ret, json!(true), &format!("Directory {d} updated"), json!({"mode": "0700"}));
    let ret = one(&dir, &[], "{d}/x/y:\n  file.directory\n", false);
    check(&ret, json!(false), &format!("No directory to create {} in", dir.path("x/y")), json!({}));
    std::fs::write(dir.path("file"), "").unwrap();
    let ret = one(&dir, &[], "{d}/file:\n  file.directory\n", false);
    check(
        &ret,
        json!(false),
        &format!("Specified location {} exists and is a file", dir.path("file")),
        json!({}),
    );
}

#[test]
fn absent_states() {
    let dir = TempDir::new();
    let (f, d) = (dir.path("f"), dir.path("d"));
    std::fs::write(&f, "").unwrap();
    std::fs::create_dir(&d).unwrap();
    let ret = one(&dir, &[], "{d}/f:\n  file.absent\n", true);
    check(&ret, Value::Null, &format!("File {f} is set for removal"), json!({"removed": f}));
    let ret = one(&dir, &[], "{d}/f:\n  file.absent\n", false);
    check(&ret, json!(true), &format!("Removed file {f}"), json!({"removed": f}));
    let ret = one(&dir, &[], "{d}/f:\n  file.absent\n", false);
    check(&ret, json!(true), &format!("File {f} is not present"), json!({}));
    let ret = one(&dir, &[], "{d}/d:\n  file.absent\n", false);
    check(&ret, json!(true), &format!("Removed directory {d}"), json!({"removed": d}));
    assert!(!Path::new(&d).exists());
    let ret = one(&dir, &[], "relative:\n  file.absent\n", false);
    check(&ret, json!(false), "Specified file relative is not an absolute path", json!({}));
}

#[test]
fn symlink_states() {
    let dir = TempDir::new();
    let link = dir.path("link");
    let me = me();
    let body = "{d}/link:\n  file.symlink:\n    - target: /etc/hostname\n";
    let ret = one(&dir, &[], body, true);
    check(
        &ret,
        Value::Null,
        &format!("Symlink {link} to /etc/hostname is set for creation"),
        json!({"new": link}),
    );
    let ret = one(&dir, &[], body, false);
    check(
        &ret,
        json!(true),
        &format!("Created new symlink {link} -> /etc/hostname"),
        json!({"new": link}),
    );
    let ret = one(&dir, &[], body, false);
    check(
        &ret,
        json!(true),
        &format!("Symlink {link} is present and owned by {}:{}", me_name(), ret_group(me.uid)),
        json!({}),
    );
    let ret = one(&dir, &[], "{d}/link:\n  file.symlink:\n    - target: /etc/hosts\n", false);
    check(
        &ret,
        json!(true),
        &format!("Set target of symlink {link} -> /etc/hosts"),
        json!({"change": link}),
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/etc/hosts"));
    let file = dir.path("file");
    std::fs::write(&file, "").unwrap();
    let ret = one(&dir, &[], "{d}/file:\n  file.symlink:\n    - target: /etc/hosts\n", false);
    check(
        &ret,
        json!(false),
        &format!("File exists where the symlink {file} should be"),
        json!({}),
    );
    let ret = one(
        &dir,
        &[],
        "{d}/file:\n  file.symlink:\n    - target: /etc/hosts\n    - force: True\n",
        false,
    );
    check(
        &ret,
        json!(true),
        &format!("Created new symlink {file} -> /etc/hosts"),
        json!({"forced": "Symlink was forcibly replaced", "new": file}),
    );
}

#[test]
fn append_states() {
    let dir = TempDir::new();
    let f = dir.path("f");
    std::fs::write(&f, "first\nsecond").unwrap();
    let body = "{d}/f:\n  file.append:\n    - text:\n      - second\n      - third  line\n";
    let ret = one(&dir, &[], body, true);
    check(
        &ret,
        Value::Null,
        &format!("File {f} is set to be updated"),
        json!({"diff": "--- \n\n+++ \n\n@@ -1,2 +1,3 @@\n\n first\n second\n+third  line"}),
    );
    let ret = one(&dir, &[], body, false);
    check(
        &ret,
        json!(true),
        "Appended 1 lines",
        json!({"diff": "--- \n\n+++ \n\n@@ -1,2 +1,3 @@\n\n first\n second\n+third  line"}),
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "first\nsecond\nthird  line\n");
    let ret = one(&dir, &[], "{d}/f:\n  file.append:\n    - text: third line\n", false);
    check(&ret, json!(true), &format!("File {f} is in correct state"), json!({}));
    let ret = one(&dir, &[], "{d}/new:\n  file.append:\n    - text: hello\n", false);
    assert_eq!(ret["comment"], json!("Appended 1 lines"));
    assert_eq!(std::fs::read_to_string(dir.path("new")).unwrap(), "hello\n");
    // Where its directory is missing: created only with makedirs.
    let deep = dir.path("x/y/f");
    let body = "{d}/x/y/f:\n  file.append:\n    - text: hi\n";
    let ret = one(&dir, &[], body, true);
    check(&ret, Value::Null, &format!("File {deep} is set to be created"), json!({"new": deep}));
    let ret = one(&dir, &[], body, false);
    let missing = format!("Directory not present, and makedirs is false: {}", dir.path("x/y"));
    check(&ret, json!(false), &missing, json!({}));
    let ret = one(&dir, &[], &format!("{body}    - makedirs: True\n"), false);
    assert_eq!(ret["comment"], json!("Appended 1 lines"), "{ret:?}");
    assert_eq!(std::fs::read_to_string(&deep).unwrap(), "hi\n");
}
