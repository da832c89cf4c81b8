//! The HTTP server: accept loop, graceful shutdown, one access-log line per
//! request, dispatch through the router.

mod control;
pub mod guard;
pub mod http;
pub mod limit;
pub(crate) mod native;
pub mod router;
mod shaping;
pub mod stream;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tokio::net::TcpListener;
use zipgate_api::rng::SplitMix64;
use zipgate_api::{DialectRequest, Mounted, Settings};

use self::http::{json_error, Body};
use self::limit::{AcceptLog, Admission, ConnectionLimit, ConnectionSlot};
use self::router::{Ctx, Found, Router};
use self::shaping::ConnectionIo;
use self::stream::StreamCounter;
use crate::clock::{AdjustableClock, Clock};
use crate::core::ServerCore;
use crate::faults::{Decision, FaultBook, FaultRule, RequestFacts};
use crate::jobs::JobRegistry;
use crate::journal::Journal;
use crate::packing::CompressionPolicy;
use crate::store::{ContentPaths, ContentRoot, FixtureError, FixtureSource, Store};

#[derive(Clone, Debug)]
pub struct Config {
    pub compression: CompressionPolicy,
    /// Largest request body any route reads.
    pub max_body_bytes: usize,
    /// How long in-flight responses may run on after a shutdown signal.
    pub shutdown_grace: Duration,
    /// How long a client may take to send its request headers.
    pub header_timeout: Duration,
    /// How long a client may take to send a request body.
    pub body_timeout: Duration,
    /// How long a response may wait on a client that does not read it
    /// (a stalled download) before the connection is dropped.
    pub send_timeout: Duration,
    /// Compute file CRCs in the background after loading fixtures.
    pub warm_crcs: bool,
    /// `scheme://host[:port]` for absolute URLs in responses; the request's
    /// `Host` when unset.
    pub public_url: Option<String>,
    /// Seed of the cosmetic generator (request ids, renames, fault draws).
    pub seed: u64,
    /// Seed of the cryptographic generator behind secrets (download ids);
    /// `None` seeds it from the operating system. Only for reproducible tests.
    pub secret_seed: Option<u64>,
    /// Requests the journal keeps (0 turns it off).
    pub journal_capacity: usize,
    /// Bytes the journal's entries may hold in all (oldest dropped first).
    pub journal_bytes: usize,
    /// Jobs kept, in all and per principal.
    pub job_limits: crate::jobs::JobLimits,
    /// Dialect settings, by dialect name (`--set box.url_ttl=60`).
    pub dialect_settings: BTreeMap<String, Settings>,
    /// Serve the test control plane under `/_zipgate/`.
    pub control: bool,
    /// When set, control-plane requests must carry it as a bearer token
    /// (an empty one is a start-up error, not an open control plane).
    pub control_token: Option<String>,
    /// Hosts besides loopback and the `public_url` host that zipgate's own
    /// routes answer (`--allow-host`; `*` for any).
    pub allowed_hosts: Vec<String>,
    /// The directory fixtures sent to the control plane may name files
    /// beneath (`--content-root`); without it they may name none.
    pub content_root: Option<PathBuf>,
    /// Fixture files may name files outside their folder, and in-process
    /// fixtures any file (`--fixture-paths-anywhere`).
    pub fixture_paths_anywhere: bool,
    /// Fault rules in force from the start (and again after a reset).
    pub faults: Vec<FaultRule>,
    /// The most fault rules in force at once (each vendor request is
    /// matched against every one).
    pub max_faults: usize,
    /// Every archive gets portable entry names (`PlanOptions::portable_names`),
    /// whatever the dialect asks for.
    pub portable_names: bool,
    /// Connections served at once; past it a connection is answered 503
    /// and closed (`--max-connections`). The default leaves a quarter of
    /// the descriptor limit for files and the log (`limit::max_connections_for`).
    pub max_connections: usize,
}

/// The longest any timeout or grace period may be: a day. These waits are
/// what bounds how long a silent or stalled client holds a connection and
/// its buffers; past a day that is no bound at all, and no test waits so
/// long. (Far below what `Instant` plus a `Duration` can hold, too.)
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// The largest `max_body_bytes`: 1 GiB. A body is held whole in memory, and
/// up to `DISCARD_FACTOR` times more is read before a refusal, so a larger
/// cap is a way to run the server out of memory, not a setting.
pub const MAX_BODY_BYTES: usize = 1 << 30;

/// Seconds given on the command line (`--header-timeout 30`) as a
/// `Duration`, refused unless finite and from 0 (when `zero_allowed`, else
/// more than 0) to [`MAX_TIMEOUT`]: NaN, negative or infinite waits are
/// typos, and clamping them would silently mean "at once" or "forever".
pub fn timeout_secs(name: &str, secs: f64, zero_allowed: bool) -> Result<Duration, String> {
    let max = MAX_TIMEOUT.as_secs();
    let in_range = secs.is_finite()
        && secs <= max as f64
        && if zero_allowed {
            secs >= 0.0
        } else {
            secs > 0.0
        };
    match Duration::try_from_secs_f64(secs) {
        Ok(duration) if in_range && (zero_allowed || !duration.is_zero()) => Ok(duration),
        _ => Err(format!(
            "{name}: expected seconds {} to {max} (1 day), got {secs}",
            if zero_allowed { "from 0" } else { "over 0 up" }
        )),
    }
}

impl Config {
    /// Refuses waits and sizes out of range, so an in-process server is
    /// held to what the command line allows (see [`MAX_TIMEOUT`] and
    /// [`MAX_BODY_BYTES`]). A zero timeout would drop every connection;
    /// a zero grace period means "cut at once" and is allowed.
    pub fn check(&self) -> Result<(), String> {
        for (name, value, zero_allowed) in [
            ("shutdown_grace", self.shutdown_grace, true),
            ("header_timeout", self.header_timeout, false),
            ("body_timeout", self.body_timeout, false),
            ("send_timeout", self.send_timeout, false),
        ] {
            if value > MAX_TIMEOUT || (value.is_zero() && !zero_allowed) {
                return Err(format!(
                    "{name}: expected {} to {} s (1 day), got {value:?}",
                    if zero_allowed { "from 0" } else { "over 0 up" },
                    MAX_TIMEOUT.as_secs()
                ));
            }
        }
        if self.max_body_bytes > MAX_BODY_BYTES {
            return Err(format!(
                "max_body_bytes: expected 0 to {MAX_BODY_BYTES} (1 GiB), got {}",
                self.max_body_bytes
            ));
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            compression: CompressionPolicy::default(),
            max_body_bytes: 1 << 20,
            shutdown_grace: Duration::from_secs(5),
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(60),
            warm_crcs: true,
            public_url: None,
            seed: 0,
            secret_seed: None,
            journal_capacity: 1000,
            journal_bytes: crate::journal::DEFAULT_MAX_BYTES,
            job_limits: crate::jobs::JobLimits::default(),
            dialect_settings: BTreeMap::new(),
            control: true,
            control_token: None,
            allowed_hosts: Vec::new(),
            content_root: None,
            fixture_paths_anywhere: false,
            faults: Vec::new(),
            max_faults: crate::faults::DEFAULT_MAX_RULES,
            portable_names: false,
            max_connections: limit::default_max_connections(),
        }
    }
}

impl Config {
    /// `--content-root`, opened; an error names the option.
    pub fn open_content_root(&self) -> Result<Option<Arc<ContentRoot>>, crate::StartError> {
        self.content_root
            .as_deref()
            .map(|dir| {
                ContentRoot::new(dir).map(Arc::new).map_err(|e| {
                    crate::StartError::Settings(format!("--content-root {}: {e}", dir.display()))
                })
            })
            .transpose()
    }

    /// Where paths in fixtures given in-process (JSON, not a file) may lead.
    pub fn in_process_paths(&self, root: Option<&Arc<ContentRoot>>) -> ContentPaths {
        match root {
            Some(root) => ContentPaths::Beneath(root.clone()),
            None if self.fixture_paths_anywhere => ContentPaths::Anywhere(None),
            None => ContentPaths::Refused,
        }
    }
}

/// Everything a request handler may use.
pub struct AppState {
    store: RwLock<Arc<Store>>,
    /// The fixture document in force (JSON) and the one the server started with,
    /// so nodes can be added and `reset` can go back.
    fixture: Mutex<FixtureSource>,
    initial_fixture: FixtureSource,
    pub control_clock: Arc<AdjustableClock>,
    pub journal: Journal,
    pub faults: FaultBook,
    generation: AtomicU64,
    /// CRC warmer threads running (health shows it).
    warmers: Arc<AtomicUsize>,
    rng: Mutex<SplitMix64>,
    secrets: Mutex<ChaCha20Rng>,
    pub clock: Arc<dyn Clock>,
    pub jobs: JobRegistry,
    pub config: Config,
    pub streams: Arc<StreamCounter>,
    /// Live connections and the cap (`/_zipgate/health` → `connections`).
    pub connections: Arc<ConnectionLimit>,
    /// The vendor dialects whose routes are mounted.
    pub dialects: Vec<Arc<dyn Mounted>>,
    /// Who may use the routes under `/_zipgate/`.
    pub guard: guard::ControlGuard,
    /// `--content-root`, held open.
    content_root: Option<Arc<ContentRoot>>,
}

/// ChaCha20: its outputs do not reveal its key, so no number of observed
/// secrets predicts the next. Seeded from the OS unless a test pins it; a
/// pinned seed is expanded on its own stream, so it shares nothing with the
/// cosmetic SplitMix64 seeded by the same number.
fn secret_generator(seed: Option<u64>) -> ChaCha20Rng {
    match seed {
        Some(seed) => {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            rng.set_stream(0x7365_6372_6574); // "secret"
            rng
        }
        None => ChaCha20Rng::from_os_rng(),
    }
}

impl AppState {
    pub fn new(
        source: FixtureSource,
        clock: Arc<dyn Clock>,
        config: Config,
        dialects: Vec<Arc<dyn Mounted>>,
    ) -> Result<Self, crate::StartError> {
        config.check().map_err(crate::StartError::Settings)?;
        if config.control_token.as_deref() == Some("") {
            // An empty token would be easy to send by mistake and would read
            // as "protected" while guarding nothing.
            return Err(crate::StartError::Settings(
                "the control token (--control-token or ZIPGATE_CONTROL_TOKEN) is empty: give \
                 one, or leave it unset to rely on the loopback Host and Origin checks alone"
                    .into(),
            ));
        }
        if config.max_connections == 0 {
            return Err(crate::StartError::Settings(
                "max-connections is 0: no connection could be served".into(),
            ));
        }
        let guard = guard::ControlGuard::new(config.public_url.as_deref(), &config.allowed_hosts)
            .map_err(crate::StartError::Settings)?;
        let content_root = config.open_content_root()?;
        let store = Arc::new(source.parse()?);
        let faults = FaultBook::with_max(config.seed, config.max_faults);
        if config.faults.len() > config.max_faults {
            return Err(crate::StartError::Faults(format!(
                "{} rules given, at most {} allowed (--max-faults)",
                config.faults.len(),
                config.max_faults
            )));
        }
        for (index, rule) in config.faults.iter().enumerate() {
            faults
                .add(rule.clone())
                .map_err(|e| crate::StartError::Faults(format!("rule {}: {e}", index + 1)))?;
        }
        let warmers = Arc::new(AtomicUsize::new(0));
        if config.warm_crcs {
            warm_in_background(store.clone(), warmers.clone());
        }
        let max_connections = config.max_connections;
        let control_clock = Arc::new(AdjustableClock::new(clock));
        let clock: Arc<dyn Clock> = control_clock.clone();
        Ok(AppState {
            store: RwLock::new(store),
            fixture: Mutex::new(source.clone()),
            initial_fixture: source,
            control_clock,
            journal: Journal::with_limits(config.journal_capacity, config.journal_bytes),
            faults,
            generation: AtomicU64::new(0),
            warmers,
            rng: Mutex::new(SplitMix64::new(config.seed)),
            secrets: Mutex::new(secret_generator(config.secret_seed)),
            jobs: JobRegistry::with_limits(clock.clone(), config.job_limits),
            clock,
            config,
            streams: Arc::new(StreamCounter::default()),
            connections: Arc::new(ConnectionLimit::new(max_connections)),
            dialects,
            guard,
            content_root,
        })
    }

    /// Where paths in fixtures sent to the control plane may lead: beneath
    /// `--content-root`, or nowhere.
    pub fn http_paths(&self) -> ContentPaths {
        match &self.content_root {
            Some(root) => ContentPaths::Beneath(root.clone()),
            None => ContentPaths::Refused,
        }
    }

    /// Where paths in fixtures given in-process may lead.
    pub fn in_process_paths(&self) -> ContentPaths {
        self.config.in_process_paths(self.content_root.as_ref())
    }

    /// Replaces the whole tree with a new fixture document; on error the old one stays.
    pub fn load_fixture(&self, source: FixtureSource) -> Result<(), FixtureError> {
        let store = source.parse()?;
        *self.fixture.lock().unwrap_or_else(|e| e.into_inner()) = source;
        self.replace_store(store);
        Ok(())
    }

    /// Adds nodes (fixture node objects) under `parent`, or at the top;
    /// their `content.path` values may lead where `paths` says.
    pub fn add_nodes(
        &self,
        parent: Option<&str>,
        nodes: Vec<serde_json::Value>,
        paths: ContentPaths,
    ) -> Result<(), FixtureError> {
        let mut fixture = self.fixture.lock().unwrap_or_else(|e| e.into_inner());
        let next = fixture.with_nodes(parent, nodes, paths)?;
        let store = next.parse()?;
        *fixture = next;
        drop(fixture);
        self.replace_store(store);
        Ok(())
    }

    /// Back to the fixtures and fault rules the server started with (rule
    /// counters from zero), with no jobs and an empty journal.
    pub fn reset(&self) -> Result<(), FixtureError> {
        self.load_fixture(self.initial_fixture.clone())?;
        self.jobs.clear();
        self.journal.clear();
        self.faults.clear();
        for rule in &self.config.faults {
            // Checked when the server started.
            let _ = self.faults.add(rule.clone());
        }
        release_freed_memory();
        for dialect in &self.dialects {
            dialect.reset();
        }
        Ok(())
    }

    pub fn store_generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub fn random_u64(&self) -> u64 {
        self.rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_u64()
    }

    /// Bytes from the cryptographic generator (see `secret_generator`).
    pub fn fill_secret(&self, out: &mut [u8]) {
        self.secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fill_bytes(out);
    }

    /// The tree in force now; a request keeps the one it started with.
    pub fn store(&self) -> Arc<Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace_store(&self, store: Store) {
        let store = Arc::new(store);
        if self.config.warm_crcs {
            warm_in_background(store.clone(), self.warmers.clone());
        }
        let old = std::mem::replace(
            &mut *self.store.write().unwrap_or_else(|e| e.into_inner()),
            store,
        );
        // Its warmer must not keep both cores busy on a tree nobody asks for.
        old.retire();
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Stops background work (the CRC warmer) when the server shuts down.
    pub fn stop_background(&self) {
        self.store().retire();
    }

    /// CRC warmer threads still running.
    pub fn crc_warmers(&self) -> usize {
        self.warmers.load(Ordering::SeqCst)
    }
}

/// Hands memory freed by a reset (jobs, journal) back to the OS, so a long
/// test run's RSS falls back instead of staying at its high-water mark.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim only releases free heap pages; it takes no pointers.
        unsafe {
            malloc_trim(0);
        }
    }
}

fn warm_in_background(store: Arc<Store>, warmers: Arc<AtomicUsize>) {
    struct Running(Arc<AtomicUsize>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    warmers.fetch_add(1, Ordering::SeqCst);
    let running = Running(warmers);
    let spawned = std::thread::Builder::new()
        .name("crc-warmer".into())
        .spawn(move || {
            let _running = running;
            store.warm_crcs()
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the CRC warmer; CRCs will be computed on first use");
    }
}

pub fn routes(dialects: &[Arc<dyn Mounted>], config: &Config) -> Router {
    let mut router = Router::new();
    native::mount(&mut router);
    if config.control {
        control::mount(&mut router);
    }
    let public_url: Option<Arc<str>> = config.public_url.as_deref().map(Arc::from);
    for dialect in dialects {
        for (method, pattern, handler) in dialect.routes() {
            let owner = dialect.clone();
            let public_url = public_url.clone();
            router.add(method, &pattern, move |ctx: Ctx| {
                let dialect = owner.clone();
                let handler = handler.clone();
                let public_url = public_url.clone();
                async move {
                    let config = &ctx.state.config;
                    let (limit, timeout) = (config.max_body_bytes, config.body_timeout);
                    let (parts, body) = ctx.req.into_parts();
                    let head = parts.method == Method::HEAD;
                    let body =
                        self::http::read_request_body(&parts.headers, body, limit, timeout).await;
                    if let (Some(id), Ok(bytes)) = (ctx.journal, &body) {
                        ctx.state.journal.set_body(id, bytes);
                    }
                    let request = DialectRequest {
                        method: parts.method,
                        uri: parts.uri,
                        headers: parts.headers,
                        body,
                        params: ctx.params,
                        public_url,
                    };
                    let core = ServerCore::new(ctx.state, dialect)
                        .with_job_fault(ctx.job_fault)
                        .look_only(head);
                    handler(request, &core)
                }
            });
            router.tag(&pattern, dialect.clone());
        }
        for prefix in dialect.prefixes() {
            router.fallback(prefix, dialect.clone());
            if dialect.case_insensitive_paths() {
                router.case_insensitive(prefix);
            }
        }
    }
    router
}

/// Serves until `shutdown` resolves, then lets in-flight responses run for
/// the configured grace period and cuts whatever is left. Connections run
/// as tasks of the runtime this is called on (any kind). Past
/// `max_connections` a connection is answered 503 and closed (`limit`).
pub async fn run(listener: TcpListener, state: Arc<AppState>, shutdown: impl Future<Output = ()>) {
    let connections = Connections::new(&state);
    let mut accept_log = AcceptLog::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => match state.connections.admit() {
                    Admission::Serve(slot) => connections.serve(socket, slot),
                    Admission::Full(refusal) => {
                        accept_log.turn_away(socket, refusal, &state.connections)
                    }
                },
                Err(error) => accept_log.failed(error).await,
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down; letting in-flight responses finish");
    state.stop_background();
    if connections.finish().await {
        tracing::info!("all connections closed");
    }
}

/// Serves on `workers` threads, each with a single-threaded runtime: this
/// task accepts and hands connections round-robin to the workers, and a
/// connection stays on its worker. No request crosses threads, so no worker
/// wakes the other, steals its tasks or frees into its malloc arena: Box
/// creates went from 64-71k to 79-84k req/s against the multi-threaded
/// runtime (wrk -t2 -c50 on 2 cores). Returns when every worker has finished
/// its connections after `shutdown`. The cap on connections is checked here,
/// before a connection is handed on, and a refusal is written by a task of
/// this runtime, so a full server costs the workers nothing.
pub async fn run_on_workers(
    listener: TcpListener,
    state: Arc<AppState>,
    workers: usize,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut queues = Vec::new();
    let mut threads = Vec::new();
    for n in 0..workers.max(1) {
        // A connection travels with its slot, so one dropped in the queue
        // (its worker gone) gives the slot back too.
        let (queue, mut sockets) =
            tokio::sync::mpsc::unbounded_channel::<(std::net::TcpStream, ConnectionSlot)>();
        let state = state.clone();
        let mut stopped = stopped.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        threads.push(
            std::thread::Builder::new()
                .name(format!("zipgate-worker-{n}"))
                .spawn(move || {
                    let closed = runtime.block_on(async move {
                        let connections = Connections::new(&state);
                        loop {
                            tokio::select! {
                                socket = sockets.recv() => match socket {
                                    Some((socket, slot)) => match tokio::net::TcpStream::from_std(socket) {
                                        Ok(socket) => connections.serve(socket, slot),
                                        Err(error) => tracing::warn!(%error, "cannot take a connection"),
                                    },
                                    None => break,
                                },
                                _ = stopped.wait_for(|stop| *stop) => break,
                            }
                        }
                        connections.finish().await
                    });
                    // Shutting the runtime down drops the responses still in
                    // flight after the grace, so their engine threads stop at
                    // their next block (a CRC pass included); one stuck in a
                    // slow read must not keep the process alive.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                    closed
                })?,
        );
        queues.push(queue);
    }
    tokio::pin!(shutdown);
    let mut next = 0;
    let mut accept_log = AcceptLog::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => match state.connections.admit() {
                    Admission::Serve(slot) => match socket.into_std() {
                        Ok(socket) => {
                            let _ = queues[next].send((socket, slot));
                            next = (next + 1) % queues.len();
                        }
                        Err(error) => tracing::warn!(%error, "cannot hand a connection on"),
                    },
                    Admission::Full(refusal) => {
                        accept_log.turn_away(socket, refusal, &state.connections)
                    }
                },
                Err(error) => accept_log.failed(error).await,
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down; letting in-flight responses finish");
    state.stop_background();
    let _ = stop.send(true);
    drop(queues);
    let all_closed = tokio::task::spawn_blocking(move || {
        // Every worker is joined, whatever the first ones answer.
        let closed: Vec<bool> = threads
            .into_iter()
            .map(|thread| thread.join().unwrap_or(false))
            .collect();
        closed.into_iter().all(|closed| closed)
    })
    .await
    .map_err(std::io::Error::other)?;
    if all_closed {
        tracing::info!("all connections closed");
    }
    Ok(())
}

/// The connections one runtime serves: each a task on that runtime, all
/// watched so they can be finished gracefully.
struct Connections {
    state: Arc<AppState>,
    router: Arc<Router>,
    builder: http1::Builder,
    graceful: GracefulShutdown,
}

impl Connections {
    fn new(state: &Arc<AppState>) -> Self {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(state.config.header_timeout);
        Connections {
            state: state.clone(),
            router: Arc::new(routes(&state.dialects, &state.config)),
            builder,
            graceful: GracefulShutdown::new(),
        }
    }

    /// Serves one connection on a task that holds its slot, so the slot
    /// comes back however the connection ends, a task dropped at shutdown
    /// included.
    fn serve(&self, socket: tokio::net::TcpStream, slot: ConnectionSlot) {
        let _ = socket.set_nodelay(true);
        let (io, reset) = ConnectionIo::new(socket, self.state.config.send_timeout);
        let state = self.state.clone();
        let router = self.router.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            let router = router.clone();
            let reset = reset.clone();
            async move { Ok::<_, Infallible>(dispatch(state, router, req, reset).await) }
        });
        let connection = self
            .graceful
            .watch(self.builder.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }

    /// Lets in-flight responses run for the grace period, then cuts the
    /// rest; true when none had to be cut.
    async fn finish(self) -> bool {
        tokio::select! {
            () = self.graceful.shutdown() => true,
            () = tokio::time::sleep(self.state.config.shutdown_grace) => {
                tracing::warn!(grace = ?self.state.config.shutdown_grace, "cutting responses still in flight");
                false
            }
        }
    }
}

async fn dispatch(
    state: Arc<AppState>,
    router: Arc<Router>,
    req: Request<Incoming>,
    reset: Arc<AtomicBool>,
) -> Response<AccessLogged> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // Vendor routes are journaled and may carry faults; zipgate's own are not.
    let vendor = !path.starts_with("/_zipgate/");
    let dialect = if vendor {
        router.dialect_for(&path)
    } else {
        None
    };
    let journal = if vendor {
        state.journal.record(
            state.clock.now(),
            dialect,
            &method,
            req.uri(),
            req.headers(),
        )
    } else {
        None
    };
    let fault = if vendor && !state.faults.is_empty() {
        decide_fault(&state, dialect, &req)
    } else {
        None
    };
    if let (Some(id), Some(fault)) = (journal, &fault) {
        state.journal.set_faults(id, &fault.rules);
    }
    if let Some(delay) = fault.as_ref().and_then(|f| f.delay) {
        tokio::time::sleep(delay).await;
    }
    let journal_state = state.clone();
    let response = match (&fault, router.find(&method, &path)) {
        (
            Some(Decision {
                respond: Some(respond),
                ..
            }),
            _,
        ) => {
            let request = bodiless(req, &state);
            let status =
                StatusCode::from_u16(respond.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = respond.message.as_deref();
            let owner = state
                .dialects
                .iter()
                .find(|d| Some(d.name()) == dialect)
                .cloned();
            let mut response = match owner {
                Some(owner) => owner.status_response(
                    status,
                    message,
                    &request,
                    &ServerCore::new(state.clone(), owner.clone()),
                ),
                None => json_error(
                    status,
                    "injected_fault",
                    message.unwrap_or("an injected fault").to_owned(),
                ),
            };
            for (name, value) in &respond.headers {
                if let (Ok(name), Ok(value)) = (
                    header::HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        (_, Found::Route(handler, params)) => {
            handler(Ctx {
                req,
                params,
                state: state.clone(),
                journal,
                job_fault: fault.as_ref().and_then(|f| f.job.clone()),
            })
            .await
        }
        (_, found) => match router.owner_of(&path) {
            // Under a vendor's prefix, the vendor's own envelope answers.
            Some(dialect) => {
                let request = bodiless(req, &state);
                let core = ServerCore::new(state, dialect.clone());
                match found {
                    Found::MethodNotAllowed(allowed) => {
                        dialect.method_not_allowed(&request, &allowed, &core)
                    }
                    _ => dialect.not_found(&request, &core),
                }
            }
            None => native_fallback(found, &method, &path),
        },
    };
    let (parts, mut body) = response.into_parts();
    if let Some(fault) = &fault {
        if let Some(rate) = fault.throttle_bytes_per_sec {
            body = shaping::throttled(body, rate);
        }
        if let Some(cut) = fault.cut {
            body = shaping::cut(body, cut, reset);
        }
    }
    let status = parts.status.as_u16();
    if let Some(id) = journal {
        journal_state.journal.set_status(id, status);
    }
    Response::from_parts(
        parts,
        AccessLogged {
            inner: body,
            method,
            path,
            status,
            bytes: 0,
            started,
            complete: false,
            journal: journal.map(|id| (journal_state, id)),
        },
    )
}

/// A request handed to a dialect without its body (fallbacks and faults do not read it).
fn bodiless(req: Request<Incoming>, state: &AppState) -> DialectRequest {
    let (parts, _) = req.into_parts();
    let mut request = DialectRequest::new(parts.method, parts.uri, parts.headers, Bytes::new());
    request.public_url = state.config.public_url.as_deref().map(Arc::from);
    request
}

/// Counts the request against the fault rules; what fires, if anything.
/// A rule on `user` asks the owning dialect who the request is from, the way
/// its handlers do (`Dialect::principal`), so the two cannot disagree.
fn decide_fault(
    state: &Arc<AppState>,
    dialect: Option<&str>,
    req: &Request<Incoming>,
) -> Option<Decision> {
    let owner = dialect.and_then(|name| state.dialects.iter().find(|d| d.name() == name));
    let user = match owner {
        Some(owner) if state.faults.needs_user() => {
            let mut request = DialectRequest::new(
                req.method().clone(),
                req.uri().clone(),
                req.headers().clone(),
                Bytes::new(),
            );
            request.public_url = state.config.public_url.as_deref().map(Arc::from);
            owner.principal(
                &request,
                &ServerCore::new(state.clone(), owner.clone()).look_only(true),
            )
        }
        _ => None,
    };
    state.faults.decide(&RequestFacts {
        dialect,
        method: req.method().as_str(),
        path: req.uri().path(),
        user: user.as_ref().map(|u| (u.id.0.as_str(), u.login.as_str())),
    })
}

fn native_fallback(found: Found, method: &Method, path: &str) -> Response<Body> {
    match found {
        Found::MethodNotAllowed(allowed) => {
            let allow = allowed
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let mut response = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{path} does not accept {method}; it accepts {allow}"),
            );
            if let Ok(value) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
        _ => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {method} {path}"),
        ),
    }
}

/// Wraps every response body and writes the access-log line when the body
/// is done or dropped, so streamed downloads log their real size and time.
pub struct AccessLogged {
    inner: Body,
    method: Method,
    path: String,
    status: u16,
    bytes: u64,
    started: Instant,
    complete: bool,
    journal: Option<(Arc<AppState>, u64)>,
}

impl http_body::Body for AccessLogged {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.complete = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AccessLogged {
    fn drop(&mut self) {
        if let Some((state, id)) = &self.journal {
            state.journal.set_bytes_sent(*id, self.bytes);
        }
        let complete = self.complete || self.inner.is_end_stream();
        tracing::info!(
            target: "zipgate::access",
            method = %self.method,
            path = %self.path,
            status = self.status,
            bytes = self.bytes,
            ms = format_args!("{:.2}", self.started.elapsed().as_secs_f64() * 1000.0),
            complete,
        );
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn the_secret_generator_is_not_the_cosmetic_one() {
        // Same seed: the ChaCha stream shares no output with SplitMix64's.
        let mut cosmetic = SplitMix64::new(7);
        let cosmetic: Vec<u64> = (0..64).map(|_| cosmetic.next_u64()).collect();
        let mut secret = secret_generator(Some(7));
        let secret: Vec<u64> = (0..64).map(|_| secret.next_u64()).collect();
        assert!(secret.iter().all(|s| !cosmetic.contains(s)));
        // Pinned secrets repeat; unpinned ones come from the OS and differ.
        assert_eq!(secret_generator(Some(7)).next_u64(), secret[0]);
        assert_ne!(
            secret_generator(None).next_u64(),
            secret_generator(None).next_u64()
        );
    }
}
