//! zipgate: one server that speaks several vendors' "download these files as
//! one zip" APIs over one neutral, streaming zip engine.
//!
//! Start it in-process from a test, seed it, inject a fault, and check what
//! the client sent:
//!
//! ```
//! use serde_json::json;
//! use zipgate::{faults::FaultRule, journal::Filter, Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder()
//!     .fixtures(json!({
//!         "users": [{"id": "ann", "token": "ann-token"}],
//!         "nodes": [{"id": "a", "name": "a.txt", "ids": {"box": "1"}, "content": {"text": "A"}}]
//!     }))
//!     .seed(1)
//!     .bind("127.0.0.1:0")
//!     .spawn()
//!     .await?;
//! server.add_fault(FaultRule::on("POST", "/2.0/zip_downloads").times(1).status(503))?;
//!
//! let create = || {
//!     reqwest::Client::new()
//!         .post(format!("{}/2.0/zip_downloads", server.url()))
//!         .bearer_auth("ann-token")
//!         .json(&json!({"items": [{"type": "file", "id": "1"}]}))
//!         .send()
//! };
//! assert_eq!(create().await?.status(), 503); // the injected fault, in Box's envelope
//! assert_eq!(create().await?.status(), 202); // the rule fired once
//!
//! let statuses: Vec<_> = server.requests(&Filter::default()).iter().map(|r| r.status).collect();
//! assert_eq!(statuses, [Some(503), Some(202)]);
//! # Ok(())
//! # }
//! ```

pub(crate) mod archive_plan;
pub(crate) mod builder;
pub mod clock;
pub mod config;
mod core;
pub mod dialects;
pub(crate) mod draws;
pub(crate) mod events;
pub mod faults;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod jobs;
pub mod journal;
pub mod log_writer;
pub mod metrics;
pub(crate) mod packing;
#[doc(hidden)]
pub mod planner;
pub(crate) mod recheck;
pub mod server;
pub(crate) mod state;
pub mod store;
pub(crate) mod stream;
pub mod strict_json;
pub(crate) mod zip;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use clock::{Clock, SystemClock};
use faults::{FaultRule, FaultView};
use server::{AppState, Config};
use store::{ContentPaths, ContentRoot, FixtureError, FixtureSource};

pub use zipgate_api as api;

// The in-process API's vocabulary from modules that are otherwise internal:
// what `Config` and fault rules are made of.
pub use jobs::{
    check_namespace, JobFault, JobLimits, StuckState, DEFAULT_MAX_JOBS,
    DEFAULT_MAX_JOBS_PER_PRINCIPAL,
};
pub use packing::CompressionPolicy;
pub use zip::{DeflateEngine, Deflater};

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("fixtures: {0}")]
    Fixture(#[from] FixtureError),
    #[error("faults: {0}")]
    Faults(String),
    #[error("settings: {0}")]
    Settings(String),
    #[error("store: {0}")]
    Store(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<StartError> for std::io::Error {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

/// A fixture document to serve: JSON text, a parsed JSON value, or a file
/// (whose `content.path` values are relative to it and, unless
/// `fixture_paths_anywhere` is set, confined to its folder). JSON may name
/// files only beneath the `content_root`, or anywhere with
/// `fixture_paths_anywhere`.
#[derive(Clone, Debug)]
pub enum Fixtures {
    Json(String),
    Value(serde_json::Value),
    File(PathBuf),
    /// A store already read (`ServerBuilder::store`).
    Source(FixtureSource),
}

impl Fixtures {
    pub fn json(text: impl Into<String>) -> Self {
        Fixtures::Json(text.into())
    }

    pub fn file(path: impl Into<PathBuf>) -> Self {
        Fixtures::File(path.into())
    }

    /// The document, checked; `in_process` is where JSON's paths may lead.
    fn source(
        self,
        in_process: ContentPaths,
        anywhere: bool,
    ) -> Result<FixtureSource, FixtureError> {
        let source = match self {
            Fixtures::Json(text) => FixtureSource::from_text(&text, in_process)?,
            Fixtures::Value(json) => FixtureSource::new(json, in_process),
            Fixtures::Source(source) => source,
            Fixtures::File(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| FixtureError {
                    path: "$".into(),
                    message: format!("{}: {e}", path.display()),
                })?;
                FixtureSource::from_text(&text, file_paths(&path, anywhere)?)?
            }
        };
        source.parse()?;
        Ok(source)
    }
}

/// Where the `content.path` values of the fixture file at `path` may lead:
/// beneath its folder, or (`anywhere`) relative to it or absolute.
pub fn file_paths(path: &Path, anywhere: bool) -> Result<ContentPaths, FixtureError> {
    let folder = path.parent().unwrap_or(Path::new(""));
    if anywhere {
        return Ok(ContentPaths::Anywhere(Some(folder.to_path_buf())));
    }
    ContentRoot::new(folder)
        .map(|root| ContentPaths::Beneath(Arc::new(root)))
        .map_err(|e| FixtureError {
            path: "$".into(),
            message: format!("{}: its folder: {e}", path.display()),
        })
}

impl From<serde_json::Value> for Fixtures {
    fn from(json: serde_json::Value) -> Self {
        Fixtures::Value(json)
    }
}

impl From<&Path> for Fixtures {
    fn from(path: &Path) -> Self {
        Fixtures::File(path.to_path_buf())
    }
}

impl From<PathBuf> for Fixtures {
    fn from(path: PathBuf) -> Self {
        Fixtures::File(path)
    }
}

/// Builds and starts a server in the current tokio runtime.
pub struct Server;

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

#[derive(Default)]
pub struct ServerBuilder {
    fixtures: Option<Fixtures>,
    clock: Option<Arc<dyn Clock>>,
    config: Config,
    bind: Option<String>,
}

impl ServerBuilder {
    /// Serve these fixtures instead of the embedded default; checked by `spawn`.
    pub fn fixtures(mut self, fixtures: impl Into<Fixtures>) -> Self {
        self.fixtures = Some(fixtures.into());
        self
    }

    /// Serve this fixture document (JSON text), checked now (with the
    /// `content_root` and `fixture_paths_anywhere` given so far).
    pub fn fixtures_json(self, json: &str) -> Result<Self, FixtureError> {
        let fixtures = Fixtures::json(json);
        self.check(fixtures.clone())?;
        Ok(self.fixtures(fixtures))
    }

    /// Serve a fixture file, checked now; its `content.path` values are
    /// relative to it, and confined to its folder unless
    /// `fixture_paths_anywhere` was given before.
    pub fn fixtures_file(self, path: &Path) -> Result<Self, FixtureError> {
        let fixtures = Fixtures::file(path);
        self.check(fixtures.clone())?;
        Ok(self.fixtures(fixtures))
    }

    fn check(&self, fixtures: Fixtures) -> Result<(), FixtureError> {
        let root = self.config.open_content_root().map_err(|e| FixtureError {
            path: "$".into(),
            message: e.to_string(),
        })?;
        let in_process = self.config.in_process_paths(root.as_ref());
        fixtures
            .source(in_process, self.config.fixture_paths_anywhere)
            .map(drop)
    }

    /// Fixtures sent to the control plane (and JSON given in-process) may
    /// name files beneath this directory, and nowhere else; without it
    /// they may name none. As `--content-root DIR`.
    /// Serves `store` (a directory, object storage) as the tree, read once
    /// now, with `policy`'s users and rules; CRC-32s are remembered in memory.
    pub fn store(
        mut self,
        store: Arc<dyn store::backend::Store>,
        policy: store::served::Policy,
    ) -> Result<Self, StartError> {
        let crcs = Arc::new(store::crc_cache::CrcCache::in_memory());
        let served = store::served::Served::new(store, crcs, policy);
        let scanned = served.scan().map_err(StartError::Store)?;
        self.fixtures = Some(Fixtures::Source(store::served::Served::source(&scanned)));
        Ok(self)
    }

    pub fn content_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.content_root = Some(dir.into());
        self
    }

    /// Fixture files may name files outside their folder (symlinks
    /// followed), and JSON given in-process any file; fixtures sent to the
    /// control plane still may not. As `--fixture-paths-anywhere`.
    pub fn fixture_paths_anywhere(mut self, on: bool) -> Self {
        self.config.fixture_paths_anywhere = on;
        self
    }

    /// zipgate's own routes also answer requests for this host (a name or
    /// address, without port), besides loopback and the `public_url` host;
    /// `"*"` for any. As `--allow-host`.
    pub fn allow_host(mut self, host: &str) -> Self {
        self.config.allowed_hosts.push(host.to_owned());
        self
    }

    /// Base URL for absolute URLs in responses; its host may use the
    /// control plane. As `--public-url`.
    pub fn public_url(mut self, url: &str) -> Self {
        self.config.public_url = Some(url.to_owned());
        self
    }

    /// The most fault rules in force at once (default 1,000). As `--max-faults`.
    pub fn max_faults(mut self, max: usize) -> Self {
        self.config.max_faults = max;
        self
    }

    /// Makes a run reproducible: seeds the generator behind request ids and
    /// random names (default 0) and the one behind secrets such as download
    /// URLs (default: random from the OS). A seeded server's download URLs
    /// are predictable, so this is for tests only.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self.config.secret_seed = Some(seed);
        self
    }

    /// Bytes the request journal may hold (default 4 MiB); the oldest
    /// entries go first.
    pub fn journal_bytes(mut self, bytes: usize) -> Self {
        self.config.journal_bytes = bytes;
        self
    }

    /// Compute file CRCs in a background thread at start and after each
    /// fixture change (default true), so the first stored download of a big
    /// file starts at once. As `--no-warm-crc` (false).
    pub fn warm_crcs(mut self, on: bool) -> Self {
        self.config.warm_crcs = on;
        self
    }

    /// Jobs the server keeps in all (default 10,000); past it the oldest
    /// settled jobs are dropped first, then the oldest.
    pub fn max_jobs(mut self, jobs: usize) -> Self {
        self.config.job_limits.max_jobs = jobs;
        self
    }

    /// Jobs one user may hold over every dialect (default 1,000); past it
    /// the user's own settled jobs are dropped, else the create is refused
    /// with the vendor's rate-limit answer.
    pub fn max_jobs_per_user(mut self, jobs: usize) -> Self {
        self.config.job_limits.max_jobs_per_principal = jobs;
        self
    }

    /// Keep jobs in Redis (as `--jobs` and `--jobs-namespace`): servers
    /// given the same URL and namespace share their jobs, as replicas do.
    /// `spawn` fails when Redis cannot be reached.
    pub fn jobs_in_redis(mut self, url: &str, namespace: &str) -> Self {
        self.config.jobs = config::JobStore::Redis {
            url: url.to_owned(),
            namespace: namespace.to_owned(),
        };
        self
    }

    /// Connections served at once (as `--max-connections`); past it a
    /// connection is answered 503 with `Retry-After: 1` and closed. The
    /// default leaves a quarter of the process's descriptor limit free; 0
    /// makes `spawn` fail.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = max;
        self
    }

    /// A fault rule in force from the start (and again after a reset).
    pub fn fault(mut self, rule: FaultRule) -> Self {
        self.config.faults.push(rule);
        self
    }

    /// Serve the control plane under `/_zipgate/` (default true).
    pub fn control(mut self, on: bool) -> Self {
        self.config.control = on;
        self
    }

    /// Require this bearer token on control-plane requests (an empty one
    /// makes `spawn` fail).
    pub fn control_token(mut self, token: &str) -> Self {
        self.config.control_token = Some(token.to_owned());
        self
    }

    /// A dialect setting, as `--set DIALECT.KEY=VALUE` gives it.
    pub fn setting(mut self, dialect: &str, key: &str, value: &str) -> Self {
        self.config
            .dialect_settings
            .entry(dialect.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Portable entry names in every archive, as `--portable-names` sets it
    /// (default off): case and Unicode-normalisation look-alikes are
    /// conflicts, reserved Windows names, trailing dots and spaces and
    /// components over 255 bytes are renamed.
    pub fn portable_names(mut self, on: bool) -> Self {
        self.config.portable_names = on;
        self
    }

    /// How archives are compressed, as `--compression`, `--deflate-level`,
    /// `--deflate-engine` and `--store-ext` set it.
    pub fn compression(mut self, policy: packing::CompressionPolicy) -> Self {
        self.config.compression = policy;
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Every server option at once; settings, seed and faults given before are replaced.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Address to listen on; port 0 picks a free port. Default `127.0.0.1:0`.
    pub fn bind(mut self, addr: &str) -> Self {
        self.bind = Some(addr.to_owned());
        self
    }

    pub async fn spawn(self) -> Result<ServerHandle, StartError> {
        let fixture = match self.fixtures {
            Some(fixtures) => {
                let root = self.config.open_content_root()?;
                let in_process = self.config.in_process_paths(root.as_ref());
                fixtures.source(in_process, self.config.fixture_paths_anywhere)?
            }
            None => FixtureSource::embedded_default(),
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let config = self.config;
        let dialects = dialects::build(&config.dialect_settings).map_err(StartError::Settings)?;
        let state = AppState::new(fixture, clock, config, dialects)?.into_shared();
        let listener = TcpListener::bind(self.bind.as_deref().unwrap_or("127.0.0.1:0")).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        Ok(ServerHandle {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running server. Dropping it stops the server. Its methods do in-process
/// what the control plane under `/_zipgate/` does over HTTP.
pub struct ServerHandle {
    addr: SocketAddr,
    state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Replaces the whole tree; on error the old one stays in force. This
    /// server's alone, even with a shared job store (its paths may lead
    /// anywhere this process may read): `PUT /_zipgate/fixtures` reaches
    /// every replica.
    pub fn load_fixtures(&self, fixtures: impl Into<Fixtures>) -> Result<(), FixtureError> {
        let anywhere = self.state.config.fixture_paths_anywhere;
        let source = fixtures
            .into()
            .source(self.state.in_process_paths(), anywhere)?;
        self.state.load_fixture(source)
    }

    /// Adds fixture nodes under the folder `parent`, or at the top (this
    /// server's alone, as [`ServerHandle::load_fixtures`]).
    pub fn add_nodes(
        &self,
        parent: Option<&str>,
        nodes: Vec<serde_json::Value>,
    ) -> Result<(), FixtureError> {
        self.state
            .add_nodes(parent, nodes, self.state.in_process_paths())
    }

    /// Back to the starting fixtures and fault rules; forgets jobs and the journal.
    pub fn reset(&self) -> Result<(), state::ControlError> {
        self.state.reset()
    }

    /// Adds a fault rule; returns its id (an error for an invalid rule, or past `max_faults`).
    /// With a shared job store the rule reaches every replica, as the
    /// control plane's do (so do removals, clears, clock advances and resets).
    pub fn add_fault(&self, rule: FaultRule) -> Result<String, faults::AddError> {
        let mut added = self.state.add_faults(vec![rule])?;
        added
            .pop()
            .map(|view| view.id)
            .ok_or_else(|| faults::AddError::Unavailable("the rule was not added".into()))
    }

    /// The rules in force, with how often each matched and fired.
    pub fn faults(&self) -> Vec<FaultView> {
        self.state.faults.list()
    }

    /// False when there is no rule by this id (or a shared job store did
    /// not answer: logged).
    pub fn remove_fault(&self, id: &str) -> bool {
        self.state.remove_fault(id).unwrap_or_else(|e| {
            tracing::warn!(target: "zipgate::control", error = %e, "fault rule not removed");
            false
        })
    }

    pub fn clear_faults(&self) {
        if let Err(e) = self.state.clear_faults() {
            tracing::warn!(target: "zipgate::control", error = %e, "fault rules not cleared");
        }
    }

    /// Journaled vendor requests, oldest first.
    pub fn requests(&self, filter: &journal::Filter) -> Vec<journal::Entry> {
        self.state.journal.list(filter)
    }

    pub fn clear_requests(&self) {
        self.state.journal.clear();
    }

    /// Every dialect's jobs, oldest first (`Unavailable` while a shared
    /// job store cannot be reached).
    pub fn jobs(&self) -> Result<Vec<api::JobSnapshot>, api::Error> {
        self.state.jobs.list()
    }

    /// Moves the server clock forward: expiry and time-paced jobs follow.
    pub fn advance_clock(&self, by: std::time::Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        if let Err(e) = self.state.advance_clock(by) {
            tracing::warn!(target: "zipgate::control", error = %e, "the clock was not moved");
        }
    }

    /// Stops accepting, lets in-flight responses finish within the grace period.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
