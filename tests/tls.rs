//! HTTPS as clients meet it: the Box SDKs (Python and Node) run their flow
//! over `--tls`, trusting the CA zipgate wrote; an operator's own
//! certificate (`--tls-cert`/`--tls-key`) is served; plain HTTP on the TLS
//! port gets a clear answer, and a silent client does not hold a connection.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{spawn_printing_url, zipgate_command, TempDir};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A `zipgate serve` child and the URL it printed.
struct Https {
    child: Child,
    url: String,
}

impl Drop for Https {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Https {
    fn start(args: &[&str]) -> Https {
        let (child, url) = spawn_printing_url(
            zipgate_command()
                .args(["serve", "--listen", "127.0.0.1:0"])
                .args(args)
                .stderr(Stdio::null()),
        );
        Https { child, url }
    }

    fn addr(&self) -> &str {
        self.url.split_once("://").unwrap().1
    }
}

fn python() -> PathBuf {
    let python = root().join(".venv/bin/python");
    assert!(python.exists(), "run tests/run: it makes .venv");
    python
}

/// `script URL` with `env`; its output, after asserting it succeeded.
fn run(program: &Path, script: &str, url: &str, env: &[(&str, &Path)]) -> String {
    let mut command = Command::new(program);
    command
        .arg(root().join("tests/clients").join(script))
        .arg(url);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("the client runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{script} over {url}:\n{text}");
    text
}

/// `GET url` with Python's urllib trusting only `ca`; the status and body,
/// or the error.
fn get_trusting(url: &str, ca: &Path) -> Result<(u16, String), String> {
    let output = Command::new(python())
        .args([
            "-c",
            "import ssl, sys, urllib.request as u\n\
             ctx = ssl.create_default_context(cafile=sys.argv[2])\n\
             r = u.urlopen(sys.argv[1], context=ctx, timeout=10)\n\
             print(r.status); print(r.read().decode())",
            url,
            ca.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let (status, body) = out.split_once('\n').unwrap();
    Ok((status.parse().unwrap(), body.to_owned()))
}

#[test]
fn the_box_sdks_run_their_flow_over_https_trusting_the_ca_zipgate_wrote() {
    let dir = TempDir::new("tls-made");
    let ca = dir.path().join("ca.pem");
    let server = Https::start(&["--tls", "--tls-ca-file", ca.to_str().unwrap()]);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let pem = std::fs::read_to_string(&ca).unwrap();
    assert!(pem.contains("BEGIN CERTIFICATE"), "{pem}");
    assert!(
        !pem.contains("PRIVATE KEY"),
        "only the certificate is written"
    );

    // Each script also checks that download URLs start with the https base.
    run(
        &python(),
        "box_python.py",
        &server.url,
        &[("REQUESTS_CA_BUNDLE", &ca), ("SSL_CERT_FILE", &ca)],
    );
    let node_sdk = root().join("tests/clients/node_modules/box-node-sdk");
    assert!(node_sdk.exists(), "run tests/run: it installs the Node SDK");
    run(
        Path::new("node"),
        "box_node.js",
        &server.url,
        &[("NODE_EXTRA_CA_CERTS", &ca)],
    );

    // The certificate holds for `localhost` too, and only through the CA.
    let port = server.addr().rsplit_once(':').unwrap().1;
    let health = get_trusting(&format!("https://localhost:{port}/_zipgate/health"), &ca);
    assert_eq!(health.as_ref().map(|(s, _)| *s), Ok(200), "{health:?}");
    let stranger = dir.path().join("other-ca.pem");
    let other = Https::start(&["--tls", "--tls-ca-file", stranger.to_str().unwrap()]);
    drop(other);
    let refused = get_trusting(&format!("{}/_zipgate/health", server.url), &stranger);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("CERTIFICATE_VERIFY_FAILED")),
        "another CA does not vouch for it: {refused:?}"
    );
}

#[test]
fn an_operators_certificate_and_key_are_served() {
    let dir = TempDir::new("tls-own");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (tests/run installs it)");
    assert!(made.status.success(), "{made:?}");
    let server = Https::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let health = get_trusting(&format!("{}/_zipgate/health", server.url), &cert);
    assert_eq!(health.as_ref().map(|(s, _)| *s), Ok(200), "{health:?}");

    // A file that holds no certificate stops start-up, naming the flag.
    let output = zipgate_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&key)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--tls-cert"), "{stderr}");
}

#[test]
fn plain_http_on_the_tls_port_is_answered_and_silence_is_not_waited_on() {
    let dir = TempDir::new("tls-plain");
    let ca = dir.path().join("ca.pem");
    let server = Https::start(&[
        "--tls",
        "--tls-ca-file",
        ca.to_str().unwrap(),
        "--header-timeout",
        "1",
    ]);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /_zipgate/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    assert!(response.contains("https://"), "{response}");

    // A client that connects and says nothing is let go after the header
    // timeout, in plain TCP terms: the connection closes.
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr()).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    let read = silent.read(&mut buf);
    assert!(matches!(read, Ok(0)), "{read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
