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
    /// As `Bytes`, with `Content-Range` written with a leading space
    /// (` bytes 0-9/100`), as IIS-hosted .NET handlers write it.
    BytesLeadingSpace,
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
    /// .NET's `ContentDisposition`: a bare token when it can be one, else
    /// quoted, and `filename*` only for non-ASCII names.
    DotNet,
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
            Disposition::DotNet if name.is_ascii() => {
                let token = name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
                Some(if token {
                    format!("attachment; filename={name}")
                } else {
                    format!("attachment; filename=\"{}\"", name.replace('"', "\\\""))
                })
            }
            Disposition::DotNet => Some(format!(
                "attachment; filename=\"{name}\"; filename*=UTF-8''{}",
                percent_encode_rfc5987(name)
            )),
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
        download: Download,
        request_headers: &HeaderMap,
    ) -> Result<Response<Body>, Unsatisfiable> {
        let name = download.job.name.clone();
        let total = download.len;
        let range = match (self.ranges, total) {
            (Ranges::Ignored, _) | (_, None) => RangeRequest::Full,
            (_, Some(len)) => parse_range(request_headers, len),
        };
        let (status, offset, length) = match range {
            RangeRequest::Full => (StatusCode::OK, 0, total),
            RangeRequest::Partial { start, end } => {
                (StatusCode::PARTIAL_CONTENT, start, Some(end - start + 1))
            }
            RangeRequest::Unsatisfiable => {
                return Err(Unsatisfiable {
                    total: total.unwrap_or(0),
                })
            }
        };
        let mut response = Response::new(download.body(offset, length));
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
        if let Some(length) = length {
            if self.ranges != Ranges::Ignored {
                headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            }
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        if let (StatusCode::PARTIAL_CONTENT, Some(total), Some(length)) = (status, total, length) {
            let space = if self.ranges == Ranges::BytesLeadingSpace {
                " "
            } else {
                ""
            };
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

        let spaced = DownloadStyle {
            ranges: Ranges::BytesLeadingSpace,
            ..STYLE
        };
        let response = spaced
            .respond(download("a.zip"), &headers("bytes=-3"))
            .unwrap();
        let range = format!(" bytes {}-{}/{total}", total - 3, total - 1);
        assert_eq!(response.headers()[header::CONTENT_RANGE], range.as_str());
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
            d(Disposition::DotNet, "Docs.zip"),
            "attachment; filename=Docs.zip"
        );
        assert_eq!(
            d(Disposition::DotNet, "My Docs.zip"),
            "attachment; filename=\"My Docs.zip\""
        );
        assert_eq!(
            d(Disposition::DotNet, "Ü.zip"),
            "attachment; filename=\"Ü.zip\"; filename*=UTF-8''%C3%9C.zip"
        );
        assert_eq!(Disposition::None.value("a.zip"), None);
    }
}
