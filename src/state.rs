//! `AppState`: everything the server shares between requests (the tree in
//! force, jobs, journal, faults, clock, generators, mounted dialects). The
//! HTTP layer and the core both use it; neither owns it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use zipgate_api::Mounted;

use crate::builder::Builder;
use crate::clock::{AdjustableClock, Clock};
use crate::config::Config;
use crate::draws::{Cosmetic, Secret};
use crate::faults::FaultBook;
use crate::jobs::{JobBackend, JobRegistry};
use crate::journal::Journal;
use crate::server::guard;
use crate::server::limit::ConnectionLimit;
use crate::store::{ContentPaths, ContentRoot, FixtureError, FixtureSource, IdSpaces, Tree};
use crate::stream::StreamCounter;

/// Why a reset did not happen.
#[derive(Debug)]
pub enum ResetError {
    /// The starting fixtures no longer load (a file under the content root changed).
    Fixture(FixtureError),
    /// The job store could not be cleared; nothing was reset.
    Jobs(zipgate_api::Error),
}

impl std::fmt::Display for ResetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResetError::Fixture(e) => write!(f, "{e}"),
            ResetError::Jobs(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ResetError {}

/// Everything a request handler may use.
pub struct AppState {
    /// Shared with a job store that rebuilds archives planned elsewhere.
    store: crate::jobs::TreeSource,
    /// The fixture document in force (JSON) and the one the server started with,
    /// so nodes can be added and `reset` can go back.
    fixture: Mutex<FixtureSource>,
    initial_fixture: FixtureSource,
    pub control_clock: Arc<AdjustableClock>,
    pub journal: Journal,
    pub faults: FaultBook,
    /// CRC warmer threads running (health shows it).
    warmers: Arc<AtomicUsize>,
    /// Draws numbered through the job store (`crate::draws`).
    cosmetic: Cosmetic,
    secrets: Secret,
    pub clock: Arc<dyn Clock>,
    /// The jobs of every dialect (in memory; a shared backend is planned:
    /// docs/design/scaleout.md).
    pub jobs: Arc<dyn JobBackend>,
    /// Builds the archives of jobs that need an exact length ahead.
    pub builder: Builder,
    pub config: Config,
    pub streams: Arc<StreamCounter>,
    /// Live connections and the cap (`/_zipgate/health` → `connections`).
    pub connections: Arc<ConnectionLimit>,
    /// The vendor dialects whose routes are mounted.
    pub dialects: Vec<Arc<dyn Mounted>>,
    /// Who may use the routes under `/_zipgate/`.
    pub guard: guard::ControlGuard,
    /// What `/_zipgate/metrics` reports.
    pub metrics: crate::metrics::Metrics,
    /// The live feed (`/_zipgate/events`, the dashboard).
    pub events: crate::events::Events,

    /// `--content-root`, held open.
    content_root: Option<Arc<ContentRoot>>,
}

impl AppState {
    pub fn new(
        source: FixtureSource,
        clock: Arc<dyn Clock>,
        config: Config,
        dialects: Vec<Arc<dyn Mounted>>,
    ) -> Result<Self, crate::StartError> {
        config
            .check()
            .map_err(|e| crate::StartError::Settings(e.to_string()))?;
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
        let source = source.with_id_spaces(IdSpaces::of(&dialects));
        let store: crate::jobs::TreeSource = Arc::new(RwLock::new(Arc::new(source.parse()?)));
        // Not a secret: tells a dashboard that the server (and its event
        // ids) started again.
        let events = crate::events::Events::new(uuid::Uuid::new_v4().simple().to_string());
        let faults =
            FaultBook::with_max(config.seed, config.max_faults).with_events(events.clone());
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
            warm_in_background(
                store.read().unwrap_or_else(|e| e.into_inner()).clone(),
                warmers.clone(),
            );
        }
        let max_connections = config.max_connections;
        let control_clock = Arc::new(AdjustableClock::new(clock));
        let clock: Arc<dyn Clock> = control_clock.clone();
        let jobs: Arc<dyn JobBackend> = match &config.jobs {
            crate::config::JobStore::Memory => Arc::new(
                JobRegistry::with_limits(clock.clone(), config.job_limits)
                    .with_events(events.clone()),
            ),
            crate::config::JobStore::Redis { url, namespace } => Arc::new(
                crate::jobs::RedisJobs::connect(
                    url,
                    namespace,
                    clock.clone(),
                    events.clone(),
                    dialects.iter().map(|d| d.name()).collect(),
                    store.clone(),
                )
                .map_err(crate::StartError::Settings)?,
            ),
        };
        Ok(AppState {
            store,
            fixture: Mutex::new(source.clone()),
            initial_fixture: source,
            control_clock,
            journal: Journal::with_limits(config.journal_capacity, config.journal_bytes)
                .with_replica(&config.replica),
            faults,
            warmers,
            cosmetic: Cosmetic::new(config.seed),
            secrets: Secret::new(config.secret_seed),
            jobs,
            builder: Builder::default(),
            clock,
            config,
            streams: Arc::new(StreamCounter::default()),
            connections: Arc::new(ConnectionLimit::new(max_connections)),
            dialects,
            guard,
            metrics: crate::metrics::Metrics::default(),
            events,
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
        let source = source.with_id_spaces(IdSpaces::of(&self.dialects));
        let store = source.parse()?;
        *self.fixture.lock().unwrap_or_else(|e| e.into_inner()) = source;
        self.replace_store(store);
        Ok(())
    }

    /// The fixture document in force (the same `Arc` until another is loaded).
    pub fn fixture_json(&self) -> Arc<serde_json::Value> {
        self.fixture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .json
            .clone()
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
    /// counters from zero), with no jobs, an empty journal and the clock's
    /// advances forgotten, so one test's state never leaks into the next.
    /// The jobs go first: a job store that cannot be reached fails the
    /// reset before anything else has changed.
    pub fn reset(&self) -> Result<(), ResetError> {
        self.jobs.clear().map_err(ResetError::Jobs)?;
        self.load_fixture(self.initial_fixture.clone())
            .map_err(ResetError::Fixture)?;
        self.control_clock.rewind();
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
        self.events.publish("reset", || "{}".into());
        Ok(())
    }

    /// Tells the live feed of journal entry `id` as it stands now (its
    /// status known, then again with its bytes sent).
    pub fn announce_request(&self, id: u64) {
        if self.events.recording() {
            if let Some(json) = self.journal.view_json(id) {
                self.events.publish("request", || json);
            }
        }
    }

    pub fn random_u64(&self) -> u64 {
        self.cosmetic.next_u64(self.jobs.as_ref())
    }

    /// Bytes from the cryptographic generator (`crate::draws::Secret`).
    pub fn fill_secret(&self, out: &mut [u8]) {
        self.secrets.fill(out, self.jobs.as_ref());
    }

    /// The tree in force now; a request keeps the one it started with.
    pub fn store(&self) -> Arc<Tree> {
        self.store.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace_store(&self, store: Tree) {
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
    }

    /// Stops background work (the CRC warmer) when the server shuts down.
    pub fn stop_background(&self) {
        self.store().retire();
        // Event streams never end by themselves: end them, or they would
        // hold the shutdown for its whole grace period.
        self.events.close();
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

fn warm_in_background(store: Arc<Tree>, warmers: Arc<AtomicUsize>) {
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
