//! What Web API 2's formatters write: `ZipFileJobModel` as compact JSON in
//! declaration order (nulls written out) or as DataContractSerializer XML
//! (alphabetical members, `i:nil="true"`), with the negotiated Content-Type.

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;
use zipgate_api::http::{full, Body};
use zipgate_api::time::utc_seconds;
use zipgate_api::{DialectRequest, JobSnapshot, JobState};

use crate::negotiate::Format;
use crate::request::ENTITIES_NS;
use crate::ItslearningDialect;

const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

pub(crate) fn respond(status: StatusCode, format: Format, body: String) -> Response<Body> {
    let mut response = Response::new(full(format.charset().encode(body)));
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(&format.content_type()) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// IIS-hosted Web API marks every answer uncacheable:
/// `System.Web.Http.WebHost/HttpControllerHandler.cs` (`CopyResponseAsync`)
/// sets no-cache on the response, so IIS writes these three headers on
/// successes and errors alike. Self-hosting (the recorded reference) does
/// not; itslearning is IIS-hosted.
pub(crate) fn iis(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("-1"));
    response
}

/// No job: a typed action returning null. DataContractSerializer writes the
/// contract namespace on the nil root too (recorded: `latest_xml`), and
/// XmlWriter ends an empty element with ` />`.
pub(crate) fn null_model(format: Format) -> String {
    if format.is_xml() {
        format!("<ZipFileJobModel i:nil=\"true\" xmlns:i=\"{XSI}\" xmlns=\"{ENTITIES_NS}\" />")
    } else {
        "null".to_owned()
    }
}

impl ItslearningDialect {
    fn status_name(&self, state: JobState) -> &str {
        let index = match state {
            JobState::Queued => 0,
            JobState::Running => 1,
            JobState::Ready | JobState::Downloading | JobState::Done => 2,
            JobState::Failed | JobState::Cancelled | JobState::Expired => 3,
        };
        &self.settings.statuses[index]
    }

    /// `ZipFileJobModel`: JSON in declaration order, XML in DataContract (alphabetical) order.
    pub(crate) fn model(
        &self,
        job: &JobSnapshot,
        request: &DialectRequest,
        format: Format,
    ) -> String {
        let download_url = matches!(
            job.state,
            JobState::Ready | JobState::Downloading | JobState::Done
        )
        .then(|| {
            format!(
                "{}/filerepo/zip/{}/{}",
                request.origin(),
                job.id,
                job.context
            )
        });
        let status = self.status_name(job.state);
        let created = utc_seconds(job.created_at);
        match format {
            Format::Json(..) => json!({
                "JobId": job.id.parse::<u64>().unwrap_or(0),
                "FileRepoId": job.context,
                "ZipFileName": job.name,
                "Created": created,
                "Status": status,
                "DownloadUrl": download_url,
            })
            .to_string(),
            Format::Xml(..) => {
                let url = download_url.map_or("<DownloadUrl i:nil=\"true\" />".to_owned(), |u| {
                    format!(
                        "<DownloadUrl>{}</DownloadUrl>",
                        zipgate_api::xml::escape(&u)
                    )
                });
                format!(
                    "<ZipFileJobModel xmlns:i=\"{XSI}\" xmlns=\"{ENTITIES_NS}\"><Created>{created}</Created>{url}\
                     <FileRepoId>{}</FileRepoId><JobId>{}</JobId><Status>{}</Status><ZipFileName>{}</ZipFileName></ZipFileJobModel>",
                    job.context,
                    job.id,
                    zipgate_api::xml::escape(status),
                    zipgate_api::xml::escape(&job.name)
                )
            }
        }
    }
}
