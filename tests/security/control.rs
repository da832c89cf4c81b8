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
    assert_eq!(node_count(&server).await, 21, "the tree in force stays");
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
    assert_eq!(node_count(&server).await, 21);

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
    assert_eq!(node_count(&server).await, 21);
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
    assert_eq!(node_count(&server).await, 21, "the tree in force stays");
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
    assert_eq!(node_count(&server).await, 21);

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

/// A content root with a file inside, a file beside it, and the ways out.
fn content_tree() -> (TempDir, std::path::PathBuf) {
    let dir = TempDir::new("content-root");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/inside.txt"), "inside").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("out-abs")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("out-rel")).unwrap();
    std::os::unix::fs::symlink("sub/inside.txt", root.join("in-link")).unwrap();
    std::os::unix::fs::symlink("/proc/self/root/etc/passwd", root.join("magic")).unwrap();
    (dir, root)
}

async fn zip_bytes(server: &ServerHandle, id: &str) -> Option<Vec<u8>> {
    // A file refused when the engine opens it cuts the response, before its
    // head when nothing was sent yet.
    let response = common::try_open(
        server,
        Method::POST,
        "/_zipgate/zip",
        &[JSON],
        json!({"items": [{"id": id}]}).to_string(),
    )
    .await
    .ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    // A failure once the 200 is out cuts the body.
    http_body_util::BodyExt::collect(response.into_body())
        .await
        .ok()
        .map(|body| body.to_bytes().to_vec())
}

fn entry(archive: &[u8], name: &str) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name(name).unwrap(), &mut out).unwrap();
    out
}

/// Point 1: with `--content-root`, fixtures over HTTP name files beneath it
/// and nowhere else; every way out fails with one message that names only
/// the path as written.
#[tokio::test]
async fn a_content_root_confines_paths_and_says_nothing_about_what_is_outside() {
    let (dir, root) = content_tree();
    let server = zipgate::Server::builder()
        .content_root(&root)
        .spawn()
        .await
        .unwrap();
    let absolute_inside = root.join("sub/inside.txt");
    for path in [
        "sub/inside.txt",
        "./sub/inside.txt",
        "in-link",
        absolute_inside.to_str().unwrap(),
    ] {
        let reply = put_fixtures(&server, &json!({"nodes": [file_node("f", path)]})).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:?}", reply.json());
        let archive = zip_bytes(&server, "f").await.expect("a whole archive");
        assert_eq!(entry(&archive, "f.txt"), b"inside", "{path}");
    }

    let secret = dir.path().join("secret.txt");
    let outside = [
        "missing.txt",
        "sub",
        "../secret.txt",
        "sub/../../secret.txt",
        "out-abs",
        "out-rel",
        "magic",
        secret.to_str().unwrap(),
        "/etc/passwd",
        "/",
    ];
    let mut messages = Vec::new();
    for path in outside {
        let reply = common::send(
            &server,
            Method::POST,
            "/_zipgate/fixtures/nodes",
            &[JSON],
            json!({"nodes": [file_node("x", path)]}).to_string(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        let error = reply.json();
        assert_eq!(error["error"], "invalid_fixture");
        assert_eq!(error["path"], "nodes[1].content.path", "{path}");
        let message = error["message"].as_str().unwrap().to_owned();
        let root_text = root.to_str().unwrap();
        assert!(!message.contains("No such file"), "{message}");
        assert!(!message.replace(path, "").contains(root_text), "{message}");
        messages.push(message.replace(&format!("{path:?}"), "PATH"));
    }
    assert!(
        messages.windows(2).all(|w| w[0] == w[1]),
        "one answer whatever is wrong: {messages:?}"
    );
}

/// Point 1: the confinement holds when the file is opened for a download,
/// not only at load: a symlink swapped in afterwards does not lead out.
#[tokio::test]
async fn a_symlink_swapped_in_after_load_does_not_lead_out() {
    let (dir, root) = content_tree();
    let server = zipgate::Server::builder()
        .content_root(&root)
        .spawn()
        .await
        .unwrap();
    // Same length and time stamp as the secret, so only the path differs.
    let secret = dir.path().join("secret.txt");
    std::fs::write(root.join("decoy.txt"), "not secret").unwrap();
    let stamp = std::fs::metadata(&secret).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(root.join("decoy.txt"))
        .unwrap()
        .set_modified(stamp)
        .unwrap();
    let reply = put_fixtures(&server, &json!({"nodes": [file_node("d", "decoy.txt")]})).await;
    assert_eq!(reply.status, StatusCode::OK);
    std::fs::remove_file(root.join("decoy.txt")).unwrap();
    std::os::unix::fs::symlink(&secret, root.join("decoy.txt")).unwrap();
    if let Some(archive) = zip_bytes(&server, "d").await {
        assert!(
            !archive.windows(10).any(|w| w == b"top secret"),
            "the secret was served"
        );
    }
}

/// Point 1: nodes added over HTTP to a fixture file's tree get the control
/// plane's rule, while the file's own paths (beside it) keep working.
#[tokio::test]
async fn nodes_added_to_a_fixture_file_keep_the_control_planes_rule() {
    let dir = TempDir::new("fixture-file");
    std::fs::write(dir.path().join("beside.txt"), "beside").unwrap();
    let fixture = dir.path().join("tree.json");
    std::fs::write(
        &fixture,
        json!({"nodes": [{"id": "top", "name": "top", "children": [file_node("b", "beside.txt")]}]})
            .to_string(),
    )
    .unwrap();
    let server = zipgate::Server::builder()
        .fixtures_file(&fixture)
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let add = |node: Value| {
        common::send(
            &server,
            Method::POST,
            "/_zipgate/fixtures/nodes",
            &[JSON],
            json!({"parent": "top", "nodes": [node]}).to_string(),
        )
    };
    let reply = add(file_node("again", "beside.txt")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["path"], "nodes[0].children[1].content.path");
    let reply = add(json!({"id": "g", "name": "g.txt", "content": {"text": "g"}})).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
    let archive = zip_bytes(&server, "top").await.unwrap();
    assert_eq!(entry(&archive, "top/b.txt"), b"beside");
    assert_eq!(entry(&archive, "top/g.txt"), b"g");
}

/// Point 4: `--allow-host`, the `--public-url` host and `*` widen the Host
/// rule; a request without a Host (HTTP/1.0) passes; an empty token stops
/// start-up.
#[tokio::test]
async fn hosts_can_be_allowed_and_an_empty_token_is_refused() {
    let server = zipgate::Server::builder()
        .allow_host("zipgate.internal")
        .public_url("https://zip.example.com")
        .spawn()
        .await
        .unwrap();
    for (host, status) in [
        ("zipgate.internal:8080", StatusCode::OK),
        ("ZIP.example.com", StatusCode::OK),
        ("other.example", StatusCode::FORBIDDEN),
    ] {
        let reply = common::send(
            &server,
            Method::GET,
            "/_zipgate/faults",
            &[("host", host)],
            Bytes::new(),
        )
        .await;
        assert_eq!(reply.status, status, "{host}");
    }
    let reply = common::send(
        &server,
        Method::POST,
        "/_zipgate/reset",
        &[("origin", "https://zip.example.com")],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "the public origin is ours");

    // HTTP/1.0 without a Host.
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET /_zipgate/faults HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer)
        .await
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let any = zipgate::Server::builder()
        .allow_host("*")
        .spawn()
        .await
        .unwrap();
    let reply = common::send(
        &any,
        Method::GET,
        "/_zipgate/faults",
        &[("host", "anything.example")],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    for bad in [
        zipgate::Server::builder().control_token(""),
        zipgate::Server::builder().allow_host("host:80"),
    ] {
        let error = bad.spawn().await.err().expect("start-up refused");
        assert!(matches!(error, zipgate::StartError::Settings(_)), "{error}");
    }
}

/// Point 15: the cap is configurable and holds for the rules given at start.
#[tokio::test]
async fn the_fault_cap_is_configurable_and_covers_the_starting_rules() {
    let rule = || zipgate::faults::FaultRule::on("POST", "/x").status(503);
    let server = zipgate::Server::builder()
        .max_faults(2)
        .fault(rule())
        .spawn()
        .await
        .unwrap();
    assert_eq!(
        add_rules(&server, &rules(1, 0)).await.status,
        StatusCode::CREATED
    );
    let reply = add_rules(&server, &rules(1, 1)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "too_many_faults");
    assert!(server.add_fault(rule()).is_err(), "in-process too");
    // A reset brings back the starting rule, within the cap.
    let reply = common::send(&server, Method::POST, "/_zipgate/reset", &[], Bytes::new()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(rule_count(&server).await, 1);

    let error = zipgate::Server::builder()
        .max_faults(1)
        .fault(rule())
        .fault(rule())
        .spawn()
        .await
        .err()
        .expect("too many starting rules");
    assert!(matches!(error, zipgate::StartError::Faults(_)), "{error}");
}
