//! salt-api's `/hook` as the master answers it, sans-IO: a whole HTTP request in, the event
//! to fire (`salt/netapi/hook/<path>`, data `{body, headers, post}`) or the refusal out.
//! Unlike salt-api, every request must carry a `webhook_tokens` credential — an HMAC-SHA256 of
//! the body (`X-Hub-Signature-256`, GitHub's scheme) or `Authorization: Bearer <secret>` —
//! and the token's globs must allow the tag.

use halite_common::config::WebhookConfig;
use halite_common::crypto::{hmac_sha256, macs_equal, secrets_equal};
use halite_common::encoding::unhex;
use halite_common::event::tag_problem;
use halite_common::glob::Glob;
use halite_common::http::Request;
use serde_json::{Map, Value};
use std::net::IpAddr;

/// The tag every hook event starts with (salt-api's `tag_base`).
pub const TAG_BASE: &str = "salt/netapi/hook";

/// A request refused: its status, the reason logged (and sent), and a header it calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
    pub header: Option<(&'static str, &'static str)>,
}

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal { status, reason: reason.into(), header: None }
}

/// An authenticated hook: the event to fire and the token that allowed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub tag: String,
    pub data: Map<String, Value>,
    pub token: String,
}

struct HookToken {
    name: String,
    secret: Vec<u8>,
    globs: Vec<Glob>,
}

/// The configured tokens, their globs compiled.
pub struct Hooks {
    tokens: Vec<HookToken>,
}

/// Request headers never copied into the event: credentials would land in the event log.
const SECRET_HEADERS: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

impl Hooks {
    pub fn new(cfg: &WebhookConfig) -> Hooks {
        let tokens = cfg
            .tokens
            .iter()
            .map(|t| HookToken {
                name: t.name.clone(),
                secret: t.secret.as_bytes().to_vec(),
                globs: t.tags.iter().map(|g| Glob::new(g)).collect(),
            })
            .collect();
        Hooks { tokens }
    }

    /// Checks one request from `remote`, in this order: path (404), method (405), tag (400),
    /// credentials (401), the token's globs (403), body (400, 415).
    pub fn handle(&self, req: &Request, remote: IpAddr) -> Result<Fired, Refusal> {
        let rest = match req.path.strip_prefix("/hook") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
            // The path is printable ASCII (the parser's rule); only its length is bounded here.
            _ => return Err(refuse(404, format!("no such path {:.200}", req.path))),
        };
        if req.method != "POST" {
            let mut refusal = refuse(405, format!("method {} is not allowed", req.method));
            refusal.header = Some(("Allow", "POST"));
            return Err(refusal);
        }
        let tag = hook_tag(rest)?;
        let token = self.authenticate(req)?;
        if !token.globs.iter().any(|g| g.is_match(&tag)) {
            return Err(refuse(403, format!("token {} may not fire {tag}", token.name)));
        }
        let body = std::str::from_utf8(&req.body)
            .map_err(|_| refuse(400, "request body is not UTF-8"))?
            .to_string();
        let post = post_data(req.header("content-type"), &body)?;
        let data = [
            ("body".to_string(), Value::String(body)),
            ("headers".to_string(), Value::Object(headers(req, remote))),
            ("post".to_string(), post),
        ]
        .into_iter()
        .collect();
        Ok(Fired { tag, data, token: token.name.clone() })
    }

    /// The token whose credential the request carries: a valid signature, else a valid bearer
    /// secret. A credential that matches no token is a 401 even when the other would match.
    fn authenticate(&self, req: &Request) -> Result<&HookToken, Refusal> {
        let unauthorized = |why: &str| Refusal {
            status: 401,
            reason: why.to_string(),
            header: Some(("WWW-Authenticate", "Bearer realm=\"halite\"")),
        };
        let signature = req.header("x-hub-signature-256");
        let bearer = req.header("authorization");
        if signature.is_none() && bearer.is_none() {
            return Err(unauthorized("no credentials (X-Hub-Signature-256 or Authorization)"));
        }
        let mut found = None;
        if let Some(signature) = signature {
            let mac = signature
                .strip_prefix("sha256=")
                .and_then(unhex)
                .filter(|m| m.len() == 32)
                .ok_or_else(|| {
                unauthorized("X-Hub-Signature-256 is not sha256=<64 hex digits>")
            })?;
            // Every token is tried, so the time taken says nothing about which one matched.
            for token in &self.tokens {
                if macs_equal(&hmac_sha256(&token.secret, &req.body), &mac) {
                    found = found.or(Some(token));
                }
            }
            if found.is_none() {
                return Err(unauthorized("bad X-Hub-Signature-256"));
            }
        }
        if let Some(bearer) = bearer {
            // The scheme is case-insensitive (RFC 9110 §11.1).
            let secret = bearer
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .ok_or_else(|| unauthorized("Authorization is not Bearer"))?
                .1
                .trim();
            let mut by_secret = None;
            for token in &self.tokens {
                if secrets_equal(&token.secret, secret.as_bytes()) {
                    by_secret = by_secret.or(Some(token));
                }
            }
            match by_secret {
                None => return Err(unauthorized("bad bearer secret")),
                Some(token) => found = found.or(Some(token)),
            }
        }
        found.ok_or_else(|| unauthorized("no valid credentials"))
    }
}

/// `salt/netapi/hook` + the path after `/hook`: segments of letters, digits and `._~-`,
/// none empty, `.` or `..` (a tag is matched by globs, and often becomes a path or a
/// command line in a reactor: nothing else gets that far).
fn hook_tag(rest: &str) -> Result<String, Refusal> {
    if !rest.is_empty() {
        for segment in rest[1..].split('/') {
            let fine = !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
            if !fine {
                return Err(refuse(400, "hook path segments may hold only A-Z a-z 0-9 . _ ~ -"));
            }
        }
    }
    let tag = format!("{TAG_BASE}{rest}");
    match tag_problem(&tag) {
        Some(problem) => Err(refuse(400, problem)),
        None => Ok(tag),
    }
}

/// The request headers as CherryPy hands them to salt-api: names title-cased
/// (`X-Hub-Signature-256`, `X-Github-Event`), repeats joined with `, `, and `Remote-Addr`;
/// credentials left out.
fn headers(req: &Request, remote: IpAddr) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in &req.headers {
        if SECRET_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            continue;
        }
        let name = title_case(name);
        match out.get_mut(&name) {
            Some(Value::String(old)) => {
                old.push_str(", ");
                old.push_str(value);
            }
            _ => {
                out.insert(name, Value::String(value.clone()));
            }
        }
    }
    out.insert("Remote-Addr".into(), Value::String(remote.to_string()));
    out
}

/// Python's `str.title()` on a header name: each run of letters starts upper-case.
fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut start = true;
    for c in name.chars() {
        match c.is_ascii_alphabetic() {
            true if start => out.push(c.to_ascii_uppercase()),
            true => out.push(c.to_ascii_lowercase()),
            false => out.push(c),
        }
        start = !c.is_ascii_alphabetic();
    }
    out
}

/// `post`: the body parsed by its `Content-Type` as salt-api does: JSON, or a form (a key
/// given twice becomes a list); `{}` for an empty body, or text that is not JSON.
fn post_data(content_type: Option<&str>, body: &str) -> Result<Value, Refusal> {
    let post = post_value(content_type, body)?;
    match halite_common::event::nesting_problem(&post) {
        Some(why) => Err(refuse(400, format!("request body: {why}"))),
        None => Ok(post),
    }
}

fn post_value(content_type: Option<&str>, body: &str) -> Result<Value, Refusal> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media.as_str() {
        "application/json" => serde_json::from_str(body)
            .map_err(|e| refuse(400, format!("request body is not JSON: {e}"))),
        m if m.starts_with("application/") && m.ends_with("+json") => serde_json::from_str(body)
            .map_err(|e| refuse(400, format!("request body is not JSON: {e}"))),
        "application/x-www-form-urlencoded" => form(body),
        "" | "text/plain" => Ok(serde_json::from_str(body).unwrap_or(Value::Object(Map::new()))),
        other => Err(refuse(415, format!("Content-Type {other:?} is not JSON or a form"))),
    }
}

/// An `application/x-www-form-urlencoded` body as a map.
fn form(body: &str) -> Result<Value, Refusal> {
    let mut out = Map::new();
    for pair in body.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (percent_decode(key)?, Value::String(percent_decode(value)?));
        match out.get_mut(&key) {
            Some(Value::Array(list)) => list.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                out.insert(key, value);
            }
        }
    }
    Ok(Value::Object(out))
}

fn percent_decode(text: &str) -> Result<String, Refusal> {
    let bad = || refuse(400, "bad percent-encoding in the form body");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3).ok_or_else(bad)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| refuse(400, "form body is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use halite_common::config::WebhookToken;
    use halite_common::encoding::hex;
    use serde_json::json;

    const CI: &str = "ci-secret-0123456789";
    const OPS: &str = "ops-secret-0123456789";

    fn hooks() -> Hooks {
        halite_common::crypto::init();
        let mut cfg = halite_common::config::parse_master("", std::path::Path::new("/"))
            .unwrap()
            .config
            .webhook;
        cfg.tokens = vec![
            WebhookToken {
                name: "ci".into(),
                secret: CI.into(),
                tags: vec!["salt/netapi/hook/deploy".into(), "salt/netapi/hook/ci/*".into()],
            },
            WebhookToken {
                name: "ops".into(),
                secret: OPS.into(),
                tags: vec!["salt/netapi/hook/ops/*".into()],
            },
        ];
        Hooks::new(&cfg)
    }

    fn post(path: &str, headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: "POST".into(),
            path: path.into(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
            keep_alive: true,
        }
    }

    fn signed(secret: &str, body: &str) -> String {
        format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), body.as_bytes())))
    }

    fn remote() -> IpAddr {
        [127, 0, 0, 1].into()
    }

    #[track_caller]
    fn status(req: &Request) -> u16 {
        match hooks().handle(req, remote()) {
            Ok(fired) => panic!("fired {fired:?}"),
            Err(refusal) => refusal.status,
        }
    }

    #[test]
    fn a_signed_json_post_fires_salt_api_s_shape() {
        let body = r#"{"ref": "refs/heads/main"}"#;
        let sig = signed(CI, body);
        let headers = [
            ("content-type", "application/json"),
            ("X-GitHub-Event", "push"),
            ("x-hub-signature-256", sig.as_str()),
            ("Cookie", "session=1"),
        ];
        let fired = hooks().handle(&post("/hook/deploy", &headers, body), remote()).unwrap();
        assert_eq!(fired.tag, "salt/netapi/hook/deploy");
        assert_eq!(fired.token, "ci");
        let keys: Vec<&String> = fired.data.keys().collect();
        assert_eq!(keys, ["body", "headers", "post"]);
        assert_eq!(fired.data["body"], body);
        assert_eq!(fired.data["post"], json!({"ref": "refs/heads/main"}));
        assert_eq!(
            fired.data["headers"],
            json!({
                "Content-Type": "application/json",
                "X-Github-Event": "push",
                "X-Hub-Signature-256": sig,
                "Remote-Addr": "127.0.0.1",
            })
        );
    }

    #[test]
    fn a_bearer_secret_works_and_never_reaches_the_event() {
        let auth = format!("BEARER {OPS}");
        let req = post("/hook/ops/restart", &[("Authorization", &auth)], "a=1&b=x+y&a=%C3%A9");
        let fired = hooks().handle(&req, remote()).unwrap();
        assert_eq!(fired.token, "ops");
        assert_eq!(fired.data["post"], json!({}), "no Content-Type and not JSON");
        assert!(!serde_json::to_string(&fired.data).unwrap().contains(OPS));
        let form = post(
            "/hook/ops/restart",
            &[("Authorization", &auth), ("Content-Type", "application/x-www-form-urlencoded")],
            "a=1&b=x+y&a=%C3%A9&flag",
        );
        let fired = hooks().handle(&form, remote()).unwrap();
        assert_eq!(fired.data["post"], json!({"a": ["1", "é"], "b": "x y", "flag": ""}));
    }

    #[test]
    fn credentials_are_required_and_checked() {
        let body = r#"{"x": 1}"#;
        assert_eq!(status(&post("/hook/deploy", &[], body)), 401);
        let other = signed(OPS, body);
        assert_eq!(status(&post("/hook/deploy", &[("X-Hub-Signature-256", &other)], body)), 403);
        let tampered = signed(CI, "{\"x\": 2}");
        assert_eq!(status(&post("/hook/deploy", &[("X-Hub-Signature-256", &tampered)], body)), 401);
        for bad in ["sha1=00", "sha256=zz", "sha256=00", ""] {
            assert_eq!(status(&post("/hook/deploy", &[("X-Hub-Signature-256", bad)], body)), 401);
        }
        for bad in ["Bearer nope", "Basic Y2k6eA==", "Bearer", CI] {
            assert_eq!(status(&post("/hook/deploy", &[("Authorization", bad)], body)), 401);
        }
        // A good signature does not excuse a bad bearer beside it.
        let sig = signed(CI, body);
        let both = [("X-Hub-Signature-256", sig.as_str()), ("Authorization", "Bearer wrong")];
        assert_eq!(status(&post("/hook/deploy", &both, body)), 401);
        // A token fires only what its globs allow, matched over the whole tag.
        let auth = format!("Bearer {CI}");
        let bearer = [("Authorization", auth.as_str())];
        assert_eq!(status(&post("/hook/ops/restart", &bearer, "")), 403);
        assert_eq!(status(&post("/hook/deployx", &bearer, "")), 403);
        assert_eq!(status(&post("/hook", &bearer, "")), 403);
        assert!(hooks().handle(&post("/hook/ci/a/b", &bearer, ""), remote()).is_ok());
    }

    #[test]
    fn paths_methods_and_bodies_are_refused_with_their_status() {
        let auth = format!("Bearer {CI}");
        let bearer = [("Authorization", auth.as_str())];
        assert_eq!(status(&post("/", &bearer, "")), 404);
        assert_eq!(status(&post("/hooks/deploy", &bearer, "")), 404);
        assert_eq!(status(&post("/metrics", &bearer, "")), 404);
        let mut get = post("/hook/deploy", &bearer, "");
        get.method = "GET".into();
        let refusal = hooks().handle(&get, remote()).unwrap_err();
        assert_eq!((refusal.status, refusal.header), (405, Some(("Allow", "POST"))));
        for path in ["/hook/", "/hook//x", "/hook/ci/../deploy", "/hook/a%2Fb", "/hook/ci/$(id)"] {
            assert_eq!(status(&post(path, &bearer, "")), 400, "{path}");
        }
        let long = format!("/hook/ci/{}", "a".repeat(1100));
        assert_eq!(status(&post(&long, &bearer, "")), 400);
        let json = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        assert_eq!(status(&post("/hook/deploy", &json, "{not json")), 400);
        let xml = [("Authorization", auth.as_str()), ("Content-Type", "text/xml")];
        assert_eq!(status(&post("/hook/deploy", &xml, "<a/>")), 415);
        let mut binary = post("/hook/deploy", &bearer, "");
        binary.body = vec![0xff, 0xfe];
        assert_eq!(status(&binary), 400);
        let form = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        assert_eq!(status(&post("/hook/deploy", &form, "a=%zz")), 400);
        assert_eq!(status(&post("/hook/deploy", &form, "a=%C3")), 400);
        assert_eq!(status(&post("/hook/deploy", &form, "a=%4")), 400);
    }

    #[test]
    fn header_names_are_title_cased_as_cherrypy_does() {
        assert_eq!(title_case("x-hub-signature-256"), "X-Hub-Signature-256");
        assert_eq!(title_case("X-GitHub-Event"), "X-Github-Event");
        assert_eq!(title_case("content-TYPE"), "Content-Type");
    }

    #[test]
    fn a_body_nested_deeper_than_event_data_may_be_is_refused() {
        let auth = format!("Bearer {CI}");
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        let deep = format!("{}1{}", "[".repeat(101), "]".repeat(101));
        let Err(refusal) = hooks().handle(&post("/hook/deploy", &headers, &deep), remote()) else {
            panic!("a body nested 101 deep was fired")
        };
        assert_eq!(refusal.status, 400);
        assert!(
            refusal.reason.contains("data nested deeper than 100 levels"),
            "{}",
            refusal.reason
        );
        let ok = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(hooks().handle(&post("/hook/deploy", &headers, &ok), remote()).is_ok());
    }
}
