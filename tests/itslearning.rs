//! itslearning's yourfiles zip jobs over real HTTP, with ASP.NET Web API 2's
//! negotiation, formatters and error bodies; pinned in `tests/golden/itslearning/`.

mod common;

use chrono::Duration;
use common::*;
use http::{Method, StatusCode};
use serde_json::Value;

const ZIP: &str = "/restapi/personal/yourfiles/files/zip/v1";
const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");
const JSON: (&str, &str) = ("content-type", "application/json");
const XML_SAMPLE: &str = r#"<ZipRequest xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/Itslearning.RestApi.Entities.YourFiles">
  <FileIds xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
    <d2p1:int>12345</d2p1:int>
    <d2p1:int>34325</d2p1:int>
  </FileIds>
  <FolderIds xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
    <d2p1:int>1004</d2p1:int>
  </FolderIds>
</ZipRequest>"#;

fn download_path(model: &Value) -> String {
    model["DownloadUrl"]
        .as_str()
        .unwrap()
        .strip_prefix(&format!("http://{HOST}"))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_json_job_from_creation_to_download() {
    let s = start_dialect("itslearning", &[]).await;
    let reply = call(
        &s,
        Method::POST,
        ZIP,
        &[ALICE, JSON, ("accept", "application/json, text/plain, */*")],
        r#"{"FileIds":[12345,34325],"FolderIds":[1004]}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_golden("itslearning/create-200.json", &reply.body);
    let model = reply.json();
    assert_eq!(
        (model["Status"].as_str(), model["DownloadUrl"].clone()),
        (Some("Pending"), Value::Null)
    );
    let job = model["JobId"].as_u64().unwrap();

    let poll = format!("/restapi/personal/yourfiles/files/zip/{job}/v1");
    let running = call(&s, Method::GET, &poll, &[ALICE], "").await;
    assert_eq!(running.json()["Status"], "InProgress");
    let done = call(&s, Method::GET, &poll, &[ALICE], "").await;
    assert_golden("itslearning/poll-completed.json", &done.body);
    let model = done.json();
    assert_eq!(model["Status"], "Completed");

    // The download URL needs no bearer.
    let zip = call(&s, Method::GET, &download_path(&model), &[], "").await;
    assert_eq!(zip.status, StatusCode::OK);
    assert_eq!(zip.header("content-type"), Some("application/zip"));
    assert_eq!(
        zip.header("content-disposition"),
        Some("attachment; filename=\"files.zip\"; filename*=UTF-8''files.zip")
    );
    let store = s.server.state().store();
    let bytes = |id: &str| file_bytes(store.node(&zipgate::api::NodeId::from(id)).unwrap());
    check_with_readers(
        &zip.body,
        &[
            ("report.pdf".into(), bytes("file-q1-report")),
            ("report (1).pdf".into(), bytes("file-q2-report")),
            ("Empty/".into(), None),
        ],
    );

    // The latest job, then DELETE removes it.
    assert_eq!(
        call(&s, Method::GET, ZIP, &[ALICE], "").await.json()["JobId"],
        job
    );
    let deleted = call(&s, Method::DELETE, ZIP, &[ALICE], "").await;
    assert_eq!(
        (
            deleted.status,
            deleted.body.len(),
            deleted.header("content-type")
        ),
        (StatusCode::NO_CONTENT, 0, None)
    );
    assert_eq!(call(&s, Method::GET, ZIP, &[ALICE], "").await.body, b"null");
    assert_eq!(
        call(&s, Method::GET, &poll, &[ALICE], "").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn delete_cuts_a_download_in_flight() {
    let s = start_dialect("itslearning", &[("pacing", "immediate")]).await;
    let reply = call(
        &s,
        Method::POST,
        ZIP,
        &[ALICE, JSON],
        r#"{"FileIds":[12345,34325],"FolderIds":[1004]}"#,
    )
    .await;
    let job = reply.json()["JobId"].as_u64().unwrap();
    let poll = format!("/restapi/personal/yourfiles/files/zip/{job}/v1");
    let model = call(&s, Method::GET, &poll, &[ALICE], "").await.json();
    assert_eq!(model["Status"], "Completed");
    let delete = async {
        let reply = call(&s, Method::DELETE, ZIP, &[ALICE], "").await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
    };
    assert_cancel_cuts_download(&s.server, &download_path(&model), &[], delete).await;
    assert_eq!(
        call(&s, Method::GET, &poll, &[ALICE], "").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_pending_job_in_xml_has_a_nil_download_url() {
    let s = start_dialect("itslearning", &[]).await;
    let reply = call(
        &s,
        Method::POST,
        ZIP,
        &[ALICE, ("content-type", "text/xml")],
        XML_SAMPLE,
    )
    .await;
    assert_golden("itslearning/create-200-pending.xml", &reply.body);
    assert!(String::from_utf8(reply.body)
        .unwrap()
        .contains(r#"<DownloadUrl i:nil="true" />"#));
}

#[tokio::test]
async fn the_help_pages_xml_sample_is_answered_in_xml() {
    let s = start_dialect("itslearning", &[("pacing", "immediate")]).await;
    let reply = call(
        &s,
        Method::POST,
        ZIP,
        &[ALICE, ("content-type", "text/xml")],
        XML_SAMPLE,
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.header("content-type"),
        Some("text/xml; charset=utf-8")
    );
    assert_golden("itslearning/create-200.xml", &reply.body);
    // Pending, then an XML poll with Accept.
    let reply = call(
        &s,
        Method::POST,
        ZIP,
        &[ALICE, ("content-type", "application/xml")],
        &XML_SAMPLE.replace("d2p1", "a"),
    )
    .await;
    assert_eq!(
        reply.header("content-type"),
        Some("application/xml; charset=utf-8")
    );
    let poll = call(
        &s,
        Method::GET,
        "/restapi/personal/yourfiles/files/zip/1/v1",
        &[ALICE, ("accept", "application/xml")],
        "",
    )
    .await;
    assert_golden("itslearning/poll-completed.xml", &poll.body);
    let text = String::from_utf8(poll.body).unwrap();
    assert!(
        text.contains("<DownloadUrl>http://zipgate.test/filerepo/zip/1/"),
        "{text}"
    );
}

#[tokio::test]
async fn forms_in_each_array_spelling() {
    let s = start_dialect("itslearning", &[("pacing", "immediate")]).await;
    let form = ("content-type", "application/x-www-form-urlencoded");
    for body in [
        "FileIds=12348&FileIds=2",
        "FileIds%5B%5D=12348&FileIds%5B%5D=2",
        "FileIds[0]=12348&FileIds[1]=2",
    ] {
        let reply = call(&s, Method::POST, ZIP, &[ALICE, form], body).await;
        assert_eq!(reply.status, StatusCode::OK, "{body}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        let model = reply.json();
        let zip = call(&s, Method::GET, &download_path(&model), &[], "").await;
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.body)).unwrap();
        assert_eq!(archive.len(), 2, "{body}");
        assert_eq!(archive.by_index(0).unwrap().name().unwrap(), "notes.md");
    }
}

#[tokio::test]
async fn auth_by_bearer_or_access_token_and_the_401() {
    let s = start_dialect("itslearning", &[]).await;
    let ok = call(
        &s,
        Method::GET,
        &format!("{ZIP}?access_token=alice-token"),
        &[],
        "",
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let denied = call(&s, Method::GET, ZIP, &[], "").await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    assert_golden("itslearning/error-401.json", &denied.body);
    let denied = call(
        &s,
        Method::GET,
        ZIP,
        &[("authorization", "Bearer nope"), ("accept", "text/xml")],
        "",
    )
    .await;
    assert_golden("itslearning/error-401.xml", &denied.body);
}

#[tokio::test]
async fn formatter_errors_like_web_api() {
    let s = start_dialect("itslearning", &[]).await;
    for (headers, body, status, golden) in [
        (
            vec![ALICE, ("content-type", "text/plain")],
            "FileIds=1",
            415,
            "error-415.json",
        ),
        (vec![ALICE], "x", 415, "error-415-no-content-type.json"),
        (
            vec![ALICE, JSON],
            "{\"FileIds\":[1,",
            400,
            "error-400-malformed.json",
        ),
        (
            vec![ALICE, JSON],
            "{\"FileIds\":[\"abc\"]}",
            400,
            "error-400-bad-item.json",
        ),
        (vec![ALICE, JSON], "", 400, "error-400-empty.json"),
        (
            vec![ALICE, ("content-type", "text/xml")],
            "<ZipRequest><FileIds/></ZipRequest>",
            400,
            "error-400-xml-namespace.xml",
        ),
        (
            vec![ALICE, JSON],
            "{\"FileIds\":[999]}",
            404,
            "error-404-item.json",
        ),
    ] {
        let reply = call(&s, Method::POST, ZIP, &headers, body).await;
        assert_eq!(
            reply.status.as_u16(),
            status,
            "{body}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_golden(&format!("itslearning/{golden}"), &reply.body);
    }
    // Bob may not read Alice's private folder.
    let reply = call(
        &s,
        Method::POST,
        ZIP,
        &[("authorization", "Bearer bob-token"), JSON],
        "{\"FolderIds\":[1006]}",
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn routes_match_without_case_and_answer_like_web_api() {
    let s = start_dialect("itslearning", &[("pacing", "immediate")]).await;
    let reply = call(
        &s,
        Method::POST,
        "/RestApi/Personal/YourFiles/Files/Zip/V1",
        &[ALICE, JSON],
        "{\"fileids\":[12348]}",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = call(&s, Method::PUT, ZIP, &[ALICE], "").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), Some("POST, GET, DELETE"));
    assert_golden("itslearning/error-405.json", &reply.body);
    let reply = call(
        &s,
        Method::GET,
        "/restapi/personal/nothing/v1?x=1",
        &[ALICE],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_golden("itslearning/error-404-route.json", &reply.body);
    // An unknown job is NotFound() with no body; a job id that is not an int is invalid.
    let reply = call(
        &s,
        Method::GET,
        "/restapi/personal/yourfiles/files/zip/999/v1",
        &[ALICE],
        "",
    )
    .await;
    assert_eq!((reply.status, reply.body.len()), (StatusCode::NOT_FOUND, 0));
    let reply = call(
        &s,
        Method::GET,
        "/restapi/personal/yourfiles/files/zip/abc/v1",
        &[ALICE],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn download_urls_expire_and_choices_are_settings() {
    let s = start_dialect(
        "itslearning",
        &[
            ("pacing", "immediate"),
            ("download_ttl", "60"),
            ("statuses", "Queued,Zipping,Done,Error"),
            ("zip_file_name", "Meine Dateien.zip"),
        ],
    )
    .await;
    let model = call(
        &s,
        Method::POST,
        ZIP,
        &[ALICE, JSON],
        "{\"FileIds\":[12348]}",
    )
    .await
    .json();
    assert_eq!(
        (model["Status"].as_str(), model["ZipFileName"].as_str()),
        (Some("Done"), Some("Meine Dateien.zip"))
    );
    s.clock.advance(Duration::seconds(61));
    assert_eq!(
        call(&s, Method::GET, &download_path(&model), &[], "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let s = start_dialect(
        "itslearning",
        &[
            ("pacing", "immediate"),
            ("missing_items", "fail"),
            ("not_found_body", "message"),
        ],
    )
    .await;
    let model = call(&s, Method::POST, ZIP, &[ALICE, JSON], "{\"FileIds\":[999]}")
        .await
        .json();
    assert_eq!(model["Status"], "Failed");
    let reply = call(
        &s,
        Method::GET,
        "/restapi/personal/yourfiles/files/zip/999/v1",
        &[ALICE],
        "",
    )
    .await;
    assert_eq!(reply.json()["Message"], "No zip job with id 999 was found.");
}

#[tokio::test]
async fn every_error_also_in_xml() {
    let s = start_dialect("itslearning", &[]).await;
    let xml = ("accept", "application/xml");
    for (method, path, headers, body, status, golden) in [
        (
            Method::POST,
            ZIP,
            vec![ALICE, xml, ("content-type", "text/plain")],
            "x",
            415,
            "error-415.xml",
        ),
        (
            Method::POST,
            ZIP,
            vec![ALICE, xml],
            "x",
            415,
            "error-415-no-content-type.xml",
        ),
        (
            Method::POST,
            ZIP,
            vec![ALICE, xml, JSON],
            "{\"FileIds\":[\"abc\"]}",
            400,
            "error-400-bad-item.xml",
        ),
        (
            Method::POST,
            ZIP,
            vec![ALICE, xml, JSON],
            "",
            400,
            "error-400-empty.xml",
        ),
        (
            Method::POST,
            ZIP,
            vec![ALICE, xml, JSON],
            "{\"FileIds\":[999]}",
            404,
            "error-404-item.xml",
        ),
        (Method::PUT, ZIP, vec![ALICE, xml], "", 405, "error-405.xml"),
        (
            Method::GET,
            "/restapi/nothing",
            vec![ALICE, xml],
            "",
            404,
            "error-404-route.xml",
        ),
    ] {
        let reply = call(&s, method, path, &headers, body).await;
        assert_eq!(reply.status.as_u16(), status, "{golden}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/xml; charset=utf-8"),
            "{golden}"
        );
        assert_golden(&format!("itslearning/{golden}"), &reply.body);
    }
}

#[tokio::test]
async fn duration_pacing_and_empty_requests_by_setting() {
    let s = start_dialect(
        "itslearning",
        &[("pacing", "seconds:10"), ("empty_request", "empty_zip")],
    )
    .await;
    let model = call(&s, Method::POST, ZIP, &[ALICE, JSON], "{}")
        .await
        .json();
    assert_eq!(model["Status"], "Pending");
    let poll = format!(
        "/restapi/personal/yourfiles/files/zip/{}/v1",
        model["JobId"]
    );
    assert_eq!(
        call(&s, Method::GET, &poll, &[ALICE], "").await.json()["Status"],
        "InProgress"
    );
    s.clock.advance(Duration::seconds(10));
    let done = call(&s, Method::GET, &poll, &[ALICE], "").await.json();
    assert_eq!(done["Status"], "Completed");
    let zip = call(&s, Method::GET, &download_path(&done), &[], "").await;
    assert_eq!(
        zip::ZipArchive::new(std::io::Cursor::new(zip.body))
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn an_oversized_body_is_web_apis_413() {
    let server = start_with_config(zipgate::server::Config {
        max_body_bytes: 1024,
        ..Default::default()
    })
    .await;
    let body = format!(r#"{{"FileIds":[{}1]}}"#, "1,".repeat(1000));
    let reply = send(
        &server,
        Method::POST,
        ZIP,
        &[ALICE, JSON, ("host", HOST)],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.json()["Message"].is_string(), "{:?}", reply.json());
}

/// The help page's request samples, verbatim (shared/vendor's crawl of
/// `Api/POST-restapi-personal-yourfiles-files-zip-v1`): files and folders
/// are numbered apart, so `1, 2` in both lists name four items.
#[tokio::test]
async fn the_help_pages_samples_replay_verbatim() {
    const PAGE_XML: &str = r#"<ZipRequest xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/Itslearning.RestApi.Entities.YourFiles">
  <FileIds xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
    <d2p1:int>1</d2p1:int>
    <d2p1:int>2</d2p1:int>
  </FileIds>
  <FolderIds xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
    <d2p1:int>1</d2p1:int>
    <d2p1:int>2</d2p1:int>
  </FolderIds>
</ZipRequest>"#;
    let s = start_dialect("itslearning", &[("pacing", "immediate")]).await;
    for (content_type, body) in [
        ("application/json", r#"{"FileIds":[1,2],"FolderIds":[1,2]}"#),
        ("application/xml", PAGE_XML),
        ("text/xml", PAGE_XML),
    ] {
        let reply = call(
            &s,
            Method::POST,
            ZIP,
            &[ALICE, ("content-type", content_type)],
            body,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{content_type}");
        let model = if content_type == "application/json" {
            reply.json()
        } else {
            let job = call(
                &s,
                Method::GET,
                ZIP,
                &[ALICE, ("accept", "application/json")],
                "",
            )
            .await;
            job.json()
        };
        let zip = call(&s, Method::GET, &download_path(&model), &[], "").await;
        let mut names = zip_entry_names(&zip.body);
        names.sort();
        assert_eq!(
            names,
            // File 1 (summary.txt) sits in folder 1 (Q1): packed once, there.
            [
                "Q1/",
                "Q1/report.pdf",
                "Q1/summary.txt",
                "Q2/",
                "Q2/report.pdf",
                "Überblick – 日本語.txt"
            ],
            "{content_type}"
        );
    }
}

#[tokio::test]
async fn a_trailing_slash_routes_like_the_route_without_it() {
    // Recorded from Web API: tests/golden/itslearning/webapi2/slash_*.txt.
    let s = start_dialect("itslearning", &[("pacing", "immediate")]).await;
    let created = call(
        &s,
        Method::POST,
        &format!("{ZIP}/"),
        &[ALICE, JSON],
        r#"{"FileIds":[12348]}"#,
    )
    .await;
    assert_eq!(created.status, StatusCode::OK);
    let job = created.json()["JobId"].as_u64().unwrap();
    let one = format!("/restapi/personal/yourfiles/files/zip/{job}/v1/");
    assert_eq!(
        call(&s, Method::GET, &one, &[ALICE], "").await.status,
        StatusCode::OK
    );
    let latest = call(&s, Method::GET, &format!("{ZIP}/"), &[ALICE], "").await;
    assert_eq!(latest.json()["JobId"].as_u64(), Some(job));
    // Two slashes are not one.
    let twice = call(&s, Method::GET, &format!("{ZIP}//"), &[ALICE], "").await;
    assert_eq!(twice.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_file_and_a_folder_may_share_an_itslearning_id_but_not_a_box_id() {
    let s = start_dialect("itslearning", &[]).await;
    let tree = |dialect: &str, second_kind: &str| {
        let second = if second_kind == "file" {
            serde_json::json!({"id": "b", "name": "b.txt", "content": {"text": "b"}, "ids": {dialect: "7"}})
        } else {
            serde_json::json!({"id": "b", "name": "B", "children": [], "ids": {dialect: "7"}})
        };
        serde_json::json!({
            "users": [{"id": "alice", "token": "alice-token"}],
            "nodes": [
                {"id": "a", "name": "a.txt", "content": {"text": "a"}, "ids": {dialect: "7"}},
                second
            ]
        })
        .to_string()
    };
    let put = |body: String| {
        let s = &s;
        async move {
            let local = ("host", "127.0.0.1");
            call(s, Method::PUT, "/_zipgate/fixtures", &[JSON, local], &body).await
        }
    };
    let ok = put(tree("itslearning", "folder")).await;
    assert_eq!(
        ok.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&ok.body)
    );
    for (dialect, kind) in [("itslearning", "file"), ("box", "folder")] {
        let refused = put(tree(dialect, kind)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{dialect} {kind}");
        let text = String::from_utf8_lossy(&refused.body).into_owned();
        assert!(
            text.contains("nodes[1].ids.")
                && text.contains("already the")
                && text.contains("nodes[0]"),
            "{text}"
        );
    }
    // The itslearning tree that was taken: each list finds its own kind.
    assert_eq!(
        put(tree("itslearning", "folder")).await.status,
        StatusCode::OK
    );
    let reply = call(&s, Method::POST, ZIP, &[ALICE, JSON], r#"{"FileIds":[7]}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = call(
        &s,
        Method::POST,
        ZIP,
        &[ALICE, JSON],
        r#"{"FolderIds":[7]}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn what_the_caller_may_not_read_inside_a_folder_is_left_out() {
    // itslearning does not say; zipgate leaves it out (a setting can refuse).
    let s = start_dialect("itslearning", &[("pacing", "immediate")]).await;
    let body = r#"{"FolderIds":[1002]}"#;
    let reply = call(&s, Method::POST, ZIP, &[ALICE, JSON], body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let model = reply.json();
    assert_eq!(model["Status"], "Completed", "{model}");
    let zip = call(&s, Method::GET, &download_path(&model), &[], "").await;
    let names = zip_entry_names(&zip.body);
    assert!(
        names.contains(&"Documents/todo.txt".to_owned()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("bob-draft")), "{names:?}");

    let s = start_dialect("itslearning", &[("unreadable_inside", "refuse")]).await;
    let reply = call(&s, Method::POST, ZIP, &[ALICE, JSON], body).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.json()["Message"],
        "You do not have access to one or more of the files or folders."
    );
}

/// `JobId`s count 1, 2, 3… from the core's sequence (which replicas that
/// share their jobs will share), and from 1 again after a reset.
#[tokio::test]
async fn job_ids_count_from_one_and_again_after_a_reset() {
    let s = start_dialect("itslearning", &[]).await;
    let create = || {
        call(
            &s,
            Method::POST,
            ZIP,
            &[ALICE, JSON],
            r#"{"FileIds":[12345]}"#,
        )
    };
    let ids = [create().await, create().await].map(|reply| reply.json()["JobId"].as_u64().unwrap());
    assert_eq!(ids, [1, 2]);
    s.server.reset().unwrap();
    assert_eq!(create().await.json()["JobId"].as_u64(), Some(1));
}
