//! `--cors`: vendor routes answer a browser on an allowed origin as each
//! vendor's server does; other origins, and the control plane, get no CORS
//! headers; off by default.

mod common;

use common::*;
use http::{Method, StatusCode};

const APP: &str = "https://app.example.com";

async fn with_cors(origins: &[&str]) -> zipgate::ServerHandle {
    start_with_config(zipgate::server::Config {
        cors: origins.iter().map(|o| o.to_string()).collect(),
        ..Default::default()
    })
    .await
}

async fn preflight(
    server: &zipgate::ServerHandle,
    path: &str,
    origin: &str,
    method: &str,
    headers: &str,
) -> Reply {
    send(
        server,
        Method::OPTIONS,
        path,
        &[
            ("origin", origin),
            ("access-control-request-method", method),
            ("access-control-request-headers", headers),
        ],
        "",
    )
    .await
}

/// A Box create as alice, from a page on `origin`.
async fn box_create_from(server: &zipgate::ServerHandle, origin: &str) -> Reply {
    send(
        server,
        Method::POST,
        "/2.0/zip_downloads",
        &[
            ("origin", origin),
            ("authorization", "Bearer alice-token"),
            ("content-type", "application/json"),
        ],
        r#"{"items":[{"type":"file","id":"12348"}]}"#,
    )
    .await
}

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

#[tokio::test]
async fn box_answers_an_allowed_origin_with_a_star_and_exposes_retry_after() {
    let server = with_cors(&[APP]).await;
    let reply = preflight(
        &server,
        "/2.0/zip_downloads",
        APP,
        "POST",
        "authorization,content-type",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(header(&reply, "access-control-allow-origin"), "*");
    assert!(header(&reply, "access-control-allow-methods").contains("POST"));
    let allowed = header(&reply, "access-control-allow-headers");
    for asked in ["authorization", "content-type", "x-box-client-name"] {
        assert!(allowed.contains(asked), "{allowed}");
    }

    let created = box_create_from(&server, APP).await;
    assert_eq!(created.status, StatusCode::ACCEPTED);
    assert_eq!(header(&created, "access-control-allow-origin"), "*");
    assert!(header(&created, "access-control-expose-headers").contains("retry-after"));
    assert_eq!(header(&created, "vary"), "Origin");

    // Another origin gets nothing a browser would accept.
    let other = preflight(
        &server,
        "/2.0/zip_downloads",
        "https://evil.example",
        "POST",
        "",
    )
    .await;
    assert_eq!(header(&other, "access-control-allow-origin"), "");
    let other = box_create_from(&server, "https://evil.example").await;
    assert_eq!(other.status, StatusCode::ACCEPTED);
    assert_eq!(header(&other, "access-control-allow-origin"), "");
}

#[tokio::test]
async fn dropbox_exposes_its_result_header_and_docspace_echoes_with_credentials() {
    let server = with_cors(&[APP]).await;
    let reply = preflight(
        &server,
        "/2/files/download_zip",
        APP,
        "POST",
        "authorization,dropbox-api-arg",
    )
    .await;
    assert!(reply.status.is_success(), "{}", reply.status);
    assert!(header(&reply, "access-control-allow-headers").contains("dropbox-api-arg"));
    let zip = send(
        &server,
        Method::POST,
        "/2/files/download_zip",
        &[
            ("origin", APP),
            ("authorization", "Bearer alice-token"),
            ("dropbox-api-arg", r#"{"path": "/Documents"}"#),
        ],
        "",
    )
    .await;
    assert_eq!(zip.status, StatusCode::OK, "{:?}", zip.headers);
    assert!(header(&zip, "access-control-expose-headers").contains("dropbox-api-result"));

    let docspace = start_with_config(zipgate::server::Config {
        cors: vec![APP.to_owned()],
        dialect_settings: [(
            "onlyoffice".to_owned(),
            [("flavour".to_owned(), "docspace".to_owned())].into(),
        )]
        .into(),
        ..Default::default()
    })
    .await;
    let reply = preflight(
        &docspace,
        "/api/2.0/files/fileops/bulkdownload",
        APP,
        "PUT",
        "authorization,x-custom",
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(header(&reply, "access-control-allow-origin"), APP);
    assert_eq!(header(&reply, "access-control-allow-credentials"), "true");
    assert_eq!(
        header(&reply, "access-control-allow-headers"),
        "authorization,x-custom",
        "echoed, as AllowAnyHeader does"
    );
}

#[tokio::test]
async fn without_cors_and_on_the_control_plane_there_is_none() {
    let off = start_default().await;
    let reply = preflight(&off, "/2.0/zip_downloads", APP, "POST", "authorization").await;
    assert_eq!(header(&reply, "access-control-allow-origin"), "");
    assert_eq!(
        reply.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "Box's own 405"
    );

    let on = with_cors(&["*"]).await;
    let reply = preflight(&on, "/_zipgate/faults", APP, "POST", "content-type").await;
    assert_eq!(header(&reply, "access-control-allow-origin"), "");
    let faults = send(&on, Method::GET, "/_zipgate/faults", &[("origin", APP)], "").await;
    assert_eq!(header(&faults, "access-control-allow-origin"), "");
}

#[tokio::test]
async fn a_preflight_leaves_a_one_time_fault_for_the_request_after_it() {
    let server = with_cors(&[APP]).await;
    let added = send(
        &server,
        Method::POST,
        "/_zipgate/faults",
        &[("content-type", "application/json")],
        r#"{"match": {"dialect": "box"}, "times": 1, "respond": {"status": 503}}"#,
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED);
    let reply = preflight(&server, "/2.0/zip_downloads", APP, "POST", "authorization").await;
    assert_eq!(reply.status, StatusCode::OK);
    let created = box_create_from(&server, APP).await;
    assert_eq!(created.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&created, "access-control-allow-origin"), "*");
}
