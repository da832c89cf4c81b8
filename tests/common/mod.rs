//! Shared by the integration tests: start the real server on port 0, talk
//! HTTP/1.1 to it, and hand archives to real zip readers.
#![allow(dead_code)]

pub mod as_store;
pub mod redis;
pub mod replicas;
pub mod s3;

use std::io::Read;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::net::TcpStream;
use zipgate::api::{NodeId, Principal, SelectedItem};
use zipgate::planner::{self, PlanOptions};

use chrono::{TimeZone, Utc};
use zipgate::clock::ManualClock;
use zipgate::store::{fixture, Node, NodeData};
use zipgate::{Server, ServerHandle};

/// `Server::builder()`, keeping jobs in Redis when `ZIPGATE_TEST_REDIS`
/// names one (`tests/run` runs the dialect suites a second time so), each
/// server under a namespace of its own.
pub fn builder() -> zipgate::ServerBuilder {
    with_test_jobs(Server::builder())
}

/// A server of `config` (which replaces every setting, the job store
/// too), with `builder`'s job store.
pub fn configured(config: zipgate::server::Config) -> zipgate::ServerBuilder {
    with_test_jobs(Server::builder().config(config))
}

/// For a chain that sets `.config(…)` (which replaces the job store):
/// `.config(…).test_jobs()`.
pub trait TestJobs {
    fn test_jobs(self) -> Self;
}

impl TestJobs for zipgate::ServerBuilder {
    fn test_jobs(self) -> Self {
        with_test_jobs(self)
    }
}

fn with_test_jobs(builder: zipgate::ServerBuilder) -> zipgate::ServerBuilder {
    match std::env::var("ZIPGATE_TEST_REDIS") {
        Ok(url) if !url.is_empty() => {
            builder.jobs_in_redis(&url, &uuid::Uuid::new_v4().simple().to_string())
        }
        _ => builder,
    }
}

pub async fn start_default() -> ServerHandle {
    builder().spawn().await.expect("server starts")
}

/// The default fixtures under `config`.
pub async fn start_with_config(config: zipgate::server::Config) -> ServerHandle {
    configured(config).spawn().await.expect("server starts")
}

pub async fn start_with(fixture_json: &str) -> ServerHandle {
    builder()
        .fixtures_json(fixture_json)
        .expect("fixture parses")
        .spawn()
        .await
        .expect("server starts")
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends one request on a fresh connection and returns the response head
/// with its body still unread.
pub async fn open(
    server: &ServerHandle,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> http::Response<Incoming> {
    try_open(server, method, path, headers, body)
        .await
        .expect("response")
}

/// As `open`, but a connection closed before the response head (a stream
/// that failed before its first chunk is cut that way) is an error.
pub async fn try_open(
    server: &ServerHandle,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<http::Response<Incoming>, hyper::Error> {
    let stream = TcpStream::connect(server.addr()).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = Request::builder().method(method).uri(path);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request = request.header("host", server.addr().to_string());
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.into())).expect("request");
    sender.send_request(request).await
}

/// The response's `Content-Length`, which the test expects to be there.
pub fn content_length<B>(response: &http::Response<B>) -> u64 {
    response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .expect("a numeric Content-Length")
}

pub async fn send(
    server: &ServerHandle,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let response = open(server, method, path, headers, body).await;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes().to_vec();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// The path of a Box create answer's `download_url` (its origin left out).
pub fn download_path(created: &serde_json::Value) -> String {
    let url = created["download_url"].as_str().expect("a download_url");
    url[url.find("/2.0/").expect("a Box API path")..].to_owned()
}

pub async fn get(server: &ServerHandle, path: &str) -> Reply {
    send(server, Method::GET, path, &[], Bytes::new()).await
}

/// `POST /_zipgate/zip` with a JSON body, optionally as a user.
pub async fn zip(server: &ServerHandle, body: &serde_json::Value, token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    send(
        server,
        Method::POST,
        "/_zipgate/zip",
        &headers,
        body.to_string(),
    )
    .await
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "zipgate-test-{}-{}-{label}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What an archive of `ids`, read as `principal`, must contain: entry names
/// in order, and each file's bytes (read straight from the store).
pub fn expected_entries(
    fixture_json: &str,
    principal: &Principal,
    ids: &[&str],
) -> Vec<(String, Option<Vec<u8>>)> {
    let store = fixture::parse(fixture_json, None).unwrap();
    let selection: Vec<SelectedItem> = ids
        .iter()
        .map(|id| SelectedItem {
            id: NodeId::from(*id),
            expected_kind: None,
            name: None,
        })
        .collect();
    let plan = planner::plan(&store, principal, &selection, &mut PlanOptions::default()).unwrap();
    plan.entries
        .iter()
        .map(|entry| {
            let content = file_bytes(&entry.node);
            (entry.path.clone(), content)
        })
        .collect()
}

/// A file node's bytes, read from its content source; `None` for a folder.
pub fn file_bytes(node: &Node) -> Option<Vec<u8>> {
    match &node.data {
        NodeData::Folder(_) => None,
        NodeData::File(body) => {
            let mut bytes = Vec::new();
            body.content
                .open_at(0)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            Some(bytes)
        }
    }
}

/// The `Host` dialect tests send, so absolute URLs in golden files do not
/// depend on the port.
pub const HOST: &str = "zipgate.test";

/// One request to a clocked server with `Host: zipgate.test`.
pub async fn call(
    s: &Clocked,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    // The test origin, unless the test names a host of its own.
    let mut all = Vec::with_capacity(headers.len() + 1);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        all.push(("host", HOST));
    }
    all.extend_from_slice(headers);
    send(&s.server, method, path, &all, body.to_owned()).await
}

/// A server on the embedded fixtures with a clock the test moves.
pub struct Clocked {
    pub server: ServerHandle,
    pub clock: Arc<ManualClock>,
}

/// Starts at 2025-03-01T10:00:00Z with `dialect`'s settings.
pub async fn start_dialect(dialect: &str, settings: &[(&str, &str)]) -> Clocked {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2025, 3, 1, 10, 0, 0).unwrap(),
    ));
    // Seeded, so golden answers (download URLs included) are reproducible.
    let mut builder = builder().clock(clock.clone()).seed(0);
    for (key, value) in settings {
        builder = builder.setting(dialect, key, value);
    }
    Clocked {
        server: builder.spawn().await.unwrap(),
        clock,
    }
}

pub fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| {
        panic!("cannot run {command:?}: {e} (is it installed? .ci/run installs it)")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

/// Checks an archive with every reader we support: Info-ZIP `unzip -t`,
/// Python's `zipfile` (testzip and a byte-for-byte compare), `bsdtar` and `7z`.
pub fn check_with_readers(archive: &[u8], expected: &[(String, Option<Vec<u8>>)]) {
    let dir = TempDir::new("readers");
    let zip_path = dir.path().join("archive.zip");
    std::fs::write(&zip_path, archive).unwrap();
    let expected_dir = dir.path().join("expected");
    for (name, content) in expected {
        if let Some(bytes) = content {
            let path = expected_dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
    let names: Vec<&str> = expected.iter().map(|(name, _)| name.as_str()).collect();
    check_archive_file(&zip_path, &names, Some(&expected_dir));

    let extract = dir.path().join("bsdtar-out");
    std::fs::create_dir_all(&extract).unwrap();
    run(Command::new("bsdtar")
        .arg("-xf")
        .arg(&zip_path)
        .arg("-C")
        .arg(&extract));
    for (name, content) in expected {
        if let Some(bytes) = content {
            let got = std::fs::read(extract.join(name))
                .unwrap_or_else(|e| panic!("bsdtar extracted no {name}: {e}"));
            assert!(got == *bytes, "bsdtar extracted different bytes for {name}");
        } else {
            assert!(extract.join(name).is_dir(), "bsdtar made no folder {name}");
        }
    }
}

/// Runs every reader over an archive on disk: `unzip -t`, `7z t` and Python's
/// `testzip` check each CRC; entry names must be `names` in order; with
/// `expected_dir`, Python also compares each file's bytes with its copy there.
pub fn check_archive_file(zip_path: &Path, names: &[&str], expected_dir: Option<&Path>) {
    let listing_path = zip_path.with_extension("expected.txt");
    std::fs::write(
        &listing_path,
        names.iter().map(|n| format!("{n}\n")).collect::<String>(),
    )
    .unwrap();

    let unzip = run(Command::new("unzip").arg("-t").arg(zip_path));
    assert!(unzip.contains("No errors detected"), "{unzip}");

    let mut python = Command::new("python3");
    python
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/check_zip.py"))
        .arg(zip_path)
        .arg(&listing_path);
    if let Some(dir) = expected_dir {
        python.arg(dir);
    }
    run(&mut python);

    let bsdtar = run(Command::new("bsdtar").arg("-tvf").arg(zip_path));
    assert_eq!(bsdtar.lines().count(), names.len(), "{bsdtar}");

    let seven = run(Command::new("7z").arg("t").arg(zip_path));
    assert!(seven.contains("Everything is Ok"), "{seven}");
}

/// Compares `actual` with the golden file `tests/golden/NAME` byte for byte;
/// `UPDATE_GOLDEN=1` writes it instead.
/// The entry names of a zip archive, in order (read by the `zip` crate).
pub fn zip_entry_names(archive: &[u8]) -> Vec<String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).expect("a zip");
    (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().unwrap().to_string())
        .collect()
}

pub fn assert_golden(name: &str, actual: &[u8]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs (UPDATE_GOLDEN=1 re-blesses it)\nexpected: {}\nactual:   {}",
        path.display(),
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(actual)
    );
}

/// The `zipgate` binary serving on a free port, killed when dropped; its
/// log lines arrive on `log`.
pub struct Running {
    pub child: Child,
    pub addr: String,
    /// The log line that named the address (the start-up line).
    pub listening: String,
    pub log: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `zipgate serve --listen 127.0.0.1:0 ARGS` and waits for the log
/// line that names the port.
/// Starts `command` (a `zipgate serve`) with its stdout piped and returns
/// it with the URL it prints on its first line, as scripts read it.
pub fn spawn_printing_url(command: &mut Command) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("zipgate starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .expect("zipgate prints its URL");
    (child, first.trim().to_owned())
}

/// `zipgate` with none of the test's own `ZIPGATE_…` variables: each
/// flag reads one, and a developer's settings must not change what a test
/// starts. (`env_clear` would lose `PATH` and the rest.)
pub fn zipgate_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zipgate"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ZIPGATE_") {
            command.env_remove(name);
        }
    }
    command
}

pub fn serve_binary(args: &[&str]) -> Running {
    serve_binary_env(args, &[])
}

/// `serve_binary` with `env` set for it.
pub fn serve_binary_env(args: &[&str], env: &[(&str, &str)]) -> Running {
    try_serve_binary_on("127.0.0.1:0", args, env)
        .unwrap_or_else(|why| panic!("zipgate starts: {why}"))
}

/// `zipgate serve --listen LISTEN ARGS` (a fixed port, e.g. the one a killed
/// server had), waiting for the log line that names its address as
/// `serve_binary` does. A start that ends before that line (the port not yet
/// free) is tried again for up to 10 s; then the error holds what it logged.
pub fn serve_binary_on(listen: &str, args: &[&str]) -> Result<Running, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match try_serve_binary_on(listen, args, &[]) {
            Ok(running) => return Ok(running),
            Err(why) if Instant::now() >= deadline => {
                return Err(format!(
                    "zipgate serve --listen {listen} did not start: {why}"
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn try_serve_binary_on(
    listen: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<Running, String> {
    let mut child = zipgate_command()
        .args(["serve", "--listen", listen])
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        // A served tree's CRC cache goes here, not into the user's own.
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("zipgate-test-cache"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let stderr = child.stderr.take().unwrap();
    let (tx, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Owned by the guard from here on: an early return reaps the child.
    let mut running = Running {
        child,
        addr: String::new(),
        listening: String::new(),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while running.addr.is_empty() {
        let line = match running
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(line) => line,
            Err(e) => return Err(format!("{e} before it named its address: {seen:?}")),
        };
        if let Some(at) = line.find("http://127.0.0.1:") {
            running.addr = line[at + 7..].split_whitespace().next().unwrap().to_owned();
            running.listening = line.clone();
        }
        seen.push(line);
    }
    Ok(running)
}

/// Runs `zipgate serve` with `args` and `env` until it exits (at most 10 s,
/// then it is killed and `None` is its status); its stderr.
pub fn start_refused(
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<std::process::ExitStatus>, String) {
    let mut child = zipgate_command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zipgate starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// Writes `head` and `body` on a raw connection; the whole answer, or what
/// came before the server closed it (or `wait` passed), and how long that took.
pub fn raw_exchange(
    server: &ServerHandle,
    head: &str,
    body: &[u8],
    wait: Duration,
) -> (String, Duration) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let started = Instant::now();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// Writes `node` and everything below it into `dir`, with the tree's mtimes.
pub fn materialize(tree: &zipgate::store::Tree, node: &Node, dir: &Path) {
    let path = dir.join(&node.name);
    match &node.data {
        NodeData::File(_) => std::fs::write(&path, file_bytes(node).unwrap()).unwrap(),
        NodeData::Folder(_) => {
            std::fs::create_dir_all(&path).unwrap();
            for child in tree.children(node) {
                materialize(tree, child, &path);
            }
        }
    }
    // After the children, whose creation moved a folder's mtime.
    std::fs::File::open(&path)
        .unwrap()
        .set_modified(node.mtime.into())
        .unwrap();
}

/// The embedded fixture's `Alice` folder, with everything below it, as
/// files in a new temporary directory.
pub fn alice_home_on_disk(label: &str) -> TempDir {
    let tree = zipgate::store::Tree::embedded_default().unwrap();
    let dir = TempDir::new(label);
    materialize(
        &tree,
        tree.node(&"folder-alice-home".into()).unwrap(),
        dir.path(),
    );
    dir
}

/// One archive entry as a zip reader sees it.
#[derive(Clone, PartialEq)]
pub struct ZipEntry {
    pub name: String,
    pub modified: Option<zip::DateTime>,
    pub extra: Vec<u8>,
    pub mode: Option<u32>,
    pub crc32: u32,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for ZipEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} modified {:?}, extra {:02x?}, mode {:?}, CRC {:08x}, {} bytes",
            self.name,
            self.modified,
            self.extra,
            self.mode,
            self.crc32,
            self.bytes.len()
        )
    }
}

/// Every entry of `archive`, in order, read back by the zip crate.
pub fn zip_entries(archive: Vec<u8>) -> Vec<ZipEntry> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut entry = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            ZipEntry {
                name: entry.name().unwrap().into_owned(),
                modified: entry.last_modified(),
                extra: entry.extra_data().unwrap_or_default().to_vec(),
                mode: entry.unix_mode(),
                crc32: entry.crc32(),
                bytes,
            }
        })
        .collect()
}

/// `store` served in-process as the tree, read once, with the embedded
/// fixture's users (who read everything).
pub async fn serve_store(
    store: std::sync::Arc<dyn zipgate::store::backend::Store>,
) -> ServerHandle {
    builder()
        .store(store, zipgate::store::served::Policy::embedded_users())
        .expect("the store reads")
        .spawn()
        .await
        .expect("server starts")
}

/// A stored archive of one item as alice, by the neutral route.
pub async fn stored_zip(server: &ServerHandle, id: &str) -> Vec<u8> {
    let reply = zip(
        server,
        &serde_json::json!({"items": [{"id": id}], "compression": "store"}),
        Some("alice-token"),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{id}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.body
}

/// A Box create (`POST /2.0/zip_downloads`) by alice with the test Host.
pub async fn box_create_as_alice(server: &ServerHandle, body: &str) -> Reply {
    send(
        server,
        Method::POST,
        "/2.0/zip_downloads",
        &[
            ("authorization", "Bearer alice-token"),
            ("content-type", "application/json"),
            ("host", HOST),
        ],
        body.to_owned(),
    )
    .await
}

/// `POST /_zipgate/faults` with `rule` (one rule or a list).
pub async fn add_fault(server: &ServerHandle, rule: serde_json::Value) -> Reply {
    send(
        server,
        Method::POST,
        "/_zipgate/faults",
        &[("content-type", "application/json")],
        rule.to_string(),
    )
    .await
}

/// Reads a body until it ends or breaks; the bytes and the error, if any.
pub async fn read_until_broken(
    response: http::Response<hyper::body::Incoming>,
) -> (Vec<u8>, Option<hyper::Error>) {
    read_rest_until_broken(&mut response.into_body()).await
}

/// As [`read_until_broken`], for a body already partly read.
pub async fn read_rest_until_broken(body: &mut Incoming) -> (Vec<u8>, Option<hyper::Error>) {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => bytes.extend_from_slice(frame.data_ref().map_or(&[][..], |d| &d[..])),
            Err(error) => return (bytes, Some(error)),
        }
    }
    (bytes, None)
}

/// Starts the download at `path` under a 100 B/s throttle (a client on a
/// slow line), lets its first bytes arrive, runs `cancel`, and checks the
/// response is cut within a second, short of its length, and that its
/// engine stopped. Returns how long the cut took.
pub async fn assert_cancel_cuts_download(
    server: &ServerHandle,
    path: &str,
    headers: &[(&str, &str)],
    cancel: impl std::future::Future<Output = ()>,
) -> Duration {
    let rule = serde_json::json!({"match": {"path": path}, "throttle_bytes_per_sec": 100});
    assert_eq!(add_fault(server, rule).await.status, StatusCode::CREATED);
    let mut all = vec![("host", HOST)];
    all.extend_from_slice(headers);
    let response = open(server, Method::GET, path, &all, "").await;
    assert_eq!(response.status(), StatusCode::OK);
    let total = content_length(&response);
    // At 100 B/s a few hundred bytes take seconds: plenty left to cut.
    assert!(total > 300, "{total} bytes is too short to see a cut");
    let mut body = response.into_body();
    let first = body.frame().await.expect("a first frame").expect("bytes");
    let first = first.data_ref().map_or(0, |d| d.len());
    let started = Instant::now();
    cancel.await;
    let (rest, error) =
        tokio::time::timeout(Duration::from_secs(10), read_rest_until_broken(&mut body))
            .await
            .expect("the response still runs 10 s after the cancel");
    let took = started.elapsed();
    assert!(error.is_some(), "the response ended cleanly");
    assert!(
        ((first + rest.len()) as u64) < total,
        "all {total} bytes arrived"
    );
    assert!(took < Duration::from_secs(1), "cut after {took:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.state().streams.active() > 0 {
        assert!(Instant::now() < deadline, "the engine still runs");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    took
}
