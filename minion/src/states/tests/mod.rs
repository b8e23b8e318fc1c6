//! State runs end to end over an in-memory file server and temporary directories: the seed's
//! `test.sls`, requisites, test mode, includes, errors, the top file.

mod files;
mod functions;
mod runs;

use super::Fileserver;
use crate::functions::Context;
pub(super) use halite_common::crypto::sha256_hex;
pub(super) use halite_states::memfs::MemFs;
use halite_states::{Answer, Options};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A fresh directory, removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("halite-states-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// `dir/name` as text.
    pub(super) fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    pub(super) fn root(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn context(fs: &Arc<MemFs>) -> Context {
    let grains = json!({"id": "minion1", "os": "Debian", "roles": ["web"], "shell": "/bin/sh"});
    Context {
        id: "minion1".into(),
        grains: grains.as_object().cloned().unwrap_or_default(),
        fileserver: Some(fs.clone() as Arc<dyn Fileserver>),
        pillar: None,
    }
}

pub(super) fn opts(test: bool) -> Options {
    Options { test, ..Options::default() }
}

/// This minion as a state host over `fs`.
pub(super) fn host(fs: &Arc<MemFs>) -> halite_states::Host {
    let dynfs: Arc<dyn Fileserver> = fs.clone();
    super::host(&context(fs), &dynfs)
}

/// `state.sls mods` (comma-separated).
pub(super) fn sls(fs: &Arc<MemFs>, mods: &str, opts: &Options) -> Answer {
    let mods: Vec<String> = mods.split(',').map(str::to_string).collect();
    halite_states::sls(&host(fs), &mods, opts)
}

pub(super) fn highstate(fs: &Arc<MemFs>, opts: &Options) -> Answer {
    halite_states::highstate(&host(fs), opts)
}

/// The results of a run that compiled, in order, by state ID.
#[track_caller]
pub(super) fn results(answer: &Answer) -> Vec<(String, Map<String, Value>)> {
    let Value::Object(running) = &answer.value else {
        panic!("not a state return: {}", answer.value);
    };
    let mut out: Vec<(String, Map<String, Value>)> = running
        .values()
        .map(|ret| {
            let ret = ret.as_object().cloned().unwrap_or_default();
            (ret.get("__id__").and_then(Value::as_str).unwrap_or("").to_string(), ret)
        })
        .collect();
    out.sort_by_key(|(_, ret)| ret.get("__run_num__").and_then(Value::as_i64));
    out
}

/// The one result for `id`.
#[track_caller]
pub(super) fn result<'a>(
    results: &'a [(String, Map<String, Value>)],
    id: &str,
) -> &'a Map<String, Value> {
    &results
        .iter()
        .find(|(i, _)| i == id)
        .unwrap_or_else(|| panic!("no result for {id}: {results:?}"))
        .1
}

/// A run that did not compile: its errors.
#[track_caller]
pub(super) fn errors(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.retcode, 1, "{}", answer.value);
    let Value::Array(items) = &answer.value else { panic!("not an error list: {}", answer.value) };
    items.iter().map(|e| e.as_str().unwrap_or("").to_string()).collect()
}
