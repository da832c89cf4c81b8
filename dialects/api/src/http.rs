//! Neutral HTTP helpers every dialect needs: the body type, bearer tokens,
//! `Range`, RFC 5987 encoding.

use std::io;

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http_body_util::{BodyExt, Full};

/// Every response body: small ones in memory, archives streamed.
pub type Body = http_body_util::combinators::BoxBody<Bytes, io::Error>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// The media type of a request, lower-cased, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// The items of a weighted list (`Accept`, `Accept-Charset`), each
/// lower-cased with its `q` in thousandths (1000 when absent; a `q` that
/// does not parse counts as absent), in the order written.
pub fn weighted(value: &str) -> impl Iterator<Item = (String, u32)> + '_ {
    value.split(',').map(|part| {
        let mut pieces = part.split(';');
        let item = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = pieces
            .filter_map(|p| p.trim().strip_prefix("q="))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        (item, (quality.clamp(0.0, 1.0) * 1000.0).round() as u32)
    })
}

#[derive(Debug, PartialEq, Eq)]
pub enum Credentials<'a> {
    None,
    Bearer(&'a str),
    /// An `Authorization` header that is not a usable bearer token.
    Malformed,
}

pub fn bearer(headers: &HeaderMap) -> Credentials<'_> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Credentials::None;
    };
    let Ok(value) = value.to_str() else {
        return Credentials::Malformed;
    };
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Credentials::Bearer(token.trim())
        }
        _ => Credentials::Malformed,
    }
}

/// What an `Authorization: Basic …` header holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Basic {
    /// No `Authorization` header, or another scheme.
    Absent,
    /// `Basic` with something that is not base64 of UTF-8 `login:password`.
    Invalid,
    Pair {
        login: String,
        password: String,
    },
}

/// The `Basic` credentials of a request (RFC 7617: UTF-8, split at the first `:`).
pub fn basic(headers: &HeaderMap) -> Basic {
    use base64::Engine as _;
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Basic::Absent;
    };
    let Some(encoded) = value.trim().strip_prefix("Basic ") else {
        return Basic::Absent;
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    match decoded.as_deref().and_then(|text| text.split_once(':')) {
        Some((login, password)) => Basic::Pair {
            login: login.to_owned(),
            password: password.to_owned(),
        },
        None => Basic::Invalid,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable `Range`: serve everything (RFC 9110 lets a server ignore what it cannot parse).
    Full,
    /// Inclusive byte range within the representation.
    Partial {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

/// Interprets one `Range: bytes=…` header against a body of `len` bytes.
/// Several ranges are served as the whole body rather than as multipart.
pub fn parse_range(headers: &HeaderMap, len: u64) -> RangeRequest {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeRequest::Full;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            Some(s.parse().unwrap_or(u64::MAX))
        }
    };
    match (first.is_empty(), number(first), number(last)) {
        // bytes=-n: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial {
                    start: len.saturating_sub(n),
                    end: len - 1,
                }
            }
        }
        (false, Some(start), end) if last.is_empty() || end.is_some() => {
            if let Some(end) = end {
                if end < start {
                    return RangeRequest::Full;
                }
            }
            if start >= len {
                return RangeRequest::Unsatisfiable;
            }
            RangeRequest::Partial {
                start,
                end: end.map_or(len - 1, |e| e.min(len - 1)),
            }
        }
        _ => RangeRequest::Full,
    }
}

/// RFC 5987 `attr-char` percent-encoding for `filename*`.
pub fn percent_encode_rfc5987(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<encoded>` (RFC 6266).
pub fn content_disposition(filename: &str) -> String {
    format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        ascii_fallback(filename),
        percent_encode_rfc5987(filename)
    )
}

/// `Allow: GET, POST` on a 405.
pub fn insert_allow(headers: &mut http::HeaderMap, allowed: &[http::Method]) {
    let allow = allowed
        .iter()
        .map(http::Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(value) = http::HeaderValue::from_str(&allow) {
        headers.insert(header::ALLOW, value);
    }
}

/// `name` with every character outside printable ASCII, and `"` and `\`,
/// replaced by `_`: the plain `filename=` fallback beside `filename*`.
pub fn ascii_fallback(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '"' | '\\' => '_',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn weighted_lists_give_each_item_its_quality() {
        let items: Vec<(String, u32)> =
            weighted("Text/HTML, application/xml;q=0.9, */*; q=0.8, utf-16;q=x, a;q=2").collect();
        assert_eq!(
            items,
            [
                ("text/html".into(), 1000),
                ("application/xml".into(), 900),
                ("*/*".into(), 800),
                ("utf-16".into(), 1000),
                ("a".into(), 1000),
            ]
        );
    }

    fn range(value: &str, len: u64) -> RangeRequest {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        parse_range(&headers, len)
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        use RangeRequest::*;
        assert_eq!(range("bytes=0-9", 100), Partial { start: 0, end: 9 });
        assert_eq!(range("bytes=90-", 100), Partial { start: 90, end: 99 });
        assert_eq!(range("bytes=90-500", 100), Partial { start: 90, end: 99 });
        assert_eq!(range("bytes=-10", 100), Partial { start: 90, end: 99 });
        assert_eq!(range("bytes=-500", 100), Partial { start: 0, end: 99 });
        assert_eq!(range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(range("bytes=5-1", 100), Full);
        assert_eq!(range("bytes=0-1,5-6", 100), Full);
        assert_eq!(range("items=0-1", 100), Full);
        assert_eq!(range("bytes=x-1", 100), Full);
        assert_eq!(parse_range(&HeaderMap::new(), 100), Full);
    }

    #[test]
    fn bearer_tokens() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), Credentials::None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&headers), Credentials::Bearer("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), Credentials::Malformed);
    }

    #[test]
    fn basic_credentials() {
        let mut headers = HeaderMap::new();
        assert_eq!(basic(&headers), Basic::Absent);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic(&headers), Basic::Absent);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!"));
        assert_eq!(basic(&headers), Basic::Invalid);
        // "alice:pa:ss"
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6cGE6c3M="),
        );
        assert_eq!(
            basic(&headers),
            Basic::Pair {
                login: "alice".into(),
                password: "pa:ss".into()
            }
        );
    }

    #[test]
    fn rfc5987_and_fallback() {
        assert_eq!(percent_encode_rfc5987("Ü a.zip"), "%C3%9C%20a.zip");
        assert_eq!(ascii_fallback("Ü \"a\".zip"), "_ _a_.zip");
    }
}
