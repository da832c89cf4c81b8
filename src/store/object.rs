//! `serve --store s3://bucket/prefix`: S3-compatible object storage as a
//! [`Store`], through opendal (the one module that knows it, so an upgrade
//! or another client library touches only this file).
//!
//! Keys become paths below the prefix: `prefix/Alice/notes.md` is the file
//! `notes.md` in the folder `Alice`. Folders are what keys imply, plus
//! folder markers (`Reports/Empty/`, an empty object), so an empty folder
//! survives. A file's or marker's mtime is its `Last-Modified` (the upload's
//! time), or with `mtime_from_metadata` its `mtime` user metadata as rclone
//! writes it (read by a `HEAD` each); a folder without a marker takes its
//! newest file's. A key with an empty, `.` or `..` segment (`a//b`, `x/../y`) is
//! left out and counted: opendal would normalize or resolve it and read
//! another object (measured with opendal 0.59: `..` in a read path even
//! leaves the prefix), so no such path ever reaches it.
//!
//! A file's version is its ETag. Every read is a ranged GET with `If-Match`
//! on it: an object replaced since the listing answers 412 and the download
//! is cut, never served mixed. Bodies stream as the socket drains: a task on
//! zipgate's own runtime pushes the GET's chunks through a bounded channel
//! to the engine's blocking reader, which can run on any thread, the
//! create request's own included (a small archive is built inline).
//!
//! A stored entry's CRC is S3's full-object CRC-32 checksum when the object
//! has one (the zip CRC itself): opendal's `stat` does not return it, so a
//! `HEAD` with `x-amz-checksum-mode: ENABLED`, signed by reqsign, asks.
//!
//! Every call has a timeout and bounded retries, so an outage fails a
//! request rather than hanging it.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{self, Read};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{EntryMode, Operator};
use zipgate_api::NodeKind;

use super::backend::{too_deep, too_many, Entry, LeftOut, Store, MAX_DEPTH, MAX_ENTRIES};

/// Where the objects are and how to reach them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// Keys below this prefix are served (no leading or trailing `/`).
    pub prefix: String,
    /// `http://127.0.0.1:9000` for a local server; AWS when absent.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Each call (a listing page, a stat, one read of a body) at most this long.
    pub timeout: Duration,
    /// Take each file's mtime from its `mtime` user metadata (what rclone
    /// writes: seconds since the epoch, with a fraction) instead of
    /// `Last-Modified`, which is the upload's time. Costs a `HEAD` per
    /// object at every scan.
    pub mtime_from_metadata: bool,
}

impl S3Config {
    /// `s3://bucket/prefix`, with the endpoint, region and credentials from
    /// the AWS variables `env` names (`AWS_ENDPOINT_URL_S3`, else
    /// `AWS_ENDPOINT_URL`; `AWS_REGION`, else `AWS_DEFAULT_REGION`, else
    /// `us-east-1`; `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`).
    pub fn from_url(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<S3Config, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?}: expected s3://bucket or s3://bucket/prefix"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        if bucket.is_empty() || bucket.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(format!("{url:?}: no bucket name"));
        }
        if !prefix.is_empty() && !safe(prefix) {
            return Err(format!(
                "{url:?}: the prefix may not have empty, `.` or `..` segments"
            ));
        }
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|name| env(name).filter(|v| !v.is_empty()))
        };
        Ok(S3Config {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: var(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]),
            region: var(&["AWS_REGION", "AWS_DEFAULT_REGION"])
                .unwrap_or_else(|| "us-east-1".into()),
            access_key_id: var(&["AWS_ACCESS_KEY_ID"]),
            secret_access_key: var(&["AWS_SECRET_ACCESS_KEY"]),
            session_token: var(&["AWS_SESSION_TOKEN"]),
            timeout: Duration::from_secs(10),
            mtime_from_metadata: false,
        })
    }
}

/// No empty, `.` or `..` segment: a path opendal passes on as it is.
fn safe(path: &str) -> bool {
    !path
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
}

/// The runtime every object storage call runs on, whoever asks: started
/// once and never dropped (dropping a runtime inside another panics).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // The rustls provider (ring) and opendal's HTTP transport, process-wide.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest13::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client with rustls builds");
        opendal::HttpTransporter::install_default(
            opendal_http_transport_reqwest::ReqwestTransport::new(client),
        );
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("zipgate-s3")
            .enable_all()
            .build()
            .expect("the object storage runtime starts")
    })
}

/// Waits for `future` on the calling thread, whatever it is: a plain
/// thread, a blocking-pool thread, or (for a small inline build) a request
/// task, where tokio's own `block_on` would panic. The futures given here
/// only wait on channels fed by tasks on [`runtime`].
fn wait<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::park();
    }
}

/// Runs `future` on [`runtime`] and waits for its output.
fn run<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    runtime().spawn(async move {
        let _ = tx.send(future.await);
    });
    wait(rx).map_err(|_| io::Error::other("the object storage task stopped"))
}

fn io_error(error: opendal::Error) -> io::Error {
    match error.kind() {
        opendal::ErrorKind::ConditionNotMatch => {
            io::Error::other("the object changed in the store since it was listed")
        }
        opendal::ErrorKind::NotFound => io::Error::new(io::ErrorKind::NotFound, error.to_string()),
        opendal::ErrorKind::PermissionDenied => {
            io::Error::new(io::ErrorKind::PermissionDenied, error.to_string())
        }
        _ => io::Error::other(error.to_string()),
    }
}

/// An io::Error carrying an opendal error, told as [`io_error`] tells it.
fn unwrap_io(error: io::Error) -> io::Error {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<opendal::Error>())
    {
        Some(inner) if inner.kind() == opendal::ErrorKind::ConditionNotMatch => {
            io::Error::other("the object changed in the store since it was listed")
        }
        _ => error,
    }
}

pub struct ObjectStore {
    op: Operator,
    /// For the `HEAD`s opendal cannot send.
    heads: Heads,
    describe: String,
    mtime_from_metadata: bool,
    /// When a check last succeeded (ms since the Unix epoch): downloads in
    /// the next second do not ask again.
    checked_ok: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

impl ObjectStore {
    pub fn new(config: &S3Config) -> Result<ObjectStore, String> {
        let mut builder = opendal::services::S3::default()
            .bucket(&config.bucket)
            .root(&format!("/{}", config.prefix))
            .region(&config.region)
            // Only what the configuration says: no ~/.aws, no instance metadata
            // probe (which waits on a machine outside AWS).
            .disable_config_load()
            .disable_ec2_metadata();
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint(endpoint);
        }
        if let Some(key) = &config.access_key_id {
            builder = builder.access_key_id(key);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.secret_access_key(secret);
        }
        if let Some(token) = &config.session_token {
            builder = builder.session_token(token);
        }
        if config.access_key_id.is_none() {
            builder = builder.skip_signature();
        }
        // Built inside the runtime: opendal's tokio executor looks for it.
        let _entered = runtime().enter();
        let op = Operator::new(builder)
            .map_err(|e| e.to_string())?
            .layer(
                TimeoutLayer::new()
                    .with_timeout(config.timeout)
                    .with_io_timeout(config.timeout),
            )
            .layer(
                RetryLayer::new()
                    .with_max_times(2)
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_millis(500)),
            );
        let describe = match config.prefix.as_str() {
            "" => format!("s3://{}", config.bucket),
            prefix => format!("s3://{}/{prefix}", config.bucket),
        };
        let heads = Heads {
            base: format!(
                "{}/{}",
                config
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", config.region))
                    .trim_end_matches('/'),
                config.bucket
            ),
            prefix: config.prefix.clone(),
            signer: match (&config.access_key_id, &config.secret_access_key) {
                (Some(key), Some(secret)) => {
                    let mut credentials =
                        reqsign_aws_v4::StaticCredentialProvider::new(key, secret);
                    if let Some(token) = &config.session_token {
                        credentials = credentials.with_session_token(token);
                    }
                    Some(Arc::new(reqsign_core::Signer::new(
                        reqsign_core::Context::new(),
                        credentials,
                        reqsign_aws_v4::RequestSigner::new("s3", &config.region),
                    )))
                }
                _ => None,
            },
            client: reqwest13::Client::builder()
                .timeout(config.timeout)
                .build()
                .map_err(|e| e.to_string())?,
        };
        Ok(ObjectStore {
            op,
            heads,
            describe,
            mtime_from_metadata: config.mtime_from_metadata,
            checked_ok: std::sync::atomic::AtomicU64::new(0),
        })
    }
}

/// One listed object, before folders are settled.
struct Listed {
    path: String,
    dir: bool,
    size: u64,
    mtime: Option<DateTime<Utc>>,
    etag: Option<String>,
}

/// Replaces each listed object's mtime by its `mtime` user metadata where
/// it has one, 16 `HEAD`s at a time: opendal's `stat` for a file (whose
/// ETag must match the listing's, or the object changed in between and the
/// next scan will see it), our own for a folder marker.
async fn metadata_mtimes(op: &Operator, heads: &Heads, listed: &mut [Listed]) -> io::Result<()> {
    use futures_util::StreamExt;
    // Only paths that are served: an unsafe key would be normalized into
    // another object's path.
    let paths: Vec<(usize, String, Option<String>)> = listed
        .iter()
        .enumerate()
        .filter(|(_, object)| safe(object.path.trim_end_matches('/')))
        .map(|(index, object)| {
            // A folder marker has no version to match.
            let etag = (!object.dir).then(|| object.etag.clone().unwrap_or_default());
            (index, object.path.clone(), etag)
        })
        .collect();
    let heads = paths.into_iter().map(|(index, path, etag)| {
        let (op, heads) = (op.clone(), heads.clone());
        async move {
            let Some(etag) = etag else {
                return (index, heads.marker_mtime(&path).await);
            };
            let mtime = match op.stat(&path).await {
                Ok(meta) if meta.etag() == Some(etag.as_str()) => meta
                    .user_metadata()
                    .and_then(|m| m.get("mtime"))
                    .and_then(parse_epoch),
                Ok(_) => None,
                // Deleted since the listing: the next scan drops it.
                Err(error) if error.kind() == opendal::ErrorKind::NotFound => None,
                Err(error) => return (index, Err(io_error(error))),
            };
            (index, Ok(mtime))
        }
    });
    let mut heads = futures_util::stream::iter(heads).buffer_unordered(16);
    while let Some((index, mtime)) = heads.next().await {
        if let Some(mtime) = mtime? {
            listed[index].mtime = Some(mtime);
        }
    }
    Ok(())
}

/// `1709283600` or `1709283600.5`: seconds since the epoch.
fn parse_epoch(text: &str) -> Option<DateTime<Utc>> {
    let (secs, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let secs: i64 = secs.parse().ok()?;
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = format!("{fraction:0<9}").parse().ok()?;
    DateTime::from_timestamp(secs, nanos)
}

fn to_chrono(time: opendal::raw::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = time.into_inner().as_nanosecond();
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    DateTime::from_timestamp(secs, u32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?)
}

impl Store for ObjectStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn list(&self, folder: &str, left_out: &mut LeftOut) -> io::Result<Vec<Entry>> {
        Ok(self.list_all(left_out)?.remove(folder).unwrap_or_default())
    }

    fn list_all(&self, left_out: &mut LeftOut) -> io::Result<BTreeMap<String, Vec<Entry>>> {
        let (op, heads) = (self.op.clone(), self.heads.clone());
        let from_metadata = self.mtime_from_metadata;
        // One recursive listing (a page per 1,000 keys), stopped past the cap.
        let listed: Vec<Listed> = run(async move {
            let mut lister = op.lister_with("").recursive(true).await.map_err(io_error)?;
            let mut out = Vec::new();
            while let Some(entry) = lister.try_next().await.map_err(io_error)? {
                if out.len() > MAX_ENTRIES {
                    break;
                }
                let meta = entry.metadata();
                out.push(Listed {
                    path: entry.path().to_owned(),
                    dir: meta.mode() == EntryMode::DIR,
                    size: meta.content_length(),
                    mtime: meta.last_modified().and_then(to_chrono),
                    etag: meta.etag().map(str::to_owned),
                });
            }
            if from_metadata && out.len() <= MAX_ENTRIES {
                metadata_mtimes(&op, &heads, &mut out).await?;
            }
            Ok::<_, io::Error>(out)
        })??;
        if listed.len() > MAX_ENTRIES {
            return Err(too_many());
        }

        // Folders: every key's ancestors, and markers. A folder's mtime is
        // its marker's, else its newest file's, so it is the same every scan.
        #[derive(Default)]
        struct Folder {
            marker: Option<DateTime<Utc>>,
            newest: Option<DateTime<Utc>>,
        }
        let mut folders: BTreeMap<String, Folder> = BTreeMap::new();
        let mut files: Vec<(String, Listed)> = Vec::new();
        for object in listed {
            let path = object.path.trim_end_matches('/').to_owned();
            if path.is_empty() {
                continue; // the prefix's own marker
            }
            if !safe(&path) {
                left_out.unsafe_names += 1;
                continue;
            }
            if path.split('/').count() > MAX_DEPTH {
                return Err(too_deep(&path));
            }
            let mut ancestor = path.as_str();
            while let Some((parent, _)) = ancestor.rsplit_once('/') {
                let folder = folders.entry(parent.to_owned()).or_default();
                if !object.dir {
                    folder.newest = folder.newest.max(object.mtime);
                }
                ancestor = parent;
            }
            if object.dir {
                let folder = folders.entry(path).or_default();
                folder.marker = object.mtime.or(folder.marker);
            } else if object.etag.is_some() {
                files.push((path, object));
            } else {
                // Without an ETag no read could be pinned to this version.
                left_out.unreadable += 1;
            }
        }

        let mut out: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        out.entry(String::new()).or_default();
        let split = |path: &str| match path.rsplit_once('/') {
            Some((parent, name)) => (parent.to_owned(), name.to_owned()),
            None => (String::new(), path.to_owned()),
        };
        for (path, folder) in &folders {
            let (parent, name) = split(path);
            out.entry(parent).or_default().push(Entry {
                name,
                kind: NodeKind::Folder,
                size: 0,
                mtime: folder.marker.or(folder.newest).unwrap_or_default(),
                version: String::new(),
            });
            out.entry(path.clone()).or_default();
        }
        for (path, object) in files {
            // A key that is also a folder (`a` and `a/b`) cannot be both.
            if folders.contains_key(&path) {
                left_out.unsafe_names += 1;
                continue;
            }
            let (parent, name) = split(&path);
            out.entry(parent).or_default().push(Entry {
                name,
                kind: NodeKind::File,
                size: object.size,
                mtime: object.mtime.unwrap_or_default(),
                version: object.etag.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// S3's full-object CRC-32 of this version, when it holds one: the
    /// zip CRC itself, so the object is never read twice.
    fn stored_crc32(&self, file: &str, version: &str) -> io::Result<Option<u32>> {
        if !safe(file) {
            return Ok(None);
        }
        let heads = self.heads.clone();
        let (file, version) = (file.to_owned(), version.to_owned());
        run(async move { heads.crc32(&file, &version).await })?
    }

    fn remote(&self) -> bool {
        true
    }

    /// One listing request of at most one key.
    fn check(&self) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        if now.saturating_sub(self.checked_ok.load(Ordering::Relaxed)) < 1000 {
            return Ok(());
        }
        let op = self.op.clone();
        run(async move { op.list_with("").limit(1).await.map(drop) })?.map_err(io_error)?;
        self.checked_ok.store(now, Ordering::Relaxed);
        Ok(())
    }

    fn open_at(
        &self,
        file: &str,
        version: &str,
        offset: u64,
        len: u64,
    ) -> io::Result<Box<dyn Read + Send>> {
        if !safe(file) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a path of the store",
            ));
        }
        if len == 0 {
            return Ok(Box::new(io::empty()));
        }
        // A few chunks in flight: memory per stream stays small and flat.
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        let (op, path, etag) = (self.op.clone(), file.to_owned(), version.to_owned());
        let task = runtime().spawn(async move {
            let streamed = async {
                let reader = op
                    .reader_with(&path)
                    .if_match(&etag)
                    .await
                    .map_err(io_error)?;
                let mut chunks = reader
                    .into_bytes_stream(offset..offset + len)
                    .await
                    .map_err(io_error)?;
                // The stream's errors are opendal's inside io::Error.
                while let Some(chunk) = chunks.try_next().await.map_err(unwrap_io)? {
                    if tx.send(Ok(chunk)).await.is_err() {
                        break; // the reader is gone
                    }
                }
                Ok::<_, io::Error>(())
            };
            if let Err(error) = streamed.await {
                let _ = tx.send(Err(error)).await;
            }
        });
        Ok(Box::new(super::backend::Exactly {
            inner: ObjectReader {
                rx,
                chunk: Bytes::new(),
                task: task.abort_handle(),
            },
            left: len,
        }))
    }
}

/// The `HEAD`s opendal cannot send: an object's stored checksum (it has
/// no checksum mode) and a folder marker's user metadata (it answers a
/// folder's `stat` without asking). Signed with reqsign (the SigV4 crates
/// opendal uses), path-style like opendal's own requests.
#[derive(Clone)]
struct Heads {
    /// `endpoint/bucket`.
    base: String,
    prefix: String,
    /// `None`: unsigned requests (no credentials configured).
    signer: Option<Arc<reqsign_core::Signer<reqsign_aws_v4::Credential>>>,
    /// One client (one connection pool) for every HEAD.
    client: reqwest13::Client,
}

impl Heads {
    /// The headers of a successful `HEAD` of `path` (below the prefix; a
    /// folder marker ends in `/`), or `None` for any other status.
    async fn head(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> io::Result<Option<http::HeaderMap>> {
        let key = match self.prefix.as_str() {
            "" => path.to_owned(),
            prefix => format!("{prefix}/{path}"),
        };
        let url = format!("{}/{}", self.base, encode_key(&key));
        let mut request =
            http::Request::head(&url).header("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request.body(()).map_err(io::Error::other)?.into_parts();
        if let Some(signer) = &self.signer {
            signer
                .sign(&mut parts, None)
                .await
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        let mut head = self.client.head(parts.uri.to_string());
        for (name, value) in &parts.headers {
            head = head.header(name, value);
        }
        let response = head.send().await.map_err(io::Error::other)?;
        Ok(response
            .status()
            .is_success()
            .then(|| response.headers().clone()))
    }

    async fn crc32(&self, file: &str, version: &str) -> io::Result<Option<u32>> {
        // Only the version the listing saw: a newer one's checksum would
        // describe other bytes.
        let asked = [("x-amz-checksum-mode", "ENABLED"), ("if-match", version)];
        // Changed since the listing (412), or checksums unsupported: the
        // CRC then comes from a read pass.
        let Some(headers) = self.head(file, &asked).await? else {
            return Ok(None);
        };
        // Not every server honours If-Match on a HEAD: the ETag says too.
        if headers.get("etag").and_then(|v| v.to_str().ok()) != Some(version) {
            return Ok(None);
        }
        // A multipart upload's composite checksum (`…-N`) is not the CRC of
        // the whole object.
        let composite = headers
            .get("x-amz-checksum-type")
            .is_some_and(|t| t.as_bytes().eq_ignore_ascii_case(b"COMPOSITE"));
        Ok(headers
            .get("x-amz-checksum-crc32")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !composite && !v.contains('-'))
            .and_then(decode_crc32))
    }

    /// A folder marker's `mtime` user metadata (`marker` ends in `/`).
    async fn marker_mtime(&self, marker: &str) -> io::Result<Option<DateTime<Utc>>> {
        Ok(self.head(marker, &[]).await?.and_then(|headers| {
            headers
                .get("x-amz-meta-mtime")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_epoch)
        }))
    }
}

/// A key as a URL path: every byte but `A-Za-z0-9-_.~` and `/` encoded.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `x-amz-checksum-crc32`: base64 of the CRC's four big-endian bytes.
fn decode_crc32(value: &str) -> Option<u32> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// The engine's end of a streaming GET.
struct ObjectReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
    task: tokio::task::AbortHandle,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match wait(self.rx.recv()) {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(error)) => return Err(error),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

impl Drop for ObjectReader {
    /// A download that stops (client gone, cut) stops its GET too.
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_the_environment_make_a_configuration() {
        let env = |name: &str| match name {
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:9000".to_owned()),
            "AWS_REGION" => Some("eu-west-1".to_owned()),
            "AWS_ACCESS_KEY_ID" => Some("AK".to_owned()),
            _ => None,
        };
        let config = S3Config::from_url("s3://bucket/some/prefix/", &env).unwrap();
        assert_eq!(
            (config.bucket.as_str(), config.prefix.as_str()),
            ("bucket", "some/prefix")
        );
        assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(config.region, "eu-west-1");
        assert_eq!(config.access_key_id.as_deref(), Some("AK"));
        assert_eq!(
            S3Config::from_url("s3://b", &|_| None).unwrap().region,
            "us-east-1"
        );
        for bad in [
            "b/prefix",
            "s3://",
            "s3:///x",
            "s3://b/a/../c",
            "s3://b/a//c",
        ] {
            assert!(S3Config::from_url(bad, &|_| None).is_err(), "{bad}");
        }
    }

    #[test]
    fn checksums_decode_and_keys_encode() {
        // "The quick brown fox jumps over the lazy dog": 0x414FA339.
        assert_eq!(decode_crc32("QU+jOQ=="), Some(0x414F_A339));
        assert_eq!(decode_crc32("QU+j"), None);
        assert_eq!(decode_crc32("not base64"), None);
        assert_eq!(
            encode_key("pre/Alice/Überblick – x.txt"),
            "pre/Alice/%C3%9Cberblick%20%E2%80%93%20x.txt"
        );
    }

    #[test]
    fn rclone_mtimes_parse() {
        assert_eq!(
            parse_epoch("1709283600.25").unwrap().to_rfc3339(),
            "2024-03-01T09:00:00.250+00:00"
        );
        assert_eq!(parse_epoch("1709283600").unwrap().timestamp(), 1709283600);
        for bad in ["", "x", "1.2.3", "1.1234567890", "1.-2"] {
            assert!(parse_epoch(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn paths_with_empty_or_dot_segments_are_not_safe() {
        for path in ["a/b.txt", "Überblick – 日本語.txt", "a/.hidden", "a/b..c"] {
            assert!(safe(path), "{path}");
        }
        for path in ["", "a//b", "a/./b", "a/../b", "..", "/a", "a/"] {
            assert!(!safe(path), "{path}");
        }
    }

    #[test]
    fn wait_runs_on_any_thread_even_inside_a_runtime() {
        let inside = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let value = inside.block_on(async { run(async { 41 + 1 }).unwrap() });
        assert_eq!(value, 42);
    }
}
