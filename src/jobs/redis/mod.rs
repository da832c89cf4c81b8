//! `--jobs redis://…`: the jobs of several replicas in one Redis, so a job
//! created on one replica can be polled, downloaded or cancelled on another
//! (docs/design/scaleout.md).
//!
//! Every read-modify-write of a job is one function of a Lua library (the
//! `.lua` files beside this one, each after `prelude.lua`), given `now`
//! from this server's clock: Redis runs a function alone, so a poll that
//! advances a job and a download claim never interleave, and of many
//! concurrent claims of a single-use job exactly one wins. The state
//! machine in the prelude is `job.rs`'s `advance` line for line, and
//! `tests.rs` runs both on the same operations and compares what they show.
//!
//! What stays on this replica: the job's archive, rebuilt from the plan the
//! hash keeps ([`ArchivePlan`]) when another replica made it, and cached by
//! (seq, rev); the handle that stops a build; the tokens that cut this
//! replica's downloads when the job is cancelled. A cancel or failure on any
//! replica is published on the namespace's bus channel (`settle.lua`), and
//! every replica listens ([`listen`]), so the one building or streaming the
//! job stops it as when the cancel is its own. A message missed while the
//! subscription was down leaves that download running to its end; the
//! job's state is right either way.
//!
//! The core is synchronous, so each call blocks its thread for one round
//! trip: with multi-thread workers through `block_in_place`, which keeps the
//! other connections of that worker moving (design doc §0, measured).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration as StdDuration, Instant};

use redis::aio::ConnectionManager;
use redis::Value;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tokio_util::sync::CancellationToken;
use zipgate_api::{Error, JobSnapshot, JobState, Principal};

use super::job::{files_of, Job};
use super::{
    Admission, Building, Claimed, ControlHook, JobBackend, JobFault, JobSpec, Peek, RecheckInput,
};
use super::{JobLimits, DEFAULT_MAX_JOBS};
use crate::archive_plan::ArchivePlan;
use crate::clock::Clock;
use crate::events::Events;
use crate::recheck::{Replacement, Sources};
use crate::store::Tree;
use crate::zip::Archive;

mod record;
#[cfg(test)]
mod tests;
mod ticket;

use record::{micros, owner_key, Record};
use ticket::Ticket;

/// The tree a plan made on another replica is rebuilt against: the
/// server's current one (fixtures are the same on every replica).
pub type TreeSource = Arc<RwLock<Arc<Tree>>>;

/// How long a call waits for Redis before the request gets the vendor's 503.
const RESPONSE_TIMEOUT: StdDuration = StdDuration::from_secs(1);
const CONNECTION_TIMEOUT: StdDuration = StdDuration::from_millis(500);
/// After a call fails for want of Redis, calls fail at once for this long,
/// then one call tries again: while Redis is away (or hangs) a request
/// pays at most one timeout, not one per call it makes.
const BREAKER_OPEN: StdDuration = StdDuration::from_millis(500);
/// Archives kept ready on this replica; past it the oldest are rebuilt
/// from their plan when asked for again.
const CACHED_ARCHIVES: usize = DEFAULT_MAX_JOBS;
/// Jobs per call when listing every job (the control plane): Redis runs
/// one function at a time, so a long list goes in slices.
const LIST_PAGE: usize = 256;

/// The job library's functions, one per `.lua` file beside the prelude.
#[derive(Clone, Copy, Debug)]
enum Op {
    Create,
    Look,
    Claim,
    Progress,
    Settle,
    Acknowledge,
    Remove,
    List,
    Build,
    Cut,
    FaultCount,
    FaultCommit,
    FaultRead,
    Reap,
    Control,
}

const OPS: [(Op, &str, &str); 15] = [
    (Op::Create, "create", include_str!("create.lua")),
    (Op::Look, "look", include_str!("look.lua")),
    (Op::Claim, "claim", include_str!("claim.lua")),
    (Op::Progress, "progress", include_str!("progress.lua")),
    (Op::Settle, "settle", include_str!("settle.lua")),
    (
        Op::Acknowledge,
        "acknowledge",
        include_str!("acknowledge.lua"),
    ),
    (Op::Remove, "remove", include_str!("remove.lua")),
    (Op::List, "list", include_str!("list.lua")),
    (Op::Build, "build", include_str!("build.lua")),
    (Op::Cut, "cut", include_str!("cut.lua")),
    (
        Op::FaultCount,
        "fault_count",
        include_str!("fault_count.lua"),
    ),
    (
        Op::FaultCommit,
        "fault_commit",
        include_str!("fault_commit.lua"),
    ),
    (Op::FaultRead, "fault_read", include_str!("fault_read.lua")),
    (Op::Reap, "reap", include_str!("reap.lua")),
    (Op::Control, "control", include_str!("control.lua")),
];

/// How long a replica counts as alive after its last heartbeat: past it,
/// the others end its downloads as interrupted (`reap.lua`). It beats every
/// second (or a quarter of a shorter lease), and reaps as it beats.
const LEASE: StdDuration = StdDuration::from_secs(10);

/// How long a control-plane change waits for every replica to apply it.
const CONTROL_WAIT: StdDuration = StdDuration::from_secs(5);

/// The job library as `FUNCTION LOAD` takes it (Redis 7 or Valkey). Loaded
/// at start and again after Redis restarts without it, so the prelude's
/// tables and helpers are built once instead of on every call, as
/// `EVALSHA` would. Named after a digest of its text, so replicas of two
/// versions each call their own.
struct Library {
    source: String,
    functions: Vec<String>,
}

static LIBRARY: LazyLock<Library> = LazyLock::new(|| {
    let mut body = String::from(include_str!("prelude.lua"));
    for (_, name, code) in OPS {
        body.push_str(&format!(
            "\nredis.register_function('{{NAME}}_{name}', function(KEYS, ARGV)\nbegin(ARGV)\n{code}\nend)\n"
        ));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
    let version: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = format!("zipgate_jobs_{version}");
    Library {
        source: format!("#!lua name={name}\n{}", body.replace("{NAME}", &name)),
        functions: OPS
            .iter()
            .map(|(_, op, _)| format!("{name}_{op}"))
            .collect(),
    }
});

async fn load_library(conn: &mut ConnectionManager) -> redis::RedisResult<()> {
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(&LIBRARY.source)
        .query_async::<()>(conn)
        .await
}

/// Calls `op` with the prefix and now in front of `args`, loading the
/// library first when Redis does not have it (a restart without
/// persistence forgets it).
async fn fcall(
    conn: &mut ConnectionManager,
    op: Op,
    prefix: &str,
    now: &str,
    args: &[Vec<u8>],
    again: bool,
) -> redis::RedisResult<Value> {
    let mut command = redis::cmd("FCALL");
    command
        .arg(&LIBRARY.functions[op as usize])
        .arg(0)
        .arg(prefix)
        .arg(now)
        .arg(args);
    match query::<Value>(&command, conn, again).await {
        Err(error) if error.to_string().contains("Function not found") => {
            load_library(conn).await?;
            query::<Value>(&command, conn, again).await
        }
        other => other,
    }
}

/// Sends `command`; with `again` (a read, which may run twice), once more
/// if the connection was found closed: the connection manager has opened
/// a new one by then. A write is not sent twice: its first try may have
/// run before the connection went (see `listen` for what keeps that rare).
async fn query<T: redis::FromRedisValue>(
    command: &redis::Cmd,
    conn: &mut ConnectionManager,
    again: bool,
) -> redis::RedisResult<T> {
    match command.query_async::<T>(conn).await {
        Err(error) if again && error.is_connection_dropped() => {
            command.query_async::<T>(conn).await
        }
        other => other,
    }
}

/// Listens on the bus for as long as the job store is in use, subscribing
/// again after the connection drops (messages sent meanwhile are lost: see
/// the module's comment).
async fn listen(
    client: redis::Client,
    channel: String,
    subscribed: redis::aio::PubSub,
    jobs: std::sync::Weak<Inner>,
) {
    use futures_util::StreamExt;
    let mut bus = Some(subscribed);
    while jobs.strong_count() > 0 {
        if bus.is_none() {
            if let Ok(mut again) = client.get_async_pubsub().await {
                if again.subscribe(&channel).await.is_ok() {
                    bus = Some(again);
                    // What was published while it was away.
                    if let Some(inner) = jobs.upgrade() {
                        if let Err(error) = catch_up(&inner, None).await {
                            tracing::warn!(target: "zipgate::jobs", %error, "control changes not caught up");
                        }
                    }
                }
            }
        }
        if let Some(mut subscribed) = bus.take() {
            let mut messages = subscribed.on_message();
            while let Some(message) = messages.next().await {
                let Some(inner) = jobs.upgrade() else {
                    return;
                };
                let payload = message.get_payload_bytes();
                match payload.strip_prefix(b"control ") {
                    Some(change) => applied(&inner, change).await,
                    None => RedisJobs { inner }.heard(payload),
                }
            }
            // The connection went, so the calls' one has too: a ping finds
            // that out now, and the manager connects again before a request
            // would have (a write that finds a closed connection fails).
            if let Some(inner) = jobs.upgrade() {
                let mut conn = inner.conn.clone();
                let _ = redis::cmd("PING").query_async::<()>(&mut conn).await;
            }
        }
        tokio::time::sleep(StdDuration::from_millis(250)).await;
    }
}

/// Tells Redis this replica is alive, and ends the downloads of replicas
/// that are not (`reap.lua`), for as long as the job store is in use.
async fn heartbeat(jobs: std::sync::Weak<Inner>) {
    loop {
        let lease = {
            let Some(inner) = jobs.upgrade() else {
                return;
            };
            #[cfg(test)]
            if inner.silent.load(Ordering::Relaxed) {
                return;
            }
            let lease = inner.lease_ms.load(Ordering::Relaxed);
            if let Err(error) = beat(&inner, lease).await {
                tracing::debug!(target: "zipgate::jobs", %error, "no heartbeat this time");
            }
            lease
        };
        tokio::time::sleep(StdDuration::from_millis((lease / 4).clamp(10, 1000))).await;
    }
}

async fn beat(inner: &Inner, lease_ms: u64) -> redis::RedisResult<()> {
    let mut conn = inner.conn.clone();
    let me = &inner.listener_id;
    redis::pipe()
        .cmd("SET")
        .arg(format!("{}alive:{me}", inner.prefix))
        .arg(1)
        .arg("PX")
        .arg(lease_ms)
        .ignore()
        .cmd("SADD")
        .arg(format!("{}replicas", inner.prefix))
        .arg(me)
        .ignore()
        .query_async::<()>(&mut conn)
        .await?;
    let now = micros(inner.clock.now()).to_string();
    let unanswered =
        std::mem::take(&mut *inner.unanswered.lock().unwrap_or_else(|e| e.into_inner()));
    let mut args = vec![me.clone().into_bytes()];
    args.extend(unanswered.iter().map(|claim| claim.clone().into_bytes()));
    let reaped = match fcall(&mut conn, Op::Reap, &inner.prefix, &now, &args, false).await {
        Ok(reaped) => reaped,
        Err(error) => {
            // Tried again at the next beat.
            inner
                .unanswered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(unanswered);
            return Err(error);
        }
    };
    if let Value::Int(n) = reaped {
        if n > 0 {
            tracing::warn!(
                target: "zipgate::jobs",
                downloads = n,
                "ended the downloads of a replica that stopped beating"
            );
        }
    }
    Ok(())
}

/// A control-plane change heard on the bus (`control <rev> <change>`):
/// applied here, then acknowledged, so the replica that made it knows.
async fn applied(inner: &Arc<Inner>, message: &[u8]) {
    let text = String::from_utf8_lossy(message);
    let Some((rev, change)) = text.split_once(' ') else {
        return;
    };
    let Ok(number) = rev.parse::<u64>() else {
        return;
    };
    // Not acknowledged before the server can apply it (while it starts):
    // the replica that made the change then waits, and warns; the next
    // change catches this one up.
    if inner.control.get().is_none() {
        return;
    }
    {
        let mut last = inner.applied_rev.lock().await;
        if number > *last + 1 {
            // Some went by while the subscription was down: those first.
            drop(last);
            if let Err(error) = catch_up(inner, Some(number - 1)).await {
                tracing::warn!(target: "zipgate::jobs", %error, "control changes not caught up");
            }
            last = inner.applied_rev.lock().await;
        }
        if number > *last {
            apply_aside(inner, change.to_owned()).await;
            *last = number;
        }
    }
    let acks = format!("{}ack:{rev}", inner.prefix);
    let mut conn = inner.conn.clone();
    let acknowledged = redis::pipe()
        .cmd("SADD")
        .arg(&acks)
        .arg(&inner.listener_id)
        .ignore()
        .cmd("PEXPIRE")
        .arg(&acks)
        .arg(60_000)
        .ignore()
        .query_async::<()>(&mut conn)
        .await;
    if let Err(error) = acknowledged {
        tracing::warn!(target: "zipgate::jobs", %error, "a control change was not acknowledged");
    }
}

/// Runs the control hook on a blocking thread, not on the store's runtime:
/// a fixture to parse or the store swapped under its lock must not hold
/// up this replica's Redis traffic, timers and heartbeat meanwhile.
async fn apply_aside(inner: &Arc<Inner>, change: String) {
    let inner = inner.clone();
    let applied = tokio::task::spawn_blocking(move || {
        if let Some(apply) = inner.control.get() {
            apply(&change);
        }
    })
    .await;
    if let Err(error) = applied {
        tracing::warn!(target: "zipgate::jobs", %error, "a control change failed to apply");
    }
}

/// Applies, in order, the control changes kept in the stream after the last
/// one applied here, up to `upto` (else all).
async fn catch_up(inner: &Arc<Inner>, upto: Option<u64>) -> redis::RedisResult<()> {
    if inner.control.get().is_none() {
        return Ok(());
    }
    let mut last = inner.applied_rev.lock().await;
    let mut conn = inner.conn.clone();
    let end = upto.map_or_else(|| "+".to_owned(), |n| format!("{n}-1"));
    let entries: Value = redis::cmd("XRANGE")
        .arg(format!("{}control", inner.prefix))
        .arg(format!("{}-0", *last + 1))
        .arg(end)
        .query_async(&mut conn)
        .await?;
    let Value::Array(entries) = entries else {
        return Ok(());
    };
    for entry in entries {
        let Value::Array(mut parts) = entry else {
            continue;
        };
        let (Some(Value::Array(fields)), Some(id)) = (parts.pop(), parts.pop()) else {
            continue;
        };
        let id = String::from_utf8(bytes(id)).unwrap_or_default();
        let Some(number) = id.split('-').next().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        // Fields come as [name, value]: the change is `c`.
        let change = fields.into_iter().nth(1).map(bytes).unwrap_or_default();
        if number > *last {
            apply_aside(inner, String::from_utf8_lossy(&change).into_owned()).await;
            *last = number;
        }
    }
    Ok(())
}

/// Arguments as the library takes them.
fn texts<const N: usize>(items: [String; N]) -> Vec<Vec<u8>> {
    items.into_iter().map(String::into_bytes).collect()
}

#[derive(Clone)]
pub struct RedisJobs {
    inner: Arc<Inner>,
}

struct Inner {
    /// Drives the connection; calls block on it (see [`RedisJobs::run`]).
    runtime: Option<Runtime>,
    handle: Handle,
    conn: ConnectionManager,
    /// Every key starts with this: `{namespace}:`, one hash tag.
    prefix: String,
    /// The address without its password, for `/_zipgate/health`.
    address: String,
    /// The caps `create.lua` keeps (as the in-memory registry's).
    limits: JobLimits,
    clock: Arc<dyn Clock>,
    events: Events,
    /// The dialects mounted here: a job's stored tag maps back to one.
    tags: Vec<&'static str>,
    tree: TreeSource,
    archives: Mutex<ArchiveCache>,
    local: Mutex<HashMap<String, LocalJob>>,
    breaker: Breaker,
    /// Applies the control plane's changes published by any replica.
    control: std::sync::OnceLock<ControlHook>,
    /// This replica on the bus: who acknowledged a change, whose claims
    /// (`claims:{id}`) and heartbeat (`alive:{id}`) are whose.
    listener_id: String,
    /// Names this replica's claims apart.
    claims: AtomicU64,
    /// [`LEASE`], in ms (tests shorten it).
    lease_ms: AtomicU64,
    /// Claims sent whose answer never came: made or not, the next
    /// heartbeat ends them if they were (`reap.lua`).
    unanswered: Mutex<Vec<String>>,
    /// The number of the last control change applied here (from the one in
    /// force when this replica started): changes apply in order, once.
    applied_rev: tokio::sync::Mutex<u64>,
    /// No more heartbeats (tests: a replica that died).
    #[cfg(test)]
    silent: std::sync::atomic::AtomicBool,
}

/// Calls fail at once while Redis was just found away (see [`BREAKER_OPEN`]).
struct Breaker {
    epoch: Instant,
    /// Milliseconds since `epoch` until which calls fail at once; 0 while
    /// Redis answers.
    open_until: AtomicU64,
}

impl Breaker {
    fn new() -> Self {
        Breaker {
            epoch: Instant::now(),
            open_until: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        // From 1, so that 0 can mean closed.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Whether a call may go to Redis now. Past the open period exactly one
    /// caller gets through (it moves the period on for the others).
    fn admit(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now();
        now >= until
            && self
                .open_until
                .compare_exchange(
                    until,
                    now + BREAKER_OPEN.as_millis() as u64,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// Opens on a timeout or a refused connection: Redis is hung or away.
    /// A dropped connection alone does not open it (Redis may have
    /// restarted, and the connection manager is opening a new connection):
    /// if Redis is away, the next call is refused.
    fn record<T>(&self, result: &redis::RedisResult<T>) {
        match result {
            Err(e) if e.is_connection_dropped() && !e.is_connection_refusal() => {}
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_refusal() => {
                self.open_until.store(
                    self.now() + BREAKER_OPEN.as_millis() as u64,
                    Ordering::Release,
                );
            }
            // Redis answered, even if with an error of its own.
            _ => {
                if self.open_until.load(Ordering::Relaxed) != 0 {
                    self.open_until.store(0, Ordering::Release);
                }
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime inside another's context panics; this does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A job's archive as this replica holds it.
#[derive(Clone)]
struct Cached {
    seq: u64,
    rev: u64,
    archive: Arc<Archive>,
    sources: Option<Arc<Sources>>,
    fault: Option<JobFault>,
}

/// Archives by job id, the oldest put first out. `order` holds (id, stamp)
/// and an entry counts only while its stamp is the id's current one, so a
/// job put again or removed leaves a stale entry that eviction skips and
/// compaction drops.
#[derive(Default)]
struct ArchiveCache {
    by_id: HashMap<String, (u64, Cached)>,
    order: VecDeque<(String, u64)>,
    stamp: u64,
}

impl ArchiveCache {
    fn get(&self, id: &str) -> Option<Cached> {
        self.by_id.get(id).map(|(_, cached)| cached.clone())
    }

    fn put(&mut self, id: &str, cached: Cached) {
        self.stamp += 1;
        self.by_id.insert(id.to_owned(), (self.stamp, cached));
        self.order.push_back((id.to_owned(), self.stamp));
        while self.by_id.len() > CACHED_ARCHIVES {
            let Some((oldest, stamp)) = self.order.pop_front() else {
                break;
            };
            if self.by_id.get(&oldest).is_some_and(|(s, _)| *s == stamp) {
                self.by_id.remove(&oldest);
            }
        }
        self.compact();
    }

    fn remove(&mut self, id: &str) {
        self.by_id.remove(id);
        self.compact();
    }

    fn clear(&mut self) {
        self.by_id.clear();
        self.order.clear();
    }

    fn compact(&mut self) {
        if self.order.len() > 2 * self.by_id.len() + 64 {
            let by_id = &self.by_id;
            self.order
                .retain(|(id, stamp)| by_id.get(id).is_some_and(|(s, _)| s == stamp));
        }
    }
}

/// What this replica holds for a job besides its archive.
#[derive(Default)]
struct LocalJob {
    /// The job these belong to (0 while its first claim is on its way).
    seq: u64,
    /// Dropping it stops the archive's build; the archive the build
    /// started from, and its revision.
    building: Option<(Building, Arc<Archive>, u64)>,
    /// Cuts this replica's downloads of the job when it is cancelled here.
    stop: Option<CancellationToken>,
    claims: usize,
}

/// Drops what this replica holds for `id` once nothing is left in it: no
/// download, no cut to make, no build to stop.
fn forget_if_idle(local: &mut HashMap<String, LocalJob>, id: &str) {
    if local
        .get(id)
        .is_some_and(|h| h.claims == 0 && h.stop.is_none() && h.building.is_none())
    {
        local.remove(id);
    }
}

/// A function's answer: a status, whether the live feed should hear of it,
/// the job's record, then anything else asked for.
pub(super) struct Reply {
    status: String,
    announce: bool,
    record: Option<Record>,
    extra: Vec<Vec<u8>>,
}

impl Reply {
    fn of(value: Value) -> Result<Reply, Error> {
        let Value::Array(items) = value else {
            return Err(bad_reply());
        };
        let mut items = items.into_iter().map(bytes);
        let status = String::from_utf8(items.next().unwrap_or_default()).unwrap_or_default();
        let announce = items.next().is_some_and(|a| a == b"1");
        let record = match items.next() {
            Some(blob) => Some(Record::unpack(&blob).ok_or_else(bad_reply)?),
            None => None,
        };
        Ok(Reply {
            status,
            announce,
            record,
            extra: items.collect(),
        })
    }

    fn extra(&self, index: usize) -> Option<&str> {
        self.extra
            .get(index)
            .and_then(|b| std::str::from_utf8(b).ok())
    }
}

fn bytes(value: Value) -> Vec<u8> {
    match value {
        Value::BulkString(bytes) => bytes,
        Value::SimpleString(s) => s.into_bytes(),
        Value::Int(n) => n.to_string().into_bytes(),
        _ => Vec::new(),
    }
}

fn bad_reply() -> Error {
    Error::Internal("the job store sent a reply this server does not understand".into())
}

/// The client hears that the store is down; the log says why (Redis's own
/// words can name keys and scripts).
fn unavailable(error: redis::RedisError) -> Error {
    tracing::warn!(target: "zipgate::jobs", %error, "job store call failed");
    Error::Unavailable(STORE_AWAY.into())
}

const STORE_AWAY: &str = "the job store did not answer";

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Ready => "ready",
        JobState::Downloading => "downloading",
        JobState::Done => "done",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
        JobState::Expired => "expired",
    }
}

fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.to_owned()
}

/// A namespace is the keys' hash tag and a `SCAN` pattern's prefix: no
/// braces, no glob characters.
pub fn check_namespace(namespace: &str) -> Result<(), String> {
    if (1..=64).contains(&namespace.len())
        && namespace
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"{}*?[]\\".contains(&b))
    {
        Ok(())
    } else {
        Err(format!(
            "job store namespace {namespace:?}: expected 1 to 64 printable ASCII characters \
             without spaces, braces or any of *?[]\\"
        ))
    }
}

impl RedisJobs {
    /// Connects to `url` (`redis://[:password@]host:port/db`), keeping every
    /// key under `namespace`, and loads the job library. Fails at once when
    /// Redis cannot be reached or has no functions (before Redis 7), so a
    /// misconfigured replica does not start.
    pub fn connect(
        url: &str,
        namespace: &str,
        limits: JobLimits,
        clock: Arc<dyn Clock>,
        events: Events,
        tags: Vec<&'static str>,
        tree: TreeSource,
    ) -> Result<RedisJobs, String> {
        check_namespace(namespace)?;
        // The error must not repeat the URL: it may hold a password.
        let client = redis::Client::open(url)
            .map_err(|_| "--jobs: expected redis://[:PASSWORD@]HOST:PORT/DB".to_owned())?;
        let info = client.get_connection_info();
        let address = format!("redis://{}/{}", info.addr(), info.redis_settings().db());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("zipgate-redis")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the job store's runtime: {e}"))?;
        let handle = runtime.handle().clone();
        let listener = client.clone();
        let prefix = format!("{{{namespace}}}:");
        let channel = format!("{prefix}bus");
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(StdDuration::from_secs(1));
        // A thread of its own: this may be called inside another runtime.
        let connected = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    runtime.block_on(async {
                        let mut conn = ConnectionManager::new_with_config(client, config)
                            .await
                            .map_err(|e| format!("cannot reach the job store at {address}: {e}"))?;
                        load_library(&mut conn).await.map_err(|e| {
                            format!(
                                "the job store at {address} cannot load zipgate's functions \
                                 (Redis 7 or later, or Valkey, is needed): {e}"
                            )
                        })?;
                        // Subscribed before this returns: a cancel made once
                        // the replica is up reaches it.
                        let mut bus = listener
                            .get_async_pubsub()
                            .await
                            .map_err(|e| format!("cannot reach the job store at {address}: {e}"))?;
                        bus.subscribe(&channel)
                            .await
                            .map_err(|e| format!("cannot subscribe to the job store's bus: {e}"))?;
                        // Changes made before this replica started are not its.
                        let first_rev: Option<u64> = redis::cmd("GET")
                            .arg(format!("{prefix}control-rev"))
                            .query_async(&mut conn)
                            .await
                            .map_err(|e| format!("cannot read the job store at {address}: {e}"))?;
                        Ok::<_, String>((conn, bus, first_rev.unwrap_or(0)))
                    })
                })
                .join()
        })
        .map_err(|_| "the job store's connection thread failed".to_owned())
        .and_then(|c| c);
        let (conn, bus, first_rev) = match connected {
            Ok(connected) => connected,
            Err(error) => {
                // Dropping a runtime inside another's context panics.
                runtime.shutdown_background();
                return Err(error);
            }
        };
        let inner = Arc::new(Inner {
            runtime: Some(runtime),
            handle,
            conn,
            prefix,
            address,
            limits,
            clock,
            events,
            tags,
            tree,
            archives: Mutex::default(),
            local: Mutex::default(),
            breaker: Breaker::new(),
            control: std::sync::OnceLock::new(),
            listener_id: uuid::Uuid::new_v4().simple().to_string(),
            claims: AtomicU64::new(0),
            unanswered: Mutex::default(),
            applied_rev: tokio::sync::Mutex::new(first_rev),
            lease_ms: AtomicU64::new(LEASE.as_millis() as u64),
            #[cfg(test)]
            silent: Default::default(),
        });
        inner.handle.spawn(heartbeat(Arc::downgrade(&inner)));
        inner
            .handle
            .spawn(listen(listener, channel, bus, Arc::downgrade(&inner)));
        Ok(RedisJobs { inner })
    }

    /// Runs `future` on the job store's runtime and waits for it: through
    /// `block_in_place` on a multi-thread worker, directly on any other
    /// thread, and by handing it over on a single-threaded runtime (which
    /// cannot block in place; in-process use only).
    fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = redis::RedisResult<T>> + Send + 'static,
    ) -> redis::RedisResult<T> {
        let handle = &self.inner.handle;
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Err(_) => handle.block_on(future),
            Ok(RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| handle.block_on(future))
            }
            Ok(_) => {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                handle.spawn(async move {
                    let _ = tx.send(future.await);
                });
                // Gone only when the server is stopping.
                rx.recv().unwrap_or_else(|_| {
                    Err((redis::ErrorKind::Io, "the job store's runtime stopped").into())
                })
            }
        }
    }

    /// [`Self::run`] behind the breaker: while Redis is away, fails at
    /// once with what the client is to hear.
    fn guarded<T: Send + 'static>(
        &self,
        future: impl Future<Output = redis::RedisResult<T>> + Send + 'static,
    ) -> Result<T, Error> {
        let breaker = &self.inner.breaker;
        if !breaker.admit() {
            return Err(Error::Unavailable(STORE_AWAY.into()));
        }
        let result = self.run(future);
        breaker.record(&result);
        result.map_err(unavailable)
    }

    /// Calls one of the library's functions, with the prefix and now in
    /// front of `args`.
    fn script(&self, op: Op, args: Vec<Vec<u8>>) -> Result<Value, Error> {
        let mut conn = self.inner.conn.clone();
        let prefix = self.inner.prefix.clone();
        let now = micros(self.inner.clock.now()).to_string();
        // Reads: lists, and looks that are not polls (a poll counts).
        let again = match op {
            Op::List | Op::FaultRead => true,
            Op::Look => args.get(1).is_some_and(|poll| poll == b"0"),
            _ => false,
        };
        self.guarded(async move { fcall(&mut conn, op, &prefix, &now, &args, again).await })
    }

    fn call(&self, op: Op, args: Vec<Vec<u8>>) -> Result<Reply, Error> {
        Reply::of(self.script(op, args)?)
    }

    /// One command; `again` when it only reads (see [`query`]).
    fn command<T: redis::FromRedisValue + Send + 'static>(
        &self,
        command: redis::Cmd,
        again: bool,
    ) -> Result<T, Error> {
        let mut conn = self.inner.conn.clone();
        self.guarded(async move { query::<T>(&command, &mut conn, again).await })
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.inner.prefix)
    }

    fn announce(&self, job: &JobSnapshot) {
        self.inner.events.publish("job", || {
            serde_json::to_string(&super::view::job_view(job)).unwrap_or_default()
        });
    }

    /// The reply's job, told to the live feed when the function says so.
    fn job_of(&self, reply: &Reply) -> Option<JobSnapshot> {
        let job = reply.record.as_ref()?.snapshot(&self.inner.tags)?;
        if reply.announce {
            self.announce(&job);
        }
        Some(job)
    }

    fn local(&self) -> std::sync::MutexGuard<'_, HashMap<String, LocalJob>> {
        self.inner.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn archives(&self) -> std::sync::MutexGuard<'_, ArchiveCache> {
        self.inner
            .archives
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn cached(&self, id: &str) -> Option<Cached> {
        self.archives().get(id)
    }

    /// The job's record as stored, if there is one by this id.
    fn record(&self, id: &str) -> Result<Option<Record>, Error> {
        let blob: Option<Vec<u8>> = self.command(
            redis::cmd("HGET")
                .arg(self.key(&format!("job:{id}")))
                .arg("j")
                .clone(),
            true,
        )?;
        blob.map(|blob| Record::unpack(&blob).ok_or_else(bad_reply))
            .transpose()
    }

    fn rebuild(
        &self,
        id: &str,
        record: &Record,
        plan: &str,
        sources: &str,
        fault: &str,
    ) -> Result<Cached, Error> {
        let plan: ArchivePlan = serde_json::from_str(plan).map_err(|_| bad_reply())?;
        let tree = self
            .inner
            .tree
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let archive = plan.rebuild(&tree).map_err(|error| {
            tracing::warn!(target: "zipgate::jobs", job = id, %error, "cannot rebuild a job's archive here");
            Error::Unavailable(format!("this replica cannot rebuild job {id}'s archive"))
        })?;
        let sources = match sources {
            "" => None,
            text => Some(Arc::new(
                serde_json::from_str::<Sources>(text).map_err(|_| bad_reply())?,
            )),
        };
        let fault = match fault {
            "" => None,
            text => Some(serde_json::from_str::<JobFault>(text).map_err(|_| bad_reply())?),
        };
        let cached = Cached {
            seq: record.seq,
            rev: record.rev,
            archive: Arc::new(archive),
            sources,
            fault,
        };
        self.archives().put(id, cached.clone());
        Ok(cached)
    }

    /// Checks and (unless `peek`) claims a download; the job and the
    /// archive it is of. A claim that cannot go on here (the archive does
    /// not rebuild) is given back as an interrupted download.
    /// `claim` names the claim among this replica's (`claim_key`); a peek
    /// gives none.
    fn claim(
        &self,
        id: &str,
        admission: Admission<'_>,
        claim: Option<&str>,
    ) -> Result<(Record, JobSnapshot, Cached), Error> {
        let peek = claim.is_none();
        // Read before the call: what the answer is compared with.
        let held = self.cached(id);
        let (seq, rev) = held
            .as_ref()
            .map_or_else(Default::default, |c| (c.seq.to_string(), c.rev.to_string()));
        let reply = self.call(
            Op::Claim,
            texts([
                id.to_owned(),
                admission.owner_tag.unwrap_or("").to_owned(),
                admission
                    .max_per_owner
                    .map_or_else(String::new, |n| n.to_string()),
                flag(peek),
                seq,
                rev,
                self.inner.listener_id.clone(),
                claim.unwrap_or("").to_owned(),
            ]),
        );
        let reply = match (reply, claim) {
            (Ok(reply), _) => reply,
            (Err(error), Some(claim)) => {
                // It may have been made before the answer was lost: the
                // next heartbeat ends it if so, as the client heard 503.
                self.unanswered(claim);
                return Err(error);
            }
            (Err(error), None) => return Err(error),
        };
        match reply.status.as_str() {
            "ok" => {}
            "not_found" => return Err(Error::NotFound(id.to_owned())),
            "too_many_downloads" => {
                return Err(Error::TooManyDownloads {
                    limit: admission.max_per_owner.unwrap_or(0) as u64,
                })
            }
            "conflict" => return Err(Error::Conflict(id.to_owned())),
            "gone" => {
                let record = reply.record.as_ref().ok_or_else(bad_reply)?;
                return Err(super::job::refused(
                    id,
                    record.st,
                    record.x.map(record::time_of),
                ));
            }
            _ => return Err(bad_reply()),
        }
        let record = reply.record.clone().ok_or_else(bad_reply)?;
        let found = self
            .job_of(&reply)
            .ok_or_else(|| Error::NotFound(id.to_owned()))
            .and_then(|job| {
                let cached = match (reply.extra(0), reply.extra(1), reply.extra(2)) {
                    (Some(plan), Some(sources), Some(fault)) => {
                        self.rebuild(id, &record, plan, sources, fault)?
                    }
                    _ => held
                        .filter(|c| (c.seq, c.rev) == (record.seq, record.rev))
                        .ok_or_else(bad_reply)?,
                };
                Ok((job, cached))
            });
        match found {
            Ok((job, cached)) => Ok((record, job, cached)),
            Err(error) => {
                if !peek {
                    self.end_download(&record, claim.unwrap_or(""), false);
                }
                Err(error)
            }
        }
    }

    /// Ends a download claimed here under `claim`, as its ticket would
    /// (`progress.lua`).
    fn end_download(&self, record: &Record, claim: &str, complete: bool) {
        let owner = format!("{}|{}", record.tag, record.own);
        let ended = self.call(
            Op::Progress,
            texts([
                record.id.clone(),
                record.seq.to_string(),
                "0".into(),
                String::new(),
                "0".into(),
                flag(complete),
                owner,
                flag(self.inner.events.recording()),
                self.inner.listener_id.clone(),
                claim.to_owned(),
            ]),
        );
        if ended.is_err() {
            self.unanswered(claim);
        }
    }

    /// A claim whose end (or whose making) Redis did not confirm: the next
    /// heartbeat ends it if it is still there (`reap.lua`), so a single-use
    /// job does not stay downloading, nor its owner's count up.
    fn unanswered(&self, claim: &str) {
        self.inner
            .unanswered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(claim.to_owned());
    }

    /// A name for a new claim among this replica's.
    fn claim_key(&self) -> String {
        self.inner
            .claims
            .fetch_add(1, Ordering::Relaxed)
            .to_string()
    }

    /// Stops this replica's heartbeat, as if it had died (tests).
    #[cfg(test)]
    fn fall_silent(&self) {
        self.inner.silent.store(true, Ordering::Relaxed);
    }

    /// Shortens the heartbeat lease and beats now with it (tests).
    #[cfg(test)]
    fn set_lease(&self, lease: StdDuration) {
        self.inner
            .lease_ms
            .store(lease.as_millis() as u64, Ordering::Relaxed);
        let inner = self.inner.clone();
        let lease = lease.as_millis() as u64;
        let _ = self.run(async move { beat(&inner, lease).await });
    }

    /// A download of `id` (the job numbered `seq`) ended here.
    fn release_claim(&self, id: &str, seq: u64) {
        let mut local = self.local();
        if let Some(held) = local.get_mut(id).filter(|h| h.seq == seq || h.seq == 0) {
            held.claims = held.claims.saturating_sub(1);
            if held.claims == 0 {
                held.stop = None;
            }
            forget_if_idle(&mut local, id);
        }
    }

    fn recheck_input(job: &JobSnapshot, cached: &Cached) -> Option<RecheckInput> {
        Some(RecheckInput {
            sources: cached.sources.clone()?,
            owner: job.owner.clone(),
            fault: cached.fault.clone(),
        })
    }

    /// Up to `count` jobs of a sorted set from rank `first`; the set's
    /// size, and how many of the ranks read are still in it (a job of a
    /// dialect not mounted here is, but shows nowhere).
    fn list_page(
        &self,
        set: &str,
        newest_first: bool,
        first: usize,
        count: usize,
        poll: bool,
    ) -> Result<(Vec<JobSnapshot>, usize, usize), Error> {
        let value = self.script(
            Op::List,
            texts([
                set.to_owned(),
                flag(newest_first),
                first.to_string(),
                count.to_string(),
                // Lists sweep; the newest-job lookup does not (mod.rs).
                flag(!newest_first),
                flag(poll),
            ]),
        )?;
        let Value::Array(items) = value else {
            return Err(bad_reply());
        };
        let mut items = items.into_iter();
        let mut count = || match items.next() {
            Some(Value::Int(n)) => usize::try_from(n).unwrap_or(0),
            _ => 0,
        };
        let (size, kept) = (count(), count());
        let jobs = items
            .filter_map(|blob| Record::unpack(&bytes(blob))?.snapshot(&self.inner.tags))
            .collect();
        Ok((jobs, size, kept))
    }

    /// Every job of a sorted set, oldest first, a page at a time (with
    /// `poll`, those in progress polled).
    fn list_set(&self, set: &str, poll: bool) -> Result<Vec<JobSnapshot>, Error> {
        let (mut out, mut rank) = (Vec::new(), 0);
        loop {
            // Gone members leave the set as a page is read: the next page
            // starts after those still in it. A page of gone members only
            // makes the set smaller, so this ends.
            let (page, size, kept) = self.list_page(set, false, rank, LIST_PAGE, poll)?;
            out.extend(page);
            rank += kept;
            if rank >= size {
                return Ok(out);
            }
        }
    }

    fn settle(
        &self,
        id: &str,
        state: JobState,
        error: Option<String>,
    ) -> Result<JobSnapshot, Error> {
        let reply = self.call(
            Op::Settle,
            texts([
                id.to_owned(),
                state_name(state).to_owned(),
                error.map_or_else(String::new, |e| format!("={e}")),
            ]),
        )?;
        if reply.status != "ok" {
            return Err(Error::NotFound(id.to_owned()));
        }
        let job = self
            .job_of(&reply)
            .ok_or_else(|| Error::NotFound(id.to_owned()))?;
        let seq = reply.record.as_ref().map_or(0, |r| r.seq);
        if reply.extra(0) == Some("1") {
            // At once here; other replicas hear it on the bus.
            self.ended(id, seq, state == JobState::Cancelled);
        }
        Ok(job)
    }

    /// Job `id` (numbered `seq`) was cancelled or failed, here or on another
    /// replica: what this replica does for it stops.
    fn ended(&self, id: &str, seq: u64, cancelled: bool) {
        let mut local = self.local();
        // Seq 0: a claim on its way, which may be of this very job.
        if let Some(held) = local.get_mut(id).filter(|h| h.seq == seq || h.seq == 0) {
            // A build nobody will download stops now.
            held.building = None;
            // A cancelled job's downloads stop too, as if their clients
            // had gone; a failed job's are left.
            if cancelled {
                if let Some(stop) = held.stop.take() {
                    stop.cancel();
                }
            }
            forget_if_idle(&mut local, id);
        }
    }

    /// A message of the bus (`settle.lua`): `<state> <seq> <id>`.
    fn heard(&self, message: &[u8]) {
        let Ok(text) = std::str::from_utf8(message) else {
            return;
        };
        let mut parts = text.splitn(3, ' ');
        if let (Some(state), Some(Ok(seq)), Some(id)) =
            (parts.next(), parts.next().map(str::parse), parts.next())
        {
            self.ended(id, seq, state == "cancelled");
        }
    }

    /// A get or poll of `id`, of a job of dialect `tag` when one is given.
    fn look(&self, id: &str, poll: bool, tag: &str) -> Result<Option<JobSnapshot>, Error> {
        let reply = self.call(Op::Look, texts([id.to_owned(), flag(poll), tag.to_owned()]))?;
        Ok((reply.status == "ok")
            .then(|| self.job_of(&reply))
            .flatten())
    }

    fn plan_text(archive: &Archive) -> Result<String, String> {
        let plan = ArchivePlan::of(archive).map_err(|e| e.to_string())?;
        serde_json::to_string(&plan).map_err(|e| e.to_string())
    }
}

impl JobBackend for RedisJobs {
    fn owner_tag(&self, id: &str) -> Result<Option<&'static str>, Error> {
        let Some(record) = self.record(id)? else {
            return Ok(None);
        };
        Ok(self.inner.tags.iter().find(|t| **t == record.tag).copied())
    }

    fn create(&self, spec: JobSpec) -> Result<JobSnapshot, Error> {
        // Whole µs, as Redis keeps it, so this answer and later ones agree.
        let now = record::to_micros(self.inner.clock.now());
        let plan = Self::plan_text(&spec.archive)
            .map_err(|e| Error::Internal(format!("cannot write the archive down: {e}")))?;
        let json = |e: serde_json::Error| Error::Internal(format!("cannot write a job down: {e}"));
        let mut job = Job::new(spec, now);
        job.advance(now, false);
        let sources = match &job.spec.sources {
            Some(sources) => serde_json::to_string(sources.as_ref()).map_err(json)?,
            None => String::new(),
        };
        let fault = match &job.spec.fault {
            Some(fault) => serde_json::to_string(fault).map_err(json)?,
            None => String::new(),
        };
        let id = job.snapshot.id.clone();
        let who = owner_key(&job.snapshot.owner);
        let owner = format!("{}|{who}", job.snapshot.owner_tag);
        let limits = self.inner.limits;
        let args = vec![
            id.clone().into_bytes(),
            owner.into_bytes(),
            Record::of(&job).pack(),
            plan.into_bytes(),
            sources.into_bytes(),
            fault.into_bytes(),
            who.into_bytes(),
            limits.max_jobs.to_string().into_bytes(),
            limits.max_jobs_per_principal.to_string().into_bytes(),
        ];
        let Value::Array(reply) = self.script(Op::Create, args)? else {
            return Err(bad_reply());
        };
        let mut reply = reply.into_iter().map(bytes);
        match reply.next().as_deref() {
            Some(b"ok") => {}
            Some(b"conflict") => return Err(Error::Conflict(format!("job {id}"))),
            Some(b"too_many") => {
                return Err(Error::TooManyJobs {
                    limit: limits.max_jobs_per_principal as u64,
                })
            }
            _ => return Err(bad_reply()),
        }
        let seq: u64 = reply
            .next()
            .and_then(|s| String::from_utf8(s).ok()?.parse().ok())
            .ok_or_else(bad_reply)?;
        self.archives().put(
            &id,
            Cached {
                seq,
                rev: 1,
                archive: job.spec.archive.clone(),
                sources: job.spec.sources.clone(),
                fault: job.spec.fault.clone(),
            },
        );
        if let Some(building) = job.spec.building.take() {
            self.local().insert(
                id,
                LocalJob {
                    seq,
                    building: Some((building, job.spec.archive.clone(), 1)),
                    ..LocalJob::default()
                },
            );
        }
        self.announce(&job.snapshot);
        Ok(job.snapshot)
    }

    fn finish_build(&self, id: &str, from: &Arc<Archive>, result: Result<Archive, String>) {
        // The build ended either way: nothing here stops it any more.
        let (seq, rev) = {
            let mut local = self.local();
            let Some(held) = local.get_mut(id) else {
                return;
            };
            let Some(rev) = held
                .building
                .as_ref()
                .filter(|(_, started, _)| Arc::ptr_eq(started, from))
                .map(|(_, _, rev)| *rev)
            else {
                return;
            };
            let seq = held.seq;
            held.building = None;
            forget_if_idle(&mut local, id);
            (seq, rev)
        };
        let (built, args) = match result {
            Ok(built) => match Self::plan_text(&built) {
                Ok(plan) => {
                    let len = built.len().map_or_else(String::new, |n| n.to_string());
                    (Some(Arc::new(built)), ["1".to_owned(), plan, len])
                }
                Err(e) => (
                    None,
                    [
                        "0".to_owned(),
                        format!("cannot write the built archive down: {e}"),
                        String::new(),
                    ],
                ),
            },
            Err(reason) => (None, ["0".to_owned(), reason, String::new()]),
        };
        let [done, text, len] = args;
        let Ok(reply) = self.call(
            Op::Build,
            texts([
                id.to_owned(),
                seq.to_string(),
                rev.to_string(),
                done,
                text,
                len,
            ]),
        ) else {
            return;
        };
        if reply.status != "ok" {
            return;
        }
        if let (Some(built), Some(record), Some(cached)) =
            (built, reply.record.as_ref(), self.cached(id))
        {
            if cached.seq == record.seq {
                self.archives().put(
                    id,
                    Cached {
                        rev: record.rev,
                        archive: built,
                        ..cached
                    },
                );
            }
        }
        self.job_of(&reply);
    }

    fn get(&self, id: &str) -> Result<Option<JobSnapshot>, Error> {
        self.look(id, false, "")
    }

    fn poll(&self, id: &str) -> Result<Option<JobSnapshot>, Error> {
        self.look(id, true, "")
    }

    fn look_owned(
        &self,
        owner_tag: &str,
        id: &str,
        poll: bool,
    ) -> Result<Option<JobSnapshot>, Error> {
        // A tag no dialect here has is no job of this replica's either.
        if owner_tag.is_empty() || !self.inner.tags.contains(&owner_tag) {
            return Ok(None);
        }
        self.look(id, poll, owner_tag)
    }

    fn cancel(&self, id: &str) -> Result<JobSnapshot, Error> {
        self.settle(id, JobState::Cancelled, None)
    }

    fn fail(&self, id: &str, reason: &str) -> Result<JobSnapshot, Error> {
        self.settle(id, JobState::Failed, Some(reason.to_owned()))
    }

    fn acknowledge(&self, id: &str) -> Result<(), Error> {
        let reply = self.call(Op::Acknowledge, texts([id.to_owned()]))?;
        if reply.status == "ok" {
            self.job_of(&reply);
        }
        Ok(())
    }

    fn remove(&self, id: &str) -> Result<Option<JobSnapshot>, Error> {
        let reply = self.call(Op::Remove, texts([id.to_owned()]))?;
        if reply.status != "ok" {
            return Ok(None);
        }
        // Forgotten here whatever it was, even of a dialect not mounted here.
        self.archives().remove(id);
        if let Some(held) = self.local().remove(id) {
            drop(held.building);
        }
        let Some(removed) = reply
            .record
            .as_ref()
            .and_then(|r| r.snapshot(&self.inner.tags))
        else {
            return Ok(None);
        };
        self.inner.events.publish("job", || {
            serde_json::json!({"id": removed.id, "dialect": removed.owner_tag, "removed": true})
                .to_string()
        });
        Ok(Some(removed))
    }

    fn list(&self) -> Result<Vec<JobSnapshot>, Error> {
        let mut out = self.list_set("all", false)?;
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    fn list_of(&self, owner_tag: &str, owner: &Principal) -> Result<Vec<JobSnapshot>, Error> {
        self.list_set(&format!("own:{owner_tag}|{}", owner_key(owner)), false)
    }

    fn open_of(&self, owner_tag: &str, owner: &Principal) -> Result<Vec<JobSnapshot>, Error> {
        self.list_set(&format!("open:{owner_tag}|{}", owner_key(owner)), false)
    }

    fn open_of_polled(
        &self,
        owner_tag: &str,
        owner: &Principal,
    ) -> Result<Vec<JobSnapshot>, Error> {
        let jobs = self.list_set(&format!("open:{owner_tag}|{}", owner_key(owner)), true)?;
        // The live feed hears of the jobs listed (each, changed or not).
        if self.inner.events.recording() {
            for job in &jobs {
                self.announce(job);
            }
        }
        Ok(jobs)
    }

    fn newest_of(
        &self,
        owner_tag: &str,
        owner: &Principal,
        wanted: &dyn Fn(&JobSnapshot) -> bool,
    ) -> Result<Option<JobSnapshot>, Error> {
        let set = format!("own:{owner_tag}|{}", owner_key(owner));
        // The newest is usually the one: ask for it alone, then widen.
        let mut first = 0;
        for count in [1, 8, 32, 128].into_iter().chain(std::iter::repeat(512)) {
            let (page, size, kept) = self.list_page(&set, true, first, count, false)?;
            if let Some(job) = page.into_iter().find(|job| wanted(job)) {
                return Ok(Some(job));
            }
            first += kept;
            if first >= size {
                return Ok(None);
            }
        }
        Ok(None)
    }

    fn archive(&self, id: &str) -> Result<Option<Arc<Archive>>, Error> {
        let Some(record) = self.record(id)? else {
            return Ok(None);
        };
        if let Some(cached) = self
            .cached(id)
            .filter(|c| (c.seq, c.rev) == (record.seq, record.rev))
        {
            return Ok(Some(cached.archive));
        }
        let (plan, sources, fault): (Option<String>, Option<String>, Option<String>) = self
            .command(
                redis::cmd("HMGET")
                    .arg(self.key(&format!("job:{id}")))
                    .arg("plan")
                    .arg("src")
                    .arg("fault")
                    .clone(),
                true,
            )?;
        // Gone since the record was read.
        let Some(plan) = plan else {
            return Ok(None);
        };
        let cached = self.rebuild(
            id,
            &record,
            &plan,
            sources.as_deref().unwrap_or(""),
            fault.as_deref().unwrap_or(""),
        )?;
        Ok(Some(cached.archive))
    }

    fn peek_download(&self, id: &str, admission: Admission<'_>) -> Result<Peek, Error> {
        let (_, job, cached) = self.claim(id, admission, None)?;
        Ok(Peek {
            recheck: Self::recheck_input(&job, &cached),
            archive: cached.archive,
            job,
        })
    }

    fn begin_download(&self, id: &str, admission: Admission<'_>) -> Result<Claimed, Error> {
        // The token exists before the claim, so a cancel made here while the
        // claim is on its way still finds it.
        let stop = {
            let mut local = self.local();
            let held = local.entry(id.to_owned()).or_default();
            held.claims += 1;
            held.stop.get_or_insert_with(CancellationToken::new).clone()
        };
        let claim = self.claim_key();
        let (record, job, cached) = match self.claim(id, admission, Some(&claim)) {
            Ok(claimed) => claimed,
            Err(error) => {
                self.release_claim(id, 0);
                return Err(error);
            }
        };
        {
            let mut local = self.local();
            if let Some(held) = local.get_mut(id) {
                if held.seq == 0 {
                    held.seq = record.seq;
                }
            }
        }
        let ticket = Ticket::start(self.clone(), &job, record.seq, claim, &cached.archive);
        Ok(Claimed {
            recheck: Self::recheck_input(&job, &cached),
            archive: cached.archive,
            ticket,
            stop,
            job,
        })
    }

    fn cut_archive(&self, id: &str, cut: &Replacement) {
        let Some(cached) = self
            .cached(id)
            .filter(|c| Arc::ptr_eq(&c.archive, &cut.from))
        else {
            return;
        };
        let (Ok(plan), Ok(sources)) = (
            Self::plan_text(&cut.archive),
            serde_json::to_string(cut.sources.as_ref()),
        ) else {
            return;
        };
        let files = files_of(&cut.archive);
        let args = texts([
            id.to_owned(),
            cached.seq.to_string(),
            cached.rev.to_string(),
            plan,
            sources,
            cut.archive
                .len()
                .map_or_else(String::new, |n| n.to_string()),
            files.len().to_string(),
            files.iter().filter(|f| **f).count().to_string(),
            cut.files.to_string(),
            cut.folders.to_string(),
        ]);
        let Ok(reply) = self.call(Op::Cut, args) else {
            return;
        };
        if let (true, Some(record)) = (reply.status == "ok", reply.record.as_ref()) {
            self.archives().put(
                id,
                Cached {
                    rev: record.rev,
                    archive: cut.archive.clone(),
                    sources: Some(cut.sources.clone()),
                    ..cached
                },
            );
        }
    }

    fn counts(&self) -> Result<super::JobCounts, Error> {
        let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for job in self.list()? {
            *counts
                .entry((job.owner_tag.to_owned(), state_name(job.state).to_owned()))
                .or_default() += 1;
        }
        Ok(counts.into_iter().collect())
    }

    fn clear(&self) -> Result<(), Error> {
        let mut conn = self.inner.conn.clone();
        let pattern = format!("{}*", self.inner.prefix);
        // Draws and job numbers never start over: values handed out before
        // must not come again (a replica may still cache an archive by one).
        // Nor do control changes' numbers (a late acknowledgement of an old
        // one must not count for a new one).
        let (leases, seq, rev) = (self.key("lease:"), self.key("seq"), self.key("control-rev"));
        self.guarded(async move {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await?;
                let doomed: Vec<&String> = keys
                    .iter()
                    .filter(|k| !k.starts_with(&leases) && **k != seq && **k != rev)
                    .collect();
                if !doomed.is_empty() {
                    redis::cmd("UNLINK")
                        .arg(doomed)
                        .query_async::<()>(&mut conn)
                        .await?;
                }
                if next == 0 {
                    return Ok::<_, redis::RedisError>(());
                }
                cursor = next;
            }
        })?;
        // What was cleared before a failure stays cleared; the caller hears
        // of it and can reset again.
        self.archives().clear();
        self.local().clear();
        Ok(())
    }

    fn len(&self) -> Result<usize, Error> {
        self.command(redis::cmd("ZCARD").arg(self.key("all")).clone(), true)
    }

    fn next_in_sequence(&self, owner_tag: &str, name: &str) -> Result<u64, Error> {
        let key = self.key(&format!("sequence:{owner_tag}.{name}"));
        self.command(redis::cmd("INCR").arg(key).clone(), false)
    }

    fn lease(&self, name: &str, count: u64) -> u64 {
        let key = self.key(&format!("lease:{name}"));
        let count_i = i64::try_from(count).unwrap_or(i64::MAX);
        match self.command::<i64>(redis::cmd("INCRBY").arg(key).arg(count_i).clone(), false) {
            Ok(end) => (end as u64).wrapping_sub(count),
            // Without the store, a block at a random place: another
            // replica's draws meet it with odds of about count / 2^64.
            Err(_) => {
                use rand_chacha::rand_core::{RngCore, SeedableRng};
                rand_chacha::ChaCha20Rng::try_from_os_rng()
                    .map(|mut rng| rng.next_u64())
                    .unwrap_or_else(|_| {
                        self.inner.clock.now().timestamp_nanos_opt().unwrap_or(0) as u64
                    })
            }
        }
    }

    fn describe(&self) -> String {
        self.inner.address.clone()
    }

    fn forget_local(&self) {
        self.archives().clear();
        // Dropping a build's handle stops it; downloads streaming go on.
        self.local().retain(|_, held| held.claims > 0);
        for held in self.local().values_mut() {
            held.building = None;
        }
    }

    fn on_control(&self, apply: ControlHook) {
        let _ = self.inner.control.set(apply);
    }

    fn broadcast(&self, change: &str) -> Result<bool, Error> {
        let Value::Array(numbers) = self.script(Op::Control, vec![change.as_bytes().to_vec()])?
        else {
            return Err(bad_reply());
        };
        let (Some(Value::Int(rev)), Some(Value::Int(listeners))) =
            (numbers.first(), numbers.get(1))
        else {
            return Err(bad_reply());
        };
        let (rev, listeners) = (*rev as u64, *listeners as u64);
        let mut conn = self.inner.conn.clone();
        let prefix = self.inner.prefix.clone();
        let me = self.inner.listener_id.clone();
        let inner = self.inner.clone();
        self.guarded(async move {
            // Every replica that heard it (this one too) says when it is done.
            let acks = format!("{prefix}ack:{rev}");
            let deadline = tokio::time::Instant::now() + CONTROL_WAIT;
            loop {
                let done: u64 = redis::cmd("SCARD")
                    .arg(&acks)
                    .query_async(&mut conn)
                    .await?;
                if done >= listeners {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(
                        target: "zipgate::jobs",
                        done,
                        listeners,
                        "a control change was not applied by every replica in time"
                    );
                    break;
                }
                tokio::time::sleep(StdDuration::from_millis(2)).await;
            }
            // This replica's own listener may have missed it (its
            // subscription was down): then it applies the change here.
            let mine: bool = redis::cmd("SISMEMBER")
                .arg(&acks)
                .arg(&me)
                .query_async(&mut conn)
                .await?;
            redis::cmd("DEL")
                .arg(&acks)
                .query_async::<()>(&mut conn)
                .await?;
            // This replica's own listener missed it (its subscription was
            // down): it applies it here, after any it missed before it.
            if !mine {
                catch_up(&inner, Some(rev)).await?;
            }
            Ok(true)
        })
    }
}

impl crate::faults::SharedCounts for RedisJobs {
    fn count(
        &self,
        asks: &[crate::faults::CountAsk<'_>],
    ) -> Result<Vec<crate::faults::Counted>, Error> {
        use crate::faults::Counted;
        let mut args = Vec::with_capacity(asks.len() * 4);
        for ask in asks {
            args.push(ask.id.as_bytes().to_vec());
            args.push(ask.after.to_string().into_bytes());
            args.push(
                ask.times
                    .map_or_else(Vec::new, |t| t.to_string().into_bytes()),
            );
            args.push(flag(ask.by_chance).into_bytes());
        }
        let Value::Array(items) = self.script(Op::FaultCount, args)? else {
            return Err(bad_reply());
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::Int(0) => Ok(Counted::Passed),
                Value::Int(1) => Ok(Counted::Fired),
                Value::Int(n) if n < 0 => Ok(Counted::Draw(n.unsigned_abs())),
                _ => Err(bad_reply()),
            })
            .collect()
    }

    fn commit(&self, id: &str, times: Option<u64>) -> Result<bool, Error> {
        let times = times.map_or_else(String::new, |t| t.to_string());
        match self.script(Op::FaultCommit, texts([id.to_owned(), times]))? {
            Value::Int(n) => Ok(n == 1),
            _ => Err(bad_reply()),
        }
    }

    fn read(&self, ids: &[&str]) -> Result<Vec<(u64, u64)>, Error> {
        let args = ids.iter().map(|id| id.as_bytes().to_vec()).collect();
        let Value::Array(items) = self.script(Op::FaultRead, args)? else {
            return Err(bad_reply());
        };
        let numbers: Vec<u64> = items
            .into_iter()
            .map(|item| match item {
                Value::Int(n) => u64::try_from(n).unwrap_or(0),
                _ => 0,
            })
            .collect();
        Ok(numbers
            .chunks(2)
            .map(|c| (c[0], c.get(1).copied().unwrap_or(0)))
            .collect())
    }
}
