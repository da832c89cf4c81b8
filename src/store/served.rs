//! A [`Store`] served as the tree (`serve --root DIR`, `serve --store URL`):
//! the policy's users and rules over the store's scans, and the rescans
//! that put a changed tree in force.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::backend::{scan, IdMap, LeftOut, Rule, Scanned, Store};
use super::crc_cache::CrcCache;
use super::{ContentPaths, FixtureSource};
use crate::state::AppState;

/// Who may call and who reads what: a policy file is a fixture document
/// with `users` and `rules` and no `nodes`.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub users: Vec<Value>,
    pub rules: Vec<Rule>,
}

impl Policy {
    pub fn from_file(path: &Path) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Policy::from_text(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_text(text: &str) -> Result<Policy, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if doc.get("nodes").is_some() {
            return Err("a policy has users and rules; the nodes come from the store".into());
        }
        let rules = match doc.get("rules") {
            Some(rules) => {
                serde_json::from_value(rules.clone()).map_err(|e| format!("rules: {e}"))?
            }
            None => Vec::new(),
        };
        let users = match doc.get("users") {
            Some(Value::Array(users)) => users.clone(),
            None => Vec::new(),
            Some(_) => return Err("a policy's \"users\" is a list".into()),
        };
        Ok(Policy { users, rules })
    }

    /// The embedded fixture's users (alice-token, bob-token), without their
    /// homes, which name fixture folders; no rules, so they read everything.
    pub fn embedded_users() -> Policy {
        let mut doc: Value =
            serde_json::from_str(super::DEFAULT_FIXTURE).expect("the embedded fixture is JSON");
        let mut users = match doc["users"].take() {
            Value::Array(users) => users,
            _ => Vec::new(),
        };
        for user in &mut users {
            if let Some(user) = user.as_object_mut() {
                user.remove("home");
            }
        }
        Policy {
            users,
            rules: Vec::new(),
        }
    }
}

pub struct Served {
    store: Arc<dyn Store>,
    crcs: Arc<CrcCache>,
    policy: Policy,
    /// `--id-map FILE`: read again before a scan whenever it changed.
    id_map: Option<IdMapFile>,
    /// What the last scan left out: logged when it changes, not at every rescan.
    left_out: Mutex<Option<LeftOut>>,
}

impl Served {
    pub fn new(store: Arc<dyn Store>, crcs: Arc<CrcCache>, policy: Policy) -> Served {
        Served {
            store,
            crcs,
            policy,
            id_map: None,
            left_out: Mutex::new(None),
        }
    }

    /// Pins dialect ids to paths from `path`, read now and again whenever
    /// it changes; an error now stops the start.
    pub fn with_id_map(mut self, path: &Path) -> Result<Served, String> {
        let file = IdMapFile {
            path: path.to_owned(),
            read: Mutex::new(None),
        };
        file.current()?;
        self.id_map = Some(file);
        Ok(self)
    }

    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// Reads the store once.
    pub fn scan(&self) -> Result<Scanned, String> {
        let id_map = match &self.id_map {
            Some(file) => file.current()?,
            None => Arc::new(IdMap::default()),
        };
        let scanned = scan(
            &self.store,
            &self.crcs,
            self.policy.users.clone(),
            &self.policy.rules,
            &id_map,
        )
        .map_err(|e| format!("{}: {e}", self.store.describe()))?;
        let mut last = self.left_out.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_ref() != Some(&scanned.left_out) {
            let left = &scanned.left_out;
            if *left != LeftOut::default() {
                tracing::warn!(
                    store = %self.store.describe(),
                    symlinks = left.symlinks,
                    special = left.special,
                    not_utf8 = left.not_utf8,
                    unreadable = left.unreadable,
                    unsafe_names = left.unsafe_names,
                    rules_unmatched = left.rules_unmatched,
                    ids_unmatched = left.ids_unmatched,
                    "entries left out of the served tree"
                );
            }
            *last = Some(scanned.left_out.clone());
        }
        Ok(scanned)
    }

    /// The fixture source a scan serves: its files open through the store.
    pub fn source(scanned: &Scanned) -> FixtureSource {
        FixtureSource::shared(
            scanned.doc.clone(),
            ContentPaths::Stored(scanned.files.clone()),
        )
    }

    /// Scans again every `every`, and soon after the store reports a
    /// change (`Store::watch`), and puts a tree that changed in force
    /// (jobs already planned keep theirs; a file changed since its job was
    /// planned is refused when read, as its version differs). A tree the
    /// control plane put in force instead is left alone; after a reset to
    /// the start's tree, a change since the start is put in force again.
    pub fn rescan_every(self, state: Arc<AppState>, every: Duration, start: Scanned) {
        let start_json = state.fixture_json();
        let (tx, changes) = std::sync::mpsc::sync_channel::<()>(1);
        // A full channel already holds a wake-up: dropping another loses nothing.
        let watching = self.store.watch(Box::new(move || {
            let _ = tx.try_send(());
        }));
        let spawned = std::thread::Builder::new()
            .name("zipgate-rescan".into())
            .spawn(move || {
                let _watching = watching;
                let mut last: Option<(Arc<Value>, Scanned)> = None;
                loop {
                    match changes.recv_timeout(every) {
                        Ok(()) => {
                            // A burst of events (a copy of many files) is one scan.
                            std::thread::sleep(SETTLE);
                            while changes.try_recv().is_ok() {}
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        // No watcher: periodic scans only.
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                            std::thread::sleep(every)
                        }
                    }
                    // The server is gone when this thread holds its last reference.
                    if Arc::strong_count(&state) == 1 {
                        return;
                    }
                    let scanned = match self.scan() {
                        Ok(scanned) => scanned,
                        Err(error) => {
                            tracing::warn!(%error, "the scan failed; the tree in force stays");
                            continue;
                        }
                    };
                    let in_force = state.fixture_json();
                    let basis = match &last {
                        Some((json, scan)) if Arc::ptr_eq(json, &in_force) => scan,
                        _ if Arc::ptr_eq(&start_json, &in_force) => &start,
                        _ => continue,
                    };
                    if scanned == *basis {
                        continue;
                    }
                    let source = Served::source(&scanned);
                    let json = source.json.clone();
                    match state.load_fixture(source) {
                        Ok(()) => {
                            let nodes = state.store().node_count();
                            tracing::info!(nodes, "changes in the store are in force");
                            last = Some((json, scanned));
                        }
                        Err(error) => tracing::warn!(%error, "the new tree was refused"),
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the rescan thread; the start's tree stays");
        }
    }
}

/// How long a change notification waits for the rest of its burst.
const SETTLE: Duration = Duration::from_millis(50);

/// The id map file and what it said when last read, with the size and
/// mtime it had then: read again only once they change.
struct IdMapFile {
    path: std::path::PathBuf,
    read: Mutex<Option<(Stamp, Arc<IdMap>)>>,
}

/// A file's size and mtime.
type Stamp = (u64, Option<std::time::SystemTime>);

/// An id map larger than this is refused rather than read into memory.
const MAX_ID_MAP_BYTES: u64 = 1 << 30;

impl IdMapFile {
    fn current(&self) -> Result<Arc<IdMap>, String> {
        let at = |e: &dyn std::fmt::Display| format!("--id-map {}: {e}", self.path.display());
        let meta = std::fs::metadata(&self.path).map_err(|e| at(&e))?;
        let stamp = (meta.len(), meta.modified().ok());
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, map)) = &*read {
            if *seen == stamp {
                return Ok(map.clone());
            }
        }
        if meta.len() > MAX_ID_MAP_BYTES {
            return Err(at(&format!("larger than {MAX_ID_MAP_BYTES} bytes")));
        }
        let text = std::fs::read_to_string(&self.path).map_err(|e| at(&e))?;
        let map = Arc::new(IdMap::from_text(&text).map_err(|e| at(&e))?);
        *read = Some((stamp, map.clone()));
        Ok(map)
    }
}
