//! The `zipgate` binary: parses the command line and runs the server.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use zipgate::api::Compression;
use zipgate::clock::{Clock, ManualClock, SystemClock};
use zipgate::dialects;
use zipgate::server::{self, AppState, Config};
use zipgate::store::backend::Scanned;
use zipgate::store::crc_cache::CrcCache;
use zipgate::store::object::{ObjectStore, S3Config};
use zipgate::store::served::{Policy, Served};
use zipgate::store::FixtureSource;
use zipgate::CompressionPolicy;
use zipgate::{DeflateEngine, Deflater};

#[derive(Parser)]
#[command(
    name = "zipgate",
    version,
    about = "Vendor-faithful 'download as zip' APIs over one streaming zip engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API on the embedded default fixtures or a fixture file.
    Serve(Box<ServeArgs>),
    /// Check a fixture file and print what it holds.
    CheckFixtures {
        file: PathBuf,
        /// As `serve --fixture-paths-anywhere`.
        #[arg(long, env = "ZIPGATE_FIXTURE_PATHS_ANYWHERE")]
        fixture_paths_anywhere: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ClockArg {
    /// Wall-clock time, moved forward by `POST /_zipgate/clock/advance`.
    System,
    /// Stands still at the start time; moves only by `POST /_zipgate/clock/advance`.
    Frozen,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeflateEngineArg {
    /// ISA-L at levels 1–3 when this build has it, zlib-rs otherwise.
    Fastest,
    /// zlib-rs at every level: the same bytes from every build.
    ZlibRs,
}

#[derive(Clone, Copy, ValueEnum)]
enum CompressionArg {
    Store,
    Deflate,
}

#[derive(Parser)]
#[command(group(clap::ArgGroup::new("served").args(["root", "store"])))]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the log says which).
    #[arg(long, default_value = "127.0.0.1:8080", env = "ZIPGATE_LISTEN")]
    listen: SocketAddr,
    /// Threads serving connections, each keeping its own (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024), env = "ZIPGATE_WORKERS")]
    workers: Option<u16>,
    /// Fixture file to serve instead of the embedded default; its
    /// `content.path` values lead to files beneath its folder.
    #[arg(long, conflicts_with = "served", env = "ZIPGATE_FIXTURES")]
    fixtures: Option<PathBuf>,
    /// Serve this directory as the tree instead of fixtures: its folders
    /// and regular files (symlinks and special files left out), read
    /// beneath it only, walked once at start.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "store",
        env = "ZIPGATE_ROOT"
    )]
    root: Option<PathBuf>,
    /// Serve S3-compatible object storage as the tree: `s3://bucket` or
    /// `s3://bucket/prefix`; folders are what the keys imply, plus folder
    /// markers. Endpoint, region and credentials come from the AWS
    /// variables (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
    #[arg(long, value_name = "URL", env = "ZIPGATE_STORE")]
    store: Option<String>,
    /// With `--store`: take each file's mtime from its `mtime` user metadata
    /// (rclone's convention: seconds since the epoch) where it has one,
    /// instead of `Last-Modified` (the upload's time); a `HEAD` per object
    /// at every listing.
    #[arg(long, requires = "store", env = "ZIPGATE_STORE_MTIME_METADATA")]
    store_mtime_metadata: bool,
    /// With `--root` or `--store`: the users (a fixture document with `users` and no
    /// `nodes`; a user's `home` is a path in DIR). Default: the embedded
    /// fixture's users, without homes.
    #[arg(long, value_name = "FILE", requires = "served", env = "ZIPGATE_POLICY")]
    policy: Option<PathBuf>,
    /// With `--root` or `--store`: list the tree again every SECS seconds
    /// (default 2 for a directory, which is also watched for changes; 60
    /// for object storage, where a listing is paid per 1,000 keys) and
    /// serve what changed; 0 lists only at start.
    #[arg(long, value_name = "SECS", requires = "served", env = "ZIPGATE_RESCAN")]
    rescan: Option<u32>,
    /// With `--root` or `--store`: where stored entries' CRC-32s are remembered across
    /// restarts, by path and version (JSON lines), or `memory`. Default: a
    /// file per served tree under `$XDG_CACHE_HOME/zipgate` (or
    /// `~/.cache/zipgate`).
    #[arg(
        long,
        value_name = "FILE",
        requires = "served",
        env = "ZIPGATE_CRC_CACHE"
    )]
    crc_cache: Option<String>,
    /// With `--root` or `--store`: dialect ids pinned to paths, `{"ids": {"docs/a.txt":
    /// {"box": "12345"}}}` (a migration's output); read again when it
    /// changes. Paths not named keep the ids derived from their path.
    #[arg(long, value_name = "FILE", requires = "served", env = "ZIPGATE_ID_MAP")]
    id_map: Option<PathBuf>,
    /// Let the `--fixtures` file name files outside its folder (absolute
    /// paths, `..`, symlinks out). Fixtures sent to the control plane still
    /// may not.
    #[arg(long, env = "ZIPGATE_FIXTURE_PATHS_ANYWHERE")]
    fixture_paths_anywhere: bool,
    /// Fixtures sent to the control plane may name files beneath this
    /// directory (never outside it); without it they may name none.
    #[arg(long, value_name = "DIR", env = "ZIPGATE_CONTENT_ROOT")]
    content_root: Option<PathBuf>,
    /// How entries are written unless a request says otherwise.
    #[arg(long, value_enum, default_value = "store", env = "ZIPGATE_COMPRESSION")]
    compression: CompressionArg,
    /// zlib level (0–9) for deflated entries.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9), env = "ZIPGATE_DEFLATE_LEVEL")]
    deflate_level: u32,
    /// Which implementation deflates (the archive bytes differ between them).
    #[arg(
        long,
        value_enum,
        default_value = "fastest",
        env = "ZIPGATE_DEFLATE_ENGINE"
    )]
    deflate_engine: DeflateEngineArg,
    /// Extensions stored even in a deflate archive (comma-separated; replaces the default list).
    #[arg(long, value_delimiter = ',', env = "ZIPGATE_STORE_EXT")]
    store_ext: Option<Vec<String>>,
    /// Seconds in-flight responses may run on after Ctrl-C / SIGTERM (0 to 86400).
    #[arg(long, default_value_t = 5.0, env = "ZIPGATE_SHUTDOWN_GRACE")]
    shutdown_grace: f64,
    /// Seconds a client may take to send its request headers (over 0, up to 86400).
    #[arg(long, default_value_t = 30.0, env = "ZIPGATE_HEADER_TIMEOUT")]
    header_timeout: f64,
    /// Seconds a client may take to send a request body (over 0, up to 86400).
    #[arg(long, default_value_t = 30.0, env = "ZIPGATE_BODY_TIMEOUT")]
    body_timeout: f64,
    /// Seconds a response may wait on a client that stopped reading it
    /// before the connection is dropped (over 0, up to 86400).
    #[arg(long, default_value_t = 60.0, env = "ZIPGATE_SEND_TIMEOUT")]
    send_timeout: f64,
    /// Largest request body read, in bytes (up to 4x is read and discarded
    /// before a larger one is refused, so the client sees the answer); at most 1 GiB.
    #[arg(long, default_value_t = 1 << 20, env = "ZIPGATE_MAX_BODY")]
    max_body: usize,
    /// Do not compute file CRCs in the background at start (the first
    /// stored download then computes them).
    #[arg(long, env = "ZIPGATE_NO_WARM_CRC")]
    no_warm_crc: bool,
    /// Entry names that extract the same on every file system: names that
    /// differ only by case or Unicode normalisation are renamed like equal
    /// names, reserved Windows names (`CON`, `NUL`, `COM1`…), characters
    /// Windows cannot store, trailing dots and spaces and components over
    /// 255 bytes are changed. Off by default, as no vendor does it.
    #[arg(long, env = "ZIPGATE_PORTABLE_NAMES")]
    portable_names: bool,
    /// Base URL for absolute URLs in responses (e.g. `https://zip.example.com`);
    /// by default the request's Host header.
    #[arg(long, env = "ZIPGATE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Serve HTTPS, with a certificate made at start for localhost,
    /// 127.0.0.1, ::1, the listening address, the `--public-url` host and the
    /// `--allow-host` names, signed by a CA also made at start; the CA's
    /// certificate is written to `--tls-ca-file` (the log says where) for
    /// clients to trust. Absolute URLs in answers use `https`.
    #[arg(long, env = "ZIPGATE_TLS", conflicts_with = "tls_cert")]
    tls: bool,
    /// With `--tls`: where to write the CA's certificate (PEM). Default:
    /// `zipgate-<pid>-ca.pem` in the temporary directory.
    #[arg(
        long,
        value_name = "FILE",
        env = "ZIPGATE_TLS_CA_FILE",
        requires = "tls"
    )]
    tls_ca_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM, the server's own first).
    #[arg(
        long,
        value_name = "FILE",
        env = "ZIPGATE_TLS_CERT",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        value_name = "FILE",
        env = "ZIPGATE_TLS_KEY",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Answer browsers on these origins (`https://app.example.com`,
    /// comma-separated; `*` for any) on vendor routes with the CORS headers
    /// each vendor's server sends: preflights, the allowed origin, the
    /// headers its browser clients read. Never on `/_zipgate/`.
    #[arg(
        long,
        value_name = "ORIGIN",
        env = "ZIPGATE_CORS",
        value_delimiter = ','
    )]
    cors: Vec<String>,
    /// Test-only: a number makes ids, random names and download URLs
    /// reproducible (and so predictable); `random` randomises the cosmetic ids
    /// too. Without it, cosmetic ids are seeded with 0 and secrets such as
    /// download URLs come from the OS's random source.
    #[arg(long, env = "ZIPGATE_SEED")]
    seed: Option<String>,
    /// Requests to vendor routes the journal keeps (0 turns it off).
    #[arg(long, default_value_t = 1000, env = "ZIPGATE_JOURNAL")]
    journal: usize,
    /// Bytes the journal may hold in all (headers and bodies); past it the
    /// oldest entries go, however few there are.
    #[arg(long, value_name = "BYTES", default_value_t = zipgate::journal::DEFAULT_MAX_BYTES, env = "ZIPGATE_JOURNAL_BYTES")]
    journal_bytes: usize,
    /// Jobs kept in all; past it the oldest settled jobs go first, then the oldest.
    #[arg(long, default_value_t = zipgate::DEFAULT_MAX_JOBS, value_parser = count, env = "ZIPGATE_MAX_JOBS")]
    max_jobs: usize,
    /// Jobs one user may hold over every dialect; past it the user's own
    /// settled jobs go, else its create gets the vendor's rate-limit answer.
    #[arg(long, default_value_t = zipgate::DEFAULT_MAX_JOBS_PER_PRINCIPAL, value_parser = count, env = "ZIPGATE_MAX_JOBS_PER_USER")]
    max_jobs_per_user: usize,
    /// The server clock: `system`, or `frozen` at the start time.
    #[arg(long, value_enum, default_value = "system", env = "ZIPGATE_CLOCK")]
    clock: ClockArg,
    /// ONLYOFFICE flavour (same as `--set onlyoffice.flavour=…`).
    #[arg(long, value_parser = ["workspace", "docspace"], env = "ZIPGATE_ONLYOFFICE_FLAVOUR")]
    onlyoffice_flavour: Option<String>,
    /// Fault rules to apply from the start (JSON: a rule, an array, or
    /// `{"faults": [...]}`); `POST /_zipgate/reset` restores them.
    #[arg(long, value_name = "FILE", env = "ZIPGATE_FAULTS")]
    faults: Option<PathBuf>,
    /// Do not serve the test control plane (`/_zipgate/` fixtures, reset,
    /// jobs, requests, faults, clock).
    #[arg(long, env = "ZIPGATE_NO_CONTROL")]
    no_control: bool,
    /// Require this token on control-plane requests, as `Authorization:
    /// Bearer …` or `X-Zipgate-Control-Token: …`; an empty one is refused.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "ZIPGATE_CONTROL_TOKEN",
        hide_env_values = true
    )]
    control_token: Option<String>,
    /// Also answer zipgate's own routes (`/_zipgate/`) for this Host, besides
    /// loopback names and the `--public-url` host (repeatable; `*` for any,
    /// behind a proxy that checks hosts itself); in `ZIPGATE_ALLOW_HOST`,
    /// comma-separated.
    #[arg(
        long = "allow-host",
        value_name = "HOST",
        env = "ZIPGATE_ALLOW_HOST",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
    /// Connections served at once; past it a connection is answered 503
    /// (`Retry-After: 1`) and closed (default: three quarters of the file
    /// descriptor limit, at least 64 under it).
    #[arg(long, value_name = "N", value_parser = count, env = "ZIPGATE_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// The most fault rules in force at once.
    #[arg(long, default_value_t = zipgate::faults::DEFAULT_MAX_RULES, env = "ZIPGATE_MAX_FAULTS")]
    max_faults: usize,
    /// This server's name among replicas, shown in /_zipgate/health and on
    /// every journal entry (default: `<host name>-<process id>`).
    #[arg(long, value_name = "NAME", value_parser = replica_name, env = "ZIPGATE_REPLICA")]
    replica: Option<String>,
    /// Keep jobs in Redis, shared with every replica given the same URL and
    /// namespace: redis://[:PASSWORD@]HOST:PORT/DB (default: in this process).
    #[arg(long, value_name = "URL", value_parser = jobs_url, env = "ZIPGATE_JOBS")]
    jobs: Option<String>,
    /// The prefix of every key zipgate keeps in Redis (--jobs), so several
    /// deployments can share one Redis.
    #[arg(long, value_name = "NAME", default_value = "zipgate", value_parser = jobs_namespace, env = "ZIPGATE_JOBS_NAMESPACE")]
    jobs_namespace: String,
    /// A dialect setting, DIALECT.KEY=VALUE (repeatable), e.g. `--set box.url_ttl=300`;
    /// in `ZIPGATE_SET`, one per line (values may hold commas).
    #[arg(
        long = "set",
        value_name = "DIALECT.KEY=VALUE",
        env = "ZIPGATE_SET",
        value_delimiter = '\n'
    )]
    settings: Vec<String>,
}

enum Seed {
    /// `--seed N`: both generators pinned.
    Fixed(u64),
    /// `--seed random`: a random cosmetic seed; secrets stay unseeded.
    Random(u64),
}

fn parse_seed(text: &str) -> Result<Seed, String> {
    if text == "random" {
        let mut bytes = [0u8; 8];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
            .map_err(|e| format!("--seed random: {e}"))?;
        return Ok(Seed::Random(u64::from_le_bytes(bytes)));
    }
    text.parse()
        .map(Seed::Fixed)
        .map_err(|_| format!("--seed: expected a number or `random`, got {text:?}"))
}

fn load_source(path: Option<&PathBuf>, anywhere: bool) -> Result<FixtureSource, String> {
    let source = match path {
        None => FixtureSource::embedded_default(),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let paths = zipgate::file_paths(path, anywhere).map_err(|e| e.message)?;
            FixtureSource::from_text(&text, paths)
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
    };
    Ok(source)
}

/// `--root DIR` or `--store URL`: the store, scanned into the tree, with
/// the `--policy` users and rules (or the embedded fixture's users, who
/// then read everything).
fn served_source(args: &ServeArgs) -> Result<(FixtureSource, Served, Scanned), String> {
    let (policy, crc_cache, id_map) = (
        args.policy.as_deref(),
        args.crc_cache.as_deref(),
        args.id_map.as_deref(),
    );
    let store: Arc<dyn zipgate::store::backend::Store> = match (&args.root, &args.store) {
        (Some(root), _) => Arc::new(
            zipgate::store::directory::DirectoryStore::new(root)
                .map_err(|e| format!("--root {}: {e}", root.display()))?,
        ),
        (None, Some(url)) => {
            let mut config = S3Config::from_url(url, &|name| std::env::var(name).ok())
                .map_err(|e| format!("--store {e}"))?;
            config.mtime_from_metadata = args.store_mtime_metadata;
            Arc::new(ObjectStore::new(&config).map_err(|e| format!("--store {url}: {e}"))?)
        }
        (None, None) => return Err("--root or --store names what to serve".into()),
    };
    let policy = match policy {
        Some(path) => {
            let policy = Policy::from_file(path)?;
            if policy.rules.is_empty() {
                tracing::warn!(
                    "--policy without rules: every user may read everything in {}",
                    store.describe()
                );
            }
            policy
        }
        None => {
            tracing::warn!(
                "no --policy: the embedded fixture's users (alice-token, bob-token) \
                 may read everything in {}",
                store.describe()
            );
            Policy::embedded_users()
        }
    };
    let crcs = Arc::new(open_crc_cache(crc_cache, &store.describe()));
    let mut served = Served::new(store, crcs, policy);
    if let Some(path) = id_map {
        served = served.with_id_map(path)?;
    }
    let scanned = served.scan()?;
    Ok((Served::source(&scanned), served, scanned))
}

/// `--crc-cache FILE`, `memory`, or by default a file per store in the
/// user's cache folder (`$XDG_CACHE_HOME`, else `~/.cache`), so a restart
/// does not read every file again; in memory when there is none.
fn open_crc_cache(choice: Option<&str>, describe: &str) -> CrcCache {
    let path = match choice {
        Some("memory") => return CrcCache::in_memory(),
        Some(path) => Some(PathBuf::from(path)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
            .filter(|dir| dir.is_absolute())
            .map(|dir| {
                // FNV-1a of the store's description: one file per store.
                let hash = describe.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                dir.join("zipgate").join(format!("crc32-{hash:016x}.jsonl"))
            }),
    };
    let Some(path) = path else {
        return CrcCache::in_memory();
    };
    match CrcCache::open(&path) {
        Ok(cache) => {
            tracing::info!(path = %path.display(), entries = cache.len(), "CRC cache");
            cache
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot use the CRC cache; CRCs are kept in memory");
            CrcCache::in_memory()
        }
    }
}

/// A count of at least one, at most 2^32 - 1 (caps kept in `u32` slots).
fn count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n as usize),
        _ => Err(format!("expected a whole number from 1 to {}", u32::MAX)),
    }
}

/// A replica name: 1-64 printable ASCII characters without spaces, so it
/// reads the same in JSON, logs and a Redis key.
fn replica_name(text: &str) -> Result<String, String> {
    if (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(text.to_owned())
    } else {
        Err("expected 1 to 64 printable ASCII characters, no spaces".to_owned())
    }
}

/// `--jobs`: a `redis://` URL (the Redis client parses the rest when it connects).
fn jobs_url(text: &str) -> Result<String, String> {
    if text.starts_with("redis://") && text.len() <= 2048 {
        Ok(text.to_owned())
    } else {
        Err("expected redis://[:PASSWORD@]HOST:PORT/DB".to_owned())
    }
}

/// `--jobs-namespace`: the keys' hash tag and a `SCAN` prefix
/// (`zipgate::check_namespace` says what it may hold).
fn jobs_namespace(text: &str) -> Result<String, String> {
    zipgate::check_namespace(text).map(|()| text.to_owned())
}

/// `--tls` or `--tls-cert`/`--tls-key`: what serves HTTPS, if anything.
fn tls_from(args: &ServeArgs) -> Result<Option<server::tls::Tls>, String> {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        return server::tls::Tls::from_files(cert, key).map(Some);
    }
    if !args.tls {
        return Ok(None);
    }
    let public_host = args
        .public_url
        .as_deref()
        .and_then(|url| url.parse::<http::Uri>().ok())
        .and_then(|uri| uri.host().map(|h| h.trim_matches(['[', ']']).to_owned()));
    let names = server::tls::names_for(
        args.listen.ip(),
        public_host.as_deref(),
        &args.allowed_hosts,
    );
    let ca_file = args.tls_ca_file.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("zipgate-{}-ca.pem", std::process::id()))
    });
    server::tls::Tls::self_signed(&names, &ca_file).map(Some)
}

fn load_faults(
    path: &PathBuf,
    dialects: &[&str],
) -> Result<Vec<zipgate::faults::FaultRule>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    zipgate::faults::parse_rules_for(&json, Some(dialects))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// glibc malloc tuned for a server whose load comes in bursts:
/// - Fewer arenas than glibc's 8 per core: with many short-lived threads
///   (downloads) extra arenas keep freed memory. But one per core plus two,
///   not fewer: with two, both tokio workers could share one arena, and
///   about one start in five then served half the requests per second,
///   waiting on its lock.
/// - Fixed mmap and trim thresholds: glibc raises both after freeing a
///   large block (a big journal listing), and the free top of each arena
///   then stays resident, which `malloc_trim` does not release: after a
///   soak and a reset, RSS stayed at 29 MiB instead of 17.
/// - But not so low that streaming pays for fresh pages: the HTTP client's
///   read buffer (an S3 GET) grows to about 400 KiB and is reallocated
///   while earlier chunks are still queued. Above the mmap threshold each
///   one was a fresh mapping, faulted in page by page and unmapped again;
///   below it, with a 2 MiB pad an arena keeps when it trims, the same
///   pages come back. Measured streaming 512 MiB from moto: zipgate's CPU
///   fell from about 1.0 s to 0.5 s, peak RSS rose from 17 to 20 MiB.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::ffi::c_int;
        const M_TRIM_THRESHOLD: c_int = -1;
        const M_TOP_PAD: c_int = -2;
        const M_MMAP_THRESHOLD: c_int = -3;
        const M_ARENA_MAX: c_int = -8;
        extern "C" {
            fn mallopt(param: c_int, value: c_int) -> c_int;
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = c_int::try_from(cores + 2).unwrap_or(c_int::MAX);
        // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
        unsafe {
            mallopt(M_ARENA_MAX, arenas);
            // Above our 128 KiB chunks, deflate blocks and the client's read
            // buffers, so those stay on the heap.
            mallopt(M_MMAP_THRESHOLD, 1 << 20);
            mallopt(M_TRIM_THRESHOLD, 1 << 20);
            mallopt(M_TOP_PAD, 2 << 20);
        }
    }
}

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    // Log lines (one per request) are written by a thread of their own in
    // batches (src/log_writer.rs); the guard writes out the rest at exit.
    let (log_writer, _flush_on_exit) = zipgate::log_writer::batched(
        std::io::stderr(),
        zipgate::log_writer::FLUSH_EVERY,
        zipgate::log_writer::MAX_PENDING,
    );
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(log_writer)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::CheckFixtures {
            file,
            fixture_paths_anywhere,
        } => match load_source(Some(&file), fixture_paths_anywhere).and_then(|source| {
            // Checked against the dialects' id spaces, as `serve` checks it.
            let dialects = dialects::build(&Default::default())?;
            source
                .with_id_spaces(zipgate::store::IdSpaces::of(&dialects))
                .parse()
                .map_err(|e| format!("{}: {e}", file.display()))
        }) {
            Ok(store) => {
                println!(
                    "{}: {} nodes, {} users",
                    file.display(),
                    store.node_count(),
                    store.users().count()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    // Before anything opens a descriptor or reads the limit for the
    // default --max-connections.
    let fd_limit = match server::limit::raise_fd_limit() {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the file descriptor limit to the hard limit");
            server::limit::soft_fd_limit()
        }
    };
    let (source, served) = match args.root.is_some() || args.store.is_some() {
        true => match served_source(&args) {
            Ok((source, served, scanned)) => (Ok(source), Some((served, scanned))),
            Err(e) => (Err(e), None),
        },
        false => (
            load_source(args.fixtures.as_ref(), args.fixture_paths_anywhere),
            None,
        ),
    };
    let source = match source {
        Ok(source) => source,
        Err(e) => {
            eprintln!("zipgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut compression = CompressionPolicy {
        method: match args.compression {
            CompressionArg::Store => Compression::Store,
            CompressionArg::Deflate => Compression::Deflate,
        },
        level: args.deflate_level,
        engine: match args.deflate_engine {
            DeflateEngineArg::Fastest => DeflateEngine::Fastest,
            DeflateEngineArg::ZlibRs => DeflateEngine::ZlibRs,
        },
        ..CompressionPolicy::default()
    };
    let tls = match tls_from(&args) {
        Ok(tls) => tls.map(Arc::new),
        Err(e) => {
            eprintln!("zipgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(list) = args.store_ext {
        compression.stored_extensions = list
            .into_iter()
            .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
            .collect();
    }
    let (seed, secret_seed) = match args.seed.as_deref().map(parse_seed) {
        None => (0, None),
        Some(Ok(Seed::Random(seed))) => (seed, None),
        Some(Ok(Seed::Fixed(seed))) => (seed, Some(seed)),
        Some(Err(e)) => {
            eprintln!("zipgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut dialect_settings = std::collections::BTreeMap::<String, zipgate::api::Settings>::new();
    for text in &args.settings {
        match dialects::parse_setting(text) {
            Ok((dialect, key, value)) => {
                dialect_settings
                    .entry(dialect)
                    .or_default()
                    .insert(key, value);
            }
            Err(e) => {
                eprintln!("zipgate: --set {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(flavour) = args.onlyoffice_flavour {
        dialect_settings
            .entry("onlyoffice".into())
            .or_default()
            .insert("flavour".into(), flavour);
    }
    let dialects = match dialects::build(&dialect_settings) {
        Ok(dialects) => dialects,
        Err(e) => {
            eprintln!("zipgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let names: Vec<&str> = dialects.iter().map(|d| d.name()).collect();
    let faults = match args
        .faults
        .as_ref()
        .map(|path| load_faults(path, &names))
        .transpose()
    {
        Ok(faults) => faults.unwrap_or_default(),
        Err(e) => {
            eprintln!("zipgate: --faults {e}");
            return ExitCode::FAILURE;
        }
    };
    // Checked here, before anything binds, so the refusal names the flag.
    let waits = (|| {
        Ok::<_, zipgate::config::SettingError>((
            server::timeout_secs("--shutdown-grace", args.shutdown_grace, true)?,
            server::timeout_secs("--header-timeout", args.header_timeout, false)?,
            server::timeout_secs("--body-timeout", args.body_timeout, false)?,
            server::timeout_secs("--send-timeout", args.send_timeout, false)?,
        ))
    })();
    let (shutdown_grace, header_timeout, body_timeout, send_timeout) = match waits {
        Ok(waits) => waits,
        Err(e) => {
            eprintln!("zipgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.max_body > server::MAX_BODY_BYTES {
        eprintln!(
            "zipgate: --max-body: expected bytes from 0 to {} (1 GiB), got {}",
            server::MAX_BODY_BYTES,
            args.max_body
        );
        return ExitCode::FAILURE;
    }
    let config = Config {
        tls,
        cors: args.cors,
        compression,
        faults,
        control: !args.no_control,
        // An empty token is refused by AppState::new, not taken as "none".
        control_token: args.control_token,
        allowed_hosts: args.allowed_hosts,
        content_root: args.content_root,
        fixture_paths_anywhere: args.fixture_paths_anywhere,
        max_faults: args.max_faults,
        replica: args
            .replica
            .unwrap_or_else(zipgate::config::default_replica),
        jobs: match args.jobs {
            Some(url) => zipgate::config::JobStore::Redis {
                url,
                namespace: args.jobs_namespace,
            },
            None => zipgate::config::JobStore::Memory,
        },
        public_url: args.public_url,
        seed,
        secret_seed,
        journal_capacity: args.journal,
        journal_bytes: args.journal_bytes,
        job_limits: zipgate::JobLimits {
            max_jobs: args.max_jobs,
            max_jobs_per_principal: args.max_jobs_per_user,
        },
        dialect_settings,
        max_body_bytes: args.max_body,
        shutdown_grace,
        header_timeout,
        body_timeout,
        send_timeout,
        warm_crcs: !args.no_warm_crc,
        portable_names: args.portable_names,
        // After raising the descriptor limit, so the default follows it.
        max_connections: args
            .max_connections
            .unwrap_or_else(server::limit::default_max_connections),
    };
    let workers = args.workers.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    // This thread accepts and handles signals; the workers serve
    // (server::run_on_workers). With jobs in Redis every job call waits a
    // round trip: one multi-thread runtime then serves, so a waiting call
    // steps aside (`block_in_place`) and the worker's other connections
    // move on (docs/design/scaleout.md §0).
    let remote_jobs = config.jobs.is_remote();
    let runtime = if remote_jobs {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("zipgate-worker")
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zipgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let listener = match TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("zipgate: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        let local = listener.local_addr().ok();
        let addr = local.map(|a| a.to_string()).unwrap_or_default();
        let clock: Arc<dyn Clock> = match args.clock {
            ClockArg::System => Arc::new(SystemClock),
            ClockArg::Frozen => Arc::new(ManualClock::new(chrono::Utc::now())),
        };
        let state = match AppState::new(source, clock, config, dialects) {
            Ok(state) => state.into_shared(),
            Err(e) => {
                eprintln!("zipgate: {e}");
                return ExitCode::FAILURE;
            }
        };
        let rescan = args
            .rescan
            .unwrap_or(if args.store.is_some() { 60 } else { 2 });
        if let (Some((served, first)), true) = (served, rescan > 0) {
            served.rescan_every(
                state.clone(),
                std::time::Duration::from_secs(u64::from(rescan)),
                first,
            );
        }
        let scheme = state.config.scheme();
        if let Some(tls) = state.config.tls.as_deref() {
            match &tls.ca_file {
                Some(ca) => tracing::info!(
                    names = %tls.names.join(", "),
                    ca = %ca.display(),
                    "HTTPS with a certificate made at start; clients trust it through the CA in {}",
                    ca.display()
                ),
                None => tracing::info!("HTTPS with the certificate of --tls-cert"),
            }
        }
        let nodes = state.store().node_count();
        let compression = &state.config.compression;
        let deflate =
            Deflater::new(compression.level, compression.engine).describe(compression.engine);
        let max_connections = state.config.max_connections;
        tracing::info!(
            %addr,
            nodes,
            %deflate,
            workers,
            max_connections,
            fd_limit,
            "zipgate listening on {scheme}://{addr}"
        );
        log_control_plane(&state.config, local.is_some_and(|a| a.ip().is_loopback()));
        // The one line on stdout, for scripts that start zipgate on port 0.
        println!("{scheme}://{addr}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        if remote_jobs {
            server::run(listener, state, shutdown_signal()).await;
            return ExitCode::SUCCESS;
        }
        match server::run_on_workers(listener, state, workers, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("zipgate: cannot start the workers: {e}");
                ExitCode::FAILURE
            }
        }
    });
    // As each worker does (server::run_on_workers): responses still in
    // flight after the grace are dropped, so their engine threads stop at
    // their next block, and one stuck in a slow read cannot hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

fn log_control_plane(config: &Config, loopback: bool) {
    let faults = config.faults.len();
    match (config.control, &config.control_token, loopback) {
        (false, _, _) => tracing::info!("control plane off (--no-control)"),
        (true, Some(_), _) => {
            tracing::info!(faults, "control plane on at /_zipgate/, token required")
        }
        (true, None, true) => tracing::info!(
            faults,
            "control plane on at /_zipgate/ without a token; reachable from this machine only (loopback)"
        ),
        (true, None, false) => tracing::warn!(
            faults,
            "control plane on at /_zipgate/ without a token and reachable from the network: \
             anyone who can connect may replace fixtures and inject faults; \
             use --control-token or --no-control"
        ),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
