//! Bad clients over real HTTP: slow and stalled clients are dropped;
//! hostile names from the store come out safe. (Oversized, trickled and
//! malformed bodies on every dialect are in `tests/conformance.rs`.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::{Method, StatusCode};
use serde_json::json;
use zipgate::server::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let server = std::sync::Arc::new(
        start_with_config(Config {
            header_timeout: Duration::from_millis(500),
            ..Config::default()
        })
        .await,
    );
    let s = server.clone();
    let (answer, took) = tokio::task::spawn_blocking(move || {
        raw_exchange(
            &s,
            "POST /2.0/zip_downloads HTTP/1.1\r\nHost: x\r\n",
            b"",
            Duration::from_secs(10),
        )
    })
    .await
    .unwrap();
    // hyper closes the connection (with a 408 or with nothing), well before our read timeout.
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_download_is_dropped() {
    let server = start_with_config(Config {
        send_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let created = box_create_as_alice(&server, r#"{"items":[{"type":"folder","id":"1005"}]}"#)
        .await
        .json();
    let path = download_path(&created);
    let response = open(&server, Method::GET, &path, &[], "").await;
    let total = content_length(&response);
    let mut body = response.into_body();
    let mut read = 0usize;
    while read < 1 << 20 {
        let frame = http_body_util::BodyExt::frame(&mut body)
            .await
            .unwrap()
            .unwrap();
        read += frame.data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(server.state().streams.active(), 1);
    // Stop reading, keep the connection: the server gives up on it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.state().streams.active() > 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled download is still streaming"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let journal = get(&server, "/_zipgate/requests?method=GET").await.json();
    let sent = journal["requests"][0]["bytes_sent"].as_u64().unwrap();
    assert!(sent < total, "{sent} of {total}");
    drop(body);
}

#[tokio::test]
async fn hostile_names_from_the_store_come_out_safe() {
    let names = [
        "../../evil.txt",
        "/etc/passwd",
        "C:\\Windows\\win.ini",
        "nul\u{0}byte.txt",
        "..",
        ".. ",
        "a/../../b.txt",
        "\u{202e}txt.exe",
    ];
    let children: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| json!({"id": format!("n{i}"), "name": name, "content": {"text": "x"}}))
        .collect();
    let server = common::builder()
        .fixtures(json!({
            "users": [{"id": "u", "token": "t"}],
            "nodes": [{"id": "top", "name": "../top", "ids": {"box": "9"}, "children": children}]
        }))
        .spawn()
        .await
        .unwrap();
    let created = send(
        &server,
        Method::POST,
        "/2.0/zip_downloads",
        &[
            ("authorization", "Bearer t"),
            ("content-type", "application/json"),
            ("host", HOST),
        ],
        r#"{"items":[{"type":"folder","id":"9"}]}"#,
    )
    .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.json());
    let archive = send(
        &server,
        Method::GET,
        &download_path(&created.json()),
        &[],
        "",
    )
    .await;
    assert_eq!(archive.status, StatusCode::OK);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive.body.clone())).unwrap();
    assert_eq!(zip.len(), names.len() + 1);
    for i in 0..zip.len() {
        let name = zip.by_index(i).unwrap().name().unwrap().to_string();
        assert!(
            !name.starts_with('/')
                && !name.contains('\\')
                && !name.contains('\0')
                && !name.split('/').any(|c| c == ".."
                    || c == "."
                    || c.trim_end_matches([' ', '.']).is_empty() && !c.is_empty()),
            "unsafe entry name {name:?}"
        );
    }
    // unzip extracts everything inside the target folder.
    let dir = TempDir::new("hostile-names");
    let zip_path = dir.path().join("a.zip");
    std::fs::write(&zip_path, &archive.body).unwrap();
    let out = dir.path().join("out");
    run(std::process::Command::new("unzip")
        .arg("-q")
        .arg(&zip_path)
        .arg("-d")
        .arg(&out));
    let mut extracted = 0;
    let mut stack = vec![out.clone()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            assert!(path.starts_with(&out), "{} escaped", path.display());
            if path.is_dir() {
                stack.push(path);
            } else {
                extracted += 1;
            }
        }
    }
    assert_eq!(extracted, names.len());
}
