//! Small HTTP pieces every route needs: bodies, JSON answers, bearer tokens,
//! `Range`, `Content-Disposition`.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

pub use zipgate_api::http::{
    ascii_fallback, bearer, empty, full, media_type, parse_range, percent_encode_rfc5987, Body,
    Credentials, RangeRequest,
};
pub use zipgate_api::BodyError;

pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The control plane's own error shape: `{"error": kind, "message": text}`.
pub fn json_error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response<Body> {
    json_response(
        status,
        &serde_json::json!({ "error": kind, "message": message.into() }),
    )
}

/// Reads a whole request body, refusing to hold more than `limit` bytes.
/// Reads a request body of at most `limit` bytes (a larger declared length is
/// refused before any of it is read) within `timeout`, so a client that
/// trickles or stalls its body cannot hold the request open.
pub async fn read_body(
    body: Incoming,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, BodyError> {
    if http_body::Body::size_hint(&body).lower() > limit as u64 {
        return Err(BodyError::TooLarge(limit));
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Ok(Err(e)) => Err(BodyError::Io(e.to_string())),
        Err(_) => Err(BodyError::Io(format!(
            "the body did not arrive within {} s",
            timeout.as_secs_f64()
        ))),
    }
}

/// The RFC 6266 `Content-Disposition` (see `zipgate_api::http::content_disposition`).
pub fn content_disposition(filename: &str) -> HeaderValue {
    HeaderValue::from_str(&zipgate_api::http::content_disposition(filename))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_has_ascii_fallback_and_utf8_form() {
        let value = content_disposition("Überblick \"Q1\".zip");
        assert_eq!(
            value.to_str().unwrap(),
            "attachment; filename=\"_berblick _Q1_.zip\"; filename*=UTF-8''%C3%9Cberblick%20%22Q1%22.zip"
        );
    }
}
