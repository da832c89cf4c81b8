//! Security tests: the connection cap (issue #15, point 14). A client that
//! opens sockets and sends nothing must not run the server out of file
//! descriptors and lock everyone out until `--header-timeout`: past
//! `--max-connections` a connection is told 503 at once and closed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zipgate::Server;

/// Well under the default `--header-timeout` (30 s): a refusal that waits
/// for the header timeout (or never comes) fails the test.
const PROMPTLY: Duration = Duration::from_secs(5);

/// A raw HTTP/1.1 response: status, headers (names lower-cased) and body.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn parse(bytes: &[u8]) -> Raw {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {text:?}"));
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Raw {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends `GET path` with `Connection: close` on a new connection (or sends
/// nothing when `path` is `None`) and reads until the server closes, within
/// `PROMPTLY`.
async fn exchange(addr: std::net::SocketAddr, path: Option<&str>) -> Raw {
    try_exchange(addr, path).await.expect("read")
}

/// As `exchange`; a connection the server dropped unanswered (it does so
/// while its refusals in flight are at their own cap) is an error.
async fn try_exchange(addr: std::net::SocketAddr, path: Option<&str>) -> std::io::Result<Raw> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    if let Some(path) = path {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
    }
    let mut response = Vec::new();
    tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut response))
        .await
        .unwrap_or_else(|_| panic!("no answer within {PROMPTLY:?}"))?;
    assert!(started.elapsed() < PROMPTLY);
    Ok(Raw::parse(&response))
}

fn assert_refused(reply: &Raw) {
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.header("content-length"),
        Some(reply.body.len().to_string().as_str())
    );
    let json = reply.json();
    assert_eq!(json["error"], "too_many_connections");
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
}

/// Health over a new connection, retried while the server is still full
/// (a slot frees when the server notices the close, not at once).
async fn health_when_served(addr: std::net::SocketAddr) -> serde_json::Value {
    let deadline = Instant::now() + PROMPTLY;
    loop {
        // Right after a flood, a connection may still be dropped unanswered.
        if let Ok(reply) = try_exchange(addr, Some("/_zipgate/health")).await {
            if reply.status == 200 {
                return reply.json();
            }
            assert_refused(&reply);
        }
        assert!(
            Instant::now() < deadline,
            "no slot freed within {PROMPTLY:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Idle connections: TCP connected, no request sent.
async fn hold(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    held
}

/// Polls health until it counts `want` connections (itself included).
async fn wait_for_count(addr: std::net::SocketAddr, want: u64) {
    let deadline = Instant::now() + PROMPTLY;
    loop {
        let health = health_when_served(addr).await;
        if health["connections"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "health counts {} connections, expected {want}",
            health["connections"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn past_the_cap_a_connection_gets_503_at_once_and_a_freed_slot_serves_again() {
    let server = Server::builder()
        .max_connections(4)
        .spawn()
        .await
        .expect("server starts");
    let addr = server.addr();
    let mut held = hold(addr, 4).await;
    // Every slot taken by a client that sends nothing: the next client is
    // told so at once, whether it sent its request or not yet.
    assert_refused(&exchange(addr, Some("/_zipgate/health")).await);
    assert_refused(&exchange(addr, None).await);
    // A vendor path gets the same neutral answer: no route is known yet.
    assert_refused(&exchange(addr, Some("/2.0/zip_downloads")).await);

    // One idle client leaves: its slot serves the next client normally,
    // and health counts the three still held plus itself.
    drop(held.pop());
    let health = health_when_served(addr).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["connections"], 4);
    assert_eq!(health["max_connections"], 4);

    // The held connections were never disturbed: each still serves.
    for stream in &mut held {
        let request =
            format!("GET /_zipgate/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut response))
            .await
            .expect("answered")
            .expect("read");
        assert_eq!(Raw::parse(&response).status, 200);
    }
    // All gone: the count falls back to the one asking.
    drop(held);
    wait_for_count(addr, 1).await;
}

#[tokio::test]
async fn health_counts_live_connections() {
    let server = Server::builder().spawn().await.expect("server starts");
    let addr = server.addr();
    let held = hold(addr, 3).await;
    wait_for_count(addr, 4).await;
    drop(held);
    wait_for_count(addr, 1).await;
    let health = health_when_served(addr).await;
    let max = health["max_connections"].as_u64().expect("max_connections");
    assert!(
        max >= 16,
        "the default cap is at least its floor, got {max}"
    );
}

#[tokio::test]
async fn a_flood_past_the_cap_is_answered_or_dropped_and_leaves_the_server_serving() {
    let server = Server::builder()
        .max_connections(2)
        .spawn()
        .await
        .expect("server starts");
    let addr = server.addr();
    let held = hold(addr, 2).await;
    // Many more clients than the refusals the server answers at once, none
    // of which reads: each is answered or dropped, none waits on the header
    // timeout, and no refusal outlives its short deadline.
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let started = Instant::now();
    for mut stream in flood {
        let mut sink = Vec::new();
        let read = tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "a refused connection was left open");
        if let (Ok(Ok(_)), false) = (read, sink.is_empty()) {
            assert_refused(&Raw::parse(&sink));
        }
    }
    assert!(started.elapsed() < PROMPTLY);
    drop(held);
    let health = health_when_served(addr).await;
    assert_eq!(health["max_connections"], 2);
}

#[tokio::test]
async fn a_cap_of_zero_is_a_start_error() {
    let error = Server::builder()
        .max_connections(0)
        .spawn()
        .await
        .err()
        .expect("a cap of 0 is refused");
    assert!(error.to_string().contains("max-connections"), "{error}");
}

/// `zipgate serve --listen 127.0.0.1:0 ARGS` through `sh -c PREFIX exec …`;
/// returns the child and the address it printed.
fn serve_through_shell(prefix: &str, args: &[&str]) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{prefix} exec \"$0\" serve --listen 127.0.0.1:0 \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_zipgate"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("zipgate starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("zipgate prints its address");
    let addr = line
        .trim()
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an address: {line:?}"))
        .parse()
        .expect("an address");
    (child, addr)
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_binary_refuses_a_bad_max_connections() {
    for bad in ["0", "-1", "lots", "", "99999999999"] {
        let output = Command::new(env!("CARGO_BIN_EXE_zipgate"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg(format!("--max-connections={bad}"))
            .stdin(Stdio::null())
            .output()
            .expect("zipgate runs");
        assert!(
            !output.status.success(),
            "--max-connections {bad:?} accepted"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The flag is known and its value is what is refused.
        assert!(
            stderr.contains("invalid value") && stderr.contains("--max-connections"),
            "{bad:?}: {stderr}"
        );
    }
}

#[test]
fn the_binary_caps_connections_and_derives_the_default_from_the_fd_limit() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (child, addr) = serve_through_shell("", &["--max-connections", "2", "--workers", "2"]);
    let _child = Killed(child);
    runtime.block_on(async {
        let held = hold(addr, 2).await;
        assert_refused(&exchange(addr, Some("/_zipgate/health")).await);
        drop(held);
        let health = health_when_served(addr).await;
        assert_eq!(health["max_connections"], 2);
    });

    // With 256 descriptors in all (soft and hard, so raising the soft
    // limit cannot help), the cap leaves a quarter for files and the log.
    let (child, addr) = serve_through_shell("ulimit -n 256 &&", &[]);
    let _child = Killed(child);
    runtime.block_on(async {
        let health = health_when_served(addr).await;
        assert_eq!(health["max_connections"], 192);
    });

    // The soft limit is raised to the hard one at start: with a soft limit
    // of 256 under a higher hard limit, the cap follows the hard one.
    let hard = String::from_utf8(
        Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    if let Ok(hard) = hard.trim().parse::<u64>() {
        if hard > 1024 {
            let (child, addr) = serve_through_shell("ulimit -Sn 256 &&", &[]);
            let _child = Killed(child);
            runtime.block_on(async {
                let health = health_when_served(addr).await;
                let max = health["max_connections"].as_u64().unwrap();
                assert!(max > 192, "soft limit not raised: cap {max}");
            });
        }
    }
}
