//! Request parameters the way Community Server's `ApiArgumentBuilder`
//! gathers them: the query string, then the body by Content-Type (JSON and
//! `text/xml` flattened to name/value pairs, anything else read as a form),
//! keys compared without case; and the binder's list rules.

use quick_xml::events::Event;
use serde_json::Value;
use zipgate_api::dialect::query_pairs;
use zipgate_api::http::media_type;
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

/// The query string merged with the body, as the vendor reads them.
pub fn params(request: &DialectRequest, body: &[u8]) -> Result<Params, OoError> {
    let mut params = Params(query_pairs(request.uri.query().unwrap_or("")));
    if request.method == http::Method::GET {
        return Ok(params);
    }
    match media_type(&request.headers).as_deref() {
        Some("application/json") => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(params);
            }
            let value: Value = serde_json::from_slice(body)
                .map_err(|e| OoError::malformed_json(&e.to_string()))?;
            let Value::Object(map) = value else {
                return Err(OoError::malformed_json(
                    "XmlNodeConverter can only convert JSON that begins with an object.",
                ));
            };
            for (key, value) in map {
                flatten_json(&key, &value, &mut params.0);
            }
        }
        Some("text/xml") => {
            if !body.iter().all(u8::is_ascii_whitespace) {
                params.0.extend(flatten_xml(body)?);
            }
        }
        _ => params.0.extend(query_pairs(&String::from_utf8_lossy(body))),
    }
    Ok(params)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn flatten_json(key: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Object(_) => flatten_json(&format!("{key}[{i}]"), item, out),
                    other => {
                        if let Some(text) = scalar_text(other) {
                            out.push((key.to_owned(), text));
                        }
                    }
                }
            }
        }
        Value::Object(map) => {
            for (sub, item) in map {
                flatten_json(&format!("{key}[{sub}]"), item, out);
            }
        }
        other => {
            if let Some(text) = scalar_text(other) {
                out.push((key.to_owned(), text));
            }
        }
    }
}

/// Every leaf under the root element as a pair; the root's name is ignored.
/// DTDs are refused, so no entity is ever expanded.
fn flatten_xml(body: &[u8]) -> Result<Vec<(String, String)>, OoError> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut out = Vec::new();
    let mut had_child: Vec<bool> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| OoError::malformed_xml(&e.to_string()))?;
        match event {
            Event::DocType(_) => return Err(OoError::malformed_xml("DTDs are not allowed.")),
            Event::Start(e) => {
                if let Some(parent) = had_child.last_mut() {
                    *parent = true;
                }
                path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                had_child.push(false);
                text.clear();
            }
            Event::Empty(e) => {
                if let Some(parent) = had_child.last_mut() {
                    *parent = true;
                }
                if !path.is_empty() {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    out.push((key_for(&path[1..], &name), String::new()));
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
                let name = path.pop().unwrap_or_default();
                let leaf = !had_child.pop().unwrap_or(false);
                if leaf && !path.is_empty() {
                    out.push((key_for(&path[1..], &name), text.trim().to_owned()));
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !path.is_empty() {
        return Err(OoError::malformed_xml("Unexpected end of file."));
    }
    Ok(out)
}

/// `fileConvertIds` › `key` → `fileConvertIds[key]`.
fn key_for(parents: &[String], name: &str) -> String {
    match parents.split_first() {
        None => name.to_owned(),
        Some((first, rest)) => {
            let mut key = first.clone();
            for part in rest {
                key.push_str(&format!("[{part}]"));
            }
            key.push_str(&format!("[{name}]"));
            key
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes_shim::request;

    mod bytes_shim {
        use zipgate_api::DialectRequest;

        pub fn request(method: &str, uri: &str, content_type: Option<&str>) -> DialectRequest {
            let mut headers = http::HeaderMap::new();
            if let Some(ct) = content_type {
                headers.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            }
            DialectRequest {
                method: method.parse().unwrap(),
                uri: uri.parse().unwrap(),
                headers,
                body: Ok(Default::default()),
                params: Default::default(),
            }
        }
    }

    fn ids(
        method: &str,
        uri: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> (Vec<String>, Vec<String>) {
        let params = params(&request(method, uri, content_type), body.as_bytes()).unwrap();
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
        assert!(params(&request("PUT", "/x", json), b"[1]").is_err());
        assert!(params(&request("PUT", "/x", json), b"{").is_err());
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
    fn xml_and_form_bodies() {
        assert_eq!(
            ids("PUT", "/x", Some("text/xml"), "<request><fileIds>1</fileIds><fileIds>2</fileIds><folderIds>7</folderIds></request>"),
            (vec!["1".into(), "2".into()], vec!["7".into()])
        );
        assert!(params(
            &request("PUT", "/x", Some("text/xml")),
            b"<!DOCTYPE x [<!ENTITY a 'b'>]><r/>"
        )
        .is_err());
        assert!(params(
            &request("PUT", "/x", Some("text/xml")),
            b"<r><fileIds>1</r>"
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
