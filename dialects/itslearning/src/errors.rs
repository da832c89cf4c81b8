//! Web API 2's `HttpError`: `{"Message":…}` or `<Error><Message>…</Message></Error>`,
//! with `ModelState` for an invalid request, in the negotiated format.

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};
use zipgate_api::http::Body;

use crate::negotiate::Format;
use crate::render::respond;
use crate::request::ModelState;

/// A Web API `HttpError`: `Message`, optionally `ModelState`.
pub(crate) struct WebError {
    status: StatusCode,
    message: String,
    model_state: Option<ModelState>,
}

impl WebError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        WebError {
            status,
            message: message.into(),
            model_state: None,
        }
    }

    /// 400 "The request is invalid.", with the ModelState when there is one
    /// (a route value that does not bind has none: recorded `route_id_text`).
    pub(crate) fn invalid(model_state: Option<ModelState>) -> Self {
        WebError {
            model_state,
            ..WebError::new(StatusCode::BAD_REQUEST, "The request is invalid.")
        }
    }

    pub(crate) fn unauthorized() -> Self {
        WebError::new(
            StatusCode::UNAUTHORIZED,
            "Authorization has been denied for this request.",
        )
    }
}

/// `XmlConvert.EncodeLocalName`: characters not allowed in a name become `_xHHHH_`.
fn encode_local_name(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            let ok = c.is_ascii_alphabetic()
                || c == '_'
                || (i > 0 && (c.is_ascii_digit() || c == '.' || c == '-'));
            if ok {
                c.to_string()
            } else {
                format!("_x{:04X}_", c as u32)
            }
        })
        .collect()
}

pub(crate) fn error_response(err: &WebError, format: Format) -> Response<Body> {
    let body = if format.is_xml() {
        // Several messages under one key are one element, joined by spaces
        // (HttpError's XML serialization; recorded: `ms_truncated_accept_xml`).
        let model_state = err.model_state.as_ref().map_or(String::new(), |state| {
            let mut out = String::from("<ModelState>");
            for (key, messages) in &state.0 {
                let name = encode_local_name(key);
                let text = zipgate_api::xml::escape(&messages.join(" "));
                out.push_str(&format!("<{name}>{text}</{name}>"));
            }
            out.push_str("</ModelState>");
            out
        });
        format!(
            "<Error><Message>{}</Message>{model_state}</Error>",
            zipgate_api::xml::escape(&err.message)
        )
    } else {
        let mut map = Map::new();
        map.insert("Message".into(), json!(err.message));
        if let Some(state) = &err.model_state {
            let keys: Map<String, Value> = state
                .0
                .iter()
                .map(|(key, messages)| (key.clone(), json!(messages)))
                .collect();
            map.insert("ModelState".into(), Value::Object(keys));
        }
        Value::Object(map).to_string()
    };
    let mut response = respond(err.status, format, body);
    if err.status == 401 {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_state_keys_are_encoded_as_xml_names() {
        assert_eq!(
            encode_local_name("request.FileIds[0]"),
            "request.FileIds_x005B_0_x005D_"
        );
        assert_eq!(encode_local_name("request"), "request");
    }
}
