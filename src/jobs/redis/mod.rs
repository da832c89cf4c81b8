//! `--jobs redis://…`: the jobs of several replicas in one Redis, so a job
//! created on one replica can be polled, downloaded or cancelled on another
//! (docs/design/scaleout.md).
//!
//! Every read-modify-write of a job is one Lua script (the `.lua` files
//! beside this one, each after `prelude.lua`), given `now` from this
//! server's clock: Redis runs a script alone, so a poll that advances a job
//! and a download claim never interleave, and of many concurrent claims of
//! a single-use job exactly one wins. The state machine in the prelude is
//! `job.rs`'s `advance` line for line, and `tests.rs` runs both on the same
//! operations and compares what they show.
//!
//! What stays on this replica: the job's archive, rebuilt from the plan the
//! hash keeps ([`ArchivePlan`]) when another replica made it, and cached by
//! (seq, rev); the handle that stops a build; the tokens that cut this
//! replica's downloads when the job is cancelled here.
//!
//! The core is synchronous, so each call blocks its thread for one round
//! trip: with multi-thread workers through `block_in_place`, which keeps the
//! other connections of that worker moving (design doc §0, measured).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use redis::aio::ConnectionManager;
use redis::Value;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tokio_util::sync::CancellationToken;
use zipgate_api::{Error, JobSnapshot, JobState, Pacing, Principal, UserId};

use super::job::{files_of, Job};
use super::{Admission, Building, Claimed, JobBackend, JobFault, JobSpec, Peek, RecheckInput};
use super::{StuckState, DEFAULT_MAX_JOBS};
use crate::archive_plan::ArchivePlan;
use crate::clock::Clock;
use crate::events::Events;
use crate::recheck::{Replacement, Sources};
use crate::store::Tree;
use crate::zip::{Archive, Progress, StreamObserver};

#[cfg(test)]
mod tests;

/// The tree a plan made on another replica is rebuilt against: the
/// server's current one (fixtures are the same on every replica).
pub type TreeSource = Arc<RwLock<Arc<Tree>>>;

/// How long a call waits for Redis before the request gets the vendor's 503.
const RESPONSE_TIMEOUT: StdDuration = StdDuration::from_secs(1);
const CONNECTION_TIMEOUT: StdDuration = StdDuration::from_millis(500);
/// Archives kept ready on this replica; past it the oldest are rebuilt
/// from their plan when asked for again.
const CACHED_ARCHIVES: usize = DEFAULT_MAX_JOBS;
/// How often a download's progress is written to Redis.
const PROGRESS_EVERY: StdDuration = StdDuration::from_millis(250);
/// Snapshots per script call when listing every job (the control plane):
/// Redis runs one script at a time, so a long list goes in slices.
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
}

const OPS: [(Op, &str, &str); 10] = [
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
];

/// The job library as `FUNCTION LOAD` takes it. Loaded once (and again
/// after Redis restarts without it), so the prelude's tables and helpers
/// are built once instead of on every call, as `EVALSHA` would: that was
/// most of a create's time in Redis. Named after a digest of its text, so
/// replicas of two versions each call their own.
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

/// Calls `op` with the prefix and now in front of `args`, loading the
/// library first when Redis does not have it (a restart without
/// persistence forgets it).
async fn fcall(
    conn: &mut ConnectionManager,
    op: Op,
    prefix: &str,
    now: &str,
    args: &[String],
) -> redis::RedisResult<Value> {
    let mut command = redis::cmd("FCALL");
    command
        .arg(&LIBRARY.functions[op as usize])
        .arg(0)
        .arg(prefix)
        .arg(now)
        .arg(args);
    match command.query_async::<Value>(conn).await {
        Err(error) if error.to_string().contains("Function not found") => {
            redis::cmd("FUNCTION")
                .arg("LOAD")
                .arg("REPLACE")
                .arg(&LIBRARY.source)
                .query_async::<()>(conn)
                .await?;
            command.query_async::<Value>(conn).await
        }
        other => other,
    }
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
    clock: Arc<dyn Clock>,
    events: Events,
    /// The dialects mounted here: a job's stored tag maps back to one.
    tags: Vec<&'static str>,
    tree: TreeSource,
    archives: Mutex<ArchiveCache>,
    local: Mutex<HashMap<String, LocalJob>>,
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

#[derive(Default)]
struct ArchiveCache {
    by_id: HashMap<String, Cached>,
    order: VecDeque<String>,
}

impl ArchiveCache {
    fn put(&mut self, id: &str, cached: Cached) {
        if self.by_id.insert(id.to_owned(), cached).is_none() {
            self.order.push_back(id.to_owned());
        }
        while self.by_id.len() > CACHED_ARCHIVES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.by_id.remove(&oldest);
        }
    }
}

/// What this replica holds for a job besides its archive.
#[derive(Default)]
struct LocalJob {
    seq: u64,
    /// Dropping it stops the archive's build (the job was cancelled here).
    building: Option<Building>,
    /// Cuts this replica's downloads of the job when it is cancelled.
    stop: Option<CancellationToken>,
    claims: usize,
}

/// A script's answer: a status, whether the live feed should hear of it,
/// and field/value pairs (a snapshot, then anything else asked for).
struct Reply {
    status: String,
    announce: bool,
    fields: Vec<(String, String)>,
}

impl Reply {
    fn of(value: Value) -> Result<Reply, Error> {
        let mut items = strings(value)?.into_iter();
        let status = items.next().unwrap_or_default();
        let announce = items.next().is_some_and(|a| a == "1");
        let mut fields = Vec::new();
        while let (Some(field), Some(value)) = (items.next(), items.next()) {
            fields.push((field, value));
        }
        Ok(Reply {
            status,
            announce,
            fields,
        })
    }

    fn get(&self, field: &str) -> Option<&str> {
        get(&self.fields, field)
    }
}

fn get<'a>(fields: &'a [(String, String)], field: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(f, _)| f == field)
        .map(|(_, v)| v.as_str())
}

fn text(value: Value) -> Result<String, Error> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).map_err(|_| bad_reply()),
        Value::SimpleString(s) => Ok(s),
        Value::Int(n) => Ok(n.to_string()),
        Value::Nil => Ok(String::new()),
        _ => Err(bad_reply()),
    }
}

fn strings(value: Value) -> Result<Vec<String>, Error> {
    match value {
        Value::Array(items) => items.into_iter().map(text).collect(),
        _ => Err(bad_reply()),
    }
}

fn bad_reply() -> Error {
    Error::Internal("the job store sent a reply this server does not understand".into())
}

fn unavailable(error: redis::RedisError) -> Error {
    tracing::warn!(target: "zipgate::jobs", %error, "job store call failed");
    Error::Unavailable(format!("the job store (Redis) did not answer: {error}"))
}

/// The key part that names an owner: `a` or `u:` and the user id.
fn owner_key(owner: &Principal) -> String {
    match owner {
        Principal::Anonymous => "a".to_owned(),
        Principal::User(UserId(id)) => format!("u:{id}"),
    }
}

fn owner_of(key: &str) -> Option<Principal> {
    match key {
        "a" => Some(Principal::Anonymous),
        _ => key
            .strip_prefix("u:")
            .map(|id| Principal::User(UserId(id.to_owned()))),
    }
}

fn micros(at: DateTime<Utc>) -> String {
    at.timestamp_micros().to_string()
}

fn duration_micros(d: Duration) -> String {
    d.num_microseconds().unwrap_or(i64::MAX).to_string()
}

/// A stored time: µs written by Lua from a double, so the ends of chrono's
/// range come back as its ends (a deadline past the end of time is "never").
fn time_of(text: &str) -> Option<DateTime<Utc>> {
    if text.is_empty() {
        return None;
    }
    let micros = text
        .parse::<i64>()
        .or_else(|_| text.parse::<f64>().map(|f| f as i64))
        .ok()?;
    Some(
        DateTime::from_timestamp_micros(micros).unwrap_or(if micros > 0 {
            DateTime::<Utc>::MAX_UTC
        } else {
            DateTime::<Utc>::MIN_UTC
        }),
    )
}

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

fn state_of(name: &str) -> Option<JobState> {
    Some(match name {
        "queued" => JobState::Queued,
        "running" => JobState::Running,
        "ready" => JobState::Ready,
        "downloading" => JobState::Downloading,
        "done" => JobState::Done,
        "failed" => JobState::Failed,
        "cancelled" => JobState::Cancelled,
        "expired" => JobState::Expired,
        _ => return None,
    })
}

/// An error as stored: '' for none, else '=' and the message (which may be empty).
fn error_field(error: &Option<String>) -> String {
    error.as_ref().map_or_else(String::new, |e| format!("={e}"))
}

fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.to_owned()
}

impl RedisJobs {
    /// Connects to `url` (`redis://[:password@]host:port/db`), keeping every
    /// key under `namespace`. Fails at once when Redis cannot be reached,
    /// so a misconfigured replica does not start.
    pub fn connect(
        url: &str,
        namespace: &str,
        clock: Arc<dyn Clock>,
        events: Events,
        tags: Vec<&'static str>,
        tree: TreeSource,
    ) -> Result<RedisJobs, String> {
        if namespace.is_empty() || namespace.contains(['{', '}']) {
            // The namespace is the keys' hash tag: braces would split it.
            return Err(format!(
                "job store namespace {namespace:?}: expected a name without braces"
            ));
        }
        let client = redis::Client::open(url).map_err(|e| format!("--jobs {url:?}: {e}"))?;
        let info = client.get_connection_info();
        let address = format!("redis://{}/{}", info.addr(), info.redis_settings().db());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("zipgate-redis")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the job store's runtime: {e}"))?;
        let handle = runtime.handle().clone();
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
                        let mut conn = ConnectionManager::new_with_config(client, config).await?;
                        redis::cmd("PING").query_async::<()>(&mut conn).await?;
                        Ok::<_, redis::RedisError>(conn)
                    })
                })
                .join()
        })
        .map_err(|_| "the job store's connection thread failed".to_owned())
        .and_then(|c| c.map_err(|e| format!("cannot reach the job store at {address}: {e}")));
        let conn = match connected {
            Ok(conn) => conn,
            Err(error) => {
                // Dropping a runtime inside another's context panics.
                runtime.shutdown_background();
                return Err(error);
            }
        };
        Ok(RedisJobs {
            inner: Arc::new(Inner {
                runtime: Some(runtime),
                handle,
                conn,
                prefix: format!("{{{namespace}}}:"),
                address,
                clock,
                events,
                tags,
                tree,
                archives: Mutex::default(),
                local: Mutex::default(),
            }),
        })
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

    /// Calls one of the library's functions, with the prefix and now in
    /// front of `args`.
    fn script(&self, op: Op, args: Vec<String>) -> Result<Value, Error> {
        let mut conn = self.inner.conn.clone();
        let prefix = self.inner.prefix.clone();
        let now = micros(self.inner.clock.now());
        self.run(async move { fcall(&mut conn, op, &prefix, &now, &args).await })
            .map_err(unavailable)
    }

    fn call(&self, op: Op, args: Vec<String>) -> Result<Reply, Error> {
        Reply::of(self.script(op, args)?)
    }

    fn command<T: redis::FromRedisValue + Send + 'static>(
        &self,
        command: redis::Cmd,
    ) -> Result<T, Error> {
        let mut conn = self.inner.conn.clone();
        self.run(async move { command.query_async::<T>(&mut conn).await })
            .map_err(unavailable)
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.inner.prefix)
    }

    /// A snapshot from its fields, if its dialect is mounted here.
    fn snapshot(&self, fields: &[(String, String)]) -> Option<JobSnapshot> {
        let f = |name| get(fields, name).unwrap_or("");
        let n = |name| f(name).parse::<u64>().unwrap_or(0);
        let n32 = |name| u32::try_from(n(name)).unwrap_or(u32::MAX);
        let owner_tag = *self.inner.tags.iter().find(|t| **t == f("tag"))?;
        let owner = owner_of(f("own"))?;
        let mut snapshot = JobSnapshot::new(
            f("id").to_owned(),
            owner_tag,
            owner,
            time_of(f("c")).unwrap_or_default(),
        );
        snapshot.name = f("name").to_owned();
        snapshot.context = f("ctx").to_owned();
        snapshot.archive_len = f("alen").parse().ok();
        snapshot.state = state_of(f("st"))?;
        snapshot.ready_at = time_of(f("r"));
        snapshot.expires_at = time_of(f("x"));
        snapshot.download_started_at = time_of(f("ds"));
        snapshot.finished_at = time_of(f("f"));
        snapshot.polls = n32("polls");
        snapshot.steps = (n32("s0"), n32("s1"));
        snapshot.entries_total = n("et");
        snapshot.entries_done = n("ed");
        snapshot.file_count = n("fc");
        snapshot.files_done = n("fd");
        snapshot.files_skipped = n("fs");
        snapshot.folders_skipped = n("fos");
        snapshot.bytes_sent = n("bs");
        snapshot.downloads = n32("dl");
        snapshot.active_downloads = n32("ad");
        snapshot.acknowledged = f("ack") == "1";
        snapshot.error = f("err").strip_prefix('=').map(str::to_owned);
        Some(snapshot)
    }

    fn announce(&self, job: &JobSnapshot) {
        self.inner.events.publish("job", || {
            serde_json::to_string(&super::view::job_view(job)).unwrap_or_default()
        });
    }

    /// The reply's job, told to the live feed when the script says so.
    fn job_of(&self, reply: &Reply) -> Option<JobSnapshot> {
        let job = self.snapshot(&reply.fields)?;
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
        self.archives().by_id.get(id).cloned()
    }

    /// The archive of a reply that carries (seq, rev) and, when they differ
    /// from what this replica holds, the plan to rebuild it from.
    fn archive_of(&self, id: &str, reply: &Reply) -> Result<Cached, Error> {
        let seq = reply.get("seq").and_then(|s| s.parse().ok());
        let rev = reply.get("rev").and_then(|s| s.parse().ok());
        let (Some(seq), Some(rev)) = (seq, rev) else {
            return Err(bad_reply());
        };
        if let Some(plan) = reply.get("plan") {
            return self.rebuild(id, seq, rev, plan, reply.get("src"), reply.get("fault"));
        }
        self.cached(id)
            .filter(|c| (c.seq, c.rev) == (seq, rev))
            .ok_or_else(bad_reply)
    }

    fn rebuild(
        &self,
        id: &str,
        seq: u64,
        rev: u64,
        plan: &str,
        sources: Option<&str>,
        fault: Option<&str>,
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
            Error::Unavailable(format!("this replica cannot rebuild job {id}'s archive: {error}"))
        })?;
        fn parse_or_none(text: Option<&str>) -> Option<&str> {
            text.filter(|t| !t.is_empty())
        }
        let sources = match parse_or_none(sources) {
            Some(text) => Some(Arc::new(
                serde_json::from_str::<Sources>(text).map_err(|_| bad_reply())?,
            )),
            None => None,
        };
        let fault = match parse_or_none(fault) {
            Some(text) => Some(serde_json::from_str::<JobFault>(text).map_err(|_| bad_reply())?),
            None => None,
        };
        let cached = Cached {
            seq,
            rev,
            archive: Arc::new(archive),
            sources,
            fault,
        };
        self.archives().put(id, cached.clone());
        Ok(cached)
    }

    /// The seq and rev this replica holds for `id`, as script arguments.
    fn held(&self, id: &str) -> (String, String) {
        self.cached(id)
            .map_or_else(Default::default, |c| (c.seq.to_string(), c.rev.to_string()))
    }

    fn claim(
        &self,
        id: &str,
        admission: Admission<'_>,
        peek: bool,
    ) -> Result<(Reply, JobSnapshot, Cached), Error> {
        let (seq, rev) = self.held(id);
        let reply = self.call(
            Op::Claim,
            vec![
                id.to_owned(),
                admission.owner_tag.unwrap_or("").to_owned(),
                admission
                    .max_per_owner
                    .map_or_else(String::new, |n| n.to_string()),
                flag(peek),
                seq,
                rev,
            ],
        )?;
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
                if let Some(job) = self.snapshot(&reply.fields) {
                    let why = match job.state {
                        JobState::Expired => "it expired",
                        JobState::Failed => "its job failed",
                        JobState::Cancelled => "its job was cancelled",
                        _ => "it is single-use and was used already",
                    };
                    tracing::info!(
                        target: "zipgate::jobs",
                        job = id,
                        expires_at = ?job.expires_at,
                        "download refused: {why}"
                    );
                }
                return Err(Error::Gone(id.to_owned()));
            }
            _ => return Err(bad_reply()),
        }
        let job = self
            .job_of(&reply)
            .ok_or_else(|| Error::NotFound(id.to_owned()))?;
        let cached = self.archive_of(id, &reply)?;
        Ok((reply, job, cached))
    }

    fn recheck_input(job: &JobSnapshot, cached: &Cached) -> Option<RecheckInput> {
        Some(RecheckInput {
            sources: cached.sources.clone()?,
            owner: job.owner.clone(),
            fault: cached.fault.clone(),
        })
    }

    /// Fields of a new job, as `create.lua` files them.
    fn fields_of(job: &Job, plan: &ArchivePlan) -> Result<Vec<String>, Error> {
        let s = &job.snapshot;
        let rules = &job.spec;
        let time = |t: Option<DateTime<Utc>>| t.map_or_else(String::new, micros);
        let (pk, pn, pd) = match rules.pacing {
            Pacing::Immediate => ("i", 0, String::new()),
            Pacing::AfterPolls(n) => ("p", n, String::new()),
            Pacing::AfterDuration(d) => ("d", 0, duration_micros(d)),
        };
        let (fk, fmsg) = match &rules.fault {
            Some(JobFault::Fail(message)) => ("f", format!("={message}")),
            Some(JobFault::Stuck(StuckState::Queued)) => ("q", String::new()),
            Some(JobFault::Stuck(StuckState::Running)) => ("r", String::new()),
            _ => ("", String::new()),
        };
        let json = |e: serde_json::Error| Error::Internal(format!("cannot write a job down: {e}"));
        let fault = match &rules.fault {
            Some(fault) => serde_json::to_string(fault).map_err(json)?,
            None => String::new(),
        };
        let sources = match &rules.sources {
            Some(sources) => serde_json::to_string(sources.as_ref()).map_err(json)?,
            None => String::new(),
        };
        let files_in_archive = job.entry_is_file.iter().filter(|f| **f).count();
        let pairs: Vec<(&str, String)> = vec![
            ("id", s.id.clone()),
            ("name", s.name.clone()),
            ("ctx", s.context.clone()),
            ("tag", s.owner_tag.to_owned()),
            ("own", owner_key(&s.owner)),
            ("c", micros(s.created_at)),
            (
                "alen",
                s.archive_len.map_or_else(String::new, |n| n.to_string()),
            ),
            ("et", s.entries_total.to_string()),
            ("fc", s.file_count.to_string()),
            ("fs", s.files_skipped.to_string()),
            ("fos", s.folders_skipped.to_string()),
            ("st", state_name(s.state).to_owned()),
            ("r", time(s.ready_at)),
            ("x", time(s.expires_at)),
            ("ds", time(s.download_started_at)),
            ("f", time(s.finished_at)),
            ("polls", s.polls.to_string()),
            ("s0", s.steps.0.to_string()),
            ("s1", s.steps.1.to_string()),
            ("ed", s.entries_done.to_string()),
            ("fd", s.files_done.to_string()),
            ("bs", s.bytes_sent.to_string()),
            ("dl", s.downloads.to_string()),
            ("ad", s.active_downloads.to_string()),
            ("ack", flag(s.acknowledged)),
            ("err", error_field(&s.error)),
            ("sa", time(job.settled_at)),
            ("bld", flag(rules.building.is_some())),
            ("bat", time(rules.built_at)),
            ("pk", pk.to_owned()),
            ("pn", pn.to_string()),
            ("pd", pd),
            (
                "win",
                rules
                    .download_window
                    .map_or_else(String::new, duration_micros),
            ),
            ("su", flag(rules.single_use)),
            ("ret", duration_micros(rules.retention)),
            ("fk", fk.to_owned()),
            ("fmsg", fmsg),
            ("fault", fault),
            ("fia", files_in_archive.to_string()),
            ("plan", serde_json::to_string(plan).map_err(json)?),
            ("src", sources),
        ];
        Ok(pairs
            .into_iter()
            .flat_map(|(field, value)| [field.to_owned(), value])
            .collect())
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
    ) -> (Vec<JobSnapshot>, usize, usize) {
        let value = self.script(
            Op::List,
            vec![
                set.to_owned(),
                flag(newest_first),
                first.to_string(),
                count.to_string(),
            ],
        );
        let Ok(Value::Array(items)) = value else {
            return (Vec::new(), 0, 0);
        };
        let mut items = items.into_iter();
        let mut count = || match items.next() {
            Some(Value::Int(n)) => usize::try_from(n).unwrap_or(0),
            _ => 0,
        };
        let (size, kept) = (count(), count());
        let jobs = items
            .filter_map(|job| {
                let items = strings(job).ok()?;
                let fields: Vec<(String, String)> = items
                    .chunks_exact(2)
                    .map(|pair| (pair[0].clone(), pair[1].clone()))
                    .collect();
                self.snapshot(&fields)
            })
            .collect();
        (jobs, size, kept)
    }

    /// Every job of a sorted set, oldest first, a page at a time.
    fn list_set(&self, set: &str) -> Vec<JobSnapshot> {
        let (mut out, mut rank) = (Vec::new(), 0);
        loop {
            // Gone members leave the set as a page is read: the next page
            // starts after those still in it. A page of gone members only
            // makes the set smaller, so this ends.
            let (page, size, kept) = self.list_page(set, false, rank, LIST_PAGE);
            out.extend(page);
            rank += kept;
            if rank >= size {
                return out;
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
            vec![
                id.to_owned(),
                state_name(state).to_owned(),
                error_field(&error),
            ],
        )?;
        if reply.status != "ok" {
            return Err(Error::NotFound(id.to_owned()));
        }
        let job = self
            .job_of(&reply)
            .ok_or_else(|| Error::NotFound(id.to_owned()))?;
        if reply.get("settled") == Some("1") {
            let mut local = self.local();
            if let Some(held) = local.get_mut(id) {
                // A build nobody will download stops now.
                held.building = None;
                // A cancelled job's downloads stop too, as if their clients
                // had gone; a failed job's are left.
                if state == JobState::Cancelled {
                    if let Some(stop) = held.stop.take() {
                        stop.cancel();
                    }
                }
                if held.claims == 0 && held.stop.is_none() {
                    local.remove(id);
                }
            }
        }
        Ok(job)
    }
}

impl JobBackend for RedisJobs {
    fn owner_tag(&self, id: &str) -> Option<&'static str> {
        let tag: Option<String> = self
            .command(
                redis::cmd("HGET")
                    .arg(self.key(&format!("job:{id}")))
                    .arg("tag")
                    .clone(),
            )
            .ok()?;
        let tag = tag?;
        self.inner.tags.iter().find(|t| **t == tag).copied()
    }

    fn create(&self, spec: JobSpec) -> Result<JobSnapshot, Error> {
        let now = self.inner.clock.now();
        let plan = ArchivePlan::of(&spec.archive)
            .map_err(|e| Error::Internal(format!("cannot write the archive down: {e}")))?;
        let mut job = Job::new(spec, now);
        job.advance(now, false);
        let id = job.snapshot.id.clone();
        let mut args = vec![
            id.clone(),
            format!(
                "{}|{}",
                job.snapshot.owner_tag,
                owner_key(&job.snapshot.owner)
            ),
        ];
        args.extend(Self::fields_of(&job, &plan)?);
        let reply = strings(self.script(Op::Create, args)?)?;
        match reply.first().map(String::as_str) {
            Some("ok") => {}
            Some("conflict") => return Err(Error::Conflict(format!("job {id}"))),
            _ => return Err(bad_reply()),
        }
        let seq: u64 = reply
            .get(1)
            .and_then(|s| s.parse().ok())
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
                    building: Some(building),
                    ..LocalJob::default()
                },
            );
        }
        self.announce(&job.snapshot);
        Ok(job.snapshot)
    }

    fn finish_build(&self, id: &str, from: &Arc<Archive>, result: Result<Archive, String>) {
        let Some(cached) = self.cached(id).filter(|c| Arc::ptr_eq(&c.archive, from)) else {
            return;
        };
        // The build ended either way: nothing here stops it any more.
        {
            let mut local = self.local();
            if let Some(held) = local.get_mut(id).filter(|h| h.seq == cached.seq) {
                held.building = None;
                if held.claims == 0 && held.stop.is_none() {
                    local.remove(id);
                }
            }
        }
        let (built, args) = match result {
            Ok(built) => match ArchivePlan::of(&built).and_then(|plan| {
                serde_json::to_string(&plan)
                    .map_err(|e| crate::archive_plan::PlanError::Unplannable(e.to_string()))
            }) {
                Ok(plan) => {
                    let len = built.len().map_or_else(String::new, |n| n.to_string());
                    (Some(Arc::new(built)), vec!["1".to_owned(), plan, len])
                }
                Err(e) => (
                    None,
                    vec![
                        "0".to_owned(),
                        format!("cannot write the built archive down: {e}"),
                    ],
                ),
            },
            Err(reason) => (None, vec!["0".to_owned(), reason]),
        };
        let mut all = vec![
            id.to_owned(),
            cached.seq.to_string(),
            cached.rev.to_string(),
        ];
        all.extend(args);
        let Ok(reply) = self.call(Op::Build, all) else {
            return;
        };
        if reply.status != "ok" {
            return;
        }
        if let (Some(built), Some(rev)) = (built, reply.get("rev").and_then(|r| r.parse().ok())) {
            self.archives().put(
                id,
                Cached {
                    rev,
                    archive: built,
                    ..cached
                },
            );
        }
        self.job_of(&reply);
    }

    fn get(&self, id: &str) -> Option<JobSnapshot> {
        let reply = self.call(Op::Look, vec![id.to_owned(), flag(false)]).ok()?;
        (reply.status == "ok").then(|| self.job_of(&reply))?
    }

    fn poll(&self, id: &str) -> Option<JobSnapshot> {
        let reply = self.call(Op::Look, vec![id.to_owned(), flag(true)]).ok()?;
        (reply.status == "ok").then(|| self.job_of(&reply))?
    }

    fn cancel(&self, id: &str) -> Result<JobSnapshot, Error> {
        self.settle(id, JobState::Cancelled, None)
    }

    fn fail(&self, id: &str, reason: &str) -> Result<JobSnapshot, Error> {
        self.settle(id, JobState::Failed, Some(reason.to_owned()))
    }

    fn acknowledge(&self, id: &str) {
        if let Ok(reply) = self.call(Op::Acknowledge, vec![id.to_owned()]) {
            if reply.status == "ok" {
                self.job_of(&reply);
            }
        }
    }

    fn remove(&self, id: &str) -> Option<JobSnapshot> {
        let reply = self.call(Op::Remove, vec![id.to_owned()]).ok()?;
        if reply.status != "ok" {
            return None;
        }
        let removed = self.snapshot(&reply.fields)?;
        self.archives().by_id.remove(id);
        if let Some(held) = self.local().remove(id) {
            drop(held.building);
        }
        self.inner.events.publish("job", || {
            serde_json::json!({"id": removed.id, "dialect": removed.owner_tag, "removed": true})
                .to_string()
        });
        Some(removed)
    }

    fn list(&self) -> Vec<JobSnapshot> {
        let mut out = self.list_set("all");
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        out
    }

    fn list_of(&self, owner_tag: &str, owner: &Principal) -> Vec<JobSnapshot> {
        self.list_set(&format!("own:{owner_tag}|{}", owner_key(owner)))
    }

    fn open_of(&self, owner_tag: &str, owner: &Principal) -> Vec<JobSnapshot> {
        self.list_set(&format!("open:{owner_tag}|{}", owner_key(owner)))
    }

    fn newest_of(
        &self,
        owner_tag: &str,
        owner: &Principal,
        wanted: &dyn Fn(&JobSnapshot) -> bool,
    ) -> Option<JobSnapshot> {
        let set = format!("own:{owner_tag}|{}", owner_key(owner));
        // The newest is usually the one: ask for it alone, then widen.
        let mut first = 0;
        for count in [1, 8, 32, 128].into_iter().chain(std::iter::repeat(512)) {
            let (page, size, kept) = self.list_page(&set, true, first, count);
            if let Some(job) = page.into_iter().find(|job| wanted(job)) {
                return Some(job);
            }
            first += kept;
            if first >= size {
                return None;
            }
        }
        None
    }

    fn archive(&self, id: &str) -> Option<Arc<Archive>> {
        let key = self.key(&format!("job:{id}"));
        let (seq, rev): (Option<u64>, Option<u64>) = self
            .command(redis::cmd("HMGET").arg(&key).arg("seq").arg("rev").clone())
            .ok()?;
        let (seq, rev) = (seq?, rev?);
        if let Some(cached) = self.cached(id).filter(|c| (c.seq, c.rev) == (seq, rev)) {
            return Some(cached.archive);
        }
        let (plan, sources, fault): (Option<String>, Option<String>, Option<String>) = self
            .command(
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("plan")
                    .arg("src")
                    .arg("fault")
                    .clone(),
            )
            .ok()?;
        self.rebuild(id, seq, rev, &plan?, sources.as_deref(), fault.as_deref())
            .ok()
            .map(|c| c.archive)
    }

    fn peek_download(&self, id: &str, admission: Admission<'_>) -> Result<Peek, Error> {
        let (_, job, cached) = self.claim(id, admission, true)?;
        Ok(Peek {
            recheck: Self::recheck_input(&job, &cached),
            archive: cached.archive,
            job,
        })
    }

    fn begin_download(&self, id: &str, admission: Admission<'_>) -> Result<Claimed, Error> {
        let (reply, job, cached) = self.claim(id, admission, false)?;
        let single_use = reply.get("su") == Some("1");
        let stop = {
            let mut local = self.local();
            let held = local.entry(id.to_owned()).or_default();
            if held.seq != cached.seq {
                *held = LocalJob {
                    seq: cached.seq,
                    ..LocalJob::default()
                };
            }
            held.claims += 1;
            held.stop.get_or_insert_with(CancellationToken::new).clone()
        };
        let ticket = Ticket::start(self.clone(), &job, cached.seq, single_use, &cached.archive);
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
            ArchivePlan::of(&cut.archive).and_then(|p| {
                serde_json::to_string(&p)
                    .map_err(|e| crate::archive_plan::PlanError::Unplannable(e.to_string()))
            }),
            serde_json::to_string(cut.sources.as_ref()),
        ) else {
            return;
        };
        let files = files_of(&cut.archive);
        let args = vec![
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
        ];
        let Ok(reply) = self.call(Op::Cut, args) else {
            return;
        };
        if let (true, Some(rev)) = (
            reply.status == "ok",
            reply.get("rev").and_then(|r| r.parse().ok()),
        ) {
            self.archives().put(
                id,
                Cached {
                    rev,
                    archive: cut.archive.clone(),
                    sources: Some(cut.sources.clone()),
                    ..cached
                },
            );
        }
    }

    fn counts(&self) -> Vec<((String, String), u64)> {
        let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for job in self.list() {
            *counts
                .entry((job.owner_tag.to_owned(), state_name(job.state).to_owned()))
                .or_default() += 1;
        }
        counts.into_iter().collect()
    }

    fn clear(&self) {
        let mut conn = self.inner.conn.clone();
        let pattern = format!("{}*", self.inner.prefix);
        let keep = self.key("lease:");
        let cleared = self.run(async move {
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
                let doomed: Vec<&String> = keys.iter().filter(|k| !k.starts_with(&keep)).collect();
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
        });
        if let Err(error) = cleared {
            tracing::warn!(target: "zipgate::jobs", %error, "reset could not clear the job store");
        }
        self.archives().by_id.clear();
        self.archives().order.clear();
        self.local().clear();
    }

    fn len(&self) -> usize {
        self.command(redis::cmd("ZCARD").arg(self.key("all")).clone())
            .unwrap_or(0)
    }

    fn next_in_sequence(&self, owner_tag: &str, name: &str) -> Result<u64, Error> {
        let key = self.key(&format!("sequence:{owner_tag}.{name}"));
        self.command(redis::cmd("INCR").arg(key).clone())
    }

    fn lease(&self, name: &str, count: u64) -> u64 {
        let key = self.key(&format!("lease:{name}"));
        let count_i = i64::try_from(count).unwrap_or(i64::MAX);
        match self.command::<i64>(redis::cmd("INCRBY").arg(key).arg(count_i).clone()) {
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
}

/// One download in progress on this replica: it counts locally and writes
/// what it counted every [`PROGRESS_EVERY`] and at the end, in order,
/// through a task of the job store's runtime (a chunk never waits on Redis).
struct Ticket {
    jobs: RedisJobs,
    id: String,
    seq: u64,
    is_file: RwLock<Vec<bool>>,
    pending: Mutex<Pending>,
    started: Instant,
    flushed_ms: AtomicU64,
    finished: AtomicBool,
    queue: tokio::sync::mpsc::UnboundedSender<Write>,
}

#[derive(Default)]
struct Pending {
    bytes: u64,
    entries_done: Option<u64>,
    files: u64,
}

enum Write {
    Progress(Pending),
    Finish(Pending, bool, std::sync::mpsc::SyncSender<()>),
}

impl Ticket {
    fn start(
        jobs: RedisJobs,
        job: &JobSnapshot,
        seq: u64,
        _single_use: bool,
        archive: &Archive,
    ) -> Arc<dyn StreamObserver> {
        let (queue, mut writes) = tokio::sync::mpsc::unbounded_channel::<Write>();
        let writer = jobs.clone();
        let (id, owner) = (
            job.id.clone(),
            format!("{}|{}", job.owner_tag, owner_key(&job.owner)),
        );
        let (task_id, task_owner, task_seq) = (id.clone(), owner.clone(), seq.to_string());
        jobs.inner.handle.spawn(async move {
            while let Some(write) = writes.recv().await {
                let (pending, end, done) = match write {
                    Write::Progress(p) => (p, String::new(), None),
                    Write::Finish(p, complete, done) => (p, flag(complete), Some(done)),
                };
                let args = vec![
                    task_id.clone(),
                    task_seq.clone(),
                    pending.bytes.to_string(),
                    pending.entries_done.map_or_else(String::new, |n| n.to_string()),
                    pending.files.to_string(),
                    end,
                    task_owner.clone(),
                    flag(writer.inner.events.recording()),
                ];
                let mut conn = writer.inner.conn.clone();
                let now = micros(writer.inner.clock.now());
                match fcall(&mut conn, Op::Progress, &writer.inner.prefix, &now, &args).await {
                    Ok(value) => {
                        if let Ok(reply) = Reply::of(value) {
                            if reply.status == "ok" {
                                writer.job_of(&reply);
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(target: "zipgate::jobs", job = %task_id, %error, "cannot record a download's progress")
                    }
                }
                if let Some(done) = done {
                    let _ = done.send(());
                    return;
                }
            }
        });
        Arc::new(Ticket {
            jobs,
            id,
            seq,
            is_file: RwLock::new(files_of(archive)),
            pending: Mutex::default(),
            started: Instant::now(),
            flushed_ms: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            queue,
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands what was counted to the writer once it is old enough.
    fn flush_if_due(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.flushed_ms.load(Ordering::Relaxed);
        if now < last + PROGRESS_EVERY.as_millis() as u64
            || self
                .flushed_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let pending = std::mem::take(&mut *self.pending());
        let _ = self.queue.send(Write::Progress(pending));
    }

    fn finish(&self, complete: bool) {
        if self.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        let pending = std::mem::take(&mut *self.pending());
        let (done, written) = std::sync::mpsc::sync_channel(1);
        if self
            .queue
            .send(Write::Finish(pending, complete, done))
            .is_ok()
        {
            // A client that polls right after its last byte must see the
            // download ended: wait for the write (as `run` waits).
            let wait = || {
                let _ = written.recv_timeout(RESPONSE_TIMEOUT * 2);
            };
            match Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
                _ => wait(),
            }
        }
        let mut local = self.jobs.local();
        if let Some(held) = local.get_mut(&self.id).filter(|h| h.seq == self.seq) {
            held.claims = held.claims.saturating_sub(1);
            if held.claims == 0 {
                held.stop = None;
                if held.building.is_none() {
                    local.remove(&self.id);
                }
            }
        }
    }
}

impl Progress for Ticket {
    fn entry_done(&self, index: usize) {
        let is_file = self
            .is_file
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(index)
            .copied()
            .unwrap_or(false);
        {
            let mut pending = self.pending();
            pending.entries_done = Some(pending.entries_done.unwrap_or(0).max(index as u64 + 1));
            if is_file {
                pending.files += 1;
            }
        }
        self.flush_if_due();
    }
}

impl StreamObserver for Ticket {
    fn bytes_sent(&self, n: u64) {
        self.pending().bytes += n;
        self.flush_if_due();
    }

    fn finished(&self, complete: bool) {
        self.finish(complete);
    }

    fn archive_replaced(&self, archive: &Archive) {
        *self.is_file.write().unwrap_or_else(|e| e.into_inner()) = files_of(archive);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.finish(false);
    }
}
