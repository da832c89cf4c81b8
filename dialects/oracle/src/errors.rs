//! The Documents API's error catalogue (its documented code table) and its
//! envelope: `errorCode`, `errorKey`, `errorMessage`, `errorType`, the POST
//! echoes, `title` and `type`.

use http::StatusCode;
use serde_json::{json, Map, Value};

const ERROR_TYPE_URL: &str = "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html";

/// One error in the Documents API's shape.
#[derive(Debug, Clone)]
pub(crate) struct OracleError {
    pub(crate) status: StatusCode,
    code: &'static str,
    key: String,
    message: String,
    /// `id`, `idList` echoes (POST errors).
    pub(crate) echo: Option<Box<(String, String)>>,
    pub(crate) parent: Option<String>,
}

impl OracleError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        OracleError {
            status,
            code,
            key: key.into(),
            message: message.into(),
            echo: None,
            parent: None,
        }
    }

    pub(crate) fn general(message: impl Into<String>) -> Self {
        OracleError::new(
            StatusCode::BAD_REQUEST,
            "-1",
            "!csBulkdownloadUnableToInitJob",
            message,
        )
    }

    pub(crate) fn unauthorized() -> Self {
        OracleError::new(
            StatusCode::UNAUTHORIZED,
            "-1",
            "!csUserNotAuthenticated",
            "The authentication credentials included with this request are missing or invalid.",
        )
    }

    /// The Documents API's error for a status (its documented code table), as
    /// an injected fault sends it.
    pub(crate) fn for_status(status: StatusCode, message: Option<&str>) -> Self {
        if status == 401 && message.is_none() {
            return OracleError::unauthorized();
        }
        let (code, key, default_message) = match status.as_u16() {
            401 => ("-1", "!csUserNotAuthenticated", ""),
            403 => (
                "-20",
                "!csInsufficientPrivileges",
                "The user does not have sufficient privileges to perform the requested operation.",
            ),
            404 => (
                "-16",
                "!csResourceNotFound",
                "A folder or file with the specified name or ID does not exist in the specified location.",
            ),
            409 => (
                "-17",
                "!csItemAlreadyExists",
                "A folder or file with the same name already exists in the target location.",
            ),
            429 => ("-1", "!csTooManyRequests", "Too many requests. Try again later."),
            500..=599 => ("-1", "!csServiceUnavailable", "General failure."),
            _ => ("-1", "!csGeneralFailure", "General failure."),
        };
        OracleError::new(status, code, key, message.unwrap_or(default_message))
    }

    /// The deliberately vague answer for a job that is not the caller's.
    pub(crate) fn job_not_found(key: &str, message: &str) -> Self {
        OracleError::new(StatusCode::NOT_FOUND, "-16", key, message)
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("errorCode".into(), json!(self.code));
        body.insert("errorKey".into(), json!(self.key));
        body.insert("errorMessage".into(), json!(self.message));
        body.insert("errorType".into(), json!("folder"));
        if let Some((id, id_list)) = self.echo.as_deref() {
            body.insert("id".into(), json!(id));
            body.insert("idList".into(), json!(id_list));
        }
        if let Some(parent) = &self.parent {
            body.insert("parentID".into(), json!(parent));
        }
        body.insert("title".into(), json!(self.message));
        body.insert("type".into(), json!(ERROR_TYPE_URL));
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_key_order_follows_the_examples() {
        let mut err = OracleError::new(StatusCode::BAD_REQUEST, "-96", "!k", "m");
        err.echo = Some(Box::new(("fFolderGUID:F1".into(), "fFileGUID:D1".into())));
        err.parent = Some("F1".into());
        let keys: Vec<String> = err.body().as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "errorCode",
                "errorKey",
                "errorMessage",
                "errorType",
                "id",
                "idList",
                "parentID",
                "title",
                "type"
            ]
        );
    }
}
