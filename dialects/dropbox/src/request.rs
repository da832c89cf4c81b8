//! Reading a `download_zip` call the way Dropbox's API front end does, in
//! its order: credentials (header or `authorization` URL parameter), an
//! empty body of an allowed type, then `DownloadZipArg` from the
//! `Dropbox-API-Arg` header or the `arg` URL parameter, validated like the
//! Stone serializer Dropbox's SDKs share with it (same messages).

use http::header;
use serde_json::Value;
use zipgate_api::http::media_type;
use zipgate_api::{BodyError, DialectRequest};

use crate::errors::DropboxError;
use crate::settings::ContentTypes;

/// `ReadPath`'s pattern as Stone quotes it in a refusal.
pub const READ_PATH_PATTERN: &str =
    r"(/(.|[\r\n])*|id:.*)|(rev:[0-9a-f]{9,})|(ns:[0-9]+(/(.|[\r\n])*)?)";

pub const ARG_HEADER: &str = "dropbox-api-arg";

/// The bearer token the call carries.
pub fn token(request: &DialectRequest) -> Result<String, DropboxError> {
    let (value, source) = match request.headers.get(header::AUTHORIZATION) {
        Some(value) => (
            value.to_str().unwrap_or("").to_owned(),
            "HTTP header \"Authorization\"",
        ),
        None => match request.query("authorization") {
            Some(value) => (value, "URL parameter \"authorization\""),
            None => return Err(DropboxError::bad_input(
                "Must provide HTTP header \"Authorization\" or URL parameter \"authorization\".",
            )),
        },
    };
    match value.split_once(' ') {
        Some((scheme, token)) if scheme == "Bearer" && !token.trim().is_empty() => {
            Ok(token.trim().to_owned())
        }
        _ => Err(DropboxError::bad_input(format!(
            "Invalid authorization value in {source}: {value:?}.  Expecting \"Bearer <oauth2-access-token>\"."
        ))),
    }
}

/// A content-download call has no body; its `Content-Type`, if any, is one
/// the API accepts for it.
pub fn empty_body(request: &DialectRequest, allowed: ContentTypes) -> Result<(), DropboxError> {
    match &request.body {
        Ok(body) if body.is_empty() => {}
        Ok(_) | Err(BodyError::TooLarge(_)) => {
            return Err(DropboxError::bad_input(
                "The request body is supposed to be empty, but isn't...",
            ))
        }
        Err(BodyError::Io(e)) => {
            return Err(DropboxError::bad_input(format!(
                "The request body could not be read: {e}."
            )))
        }
    }
    let fine = allowed == ContentTypes::Any
        || matches!(
            media_type(&request.headers).as_deref(),
            None | Some("application/octet-stream" | "text/plain")
        );
    if fine {
        Ok(())
    } else {
        let text = request
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Err(DropboxError::bad_input(format!(
            "Bad HTTP \"Content-Type\" header: {text:?}.  Expecting one of \"application/octet-stream\", \"text/plain; charset=dropbox-cors-hack\"."
        )))
    }
}

/// `DownloadZipArg.path`, from the header or the `arg` URL parameter.
pub fn path_arg(request: &DialectRequest) -> Result<String, DropboxError> {
    let (text, source) = match request.headers.get(ARG_HEADER) {
        // Non-ASCII bytes: the header had to be "HTTP header safe" (\uXXXX).
        Some(value) => (
            value.to_str().ok().map(str::to_owned),
            "HTTP header \"Dropbox-API-Arg\"",
        ),
        None => match request.query("arg") {
            Some(value) => (Some(value), "URL parameter \"arg\""),
            None => {
                return Err(DropboxError::bad_input(
                    "Must provide HTTP header \"Dropbox-API-Arg\" or URL parameter \"arg\".",
                ))
            }
        },
    };
    let value = text
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .ok_or_else(|| {
            DropboxError::bad_input(format!("{source}: could not decode input as JSON"))
        })?;
    validate(&value).map_err(|detail| DropboxError::bad_input(format!("{source}: {detail}")))
}

/// Stone's strict struct decoding of `DownloadZipArg`: unknown fields
/// first (keys starting `.tag` are ignored), then the required `path`, its
/// type, its pattern.
pub fn validate(value: &Value) -> Result<String, String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("expected object, got {}", type_name(value)))?;
    if let Some(unknown) = object
        .keys()
        .find(|key| *key != "path" && !key.starts_with(".tag"))
    {
        return Err(format!("unknown field '{unknown}'"));
    }
    let path = object
        .get("path")
        .ok_or_else(|| "missing required field 'path'".to_owned())?;
    let path = path.as_str().ok_or_else(|| {
        format!(
            "path: '{}' expected to be a string, got {}",
            python_str(path),
            type_name(path)
        )
    })?;
    if !read_path(path) {
        return Err(format!(
            "path: '{path}' did not match pattern '{READ_PATH_PATTERN}'"
        ));
    }
    Ok(path.to_owned())
}

/// [`READ_PATH_PATTERN`] over the whole string (Python's `.` is anything but `\n`).
pub fn read_path(path: &str) -> bool {
    if path.starts_with('/') {
        true
    } else if let Some(rest) = path.strip_prefix("id:") {
        !rest.contains('\n')
    } else if let Some(rest) = path.strip_prefix("rev:") {
        rest.len() >= 9 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    } else if let Some(rest) = path.strip_prefix("ns:") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && (digits == rest.len() || rest[digits..].starts_with('/'))
    } else {
        false
    }
}

/// Stone's `generic_type_name`.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `str()` of the decoded JSON value, as `'%s'` prints it.
fn python_str(value: &Value) -> String {
    fn repr(value: &Value) -> String {
        match value {
            Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
            other => python_str(other),
        }
    }
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", repr(&Value::String(k.clone())), repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What a valid `path` names.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// `/a/b`, from the caller's root.
    Path(&'a str),
    /// `id:…`, optionally followed by `/relative/path`.
    Id(&'a str, &'a str),
    /// `rev:…` or `ns:…`: there are no revisions or namespaces here.
    Nothing,
    /// Not a path Dropbox would look up: the root, a trailing slash or
    /// whitespace, an empty, `.` or `..` component.
    Malformed,
}

pub fn target(path: &str) -> Target<'_> {
    let malformed = |p: &str| {
        p.ends_with('/')
            || p.ends_with(char::is_whitespace)
            || p.split('/')
                .skip(1)
                .any(|c| c.is_empty() || c == "." || c == "..")
    };
    if path.starts_with('/') {
        if malformed(path) {
            Target::Malformed
        } else {
            Target::Path(path)
        }
    } else if let Some(rest) = path.strip_prefix("id:") {
        let (id_len, relative) = match rest.find('/') {
            Some(slash) => (slash, &rest[slash..]),
            None => (rest.len(), ""),
        };
        if rest.is_empty() || (!relative.is_empty() && malformed(relative)) {
            Target::Malformed
        } else {
            Target::Id(&path[..3 + id_len], relative)
        }
    } else {
        Target::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stone_messages() {
        let cases = [
            (json!({"pat": "/a"}), "unknown field 'pat'"),
            (json!({}), "missing required field 'path'"),
            (
                json!({"path": 123}),
                "path: '123' expected to be a string, got integer",
            ),
            (
                json!({"path": null}),
                "path: 'None' expected to be a string, got null",
            ),
            (
                json!({"path": true}),
                "path: 'True' expected to be a string, got boolean",
            ),
            (
                json!({"path": ["a"]}),
                "path: '['a']' expected to be a string, got list",
            ),
            (json!([]), "expected object, got list"),
            (json!("x"), "expected object, got string"),
            (json!(null), "expected object, got null"),
        ];
        for (value, message) in cases {
            assert_eq!(validate(&value).unwrap_err(), message, "{value}");
        }
        let err = validate(&json!({"path": ""})).unwrap_err();
        assert_eq!(
            err,
            format!("path: '' did not match pattern '{READ_PATH_PATTERN}'")
        );
        assert_eq!(validate(&json!({"path": "/a", ".tag": "x"})).unwrap(), "/a");
    }

    #[test]
    fn read_paths_match_the_spec_pattern() {
        for ok in [
            "/",
            "/a/",
            "id:abc",
            "id:abc/x.txt",
            "rev:a1c10ce0dd78",
            "ns:123",
            "ns:123/x",
            "/a\nb",
        ] {
            assert!(read_path(ok), "{ok:?}");
        }
        for bad in [
            "",
            "foo",
            "rev:abc",
            "ns:x",
            "id:a\nb",
            "ns:",
            "rev:A1C10CE0DD78",
        ] {
            assert!(!read_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn targets() {
        assert_eq!(target("/Documents/Q1"), Target::Path("/Documents/Q1"));
        assert_eq!(target("id:abc/Reports"), Target::Id("id:abc", "/Reports"));
        assert_eq!(target("id:abc"), Target::Id("id:abc", ""));
        for malformed in ["/", "/a/", "/a//b", "/a ", "/a/../b", "id:abc/", "id:"] {
            assert_eq!(target(malformed), Target::Malformed, "{malformed:?}");
        }
        assert_eq!(target("rev:a1c10ce0dd78"), Target::Nothing);
    }
}
