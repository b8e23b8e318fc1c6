//! HTTP connections in the core, for both HTTP listeners (webhooks and metrics): admission
//! per listener (connection caps in all and per source), a request parser per connection, the
//! request deadline, the request rate per source, refusals and closes. What a whole request
//! gets is the listener's: a webhook request the body budget (in all and per source) and the
//! hook event on the bus with `{"success": true}`; a metrics request its text
//! ([`super::metrics`]).

use super::{Core, Effect};
use crate::limits::{nofile_limit, source_of, Admission, PendingRate, Refusal as AdmissionRefusal};
use crate::webhook::{Fired, Hooks, Refusal};
use halite_common::config::WebhookConfig;
use halite_common::http::{self, Limits, Parser, Request};
use mio::Token;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Unsent output allowed per HTTP client (answers are small: a pipelining client that never
/// reads is cut off).
pub(crate) const MAX_HTTP_BACKLOG: usize = 256 * 1024;

/// Request bodies being received at once, in bytes (or `webhook_max_body`, if larger): the
/// HMAC needs the whole body, so an unauthenticated client can make the master buffer one;
/// without a budget, `webhook_max_connections` clients could hold as many `webhook_max_body`s.
/// One source address may take a quarter of it (but always one whole `webhook_max_body`).
/// What counts is the body bytes received, not the length a head announces.
pub(crate) const BODY_BUDGET: usize = 16 * 1024 * 1024;

/// The metrics listener's caps (a scraper or two per host; no config keys): connections in
/// all and per source address, the time a request may take to arrive, and requests per
/// source address per minute (a pipelined flood of scrapes is cut off there).
const METRICS_MAX_CONNECTIONS: usize = 16;
const METRICS_MAX_CONNECTIONS_PER_IP: usize = 4;
const METRICS_TIMEOUT: Duration = Duration::from_secs(10);
const METRICS_RATE: u32 = 600;

/// Which listener an HTTP connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpListener {
    /// `webhook_port`: salt-api's `/hook`.
    Webhook,
    /// `metrics_port`: `GET /metrics` and `GET /healthz`.
    Metrics,
}

impl HttpListener {
    /// How log lines name it.
    pub fn name(self) -> &'static str {
        match self {
            HttpListener::Webhook => "webhook",
            HttpListener::Metrics => "metrics",
        }
    }
}

/// One HTTP connection.
struct HttpConn {
    listener: HttpListener,
    addr: SocketAddr,
    parser: Parser,
    /// When the request being read (or, between requests, the idle wait) began: the request
    /// deadline runs from here.
    since: Instant,
    /// Body bytes reserved in the budget for the request being read.
    reserved: usize,
}

/// One listener's caps (its connections count against the core's one descriptor budget).
struct Caps {
    admission: Admission,
    limits: Limits,
    timeout: Duration,
    /// Requests per source address per minute.
    rate: PendingRate,
    /// The config keys its caps come from, for refusals (none for metrics).
    keys: Option<Keys>,
}

/// A listener's config keys, named in its refusals.
struct Keys {
    max_connections: &'static str,
    max_connections_per_ip: &'static str,
    rate_limit: &'static str,
}

/// The HTTP listeners' state: who is connected and what they may still do.
pub(crate) struct HttpConns {
    conns: HashMap<Token, HttpConn>,
    webhook: Caps,
    metrics: Caps,
    hooks: Hooks,
    /// Webhook body bytes reserved in all, and per source (`source_of`).
    pub(super) in_flight: usize,
    per_source: HashMap<IpAddr, usize>,
    budget: usize,
    source_budget: usize,
}

impl HttpConns {
    pub(crate) fn new(cfg: &WebhookConfig) -> HttpConns {
        let nofile = nofile_limit();
        HttpConns {
            conns: HashMap::new(),
            webhook: Caps {
                admission: Admission::new(nofile, cfg.max_connections, cfg.max_connections_per_ip),
                limits: Limits::new(cfg.max_body),
                timeout: cfg.timeout,
                rate: PendingRate::new(cfg.rate_limit),
                keys: Some(Keys {
                    max_connections: "webhook_max_connections",
                    max_connections_per_ip: "webhook_max_connections_per_ip",
                    rate_limit: "webhook_rate_limit",
                }),
            },
            metrics: Caps {
                admission: Admission::new(
                    nofile,
                    METRICS_MAX_CONNECTIONS,
                    METRICS_MAX_CONNECTIONS_PER_IP,
                ),
                // A scrape has no body: any `Content-Length` but 0 is a 413.
                limits: Limits::new(0),
                timeout: METRICS_TIMEOUT,
                rate: PendingRate::new(METRICS_RATE),
                keys: None,
            },
            hooks: Hooks::new(cfg),
            in_flight: 0,
            per_source: HashMap::new(),
            budget: BODY_BUDGET.max(cfg.max_body),
            source_budget: (BODY_BUDGET / 4).max(cfg.max_body),
        }
    }

    fn caps(&mut self, listener: HttpListener) -> &mut Caps {
        match listener {
            HttpListener::Webhook => &mut self.webhook,
            HttpListener::Metrics => &mut self.metrics,
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

    /// Forgets a connection and gives back what it held; `None` when it was not one.
    fn forget(&mut self, conn: Token) -> Option<HttpConn> {
        let mut client = self.conns.remove(&conn)?;
        let caps = self.caps(client.listener);
        caps.admission.release(client.addr.ip());
        self.release(client.addr.ip(), &mut client.reserved);
        Some(client)
    }

    /// New `webhook_tokens` (a reload): the next request is checked against them.
    pub(crate) fn set_tokens(&mut self, cfg: &WebhookConfig) {
        self.hooks = Hooks::new(cfg);
    }

    pub(crate) fn has(&self, conn: Token) -> bool {
        self.conns.contains_key(&conn)
    }

    /// HTTP connections open, on both listeners.
    pub(crate) fn open(&self) -> usize {
        self.conns.len()
    }
}

/// The JSON body of a webhook refusal: `{"success": false, "error": REASON}`.
fn refusal_body(reason: &str) -> Vec<u8> {
    serde_json::json!({"success": false, "error": reason}).to_string().into_bytes()
}

impl Core {
    /// A new HTTP connection on `listener`: counted, or closed unread past a cap.
    pub(super) fn on_http_connected(
        &mut self,
        conn: Token,
        addr: SocketAddr,
        listener: HttpListener,
    ) {
        let name = listener.name();
        let open = self.network_conns();
        let caps = self.http.caps(listener);
        if let Err(why) = caps.admission.admit(addr.ip(), open) {
            let (total_key, per_ip_key) = match &caps.keys {
                Some(k) => (
                    format!(" ({})", k.max_connections),
                    format!(" ({})", k.max_connections_per_ip),
                ),
                None => (String::new(), String::new()),
            };
            let why = match why {
                AdmissionRefusal::Total { max } => {
                    format!("{max} {name} connections already open{total_key}")
                }
                AdmissionRefusal::PerAddress { max } => {
                    format!("{max} {name} connections from this address already open{per_ip_key}")
                }
                descriptors => descriptors.to_string(),
            };
            let reason = format!("refused {name} connection from {addr}: {why}");
            if self.quiet.allow(self.now) {
                log::warn!("{reason}");
            }
            self.refuse_at_accept(conn, reason);
            return;
        }
        log::debug!("{name} connection from {addr}");
        let parser = Parser::new(caps.limits);
        let client = HttpConn { listener, addr, parser, since: self.now, reserved: 0 };
        self.http.conns.insert(conn, client);
    }

    /// Bytes from an HTTP connection: every whole request in them is answered, in order.
    pub(super) fn on_http_data(&mut self, conn: Token, bytes: &[u8]) {
        let Some(client) = self.http.conns.get_mut(&conn) else { return };
        client.parser.push(bytes);
        loop {
            let conns = &mut self.http;
            let Some(client) = conns.conns.get_mut(&conn) else { return };
            let (addr, listener) = (client.addr, client.listener);
            match client.parser.next_request() {
                Ok(None) => {
                    // What the body has brought so far is reserved, not the length its head
                    // declares: heads alone (no body, no credentials) reserved whole bodies,
                    // and sixteen of them from four addresses kept every other sender out.
                    let held = client.parser.buffered();
                    let reserved = client.reserved;
                    if client.parser.awaited_body().is_some() && held > reserved {
                        if let Err(why) = conns.reserve(addr.ip(), held - reserved) {
                            let reason = format!("{why}; retry later");
                            let header = Some(("Retry-After", "1"));
                            return self.refuse_http(
                                conn,
                                addr,
                                &Refusal { status: 503, reason, header },
                            );
                        }
                        let Some(client) = conns.conns.get_mut(&conn) else { return };
                        client.reserved = held;
                    }
                    let Some(client) = conns.conns.get_mut(&conn) else { return };
                    if client.parser.take_continue() {
                        self.fx.push(Effect::Send { conn, bytes: http::CONTINUE.to_vec() });
                    }
                    return;
                }
                Ok(Some(request)) => {
                    client.since = self.now;
                    let mut reserved = std::mem::take(&mut client.reserved);
                    conns.release(addr.ip(), &mut reserved);
                    let caps = conns.caps(listener);
                    if !caps.rate.allow(addr.ip(), self.now) {
                        let why = match &caps.keys {
                            Some(k) => {
                                format!("over {} ({}/minute)", k.rate_limit, caps.rate.per_minute())
                            }
                            None => format!(
                                "over {} requests a minute from this address",
                                caps.rate.per_minute()
                            ),
                        };
                        let refusal = Refusal { status: 429, reason: why, header: None };
                        return self.refuse_http(conn, addr, &refusal);
                    }
                    let served = match listener {
                        HttpListener::Webhook => self.serve_hook(conn, addr, &request),
                        HttpListener::Metrics => self.serve_metrics(conn, addr, &request),
                    };
                    if !served {
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

    /// Answers one webhook request; `false` when the connection was closed.
    fn serve_hook(&mut self, conn: Token, addr: SocketAddr, request: &Request) -> bool {
        match self.http.hooks.handle(request, addr.ip()) {
            Err(refusal) => {
                self.refuse_http(conn, addr, &refusal);
                false
            }
            Ok(Fired { tag, data, token }) => {
                log::info!("webhook from {addr} (token {token}) fired {tag}");
                self.bus.fire_from(tag, data, Some(source_of(addr.ip())), &[]);
                self.answer_http(conn, request, 200, "application/json", br#"{"success": true}"#)
            }
        }
    }

    /// Sends a successful answer; closes after it when the client or a stop asks.
    /// `false` when the connection was closed.
    pub(super) fn answer_http(
        &mut self,
        conn: Token,
        request: &Request,
        status: u16,
        content_type: &str,
        body: &[u8],
    ) -> bool {
        let close = !request.keep_alive || self.stopping;
        let bytes = http::response(status, content_type, &[], body, close);
        self.fx.push(Effect::Send { conn, bytes });
        if close {
            self.close_http(conn, "request served, connection not kept alive");
        }
        !close
    }

    /// Sends the refusal's status, logs it (within the hostile-peer log budget) and closes.
    pub(super) fn refuse_http(&mut self, conn: Token, addr: SocketAddr, refusal: &Refusal) {
        let Some(listener) = self.http.conns.get(&conn).map(|c| c.listener) else { return };
        let extra: Vec<(&str, &str)> = refusal.header.into_iter().collect();
        let bytes = match listener {
            HttpListener::Webhook => {
                let body = refusal_body(&refusal.reason);
                http::response(refusal.status, "application/json", &extra, &body, true)
            }
            HttpListener::Metrics => {
                let body = format!("{}\n", refusal.reason);
                http::response(refusal.status, "text/plain", &extra, body.as_bytes(), true)
            }
        };
        self.fx.push(Effect::Send { conn, bytes });
        let reason = format!("{} {}", refusal.status, refusal.reason);
        if self.quiet.allow(self.now) {
            log::warn!("{} from {addr} refused: {reason}", listener.name());
        }
        self.close_http(conn, &reason);
    }

    /// Forgets an HTTP connection and has the driver close it.
    pub(super) fn close_http(&mut self, conn: Token, reason: &str) {
        let Some(client) = self.http.forget(conn) else { return };
        log::debug!("{} connection from {} closed: {reason}", client.listener.name(), client.addr);
        self.fx.push(Effect::Close { conn, reason: reason.to_string() });
    }

    /// The driver closed an HTTP connection (peer gone, read or write failed).
    pub(super) fn http_closed(&mut self, conn: Token, reason: &str) {
        if let Some(client) = self.http.forget(conn) {
            let name = client.listener.name();
            log::debug!("{name} connection from {} closed: {reason}", client.addr);
        }
    }

    /// Housekeeping: a request not whole within its listener's timeout (`webhook_timeout`)
    /// of its start gets 408 and a close (slowloris), an idle keep-alive connection is
    /// closed; old rate windows go.
    pub(super) fn http_deadlines(&mut self, now: Instant) {
        self.http.webhook.rate.prune(now);
        self.http.metrics.rate.prune(now);
        let conns = &self.http;
        let late: Vec<(Token, SocketAddr, bool, Duration)> = conns
            .conns
            .iter()
            .filter_map(|(&t, c)| {
                let timeout = match c.listener {
                    HttpListener::Webhook => conns.webhook.timeout,
                    HttpListener::Metrics => conns.metrics.timeout,
                };
                (now.saturating_duration_since(c.since) > timeout)
                    .then(|| (t, c.addr, c.parser.started(), timeout))
            })
            .collect();
        for (conn, addr, started, timeout) in late {
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
