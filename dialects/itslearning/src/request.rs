//! Reading `ZipRequest` the way Web API 2's formatters do: JSON (names
//! without case, unknown members ignored), DataContractSerializer XML (exact
//! root and namespace, members in contract order), jQuery-style forms.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use serde_json::Value;
use zipgate_api::dialect::query_pairs;
use zipgate_api::http::media_type;
use zipgate_api::DialectRequest;

pub const ENTITIES_NS: &str =
    "http://schemas.datacontract.org/2004/07/Itslearning.RestApi.Entities.YourFiles";
pub const ARRAYS_NS: &str = "http://schemas.microsoft.com/2003/10/Serialization/Arrays";

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ZipRequest {
    pub file_ids: Option<Vec<i64>>,
    pub folder_ids: Option<Vec<i64>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// 415 with the framework's message.
    Unsupported(String),
    /// A ModelState error under this key (the model is then invalid).
    Invalid(String),
}

/// `Ok(None)` is Web API's null model: an empty body.
pub fn read(request: &DialectRequest, body: &[u8]) -> Result<Option<ZipRequest>, ReadError> {
    if body.is_empty() {
        return Ok(None);
    }
    match media_type(&request.headers).as_deref() {
        Some("application/json" | "text/json") => read_json(body).map(Some),
        Some("application/xml" | "text/xml") => read_xml(body).map(Some),
        Some("application/x-www-form-urlencoded") => read_form(body),
        Some(other) => Err(ReadError::Unsupported(format!(
            "The request entity's media type '{other}' is not supported for this resource."
        ))),
        None => Err(ReadError::Unsupported(
            "The request contains an entity body but no Content-Type header. The inferred media type \
             'application/octet-stream' is not supported for this resource."
                .into(),
        )),
    }
}

/// Json.NET coerces numeric strings to int.
fn int_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn read_json(body: &[u8]) -> Result<ZipRequest, ReadError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| ReadError::Invalid("request".into()))?;
    let Value::Object(map) = value else {
        return Err(ReadError::Invalid("request".into()));
    };
    let mut out = ZipRequest::default();
    for (key, value) in &map {
        let slot = if key.eq_ignore_ascii_case("FileIds") {
            &mut out.file_ids
        } else if key.eq_ignore_ascii_case("FolderIds") {
            &mut out.folder_ids
        } else {
            continue;
        };
        let name = if key.eq_ignore_ascii_case("FileIds") {
            "FileIds"
        } else {
            "FolderIds"
        };
        *slot = match value {
            Value::Null => None,
            Value::Array(items) => {
                let mut ids = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    ids.push(
                        int_of(item)
                            .ok_or_else(|| ReadError::Invalid(format!("request.{name}[{i}]")))?,
                    );
                }
                Some(ids)
            }
            _ => return Err(ReadError::Invalid(format!("request.{name}"))),
        };
    }
    Ok(out)
}

/// DataContractSerializer: root `ZipRequest` in the entities namespace,
/// `FileIds` before `FolderIds` (a member out of order is skipped), items are
/// `int` elements in the Arrays namespace under any prefix. DTDs are refused.
fn read_xml(body: &[u8]) -> Result<ZipRequest, ReadError> {
    let invalid = || ReadError::Invalid("request".into());
    let mut reader = quick_xml::NsReader::from_reader(body);
    let mut buf = Vec::new();
    let mut depth = 0usize;
    let mut out = ZipRequest::default();
    // 0 = before FileIds, 1 = after FileIds, 2 = after FolderIds (contract order).
    let mut position = 0u8;
    let mut current: Option<(bool, Vec<i64>)> = None;
    let mut in_int = false;
    let mut text = String::new();
    loop {
        let (ns, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|_| invalid())?;
        let in_entities =
            matches!(ns, ResolveResult::Bound(ref n) if n.as_ref() == ENTITIES_NS.as_bytes());
        let in_arrays =
            matches!(ns, ResolveResult::Bound(ref n) if n.as_ref() == ARRAYS_NS.as_bytes());
        match event {
            Event::DocType(_) => return Err(invalid()),
            // The root must be `ZipRequest` in the entities namespace.
            Event::Start(e) | Event::Empty(e)
                if depth == 0 && !(in_entities && e.local_name().as_ref() == b"ZipRequest") =>
            {
                return Err(invalid());
            }
            Event::Start(_) if depth == 0 => depth = 1,
            Event::Empty(_) if depth == 0 => {}
            Event::Start(e) if depth == 1 => {
                depth = 2;
                let name = e.local_name();
                let member = if in_entities { name.as_ref() } else { b"" };
                current = match member {
                    b"FileIds" if position == 0 => {
                        position = 1;
                        Some((true, Vec::new()))
                    }
                    b"FolderIds" if position <= 1 => {
                        position = 2;
                        Some((false, Vec::new()))
                    }
                    _ => None,
                };
            }
            Event::Empty(e) if depth == 1 => {
                // `<FileIds/>` or `<FileIds i:nil="true"/>`: the member is present, with no items.
                let name = e.local_name();
                if in_entities && name.as_ref() == b"FileIds" && position == 0 {
                    position = 1;
                } else if in_entities && name.as_ref() == b"FolderIds" && position <= 1 {
                    position = 2;
                }
            }
            Event::Start(e) if depth == 2 => {
                depth = 3;
                in_int = current.is_some() && in_arrays && e.local_name().as_ref() == b"int";
                text.clear();
            }
            Event::Text(t) if in_int => text.push_str(&t.unescape().map_err(|_| invalid())?),
            Event::End(_) => {
                match depth {
                    3 => {
                        if in_int {
                            let id = text.trim().parse().map_err(|_| invalid())?;
                            if let Some((_, ids)) = current.as_mut() {
                                ids.push(id);
                            }
                        }
                        in_int = false;
                    }
                    2 => {
                        if let Some((files, ids)) = current.take() {
                            if files {
                                out.file_ids = Some(ids);
                            } else {
                                out.folder_ids = Some(ids);
                            }
                        }
                    }
                    _ => {}
                }
                depth = depth.saturating_sub(1);
            }
            Event::Start(_) => depth += 1,
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if depth != 0 {
        return Err(invalid());
    }
    Ok(out)
}

/// `FileIds=1`, `FileIds[]=1` and `FileIds[0]=1`, keys without case; a form
/// with neither key binds nothing (a null model).
fn read_form(body: &[u8]) -> Result<Option<ZipRequest>, ReadError> {
    let mut out = ZipRequest::default();
    let mut bound = false;
    for (key, value) in query_pairs(&String::from_utf8_lossy(body)) {
        let base = key.split('[').next().unwrap_or("");
        let rest = &key[base.len()..];
        let indexed = rest.is_empty()
            || rest == "[]"
            || rest
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()));
        let (slot, name) = if base.eq_ignore_ascii_case("FileIds") && indexed {
            (&mut out.file_ids, "FileIds")
        } else if base.eq_ignore_ascii_case("FolderIds") && indexed {
            (&mut out.folder_ids, "FolderIds")
        } else {
            continue;
        };
        bound = true;
        let ids = slot.get_or_insert_with(Vec::new);
        let id = value
            .trim()
            .parse()
            .map_err(|_| ReadError::Invalid(format!("request.{name}[{}]", ids.len())))?;
        ids.push(id);
    }
    Ok(bound.then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: Option<&str>) -> DialectRequest {
        let mut headers = http::HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
        }
        DialectRequest::new(
            http::Method::POST,
            "/x".parse().unwrap(),
            headers,
            Default::default(),
        )
    }

    fn read_as(ct: Option<&str>, body: &str) -> Result<Option<ZipRequest>, ReadError> {
        read(&request(ct), body.as_bytes())
    }

    const SAMPLE: &str = r#"<ZipRequest xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/Itslearning.RestApi.Entities.YourFiles">
  <FileIds xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
    <d2p1:int>1</d2p1:int>
    <d2p1:int>2</d2p1:int>
  </FileIds>
  <FolderIds xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
    <d2p1:int>3</d2p1:int>
  </FolderIds>
</ZipRequest>"#;

    fn ids(
        files: Option<Vec<i64>>,
        folders: Option<Vec<i64>>,
    ) -> Result<Option<ZipRequest>, ReadError> {
        Ok(Some(ZipRequest {
            file_ids: files,
            folder_ids: folders,
        }))
    }

    #[test]
    fn json_reads_like_json_net() {
        assert_eq!(
            read_as(Some("application/json"), r#"{"fileids":[1,"2"],"Other":5}"#),
            ids(Some(vec![1, 2]), None)
        );
        assert_eq!(
            read_as(Some("text/json"), r#"{"FolderIds":null}"#),
            ids(None, None)
        );
        assert_eq!(
            read_as(Some("application/json"), r#"{"FileIds":["x"]}"#),
            Err(ReadError::Invalid("request.FileIds[0]".into()))
        );
        assert_eq!(
            read_as(Some("application/json"), "{"),
            Err(ReadError::Invalid("request".into()))
        );
        assert_eq!(read_as(Some("application/json"), ""), Ok(None));
    }

    #[test]
    fn xml_reads_like_the_data_contract_serializer() {
        assert_eq!(
            read_as(Some("application/xml"), SAMPLE),
            ids(Some(vec![1, 2]), Some(vec![3]))
        );
        let other_prefix = SAMPLE.replace("d2p1", "a");
        assert_eq!(
            read_as(Some("text/xml"), &other_prefix),
            ids(Some(vec![1, 2]), Some(vec![3]))
        );
        let no_namespace = "<ZipRequest><FileIds/></ZipRequest>";
        assert_eq!(
            read_as(Some("text/xml"), no_namespace),
            Err(ReadError::Invalid("request".into()))
        );
        // Out of contract order: FileIds after FolderIds is skipped.
        let swapped = format!(
            r#"<ZipRequest xmlns="{ENTITIES_NS}"><FolderIds xmlns:a="{ARRAYS_NS}"><a:int>3</a:int></FolderIds><FileIds xmlns:a="{ARRAYS_NS}"><a:int>1</a:int></FileIds></ZipRequest>"#
        );
        assert_eq!(
            read_as(Some("text/xml"), &swapped),
            ids(None, Some(vec![3]))
        );
        assert!(read_as(
            Some("text/xml"),
            "<!DOCTYPE x [<!ENTITY a 'b'>]><ZipRequest/>"
        )
        .is_err());
    }

    #[test]
    fn forms_in_every_spelling_and_the_415s() {
        let form = Some("application/x-www-form-urlencoded");
        for body in [
            "FileIds=1&FileIds=2",
            "FileIds%5B%5D=1&FileIds%5B%5D=2",
            "fileids[0]=1&fileids[1]=2",
        ] {
            assert_eq!(read_as(form, body), ids(Some(vec![1, 2]), None), "{body}");
        }
        assert_eq!(read_as(form, "x=1"), Ok(None));
        assert!(
            matches!(read_as(Some("text/plain"), "x"), Err(ReadError::Unsupported(m)) if m.contains("'text/plain'"))
        );
        assert!(
            matches!(read_as(None, "x"), Err(ReadError::Unsupported(m)) if m.contains("octet-stream"))
        );
    }
}
