//! The connection cap (`--max-connections`) and what the accept loops do
//! when accepting fails.
//!
//! Every connection holds a slot from accept until its task ends (served,
//! closed by the client, timed out or cut at shutdown: the slot is dropped
//! with the task), so clients that open sockets and send nothing cannot run
//! the process out of file descriptors and lock everyone out until
//! `--header-timeout` frees them. Past the cap a connection is accepted only
//! to be told `503` and closed, by a small task with a deadline; those tasks
//! are capped too, and past that the socket is simply closed.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The smallest default cap, however low the descriptor limit: below it a
/// test client's connection pool alone could fill the server.
pub const MIN_DEFAULT_CONNECTIONS: usize = 16;

/// Descriptors kept free under the soft limit at the least: the log, the
/// listener, fixture files the engine opens while streaming, the refusal
/// tasks' sockets (`MAX_REFUSING`) and the runtime's own.
const FD_RESERVE: u64 = 64;

/// What an unlimited descriptor limit (`RLIM_INFINITY`) counts as: Linux's
/// default `fs.nr_open`, which caps any process's descriptors anyway.
const UNLIMITED_FDS: u64 = 1 << 20;

/// Refusals being written at once. Each holds a socket for at most
/// `REFUSAL_DEADLINE`, so a flood past the cap costs at most this many
/// descriptors and tasks beyond the cap; past it sockets are closed unanswered.
pub const MAX_REFUSING: usize = 32;

/// How long a refusal may take in all: writing ~250 bytes into a fresh
/// socket's empty send buffer does not block, so the time goes to reading
/// what the client sent until it closes (see `refuse`).
const REFUSAL_DEADLINE: Duration = Duration::from_secs(1);

/// Bytes of a refused client's request read (and dropped) before closing.
const REFUSAL_DRAIN: usize = 64 * 1024;

/// The most connections the default allows however many descriptors there
/// are: past the descriptors, each idle connection still costs its task and
/// buffers (tens of KiB), so a million would be gigabytes. `--max-connections`
/// goes higher on purpose.
pub const MAX_DEFAULT_CONNECTIONS: usize = 16_384;

/// The default cap for a soft descriptor limit (`None`: unlimited): three
/// quarters of it, and at least `FD_RESERVE` under it, but never below
/// `MIN_DEFAULT_CONNECTIONS` nor above `MAX_DEFAULT_CONNECTIONS`.
pub fn max_connections_for(fd_limit: Option<u64>) -> usize {
    let limit = fd_limit.unwrap_or(UNLIMITED_FDS).min(UNLIMITED_FDS);
    let cap = (limit - limit / 4).min(limit.saturating_sub(FD_RESERVE));
    usize::try_from(cap)
        .unwrap_or(usize::MAX)
        .clamp(MIN_DEFAULT_CONNECTIONS, MAX_DEFAULT_CONNECTIONS)
}

/// The default cap for this process's soft descriptor limit now.
pub fn default_max_connections() -> usize {
    max_connections_for(soft_fd_limit())
}

/// The soft `RLIMIT_NOFILE` (`None`: unlimited).
#[cfg(target_os = "linux")]
pub fn soft_fd_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Where zipgate does not read the limit (rustix is a Linux-only
/// dependency), the common soft default.
#[cfg(not(target_os = "linux"))]
pub fn soft_fd_limit() -> Option<u64> {
    Some(1024)
}

/// Raises the soft descriptor limit to the hard one, as servers commonly do
/// at start: the usual soft default (1,024) is kept low for programs that
/// use `select`, which zipgate does not, and the hard limit is what the
/// administrator allows. Returns the soft limit in force afterwards.
#[cfg(target_os = "linux")]
pub fn raise_fd_limit() -> io::Result<Option<u64>> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    // An unlimited hard limit cannot be the soft one on Linux (it is capped
    // by fs.nr_open); its default is the most asked for.
    let target = now.maximum.unwrap_or(UNLIMITED_FDS);
    if now.current.is_none_or(|soft| soft >= target) {
        return Ok(now.current);
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: now.maximum,
        },
    )?;
    Ok(Some(target))
}

/// Elsewhere the limit is left as it is.
#[cfg(not(target_os = "linux"))]
pub fn raise_fd_limit() -> io::Result<Option<u64>> {
    Ok(soft_fd_limit())
}

/// Live connections of one server, over every runtime that serves it.
#[derive(Debug)]
pub struct ConnectionLimit {
    live: AtomicUsize,
    refusing: AtomicUsize,
    max: usize,
}

/// What the accept loop does with a connection it has just accepted.
pub enum Admission {
    /// Serve it; the slot goes with the connection's task.
    Serve(ConnectionSlot),
    /// The server is full: answer 503 (`refuse`) on a task of its own
    /// holding this slot, or, over even the refusal cap, close it unanswered
    /// (`AcceptLog::turn_away` does either).
    Full(Option<RefusalSlot>),
}

/// One connection's place under the cap, given back when dropped.
pub struct ConnectionSlot(Arc<ConnectionLimit>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One refusal's place under `MAX_REFUSING`, given back when dropped.
pub struct RefusalSlot(Arc<ConnectionLimit>);

impl Drop for RefusalSlot {
    fn drop(&mut self) {
        self.0.refusing.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionLimit {
    pub fn new(max: usize) -> Self {
        ConnectionLimit {
            live: AtomicUsize::new(0),
            refusing: AtomicUsize::new(0),
            max,
        }
    }

    /// Connections being served now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes a slot for a new connection if there is one. Only the accept
    /// loop admits, so the optimistic increment cannot make a concurrent
    /// admission fail; counters only order themselves (`Relaxed`): no data
    /// is published through them.
    pub fn admit(self: &Arc<Self>) -> Admission {
        if self.live.fetch_add(1, Ordering::Relaxed) < self.max {
            return Admission::Serve(ConnectionSlot(self.clone()));
        }
        self.live.fetch_sub(1, Ordering::Relaxed);
        if self.refusing.fetch_add(1, Ordering::Relaxed) < MAX_REFUSING {
            return Admission::Full(Some(RefusalSlot(self.clone())));
        }
        self.refusing.fetch_sub(1, Ordering::Relaxed);
        Admission::Full(None)
    }
}

/// The answer past the cap. It is written before any request is read, so
/// nothing tells which vendor the client speaks: it is zipgate's neutral
/// JSON error (as `/_zipgate/` routes answer), not a vendor envelope.
pub fn refusal() -> Vec<u8> {
    let body = r#"{"error":"too_many_connections","message":"the server has as many open connections as it allows (max-connections); retry in a moment"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\n\
         content-type: application/json\r\n\
         content-length: {}\r\n\
         retry-after: 1\r\n\
         connection: close\r\n\
         \r\n\
         {body}",
        body.len()
    )
    .into_bytes()
}

/// Answers a connection past the cap with `refusal()` and closes it, all
/// within `REFUSAL_DEADLINE`. After the answer it reads what the client sent
/// (its request) until the client closes: closing a socket with unread
/// data resets the connection, and the client would lose the answer.
pub async fn refuse(mut socket: TcpStream, slot: RefusalSlot) {
    let _slot = slot;
    let answered = tokio::time::timeout(REFUSAL_DEADLINE, async {
        socket.write_all(&refusal()).await?;
        socket.shutdown().await?;
        let mut buf = [0u8; 4096];
        let mut drained = 0;
        while drained < REFUSAL_DRAIN {
            match socket.read(&mut buf).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
    if let Ok(Err(error)) = answered {
        tracing::debug!(%error, "refusing a connection past the cap");
    }
}

/// How long the accept loop waits after an `accept` that failed for want
/// of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM): the pending connection
/// stays queued and the listener stays ready, so retrying at once would
/// spin a core without freeing anything.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// At most one warning of each kind this often while `accept` keeps
/// failing or the server stays full: a flood must not flood the log too.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts events and says when to warn of them: the first at once, then at
/// most once every `ACCEPT_LOG_EVERY`, with the count since the last warning.
#[derive(Default)]
struct Throttled {
    last_logged: Option<Instant>,
    since: u64,
}

impl Throttled {
    /// Counts one event; the count to report when a warning is due.
    fn due(&mut self) -> Option<u64> {
        self.since += 1;
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|at| now.duration_since(at) < ACCEPT_LOG_EVERY)
        {
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

/// An accept loop's warnings: failed accepts and connections turned away,
/// each logged once in a while.
#[derive(Default)]
pub struct AcceptLog {
    errors: Throttled,
    turned_away: Throttled,
}

impl AcceptLog {
    /// Deals with a connection the cap turned away (`Admission::Full`):
    /// a refusal task answers it if there is room for one, else it is
    /// closed here. Never waits, so the accept loop goes straight on.
    pub fn turn_away(
        &mut self,
        socket: TcpStream,
        refusal: Option<RefusalSlot>,
        limit: &ConnectionLimit,
    ) {
        if let Some(count) = self.turned_away.due() {
            tracing::warn!(
                max_connections = limit.max(),
                turned_away = count,
                "at the connection cap: answering 503 (see --max-connections)"
            );
        }
        match refusal {
            Some(slot) => {
                tokio::spawn(refuse(socket, slot));
            }
            None => drop(socket),
        }
    }

    /// Logs (now and then) and backs off. A connection the client aborted
    /// before it was accepted is its own failure, not the listener's, and
    /// costs no wait: a client must not slow everyone's accepts that way.
    pub async fn failed(&mut self, error: io::Error) {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted
        ) {
            tracing::debug!(%error, "a connection ended before it was accepted");
            return;
        }
        if let Some(count) = self.errors.due() {
            tracing::warn!(
                %error,
                failures = count,
                fd_limit = soft_fd_limit(),
                "accept failed; backing off (out of file descriptors? see --max-connections)"
            );
        }
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_room_under_the_fd_limit() {
        assert_eq!(max_connections_for(Some(1024)), 768);
        assert_eq!(max_connections_for(Some(256)), 192);
        // Small limits keep FD_RESERVE free.
        assert_eq!(max_connections_for(Some(200)), 136);
        // Never below the floor, never above what Linux allows.
        assert_eq!(max_connections_for(Some(10)), MIN_DEFAULT_CONNECTIONS);
        assert_eq!(max_connections_for(Some(0)), MIN_DEFAULT_CONNECTIONS);
        assert_eq!(max_connections_for(Some(65_536)), MAX_DEFAULT_CONNECTIONS);
        assert_eq!(max_connections_for(None), MAX_DEFAULT_CONNECTIONS);
        assert_eq!(max_connections_for(Some(u64::MAX)), MAX_DEFAULT_CONNECTIONS);
    }

    #[test]
    fn slots_come_back_and_refusals_are_capped() {
        let limit = Arc::new(ConnectionLimit::new(2));
        let a = limit.admit();
        let b = limit.admit();
        assert!(matches!(a, Admission::Serve(_)));
        assert!(matches!(b, Admission::Serve(_)));
        assert_eq!(limit.live(), 2);
        let refusals: Vec<_> = (0..MAX_REFUSING).map(|_| limit.admit()).collect();
        assert!(refusals
            .iter()
            .all(|r| matches!(r, Admission::Full(Some(_)))));
        assert_eq!(limit.live(), 2);
        assert!(matches!(limit.admit(), Admission::Full(None)));
        drop(refusals);
        assert!(matches!(limit.admit(), Admission::Full(Some(_))));
        drop(a);
        assert_eq!(limit.live(), 1);
        assert!(matches!(limit.admit(), Admission::Serve(_)));
        drop(b);
        assert_eq!(limit.live(), 0);
    }

    #[test]
    fn warnings_come_at_once_then_now_and_then_with_a_count() {
        let mut log = Throttled::default();
        assert_eq!(log.due(), Some(1));
        assert_eq!(log.due(), None);
        assert_eq!(log.due(), None);
        log.last_logged = Some(Instant::now() - ACCEPT_LOG_EVERY);
        assert_eq!(log.due(), Some(3));
    }

    #[test]
    fn the_refusal_is_complete_http() {
        let bytes = refusal();
        let text = std::str::from_utf8(&bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "too_many_connections");
    }
}
