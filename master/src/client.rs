//! A CLI's connection on the control socket as the core sees it: the event subscriptions it
//! holds (the socket is the driver's).

use halite_common::event::TagFilter;

/// One control-socket client.
#[derive(Debug, Default)]
pub struct Client {
    /// Events this client streams (`state.event`, job watches).
    pub subs: Vec<TagFilter>,
}

impl Client {
    pub fn wants(&self, tag: &str) -> bool {
        self.subs.iter().any(|f| f.matches(tag))
    }
}
