//! itslearning measured against ASP.NET Web API 2 itself: every request in
//! `tests/webapi2/cases.json` is sent, byte for byte as `record.py` sent it
//! to the framework built from source, to zipgate, and the answer is
//! compared with the framework's, recorded in
//! `tests/golden/itslearning/webapi2/` (see `tests/webapi2/README.md`).
//!
//! What is compared depends on what the recorded answer is made of:
//! - the framework's own answers (errors, negotiation, routing, `null`):
//!   status, `Content-Type`, `Allow`, `WWW-Authenticate` and the body, exactly;
//! - a model bound from the request (the reference host echoes the bound
//!   `FileIds`/`FolderIds` as `F=[..];D=[..]`): zipgate must answer with the
//!   same status and type, a `ZipFileJobModel` of the same shape, and a job
//!   whose archive holds exactly the bound files and folders;
//! - a null or empty model: zipgate answers its empty-request error (the
//!   controller's choice, not the framework's: `empty_request` setting);
//! - a job model (`GET …/zip/1/v1`): status, type and the model's shape.
//!
//! Where zipgate knowingly answers otherwise, the case is listed in
//! `DIFFERENCES` with the reason, and the test checks that it still differs
//! (so a fix shows up as a list to shorten).

mod common;
use common::TestJobs;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use common::zip_entry_names;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zipgate::clock::ManualClock;
use zipgate::server::Config;

/// Cases where zipgate answers otherwise than the framework, and why.
const DIFFERENCES: &[(&str, &str)] = &[
    (
        "sample_model_xml",
        "a route of the reference host only (a model with every member set)",
    ),
    (
        "sample_model_json",
        "a route of the reference host only (a model with every member set)",
    ),
    (
        "sample_model_no_accept",
        "a route of the reference host only (a model with every member set)",
    ),
    (
        "head_sample",
        "a route of the reference host only (a model with every member set)",
    ),
    // Json.NET 11's recovery after a token of the wrong kind inside a list
    // of ints records errors at the list and at the root (several, with
    // paths hundreds of brackets long for deep nesting); zipgate records the
    // one error at the item's path, as for every other bad item.
    (
        "json_bool_element",
        "Json.NET's error recovery inside a list: zipgate keys the bad item",
    ),
    (
        "json_depth_inner_array",
        "Json.NET's error recovery inside a list: zipgate keys the bad item",
    ),
    (
        "json_deep_nesting_object",
        "Json.NET's error recovery inside a list: zipgate keys the bad item",
    ),
    (
        "json_deep_nesting_closed",
        "Json.NET's error recovery inside a list: zipgate keys the bad item",
    ),
];

struct Case {
    name: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(root().join("tests/webapi2/cases.json")).unwrap();
    let list: Vec<Value> = serde_json::from_str(&text).unwrap();
    list.into_iter()
        .map(|case| {
            use base64::Engine as _;
            let body = match (&case["body"], &case["body_base64"]) {
                (_, Value::String(b64)) => Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap(),
                ),
                (Value::String(text), _) => Some(text.as_bytes().to_vec()),
                _ => None,
            };
            Case {
                name: case["name"].as_str().unwrap().to_owned(),
                method: case["method"].as_str().unwrap().to_owned(),
                path: case["path"].as_str().unwrap().to_owned(),
                headers: case["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|pair| {
                        (
                            pair[0].as_str().unwrap().to_owned(),
                            pair[1].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect(),
                body,
            }
        })
        .collect()
}

#[derive(Debug)]
struct Answer {
    status: u16,
    /// `Cache-Control: no-cache`, `Pragma: no-cache` and `Expires: -1`.
    iis: bool,
    /// The headers compared, lower-case names, sorted.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

const COMPARED: &[&str] = &["allow", "content-type", "www-authenticate"];

/// The recorded answer; the Json.NET 11.0.2 recording where one exists
/// (a newer Json.NET than Debian's 6.0.8 is the likelier in production).
fn golden(name: &str) -> Answer {
    let dir = root().join("tests/golden/itslearning/webapi2");
    let newer = dir.join("jsonnet-11.0.2").join(format!("{name}.txt"));
    let path = if newer.exists() {
        newer
    } else {
        dir.join(format!("{name}.txt"))
    };
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let split = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("a blank line after the headers");
    let head = String::from_utf8(bytes[..split].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap()["HTTP ".len()..].parse().unwrap();
    let mut headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .filter(|(k, _)| COMPARED.contains(&k.as_str()))
        .collect();
    headers.sort();
    Answer {
        status,
        iis: true,
        headers,
        body: bytes[split + 2..].to_vec(),
    }
}

/// `record.py`'s `build_request`: the same bytes the framework got.
fn request_bytes(case: &Case) -> Vec<u8> {
    let mut head = format!("{} {} HTTP/1.1\r\n", case.method, case.path);
    let has = |name: &str| {
        case.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    if !has("host") {
        head.push_str("Host: 127.0.0.1\r\n");
    }
    for (k, v) in &case.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = &case.body {
        if !has("content-length") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(case.body.as_deref().unwrap_or_default());
    bytes
}

async fn exchange(addr: std::net::SocketAddr, request: &[u8], head_only: bool) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut raw),
    )
    .await
    .expect("an answer within 30 s")
    .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let all: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = all
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if head_only {
        body.clear();
    } else if chunked {
        body = dechunk(&body);
    }
    let has = |name: &str, value: &str| all.iter().any(|(k, v)| k == name && v == value);
    let iis = has("cache-control", "no-cache") && has("pragma", "no-cache") && has("expires", "-1");
    let mut headers: Vec<(String, String)> = all
        .into_iter()
        .filter(|(k, _)| COMPARED.contains(&k.as_str()))
        .collect();
    headers.sort();
    Answer {
        status,
        iis,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(
            std::str::from_utf8(&data[..line_end])
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// The reference host's world: alice, files 1, 2, 4, 5, 7 and 31 at her
/// top, folders 1, 2, 3 and 6 each holding one file, so an archive's names
/// say which ids were bound.
fn fixture() -> Value {
    let file = |n: u32| {
        serde_json::json!({"id": format!("file-{n}"), "name": format!("file-{n}.txt"),
            "content": {"text": format!("file {n}\n")}, "ids": {"itslearning": n.to_string()}})
    };
    let folder = |n: u32| {
        serde_json::json!({"id": format!("folder-{n}"), "name": format!("folder-{n}"),
            "ids": {"itslearning": n.to_string()},
            "children": [{"id": format!("in-{n}"), "name": "inside.txt", "content": {"text": "in\n"}}]})
    };
    let mut children: Vec<Value> = [1, 2, 4, 5, 7, 31].into_iter().map(file).collect();
    children.extend([1, 2, 3, 6].into_iter().map(folder));
    serde_json::json!({
        "users": [{"id": "alice", "token": "alice-token", "home": "home"}],
        "nodes": [{"id": "home", "name": "Alice", "owner": "alice", "children": children}]
    })
}

async fn start() -> zipgate::ServerHandle {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2025, 10, 23, 17, 50, 46).unwrap(),
    ));
    // The default pacing: a new job is Pending, as the reference host's model.
    common::builder()
        .fixtures(fixture())
        .clock(clock)
        .config(Config::default())
        .test_jobs()
        .spawn()
        .await
        .unwrap()
}

/// `F=[1,2];D=null` → the bound ids, a null list as none.
fn bound(text: &str) -> Option<(BTreeSet<u32>, BTreeSet<u32>)> {
    let at = text.find("F=")?;
    let rest = &text[at..];
    let end = rest.find(['"', '<']).unwrap_or(rest.len());
    let (files, folders) = rest[2..end].split_once(";D=")?;
    let list = |s: &str| -> BTreeSet<u32> {
        s.trim_matches(['[', ']'])
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect()
    };
    Some((list(files), list(folders)))
}

/// A model with its values blanked (strings and numbers; nulls stay), so
/// two models compare by shape: members, order, nil-ness, format.
fn shape(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).into_owned();
    let mut out = String::new();
    if text.starts_with('{') {
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Value::Object(map) = value {
            for (key, value) in map {
                let blank = if value.is_null() { "null" } else { "_" };
                out.push_str(&format!("{key}={blank};"));
            }
        }
        return out;
    }
    // XML: the text between `>` and `</` blanked.
    let mut rest = text.as_str();
    while let Some(open) = rest.find('>') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        if let Some(close) = rest.find("</") {
            if !rest[..close].contains('<') && close > 0 {
                out.push('_');
                rest = &rest[close..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// What an archive of the job holds, as bound ids.
async fn archived(addr: std::net::SocketAddr) -> (BTreeSet<u32>, BTreeSet<u32>) {
    let latest = Case {
        name: "latest".into(),
        method: "GET".into(),
        path: "/restapi/personal/yourfiles/files/zip/v1".into(),
        headers: vec![
            ("Authorization".into(), "Bearer alice-token".into()),
            ("Accept".into(), "application/json".into()),
        ],
        body: None,
    };
    let mut model: Value =
        serde_json::from_slice(&exchange(addr, &request_bytes(&latest), false).await.body)
            .expect("the latest job as JSON");
    // Polled until completed, as a client does.
    let poll = Case {
        path: format!(
            "/restapi/personal/yourfiles/files/zip/{}/v1",
            model["JobId"].as_u64().expect("a job")
        ),
        ..latest
    };
    for _ in 0..5 {
        if model["DownloadUrl"].is_string() {
            break;
        }
        model = serde_json::from_slice(&exchange(addr, &request_bytes(&poll), false).await.body)
            .expect("the job as JSON");
    }
    let url = model["DownloadUrl"].as_str().expect("a completed job");
    let path = &url[url.find("/filerepo/").unwrap()..];
    let download = Case {
        name: "download".into(),
        method: "GET".into(),
        path: path.to_owned(),
        headers: Vec::new(),
        body: None,
    };
    let zip = exchange(addr, &request_bytes(&download), false).await;
    let (mut files, mut folders) = (BTreeSet::new(), BTreeSet::new());
    for name in zip_entry_names(&zip.body) {
        if let Some(n) = name
            .strip_prefix("file-")
            .and_then(|n| n.strip_suffix(".txt"))
        {
            files.insert(n.parse().unwrap());
        } else if let Some(n) = name
            .strip_prefix("folder-")
            .and_then(|n| n.split('/').next())
        {
            folders.insert(n.parse().unwrap());
        }
    }
    (files, folders)
}

/// What differs between zipgate's answer to `case` and the framework's; empty when nothing.
async fn compare(case: &Case) -> Vec<String> {
    let expected = golden(&case.name);
    let server = start().await;
    let addr = server.addr();
    let head_only = case.method == "HEAD";
    // GET …/zip/{id}/v1 asks for job 1 (however spelt), which the reference
    // host always has, completed: zipgate's job 1 is made and polled once,
    // so the case's own poll finds it completed.
    let route = case.path.split('?').next().unwrap_or_default();
    let one = route.strip_prefix("/restapi/personal/yourfiles/files/zip/");
    if one.is_some_and(|rest| rest.trim_end_matches('/') != "v1") {
        let seed = Case {
            name: "seed".into(),
            method: "POST".into(),
            path: "/restapi/personal/yourfiles/files/zip/v1".into(),
            headers: vec![
                ("Authorization".into(), "Bearer alice-token".into()),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: Some(br#"{"FileIds":[1]}"#.to_vec()),
        };
        assert_eq!(
            exchange(addr, &request_bytes(&seed), false).await.status,
            200
        );
        let poll = Case {
            method: "GET".into(),
            path: "/restapi/personal/yourfiles/files/zip/1/v1".into(),
            body: None,
            ..seed
        };
        assert_eq!(
            exchange(addr, &request_bytes(&poll), false).await.status,
            200
        );
    }
    let mut got = exchange(addr, &request_bytes(case), head_only).await;
    // UTF-16 bodies (with their byte-order mark) compare as text; that the
    // encoding matches is kept as a pseudo-header.
    let mut expected = expected;
    for answer in [&mut got, &mut expected] {
        if let [0xFF, 0xFE, rest @ ..] = &answer.body[..] {
            let units: Vec<u16> = rest
                .chunks_exact(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]))
                .collect();
            answer.body = String::from_utf16_lossy(&units).into_bytes();
            answer
                .headers
                .push(("(utf-16 with BOM)".into(), String::new()));
        }
    }
    let mut problems = Vec::new();
    // What IIS adds to every Web API answer (HttpControllerHandler.cs).
    if !got.iis {
        problems.push("no Cache-Control/Pragma no-cache and Expires -1".into());
    }
    if got.status != expected.status {
        problems.push(format!(
            "status {} (framework {})",
            got.status, expected.status
        ));
    }
    if got.headers != expected.headers {
        problems.push(format!(
            "headers {:?} (framework {:?})",
            got.headers, expected.headers
        ));
    }
    let text = String::from_utf8_lossy(&expected.body).into_owned();
    let empty_model =
        text.contains("REQ=null") || text.contains("F=null;D=null") || text.contains("F=null;D=[]");
    if empty_model {
        // The controller's answer to an empty request: zipgate's `empty_request`.
        let json = expected
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.contains("json"));
        let want: &[u8] = if json {
            br#"{"Message":"The request is invalid."}"#
        } else {
            b"<Error><Message>The request is invalid.</Message></Error>"
        };
        problems.retain(|p| !p.starts_with("status"));
        if got.status != 400 || got.body != want {
            problems.push(format!(
                "an empty request: {} {} (zipgate's empty_request answer expected)",
                got.status,
                String::from_utf8_lossy(&got.body)
            ));
        }
    } else if let Some((files, folders)) = bound(&text) {
        if shape(&got.body) != shape(&expected.body) {
            problems.push(format!(
                "model shape {} (framework {})",
                shape(&got.body),
                shape(&expected.body)
            ));
        }
        if got.status == 200 {
            let (got_files, got_folders) = archived(addr).await;
            if (&got_files, &got_folders) != (&files, &folders) {
                problems.push(format!(
                    "bound F={got_files:?} D={got_folders:?} (framework F={files:?} D={folders:?})"
                ));
            }
        }
    } else if text.contains("JobId") {
        if shape(&got.body) != shape(&expected.body) {
            problems.push(format!(
                "model shape {} (framework {})",
                shape(&got.body),
                shape(&expected.body)
            ));
        }
    } else if got.body != expected.body {
        problems.push(format!(
            "body {:?} (framework {:?})",
            String::from_utf8_lossy(&got.body),
            String::from_utf8_lossy(&expected.body)
        ));
    }
    server.shutdown().await;
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recorded_request_is_answered_as_web_api_answered_it() {
    let only = std::env::var("WEBAPI2_CASE").ok();
    let mut failures = Vec::new();
    let mut known = 0;
    for case in cases() {
        if only.as_deref().is_some_and(|name| name != case.name) {
            continue;
        }
        let problems = compare(&case).await;
        match DIFFERENCES.iter().find(|(name, _)| *name == case.name) {
            Some((_, why)) => {
                known += 1;
                if problems.is_empty() {
                    failures.push(format!(
                        "{}: listed as a difference ({why}) but now answered alike: remove it from DIFFERENCES",
                        case.name
                    ));
                }
            }
            None if !problems.is_empty() => {
                failures.push(format!("{}: {}", case.name, problems.join("; ")))
            }
            None => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases differ from Web API ({known} known differences):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
