//! `AppState`: everything the server shares between requests (the tree in
//! force, jobs, journal, faults, clock, generators, mounted dialects). The
//! HTTP layer and the core both use it; neither owns it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use zipgate_api::Mounted;

use crate::builder::Builder;
use crate::clock::{AdjustableClock, Clock};
use crate::config::Config;
use crate::draws::{Cosmetic, Secret};
use crate::faults::{AddError, FaultBook, FaultRule, FaultView};
use crate::jobs::{JobBackend, JobRegistry};
use crate::journal::Journal;
use crate::server::guard;
use crate::server::limit::ConnectionLimit;
use crate::store::{ContentPaths, ContentRoot, FixtureError, FixtureSource, IdSpaces, Tree};
use crate::stream::StreamCounter;

/// Why a change of the control plane (a reset, new fixtures) did not happen.
#[derive(Debug)]
pub enum ControlError {
    /// The fixtures do not load (for a reset: the starting ones no longer
    /// do, as a file under the content root changed).
    Fixture(FixtureError),
    /// The job store could not be cleared, or could not tell the other
    /// replicas; nothing was changed here.
    Jobs(zipgate_api::Error),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::Fixture(e) => write!(f, "{e}"),
            ControlError::Jobs(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ControlError {}

/// A change of the control plane as replicas sharing a job store pass it
/// on (`JobBackend::broadcast`): each applies it to its own state, in the
/// order the store published them, so all end up alike. The replica that
/// makes a change checks it first; what every replica then does is
/// [`AppState::apply`].
#[derive(Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
enum Shared {
    Clock {
        by_nanos: i64,
    },
    Fixture {
        json: serde_json::Value,
    },
    Nodes {
        parent: Option<String>,
        nodes: Vec<serde_json::Value>,
    },
    FaultsAdded {
        rules: Vec<(String, FaultRule)>,
    },
    FaultRemoved {
        id: String,
    },
    FaultsCleared,
    Reset,
}

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
    /// With a shared job store: the rules given at start, with the ids the
    /// store gave them, which a reset puts back.
    startup_faults: Vec<(String, FaultRule)>,
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
            crate::config::JobStore::Redis { url, namespace } => {
                let shared = crate::jobs::RedisJobs::connect(
                    url,
                    namespace,
                    config.job_limits,
                    clock.clone(),
                    events.clone(),
                    dialects.iter().map(|d| d.name()).collect(),
                    store.clone(),
                )
                .map_err(crate::StartError::Settings)?;
                // Fault rules count where every replica counts.
                faults.count_in(Arc::new(shared.clone()));
                Arc::new(shared)
            }
        };
        let startup_faults = start_faults(&faults, &config.faults, jobs.as_ref())?;
        Ok(AppState {
            store,
            fixture: Mutex::new(source.clone()),
            initial_fixture: source,
            control_clock,
            journal: Journal::with_limits(config.journal_capacity, config.journal_bytes)
                .with_replica(&config.replica),
            faults,
            startup_faults,
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
    /// reset before anything else has changed. With a shared job store
    /// every replica resets (each to the fixtures and rules it started with);
    /// should the store fail between clearing the jobs and telling the
    /// replicas, the jobs are gone and the rest stays: reset again.
    pub fn reset(&self) -> Result<(), ControlError> {
        self.jobs.clear().map_err(ControlError::Jobs)?;
        if self.share(&Shared::Reset)? {
            return Ok(());
        }
        self.load_fixture(self.initial_fixture.clone())
            .map_err(ControlError::Fixture)?;
        self.reset_the_rest();
        Ok(())
    }

    /// A reset but for the jobs and fixtures.
    fn reset_the_rest(&self) {
        self.control_clock.rewind();
        self.journal.clear();
        self.faults.clear();
        if self.faults.is_shared() {
            self.faults.insert(self.startup_faults.clone());
        } else {
            for rule in &self.config.faults {
                // Checked when the server started.
                let _ = self.faults.add(rule.clone());
            }
        }
        release_freed_memory();
        for dialect in &self.dialects {
            dialect.reset();
        }
        self.events.publish("reset", || "{}".into());
    }

    /// Wraps the state for the server, and with a shared job store has it
    /// apply the control plane's changes any replica makes.
    pub fn into_shared(self) -> Arc<Self> {
        let state = Arc::new(self);
        let weak = Arc::downgrade(&state);
        state.jobs.on_control(Box::new(move |change| {
            let Some(state) = weak.upgrade() else {
                return;
            };
            match serde_json::from_str::<Shared>(change) {
                Ok(change) => state.apply(change),
                Err(error) => {
                    tracing::warn!(target: "zipgate::control", %error, "a shared change unread")
                }
            }
        }));
        state
    }

    /// Passes `change` to every replica when the job store is shared (true:
    /// each has applied it, this one too); false when this process is alone.
    fn share(&self, change: &Shared) -> Result<bool, ControlError> {
        let text = serde_json::to_string(change).map_err(|e| {
            ControlError::Jobs(zipgate_api::Error::Internal(format!(
                "cannot write a change down: {e}"
            )))
        })?;
        self.jobs.broadcast(&text).map_err(ControlError::Jobs)
    }

    /// What every replica does with a change one of them shared.
    fn apply(&self, change: Shared) {
        let failed = |what: &str, error: &dyn std::fmt::Display| tracing::warn!(target: "zipgate::control", %error, "a shared {what} does not load here");
        match change {
            Shared::Clock { by_nanos } => self
                .control_clock
                .advance(chrono::Duration::nanoseconds(by_nanos)),
            Shared::Fixture { json } => {
                if let Err(e) = self.load_fixture(FixtureSource::new(json, self.http_paths())) {
                    failed("fixture", &e);
                }
            }
            Shared::Nodes { parent, nodes } => {
                if let Err(e) = self.add_nodes(parent.as_deref(), nodes, self.http_paths()) {
                    failed("node list", &e);
                }
            }
            Shared::FaultsAdded { rules } => self.faults.insert(rules),
            Shared::FaultRemoved { id } => {
                self.faults.remove(&id);
            }
            Shared::FaultsCleared => self.faults.clear(),
            Shared::Reset => {
                // The replica that reset cleared the store; this one's own
                // hold on those jobs goes too.
                self.jobs.forget_local();
                if let Err(e) = self.load_fixture(self.initial_fixture.clone()) {
                    failed("reset's fixture", &e);
                }
                self.reset_the_rest();
            }
        }
    }

    /// Moves the server clock on (`POST /_zipgate/clock/advance`): every
    /// replica's, with a shared job store.
    pub fn advance_clock(&self, by: chrono::Duration) -> Result<(), ControlError> {
        let by_nanos = by
            .num_nanoseconds()
            .unwrap_or(if by < chrono::Duration::zero() {
                i64::MIN
            } else {
                i64::MAX
            });
        if !self.share(&Shared::Clock { by_nanos })? {
            self.control_clock.advance(by);
        }
        Ok(())
    }

    /// Replaces the tree with a fixture sent to the control plane (paths
    /// beneath `--content-root` only): on every replica, with a shared job
    /// store, once it loads here.
    pub fn put_fixture(&self, json: serde_json::Value) -> Result<(), ControlError> {
        let source = FixtureSource::new(json, self.http_paths());
        if !self.config.jobs.is_remote() {
            return self.load_fixture(source).map_err(ControlError::Fixture);
        }
        source
            .clone()
            .with_id_spaces(IdSpaces::of(&self.dialects))
            .parse()
            .map_err(ControlError::Fixture)?;
        self.share(&Shared::Fixture {
            json: source.json.as_ref().clone(),
        })
        .map(|_| ())
    }

    /// Adds nodes sent to the control plane: on every replica, with a shared
    /// job store, once they load here.
    pub fn put_nodes(
        &self,
        parent: Option<&str>,
        nodes: Vec<serde_json::Value>,
    ) -> Result<(), ControlError> {
        if !self.config.jobs.is_remote() {
            return self
                .add_nodes(parent, nodes, self.http_paths())
                .map_err(ControlError::Fixture);
        }
        let current = self
            .fixture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        current
            .with_nodes(parent, nodes.clone(), self.http_paths())
            .and_then(|next| next.parse().map(|_| ()))
            .map_err(ControlError::Fixture)?;
        self.share(&Shared::Nodes {
            parent: parent.map(str::to_owned),
            nodes,
        })
        .map(|_| ())
    }

    /// Adds fault rules (all or none): on every replica, with ids from the
    /// shared job store, when there is one.
    pub fn add_faults(&self, rules: Vec<FaultRule>) -> Result<Vec<FaultView>, AddError> {
        if !self.faults.is_shared() {
            return self.faults.add_all(rules);
        }
        self.faults.check_all(&rules)?;
        let named = shared_ids(self.jobs.as_ref(), rules);
        let ids: Vec<String> = named.iter().map(|(id, _)| id.clone()).collect();
        self.share(&Shared::FaultsAdded { rules: named })
            .map_err(|e| AddError::Unavailable(e.to_string()))?;
        Ok(ids.iter().filter_map(|id| self.faults.get(id)).collect())
    }

    /// Removes one fault rule (everywhere, with a shared job store); false
    /// when there is none by this id.
    pub fn remove_fault(&self, id: &str) -> Result<bool, ControlError> {
        if !self.faults.is_shared() {
            return Ok(self.faults.remove(id));
        }
        if self.faults.get(id).is_none() {
            return Ok(false);
        }
        self.share(&Shared::FaultRemoved { id: id.to_owned() })?;
        Ok(true)
    }

    /// Removes every fault rule (everywhere, with a shared job store).
    pub fn clear_faults(&self) -> Result<(), ControlError> {
        if !self.share(&Shared::FaultsCleared)? {
            self.faults.clear();
        }
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

/// Ids for fault rules that every replica will hold: numbers no other
/// replica took, from the job store.
fn shared_ids(jobs: &dyn JobBackend, rules: Vec<FaultRule>) -> Vec<(String, FaultRule)> {
    let first = jobs.lease("fault-ids", rules.len() as u64);
    rules
        .into_iter()
        .enumerate()
        .map(|(n, rule)| (format!("fault-{}", first + n as u64 + 1), rule))
        .collect()
}

/// The rules given at start (`--fault`), checked and added. With a shared
/// job store they are this replica's own, under ids from the store (so no
/// other replica's rule has them), and are returned for a reset to put back.
fn start_faults(
    faults: &FaultBook,
    rules: &[FaultRule],
    jobs: &dyn JobBackend,
) -> Result<Vec<(String, FaultRule)>, crate::StartError> {
    if !faults.is_shared() {
        for (index, rule) in rules.iter().enumerate() {
            faults
                .add(rule.clone())
                .map_err(|e| crate::StartError::Faults(format!("rule {}: {e}", index + 1)))?;
        }
        return Ok(Vec::new());
    }
    for (index, rule) in rules.iter().enumerate() {
        rule.check()
            .map_err(|e| crate::StartError::Faults(format!("rule {}: {e}", index + 1)))?;
    }
    let named = shared_ids(jobs, rules.to_vec());
    faults.insert(named.clone());
    Ok(named)
}
