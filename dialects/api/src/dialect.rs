//! The two traits that meet at the composition root: a `Dialect` translates
//! one vendor's HTTP API, and calls the `Core`, which the server implements.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method, Response, StatusCode, Uri};

use crate::http::Body;
use crate::job::{CreateJob, CreatedJob, JobSnapshot};
use crate::{Error, NodeId, NodeKind, Principal, UserId};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("reading the request body failed: {0}")]
    Io(String),
}

/// A request as a dialect sees it: the body already read, within the server's cap.
pub struct DialectRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Result<Bytes, BodyError>,
    /// Parameters captured by the route pattern.
    pub params: HashMap<String, String>,
    /// `scheme://host[:port]` the server was told it is reached at
    /// (`--public-url`); else absolute URLs use the request's `Host`.
    pub public_url: Option<Arc<str>>,
    /// The scheme the request came in on: `https` on a TLS port.
    pub scheme: &'static str,
}

impl DialectRequest {
    /// A request with no route parameters and no public URL (tests, faults).
    pub fn new(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Self {
        DialectRequest {
            method,
            uri,
            headers,
            body: Ok(body),
            params: HashMap::new(),
            public_url: None,
            scheme: "http",
        }
    }

    /// `scheme://host[:port]` clients reach this server at: the configured
    /// public URL, else the request's scheme and `Host`.
    pub fn origin(&self) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let host = self
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost");
        [self.scheme, "://", host].concat()
    }

    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }

    /// A query-string parameter, percent-decoded (`+` as space).
    pub fn query(&self, name: &str) -> Option<String> {
        // Only the matching pair's value is decoded.
        raw_pairs(self.uri.query().unwrap_or(""))
            .find(|(key, _)| percent_decode(key) == name)
            .map(|(_, value)| percent_decode(value))
    }
}

/// `a=1&b=x%20y` → `[("a","1"), ("b","x y")]`.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    raw_pairs(query)
        .map(|(key, value)| (percent_decode(key), percent_decode(value)))
        .collect()
}

/// The pairs of `a=1&b=x%20y` still encoded, so a reader can stop early or
/// decode only the names it wants (a body may hold a million of them).
pub fn raw_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// `x%20y+z` → `x y z`; a `%` without two hex digits stays as it is.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            // Two hex digits exactly: `u8::from_str_radix` would also take `+f` as 15.
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                out.push((hex(bytes[i + 1]) << 4) | hex(bytes[i + 2]));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Per-dialect settings from the command line (`--set box.url_ttl=60`),
/// keyed without the dialect prefix.
pub type Settings = BTreeMap<String, String>;

/// What a dialect knows of a node.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub id: NodeId,
    pub name: String,
    pub kind: NodeKind,
    pub size: u64,
    pub mtime: DateTime<Utc>,
    pub parent: Option<NodeId>,
    pub owner: Option<UserId>,
    /// The id the fixture pinned for the asking dialect (`"ids": {"box": "…"}`),
    /// if any; see [`Dialect::id_of`].
    pub pinned_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct UserInfo {
    pub id: UserId,
    pub name: String,
    pub login: String,
    pub home: Option<NodeId>,
    pub dialect_ids: BTreeMap<String, String>,
}

/// A download the core has admitted; turning it into a body starts the stream.
pub struct Download {
    pub job: JobSnapshot,
    /// Exact archive length, known when every entry is stored.
    pub len: Option<u64>,
    /// The payload is one file as itself (`CreateJob::single_file_as_is`), not a zip.
    pub single_file: bool,
    start: Box<dyn FnOnce(u64, Option<u64>) -> Body + Send>,
    /// Put on the response as they are: what the server needs to handle the
    /// stream on its way out (a dialect passes them on, never reads them).
    extensions: http::Extensions,
}

impl Download {
    pub fn new(
        job: JobSnapshot,
        len: Option<u64>,
        single_file: bool,
        start: Box<dyn FnOnce(u64, Option<u64>) -> Body + Send>,
    ) -> Self {
        Download {
            job,
            len,
            single_file,
            start,
            extensions: http::Extensions::new(),
        }
    }

    /// Adds `value` to the extensions the response will carry.
    pub fn with_extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }

    /// Takes the extensions the response is to carry.
    pub fn take_extensions(&mut self) -> http::Extensions {
        std::mem::take(&mut self.extensions)
    }

    /// The archive from byte `offset`, `len` bytes long when given (only
    /// possible when the archive's length is known).
    pub fn body(self, offset: u64, len: Option<u64>) -> Body {
        (self.start)(offset, len)
    }
}

/// How a path's names are compared with the store's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameMatch {
    Exact,
    /// Unicode lower case on both sides; an exact match among the siblings wins.
    IgnoreCase,
}

/// What a dialect may do to one of its jobs through [`Core::job`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOp<'a> {
    /// Its state now, without counting as a status poll.
    Look,
    /// A client's status poll: advances poll-paced jobs.
    Poll,
    /// Ends a job that has not finished as cancelled.
    Cancel,
    /// Ends a job that has not finished as failed, with this message.
    Fail(&'a str),
    /// Records that the client has been shown the job's final state
    /// (it leaves [`Core::open_jobs`]).
    Acknowledge,
    /// Forgets the job.
    Remove,
}

/// How a dialect proves who is asking.
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    /// A bearer token (or any token-shaped secret: a cookie, a query value).
    Token(&'a str),
    /// A user name (login or id) and password.
    Password { login: &'a str, password: &'a str },
}

/// A user the core recognised, and the token that stands for them.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub user: Arc<UserInfo>,
    pub token: String,
}

/// Which of the server's two generators to draw from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Randomness {
    /// The seeded cosmetic generator: reproducible with `--seed`, so
    /// predictable; for ids and names a test wants stable, never for secrets.
    Cosmetic,
    /// The cryptographic generator: random unless the server was started
    /// with `--seed`, and never derivable from what `Cosmetic` gives. For
    /// anything that grants access.
    Secret,
}

/// What the core offers a dialect, already scoped to that dialect: its
/// jobs are the only ones it can see or touch, the ids it resolves are in
/// its own scheme, and jobs it creates are its own. Implemented by the
/// server, and by `zipgate_api::fake::FakeCore` (feature `fake`) for unit tests.
///
/// Ten methods are required; the rest are conveniences with default bodies
/// built on them (the server overrides some only to do less work).
pub trait Core: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    /// The user behind a credential.
    fn sign_in(&self, credential: Credential<'_>) -> Option<SignedIn>;
    fn node(&self, id: &NodeId) -> Option<NodeInfo>;
    /// The node behind an id in this dialect's scheme (pinned in the fixture,
    /// else [`Dialect::derive_id`]).
    fn resolve(&self, dialect_id: &str) -> Option<NodeId>;
    /// The node of `kind` behind an id, for requests that say which kind
    /// they name; in an [`IdSpace::PerKind`] dialect a file and a folder
    /// may share the id.
    fn resolve_as(&self, dialect_id: &str, kind: NodeKind) -> Option<NodeId> {
        self.resolve(dialect_id)
            .filter(|id| self.node(id).is_some_and(|node| node.kind == kind))
    }
    /// The node at `path` (names joined by `/`; empty components are
    /// skipped) below `start`, or below `principal`'s root (their home, else
    /// the top of the tree) when `start` is `None`. Only nodes `principal`
    /// may read are found.
    fn node_by_path(
        &self,
        principal: &Principal,
        start: Option<&NodeId>,
        path: &str,
        names: NameMatch,
    ) -> Option<NodeId>;

    /// Plans the selection and registers the job as this dialect's.
    fn create_job(&self, request: CreateJob) -> Result<CreatedJob, Error>;
    /// One of this dialect's jobs (another dialect's is `NotFound`).
    fn job(&self, id: &str, op: JobOp<'_>) -> Result<JobSnapshot, Error>;
    /// This dialect's jobs of `owner`, oldest first.
    fn jobs(&self, owner: &Principal) -> Vec<JobSnapshot>;
    /// Starts a download of a ready job (the job's single-use and expiry
    /// rules apply). With `max_per_owner`, the download is refused with
    /// [`Error::TooManyDownloads`] while the job's owner already has that
    /// many of this dialect's downloads streaming; the check and the claim
    /// are one step, so concurrent requests cannot both slip under the cap.
    /// An unknown job is `NotFound` before the cap is looked at.
    /// On a `HEAD` request the core only checks: the answer is the same, the
    /// body empty, and the job is left as it was (no use, no progress).
    fn start_download(&self, id: &str, max_per_owner: Option<usize>) -> Result<Download, Error>;
    /// Fills `out` from one of the server's generators.
    fn random(&self, kind: Randomness, out: &mut [u8]);
    /// The next number (1, 2, 3…) of this dialect's sequence `name`, such as
    /// a vendor's integer job ids: from 1 again after a reset, and held by
    /// the core, so replicas that share their jobs never hand out one twice.
    /// Fails when the store that keeps it cannot be reached (`Unavailable`).
    fn next_in_sequence(&self, name: &str) -> Result<u64, Error>;

    /// The user a bearer token belongs to.
    fn authenticate(&self, token: &str) -> Option<Arc<UserInfo>> {
        self.sign_in(Credential::Token(token)).map(|s| s.user)
    }
    /// A user name (login or id) and password: the user and their token.
    fn log_in(&self, login: &str, password: &str) -> Option<SignedIn> {
        self.sign_in(Credential::Password { login, password })
    }
    /// This dialect's jobs of `owner` whose final state the client has not
    /// been shown yet ([`JobOp::Acknowledge`]), oldest first.
    fn open_jobs(&self, owner: &Principal) -> Vec<JobSnapshot> {
        let mut jobs = self.jobs(owner);
        jobs.retain(|job| !job.acknowledged);
        jobs
    }
    /// [`Core::open_jobs`], each job still in progress (neither ready nor
    /// ended) counted as polled ([`JobOp::Poll`]) on the way: a client's
    /// poll of all its operations, in one step where the store allows.
    fn poll_open_jobs(&self, owner: &Principal) -> Vec<JobSnapshot> {
        self.open_jobs(owner)
            .into_iter()
            .map(|job| {
                if job.state.is_in_progress() {
                    self.job(&job.id, JobOp::Poll).unwrap_or(job)
                } else {
                    job
                }
            })
            .collect()
    }
    /// This dialect's newest job of `owner` that `wanted` accepts.
    fn newest_job(
        &self,
        owner: &Principal,
        wanted: &dyn Fn(&JobSnapshot) -> bool,
    ) -> Option<JobSnapshot> {
        self.jobs(owner).into_iter().rev().find(|job| wanted(job))
    }
    /// A fresh value from [`Randomness::Cosmetic`].
    fn random_u64(&self) -> u64 {
        let mut bytes = [0; 8];
        self.random(Randomness::Cosmetic, &mut bytes);
        u64::from_le_bytes(bytes)
    }
    /// Fills `out` from [`Randomness::Secret`].
    fn fill_secret(&self, out: &mut [u8]) {
        self.random(Randomness::Secret, out)
    }
}

/// One route a dialect serves: a method, a `matchit` pattern (e.g.
/// `/2.0/zip_downloads/{id}/content`) and the operation it stands for,
/// which comes back to [`Dialect::handle`].
#[derive(Clone, Debug)]
pub struct Route<Op> {
    pub method: Method,
    pub pattern: String,
    pub op: Op,
}

impl<Op> Route<Op> {
    pub fn new(method: Method, pattern: impl Into<String>, op: Op) -> Self {
        Route {
            method,
            pattern: pattern.into(),
            op,
        }
    }

    pub fn get(pattern: impl Into<String>, op: Op) -> Self {
        Route::new(Method::GET, pattern, op)
    }

    pub fn post(pattern: impl Into<String>, op: Op) -> Self {
        Route::new(Method::POST, pattern, op)
    }

    pub fn put(pattern: impl Into<String>, op: Op) -> Self {
        Route::new(Method::PUT, pattern, op)
    }

    pub fn delete(pattern: impl Into<String>, op: Op) -> Self {
        Route::new(Method::DELETE, pattern, op)
    }
}

/// A request a vendor's client sends to create an archive, for the
/// conformance suite (`tests/conformance.rs`), which sends it to every
/// mounted dialect and checks the envelopes of what goes wrong around it.
/// Placeholders in `path`, header values and `body` are filled from the
/// default fixture: `{token}` (alice's bearer token), `{basic}` (her Basic
/// credentials, base64), `{folder}` and `{file}` (the ids, in this
/// dialect's scheme, of her folder `Documents` and its file `notes.md`),
/// `{folder_path}` (`/Documents`, from her home).
#[derive(Clone, Debug)]
pub struct Example {
    /// Names the variant, e.g. `xml` for a dialect that takes several bodies.
    pub label: &'static str,
    pub method: Method,
    pub path: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: &'static str,
}

/// How a dialect's paths match its routes, as the vendor's router matches them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathRules {
    /// Paths match without regard to case (ASP.NET routing); the route
    /// patterns are then written in lower case.
    pub ignore_case: bool,
    /// A path with one trailing `/` matches the route without it (ASP.NET
    /// routing ignores it).
    pub trailing_slash: bool,
    /// `HEAD` reaches only routes that declare it; otherwise it is served by
    /// the `GET` handler (as most servers do). Web API selects actions by
    /// verb, so `HEAD` on a GET-only action is a 405.
    pub head_only_where_declared: bool,
}

/// Where a dialect's ids of files and of folders come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdSpace {
    /// One space: an id names at most one node (a fixture where a file and
    /// a folder pin the same id is refused).
    #[default]
    Shared,
    /// Files and folders are numbered apart, and every request says which
    /// kind it names ([`Core::resolve_as`]): a file and a folder may pin the
    /// same id.
    PerKind,
}

/// How a vendor's server answers browsers from another origin, used when
/// `--cors` allows that origin (the server applies it; a dialect only says
/// what its vendor sends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cors {
    /// `Access-Control-Allow-Origin: *` once the origin is allowed (Box,
    /// ONLYOFFICE Workspace); otherwise the origin is echoed with
    /// `Vary: Origin`.
    pub star: bool,
    /// Request headers a preflight may ask for (lower case); `None` echoes
    /// whatever it asks (ASP.NET Core's `AllowAnyHeader`).
    pub allow_headers: Option<&'static [&'static str]>,
    /// Response headers the vendor's browser clients read.
    pub expose_headers: &'static [&'static str],
    /// `Access-Control-Max-Age`, when the vendor sends one.
    pub max_age: Option<u32>,
    /// `Access-Control-Allow-Credentials: true` (with an echoed origin only).
    pub credentials: bool,
    /// The preflight's status (200 or 204).
    pub preflight_status: u16,
}

impl Default for Cors {
    /// Echo the origin, allow the headers every client sends, expose none.
    fn default() -> Self {
        Cors {
            star: false,
            allow_headers: Some(&["accept", "authorization", "content-type"]),
            expose_headers: &[],
            max_age: None,
            credentials: false,
            preflight_status: 204,
        }
    }
}

/// One vendor's API. The server mounts it with [`mount`].
pub trait Dialect: Send + Sync + 'static {
    /// What a route stands for: an enum per dialect, so `handle` matches
    /// every operation and nothing else.
    type Op: Copy + Send + Sync + 'static;

    /// Lower-case name, also the key of pinned ids in fixtures and of settings.
    fn name(&self) -> &'static str;
    fn routes(&self) -> Vec<Route<Self::Op>>;
    /// Path prefixes this dialect owns: unknown paths and methods under them
    /// are answered by [`Dialect::not_found`] and [`Dialect::method_not_allowed`].
    fn prefixes(&self) -> Vec<&'static str>;
    /// How paths under this dialect's prefixes match its routes.
    fn path_rules(&self) -> PathRules {
        PathRules::default()
    }
    /// Whether a file and a folder may carry the same id.
    fn id_space(&self) -> IdSpace {
        IdSpace::Shared
    }
    /// A node's id in this dialect's scheme when the fixture pins none.
    fn derive_id(&self, id: &NodeId) -> String {
        id.0.clone()
    }
    /// A node's id in this dialect's scheme: pinned, else derived.
    fn id_of(&self, node: &NodeInfo) -> String {
        match &node.pinned_id {
            Some(pinned) => pinned.clone(),
            None => self.derive_id(&node.id),
        }
    }
    /// Who a request is from, read as the vendor reads credentials (headers,
    /// cookies, query; never the body). Fault rules match on it; `None` for
    /// no valid credentials.
    fn principal(&self, request: &DialectRequest, core: &dyn Core) -> Option<Arc<UserInfo>>;
    /// How its clients ask for an archive (every request body format it reads).
    fn examples(&self) -> Vec<Example>;
    /// Forgets per-server state (counters, caches) when the server is reset.
    fn reset(&self) {}
    /// What the vendor answers browsers from other origins (`--cors`).
    fn cors(&self) -> Cors {
        Cors::default()
    }
    fn handle(&self, op: Self::Op, request: DialectRequest, core: &dyn Core) -> Response<Body>;
    fn not_found(&self, request: &DialectRequest, core: &dyn Core) -> Response<Body>;
    fn method_not_allowed(
        &self,
        request: &DialectRequest,
        allowed: &[Method],
        core: &dyn Core,
    ) -> Response<Body>;
    /// The vendor's answer with this error status (an injected fault): its
    /// own envelope, error code and headers for the status, with `message`
    /// as the text where the envelope carries one.
    fn status_response(
        &self,
        status: StatusCode,
        message: Option<&str>,
        request: &DialectRequest,
        core: &dyn Core,
    ) -> Response<Body>;
}

/// A mounted route's handler: the dialect and the route's operation, bound.
pub type RouteHandler = Arc<dyn Fn(DialectRequest, &dyn Core) -> Response<Body> + Send + Sync>;

/// A dialect as the server holds it, whatever its `Op` type.
pub trait Mounted: Send + Sync {
    fn name(&self) -> &'static str;
    fn routes(&self) -> Vec<(Method, String, RouteHandler)>;
    fn prefixes(&self) -> Vec<&'static str>;
    fn path_rules(&self) -> PathRules;
    fn id_space(&self) -> IdSpace;
    fn derive_id(&self, id: &NodeId) -> String;
    fn principal(&self, request: &DialectRequest, core: &dyn Core) -> Option<Arc<UserInfo>>;
    fn examples(&self) -> Vec<Example>;
    fn reset(&self);
    fn cors(&self) -> Cors;
    fn not_found(&self, request: &DialectRequest, core: &dyn Core) -> Response<Body>;
    fn method_not_allowed(
        &self,
        request: &DialectRequest,
        allowed: &[Method],
        core: &dyn Core,
    ) -> Response<Body>;
    fn status_response(
        &self,
        status: StatusCode,
        message: Option<&str>,
        request: &DialectRequest,
        core: &dyn Core,
    ) -> Response<Body>;
}

/// Erases a dialect's `Op` type so the server can hold any dialect.
pub fn mount<D: Dialect>(dialect: D) -> Arc<dyn Mounted> {
    Arc::new(Mount(Arc::new(dialect)))
}

struct Mount<D>(Arc<D>);

impl<D: Dialect> Mounted for Mount<D> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn routes(&self) -> Vec<(Method, String, RouteHandler)> {
        self.0
            .routes()
            .into_iter()
            .map(|route| {
                let dialect = self.0.clone();
                let op = route.op;
                let handler: RouteHandler =
                    Arc::new(move |request, core| dialect.handle(op, request, core));
                (route.method, route.pattern, handler)
            })
            .collect()
    }
    fn prefixes(&self) -> Vec<&'static str> {
        self.0.prefixes()
    }
    fn cors(&self) -> Cors {
        self.0.cors()
    }
    fn path_rules(&self) -> PathRules {
        self.0.path_rules()
    }
    fn id_space(&self) -> IdSpace {
        self.0.id_space()
    }
    fn derive_id(&self, id: &NodeId) -> String {
        self.0.derive_id(id)
    }
    fn principal(&self, request: &DialectRequest, core: &dyn Core) -> Option<Arc<UserInfo>> {
        self.0.principal(request, core)
    }
    fn examples(&self) -> Vec<Example> {
        self.0.examples()
    }
    fn reset(&self) {
        self.0.reset()
    }
    fn not_found(&self, request: &DialectRequest, core: &dyn Core) -> Response<Body> {
        self.0.not_found(request, core)
    }
    fn method_not_allowed(
        &self,
        request: &DialectRequest,
        allowed: &[Method],
        core: &dyn Core,
    ) -> Response<Body> {
        self.0.method_not_allowed(request, allowed, core)
    }
    fn status_response(
        &self,
        status: StatusCode,
        message: Option<&str>,
        request: &DialectRequest,
        core: &dyn Core,
    ) -> Response<Body> {
        self.0.status_response(status, message, request, core)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            query_pairs("a=1&b=x%20y+z&c&d=%zz&e=%C3%9C"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), "".into()),
                ("d".into(), "%zz".into()),
                ("e".into(), "Ü".into()),
            ]
        );
    }

    #[test]
    fn a_percent_needs_two_hex_digits() {
        // Found by the query_pairs fuzz target: `%+b` decoded as the byte 0x0b,
        // because `u8::from_str_radix` accepts a leading `+`.
        assert_eq!(
            query_pairs("%+b=%-1&k=%+0%+"),
            vec![("% b".into(), "%-1".into()), ("k".into(), "% 0% ".into())]
        );
        assert_eq!(
            query_pairs("a=%4&b=%41%4a"),
            vec![("a".into(), "%4".into()), ("b".into(), "AJ".into())]
        );
    }
}
