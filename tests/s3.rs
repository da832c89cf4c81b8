//! `--store s3://…` against a real S3-compatible server: moto_server from
//! `.venv-s3` (tests/run installs it), started on a free loopback port per
//! test and seeded with boto3 (tests/s3/seed.py).

mod common;

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use zipgate::store::backend::{LeftOut, Store};
use zipgate::store::directory::DirectoryStore;
use zipgate::ServerHandle;

use common::s3::S3Server;
use common::*;

fn paths(server: &ServerHandle) -> Vec<String> {
    let mut paths: Vec<String> = server
        .state()
        .store()
        .nodes()
        .map(|n| n.id.0.clone())
        .collect();
    paths.sort();
    paths
}

#[tokio::test]
async fn the_default_fixture_in_a_bucket_serves_the_same_archives() {
    let moto = S3Server::moto();
    let fixture = start_default().await;
    let dir = alice_home_on_disk("s3-fixture");
    moto.seed(&["seed", "fixture", dir.path().to_str().unwrap()]);
    // Keys no file system could hold are left out, not resolved.
    moto.seed(&["put", "fixture/bad/../x.txt", "climbs"]);
    moto.seed(&["put", "fixture/a//b.txt", "doubled"]);
    moto.seed(&["put", "fixture/plain.txt", "uploaded without a checksum"]);
    let store = moto.store("fixture");
    let mut left_out = LeftOut::default();
    let listed = store.list_all(&mut left_out).unwrap();
    assert_eq!(left_out.unsafe_names, 2);
    // S3's full-object CRC-32 is the zip CRC: taken as it is, for the
    // version listed only, and absent where the upload had none.
    let notes = listed["Alice/Documents"]
        .iter()
        .find(|e| e.name == "notes.md")
        .unwrap();
    let bytes = std::fs::read(dir.path().join("Alice/Documents/notes.md")).unwrap();
    assert_eq!(
        store
            .stored_crc32("Alice/Documents/notes.md", &notes.version)
            .unwrap(),
        Some(crc32fast::hash(&bytes))
    );
    assert_eq!(
        store
            .stored_crc32("Alice/Documents/notes.md", "\"another version\"")
            .unwrap(),
        None
    );
    let plain = listed[""].iter().find(|e| e.name == "plain.txt").unwrap();
    assert_eq!(
        store.stored_crc32("plain.txt", &plain.version).unwrap(),
        None
    );

    let in_bucket = serve_store(Arc::new(store)).await;
    let on_disk = serve_store(Arc::new(DirectoryStore::new(dir.path()).unwrap())).await;
    let mut in_bucket_paths = paths(&in_bucket);
    in_bucket_paths.retain(|p| p != "plain.txt");
    assert_eq!(in_bucket_paths, paths(&on_disk));
    // A single file: byte-identical, its mtime from the `mtime` metadata.
    assert_eq!(
        stored_zip(&in_bucket, "Alice/Documents/Überblick – 日本語.txt").await,
        stored_zip(&fixture, "file-overview").await
    );
    // Folders: the same entries in the same order, byte for byte, with the
    // mtimes rclone's metadata gives files and folder markers.
    for (fixture_id, path) in [
        ("folder-reports", "Alice/Documents/Reports"),
        ("folder-empty", "Alice/Documents/Empty"),
        ("folder-media", "Alice/Media"),
    ] {
        assert_eq!(
            zip_entries(stored_zip(&in_bucket, path).await),
            zip_entries(stored_zip(&fixture, fixture_id).await),
            "{path}"
        );
    }
}

/// A Dropbox `download_zip` of `/docs` as alice: whether a whole archive came.
async fn dropbox_zip_served(server: &ServerHandle) -> bool {
    let headers = [
        ("authorization", "Bearer alice-token"),
        ("dropbox-api-arg", r#"{"path": "/docs"}"#),
    ];
    match try_open(server, Method::POST, "/2/files/download_zip", &headers, "").await {
        Ok(response) => response.into_body().collect().await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn an_object_replaced_after_listing_is_never_served_and_an_outage_does_not_hang() {
    let mut moto = S3Server::moto();
    let dir = TempDir::new("s3-change");
    std::fs::create_dir_all(dir.path().join("docs")).unwrap();
    std::fs::write(dir.path().join("docs/a.txt"), "first version\n").unwrap();
    moto.seed(&["seed", "change", dir.path().to_str().unwrap()]);
    let store = moto.store("change");
    let listed = store.list_all(&mut LeftOut::default()).unwrap();
    let a = listed["docs"].iter().find(|e| e.name == "a.txt").unwrap();
    let read = |version: &str| {
        let mut out = Vec::new();
        store
            .open_at("docs/a.txt", version, 6, 7)
            .and_then(|mut r| std::io::Read::read_to_end(&mut r, &mut out))
            .map(|_| out)
    };
    assert_eq!(read(&a.version).unwrap(), b"version");
    // Names from outside the listing never reach the store.
    assert!(store
        .open_at("docs/../docs/a.txt", &a.version, 0, 1)
        .is_err());

    let server = serve_store(Arc::new(moto.store("change"))).await;
    moto.seed(&["put", "change/docs/a.txt", "second version\n"]);
    let error = read(&a.version).unwrap_err();
    assert!(error.to_string().contains("changed"), "{error}");
    // Dropbox plans against the tree as listed; the read meets 412 and the
    // download is cut, before or after its head.
    assert!(
        !dropbox_zip_served(&server).await,
        "a replaced object was served"
    );

    // The store goes away: a download is each vendor's 503, within the
    // store's timeouts (never a hang, never a cut connection).
    moto.stop();
    // A check that succeeded less than a second ago is not repeated.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let headers = [
        ("authorization", "Bearer alice-token"),
        ("dropbox-api-arg", r#"{"path": "/docs"}"#),
    ];
    let dropbox = send(&server, Method::POST, "/2/files/download_zip", &headers, "");
    let reply = tokio::time::timeout(Duration::from_secs(60), dropbox)
        .await
        .expect("the download does not hang");
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8"),
        "Dropbox's plain-text 5xx"
    );
    let body = json!({"items": [{"id": "docs"}]});
    let native = zip(&server, &body, Some("alice-token"));
    let reply = tokio::time::timeout(Duration::from_secs(60), native)
        .await
        .expect("the download does not hang");
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json()["error"], "unavailable");
}

#[tokio::test]
async fn a_second_s3_implementation_serves_the_same_archives() {
    let data = TempDir::new("s3rver-data");
    let s3rver = S3Server::s3rver(data.path());
    let fixture = start_default().await;
    let dir = alice_home_on_disk("s3rver-fixture");
    s3rver.seed(&["seed", "fixture", dir.path().to_str().unwrap()]);
    let in_bucket = serve_store(Arc::new(s3rver.store("fixture"))).await;
    let on_disk = serve_store(Arc::new(DirectoryStore::new(dir.path()).unwrap())).await;
    assert_eq!(paths(&in_bucket), paths(&on_disk));
    assert_eq!(
        stored_zip(&in_bucket, "Alice/Documents/Überblick – 日本語.txt").await,
        stored_zip(&fixture, "file-overview").await
    );
    // The same folder on disk: the same entries in the same (name) order,
    // byte for byte, with their mtimes (folders' from their markers).
    assert_eq!(
        zip_entries(stored_zip(&in_bucket, "Alice/Documents").await),
        zip_entries(stored_zip(&on_disk, "Alice/Documents").await)
    );
}
