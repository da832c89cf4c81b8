//! Security tests: dialects.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
use super::common;
use super::common::{serve_binary, Running};

/// The binary's memory is its own, so a test can read its high-water mark.
impl Running {
    /// `VmHWM` (peak resident set) in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server is still running");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }

    /// Writes the whole request (headers and body) before reading, as most
    /// clients do; the status line and body, and how long the answer took.
    fn exchange(&self, head: &str, body: &[u8]) -> (String, Duration) {
        let (answer, took) = self.exchange_bytes(head, body);
        (String::from_utf8_lossy(&answer).into_owned(), took)
    }

    fn exchange_bytes(&self, head: &str, body: &[u8]) -> (Vec<u8>, Duration) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let started = Instant::now();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        (answer, started.elapsed())
    }
}

/// `{"<400 KB name>":[1,1,…]}`, just under the default 1 MiB `--max-body`:
/// flattened naively, the name is copied once per item (gigabytes).
fn long_name_array() -> Vec<u8> {
    let mut body = format!("{{\"{}\":[1", "k".repeat(400_000));
    while body.len() < (1 << 20) - 8 {
        body.push_str(",1");
    }
    body.push_str("]}");
    body.into_bytes()
}

/// ~63 KB of XML, 8000 levels deep with 1000 leaves at the bottom: named
/// from its whole path, each leaf costs the depth.
fn deep_xml() -> Vec<u8> {
    format!(
        "<request>{}{}{}</request>",
        "<a>".repeat(8000),
        "<fileIds/>".repeat(1000),
        "</a>".repeat(8000)
    )
    .into_bytes()
}

#[test]
fn onlyoffice_hostile_bodies_are_answered_fast_in_bounded_memory() {
    let server = serve_binary(&[]);
    // Warm up (first request, CRC warmer) before taking the baseline.
    let (answer, _) = server.exchange(
        "GET /api/2.0/files/fileops HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"",
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    std::thread::sleep(Duration::from_millis(300));
    let baseline = server.peak_rss_kib();

    let bodies = [
        ("application/json", long_name_array()),
        ("text/xml", deep_xml()),
    ];
    for (content_type, body) in &bodies {
        let head = |auth: &str| {
            format!(
                "PUT /api/2.0/files/fileops/bulkdownload HTTP/1.1\r\nHost: x\r\n{auth}\
                 Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
        };
        // Nobody: refused before the body is parsed.
        let (answer, took) = server.exchange(&head(""), body);
        assert!(
            answer.starts_with("HTTP/1.1 401"),
            "{content_type}: {}",
            &answer[..answer.len().min(300)]
        );
        assert!(answer.ends_with("Unauthorized"), "{content_type}: {answer}");
        assert!(took < Duration::from_secs(2), "{content_type}: {took:?}");
        // A user: parsed, and refused at the cap with the vendor's envelope.
        let (answer, took) = server.exchange(&head("Authorization: Bearer alice-token\r\n"), body);
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{content_type}: {}",
            &answer[..answer.len().min(300)]
        );
        let envelope = answer.split_once("\r\n\r\n").unwrap().1;
        let envelope: serde_json::Value = serde_json::from_str(envelope).unwrap();
        assert_eq!(envelope["status"], 1, "{envelope}");
        assert_eq!(envelope["statusCode"], 400, "{envelope}");
        assert_eq!(envelope["error"]["hresult"], -2147024809_i64, "{envelope}");
        assert!(
            envelope["error"]["message"]
                .as_str()
                .unwrap()
                .contains("too many parameters"),
            "{envelope}"
        );
        assert!(took < Duration::from_secs(2), "{content_type}: {took:?}");
    }
    // Still serving, and its peak memory barely moved.
    let (answer, _) = server.exchange(
        "GET /_zipgate/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let grown = server.peak_rss_kib().saturating_sub(baseline);
    assert!(grown < 64 * 1024, "peak RSS grew by {grown} KiB");
}

/// Alice's Oracle job for `notes.md` (an immediately ready package): its
/// package's path on our origin.
async fn oracle_package_of_notes(s: &common::Clocked) -> String {
    let folder = "FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D";
    let file = "DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813";
    let created = common::call(
        s,
        http::Method::POST,
        &format!("/documents/api/1.2/folders/{folder}/_download"),
        &[
            ("authorization", "Bearer alice-token"),
            ("content-type", "application/json"),
        ],
        &format!(r#"{{"idList":"{file}"}}"#),
    )
    .await;
    assert_eq!(created.status, http::StatusCode::OK);
    let location = created.json()["Location"].as_str().unwrap().to_owned();
    let job = location
        .strip_prefix(&format!("http://{}", common::HOST))
        .expect("a URL on our origin");
    format!("{job}/package")
}

mod head {
    //! Point 6: `HEAD` on a download URL answers the `GET`'s headers and
    //! claims nothing.

    use super::common::*;
    use http::{Method, StatusCode};

    const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");
    const JSON: (&str, &str) = ("content-type", "application/json");
    /// The headers that describe the payload, which `HEAD` must repeat.
    const PAYLOAD: &[&str] = &[
        "content-type",
        "content-length",
        "content-disposition",
        "accept-ranges",
    ];

    fn path_of(url: &str) -> String {
        url.strip_prefix(&format!("http://{HOST}"))
            .expect("a URL on our origin")
            .to_owned()
    }

    /// Every job as `/_zipgate/jobs` would list it, to see that `HEAD` changed none.
    fn jobs(s: &Clocked) -> String {
        format!("{:?}", s.server.jobs().unwrap())
    }

    /// `HEAD` twice, then `GET`: the same status and payload headers, no
    /// body on the `HEAD`s, the jobs untouched by them, and the `GET` serves
    /// the whole archive.
    async fn head_then_get(s: &Clocked, path: &str, auth: &[(&str, &str)]) {
        let before = jobs(s);
        let head = call(s, Method::HEAD, path, auth, "").await;
        assert_eq!(head.status, StatusCode::OK, "{path}");
        assert!(head.body.is_empty());
        assert_eq!(jobs(s), before, "HEAD {path} changed a job");
        let again = call(s, Method::HEAD, path, auth, "").await;
        assert_eq!(again.status, StatusCode::OK, "{path}: a second HEAD");
        let get = call(s, Method::GET, path, auth, "").await;
        assert_eq!(get.status, head.status, "{path}");
        for name in PAYLOAD {
            assert_eq!(get.header(name), head.header(name), "{path}: {name}");
        }
        assert!(head.header("content-disposition").is_some(), "{path}");
        let length: usize = get.header("content-length").unwrap().parse().unwrap();
        assert_eq!(get.body.len(), length, "{path}");
        assert!(get.body.starts_with(b"PK"), "{path}");
    }

    #[tokio::test]
    async fn box_content() {
        let s = start_dialect("box", &[]).await;
        let created = call(
            &s,
            Method::POST,
            "/2.0/zip_downloads",
            &[ALICE, JSON],
            r#"{"items":[{"type":"file","id":"12345"}],"download_file_name":"Notes"}"#,
        )
        .await;
        assert_eq!(created.status, StatusCode::ACCEPTED);
        let content = path_of(created.json()["download_url"].as_str().unwrap());
        head_then_get(&s, &content, &[]).await;
        // Single use: the GET was the one download, and HEAD now says so too.
        let gone = call(&s, Method::HEAD, &content, &[], "").await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
    }

    /// Alice's ONLYOFFICE bulk download of `report.pdf`, answered 200.
    async fn bulk_download_of_report(s: &Clocked) -> Reply {
        let created = call(
            s,
            Method::PUT,
            "/api/2.0/files/fileops/bulkdownload",
            &[ALICE, JSON],
            r#"{"fileIds":[12345]}"#,
        )
        .await;
        assert_eq!(created.status, StatusCode::OK);
        created
    }

    #[tokio::test]
    async fn onlyoffice_archive() {
        let s = start_dialect("onlyoffice", &[("pacing", "immediate")]).await;
        bulk_download_of_report(&s).await;
        // Workspace's PUT shows the operation queued; the poll has the url.
        let listed = call(&s, Method::GET, "/api/2.0/files/fileops", &[ALICE], "").await;
        let url = listed.json()["response"][0]["url"]
            .as_str()
            .expect("a finished operation")
            .to_owned();
        head_then_get(&s, &path_of(&url), &[ALICE]).await;
    }

    #[tokio::test]
    async fn a_head_on_a_poll_route_advances_nothing() {
        // Finished on the second poll: HEADs in between must not count.
        let s = start_dialect("onlyoffice", &[("pacing", "polls:2")]).await;
        let list = "/api/2.0/files/fileops";
        bulk_download_of_report(&s).await;
        let before = jobs(&s);
        for _ in 0..3 {
            let head = call(&s, Method::HEAD, list, &[ALICE], "").await;
            assert_eq!(head.status, StatusCode::OK);
        }
        assert_eq!(jobs(&s), before, "HEAD {list} changed a job");
        let first = call(&s, Method::GET, list, &[ALICE], "").await;
        assert_eq!(first.json()["response"][0]["finished"], false);
        let second = call(&s, Method::GET, list, &[ALICE], "").await;
        assert_eq!(second.json()["response"][0]["finished"], true);
    }

    #[tokio::test]
    async fn oracle_package() {
        let s = start_dialect("oracle", &[("pacing", "immediate")]).await;
        let package = super::oracle_package_of_notes(&s).await;
        head_then_get(&s, &package, &[ALICE]).await;
    }

    #[tokio::test]
    async fn itslearning_download() {
        let s = start_dialect("itslearning", &[("pacing", "immediate")]).await;
        let created = call(
            &s,
            Method::POST,
            "/restapi/personal/yourfiles/files/zip/v1",
            &[ALICE, JSON],
            r#"{"FileIds":[12345],"FolderIds":[]}"#,
        )
        .await;
        assert_eq!(created.status, StatusCode::OK);
        let mut model = created.json();
        if model["DownloadUrl"].is_null() {
            let poll = format!(
                "/restapi/personal/yourfiles/files/zip/{}/v1",
                model["JobId"]
            );
            model = call(&s, Method::GET, &poll, &[ALICE], "").await.json();
        }
        let url = model["DownloadUrl"].as_str().map(str::to_owned);
        let url: String = url.unwrap_or_else(|| panic!("no DownloadUrl: {model}"));
        head_then_get(&s, &path_of(&url), &[]).await;
    }
}

mod oversized_bodies {
    //! Point 13: a client that writes its whole body before reading gets the
    //! vendor's refusal of a body over `--max-body`, not a reset.

    use std::io::{Read, Write};
    use std::time::Duration;

    use zipgate::server::Config;
    use zipgate::Server;

    const LIMIT: usize = 256 * 1024;

    /// Writes headers and the whole body (write errors are the old reset),
    /// then reads the answer to the end.
    fn write_all_then_read(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let written = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body));
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(
            written.is_ok() && read.is_ok(),
            "write {written:?}, read {read:?}, answer {answer:?}"
        );
        answer
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_create_route_answers_a_body_over_the_limit_with_its_envelope() {
        let server = Server::builder()
            .config(Config {
                max_body_bytes: LIMIT,
                ..Config::default()
            })
            .spawn()
            .await
            .unwrap();
        let addr = server.addr();
        let oracle =
            "/documents/api/1.2/folders/FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D/_download";
        // Route, method, status and a phrase of the vendor's refusal.
        let routes = [
            (
                "/2.0/zip_downloads",
                "POST",
                400,
                "larger than 262144 bytes",
            ),
            (
                "/api/2.0/files/fileops/bulkdownload",
                "PUT",
                400,
                "Maximum request length exceeded",
            ),
            (oracle, "POST", 400, "larger than 262144 bytes"),
            (
                "/restapi/personal/yourfiles/files/zip/v1",
                "POST",
                413,
                "The request is too large.",
            ),
            ("/_zipgate/zip", "POST", 413, "payload_too_large"),
        ];
        // Four times the limit: the most that is read and thrown away.
        let body = vec![b' '; 4 * LIMIT];
        for (path, method, status, phrase) in routes {
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer alice-token\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let body = body.clone();
            let answer =
                tokio::task::spawn_blocking(move || write_all_then_read(addr, &head, &body))
                    .await
                    .unwrap();
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")),
                "{path}: {answer}"
            );
            assert!(answer.contains(phrase), "{path}: {answer}");
        }
        // A chunked body has no length to judge by: read, counted, refused.
        let mut chunked = Vec::new();
        for _ in 0..8 {
            chunked.extend_from_slice(format!("{:x}\r\n", LIMIT / 4).as_bytes());
            chunked.extend(std::iter::repeat_n(b' ', LIMIT / 4));
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let head = "POST /2.0/zip_downloads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice-token\r\n\
                    Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        let answer = tokio::task::spawn_blocking(move || write_all_then_read(addr, head, &chunked))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "chunked: {answer}");
        assert!(
            answer.contains("larger than 262144 bytes"),
            "chunked: {answer}"
        );
        // A client that waits for `100 Continue` is not invited to send a
        // body that would be thrown away: it is refused at once.
        let head = format!(
            "POST /2.0/zip_downloads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice-token\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\
             Connection: close\r\n\r\n",
            2 * LIMIT
        );
        let answer = tokio::task::spawn_blocking(move || write_all_then_read(addr, &head, b""))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "expect: {answer}");
    }
}

mod download_names_and_ranges {
    //! Point 16: Box's archive name cannot climb folders; Oracle's 416 has its envelope.

    use super::common::*;
    use http::{Method, StatusCode};

    const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");
    const JSON: (&str, &str) = ("content-type", "application/json");

    #[tokio::test]
    async fn box_content_disposition_is_a_safe_name() {
        let s = start_dialect("box", &[]).await;
        let body = serde_json::json!({
            "items": [{"type": "file", "id": "12345"}],
            "download_file_name": "../../.ssh/authorized_keys\\..\\x:y\u{1}",
        })
        .to_string();
        let created = call(
            &s,
            Method::POST,
            "/2.0/zip_downloads",
            &[ALICE, JSON],
            &body,
        )
        .await;
        assert_eq!(created.status, StatusCode::ACCEPTED);
        let url = created.json()["download_url"].as_str().unwrap().to_owned();
        let path = url.strip_prefix(&format!("http://{HOST}")).unwrap();
        let content = call(&s, Method::GET, path, &[], "").await;
        assert_eq!(content.status, StatusCode::OK);
        let disposition = content.header("content-disposition").unwrap();
        assert_eq!(
            disposition,
            "attachment;filename=\".._.._.ssh_authorized_keys_.._x_y_.zip\";\
             filename*=UTF-8''.._.._.ssh_authorized_keys_.._x_y_.zip"
        );
    }

    #[tokio::test]
    async fn oracle_416_carries_the_error_envelope() {
        let s = start_dialect("oracle", &[("pacing", "immediate")]).await;
        let package = super::oracle_package_of_notes(&s).await;
        let full = call(&s, Method::GET, &package, &[ALICE], "").await;
        let size = full.body.len();
        let past = format!("bytes={}-", size + 10);
        let refused = call(&s, Method::GET, &package, &[ALICE, ("range", &past)], "").await;
        assert_eq!(refused.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(
            refused.header("content-range"),
            Some(format!("bytes */{size}").as_str())
        );
        assert_eq!(refused.header("content-type"), Some("application/json"));
        assert!(refused.header("x-oracle-dms-ecid").is_some());
        let body = refused.json();
        assert_eq!(body["errorCode"], "-1", "{body}");
        assert_eq!(body["errorMessage"], "Requested range cannot be satisfied.");
        assert_eq!(body["title"], body["errorMessage"]);
        assert_eq!(
            body["type"],
            "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html"
        );
        // The refusal used nothing: the whole package still comes.
        let again = call(&s, Method::GET, &package, &[ALICE], "").await;
        assert_eq!(again.body, full.body);
    }
}

mod portable_names {
    //! Point 17: `--portable-names` gives entry names that extract the same
    //! on case-insensitive, normalising and Windows file systems.

    use super::common::*;
    use super::serve_binary;

    /// A folder whose files differ only by case or normalisation, or that
    /// Windows would refuse or alter.
    fn fixture() -> String {
        let long = format!("{}.txt", "x".repeat(300));
        let names = [
            "Report.txt",
            "report.txt",
            "Caf\u{e9}.txt",
            "Cafe\u{301}.txt",
            "CON.txt",
            "notes. ",
            long.as_str(),
        ];
        let children: Vec<serde_json::Value> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                serde_json::json!({"id": format!("n{i}"), "name": name, "content": {"text": i.to_string()}})
            })
            .collect();
        serde_json::json!({"nodes": [{"id": "f", "name": "F", "children": children}]}).to_string()
    }

    fn entry_names(archive: Vec<u8>) -> Vec<String> {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).unwrap();
        (0..zip.len())
            .map(|i| zip.by_index(i).unwrap().name().unwrap().into_owned())
            .collect()
    }

    fn portable_expected() -> Vec<String> {
        [
            "F/".to_owned(),
            "F/Report.txt".to_owned(),
            "F/report (1).txt".to_owned(),
            "F/Caf\u{e9}.txt".to_owned(),
            "F/Cafe\u{301} (1).txt".to_owned(),
            "F/_CON.txt".to_owned(),
            "F/notes__".to_owned(),
            format!("F/{}.txt", "x".repeat(251)),
        ]
        .to_vec()
    }

    #[tokio::test]
    async fn look_alikes_reserved_and_long_names_over_http() {
        let request = serde_json::json!({"items": [{"id": "f"}]});
        // Off by default: the names as the store has them.
        let server = start_with(&fixture()).await;
        let reply = zip(&server, &request, None).await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let names = entry_names(reply.body);
        assert!(names.contains(&"F/report.txt".to_owned()), "{names:?}");
        assert!(names.contains(&"F/CON.txt".to_owned()), "{names:?}");
        // On (the builder's switch): every name unique after case folding
        // and NFC, nothing Windows refuses, nothing over 255 bytes.
        let server = zipgate::Server::builder()
            .fixtures_json(&fixture())
            .unwrap()
            .portable_names(true)
            .spawn()
            .await
            .unwrap();
        let reply = zip(&server, &request, None).await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(entry_names(reply.body), portable_expected());
    }

    #[test]
    fn the_binary_takes_the_flag() {
        let dir = TempDir::new("portable-names");
        let path = dir.path().join("fixture.json");
        std::fs::write(&path, fixture()).unwrap();
        let server = serve_binary(&["--portable-names", "--fixtures", path.to_str().unwrap()]);
        let body = r#"{"items":[{"id":"f"}]}"#;
        let head = format!(
            "POST /_zipgate/zip HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let (answer, _) = server.exchange_bytes(&head, body.as_bytes());
        let at = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        assert!(answer.starts_with(b"HTTP/1.1 200"));
        assert_eq!(entry_names(answer[at + 4..].to_vec()), portable_expected());
    }
}
