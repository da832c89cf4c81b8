//! Replicas sharing their jobs through Redis (`--jobs`), over real HTTP:
//! two servers on one Redis, a client's requests landing on either.
//! Each test starts its own `redis-server` (Debian's; `tests/run` installs it).

mod common;

use std::collections::BTreeSet;

use common::redis::RedisServer;
use common::*;
use http::{Method, StatusCode};
use serde_json::Value;
use zipgate::ServerHandle;

const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");
const JSON: (&str, &str) = ("content-type", "application/json");
const ON_HOST: (&str, &str) = ("host", HOST);

/// A replica: jobs in `redis` under `namespace`, seeded as the others.
async fn replica(redis: &RedisServer, namespace: &str) -> ServerHandle {
    builder()
        .jobs_in_redis(&redis.url(), namespace)
        .seed(0)
        .spawn()
        .await
        .expect("a replica starts")
}

fn path_of(url: &str) -> String {
    url.strip_prefix(&format!("http://{HOST}"))
        .expect("a URL on the test origin")
        .to_owned()
}

async fn box_create(server: &ServerHandle) -> Value {
    let reply = box_create_as_alice(
        server,
        r#"{"items":[{"type":"folder","id":"1005"},{"type":"file","id":"12345"}],"download_file_name":"shared"}"#,
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

async fn fetch(server: &ServerHandle, path: &str) -> Reply {
    send(server, Method::GET, path, &[ALICE, ON_HOST], "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_download_made_on_one_replica_is_served_by_the_other_once() {
    let redis = RedisServer::start();
    let (a, b) = (replica(&redis, "box").await, replica(&redis, "box").await);
    let created = box_create(&a).await;
    let download = path_of(created["download_url"].as_str().unwrap());
    let status = path_of(created["status_url"].as_str().unwrap());
    let from_b = fetch(&b, &download).await;
    assert_eq!(from_b.status, StatusCode::OK);
    // The same bytes as one process on its own makes of the same request.
    let alone = start_default().await;
    let single = box_create(&alone).await;
    let expected = fetch(&alone, &path_of(single["download_url"].as_str().unwrap())).await;
    assert_eq!(expected.status, StatusCode::OK);
    assert!(from_b.body == expected.body, "the archives differ");
    // Single use across replicas: A refuses it now, and both show it done.
    assert_eq!(fetch(&a, &download).await.status, StatusCode::NOT_FOUND);
    for replica in [&a, &b] {
        let state = fetch(replica, &status).await.json();
        assert_eq!(state["state"], "succeeded", "{state}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_twenty_concurrent_downloads_across_replicas_exactly_one_is_served() {
    let redis = RedisServer::start();
    let (a, b) = (replica(&redis, "race").await, replica(&redis, "race").await);
    let created = box_create(&b).await;
    let download = path_of(created["download_url"].as_str().unwrap());
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let claims: Vec<_> = (0..20)
        .map(|n| {
            let server = if n % 2 == 0 { a.clone() } else { b.clone() };
            let download = download.clone();
            tokio::spawn(async move { fetch(&server, &download).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for claim in claims {
        statuses.push(claim.await.unwrap());
    }
    let served = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(served, 1, "{statuses:?}");
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::OK || *s == StatusCode::NOT_FOUND));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn itslearning_job_ids_never_repeat_across_replicas_and_delete_reaches_any() {
    let redis = RedisServer::start();
    let (a, b) = (replica(&redis, "its").await, replica(&redis, "its").await);
    let zip = "/restapi/personal/yourfiles/files/zip/v1";
    let mut ids = Vec::new();
    for n in 0..6 {
        let server = if n % 2 == 0 { &a } else { &b };
        let reply = send(
            server,
            Method::POST,
            zip,
            &[ALICE, JSON, ON_HOST, ("accept", "application/json")],
            r#"{"FileIds":[12345],"FolderIds":[1004]}"#,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        ids.push(reply.json()["JobId"].as_u64().unwrap());
    }
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 6, "{ids:?}");
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    // A DELETE removes the user's latest job: made on B, deleted on A,
    // gone on both.
    let latest = format!("/restapi/personal/yourfiles/files/zip/{}/v1", ids[5]);
    let deleted = send(&a, Method::DELETE, zip, &[ALICE, ON_HOST], "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    for server in [&a, &b] {
        let gone = send(server, Method::GET, &latest, &[ALICE, ON_HOST], "").await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
    }
}

#[test]
fn a_replica_does_not_start_without_its_job_store() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    redis.kill();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = runtime
        .block_on(
            zipgate::Server::builder()
                .jobs_in_redis(&url, "down")
                .spawn(),
        )
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("cannot reach the job store"),
        "{error}"
    );
}
