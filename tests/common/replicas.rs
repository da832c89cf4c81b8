//! Two `zipgate serve` replicas sharing their jobs through a Redis of their
//! own, behind Debian's HAProxy balancing each request round-robin, as a
//! gateway team runs them (`tests/run` installs both). Stopped when dropped.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::RedisServer;
use super::{serve_binary, Running, TempDir};

pub struct Replicas {
    /// HAProxy's address, `127.0.0.1:PORT`: what clients are given.
    pub addr: String,
    pub servers: Vec<Running>,
    haproxy: Child,
    _config: TempDir,
    pub redis: RedisServer,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn haproxy() -> &'static str {
    // Debian puts it in /usr/sbin, which a user's PATH may not hold.
    if std::path::Path::new("/usr/sbin/haproxy").exists() {
        "/usr/sbin/haproxy"
    } else {
        "haproxy"
    }
}

impl Replicas {
    /// Two replicas started with `args` (and `--jobs` on a new Redis).
    pub fn start(args: &[&str]) -> Replicas {
        let redis = RedisServer::start();
        let url = redis.url();
        let servers: Vec<Running> = (0..2)
            .map(|_| serve_binary(&[args, &["--jobs", &url]].concat()))
            .collect();
        let config = TempDir::new("haproxy");
        let path = config.path().join("haproxy.cfg");
        let backends: String = servers
            .iter()
            .enumerate()
            .map(|(n, s)| format!("  server replica{n} {}\n", s.addr))
            .collect();
        for _ in 0..5 {
            let port = free_port();
            std::fs::write(
                &path,
                format!(
                    "global\n  maxconn 512\n\
                     defaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n\
                     frontend clients\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\
                     backend replicas\n  balance roundrobin\n{backends}"
                ),
            )
            .unwrap();
            let mut haproxy = Command::new(haproxy())
                .args(["-db", "-f"])
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("haproxy runs these tests: apt-get install haproxy (tests/run does)");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Replicas {
                        addr: format!("127.0.0.1:{port}"),
                        servers,
                        haproxy,
                        _config: config,
                        redis,
                    };
                }
                if let Ok(Some(_)) = haproxy.try_wait() {
                    break; // the port was taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = haproxy.kill();
            let _ = haproxy.wait();
        }
        panic!("haproxy did not start");
    }

    /// Each replica's own base URL, comma-separated (`ZIPGATE_REPLICAS`
    /// for the client scripts' harness, which reads every journal).
    pub fn direct_urls(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("http://{}", s.addr))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        let _ = self.haproxy.kill();
        let _ = self.haproxy.wait();
    }
}
