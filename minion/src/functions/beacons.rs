//! Salt's `beacons` module as the registry sees it: names, signatures and docs. The running
//! minion answers these on its loop (`beacons::Beacons::call`), where the beacons live; a
//! one-shot `halite-minion call` has no beacons to manage.

use super::{Bound, Context, Failure, FnResult, Spec};

pub(super) const SPECS: &[Spec] = &[
    Spec::new(
        "beacons.list",
        "List the beacons currently configured on the minion.\n\n\
         CLI Example:\n\n    salt '*' beacons.list\n",
        daemon_only,
    )
    .params(&["return_yaml", "include_pillar", "include_opts"], 0)
    .varkw(),
    Spec::new(
        "beacons.list_available",
        "List the beacons currently available on the minion.\n\n\
         CLI Example:\n\n    salt '*' beacons.list_available\n",
        daemon_only,
    )
    .params(&["return_yaml"], 0)
    .varkw(),
    Spec::new(
        "beacons.enable",
        "Enable all beacons on the minion.\n\nCLI Example:\n\n    salt '*' beacons.enable\n",
        daemon_only,
    )
    .varkw(),
    Spec::new(
        "beacons.disable",
        "Disable all beacons jobs on the minion.\n\nCLI Example:\n\n    salt '*' beacons.disable\n",
        daemon_only,
    )
    .varkw(),
    Spec::new(
        "beacons.enable_beacon",
        "Enable beacon on the minion.\n\n\
         CLI Example:\n\n    salt '*' beacons.enable_beacon ps\n",
        daemon_only,
    )
    .params(&["name"], 1)
    .varkw(),
    Spec::new(
        "beacons.disable_beacon",
        "Disable beacon on the minion.\n\n\
         CLI Example:\n\n    salt '*' beacons.disable_beacon ps\n",
        daemon_only,
    )
    .params(&["name"], 1)
    .varkw(),
];

/// Reached only outside the daemon (the daemon answers on its loop).
fn daemon_only(_: &Bound, _: &Context) -> FnResult {
    Err(Failure::Command("beacons are managed by the running minion daemon only".into()))
}

/// Whether the daemon's loop answers `fun` (instead of a job thread).
pub(crate) fn on_loop(fun: &str) -> bool {
    SPECS.iter().any(|spec| spec.name == fun)
}
