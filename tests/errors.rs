//! Every bad request gets a status and a JSON message; none panics or drops the connection.

mod common;

use common::*;
use http::{Method, StatusCode};
use serde_json::json;

async fn post(server: &zipgate::ServerHandle, headers: &[(&str, &str)], body: &str) -> Reply {
    send(
        server,
        Method::POST,
        "/_zipgate/zip",
        headers,
        body.to_owned(),
    )
    .await
}

const JSON: (&str, &str) = ("content-type", "application/json");

/// Request headers, body, then the expected status, error kind and a word the message must hold.
type Case = (
    Vec<(&'static str, &'static str)>,
    &'static str,
    StatusCode,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn bad_requests_get_a_status_and_a_json_message() {
    let server = start_default().await;
    let cases: Vec<Case> = vec![
        (
            vec![JSON],
            r#"{"items":[{"id":"no-such-node"}]}"#,
            StatusCode::NOT_FOUND,
            "not_found",
            "no-such-node",
        ),
        (
            vec![JSON],
            r#"{"items":[{"id":"folder-alice-home"}]}"#,
            StatusCode::FORBIDDEN,
            "forbidden",
            "folder-alice-home",
        ),
        (
            vec![JSON, ("authorization", "Bearer bob-token")],
            r#"{"items":[{"id":"file-salary"}]}"#,
            StatusCode::FORBIDDEN,
            "forbidden",
            "file-salary",
        ),
        (
            vec![JSON, ("authorization", "Bearer bob-token")],
            r#"{"items":[{"id":"folder-private"}]}"#,
            StatusCode::FORBIDDEN,
            "forbidden",
            "folder-private",
        ),
        (
            vec![JSON],
            r#"{"items":[{"id":"file-readme"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "malformed JSON",
        ),
        (
            vec![JSON],
            "",
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "malformed JSON",
        ),
        (
            vec![JSON],
            r#"{"items":[{"id":7}]}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "items[0].id",
        ),
        (
            vec![JSON],
            r#"{"items":[]}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "items",
        ),
        (
            vec![JSON],
            r#"{"items":[{"id":"file-readme"}],"compression":"gzip"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "compression",
        ),
        (
            vec![JSON],
            r#"{"items":[{"id":"file-readme"}],"colour":"red"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "colour",
        ),
        (
            vec![("content-type", "text/plain")],
            r#"{"items":[{"id":"file-readme"}]}"#,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "text/plain",
        ),
        (
            vec![],
            r#"{"items":[{"id":"file-readme"}]}"#,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "no Content-Type",
        ),
        (
            vec![JSON, ("authorization", "Bearer wrong")],
            r#"{"items":[{"id":"file-readme"}]}"#,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "credentials",
        ),
        (
            vec![JSON, ("authorization", "Basic abc")],
            r#"{"items":[{"id":"file-readme"}]}"#,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "credentials",
        ),
    ];
    for (headers, body, status, kind, mentions) in cases {
        let reply = post(&server, &headers, body).await;
        assert_eq!(reply.status, status, "{body}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let json = reply.json();
        assert_eq!(json["error"], kind, "{body}: {json}");
        let message = json["message"].as_str().unwrap();
        assert!(
            message.contains(mentions),
            "{body}: message {message:?} should mention {mentions:?}"
        );
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let server = start_default().await;
    let huge = format!(r#"{{"items":[{{"id":"{}"}}]}}"#, "x".repeat(2 << 20));
    let reply = post(&server, &[JSON], &huge).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.json()["error"], "payload_too_large");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_json() {
    let server = start_default().await;
    let reply = get(&server, "/nowhere").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["error"], "not_found");
    let reply = get(&server, "/_zipgate/zip").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), Some("POST"));
    assert_eq!(reply.json()["error"], "method_not_allowed");
}

#[tokio::test]
async fn health_reports_version_dialects_and_fixture_size() {
    let server = start_default().await;
    let reply = get(&server, "/_zipgate/health").await;
    assert_eq!(reply.status, StatusCode::OK);
    let health = reply.json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["dialects"].is_array());
    assert_eq!(health["nodes"], 21);
    assert_eq!(health["active_streams"], 0);
    // The server is still fine after all that.
    let reply = zip(&server, &json!({"items": [{"id": "file-readme"}]}), None).await;
    assert_eq!(reply.status, StatusCode::OK);
}
