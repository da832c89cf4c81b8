//! Streaming behaviour: an abandoned download frees its work at once.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::{Method, StatusCode};
use http_body_util::BodyExt;

const BIG: &str = r#"{"nodes": [
  {"id": "huge", "name": "huge.bin", "content": {"generate": {"size": 6442450944, "seed": 1}}}
]}"#;

async fn active_streams(server: &zipgate::ServerHandle) -> u64 {
    get(server, "/_zipgate/health").await.json()["active_streams"]
        .as_u64()
        .unwrap()
}

/// Starts a download of the 6 GiB archive and returns its unread body.
async fn start_huge_download(server: &zipgate::ServerHandle) -> hyper::body::Incoming {
    let response = open(
        server,
        Method::POST,
        "/_zipgate/zip",
        &[("content-type", "application/json")],
        r#"{"items":[{"id":"huge"}]}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    // 6 GiB entry: the archive is ZIP64 and its length is known up front.
    let length = content_length(&response);
    assert!(length > 6 << 30);
    response.into_body()
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_leaves_no_task_running() {
    let server = start_with(BIG).await;
    let mut body = start_huge_download(&server).await;
    let mut read = 0usize;
    while read < 1 << 20 {
        let frame = body.frame().await.expect("a frame").expect("data");
        read += frame.data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(
        active_streams(&server).await,
        1,
        "the engine is producing while we read"
    );
    drop(body); // closes the connection mid-archive

    let deadline = Instant::now() + Duration::from_secs(10);
    while active_streams(&server).await != 0 {
        assert!(
            Instant::now() < deadline,
            "the engine thread kept running after the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_makes_the_engine_wait_not_buffer() {
    let server = start_with(BIG).await;
    let mut body = start_huge_download(&server).await;
    let _ = body.frame().await;
    let before = resident_bytes();
    // Unbounded, the engine would produce gigabytes in this time (it makes ~1 GB/s or more).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "memory grew by {grown} bytes while the client did not read"
    );
    assert_eq!(
        active_streams(&server).await,
        1,
        "the engine waits for the reader"
    );
    drop(body);
}
