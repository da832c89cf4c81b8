//! Small HTTP pieces every route needs: bodies, JSON answers, bearer tokens,
//! `Range`, `Content-Disposition`.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
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

/// How much of a body over the limit is read and thrown away before the
/// refusal, as a multiple of the limit. Most clients (urllib, the vendors'
/// SDKs) write the whole body before they read; refused unread, they see a
/// connection reset instead of the answer, because closing a socket with
/// unread data resets it. Past this the connection is closed after the
/// answer instead.
pub const DISCARD_FACTOR: usize = 4;

/// Reads a request body of at most `limit` bytes within `timeout`, so a
/// client that trickles or stalls its body cannot hold the request open.
/// A body over the limit is refused, after what the client sends of it is
/// read and discarded up to [`DISCARD_FACTOR`] times the limit (within the
/// same timeout), so the client gets to read the refusal; a body declared
/// larger than that is refused before any of it is read.
pub async fn read_body(
    body: Incoming,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, BodyError> {
    read_request_body(&http::HeaderMap::new(), body, limit, timeout).await
}

/// [`read_body`] for a request whose headers are at hand: a client that
/// waits for `100 Continue` before sending a body over the limit is refused
/// at once, not invited to send what would be thrown away.
pub async fn read_request_body(
    headers: &http::HeaderMap,
    mut body: Incoming,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, BodyError> {
    let discard_up_to = (limit as u64).saturating_mul(DISCARD_FACTOR as u64);
    let declared = http_body::Body::size_hint(&body).lower();
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if declared > limit as u64 && (declared > discard_up_to || expects_continue) {
        return Err(BodyError::TooLarge(limit));
    }
    let read = async {
        // The usual body is one frame: kept as it came, copied only when a
        // second frame arrives (a copy per request shows at 80k req/s).
        let mut first: Option<Bytes> = None;
        let mut kept = bytes::BytesMut::new();
        let mut seen: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Io(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            seen += data.len() as u64;
            if seen > discard_up_to {
                // Too much to swallow: refuse now; the connection closes after the answer.
                return Err(BodyError::TooLarge(limit));
            }
            if seen <= limit as u64 {
                if first.is_none() && kept.is_empty() {
                    first = Some(data);
                } else {
                    if let Some(first) = first.take() {
                        kept.extend_from_slice(&first);
                    }
                    kept.extend_from_slice(&data);
                }
            } else {
                // Over the limit: what was kept goes, the rest is only counted.
                first = None;
                kept = bytes::BytesMut::new();
            }
        }
        if seen > limit as u64 {
            return Err(BodyError::TooLarge(limit));
        }
        Ok(first.unwrap_or_else(|| kept.freeze()))
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
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
