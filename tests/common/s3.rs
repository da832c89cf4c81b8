//! A real S3-compatible server for the tests: moto_server from `.venv-s3`
//! (tests/run installs it) or npm's s3rver, on a free loopback port, seeded
//! with boto3 (tests/s3/seed.py).

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use zipgate::store::object::{ObjectStore, S3Config};

use super::run;

pub const BUCKET: &str = "zipgate";

fn venv() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-s3/bin");
    assert!(
        bin.join("moto_server").exists(),
        "{} has no moto_server: tests/run installs tests/requirements-s3.txt there",
        bin.display()
    );
    bin
}

/// An S3 server of its own, stopped on drop or when the test process
/// ends, however it ends: it runs under a shell that stops it once its
/// stdin (a pipe only this process holds) closes, so a server shared by a
/// whole test binary, never dropped, does not outlive it.
pub struct S3Server {
    child: Child,
    stdin: Option<ChildStdin>,
    pub endpoint: String,
    /// Access key and secret (s3rver takes only its own).
    pub key: &'static str,
}

impl S3Server {
    pub fn moto() -> S3Server {
        S3Server::start("test", |port| {
            let mut command = Command::new(venv().join("moto_server"));
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            command
        })
    }

    /// A second implementation (npm's s3rver, on a folder of its own), so
    /// the store does not lean on one server's leniency. Node 20 needs
    /// OpenSSL's legacy provider for its listing tokens (DES).
    pub fn s3rver(data: &Path) -> S3Server {
        let bin =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/node_modules/.bin/s3rver");
        assert!(
            bin.exists(),
            "{} is missing: tests/run installs it",
            bin.display()
        );
        S3Server::start("S3RVER", |port| {
            let mut command = Command::new(&bin);
            command
                .args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "--configure-bucket",
                    BUCKET,
                ])
                .arg("-d")
                .arg(data)
                .env("NODE_OPTIONS", "--openssl-legacy-provider");
            command
        })
    }

    fn start(key: &'static str, command: impl FnOnce(u16) -> Command) -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = command(port);
        let mut guarded = Command::new("sh");
        guarded
            .args([
                "-c",
                r#""$@" </dev/null >/dev/null 2>&1 & server=$!; read _; kill $server; wait $server"#,
                "sh",
            ])
            .arg(server.get_program())
            .args(server.get_args());
        for (name, value) in server.get_envs() {
            match value {
                Some(value) => guarded.env(name, value),
                None => guarded.env_remove(name),
            };
        }
        let mut child = guarded
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the S3 server starts");
        let server = S3Server {
            stdin: child.stdin.take(),
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            key,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the S3 server does not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Stops the server and waits until it is gone (an outage, for a test).
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }

    /// `tests/s3/seed.py ARGS[0] ENDPOINT BUCKET ARGS[1..]`.
    pub fn seed(&self, args: &[&str]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/seed.py");
        let mut command = Command::new(venv().join("python"));
        command
            .arg(script)
            .arg(args[0])
            .arg(&self.endpoint)
            .arg(BUCKET)
            .env("AWS_ACCESS_KEY_ID", self.key)
            .env("AWS_SECRET_ACCESS_KEY", self.key);
        run(command.args(&args[1..]));
    }

    /// What `zipgate serve --store` reads from the environment to reach it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.key.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", self.key.to_owned()),
        ]
    }

    /// The store of `s3://BUCKET/prefix`, mtimes from rclone's metadata.
    pub fn store(&self, prefix: &str) -> ObjectStore {
        let vars = self.env();
        let env = move |name: &str| {
            vars.iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| value.clone())
        };
        let mut config = S3Config::from_url(&format!("s3://{BUCKET}/{prefix}"), &env).unwrap();
        config.mtime_from_metadata = true;
        config.timeout = Duration::from_secs(2);
        ObjectStore::new(&config).unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
