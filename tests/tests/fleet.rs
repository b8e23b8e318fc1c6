//! `halite`'s fleet options through the real binaries, against Salt's texts: rolling
//! batches (`-b N|N%`, `--batch-wait`, silent minions, `--static`, `--out json`, exit
//! codes), `--summary`, `--out-file`, `--hide-timeout`, and `-p`'s bar on a terminal only.

use halite_common::proto::{JobReturn, ToMaster, ToMinion};
use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::raw::RawMinion;
use halite_tests::serde_json::{self, json, Value};
use halite_tests::{bin, run, wait_until, Output};
use std::collections::HashSet;
use std::process::Command;

/// A master with auto_accept and the given real minions live.
fn cluster(ids: &[&str]) -> (Master, Vec<Minion>) {
    let master = Master::start("auto_accept: True");
    let minions: Vec<Minion> = ids.iter().map(|id| Minion::start(&master, id, id, "")).collect();
    for m in &minions {
        m.wait_authenticated();
    }
    let mut want: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    want.sort();
    wait_until(WAIT, "all minions live", || master.presence() == want);
    (master, minions)
}

/// The id lists of the `Executing run on [...]` lines, in order.
fn executing(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Executing run on [")?.strip_suffix(']'))
        .map(|ids| ids.split(", ").map(|id| id.trim_matches('\'').to_string()).collect())
        .collect()
}

/// The run jobs of a batch (list targets of `fun`) in event order, and the most of their
/// minions that were running at once as the master saw it: a job counts from its `new`
/// event, each minion until its `ret` event.
fn batch_jobs(master: &Master, fun: &str) -> (Vec<Vec<String>>, usize) {
    let (mut jobs, mut jids) = (Vec::new(), HashSet::new());
    let (mut running, mut most) = (0usize, 0usize);
    for (tag, data) in master.events() {
        if tag.ends_with("/new") && data["fun"] == fun && data["tgt_type"] == "list" {
            let minions: Vec<String> = serde_json::from_value(data["minions"].clone()).unwrap();
            running += minions.len();
            most = most.max(running);
            jobs.push(minions);
            jids.insert(data["jid"].as_str().unwrap().to_string());
        } else if let Some((jid, _)) =
            tag.strip_prefix("salt/job/").and_then(|t| t.split_once("/ret/"))
        {
            if jids.contains(jid) {
                running -= 1;
            }
        }
    }
    (jobs, most)
}

fn block(id: &str, value: &str, retcode: i32) -> String {
    format!("{id}:\n    {value}\nretcode:\n    {retcode}\n")
}

#[test]
fn a_batch_of_two_over_five_minions_never_runs_more_than_two() {
    let ids = ["m1", "m2", "m3", "m4", "m5"];
    let (master, _m) = cluster(&ids);
    let out = master.halite(&["-b", "2", "*", "test.sleep", "0.2"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    let lines = executing(&out.stdout);
    assert_eq!(lines[0], ["m1", "m2"], "{}", out.stdout);
    assert!(out.stdout.starts_with("\nExecuting run on ['m1', 'm2']\n\n"), "{}", out.stdout);
    // Every minion ran exactly once, and its return is Salt's batch block.
    let mut all: Vec<String> = lines.concat();
    all.sort();
    assert_eq!(all, ids);
    let mut rest = out.stdout.clone();
    for id in ids {
        let want = block(id, "True", 0);
        assert!(rest.contains(&want), "{id}: {}", out.stdout);
        rest = rest.replacen(&want, "", 1);
    }
    for ids in &lines {
        let quoted: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
        rest = rest.replacen(&format!("\nExecuting run on [{}]\n\n", quoted.join(", ")), "", 1);
    }
    assert_eq!(rest, "", "nothing else printed: {}", out.stdout);
    // The master's own events: the same groups were published, never more than 2 running.
    let (jobs, most) = batch_jobs(&master, "test.sleep");
    assert_eq!(jobs, lines);
    assert_eq!(most, 2, "{jobs:?}");
    // The targets were found with one ping first.
    let pings =
        master.events().into_iter().filter(|(t, d)| t.ends_with("/new") && d["fun"] == "test.ping");
    assert_eq!(pings.map(|(_, d)| d["tgt"].clone()).collect::<Vec<_>>(), [json!("*")]);
}

/// A successful `True` return to the job `p`.
fn returns_true(p: halite_common::proto::Publish) -> ToMaster {
    ToMaster::Return(JobReturn {
        jid: p.jid,
        fun: p.fun,
        fun_args: Vec::new(),
        ret: json!(true),
        retcode: 0,
        success: true,
        out: None,
        user: p.user,
    })
}

/// Answers `test.ping` only; returns once it is asked `saltutil.find_job` (the CLI is then
/// waiting for it), leaving every other job unanswered.
fn answer_pings_only(raw: &mut RawMinion) {
    loop {
        match raw.recv().expect("master keeps the session") {
            ToMinion::Publish(p) if p.fun == "test.ping" => {
                raw.send(&returns_true(p));
            }
            ToMinion::Publish(p) if p.fun == "saltutil.find_job" => return,
            ToMinion::Ping { seq } => {
                raw.send(&ToMaster::Pong { seq });
            }
            _ => {}
        }
    }
}

/// A minion's return is printed when it comes, while others still run the job: the CLI
/// keeps returns that arrive together and writes them before it waits for more (not once
/// per return, and not at the end).
#[test]
fn a_return_is_printed_while_another_minion_still_runs_the_job() {
    let (master, _m) = cluster(&["a1"]);
    let mut slow = RawMinion::authenticate(master.addr, "slow");
    wait_until(WAIT, "slow live", || master.presence() == ["a1", "slow"]);
    // A timeout past the waits below: no find_job round (whose wait writes too) before them.
    let cli =
        halite_tests::Daemon::spawn(master.halite_cmd(&["*", "test.ping", "-t", "60"]), "cli");
    let publish = loop {
        match slow.recv().expect("master keeps the session") {
            ToMinion::Publish(p) => break p,
            ToMinion::Ping { seq } => drop(slow.send(&ToMaster::Pong { seq })),
            _ => {}
        }
    };
    cli.wait_for_line(r"^a1:$", WAIT);
    cli.wait_for_line(r"^    True$", WAIT);
    assert!(!cli.lines().iter().any(|l| l.starts_with("slow")), "{:?}", cli.lines());
    slow.send(&returns_true(publish));
    cli.wait_for_line(r"^slow:$", WAIT);
}

#[test]
fn ten_percent_silent_minions_and_salts_batch_texts() {
    let (master, _m) = cluster(&["a1", "a2", "a3"]);
    // One minion answers nothing at all, one answers the ping but never its job.
    let _dead = RawMinion::authenticate(master.addr, "z-dead");
    let mut mute = RawMinion::authenticate(master.addr, "b-mute");
    wait_until(WAIT, "raw minions live", || master.presence().len() == 5);
    let out = std::thread::scope(|s| {
        let cli = s.spawn(|| master.halite(&["-b", "10%", "-t", "1", "*", "test.echo", "hi"]));
        answer_pings_only(&mut mute);
        cli.join().unwrap()
    });
    // 10% of the 4 that answered is 0.4: Salt rounds that up to 1 at a time.
    let want = format!(
        "Minion z-dead did not respond. No job will be sent.\n\
         \nExecuting run on ['a1']\n\n{}\
         \nExecuting run on ['a2']\n\n{}\
         \nExecuting run on ['a3']\n\n{}\
         \nExecuting run on ['b-mute']\n\nb-mute:\n    ----------\n",
        block("a1", "hi", 0),
        block("a2", "hi", 0),
        block("a3", "hi", 0)
    );
    assert_eq!(out.stdout, want, "{out:?}");
    // A silent minion is an empty return with retcode 0 in Salt's batch: exit 0.
    assert_eq!(out.status, Some(0), "{out:?}");
    let (jobs, most) = batch_jobs(&master, "test.echo");
    assert_eq!((jobs.len(), most), (4, 1));
}

#[test]
fn batch_formats_exit_codes_and_refusals() {
    let (master, _m) = cluster(&["a1", "a2"]);
    let out = master.halite(&["-b", "2", "--out", "json", "*", "test.ping"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    for id in ["a1", "a2"] {
        let want = format!("{{\n    \"retcode\": 0,\n    \"{id}\": true\n}}\n");
        assert!(out.stdout.contains(&want), "{}", out.stdout);
    }
    // --static: no Executing lines, one object at the end.
    let out = master.halite(&["-b", "1", "--static", "--out", "json", "*", "test.ping"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    let parsed: Value = serde_json::from_str(&out.stdout).expect(&out.stdout);
    assert_eq!(parsed, json!({"a1": true, "a2": true}));
    // The exit code is the highest retcode a minion returned, with no ERROR line.
    let out = master.halite(&["-b", "1", "*", "cmd.run", "echo x; exit 3"]);
    assert_eq!((out.status, out.stderr.as_str()), (Some(3), ""), "{out:?}");
    assert!(out.stdout.contains(&block("a1", "x", 3)), "{}", out.stdout);
    // A hostile -t cannot overflow a deadline (no panic, exit 101).
    for args in [
        &["-t", "18446744073709551615", "-b", "1", "*", "test.ping"][..],
        &["-t", "18446744073709551615", "*", "test.ping"],
    ] {
        let out = master.halite(args);
        assert_eq!((out.status, out.stderr.as_str()), (Some(0), ""), "{args:?}: {out:?}");
    }
    // No match: Salt prints both texts and exits 0.
    let out = master.halite(&["-b", "2", "nosuch*", "test.ping"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        "No minions matched the target. No command was sent, no jid was assigned.\n\
         No minions matched the target.\n"
    );
    let jobs_before = master.events().iter().filter(|(t, _)| t.ends_with("/new")).count();
    for (args, text) in [
        (
            &["-b", "abc", "*", "test.ping"][..],
            "Invalid batch data sent: abc\nData must be in the form of %10, 10% or 3",
        ),
        (&["-b", "0", "*", "test.ping"], "Invalid batch data sent: 0\n"),
        (&["-b", "-3%", "*", "test.ping"], "Invalid batch data sent: -3%\n"),
        (
            &["-b", "2", "--batch-wait", "nan", "*", "test.ping"],
            "option --batch-wait: invalid floating-point value: 'nan'",
        ),
        (&["-b", "2", "--async", "*", "test.ping"], "--async cannot be used with --batch-size"),
        (
            &["-b", "2", "--batch-wait", "1e300", "*", "test.ping"],
            "1e300 seconds is more than a year",
        ),
    ] {
        let out = master.halite(args);
        assert_eq!(out.status, Some(64), "{args:?}: {out:?}");
        assert!(out.stderr.contains(text), "{args:?}: {out:?}");
        assert_eq!(out.stdout, "", "{args:?}");
    }
    let jobs_after = master.events().iter().filter(|(t, _)| t.ends_with("/new")).count();
    assert_eq!(jobs_before, jobs_after, "a refused command publishes nothing");
}

#[test]
fn a_batch_waits_for_a_minion_still_running_and_failhard_stops_the_batch() {
    let (master, _m) = cluster(&["a1", "a2", "a3"]);
    // Silent past -t 1, but find_job says it still runs: the batch keeps waiting for it.
    // The sleep outlasts -t by 5 s, so a slow find_job answer on a loaded machine still
    // finds it running.
    let out = master.halite(&["--batch", "1", "-t", "1", "-L", "a1", "test.sleep", "6"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(out.stdout, format!("\nExecuting run on ['a1']\n\n{}", block("a1", "True", 0)));
    let events = master.events();
    let sleep = events.iter().find(|(t, d)| t.ends_with("/new") && d["fun"] == "test.sleep");
    let jid = sleep.expect("the sleep job").1["jid"].clone();
    assert!(
        events.iter().any(|(t, d)| t.ends_with("/new")
            && d["fun"] == "saltutil.find_job"
            && d["arg"] == json!([jid])),
        "find_job asked about the sleep job"
    );
    // --failhard: the first non-zero retcode ends the batch, with Salt's log line.
    let out = master.halite(&["-b", "1", "--failhard", "*", "cmd.run", "echo no; exit 4"]);
    assert_eq!(out.status, Some(4), "{out:?}");
    assert_eq!(out.stdout, format!("\nExecuting run on ['a1']\n\n{}", block("a1", "no", 4)));
    assert_eq!(
        out.stderr,
        "[ERROR   ] Minion a1 returned with non-zero exit code. Batch run stopped due to \
         failhard\n"
    );
    assert_eq!(batch_jobs(&master, "cmd.run").0, [["a1"]]);
}

/// Seconds of the day in an event's `_stamp` (`YYYY-MM-DDTHH:MM:SS.ffffff+00:00`).
fn stamp_seconds(data: &Value) -> f64 {
    let stamp = data["_stamp"].as_str().expect("_stamp");
    let time = &stamp[11..26];
    let parts: Vec<f64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

#[test]
fn batch_wait_holds_a_finished_minions_slot() {
    let (master, _m) = cluster(&["a1", "a2"]);
    let out = master.halite(&["-b", "1", "--batch-wait", "1.5", "*", "test.echo", "x"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(executing(&out.stdout), [["a1"], ["a2"]]);
    let events = master.events();
    let first_ret = events
        .iter()
        .find(|(t, d)| t.contains("/ret/a1") && d["fun"] == "test.echo")
        .expect("a1's return");
    let second_new = events
        .iter()
        .find(|(t, d)| {
            t.ends_with("/new") && d["fun"] == "test.echo" && d["minions"] == json!(["a2"])
        })
        .expect("a2's job");
    let mut gap = stamp_seconds(&second_new.1) - stamp_seconds(&first_ret.1);
    if gap < -43200.0 {
        gap += 86400.0; // across midnight
    }
    assert!(gap >= 1.5, "a2 started {gap} s after a1 returned");
}

#[test]
fn summary_and_hide_timeout_as_salt() {
    let (master, mut minions) = cluster(&["up1", "gone1"]);
    drop(minions.pop());
    wait_until(WAIT, "gone1 disconnected", || master.presence() == ["up1"]);
    let rule = "-------------------------------------------";
    let summary = |targeted, returned, silent, errors| {
        format!(
            "\n\n{rule}\nSummary\n{rule}\n# of minions targeted: {targeted}\n\
             # of minions returned: {returned}\n# of minions that did not return: {silent}\n\
             # of minions with errors: {errors}\n{rule}\n"
        )
    };
    let out = master.halite(&["--summary", "-t", "1", "*", "test.ping"]);
    let want = format!(
        "up1:\n    True\ngone1:\n    Minion did not return. [Not connected]\n{}",
        summary(2, 1, 1, 0)
    );
    assert_eq!((out.status, out.stdout.as_str()), (Some(1), want.as_str()), "{out:?}");
    let out = master.halite(&["--summary", "up1", "cmd.run", "exit 3"]);
    assert_eq!(out.stdout, format!("up1:\n{}", summary(1, 1, 0, 1)), "{out:?}");
    assert_eq!(out.status, Some(1));
    // Salt prints no summary with --out (or --static).
    let out = master.halite(&["--summary", "--out", "json", "up1", "test.ping"]);
    assert_eq!(out.stdout, "{\n    \"up1\": true\n}\n");
    let out = master.halite(&["--summary", "--static", "up1", "test.ping"]);
    assert_eq!(out.stdout, "up1:\n    True\n");

    // --hide-timeout: the silent minion is neither shown nor counted.
    let out = master.halite(&["--hide-timeout", "--summary", "-t", "1", "*", "test.ping"]);
    assert_eq!(out.stdout, format!("up1:\n    True\n{}", summary(1, 1, 0, 0)), "{out:?}");
    assert_eq!(out.status, Some(0), "{out:?}");
    let out = master.halite(&["--hide-timeout", "-t", "1", "gone1", "test.ping"]);
    assert_eq!((out.status, out.stdout.as_str(), out.stderr.as_str()), (Some(0), "", ""));
}

#[test]
fn out_file_takes_the_returns_and_a_bad_path_is_refused_before_publishing() {
    let (master, _m) = cluster(&["minion1"]);
    let file = master.dir.join("out.txt");
    let path = file.to_str().unwrap();
    let out = master.halite(&["--out-file", path, "--summary", "minion1", "test.ping"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "minion1:\n    True\n");
    // Salt's print_cli lines (the summary) stay on stdout.
    assert!(out.stdout.starts_with("\n\n---") && out.stdout.contains("returned: 1"), "{out:?}");
    let out = master.halite(&["--out-file", path, "minion1", "test.echo", "again"]);
    assert_eq!((out.status, out.stdout.as_str()), (Some(0), ""));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "minion1:\n    again\n");
    // Salt's other spellings, with `=`.
    let file_arg = format!("--output-file={path}");
    let args = [&file_arg, "--output-file-append", "--output=json", "minion1", "test.ping"];
    let out = master.halite(&args);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "minion1:\n    again\n{\n    \"minion1\": true\n}\n"
    );
    // A batch writes its returns there too; its Executing lines stay on stdout.
    let out = master.halite(&["--out-file", path, "-b", "1", "*", "test.ping"]);
    assert_eq!(out.stdout, "\nExecuting run on ['minion1']\n\n", "{out:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), block("minion1", "True", 0));

    let jobs_before = master.events().iter().filter(|(t, _)| t.ends_with("/new")).count();
    let dir = master.dir.path().to_str().unwrap().to_string();
    let under_file = format!("{path}/x");
    let missing = format!("{dir}/no/such/dir/out");
    for (target, reason) in [
        (dir.as_str(), "Is a directory"),
        (under_file.as_str(), "Not a directory"),
        (missing.as_str(), "No such file or directory"),
    ] {
        let out = master.halite(&["--out-file", target, "minion1", "test.ping"]);
        assert_eq!(out.status, Some(64), "{target}: {out:?}");
        assert_eq!(out.stderr, format!("halite: error: {target}: Access denied: {reason}\n"));
        assert_eq!(out.stdout, "");
    }
    let jobs_after = master.events().iter().filter(|(t, _)| t.ends_with("/new")).count();
    assert_eq!(jobs_before, jobs_after, "nothing published for a refused output file");
}

#[test]
fn progress_bar_only_on_a_terminal() {
    let (master, _m) = cluster(&["minion1"]);
    // Piped: no bar, no carriage return; Salt's -p prints the summary, not the returns.
    let out = master.halite(&["-p", "*", "test.ping"]);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(out.stderr, "", "no bar on a pipe");
    assert!(out.stdout.starts_with("\n\n---") && out.stdout.contains("returned: 1\n"), "{out:?}");
    assert!(!out.stdout.contains("minion1:"), "{out:?}");

    // On a pseudo-terminal (util-linux `script`), the bar is drawn and completes.
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let line = [
        bin("halite").to_str().unwrap(),
        "-c",
        master.conf_dir().to_str().unwrap(),
        "-p",
        "*",
        "test.ping",
    ]
    .map(quote)
    .join(" ");
    let out: Output = run(Command::new("script").args(["-qec", &line, "/dev/null"]));
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(out.stdout.contains("\r  0% |"), "{:?}", out.stdout);
    assert!(out.stdout.contains("\r100% |"), "{:?}", out.stdout);
    assert!(out.stdout.contains("| Elapsed Time: 0:00:0"), "{:?}", out.stdout);
    assert!(out.stdout.contains("Returns: [1/1]"), "{:?}", out.stdout);
    assert!(out.stdout.contains("# of minions returned: 1"), "{:?}", out.stdout);
}

/// Review of issue #14: `--out-file` in a world-writable directory (`/tmp`) opened whatever
/// another user had put at that name: a symlink made root's `halite` empty and overwrite the
/// file it points to, and a file of theirs made it write the returns (`cmd.run` output) where
/// they can read them. There, as the kernel's `protected_symlinks` and `protected_regular`
/// would, a symlink, a file of another user and anything but a regular file are refused
/// before anything is published; a path elsewhere is opened as before.
#[test]
fn out_file_in_a_world_writable_directory_follows_no_symlink_and_takes_no_one_elses_file() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let master = Master::start("");
    let public = master.dir.join("public");
    std::fs::create_dir(&public).unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = master.dir.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let link = public.join("out.txt");
    symlink(&victim, &link).unwrap();
    let fifo = public.join("fifo");
    let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o666) }, 0);
    let mut refused = vec![
        (link.clone(), "a symbolic link in a world-writable directory"),
        (fifo.clone(), "not a regular file, in a world-writable directory"),
    ];
    // A file another user made there (only root can make one to try).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let theirs = public.join("theirs.txt");
        std::fs::write(&theirs, "").unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        refused.push((theirs, "owned by another user, in a world-writable directory"));
    }
    for (path, reason) in refused {
        let path = path.to_str().unwrap();
        let out = master.halite(&["--out-file", path, "minion1", "test.ping"]);
        assert_eq!(out.status, Some(64), "{path}: {out:?}");
        assert_eq!(out.stderr, format!("halite: error: {path}: Access denied: {reason}\n"));
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    // A new file there is ours, made 0600: that is taken (the run itself finds no minion).
    let mine = public.join("mine.txt");
    let out = master.halite(&["--out-file", mine.to_str().unwrap(), "minion1", "test.ping"]);
    assert_eq!(
        out.stdout, "No minions matched the target. No command was sent, no jid was assigned.\n",
        "{out:?}"
    );
    assert!(mine.is_file());
}

/// Review of issue #14: a batch group was published as one list target, so a group whose
/// ids pass the master's 64 KiB target limit (`-b 100%` on a fleet of a few thousand) made
/// `halite -b` fail halfway, with minions left unrun. A group now goes out in as many list
/// jobs as it takes; it is still one `Executing run` line and one slot count.
#[test]
fn a_batch_group_past_the_target_limit_goes_out_in_several_jobs() {
    let master = Master::start("auto_accept: True");
    // 330 ids of 200 bytes: 66,330 bytes as a list target.
    let ids: Vec<String> = (0..330).map(|n| format!("m{n:03}{}", "x".repeat(196))).collect();
    let mut raws: Vec<RawMinion> =
        ids.iter().map(|id| RawMinion::authenticate(master.addr, id)).collect();
    wait_until(WAIT, "all raw minions live", || master.presence().len() == ids.len());
    let out = std::thread::scope(|s| {
        for raw in &mut raws {
            // The ping, then the batch's job.
            s.spawn(move || {
                let mut answered = 0;
                while answered < 2 {
                    match raw.recv().expect("master keeps the session") {
                        ToMinion::Publish(p) => {
                            answered += 1;
                            raw.send(&returns_true(p));
                        }
                        ToMinion::Ping { seq } => {
                            raw.send(&ToMaster::Pong { seq });
                        }
                        _ => {}
                    }
                }
            });
        }
        master.halite(&["-b", "100%", "--out", "json", "*", "test.ping"])
    });
    assert_eq!(out.status, Some(0), "{}", out.stderr);
    let lines = executing(&out.stdout);
    assert_eq!(lines.len(), 1, "one group");
    assert_eq!(lines[0].len(), ids.len());
    assert_eq!(out.stdout.matches("\"retcode\": 0").count(), ids.len());
    let (jobs, _) = batch_jobs(&master, "test.ping");
    assert!(jobs.len() >= 2, "{} jobs", jobs.len());
    assert_eq!(jobs.concat().len(), ids.len());
}
