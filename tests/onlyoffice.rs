//! ONLYOFFICE's bulk download over real HTTP, Workspace and DocSpace
//! flavours, JSON and XML, envelopes pinned in `tests/golden/onlyoffice/`.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{Duration, TimeZone, Utc};
use common::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use zipgate::clock::ManualClock;

const BULK: &str = "/api/2.0/files/fileops/bulkdownload";
const LIST: &str = "/api/2.0/files/fileops";
const JSON: (&str, &str) = ("content-type", "application/json");
const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");

type Oo = Clocked;

async fn start(settings: &[(&str, &str)]) -> Oo {
    start_dialect("onlyoffice", settings).await
}

async fn bulk(oo: &Oo, body: &str) -> Reply {
    call(oo, Method::PUT, BULK, &[ALICE, JSON], body).await
}

async fn poll(oo: &Oo) -> Reply {
    call(oo, Method::GET, LIST, &[ALICE], "").await
}

fn ops(reply: &Reply) -> Vec<Value> {
    reply.json()["response"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The archive URL's path and query on our origin, unescaped from JSON.
fn archive_path(op: &Value) -> String {
    let url = op["url"].as_str().expect("a url");
    url.strip_prefix(&format!("http://{HOST}"))
        .unwrap()
        .to_owned()
}

async fn fetch(oo: &Oo, path: &str, headers: &[(&str, &str)]) -> Reply {
    call(oo, Method::GET, path, headers, "").await
}

/// Every one of `wants` is an entry of `names`.
fn assert_has(names: &[String], wants: &[&str], what: &str) {
    for want in wants {
        assert!(
            names.iter().any(|n| n == want),
            "{what}: {want} in {names:?}"
        );
    }
}

/// PUT with Alice's token (the operation finishing at once), then the
/// archive's entry names, sorted.
async fn archive_names(oo: &Oo, body: &str, what: &str) -> Vec<String> {
    let reply = bulk(oo, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{what}");
    let op = settled(oo, &reply, ALICE).await;
    let archive = fetch(oo, &archive_path(&op), &[ALICE]).await;
    assert_eq!(archive.status, StatusCode::OK, "{what}");
    let mut names = zip_entry_names(&archive.body);
    names.sort();
    names
}

/// Polls a client makes at most, a pause apart: an archive over the inline
/// build size is built on a thread (slowly in a debug build), and the
/// operation finishes only then.
const POLLS: usize = 600;
const POLL_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// The operation a PUT started, once finished: DocSpace may answer it
/// finished already; Workspace answers it as first published and the next
/// poll (with the same credentials) reports how it ended.
async fn settled(oo: &Oo, reply: &Reply, auth: (&str, &str)) -> Value {
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let op = ops(reply)[0].clone();
    if op["finished"] == true {
        return op;
    }
    for _ in 0..POLLS {
        let listed = call(oo, Method::GET, LIST, &[auth], "").await;
        if let Some(done) = ops(&listed)
            .into_iter()
            .find(|o| o["id"] == op["id"] && o["finished"] == true)
        {
            return done;
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    panic!("the operation never finished: {op}");
}

/// PUT, then poll until the operation is finished; returns it.
async fn finished_op(oo: &Oo, body: &str) -> Value {
    assert_eq!(bulk(oo, body).await.status, StatusCode::OK);
    for _ in 0..POLLS {
        if let Some(op) = ops(&poll(oo).await)
            .into_iter()
            .find(|op| op["finished"] == true)
        {
            return op;
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    panic!("the operation never finished");
}

#[tokio::test]
async fn bulkdownload_answers_the_callers_operations_in_the_vendors_envelope() {
    let oo = start(&[]).await;
    let reply = bulk(&oo, r#"{"fileIds":["12345",34325],"folderIds":"1004"}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    assert_golden("onlyoffice/bulkdownload-200.json", &reply.body);

    // Progress per poll: floor(100 * steps / (entries + 1)), then finished with the url.
    let first = poll(&oo).await;
    assert_golden("onlyoffice/fileops-progress.json", &first.body);
    let second = poll(&oo).await;
    assert_golden("onlyoffice/fileops-finished.json", &second.body);
    let text = String::from_utf8(second.body.clone()).unwrap();
    assert!(text.contains(r#""url":"http:\/\/zipgate.test\/Products\/Files\/HttpHandlers\/filehandler.ashx?action=bulk&filename="#), "{text}");
    // Listed once when finished, then no more.
    let third = poll(&oo).await;
    assert_golden("onlyoffice/fileops-empty.json", &third.body);

    let op = &ops(&second)[0];
    assert_eq!(
        (op["progress"].as_u64(), op["processed"].as_str()),
        (Some(100), Some("3"))
    );
    let archive = fetch(
        &oo,
        &archive_path(op),
        &[("cookie", "asc_auth_key=alice-token")],
    )
    .await;
    assert_eq!(archive.status, StatusCode::OK);
    assert_eq!(archive.header("content-type"), Some("application/zip"));
    assert_eq!(
        archive.header("content-length"),
        Some(archive.body.len().to_string().as_str())
    );
    assert_eq!(
        archive.header("content-disposition"),
        Some("attachment; filename=portal-download-2025-03-01.zip")
    );
    let expected = [
        (
            "report.pdf".to_string(),
            Some(pdf_bytes(&oo, "file-q1-report")),
        ),
        (
            "report (1).pdf".to_string(),
            Some(pdf_bytes(&oo, "file-q2-report")),
        ),
        ("Empty/".to_string(), None),
    ];
    check_with_readers(&archive.body, &expected);
}

fn pdf_bytes(oo: &Oo, id: &str) -> Vec<u8> {
    let store = oo.server.state().store();
    file_bytes(store.node(&zipgate::api::NodeId::from(id)).unwrap()).unwrap()
}

#[tokio::test]
async fn request_bodies_in_every_form_the_vendor_binds() {
    let oo = start(&[("pacing", "immediate")]).await;
    let cases: [(&str, &str, &str); 6] = [
        (
            "/api/2.0/files/fileops/bulkdownload",
            "application/json",
            r#"{"FileIds":12348}"#,
        ),
        (
            "/api/2.0/files/fileops/bulkdownload.json",
            "application/json",
            r#"{"fileIds":["12348"],"folderIds":[]}"#,
        ),
        (
            "/api/2.0/files/fileops/bulkdownload",
            "text/xml",
            "<request><fileIds>12348</fileIds></request>",
        ),
        (
            "/api/2.0/files/fileops/bulkdownload",
            "application/x-www-form-urlencoded",
            "fileIds[]=12348",
        ),
        (
            "/api/2.0/files/fileops/bulkdownload",
            "application/x-www-form-urlencoded",
            "fileIds[0]=12348",
        ),
        (
            "/api/2.0/files/fileops/bulkdownload?fileIds=12348",
            "application/json",
            "{}",
        ),
    ];
    for (path, content_type, body) in cases {
        let reply = call(
            &oo,
            Method::PUT,
            path,
            &[ALICE, ("content-type", content_type)],
            body,
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{path} {body}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        let op = settled(&oo, &reply, ALICE).await;
        assert_eq!(op["finished"], true, "{body}");
        assert_eq!(op["error"], Value::Null, "{body}");
        let archive = fetch(&oo, &archive_path(&op), &[ALICE]).await;
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive.body)).unwrap();
        assert_eq!(zip.len(), 1);
        assert_eq!(zip.by_index(0).unwrap().name().unwrap(), "notes.md");
    }
}

#[tokio::test]
async fn xml_when_the_path_ends_in_xml_and_the_body_is_not_json() {
    let oo = start(&[]).await;
    let reply = call(
        &oo,
        Method::PUT,
        "/api/2.0/files/fileops/bulkdownload.xml",
        &[
            ("authorization", "alice-token"),
            ("content-type", "text/xml"),
        ],
        "<request><fileIds>12345</fileIds><folderIds>1004</folderIds></request>",
    )
    .await;
    assert_eq!(
        reply.header("content-type"),
        Some("text/xml; charset=UTF-8")
    );
    assert_golden("onlyoffice/bulkdownload-200.xml", &reply.body);
    call(&oo, Method::GET, "/api/2.0/files/fileops.tml", &[ALICE], "").await;
    let finished = call(&oo, Method::GET, "/api/2.0/files/fileops.xml", &[ALICE], "").await;
    assert_golden("onlyoffice/fileops-finished.xml", &finished.body);
    assert_golden(
        "onlyoffice/fileops-empty.xml",
        &call(&oo, Method::GET, "/api/2.0/files/fileops.xml", &[ALICE], "")
            .await
            .body,
    );
    // A JSON body on an .xml path answers JSON.
    let json = call(
        &oo,
        Method::PUT,
        "/api/2.0/files/fileops/bulkdownload.xml",
        &[ALICE, JSON],
        r#"{"fileIds":[]}"#,
    )
    .await;
    assert_eq!(
        json.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    // Errors in XML.
    let error = call(
        &oo,
        Method::PUT,
        "/api/2.0/files/fileops/bulkdownload.xml",
        &[ALICE, ("content-type", "text/xml")],
        "<request><fileIds>1</fileIds><fileIds>1</fileIds></request>",
    )
    .await;
    assert_eq!(error.status, StatusCode::BAD_REQUEST);
    assert_golden("onlyoffice/error-400-duplicate.xml", &error.body);
}

#[tokio::test]
async fn errors_in_the_vendors_envelope() {
    let oo = start(&[("pacing", "polls:5")]).await;
    for (body, status, golden) in [
        (
            r#"{"fileIds":[],"folderIds":[]}"#,
            403,
            "error-403-bad-request.json",
        ),
        ("", 403, "error-403-empty-body.json"),
        (r#"{"fileIds":["7","7"]}"#, 400, "error-400-duplicate.json"),
        (r#"{"fileIds":[1,"#, 400, "error-400-malformed.json"),
        ("[1,2]", 400, "error-400-array-root.json"),
    ] {
        let reply = bulk(&oo, body).await;
        assert_eq!(reply.status.as_u16(), status, "{body}");
        let json = reply.json();
        assert_eq!(
            (json["status"].as_u64(), json["statusCode"].as_u64()),
            (Some(1), Some(status as u64))
        );
        assert_golden(&format!("onlyoffice/{golden}"), &reply.body);
    }
    // A second download while one runs.
    assert_eq!(
        bulk(&oo, r#"{"fileIds":["12348"]}"#).await.status,
        StatusCode::OK
    );
    let reply = bulk(&oo, r#"{"fileIds":["12347"]}"#).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_golden("onlyoffice/error-403-too-many.json", &reply.body);
    // A wrong verb on an API route.
    let reply = call(&oo, Method::DELETE, BULK, &[ALICE], "").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["error"]["message"], "Method not found");
}

#[tokio::test]
async fn unknown_and_unreadable_ids_finish_the_operation_with_an_error() {
    let oo = start(&[("pacing", "immediate")]).await;
    for (user, body, message) in [
        (
            "Bearer alice-token",
            r#"{"fileIds":["999"],"folderIds":["1004"]}"#,
            None,
        ),
        (
            "Bearer alice-token",
            r#"{"fileIds":["999"]}"#,
            Some("The required file was not found"),
        ),
        (
            "Bearer alice-token",
            r#"{"folderIds":["999"]}"#,
            Some("The required folder was not found"),
        ),
        (
            "Bearer bob-token",
            r#"{"folderIds":["1006"]}"#,
            Some("The required folder was not found"),
        ),
    ] {
        let reply = call(
            &oo,
            Method::PUT,
            BULK,
            &[("authorization", user), JSON],
            body,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{body}");
        // The PUT shows it queued; the next poll reports how it ended.
        assert_eq!(ops(&reply)[0]["finished"], false, "{body}");
        assert_eq!(ops(&reply)[0]["error"], Value::Null, "{body}");
        let op = settled(&oo, &reply, ("authorization", user)).await;
        assert_eq!(op["finished"], true);
        match message {
            Some(message) => {
                assert_eq!(op["error"], message, "{body}");
                assert_eq!(op["url"], Value::Null);
            }
            None => assert!(
                op["url"].is_string(),
                "the empty folder alone still makes an archive"
            ),
        }
    }
    let reply = call(
        &oo,
        Method::PUT,
        BULK,
        &[("authorization", "Bearer bob-token"), JSON],
        r#"{"fileIds":["999"]}"#,
    )
    .await;
    assert_golden("onlyoffice/bulkdownload-queued.json", &reply.body);
    let listed = call(
        &oo,
        Method::GET,
        LIST,
        &[("authorization", "Bearer bob-token")],
        "",
    )
    .await;
    assert_golden("onlyoffice/bulkdownload-not-found.json", &listed.body);
    // Reported once, then dropped.
    let again = call(
        &oo,
        Method::GET,
        LIST,
        &[("authorization", "Bearer bob-token")],
        "",
    )
    .await;
    assert!(ops(&again).is_empty());
}

#[tokio::test]
async fn terminate_cancels_the_callers_operations() {
    let oo = start(&[("pacing", "polls:5")]).await;
    bulk(&oo, r#"{"folderIds":["1002"]}"#).await;
    poll(&oo).await;
    let reply = call(
        &oo,
        Method::PUT,
        "/api/2.0/files/fileops/terminate",
        &[ALICE],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Workspace answers at once with the list as it was; the cancel is
    // reported by the next poll, once.
    let op = &ops(&reply)[0];
    assert_eq!(
        (&op["finished"], &op["error"]),
        (&json!(false), &Value::Null)
    );
    let listed = poll(&oo).await;
    assert_golden("onlyoffice/terminate-200.json", &listed.body);
    let op = &ops(&listed)[0];
    assert_eq!(op["error"], "The operation was canceled");
    assert_eq!(op["finished"], true);
    assert!(ops(&poll(&oo).await).is_empty());
    // Terminated and reported: a new download may start.
    assert_eq!(
        bulk(&oo, r#"{"fileIds":["12348"]}"#).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn pacing_on_the_clock() {
    let oo = start(&[("pacing", "seconds:10")]).await;
    bulk(&oo, r#"{"fileIds":["12348","12347"]}"#).await;
    oo.clock.advance(Duration::seconds(5));
    let op = &ops(&poll(&oo).await)[0];
    assert_eq!(
        (op["progress"].as_u64(), op["finished"].as_bool()),
        (Some(33), Some(false))
    );
    oo.clock.advance(Duration::seconds(5));
    assert_eq!(ops(&poll(&oo).await)[0]["finished"], true);
}

#[tokio::test]
async fn one_folder_alone_is_its_own_archive_with_contents_at_the_root() {
    let fixture = r#"{"users":[{"id":"u","token":"t"}],"nodes":[
        {"id":"f","name":"Überblick 2024","ids":{"onlyoffice":"77"},"children":[
          {"id":"a","name":"a.txt","content":{"text":"A"}},
          {"id":"e","name":"Leer","type":"folder"},
          {"id":"s","name":"sub","children":[{"id":"b","name":"b.txt","content":{"text":"B"}}]}]}]}"#;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2025, 3, 1, 10, 0, 0).unwrap(),
    ));
    let server = common::builder()
        .fixtures_json(fixture)
        .unwrap()
        .clock(clock.clone())
        .setting("onlyoffice", "pacing", "immediate")
        .spawn()
        .await
        .unwrap();
    let oo = Clocked { server, clock };
    let reply = call(
        &oo,
        Method::PUT,
        BULK,
        &[("authorization", "t"), JSON],
        r#"{"folderIds":["77"]}"#,
    )
    .await;
    let op = settled(&oo, &reply, ("authorization", "t")).await;
    let archive = fetch(&oo, &archive_path(&op), &[("authorization", "t")]).await;
    assert_eq!(
        archive.headers["content-disposition"].as_bytes(),
        "attachment; filename=\"Überblick 2024.zip\"; filename*=UTF-8''%C3%9Cberblick%202024.zip"
            .as_bytes()
    );
    assert_eq!(
        zip_entry_names(&archive.body),
        ["a.txt", "Leer/", "sub/b.txt"]
    );
}

#[tokio::test]
async fn an_unreadable_sub_folder_is_left_out_not_fatal() {
    // Bob may read Alice's home (1001) but not its Private folder (1006):
    // the vendor filters the sub-folder and packs the rest, on both flavours.
    for flavour in ["workspace", "docspace"] {
        let oo = start(&[("flavour", flavour), ("pacing", "immediate")]).await;
        let bob = ("authorization", "Bearer bob-token");
        let reply = call(
            &oo,
            Method::PUT,
            BULK,
            &[bob, JSON],
            r#"{"folderIds":["1001"]}"#,
        )
        .await;
        let op = settled(&oo, &reply, bob).await;
        assert_eq!(op["error"].as_str().unwrap_or(""), "", "{flavour}: {op}");
        let archive = fetch(&oo, &archive_path(&op), &[bob]).await;
        assert_eq!(archive.status, StatusCode::OK, "{flavour}");
        let names = zip_entry_names(&archive.body);
        assert!(
            names.iter().any(|n| n.ends_with("notes.md")),
            "{flavour}: {names:?}"
        );
        assert!(
            !names
                .iter()
                .any(|n| n.contains("Private") || n.contains("salary")),
            "{flavour}: {names:?}"
        );
    }
}

#[tokio::test]
async fn docspace_takes_a_file_id_twice_and_fails_the_operation_silently() {
    let oo = start(&[("flavour", "docspace"), ("pacing", "immediate")]).await;
    let reply = bulk(&oo, r#"{"fileIds":[12348,"12348"]}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    let op = ops(&reply)[0].clone();
    assert_eq!(
        (&op["status"], &op["finished"], &op["error"]),
        (&json!(0), &json!(false), &json!(""))
    );
    // The job's constructor throws: listed once as failed, unfinished, no message.
    let listed = ops(&poll(&oo).await)[0].clone();
    assert_eq!(listed["id"], op["id"]);
    assert_eq!(
        (
            &listed["status"],
            &listed["finished"],
            &listed["error"],
            &listed["progress"]
        ),
        (&json!(4), &json!(false), &json!(""), &json!(100))
    );
    assert!(listed.get("url").is_none());
    assert!(ops(&poll(&oo).await).is_empty());
    // A folder twice is harmless there; Workspace refuses either in the API.
    let reply = bulk(&oo, r#"{"folderIds":[1004,1004]}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    let workspace = start(&[]).await;
    assert_eq!(
        bulk(&workspace, r#"{"fileIds":["12348","12348"]}"#)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn docspace_refuses_a_selection_with_nothing_readable_before_queuing() {
    let oo = start(&[("flavour", "docspace"), ("pacing", "immediate")]).await;
    let reply = bulk(&oo, r#"{"fileIds":[999],"folderIds":[1004]}"#).await;
    assert_eq!(reply.status, StatusCode::OK, "a readable item is enough");
    let oo = start(&[("flavour", "docspace"), ("pacing", "immediate")]).await;
    let reply = bulk(&oo, r#"{"fileIds":[999]}"#).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_golden("onlyoffice/docspace-error-404-file.json", &reply.body);
    let bob = ("authorization", "Bearer bob-token");
    let reply = call(
        &oo,
        Method::PUT,
        BULK,
        &[bob, JSON],
        r#"{"folderIds":[1006]}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let error = &reply.json()["error"];
    assert_eq!(error["type"], "System.IO.DirectoryNotFoundException");
    assert_eq!(error["message"], "The required folder was not found");
    // Nothing was queued.
    assert_eq!(ops(&poll(&oo).await).len(), 0);
}

#[tokio::test]
async fn a_nested_selection_is_packed_at_each_path() {
    // 12345 (report.pdf) lies in folder 45678 (Q1), which lies in 1003
    // (Reports): each selection is packed at its own path, as the vendor's
    // path-keyed entries do.
    for flavour in ["workspace", "docspace"] {
        let oo = start(&[("flavour", flavour), ("pacing", "immediate")]).await;
        let body = r#"{"fileIds":["12345"],"folderIds":["45678","1003"]}"#;
        let names = archive_names(&oo, body, flavour).await;
        assert_has(
            &names,
            &[
                "report.pdf",
                "Q1/report.pdf",
                "Reports/Q1/report.pdf",
                "Reports/Q2/report.pdf",
            ],
            flavour,
        );
        // DocSpace writes every folder it walked; Community Server only empty ones.
        let dir = names.iter().any(|n| n == "Reports/Q1/");
        assert_eq!(dir, flavour == "docspace", "{flavour}: {names:?}");
    }
}

#[tokio::test]
async fn same_title_folders_merge_and_clashes_number_the_whole_path() {
    let tree = serde_json::json!({
        "users": [{"id": "alice", "token": "alice-token"}],
        "nodes": [{"id": "home", "name": "Home", "owner": "alice", "children": [
            {"id": "r1", "name": "Reports", "ids": {"onlyoffice": "61"}, "children": [
                {"id": "a1", "name": "README", "content": {"text": "1"}},
                {"id": "e1", "name": ".env", "content": {"text": "1"}},
                {"id": "t1", "name": "a.tar.gz", "content": {"text": "1"}}]},
            {"id": "other", "name": "Other", "children": [
                {"id": "r2", "name": "Reports", "ids": {"onlyoffice": "62"}, "children": [
                    {"id": "a2", "name": "README", "content": {"text": "2"}},
                    {"id": "e2", "name": ".env", "content": {"text": "2"}},
                    {"id": "t2", "name": "a.tar.gz", "content": {"text": "2"}}]},
                {"id": "deep", "name": "x".repeat(120), "ids": {"onlyoffice": "64"}, "children": [
                    {"id": "deeper", "name": "y".repeat(90), "children": [
                        {"id": "f", "name": "far.txt", "content": {"text": "far"}}]}]}]},
            {"id": "v", "name": "v1.0", "ids": {"onlyoffice": "63"}, "children": [
                {"id": "b1", "name": "README", "content": {"text": "1"}},
                {"id": "b2", "name": "README", "content": {"text": "2"}}]}]}]
    });
    for flavour in ["workspace", "docspace"] {
        let oo = start(&[("flavour", flavour), ("pacing", "immediate")]).await;
        oo.server.load_fixtures(tree.clone()).unwrap();
        let body = r#"{"folderIds":["61","62","63","64"]}"#;
        let names = archive_names(&oo, body, flavour).await;
        assert_has(
            &names,
            &[
                "Reports/README",
                "Reports/README (1)",
                "Reports/.env",
                "Reports/ (1).env",
                "Reports/a.tar.gz",
                "Reports/a.tar (1).gz",
                "v1.0/README",
                "v1 (1).0/README",
            ],
            flavour,
        );
        assert!(
            !names.iter().any(|n| n.starts_with("Reports (1)")),
            "{flavour}: {names:?}"
        );
        // Over 200 characters: Community Server's LONG_FOLDER_NAME/<file>.
        let long = names.iter().any(|n| n == "LONG_FOLDER_NAME/far.txt");
        assert_eq!(long, flavour == "workspace", "{flavour}: {names:?}");
    }
}

#[tokio::test]
async fn converted_files_take_the_target_extension() {
    // DocSpace's Download dialog sends objects inside `fileIds`; both
    // flavours take `fileConvertIds`. The entry is renamed to the target
    // extension (zipgate converts no bytes).
    let docspace = start(&[("flavour", "docspace"), ("pacing", "immediate")]).await;
    let body = r#"{"fileIds":[{"key":12348,"value":".txt"},{"key":"12347","value":".docx"}],"folderIds":[1004],"returnSingleOperation":true}"#;
    assert_eq!(
        archive_names(&docspace, body, "docspace").await,
        ["Empty/", "notes.txt", "Überblick – 日本語.docx"]
    );

    for flavour in ["workspace", "docspace"] {
        let oo = start(&[("flavour", flavour), ("pacing", "immediate")]).await;
        let body = r#"{"fileConvertIds":[{"key":"12348","value":".pdf"}],"fileIds":["12345"]}"#;
        let names = archive_names(&oo, body, flavour).await;
        assert_eq!(names, ["notes.pdf", "report.pdf"], "{flavour}");
    }
    // Workspace reads `fileIds` as plain ids only: an object there is no id.
    let oo = start(&[("pacing", "immediate")]).await;
    let body = r#"{"fileIds":[{"key":"12348","value":".pdf"}],"folderIds":["45678"]}"#;
    // One folder alone: its contents at the root, and no notes.
    assert_eq!(
        archive_names(&oo, body, "workspace").await,
        ["report.pdf", "summary.txt"]
    );
}

#[tokio::test]
async fn the_archive_handler_serves_ranges_and_refuses_strangers() {
    // Stored, so the 64 MiB archive is not deflated once per request here;
    // ranges over a deflated archive have their own test.
    let oo = start(&[("compression", "store")]).await;
    let op = finished_op(&oo, r#"{"folderIds":["1005"]}"#).await;
    let path = archive_path(&op);
    let full = fetch(&oo, &path, &[("cookie", "asc_auth_key=alice-token")]).await;
    let total = full.body.len();
    assert!(total > 64 << 20);
    // Resume from the middle: the same bytes.
    let start = total / 2;
    let part = fetch(&oo, &path, &[ALICE, ("range", &format!("bytes={start}-"))]).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.header("content-range"),
        Some(format!(" bytes {start}-{}/{total}", total - 1).trim_start())
    );
    assert!(part.body == full.body[start..]);
    // HTTP clients strip the space the vendor writes before `bytes`; the raw response keeps it.
    let raw = raw_head(&oo, &path, &format!("bytes={start}-")).await;
    assert!(
        raw.contains(&format!("content-range:  bytes {start}-")),
        "{raw}"
    );

    let anonymous = fetch(&oo, &path, &[]).await;
    assert_eq!(
        (anonymous.status, anonymous.body.len()),
        (StatusCode::FORBIDDEN, 0)
    );
    let bob = fetch(&oo, &path, &[("authorization", "Bearer bob-token")]).await;
    assert_eq!((bob.status, bob.body.len()), (StatusCode::NOT_FOUND, 0));
    let unknown = fetch(
        &oo,
        "/Products/Files/HttpHandlers/filehandler.ashx?action=bulk&filename=bm9wZQ%3D%3D",
        &[ALICE],
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.body.len()),
        (StatusCode::NOT_FOUND, 0)
    );
    // What ProcessRangeHeader cannot read is BulkDownloadFile's HttpException(400).
    for range in [
        format!("bytes={total}-"),
        "bytes=-500".into(),
        "bytes=0-1,5-6".into(),
    ] {
        let reply = fetch(&oo, &path, &[ALICE, ("range", &range)]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{range}");
    }
    // No Range: no Accept-Ranges. A range covering everything: 200, with both headers.
    assert_eq!(full.header("accept-ranges"), None);
    let whole = fetch(&oo, &path, &[ALICE, ("range", "bytes=0-")]).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        whole.header("content-range"),
        Some(format!("bytes 0-{}/{total}", total - 1).as_str())
    );
    // The handler knows the header and the cookie only; a query key is not a session.
    let query = fetch(&oo, &format!("{path}&asc_auth_key=alice-token"), &[]).await;
    assert_eq!(query.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn docspace_archive_ranges_as_its_handler_reads_them() {
    let oo = start(&[
        ("flavour", "docspace"),
        ("pacing", "immediate"),
        ("compression", "store"),
    ])
    .await;
    let reply = bulk(&oo, r#"{"folderIds":[1005]}"#).await;
    let op = settled(&oo, &reply, ALICE).await;
    let path = archive_path(&op);
    let full = fetch(&oo, &path, &[ALICE]).await;
    let total = full.body.len();
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    let whole = fetch(&oo, &path, &[ALICE, ("range", "bytes=0-")]).await;
    assert_eq!(
        (whole.status, whole.header("content-range")),
        (StatusCode::OK, None)
    );
    let part = fetch(&oo, &path, &[ALICE, ("range", "bytes=0-9")]).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body.len(), 10);
    let beyond = fetch(&oo, &path, &[ALICE, ("range", &format!("bytes={total}-"))]).await;
    assert_eq!(beyond.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        beyond.json()["error"]["type"],
        "ASC.Common.Web.HttpException"
    );

    // A lone non-ASCII file: ContentDispositionUtil encodes the plain name too.
    let reply = bulk(&oo, r#"{"fileIds":[12347]}"#).await;
    let op = settled(&oo, &reply, ALICE).await;
    let file = fetch(&oo, &archive_path(&op), &[ALICE]).await;
    let encoded = "%C3%9Cberblick%20%E2%80%93%20%E6%97%A5%E6%9C%AC%E8%AA%9E.txt";
    assert_eq!(
        file.header("content-disposition"),
        Some(format!("attachment; filename=\"{encoded}\"; filename*=UTF-8''{encoded}").as_str())
    );
    // A wrong verb: endpoint routing's 405 with an empty body.
    let reply = call(&oo, Method::DELETE, BULK, &[ALICE], "").await;
    assert_eq!(
        (reply.status, reply.body.len()),
        (StatusCode::METHOD_NOT_ALLOWED, 0)
    );
    assert_eq!(reply.header("allow"), Some("PUT"));
}

#[tokio::test]
async fn the_v11_link_without_filename_is_a_404_unless_asked_for() {
    let link = "/Products/Files/HttpHandlers/filehandler.ashx?action=bulk&ext=.zip";
    let oo = start(&[]).await;
    finished_op(&oo, r#"{"fileIds":["12348"]}"#).await;
    let reply = fetch(&oo, link, &[ALICE]).await;
    assert_eq!((reply.status, reply.body.len()), (StatusCode::NOT_FOUND, 0));
    let oo = start(&[("bulk_link_v11", "true")]).await;
    finished_op(&oo, r#"{"fileIds":["12348"]}"#).await;
    let reply = fetch(&oo, link, &[ALICE]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(zip_entry_names(&reply.body), ["notes.md"]);
}

#[tokio::test]
async fn workspace_tries_the_header_before_a_stale_cookie() {
    let oo = start(&[("pacing", "immediate")]).await;
    let stale = ("cookie", "asc_auth_key=expired");
    for (headers, path) in [
        (vec![stale, ALICE], LIST.to_owned()),
        (vec![stale], format!("{LIST}?asc_auth_key=alice-token")),
        (
            vec![("cookie", "asc_auth_key=alice-token")],
            format!("{LIST}?asc_auth_key=stale"),
        ),
    ] {
        let reply = call(&oo, Method::GET, &path, &headers, "").await;
        assert_eq!(reply.status, StatusCode::OK, "{headers:?} {path}");
    }
    // The realm is the host without its port (`Uri.Host`).
    let reply = call(
        &oo,
        Method::GET,
        LIST,
        &[
            ("authorization", "Bearer nope"),
            ("host", "portal.example:8080"),
        ],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Basic Realm=\"portal.example\"")
    );
}

#[tokio::test]
async fn docspace_runs_fileops_as_a_guest_without_a_valid_token() {
    let oo = start(&[("flavour", "docspace"), ("pacing", "polls:3")]).await;
    assert_eq!(
        bulk(&oo, r#"{"folderIds":[1002]}"#).await.status,
        StatusCode::OK
    );
    let guest = ("authorization", "Bearer nope");
    // [AllowAnonymous]: no 401; a guest owns no operations and may download nothing.
    for (method, path) in [
        (Method::GET, LIST.to_owned()),
        (Method::GET, format!("{LIST}/Download")),
        (Method::PUT, format!("{LIST}/terminate")),
    ] {
        for headers in [vec![], vec![guest]] {
            let reply = call(&oo, method.clone(), &path, &headers, "").await;
            assert_eq!(reply.status, StatusCode::OK, "{method} {path} {headers:?}");
            assert!(ops(&reply).is_empty(), "{method} {path}: {}", reply.json());
        }
    }
    let reply = call(
        &oo,
        Method::PUT,
        BULK,
        &[guest, JSON],
        r#"{"folderIds":[1002]}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.json()["error"]["type"],
        "System.IO.DirectoryNotFoundException"
    );
    let reply = call(
        &oo,
        Method::PUT,
        BULK,
        &[guest, JSON],
        r#"{"fileIds":[],"folderIds":[]}"#,
    )
    .await;
    assert_eq!((reply.status, ops(&reply).len()), (StatusCode::OK, 0));
    // A non-JWT bearer goes to the cookie handler, which reads a stale cookie
    // first: the caller is a guest. Basic has its own handler.
    let stale = ("cookie", "asc_auth_key=expired");
    let reply = call(&oo, Method::GET, LIST, &[stale, ALICE], "").await;
    assert!(ops(&reply).is_empty(), "{}", reply.json());
    let basic = format!(
        "Basic {}",
        base64_encode("alice@example.com:alice-password")
    );
    let reply = call(
        &oo,
        Method::GET,
        LIST,
        &[stale, ("authorization", basic.as_str())],
        "",
    )
    .await;
    assert_eq!(ops(&reply).len(), 1, "{}", reply.json());
}

#[tokio::test]
async fn every_way_the_vendor_authenticates() {
    let oo = start(&[("pacing", "immediate")]).await;
    let basic = format!(
        "Basic {}",
        base64_encode("alice@example.com:alice-password")
    );
    for (header, value, path) in [
        ("authorization", "alice-token", LIST),
        ("authorization", "Bearer alice-token", LIST),
        ("authorization", basic.as_str(), LIST),
        ("cookie", "other=1; asc_auth_key=alice-token", LIST),
        (
            "x-none",
            "",
            "/api/2.0/files/fileops?asc_auth_key=alice-token",
        ),
    ] {
        let reply = call(&oo, Method::GET, path, &[(header, value)], "").await;
        assert_eq!(reply.status, StatusCode::OK, "{header}: {value}");
    }
    let reply = call(
        &oo,
        Method::PUT,
        BULK,
        &[("content-type", "application/x-www-form-urlencoded")],
        "asc_auth_key=alice-token&fileIds=12348",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "asc_auth_key as a form field");

    let reply = call(
        &oo,
        Method::GET,
        LIST,
        &[("authorization", "Bearer nope")],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body, b"Unauthorized");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Basic Realm=\"zipgate.test\"")
    );
    let reply = call(&oo, Method::PUT, BULK, &[JSON], "{").await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "auth is checked before the body"
    );
    assert_eq!(reply.header("www-authenticate"), None);
}

/// The response head as it crossed the wire.
async fn raw_head(oo: &Oo, path: &str, range: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(oo.server.addr())
        .await
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer alice-token\r\nRange: {range}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0);
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn base64_encode(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn logging_in_returns_a_token_and_sets_the_cookie() {
    let oo = start(&[]).await;
    let reply = call(
        &oo,
        Method::POST,
        "/api/2.0/authentication.json",
        &[JSON],
        r#"{"userName":"alice@example.com","password":"alice-password"}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        reply.header("set-cookie"),
        Some("asc_auth_key=alice-token; path=/; HttpOnly")
    );
    assert_golden("onlyoffice/authentication-201.json", &reply.body);
    let reply = call(
        &oo,
        Method::POST,
        "/api/2.0/authentication",
        &[JSON],
        r#"{"userName":"alice@example.com","password":"no"}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.json()["error"]["message"],
        "User authentication failed"
    );
    // AuthenticationException is a SystemException: COR_E_SYSTEM.
    assert_eq!(reply.json()["error"]["hresult"], -2146233087);
}

#[tokio::test]
async fn the_documentation_pages_style_by_setting() {
    let oo = start(&[("style", "docs"), ("pacing", "immediate")]).await;
    let reply = bulk(&oo, r#"{"fileIds":["12348"]}"#).await;
    let json = reply.json();
    assert!(json.get("count").is_none() && json.get("statusCode").is_none());
    assert_eq!(json["response"][0]["error"], "");
    let xml = call(&oo, Method::GET, "/api/2.0/files/fileops.xml", &[ALICE], "").await;
    assert_eq!(xml.status, StatusCode::OK);
    let reply = call(
        &oo,
        Method::PUT,
        "/api/2.0/files/fileops/bulkdownload.xml",
        &[ALICE, ("content-type", "text/xml")],
        "<r><fileIds>12347</fileIds></r>",
    )
    .await;
    let text = String::from_utf8(reply.body).unwrap();
    assert!(text.contains("<finished>False</finished>"), "{text}");
    assert_golden("onlyoffice/docs-style-bulkdownload.xml", text.as_bytes());
    let polled = call(&oo, Method::GET, "/api/2.0/files/fileops.xml", &[ALICE], "").await;
    let text = String::from_utf8(polled.body).unwrap();
    assert!(text.contains("<finished>True</finished>"), "{text}");
}

// ---- DocSpace ----

#[tokio::test]
async fn docspace_envelopes_routes_and_single_files() {
    let oo = start(&[("flavour", "docspace")]).await;
    let reply = bulk(&oo, r#"{"fileIds":[12345],"folderIds":[1004]}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_golden("onlyoffice/docspace-bulkdownload-200.json", &reply.body);
    let op_id = reply.json()["response"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(reply.json()["response"][0]["Operation"], 3);

    // A second download while one runs is refused (CheckRunning comes first, even for empty lists).
    let reply = bulk(&oo, r#"{"fileIds":[12348]}"#).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_golden("onlyoffice/docspace-error-403.json", &reply.body);
    assert_eq!(
        bulk(&oo, r#"{"fileIds":[],"folderIds":[]}"#).await.status,
        StatusCode::FORBIDDEN
    );

    let by_id = call(
        &oo,
        Method::GET,
        &format!("{LIST}?id={op_id}"),
        &[ALICE],
        "",
    )
    .await;
    assert_eq!(ops(&by_id).len(), 1);
    let by_type = call(&oo, Method::GET, &format!("{LIST}/Download"), &[ALICE], "").await;
    let op = ops(&by_type)[0].clone();
    // Nothing running now: empty lists are not an error in DocSpace, just a listing.
    let reply = bulk(&oo, r#"{"fileIds":[],"folderIds":[]}"#).await;
    assert_eq!((reply.status, ops(&reply).len()), (StatusCode::OK, 0));
    assert_eq!(op["finished"], true);
    // Nulls are omitted, but `error` starts as "" and stays so on success.
    assert_eq!(op["error"], "");
    assert!(op.get("files").is_none(), "nulls are omitted");
    let url = op["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "http://{HOST}/filehandler.ashx?action=bulk&filename="
        )),
        "{url}"
    );
    let archive = fetch(
        &oo,
        url.strip_prefix(&format!("http://{HOST}")).unwrap(),
        &[ALICE],
    )
    .await;
    assert_eq!(archive.header("content-type"), Some("application/zip"));

    // One file alone is served as itself.
    let reply = call(
        &oo,
        Method::PUT,
        BULK,
        &[ALICE, JSON],
        r#"{"fileIds":[12348],"returnSingleOperation":true}"#,
    )
    .await;
    assert_eq!(ops(&reply).len(), 1);
    call(&oo, Method::GET, LIST, &[ALICE], "").await;
    let op = ops(&call(&oo, Method::GET, LIST, &[ALICE], "").await)[0].clone();
    let file = fetch(
        &oo,
        op["url"]
            .as_str()
            .unwrap()
            .strip_prefix(&format!("http://{HOST}"))
            .unwrap(),
        &[ALICE],
    )
    .await;
    assert_eq!(file.header("content-type"), Some("text/plain"));
    assert_eq!(
        file.header("content-disposition"),
        Some("attachment; filename=notes.md")
    );
    assert!(file.body.starts_with(b"# Notes"));

    // Terminate one operation by id; suffixed paths do not exist in DocSpace.
    bulk(&oo, r#"{"folderIds":[1002]}"#).await;
    let id = ops(&poll(&oo).await)[0]["id"].as_str().unwrap().to_owned();
    let _ = id;
    let reply = call(
        &oo,
        Method::GET,
        "/api/2.0/files/fileops.json",
        &[ALICE],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn docspace_terminates_one_operation_by_id() {
    let oo = start(&[("flavour", "docspace"), ("pacing", "polls:5")]).await;
    let reply = bulk(&oo, r#"{"folderIds":[1002]}"#).await;
    let id = reply.json()["response"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = call(
        &oo,
        Method::PUT,
        &format!("/api/2.0/files/fileops/terminate/{id}"),
        &[ALICE],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    // DocSpace dequeues it and writes no message: the answer lists the
    // caller's remaining operations, and no poll shows it again.
    assert!(ops(&reply).is_empty(), "{}", reply.json());
    assert!(ops(&poll(&oo).await).is_empty());
    assert_eq!(
        bulk(&oo, r#"{"fileIds":[12348]}"#).await.status,
        StatusCode::OK
    );
    let _ = Bytes::new();
}

#[tokio::test]
async fn one_request_may_pick_the_other_flavour_by_header() {
    let oo = start(&[]).await;
    let reply = call(
        &oo,
        Method::PUT,
        BULK,
        &[ALICE, JSON, ("x-zipgate-onlyoffice-flavour", "docspace")],
        r#"{"fileIds":[12348]}"#,
    )
    .await;
    assert!(reply.json().get("links").is_some(), "a DocSpace envelope");
    assert_eq!(reply.json()["response"][0]["Operation"], 3);
    let reply = poll(&oo).await;
    assert!(
        reply.json().get("links").is_none(),
        "Workspace again without the header"
    );
}

/// Each local header's name, general-purpose flags and method, read at the
/// offsets the central directory gives.
fn local_headers(archive: &[u8]) -> Vec<(String, u16, u16)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).expect("a zip");
    (0..zip.len())
        .map(|i| {
            let entry = zip.by_index_raw(i).unwrap();
            let at = entry.header_start() as usize;
            let word = |k: usize| u16::from_le_bytes([archive[at + k], archive[at + k + 1]]);
            (entry.name().unwrap().to_string(), word(6), word(8))
        })
        .collect()
}

#[tokio::test]
async fn the_archive_is_deflated_with_utf8_names_yet_has_a_length_and_ranges() {
    for flavour in ["workspace", "docspace"] {
        let oo = start(&[("flavour", flavour)]).await;
        let reply = bulk(&oo, r#"{"folderIds":["1002"]}"#).await;
        let op = settled(&oo, &reply, ALICE).await;
        let path = archive_path(&op);
        let full = fetch(&oo, &path, &[ALICE]).await;
        assert_eq!(full.status, StatusCode::OK, "{flavour}");
        // Built ahead, as the vendor's stored file: an exact length.
        assert_eq!(
            full.header("content-length"),
            Some(full.body.len().to_string().as_str()),
            "{flavour}"
        );
        let headers = local_headers(&full.body);
        for (name, flags, method) in &headers {
            // SharpZipLib's ZipEntry: IsUnicodeText on every name, sizes
            // patched into the local header (no data descriptor, bit 3).
            assert_eq!(flags & 0x0800, 0x0800, "{flavour} {name}: UTF-8 flag");
            assert_eq!(flags & 0x0008, 0, "{flavour} {name}: no descriptor");
            // Folders are stored; every file here deflates (none is of
            // a type `--store-ext` keeps stored).
            let want = if name.ends_with('/') { 0 } else { 8 };
            assert_eq!(*method, want, "{flavour} {name}: method");
        }
        assert!(headers.iter().any(|(name, ..)| name.ends_with("notes.md")));
        // Ranges over the deflated archive are the same bytes.
        for start in [1usize, 30, full.body.len() / 2, full.body.len() - 1] {
            let part = fetch(&oo, &path, &[ALICE, ("range", &format!("bytes={start}-"))]).await;
            assert_eq!(
                part.status,
                StatusCode::PARTIAL_CONTENT,
                "{flavour} {start}"
            );
            assert!(part.body == full.body[start..], "{flavour} from {start}");
        }
        let names = zip_entry_names(&full.body);
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&full.body[..])).unwrap();
        let expected: Vec<(String, Option<Vec<u8>>)> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut entry = zip.by_index(i).unwrap();
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
                (name.clone(), (!name.ends_with('/')).then_some(bytes))
            })
            .collect();
        check_with_readers(&full.body, &expected);
    }
}

#[tokio::test]
async fn workspace_reads_json_as_json_net_does_and_docspace_strictly() {
    // Json.NET's JsonTextReader (DeserializeXNode in ApiArgumentBuilder.cs):
    // single quotes, unquoted names, comments, trailing commas, a BOM; a
    // repeated member is a repeated element, so both lists count.
    let lenient = [
        "{'folderIds': ['1002',], /* files: */ fileIds: [],}",
        "\u{feff}{folderIds: [1002] // the Documents folder\n}",
        r#"{"folderIds":[1002],"FolderIds":[2001]}"#,
    ];
    let oo = start(&[("pacing", "immediate")]).await;
    for body in lenient {
        let reply = bulk(&oo, body).await;
        let op = settled(&oo, &reply, ALICE).await;
        assert!(op["url"].is_string(), "{body}: {op}");
        assert_eq!(op["error"], Value::Null, "{body}");
    }
    let both = bulk(&oo, lenient[2]).await;
    let op = settled(&oo, &both, ALICE).await;
    let archive = fetch(&oo, &archive_path(&op), &[ALICE]).await;
    let names = zip_entry_names(&archive.body);
    assert!(
        names.iter().any(|n| n.starts_with("Documents/")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("Shared with everyone/")),
        "{names:?}"
    );
    // Text after the object: JsonConvert checks for additional content.
    let reply = bulk(&oo, r#"{"folderIds":[1002]} x"#).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with("Additional text encountered after finished reading JSON content: x."),
        "{message}"
    );

    // DocSpace binds with System.Text.Json's defaults: strict RFC 8259.
    let oo = start(&[("flavour", "docspace"), ("pacing", "immediate")]).await;
    for body in &lenient[..2] {
        let reply = bulk(&oo, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
    }
}

#[tokio::test]
async fn same_named_archives_share_one_url_that_serves_the_newest() {
    // FileDownloadOperation.cs (both servers): the archive is stored as
    // `{user}\{name}`, replacing one of the same name, and the URL carries
    // the deterministically encrypted name.
    for flavour in ["workspace", "docspace"] {
        let oo = start(&[("flavour", flavour), ("pacing", "immediate")]).await;
        let first = settled(
            &oo,
            &bulk(&oo, r#"{"fileIds":["12346","12348"]}"#).await,
            ALICE,
        )
        .await;
        let second = settled(
            &oo,
            &bulk(&oo, r#"{"fileIds":["12347","22001"]}"#).await,
            ALICE,
        )
        .await;
        assert_eq!(
            first["url"], second["url"],
            "{flavour}: a multi-item download a day"
        );
        let archive = fetch(&oo, &archive_path(&first), &[ALICE]).await;
        assert_eq!(archive.status, StatusCode::OK, "{flavour}");
        let mut names = zip_entry_names(&archive.body);
        names.sort();
        assert_eq!(
            names,
            ["readme.txt", "Überblick – 日本語.txt"],
            "{flavour}: the first URL serves the second archive"
        );
        // One folder alone is named after it: same title, same URL.
        let folder = settled(&oo, &bulk(&oo, r#"{"folderIds":["45678"]}"#).await, ALICE).await;
        let again = settled(&oo, &bulk(&oo, r#"{"folderIds":["45678"]}"#).await, ALICE).await;
        assert_eq!(folder["url"], again["url"], "{flavour}");
        assert_ne!(folder["url"], first["url"], "{flavour}");
        // Another user holding no archive of that name finds nothing there.
        let bob = fetch(
            &oo,
            &archive_path(&first),
            &[("authorization", "Bearer bob-token")],
        )
        .await;
        assert_eq!(bob.status, StatusCode::NOT_FOUND, "{flavour}");
    }
}
