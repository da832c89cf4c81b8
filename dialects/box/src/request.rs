//! `ZipDownloadRequest` as Box validates it: every problem is a 400
//! `bad_request` naming the parameter.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use zipgate_api::NodeKind;

use crate::errors::BoxError;

#[derive(Debug, PartialEq, Eq)]
pub struct ZipRequest {
    pub items: Vec<(NodeKind, String)>,
    pub download_file_name: Option<String>,
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The usual body, read without building a JSON tree: only the documented
/// fields, with their documented types.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Usual<'a> {
    #[serde(borrow)]
    items: Vec<UsualItem<'a>>,
    #[serde(default, borrow)]
    download_file_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsualItem<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
}

/// The usual body's request, when it is valid; `None` for anything else
/// (unknown or repeated fields, other types, a bad item), which `parse_checked`
/// then reads and explains. It only ever returns what `parse_checked` would
/// (the fuzz target checks), in a third of the time and allocations.
pub fn parse_usual(body: &[u8]) -> Option<ZipRequest> {
    let usual: Usual<'_> = serde_json::from_slice(body).ok()?;
    if usual.items.is_empty() {
        return None;
    }
    let mut items = Vec::with_capacity(usual.items.len());
    for item in &usual.items {
        let kind = match &*item.kind {
            "file" => NodeKind::File,
            "folder" => NodeKind::Folder,
            _ => return None,
        };
        let id = item.id.trim();
        if id.is_empty() || (kind == NodeKind::Folder && id == "0") {
            return None;
        }
        items.push((kind, id.to_owned()));
    }
    Some(ZipRequest {
        items,
        download_file_name: usual.download_file_name.map(Cow::into_owned),
    })
}

pub fn parse(body: &[u8]) -> Result<ZipRequest, BoxError> {
    match parse_usual(body) {
        Some(request) => Ok(request),
        None => parse_checked(body),
    }
}

/// Reads any body as Box validates it, naming the parameter of each problem.
pub fn parse_checked(body: &[u8]) -> Result<ZipRequest, BoxError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BoxError::bad_request(
            "body",
            "The request body is missing.".into(),
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        BoxError::bad_request("body", format!("The request body is not valid JSON: {e}."))
    })?;
    let Value::Object(object) = value else {
        return Err(BoxError::bad_request(
            "body",
            "The request body must be a JSON object.".into(),
        ));
    };
    let items = match object.get("items") {
        None | Some(Value::Null) => {
            return Err(BoxError::bad_request(
                "items",
                "'items' is required.".into(),
            ))
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(BoxError::bad_request(
                "items",
                format!(
                    "Invalid value '{}'. 'items' must be an array of files and folders.",
                    describe(other)
                ),
            ))
        }
    };
    if items.is_empty() {
        return Err(BoxError::bad_request(
            "items",
            "'items' must list at least one file or folder.".into(),
        ));
    }
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(item) = item else {
            return Err(BoxError::bad_request(
                &format!("items[{i}]"),
                format!(
                    "Invalid value '{}'. Each item must be an object with 'type' and 'id'.",
                    describe(item)
                ),
            ));
        };
        let kind = match item.get("type") {
            Some(Value::String(t)) if t == "file" => NodeKind::File,
            Some(Value::String(t)) if t == "folder" => NodeKind::Folder,
            None => {
                return Err(BoxError::bad_request(
                    &format!("items[{i}].type"),
                    "'type' is required.".into(),
                ))
            }
            Some(other) => {
                return Err(BoxError::bad_request(
                    &format!("items[{i}].type"),
                    format!(
                        "Invalid value '{}'. 'type' must be one of: file, folder.",
                        describe(other)
                    ),
                ))
            }
        };
        let id = match item.get("id") {
            Some(Value::String(id)) if !id.trim().is_empty() => id.trim().to_owned(),
            None => {
                return Err(BoxError::bad_request(
                    &format!("items[{i}].id"),
                    "'id' is required.".into(),
                ))
            }
            Some(other) => {
                return Err(BoxError::bad_request(
                    &format!("items[{i}].id"),
                    format!(
                        "Invalid value '{}'. 'id' must be a non-empty string.",
                        describe(other)
                    ),
                ))
            }
        };
        if kind == NodeKind::Folder && id == "0" {
            return Err(BoxError::bad_request(
                &format!("items[{i}].id"),
                "The root folder with ID '0' cannot be added to a zip archive.".into(),
            ));
        }
        parsed.push((kind, id));
    }
    let download_file_name = match object.get("download_file_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name.clone()),
        Some(other) => {
            return Err(BoxError::bad_request(
                "download_file_name",
                format!(
                    "Invalid value '{}'. 'download_file_name' must be a string.",
                    describe(other)
                ),
            ))
        }
    };
    Ok(ZipRequest {
        items: parsed,
        download_file_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(err: BoxError) -> String {
        err.context_info.unwrap()["errors"][0]["name"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn valid_requests_parse() {
        let parsed = parse(br#"{"items":[{"type":"file","id":"1"},{"type":"folder","id":"2"}],"download_file_name":"x"}"#).unwrap();
        assert_eq!(
            parsed.items,
            vec![(NodeKind::File, "1".into()), (NodeKind::Folder, "2".into())]
        );
        assert_eq!(parsed.download_file_name.as_deref(), Some("x"));
    }

    #[test]
    fn the_fast_path_takes_only_what_the_full_reader_accepts_alike() {
        for (body, fast) in [
            (
                &br#"{"items":[{"type":"file","id":" 1 "}],"download_file_name":"x"}"#[..],
                true,
            ),
            (
                br#"{"items":[{"type":"fi\u006ce","id":"1"}],"download_file_name":null}"#,
                true,
            ),
            (br#"{"items":[{"id":"2","type":"folder"}]}"#, true),
            (br#"{"items":[{"type":"file","id":"1","extra":1}]}"#, false),
            (br#"{"items":[{"type":"file","id":"1"}],"items":[]}"#, false),
            (br#"{"items":[{"type":"file","id":"1"}],"x":1e400}"#, false),
            (
                br#"{"items":[{"type":"file","id":"1"}],"download_file_name":5}"#,
                false,
            ),
            (br#"{"items":[{"type":"folder","id":" 0"}]}"#, false),
            (br#"{"items":[{"type":"web_link","id":"1"}]}"#, false),
            (br#"{"items":[]}"#, false),
        ] {
            let text = String::from_utf8_lossy(body);
            let usual = parse_usual(body);
            assert_eq!(usual.is_some(), fast, "{text}");
            if let Some(usual) = usual {
                assert_eq!(Ok(usual), parse_checked(body), "{text}");
            }
        }
    }

    #[test]
    fn each_problem_names_its_parameter() {
        for (body, name) in [
            (&b""[..], "body"),
            (b"{", "body"),
            (b"[]", "body"),
            (b"{}", "items"),
            (br#"{"items":{}}"#, "items"),
            (br#"{"items":[]}"#, "items"),
            (br#"{"items":[1]}"#, "items[0]"),
            (br#"{"items":[{"id":"1"}]}"#, "items[0].type"),
            (
                br#"{"items":[{"type":"web_link","id":"1"}]}"#,
                "items[0].type",
            ),
            (br#"{"items":[{"type":"file"}]}"#, "items[0].id"),
            (br#"{"items":[{"type":"file","id":12}]}"#, "items[0].id"),
            (br#"{"items":[{"type":"folder","id":"0"}]}"#, "items[0].id"),
            (
                br#"{"items":[{"type":"file","id":"1"}],"download_file_name":5}"#,
                "download_file_name",
            ),
        ] {
            let err = parse(body).unwrap_err();
            assert_eq!((err.status.as_u16(), err.code), (400, "bad_request"));
            assert_eq!(name_of(err), name, "{}", String::from_utf8_lossy(body));
        }
    }
}
