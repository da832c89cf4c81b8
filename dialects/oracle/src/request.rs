//! Reading a create request: the body, then its `idList` (a comma-separated
//! string of GUIDs).

use serde_json::Value;
use zipgate_api::{BodyError, DialectRequest};

use crate::errors::OracleError;

/// The GUIDs of the create request's body, or the 400 that refuses it.
pub(crate) fn create_guids(request: &DialectRequest) -> Result<Vec<String>, OracleError> {
    let body = match &request.body {
        Ok(body) => body,
        Err(BodyError::TooLarge(limit)) => {
            return Err(OracleError::general(format!(
                "The request body is larger than {limit} bytes."
            )))
        }
        Err(BodyError::Io(e)) => return Err(OracleError::general(e.clone())),
    };
    parse_create_body(body).map_err(OracleError::general)
}

/// The GUIDs of a create body, `{"idList": "GUID,GUID,…"}`, trimmed, empty
/// ones dropped; the message of the 400 otherwise.
#[doc(hidden)]
pub fn parse_create_body(body: &[u8]) -> Result<Vec<String>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!("Unable to start bulk download of files. The request body is not valid JSON: {e}.")
    })?;
    let id_list = match value.get("idList") {
        Some(Value::String(list)) => list,
        Some(_) => {
            return Err(
                "Unable to start bulk download of files. 'idList' must be a comma-separated string of GUIDs."
                    .into(),
            )
        }
        None => {
            return Err("Unable to start bulk download of files. 'idList' is required.".into())
        }
    };
    let guids: Vec<String> = id_list
        .split(',')
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .collect();
    // `""`, `" "` and `","` alike name nothing.
    if guids.is_empty() {
        return Err("Unable to start bulk download of files. 'idList' is empty.".into());
    }
    Ok(guids)
}
