//! The one way a dialect turns an admitted [`Download`] into a response:
//! status, `Content-Length`, `Range` (206, `Content-Range`, `Accept-Ranges`,
//! or unsatisfiable for the dialect to answer in its vendor's envelope),
//! `Content-Type` and `Content-Disposition` in the vendor's style. A `HEAD`
//! gets the same headers over the empty body the core gives it.

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::dialect::Download;
use crate::http::{ascii_fallback, parse_range, percent_encode_rfc5987, Body, RangeRequest};

/// Whether `Range` is honoured, and how `Content-Range` is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ranges {
    /// `Range` is ignored: always the whole body, with no `Accept-Ranges`.
    Ignored,
    /// One byte range is served as a 206 (several as the whole body), and
    /// `Accept-Ranges: bytes` is sent, when the length is known.
    Bytes,
    /// The way the vendor's own ASP.NET file handler reads `Range`
    /// (`Range.Split('=', '-')`, a start and an optional end as integers,
    /// the end clamped to the body), answering `206` only for less than the
    /// whole body and writing `Content-Range` with a leading space
    /// (` bytes 0-9/100`). What it cannot read (a suffix or multi-range, a
    /// start past the end) is [`Unsatisfiable`], for the dialect to answer.
    Handler(HandlerRanges),
}

/// Where two builds of such a handler differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandlerRanges {
    /// `Accept-Ranges: bytes` on every answer, not only on ranged ones.
    pub always_accept_ranges: bool,
    /// `Content-Range` on a ranged answer that covers the whole body (a 200) too.
    pub content_range_when_whole: bool,
}

/// The handler's reading of `Range`: `None` without one, the inclusive
/// byte span otherwise, `Err` where the handler throws.
fn handler_range(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    // `Split('=', '-')`: the unit is not checked, `range[1]` is the start
    // and a non-empty `range[2]` the end.
    let parts: Vec<&str> = value.split(['=', '-']).collect();
    let number = |s: &str| s.trim().parse::<i64>().map_err(|_| ());
    let start = number(parts.get(1).ok_or(())?)?;
    let end = match parts.get(2).filter(|s| !s.is_empty()) {
        Some(end) => number(end)?,
        None => -1,
    };
    let last = len as i64 - 1;
    let end = if end < 0 || end > last { last } else { end };
    if start < 0 || end < start {
        return Err(());
    }
    Ok(Some((start as u64, end as u64)))
}

/// How the file name is offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// No `Content-Disposition`.
    None,
    /// `attachment; filename="<ASCII>"; filename*=UTF-8''<encoded>` (RFC 6266).
    Rfc6266,
    /// The same without spaces: `attachment;filename="…";filename*=UTF-8''…`.
    Rfc6266Compact,
    /// .NET's `ContentDisposition` for an ASCII name (a bare token when it
    /// can be one, else quoted); for any other, `filename="…"` and
    /// `filename*=UTF-8''…` percent-encoded as ASP.NET portals' own
    /// `ContentDispositionUtil` does (keeping `A-Za-z0-9-._~:!$&+`), the plain
    /// one raw or, with `encode_plain`, encoded the same way.
    DotNet { encode_plain: bool },
}

/// `ContentDispositionUtil.CreateRfc2231HeaderValue`: UTF-8, every byte
/// but `A-Za-z0-9-._~:!$&+` as `%XX`.
fn dotnet_rfc2231(name: &str) -> String {
    let mut out = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:!$&+".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Disposition {
    pub fn value(self, name: &str) -> Option<String> {
        match self {
            Disposition::None => None,
            Disposition::Rfc6266 => Some(crate::http::content_disposition(name)),
            Disposition::Rfc6266Compact => Some(format!(
                "attachment;filename=\"{}\";filename*=UTF-8''{}",
                ascii_fallback(name),
                percent_encode_rfc5987(name)
            )),
            Disposition::DotNet { .. } if name.is_ascii() => {
                let token = name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
                Some(if token {
                    format!("attachment; filename={name}")
                } else {
                    format!("attachment; filename=\"{}\"", name.replace('"', "\\\""))
                })
            }
            Disposition::DotNet { encode_plain } => {
                let encoded = dotnet_rfc2231(name);
                let plain = if encode_plain { encoded.as_str() } else { name };
                Some(format!(
                    "attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}"
                ))
            }
        }
    }
}

/// The `Range` asked for lies past the end: the dialect answers in its
/// vendor's terms (a 416 envelope, or whatever the vendor sends).
#[derive(Debug)]
pub struct Unsatisfiable {
    /// The whole body's length, for `Content-Range: bytes */<total>`.
    pub total: u64,
}

/// A vendor's download response, built once per dialect and applied to
/// each download.
#[derive(Clone, Copy, Debug)]
pub struct DownloadStyle<'a> {
    pub content_type: &'a str,
    pub disposition: Disposition,
    pub ranges: Ranges,
}

impl DownloadStyle<'_> {
    /// The response for `download`, as asked by `request_headers`.
    pub fn respond(
        &self,
        mut download: Download,
        request_headers: &HeaderMap,
    ) -> Result<Response<Body>, Unsatisfiable> {
        let name = download.job.name.clone();
        let total = download.len;
        let unsatisfiable = || Unsatisfiable {
            total: total.unwrap_or(0),
        };
        // Whether the request asked for a range the answer honours.
        let mut ranged = false;
        let (status, offset, length) = match (self.ranges, total) {
            (Ranges::Ignored, _) | (_, None) => (StatusCode::OK, 0, total),
            // An `If-Range` whose validator does not match the
            // representation's turns the `Range` off (RFC 9110 §13.1.5);
            // downloads carry no ETag or Last-Modified, so none matches.
            (Ranges::Bytes, Some(_)) if request_headers.contains_key(header::IF_RANGE) => {
                (StatusCode::OK, 0, total)
            }
            (Ranges::Bytes, Some(len)) => match parse_range(request_headers, len) {
                RangeRequest::Full => (StatusCode::OK, 0, total),
                RangeRequest::Partial { start, end } => {
                    ranged = true;
                    (StatusCode::PARTIAL_CONTENT, start, Some(end - start + 1))
                }
                RangeRequest::Unsatisfiable => return Err(unsatisfiable()),
            },
            (Ranges::Handler(_), Some(len)) => {
                match handler_range(request_headers, len).map_err(|_| unsatisfiable())? {
                    None => (StatusCode::OK, 0, total),
                    Some((start, end)) => {
                        ranged = true;
                        let length = end - start + 1;
                        let status = if length < len {
                            StatusCode::PARTIAL_CONTENT
                        } else {
                            StatusCode::OK
                        };
                        (status, start, Some(length))
                    }
                }
            }
        };
        let extensions = download.take_extensions();
        let mut response = Response::new(download.body(offset, length));
        *response.extensions_mut() = extensions;
        *response.status_mut() = status;
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(self.content_type) {
            headers.insert(header::CONTENT_TYPE, value);
        }
        if let Some(value) = self.disposition.value(&name) {
            // .NET writes non-ASCII names raw; `from_bytes` keeps them as UTF-8.
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
        }
        let (accept_ranges, content_range, space) = match self.ranges {
            Ranges::Ignored => (false, false, ""),
            Ranges::Bytes => (true, status == StatusCode::PARTIAL_CONTENT, ""),
            Ranges::Handler(handler) => (
                handler.always_accept_ranges || ranged,
                status == StatusCode::PARTIAL_CONTENT
                    || (ranged && handler.content_range_when_whole),
                " ",
            ),
        };
        if let Some(length) = length {
            if accept_ranges {
                headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            }
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        if let (true, Some(total), Some(length)) = (content_range, total, length) {
            let value = format!("{space}bytes {offset}-{}/{total}", offset + length - 1);
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(header::CONTENT_RANGE, value);
            }
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{body_bytes, FAKE_ARCHIVE};

    fn download(name: &str) -> Download {
        let mut job = crate::fake::job("j");
        job.name = name.to_owned();
        let len = FAKE_ARCHIVE.len() as u64;
        Download::new(
            job,
            Some(len),
            false,
            Box::new(|offset, len| {
                let start = offset as usize;
                let end = start + len.map_or(FAKE_ARCHIVE.len() - start, |l| l as usize);
                crate::http::full(&FAKE_ARCHIVE[start..end])
            }),
        )
    }

    fn headers(range: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
        headers
    }

    const STYLE: DownloadStyle<'static> = DownloadStyle {
        content_type: "application/zip",
        disposition: Disposition::Rfc6266,
        ranges: Ranges::Bytes,
    };

    #[test]
    fn a_range_is_a_206_with_its_content_range() {
        let response = STYLE
            .respond(download("a.zip"), &headers("bytes=2-5"))
            .unwrap();
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        let h = response.headers();
        assert_eq!(h[header::CONTENT_LENGTH], "4");
        assert_eq!(h[header::ACCEPT_RANGES], "bytes");
        let total = FAKE_ARCHIVE.len();
        assert_eq!(
            h[header::CONTENT_RANGE],
            format!("bytes 2-5/{total}").as_str()
        );
        assert_eq!(body_bytes(response), &FAKE_ARCHIVE[2..6]);
    }

    #[test]
    fn a_handler_reads_range_its_own_way() {
        let handler = |always_accept_ranges, content_range_when_whole| DownloadStyle {
            ranges: Ranges::Handler(HandlerRanges {
                always_accept_ranges,
                content_range_when_whole,
            }),
            ..STYLE
        };
        let total = FAKE_ARCHIVE.len();
        // A span: 206 with a leading space; the end clamps; the unit is not read.
        let response = handler(false, true)
            .respond(download("a.zip"), &headers("items=2-999"))
            .unwrap();
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        let range = format!(" bytes 2-{}/{total}", total - 1);
        assert_eq!(response.headers()[header::CONTENT_RANGE], range.as_str());
        // The whole body: 200, with Content-Range only if the build writes it.
        for (whole, expected) in [
            (true, Some(format!(" bytes 0-{}/{total}", total - 1))),
            (false, None),
        ] {
            let response = handler(false, whole)
                .respond(download("a.zip"), &headers("bytes=0-"))
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let got = response.headers().get(header::CONTENT_RANGE);
            assert_eq!(got.map(|v| v.to_str().unwrap().to_owned()), expected);
        }
        // No Range: Accept-Ranges only where the build always sends it.
        let plain = HeaderMap::new();
        for always in [true, false] {
            let response = handler(always, false)
                .respond(download("a.zip"), &plain)
                .unwrap();
            assert_eq!(
                response.headers().contains_key(header::ACCEPT_RANGES),
                always
            );
        }
        // What its parser throws on is the dialect's to answer.
        for range in [
            "bytes=-3",
            "bytes=0-1,4-5",
            "bytes=9999-",
            "bytes=5-2",
            "bytes",
        ] {
            assert!(
                handler(true, false)
                    .respond(download("a.zip"), &headers(range))
                    .is_err(),
                "{range}"
            );
        }
    }

    #[test]
    fn past_the_end_is_for_the_dialect_and_ignored_ranges_serve_it_all() {
        let err = STYLE
            .respond(download("a.zip"), &headers("bytes=999-"))
            .unwrap_err();
        assert_eq!(err.total, FAKE_ARCHIVE.len() as u64);
        let ignoring = DownloadStyle {
            ranges: Ranges::Ignored,
            ..STYLE
        };
        let response = ignoring
            .respond(download("a.zip"), &headers("bytes=999-"))
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get(header::ACCEPT_RANGES).is_none());
        assert_eq!(body_bytes(response), FAKE_ARCHIVE);
    }

    #[test]
    fn dispositions_in_each_style() {
        let d = |style: Disposition, name| style.value(name).unwrap_or_default();
        assert_eq!(
            d(Disposition::Rfc6266, "Ü a.zip"),
            "attachment; filename=\"_ a.zip\"; filename*=UTF-8''%C3%9C%20a.zip"
        );
        assert_eq!(
            d(Disposition::Rfc6266Compact, "a.zip"),
            "attachment;filename=\"a.zip\";filename*=UTF-8''a.zip"
        );
        assert_eq!(
            d(
                Disposition::DotNet {
                    encode_plain: false
                },
                "Docs.zip"
            ),
            "attachment; filename=Docs.zip"
        );
        assert_eq!(
            d(
                Disposition::DotNet {
                    encode_plain: false
                },
                "My Docs.zip"
            ),
            "attachment; filename=\"My Docs.zip\""
        );
        assert_eq!(
            d(
                Disposition::DotNet {
                    encode_plain: false
                },
                "Ü.zip"
            ),
            "attachment; filename=\"Ü.zip\"; filename*=UTF-8''%C3%9C.zip"
        );
        // `:` kept, `#` and spaces encoded; DocSpace encodes the plain one too.
        assert_eq!(
            d(Disposition::DotNet { encode_plain: true }, "Ü 1:2#3.zip"),
            "attachment; filename=\"%C3%9C%201:2%233.zip\"; filename*=UTF-8''%C3%9C%201:2%233.zip"
        );
        assert_eq!(Disposition::None.value("a.zip"), None);
    }
}
