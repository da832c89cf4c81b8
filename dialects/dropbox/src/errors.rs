//! Dropbox's error answers (https://www.dropbox.com/developers/documentation/http/documentation#error-handling):
//! 400 as plain text, 401 as JSON `AuthError`, 409 as JSON route errors
//! (`DownloadZipError`), 429 as JSON `RateLimitError` with `Retry-After`,
//! and the rest as plain text. Every JSON error carries `error_summary`:
//! its union tags joined by `/`, then `/` and a random number (0-3) of dots.

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};
use zipgate_api::http::{full, Body};

use crate::render::python_json;

/// The API function this dialect serves, as Dropbox names it in 400 texts.
pub const FUNCTION: &str = "files/download_zip";

/// `LookupError`'s tags (what went wrong with `path`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    MalformedPath,
    NotFound,
    NotFolder,
}

impl Lookup {
    fn tag(self) -> &'static str {
        match self {
            Lookup::MalformedPath => "malformed_path",
            Lookup::NotFound => "not_found",
            Lookup::NotFolder => "not_folder",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropboxError {
    /// 400, plain text: `Error in call to API function "files/download_zip": <detail>`.
    BadInput(String),
    /// 401 `AuthError` with this tag.
    Auth(&'static str),
    /// 403 `AccessError` (the account may not use this endpoint).
    Access,
    /// 409 `DownloadZipError.path`.
    Path(Lookup),
    /// 409 `DownloadZipError.too_large`.
    TooLarge,
    /// 409 `DownloadZipError.too_many_files`.
    TooManyFiles,
    /// 429 `RateLimitError`: wait this many seconds.
    RateLimit { retry_after: u64 },
    /// Any other status, plain text (5xx, unknown functions, wrong methods).
    Plain(StatusCode, String),
}

impl DropboxError {
    pub fn bad_input(detail: impl Into<String>) -> Self {
        DropboxError::BadInput(detail.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            DropboxError::BadInput(_) => StatusCode::BAD_REQUEST,
            DropboxError::Auth(_) => StatusCode::UNAUTHORIZED,
            DropboxError::Access => StatusCode::FORBIDDEN,
            DropboxError::Path(_) | DropboxError::TooLarge | DropboxError::TooManyFiles => {
                StatusCode::CONFLICT
            }
            DropboxError::RateLimit { .. } => StatusCode::TOO_MANY_REQUESTS,
            DropboxError::Plain(status, _) => *status,
        }
    }

    /// The error for an injected fault with this status: the vendor's
    /// envelope for it, `message` where the envelope is text.
    pub fn for_status(status: StatusCode, message: Option<&str>) -> Self {
        match status.as_u16() {
            400 => DropboxError::BadInput(message.unwrap_or("Bad input.").to_owned()),
            401 => DropboxError::Auth("invalid_access_token"),
            403 => DropboxError::Access,
            409 => DropboxError::Path(Lookup::NotFound),
            429 => DropboxError::RateLimit { retry_after: 1 },
            _ => DropboxError::Plain(
                status,
                message
                    .or(status.canonical_reason())
                    .unwrap_or("Error")
                    .to_owned(),
            ),
        }
    }

    /// `error` and its summary's tags, for the JSON answers.
    fn json_error(&self) -> Option<(Vec<&'static str>, Value)> {
        Some(match self {
            DropboxError::Auth(tag) => (vec![tag], json!({".tag": tag})),
            DropboxError::Access => (
                vec!["invalid_account_type", "endpoint"],
                json!({".tag": "invalid_account_type", "invalid_account_type": {".tag": "endpoint"}}),
            ),
            DropboxError::Path(lookup) => (
                vec!["path", lookup.tag()],
                json!({".tag": "path", "path": {".tag": lookup.tag()}}),
            ),
            DropboxError::TooLarge => (vec!["too_large"], json!({".tag": "too_large"})),
            DropboxError::TooManyFiles => {
                (vec!["too_many_files"], json!({".tag": "too_many_files"}))
            }
            DropboxError::RateLimit { retry_after } => (
                vec!["too_many_requests"],
                json!({"reason": {".tag": "too_many_requests"}, "retry_after": retry_after}),
            ),
            DropboxError::BadInput(_) | DropboxError::Plain(..) => return None,
        })
    }

    /// The answer; `dots` (0-3) ends `error_summary`.
    pub fn response(&self, dots: usize) -> Response<Body> {
        let (body, content_type) = match (self.json_error(), self) {
            (Some((tags, error)), _) => {
                let summary = format!("{}/{}", tags.join("/"), ".".repeat(dots.min(3)));
                let mut body = Map::new();
                body.insert("error_summary".into(), json!(summary));
                body.insert("error".into(), error);
                // Exactly `application/json`: the Python SDK asserts it on a 401.
                (python_json(&Value::Object(body)), "application/json")
            }
            (None, DropboxError::BadInput(detail)) => (
                format!("Error in call to API function \"{FUNCTION}\": {detail}"),
                "text/plain; charset=utf-8",
            ),
            (None, DropboxError::Plain(_, text)) => (text.clone(), "text/plain; charset=utf-8"),
            (None, _) => (String::new(), "text/plain; charset=utf-8"),
        };
        let mut response = Response::new(full(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        match self {
            DropboxError::Auth(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"Dropbox-API\""),
                );
            }
            DropboxError::RateLimit { retry_after } => {
                // The Java SDK needs it on every 429.
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zipgate_api::fake::body_bytes;

    #[test]
    fn route_errors_are_tags_and_a_summary() {
        let response = DropboxError::Path(Lookup::NotFound).response(2);
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(
            body_bytes(response),
            r#"{"error_summary": "path/not_found/..", "error": {".tag": "path", "path": {".tag": "not_found"}}}"#
        );
        let response = DropboxError::RateLimit { retry_after: 1 }.response(0);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            body_bytes(response),
            r#"{"error_summary": "too_many_requests/", "error": {"reason": {".tag": "too_many_requests"}, "retry_after": 1}}"#
        );
    }

    #[test]
    fn bad_input_is_plain_text_naming_the_function() {
        let response = DropboxError::bad_input("x").response(1);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body_bytes(response),
            "Error in call to API function \"files/download_zip\": x"
        );
    }
}
