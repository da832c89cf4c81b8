//! The dashboard at `/_zipgate/ui` and its live feed `/_zipgate/events`
//! (Server-Sent Events): over real HTTP here, and in a real browser
//! (Debian's chromium driven by Playwright, `tests/clients/dashboard_browser.py`)
//! with real Box and ONLYOFFICE clients.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use zipgate::ServerHandle;

const TOKEN: &str = "dashboard-token";

async fn start() -> ServerHandle {
    common::builder()
        .control_token(TOKEN)
        .spawn()
        .await
        .expect("server starts")
}

/// One SSE event as a client parses it.
#[derive(Debug, Clone)]
struct Sse {
    event: String,
    id: Option<u64>,
    data: String,
}

/// An open `/_zipgate/events` stream, read frame by frame.
struct Feed {
    body: Incoming,
    buffer: String,
}

impl Feed {
    async fn open(server: &ServerHandle, last_event_id: Option<&str>) -> Feed {
        let mut headers = vec![("x-zipgate-control-token", TOKEN)];
        if let Some(id) = last_event_id {
            headers.push(("last-event-id", id));
        }
        let response = open(server, Method::GET, "/_zipgate/events", &headers, "").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Feed {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// `open` on a socket with a 4 KiB receive buffer: one that falls
    /// behind soon when it is not read.
    async fn open_small(server: &ServerHandle) -> Feed {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(server.addr()).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = http::Request::get("/_zipgate/events")
            .header("host", server.addr().to_string())
            .header("x-zipgate-control-token", TOKEN)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Feed {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event (comments and `retry:` skipped), or None when the
    /// stream ended; panics after 5 s.
    async fn next(&mut self) -> Option<Sse> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Sse {
                    event: String::new(),
                    id: None,
                    data: String::new(),
                };
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event.event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        event.id = Some(v.parse().expect("numeric id"));
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        event.data = v.to_owned();
                    }
                }
                if event.event.is_empty() {
                    continue; // a comment or the retry line
                }
                return Some(event);
            }
            let frame = tokio::time::timeout_at(deadline.into(), self.body.frame())
                .await
                .expect("an event within 5 s");
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.push_str(std::str::from_utf8(&data).unwrap());
                    }
                }
                _ => return None,
            }
        }
    }

    /// Events until one of `kind` whose data contains `needle`.
    async fn until(&mut self, kind: &str, needle: &str) -> Vec<Sse> {
        let mut seen = Vec::new();
        loop {
            let event = self
                .next()
                .await
                .unwrap_or_else(|| panic!("stream ended before {kind} {needle}: {seen:?}"));
            let done = event.event == kind && event.data.contains(needle);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

/// The job id in a Box create answer's `download_url` (…/zip_downloads/{id}/content).
fn box_job_id(created: &serde_json::Value) -> String {
    created["download_url"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(5)
        .unwrap()
        .to_owned()
}

async fn box_create(server: &ServerHandle) -> serde_json::Value {
    let reply = box_create_as_alice(server, r#"{"items":[{"type":"file","id":"12345"}]}"#).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    reply.json()
}

#[tokio::test]
async fn the_feed_needs_the_token_and_the_page_does_not() {
    let server = start().await;
    let refused = send(&server, Method::GET, "/_zipgate/events", &[], "").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    for (path, kind) in [
        ("/_zipgate/ui", "text/html; charset=utf-8"),
        ("/_zipgate/ui/app.js", "text/javascript; charset=utf-8"),
        ("/_zipgate/ui/app.css", "text/css; charset=utf-8"),
        ("/_zipgate/ui/favicon.svg", "image/svg+xml"),
    ] {
        let page = send(&server, Method::GET, path, &[], "").await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(page.header("content-type"), Some(kind), "{path}");
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.starts_with("default-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    }
    let html = String::from_utf8(
        send(&server, Method::GET, "/_zipgate/ui", &[], "")
            .await
            .body,
    )
    .unwrap();
    assert!(html.contains("/_zipgate/ui/app.js") && html.contains("/_zipgate/ui/app.css"));
    // Nothing inline for the CSP to block.
    assert!(!html.contains("<script>") && !html.contains("style="));
    // The page is the control plane's: a foreign Host (DNS rebinding) is refused.
    let foreign = send(
        &server,
        Method::GET,
        "/_zipgate/ui",
        &[("host", "evil.example")],
        "",
    )
    .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    let foreign_feed = send(
        &server,
        Method::GET,
        "/_zipgate/events",
        &[("host", "evil.example"), ("x-zipgate-control-token", TOKEN)],
        "",
    )
    .await;
    assert_eq!(foreign_feed.status, StatusCode::FORBIDDEN);
    server.shutdown().await;
}

#[tokio::test]
async fn events_resume_without_gaps_and_ask_for_a_reload_when_they_cannot() {
    let server = start().await;
    let mut feed = Feed::open(&server, None).await;
    let hello = feed.next().await.unwrap();
    assert_eq!(hello.event, "hello");
    let hello_data: serde_json::Value = serde_json::from_str(&hello.data).unwrap();
    let instance = hello_data["instance"].as_str().unwrap().to_owned();
    assert_eq!(hello.id, Some(0), "a fresh client starts at the last id");

    let created = box_create(&server).await;
    let job_id = box_job_id(&created);
    let seen = feed.until("request", "\"status\":202").await;
    let job = seen.iter().find(|e| e.event == "job").expect("a job event");
    let job: serde_json::Value = serde_json::from_str(&job.data).unwrap();
    assert_eq!(
        (job["dialect"].as_str(), job["id"].as_str()),
        (Some("box"), Some(job_id.as_str()))
    );
    // The journal entry as the control plane lists it: redacted.
    let request = seen.last().unwrap();
    assert!(request.data.contains("\"path\":\"/2.0/zip_downloads\""));
    assert!(request.data.contains("<redacted>") && !request.data.contains("alice-token"));
    let last = request.id.unwrap();
    drop(feed);

    // Away for a moment: the download happens meanwhile.
    let download = send(
        &server,
        Method::GET,
        &download_path(&created),
        &[("authorization", "Bearer alice-token")],
        "",
    )
    .await;
    assert_eq!(download.status, StatusCode::OK);
    let mut back = Feed::open(&server, Some(&last.to_string())).await;
    let hello = back.next().await.unwrap();
    assert_eq!((hello.event.as_str(), hello.id), ("hello", None));
    assert!(hello.data.contains(&instance));
    let missed = back.until("job", "\"state\":\"done\"").await;
    let ids: Vec<u64> = missed.iter().map(|e| e.id.unwrap()).collect();
    let expected: Vec<u64> = (last + 1..=last + ids.len() as u64).collect();
    assert_eq!(ids, expected, "no gap, no repeat: {missed:?}");
    assert!(missed
        .iter()
        .any(|e| e.event == "request" && e.data.contains("/content")));
    drop(back);

    // An id this server never gave (another instance), or garbage: reload.
    for stale in ["999999", "yesterday"] {
        let mut feed = Feed::open(&server, Some(stale)).await;
        let hello = feed.next().await.unwrap();
        let resync = feed.next().await.unwrap();
        assert_eq!(resync.event, "resync", "{stale}");
        assert_eq!(hello.id, resync.id, "the reload starts from the last id");
    }

    // Reset, fault rules and the clock are events too.
    let mut feed = Feed::open(&server, None).await;
    feed.next().await.unwrap();
    let control = [
        ("x-zipgate-control-token", TOKEN),
        ("content-type", "application/json"),
    ];
    send(
        &server,
        Method::POST,
        "/_zipgate/faults",
        &control,
        r#"{"match":{"dialect":"box"},"respond":{"status":503}}"#,
    )
    .await;
    feed.until("fault", "fault-1").await;
    send(
        &server,
        Method::POST,
        "/_zipgate/clock/advance",
        &control,
        r#"{"seconds":60}"#,
    )
    .await;
    feed.until("clock", "now").await;
    send(&server, Method::POST, "/_zipgate/reset", &control, "").await;
    feed.until("reset", "{}").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_told_to_reload_and_never_slows_requests() {
    let server = start().await;
    // Opened and not read while the requests run, on a socket with a small
    // receive buffer: the server's send buffer fills, then the stream's
    // place in the channel falls behind. Each request makes three events
    // (its job, its journal entry twice), two with its 32 KiB body: ~40 MiB.
    let mut stalled = Feed::open_small(&server).await;
    let body = format!(
        r#"{{"items":[{{"type":"file","id":"12345"}}],"pad":"{}"}}"#,
        "x".repeat(32 * 1024)
    );
    let create = || {
        send(
            &server,
            Method::POST,
            "/2.0/zip_downloads",
            &[
                ("authorization", "Bearer alice-token"),
                ("content-type", "application/json"),
            ],
            body.clone(),
        )
    };
    // Were publishing to wait for the reader, this would hang.
    for _ in 0..600 {
        assert_ne!(create().await.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    // Read now: what was buffered, then `resync` where events were lost,
    // then it goes on live.
    let before = stalled.until("resync", "{}").await;
    assert!(
        before.len() < 1800,
        "it got all {} events: it was never behind",
        before.len()
    );
    let resync = before.last().unwrap().id.unwrap();
    let after = stalled.next().await.unwrap();
    assert_eq!(
        after.id,
        Some(resync + 1),
        "the stream goes on right after the resync id"
    );
    let fresh = create().await;
    assert_eq!(fresh.status, StatusCode::ACCEPTED);
    let id = box_job_id(&fresh.json());
    stalled.until("job", &id).await;
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_the_streams_at_once() {
    let server = start().await;
    let mut feed = Feed::open(&server, None).await;
    feed.next().await.unwrap();
    let started = Instant::now();
    server.shutdown().await;
    // The grace period is 5 s; an event stream must not hold it.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(feed.next().await.is_none());
}

/// The browser script, killed if the test ends before it does.
struct Script(std::process::Child);

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The page in Debian's chromium (Playwright), with the Box Python SDK and
/// an ONLYOFFICE web-style client: see the script for every step. Midway the
/// script asks for a restart (a line protocol on its stdin and stdout): on
/// `RESTART` the server is SIGKILLed, on `DOWN-SEEN` a new one starts on the
/// same port with the same token, and `RESTARTED` tells the script.
#[test]
fn the_dashboard_works_in_a_real_browser() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::Stdio;
    use std::sync::mpsc::{self, RecvTimeoutError};
    use std::sync::{Arc, Mutex};

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(
        Path::new("/usr/bin/chromium").exists()
            && python.exists()
            && root.join(".venv-onlyoffice-pypi/bin/python").exists(),
        "run tests/run: it installs chromium (apt), Playwright (.venv) and PyPI's ONLYOFFICE client"
    );
    let mut server = serve_binary(&["--control-token", TOKEN]);
    let addr = server.addr.clone();
    let artifacts = root.join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut script = Script(
        Command::new(&python)
            .arg(root.join("tests/clients/dashboard_browser.py"))
            .arg(format!("http://{addr}"))
            .arg(TOKEN)
            .arg(&screenshot)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the browser script runs"),
    );
    let mut stdin = script.0.stdin.take().unwrap();
    let stdout = script.0.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let errors = Arc::new(Mutex::new(Vec::new()));
    let stderr_done = {
        let errors = errors.clone();
        let mut stderr = script.0.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                errors.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        })
    };
    let mut out = String::new();
    let report = |out: &str, why: &str| {
        format!(
            "{why}\n--- the script's stdout:\n{out}--- its stderr:\n{}",
            String::from_utf8_lossy(&errors.lock().unwrap())
        )
    };

    // The script's lines until it closes stdout (it is exiting), the
    // restart done when it asks for it.
    #[derive(Debug, PartialEq)]
    enum Restart {
        NotYet,
        Killed,
        Restarted,
    }
    let mut restart = Restart::NotYet;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let line = match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => line,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}", report(&out, "the script did not finish within 180 s"))
            }
        };
        out.push_str(&line);
        out.push('\n');
        match line.as_str() {
            "RESTART" => {
                assert_eq!(
                    restart,
                    Restart::NotYet,
                    "{}",
                    report(&out, "RESTART out of turn")
                );
                server.child.kill().expect("SIGKILL the server");
                server.child.wait().expect("reap the server");
                restart = Restart::Killed;
            }
            "DOWN-SEEN" => {
                assert_eq!(
                    restart,
                    Restart::Killed,
                    "{}",
                    report(&out, "DOWN-SEEN out of turn")
                );
                server = serve_binary_on(&addr, &["--control-token", TOKEN])
                    .unwrap_or_else(|why| panic!("{}", report(&out, &why)));
                stdin
                    .write_all(b"RESTARTED\n")
                    .and_then(|()| stdin.flush())
                    .unwrap_or_else(|e| {
                        panic!("{}", report(&out, &format!("writing RESTARTED: {e}")))
                    });
                restart = Restart::Restarted;
            }
            _ => {}
        }
    }
    let exit_by = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = script.0.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > exit_by {
            panic!(
                "{}",
                report(
                    &out,
                    "the script closed stdout but did not exit within 20 s"
                )
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Its stderr ends with it (unless a child of its still holds it).
    let stderr_by = Instant::now() + Duration::from_secs(5);
    while !stderr_done.is_finished() && Instant::now() < stderr_by {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        status.success(),
        "{}",
        report(&out, &format!("the script failed: {status}"))
    );
    assert_eq!(
        restart,
        Restart::Restarted,
        "{}",
        report(&out, "the script never went through the restart")
    );
    println!("{out}");
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"));
    drop(server);
}
