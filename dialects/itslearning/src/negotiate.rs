//! ASP.NET Web API 2's `DefaultContentNegotiator`: the JSON formatter
//! (`application/json`, `text/json`) then the XML one (`application/xml`,
//! `text/xml`); the Accept header first (by q, literal types before ranges,
//! ties to JSON), then the request's Content-Type, then JSON. Never 406.

use http::{header, HeaderMap};
use zipgate_api::http::weighted;

/// The response's media type and character encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json(&'static str, Charset),
    Xml(&'static str, Charset),
}

/// The encodings both formatters support (`SupportedEncodings`: UTF-8,
/// then UTF-16 as `Encoding.Unicode`, little-endian with a byte-order mark).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    Utf16,
}

impl Charset {
    fn named(name: &str) -> Option<Charset> {
        let name = name.trim().trim_matches('"');
        if name.eq_ignore_ascii_case("utf-8") {
            Some(Charset::Utf8)
        } else if name.eq_ignore_ascii_case("utf-16") {
            Some(Charset::Utf16)
        } else {
            None
        }
    }

    /// The body in this encoding, as the formatter writes it.
    pub fn encode(self, text: String) -> Vec<u8> {
        match self {
            Charset::Utf8 => text.into_bytes(),
            Charset::Utf16 => {
                let mut out = Vec::with_capacity(2 + 2 * text.len());
                out.extend_from_slice(&[0xFF, 0xFE]);
                out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
                out
            }
        }
    }
}

impl Format {
    pub fn content_type(self) -> String {
        let (media, charset) = match self {
            Format::Json(m, c) | Format::Xml(m, c) => (m, c),
        };
        let charset = match charset {
            Charset::Utf8 => "utf-8",
            Charset::Utf16 => "utf-16",
        };
        format!("{media}; charset={charset}")
    }

    pub fn charset(self) -> Charset {
        match self {
            Format::Json(_, c) | Format::Xml(_, c) => c,
        }
    }

    pub fn is_xml(self) -> bool {
        matches!(self, Format::Xml(..))
    }
}

/// A request's `Content-Type` as `MediaTypeHeaderValue` parses it: the
/// media type lower-cased and its `charset`, if the formatters know it.
pub struct ContentType {
    pub media: String,
    pub charset: Option<Charset>,
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `None` when the header is missing or does not parse (`garbage`,
/// `application/`, `application/json;;;`): Web API then treats the body as
/// having no Content-Type (recorded: `ctype_*`).
pub fn request_content_type(headers: &HeaderMap) -> Option<ContentType> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mut parts = value.split(';');
    let media = parts.next()?.trim();
    let (kind, subtype) = media.split_once('/')?;
    if !is_token(kind) || !is_token(subtype) {
        return None;
    }
    let mut charset = None;
    for parameter in parts {
        let (name, value) = parameter.split_once('=')?;
        let (name, value) = (name.trim(), value.trim());
        let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
        if !is_token(name) || !(is_token(value) || quoted) {
            return None;
        }
        if name.eq_ignore_ascii_case("charset") {
            charset = Charset::named(value);
        }
    }
    Some(ContentType {
        media: media.to_ascii_lowercase(),
        charset,
    })
}

/// `MediaTypeFormatter.SelectCharacterEncoding`: `Accept-Charset` by
/// quality, then the request body's charset, then UTF-8.
fn response_charset(headers: &HeaderMap, request_charset: Option<Charset>) -> Charset {
    if let Some(accept) = headers
        .get(header::ACCEPT_CHARSET)
        .and_then(|v| v.to_str().ok())
    {
        let mut best: Option<(u32, Charset)> = None;
        for (name, quality) in weighted(accept) {
            let charset = if name == "*" {
                Some(Charset::Utf8)
            } else {
                Charset::named(&name)
            };
            if let Some(charset) = charset.filter(|_| quality > 0) {
                if best.is_none_or(|(q, _)| quality > q) {
                    best = Some((quality, charset));
                }
            }
        }
        if let Some((_, charset)) = best {
            return charset;
        }
    }
    request_charset.unwrap_or(Charset::Utf8)
}

const FORMATTERS: [(bool, [&str; 2]); 2] = [
    (false, ["application/json", "text/json"]),
    (true, ["application/xml", "text/xml"]),
];

fn make(xml: bool, media: &'static str, charset: Charset) -> Format {
    if xml {
        Format::Xml(media, charset)
    } else {
        Format::Json(media, charset)
    }
}

/// (rank: 2 literal, 1 subtype range, 0 all; quality in thousandths)
fn accept_match(accept: &str, supported: &[&'static str; 2]) -> Option<(u32, u8, &'static str)> {
    let mut best: Option<(u32, u8, &'static str)> = None;
    for (range, quality) in weighted(accept) {
        if quality == 0 {
            continue;
        }
        let found = if range == "*/*" {
            Some((0, supported[0]))
        } else if let Some(kind) = range.strip_suffix("/*") {
            supported
                .iter()
                .find(|m| m.split('/').next() == Some(kind))
                .map(|m| (1, *m))
        } else {
            supported.iter().find(|m| **m == range).map(|m| (2, *m))
        };
        if let Some((rank, media)) = found {
            if best.is_none_or(|(q, r, _)| (quality, rank) > (q, r)) {
                best = Some((quality, rank, media));
            }
        }
    }
    best
}

pub fn negotiate(headers: &HeaderMap) -> Format {
    let request_type = request_content_type(headers);
    let charset = response_charset(headers, request_type.as_ref().and_then(|t| t.charset));
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    // The JSON formatter's XmlHttpRequestHeaderMapping comes first: an
    // XMLHttpRequest with no Accept, or only `*/*`, gets JSON (recorded: `xrw_*`).
    let ajax = headers
        .get("x-requested-with")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("XMLHttpRequest"));
    let any_only = accept.is_none_or(|a| weighted(a).all(|(range, _)| range == "*/*"));
    if ajax && any_only {
        return Format::Json("application/json", charset);
    }
    if let Some(accept) = accept {
        let mut best: Option<(u32, u8, Format)> = None;
        for (xml, supported) in &FORMATTERS {
            if let Some((q, rank, media)) = accept_match(accept, supported) {
                // Strictly better only: on a tie the earlier formatter (JSON) stays.
                if best.is_none_or(|(bq, br, _)| (q, rank) > (bq, br)) {
                    best = Some((q, rank, make(*xml, media, charset)));
                }
            }
        }
        if let Some((_, _, format)) = best {
            return format;
        }
    }
    if let Some(request_type) = request_type {
        for (xml, supported) in &FORMATTERS {
            if let Some(media) = supported.iter().find(|m| **m == request_type.media) {
                return make(*xml, media, charset);
            }
        }
    }
    Format::Json("application/json", charset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(accept: Option<&str>, content_type: Option<&str>) -> Format {
        let mut headers = HeaderMap::new();
        if let Some(a) = accept {
            headers.insert(header::ACCEPT, a.parse().unwrap());
        }
        if let Some(c) = content_type {
            headers.insert(header::CONTENT_TYPE, c.parse().unwrap());
        }
        negotiate(&headers)
    }

    #[test]
    fn like_the_default_content_negotiator() {
        assert_eq!(
            with(None, None),
            Format::Json("application/json", Charset::Utf8)
        );
        assert_eq!(
            with(Some("application/json, text/plain, */*"), None),
            Format::Json("application/json", Charset::Utf8)
        );
        assert_eq!(
            with(Some("*/*"), Some("text/xml")),
            Format::Json("application/json", Charset::Utf8)
        );
        assert_eq!(
            with(Some("text/json"), None),
            Format::Json("text/json", Charset::Utf8)
        );
        assert_eq!(
            with(Some("application/xml"), Some("application/json")),
            Format::Xml("application/xml", Charset::Utf8)
        );
        assert_eq!(
            with(
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                None
            ),
            Format::Xml("application/xml", Charset::Utf8)
        );
        assert_eq!(
            with(Some("text/*"), None),
            Format::Json("text/json", Charset::Utf8)
        );
        assert_eq!(
            with(Some("text/plain"), Some("text/xml; charset=utf-8")),
            Format::Xml("text/xml", Charset::Utf8)
        );
        assert_eq!(
            with(None, Some("application/x-www-form-urlencoded")),
            Format::Json("application/json", Charset::Utf8)
        );
        assert_eq!(
            with(Some("application/json;q=0"), Some("application/xml")),
            Format::Xml("application/xml", Charset::Utf8)
        );
    }
}
