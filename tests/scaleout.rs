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
    replica_with(redis, namespace, &[]).await
}

/// A replica with dialect settings: (dialect, key, value).
async fn replica_with(
    redis: &RedisServer,
    namespace: &str,
    settings: &[(&str, &str, &str)],
) -> ServerHandle {
    let mut builder = builder().jobs_in_redis(&redis.url(), namespace).seed(0);
    for (dialect, key, value) in settings {
        builder = builder.setting(dialect, key, value);
    }
    builder.spawn().await.expect("a replica starts")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oracle_abort_on_one_replica_cuts_the_package_streaming_from_the_other() {
    let redis = RedisServer::start();
    let immediate = [("oracle", "pacing", "immediate")];
    let a = replica_with(&redis, "oracle", &immediate).await;
    let b = replica_with(&redis, "oracle", &immediate).await;
    let created = send(
        &a,
        Method::POST,
        "/documents/api/1.2/folders/FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D/_download",
        &[ALICE, JSON, ON_HOST],
        r#"{"idList":"DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813,D890E0ADF2EB12AAD28D14372E82C5967A21F51BF794"}"#,
    )
    .await;
    assert_eq!(created.status, StatusCode::OK);
    let job = path_of(created.json()["Location"].as_str().unwrap());
    let abort_on_a = async {
        let reply = send(&a, Method::DELETE, &job, &[ALICE, ON_HOST], "").await;
        assert_eq!(reply.status, StatusCode::OK);
    };
    // Streaming from B under a throttle, aborted on A: cut within 1 s.
    assert_cancel_cuts_download(&b, &format!("{job}/package"), &[ALICE], abort_on_a).await;
    for replica in [&a, &b] {
        let status = send(replica, Method::GET, &job, &[ALICE, ON_HOST], "").await;
        assert_eq!(status.json()["progress"], "ABORTED");
    }
}

/// The caller's ONLYOFFICE operations as `server` lists them.
async fn operations(server: &ServerHandle) -> Vec<Value> {
    let reply = send(
        server,
        Method::GET,
        "/api/2.0/files/fileops",
        &[ALICE, ON_HOST],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json()["response"].as_array().cloned().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onlyoffice_polls_on_either_replica_follow_one_operation_and_terminate_reaches_it() {
    let redis = RedisServer::start();
    let (a, b) = (replica(&redis, "oo").await, replica(&redis, "oo").await);
    let bulk = r#"{"fileIds":["12345",34325],"folderIds":"1004"}"#;
    let put = |server, path| send(server, Method::PUT, path, &[ALICE, JSON, ON_HOST], bulk);
    assert_eq!(
        put(&a, "/api/2.0/files/fileops/bulkdownload").await.status,
        StatusCode::OK
    );
    // Polls alternate B, A, B…: progress rises, the finished operation is
    // listed once, by whichever replica was asked, and then by neither.
    let (mut progress, mut finished) = (Vec::new(), Vec::new());
    for n in 0..10 {
        let listed = operations(if n % 2 == 0 { &b } else { &a }).await;
        let Some(op) = listed.first() else { break };
        assert_eq!(listed.len(), 1, "{listed:?}");
        progress.push(op["progress"].as_u64().unwrap());
        if op["finished"] == true {
            finished.push(op.clone());
        }
    }
    assert_eq!(finished.len(), 1, "{progress:?}");
    assert!(progress.len() >= 2 && progress.is_sorted(), "{progress:?}");
    assert_eq!(progress.last(), Some(&100));
    assert!(operations(&a).await.is_empty() && operations(&b).await.is_empty());
    let url = finished[0]["url"].as_str().unwrap();
    for server in [&a, &b] {
        // Downloaded on both: the link is not single use in Workspace.
        let archive = send(
            server,
            Method::GET,
            &path_of(url),
            &[("cookie", "asc_auth_key=alice-token"), ON_HOST],
            "",
        )
        .await;
        assert_eq!(archive.status, StatusCode::OK);
        assert_eq!(archive.header("content-type"), Some("application/zip"));
    }
    // Made on A, terminated on B: the next poll on A reports the cancel once.
    assert_eq!(
        put(&a, "/api/2.0/files/fileops/bulkdownload").await.status,
        StatusCode::OK
    );
    assert_eq!(
        put(&b, "/api/2.0/files/fileops/terminate").await.status,
        StatusCode::OK
    );
    let listed = operations(&a).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["error"], "The operation was canceled");
    assert_eq!(listed[0]["finished"], true);
    assert!(operations(&b).await.is_empty());
}

async fn control(server: &ServerHandle, method: Method, path: &str, body: &str) -> Reply {
    send(server, method, path, &[JSON], body.to_owned()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_of_one_replica_changes_every_replica() {
    let redis = RedisServer::start();
    let (a, b) = (replica(&redis, "ctl").await, replica(&redis, "ctl").await);
    // A `times: 1` rule added on A fires once across both: on B's create.
    let rule = r#"{"match":{"dialect":"box","method":"POST"},"times":1,"respond":{"status":503}}"#;
    let added = control(&a, Method::POST, "/_zipgate/faults", rule).await;
    assert_eq!(added.status, StatusCode::CREATED);
    let id = added.json()["id"].as_str().unwrap().to_owned();
    let create = r#"{"items":[{"type":"file","id":"12345"}],"download_file_name":"x"}"#;
    assert_eq!(
        box_create_as_alice(&b, create).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        box_create_as_alice(&a, create).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        box_create_as_alice(&b, create).await.status,
        StatusCode::ACCEPTED
    );
    for replica in [&a, &b] {
        let view = get(replica, &format!("/_zipgate/faults/{id}")).await.json();
        assert_eq!(
            (&view["matched"], &view["fired"]),
            (&3.into(), &1.into()),
            "{view}"
        );
    }
    // Removed on B: gone on A.
    let removed = control(&b, Method::DELETE, &format!("/_zipgate/faults/{id}"), "").await;
    assert_eq!(removed.status, StatusCode::OK);
    assert_eq!(
        get(&a, &format!("/_zipgate/faults/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    // The clock moved on A has moved on B.
    let before = get(&b, "/_zipgate/clock").await.json()["now"]
        .as_str()
        .unwrap()
        .to_owned();
    let moved = control(
        &a,
        Method::POST,
        "/_zipgate/clock/advance",
        r#"{"seconds":86400}"#,
    )
    .await;
    assert_eq!(moved.status, StatusCode::OK);
    let after = get(&b, "/_zipgate/clock").await.json()["now"]
        .as_str()
        .unwrap()
        .to_owned();
    let day = chrono::DateTime::parse_from_rfc3339(&after).unwrap()
        - chrono::DateTime::parse_from_rfc3339(&before).unwrap();
    assert!(
        day >= chrono::Duration::days(1)
            && day < chrono::Duration::days(1) + chrono::Duration::minutes(1),
        "{day}"
    );
    // Fixtures replaced on B are served by A.
    let fixture = r#"{"users":[{"id":"u1","login":"u1@example.com","name":"U","token":"t1"}],"nodes":[{"id":"only","type":"folder","name":"Only","owner":"u1","children":[]}]}"#;
    let put = control(&b, Method::PUT, "/_zipgate/fixtures", fixture).await;
    assert_eq!(
        put.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    for replica in [&a, &b] {
        let health = get(replica, "/_zipgate/health").await.json();
        assert_eq!(
            (&health["nodes"], &health["users"]),
            (&1.into(), &1.into()),
            "{health}"
        );
    }
    // A reset on A puts every replica back: fixtures, clock, rules.
    control(&a, Method::POST, "/_zipgate/faults", rule).await;
    assert_eq!(
        control(&a, Method::POST, "/_zipgate/reset", "{}")
            .await
            .status,
        StatusCode::OK
    );
    let fresh = get(&start_default().await, "/_zipgate/health").await.json();
    for replica in [&a, &b] {
        let health = get(replica, "/_zipgate/health").await.json();
        assert_eq!(health["nodes"], fresh["nodes"], "{health}");
        assert_eq!(
            get(replica, "/_zipgate/faults").await.json()["faults"],
            serde_json::json!([])
        );
        let now = get(replica, "/_zipgate/clock").await.json()["now"]
            .as_str()
            .unwrap()
            .to_owned();
        let back = chrono::DateTime::parse_from_rfc3339(&now).unwrap()
            - chrono::DateTime::parse_from_rfc3339(&before).unwrap();
        assert!(back < chrono::Duration::hours(1), "{back}");
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

/// One request of each dialect that needs the job store, and the job
/// made for it before the outage.
struct Asked {
    dialect: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: String,
}

async fn ask(server: &ServerHandle, asked: &Asked) -> Reply {
    let headers: Vec<(&str, &str)> = asked
        .headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain([ON_HOST])
        .collect();
    send(
        server,
        asked.method.clone(),
        &asked.path,
        &headers,
        asked.body.clone(),
    )
    .await
}

/// Makes a job in every dialect on `server` and returns, per dialect, a
/// request that reads it (Dropbox keeps no job: its download makes one).
async fn one_job_each(server: &ServerHandle) -> Vec<Asked> {
    let alice = || ("authorization", ALICE.1.to_owned());
    let json = || ("content-type", "application/json".to_owned());
    let created = box_create(server).await;
    let box_status = path_of(created["status_url"].as_str().unwrap());
    let oracle = send(
        server,
        Method::POST,
        "/documents/api/1.2/folders/FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D/_download",
        &[ALICE, JSON, ON_HOST],
        r#"{"idList":"DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813"}"#,
    )
    .await;
    assert_eq!(oracle.status, StatusCode::OK);
    let oracle_status = path_of(oracle.json()["Location"].as_str().unwrap());
    let its = send(
        server,
        Method::POST,
        "/restapi/personal/yourfiles/files/zip/v1",
        &[ALICE, JSON, ON_HOST, ("accept", "application/json")],
        r#"{"FileIds":[12345],"FolderIds":[1004]}"#,
    )
    .await;
    assert_eq!(its.status, StatusCode::OK);
    let its_id = its.json()["JobId"].as_u64().unwrap();
    let oo = send(
        server,
        Method::PUT,
        "/api/2.0/files/fileops/bulkdownload",
        &[ALICE, JSON, ON_HOST],
        r#"{"fileIds":["12345"]}"#,
    )
    .await;
    assert_eq!(oo.status, StatusCode::OK);
    vec![
        Asked {
            dialect: "box",
            method: Method::GET,
            path: box_status,
            headers: vec![alice()],
            body: String::new(),
        },
        Asked {
            dialect: "oracle",
            method: Method::GET,
            path: oracle_status,
            headers: vec![alice()],
            body: String::new(),
        },
        Asked {
            dialect: "itslearning",
            method: Method::GET,
            path: format!("/restapi/personal/yourfiles/files/zip/{its_id}/v1"),
            headers: vec![alice(), ("accept", "application/json".into())],
            body: String::new(),
        },
        Asked {
            dialect: "onlyoffice",
            method: Method::GET,
            path: "/api/2.0/files/fileops".into(),
            headers: vec![alice()],
            body: String::new(),
        },
        Asked {
            dialect: "dropbox",
            method: Method::POST,
            path: "/2/files/download_zip".into(),
            headers: vec![
                alice(),
                ("dropbox-api-arg", r#"{"path":"/Documents"}"#.into()),
            ],
            body: String::new(),
        },
        Asked {
            dialect: "box create",
            method: Method::POST,
            path: "/2.0/zip_downloads".into(),
            headers: vec![alice(), json()],
            body: r#"{"items":[{"type":"file","id":"12345"}],"download_file_name":"x"}"#.into(),
        },
    ]
}

/// The vendor's own 503, as each dialect's README gives it.
fn assert_vendor_503(dialect: &str, reply: &Reply) {
    let body = String::from_utf8_lossy(&reply.body);
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{dialect}: {body}"
    );
    let json = || -> Value { serde_json::from_slice(&reply.body).expect("a JSON body") };
    match dialect {
        "box" | "box create" => {
            let error = json();
            assert_eq!(
                (&error["type"], &error["status"], &error["code"]),
                (&"error".into(), &503.into(), &"unavailable".into()),
                "{body}"
            );
        }
        "oracle" => assert_eq!(json()["errorKey"], "!csServiceUnavailable", "{body}"),
        "itslearning" => assert_eq!(
            json(),
            serde_json::json!({"Message": "An error has occurred."})
        ),
        "onlyoffice" => {
            let error = json();
            assert_eq!(
                (&error["status"], &error["statusCode"]),
                (&1.into(), &503.into()),
                "{body}"
            );
        }
        "dropbox" => assert_eq!(
            reply.header("content-type"),
            Some("text/plain; charset=utf-8")
        ),
        other => panic!("no 503 known for {other}"),
    }
}

/// Box creates on `server` until one is accepted (the store is back).
async fn until_a_box_create_is_accepted(server: &ServerHandle) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let reply = box_create_as_alice(
            server,
            r#"{"items":[{"type":"file","id":"12345"}],"download_file_name":"back"}"#,
        )
        .await;
        if reply.status == StatusCode::ACCEPTED {
            return reply.json();
        }
        assert_vendor_503("box create", &reply);
        assert!(
            std::time::Instant::now() < deadline,
            "the job store never came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_each_vendor_answers_its_own_503_and_service_resumes() {
    let mut redis = RedisServer::start();
    let a = replica(&redis, "outage").await;
    let asked = one_job_each(&a).await;
    // Stopped: not "no such job", not an empty list, but each vendor's 503.
    redis.kill();
    for asked in &asked {
        assert_vendor_503(asked.dialect, &ask(&a, asked).await);
    }
    // The control plane says so too, and health shows no job count.
    for path in [
        "/_zipgate/jobs",
        "/_zipgate/jobs/x",
        "/_zipgate/jobs/x/plan",
    ] {
        let reply = get(&a, path).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(reply.json()["error"], "unavailable", "{path}");
    }
    let reset = send(&a, Method::POST, "/_zipgate/reset", &[JSON], "{}").await;
    assert_eq!(reset.status, StatusCode::SERVICE_UNAVAILABLE);
    let health = get(&a, "/_zipgate/health").await.json();
    assert_eq!(health["jobs"], Value::Null, "{health}");
    // Back, empty: service resumes by itself (the functions are loaded again).
    redis.restart();
    let created = until_a_box_create_is_accepted(&a).await;
    let download = path_of(created["download_url"].as_str().unwrap());
    assert_eq!(fetch(&a, &download).await.status, StatusCode::OK);
    // Hung (the connection stays open, nothing answers): a 503 within the
    // store's timeout, never a request left waiting.
    redis.pause();
    for asked in &asked {
        let started = std::time::Instant::now();
        let reply = ask(&a, asked).await;
        assert_vendor_503(asked.dialect, &reply);
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(5),
            "{}: {took:?}",
            asked.dialect
        );
    }
    redis.resume();
    until_a_box_create_is_accepted(&a).await;
}
