//! The server's settings (`Config`): what the command line and the
//! in-process builder set, checked before anything starts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use zipgate_api::Settings;

use crate::faults::FaultRule;
use crate::packing::CompressionPolicy;
use crate::server::limit;
use crate::store::{ContentPaths, ContentRoot};

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
    /// Where jobs live (`--jobs`): in this process, or in Redis shared
    /// with other replicas.
    pub jobs: JobStore,
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
    /// This server's name among replicas (`--replica`): in `/_zipgate/health`
    /// and on every journal entry. Default: `<host name>-<process id>`.
    pub replica: String,
    /// Origins whose browsers vendor routes answer with CORS headers
    /// (`--cors`; `*` for any); empty: none.
    pub cors: Vec<String>,
    /// Serve HTTPS (`--tls`, `--tls-cert`): every connection is a TLS one.
    pub tls: Option<std::sync::Arc<crate::server::tls::Tls>>,
}

impl Config {
    /// The scheme requests arrive on, for absolute URLs.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
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

/// A setting out of its range: which, what it takes, what it got.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name}: expected {expected}, got {got}")]
pub struct SettingError {
    pub name: String,
    pub expected: String,
    pub got: String,
}

/// Seconds given on the command line (`--header-timeout 30`) as a
/// `Duration`, refused unless finite and from 0 (when `zero_allowed`, else
/// more than 0) to [`MAX_TIMEOUT`]: NaN, negative or infinite waits are
/// typos, and clamping them would silently mean "at once" or "forever".
pub fn timeout_secs(name: &str, secs: f64, zero_allowed: bool) -> Result<Duration, SettingError> {
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
        _ => Err(SettingError {
            name: name.to_owned(),
            expected: format!(
                "seconds {} to {max} (1 day)",
                if zero_allowed { "from 0" } else { "over 0 up" }
            ),
            got: secs.to_string(),
        }),
    }
}

impl Config {
    /// Refuses waits and sizes out of range, so an in-process server is
    /// held to what the command line allows (see [`MAX_TIMEOUT`] and
    /// [`MAX_BODY_BYTES`]). A zero timeout would drop every connection;
    /// a zero grace period means "cut at once" and is allowed.
    pub fn check(&self) -> Result<(), SettingError> {
        for (name, value, zero_allowed) in [
            ("shutdown_grace", self.shutdown_grace, true),
            ("header_timeout", self.header_timeout, false),
            ("body_timeout", self.body_timeout, false),
            ("send_timeout", self.send_timeout, false),
        ] {
            if value > MAX_TIMEOUT || (value.is_zero() && !zero_allowed) {
                return Err(SettingError {
                    name: name.to_owned(),
                    expected: format!(
                        "{} to {} s (1 day)",
                        if zero_allowed { "from 0" } else { "over 0 up" },
                        MAX_TIMEOUT.as_secs()
                    ),
                    got: format!("{value:?}"),
                });
            }
        }
        if self.max_body_bytes > MAX_BODY_BYTES {
            return Err(SettingError {
                name: "max_body_bytes".into(),
                expected: format!("0 to {MAX_BODY_BYTES} (1 GiB)"),
                got: self.max_body_bytes.to_string(),
            });
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
            jobs: JobStore::Memory,
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
            tls: None,
            cors: Vec::new(),
            replica: default_replica(),
        }
    }
}

/// Where jobs live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum JobStore {
    /// In this process (the default): nothing is shared.
    #[default]
    Memory,
    /// In Redis at `url` (`redis://[:password@]host:port/db`), every key
    /// under `namespace`, shared by every replica given the same two.
    Redis { url: String, namespace: String },
}

impl JobStore {
    /// Whether calls to it block on the network (the server then runs
    /// multi-thread workers, so a call can step aside: `block_in_place`).
    pub fn is_remote(&self) -> bool {
        matches!(self, JobStore::Redis { .. })
    }
}

/// `<host name>-<process id>`: distinct for two replicas on one machine,
/// and says where each runs.
pub fn default_replica() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "zipgate".to_owned());
    format!("{host}-{}", std::process::id())
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
