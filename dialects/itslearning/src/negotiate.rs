//! ASP.NET Web API 2's `DefaultContentNegotiator`: the JSON formatter
//! (`application/json`, `text/json`) then the XML one (`application/xml`,
//! `text/xml`); the Accept header first (by q, literal types before ranges,
//! ties to JSON), then the request's Content-Type, then JSON. Never 406.

use http::{header, HeaderMap};
use zipgate_api::http::media_type;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json(&'static str),
    Xml(&'static str),
}

impl Format {
    pub fn content_type(self) -> String {
        let media = match self {
            Format::Json(m) | Format::Xml(m) => m,
        };
        format!("{media}; charset=utf-8")
    }
}

const FORMATTERS: [(bool, [&str; 2]); 2] = [
    (false, ["application/json", "text/json"]),
    (true, ["application/xml", "text/xml"]),
];

fn make(xml: bool, media: &'static str) -> Format {
    if xml {
        Format::Xml(media)
    } else {
        Format::Json(media)
    }
}

/// (rank: 2 literal, 1 subtype range, 0 all; quality in thousandths)
fn accept_match(accept: &str, supported: &[&'static str; 2]) -> Option<(u32, u8, &'static str)> {
    let mut best: Option<(u32, u8, &'static str)> = None;
    for part in accept.split(',') {
        let mut pieces = part.split(';');
        let range = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = pieces
            .filter_map(|p| p.trim().strip_prefix("q="))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        let quality = (quality.clamp(0.0, 1.0) * 1000.0).round() as u32;
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
    if let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        let mut best: Option<(u32, u8, Format)> = None;
        for (xml, supported) in &FORMATTERS {
            if let Some((q, rank, media)) = accept_match(accept, supported) {
                // Strictly better only: on a tie the earlier formatter (JSON) stays.
                if best.is_none_or(|(bq, br, _)| (q, rank) > (bq, br)) {
                    best = Some((q, rank, make(*xml, media)));
                }
            }
        }
        if let Some((_, _, format)) = best {
            return format;
        }
    }
    if let Some(request_type) = media_type(headers) {
        for (xml, supported) in &FORMATTERS {
            if let Some(media) = supported.iter().find(|m| **m == request_type) {
                return make(*xml, media);
            }
        }
    }
    Format::Json("application/json")
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
        assert_eq!(with(None, None), Format::Json("application/json"));
        assert_eq!(
            with(Some("application/json, text/plain, */*"), None),
            Format::Json("application/json")
        );
        assert_eq!(
            with(Some("*/*"), Some("text/xml")),
            Format::Json("application/json")
        );
        assert_eq!(with(Some("text/json"), None), Format::Json("text/json"));
        assert_eq!(
            with(Some("application/xml"), Some("application/json")),
            Format::Xml("application/xml")
        );
        assert_eq!(
            with(
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                None
            ),
            Format::Xml("application/xml")
        );
        assert_eq!(with(Some("text/*"), None), Format::Json("text/json"));
        assert_eq!(
            with(Some("text/plain"), Some("text/xml; charset=utf-8")),
            Format::Xml("text/xml")
        );
        assert_eq!(
            with(None, Some("application/x-www-form-urlencoded")),
            Format::Json("application/json")
        );
        assert_eq!(
            with(Some("application/json;q=0"), Some("application/xml")),
            Format::Xml("application/xml")
        );
    }
}
