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
    pub dialect: Option<String>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub body_size: u64,
    pub status: Option<u16>,
    pub bytes_sent: Option<u64>,
    /// Ids of the fault rules that acted on this request.
    pub faults: Vec<String>,
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
        dialect: Option<&str>,
        method: &str,
        uri: &http::Uri,
        headers: &HeaderMap,
    ) -> Option<u64> {
        if self.capacity == 0 {
            return None;
        }
        let headers = headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        Some(self.with(|(next, entries)| {
            *next += 1;
            if entries.len() == self.capacity {
                entries.pop_front();
            }
            entries.push_back(Entry {
                id: *next,
                time,
                dialect: dialect.map(str::to_owned),
                method: method.to_owned(),
                path: uri.path().to_owned(),
                query: uri.query().map(str::to_owned),
                headers,
                body: None,
                body_size: 0,
                status: None,
                bytes_sent: None,
                faults: Vec::new(),
            });
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
                        .is_none_or(|d| e.dialect.as_ref() == Some(d))
                })
                .filter(|e| {
                    filter
                        .method
                        .as_ref()
                        .is_none_or(|m| e.method.eq_ignore_ascii_case(m))
                })
                .filter(|e| {
                    filter
                        .path_prefix
                        .as_ref()
                        .is_none_or(|p| e.path.starts_with(p.as_str()))
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
            dialect: self.dialect.as_deref(),
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| {
                    let secret = !reveal && (name == "authorization" || name == "cookie");
                    (
                        name.as_str(),
                        if secret { "<redacted>" } else { value.as_str() },
                    )
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
    fn the_ring_keeps_the_newest_and_filters() {
        let journal = Journal::new(2);
        let headers = HeaderMap::new();
        for path in ["/a", "/b", "/c"] {
            let id = journal
                .record(
                    Utc::now(),
                    Some("box"),
                    "GET",
                    &path.parse().unwrap(),
                    &headers,
                )
                .unwrap();
            journal.set_status(id, if path == "/c" { 404 } else { 200 });
        }
        let all = journal.list(&Filter::default());
        assert_eq!(
            all.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
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
            .record(Utc::now(), None, "GET", &"/x".parse().unwrap(), &headers)
            .is_none());
    }
}
