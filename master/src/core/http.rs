//! Webhook connections in the core: admission (connection caps in all and per source), a
//! request parser per connection, the request deadline, a budget of body bytes in flight (in
//! all and per source), the per-source request rate, and the answer — the hook event on the bus and `{"success": true}`, or the refusal and a close.

use super::{Core, Effect};
use crate::limits::{nofile_limit, source_of, Admission, PendingRate, Refusal as AdmissionRefusal};
use crate::webhook::{Fired, Hooks, Refusal};
use halite_common::config::WebhookConfig;
use halite_common::http::{self, Limits, Parser, Request};
use mio::Token;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Unsent output allowed per webhook client (answers are tiny: a pipelining client that never
/// reads is cut off).
pub(crate) const MAX_HTTP_BACKLOG: usize = 256 * 1024;

/// Request bodies being received at once, in bytes (or `webhook_max_body`, if larger): the
/// HMAC needs the whole body, so an unauthenticated client can make the master buffer one;
/// without a budget, `webhook_max_connections` clients could hold as many `webhook_max_body`s.
/// One source address may take a quarter of it (but always one whole `webhook_max_body`).
pub(crate) const BODY_BUDGET: usize = 16 * 1024 * 1024;

/// One webhook connection.
struct HttpConn {
    addr: SocketAddr,
    parser: Parser,
    /// When the request being read (or, between requests, the idle wait) began: the request
    /// deadline runs from here.
    since: Instant,
    /// Body bytes reserved in the budget for the request being read.
    reserved: usize,
}

/// The listener's state: who is connected and what they may still do.
pub(crate) struct Webhooks {
    hooks: Hooks,
    conns: HashMap<Token, HttpConn>,
    admission: Admission,
    /// Requests per source address per minute (`webhook_rate_limit`).
    rate: PendingRate,
    limits: Limits,
    timeout: Duration,
    /// Body bytes reserved in all, and per source (`source_of`).
    pub(super) in_flight: usize,
    per_source: HashMap<IpAddr, usize>,
    budget: usize,
    source_budget: usize,
}

impl Webhooks {
    pub(crate) fn new(cfg: &WebhookConfig) -> Webhooks {
        Webhooks {
            hooks: Hooks::new(cfg),
            conns: HashMap::new(),
            admission: Admission::new(
                nofile_limit(),
                cfg.max_connections,
                cfg.max_connections_per_ip,
            ),
            rate: PendingRate::new(cfg.rate_limit),
            limits: Limits::new(cfg.max_body),
            timeout: cfg.timeout,
            in_flight: 0,
            per_source: HashMap::new(),
            budget: BODY_BUDGET.max(cfg.max_body),
            source_budget: (BODY_BUDGET / 4).max(cfg.max_body),
        }
    }

    /// Reserves `len` body bytes for a request from `ip`, or says which budget is spent.
    fn reserve(&mut self, ip: IpAddr, len: usize) -> Result<(), String> {
        let ip = source_of(ip);
        let from_ip = self.per_source.get(&ip).copied().unwrap_or(0);
        if self.in_flight + len > self.budget {
            return Err(format!("{} bytes of request bodies already in flight", self.in_flight));
        }
        if from_ip + len > self.source_budget {
            return Err(format!("{from_ip} bytes of request bodies in flight from this address"));
        }
        self.in_flight += len;
        *self.per_source.entry(ip).or_insert(0) += len;
        Ok(())
    }

    /// Gives back what a connection reserved.
    fn release(&mut self, ip: IpAddr, reserved: &mut usize) {
        let len = std::mem::take(reserved);
        if len == 0 {
            return;
        }
        let ip = source_of(ip);
        self.in_flight -= len;
        if let Some(n) = self.per_source.get_mut(&ip) {
            *n -= len;
            if *n == 0 {
                self.per_source.remove(&ip);
            }
        }
    }

    /// New `webhook_tokens` (a reload): the next request is checked against them.
    pub(crate) fn set_tokens(&mut self, cfg: &WebhookConfig) {
        self.hooks = Hooks::new(cfg);
    }

    pub(crate) fn has(&self, conn: Token) -> bool {
        self.conns.contains_key(&conn)
    }
}

/// The JSON body of a refusal: `{"success": false, "error": REASON}`.
fn refusal_body(reason: &str) -> Vec<u8> {
    serde_json::json!({"success": false, "error": reason}).to_string().into_bytes()
}

impl Core {
    /// A new webhook connection: counted, or closed unread past a cap.
    pub(super) fn on_http_connected(&mut self, conn: Token, addr: SocketAddr) {
        let hooks = &mut self.webhooks;
        if let Err(why) = hooks.admission.admit(addr.ip(), hooks.conns.len()) {
            let why = match why {
                AdmissionRefusal::Total { max } => {
                    format!("{max} webhook connections already open (webhook_max_connections)")
                }
                AdmissionRefusal::PerAddress { max } => format!(
                    "{max} webhook connections from this address already open \
                     (webhook_max_connections_per_ip)"
                ),
                descriptors => descriptors.to_string(),
            };
            let reason = format!("refused webhook connection from {addr}: {why}");
            if self.quiet.allow(self.now) {
                log::warn!("{reason}");
            }
            self.fx.push(Effect::Close { conn, reason });
            return;
        }
        log::debug!("webhook connection from {addr}");
        let parser = Parser::new(hooks.limits);
        hooks.conns.insert(conn, HttpConn { addr, parser, since: self.now, reserved: 0 });
    }

    /// Bytes from a webhook connection: every whole request in them is answered, in order.
    pub(super) fn on_http_data(&mut self, conn: Token, bytes: &[u8]) {
        let Some(client) = self.webhooks.conns.get_mut(&conn) else { return };
        client.parser.push(bytes);
        loop {
            let hooks = &mut self.webhooks;
            let Some(client) = hooks.conns.get_mut(&conn) else { return };
            let addr = client.addr;
            match client.parser.next_request() {
                Ok(None) => {
                    let awaited = client.parser.awaited_body().filter(|_| client.reserved == 0);
                    if let Some(len) = awaited {
                        if let Err(why) = hooks.reserve(addr.ip(), len) {
                            let reason = format!("{why}; retry later");
                            let header = Some(("Retry-After", "1"));
                            return self.refuse_http(
                                conn,
                                addr,
                                &Refusal { status: 503, reason, header },
                            );
                        }
                        let Some(client) = hooks.conns.get_mut(&conn) else { return };
                        client.reserved = len;
                    }
                    let Some(client) = hooks.conns.get_mut(&conn) else { return };
                    if client.parser.take_continue() {
                        self.fx.push(Effect::Send { conn, bytes: http::CONTINUE.to_vec() });
                    }
                    return;
                }
                Ok(Some(request)) => {
                    client.since = self.now;
                    let mut reserved = std::mem::take(&mut client.reserved);
                    hooks.release(addr.ip(), &mut reserved);
                    if !self.serve(conn, addr, &request) {
                        return;
                    }
                }
                Err(e) => {
                    let refusal =
                        Refusal { status: e.status(), reason: e.to_string(), header: None };
                    return self.refuse_http(conn, addr, &refusal);
                }
            }
        }
    }

    /// Answers one request; `false` when the connection was closed.
    fn serve(&mut self, conn: Token, addr: SocketAddr, request: &Request) -> bool {
        if !self.webhooks.rate.allow(addr.ip(), self.now) {
            let why = format!("over webhook_rate_limit ({}/minute)", self.cfg.webhook.rate_limit);
            self.refuse_http(conn, addr, &Refusal { status: 429, reason: why, header: None });
            return false;
        }
        match self.webhooks.hooks.handle(request, addr.ip()) {
            Err(refusal) => {
                self.refuse_http(conn, addr, &refusal);
                false
            }
            Ok(Fired { tag, data, token }) => {
                log::info!("webhook from {addr} (token {token}) fired {tag}");
                self.bus.fire_from(tag, data, Some(source_of(addr.ip())), &[]);
                let close = !request.keep_alive || self.stopping;
                let body = br#"{"success": true}"#;
                let bytes = http::response(200, "application/json", &[], body, close);
                self.fx.push(Effect::Send { conn, bytes });
                if close {
                    self.close_http(conn, "request served, connection not kept alive");
                }
                !close
            }
        }
    }

    /// Sends the refusal's status, logs it (within the hostile-peer log budget) and closes.
    fn refuse_http(&mut self, conn: Token, addr: SocketAddr, refusal: &Refusal) {
        let extra: Vec<(&str, &str)> = refusal.header.into_iter().collect();
        let body = refusal_body(&refusal.reason);
        let bytes = http::response(refusal.status, "application/json", &extra, &body, true);
        self.fx.push(Effect::Send { conn, bytes });
        let reason = format!("{} {}", refusal.status, refusal.reason);
        if self.quiet.allow(self.now) {
            log::warn!("webhook from {addr} refused: {reason}");
        }
        self.close_http(conn, &reason);
    }

    /// Forgets a webhook connection and has the driver close it.
    pub(super) fn close_http(&mut self, conn: Token, reason: &str) {
        let Some(mut client) = self.webhooks.conns.remove(&conn) else { return };
        self.webhooks.admission.release(client.addr.ip());
        self.webhooks.release(client.addr.ip(), &mut client.reserved);
        log::debug!("webhook connection from {} closed: {reason}", client.addr);
        self.fx.push(Effect::Close { conn, reason: reason.to_string() });
    }

    /// The driver closed a webhook connection (peer gone, read or write failed).
    pub(super) fn http_closed(&mut self, conn: Token, reason: &str) {
        if let Some(mut client) = self.webhooks.conns.remove(&conn) {
            self.webhooks.admission.release(client.addr.ip());
            self.webhooks.release(client.addr.ip(), &mut client.reserved);
            log::debug!("webhook connection from {} closed: {reason}", client.addr);
        }
    }

    /// Housekeeping: a request not whole within `webhook_timeout` of its start gets 408 and
    /// a close (slowloris), an idle keep-alive connection is closed; old rate windows go.
    pub(super) fn http_deadlines(&mut self, now: Instant) {
        self.webhooks.rate.prune(now);
        let timeout = self.webhooks.timeout;
        let late: Vec<(Token, SocketAddr, bool)> = self
            .webhooks
            .conns
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.since) > timeout)
            .map(|(&t, c)| (t, c.addr, c.parser.started()))
            .collect();
        for (conn, addr, started) in late {
            match started {
                true => {
                    let reason = format!("request not received within {}s", timeout.as_secs());
                    let refusal = Refusal { status: 408, reason, header: None };
                    self.refuse_http(conn, addr, &refusal);
                }
                false => self.close_http(conn, "idle"),
            }
        }
    }
}
