//! Fault injection over real HTTP: vendor envelopes for injected statuses,
//! counting and matching, latency, throttling, cut streams, job faults, and
//! the control plane's own guard (token, `control(false)`).

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use zipgate::faults::{CutHow, FaultRule};
use zipgate::ServerHandle;
use zipgate::{JobFault, StuckState};

const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");
const BOB: (&str, &str) = ("authorization", "Bearer bob-token");
const JSON: (&str, &str) = ("content-type", "application/json");
const BOX_CREATE: &str = "/2.0/zip_downloads";
const ONE_FILE: &str = r#"{"items":[{"type":"file","id":"12348"}]}"#;

/// The path of a Box create answer's `download_url` (its origin is the test Host).
async fn box_create(server: &ServerHandle, who: (&str, &str)) -> Reply {
    send(
        server,
        Method::POST,
        BOX_CREATE,
        &[who, JSON, ("host", HOST)],
        ONE_FILE,
    )
    .await
}

#[tokio::test]
async fn an_injected_status_comes_in_each_vendors_own_envelope() {
    let server = start_default().await;
    let cases = [
        // (rule match, request, golden file)
        (
            json!({"dialect": "box", "path": BOX_CREATE}),
            429,
            (Method::POST, BOX_CREATE),
            "box/fault-429.json",
        ),
        (
            json!({"dialect": "oracle"}),
            403,
            (
                Method::POST,
                "/documents/api/1.2/folders/FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D/_download",
            ),
            "oracle/fault-403.json",
        ),
        (
            json!({"dialect": "onlyoffice"}),
            503,
            (Method::PUT, "/api/2.0/files/fileops/bulkdownload"),
            "onlyoffice/fault-503.json",
        ),
        (
            json!({"dialect": "itslearning"}),
            500,
            (Method::POST, "/restapi/personal/yourfiles/files/zip/v1"),
            "itslearning/fault-500.json",
        ),
    ];
    for (matching, status, (method, path), golden) in cases {
        let rule = json!({"match": matching, "times": 1, "respond": {"status": status}});
        assert_eq!(add_fault(&server, rule).await.status, StatusCode::CREATED);
        let reply = send(&server, method, path, &[ALICE, JSON, ("host", HOST)], "{}").await;
        assert_eq!(reply.status.as_u16(), status, "{path}");
        assert_golden(golden, &reply.body);
        // Spent after one firing: the next request is handled as usual.
        let again = send(&server, Method::GET, path, &[ALICE, ("host", HOST)], "").await;
        assert_ne!(again.status.as_u16(), status, "{path}");
    }
    let box_429 = {
        add_fault(
            &server,
            json!({"match": {"path": BOX_CREATE}, "times": 1, "respond": {"status": 429}}),
        )
        .await;
        box_create(&server, ALICE).await
    };
    assert_eq!(box_429.header("retry-after"), Some("1"));
    assert!(box_429.header("box-request-id").is_some());
    assert_eq!(box_429.json()["code"], "rate_limit_exceeded");

    // A message and headers of the rule's own replace the vendor's defaults.
    add_fault(
        &server,
        json!({"match": {"path": BOX_CREATE}, "times": 1,
               "respond": {"status": 503, "message": "Down for maintenance", "headers": {"retry-after": "7"}}}),
    )
    .await;
    let reply = box_create(&server, ALICE).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), Some("7"));
    assert_eq!(reply.json()["code"], "unavailable");
    assert_eq!(reply.json()["message"], "Down for maintenance");
}

#[tokio::test]
async fn rules_count_matches_and_the_journal_names_what_fired() {
    let server = start_default().await;
    let added = add_fault(
        &server,
        json!({"match": {"method": "post", "path": "/2.0/*"}, "after": 1, "times": 1,
               "respond": {"status": 500}}),
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED);
    let id = added.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(added.json()["remaining"], 1);

    let statuses: Vec<u16> = [
        box_create(&server, ALICE).await,
        box_create(&server, ALICE).await,
        box_create(&server, ALICE).await,
    ]
    .iter()
    .map(|r| r.status.as_u16())
    .collect();
    assert_eq!(statuses, [202, 500, 202]);

    let listed = get(&server, "/_zipgate/faults").await.json();
    let rule = &listed["faults"][0];
    assert_eq!(
        (
            &rule["id"],
            &rule["matched"],
            &rule["fired"],
            &rule["remaining"]
        ),
        (&json!(id), &json!(3), &json!(1), &json!(0))
    );
    let journal = get(&server, "/_zipgate/requests?dialect=box").await.json();
    let fired: Vec<&Value> = journal["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["faults"])
        .collect();
    assert_eq!(fired, [&json!([]), &json!([id]), &json!([])]);

    // Removing one rule, then all.
    let missing = send(
        &server,
        Method::DELETE,
        "/_zipgate/faults/fault-99",
        &[],
        "",
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let path = format!("/_zipgate/faults/{id}");
    let removed = send(&server, Method::DELETE, &path, &[], "").await;
    assert_eq!(removed.json(), json!({"faults": []}));
    add_fault(&server, json!({"delay_ms": 1})).await;
    let cleared = send(&server, Method::DELETE, "/_zipgate/faults", &[], "").await;
    assert_eq!(cleared.json(), json!({"faults": []}));
}

#[tokio::test]
async fn bad_rules_are_refused_with_the_json_path() {
    let server = start_default().await;
    for (rule, path) in [
        (json!({"match": {"pth": "/"}, "delay_ms": 1}), "$.match"),
        (json!({"respond": {"status": 200}}), "$"),
        (
            json!([{"delay_ms": 1}, {"cut": {"after_bytes": -1}}]),
            "$[1].cut.after_bytes",
        ),
        (json!({"match": {"path": "/x"}}), "$"),
        (json!({"job": {"stuck": "done"}}), "$.job"),
    ] {
        let reply = add_fault(&server, rule.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{rule}");
        let body = reply.json();
        assert_eq!(body["error"], "invalid_fault");
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with(path), "{rule}: {message}");
    }
    let reply = send(&server, Method::POST, "/_zipgate/faults", &[JSON], "{").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(get(&server, "/_zipgate/faults").await.json()["faults"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_rule_for_one_user_leaves_the_others_alone() {
    let server = start_default().await;
    add_fault(
        &server,
        json!({"match": {"user": "bob"}, "respond": {"status": 403}}),
    )
    .await;
    assert_eq!(
        box_create(&server, ALICE).await.status,
        StatusCode::ACCEPTED
    );
    let reply = box_create(&server, BOB).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.json()["code"],
        "access_denied_insufficient_permissions"
    );
    // itslearning sends its token in the query string; that names the user too.
    let path = "/restapi/personal/yourfiles/files/zip/v1?access_token=bob-token";
    let reply = send(&server, Method::POST, path, &[JSON], "{}").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // ONLYOFFICE's cookie and Oracle's Basic credentials, each read by its own dialect.
    let cookie = ("cookie", "asc_auth_key=bob-token");
    let reply = send(
        &server,
        Method::GET,
        "/api/2.0/files/fileops",
        &[cookie],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // bob:bob-password
    let basic = ("authorization", "Basic Ym9iOmJvYi1wYXNzd29yZA==");
    let path = "/documents/api/1.2/folders/self/_download/nojob";
    let reply = send(&server, Method::GET, path, &[basic], "").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // A credential only another dialect reads names nobody: Box reads its
    // bearer (alice's), not a query token (bob's).
    let path = format!("{BOX_CREATE}?access_token=bob-token");
    let reply = send(
        &server,
        Method::POST,
        &path,
        &[ALICE, JSON, ("host", HOST)],
        ONE_FILE,
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn latency_and_throttling_slow_the_answer_down() {
    let server = start_default().await;
    add_fault(
        &server,
        json!({"match": {"path": BOX_CREATE}, "times": 1, "delay_ms": 300}),
    )
    .await;
    let started = Instant::now();
    assert_eq!(
        box_create(&server, ALICE).await.status,
        StatusCode::ACCEPTED
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    server
        .add_nodes(
            None,
            vec![
                json!({"id": "blob", "name": "blob.bin", "ids": {"box": "777"},
                             "content": {"generate": {"size": 200000, "seed": 1}}}),
            ],
        )
        .unwrap();
    let created = send(
        &server,
        Method::POST,
        BOX_CREATE,
        &[ALICE, JSON, ("host", HOST)],
        r#"{"items":[{"type":"file","id":"777"}]}"#,
    )
    .await
    .json();
    let path = &download_path(&created);
    add_fault(
        &server,
        json!({"match": {"path": "*/content"}, "throttle_bytes_per_sec": 400000}),
    )
    .await;
    let started = Instant::now();
    let reply = send(&server, Method::GET, path, &[ALICE, ("host", HOST)], "").await;
    let took = started.elapsed();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.len() > 200_000);
    // 200 kB at 400 kB/s: at least half a second less the first step.
    assert!(took >= Duration::from_millis(450), "{took:?}");
}

fn io_kind(error: &hyper::Error) -> Option<std::io::ErrorKind> {
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

#[tokio::test]
async fn a_cut_stream_ends_short_by_reset_or_by_close() {
    let server = start_default().await;
    let ids = ["1005", "1005"];
    for (id, how) in ids.iter().zip(["reset", "close"]) {
        let body = format!(r#"{{"items":[{{"type":"folder","id":"{id}"}}]}}"#);
        let created = send(
            &server,
            Method::POST,
            BOX_CREATE,
            &[ALICE, JSON, ("host", HOST)],
            body,
        )
        .await
        .json();
        let path = download_path(&created);
        add_fault(
            &server,
            json!({"match": {"path": "*/content"}, "times": 1,
                   "cut": {"after_bytes": 300000, "how": how}}),
        )
        .await;
        let response = open(&server, Method::GET, &path, &[ALICE], "").await;
        assert_eq!(response.status(), StatusCode::OK);
        let announced = content_length(&response);
        let (bytes, error) = read_until_broken(response).await;
        let error = error.expect("the body breaks");
        assert!(announced > 60 << 20);
        match how {
            "close" => {
                assert_eq!(bytes.len(), 300_000);
                // A clean FIN before the announced length.
                assert_eq!(
                    io_kind(&error),
                    Some(std::io::ErrorKind::UnexpectedEof),
                    "{error:?}"
                );
            }
            _ => {
                assert!(bytes.len() <= 300_000);
                assert_eq!(
                    io_kind(&error),
                    Some(std::io::ErrorKind::ConnectionReset),
                    "{error:?}"
                );
            }
        }
    }
    // The engine stopped with the connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.state().streams.active(), 0);
}

#[tokio::test]
async fn job_faults_fail_a_job_or_hold_it_in_a_state() {
    let server = start_default().await;
    server
        .add_fault(
            FaultRule::on("PUT", "/api/2.0/files/fileops/bulkdownload")
                .times(1)
                .job(JobFault::Stuck(StuckState::Running)),
        )
        .unwrap();
    server
        .add_fault(
            FaultRule::on("POST", BOX_CREATE)
                .times(1)
                .job(JobFault::Fail("disk full".into())),
        )
        .unwrap();

    let bulk = send(
        &server,
        Method::PUT,
        "/api/2.0/files/fileops/bulkdownload",
        &[ALICE, JSON],
        r#"{"fileIds":[12348]}"#,
    )
    .await;
    assert_eq!(bulk.status, StatusCode::OK, "{}", bulk.json());
    for _ in 0..5 {
        let ops = send(&server, Method::GET, "/api/2.0/files/fileops", &[ALICE], "")
            .await
            .json();
        let op = &ops["response"][0];
        assert_eq!(op["finished"], false, "{op}");
        assert!(op["progress"].as_i64().unwrap() < 100, "{op}");
    }

    let created = box_create(&server, ALICE).await;
    assert_eq!(created.status, StatusCode::ACCEPTED);
    let jobs = get(&server, "/_zipgate/jobs").await.json();
    let states: Vec<(&Value, &Value, &Value)> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (&j["dialect"], &j["state"], &j["error"]))
        .collect();
    assert_eq!(
        states,
        [
            (&json!("onlyoffice"), &json!("running"), &Value::Null),
            (&json!("box"), &json!("failed"), &json!("disk full")),
        ]
    );
    let path = &download_path(&created.json());
    let download = send(&server, Method::GET, path, &[ALICE], "").await;
    assert!(download.status.is_client_error(), "{}", download.status);
}

#[tokio::test]
async fn the_control_plane_can_be_guarded_by_a_token_or_turned_off() {
    let guarded = common::builder()
        .control_token("s3cret")
        .spawn()
        .await
        .unwrap();
    let refused = get(&guarded, "/_zipgate/faults").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["error"], "unauthorized");
    for header in [
        ("authorization", "Bearer s3cret"),
        ("x-zipgate-control-token", "s3cret"),
    ] {
        let reply = send(&guarded, Method::GET, "/_zipgate/faults", &[header], "").await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let wrong = send(
        &guarded,
        Method::GET,
        "/_zipgate/requests",
        &[("authorization", "Bearer s3cre")],
        "",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    // A vendor user's bearer token does not hide the control token in its header.
    let both = send(
        &guarded,
        Method::GET,
        "/_zipgate/faults",
        &[
            ("authorization", "Bearer alice-token"),
            ("x-zipgate-control-token", "s3cret"),
        ],
        "",
    )
    .await;
    assert_eq!(both.status, StatusCode::OK);
    // Vendor routes and health are not the control plane.
    assert_eq!(
        box_create(&guarded, ALICE).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        get(&guarded, "/_zipgate/health").await.status,
        StatusCode::OK
    );

    let off = common::builder().control(false).spawn().await.unwrap();
    for path in ["/_zipgate/faults", "/_zipgate/requests", "/_zipgate/jobs"] {
        assert_eq!(
            get(&off, path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(get(&off, "/_zipgate/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn reset_brings_back_the_starting_rules_and_forgets_the_rest() {
    let server = common::builder()
        .fault(FaultRule::on("POST", BOX_CREATE).times(1).status(503))
        .spawn()
        .await
        .unwrap();
    assert_eq!(
        box_create(&server, ALICE).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    server
        .add_fault(FaultRule::on("GET", "*").cut_after(10, CutHow::Close))
        .unwrap();
    assert_eq!(server.faults().len(), 2);
    let reset = send(&server, Method::POST, "/_zipgate/reset", &[], "").await;
    assert_eq!(reset.status, StatusCode::OK);
    let faults = server.faults();
    assert_eq!(faults.len(), 1);
    assert_eq!((faults[0].matched, faults[0].fired), (0, 0));
    assert_eq!(
        box_create(&server, ALICE).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn a_probability_rule_fires_the_same_way_for_the_same_seed() {
    async fn pattern(seed: u64) -> Vec<u16> {
        let server = start_default().await;
        add_fault(
            &server,
            json!({"match": {"path": BOX_CREATE}, "probability": 0.5, "seed": seed,
                   "respond": {"status": 503}}),
        )
        .await;
        let mut statuses = Vec::new();
        for _ in 0..24 {
            statuses.push(box_create(&server, ALICE).await.status.as_u16());
        }
        statuses
    }
    let first = pattern(11).await;
    assert_eq!(first, pattern(11).await);
    let failed = first.iter().filter(|&&s| s == 503).count();
    assert!((4..=20).contains(&failed), "{first:?}");
    assert_ne!(first, pattern(12).await);
}
