//! `/_zipgate/metrics` as Prometheus reads it: behind the control token,
//! in the text format (parsed by the Python `prometheus_client` parser), with
//! requests by dialect, route pattern, method and status, bytes sent, faults
//! fired, latency and time-to-first-byte histograms, streams and jobs.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use http::{Method, StatusCode};
use serde_json::Value;

const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");
const TOKEN: (&str, &str) = ("x-zipgate-control-token", "metrics-token");

async fn box_create(server: &zipgate::ServerHandle) -> Reply {
    send(
        server,
        Method::POST,
        "/2.0/zip_downloads",
        &[ALICE, ("content-type", "application/json")],
        r#"{"items":[{"type":"file","id":"12348"}]}"#,
    )
    .await
}

/// A sample: name, labels (a JSON object) and value.
type Sample = (String, Value, f64);

/// The samples `prometheus_client`'s parser reads from `text`, and each
/// family's (name, type).
fn parse(text: &str) -> (Vec<Sample>, Vec<(String, String)>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "run tests/run: it installs prometheus-client"
    );
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("metrics.txt");
    std::fs::write(&file, text).unwrap();
    let output = Command::new(python)
        .args([
            "-c",
            "import json, sys\n\
             from prometheus_client.parser import text_string_to_metric_families\n\
             families = list(text_string_to_metric_families(open(sys.argv[1]).read()))\n\
             print(json.dumps({'samples': [[s.name, s.labels, s.value] for f in families for s in f.samples],\n\
                               'types': [[f.name, f.type] for f in families]}))",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let samples = parsed["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s[0].as_str().unwrap().to_owned(),
                s[1].clone(),
                s[2].as_f64().unwrap(),
            )
        })
        .collect();
    let types = parsed["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t[0].as_str().unwrap().to_owned(),
                t[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (samples, types)
}

#[tokio::test]
async fn metrics_count_what_happened_in_prometheus_text() {
    let server = common::builder()
        .control_token("metrics-token")
        .spawn()
        .await
        .unwrap();
    let created = box_create(&server).await;
    assert_eq!(created.status, StatusCode::ACCEPTED);
    let download = send(
        &server,
        Method::GET,
        &download_path(&created.json()),
        &[ALICE],
        "",
    )
    .await;
    assert_eq!(download.status, StatusCode::OK);
    let fault = send(
        &server,
        Method::POST,
        "/_zipgate/faults",
        &[TOKEN, ("content-type", "application/json")],
        r#"{"match": {"dialect": "box", "method": "POST"}, "times": 1, "respond": {"status": 503}}"#,
    )
    .await;
    assert_eq!(fault.status, StatusCode::CREATED);
    assert_eq!(
        box_create(&server).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let missing = send(&server, Method::GET, "/2.0/nothing-here", &[ALICE], "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Like the rest of the control plane, behind the token.
    assert_eq!(
        get(&server, "/_zipgate/metrics").await.status,
        StatusCode::UNAUTHORIZED
    );
    let reply = send(&server, Method::GET, "/_zipgate/metrics", &[TOKEN], "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    let (samples, types) = parse(&text);

    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l[*k] == *v))
            .map(|(_, _, v)| v)
            .sum()
    };
    let box_post = [
        ("dialect", "box"),
        ("route", "/2.0/zip_downloads"),
        ("method", "POST"),
    ];
    let with = |status: &'static str| {
        let mut labels = box_post.to_vec();
        labels.push(("status", status));
        labels
    };
    assert_eq!(value("zipgate_requests_total", &with("202")), 1.0, "{text}");
    assert_eq!(value("zipgate_requests_total", &with("503")), 1.0, "{text}");
    // Routes are patterns: the job id in the path is not a label.
    let content = [
        ("dialect", "box"),
        ("route", "/2.0/zip_downloads/{id}/content"),
        ("status", "200"),
    ];
    assert_eq!(value("zipgate_requests_total", &content), 1.0, "{text}");
    let unmatched = [
        ("dialect", "box"),
        ("route", "unmatched"),
        ("status", "404"),
    ];
    assert_eq!(value("zipgate_requests_total", &unmatched), 1.0, "{text}");
    assert!(
        value("zipgate_response_bytes_total", &[("dialect", "box")]) >= download.body.len() as f64
    );
    assert_eq!(
        value("zipgate_faults_fired_total", &[("dialect", "box")]),
        1.0
    );
    for histogram in [
        "zipgate_request_duration_seconds",
        "zipgate_time_to_first_byte_seconds",
    ] {
        let count = value(&format!("{histogram}_count"), &[("dialect", "box")]);
        assert_eq!(count, 4.0, "{histogram}: {text}");
        let inf = value(
            &format!("{histogram}_bucket"),
            &[("dialect", "box"), ("le", "+Inf")],
        );
        assert_eq!(inf, count);
    }
    assert_eq!(value("zipgate_jobs", &[("dialect", "box")]), 1.0, "{text}");
    // (The download's stream may still be winding down: its count is
    // checked by the health tests; here, that the gauge is there.)
    assert!(samples
        .iter()
        .any(|(n, _, _)| n == "zipgate_active_streams"));
    assert!(samples.iter().any(|(n, _, _)| n == "zipgate_connections"));
    for (family, kind) in [
        ("zipgate_requests", "counter"),
        ("zipgate_request_duration_seconds", "histogram"),
        ("zipgate_time_to_first_byte_seconds", "histogram"),
        ("zipgate_jobs", "gauge"),
        ("zipgate_active_streams", "gauge"),
    ] {
        assert!(
            types.iter().any(|(n, t)| n == family && t == kind),
            "{family} {kind}: {types:?}"
        );
    }
}
