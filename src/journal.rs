//! The request journal: every request to a vendor route, bounded in memory
//! (a ring buffer capped by entries and by bytes), so a test can assert on
//! what its client sent.

use std::collections::VecDeque;
use std::sync::Mutex;

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use http::HeaderMap;
use serde::Serialize;

/// Bytes of a request body kept per entry.
pub const BODY_CAP: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct Entry {
    pub id: u64,
    pub time: DateTime<Utc>,
    dialect: Option<&'static str>,
    method: http::Method,
    /// The path, `?query` when there is one, then `\nname:value` per header:
    /// one allocation per request instead of two per header. Neither a
    /// header name nor a value can hold a `\n`, and a name cannot hold a `:`.
    head: String,
    path_end: usize,
    query_end: usize,
    pub body: Option<Vec<u8>>,
    pub body_size: u64,
    pub status: Option<u16>,
    pub bytes_sent: Option<u64>,
    /// Ids of the fault rules that acted on this request.
    pub faults: Vec<String>,
}

impl Entry {
    /// Heap and inline bytes this entry holds, as the byte cap counts them.
    fn weight(&self) -> usize {
        std::mem::size_of::<Entry>()
            + self.head.capacity()
            + self.body.as_ref().map_or(0, Vec::capacity)
            + self
                .faults
                .iter()
                .map(|f| f.capacity() + std::mem::size_of::<String>())
                .sum::<usize>()
    }

    fn new(
        time: DateTime<Utc>,
        dialect: Option<&'static str>,
        method: &http::Method,
        uri: &http::Uri,
        headers: &HeaderMap,
    ) -> Self {
        let path = uri.path();
        let query = uri.query();
        let header_bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 2)
            .sum();
        let mut head =
            String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1) + header_bytes);
        head.push_str(path);
        let path_end = head.len();
        if let Some(query) = query {
            head.push('?');
            head.push_str(query);
        }
        let query_end = head.len();
        for (name, value) in headers {
            head.push('\n');
            head.push_str(name.as_str());
            head.push(':');
            head.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
        Entry {
            id: 0,
            time,
            dialect,
            method: method.clone(),
            head,
            path_end,
            query_end,
            body: None,
            body_size: 0,
            status: None,
            bytes_sent: None,
            faults: Vec::new(),
        }
    }

    /// The dialect whose path this was, if any.
    pub fn dialect(&self) -> Option<&str> {
        self.dialect
    }

    pub fn method(&self) -> &str {
        self.method.as_str()
    }

    pub fn path(&self) -> &str {
        &self.head[..self.path_end]
    }

    pub fn query(&self) -> Option<&str> {
        (self.query_end > self.path_end).then(|| &self.head[self.path_end + 1..self.query_end])
    }

    /// Header names (lower case) and values, in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.head[self.query_end..]
            .split('\n')
            .skip(1)
            .filter_map(|line| line.split_once(':'))
    }
}

/// Which entries a listing wants.
#[derive(Clone, Default, Debug)]
pub struct Filter {
    pub dialect: Option<String>,
    pub method: Option<String>,
    pub path_prefix: Option<String>,
    pub status: Option<u16>,
    /// Only entries with a larger id (to page through a big journal).
    pub after: Option<u64>,
    /// At most this many entries, the oldest first.
    pub limit: Option<usize>,
}

/// Bytes the journal keeps by default: a few hundred typical requests, or
/// 64 requests with full 64 KiB bodies; a flood of big requests cannot pin
/// more than this however many entries `capacity` allows.
pub const DEFAULT_MAX_BYTES: usize = 4 << 20;

pub struct Journal {
    capacity: usize,
    max_bytes: usize,
    /// This server's `--replica` name, shown on every entry.
    replica: std::sync::Arc<str>,
    inner: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    /// The last id handed out.
    next: u64,
    /// Oldest first, so ids increase along the ring.
    entries: VecDeque<Entry>,
    /// Sum of the entries' weights.
    bytes: usize,
}

impl Ring {
    /// Drops the oldest entries past either cap; the newest entry stays even
    /// alone over the byte cap (a request is bounded by the header and body
    /// limits anyway), so the journal never loses the request just made.
    fn trim(&mut self, capacity: usize, max_bytes: usize) {
        while self.entries.len() > capacity || (self.bytes > max_bytes && self.entries.len() > 1) {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.weight();
        }
    }

    /// Where the entry `id` is, if still kept. Ids in the ring are
    /// consecutive (pushed one by one, dropped from the front), so an
    /// entry's place is its distance from the oldest: no search on the
    /// per-request path.
    fn index_of(&self, id: u64) -> Option<usize> {
        let front = self.entries.front()?.id;
        let at = usize::try_from(id.checked_sub(front)?).ok()?;
        self.entries.get(at).filter(|e| e.id == id).map(|_| at)
    }

    /// Index of the first entry with an id above `after`.
    fn start_after(&self, after: Option<u64>) -> usize {
        after.map_or(0, |after| self.entries.partition_point(|e| e.id <= after))
    }
}

impl Journal {
    pub fn new(capacity: usize) -> Self {
        Self::with_limits(capacity, DEFAULT_MAX_BYTES)
    }

    pub fn with_limits(capacity: usize, max_bytes: usize) -> Self {
        Journal {
            capacity,
            max_bytes,
            replica: "".into(),
            inner: Mutex::new(Ring::default()),
        }
    }

    /// Names this server (`--replica`) on every entry's view.
    pub fn with_replica(mut self, replica: &str) -> Self {
        self.replica = replica.into();
        self
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn with<R>(&self, f: impl FnOnce(&mut Ring) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Bytes the entries hold now (what `--journal-bytes` caps).
    pub fn bytes(&self) -> usize {
        self.with(|ring| ring.bytes)
    }

    /// Records a request's head; returns its id (`None` when the journal is off).
    pub fn record(
        &self,
        time: DateTime<Utc>,
        dialect: Option<&'static str>,
        method: &http::Method,
        uri: &http::Uri,
        headers: &HeaderMap,
    ) -> Option<u64> {
        if self.capacity == 0 || self.max_bytes == 0 {
            return None;
        }
        // Built before the lock: the other worker threads record too.
        let mut entry = Entry::new(time, dialect, method, uri, headers);
        Some(self.with(|ring| {
            ring.next += 1;
            entry.id = ring.next;
            ring.bytes += entry.weight();
            ring.entries.push_back(entry);
            ring.trim(self.capacity, self.max_bytes);
            ring.next
        }))
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Entry)) {
        self.with(|ring| {
            if let Some(entry) = ring.index_of(id).and_then(|at| ring.entries.get_mut(at)) {
                let before = entry.weight();
                f(entry);
                let after = entry.weight();
                ring.bytes = ring.bytes - before + after;
                ring.trim(self.capacity, self.max_bytes);
            }
        });
    }

    pub fn set_body(&self, id: u64, body: &[u8]) {
        self.update(id, |e| {
            e.body_size = body.len() as u64;
            e.body = Some(body[..body.len().min(BODY_CAP)].to_vec());
        });
    }

    pub fn set_status(&self, id: u64, status: u16) {
        self.update(id, |e| e.status = Some(status));
    }

    pub fn set_faults(&self, id: u64, rules: &[String]) {
        self.update(id, |e| e.faults = rules.to_vec());
    }

    pub fn set_bytes_sent(&self, id: u64, bytes: u64) {
        self.update(id, |e| e.bytes_sent = Some(bytes));
    }

    /// One entry as the control plane lists it (redacted), as JSON: what
    /// the live feed sends.
    pub fn view_json(&self, id: u64) -> Option<String> {
        self.with(|ring| {
            let entry = ring.entries.get(ring.index_of(id)?)?;
            serde_json::to_string(&entry.view(false, &self.replica)).ok()
        })
    }

    /// Forgets every entry and the memory that held them.
    pub fn clear(&self) {
        self.with(|ring| {
            ring.entries = VecDeque::new();
            ring.bytes = 0;
        });
    }

    /// The id of the newest entry so far (a listing stops there).
    pub fn last_id(&self) -> u64 {
        self.with(|ring| ring.next)
    }

    pub fn list(&self, filter: &Filter) -> Vec<Entry> {
        self.page(filter, u64::MAX, usize::MAX)
    }

    /// At most `max` entries that `filter` wants, with ids up to `upto`,
    /// oldest first: one page of a listing, copied under the lock so the
    /// rest of the listing is written without holding it.
    pub fn page(&self, filter: &Filter, upto: u64, max: usize) -> Vec<Entry> {
        let max = max.min(filter.limit.unwrap_or(usize::MAX));
        self.with(|ring| {
            let start = ring.start_after(filter.after);
            ring.entries
                .range(start..)
                .take_while(|e| e.id <= upto)
                .filter(|e| {
                    filter
                        .dialect
                        .as_ref()
                        .is_none_or(|d| e.dialect() == Some(d.as_str()))
                })
                .filter(|e| {
                    filter
                        .method
                        .as_ref()
                        .is_none_or(|m| e.method().eq_ignore_ascii_case(m))
                })
                .filter(|e| {
                    filter
                        .path_prefix
                        .as_ref()
                        .is_none_or(|p| e.path().starts_with(p.as_str()))
                })
                .filter(|e| filter.status.is_none_or(|s| e.status == Some(s)))
                .take(max)
                .cloned()
                .collect()
        })
    }
}

/// An entry as the control plane shows it, serialised straight to JSON
/// (no `Value` tree: a listing of a big journal stays near its text size).
#[derive(Serialize)]
pub struct EntryView<'a> {
    id: u64,
    /// The server that took the request (`--replica`).
    replica: &'a str,
    time: String,
    dialect: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    query: Option<Cow<'a, str>>,
    /// `[name, value]` pairs in the order received.
    headers: Vec<(&'a str, &'a str)>,
    body: Option<Cow<'a, str>>,
    body_size: u64,
    body_truncated: bool,
    status: Option<u16>,
    bytes_sent: Option<u64>,
    faults: &'a [String],
}

impl Entry {
    /// The control plane's view; credentials are redacted unless `reveal`.
    pub fn view<'a>(&'a self, reveal: bool, replica: &'a str) -> EntryView<'a> {
        EntryView {
            id: self.id,
            replica,
            time: self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            dialect: self.dialect(),
            method: self.method(),
            path: self.path(),
            query: self.query().map(|q| {
                if reveal {
                    Cow::Borrowed(q)
                } else {
                    redact_pairs(q)
                }
            }),
            headers: self
                .headers()
                .map(|(name, value)| {
                    let secret = !reveal && is_secret_name(name);
                    (name, if secret { REDACTED } else { value })
                })
                .collect(),
            body: self.body.as_deref().map(|body| {
                let text = String::from_utf8_lossy(body);
                if reveal {
                    text
                } else {
                    redact_body(text)
                }
            }),
            body_size: self.body_size,
            body_truncated: self.body_size as usize > BODY_CAP,
            status: self.status,
            bytes_sent: self.bytes_sent,
            faults: &self.faults,
        }
    }
}

const REDACTED: &str = "<redacted>";

/// Names of headers, query parameters and body fields whose values are
/// credentials: shown only with `reveal=true`, like `Authorization`.
fn is_secret_name(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "cookie",
        "pass",
        "passwd",
        "pwd",
    ];
    const PARTS: &[&str] = &[
        "token",
        "password",
        "secret",
        "apikey",
        "api_key",
        "api-key",
        "auth_key",
        "authkey",
        "credential",
        "session",
    ];
    // Flattened form keys (`auth[password]`) and XML prefixes count by their last part.
    let name = name.to_ascii_lowercase();
    let last = name
        .rsplit(['[', ':', '.'])
        .next()
        .unwrap_or(&name)
        .trim_end_matches(']');
    EXACT.contains(&last) || PARTS.iter().any(|part| name.contains(part))
}

/// `a=1&password=x` → `a=1&password=<redacted>` (names compared decoded).
fn redact_pairs(text: &str) -> Cow<'_, str> {
    let secret = |pair: &str| {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        pair.contains('=')
            && zipgate_api::dialect::query_pairs(name)
                .first()
                .is_some_and(|(name, _)| is_secret_name(name))
    };
    if !text.split('&').any(secret) {
        return Cow::Borrowed(text);
    }
    let pairs: Vec<String> = text
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if secret(pair) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect();
    Cow::Owned(pairs.join("&"))
}

/// A body with the values of credential fields hidden, whichever of the
/// vendors' formats it is in: JSON (any depth), XML elements, or a form.
/// A body that names a credential but cannot be read is hidden whole.
fn redact_body(text: Cow<'_, str>) -> Cow<'_, str> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return match serde_json::from_str::<serde_json::Value>(&text) {
            // Names are compared decoded (`\u0070assword` too); a body with
            // nothing to hide is shown as it was sent.
            Ok(mut value) => {
                if redact_json(&mut value) {
                    Cow::Owned(value.to_string())
                } else {
                    text
                }
            }
            Err(_) if names_a_credential(&text) => {
                Cow::Borrowed("<redacted: unreadable JSON that names a credential>")
            }
            Err(_) => text,
        };
    }
    if trimmed.starts_with('<') {
        return match redact_xml(&text) {
            Some(redacted) if redacted != *text => Cow::Owned(redacted),
            Some(_) => text,
            None if names_a_credential(&text) => {
                Cow::Borrowed("<redacted: unreadable XML that names a credential>")
            }
            None => text,
        };
    }
    match redact_pairs(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(redacted) => Cow::Owned(redacted),
    }
}

/// Whether raw text might hold a credential's name (a body that cannot be
/// read field by field is then hidden whole).
fn names_a_credential(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "token",
        "pass",
        "pwd",
        "secret",
        "key",
        "credential",
        "session",
        "auth",
        "\\u",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

/// Hides every value under a credential's name, whatever its shape (a
/// vendor may take `{"password":["x"]}` as well as a string); true when it
/// hid something.
fn redact_json(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(map) => {
            let mut hid = false;
            for (name, value) in map.iter_mut() {
                if is_secret_name(name) {
                    *value = serde_json::Value::from(REDACTED);
                    hid = true;
                } else {
                    hid |= redact_json(value);
                }
            }
            hid
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |hid, item| redact_json(item) | hid),
        _ => false,
    }
}

/// The text of every element with a credential's name replaced; `None` when
/// a tag does not close (the caller then hides the whole body).
fn redact_xml(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('>')? + open;
        let tag = &rest[open..=close];
        out.push_str(tag);
        rest = &rest[close + 1..];
        let name = tag[1..tag.len() - 1]
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        let start_tag = !tag.starts_with("</")
            && !tag.starts_with("<?")
            && !tag.starts_with("<!")
            && !tag.ends_with("/>");
        if start_tag && is_secret_name(name) {
            // Everything up to the element's own end tag, so CDATA, comments
            // and child elements inside it are hidden too.
            let end = rest.find(&format!("</{name}"))?;
            if end > 0 {
                out.push_str("[redacted]");
            }
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_in_every_format() {
        assert_eq!(
            redact_pairs("a=1&access_token=s3cret&b=%70assword"),
            "a=1&access_token=<redacted>&b=%70assword"
        );
        assert_eq!(
            redact_pairs("x=1&%70assword=hunter2"),
            "x=1&%70assword=<redacted>"
        );
        let form = redact_body(Cow::Borrowed("userName=alice&password=hunter2"));
        assert_eq!(form, "userName=alice&password=<redacted>");
        let json = redact_body(Cow::Borrowed(
            r#"{"userName":"alice","password":"hunter2","deep":[{"apiKey":1}]}"#,
        ));
        assert!(
            !json.contains("hunter2") && json.contains("alice"),
            "{json}"
        );
        assert!(json.contains(r#""apiKey":"<redacted>""#), "{json}");
        let xml = redact_body(Cow::Borrowed(
            "<r><userName>alice</userName><Password>hunter2</Password><x:token a='1'>t</x:token></r>",
        ));
        assert_eq!(
            xml,
            "<r><userName>alice</userName><Password>[redacted]</Password><x:token a='1'>[redacted]</x:token></r>"
        );
        let broken = redact_body(Cow::Borrowed(r#"{"password":"hunter2""#));
        assert!(!broken.contains("hunter2"));
        for sneaky in [
            r#"{"password":["hunter2"]}"#,
            r#"{"\u0070assword":"hunter2"}"#,
            r#"{"auth":{"password":{"v":"hunter2"}}}"#,
            "<r><password><![CDATA[hunter2]]></password></r>",
            "<r><password><!-- x -->hunter2</password></r>",
        ] {
            let shown = redact_body(Cow::Borrowed(sneaky));
            assert!(!shown.contains("hunter2"), "{sneaky} -> {shown}");
        }
        let spaced = "{ \"fileIds\": [1] }";
        assert_eq!(redact_body(Cow::Borrowed(spaced)), spaced);
        let plain = redact_body(Cow::Borrowed(r#"{"fileIds":[1,2]}"#));
        assert_eq!(plain, r#"{"fileIds":[1,2]}"#);
    }

    #[test]
    fn the_byte_cap_drops_the_oldest_entries() {
        let journal = Journal::with_limits(1000, 64 * 1024);
        let headers = HeaderMap::new();
        for _ in 0..20 {
            let id = journal
                .record(
                    Utc::now(),
                    None,
                    &http::Method::POST,
                    &"/x".parse().unwrap(),
                    &headers,
                )
                .unwrap();
            journal.set_body(id, &[b'a'; 20_000]);
        }
        let entries = journal.list(&Filter::default());
        assert!(entries.len() <= 3, "{} entries kept", entries.len());
        assert_eq!(entries.last().map(|e| e.id), Some(20));
        assert!(journal.bytes() <= 64 * 1024);
        journal.clear();
        assert_eq!(journal.bytes(), 0);
    }

    #[test]
    fn an_entry_keeps_path_query_and_headers_apart() {
        let journal = Journal::new(4);
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:8080".parse().unwrap());
        headers.append("x-twice", "a:b".parse().unwrap());
        headers.append("x-twice", "".parse().unwrap());
        headers.insert(
            "x-latin",
            http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        );
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        for target in ["/a/b?x=1&y=%3A", "/a?", "/plain"] {
            journal.record(
                Utc::now(),
                Some("box"),
                &http::Method::PUT,
                &uri(target),
                &headers,
            );
        }
        let entries = journal.list(&Filter::default());
        let parts: Vec<_> = entries.iter().map(|e| (e.path(), e.query())).collect();
        assert_eq!(
            parts,
            [
                ("/a/b", Some("x=1&y=%3A")),
                ("/a", Some("")),
                ("/plain", None)
            ]
        );
        assert_eq!(entries[0].method(), "PUT");
        assert_eq!(entries[0].dialect(), Some("box"));
        assert_eq!(
            entries[2].headers().collect::<Vec<_>>(),
            [
                ("host", "127.0.0.1:8080"),
                ("x-twice", "a:b"),
                ("x-twice", ""),
                ("x-latin", "caf\u{fffd}")
            ]
        );
    }

    #[test]
    fn the_ring_keeps_the_newest_and_filters() {
        let journal = Journal::new(2);
        let headers = HeaderMap::new();
        for path in ["/a", "/b", "/c"] {
            let id = journal
                .record(
                    Utc::now(),
                    Some("box"),
                    &http::Method::GET,
                    &path.parse().unwrap(),
                    &headers,
                )
                .unwrap();
            journal.set_status(id, if path == "/c" { 404 } else { 200 });
        }
        let all = journal.list(&Filter::default());
        assert_eq!(
            all.iter().map(|e| e.path()).collect::<Vec<_>>(),
            ["/b", "/c"]
        );
        let missing = journal.list(&Filter {
            status: Some(404),
            ..Filter::default()
        });
        assert_eq!(missing.len(), 1);
        let page = |after, limit| {
            journal
                .list(&Filter {
                    after,
                    limit,
                    ..Filter::default()
                })
                .iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(page(None, Some(1)), [2]);
        assert_eq!(page(Some(2), None), [3]);
        assert_eq!(page(Some(3), Some(5)), Vec::<u64>::new());
        let view = serde_json::to_value(all[0].view(false, "r1")).unwrap();
        assert_eq!(view["path"], "/b");
        assert_eq!(view["headers"], serde_json::json!([]));
        assert!(Journal::new(0)
            .record(
                Utc::now(),
                None,
                &http::Method::GET,
                &"/x".parse().unwrap(),
                &headers
            )
            .is_none());
    }
}
