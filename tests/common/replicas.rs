//! Two `zipgate serve` replicas sharing their jobs through a Redis of their
//! own, behind Debian's HAProxy balancing each request round-robin, as a
//! gateway team runs them (`tests/run` installs both). Stopped when dropped.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::RedisServer;
use super::{serve_binary, Running, TempDir};

pub struct Replicas {
    /// HAProxy's address, `127.0.0.1:PORT`: what clients are given.
    pub addr: String,
    pub servers: Vec<Running>,
    _balancer: Balancer,
    _config: TempDir,
    pub redis: RedisServer,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `haproxy -f haproxy.cfg` run in a folder, stopped when dropped.
pub struct Balancer(Child);

impl Balancer {
    /// Starts HAProxy on `dir`'s `haproxy.cfg` and waits until it listens
    /// on `port`; `None` if it exits first (the port was taken).
    pub fn start(dir: &Path, port: u16) -> Option<Balancer> {
        // Debian puts it in /usr/sbin, which a user's PATH may not hold.
        let binary = if Path::new("/usr/sbin/haproxy").exists() {
            "/usr/sbin/haproxy"
        } else {
            "haproxy"
        };
        let mut balancer = Balancer(
            Command::new(binary)
                .args(["-f", "haproxy.cfg"])
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("haproxy runs these tests: apt-get install haproxy (tests/run does)"),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(balancer);
            }
            if let Ok(Some(_)) = balancer.0.try_wait() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("haproxy did not listen on {port} in 5 s");
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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
            // None: the port was taken meanwhile; try another.
            if let Some(balancer) = Balancer::start(config.path(), port) {
                return Replicas {
                    addr: format!("127.0.0.1:{port}"),
                    servers,
                    _balancer: balancer,
                    _config: config,
                    redis,
                };
            }
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
