//! The two traits that meet at the composition root: a `Dialect` translates
//! one vendor's HTTP API, and calls the `Core`, which the server implements.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method, Response, StatusCode, Uri};

use crate::http::Body;
use crate::job::{CreateJob, CreatedJob, JobSnapshot};
use crate::{Error, JobState, NodeId, NodeKind, Principal, UserId};

/// One route a dialect serves; `id` comes back to [`Dialect::handle`].
#[derive(Clone, Debug)]
pub struct Route {
    pub method: Method,
    /// A `matchit` pattern, e.g. `/2.0/zip_downloads/{id}/content`.
    pub pattern: String,
    pub id: usize,
}

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
}

impl DialectRequest {
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }

    /// A query-string parameter, percent-decoded (`+` as space).
    pub fn query(&self, name: &str) -> Option<String> {
        query_pairs(self.uri.query().unwrap_or(""))
            .into_iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
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
    /// Ids pinned for dialects, keyed by dialect name.
    pub dialect_ids: BTreeMap<String, String>,
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
        }
    }

    /// The archive from byte `offset`, `len` bytes long when given (only
    /// possible when the archive's length is known).
    pub fn body(self, offset: u64, len: Option<u64>) -> Body {
        (self.start)(offset, len)
    }
}

/// What the core offers a dialect. Implemented by the server.
pub trait Core: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    /// The user a bearer token belongs to.
    fn authenticate(&self, token: &str) -> Option<Arc<UserInfo>>;
    /// A user name (login or id) and password: the user and their token.
    fn log_in(&self, login: &str, password: &str) -> Option<(Arc<UserInfo>, String)>;
    fn user(&self, id: &UserId) -> Option<Arc<UserInfo>>;
    fn node(&self, id: &NodeId) -> Option<NodeInfo>;
    /// Every node, for a dialect that indexes its own id scheme.
    fn nodes(&self) -> Vec<NodeInfo>;
    /// Changes whenever the store is replaced, so such an index can be rebuilt.
    fn store_generation(&self) -> u64;
    fn can_read(&self, principal: &Principal, id: &NodeId) -> bool;

    /// Plans the selection and registers the job.
    fn create_job(&self, owner_tag: &'static str, request: CreateJob) -> Result<CreatedJob, Error>;
    fn job(&self, id: &str) -> Option<JobSnapshot>;
    /// A client's status poll: advances poll-paced jobs.
    fn poll_job(&self, id: &str) -> Option<JobSnapshot>;
    fn cancel_job(&self, id: &str) -> Result<JobSnapshot, Error>;
    /// Ends a job that has not finished as failed, with this message.
    fn fail_job(&self, id: &str, reason: &str) -> Result<JobSnapshot, Error>;
    /// Records that the client has been shown the job's final state.
    fn acknowledge_job(&self, id: &str);
    fn remove_job(&self, id: &str) -> Option<JobSnapshot>;
    /// Jobs of one dialect and owner whose final state the client has not
    /// been shown yet (see [`Core::acknowledge_job`]), oldest first.
    fn open_jobs_of(&self, owner_tag: &str, owner: &Principal) -> Vec<JobSnapshot>;
    /// The newest job of one dialect and owner, in `state` when one is given.
    fn newest_job_of(
        &self,
        owner_tag: &str,
        owner: &Principal,
        state: Option<JobState>,
    ) -> Option<JobSnapshot>;
    /// Downloads of one dialect and owner's jobs in progress now.
    fn downloads_of(&self, owner_tag: &str, owner: &Principal) -> usize;
    /// Starts a download of a ready job (the job's single-use and expiry rules apply).
    /// On a `HEAD` request the core only checks: the answer is the same, the
    /// body empty, and the job is left as it was (no use, no progress).
    fn start_download(&self, id: &str) -> Result<Download, Error>;

    /// `scheme://host[:port]` clients reach this server at: the configured
    /// public URL, else the request's `Host`.
    fn origin(&self, headers: &HeaderMap) -> String;
    /// A fresh value from the server's seeded cosmetic generator
    /// (reproducible with `--seed`; predictable, so never for secrets).
    fn random_u64(&self) -> u64;
    /// Fills `out` from the server's cryptographic generator: random unless
    /// the server was started with `--seed`, and never derivable from what
    /// `random_u64` gives. For anything that grants access.
    fn fill_secret(&self, out: &mut [u8]);
}

/// One vendor's API.
pub trait Dialect: Send + Sync {
    /// Lower-case name, also the key of pinned ids in fixtures and of settings.
    fn name(&self) -> &'static str;
    fn routes(&self) -> Vec<Route>;
    /// Path prefixes this dialect owns: unknown paths and methods under them
    /// are answered by [`Dialect::not_found`] and [`Dialect::method_not_allowed`].
    fn prefixes(&self) -> Vec<&'static str>;
    /// Paths under this dialect's prefixes match without regard to case
    /// (ASP.NET routing); its route patterns are then written in lower case.
    fn case_insensitive_paths(&self) -> bool {
        false
    }
    /// Forgets per-server state (counters, caches) when the server is reset.
    fn reset(&self) {}
    fn handle(&self, route: usize, request: DialectRequest, core: &dyn Core) -> Response<Body>;
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
