//! The request journal: every request to a vendor route, bounded in memory
//! (a ring buffer), so a test can assert on what its client sent.

use std::collections::VecDeque;
use std::sync::Mutex;

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
#[derive(Default, Debug)]
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

pub struct Journal {
    capacity: usize,
    inner: Mutex<(u64, VecDeque<Entry>)>,
}

impl Journal {
    pub fn new(capacity: usize) -> Self {
        Journal {
            capacity,
            inner: Mutex::new((0, VecDeque::new())),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut (u64, VecDeque<Entry>)) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
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
        if self.capacity == 0 {
            return None;
        }
        // Built before the lock: the other worker threads record too.
        let mut entry = Entry::new(time, dialect, method, uri, headers);
        Some(self.with(|(next, entries)| {
            *next += 1;
            entry.id = *next;
            if entries.len() == self.capacity {
                entries.pop_front();
            }
            entries.push_back(entry);
            *next
        }))
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Entry)) {
        self.with(|(_, entries)| {
            if let Some(entry) = entries.iter_mut().rev().find(|e| e.id == id) {
                f(entry);
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

    /// Forgets every entry and the memory that held them.
    pub fn clear(&self) {
        self.with(|(_, entries)| *entries = VecDeque::new());
    }

    pub fn list(&self, filter: &Filter) -> Vec<Entry> {
        self.with(|(_, entries)| {
            entries
                .iter()
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
                .filter(|e| filter.after.is_none_or(|after| e.id > after))
                .take(filter.limit.unwrap_or(usize::MAX))
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
    time: String,
    dialect: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    /// `[name, value]` pairs in the order received.
    headers: Vec<(&'a str, &'a str)>,
    body: Option<std::borrow::Cow<'a, str>>,
    body_size: u64,
    body_truncated: bool,
    status: Option<u16>,
    bytes_sent: Option<u64>,
    faults: &'a [String],
}

impl Entry {
    /// The control plane's view; credentials are redacted unless `reveal`.
    pub fn view(&self, reveal: bool) -> EntryView<'_> {
        EntryView {
            id: self.id,
            time: self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            dialect: self.dialect(),
            method: self.method(),
            path: self.path(),
            query: self.query(),
            headers: self
                .headers()
                .map(|(name, value)| {
                    let secret = !reveal && (name == "authorization" || name == "cookie");
                    (name, if secret { "<redacted>" } else { value })
                })
                .collect(),
            body: self.body.as_deref().map(String::from_utf8_lossy),
            body_size: self.body_size,
            body_truncated: self.body_size as usize > BODY_CAP,
            status: self.status,
            bytes_sent: self.bytes_sent,
            faults: &self.faults,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let view = serde_json::to_value(all[0].view(false)).unwrap();
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
