//! One suite for every mounted dialect: it sends each dialect's own
//! `Dialect::examples` (its clients' create requests) and checks what every
//! vendor dialect must do around them, whatever the vendor: the examples
//! work; oversized, trickled and malformed bodies, unknown paths, wrong
//! methods and injected faults are answered in the vendor's envelope
//! (never zipgate's neutral one, never a hang or a 5xx of ours); `HEAD`
//! answers like `GET`; a `Range` is ignored or served as a consistent 206.
//! A new dialect is in this suite by being mounted.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use zipgate::api::{Mounted, NodeId};
use zipgate::server::Config;
use zipgate::ServerHandle;

/// One example, its placeholders filled from the default fixture.
struct Sent {
    dialect: &'static str,
    label: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Sent {
    fn name(&self) -> String {
        format!("{} {}", self.dialect, self.label)
    }

    fn headers(&self) -> Vec<(&str, &str)> {
        let mut all = vec![("host", HOST)];
        all.extend(self.headers.iter().map(|(k, v)| (*k, v.as_str())));
        all
    }

    /// The request head for a raw socket, with this `Content-Length`.
    fn head(&self, content_length: usize) -> String {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        for (name, value) in self.headers() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("content-length: {content_length}\r\n\r\n"));
        head
    }
}

fn dialects() -> Vec<Arc<dyn Mounted>> {
    zipgate::dialects::build(&BTreeMap::new()).unwrap()
}

/// A node's id in `dialect`'s scheme: pinned in the default fixture, else derived.
fn dialect_id(dialect: &dyn Mounted, node: &str) -> String {
    fn find<'a>(nodes: &'a Value, id: &str) -> Option<&'a Value> {
        nodes.as_array()?.iter().find_map(|n| {
            if n["id"] == id {
                Some(n)
            } else {
                find(&n["children"], id)
            }
        })
    }
    let fixture: Value = serde_json::from_str(zipgate::store::DEFAULT_FIXTURE).unwrap();
    let found = find(&fixture["nodes"], node).expect("node in the default fixture");
    match found["ids"][dialect.name()].as_str() {
        Some(pinned) => pinned.to_owned(),
        None => dialect.derive_id(&NodeId::from(node)),
    }
}

fn examples() -> Vec<Sent> {
    let basic =
        base64::engine::general_purpose::STANDARD.encode("alice@example.com:alice-password");
    let mut out = Vec::new();
    for dialect in dialects() {
        let examples = dialect.examples();
        assert!(!examples.is_empty(), "{} has no examples", dialect.name());
        let folder = dialect_id(dialect.as_ref(), "folder-documents");
        let file = dialect_id(dialect.as_ref(), "file-notes");
        let fill = |text: &str| {
            text.replace("{token}", "alice-token")
                .replace("{basic}", &basic)
                .replace("{folder_path}", "/Documents")
                .replace("{folder}", &folder)
                .replace("{file}", &file)
        };
        for example in examples {
            out.push(Sent {
                dialect: dialect.name(),
                label: example.label,
                method: example.method.clone(),
                path: fill(example.path),
                headers: example
                    .headers
                    .iter()
                    .map(|(name, value)| (*name, fill(value)))
                    .collect(),
                body: fill(example.body),
            });
        }
    }
    out
}

async fn send_example(server: &ServerHandle, sent: &Sent, body: impl Into<bytes::Bytes>) -> Reply {
    send(
        server,
        sent.method.clone(),
        &sent.path,
        &sent.headers(),
        body,
    )
    .await
}

/// The vendor answered, not zipgate's neutral fallback: its `{"error":
/// "not_found" | "method_not_allowed" | "injected_fault", "message": …}`.
fn assert_not_neutral(what: &str, reply: &Reply) {
    let neutral = serde_json::from_slice::<Value>(&reply.body).is_ok_and(|body| {
        body["error"].is_string()
            && body["message"].is_string()
            && body.as_object().unwrap().len() == 2
    });
    assert!(
        !neutral,
        "{what}: zipgate's neutral envelope: {}",
        String::from_utf8_lossy(&reply.body)
    );
}

/// The answer carries the vendor's envelope: a body in the content type it declares.
fn assert_enveloped(what: &str, reply: &Reply) {
    assert_not_neutral(what, reply);
    let content_type = reply.header("content-type").unwrap_or("");
    assert!(!reply.body.is_empty(), "{what}: empty body");
    let text = String::from_utf8_lossy(&reply.body);
    if content_type.contains("json") {
        serde_json::from_slice::<Value>(&reply.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
    } else if content_type.contains("xml") {
        assert!(
            text.trim_start().starts_with('<'),
            "{what}: not XML: {text}"
        );
    } else if !content_type.starts_with("text/plain") {
        panic!("{what}: content type {content_type:?}: {text}");
    }
}

#[tokio::test]
async fn every_dialect_serves_its_own_examples() {
    let all = examples();
    for sent in &all {
        // A server each: a vendor may refuse a second job while the first runs.
        let server = start_default().await;
        let reply = send_example(&server, sent, sent.body.clone()).await;
        assert!(
            reply.status.is_success(),
            "{}: {} {}",
            sent.name(),
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    let mounted: Vec<&str> = dialects().iter().map(|d| d.name()).collect();
    let covered: std::collections::BTreeSet<&str> = all.iter().map(|s| s.dialect).collect();
    assert_eq!(covered.len(), mounted.len(), "{mounted:?}");
}

#[tokio::test]
async fn oversized_bodies_get_each_vendors_envelope() {
    let server = start_with_config(Config {
        max_body_bytes: 1024,
        ..Config::default()
    })
    .await;
    for sent in examples() {
        // Whitespace keeps a JSON or XML body what it was, only longer.
        let big = format!("{}{}", sent.body, " ".repeat(4096));
        let reply = send_example(&server, &sent, big).await;
        assert!(
            reply.status.is_client_error(),
            "{}: {} {}",
            sent.name(),
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        assert_enveloped(&sent.name(), &reply);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_declared_too_large_is_refused_before_it_is_sent() {
    let server = Arc::new(
        start_with_config(Config {
            max_body_bytes: 1024,
            ..Config::default()
        })
        .await,
    );
    for sent in examples() {
        let head = sent.head(100_000_000);
        let s = server.clone();
        let (answer, took) = tokio::task::spawn_blocking(move || {
            raw_exchange(&s, &head, b"{", Duration::from_secs(5))
        })
        .await
        .unwrap();
        let status: u16 = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!((400..500).contains(&status), "{}: {answer}", sent.name());
        assert!(took < Duration::from_secs(3), "{}: {took:?}", sent.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_times_out_with_the_vendor_envelope() {
    let server = Arc::new(
        start_with_config(Config {
            body_timeout: Duration::from_millis(300),
            ..Config::default()
        })
        .await,
    );
    for sent in examples() {
        // Announces more than it sends, then goes quiet.
        let head = sent.head(sent.body.len() + 100);
        let body = sent.body.clone();
        let s = server.clone();
        let (answer, took) = tokio::task::spawn_blocking(move || {
            raw_exchange(&s, &head, body.as_bytes(), Duration::from_secs(5))
        })
        .await
        .unwrap();
        let status: u16 = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!((400..500).contains(&status), "{}: {answer}", sent.name());
        let (_, body) = answer.split_once("\r\n\r\n").unwrap_or_default();
        assert!(!body.is_empty(), "{}: no envelope: {answer}", sent.name());
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(4),
            "{}: {took:?}",
            sent.name()
        );
    }
}

#[tokio::test]
async fn malformed_bodies_on_every_create_route_get_the_vendor_envelope() {
    let server = start_default().await;
    let nested_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let nested_xml = format!("{}{}", "<a>".repeat(50_000), "</a>".repeat(50_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("truncated json", br#"{"items":[{"type":"file","id":"12"#.to_vec()),
        ("not json", b"items=1".to_vec()),
        ("null", b"null".to_vec()),
        ("wrong types", br#"{"items":"x","fileIds":{"a":1},"idList":7,"FileIds":"q","path":[]}"#.to_vec()),
        ("deeply nested json", nested_json.into_bytes()),
        ("huge numbers", br#"{"items":[{"type":"file","id":1e999999}],"fileIds":[123456789012345678901234567890],"FileIds":[-1e400]}"#.to_vec()),
        ("latin-1 bytes", b"{\"items\":[{\"type\":\"file\",\"id\":\"\xff\xfe\"}]}".to_vec()),
        ("utf-16", "{\"items\":[]}".encode_utf16().flat_map(|u| u.to_le_bytes()).collect()),
        ("deeply nested xml", nested_xml.into_bytes()),
        ("xml with a dtd", br#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxxxx"><!ENTITY y "&x;&x;&x;&x;">]><a>&y;</a>"#.to_vec()),
        ("truncated xml", b"<ZipRequest><FileIds><int>1</int>".to_vec()),
        ("huge form", "FileIds=1&".repeat(50_000).into_bytes()),
        ("binary", (0u8..=255).cycle().take(4096).collect()),
    ];
    let all = examples();
    for sent in &all {
        for (what, body) in &bodies {
            let reply = send_example(&server, sent, body.clone()).await;
            let label = format!("{} / {what}", sent.name());
            // ONLYOFFICE answers unreadable XML with a 500, as the vendor does (XmlException).
            let vendor_500 = sent.dialect == "onlyoffice"
                && sent.label == "xml"
                && reply.status == StatusCode::INTERNAL_SERVER_ERROR;
            assert!(
                reply.status.is_client_error() || vendor_500 || reply.status.is_success(),
                "{label}: {} {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
            if !reply.status.is_success() {
                assert_enveloped(&label, &reply);
            }
        }
    }
    // Every request was answered and the server is as healthy as before.
    assert_eq!(
        get(&server, "/_zipgate/health").await.status,
        StatusCode::OK
    );
    let answered = get(&server, "/_zipgate/requests").await.json()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"].is_u64())
        .count();
    assert_eq!(answered, all.len() * bodies.len());
}

/// A route pattern with its parameters filled in.
fn concrete(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        out.push_str("x1");
        rest = rest[start..].split_once('}').map_or("", |(_, after)| after);
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_get_the_vendors_answer() {
    let server = start_default().await;
    for dialect in dialects() {
        for prefix in dialect.prefixes() {
            let path = format!("{prefix}zipgate-conformance/nothing-here");
            let reply = send(&server, Method::GET, &path, &[("host", HOST)], "").await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
            assert_not_neutral(&path, &reply);
        }
        let mut patterns: BTreeMap<String, Vec<Method>> = BTreeMap::new();
        for (method, pattern, _) in dialect.routes() {
            patterns.entry(pattern).or_default().push(method);
        }
        for (pattern, methods) in patterns {
            let path = concrete(&pattern);
            let reply = send(&server, Method::PATCH, &path, &[("host", HOST)], "").await;
            let what = format!("{} PATCH {path}", dialect.name());
            assert!(
                reply.status == StatusCode::METHOD_NOT_ALLOWED
                    || reply.status == StatusCode::NOT_FOUND,
                "{what}: {}",
                reply.status
            );
            assert_not_neutral(&what, &reply);
            if let Some(allow) = reply.header("allow") {
                for method in methods {
                    assert!(allow.contains(method.as_str()), "{what}: Allow: {allow}");
                }
            }
        }
    }
    // The journal names the dialect that owned each of those paths.
    let journal = get(&server, "/_zipgate/requests").await.json();
    for request in journal["requests"].as_array().unwrap() {
        assert!(request["dialect"].is_string(), "{request}");
    }
}

#[tokio::test]
async fn an_injected_status_is_answered_in_each_vendors_envelope() {
    let server = start_default().await;
    for sent in examples() {
        for status in [401u16, 429, 503] {
            let rule = json!({"match": {"dialect": sent.dialect}, "times": 1,
                              "respond": {"status": status}});
            assert_eq!(add_fault(&server, rule).await.status, StatusCode::CREATED);
            let reply = send_example(&server, &sent, sent.body.clone()).await;
            let what = format!("{} fault {status}", sent.name());
            assert_eq!(reply.status.as_u16(), status, "{what}");
            assert_not_neutral(&what, &reply);
        }
    }
}

#[tokio::test]
async fn head_answers_like_get_with_no_body_or_as_the_vendor_routes_it() {
    let server = start_default().await;
    for dialect in dialects() {
        let example = examples()
            .into_iter()
            .find(|s| s.dialect == dialect.name())
            .unwrap();
        for (method, pattern, _) in dialect.routes() {
            if method != Method::GET {
                continue;
            }
            let path = concrete(&pattern);
            let got = send(&server, Method::GET, &path, &example.headers(), "").await;
            let head = send(&server, Method::HEAD, &path, &example.headers(), "").await;
            let what = format!("{} HEAD {path}", dialect.name());
            let under_prefix = dialect.prefixes().iter().any(|p| {
                path.to_ascii_lowercase()
                    .starts_with(&p.to_ascii_lowercase())
            });
            if dialect.path_rules().head_only_where_declared && under_prefix {
                // A vendor that routes by verb: a 405 naming GET, no body.
                assert_eq!(head.status, StatusCode::METHOD_NOT_ALLOWED, "{what}");
                assert!(head.body.is_empty(), "{what}");
                let allow = head.header("allow").unwrap_or_default().to_owned();
                assert!(allow.contains("GET"), "{what}: Allow: {allow}");
                continue;
            }
            assert_eq!(head.status, got.status, "{what}");
            assert!(head.body.is_empty(), "{what}");
            assert_eq!(
                head.header("content-type"),
                got.header("content-type"),
                "{what}"
            );
        }
    }
}

#[tokio::test]
async fn a_range_on_an_example_is_ignored_or_served_consistently() {
    for sent in examples() {
        // A server each: a vendor may refuse a second job while the first runs.
        let server = start_default().await;
        let mut headers = sent.headers();
        headers.push(("range", "bytes=0-9"));
        let reply = send(
            &server,
            sent.method.clone(),
            &sent.path,
            &headers,
            sent.body.clone(),
        )
        .await;
        let what = format!("{} with a Range", sent.name());
        match reply.status {
            StatusCode::PARTIAL_CONTENT => {
                let range = reply.header("content-range").unwrap_or_default();
                assert!(range.trim().starts_with("bytes 0-9/"), "{what}: {range:?}");
                assert_eq!(reply.body.len(), 10, "{what}");
            }
            status => {
                assert!(status.is_success(), "{what}: {status}");
                assert!(reply.header("content-range").is_none(), "{what}");
                if let Some(len) = reply.header("content-length") {
                    assert_eq!(len, reply.body.len().to_string(), "{what}");
                }
            }
        }
    }
}
