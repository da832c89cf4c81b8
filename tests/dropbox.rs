//! Dropbox's `files/download_zip` over real HTTP: the archive read by real
//! readers, the result header, every error answer pinned in
//! `tests/golden/dropbox/`, the limits, `GET` and `HEAD`.

mod common;

use common::*;
use http::{Method, StatusCode};
use serde_json::Value;
use zipgate::api::{Principal, UserId};
use zipgate::store::DEFAULT_FIXTURE;

const ROUTE: &str = "/2/files/download_zip";
const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");

fn arg(path: &str) -> String {
    serde_json::json!({ "path": path }).to_string()
}

async fn download(s: &Clocked, path: &str) -> Reply {
    let arg = arg(path);
    call(
        s,
        Method::POST,
        ROUTE,
        &[ALICE, ("dropbox-api-arg", &arg)],
        "",
    )
    .await
}

#[tokio::test]
async fn a_folder_is_a_zip_of_itself_that_every_reader_takes() {
    let s = start_dialect("dropbox", &[]).await;
    let reply = download(&s, "/Documents").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(reply.header("content-disposition").is_none());
    assert!(reply.header("accept-ranges").is_none());
    let id = reply.header("x-dropbox-request-id").unwrap();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let result: Value = serde_json::from_str(reply.header("dropbox-api-result").unwrap()).unwrap();
    let metadata = &result["metadata"];
    let keys: Vec<&String> = metadata.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "path_lower", "path_display", "id"]);
    assert_eq!(metadata["path_display"], "/Documents");
    // The folder itself is the archive's top entry, with everything under it.
    let alice = Principal::User(UserId("alice".into()));
    let expected = expected_entries(DEFAULT_FIXTURE, &alice, &["folder-documents"]);
    assert_eq!(expected[0].0, "Documents/");
    check_with_readers(&reply.body, &expected);
}

#[tokio::test]
async fn the_result_header_is_ascii_and_names_the_path_as_stored() {
    let s = start_dialect("dropbox", &[]).await;
    s.server
        .add_nodes(
            Some("folder-documents"),
            vec![serde_json::json!({"id": "café", "name": "Café 日本", "children": []})],
        )
        .unwrap();
    // Raw UTF-8 in the header is refused: it must be "HTTP header safe".
    let reply = download(&s, "/DOCUMENTS/café 日本").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let escaped = r#"{"path": "/DOCUMENTS/caf\u00e9 \u65e5\u672c"}"#;
    let reply = call(
        &s,
        Method::POST,
        ROUTE,
        &[ALICE, ("dropbox-api-arg", escaped)],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let raw = reply.header("dropbox-api-result").unwrap();
    assert!(raw.is_ascii() && raw.contains("\\u00e9"), "{raw}");
    let result: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(result["metadata"]["path_display"], "/Documents/Café 日本");
    assert_eq!(result["metadata"]["path_lower"], "/documents/café 日本");
}

/// A golden file's name, the headers besides the credentials, the body, the status.
type Case = (
    &'static str,
    Vec<(&'static str, String)>,
    &'static str,
    StatusCode,
);

#[tokio::test]
async fn error_answers_in_dropboxs_words() {
    let s = start_dialect("dropbox", &[]).await;
    let no_arg: &[(&str, &str)] = &[ALICE];
    let cases: Vec<Case> = vec![
        (
            "400-no-auth.txt",
            vec![("dropbox-api-arg", arg("/Documents"))],
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            "400-bad-auth.txt",
            vec![
                ("authorization", "Basic x".into()),
                ("dropbox-api-arg", arg("/Documents")),
            ],
            "",
            StatusCode::BAD_REQUEST,
        ),
        ("400-no-arg.txt", Vec::new(), "", StatusCode::BAD_REQUEST),
        (
            "400-unknown-field.txt",
            vec![("dropbox-api-arg", r#"{"pat": "/a"}"#.into())],
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            "400-pattern.txt",
            vec![("dropbox-api-arg", arg(""))],
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            "400-not-json.txt",
            vec![("dropbox-api-arg", "{path".into())],
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            "400-body.txt",
            vec![("dropbox-api-arg", arg("/Documents"))],
            "{}",
            StatusCode::BAD_REQUEST,
        ),
        (
            "400-content-type.txt",
            vec![
                ("dropbox-api-arg", arg("/Documents")),
                ("content-type", "application/json".into()),
            ],
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            "409-not-found.json",
            vec![("dropbox-api-arg", arg("/Nope"))],
            "",
            StatusCode::CONFLICT,
        ),
        (
            "409-not-folder.json",
            vec![("dropbox-api-arg", arg("/Documents/notes.md"))],
            "",
            StatusCode::CONFLICT,
        ),
        (
            "409-malformed.json",
            vec![("dropbox-api-arg", arg("/"))],
            "",
            StatusCode::CONFLICT,
        ),
        (
            "409-rev.json",
            vec![("dropbox-api-arg", arg("rev:a1c10ce0dd78"))],
            "",
            StatusCode::CONFLICT,
        ),
    ];
    for (golden, headers, body, status) in cases {
        let mut all: Vec<(&str, &str)> =
            if golden.starts_with("400-no-auth") || golden.starts_with("400-bad-auth") {
                Vec::new()
            } else {
                no_arg.to_vec()
            };
        all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
        let reply = call(&s, Method::POST, ROUTE, &all, body).await;
        assert_eq!(reply.status, status, "{golden}");
        let json = golden.ends_with(".json");
        let content_type = reply.header("content-type").unwrap();
        if json {
            assert_eq!(content_type, "application/json", "{golden}");
        } else {
            assert_eq!(content_type, "text/plain; charset=utf-8", "{golden}");
        }
        assert!(reply.header("x-dropbox-request-id").is_some(), "{golden}");
        assert_golden(&format!("dropbox/{golden}"), &reply.body);
    }
    let arg = arg("/Documents");
    let reply = call(
        &s,
        Method::POST,
        ROUTE,
        &[("authorization", "Bearer nope"), ("dropbox-api-arg", &arg)],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"Dropbox-API\"")
    );
    assert_golden("dropbox/401.json", &reply.body);
    // No error left a job behind.
    let jobs = get(&s.server, "/_zipgate/jobs").await.json();
    assert!(jobs["jobs"].as_array().unwrap().is_empty(), "{jobs}");
}

#[tokio::test]
async fn the_limits_are_too_many_files_and_too_large() {
    let s = start_dialect("dropbox", &[("max_entries", "3")]).await;
    let reply = download(&s, "/Documents/Reports/Q1").await;
    // Q1/ and its two files: three entries, the top folder counted.
    assert_eq!(reply.status, StatusCode::OK);
    let reply = download(&s, "/Documents/Reports").await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.json()["error"][".tag"], "too_many_files");

    let s = start_dialect("dropbox", &[("max_file_bytes", "10")]).await;
    let reply = download(&s, "/Documents/Reports/Q1").await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.json()["error"][".tag"], "too_large");
    assert!(reply.json()["error_summary"]
        .as_str()
        .unwrap()
        .starts_with("too_large/"));
}

#[tokio::test]
async fn get_works_like_post_and_head_leaves_no_job() {
    let s = start_dialect("dropbox", &[]).await;
    let arg = arg("/Documents/Reports");
    let headers = [ALICE, ("dropbox-api-arg", arg.as_str())];
    let got = call(&s, Method::GET, ROUTE, &headers, "").await;
    assert_eq!(got.status, StatusCode::OK);
    let head = call(&s, Method::HEAD, ROUTE, &headers, "").await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(got.body.len().to_string().as_str())
    );
    assert_eq!(
        head.header("dropbox-api-result"),
        got.header("dropbox-api-result")
    );
    let jobs = get(&s.server, "/_zipgate/jobs").await.json();
    assert_eq!(
        jobs["jobs"].as_array().unwrap().len(),
        1,
        "only the GET's: {jobs}"
    );
}

#[tokio::test]
async fn a_folder_by_id_and_a_path_below_it() {
    let s = start_dialect("dropbox", &[]).await;
    let first = download(&s, "/Documents").await;
    let result: Value = serde_json::from_str(first.header("dropbox-api-result").unwrap()).unwrap();
    let id = result["metadata"]["id"].as_str().unwrap().to_owned();
    let by_id = download(&s, &id).await;
    assert_eq!(by_id.status, StatusCode::OK);
    assert_eq!(
        by_id.header("dropbox-api-result"),
        first.header("dropbox-api-result")
    );
    let below = download(&s, &format!("{id}/reports/q2")).await;
    assert_eq!(below.status, StatusCode::OK);
    let result: Value = serde_json::from_str(below.header("dropbox-api-result").unwrap()).unwrap();
    assert_eq!(result["metadata"]["path_display"], "/Documents/Reports/Q2");
    // Bob's Dropbox has no home folder: its root is the top of the tree,
    // and Alice's private folder is not in it.
    let arg = arg("/Alice/Private");
    let reply = call(
        &s,
        Method::POST,
        ROUTE,
        &[
            ("authorization", "Bearer bob-token"),
            ("dropbox-api-arg", &arg),
        ],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.json()["error"]["path"][".tag"], "not_found");
}
