//! Box's error catalogue and its `ClientError` envelope.

use http::StatusCode;
use serde_json::{json, Map, Value};

pub const HELP_URL: &str =
    "https://developer.box.com/guides/api-calls/permissions-and-errors/common-errors/";

/// One Box error: HTTP status, Box code, message, optional `context_info`.
#[derive(Clone, Debug, PartialEq)]
pub struct BoxError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub context_info: Option<Value>,
}

impl BoxError {
    fn new(status: StatusCode, code: &'static str, message: &str) -> Self {
        BoxError {
            status,
            code,
            message: message.to_owned(),
            context_info: None,
        }
    }

    /// A 400 whose `context_info.errors` names the offending parameter, as Box's validation errors do.
    pub fn bad_request(name: &str, message: String) -> Self {
        BoxError {
            context_info: Some(
                json!({"errors": [{"reason": "invalid_parameter", "name": name, "message": message}]}),
            ),
            ..BoxError::new(StatusCode::BAD_REQUEST, "bad_request", "Bad Request")
        }
    }

    pub fn unauthorized() -> Self {
        BoxError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
    }

    pub fn access_denied() -> Self {
        BoxError::new(
            StatusCode::FORBIDDEN,
            "access_denied_insufficient_permissions",
            "Access denied - insufficient permission",
        )
    }

    pub fn not_found() -> Self {
        BoxError::new(StatusCode::NOT_FOUND, "not_found", "Not Found")
    }

    /// An item in the request that does not exist, in Box's item-not-found form.
    pub fn item_not_found(type_prefix: char, id: &str) -> Self {
        BoxError {
            context_info: Some(json!({"errors": [{
                "reason": "invalid_parameter",
                "name": "item",
                "message": format!("Invalid value '{type_prefix}_{id}'. 'item' with value '{type_prefix}_{id}' not found"),
            }]})),
            ..BoxError::not_found()
        }
    }

    pub fn method_not_allowed() -> Self {
        BoxError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method Not Allowed",
        )
    }

    pub fn file_count_exceeded(limit: u64) -> Self {
        BoxError::new(StatusCode::BAD_REQUEST,
            "zip_download_file_count_exceeded_limit",
            &format!(
                "The requested files and folders would result in an archive with more than {limit} files. \
                 Split the request into multiple requests."
            ),
        )
    }

    pub fn bytes_exceeded() -> Self {
        BoxError::new(StatusCode::BAD_REQUEST,
            "zip_download_pre_compressed_bytes_exceeded_limit",
            "The requested files and folders would result in an archive with more than the allowed download limit. \
             Split the request into multiple requests.",
        )
    }

    pub fn too_many_concurrent_downloads(limit: usize) -> Self {
        BoxError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "user_too_many_concurrent_downloads",
            &format!(
                "The maximum of {limit} parallel downloads of zip archives per user has been met."
            ),
        )
    }

    /// The general error Box answers with for a status (Box's common-errors
    /// guide), as an injected fault sends it.
    pub fn for_status(status: StatusCode, message: Option<&str>) -> Self {
        let (code, default_message) = match status.as_u16() {
            400 => ("bad_request", "Bad Request"),
            401 => ("unauthorized", "Unauthorized"),
            403 => (
                "access_denied_insufficient_permissions",
                "Access denied - insufficient permission",
            ),
            404 => ("not_found", "Not Found"),
            405 => ("method_not_allowed", "Method Not Allowed"),
            409 => ("conflict", "A resource with this value already exists"),
            412 => (
                "precondition_failed",
                "The resource has been modified. Please retrieve the resource again and retry",
            ),
            429 => (
                "rate_limit_exceeded",
                "Request rate limit exceeded, please try again later",
            ),
            503 => ("unavailable", "Unavailable"),
            500..=599 => ("internal_server_error", "Internal Server Error"),
            _ => ("bad_request", "Bad Request"),
        };
        BoxError::new(status, code, message.unwrap_or(default_message))
    }

    pub fn internal() -> Self {
        BoxError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "Internal Server Error",
        )
    }

    /// The envelope, keys in the order Box's API writes them.
    pub fn body(&self, request_id: &str) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), json!("error"));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("code".into(), json!(self.code));
        if let Some(context) = &self.context_info {
            body.insert("context_info".into(), context.clone());
        }
        body.insert("help_url".into(), json!(HELP_URL));
        body.insert("message".into(), json!(self.message));
        body.insert("request_id".into(), json!(request_id));
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_key_order() {
        let body = BoxError::bad_request("items", "x".into())
            .body("abc")
            .to_string();
        assert_eq!(
            body,
            format!(
                r#"{{"type":"error","status":400,"code":"bad_request","context_info":{{"errors":[{{"reason":"invalid_parameter","name":"items","message":"x"}}]}},"help_url":"{HELP_URL}","message":"Bad Request","request_id":"abc"}}"#
            )
        );
    }
}
