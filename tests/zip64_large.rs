//! An archive past 4 GiB with an entry of exactly 0xFFFFFFFF bytes, streamed over HTTP to
//! disk and checked by every reader: the ZIP64 case the readers disagree on
//! most (Info-ZIP needs the full central ZIP64 extra for entries that follow).

mod common;

use std::io::Write;

use common::*;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use zipgate::server::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_at_the_32_bit_limit_and_the_entries_after_it_pass_every_reader() {
    let fixture = r#"{"nodes": [{"id": "d", "name": "big", "children": [
        {"id": "before", "name": "before.txt", "content": {"text": "first\n"}},
        {"id": "huge", "name": "huge.bin", "content": {"generate": {"size": 4294967295, "seed": 11}}},
        {"id": "after", "name": "after.txt", "content": {"text": "after the big one\n"}},
        {"id": "empty", "name": "Empty", "type": "folder"}
    ]}]}"#;
    let server = common::builder()
        .fixtures_json(fixture)
        .unwrap()
        .config(Config {
            warm_crcs: false,
            ..Config::default()
        })
        .test_jobs()
        .spawn()
        .await
        .unwrap();
    let response = open(
        &server,
        Method::POST,
        "/_zipgate/zip",
        &[("content-type", "application/json")],
        r#"{"items":[{"id":"d"}]}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let announced = content_length(&response);

    let dir = TempDir::new("zip64-large");
    let path = dir.path().join("big.zip");
    let mut file =
        std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    let mut body = response.into_body();
    let mut written = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            written += data.len() as u64;
            file.write_all(&data).unwrap();
        }
    }
    file.flush().unwrap();
    drop(file);
    assert_eq!(written, announced);
    assert!(written > 4 << 30);

    check_archive_file(
        &path,
        &[
            "big/",
            "big/before.txt",
            "big/huge.bin",
            "big/after.txt",
            "big/Empty/",
        ],
        None,
    );
    // Extracting the entry that follows the 4 GiB one is what older code broke.
    let out = dir.path().join("out");
    run(std::process::Command::new("unzip")
        .arg("-q")
        .arg(&path)
        .arg("big/after.txt")
        .arg("-d")
        .arg(&out));
    assert_eq!(
        std::fs::read_to_string(out.join("big/after.txt")).unwrap(),
        "after the big one\n"
    );
}
