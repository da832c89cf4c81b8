//! The test control plane over real HTTP: fixtures, reset, jobs, clock.

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};

async fn control(server: &zipgate::ServerHandle, method: Method, path: &str, body: Value) -> Reply {
    send(
        server,
        method,
        path,
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

/// Box's create route as alice, for notes.md.
async fn box_create(server: &zipgate::ServerHandle) -> Reply {
    box_create_as_alice(server, r#"{"items":[{"type":"file","id":"12348"}]}"#).await
}

async fn native_zip(server: &zipgate::ServerHandle, id: &str) -> Reply {
    zip(server, &json!({"items": [{"id": id}]}), Some("alice-token")).await
}

#[tokio::test]
async fn fixtures_can_be_replaced_and_extended_and_bad_ones_change_nothing() {
    let server = start_default().await;
    let tree = json!({"users": [{"id": "u", "token": "alice-token"}], "nodes": [
        {"id": "top", "name": "Top", "children": [{"id": "a", "name": "a.txt", "content": {"text": "A"}}]}
    ]});
    let reply = control(&server, Method::PUT, "/_zipgate/fixtures", tree).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"nodes": 2, "users": 1}));
    assert_eq!(
        native_zip(&server, "file-notes").await.status,
        StatusCode::NOT_FOUND
    );

    let reply = control(
        &server,
        Method::POST,
        "/_zipgate/fixtures/nodes",
        json!({"parent": "top", "nodes": [
            {"id": "b", "name": "b.txt", "content": {"text": "B"}}
        ]}),
    )
    .await;
    assert_eq!(reply.json()["nodes"], 3);
    let archive = native_zip(&server, "top").await;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive.body)).unwrap();
    assert!(zip.by_name("Top/b.txt").is_ok());

    // Invalid documents answer 400 with the JSON path; the tree in force stays.
    let bad =
        json!({"nodes": [{"id": "x", "name": "x", "content": {"generate": {"size": "big"}}}]});
    let reply = control(&server, Method::PUT, "/_zipgate/fixtures", bad).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["path"], "nodes[0].content.generate.size");
    let reply = control(
        &server,
        Method::POST,
        "/_zipgate/fixtures/nodes",
        json!({"parent": "a", "nodes": []}),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "a file has no children"
    );
    let reply = control(
        &server,
        Method::POST,
        "/_zipgate/fixtures/nodes",
        json!({"nodes": [{"id": "top", "name": "dup", "type": "folder"}]}),
    )
    .await;
    assert_eq!(reply.json()["path"], "nodes[1].id");
    assert_eq!(native_zip(&server, "top").await.status, StatusCode::OK);
}

#[tokio::test]
async fn reset_goes_back_to_the_start_and_forgets_jobs() {
    let server = start_default().await;
    control(
        &server,
        Method::PUT,
        "/_zipgate/fixtures",
        json!({"nodes": []}),
    )
    .await;
    let reply = box_create(&server).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "no users in the empty tree"
    );
    let reply = control(&server, Method::POST, "/_zipgate/reset", Value::Null).await;
    assert_eq!(reply.json()["nodes"], 21);
    let created = box_create(&server).await;
    assert_eq!(created.status, StatusCode::ACCEPTED);

    let jobs = get(&server, "/_zipgate/jobs").await.json();
    let job = &jobs["jobs"][0];
    assert_eq!(
        (
            job["dialect"].as_str(),
            job["state"].as_str(),
            job["owner"].as_str()
        ),
        (Some("box"), Some("ready"), Some("alice"))
    );
    assert_eq!(job["files"], 1);
    let one = get(
        &server,
        &format!("/_zipgate/jobs/{}", job["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(one.json()["name"], "download.zip");
    assert_eq!(
        get(&server, "/_zipgate/jobs/nope").await.status,
        StatusCode::NOT_FOUND
    );

    control(&server, Method::POST, "/_zipgate/reset", Value::Null).await;
    assert_eq!(
        get(&server, "/_zipgate/jobs").await.json()["jobs"],
        json!([])
    );
}

#[tokio::test]
async fn advancing_the_clock_expires_box_urls_without_sleeping() {
    let server = start_default().await;
    let created = box_create(&server).await.json();
    let before = get(&server, "/_zipgate/clock").await.json()["now"]
        .as_str()
        .unwrap()
        .to_owned();
    let moved = control(
        &server,
        Method::POST,
        "/_zipgate/clock/advance",
        json!({"seconds": 61}),
    )
    .await;
    assert_eq!(moved.status, StatusCode::OK);
    assert!(moved.json()["now"].as_str().unwrap() > before.as_str());
    let path = created["download_url"]
        .as_str()
        .unwrap()
        .split_once("/2.0/")
        .unwrap()
        .1;
    let content = get(&server, &format!("/2.0/{path}")).await;
    assert_eq!(
        content.status,
        StatusCode::NOT_FOUND,
        "expired after the clock moved"
    );
    let bad = control(
        &server,
        Method::POST,
        "/_zipgate/clock/advance",
        json!({"seconds": -1}),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // Centuries at once saturate (about 292 years) instead of overflowing the date.
    let far = control(
        &server,
        Method::POST,
        "/_zipgate/clock/advance",
        json!({"seconds": 1e18}),
    )
    .await;
    assert_eq!(far.status, StatusCode::OK);
    assert!(
        far.json()["now"].as_str().unwrap() > "2290",
        "{:?}",
        far.json()
    );
    assert_eq!(
        get(&server, "/_zipgate/health").await.status,
        StatusCode::OK
    );
    assert_eq!(box_create(&server).await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn the_journal_records_what_clients_sent() {
    let server = start_default().await;
    let created = box_create(&server).await.json();
    let content = created["download_url"]
        .as_str()
        .unwrap()
        .split_once("/2.0/")
        .unwrap()
        .1
        .to_owned();
    let zip = get(&server, &format!("/2.0/{content}")).await;
    get(&server, "/api/2.0/files/fileops?x=1").await;
    get(&server, "/_zipgate/health").await;

    let all = get(&server, "/_zipgate/requests").await.json();
    let entries = all["requests"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        3,
        "zipgate's own routes are not journaled: {all}"
    );
    let create = &entries[0];
    assert_eq!(
        (
            create["dialect"].as_str(),
            create["method"].as_str(),
            create["status"].as_u64()
        ),
        (Some("box"), Some("POST"), Some(202))
    );
    assert_eq!(
        create["body"],
        r#"{"items":[{"type":"file","id":"12348"}]}"#
    );
    assert!(create["headers"]
        .as_array()
        .unwrap()
        .contains(&json!(["authorization", "<redacted>"])));
    assert_eq!(
        entries[1]["bytes_sent"].as_u64(),
        Some(zip.body.len() as u64)
    );
    assert_eq!(
        (
            entries[2]["dialect"].as_str(),
            entries[2]["query"].as_str(),
            entries[2]["status"].as_u64()
        ),
        (Some("onlyoffice"), Some("x=1"), Some(401))
    );

    let revealed = get(
        &server,
        "/_zipgate/requests?dialect=box&method=post&reveal=true",
    )
    .await
    .json();
    let only = revealed["requests"].as_array().unwrap();
    assert_eq!(only.len(), 1);
    assert!(only[0]["headers"]
        .as_array()
        .unwrap()
        .contains(&json!(["authorization", "Bearer alice-token"])));
    assert_eq!(
        get(&server, "/_zipgate/requests?status=401").await.json()["requests"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get(&server, "/_zipgate/requests?path_prefix=/2.0/")
            .await
            .json()["requests"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    send(&server, Method::DELETE, "/_zipgate/requests", &[], "").await;
    assert_eq!(
        get(&server, "/_zipgate/requests").await.json()["requests"],
        json!([])
    );
}

#[tokio::test]
async fn the_in_process_handle_offers_the_same_operations() {
    let server = common::builder()
        .fixtures(json!({"users": [{"id": "u", "token": "t"}], "nodes": [
            {"id": "a", "name": "a.txt", "ids": {"box": "1"}, "content": {"text": "A"}}
        ]}))
        .seed(5)
        .spawn()
        .await
        .unwrap();
    let create = |id: &'static str| {
        let server = &server;
        async move {
            send(
                server,
                Method::POST,
                "/2.0/zip_downloads",
                &[
                    ("authorization", "Bearer t"),
                    ("content-type", "application/json"),
                ],
                format!(r#"{{"items":[{{"type":"file","id":"{id}"}}]}}"#),
            )
            .await
        }
    };
    assert_eq!(create("1").await.status, StatusCode::ACCEPTED);
    assert_eq!(create("2").await.status, StatusCode::NOT_FOUND);
    server
        .add_nodes(
            None,
            vec![
                json!({"id": "b", "name": "b.txt", "ids": {"box": "2"}, "content": {"text": "B"}}),
            ],
        )
        .unwrap();
    assert_eq!(create("2").await.status, StatusCode::ACCEPTED);
    let jobs = server.jobs().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].owner_tag, "box");
    let statuses: Vec<Option<u16>> = server
        .requests(&zipgate::journal::Filter::default())
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(202), Some(404), Some(202)]);
    server.clear_requests();
    assert!(server.requests(&Default::default()).is_empty());

    // A Box download URL expires on the advanced clock.
    let expires = |jobs: &[zipgate::api::JobSnapshot]| jobs[0].expires_at.unwrap();
    let before = server.state().clock.now();
    server.advance_clock(std::time::Duration::from_secs(3600));
    assert!(server.state().clock.now() >= before + chrono::Duration::seconds(3600));
    assert!(server.state().clock.now() > expires(&jobs));

    // A bad document leaves the tree in force; a good one replaces it.
    let error = server
        .load_fixtures(json!({"nodes": [{"id": "x"}]}))
        .unwrap_err();
    assert!(error.path.starts_with("nodes[0]"), "{error}");
    assert_eq!(create("2").await.status, StatusCode::ACCEPTED);
    server
        .load_fixtures(json!({"users": [{"id": "u", "token": "t"}], "nodes": []}))
        .unwrap();
    assert_eq!(create("1").await.status, StatusCode::NOT_FOUND);
    server.reset().unwrap();
    assert!(server.jobs().unwrap().is_empty());
    assert_eq!(create("1").await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn an_array_is_never_read_as_an_object() {
    // serde's structs take `[…]` by position; each of these was accepted
    // (found by schemathesis against docs/openapi.json).
    let server = start_default().await;
    for (method, path, body, at) in [
        (
            Method::POST,
            "/_zipgate/faults",
            json!({"respond": [503], "cut": [5, "close"]}),
            "$.respond",
        ),
        (Method::POST, "/_zipgate/clock/advance", json!([60]), ""),
        (
            Method::POST,
            "/_zipgate/fixtures/nodes",
            json!([null, [{"id": "n1", "name": "n1.txt"}]]),
            "",
        ),
        (
            Method::PUT,
            "/_zipgate/fixtures",
            json!({"nodes": [["id1", "name1"]], "users": [["u1"]]}),
            "nodes[0]",
        ),
        (
            Method::POST,
            "/_zipgate/zip",
            json!([[["file-readme"]], "arr", "store"]),
            "",
        ),
    ] {
        let reply = control(&server, method.clone(), path, body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path} {body}");
        let message = reply.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains("invalid type: sequence"),
            "{path}: {message}"
        );
        assert!(message.contains("object"), "{path}: {message}");
        let reply_at = reply.json()["path"].as_str().unwrap_or_default().to_owned();
        assert!(
            message.starts_with(at) || reply_at == at,
            "{path}: {message}"
        );
    }
    // Nothing changed.
    let faults = control(&server, Method::GET, "/_zipgate/faults", Value::Null).await;
    assert_eq!(faults.json()["faults"], json!([]));
    assert_eq!(
        native_zip(&server, "file-readme").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn nodes_go_into_a_folder_whose_children_or_content_is_null() {
    let server = start_default().await;
    let tree = json!({"nodes": [
        {"id": "f", "name": "F", "type": "folder", "children": null},
        {"id": "g", "name": "G", "type": "folder", "content": null}
    ]});
    let reply = control(&server, Method::PUT, "/_zipgate/fixtures", tree).await;
    assert_eq!(reply.status, StatusCode::OK);
    for (parent, id) in [("f", "x"), ("g", "y")] {
        let reply = control(
            &server,
            Method::POST,
            "/_zipgate/fixtures/nodes",
            json!({"parent": parent, "nodes": [{"id": id, "name": "x.txt", "content": {"text": "x"}}]}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{parent}: {:?}", reply.json());
    }
    assert_eq!(
        control(&server, Method::GET, "/_zipgate/health", Value::Null)
            .await
            .json()["nodes"],
        4
    );
}

#[tokio::test]
async fn reset_forgets_the_clocks_advances() {
    let server = start_default().await;
    let before = get(&server, "/_zipgate/clock").await.json()["now"]
        .as_str()
        .unwrap()
        .to_owned();
    control(
        &server,
        Method::POST,
        "/_zipgate/clock/advance",
        json!({"seconds": 86400}),
    )
    .await;
    control(&server, Method::POST, "/_zipgate/reset", Value::Null).await;
    let after = get(&server, "/_zipgate/clock").await.json()["now"]
        .as_str()
        .unwrap()
        .to_owned();
    // Within the test's own run time, not a day on.
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap();
    assert!(
        (parse(&after) - parse(&before)).num_seconds() < 60,
        "{before} -> {after}"
    );
}

#[tokio::test]
async fn ids_in_paths_may_be_percent_encoded() {
    let server = start_default().await;
    box_create(&server).await;
    let jobs = get(&server, "/_zipgate/jobs").await.json();
    let id = jobs["jobs"][0]["id"].as_str().unwrap().to_owned();
    let encoded: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
    let reply = get(&server, &format!("/_zipgate/jobs/{encoded}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{id}");
    assert_eq!(reply.json()["id"], id.as_str());

    let rule = control(
        &server,
        Method::POST,
        "/_zipgate/faults",
        json!({"match": {"dialect": "Box"}, "respond": {"status": 503}}),
    )
    .await;
    assert_eq!(rule.status, StatusCode::CREATED);
    assert_eq!(rule.json()["match"]["dialect"], "box", "kept in lower case");
    let id = rule.json()["id"].as_str().unwrap().to_owned();
    let encoded: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
    let one = get(&server, &format!("/_zipgate/faults/{encoded}")).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json(), rule.json());
    assert_eq!(
        get(&server, "/_zipgate/faults/fault-none").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_fault_for_a_dialect_not_served_is_refused() {
    let server = start_default().await;
    let reply = control(
        &server,
        Method::POST,
        "/_zipgate/faults",
        json!({"faults": [{"respond": {"status": 500}}, {"match": {"dialect": "bx"}, "respond": {"status": 503}}]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("$.faults[1].match.dialect"),
        "{message}"
    );
    assert!(
        message.contains("box"),
        "names the dialects served: {message}"
    );
    let listed = get(&server, "/_zipgate/faults").await.json();
    assert_eq!(listed["faults"], json!([]), "none of the two was added");
}

#[tokio::test]
async fn journal_filters_are_checked_and_pages_say_where_the_next_starts() {
    let server = start_default().await;
    for _ in 0..3 {
        box_create(&server).await;
    }
    let reply = get(&server, "/_zipgate/requests?methd=DELETE").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.json()["message"].as_str().unwrap().contains("methd"));

    let all = get(&server, "/_zipgate/requests?dialect=Box").await.json();
    assert_eq!(all["requests"].as_array().unwrap().len(), 3);
    assert_eq!(all["next_after"], Value::Null);
    let first = get(&server, "/_zipgate/requests?limit=2").await.json();
    assert_eq!(first["requests"].as_array().unwrap().len(), 2);
    let next = first["next_after"].as_u64().expect("more to come");
    assert_eq!(Some(next), first["requests"][1]["id"].as_u64());
    let rest = get(&server, &format!("/_zipgate/requests?limit=2&after={next}"))
        .await
        .json();
    assert_eq!(rest["requests"].as_array().unwrap().len(), 1);
    assert_eq!(
        rest["next_after"],
        Value::Null,
        "the end, without an empty page"
    );
}

#[tokio::test]
async fn a_jobs_archive_is_written_down_as_its_plan() {
    let server = start_default().await;
    let created = box_create_as_alice(
        &server,
        r#"{"items":[{"type":"folder","id":"1005"},{"type":"file","id":"12348"}]}"#,
    )
    .await;
    assert_eq!(created.status, StatusCode::ACCEPTED);
    let jobs = get(&server, "/_zipgate/jobs").await.json();
    let id = jobs["jobs"][0]["id"].as_str().unwrap().to_owned();
    let reply = get(&server, &format!("/_zipgate/jobs/{id}/plan")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let plan = reply.json();
    // What the download then sends: the same entries, the same length.
    let download = send(
        &server,
        Method::GET,
        &download_path(&created.json()),
        &[("authorization", "Bearer alice-token"), ("host", HOST)],
        Bytes::new(),
    )
    .await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(plan["len"], download.body.len() as u64);
    let names: Vec<&str> = plan["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, zip_entry_names(&download.body));
    let content = |name: &str| {
        plan["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["file"]["content"].clone())
            .unwrap()
    };
    // A generated body is written down whole; an inline one by its node.
    assert_eq!(content("Media/server.log")["kind"], "generated");
    let notes = content("notes.md");
    assert_eq!(
        (notes["kind"].as_str(), notes["node"].as_str()),
        (Some("node"), Some("file-notes"))
    );
    assert!(notes["fingerprint"].as_str().unwrap().starts_with("bytes:"));
    let unknown = get(&server, "/_zipgate/jobs/nope/plan").await;
    assert_eq!(
        (unknown.status, unknown.json()["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}
