//! Box's zip_downloads API over real HTTP: every route, status, error code
//! and envelope, the envelopes pinned byte for byte in `tests/golden/box/`.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{Duration, TimeZone, Utc};
use common::*;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use zipgate::clock::ManualClock;

const ALICE: &str = "Bearer alice-token";
const BOB: &str = "Bearer bob-token";

type BoxServer = Clocked;

async fn start(settings: &[(&str, &str)]) -> BoxServer {
    start_dialect("box", settings).await
}

async fn create(s: &BoxServer, auth: Option<&str>, body: &str) -> Reply {
    let mut headers = vec![("content-type", "application/json"), ("host", HOST)];
    if let Some(auth) = auth {
        headers.push(("authorization", auth));
    }
    send(
        &s.server,
        Method::POST,
        "/2.0/zip_downloads",
        &headers,
        body.to_owned(),
    )
    .await
}

fn items(list: &[(&str, &str)]) -> String {
    let items: Vec<Value> = list
        .iter()
        .map(|(t, id)| json!({"type": t, "id": id}))
        .collect();
    json!({ "items": items }).to_string()
}

/// The path of a URL on the test origin.
fn path_of(url: &str) -> String {
    url.strip_prefix(&format!("http://{HOST}"))
        .expect("URL on our origin")
        .to_owned()
}

async fn get_with(s: &BoxServer, path: &str, auth: Option<&str>) -> Reply {
    let mut headers = vec![("host", HOST), ("content-type", "application/json")];
    if let Some(auth) = auth {
        headers.push(("authorization", auth));
    }
    send(&s.server, Method::GET, path, &headers, Bytes::new()).await
}

/// Box's two ids: the body's `request_id` (16 of `[0-9a-z]`) and the
/// gateway's `BOX-REQUEST-ID` (`0` and 32 hex digits), never the same.
fn assert_request_ids(reply: &Reply) {
    let header = reply.header("box-request-id").expect("BOX-REQUEST-ID");
    assert!(
        header.len() == 33
            && header.starts_with('0')
            && header
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{header}"
    );
    let body = reply.json();
    let id = body["request_id"].as_str().expect("request_id");
    assert!(
        id.len() == 16
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
        "{id}"
    );
    assert_ne!(id, header);
}

fn assert_box_error(reply: &Reply, status: u16, code: &str, golden: Option<&str>) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code);
    assert_request_ids(reply);
    if let Some(name) = golden {
        assert_golden(&format!("box/{name}"), &reply.body);
    }
}

#[tokio::test]
async fn create_answers_202_with_urls_on_our_origin_and_no_retry_after() {
    let s = start(&[]).await;
    let reply = create(
        &s,
        Some(ALICE),
        &items(&[("file", "12348"), ("folder", "1004")]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.header("box-request-id").is_some());
    assert_eq!(
        reply.header("retry-after"),
        None,
        "Retry-After sends the Python SDK into a re-POST loop"
    );
    assert_golden("box/create-202.json", &reply.body);
    let body = reply.json();
    assert_eq!(body["expires_at"], "2025-03-01T10:01:00Z");
    assert_eq!(body["name_conflicts"], json!([]));
}

#[tokio::test]
async fn public_url_overrides_the_host_header() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2025, 3, 1, 10, 0, 0).unwrap(),
    ));
    let server = common::builder()
        .clock(clock.clone())
        .config(zipgate::server::Config {
            public_url: Some("https://zip.example.com/".into()),
            ..Default::default()
        })
        .test_jobs()
        .spawn()
        .await
        .unwrap();
    let s = Clocked { server, clock };
    let body = create(&s, Some(ALICE), &items(&[("file", "12348")]))
        .await
        .json();
    assert!(body["download_url"]
        .as_str()
        .unwrap()
        .starts_with("https://zip.example.com/2.0/zip_downloads/"));
}

#[tokio::test]
async fn clashing_items_are_both_renamed_and_reported_in_pairs() {
    let s = start(&[]).await;
    let reply = create(
        &s,
        Some(ALICE),
        &items(&[("file", "12345"), ("file", "34325"), ("folder", "1004")]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_golden("box/create-202-conflicts.json", &reply.body);
    let body = reply.json();
    let group = body["name_conflicts"][0].as_array().unwrap();
    assert_eq!(group.len(), 2);
    let mut download_names = Vec::new();
    for (member, id) in group.iter().zip(["12345", "34325"]) {
        assert_eq!(member["id"], id);
        assert_eq!(member["type"], "file");
        assert_eq!(member["original_name"], "report.pdf");
        let name = member["download_name"].as_str().unwrap();
        assert!(name.len() == 10 && name.ends_with(".pdf"), "{name}");
        download_names.push(name.to_owned());
    }
    let content = get_with(&s, &path_of(body["download_url"].as_str().unwrap()), None).await;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(content.body)).unwrap();
    let names: Vec<String> = (0..archive.len())
        .map(|i| archive.by_index(i).unwrap().name().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            download_names[0].as_str(),
            download_names[1].as_str(),
            "Empty/"
        ]
    );
    assert!(archive.by_name(&download_names[0]).is_ok());

    // Folders: a six-character prefix, `_`, and the name.
    let fixture = r#"{"users":[{"id":"u","token":"t"}],"nodes":[
        {"id":"a","name":"A","ids":{"box":"1"},"children":[{"id":"e1","name":"employees","ids":{"box":"11"},"children":[]}]},
        {"id":"b","name":"B","ids":{"box":"2"},"children":[{"id":"e2","name":"employees","ids":{"box":"22"},"children":[]}]}]}"#;
    let server = common::builder()
        .fixtures_json(fixture)
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let reply = send(
        &server,
        Method::POST,
        "/2.0/zip_downloads",
        &[("authorization", "Bearer t")],
        items(&[("folder", "11"), ("folder", "22")]),
    )
    .await;
    for member in reply.json()["name_conflicts"][0].as_array().unwrap() {
        let name = member["download_name"].as_str().unwrap();
        assert_eq!(&name[6..], "_employees");
        assert_eq!(member["type"], "folder");
    }
}

#[tokio::test]
async fn content_needs_no_auth_is_single_use_and_status_follows_it() {
    let s = start(&[]).await;
    let body = create(
        &s,
        Some(ALICE),
        &json!({"items": [{"type": "folder", "id": "1005"}], "download_file_name": "January Financials Ü"}).to_string(),
    )
    .await
    .json();
    let content_path = path_of(body["download_url"].as_str().unwrap());
    let status_path = path_of(body["status_url"].as_str().unwrap());

    // Before the download starts the status URL is not found (the status endpoint's own text).
    assert_box_error(
        &get_with(&s, &status_path, Some(ALICE)).await,
        404,
        "not_found",
        None,
    );

    // The SDKs send a bearer and a JSON Content-Type on the GET; both are accepted.
    let response = open(
        &s.server,
        Method::GET,
        &content_path,
        &[
            ("host", HOST),
            ("authorization", ALICE),
            ("content-type", "application/json"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(
        headers["content-disposition"],
        "attachment;filename=\"January Financials _.zip\";filename*=UTF-8''January%20Financials%20%C3%9C.zip"
    );
    assert!(headers.contains_key("box-request-id"));
    let length: usize = headers["content-length"].to_str().unwrap().parse().unwrap();

    // Mid-stream (64 MiB in the folder): in progress.
    let mut body_stream = response.into_body();
    let mut received = Vec::new();
    received.extend_from_slice(
        &body_stream
            .frame()
            .await
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap(),
    );
    let status = get_with(&s, &status_path, Some(ALICE)).await.json();
    assert_eq!(status["state"], "in_progress");
    assert_eq!(status["total_file_count"], 3);
    while let Some(frame) = body_stream.frame().await {
        received.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    assert_eq!(received.len(), length);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(received)).unwrap();
    assert!(archive.by_name("Media/photo.jpg").is_ok());

    // After: succeeded with real counters; legacy SDKs read it after the content.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let status = get_with(&s, &status_path, Some(ALICE)).await;
    assert_eq!(status.status, StatusCode::OK);
    assert_golden("box/status-200.json", &status.body);

    // Single use.
    assert_box_error(
        &get_with(&s, &content_path, None).await,
        404,
        "not_found",
        Some("error-404-content.json"),
    );
    // Another user may not read the status; no token is 401.
    assert_box_error(
        &get_with(&s, &status_path, Some(BOB)).await,
        403,
        "access_denied_insufficient_permissions",
        None,
    );
    let reply = get_with(&s, &status_path, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.body.is_empty());

    // The status URL lives 12 hours from the start of the download.
    s.clock.advance(Duration::hours(11));
    assert_eq!(
        get_with(&s, &status_path, Some(ALICE)).await.status,
        StatusCode::OK
    );
    s.clock.advance(Duration::hours(2));
    assert_box_error(
        &get_with(&s, &status_path, Some(ALICE)).await,
        404,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn unused_urls_expire_at_expires_at() {
    let s = start(&[("url_ttl", "30")]).await;
    let body = create(&s, Some(ALICE), &items(&[("file", "12348")]))
        .await
        .json();
    assert_eq!(body["expires_at"], "2025-03-01T10:00:30Z");
    s.clock.advance(Duration::seconds(31));
    let content = get_with(&s, &path_of(body["download_url"].as_str().unwrap()), None).await;
    assert_box_error(&content, 404, "not_found", None);
}

#[tokio::test]
async fn status_before_the_download_can_be_in_progress_by_setting() {
    let s = start(&[("status_before_download", "in_progress")]).await;
    let body = create(&s, Some(ALICE), &items(&[("file", "12348")]))
        .await
        .json();
    let status = get_with(
        &s,
        &path_of(body["status_url"].as_str().unwrap()),
        Some(ALICE),
    )
    .await
    .json();
    assert_eq!(status["state"], "in_progress");
    assert_eq!(status["downloaded_file_count"], 0);
}

#[tokio::test]
async fn bad_requests_are_400_bad_request_naming_the_parameter() {
    let s = start(&[]).await;
    for (body, name, golden) in [
        ("", "body", Some("error-400-missing-body.json")),
        ("{not json", "body", Some("error-400-not-json.json")),
        (
            r#"{"items":[]}"#,
            "items",
            Some("error-400-empty-items.json"),
        ),
        (r#"{"download_file_name":"x"}"#, "items", None),
        (r#"{"items":[{"type":"file"}]}"#, "items[0].id", None),
        (
            r#"{"items":[{"type":"file","id":12345}]}"#,
            "items[0].id",
            None,
        ),
        (
            r#"{"items":[{"type":"web_link","id":"1"}]}"#,
            "items[0].type",
            Some("error-400-bad-type.json"),
        ),
        (
            r#"{"items":[{"type":"folder","id":"0"}]}"#,
            "items[0].id",
            Some("error-400-root-folder.json"),
        ),
    ] {
        let reply = create(&s, Some(ALICE), body).await;
        assert_box_error(&reply, 400, "bad_request", golden);
        assert_eq!(
            reply.json()["context_info"]["errors"][0]["name"],
            name,
            "{body}"
        );
    }
}

#[tokio::test]
async fn missing_or_unknown_tokens_are_401_with_www_authenticate() {
    const CHALLENGE: &str = "Bearer realm=\"Service\", error=\"invalid_token\", error_description=\"The access token provided is invalid.\"";
    // By default, what Box's gateway sends: no body, no type, the challenge.
    let s = start(&[]).await;
    let body = items(&[("file", "12348")]);
    for auth in [None, Some("Bearer nope"), Some("Basic abc")] {
        for reply in [
            create(&s, auth, &body).await,
            get_with(&s, "/2.0/zip_downloads/x/status", auth).await,
        ] {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
            assert!(reply.body.is_empty(), "{:?}", reply.body);
            assert_eq!(reply.header("content-type"), None);
            assert_eq!(reply.header("www-authenticate"), Some(CHALLENGE));
            assert_eq!(reply.header("box-request-id").map(str::len), Some(33));
        }
    }
    // `box.unauthorized_body=json`: the `ClientError` Box's OpenAPI declares.
    let s = start(&[("unauthorized_body", "json")]).await;
    for (auth, golden) in [
        (None, Some("error-401.json")),
        (Some("Bearer nope"), None),
        (Some("Basic abc"), None),
    ] {
        let reply = create(&s, auth, &body).await;
        assert_box_error(&reply, 401, "unauthorized", golden);
        assert_eq!(reply.header("www-authenticate"), Some(CHALLENGE));
    }
}

#[tokio::test]
async fn unreadable_items_are_403_and_unknown_ones_404() {
    let s = start(&[]).await;
    assert_box_error(
        &create(&s, Some(BOB), &items(&[("folder", "1006")])).await,
        403,
        "access_denied_insufficient_permissions",
        Some("error-403.json"),
    );
    let reply = create(&s, Some(ALICE), &items(&[("file", "999999999")])).await;
    assert_box_error(&reply, 404, "not_found", Some("error-404-item.json"));
    // The id exists but is a folder, not a file.
    assert_box_error(
        &create(&s, Some(ALICE), &items(&[("file", "1002")])).await,
        404,
        "not_found",
        None,
    );
    // What the caller may not read inside a selected folder is left out
    // and counted as skipped, as Box counts what "could not be downloaded
    // … due to permission issues": Documents holds bob's draft, which
    // alice may not read.
    let created = create(&s, Some(ALICE), &items(&[("folder", "1002")]))
        .await
        .json();
    let names = entries_of(&s, &created).await;
    assert!(
        names.contains(&"Documents/notes.md".to_owned()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("bob-draft")), "{names:?}");
    let status = status_of(&s, &created).await;
    assert_eq!(
        (
            &status["total_file_count"],
            &status["downloaded_file_count"],
            &status["skipped_file_count"],
            &status["skipped_folder_count"]
        ),
        (&json!(7), &json!(6), &json!(1), &json!(0)),
        "{status}"
    );
    // `box.unreadable_inside=refuse` refuses such a folder as a whole.
    let strict = start(&[("unreadable_inside", "refuse")]).await;
    assert_box_error(
        &create(&strict, Some(BOB), &items(&[("folder", "1001")])).await,
        403,
        "access_denied_insufficient_permissions",
        None,
    );
}

#[tokio::test]
async fn limits_have_their_own_codes() {
    let s = start(&[("max_files", "2")]).await;
    let reply = create(&s, Some(ALICE), &items(&[("folder", "1002")])).await;
    assert_box_error(
        &reply,
        400,
        "zip_download_file_count_exceeded_limit",
        Some("error-400-file-count.json"),
    );
    let s = start(&[("max_bytes", "100")]).await;
    let reply = create(&s, Some(ALICE), &items(&[("folder", "1002")])).await;
    assert_box_error(
        &reply,
        400,
        "zip_download_pre_compressed_bytes_exceeded_limit",
        Some("error-400-bytes.json"),
    );
}

#[tokio::test]
async fn too_many_concurrent_downloads_are_429() {
    let s = start(&[("max_concurrent_downloads", "1")]).await;
    let first = create(&s, Some(ALICE), &items(&[("file", "12349")]))
        .await
        .json();
    let second = create(&s, Some(ALICE), &items(&[("file", "12348")]))
        .await
        .json();
    // The first download (64 MiB) stays open and unread.
    let streaming = open(
        &s.server,
        Method::GET,
        &path_of(first["download_url"].as_str().unwrap()),
        &[("host", HOST)],
        Bytes::new(),
    )
    .await;
    assert_eq!(streaming.status(), StatusCode::OK);
    let reply = get_with(&s, &path_of(second["download_url"].as_str().unwrap()), None).await;
    assert_box_error(
        &reply,
        429,
        "user_too_many_concurrent_downloads",
        Some("error-429.json"),
    );
    // Box's SDKs wait `Retry-After` seconds before they retry a 429.
    assert_eq!(reply.header("retry-after"), Some("1"));
    drop(streaming);
}

#[tokio::test]
async fn the_concurrent_download_cap_holds_under_a_burst() {
    // The cap is checked and the download claimed in one step: a burst of
    // downloads of one user's ready jobs lets exactly `max` through.
    let s = start(&[("max_concurrent_downloads", "2")]).await;
    let mut urls = Vec::new();
    for _ in 0..8 {
        let job = create(&s, Some(ALICE), &items(&[("file", "12349")]))
            .await
            .json();
        urls.push(path_of(job["download_url"].as_str().unwrap()));
    }
    // Connect first, then send every request at once from its own task.
    let mut senders = Vec::new();
    for _ in &urls {
        let stream = tokio::net::TcpStream::connect(s.server.addr())
            .await
            .unwrap();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        senders.push(sender);
    }
    let tasks: Vec<_> = senders
        .into_iter()
        .zip(&urls)
        .map(|(mut sender, url)| {
            let request = http::Request::get(url.as_str())
                .header("host", HOST)
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap();
            tokio::spawn(async move { sender.send_request(request).await.unwrap() })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    let statuses: Vec<u16> = replies.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        6,
        "{statuses:?}"
    );
    drop(replies);
}

#[tokio::test]
async fn wrong_methods_and_unknown_paths_answer_in_boxs_envelope() {
    let s = start(&[]).await;
    let reply = send(
        &s.server,
        Method::DELETE,
        "/2.0/zip_downloads",
        &[("host", HOST)],
        Bytes::new(),
    )
    .await;
    assert_box_error(&reply, 405, "method_not_allowed", Some("error-405.json"));
    assert_eq!(reply.header("allow"), Some("POST"));
    let reply = get_with(&s, "/2.0/zip_downloads/nope/elsewhere", None).await;
    assert_box_error(&reply, 404, "not_found", None);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_answers() {
    let a = start(&[]).await;
    let b = start(&[]).await;
    let body = items(&[("file", "12345"), ("file", "34325")]);
    let first = create(&a, Some(ALICE), &body).await;
    let second = create(&b, Some(ALICE), &body).await;
    assert_eq!(first.body, second.body);
    assert_eq!(
        first.header("box-request-id"),
        second.header("box-request-id")
    );
}

#[tokio::test]
async fn an_oversized_body_is_boxs_400_naming_the_body() {
    let server = start_with_config(zipgate::server::Config {
        max_body_bytes: 1024,
        ..Default::default()
    })
    .await;
    let body = format!(
        r#"{{"items":[{}]}}"#,
        r#"{"type":"file","id":"1"},"#.repeat(100)
    );
    let headers = [
        ("authorization", "Bearer alice-token"),
        ("content-type", "application/json"),
    ];
    let reply = send(&server, Method::POST, "/2.0/zip_downloads", &headers, body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let errors = &reply.json()["context_info"]["errors"][0];
    assert_eq!(errors["name"], "body");
    assert!(errors["message"]
        .as_str()
        .unwrap()
        .contains("larger than 1024 bytes"));
}

/// The entry names of a downloaded archive, in order.
async fn entries_of(s: &BoxServer, created: &Value) -> Vec<String> {
    let reply = get_with(s, &path_of(created["download_url"].as_str().unwrap()), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    zip_entry_names(&reply.body)
}

async fn status_of(s: &BoxServer, created: &Value) -> Value {
    let path = path_of(created["status_url"].as_str().unwrap());
    let reply = get_with(s, &path, Some(ALICE)).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json()
}

fn renamed_ids(created: &Value) -> Vec<Vec<String>> {
    created["name_conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            let mut ids: Vec<String> = group
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        })
        .collect()
}

#[tokio::test]
async fn boxs_reference_request_packs_a_nested_file_at_each_place_it_was_selected() {
    // Box's own example: files 12345 and 34325 (both `report.pdf`) and folder
    // 45678 (`Q1`, which holds 12345). Box's answer renames both files, so
    // 12345 is at the top, and again inside its folder.
    let s = start(&[]).await;
    let body = items(&[("file", "12345"), ("file", "34325"), ("folder", "45678")]);
    let created = create(&s, Some(ALICE), &body).await.json();
    assert_eq!(renamed_ids(&created), [["12345", "34325"]]);
    for member in created["name_conflicts"][0].as_array().unwrap() {
        assert_eq!(member["original_name"], "report.pdf");
        let renamed = member["download_name"].as_str().unwrap();
        assert!(
            renamed.len() == 10 && renamed.ends_with(".pdf"),
            "{renamed}"
        );
    }
    let mut names = entries_of(&s, &created).await;
    names.sort();
    let renamed: Vec<&str> = created["name_conflicts"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["download_name"].as_str().unwrap())
        .collect();
    let mut expected = vec![
        "Q1/".to_owned(),
        "Q1/report.pdf".to_owned(),
        "Q1/summary.txt".to_owned(),
    ];
    expected.extend(renamed.iter().map(|n| n.to_string()));
    expected.sort();
    assert_eq!(names, expected);
    let status = status_of(&s, &created).await;
    assert_eq!(status["total_file_count"], 4);
    assert_eq!(status["skipped_file_count"], 0);
}

#[tokio::test]
async fn an_id_listed_twice_is_packed_once_unless_set_to_each() {
    let twice = items(&[("file", "12348"), ("file", "12348")]);
    let s = start(&[]).await;
    let created = create(&s, Some(ALICE), &twice).await.json();
    assert_eq!(created["name_conflicts"], json!([]));
    assert_eq!(entries_of(&s, &created).await, ["notes.md"]);
    assert_eq!(status_of(&s, &created).await["total_file_count"], 1);

    let s = start(&[("repeated_items", "each")]).await;
    let created = create(&s, Some(ALICE), &twice).await.json();
    assert_eq!(renamed_ids(&created), [["12348", "12348"]]);
    let names = entries_of(&s, &created).await;
    assert_eq!(names.len(), 2);
    assert!(names.iter().all(|n| n.ends_with(".md")) && names[0] != names[1]);
}

#[tokio::test]
async fn names_that_differ_only_by_case_conflict_as_on_box() {
    let tree = json!({
        "users": [{"id": "alice", "token": "alice-token"}],
        "nodes": [{"id": "top", "name": "Top", "ids": {"box": "500"}, "owner": "alice", "children": [
            {"id": "lower", "name": "salary.pdf", "ids": {"box": "501"}, "content": {"text": "a"}},
            {"id": "upper", "name": "Salary.PDF", "ids": {"box": "502"}, "content": {"text": "b"}}
        ]}]
    });
    let both = items(&[("file", "501"), ("file", "502")]);
    let s = start(&[]).await;
    s.server.load_fixtures(tree.clone()).unwrap();
    let created = create(&s, Some(ALICE), &both).await.json();
    assert_eq!(renamed_ids(&created), [["501", "502"]]);
    let names = entries_of(&s, &created).await;
    assert!(
        names[0].ends_with(".pdf") && names[1].ends_with(".PDF"),
        "{names:?}"
    );

    let s = start(&[("ignore_case_in_names", "false")]).await;
    s.server.load_fixtures(tree).unwrap();
    let created = create(&s, Some(ALICE), &both).await.json();
    assert_eq!(created["name_conflicts"], json!([]));
    assert_eq!(entries_of(&s, &created).await, ["salary.pdf", "Salary.PDF"]);
}

#[tokio::test]
async fn a_folder_id_sent_as_a_file_gets_the_item_form() {
    let s = start(&[]).await;
    let reply = create(&s, Some(ALICE), &items(&[("file", "1002")])).await;
    assert_box_error(&reply, 404, "not_found", None);
    assert_eq!(
        reply.json()["context_info"]["errors"][0]["message"],
        "Invalid value 'f_1002'. 'item' with value 'f_1002' not found"
    );
    let reply = create(&s, Some(ALICE), &items(&[("folder", "12348")])).await;
    assert_eq!(
        reply.json()["context_info"]["errors"][0]["message"],
        "Invalid value 'd_12348'. 'item' with value 'd_12348' not found"
    );
}

async fn add_fault(s: &BoxServer, rule: Value) {
    let reply = send(
        &s.server,
        Method::POST,
        "/_zipgate/faults",
        &[("content-type", "application/json")],
        rule.to_string(),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

#[tokio::test]
async fn items_unreadable_or_deleted_when_the_download_starts_are_skipped_and_counted() {
    let s = start(&[]).await;
    // Q1 (45678) holds report.pdf (12345) and summary.txt (12346); Q2 (45679) holds 34325.
    add_fault(
        &s,
        json!({"match": {"dialect": "box", "method": "POST"}, "times": 1,
               "job": {"unreadable": ["12346"]}}),
    )
    .await;
    let created = create(&s, Some(ALICE), &items(&[("folder", "45678")]))
        .await
        .json();
    assert_eq!(entries_of(&s, &created).await, ["Q1/", "Q1/report.pdf"]);
    let status = status_of(&s, &created).await;
    assert_eq!(
        (
            &status["state"],
            &status["total_file_count"],
            &status["downloaded_file_count"],
            &status["skipped_file_count"],
            &status["skipped_folder_count"]
        ),
        (
            &json!("succeeded"),
            &json!(2),
            &json!(1),
            &json!(1),
            &json!(0)
        )
    );

    // A deleted folder goes with everything in it; fixture ids work as well as Box's.
    add_fault(
        &s,
        json!({"match": {"dialect": "box", "method": "POST"}, "times": 1,
               "job": {"deleted": ["folder-q2"]}}),
    )
    .await;
    let body = items(&[("folder", "45678"), ("folder", "45679")]);
    let created = create(&s, Some(ALICE), &body).await.json();
    assert_eq!(
        entries_of(&s, &created).await,
        ["Q1/", "Q1/report.pdf", "Q1/summary.txt"]
    );
    let status = status_of(&s, &created).await;
    assert_eq!(status["total_file_count"], 3);
    assert_eq!(status["downloaded_file_count"], 2);
    assert_eq!(status["skipped_file_count"], 1);
    assert_eq!(status["skipped_folder_count"], 1);
}

#[tokio::test]
async fn a_permission_change_between_create_and_download_is_honoured() {
    let s = start(&[]).await;
    let created = create(&s, Some(BOB), &items(&[("folder", "1003")]))
        .await
        .json();
    // The tree is reloaded with Q2 readable by alice only.
    let mut tree: Value = serde_json::from_str(include_str!("../fixtures/default.json")).unwrap();
    let reports = &mut tree["nodes"][0]["children"][0]["children"][1];
    assert_eq!(reports["name"], "Reports");
    let q2 = &mut reports["children"][1];
    assert_eq!(q2["name"], "Q2");
    q2["readers"] = json!(["alice"]);
    s.server.load_fixtures(tree).unwrap();

    let names = entries_of(&s, &created).await;
    assert!(
        names.contains(&"Reports/Q1/report.pdf".to_owned()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("Q2")), "{names:?}");
    let path = path_of(created["status_url"].as_str().unwrap());
    let status = get_with(&s, &path, Some(BOB)).await.json();
    assert_eq!(status["skipped_folder_count"], 1);
    assert_eq!(status["skipped_file_count"], 1);
    assert_eq!(status["state"], "succeeded");
}
