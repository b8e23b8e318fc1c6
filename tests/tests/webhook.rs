//! Webhooks through the real master: a GitHub-signed push and a bearer request fire
//! `salt/netapi/hook/...` and the reactor acts on `data['post']`; unsigned, wrongly signed,
//! wrong-tag, oversized, wrong-method, unknown-path, chunked and garbage requests get their
//! status and fire nothing; keep-alive and pipelining; a slowloris client is cut off at its
//! deadline while a good client is served.

use halite_common::crypto::{hmac_sha256, init};
use halite_common::encoding::hex;
use halite_tests::cluster::{Master, WAIT};
use halite_tests::http::{closed_by_master, connect, exchange, read_response};
use halite_tests::serde_json::{json, Value};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};

const CI_SECRET: &str = "ci-secret-0123456789abcdef";
const OPS_SECRET: &str = "ops-secret-0123456789abcdef";

fn config(extra: &str) -> String {
    format!(
        "webhook_port: 0\nwebhook_max_body: 4096\nwebhook_tokens:\n  \
         github: {{secret: {CI_SECRET}, tags: ['salt/netapi/hook/deploy']}}\n  \
         ops: {{secret: {OPS_SECRET}, tags: ['salt/netapi/hook/ops/*']}}\n{extra}"
    )
}

/// The master's webhook address, from its log.
fn hook_addr(master: &Master) -> SocketAddr {
    let line = master.daemon.wait_for_line(r"webhooks on (\S+)", WAIT);
    line[1].as_deref().unwrap().parse().unwrap()
}

fn signature(secret: &str, body: &str) -> String {
    init();
    format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), body.as_bytes())))
}

/// A POST with a JSON body and `headers`.
fn post(path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: halite\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    head.into_bytes()
}

/// Every webhook event in the log, once the marker event (fired last) is there: the bus is
/// FIFO, so any event an earlier request fired would be logged before it.
fn hook_events_through(master: &Master, addr: SocketAddr) -> Vec<(String, Value)> {
    let body = r#"{"marker": true}"#;
    let sig = signature(CI_SECRET, body);
    let (ok, _) = exchange(addr, &post("/hook/deploy", &[("X-Hub-Signature-256", &sig)], body));
    assert_eq!(ok.status, 200, "{}", ok.body);
    master.wait_event("salt/netapi/hook/deploy", |d| d["post"]["marker"] == true);
    master.events().into_iter().filter(|(t, _)| t.starts_with("salt/netapi/")).collect()
}

const DEPLOY_SLS: &str = "{% if data['post']['ref'] == 'refs/heads/main' %}
deployed:
  runner.event.send:
    - tag: myco/deployed
    - data:
        ref: {{ data['post']['ref'] }}
        commit: {{ data['post']['after'] }}
        by: {{ data['headers']['X-Github-Event'] }}
{% endif %}
";

#[test]
fn a_signed_push_fires_the_hook_and_the_reactor_acts_on_its_post_data() {
    let rules = "  - 'salt/netapi/hook/deploy':\n    - SLS/deploy.sls\n";
    let (master, _sls) = Master::with_reactor(rules, &[("deploy.sls", DEPLOY_SLS)], &config(""));
    let addr = hook_addr(&master);
    // The commit text tries to break out of its YAML value; it must arrive as it was sent.
    let after = "abc123'\n  evil: {runner.event.send: {tag: pwned}}";
    let body = json!({"ref": "refs/heads/main", "after": after}).to_string();
    let sig = signature(CI_SECRET, &body);
    let headers = [("X-GitHub-Event", "push"), ("X-Hub-Signature-256", sig.as_str())];
    let (response, _) = exchange(addr, &post("/hook/deploy", &headers, &body));
    assert_eq!((response.status, response.body.as_str()), (200, r#"{"success": true}"#));
    assert_eq!(response.header("content-type"), Some("application/json"));
    let hook = master.wait_event("salt/netapi/hook/deploy", |_| true);
    assert_eq!(hook["body"], body.as_str());
    assert_eq!(hook["post"]["after"], after);
    assert_eq!(hook["headers"]["X-Github-Event"], "push");
    assert_eq!(hook["headers"]["X-Hub-Signature-256"], sig.as_str());
    assert_eq!(hook["headers"]["Remote-Addr"], "127.0.0.1");
    let deployed = master.wait_event("myco/deployed", |_| true);
    assert_eq!(deployed["ref"], "refs/heads/main", "{deployed}");
    assert_eq!(deployed["commit"], after, "{deployed}");
    assert_eq!(deployed["by"], "push", "{deployed}");
    master.daemon.wait_for_line(
        r"webhook from 127\.0\.0\.1:\d+ \(token github\) fired salt/netapi/hook/deploy",
        WAIT,
    );

    // A bearer secret works too, for its own globs only; it never reaches the event log.
    let bearer = format!("Bearer {OPS_SECRET}");
    let auth = [("Authorization", bearer.as_str())];
    let (response, _) = exchange(addr, &post("/hook/ops/restart", &auth, r#"{"svc": "web"}"#));
    assert_eq!(response.status, 200, "{}", response.body);
    let ops = master.wait_event("salt/netapi/hook/ops/restart", |_| true);
    assert_eq!(ops["post"], json!({"svc": "web"}));
    assert!(ops["headers"].get("Authorization").is_none(), "{ops}");
    let log = std::fs::read_to_string(master.event_log()).unwrap();
    assert!(!log.contains(OPS_SECRET), "the bearer secret reached the event log");
    assert!(master.events().iter().all(|(t, _)| t != "pwned"));
}

#[test]
fn refused_requests_get_their_status_and_fire_nothing() {
    let master = Master::start(&config(""));
    let addr = hook_addr(&master);
    let body = r#"{"ref": "refs/heads/main"}"#;
    let good_sig = signature(CI_SECRET, body);
    let wrong_sig = signature("not-the-secret-at-all", body);
    let ci = format!("Bearer {CI_SECRET}");
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unsigned", post("/hook/deploy", &[], body), 401),
        ("wrongly signed", post("/hook/deploy", &[("X-Hub-Signature-256", &wrong_sig)], body), 401),
        ("bad bearer", post("/hook/deploy", &[("Authorization", "Bearer guess")], body), 401),
        ("tag outside the globs", post("/hook/ops/restart", &[("Authorization", &ci)], body), 403),
        (
            "oversized",
            post("/hook/deploy", &[("X-Hub-Signature-256", &good_sig)], &"x".repeat(5000)),
            413,
        ),
        ("unknown path", post("/metrics", &[("Authorization", &ci)], body), 404),
        (
            "wrong method",
            format!("GET /hook/deploy HTTP/1.1\r\nAuthorization: {ci}\r\n\r\n").into_bytes(),
            405,
        ),
        (
            "chunked",
            b"POST /hook/deploy HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            411,
        ),
        ("path escape", post("/hook/../deploy", &[("Authorization", &ci)], body), 400),
        ("garbage", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n".to_vec(), 400),
    ];
    for (what, request, status) in cases {
        let (response, mut stream) = exchange(addr, &request);
        assert_eq!(response.status, status, "{what}: {}", response.body);
        assert_eq!(response.header("connection"), Some("close"), "{what}");
        assert!(closed_by_master(&mut stream), "{what}: the connection stayed open");
        if status == 405 {
            assert_eq!(response.header("allow"), Some("POST"));
        }
        if status == 401 {
            assert!(response.header("www-authenticate").is_some(), "{what}");
        }
    }
    let hooks = hook_events_through(&master, addr);
    assert_eq!(hooks.len(), 1, "only the marker fired: {hooks:?}");
    master.daemon.wait_for_line(r"webhook from 127\.0\.0\.1:\d+ refused: 401 ", WAIT);
    master.daemon.wait_for_line(r"refused: 413 request body of 5000 bytes is over 4096", WAIT);
}

#[test]
fn keep_alive_and_pipelined_requests_are_answered_in_order() {
    let master = Master::start(&config(""));
    let addr = hook_addr(&master);
    let ops = format!("Bearer {OPS_SECRET}");
    let mut stream = connect(addr);
    let mut two = post("/hook/ops/one", &[("Authorization", &ops)], r#"{"n": 1}"#);
    two.extend(post("/hook/ops/two", &[("Authorization", &ops)], r#"{"n": 2}"#));
    stream.write_all(&two).unwrap();
    assert_eq!(read_response(&mut stream).status, 200);
    assert_eq!(read_response(&mut stream).status, 200);
    // The same connection serves a third request later.
    stream.write_all(&post("/hook/ops/three", &[("Authorization", &ops)], "{}")).unwrap();
    assert_eq!(read_response(&mut stream).status, 200);
    master.wait_event("salt/netapi/hook/ops/three", |_| true);
    let tags: Vec<String> = master
        .events()
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| t.starts_with("salt/netapi/"))
        .collect();
    assert_eq!(
        tags,
        ["salt/netapi/hook/ops/one", "salt/netapi/hook/ops/two", "salt/netapi/hook/ops/three"]
    );
}

#[test]
fn a_slowloris_client_is_closed_at_its_deadline_while_a_good_client_is_served() {
    let master = Master::start(&config("webhook_timeout: 2\n"));
    let addr = hook_addr(&master);
    let mut slow = connect(addr);
    slow.write_all(b"POST /hook/deploy HTTP/1.1\r\nHost: halite\r\nX-Slow: a").unwrap();
    // Trickling on does not extend the deadline, which runs from the connection's start.
    slow.write_all(b"aaaa").unwrap();
    // While the slow client holds its connection, a good client is served at once.
    let body = r#"{"ref": "refs/heads/main"}"#;
    let sig = signature(CI_SECRET, body);
    let (ok, _) = exchange(addr, &post("/hook/deploy", &[("X-Hub-Signature-256", &sig)], body));
    assert_eq!(ok.status, 200, "{}", ok.body);
    master.wait_event("salt/netapi/hook/deploy", |d| d["post"]["ref"] == "refs/heads/main");
    // The slow one's answer is a 408 and a close.
    let timeout = read_response(&mut slow);
    assert_eq!(timeout.status, 408, "{}", timeout.body);
    assert!(closed_by_master(&mut slow));
    master.daemon.wait_for_line(r"refused: 408 request not received within 2s", WAIT);
}

#[test]
fn connections_past_the_per_address_cap_are_closed_unread() {
    let master = Master::start(&config("webhook_max_connections_per_ip: 2\n"));
    let addr = hook_addr(&master);
    let _held: Vec<TcpStream> = (0..2).map(|_| connect(addr)).collect();
    master.daemon.wait_for_line(r"webhook connection from .*", WAIT);
    let mut third = connect(addr);
    assert!(closed_by_master(&mut third), "a third connection from 127.0.0.1 stayed open");
    master.daemon.wait_for_line(
        r"refused webhook connection from 127\.0\.0\.1:\d+: .*webhook_max_connections_per_ip",
        WAIT,
    );
}

#[test]
fn sighup_rotates_the_webhook_secrets_without_a_restart() {
    let master = Master::start(&config(""));
    let addr = hook_addr(&master);
    let rotated = "rotated-secret-0123456789";
    master.dir.write(
        "master-conf/master.d/webhook.conf",
        format!(
            "webhook_tokens:\n  ops: {{secret: {rotated}, tags: ['salt/netapi/hook/ops/*']}}\n"
        ),
    );
    let seen = master.daemon.line_count();
    master.daemon.signal(1);
    master.daemon.wait_for_line_after(seen, "webhook tokens reloaded: 1", WAIT);
    let old = format!("Bearer {OPS_SECRET}");
    let (refused, _) = exchange(addr, &post("/hook/ops/x", &[("Authorization", &old)], "{}"));
    assert_eq!(refused.status, 401, "{}", refused.body);
    let new = format!("Bearer {rotated}");
    let (ok, _) = exchange(addr, &post("/hook/ops/x", &[("Authorization", &new)], "{}"));
    assert_eq!(ok.status, 200, "{}", ok.body);
}
