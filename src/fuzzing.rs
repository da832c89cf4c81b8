//! One entry point per fuzz target: each feeds bytes to one parser of
//! untrusted request input, the way the server calls it, and asserts what
//! must hold for every input (a panic is a finding). The cargo-fuzz targets
//! (`fuzz/fuzz_targets/<name>.rs`) call these, and `tests/fuzz_corpus.rs`
//! replays the checked-in corpus (`fuzz/corpus/<name>/`) through them on
//! stable Rust, so a target and its replay cannot drift apart. Not an API.
//!
//! Inputs that carry more than a body are framed as lines, so corpus files
//! stay readable: `onlyoffice_params` is `query\ncontent-type\nbody`,
//! `itslearning_read` is `content-type\nbody`, `itslearning_negotiate` is
//! `accept\ncontent-type`, `http_range` is `length\nrange`, `dropbox_arg` is
//! the `Dropbox-API-Arg` header's bytes. An empty or
//! invalid header line means the header is absent.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};
use zipgate_api::dialect::query_pairs as api_query_pairs;
use zipgate_api::http::{bearer, parse_range, Credentials, RangeRequest};
use zipgate_api::{DialectRequest, NodeKind};

use crate::faults::{self, FaultBook, RequestFacts};
use crate::store::{FixtureSource, NodeData, Tree};

/// What a target runs on one input; it panics on a finding.
pub type Target = fn(&[u8]);

/// Every target by name, as its `fuzz/fuzz_targets/` file and corpus directory are named.
pub const TARGETS: &[(&str, Target)] = &[
    ("box_request", box_request),
    ("onlyoffice_params", onlyoffice_params),
    ("oracle_create", oracle_create),
    ("itslearning_read", itslearning_read),
    ("itslearning_negotiate", itslearning_negotiate),
    ("http_range", http_range),
    ("http_bearer", http_bearer),
    ("query_pairs", query_pairs),
    ("fixture", fixture),
    ("fault_rules", fault_rules),
    ("native_zip", native_zip),
    ("dropbox_arg", dropbox_arg),
    ("json_net", json_net),
];

/// A DTD with an entity, put in front of an XML body: every XML reader must refuse the result.
const DOCTYPE: &[u8] = b"<!DOCTYPE r [<!ENTITY e \"x\">]>";

/// The first line and the rest (everything, and nothing, without a newline).
fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fn with_header(headers: &mut HeaderMap, name: HeaderName, value: &[u8]) {
    if value.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_bytes(value) {
        headers.insert(name, value);
    }
}

fn request(method: http::Method, query: &[u8], headers: HeaderMap, body: &[u8]) -> DialectRequest {
    let uri = std::str::from_utf8(query)
        .ok()
        .filter(|q| !q.is_empty())
        .and_then(|q| format!("/x?{q}").parse().ok())
        .unwrap_or_else(|| http::Uri::from_static("/x"));
    DialectRequest::new(method, uri, headers, Bytes::copy_from_slice(body))
}

fn prefixed(prefix: &[u8], body: &[u8]) -> Vec<u8> {
    [prefix, body].concat()
}

/// Box: `POST /2.0/zip_downloads` body. Every refusal is a 400
/// `bad_request`; what parses names at least one item with a trimmed,
/// non-empty id, never the root folder, and re-serialises to itself.
pub fn box_request(data: &[u8]) {
    use zipgate_box::fuzzing::{parse, parse_checked, parse_usual, ZipRequest};
    // The fast path for usual bodies answers exactly as the full reader.
    let checked = parse_checked(data);
    if let Some(usual) = parse_usual(data) {
        assert_eq!(Some(&usual), checked.as_ref().ok(), "fast path differs");
    }
    let parsed = match parse(data) {
        Ok(parsed) => parsed,
        Err(err) => {
            assert_eq!(
                (err.status.as_u16(), err.code),
                (400, "bad_request"),
                "{err:?}"
            );
            return;
        }
    };
    assert!(!parsed.items.is_empty());
    for (kind, id) in &parsed.items {
        assert!(!id.is_empty() && id.trim() == id, "id {id:?}");
        assert!(!(*kind == NodeKind::Folder && id == "0"), "the root folder");
    }
    let items: Vec<Value> = parsed
        .items
        .iter()
        .map(|(kind, id)| {
            let kind = if *kind == NodeKind::File {
                "file"
            } else {
                "folder"
            };
            json!({"type": kind, "id": id})
        })
        .collect();
    let again = json!({"items": items, "download_file_name": parsed.download_file_name});
    let reparsed: ZipRequest = parse(again.to_string().as_bytes()).expect("re-serialised request");
    assert_eq!(reparsed, parsed);
}

/// The binder's `^name(\[)?(\d+)?(\])?$` without case, written plainly.
fn list_key_reference(key: &str, name: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let Some(rest) = key.strip_prefix(&name.to_ascii_lowercase()) else {
        return false;
    };
    rest.is_empty()
        || rest
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .is_some_and(|inner| inner.bytes().all(|b| b.is_ascii_digit()))
}

/// ONLYOFFICE: query string and body (JSON, `text/xml` or form) as name/value
/// pairs, then the lookups the handlers make. Only JSON and XML can be
/// refused; list lookups agree with the binder's pattern; a DTD is refused.
pub fn onlyoffice_params(data: &[u8]) {
    use zipgate_onlyoffice::fuzzing::{form_field, params, JsonSyntax, MAX_PAIRS, MAX_PAIR_BYTES};
    let (query, rest) = split_line(data);
    let (content_type, body) = split_line(rest);
    let mut headers = HeaderMap::new();
    with_header(&mut headers, header::CONTENT_TYPE, content_type);
    let kind = zipgate_api::http::media_type(&headers);
    let req = request(http::Method::PUT, query, headers, body);
    let query_pairs = api_query_pairs(req.uri.query().unwrap_or("")).len();
    let form = !matches!(kind.as_deref(), Some("application/json" | "text/xml"));
    // The first byte picks the reader (Community Server's or DocSpace's).
    let syntax = if data.first().is_some_and(|b| b & 1 == 1) {
        JsonSyntax::Strict
    } else {
        JsonSyntax::JsonNet
    };
    match params(&req, body, syntax) {
        Ok(params) => {
            // The body's pairs stay within the caps, whatever its shape.
            let from_body = &params.0[query_pairs..];
            assert!(from_body.len() <= MAX_PAIRS, "{} pairs", from_body.len());
            let bytes: usize = from_body.iter().map(|(k, v)| k.len() + v.len()).sum();
            assert!(bytes <= MAX_PAIR_BYTES, "{bytes} bytes of pairs");
            // The authorizers' bounded scan finds what the parse finds: in
            // the query and a form body, and never in JSON or XML.
            let scanned = form_field(&req, body, "asc_auth_key");
            if form {
                assert_eq!(scanned.as_deref(), params.get("asc_auth_key"), "form field");
            } else if scanned.is_some() {
                let in_query = api_query_pairs(req.uri.query().unwrap_or(""))
                    .into_iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("asc_auth_key"));
                assert!(in_query, "a token read from a JSON or XML body");
            }
            for name in ["fileIds", "folderIds"] {
                let expected = params
                    .0
                    .iter()
                    .filter(|(key, _)| list_key_reference(key, name))
                    .count();
                assert_eq!(params.list(name).len(), expected, "list {name}");
            }
            for name in ["returnSingleOperation", "asc_auth_key"] {
                let _ = params.flag(name);
            }
            for name in ["userName", "password"] {
                if let Some(value) = params.get(name) {
                    assert!(params.0.iter().any(|(_, v)| v == value));
                }
            }
        }
        Err(err) => {
            let over_cap = err.status == 400 && err.message.contains("too many parameters");
            assert!(!form || over_cap, "a form body was refused: {err:?}");
        }
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    let with_dtd = prefixed(DOCTYPE, body);
    let req = request(http::Method::PUT, b"", headers, &with_dtd);
    assert!(
        params(&req, &with_dtd, syntax).is_err(),
        "a DTD was accepted"
    );
}

/// Json.NET's reader (`zipgate_api::jsonnet`): never panics, in either
/// mode; accepts every document a strict RFC 8259 parser accepts within its
/// depth cap, with the same strings and the same shape; and, stopping after
/// the root, accepts whatever the checking mode accepts, with the same value.
pub fn json_net(data: &[u8]) {
    use zipgate_api::jsonnet::{parse, ReaderOptions, Value};
    let checked = parse(data, ReaderOptions::default());
    let streamed = parse(
        data,
        ReaderOptions {
            reject_additional_content: false,
            ..ReaderOptions::default()
        },
    );
    if let Ok(value) = &checked {
        assert_eq!(streamed.as_ref().ok(), Some(value), "stream mode differs");
    }
    fn depth(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    /// Strings and shape, numbers as "some number" (the parsers spell them differently).
    fn same(a: &Value, b: &serde_json::Value) -> bool {
        match (a, b) {
            (Value::Null, serde_json::Value::Null) => true,
            (Value::Bool(x), serde_json::Value::Bool(y)) => x == y,
            (Value::Integer(_) | Value::Float(_), serde_json::Value::Number(_)) => true,
            (Value::String(x), serde_json::Value::String(y)) => x == y,
            (Value::Array(x), serde_json::Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            // serde_json keeps the last of repeated names; compare those.
            (Value::Object(x), serde_json::Value::Object(y)) => y.iter().all(|(name, b)| {
                x.iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .is_some_and(|(_, a)| same(a, b))
            }),
            _ => false,
        }
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(strict) = serde_json::from_str::<serde_json::Value>(&text) {
        if depth(&strict) <= 64 {
            let lenient = checked.unwrap_or_else(|e| panic!("refused valid JSON: {e}"));
            let lenient = lenient.expect("a value was read");
            assert!(same(&lenient, &strict), "{lenient:?} read as {strict:?}");
        }
    }
}

/// Oracle: `POST …/_download` body. What parses is a non-empty list of
/// trimmed, non-empty GUIDs without commas, and re-serialises to itself.
pub fn oracle_create(data: &[u8]) {
    use zipgate_oracle::fuzzing::parse_create_body;
    match parse_create_body(data) {
        Ok(guids) => {
            assert!(!guids.is_empty(), "an idList that names nothing");
            for guid in &guids {
                assert!(
                    !guid.is_empty() && guid.trim() == guid && !guid.contains(','),
                    "guid {guid:?}"
                );
            }
            let again = json!({"idList": guids.join(",")}).to_string();
            assert_eq!(parse_create_body(again.as_bytes()), Ok(guids));
        }
        Err(message) => assert!(
            message.starts_with("Unable to start bulk download of files. "),
            "{message}"
        ),
    }
}

fn itslearning_serialise(
    kind: &str,
    parsed: &zipgate_itslearning::fuzzing::ZipRequest,
) -> Option<Vec<u8>> {
    use zipgate_itslearning::fuzzing::{ARRAYS_NS, ENTITIES_NS};
    let lists = [
        ("FileIds", &parsed.file_ids),
        ("FolderIds", &parsed.folder_ids),
    ];
    match kind {
        "application/json" | "text/json" => {
            let mut map = serde_json::Map::new();
            for (name, ids) in lists {
                if let Some(ids) = ids {
                    map.insert(name.into(), json!(ids));
                }
            }
            Some(Value::Object(map).to_string().into_bytes())
        }
        "application/xml" | "text/xml" => {
            let mut xml = format!(r#"<ZipRequest xmlns="{ENTITIES_NS}" xmlns:a="{ARRAYS_NS}">"#);
            for (name, ids) in lists {
                if let Some(ids) = ids {
                    xml.push_str(&format!("<{name}>"));
                    for id in ids {
                        xml.push_str(&format!("<a:int>{id}</a:int>"));
                    }
                    xml.push_str(&format!("</{name}>"));
                }
            }
            xml.push_str("</ZipRequest>");
            Some(xml.into_bytes())
        }
        "application/x-www-form-urlencoded" => {
            let mut pairs = Vec::new();
            for (name, ids) in lists {
                for id in ids.iter().flatten() {
                    pairs.push(format!("{name}={id}"));
                }
            }
            Some(pairs.join("&").into_bytes())
        }
        _ => None,
    }
}

/// itslearning: `POST …/files/zip/v1` body by Content-Type. An empty body is
/// the null model; an unknown or missing type is a 415; what parses
/// re-serialises to itself in the same format; a DTD is refused.
pub fn itslearning_read(data: &[u8]) {
    use zipgate_itslearning::fuzzing::{read, request_content_type, ReadError};
    let (content_type, body) = split_line(data);
    let mut headers = HeaderMap::new();
    with_header(&mut headers, header::CONTENT_TYPE, content_type);
    // As Web API parses the header: one that does not parse is none.
    let kind = request_content_type(&headers).map(|parsed| parsed.media);
    let req = request(http::Method::POST, b"", headers.clone(), body);
    let result = read(&req, body);
    if body.is_empty() {
        assert_eq!(result, Ok(None));
        return;
    }
    match result {
        Ok(Some(parsed)) => {
            let kind = kind.as_deref().unwrap_or("");
            let again =
                itslearning_serialise(kind, &parsed).unwrap_or_else(|| panic!("{kind:?} was read"));
            let req = request(http::Method::POST, b"", headers, &again);
            assert_eq!(
                read(&req, &again),
                Ok(Some(parsed)),
                "{}",
                String::from_utf8_lossy(&again)
            );
        }
        Ok(None) => assert!(
            matches!(
                kind.as_deref(),
                Some("application/x-www-form-urlencoded" | "application/json" | "text/json")
            ),
            "only an empty body, JSON null or a form without ids is a null model: {kind:?}"
        ),
        Err(ReadError::Invalid(state)) => {
            assert!(!state.0.is_empty(), "an invalid model with no error");
            for (key, messages) in &state.0 {
                assert!(key.starts_with("request"), "{key}");
                assert!(!messages.is_empty() && messages.iter().all(|m| !m.is_empty()));
            }
        }
        Err(ReadError::Unsupported(message)) => assert!(
            !matches!(
                kind.as_deref(),
                Some(
                    "application/json"
                        | "text/json"
                        | "application/xml"
                        | "text/xml"
                        | "application/x-www-form-urlencoded"
                )
            ),
            "{message}"
        ),
    }
    for xml in ["application/xml", "text/xml"] {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(xml));
        let with_dtd = prefixed(DOCTYPE, body);
        let req = request(http::Method::POST, b"", headers, &with_dtd);
        assert!(
            matches!(read(&req, &with_dtd), Err(ReadError::Invalid(state)) if state.0.len() == 1 && state.0[0].0 == "request"),
            "a DTD was accepted"
        );
    }
}

/// itslearning: Web API 2's content negotiation over `Accept` and
/// `Content-Type`. A range the server cannot serve changes nothing, and with
/// neither header the answer is JSON.
pub fn itslearning_negotiate(data: &[u8]) {
    use zipgate_itslearning::fuzzing::{negotiate, Charset, Format};
    let (accept, content_type) = split_line(data);
    let mut headers = HeaderMap::new();
    with_header(&mut headers, header::ACCEPT, accept);
    with_header(&mut headers, header::CONTENT_TYPE, content_type);
    let format = negotiate(&headers);
    assert!(matches!(
        format,
        Format::Json("application/json" | "text/json", _)
            | Format::Xml("application/xml" | "text/xml", _)
    ));
    if headers.is_empty() {
        assert_eq!(format, Format::Json("application/json", Charset::Utf8));
    }
    if let Some(accept) = headers.get(header::ACCEPT) {
        let mut more = accept.as_bytes().to_vec();
        more.extend_from_slice(b", text/plain, image/*;q=1");
        let mut headers = headers.clone();
        headers.insert(header::ACCEPT, HeaderValue::from_bytes(&more).unwrap());
        assert_eq!(
            negotiate(&headers),
            format,
            "an unservable range changed the answer"
        );
    }
}

/// `Range` against a representation of `length` bytes: a partial answer
/// always lies within the body.
pub fn http_range(data: &[u8]) {
    let (length, range) = split_line(data);
    let len = std::str::from_utf8(length)
        .ok()
        .and_then(|l| l.trim().parse::<u64>().ok())
        .unwrap_or(length.len() as u64);
    let mut headers = HeaderMap::new();
    with_header(&mut headers, header::RANGE, range);
    match parse_range(&headers, len) {
        RangeRequest::Partial { start, end } => {
            assert!(start <= end && end < len, "{start}-{end} of {len}");
        }
        RangeRequest::Unsatisfiable => assert!(headers.contains_key(header::RANGE)),
        RangeRequest::Full => {}
    }
}

/// `Authorization: Bearer …`: a token is what follows the scheme, trimmed and non-empty.
pub fn http_bearer(data: &[u8]) {
    let mut headers = HeaderMap::new();
    with_header(&mut headers, header::AUTHORIZATION, data);
    match bearer(&headers) {
        Credentials::None => assert!(headers.is_empty()),
        Credentials::Bearer(token) => {
            let value = headers[header::AUTHORIZATION].to_str().unwrap();
            assert!(!token.is_empty() && token.trim() == token, "{token:?}");
            assert!(value[..7].eq_ignore_ascii_case("bearer "), "{value:?}");
            assert!(value.trim_end().ends_with(token));
        }
        Credentials::Malformed => assert!(!headers.is_empty()),
    }
}

/// Strict `application/x-www-form-urlencoded` decoding: `%` and two hex
/// digits is a byte, `+` a space, anything else itself.
fn percent_decode_reference(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode_all(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.extend([
                '%',
                HEX[usize::from(b >> 4)] as char,
                HEX[usize::from(b & 15)] as char,
            ]);
        }
    }
    out
}

/// Query strings and form bodies (`a=1&b=x%20y`): one pair per non-empty
/// `&`-separated part, decoded strictly, and encoding the pairs again reads
/// back the same pairs.
pub fn query_pairs(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let pairs = api_query_pairs(&text);
    let expected: Vec<(String, String)> = text
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            (
                percent_decode_reference(key),
                percent_decode_reference(value),
            )
        })
        .collect();
    assert_eq!(pairs, expected, "{text:?}");
    let encoded = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode_all(k), percent_encode_all(v)))
        .collect::<Vec<_>>()
        .join("&");
    assert_eq!(api_query_pairs(&encoded), pairs);
}

fn count_nodes(nodes: &Value) -> usize {
    nodes.as_array().map_or(0, |list| {
        list.iter()
            .map(|node| 1 + node.get("children").map_or(0, count_nodes))
            .sum()
    })
}

fn check_store(store: &Tree, json: &Value) {
    assert_eq!(store.node_count(), json.get("nodes").map_or(0, count_nodes));
    for node in store.nodes() {
        match &node.parent {
            None => assert!(store.roots().any(|root| root.id == node.id)),
            Some(parent) => {
                let parent = store.node(parent).expect("the parent is in the store");
                let NodeData::Folder(children) = &parent.data else {
                    panic!("the parent {:?} is a file", parent.id);
                };
                assert!(children.contains(&node.id));
            }
        }
        assert!(!node.id.0.is_empty() && !node.name.is_empty());
    }
    for user in store.users() {
        if let Some(home) = &user.home {
            assert_eq!(store.node(home).map(|n| n.kind()), Some(NodeKind::Folder));
        }
    }
}

/// The fixture document (`--fixtures`, `PUT /_zipgate/fixtures`): every node
/// of the document is in the store once, under a folder that lists it.
pub fn fixture(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = match FixtureSource::from_text(text, crate::store::ContentPaths::Refused) {
        Ok(source) => source,
        Err(err) => {
            assert_eq!(err.path, "$");
            return;
        }
    };
    match source.parse() {
        Ok(store) => check_store(&store, &source.json),
        Err(err) => assert!(!err.path.is_empty() && !err.message.is_empty()),
    }
}

/// Fault rules (`--faults`, `POST /_zipgate/faults`): what parses is usable,
/// re-serialises to itself, and fires on a request that is exactly what it
/// matches.
pub fn fault_rules(data: &[u8]) {
    let Ok(json) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let rules = match faults::parse_rules(&json) {
        Ok(rules) => rules,
        Err(message) => {
            assert!(message.starts_with('$'), "{message}");
            return;
        }
    };
    for rule in rules {
        let value = serde_json::to_value(&rule).expect("a rule serialises");
        let mut again = faults::parse_rules(&value).expect("a re-serialised rule parses");
        assert_eq!(again.len(), 1);
        let mut again = again.remove(0);
        // The float parser may be a unit in the last place off.
        if let (Some(a), Some(b)) = (rule.probability, again.probability) {
            assert!((a - b).abs() <= f64::EPSILON, "{a} {b}");
            again.probability = rule.probability;
        }
        assert_eq!(again, rule);

        let m = &rule.matching;
        let path = m
            .path
            .as_deref()
            .map_or("/".to_owned(), |p| p.replace('*', ""));
        let facts = RequestFacts {
            dialect: m.dialect.as_deref(),
            method: m.method.as_deref().unwrap_or("GET"),
            path: &path,
            user: m.user.as_deref().map(|u| (u, u)),
        };
        let book = FaultBook::new(0);
        let id = book
            .add(rule.clone())
            .expect("a parsed rule is accepted")
            .id;
        let fires =
            rule.after == 0 && rule.times != Some(0) && rule.probability.is_none_or(|p| p >= 1.0);
        let decision = book.decide(&facts);
        if fires {
            assert_eq!(decision.expect("the rule fires").rules, vec![id]);
        }
        if rule.probability.is_none_or(|p| p >= 1.0) && rule.times != Some(0) && rule.after < 8 {
            // The glob matches the pattern itself, too.
            let facts = RequestFacts {
                path: m.path.as_deref().unwrap_or("/"),
                ..facts
            };
            let book = FaultBook::new(0);
            book.add(rule.clone()).expect("a parsed rule is accepted");
            let matched = (0..=rule.after)
                .map(|_| book.decide(&facts))
                .last()
                .flatten();
            assert!(matched.is_some(), "the rule did not match its own pattern");
        }
    }
}

/// zipgate's own `POST /_zipgate/zip` body: the archive name is one safe
/// path component ending in `.zip`.
pub fn native_zip(data: &[u8]) {
    match crate::server::native::parse_request(data) {
        Ok((_ids, name)) => {
            assert!(name.to_ascii_lowercase().ends_with(".zip"), "{name:?}");
            assert!(
                !name.contains(['/', '\\', ':']) && !name.chars().any(char::is_control),
                "{name:?}"
            );
        }
        Err(message) => assert!(!message.is_empty()),
    }
}

/// Dropbox: the `Dropbox-API-Arg` header of `files/download_zip`. A refusal
/// is a 400 naming the header; an accepted path matches `ReadPath`, has a
/// lookup target without panicking, and survives Dropbox's own "HTTP header
/// safe" JSON (ASCII, `\\uXXXX`) unchanged.
pub fn dropbox_arg(data: &[u8]) {
    use zipgate_dropbox::fuzzing::{path_arg, python_json, read_path, target, DropboxError};
    let mut headers = HeaderMap::new();
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return; // not a header hyper would hand over
    };
    headers.insert("dropbox-api-arg", value);
    match path_arg(&request(http::Method::POST, b"", headers, b"")) {
        Ok(path) => {
            assert!(read_path(&path), "{path:?}");
            let _ = target(&path);
            let again = python_json(&json!({ "path": path }));
            assert!(again.is_ascii(), "{again}");
            let mut headers = HeaderMap::new();
            headers.insert("dropbox-api-arg", HeaderValue::from_str(&again).unwrap());
            assert_eq!(
                path_arg(&request(http::Method::POST, b"", headers, b"")),
                Ok(path)
            );
        }
        Err(DropboxError::BadInput(detail)) => assert!(
            detail.starts_with("HTTP header \"Dropbox-API-Arg\": "),
            "{detail}"
        ),
        Err(other) => panic!("not a 400: {other:?}"),
    }
}
