//! Oracle Content Management's folder bulk download over real HTTP, the
//! envelopes pinned in `tests/golden/oracle/`.

mod common;

use chrono::Duration;
use common::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};

const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");
const BOB: (&str, &str) = ("authorization", "Bearer bob-token");
const HOME: &str = "F081AA4AE9BF971FF6DDF03ECBD90A4FA3405930D830";
const DOCUMENTS: &str = "FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D";
const NOTES: &str = "DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813";
const EMPTY: &str = "FE27E70CA140E819250B4D365F48D86BC9097E77B3EE";
const OVERVIEW: &str = "D890E0ADF2EB12AAD28D14372E82C5967A21F51BF794";
const Q1_REPORT: &str = "D3E31D2ABA688603CF50EBCCE0295CADCD2936754A5F";
const MEDIA: &str = "F03D30B3E0273DA296FFFEDD2748713B4B9A54D93909";
const PRIVATE: &str = "F2591E4C30FEDE9CF7E81892605450A957D719008D79";

async fn create(s: &Clocked, auth: (&str, &str), folder: &str, ids: &[&str]) -> Reply {
    let body = json!({ "idList": ids.join(",") }).to_string();
    let path = format!("/documents/api/1.2/folders/{folder}/_download");
    call(
        s,
        Method::POST,
        &path,
        &[auth, ("content-type", "application/json")],
        &body,
    )
    .await
}

/// The job's path from a create answer's `Location`.
fn job_path(reply: &Reply) -> String {
    let location = reply.json()["Location"].as_str().unwrap().to_owned();
    location
        .strip_prefix(&format!("http://{HOST}"))
        .unwrap()
        .to_owned()
}

fn assert_oracle_error(reply: &Reply, status: u16, code: &str, golden: Option<&str>) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["errorCode"], code);
    assert_eq!(
        body["type"],
        "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html"
    );
    assert_eq!(body["title"], body["errorMessage"]);
    if let Some(name) = golden {
        assert_golden(&format!("oracle/{name}"), &reply.body);
    }
}

#[tokio::test]
async fn a_job_from_creation_to_package() {
    let s = start_dialect("oracle", &[]).await;
    let reply = create(&s, ALICE, DOCUMENTS, &[NOTES, EMPTY, OVERVIEW]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.header("x-oracle-dms-ecid").is_some());
    assert_golden("oracle/create-200.json", &reply.body);
    let path = job_path(&reply);
    assert_eq!(
        reply.header("location"),
        Some(format!("http://{HOST}{path}").as_str())
    );
    // Job ids: 32 upper-hex and the 13-digit epoch milliseconds of creation.
    let job_id = path.rsplit('/').next().unwrap();
    assert_eq!(job_id.len(), 45);
    assert_eq!(&job_id[32..], s.clock.now_millis_string());

    let first = call(&s, Method::GET, &path, &[ALICE], "").await;
    assert_golden("oracle/status-processing.json", &first.body);
    let done = call(&s, Method::GET, &path, &[ALICE], "").await;
    assert_golden("oracle/status-succeeded.json", &done.body);
    let status = done.json();
    assert_eq!(status["progress"], "SUCCEEDED");
    let href = status["links"][0]["href"].as_str().unwrap();
    let package = call(
        &s,
        Method::GET,
        href.strip_prefix(&format!("http://{HOST}")).unwrap(),
        &[ALICE],
        "",
    )
    .await;
    assert_eq!(package.status, StatusCode::OK);
    assert_eq!(package.header("content-type"), Some("application/zip"));
    assert_eq!(package.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        package.header("content-length"),
        Some(package.body.len().to_string().as_str())
    );
    assert_eq!(
        package.header("content-disposition"),
        Some("attachment; filename=\"OCE-20250301.zip\"; filename*=UTF-8''OCE-20250301.zip")
    );
    assert_eq!(
        status["details"]["filesize"],
        package.body.len().to_string()
    );
    let store = s.server.state().store();
    let bytes = |id: &str| file_bytes(store.node(&zipgate::api::NodeId::from(id)).unwrap());
    check_with_readers(
        &package.body,
        &[
            ("notes.md".into(), bytes("file-notes")),
            ("Empty/".into(), None),
            ("Überblick – 日本語.txt".into(), bytes("file-overview")),
        ],
    );
}

trait Millis {
    fn now_millis_string(&self) -> String;
}

impl Millis for std::sync::Arc<zipgate::clock::ManualClock> {
    fn now_millis_string(&self) -> String {
        use zipgate::clock::Clock;
        format!("{:013}", self.now().timestamp_millis())
    }
}

#[tokio::test]
async fn the_schema_examples_types_by_setting() {
    let s = start_dialect("oracle", &[("types", "schema"), ("pacing", "immediate")]).await;
    let reply = create(&s, ALICE, DOCUMENTS, &[NOTES]).await;
    assert_eq!(reply.json()["errorCode"], 0);
    let status = call(&s, Method::GET, &job_path(&reply), &[ALICE], "").await;
    assert_golden("oracle/status-succeeded-schema.json", &status.body);
    let body = status.json();
    assert_eq!(
        (
            body["completed"].clone(),
            body["completedPercentage"].clone()
        ),
        (json!(true), json!(100))
    );
    assert!(body["links"].is_object());
}

#[tokio::test]
async fn ranges_resume_byte_for_byte() {
    let s = start_dialect("oracle", &[("pacing", "immediate")]).await;
    let reply = create(&s, ALICE, HOME, &[MEDIA]).await;
    let package = format!("{}/package", job_path(&reply));
    let full = call(&s, Method::GET, &package, &[ALICE], "").await;
    let total = full.body.len();
    assert!(total > 64 << 20);
    // A download cut at 40%, resumed from there.
    let cut = total * 2 / 5;
    let rest = call(
        &s,
        Method::GET,
        &package,
        &[ALICE, ("range", &format!("bytes={cut}-"))],
        "",
    )
    .await;
    assert_eq!(rest.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        rest.header("content-range"),
        Some(format!("bytes {cut}-{}/{total}", total - 1).as_str())
    );
    let mut joined = full.body[..cut].to_vec();
    joined.extend_from_slice(&rest.body);
    assert!(joined == full.body);
    for (range, start, end) in [
        ("bytes=0-1023", 0, 1023),
        ("bytes=-500", total - 500, total - 1),
    ] {
        let part = call(&s, Method::GET, &package, &[ALICE, ("range", range)], "").await;
        assert_eq!(part.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert!(part.body == full.body[start..=end], "{range}");
    }
    let beyond = call(
        &s,
        Method::GET,
        &package,
        &[ALICE, ("range", &format!("bytes={total}-"))],
        "",
    )
    .await;
    assert_eq!(beyond.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        beyond.header("content-range"),
        Some(format!("bytes */{total}").as_str())
    );
}

#[tokio::test]
async fn abort_stops_the_job_and_its_package() {
    let s = start_dialect("oracle", &[("pacing", "polls:5")]).await;
    let path = job_path(&create(&s, ALICE, DOCUMENTS, &[NOTES]).await);
    let reply = call(&s, Method::DELETE, &path, &[ALICE], "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_golden("oracle/abort-200.json", &reply.body);
    assert_eq!(
        call(&s, Method::GET, &path, &[ALICE], "").await.json()["progress"],
        "ABORTED"
    );
    let package = call(&s, Method::GET, &format!("{path}/package"), &[ALICE], "").await;
    assert_oracle_error(&package, 400, "-1", Some("error-400-package-aborted.json"));
    // Before the job succeeded, the package is refused too.
    let running = job_path(&create(&s, ALICE, DOCUMENTS, &[NOTES]).await);
    let early = call(&s, Method::GET, &format!("{running}/package"), &[ALICE], "").await;
    assert_oracle_error(&early, 400, "-1", None);
}

#[tokio::test]
async fn abort_cuts_a_package_download_in_flight() {
    let s = start_dialect("oracle", &[("pacing", "immediate")]).await;
    let path = job_path(&create(&s, ALICE, DOCUMENTS, &[NOTES, OVERVIEW]).await);
    assert_eq!(
        call(&s, Method::GET, &path, &[ALICE], "").await.json()["progress"],
        "SUCCEEDED"
    );
    let abort = async {
        let reply = call(&s, Method::DELETE, &path, &[ALICE], "").await;
        assert_eq!(reply.status, StatusCode::OK);
    };
    assert_cancel_cuts_download(&s.server, &format!("{path}/package"), &[ALICE], abort).await;
    assert_eq!(
        call(&s, Method::GET, &path, &[ALICE], "").await.json()["progress"],
        "ABORTED"
    );
}

#[tokio::test]
async fn create_errors_carry_the_vendor_texts() {
    let s = start_dialect("oracle", &[]).await;
    // A file that lives deeper than the folder, an unknown id, and `self`.
    for (ids, golden) in [
        (vec![NOTES, Q1_REPORT], Some("error-400-not-in-parent.json")),
        (vec!["DFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"], None),
        (vec![NOTES, "self"], None),
    ] {
        assert_oracle_error(
            &create(&s, ALICE, DOCUMENTS, &ids).await,
            400,
            "-96",
            golden,
        );
    }
    let reply = create(&s, BOB, HOME, &[PRIVATE]).await;
    assert_oracle_error(&reply, 403, "-20", Some("error-403-privileges.json"));
    let reply = create(
        &s,
        ALICE,
        "FAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &[NOTES],
    )
    .await;
    assert_oracle_error(&reply, 404, "-16", Some("error-404-folder.json"));
    let path = format!("/documents/api/1.2/folders/{DOCUMENTS}/_download");
    for (body, golden) in [
        ("{not json", Some("error-400-malformed.json")),
        ("{}", Some("error-400-missing-idlist.json")),
        (r#"{"idList":""}"#, None),
        (r#"{"idList":["a"]}"#, None),
    ] {
        let reply = call(
            &s,
            Method::POST,
            &path,
            &[ALICE, ("content-type", "application/json")],
            body,
        )
        .await;
        assert_oracle_error(&reply, 400, "-1", golden);
    }
}

#[tokio::test]
async fn jobs_are_private_and_unknown_ones_are_404() {
    let s = start_dialect("oracle", &[("pacing", "immediate")]).await;
    let path = job_path(&create(&s, ALICE, DOCUMENTS, &[NOTES]).await);
    let unknown = format!(
        "/documents/api/1.2/folders/{DOCUMENTS}/_download/00000000000000000000000000000000{:013}",
        0
    );
    for (target, who, golden) in [
        (path.clone(), BOB, None),
        (unknown.clone(), ALICE, Some("error-404-status.json")),
    ] {
        assert_oracle_error(
            &call(&s, Method::GET, &target, &[who], "").await,
            404,
            "-16",
            golden,
        );
        assert_oracle_error(
            &call(&s, Method::GET, &format!("{target}/package"), &[who], "").await,
            404,
            "-16",
            None,
        );
    }
    let reply = call(&s, Method::DELETE, &unknown, &[ALICE], "").await;
    assert_oracle_error(&reply, 404, "-16", Some("error-404-abort.json"));
    // The job belongs to the folder it was made from.
    let elsewhere = path.replace(DOCUMENTS, HOME);
    assert_oracle_error(
        &call(&s, Method::GET, &elsewhere, &[ALICE], "").await,
        404,
        "-16",
        None,
    );
}

#[tokio::test]
async fn self_is_the_callers_home_folder() {
    let s = start_dialect("oracle", &[("pacing", "immediate")]).await;
    let reply = create(&s, ALICE, "self", &[DOCUMENTS]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["parentID"], HOME);
    let status = call(
        &s,
        Method::GET,
        &format!(
            "/documents/api/1.2/folders/self/_download/{}",
            job_path(&reply).rsplit('/').next().unwrap()
        ),
        &[ALICE],
        "",
    )
    .await;
    assert_eq!(status.json()["progress"], "SUCCEEDED");
}

#[tokio::test]
async fn authentication_and_methods() {
    let s = start_dialect("oracle", &[("pacing", "immediate")]).await;
    let reply = create(&s, ("authorization", "Bearer nope"), DOCUMENTS, &[NOTES]).await;
    assert_oracle_error(&reply, 401, "-1", Some("error-401.json"));
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer realm="));
    let basic = (
        "authorization",
        "Basic YWxpY2VAZXhhbXBsZS5jb206YWxpY2UtcGFzc3dvcmQ=",
    );
    assert_eq!(
        create(&s, basic, DOCUMENTS, &[NOTES]).await.status,
        StatusCode::OK
    );
    let s2 = start_dialect("oracle", &[("basic_auth", "false")]).await;
    assert_eq!(
        create(&s2, basic, DOCUMENTS, &[NOTES]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let reply = call(
        &s,
        Method::PUT,
        &format!("/documents/api/1.2/folders/{DOCUMENTS}/_download"),
        &[ALICE],
        "",
    )
    .await;
    assert_oracle_error(&reply, 405, "-1", Some("error-405.json"));
    assert_eq!(reply.header("allow"), Some("POST"));
}

#[tokio::test]
async fn xml_when_asked_for() {
    let s = start_dialect("oracle", &[("pacing", "immediate")]).await;
    let path = format!("/documents/api/1.2/folders/{DOCUMENTS}/_download");
    let body = json!({"idList": NOTES}).to_string();
    let reply = call(
        &s,
        Method::POST,
        &path,
        &[
            ALICE,
            ("content-type", "application/json"),
            ("accept", "application/xml"),
        ],
        &body,
    )
    .await;
    assert_eq!(reply.header("content-type"), Some("application/xml"));
    assert_golden("oracle/create-200.xml", &reply.body);
    let job = String::from_utf8(reply.body).unwrap();
    let job_path = job
        .split("<Location>")
        .nth(1)
        .unwrap()
        .split("</Location>")
        .next()
        .unwrap()
        .replace(&format!("http://{HOST}"), "");
    let status = call(
        &s,
        Method::GET,
        &job_path,
        &[ALICE, ("accept", "application/xml")],
        "",
    )
    .await;
    assert_golden("oracle/status-succeeded.xml", &status.body);
    let _: Value = Value::Null;
}

#[tokio::test]
async fn pacing_on_the_clock() {
    let s = start_dialect("oracle", &[("pacing", "seconds:30")]).await;
    let path = job_path(&create(&s, ALICE, DOCUMENTS, &[NOTES]).await);
    assert_eq!(
        call(&s, Method::GET, &path, &[ALICE], "").await.json()["progress"],
        "PROCESSING"
    );
    s.clock.advance(Duration::seconds(30));
    assert_eq!(
        call(&s, Method::GET, &path, &[ALICE], "").await.json()["progress"],
        "SUCCEEDED"
    );
}

/// The "Bulk Download Folders and Files" page's own requests, verbatim,
/// against the default fixture (its world: `FE7DA518…` holds the files
/// `D890E0AD…`, `DE27E70C…` and `DC9AEA3E…` and the folders `FE27E70C…` and
/// `F4FB21E8…`; `FC7638FA…` lies elsewhere).
#[tokio::test]
async fn the_vendor_pages_examples_replay_verbatim() {
    let s = start_dialect("oracle", &[]).await;
    let post = |body: &'static str| {
        let s = &s;
        async move {
            call(
                s,
                Method::POST,
                "/documents/api/1.2/folders/FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D/_download",
                &[ALICE, ("content-type", "application/json")],
                body,
            )
            .await
        }
    };
    // The Example Request and Example 1: 200, with the page's idList echo.
    for (body, echo) in [
        (
            r#"{
    "idList":"D890E0ADF2EB12AAD28D14372E82C5967A21F51BF794,FE27E70CA140E819250B4D365F48D86BC9097E77B3EE,DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813"
}"#,
            "fFileGUID:D890E0ADF2EB12AAD28D14372E82C5967A21F51BF794,fFolderGUID:FE27E70CA140E819250B4D365F48D86BC9097E77B3EE,fFileGUID:DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813",
        ),
        (
            r#"{
"idList" : "DE27E70CA140E819250B4D365F48D86BC9097E77B3EE,DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813"
}"#,
            "fFileGUID:DE27E70CA140E819250B4D365F48D86BC9097E77B3EE,fFileGUID:DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813",
        ),
    ] {
        let reply = post(body).await;
        assert_eq!(reply.status, StatusCode::OK, "{body}");
        let json = reply.json();
        assert_eq!(json["idList"], echo);
        assert_eq!(json["id"], "fFolderGUID:FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D");
        assert_eq!(json["type"], "folder");
        assert_eq!(json["errorCode"], "0");
    }
    // Example 3: the page's -96 body, exactly.
    let reply = post(
        r#"{
"idList" : "DE27E70CA140E819250B4D365F48D86BC9097E77B3EE,DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813,F4FB21E87B4014D99CCB8ACE09AA4CDC8253E338458C,FC7638FA224D9F5C8BB2285822063E7DD029B1209216"
}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let page: Value = serde_json::from_str(
        r#"{
    "errorCode": "-96",
    "errorKey": "!csBulkdownloadUnableToInitJob!csCloudBulkDownloadRequestItemsNotInParentFolder",
    "errorMessage": "Unable to start bulk download of files. One or more of the Ids are not located in the parent folder.",
    "errorType": "folder",
    "id": "fFolderGUID:FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D",
    "idList": "fFileGUID:DE27E70CA140E819250B4D365F48D86BC9097E77B3EE,fFileGUID:DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813,fFolderGUID:F4FB21E87B4014D99CCB8ACE09AA4CDC8253E338458C,fFolderGUID:FC7638FA224D9F5C8BB2285822063E7DD029B1209216",
    "parentID": "FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D",
    "title": "Unable to start bulk download of files. One or more of the Ids are not located in the parent folder.",
    "type": "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html"
}"#,
    )
    .unwrap();
    assert_eq!(reply.json(), page);
    // Example 4: the default fixture's Documents holds bob's draft, which
    // alice may not read.
    let reply = post(
        r#"{
"idList" : "DB01ED18668EF8ACDCFD169CB26F76D7CB5DA8E4FDDB,DE27E70CA140E819250B4D365F48D86BC9097E77B3EE,DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813,F4FB21E87B4014D99CCB8ACE09AA4CDC8253E338458C"
}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // The page's body, with the caller's login where the page has its own user.
    let page = r#"{
    "errorCode": "-20",
    "errorKey": "!csBulkdownloadUnableToInitJob!csCloudItemInsufficientPrivileges,ssvrint.cecsadmina,fFileGUID:DB01ED18668EF8ACDCFD169CB26F76D7CB5DA8E4FDDB,DOCS_BULK_BUILD_ZIP",
    "errorMessage": "Unable to start bulk download of files. User 'ssvrint.cecsadmina' has insufficient privilege to access fFileGUID:DB01ED18668EF8ACDCFD169CB26F76D7CB5DA8E4FDDB with service DOCS_BULK_BUILD_ZIP.",
    "errorType": "folder",
    "id": "fFolderGUID:FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D",
    "idList": "fFileGUID:DB01ED18668EF8ACDCFD169CB26F76D7CB5DA8E4FDDB,fFileGUID:DE27E70CA140E819250B4D365F48D86BC9097E77B3EE,fFileGUID:DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813",
    "parentID": "FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D",
    "title": "Unable to start bulk download of files. User 'ssvrint.cecsadmina' has insufficient privilege to access fFileGUID:DB01ED18668EF8ACDCFD169CB26F76D7CB5DA8E4FDDB with service DOCS_BULK_BUILD_ZIP.",
    "type": "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html"
}"#
    .replace("ssvrint.cecsadmina", "alice@example.com");
    assert_eq!(reply.json(), serde_json::from_str::<Value>(&page).unwrap());
}

#[tokio::test]
async fn oracle_routes_take_a_trailing_slash_if_range_and_accept_qualities() {
    let s = start_dialect("oracle", &[("pacing", "immediate")]).await;
    let path = format!("/documents/api/1.2/folders/{DOCUMENTS}/_download/");
    let reply = call(
        &s,
        Method::POST,
        &path,
        &[ALICE, ("content-type", "application/json")],
        &json!({"idList": NOTES}).to_string(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let job = job_path(&reply);
    let status = call(&s, Method::GET, &format!("{job}/"), &[ALICE], "").await;
    assert_eq!(status.status, StatusCode::OK);
    let package = format!("{job}/package/");
    let whole = call(&s, Method::GET, &package, &[ALICE], "").await;
    assert_eq!(whole.status, StatusCode::OK);
    let part = call(
        &s,
        Method::GET,
        &package,
        &[ALICE, ("range", "bytes=0-9")],
        "",
    )
    .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    // RFC 9110 §13.1.5: a validator that does not match turns Range off.
    for validator in ["\"some-etag\"", "Sat, 01 Mar 2025 10:00:00 GMT"] {
        let reply = call(
            &s,
            Method::GET,
            &package,
            &[ALICE, ("range", "bytes=0-9"), ("if-range", validator)],
            "",
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{validator}");
        assert!(reply.body == whole.body);
    }
    // Accept's qualities decide between JSON and XML.
    for (accept, xml) in [
        ("application/json;q=0.5, application/xml", true),
        ("application/xml;q=0.5, application/json", false),
        ("application/xml, application/json", false),
    ] {
        let reply = call(&s, Method::GET, &job, &[ALICE, ("accept", accept)], "").await;
        let is_xml = reply.header("content-type") == Some("application/xml");
        assert_eq!(is_xml, xml, "{accept}");
    }
}

#[tokio::test]
async fn a_derived_guid_needs_the_letter_of_its_kind() {
    // Nodes without pinned Oracle ids: their GUIDs are derived.
    let s = start_dialect("oracle", &[]).await;
    s.server
        .load_fixtures(json!({
            "users": [{"id": "alice", "token": "alice-token"}],
            "nodes": [{"id": "top", "name": "Top", "owner": "alice", "children": [
                {"id": "f", "name": "f.txt", "content": {"text": "f"}},
                {"id": "d", "name": "D", "children": []}
            ]}]
        }))
        .unwrap();
    // The derived GUIDs, as the dialect shows them in a create's echo.
    let top = derived_guid("top", 'F');
    let file = derived_guid("f", 'D');
    let folder = derived_guid("d", 'F');
    let ok = create(&s, ALICE, &top, &[&file, &folder]).await;
    assert_eq!(
        ok.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&ok.body)
    );
    assert_eq!(
        ok.json()["idList"],
        format!("fFileGUID:{file},fFolderGUID:{folder}")
    );
    // The other letter, or none: not an item (-96), echoed by its letter.
    let wrong = format!("F{}", &file[1..]);
    let none = file[1..].to_owned();
    for id in [&wrong, &none] {
        let reply = create(&s, ALICE, &top, &[id]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{id}");
        assert_eq!(reply.json()["errorCode"], "-96", "{id}");
    }
    let reply = create(&s, ALICE, &top, &[&wrong]).await;
    assert_eq!(reply.json()["idList"], format!("fFolderGUID:{wrong}"));
}

/// A node's derived Oracle GUID: the kind's letter and the dialect's 43 digits.
fn derived_guid(node: &str, letter: char) -> String {
    let dialect = zipgate::dialects::build(&Default::default())
        .unwrap()
        .into_iter()
        .find(|d| d.name() == "oracle")
        .unwrap();
    format!(
        "{letter}{}",
        dialect.derive_id(&zipgate::api::NodeId::from(node))
    )
}

#[tokio::test]
async fn an_expired_package_still_reads_as_built_and_head_does_not_poll() {
    for (setting, progress) in [("succeeded", "SUCCEEDED"), ("failed", "FAILED")] {
        let s = start_dialect("oracle", &[("package_ttl", "60"), ("expired", setting)]).await;
        let reply = create(&s, ALICE, DOCUMENTS, &[NOTES]).await;
        let job = job_path(&reply);
        // HEAD repeats GET's headers but is not a poll: pacing (2 polls) waits.
        for _ in 0..3 {
            let head = call(&s, Method::HEAD, &job, &[ALICE], "").await;
            assert_eq!(head.status, StatusCode::OK);
        }
        let first = call(&s, Method::GET, &job, &[ALICE], "").await.json();
        assert_eq!(
            first["progress"], "PROCESSING",
            "{setting}: HEAD advanced the job"
        );
        let done = call(&s, Method::GET, &job, &[ALICE], "").await.json();
        assert_eq!(done["progress"], "SUCCEEDED");
        s.clock.advance(Duration::seconds(61));
        let late = call(&s, Method::GET, &job, &[ALICE], "").await.json();
        assert_eq!(late["progress"], progress, "{setting}");
        assert_eq!(
            late["completedPercentage"], "100",
            "{setting}: no drop to 99"
        );
        let package = call(&s, Method::GET, &format!("{job}/package"), &[ALICE], "").await;
        assert_eq!(package.status, StatusCode::NOT_FOUND, "{setting}");
    }
}

#[tokio::test]
async fn what_the_caller_may_not_read_inside_a_folder_is_left_out() {
    // The vendor says nothing of it; zipgate leaves it out, as ONLYOFFICE's
    // server does and Box counts it skipped (`oracle.unreadable_inside`).
    let s = start_dialect("oracle", &[("pacing", "immediate")]).await;
    let reply = create(&s, ALICE, HOME, &[DOCUMENTS]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let status = call(&s, Method::GET, &job_path(&reply), &[ALICE], "").await;
    assert_eq!(status.json()["progress"], "SUCCEEDED");
    let package = format!("{}/package", job_path(&reply));
    let package = call(&s, Method::GET, &package, &[ALICE], "").await;
    assert_eq!(package.status, StatusCode::OK);
    let names = zip_entry_names(&package.body);
    assert!(
        names.contains(&"Documents/todo.txt".to_owned()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("bob-draft")), "{names:?}");

    let s = start_dialect("oracle", &[("unreadable_inside", "refuse")]).await;
    let reply = create(&s, ALICE, HOME, &[DOCUMENTS]).await;
    assert_oracle_error(&reply, 403, "-20", None);
    assert!(
        reply.json()["errorKey"].as_str().unwrap().ends_with(
            ",fFileGUID:DB01ED18668EF8ACDCFD169CB26F76D7CB5DA8E4FDDB,DOCS_BULK_BUILD_ZIP"
        ),
        "{}",
        reply.json()
    );
}
