//! `state.*` and `cp.*` through the minion's function registry (argument binding, retcodes,
//! the outputter, a missing file server).

use super::*;
use crate::functions::{call, Outcome};

fn kw(pairs: Value) -> Value {
    let mut map = pairs.as_object().cloned().unwrap_or_default();
    map.insert("__kwarg__".into(), json!(true));
    Value::Object(map)
}

fn no_fileserver() -> Context {
    Context { id: "minion1".into(), grains: Map::new(), fileserver: None, pillar: None }
}

#[test]
fn state_functions_bind_and_report_like_salt() {
    let fs = MemFs::new(&[
        ("ok.sls", "a:\n  test.nop\n"),
        ("bad.sls", "b:\n  test.fail_without_changes\n"),
        ("top.sls", "base:\n  '*':\n    - ok\n"),
    ]);
    let ctx = context(&fs);
    let run = |fun: &str, arg: Value| call(fun, arg.as_array().unwrap(), &ctx);

    let ok = run("state.sls", json!(["ok"]));
    assert_eq!((ok.retcode, ok.out.as_deref()), (0, Some("highstate")));
    assert_eq!(ok.ret["test_|-a_|-a_|-nop"]["comment"], json!("Success!"));

    let both = run("state.sls", json!(["ok, bad"]));
    assert_eq!(both.retcode, 2);
    assert_eq!(both.ret.as_object().unwrap().len(), 2);
    assert_eq!(run("state.sls", json!([["ok", "bad"]])).retcode, 2);

    let missing = run("state.sls", json!(["nope"]));
    assert_eq!(
        missing,
        Outcome {
            ret: json!(["No matching sls found for 'nope' in env 'base'"]),
            retcode: 1,
            out: Some("highstate".into())
        }
    );

    let dry = run("state.sls", json!(["bad", "test=True"]));
    assert_eq!(
        dry.ret["test_|-b_|-b_|-fail_without_changes"]["comment"],
        json!("If we weren't testing, this would be a failure!")
    );
    let dry = run("state.apply", json!(["bad", kw(json!({"test": true}))]));
    assert_eq!(
        dry.ret["test_|-b_|-b_|-fail_without_changes"]["comment"],
        json!("If we weren't testing, this would be a failure!")
    );

    let high = run("state.apply", json!([]));
    assert_eq!((high.retcode, high.ret.as_object().map(|m| m.len())), (0, Some(1)));
    assert_eq!(high.ret["test_|-a_|-a_|-nop"]["result"], json!(true));
    assert_eq!(run("state.highstate", json!([])).ret["test_|-a_|-a_|-nop"]["result"], json!(true));
    assert_eq!(run("state.show_top", json!([])).ret, json!({"base": ["ok"]}));
    assert_eq!(
        run("state.show_sls", json!(["ok"])).ret["a"]["test"],
        json!(["nop", {"order": 10000}])
    );
    assert_eq!(run("state.show_low_sls", json!(["ok"])).ret[0]["fun"], json!("nop"));

    let excluded = run("state.sls", json!(["ok,bad", kw(json!({"exclude": "bad"}))]));
    assert_eq!((excluded.retcode, excluded.ret.as_object().map(|m| m.len())), (0, Some(1)));

    let bad_pillar = run("state.sls", json!(["ok", kw(json!({"pillar": [1]}))]));
    assert_eq!(bad_pillar.retcode, 1);
    assert!(bad_pillar
        .ret
        .as_str()
        .unwrap()
        .contains("Pillar data must be formatted as a dictionary"));

    let nofs = call("state.sls", &[json!("ok")], &no_fileserver());
    assert_eq!(nofs.retcode, 1);
    assert_eq!(
        nofs.ret,
        json!("ERROR: the salt:// file server is not available (no master session)")
    );
}

#[test]
fn cp_functions_use_the_file_server() {
    let dir = TempDir::new();
    let fs = MemFs::new(&[("sub/a.txt", "a\n"), ("b.txt", "{{ grains['os'] }}\n")]);
    let ctx = context(&fs);
    let run = |fun: &str, arg: Value| call(fun, arg.as_array().unwrap(), &ctx);

    let dest = dir.path("got");
    assert_eq!(run("cp.get_file", json!(["salt://sub/a.txt", dest])).ret, json!(dest));
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "a\n");
    // Into a directory: the file keeps its name.
    let into = format!("{}/", dir.root().display());
    assert_eq!(run("cp.get_file", json!(["salt://b.txt", into])).ret, json!(dir.path("b.txt")));
    let nested = dir.path("x/y/b.txt");
    assert_eq!(run("cp.get_file", json!(["salt://b.txt", nested])).ret, json!(""));
    let made =
        run("cp.get_file", json!(["salt://b.txt", nested, "makedirs=True", "template=jinja"]));
    assert_eq!(made.ret, json!(nested));
    assert_eq!(std::fs::read_to_string(&nested).unwrap(), "Debian\n");
    for bad in ["salt://missing", "/etc/hostname", "salt://b.txt?saltenv=dev"] {
        assert_eq!(run("cp.get_file", json!([bad, dir.path("z")])).ret, json!(""), "{bad}");
    }

    assert_eq!(run("cp.list_master", json!([])).ret, json!(["b.txt", "sub/a.txt"]));
    assert_eq!(run("cp.list_master", json!(["prefix=sub/"])).ret, json!(["sub/a.txt"]));
    assert_eq!(
        run("cp.hash_file", json!(["salt://sub/a.txt"])).ret,
        json!({"hash_type": "sha256", "hsum": sha256_hex(b"a\n")})
    );
    assert_eq!(run("cp.hash_file", json!(["salt://missing"])).ret, json!({}));
    assert_eq!(run("cp.hash_file", json!([dest])).ret["hsum"], json!(sha256_hex(b"a\n")));

    let nofs = call("cp.list_master", &[], &no_fileserver());
    assert_eq!((nofs.retcode, nofs.out.as_deref()), (1, Some("nested")));
}
