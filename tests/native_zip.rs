//! The neutral zip route over real HTTP, checked by real zip readers.

mod common;

use common::*;
use http::{Method, StatusCode};
use serde_json::json;
use zipgate::api::{Compression, Principal, UserId};
use zipgate::store::DEFAULT_FIXTURE;
use zipgate::CompressionPolicy;
use zipgate::DeflateEngine;

const TREE: &str = r##"{
  "users": [{"id": "ann", "token": "ann-token"}],
  "nodes": [
    {"id": "top", "name": "Projekt Ü", "mtime": "2024-02-03T04:05:06Z", "children": [
      {"id": "a", "name": "readme.txt", "content": {"text": "hello zip\n"}},
      {"id": "nested", "name": "deep", "children": [
        {"id": "deeper", "name": "deeper", "children": [
          {"id": "b", "name": "Überblick – 日本語.txt", "content": {"text": "Grüße – こんにちは\n"}}
        ]}
      ]},
      {"id": "empty", "name": "Empty", "type": "folder"},
      {"id": "log", "name": "server.log", "content": {"generate": {"size": 3000000, "seed": 9, "kind": "text"}}},
      {"id": "noise", "name": "noise.bin", "content": {"generate": {"size": 1048577, "seed": 5, "kind": "random"}}},
      {"id": "photo", "name": "photo.jpg", "content": {"base64": "/9j/4AAQSkZJRgABAQAAAQABAAD/2Q=="}},
      {"id": "zero", "name": "zero.txt", "content": {"text": ""}}
    ]},
    {"id": "loose", "name": "loose.md", "content": {"text": "# loose\n"}}
  ]
}"##;

async fn archive(server: &zipgate::ServerHandle, ids: &[&str], compression: &str) -> Reply {
    let items: Vec<_> = ids.iter().map(|id| json!({ "id": id })).collect();
    let reply = zip(
        server,
        &json!({"items": items, "name": "Pack Ü", "compression": compression}),
        None,
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply
}

#[tokio::test]
async fn stored_and_deflated_archives_pass_every_reader() {
    let server = start_with(TREE).await;
    let expected = expected_entries(TREE, &Principal::Anonymous, &["top", "loose"]);
    for compression in ["store", "deflate"] {
        let reply = archive(&server, &["top", "loose"], compression).await;
        assert_eq!(reply.header("content-type"), Some("application/zip"));
        assert_eq!(
            reply.header("content-disposition"),
            Some("attachment; filename=\"Pack _.zip\"; filename*=UTF-8''Pack%20%C3%9C.zip")
        );
        check_with_readers(&reply.body, &expected);
    }
}

#[tokio::test]
async fn every_deflate_engine_and_level_passes_every_reader() {
    let expected = expected_entries(TREE, &Principal::Anonymous, &["top"]);
    let mut sizes = Vec::new();
    for (engine, level) in [
        (DeflateEngine::Fastest, 1),
        (DeflateEngine::Fastest, 3),
        (DeflateEngine::Fastest, 9),
        (DeflateEngine::ZlibRs, 1),
        (DeflateEngine::ZlibRs, 6),
    ] {
        let server = common::builder()
            .fixtures_json(TREE)
            .unwrap()
            .compression(CompressionPolicy {
                method: Compression::Deflate,
                level,
                engine,
                ..CompressionPolicy::default()
            })
            .spawn()
            .await
            .unwrap();
        let reply = archive(&server, &["top"], "deflate").await;
        check_with_readers(&reply.body, &expected);
        sizes.push(reply.body.len());
    }
    // The 3 MB log compresses: every archive is far smaller than its input.
    assert!(sizes.iter().all(|&size| size < 2_500_000), "{sizes:?}");
}

#[tokio::test]
async fn the_embedded_default_fixture_zips_for_its_owner() {
    let server = start_default().await;
    let alice = Principal::User(UserId("alice".into()));
    let expected = expected_entries(
        DEFAULT_FIXTURE,
        &alice,
        &["folder-alice-home", "folder-bob-shared"],
    );
    let reply = zip(
        &server,
        &json!({"items": [{"id": "folder-alice-home"}, {"id": "folder-bob-shared"}]}),
        Some("alice-token"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-disposition"),
        Some("attachment; filename=\"download.zip\"; filename*=UTF-8''download.zip")
    );
    assert!(reply.body.len() > 64 << 20);
    check_with_readers(&reply.body, &expected);
    // What alice may not read inside her folder (bob's draft) is left out.
    let names = zip_entry_names(&reply.body);
    assert!(names.contains(&"Alice/Documents/todo.txt".to_owned()));
    assert!(!names.iter().any(|n| n.ends_with("bob-draft.txt")));
}

#[tokio::test]
async fn identical_requests_give_identical_bytes() {
    let server = start_with(TREE).await;
    for compression in ["store", "deflate"] {
        let first = archive(&server, &["top", "loose"], compression).await;
        let second = archive(&server, &["top", "loose"], compression).await;
        assert!(first.body == second.body, "{compression} archives differ");
    }
    // A fresh server (a new process in real use) gives the same bytes too.
    let again = start_with(TREE).await;
    let a = archive(&server, &["top"], "deflate").await;
    let b = archive(&again, &["top"], "deflate").await;
    assert!(a.body == b.body);
}

#[tokio::test]
async fn a_stored_archive_announces_its_exact_length_and_serves_ranges() {
    let server = start_with(TREE).await;
    let full = archive(&server, &["top", "loose"], "store").await;
    let len = full.body.len();
    assert_eq!(
        full.header("content-length"),
        Some(len.to_string().as_str())
    );
    assert_eq!(full.header("accept-ranges"), Some("bytes"));

    let body = json!({"items": [{"id": "top"}, {"id": "loose"}], "name": "Pack Ü", "compression": "store"}).to_string();
    for (range, start, end) in [
        ("bytes=0-99".to_string(), 0, 99),
        (format!("bytes={}-", len - 5000), len - 5000, len - 1),
        ("bytes=-22".to_string(), len - 22, len - 1),
        ("bytes=1234-2000000".to_string(), 1234, 2_000_000),
    ] {
        let reply = send(
            &server,
            Method::POST,
            "/_zipgate/zip",
            &[("content-type", "application/json"), ("range", &range)],
            body.clone(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            reply.header("content-range"),
            Some(format!("bytes {start}-{end}/{len}").as_str())
        );
        assert!(
            reply.body == full.body[start..=end],
            "{range} gives the wrong bytes"
        );
    }
    let reply = send(
        &server,
        Method::POST,
        "/_zipgate/zip",
        &[
            ("content-type", "application/json"),
            ("range", &format!("bytes={len}-")),
        ],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        reply.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    assert_eq!(reply.json()["error"], "range_not_satisfiable");
}

#[tokio::test]
async fn a_deflate_archive_streams_without_a_length() {
    let server = start_with(TREE).await;
    let reply = archive(&server, &["top"], "deflate").await;
    assert_eq!(reply.header("content-length"), None);
    assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
    // Already-compressed types stay stored; text shrinks.
    let reader = zip::ZipArchive::new(std::io::Cursor::new(&reply.body)).unwrap();
    let mut reader = reader;
    let photo = reader.by_name("Projekt Ü/photo.jpg").unwrap();
    assert_eq!(photo.compression(), zip::CompressionMethod::Stored);
    drop(photo);
    let log = reader.by_name("Projekt Ü/server.log").unwrap();
    assert_eq!(log.compression(), zip::CompressionMethod::Deflated);
    assert!(log.compressed_size() < log.size() / 2);
}

#[tokio::test]
async fn more_than_65535_entries_make_a_zip64_archive_every_reader_accepts() {
    let files: Vec<_> = (0..66_000)
        .map(|i| json!({"id": format!("f{i}"), "name": format!("file-{i:05}.txt"), "content": {"text": format!("{i}\n")}}))
        .collect();
    let fixture = json!({"nodes": [{"id": "many", "name": "many", "children": files}]}).to_string();
    let server = start_with(&fixture).await;
    let reply = zip(&server, &json!({"items": [{"id": "many"}]}), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    // ZIP64 end-of-central-directory record and locator are present.
    assert!(reply.body.windows(4).any(|w| w == [0x50, 0x4b, 0x06, 0x06]));
    let expected = expected_entries(&fixture, &Principal::Anonymous, &["many"]);
    assert_eq!(expected.len(), 66_001);
    check_with_readers(&reply.body, &expected);
}
