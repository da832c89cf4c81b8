//! Request parameters the way Community Server's `ApiArgumentBuilder`
//! gathers them: the query string, then the body by Content-Type (JSON and
//! `text/xml` flattened to name/value pairs, anything else read as a form),
//! keys compared without case; and the binder's list rules.

use quick_xml::events::Event;
use zipgate_api::dialect::{percent_decode, query_pairs, raw_pairs};
use zipgate_api::http::media_type;
use zipgate_api::jsonnet::{self, ReaderOptions, Value};
use zipgate_api::DialectRequest;

use crate::errors::OoError;

/// Name/value pairs in arrival order; a name may repeat.
#[derive(Debug, Default, Clone)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Values of a list parameter: `name`, `name[]` or `name[3]`, any case.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| list_key_matches(key, name))
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// The `{"key": id, "value": ".ext"}` objects of a list parameter
    /// (`name[i][key]` and `name[i][value]` once flattened), in order: an id
    /// and the extension the vendor converts it to. `key` and `value` are
    /// matched exactly, as System.Text.Json's `GetProperty` does; an object
    /// without both is left out.
    pub fn keyed(&self, name: &str) -> Vec<(String, String)> {
        // One pass for the values, one for the keys: linear in the pairs.
        let values: std::collections::HashMap<&str, &str> = self
            .0
            .iter()
            .filter_map(|(k, v)| Some((object_index(k, name, "value")?, v.as_str())))
            .collect();
        self.0
            .iter()
            .filter_map(|(k, id)| {
                let value = values.get(object_index(k, name, "key")?)?;
                Some((id.clone(), (*value).to_owned()))
            })
            .collect()
    }

    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// The binder's `^name(\[)?(\d+)?(\])?$`, case-insensitive.
fn list_key_matches(key: &str, name: &str) -> bool {
    // `get`, not slicing: a key from the body may have a multi-byte
    // character across `name.len()`, which is then no prefix of it.
    let (Some(head), Some(rest)) = (key.get(..name.len()), key.get(name.len()..)) else {
        return false;
    };
    if !head.eq_ignore_ascii_case(name) {
        return false;
    }
    if rest.is_empty() {
        return true;
    }
    let Some(inner) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return false;
    };
    inner.bytes().all(|b| b.is_ascii_digit())
}

/// `i` when `key` is `name[i][field]` (`name` in any case, `field` exactly).
fn object_index<'k>(key: &'k str, name: &str, field: &str) -> Option<&'k str> {
    let head = key.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    let rest = key.get(name.len()..)?.strip_prefix('[')?;
    let (index, rest) = rest.split_once(']')?;
    let inner = rest.strip_prefix('[')?.strip_suffix(']')?;
    (index.bytes().all(|b| b.is_ascii_digit()) && !index.is_empty() && inner == field)
        .then_some(index)
}

/// Most name/value pairs one body may flatten to: ASP.NET's
/// `MaxHttpCollectionKeys`, the cap the vendor's own form reader applies.
pub const MAX_PAIRS: usize = 1000;

/// Most bytes (names and values) one body may flatten to. Nested names
/// repeat their parents (`a[b][c]`), so a small body can name far more
/// than it holds; this keeps the pairs within a small multiple of
/// `--max-body`'s default whatever their shape.
pub const MAX_PAIR_BYTES: usize = 1 << 20;

/// The pairs a body flattens to, refused past [`MAX_PAIRS`] or [`MAX_PAIR_BYTES`].
struct Budget<'a> {
    out: &'a mut Vec<(String, String)>,
    pairs: usize,
    bytes: usize,
}

impl<'a> Budget<'a> {
    fn new(out: &'a mut Vec<(String, String)>) -> Self {
        Budget {
            out,
            pairs: 0,
            bytes: 0,
        }
    }

    /// Checked before the name is copied, so an oversized name costs nothing.
    fn push(&mut self, key: &str, value: String) -> Result<(), OoError> {
        self.pairs += 1;
        self.bytes = self.bytes.saturating_add(key.len() + value.len());
        if self.pairs > MAX_PAIRS || self.bytes > MAX_PAIR_BYTES {
            return Err(OoError::too_many_parameters(MAX_PAIRS, MAX_PAIR_BYTES));
        }
        self.out.push((key.to_owned(), value));
        Ok(())
    }
}

/// Whether the vendor reads this request's body as a form (`Request.Form`):
/// not a GET, and neither JSON nor `text/xml`.
fn body_is_form(request: &DialectRequest) -> bool {
    request.method != http::Method::GET
        && !matches!(
            media_type(&request.headers).as_deref(),
            Some("application/json" | "text/xml")
        )
}

/// The first value of `name` (any case) in the query string or a form body,
/// as `Request[name]` finds it, without flattening the body: names are
/// decoded only when they could spell `name`, and only the match's value is.
/// Linear in the body and allocation-free but for the answer, so the
/// authorizers can run on it before the body is parsed.
pub fn form_field(request: &DialectRequest, body: &[u8], name: &str) -> Option<String> {
    // `%XX` is the longest spelling of one byte.
    let longest = name.len() * 3;
    let find = |text: &str| {
        raw_pairs(text)
            .find(|(key, _)| key.len() <= longest && percent_decode(key).eq_ignore_ascii_case(name))
            .map(|(_, value)| percent_decode(value))
    };
    find(request.uri.query().unwrap_or(""))
        .or_else(|| body_is_form(request).then(|| find(&String::from_utf8_lossy(body)))?)
}

/// The query string merged with the body, as the vendor reads them. The
/// body's pairs are capped ([`MAX_PAIRS`], [`MAX_PAIR_BYTES`]); past that
/// the request is refused with the vendor's 400.
/// Which JSON syntax a server's reader takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonSyntax {
    /// Community Server: `JsonConvert.DeserializeXNode` (Newtonsoft.Json
    /// 13.0.1, `ApiArgumentBuilder.cs`): single quotes, unquoted names,
    /// comments, trailing commas and the rest of `JsonTextReader`'s
    /// leniency; a repeated member is a repeated element, so both values count.
    JsonNet,
    /// DocSpace: ASP.NET Core's System.Text.Json with default options, which
    /// takes RFC 8259 only.
    Strict,
}

pub fn params(
    request: &DialectRequest,
    body: &[u8],
    syntax: JsonSyntax,
) -> Result<Params, OoError> {
    let mut params = Params(query_pairs(request.uri.query().unwrap_or("")));
    if request.method == http::Method::GET {
        return Ok(params);
    }
    let mut budget = Budget::new(&mut params.0);
    match media_type(&request.headers).as_deref() {
        Some("application/json") => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(params);
            }
            let value = match syntax {
                JsonSyntax::JsonNet => jsonnet::parse(body, ReaderOptions::default())
                    .map_err(|e| OoError::malformed_json(&e.message))?
                    // Only comments: DeserializeXNode reads no root.
                    .unwrap_or(Value::Undefined),
                JsonSyntax::Strict => serde_json::from_slice::<serde_json::Value>(body)
                    .map_err(|e| OoError::malformed_json(&e.to_string()))?
                    .into(),
            };
            let Value::Object(members) = value else {
                return Err(OoError::malformed_json(
                    "XmlNodeConverter can only convert JSON that begins with an object.",
                ));
            };
            let mut key = String::new();
            for (name, value) in &members {
                key.clear();
                key.push_str(name);
                flatten_json(&mut key, value, &mut budget)?;
            }
        }
        Some("text/xml") => {
            if !body.iter().all(u8::is_ascii_whitespace) {
                flatten_xml(body, &mut budget)?;
            }
        }
        _ => {
            for (key, value) in raw_pairs(&String::from_utf8_lossy(body)) {
                budget.push(&percent_decode(key), percent_decode(value))?;
            }
        }
    }
    Ok(params)
}

/// Flattens `value` under the name in `key`: `a[b][0][c]`. The name is built
/// in the one buffer (each level appends its part and takes it off again),
/// so the work is linear in the body plus the bytes of the pairs kept.
fn flatten_json(key: &mut String, value: &Value, out: &mut Budget) -> Result<(), OoError> {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Object(_) => {
                        let mark = key.len();
                        key.push('[');
                        key.push_str(&i.to_string());
                        key.push(']');
                        flatten_json(key, item, out)?;
                        key.truncate(mark);
                    }
                    other => {
                        if let Some(text) = other.scalar_text() {
                            out.push(key, text)?;
                        }
                    }
                }
            }
        }
        Value::Object(members) => {
            for (sub, item) in members {
                let mark = key.len();
                key.push('[');
                key.push_str(sub);
                key.push(']');
                flatten_json(key, item, out)?;
                key.truncate(mark);
            }
        }
        other => {
            if let Some(text) = other.scalar_text() {
                out.push(key, text)?;
            }
        }
    }
    Ok(())
}

/// Every leaf under the root element as a pair (`fileConvertIds` ›
/// `key` → `fileConvertIds[key]`); the root's name is ignored. The name is
/// built in one buffer as for JSON, so depth costs nothing per leaf.
/// DTDs are refused, so no entity is ever expanded.
fn flatten_xml(body: &[u8], out: &mut Budget) -> Result<(), OoError> {
    let mut reader = quick_xml::Reader::from_reader(body);
    // The name of the open element, and per open element the name's length
    // before it and whether it has had a child element.
    let mut key = String::new();
    let mut open: Vec<(usize, bool)> = Vec::new();
    let mut text = String::new();
    let mut buf = Vec::new();
    // The root contributes nothing; its children start the name, deeper
    // elements add `[name]`.
    let append = |key: &mut String, depth: usize, name: &[u8]| {
        let name = String::from_utf8_lossy(name);
        match depth {
            0 => {}
            1 => key.push_str(&name),
            _ => {
                key.push('[');
                key.push_str(&name);
                key.push(']');
            }
        }
    };
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| OoError::malformed_xml(&e.to_string()))?;
        match event {
            Event::DocType(_) => return Err(OoError::malformed_xml("DTDs are not allowed.")),
            Event::Start(e) => {
                if let Some((_, had_child)) = open.last_mut() {
                    *had_child = true;
                }
                open.push((key.len(), false));
                append(&mut key, open.len() - 1, e.local_name().as_ref());
                text.clear();
            }
            Event::Empty(e) => {
                if let Some((_, had_child)) = open.last_mut() {
                    *had_child = true;
                }
                if !open.is_empty() {
                    let mark = key.len();
                    append(&mut key, open.len(), e.local_name().as_ref());
                    out.push(&key, String::new())?;
                    key.truncate(mark);
                }
            }
            Event::Text(t) => {
                let unescaped = t
                    .unescape()
                    .map_err(|e| OoError::malformed_xml(&e.to_string()))?;
                text.push_str(&unescaped);
            }
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::End(_) => {
                let (mark, had_child) = open.pop().unwrap_or_default();
                if !had_child && !open.is_empty() {
                    out.push(&key, text.trim().to_owned())?;
                }
                key.truncate(mark);
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !open.is_empty() {
        return Err(OoError::malformed_xml("Unexpected end of file."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keyed_objects_pair_key_and_value_by_index() {
        let params = Params(
            [
                ("fileIds[0]", "7"),
                ("FILEIDS[1][key]", "12"),
                ("fileIds[1][value]", ".pdf"),
                ("fileIds[2][value]", ".txt"),
                ("fileIds[2][key]", "13"),
                ("fileIds[3][Key]", "14"),
                ("fileIds[3][value]", ".odt"),
                ("fileIds[4][key]", "15"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        assert_eq!(
            params.keyed("fileIds"),
            [
                ("12".to_owned(), ".pdf".to_owned()),
                ("13".into(), ".txt".into())
            ]
        );
        assert_eq!(params.list("fileIds"), ["7"]);
    }

    use super::*;
    use bytes_shim::request;

    mod bytes_shim {
        use zipgate_api::DialectRequest;

        pub fn request(method: &str, uri: &str, content_type: Option<&str>) -> DialectRequest {
            let mut headers = http::HeaderMap::new();
            if let Some(ct) = content_type {
                headers.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            }
            DialectRequest::new(
                method.parse().unwrap(),
                uri.parse().unwrap(),
                headers,
                Default::default(),
            )
        }
    }

    fn ids(
        method: &str,
        uri: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> (Vec<String>, Vec<String>) {
        let params = params(
            &request(method, uri, content_type),
            body.as_bytes(),
            JsonSyntax::JsonNet,
        )
        .unwrap();
        (params.list("fileIds"), params.list("folderIds"))
    }

    #[test]
    fn json_bodies_in_every_shape() {
        let json = Some("application/json; charset=utf-8");
        assert_eq!(
            ids("PUT", "/x", json, r#"{"fileIds":[1,"2"],"folderIds":"3"}"#),
            (vec!["1".into(), "2".into()], vec!["3".into()])
        );
        assert_eq!(
            ids("PUT", "/x", json, r#"{"FILEIDS":[5]}"#).0,
            vec!["5".to_string()]
        );
        assert_eq!(
            ids("PUT", "/x", json, r#"{"fileIds":[]}"#),
            (vec![], vec![])
        );
        assert_eq!(
            ids("PUT", "/x?fileIds=9", json, r#"{"fileIds":[1]}"#).0,
            vec!["9".to_string(), "1".to_string()]
        );
        assert!(params(&request("PUT", "/x", json), b"[1]", JsonSyntax::JsonNet).is_err());
        assert!(params(&request("PUT", "/x", json), b"{", JsonSyntax::JsonNet).is_err());
    }

    #[test]
    fn list_keys_with_a_multi_byte_character_at_the_name_length() {
        // Found by the onlyoffice_params fuzz target: slicing `fileIdé` at
        // `"fileIds".len()` cut `é` in half and panicked.
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(
            ids(
                "PUT",
                "/x",
                form,
                "fileId%C3%A9=1&folderI%C3%B0s=2&fileIds=3"
            ),
            (vec!["3".into()], vec![])
        );
        assert_eq!(
            ids(
                "PUT",
                "/x",
                Some("application/json"),
                r#"{"fileIdé":[1],"é":[2]}"#
            ),
            (vec![], vec![])
        );
        assert!(!list_key_matches("fileIdé", "fileIds"));
        assert!(list_key_matches("FILEIDS[12]", "fileIds"));
    }

    #[test]
    fn nested_names_as_the_vendor_flattens_them() {
        let pairs = |ct: &str, body: &str| {
            params(
                &request("PUT", "/x", Some(ct)),
                body.as_bytes(),
                JsonSyntax::JsonNet,
            )
            .unwrap()
            .0
        };
        let expected: Vec<(String, String)> = [
            ("fileConvertIds[0][key]", "1"),
            ("fileConvertIds[0][value]", ".pdf"),
            ("fileConvertIds[1][key]", "2"),
            ("a[b][c]", "x"),
            ("a[d]", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            pairs(
                "application/json",
                r#"{"fileConvertIds":[{"key":"1","value":".pdf"},{"key":2}],"a":{"b":{"c":"x"},"d":""}}"#
            ),
            expected
        );
        // XML repeats an element instead of indexing it.
        let owned = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            pairs(
                "text/xml",
                "<request><fileConvertIds><key>1</key><value>.pdf</value></fileConvertIds>\
                 <fileConvertIds><key>2</key></fileConvertIds><a><b><c> x </c></b><d/></a></request>"
            ),
            owned(&[
                ("fileConvertIds[key]", "1"),
                ("fileConvertIds[value]", ".pdf"),
                ("fileConvertIds[key]", "2"),
                ("a[b][c]", "x"),
                ("a[d]", ""),
            ])
        );
    }

    #[test]
    fn bodies_past_the_caps_are_refused() {
        let refused = |ct: &str, body: String| {
            let err = params(
                &request("PUT", "/x", Some(ct)),
                body.as_bytes(),
                JsonSyntax::JsonNet,
            )
            .unwrap_err();
            assert_eq!(err.status, 400, "{err:?}");
            assert!(err.message.contains("too many parameters"), "{err:?}");
        };
        // A long name repeated per array item: the bytes cap.
        let key = "k".repeat(100_000);
        refused(
            "application/json",
            format!(r#"{{"{key}":[{}]}}"#, vec!["1"; 20].join(",")),
        );
        // Many short pairs: the count cap, in every body type.
        let items = vec!["1"; MAX_PAIRS + 1].join(",");
        refused("application/json", format!(r#"{{"fileIds":[{items}]}}"#));
        refused(
            "text/xml",
            format!("<r>{}</r>", "<f>1</f>".repeat(MAX_PAIRS + 1)),
        );
        refused(
            "application/x-www-form-urlencoded",
            "f=1&".repeat(MAX_PAIRS + 1),
        );
        // Exactly at the cap is fine.
        let items = vec!["1"; MAX_PAIRS].join(",");
        let ok = params(
            &request("PUT", "/x", Some("application/json")),
            format!(r#"{{"fileIds":[{items}]}}"#).as_bytes(),
            JsonSyntax::JsonNet,
        )
        .unwrap();
        assert_eq!(ok.list("fileIds").len(), MAX_PAIRS);
    }

    #[test]
    fn deep_xml_costs_no_more_than_its_size() {
        // 8000 levels and 1000 leaves at the bottom: naming each leaf from
        // its whole path took seconds; one shared buffer hits the byte cap
        // after a few leaves.
        let xml = format!(
            "<r>{}{}{}</r>",
            "<a>".repeat(8000),
            "<b/>".repeat(1000),
            "</a>".repeat(8000)
        );
        let started = std::time::Instant::now();
        let err = params(
            &request("PUT", "/x", Some("text/xml")),
            xml.as_bytes(),
            JsonSyntax::JsonNet,
        )
        .unwrap_err();
        assert!(err.message.contains("too many parameters"), "{err:?}");
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
        // One deep leaf is still read, with its whole name.
        let xml = format!("<r>{}x{}</r>", "<a>".repeat(500), "</a>".repeat(500));
        let pairs = params(
            &request("PUT", "/x", Some("text/xml")),
            xml.as_bytes(),
            JsonSyntax::JsonNet,
        )
        .unwrap()
        .0;
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].0, format!("a{}", "[a]".repeat(499)));
        assert_eq!(pairs[0].1, "x");
    }

    #[test]
    fn the_auth_key_is_found_without_parsing_the_body() {
        let find = |method: &str, uri: &str, ct: Option<&str>, body: &str| {
            form_field(&request(method, uri, ct), body.as_bytes(), "asc_auth_key")
        };
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(
            find(
                "PUT",
                "/x",
                form,
                "fileIds=1&ASC%5Fauth%5Fkey=t+1&asc_auth_key=2"
            )
            .as_deref(),
            Some("t 1")
        );
        assert_eq!(
            find("PUT", "/x?Asc_Auth_Key=q", form, "asc_auth_key=b").as_deref(),
            Some("q")
        );
        assert_eq!(
            find("PUT", "/x", None, "asc_auth_key=b").as_deref(),
            Some("b")
        );
        // JSON and XML bodies are no form; a GET's body is not read.
        assert_eq!(
            find(
                "PUT",
                "/x",
                Some("application/json"),
                r#"{"asc_auth_key":"t"}"#
            ),
            None
        );
        assert_eq!(
            find(
                "PUT",
                "/x",
                Some("text/xml"),
                "<r><asc_auth_key>t</asc_auth_key></r>"
            ),
            None
        );
        assert_eq!(find("GET", "/x", form, "asc_auth_key=t"), None);
        // A name too long to spell the key is skipped undecoded.
        let long = format!("{}=1&asc_auth_key=t", "%61".repeat(100_000));
        assert_eq!(find("PUT", "/x", form, &long).as_deref(), Some("t"));
    }

    #[test]
    fn xml_and_form_bodies() {
        assert_eq!(
            ids("PUT", "/x", Some("text/xml"), "<request><fileIds>1</fileIds><fileIds>2</fileIds><folderIds>7</folderIds></request>"),
            (vec!["1".into(), "2".into()], vec!["7".into()])
        );
        assert!(params(
            &request("PUT", "/x", Some("text/xml")),
            b"<!DOCTYPE x [<!ENTITY a 'b'>]><r/>",
            JsonSyntax::JsonNet
        )
        .is_err());
        assert!(params(
            &request("PUT", "/x", Some("text/xml")),
            b"<r><fileIds>1</r>",
            JsonSyntax::JsonNet
        )
        .is_err());
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(
            ids(
                "PUT",
                "/x",
                form,
                "fileIds=1&fileIds[]=2&fileIds[3]=4&folderIds=5&fileIdsX=6"
            ),
            (vec!["1".into(), "2".into(), "4".into()], vec!["5".into()])
        );
        // Without a Content-Type the body is read as a form too.
        assert_eq!(
            ids("PUT", "/x", None, "folderIds=8").1,
            vec!["8".to_string()]
        );
    }
}
