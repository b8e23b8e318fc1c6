//! The minion's side of the state system, whose engine is the `halite_states` crate: the
//! state modules that touch this host ([`file`], [`managed`], [`cmd`], plus the shared
//! `test` ones), this minion's execution functions as the engine's [`Functions`], and
//! [`host`], what a job's state run runs on.

mod cmd;
mod diff;
mod file;
mod managed;
mod perms;
mod safepath;

#[cfg(test)]
mod tests;

use crate::functions::{self, Context};
pub use halite_states::Fileserver;
use halite_states::{testing, Called, Functions, Host, Table};
use std::sync::Arc;

/// Every state function this minion has.
const MODULES: Table = Table {
    states: &[file::STATES, cmd::STATES, testing::STATES],
    watches: &[("cmd", cmd::mod_watch), ("test", testing::mod_watch)],
};

/// Templates and run checks call the minion's own functions.
impl Functions for Context {
    fn call(&self, fun: &str, arg: &[serde_json::Value]) -> Result<Called, String> {
        let outcome = functions::call(fun, arg, self);
        if outcome.out.as_deref() == Some("nested") && outcome.retcode != 0 {
            let ret = outcome.ret;
            return Err(ret.as_str().map_or_else(|| ret.to_string(), str::to_string));
        }
        Ok(Called { value: outcome.ret, retcode: outcome.retcode })
    }
}

/// This minion as a state host, its files from `fs`.
pub(crate) fn host(ctx: &Context, fs: &Arc<dyn Fileserver>) -> Host {
    Host {
        id: ctx.id.clone(),
        grains: ctx.grains.clone(),
        fs: fs.clone(),
        functions: Arc::new(ctx.clone()),
        modules: Arc::new(MODULES),
    }
}
