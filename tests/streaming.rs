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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_leaves_no_task_running() {
    let server = start_with(BIG).await;
    let response = open(
        &server,
        Method::POST,
        "/_zipgate/zip",
        &[("content-type", "application/json")],
        r#"{"items":[{"id":"huge"}]}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    // 6 GiB entry: the archive is ZIP64 and its length is known up front.
    let length: u64 = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(length > 6 << 30);
    let mut body = response.into_body();
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
async fn a_slow_reader_sets_the_pace() {
    let server = start_with(BIG).await;
    let response = open(
        &server,
        Method::POST,
        "/_zipgate/zip",
        &[("content-type", "application/json")],
        r#"{"items":[{"id":"huge"}]}"#,
    )
    .await;
    let mut body = response.into_body();
    let _ = body.frame().await;
    // Not reading: the engine must block on the full channel and socket, not race ahead.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = get(&server, "/_zipgate/health").await.json();
    assert_eq!(health["active_streams"], 1);
    drop(body);
}
