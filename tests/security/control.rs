//! Security tests: the control plane and the fixtures it takes (issue #15,
//! points 1, 4, 11, 12 and 15).

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use zipgate::ServerHandle;

use super::common::{self, Reply, TempDir};

const JSON: (&str, &str) = ("content-type", "application/json");

async fn put_fixtures(server: &ServerHandle, fixture: &Value) -> Reply {
    common::send(
        server,
        Method::PUT,
        "/_zipgate/fixtures",
        &[JSON],
        fixture.to_string(),
    )
    .await
}

async fn node_count(server: &ServerHandle) -> u64 {
    common::get(server, "/_zipgate/health").await.json()["nodes"]
        .as_u64()
        .unwrap()
}

fn file_node(id: &str, path: &str) -> Value {
    json!({"id": id, "name": format!("{id}.txt"), "content": {"path": path}})
}

/// Point 1: without `--content-root`, fixtures sent over HTTP name no host
/// file at all, and the error says nothing about the host's files.
#[tokio::test]
async fn fixtures_sent_over_http_may_not_name_host_files() {
    let server = common::start_default().await;
    let dir = TempDir::new("host-file");
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    let secret = secret.to_str().unwrap().to_owned();
    let mut messages = Vec::new();
    for path in [
        secret.as_str(),
        "/etc/passwd",
        "/no/such/file",
        "secret.txt",
    ] {
        let reply = put_fixtures(&server, &json!({"nodes": [file_node("s", path)]})).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        let error = reply.json();
        assert_eq!(error["error"], "invalid_fixture");
        assert_eq!(error["path"], "nodes[0].content.path");
        messages.push(error["message"].as_str().unwrap().to_owned());
    }
    assert!(
        messages.windows(2).all(|w| w[0] == w[1]),
        "one answer whatever the path: {messages:?}"
    );
    assert!(messages[0].contains("--content-root"), "{}", messages[0]);

    let reply = common::send(
        &server,
        Method::POST,
        "/_zipgate/fixtures/nodes",
        &[JSON],
        json!({"parent": "folder-documents", "nodes": [file_node("s", &secret)]}).to_string(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // The path in the document in force, after the folder's own children.
    let at = reply.json()["path"].as_str().unwrap().to_owned();
    assert!(at.ends_with("].content.path"), "{at}");
    assert_eq!(node_count(&server).await, 19, "the tree in force stays");
    let zip = common::zip(&server, &json!({"items": [{"id": "s"}]}), None).await;
    assert_eq!(zip.status, StatusCode::NOT_FOUND);
}

/// Point 4: a web page's cross-site request cannot change anything: no
/// `text/plain` or form bodies, no foreign `Origin`, no foreign `Host`.
#[tokio::test]
async fn a_web_page_cannot_drive_the_control_plane() {
    let server = common::start_default().await;
    let addr = server.addr().to_string();
    let empty = json!({"nodes": []}).to_string();

    // Bodies a page may send cross-site without a preflight.
    for content_type in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let reply = common::send(
            &server,
            Method::PUT,
            "/_zipgate/fixtures",
            &[("content-type", content_type)],
            empty.clone(),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
        assert_eq!(reply.json()["error"], "unsupported_media_type");
    }
    let reply = common::send(&server, Method::POST, "/_zipgate/faults", &[], "{}").await;
    assert_eq!(
        reply.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "a body without a type"
    );
    assert_eq!(node_count(&server).await, 19);

    // A foreign Origin (CSRF), even on a body-less reset.
    for origin in ["http://evil.example", "null", "http://localhost:1"] {
        let reply = common::send(
            &server,
            Method::POST,
            "/_zipgate/reset",
            &[("origin", origin)],
            Bytes::new(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(reply.json()["error"], "origin_not_allowed");
    }
    let reply = common::send(
        &server,
        Method::POST,
        "/_zipgate/zip",
        &[JSON, ("origin", "http://evil.example")],
        json!({"items": [{"id": "file-notes"}]}).to_string(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // The server's own origin, and curl's body-less POST, pass.
    let own = format!("http://{addr}");
    let reply = common::send(
        &server,
        Method::POST,
        "/_zipgate/reset",
        &[("origin", own.as_str())],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = common::send(
        &server,
        Method::DELETE,
        "/_zipgate/faults",
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    // DNS rebinding: the page's own name as the Host, on every control
    // route (reading ones too) and on the zip route.
    let port = server.addr().port();
    let evil = format!("rebind.evil.example:{port}");
    for (method, path, body) in [
        (Method::GET, "/_zipgate/requests", String::new()),
        (Method::GET, "/_zipgate/faults", String::new()),
        (Method::PUT, "/_zipgate/fixtures", empty.clone()),
        (
            Method::POST,
            "/_zipgate/zip",
            json!({"items": [{"id": "file-notes"}]}).to_string(),
        ),
    ] {
        let reply = common::send(
            &server,
            method.clone(),
            path,
            &[("host", &evil), JSON],
            body,
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(reply.json()["error"], "host_not_allowed");
    }
    assert_eq!(node_count(&server).await, 19);
    for host in [
        format!("localhost:{port}"),
        "127.0.0.2".to_owned(),
        format!("[::1]:{port}"),
    ] {
        let reply = common::send(
            &server,
            Method::GET,
            "/_zipgate/faults",
            &[("host", &host)],
            Bytes::new(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{host}");
    }
    // Health is for probes, which name the server however they reach it.
    let reply = common::send(
        &server,
        Method::GET,
        "/_zipgate/health",
        &[("host", &evil)],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

/// Point 11: a fixture document is an object; `[]` used to wipe the tree.
#[tokio::test]
async fn a_fixture_that_is_not_an_object_is_refused() {
    let server = common::start_default().await;
    for document in [
        json!([]),
        json!("nodes"),
        json!(1),
        json!(null),
        json!([{"id": "x"}]),
    ] {
        let reply = put_fixtures(&server, &document).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{document}");
        let error = reply.json();
        assert_eq!(error["error"], "invalid_fixture", "{document}");
        assert_eq!(error["path"], "$");
    }
    assert_eq!(node_count(&server).await, 19, "the tree in force stays");
}

/// Point 12: generated sizes that add up past 2^64 (or past the 2^62 a
/// fixture may hold) are refused at load, so no archive length can wrap.
#[tokio::test]
async fn content_sizes_that_would_wrap_are_refused_at_load() {
    // No CRC warmer: it would read the huge generated bodies below.
    let config = zipgate::server::Config {
        warm_crcs: false,
        ..Default::default()
    };
    let server = zipgate::Server::builder()
        .config(config)
        .spawn()
        .await
        .unwrap();
    let generated = |id: &str, size: u64| json!({"id": id, "name": id, "ids": {"box": id}, "content": {"generate": {"size": size}}});
    let folder = |children: Vec<Value>| {
        json!({"users": [{"id": "u", "token": "t"}], "nodes": [
            {"id": "d", "name": "d", "ids": {"box": "1"}, "children": children}]})
    };
    // 2^63 + 2^63 wrapped to 0: Box's 32 GiB limit let it through.
    let wrapping = folder(vec![generated("a", 1 << 63), generated("b", 1 << 63)]);
    let reply = put_fixtures(&server, &wrapping).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let error = reply.json();
    assert_eq!(error["error"], "invalid_fixture");
    assert_eq!(error["path"], "nodes[0].children[0].content");
    assert!(
        error["message"].as_str().unwrap().contains("2^62"),
        "{error}"
    );
    // Past the bound without wrapping, and one over it alone.
    for sizes in [vec![1u64 << 61, 1 << 61, 1], vec![u64::MAX]] {
        let nodes: Vec<Value> = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| generated(&format!("g{i}"), *size))
            .collect();
        let reply = put_fixtures(&server, &json!({ "nodes": nodes })).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{sizes:?}");
        assert_eq!(
            reply.json()["path"],
            format!("nodes[{}].content", sizes.len() - 1)
        );
    }
    assert_eq!(node_count(&server).await, 19);

    // At the bound the sum is exact, and Box's limit sees all of it.
    let at_bound = folder(vec![generated("a", 1 << 61), generated("b", 1 << 61)]);
    assert_eq!(
        put_fixtures(&server, &at_bound).await.status,
        StatusCode::OK
    );
    let reply = common::send(
        &server,
        Method::POST,
        "/2.0/zip_downloads",
        &[JSON, ("authorization", "Bearer t")],
        json!({"items": [{"type": "folder", "id": "1"}]}).to_string(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.json());
}

fn rules(count: usize, from: usize) -> Value {
    let list: Vec<Value> = (from..from + count)
        .map(|i| json!({"match": {"path": format!("/nowhere/{i}")}, "delay_ms": 1}))
        .collect();
    json!({ "faults": list })
}

async fn add_rules(server: &ServerHandle, rules: &Value) -> Reply {
    common::send(
        server,
        Method::POST,
        "/_zipgate/faults",
        &[JSON],
        rules.to_string(),
    )
    .await
}

async fn rule_count(server: &ServerHandle) -> usize {
    common::get(server, "/_zipgate/faults").await.json()["faults"]
        .as_array()
        .unwrap()
        .len()
}

/// Point 15: the fault book holds at most 1,000 rules by default; a batch
/// that would pass it adds nothing.
#[tokio::test]
async fn the_fault_book_is_capped() {
    let server = common::start_default().await;
    let reply = add_rules(&server, &rules(1001, 0)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let error = reply.json();
    assert_eq!(error["error"], "too_many_faults");
    assert!(
        error["message"].as_str().unwrap().contains("--max-faults"),
        "{error}"
    );
    assert_eq!(rule_count(&server).await, 0, "all or nothing");

    assert_eq!(
        add_rules(&server, &rules(1000, 0)).await.status,
        StatusCode::CREATED
    );
    let reply = add_rules(&server, &json!({"match": {"path": "/x"}, "delay_ms": 1})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(rule_count(&server).await, 1000);
    let reply = common::send(
        &server,
        Method::DELETE,
        "/_zipgate/faults/fault-1",
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        add_rules(&server, &rules(1, 5000)).await.status,
        StatusCode::CREATED
    );
}
