//! The `zipgate` binary as a user runs it: start, log, serve, stop on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    serve_binary as serve, spawn_printing_url, start_refused, zip_entry_names, zipgate_command,
    Running, TempDir,
};

fn http_get(addr: &str, path: &str) -> (u16, String) {
    get_with(addr, path, "HTTP/1.1")
}

/// A GET as `version` speaks it (HTTP/1.0: a streamed body comes unchunked).
fn get_with(addr: &str, path: &str, version: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} {version}\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    status_and_body(stream)
}

/// Reads a response to its end: the status and the body.
fn status_and_body(mut stream: TcpStream) -> (u16, String) {
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn wait_for_line(running: &Running, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = running
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

fn terminate(running: &mut Running) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "zipgate did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_the_embedded_fixtures_logs_each_request_and_stops_on_sigterm() {
    let mut running = serve(&[]);
    let (status, body) = http_get(&running.addr, "/_zipgate/health");
    assert_eq!(status, 200);
    assert!(body.contains("\"nodes\":21"), "{body}");
    let line = wait_for_line(&running, "path=/_zipgate/health");
    for field in ["method=GET", "status=200", "bytes=", "ms="] {
        assert!(
            line.contains(field),
            "access log line lacks {field}: {line}"
        );
    }
    assert!(
        !line.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal"
    );
    let status = terminate(&mut running);
    assert!(status.success(), "{status:?}");
}

#[test]
fn connections_spread_over_the_workers_and_all_finish_on_sigterm() {
    let mut running = serve(&["--workers", "3"]);
    let addr = running.addr.clone();
    std::thread::scope(|scope| {
        for _ in 0..6 {
            let addr = &addr;
            scope.spawn(move || {
                for _ in 0..10 {
                    let (status, response) = http_send(
                        addr,
                        "POST",
                        "/2.0/zip_downloads",
                        "Authorization: Bearer alice-token\r\nContent-Type: application/json\r\n",
                        r#"{"items":[{"type":"file","id":"12348"}]}"#,
                    );
                    assert_eq!(status, 202, "{response}");
                }
            });
        }
    });
    let (_, health) = http_get(&addr, "/_zipgate/health");
    assert!(health.contains("\"jobs\":60"), "{health}");
    let status = terminate(&mut running);
    assert!(status.success(), "{status:?}");
    wait_for_line(&running, "all connections closed");

    let refused = zipgate_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--workers"));
}

#[test]
fn an_in_flight_download_does_not_hold_shutdown_past_the_grace_period() {
    let dir = TempDir::new("cli-grace");
    let fixture = dir.path().join("big.json");
    std::fs::write(
        &fixture,
        r#"{"nodes":[{"id":"big","name":"big.bin","content":{"generate":{"size":8589934592,"seed":2}}}]}"#,
    )
    .unwrap();
    let mut running = serve(&[
        "--fixtures",
        fixture.to_str().unwrap(),
        "--shutdown-grace",
        "1",
    ]);
    let mut stream = TcpStream::connect(&running.addr).unwrap();
    let body = r#"{"items":[{"id":"big"}]}"#;
    write!(
        stream,
        "POST /_zipgate/zip HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        running.addr,
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 4096];
    stream.read_exact(&mut first).unwrap();
    assert!(first.starts_with(b"HTTP/1.1 200"));
    // The client stops reading; shutdown must still finish.
    let started = Instant::now();
    let status = terminate(&mut running);
    assert!(status.success());
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[test]
fn a_fixture_file_may_point_at_files_beside_it() {
    let dir = TempDir::new("cli-fixture");
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/hello.txt"), "hello from disk\n").unwrap();
    let fixture = dir.path().join("tree.json");
    std::fs::write(
        &fixture,
        r#"{"nodes":[{"id":"d","name":"disk","children":[{"id":"h","name":"hello.txt","content":{"path":"data/hello.txt"}}]}]}"#,
    )
    .unwrap();
    let running = serve(&["--fixtures", fixture.to_str().unwrap()]);
    let (status, body) = http_get(&running.addr, "/_zipgate/health");
    assert_eq!(status, 200);
    assert!(body.contains("\"nodes\":2"), "{body}");
}

#[test]
fn a_broken_fixture_file_stops_start_up_with_the_json_path() {
    let dir = TempDir::new("cli-broken");
    let fixture = dir.path().join("broken.json");
    std::fs::write(
        &fixture,
        r#"{"nodes":[{"id":"x","name":"x","content":{"generate":{"size":-1}}}]}"#,
    )
    .unwrap();
    let output = zipgate_command()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--fixtures",
            fixture.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("nodes[0].content.generate.size"),
        "{stderr}"
    );
    let output = zipgate_command()
        .args(["check-fixtures", fixture.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
}

#[test]
fn onlyoffice_flavour_and_dialect_settings_from_the_command_line() {
    let running = serve(&["--onlyoffice-flavour", "docspace", "--set", "box.url_ttl=5"]);
    let mut stream = TcpStream::connect(&running.addr).unwrap();
    write!(
        stream,
        "GET /api/2.0/files/fileops HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice-token\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("\"links\""),
        "a DocSpace envelope: {response}"
    );

    let output = zipgate_command()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--set",
            "box.colour=red",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("box.colour"));
}

#[test]
fn a_frozen_clock_stands_still_until_advanced() {
    let running = serve(&["--clock", "frozen"]);
    let (_, first) = http_get(&running.addr, "/_zipgate/clock");
    std::thread::sleep(Duration::from_millis(30));
    let (_, second) = http_get(&running.addr, "/_zipgate/clock");
    assert_eq!(first, second);
}

/// A raw HTTP/1.1 request with a body and extra header lines; the status.
fn http_send(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    (status, response)
}

#[test]
fn prints_its_url_on_stdout_and_loads_fault_rules_from_a_file() {
    let dir = TempDir::new("cli-faults");
    let rules = dir.path().join("faults.json");
    std::fs::write(
        &rules,
        r#"{"faults": [{"match": {"dialect": "box", "method": "POST"}, "times": 1, "respond": {"status": 503}}]}"#,
    )
    .unwrap();
    let (mut child, url) = spawn_printing_url(
        zipgate_command()
            .args(["serve", "--listen", "127.0.0.1:0", "--faults"])
            .arg(&rules)
            .stderr(Stdio::piped()),
    );
    let addr = url.strip_prefix("http://").expect("a URL line").to_owned();
    let create = |expect: u16| {
        let (status, response) = http_send(
            &addr,
            "POST",
            "/2.0/zip_downloads",
            "Authorization: Bearer alice-token\r\nContent-Type: application/json\r\n",
            r#"{"items":[{"type":"file","id":"12348"}]}"#,
        );
        assert_eq!(status, expect, "{response}");
    };
    create(503);
    create(202);
    // A reset re-arms the rules the server started with.
    assert_eq!(http_send(&addr, "POST", "/_zipgate/reset", "", "").0, 200);
    create(503);
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("control plane on") && log.contains("loopback"),
        "the log says the control plane is on and loopback only: {log}"
    );

    // A broken rule file stops start-up with the JSON path.
    std::fs::write(&rules, r#"[{"respond": {"status": "soon"}}]"#).unwrap();
    let output = zipgate_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--faults"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("$[0].respond.status"), "{stderr}");
}

#[test]
fn the_control_plane_can_be_turned_off_or_given_a_token() {
    let running = serve(&["--no-control"]);
    wait_for_line(&running, "control plane off");
    assert_eq!(http_get(&running.addr, "/_zipgate/faults").0, 404);
    assert_eq!(http_get(&running.addr, "/_zipgate/health").0, 200);
    drop(running);

    let running = serve(&["--control-token", "s3cret"]);
    wait_for_line(&running, "token required");
    assert_eq!(http_get(&running.addr, "/_zipgate/faults").0, 401);
    let (status, _) = http_send(
        &running.addr,
        "GET",
        "/_zipgate/faults",
        "Authorization: Bearer s3cret\r\n",
        "",
    );
    assert_eq!(status, 200);
}

#[test]
fn an_empty_control_token_stops_start_up() {
    // It used to start with no token at all: an open control plane.
    for (args, env) in [
        (&["--control-token", ""][..], &[][..]),
        (&[][..], &[("ZIPGATE_CONTROL_TOKEN", "")][..]),
    ] {
        let (status, stderr) = start_refused(args, env);
        assert!(
            status.is_some_and(|s| !s.success()),
            "{args:?} {env:?}: {status:?} {stderr}"
        );
        assert!(stderr.contains("control token"), "{stderr}");
        assert!(stderr.contains("empty"), "{stderr}");
    }
}

#[test]
fn the_replica_name_is_in_health_and_on_every_journal_entry() {
    for (args, env) in [
        (&["--replica", "replica-a"][..], &[][..]),
        (&[][..], &[("ZIPGATE_REPLICA", "replica-a")][..]),
    ] {
        let running = common::serve_binary_env(args, env);
        let addr = running.addr.as_str();
        let (_, health) = http_get(addr, "/_zipgate/health");
        let health: serde_json::Value = serde_json::from_str(&health).unwrap();
        assert_eq!(health["replica"], "replica-a", "{args:?} {env:?}");
        assert_eq!(health["job_backend"], "memory");
        assert_eq!(health["isal"], zipgate::DeflateEngine::ISAL_BUILT_IN);
        http_get(addr, "/2.0/folders/0");
        // HTTP/1.0: the listing streams, chunked for a 1.1 client.
        let (_, journal) = get_with(addr, "/_zipgate/requests", "HTTP/1.0");
        let journal: serde_json::Value = serde_json::from_str(&journal).unwrap();
        assert_eq!(journal["requests"][0]["replica"], "replica-a", "{journal}");
    }
    // By default: host name and process id, so two on one machine differ.
    let (a, b) = (serve(&[]), serve(&[]));
    let name = |addr: &str| -> String {
        let (_, health) = http_get(addr, "/_zipgate/health");
        let health: serde_json::Value = serde_json::from_str(&health).unwrap();
        health["replica"].as_str().unwrap().to_owned()
    };
    let (name_a, name_b) = (name(&a.addr), name(&b.addr));
    assert_ne!(name_a, name_b);
    assert!(name_a.ends_with(&format!("-{}", a.child.id())), "{name_a}");
    // A name that would not read the same everywhere is refused at start.
    for bad in ["has space", "", &"x".repeat(65)] {
        let (status, stderr) = start_refused(&["--replica", bad], &[]);
        assert!(status.is_some_and(|s| !s.success()), "{bad:?}: {stderr}");
        assert!(stderr.contains("printable ASCII"), "{stderr}");
    }
}

/// A raw HTTP/1.1 request with a chosen Host; the status and the response.
fn http_as(addr: &str, host: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    (response[9..12].parse().unwrap(), response)
}

#[test]
fn content_root_allow_host_and_max_faults_from_the_command_line() {
    let dir = TempDir::new("cli-content-root");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), "a").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    let running = serve(&[
        "--content-root",
        root.to_str().unwrap(),
        "--allow-host",
        "zipgate.internal",
        "--max-faults",
        "1",
    ]);
    let addr = running.addr.as_str();
    let fixture = |path: &str| {
        format!(r#"{{"nodes":[{{"id":"f","name":"f.txt","content":{{"path":{path:?}}}}}]}}"#)
    };
    let (status, response) = http_as(addr, addr, "PUT", "/_zipgate/fixtures", &fixture("a.txt"));
    assert_eq!(status, 200, "{response}");
    let (status, response) = http_as(
        addr,
        addr,
        "PUT",
        "/_zipgate/fixtures",
        &fixture("../secret.txt"),
    );
    assert_eq!(status, 400, "{response}");
    assert!(response.contains("nodes[0].content.path"), "{response}");

    let (status, _) = http_as(addr, "zipgate.internal:80", "GET", "/_zipgate/faults", "");
    assert_eq!(status, 200);
    let (status, _) = http_as(addr, "elsewhere.example", "GET", "/_zipgate/faults", "");
    assert_eq!(status, 403);
    let two = r#"[{"match":{"path":"/a"},"delay_ms":1},{"match":{"path":"/b"},"delay_ms":1}]"#;
    let (status, response) = http_as(addr, addr, "POST", "/_zipgate/faults", two);
    assert_eq!(status, 400, "{response}");
    assert!(response.contains("too_many_faults"), "{response}");

    let (status, stderr) = start_refused(&["--content-root", "/no/such/dir"], &[]);
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert!(stderr.contains("--content-root"), "{stderr}");
}

#[test]
fn a_fixture_file_is_confined_to_its_folder_unless_told_otherwise() {
    let dir = TempDir::new("cli-confined");
    std::fs::create_dir_all(dir.path().join("fixtures")).unwrap();
    std::fs::write(dir.path().join("outside.txt"), "outside").unwrap();
    let fixture = dir.path().join("fixtures/tree.json");
    std::fs::write(
        &fixture,
        r#"{"nodes":[{"id":"o","name":"o.txt","content":{"path":"../outside.txt"}}]}"#,
    )
    .unwrap();
    let (status, stderr) = start_refused(&["--fixtures", fixture.to_str().unwrap()], &[]);
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert!(stderr.contains("nodes[0].content.path"), "{stderr}");
    let check = zipgate_command()
        .args(["check-fixtures", fixture.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!check.status.success());

    let running = serve(&[
        "--fixtures",
        fixture.to_str().unwrap(),
        "--fixture-paths-anywhere",
    ]);
    let (status, body) = http_get(&running.addr, "/_zipgate/health");
    assert_eq!(status, 200);
    assert!(body.contains("\"nodes\":1"), "{body}");
    let check = zipgate_command()
        .args([
            "check-fixtures",
            "--fixture-paths-anywhere",
            fixture.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(check.status.success());
}

/// #15.8: SIGTERM during a big stored entry's CRC pass (a download that has
/// not sent its first byte) stops the process within the grace period; the
/// engine thread used to run on for the whole pass (minutes to hours).
#[test]
fn sigterm_stops_a_download_stuck_in_a_crc_pass_within_the_grace() {
    let dir = TempDir::new("sigterm-crc");
    let fixture = dir.path().join("huge.json");
    std::fs::write(
        &fixture,
        r#"{"nodes":[{"id":"huge","name":"huge.bin","content":{"generate":{"size":68719476736,"seed":1,"kind":"random"}}}]}"#,
    )
    .unwrap();
    let mut running = serve(&[
        "--fixtures",
        fixture.to_str().unwrap(),
        "--no-warm-crc",
        "--shutdown-grace",
        "1",
    ]);
    let body = r#"{"items":[{"id":"huge"}],"compression":"store"}"#;
    let mut download = TcpStream::connect(&running.addr).unwrap();
    write!(
        download,
        "POST /_zipgate/zip HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        running.addr,
        body.len()
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http_get(&running.addr, "/_zipgate/health")
        .1
        .contains("\"active_streams\":1")
    {
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let asked = Instant::now();
    terminate(&mut running);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "stopped only after {:?}",
        asked.elapsed()
    );
    drop(download);
}

#[test]
fn check_fixtures_knows_which_dialects_number_files_and_folders_apart() {
    let dir = TempDir::new("ids");
    let write = |name: &str, dialect: &str, second: &str| {
        let path = dir.path().join(name);
        let second = if second == "folder" {
            format!(r#"{{"id": "b", "name": "B", "children": [], "ids": {{"{dialect}": "7"}}}}"#)
        } else {
            format!(
                r#"{{"id": "b", "name": "b.txt", "content": {{"text": "b"}}, "ids": {{"{dialect}": "7"}}}}"#
            )
        };
        let doc = format!(
            r#"{{"nodes": [{{"id": "a", "name": "a.txt", "content": {{"text": "a"}}, "ids": {{"{dialect}": "7"}}}}, {second}]}}"#
        );
        std::fs::write(&path, doc).unwrap();
        path
    };
    let check = |path: &std::path::Path| {
        zipgate_command()
            .args(["check-fixtures", path.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let apart = check(&write("apart.json", "itslearning", "folder"));
    assert!(
        apart.status.success(),
        "{}",
        String::from_utf8_lossy(&apart.stderr)
    );
    for (name, dialect, second) in [
        ("two-files.json", "itslearning", "file"),
        ("box.json", "box", "folder"),
    ] {
        let output = check(&write(name, dialect, second));
        assert!(!output.status.success(), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("nodes[1].ids.{dialect}")) && stderr.contains("nodes[0]"),
            "{stderr}"
        );
    }
}

/// Dropbox's `download_zip` of `path` with `token`, raw: status and body.
fn dropbox_zip(addr: &str, token: &str, path: &str) -> (u16, Vec<u8>) {
    http_bytes(
        addr,
        &format!(
            "POST /2/files/download_zip HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Dropbox-API-Arg: {{\"path\": \"{path}\"}}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
}

/// Raw bytes of one exchange: status and body (the body split at the head).
fn http_bytes(addr: &str, request: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    // Closed before a head went out (a download cut at once): status 0.
    let Some(at) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, response);
    };
    let status = String::from_utf8_lossy(&response[9..12]).parse().unwrap();
    (status, response[at + 4..].to_vec())
}

#[test]
fn serves_a_directory_with_root_and_never_reads_outside_it() {
    let dir = TempDir::new("cli-root");
    let served = dir.path().join("served");
    std::fs::create_dir_all(served.join("docs/sub")).unwrap();
    std::fs::write(served.join("docs/a.txt"), "alpha\n").unwrap();
    std::fs::write(served.join("docs/sub/b.txt"), "beta\n").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "outside\n").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), served.join("docs/leak.txt"))
            .unwrap();
        std::os::unix::fs::symlink("../..", served.join("docs/up")).unwrap();
    }
    let running = serve(&["--root", served.to_str().unwrap()]);
    let (status, body) = http_get(&running.addr, "/_zipgate/health");
    assert_eq!(status, 200);
    assert!(
        body.contains("\"nodes\":4"),
        "docs, sub, a.txt, b.txt: {body}"
    );
    // Dropbox addresses by path: the folder as a zip, as on disk.
    let (status, zip) = dropbox_zip(&running.addr, "alice-token", "/docs");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&zip));
    let mut names = zip_entry_names(&zip);
    names.sort();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    assert_eq!(
        names,
        ["docs/", "docs/a.txt", "docs/sub/", "docs/sub/b.txt"]
    );
    let mut text = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("docs/sub/b.txt").unwrap(), &mut text)
        .unwrap();
    assert_eq!(text, "beta\n");
    // A name that climbs is no path in the tree.
    let (status, _) = dropbox_zip(&running.addr, "alice-token", "/docs/../..");
    assert_ne!(status, 200);
    // A policy's users replace the default ones.
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"users": [{"id": "carol", "token": "carol-token", "home": "docs"}]}"#,
    )
    .unwrap();
    let with_policy = serve(&[
        "--root",
        served.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ]);
    // Paths are the user's own: carol's home is `docs`.
    let ask = |token: &str| dropbox_zip(&with_policy.addr, token, "/sub").0;
    assert_eq!(ask("carol-token"), 200);
    assert_eq!(ask("alice-token"), 401);
}

#[test]
fn a_served_directory_is_walked_again_and_changes_are_served() {
    let dir = TempDir::new("cli-rescan");
    let served = dir.path().join("served");
    std::fs::create_dir_all(served.join("docs")).unwrap();
    std::fs::write(served.join("docs/a.txt"), "one\n").unwrap();
    let running = serve(&["--root", served.to_str().unwrap(), "--rescan", "1"]);
    let nodes = || {
        let (_, body) = http_get(&running.addr, "/_zipgate/health");
        let at = body.find("\"nodes\":").unwrap() + 8;
        body[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let wait_for = |want: u64| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while nodes() != want {
            assert!(
                Instant::now() < deadline,
                "still {} nodes, not {want}",
                nodes()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(nodes(), 2);
    std::fs::write(served.join("docs/b.txt"), "two\n").unwrap();
    wait_for(3);
    let (status, zip) = dropbox_zip(&running.addr, "alice-token", "/docs");
    assert_eq!(status, 200);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    assert!(archive.by_name("docs/b.txt").is_ok());
    std::fs::remove_file(served.join("docs/a.txt")).unwrap();
    wait_for(2);
}

/// The neutral route's stored zip of `ids` as alice: each entry's name and CRC-32.
fn stored_crcs(addr: &str, ids: &[&str]) -> Vec<(String, u32)> {
    let items: Vec<String> = ids
        .iter()
        .map(|id| format!("{{\"id\":\"{id}\"}}"))
        .collect();
    let body = format!(
        "{{\"items\":[{}],\"compression\":\"store\"}}",
        items.join(",")
    );
    let (status, zip) = http_bytes(
        addr,
        &format!(
            "POST /_zipgate/zip HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer alice-token\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    // A download of a file that changed since the tree was read is cut,
    // possibly before its head went out (status 0): no archive then.
    assert!(status == 200 || status == 0, "{status}");
    let Ok(mut archive) = zip::ZipArchive::new(std::io::Cursor::new(zip)) else {
        return Vec::new();
    };
    (0..archive.len())
        .map(|i| {
            let entry = archive.by_index_raw(i).unwrap();
            (entry.name().unwrap().into_owned(), entry.crc32())
        })
        .collect()
}

#[test]
fn stored_crcs_are_remembered_across_restarts_by_file_version() {
    let dir = TempDir::new("cli-crc");
    let served = dir.path().join("served");
    std::fs::create_dir_all(served.join("docs")).unwrap();
    std::fs::write(served.join("docs/a.txt"), "alpha\n").unwrap();
    let cache = dir.path().join("cache/crc.jsonl");
    let args = [
        "--root",
        served.to_str().unwrap(),
        "--crc-cache",
        cache.to_str().unwrap(),
        "--rescan",
        "1",
    ];
    let real = crc32fast::hash(b"alpha\n");
    {
        let running = serve(&args);
        assert_eq!(
            stored_crcs(&running.addr, &["docs/a.txt"]),
            [("a.txt".to_owned(), real)]
        );
    }
    let text = std::fs::read_to_string(&cache).unwrap();
    assert!(
        text.contains("\"path\":\"docs/a.txt\"") && text.contains(&format!("\"crc32\":{real}")),
        "{text}"
    );
    // The same version is trusted after a restart without being read again:
    // a doctored record shows through.
    std::fs::write(
        &cache,
        text.replace(&format!("\"crc32\":{real}"), "\"crc32\":12345"),
    )
    .unwrap();
    let running = serve(&args);
    assert_eq!(
        stored_crcs(&running.addr, &["docs/a.txt"]),
        [("a.txt".to_owned(), 12345)]
    );
    // A new version of the file is read again once the rescan sees it.
    std::fs::write(served.join("docs/a.txt"), "alpha, again\n").unwrap();
    let fresh = crc32fast::hash(b"alpha, again\n");
    let deadline = Instant::now() + Duration::from_secs(15);
    while stored_crcs(&running.addr, &["docs/a.txt"]) != [("a.txt".to_owned(), fresh)] {
        assert!(Instant::now() < deadline, "the new version is not served");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Box's create of one file as alice: the status.
fn box_create(addr: &str, file_id: &str) -> u16 {
    box_create_as(addr, "alice-token", file_id)
}

/// Box's create of one file with `token`: the status.
fn box_create_as(addr: &str, token: &str, file_id: &str) -> u16 {
    let body = format!("{{\"items\":[{{\"type\":\"file\",\"id\":\"{file_id}\"}}]}}");
    http_bytes(
        addr,
        &format!(
            "POST /2.0/zip_downloads HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .0
}

#[test]
fn an_id_map_pins_dialect_ids_to_paths_and_is_read_again_when_it_changes() {
    let dir = TempDir::new("cli-idmap");
    let served = dir.path().join("served");
    std::fs::create_dir_all(served.join("docs")).unwrap();
    std::fs::write(served.join("docs/a.txt"), "alpha\n").unwrap();
    let ids = dir.path().join("ids.json");
    std::fs::write(&ids, r#"{"ids": {"docs/a.txt": {"box": "777"}}}"#).unwrap();
    let args = [
        "--root",
        served.to_str().unwrap(),
        "--id-map",
        ids.to_str().unwrap(),
        "--rescan",
        "1",
    ];
    let running = serve(&args);
    assert_eq!(box_create(&running.addr, "777"), 202);
    assert_eq!(box_create(&running.addr, "778"), 404);
    std::fs::write(&ids, r#"{"ids": {"docs/a.txt": {"box": "778"}}}"#).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while box_create(&running.addr, "778") != 202 {
        assert!(Instant::now() < deadline, "the new id map is not in force");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(box_create(&running.addr, "777"), 404);
    drop(running);
    // A map that pins one Box id on two nodes, or is not a map, stops the start.
    for (text, says) in [
        (
            r#"{"ids": {"docs": {"box": "5"}, "docs/a.txt": {"box": "5"}}}"#,
            "ids.box",
        ),
        (r#"{"ids": {"docs/a.txt": "5"}}"#, "--id-map"),
    ] {
        std::fs::write(&ids, text).unwrap();
        let (status, stderr) = start_refused(&args, &[]);
        assert!(status.is_some_and(|s| !s.success()), "{text}: {stderr}");
        assert!(stderr.contains(says), "{text}: {stderr}");
    }
}

#[test]
fn changes_on_disk_are_seen_as_they_happen_not_at_the_next_rescan() {
    let dir = TempDir::new("cli-watch");
    let served = dir.path().join("served");
    std::fs::create_dir_all(served.join("docs")).unwrap();
    std::fs::write(served.join("docs/a.txt"), "one\n").unwrap();
    // A periodic rescan an hour away: only the change notification can tell.
    let running = serve(&["--root", served.to_str().unwrap(), "--rescan", "3600"]);
    // A download racing a change to a file in it is cut: no names then.
    let names = || {
        let (status, zip) = dropbox_zip(&running.addr, "alice-token", "/docs");
        assert!(status == 200 || status == 0, "{status}");
        let Ok(archive) = zip::ZipArchive::new(std::io::Cursor::new(zip)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = archive
            .file_names()
            .map(|n| n.unwrap().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(), ["docs/", "docs/a.txt"]);
    std::fs::create_dir_all(served.join("docs/new")).unwrap();
    std::fs::write(served.join("docs/new/b.txt"), "two\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while names() != ["docs/", "docs/a.txt", "docs/new/", "docs/new/b.txt"] {
        assert!(Instant::now() < deadline, "still {:?}", names());
        std::thread::sleep(Duration::from_millis(50));
    }
    // In a folder created after the start, too.
    std::fs::remove_file(served.join("docs/new/b.txt")).unwrap();
    while names() != ["docs/", "docs/a.txt", "docs/new/"] {
        assert!(Instant::now() < deadline, "still {:?}", names());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_policy_says_who_reads_what_by_path() {
    let dir = TempDir::new("cli-policy");
    let served = dir.path().join("served");
    std::fs::create_dir_all(served.join("docs/private")).unwrap();
    std::fs::write(served.join("docs/open.txt"), "open\n").unwrap();
    std::fs::write(served.join("docs/private/pay.txt"), "pay\n").unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"users": [{"id": "alice", "token": "alice-token"},
                      {"id": "carol", "token": "carol-token"}],
            "rules": [{"path": "docs/private", "owner": "carol", "readers": ["carol"]}]}"#,
    )
    .unwrap();
    let running = serve(&[
        "--root",
        served.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ]);
    let names = |token: &str, path: &str| {
        let (status, zip) = dropbox_zip(&running.addr, token, path);
        assert_eq!(status, 200, "{token} {path}");
        let mut names = zip_entry_names(&zip);
        names.sort();
        names
    };
    // Dropbox leaves out what its user may not read inside a folder.
    assert_eq!(names("alice-token", "/docs"), ["docs/", "docs/open.txt"]);
    assert_eq!(
        names("carol-token", "/docs/private"),
        ["private/", "private/pay.txt"]
    );
    // A rule that is not a list of users or "everyone" stops the start.
    std::fs::write(
        &policy,
        r#"{"users": [], "rules": [{"path": "docs", "readers": ["x"], "bogus": 1}]}"#,
    )
    .unwrap();
    let (status, stderr) = start_refused(
        &[
            "--root",
            served.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
        &[],
    );
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert!(
        stderr.contains("rules") && stderr.contains("bogus"),
        "{stderr}"
    );
}

/// The fenced blocks of the README's section `title`: (language, body).
fn readme_blocks(title: &str) -> Vec<(String, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find(&format!("## {title}")).expect("the section");
    let end = start + readme[start..][3..].find("\n## ").unwrap() + 3;
    let mut blocks = readme[start..end].split("```");
    blocks.next();
    let mut out = Vec::new();
    while let (Some(block), _) = (blocks.next(), blocks.next()) {
        let (language, body) = block.split_once('\n').unwrap();
        out.push((language.to_owned(), body.to_owned()));
    }
    out
}

/// The fenced blocks of the README's "Migrating a client" section, by language.
fn migration_examples() -> (Vec<String>, Vec<String>) {
    let (mut commands, mut json) = (Vec::new(), Vec::new());
    for (language, body) in readme_blocks("Migrating a client") {
        match language.as_str() {
            "sh" => commands.extend(body.lines().map(str::to_owned)),
            "json" => json.push(body),
            other => panic!("a {other:?} block"),
        }
    }
    (commands, json)
}

#[test]
fn the_readmes_migration_examples_work() {
    let (commands, json) = migration_examples();
    let [policy_text, ids_text] = &json[..] else {
        panic!("a policy and an id map: {json:?}")
    };
    let dir = TempDir::new("cli-readme-migration");
    let served = dir.path().join("files");
    std::fs::create_dir_all(served.join("teams/carol")).unwrap();
    std::fs::create_dir_all(served.join("public")).unwrap();
    std::fs::write(served.join("teams/carol/report.pdf"), "%PDF-1.4\n").unwrap();
    std::fs::create_dir_all(served.join("teams/carol/drafts")).unwrap();
    std::fs::write(served.join("teams/carol/drafts/a.txt"), "draft\n").unwrap();
    std::fs::write(served.join("public/readme.txt"), "hello\n").unwrap();
    let policy = dir.path().join("policy.json");
    let ids = dir.path().join("ids.json");
    std::fs::write(&policy, policy_text).unwrap();
    std::fs::write(&ids, ids_text).unwrap();

    // The directory command, with this test's paths.
    let directory = commands
        .iter()
        .find(|c| c.starts_with("zipgate serve --root"))
        .expect("the --root command");
    let args: Vec<String> = directory
        .split_whitespace()
        .skip(2)
        .map(|arg| match arg {
            "/srv/files" => served.to_str().unwrap().to_owned(),
            "policy.json" => policy.to_str().unwrap().to_owned(),
            "ids.json" => ids.to_str().unwrap().to_owned(),
            other => other.to_owned(),
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let running = serve(&args);
    // The pinned Box id is carol's report; dan may not read it, and carol's
    // own `home` makes Dropbox paths hers.
    let create = |token: &str| box_create_as(&running.addr, token, "12345");
    assert_eq!(create("carol-token"), 202);
    assert_eq!(create("dan-token"), 403);
    let (status, zip) = dropbox_zip(&running.addr, "carol-token", "/drafts");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&zip));
    assert_eq!(zip_entry_names(&zip), ["drafts/", "drafts/a.txt"]);
    let (status, _) = dropbox_zip(&running.addr, "dan-token", "/public");
    assert_eq!(status, 200);

    // The object storage command parses: the same flags with --store.
    let object = commands
        .iter()
        .find(|c| c.contains("zipgate serve --store"))
        .expect("the --store command");
    assert!(object.starts_with("AWS_ENDPOINT_URL="), "{object}");
    let flags = |c: &str| -> Vec<String> {
        c.split_whitespace()
            .filter(|w| w.starts_with("--"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        flags(object),
        ["--store", "--policy", "--id-map"],
        "{object}"
    );
    assert_eq!(flags(directory), ["--root", "--policy", "--id-map"]);
}

/// The long options of `zipgate serve --help`, each with its help text.
fn help_options(help: &str) -> Vec<(String, String)> {
    let mut options: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let long = trimmed
            .strip_prefix("-h, ")
            .unwrap_or(trimmed)
            .strip_prefix("--")
            .filter(|_| line.starts_with("  "));
        match long {
            Some(rest) if line.len() - trimmed.len() <= 6 => {
                let name = rest.split([' ', '=']).next().unwrap_or(rest);
                options.push((name.to_owned(), String::new()));
            }
            _ => {
                if let Some((_, text)) = options.last_mut() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    options
}

#[test]
fn every_serve_flag_can_come_from_the_environment() {
    // --help names each flag's variable, and never a secret's value.
    let output = zipgate_command()
        .args(["serve", "--help"])
        .env("ZIPGATE_CONTROL_TOKEN", "do-not-print-me")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(!help.contains("do-not-print-me"), "{help}");
    let options = help_options(&help);
    assert!(options.len() > 30, "{options:?}");
    for (name, text) in &options {
        if name == "help" {
            continue;
        }
        let variable = format!("[env: ZIPGATE_{}", name.replace('-', "_").to_uppercase());
        assert!(
            text.contains(&variable),
            "--{name} lists no {variable}]: {text}"
        );
    }

    // A server configured by variables alone, lists and flags included.
    let (mut child, url) = spawn_printing_url(
        zipgate_command()
            .arg("serve")
            .envs([
                ("ZIPGATE_LISTEN", "127.0.0.1:0"),
                ("ZIPGATE_CONTROL_TOKEN", "env-token"),
                ("ZIPGATE_CLOCK", "frozen"),
                // One setting per line; the second proves the split.
                ("ZIPGATE_SET", "box.url_ttl=5\nonlyoffice.flavour=docspace"),
                ("ZIPGATE_ALLOW_HOST", "one.example,two.example"),
                // A flag's variable is read as yes/no: `false` leaves it off.
                ("ZIPGATE_NO_CONTROL", "false"),
                ("ZIPGATE_NO_WARM_CRC", "true"),
            ])
            .stderr(Stdio::null()),
    );
    let addr = url.strip_prefix("http://").expect("a URL line").to_owned();
    let token = "Authorization: Bearer env-token\r\n";
    assert_eq!(
        http_get(&addr, "/_zipgate/clock").0,
        401,
        "the token is required"
    );
    let clock = || {
        let (status, response) = http_send(&addr, "GET", "/_zipgate/clock", token, "");
        assert_eq!(status, 200, "{response}");
        response.split_once("\r\n\r\n").unwrap().1.to_owned()
    };
    let first_clock = clock();
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(clock(), first_clock, "the clock is frozen");
    let (status, response) = http_send(
        &addr,
        "GET",
        "/api/2.0/files/fileops",
        "Authorization: Bearer alice-token\r\n",
        "",
    );
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("\"links\""), "DocSpace: {response}");
    let as_host = |host: &str| {
        let mut stream = TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "GET /_zipgate/clock HTTP/1.1\r\nHost: {host}\r\n{token}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response[9..12].parse::<u16>().unwrap()
    };
    assert_eq!(as_host("two.example"), 200);
    assert_ne!(as_host("three.example"), 200);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_start_up_line_names_the_deflate_engine_in_use() {
    let isal = zipgate::DeflateEngine::ISAL_BUILT_IN;
    for (args, expected) in [
        (
            &["--deflate-level", "1"][..],
            if isal {
                "deflate=ISA-L (level 1)"
            } else {
                "deflate=zlib-rs (level 1; this build has no ISA-L)"
            },
        ),
        (
            &["--deflate-level", "1", "--deflate-engine", "zlib-rs"][..],
            "deflate=zlib-rs (level 1; --deflate-engine zlib-rs)",
        ),
        (
            &[][..],
            if isal {
                "deflate=zlib-rs (level 6; ISA-L is used at levels 1-3)"
            } else {
                "deflate=zlib-rs (level 6; this build has no ISA-L)"
            },
        ),
    ] {
        let running = serve(args);
        let line = &running.listening;
        assert!(line.contains(expected), "{args:?}: {line}");
    }
}

#[test]
fn the_readmes_health_example_is_what_health_answers() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (_, after) = readme
        .split_once("curl -s localhost:8080/_zipgate/health\n# ")
        .expect("the README shows the health example");
    let shown: serde_json::Value =
        serde_json::from_str(after.lines().next().unwrap()).expect("its answer is JSON");
    let running = serve(&[]);
    let (status, body) = http_get(&running.addr, "/_zipgate/health");
    assert_eq!(status, 200);
    let answered: serde_json::Value = serde_json::from_str(&body).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    // The same fields (compared as sets: serde_json sorts the keys).
    assert_eq!(keys(&shown), keys(&answered), "{shown}\n{answered}");
    // The same values, but for what the moment and the machine decide
    // (connections, the background CRC pass, the connection cap).
    let moving = [
        "active_streams",
        "connections",
        "crc_warmers",
        "max_connections",
        "replica",
        // Whether this build links ISA-L.
        "isal",
    ];
    for (key, value) in shown.as_object().unwrap() {
        if !moving.contains(&key.as_str()) {
            assert_eq!(&answered[key], value, "{key}");
        }
    }
}

#[test]
fn the_fixture_formats_examples_are_valid_fixtures() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/README.md"))
            .unwrap();
    let dir = TempDir::new("fixture-readme");
    let mut checked = 0;
    for block in readme.split("```json\n").skip(1) {
        let json = block.split("```").next().unwrap();
        if !json.contains("\"nodes\"") {
            continue;
        }
        let file = dir.path().join(format!("example-{checked}.json"));
        std::fs::write(&file, json).unwrap();
        let output = zipgate_command()
            .arg("check-fixtures")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "fixtures/README.md example {checked}:\n{json}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 1);
}

#[test]
fn the_log_says_why_a_download_url_answers_404() {
    let running = serve(&["--set", "box.url_ttl=5"]);
    let addr = running.addr.clone();
    let create = || {
        let (status, body) = http_send(
            &addr,
            "POST",
            "/2.0/zip_downloads",
            "Authorization: Bearer alice-token\r\nContent-Type: application/json\r\n",
            r#"{"items":[{"type":"file","id":"12348"}]}"#,
        );
        assert_eq!(status, 202, "{body}");
        let body = body
            .split_once("\r\n\r\n")
            .map_or(body.as_str(), |(_, b)| b);
        let created: serde_json::Value = serde_json::from_str(body).unwrap();
        let url = created["download_url"].as_str().unwrap().to_owned();
        url[url.find("/2.0/").unwrap()..].to_owned()
    };
    let download = |path: &str| {
        http_bytes(
            &addr,
            &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        )
        .0
    };
    let used = create();
    assert_eq!(download(&used), 200);
    assert_eq!(download(&used), 404);
    wait_for_line(
        &running,
        "download refused: it is single-use and was used already",
    );
    let late = create();
    let (status, _) = http_send(
        &addr,
        "POST",
        "/_zipgate/clock/advance",
        "Content-Type: application/json\r\n",
        r#"{"seconds": 10}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(download(&late), 404);
    wait_for_line(&running, "download refused: it expired");
}

/// A POST of a JSON body, as Alice.
fn post_json(addr: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer alice-token\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    status_and_body(stream)
}

#[test]
fn two_binaries_on_one_redis_share_their_jobs() {
    let redis = common::redis::RedisServer::start();
    let url = redis.url();
    let mut a = serve(&["--jobs", &url, "--jobs-namespace", "cli"]);
    let mut b = common::serve_binary_env(
        &[],
        &[("ZIPGATE_JOBS", &url), ("ZIPGATE_JOBS_NAMESPACE", "cli")],
    );
    let (_, health) = http_get(&a.addr, "/_zipgate/health");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["job_backend"], url.as_str(), "{health}");
    let download = box_folder_download(&a.addr, "across");
    // Made on A, fetched from B (whose own address differs): once.
    let names = download_names(&b.addr, &download);
    assert!(names.iter().any(|n| n.ends_with("server.log")), "{names:?}");
    assert_eq!(http_get(&a.addr, &download).0, 404);
    // Made on A, which is then killed outright (SIGKILL: nothing flushed,
    // no goodbye): B serves it all the same.
    let orphan = box_folder_download(&a.addr, "orphan");
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    assert_eq!(download_names(&b.addr, &orphan), names);
    assert!(terminate(&mut b).success());
}

/// A Box zip download of folder 1005 named `name`, made at `addr`: the
/// path of its download URL.
fn box_folder_download(addr: &str, name: &str) -> String {
    let (status, created) = post_json(
        addr,
        "/2.0/zip_downloads",
        &format!(r#"{{"items":[{{"type":"folder","id":"1005"}}],"download_file_name":"{name}"}}"#),
    );
    assert_eq!(status, 202, "{created}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    created["download_url"]
        .as_str()
        .unwrap()
        .strip_prefix(&format!("http://{addr}"))
        .unwrap()
        .to_owned()
}

/// The entry names of the archive at `path`, which must answer 200.
fn download_names(addr: &str, path: &str) -> Vec<String> {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        response.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&response[..head_end])
    );
    zip_entry_names(&response[head_end..])
}

/// The README's "Running several replicas" blocks: the commands, and the
/// HAProxy configuration.
fn replica_examples() -> (Vec<String>, String) {
    let (mut commands, mut config) = (Vec::new(), String::new());
    for (language, body) in readme_blocks("Running several replicas") {
        match language.as_str() {
            "sh" => commands.extend(body.lines().map(str::to_owned)),
            "haproxy" => config = body,
            other => panic!("a {other:?} block"),
        }
    }
    (commands, config)
}

#[test]
fn the_readmes_replica_example_works() {
    let (commands, config) = replica_examples();
    let redis = common::redis::RedisServer::start();
    // The replicas as written, on free ports and this test's Redis.
    let replicas: Vec<(String, Running)> = commands
        .iter()
        .filter(|c| c.starts_with("zipgate serve"))
        .map(|command| {
            let words: Vec<&str> = command.split_whitespace().skip(2).collect();
            let listen = words[words.iter().position(|w| *w == "--listen").unwrap() + 1];
            let args: Vec<String> = words
                .chunks(2)
                .filter(|pair| pair[0] != "--listen")
                .flat_map(|pair| {
                    pair.iter().map(|w| match *w {
                        "redis://127.0.0.1:6379/0" => redis.url(),
                        other => other.to_owned(),
                    })
                })
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            (listen.to_owned(), serve(&args))
        })
        .collect();
    assert_eq!(replicas.len(), 2, "{commands:?}");
    let haproxy = commands
        .iter()
        .find(|c| c.starts_with("haproxy "))
        .expect("the haproxy command");
    assert_eq!(haproxy, "haproxy -f haproxy.cfg");
    // The configuration as written, with the replicas' and a free port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let front = format!("127.0.0.1:{port}");
    let mut config = config.replace("bind 127.0.0.1:8080", &format!("bind {front}"));
    for (listen, running) in &replicas {
        config = config.replace(listen, &running.addr);
    }
    let dir = TempDir::new("cli-readme-haproxy");
    std::fs::write(dir.path().join("haproxy.cfg"), &config).unwrap();
    let _balancer = common::replicas::Balancer::start(dir.path(), port).expect("haproxy starts");
    // Through the balancer: the create on one replica, the download on the
    // other, once; each replica names itself.
    let download = box_folder_download(&front, "balanced");
    let names = download_names(&front, &download);
    assert!(names.iter().any(|n| n.ends_with("server.log")), "{names:?}");
    assert_eq!(http_get(&front, &download).0, 404);
    let named: Vec<String> = replicas
        .iter()
        .map(|(_, running)| {
            let (_, health) = http_get(&running.addr, "/_zipgate/health");
            let health: serde_json::Value = serde_json::from_str(&health).unwrap();
            health["replica"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(named, ["a", "b"]);
}

#[test]
fn a_job_store_that_cannot_be_used_is_refused_at_start() {
    let (status, stderr) = start_refused(&["--jobs", "http://127.0.0.1:6379/0"], &[]);
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert!(stderr.contains("redis://"), "{stderr}");
    let (status, stderr) = start_refused(
        &["--jobs", "redis://127.0.0.1:1/0", "--jobs-namespace", "{a}"],
        &[],
    );
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert!(stderr.contains("braces"), "{stderr}");
    // Nothing listens on port 1: refused at once, not on the first request.
    let (status, stderr) = start_refused(&["--jobs", "redis://127.0.0.1:1/0"], &[]);
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert!(stderr.contains("cannot reach the job store"), "{stderr}");
}
