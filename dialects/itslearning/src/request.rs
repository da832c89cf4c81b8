//! Reading `ZipRequest` as Web API 2 does, measured against the framework
//! itself (`tests/golden/itslearning/webapi2/`): the JSON formatter
//! (Json.NET's reader and its error handler, which records each error in
//! ModelState under the reader's path and goes on), the XML formatter
//! (DataContractSerializer: any fault is one `request` error), and the
//! jQuery form formatter with MVC-style collection binding. Ids are Int32.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use zipgate_api::dialect::query_pairs;
use zipgate_api::jsonnet::{self, ReaderOptions, Value};
use zipgate_api::DialectRequest;

use crate::negotiate::{request_content_type, Charset};

pub const ENTITIES_NS: &str =
    "http://schemas.datacontract.org/2004/07/Itslearning.RestApi.Entities.YourFiles";
pub const ARRAYS_NS: &str = "http://schemas.microsoft.com/2003/10/Serialization/Arrays";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// What every exception-based ModelState error says under
/// `IncludeErrorDetailPolicy.Never` (a production service's setting).
pub const HIDDEN: &str = "An error has occurred.";

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ZipRequest {
    pub file_ids: Option<Vec<i32>>,
    pub folder_ids: Option<Vec<i32>>,
}

/// Web API's ModelState: keys in the order their first error came, each
/// with its messages.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ModelState(pub Vec<(String, Vec<String>)>);

impl ModelState {
    fn add(&mut self, key: &str, message: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, messages)) => messages.push(message.to_owned()),
            None => self.0.push((key.to_owned(), vec![message.to_owned()])),
        }
    }

    fn one(key: &str) -> Self {
        let mut state = ModelState::default();
        state.add(key, HIDDEN);
        state
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// 415 with the framework's message.
    Unsupported(String),
    /// 400 "The request is invalid." with this ModelState.
    Invalid(ModelState),
}

const NO_CONTENT_TYPE: &str = "The request contains an entity body but no Content-Type header. \
     The inferred media type 'application/octet-stream' is not supported for this resource.";

/// `Ok(None)` is Web API's null model: an empty body, JSON `null`, a form
/// binding nothing.
pub fn read(request: &DialectRequest, body: &[u8]) -> Result<Option<ZipRequest>, ReadError> {
    if body.is_empty() {
        return Ok(None);
    }
    // A Content-Type that does not parse is no Content-Type.
    let Some(content_type) = request_content_type(&request.headers) else {
        return Err(ReadError::Unsupported(NO_CONTENT_TYPE.into()));
    };
    match content_type.media.as_str() {
        "application/json" | "text/json" => read_json(&decode_json(body, content_type.charset)),
        "application/xml" | "text/xml" => {
            let text = decode_xml(body, content_type.charset)
                .ok_or_else(|| ReadError::Invalid(ModelState::one("request")))?;
            read_xml(&text).map(Some)
        }
        "application/x-www-form-urlencoded" => read_form(&String::from_utf8_lossy(body)),
        other => Err(ReadError::Unsupported(format!(
            "The request entity's media type '{other}' is not supported for this resource."
        ))),
    }
}

fn utf16(bytes: &[u8], big_endian: bool) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| {
            if big_endian {
                u16::from_be_bytes([pair[0], pair[1]])
            } else {
                u16::from_le_bytes([pair[0], pair[1]])
            }
        })
        .collect();
    String::from_utf16_lossy(&units)
}

/// The JSON formatter's reader: a byte-order mark wins, else the charset
/// (UTF-16 when it says so, UTF-8 for anything else it does not know).
fn decode_json(body: &[u8], charset: Option<Charset>) -> String {
    match body {
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, false),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, true),
        _ if charset == Some(Charset::Utf16) => utf16(body, false),
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

/// The XML formatter reads with the charset's encoding only: UTF-16 bytes
/// sent without `charset=utf-16` do not read (recorded:
/// `xml_utf16_bom_no_charset`).
fn decode_xml(body: &[u8], charset: Option<Charset>) -> Option<String> {
    match (charset, body) {
        (Some(Charset::Utf16), [0xFF, 0xFE, rest @ ..]) => Some(utf16(rest, false)),
        (Some(Charset::Utf16), [0xFE, 0xFF, rest @ ..]) => Some(utf16(rest, true)),
        (Some(Charset::Utf16), _) => Some(utf16(body, false)),
        (_, [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..]) => None,
        (_, [0xEF, 0xBB, 0xBF, rest @ ..]) => String::from_utf8(rest.to_vec()).ok(),
        _ => String::from_utf8(body.to_vec()).ok(),
    }
}

/// Json.NET's `ReadAsInt32`: an integer token or a numeric string within
/// Int32; anything else (a float, a bool, null, a nested value) is an error.
fn int_of(value: &Value) -> Option<i32> {
    match value {
        Value::Integer(digits) => digits.parse().ok(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn read_json(text: &str) -> Result<Option<ZipRequest>, ReadError> {
    let invalid = |key: &str| ReadError::Invalid(ModelState::one(key));
    // The serializer looks at the first token before reading on: a root
    // that is not an object (or null) is one error, whatever follows.
    let first = text
        .trim_start_matches(|c: char| c.is_whitespace())
        .chars()
        .next();
    if matches!(first, Some(c) if c != '{' && c != 'n' && c != '/' && c != 'u') {
        return Err(invalid("request"));
    }
    // The formatter deserializes from the stream and stops after the root:
    // text after it is never read (recorded: `json_content_after`).
    let options = ReaderOptions {
        max_depth: 256,
        reject_additional_content: false,
    };
    let value = match jsonnet::parse(text.as_bytes(), options) {
        Ok(Some(value)) => value,
        Ok(None) => return Ok(None),
        Err(error) => {
            // Each open container's deserializer records the reader's
            // failure at the reader's path (recorded: `ms_truncated`).
            let key = if error.path.is_empty() {
                "request".to_owned()
            } else {
                format!("request.{}", error.path)
            };
            let mut state = ModelState::default();
            for _ in 0..error.open.max(1) {
                state.add(&key, HIDDEN);
            }
            return Err(ReadError::Invalid(state));
        }
    };
    let members = match value {
        Value::Null | Value::Undefined => return Ok(None),
        Value::Object(members) => members,
        _ => return Err(invalid("request")),
    };
    let mut out = ZipRequest::default();
    let mut errors = ModelState::default();
    for (name, value) in &members {
        let (slot, name) = if name.eq_ignore_ascii_case("FileIds") {
            (&mut out.file_ids, "FileIds")
        } else if name.eq_ignore_ascii_case("FolderIds") {
            (&mut out.folder_ids, "FolderIds")
        } else {
            continue;
        };
        match value {
            Value::Null => *slot = None,
            // A repeated member adds to the list already made (Json.NET
            // reuses it; recorded: `json_dup_member_case`).
            Value::Array(items) => {
                let ids = slot.get_or_insert_with(Vec::new);
                for (i, item) in items.iter().enumerate() {
                    match int_of(item) {
                        Some(id) => ids.push(id),
                        None => errors.add(&format!("request.{name}[{i}]"), HIDDEN),
                    }
                }
            }
            _ => errors.add(&format!("request.{name}"), HIDDEN),
        }
    }
    if errors.0.is_empty() {
        Ok(Some(out))
    } else {
        Err(ReadError::Invalid(errors))
    }
}

/// DataContractSerializer: root `ZipRequest` in the entities namespace,
/// `FileIds` before `FolderIds` (a member out of order is skipped, an
/// unknown one too), items are `int` elements in the Arrays namespace under
/// any prefix, their text (CDATA and character references included) read
/// as Int32. Anything it cannot read (no root, two roots, an undeclared
/// prefix, a nil or empty item, a DTD) is one `request` error.
fn read_xml(text: &str) -> Result<ZipRequest, ReadError> {
    let invalid = || ReadError::Invalid(ModelState::one("request"));
    let mut reader = quick_xml::NsReader::from_str(text);
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut out = ZipRequest::default();
    // 0 = before FileIds, 1 = after FileIds, 2 = after FolderIds (contract order).
    let mut position = 0u8;
    let mut current: Option<(bool, Vec<i32>)> = None;
    let mut in_int = false;
    let mut item = String::new();
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(|_| invalid())?;
        if matches!(ns, ResolveResult::Unknown(_)) {
            return Err(invalid());
        }
        let in_entities =
            matches!(ns, ResolveResult::Bound(ref n) if n.as_ref() == ENTITIES_NS.as_bytes());
        let in_arrays =
            matches!(ns, ResolveResult::Bound(ref n) if n.as_ref() == ARRAYS_NS.as_bytes());
        let is_nil = |e: &quick_xml::events::BytesStart| {
            e.attributes().flatten().any(|a| {
                let (attr_ns, local) = reader.resolve_attribute(a.key);
                matches!(attr_ns, ResolveResult::Bound(n) if n.as_ref() == XSI_NS.as_bytes())
                    && local.as_ref() == b"nil"
                    && a.value.as_ref() == b"true"
            })
        };
        match event {
            Event::DocType(_) => return Err(invalid()),
            Event::Start(e) | Event::Empty(e) if depth == 0 && seen_root => {
                let _ = e;
                return Err(invalid());
            }
            // The root must be `ZipRequest` in the entities namespace.
            Event::Start(e) | Event::Empty(e)
                if depth == 0 && !(in_entities && e.local_name().as_ref() == b"ZipRequest") =>
            {
                return Err(invalid());
            }
            Event::Start(_) if depth == 0 => {
                depth = 1;
                seen_root = true;
            }
            Event::Empty(_) if depth == 0 => seen_root = true,
            Event::Text(t) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(invalid());
            }
            Event::CData(_) if depth == 0 => return Err(invalid()),
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
                if current.is_some() && is_nil(&e) {
                    return Err(invalid());
                }
            }
            Event::Empty(e) if depth == 1 => {
                // `<FileIds/>`: an empty list; `<FileIds i:nil="true"/>`: none.
                let name = e.local_name();
                let list = (!is_nil(&e)).then(Vec::new);
                if in_entities && name.as_ref() == b"FileIds" && position == 0 {
                    position = 1;
                    out.file_ids = list;
                } else if in_entities && name.as_ref() == b"FolderIds" && position <= 1 {
                    position = 2;
                    out.folder_ids = list;
                }
            }
            Event::Start(e) if depth == 2 => {
                depth = 3;
                in_int = current.is_some() && in_arrays && e.local_name().as_ref() == b"int";
                if in_int && is_nil(&e) {
                    return Err(invalid());
                }
                item.clear();
            }
            // An item with no text is no Int32.
            Event::Empty(e)
                if depth == 2
                    && current.is_some()
                    && in_arrays
                    && e.local_name().as_ref() == b"int" =>
            {
                return Err(invalid());
            }
            Event::Text(t) if in_int && depth == 3 => {
                item.push_str(&t.unescape().map_err(|_| invalid())?)
            }
            Event::CData(t) if in_int && depth == 3 => {
                item.push_str(std::str::from_utf8(&t).map_err(|_| invalid())?)
            }
            Event::Start(_) if in_int => return Err(invalid()),
            Event::End(_) => {
                match depth {
                    3 if in_int => {
                        // XmlConvert.ToInt32: whitespace around, Int32 range.
                        let id = item.trim().parse().map_err(|_| invalid())?;
                        if let Some((_, ids)) = current.as_mut() {
                            ids.push(id);
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
    }
    if depth != 0 || !seen_root {
        return Err(invalid());
    }
    Ok(out)
}

/// How the form binder reads one value as Int32: digits (with a sign and
/// whitespace around) out of range throw (the hidden message), anything
/// else is "not valid" (recorded: `form_overflow`, `form_scalar_text`).
fn form_int(value: &str) -> Result<i32, String> {
    parse_int32(value)
}

/// `Int32.Parse` with `NumberStyles.Integer`: whitespace around, a sign,
/// digits; the error is the binder's message (out of range: the hidden one).
pub fn parse_int32(value: &str) -> Result<i32, String> {
    let text = value.trim();
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().map_err(|_| HIDDEN.to_owned())
    } else {
        Err(format!("The value '{value}' is not valid for Int32."))
    }
}

/// jQuery's form encoding read as Web API's `JQueryMVCFormUrlEncodedFormatter`
/// and MVC's collection binder read it: `FileIds[0]=…&FileIds[1]=…`
/// counts up from 0 and stops at the first gap; otherwise every
/// `FileIds=` (or `FileIds[]=`) value. Names without case. A form that
/// binds neither list is a null model.
fn read_form(body: &str) -> Result<Option<ZipRequest>, ReadError> {
    let pairs = query_pairs(body);
    let mut out = ZipRequest::default();
    let mut errors = ModelState::default();
    let mut bound = false;
    for (name, slot) in [
        ("FileIds", &mut out.file_ids),
        ("FolderIds", &mut out.folder_ids),
    ] {
        // `Name[i]` keys by index, the first of each, in one pass (a form
        // of many keys costs no more than its length).
        let mut indexed: std::collections::HashMap<usize, &str> = std::collections::HashMap::new();
        for (key, value) in &pairs {
            let index = key
                .get(..name.len())
                .filter(|head| head.eq_ignore_ascii_case(name))
                .and_then(|_| key.get(name.len()..))
                .and_then(|rest| rest.strip_prefix('[')?.strip_suffix(']'))
                .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|digits| digits.parse::<usize>().ok());
            if let Some(index) = index {
                indexed.entry(index).or_insert(value.as_str());
            }
        }
        let mut ids = Vec::new();
        if indexed.contains_key(&0) {
            let mut i = 0;
            while let Some(value) = indexed.get(&i) {
                match form_int(value) {
                    Ok(id) => ids.push(id),
                    Err(message) => errors.add(&format!("request.{name}[{i}]"), &message),
                }
                i += 1;
            }
        } else {
            let values: Vec<&String> = pairs
                .iter()
                .filter(|(key, _)| {
                    let base = key.strip_suffix("[]").unwrap_or(key);
                    base.eq_ignore_ascii_case(name)
                })
                .map(|(_, value)| value)
                .collect();
            if values.is_empty() {
                continue;
            }
            for value in values {
                match form_int(value) {
                    Ok(id) => ids.push(id),
                    Err(message) => errors.add(&format!("request.{name}"), &message),
                }
            }
        }
        bound = true;
        *slot = Some(ids);
    }
    if !errors.0.is_empty() {
        return Err(ReadError::Invalid(errors));
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
        files: Option<Vec<i32>>,
        folders: Option<Vec<i32>>,
    ) -> Result<Option<ZipRequest>, ReadError> {
        Ok(Some(ZipRequest {
            file_ids: files,
            folder_ids: folders,
        }))
    }

    fn invalid(keys: &[(&str, &[&str])]) -> Result<Option<ZipRequest>, ReadError> {
        Err(ReadError::Invalid(ModelState(
            keys.iter()
                .map(|(k, m)| (k.to_string(), m.iter().map(|s| s.to_string()).collect()))
                .collect(),
        )))
    }

    #[test]
    fn json_reads_like_json_net_and_records_every_error() {
        let json = Some("application/json");
        assert_eq!(
            read_as(json, r#"{"fileids":[1,"2"],"Other":5}"#),
            ids(Some(vec![1, 2]), None)
        );
        assert_eq!(
            read_as(json, "{'FileIds':[1,],/* c */FolderIds:[0x1F]} trailing"),
            ids(Some(vec![1]), Some(vec![31]))
        );
        assert_eq!(
            read_as(json, r#"{"FileIds":[1],"fileIds":[2]}"#),
            ids(Some(vec![1, 2]), None)
        );
        assert_eq!(read_as(json, "null"), Ok(None));
        assert_eq!(
            read_as(
                json,
                r#"{"FileIds":["a",3000000000,1.5],"FolderIds":[null]}"#
            ),
            invalid(&[
                ("request.FileIds[0]", &[HIDDEN]),
                ("request.FileIds[1]", &[HIDDEN]),
                ("request.FileIds[2]", &[HIDDEN]),
                ("request.FolderIds[0]", &[HIDDEN]),
            ])
        );
        assert_eq!(
            read_as(json, r#"{"FileIds":[1,"#),
            invalid(&[("request.FileIds[0]", &[HIDDEN, HIDDEN])])
        );
        assert_eq!(read_as(json, "[1]"), invalid(&[("request", &[HIDDEN])]));
        assert_eq!(
            read_as(json, r#"{"FileIds":"1"}"#),
            invalid(&[("request.FileIds", &[HIDDEN])])
        );
        assert_eq!(read_as(json, ""), Ok(None));
    }

    #[test]
    fn xml_reads_like_the_data_contract_serializer() {
        let xml = Some("application/xml");
        assert_eq!(read_as(xml, SAMPLE), ids(Some(vec![1, 2]), Some(vec![3])));
        let other_prefix = SAMPLE.replace("d2p1", "a");
        assert_eq!(
            read_as(Some("text/xml"), &other_prefix),
            ids(Some(vec![1, 2]), Some(vec![3]))
        );
        let cdata = SAMPLE
            .replace(">1<", "><![CDATA[5]]><")
            .replace(">2<", "> &#50; <");
        assert_eq!(read_as(xml, &cdata), ids(Some(vec![5, 2]), Some(vec![3])));
        // Out of contract order: FileIds after FolderIds is skipped.
        let swapped = format!(
            r#"<ZipRequest xmlns="{ENTITIES_NS}"><FolderIds xmlns:a="{ARRAYS_NS}"><a:int>3</a:int></FolderIds><FileIds xmlns:a="{ARRAYS_NS}"><a:int>1</a:int></FileIds></ZipRequest>"#
        );
        assert_eq!(read_as(xml, &swapped), ids(None, Some(vec![3])));
        for bad in [
            "hello".to_owned(),
            r#"{"FileIds":[1]}"#.to_owned(),
            format!("{SAMPLE}{SAMPLE}"),
            SAMPLE
                .replace("<ZipRequest", "<a:ZipRequest")
                .replace("</ZipRequest", "</a:ZipRequest"),
            SAMPLE.replace("<d2p1:int>1</d2p1:int>", r#"<d2p1:int i:nil="true"/>"#),
            SAMPLE.replace("<d2p1:int>1</d2p1:int>", "<d2p1:int/>"),
            SAMPLE.replace("<d2p1:int>1</d2p1:int>", "<d2p1:int></d2p1:int>"),
            SAMPLE.replace(">1<", ">3000000000<"),
            "<ZipRequest><FileIds/></ZipRequest>".to_owned(),
            "<!DOCTYPE x [<!ENTITY a 'b'>]><ZipRequest/>".to_owned(),
            SAMPLE[..SAMPLE.len() - 5].to_owned(),
        ] {
            assert_eq!(
                read_as(xml, &bad),
                invalid(&[("request", &[HIDDEN])]),
                "{bad}"
            );
        }
    }

    #[test]
    fn forms_bind_as_mvc_binds_and_the_415s() {
        let form = Some("application/x-www-form-urlencoded");
        for body in [
            "FileIds=1&FileIds=2",
            "FileIds%5B%5D=1&FileIds%5B%5D=2",
            "fileids[0]=1&fileids[1]=2",
            "FileIds[0]=1&FileIds[1]=2&FileIds[3]=9",
        ] {
            assert_eq!(read_as(form, body), ids(Some(vec![1, 2]), None), "{body}");
        }
        assert_eq!(read_as(form, "x=1"), Ok(None));
        assert_eq!(
            read_as(form, "FileIds=abc"),
            invalid(&[(
                "request.FileIds",
                &["The value 'abc' is not valid for Int32."]
            )])
        );
        assert_eq!(
            read_as(form, "FileIds[0]=abc"),
            invalid(&[(
                "request.FileIds[0]",
                &["The value 'abc' is not valid for Int32."]
            )])
        );
        assert_eq!(
            read_as(form, "FileIds=3000000000"),
            invalid(&[("request.FileIds", &[HIDDEN])])
        );
        assert!(
            matches!(read_as(Some("text/plain"), "x"), Err(ReadError::Unsupported(m)) if m.contains("'text/plain'"))
        );
        for unreadable in [
            None,
            Some("garbage"),
            Some("application/json;;;"),
            Some("application/"),
        ] {
            assert!(
                matches!(read_as(unreadable, "x"), Err(ReadError::Unsupported(m)) if m.contains("octet-stream")),
                "{unreadable:?}"
            );
        }
    }

    #[test]
    fn bodies_in_utf16_read_as_the_formatters_read_them() {
        let encode = |text: &str| -> Vec<u8> {
            let mut out = vec![0xFF, 0xFE];
            out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
            out
        };
        let json = encode(r#"{"FileIds":[7]}"#);
        for ct in ["application/json; charset=utf-16", "application/json"] {
            assert_eq!(
                read(&request(Some(ct)), &json),
                ids(Some(vec![7]), None),
                "{ct}"
            );
        }
        let xml = encode(SAMPLE);
        assert_eq!(
            read(&request(Some("application/xml; charset=utf-16")), &xml),
            ids(Some(vec![1, 2]), Some(vec![3]))
        );
        assert_eq!(
            read(&request(Some("application/xml")), &xml),
            invalid(&[("request", &[HIDDEN])])
        );
    }
}
