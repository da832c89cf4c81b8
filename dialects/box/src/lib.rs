//! Box's zip downloads API: `POST /2.0/zip_downloads` (202 `ZipDownload`),
//! `GET …/{id}/content` (the archive, single use, no auth) and
//! `GET …/{id}/status` (`ZipDownloadStatus`). Translation only: the core
//! plans, stores jobs and writes the zip.

mod errors;
mod ids;
mod request;
mod settings;

use http::{header, HeaderValue, Method, Response, StatusCode};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use zipgate_api::download::{Disposition, DownloadStyle, Ranges};
use zipgate_api::http::{bearer, empty, full, insert_allow, Body, Credentials};
use zipgate_api::plan::{safe_component, PlanOptions};
use zipgate_api::rng::SplitMix64;
use zipgate_api::time::utc_seconds;
use zipgate_api::{
    BodyError, Core, Cors, CreateJob, Dialect, DialectRequest, Error, Example, JobOp, JobSnapshot,
    JobState, LimitKind, NodeId, NodeKind, Pacing, Principal, Route, SelectedItem, Settings,
    UserInfo,
};

pub use errors::BoxError;

/// The request parser, for the fuzz targets and their corpus replay (`zipgate::fuzzing`); not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::request::{parse, parse_checked, parse_usual, ZipRequest};
}
use ids::DIALECT;
pub use settings::{BoxSettings, StatusBeforeDownload, UnauthorizedBody};

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Create,
    Content,
    Status,
}

pub struct BoxDialect {
    settings: BoxSettings,
}

impl BoxDialect {
    pub fn new(settings: &Settings) -> Result<Self, String> {
        Ok(BoxDialect {
            settings: BoxSettings::parse(settings)?,
        })
    }
}

/// The `ZipDownload` resource a create answers with.
#[derive(Serialize)]
struct ZipDownload<'a> {
    download_url: String,
    status_url: String,
    expires_at: String,
    name_conflicts: Vec<Vec<NameConflict<'a>>>,
}

#[derive(Serialize)]
struct NameConflict<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    original_name: &'a str,
    download_name: &'a str,
}

/// Every response carries a `BOX-REQUEST-ID`; JSON ones are never cached.
fn json(status: StatusCode, body: &impl Serialize, request_id: &str) -> Response<Body> {
    // Structs of strings and numbers, or a Value: serialising cannot fail.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    insert_request_id(headers, request_id);
    response
}

fn insert_request_id(headers: &mut http::HeaderMap, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("box-request-id", value);
    }
}

impl BoxDialect {
    /// Box's error answer. The body's `request_id` and the `BOX-REQUEST-ID`
    /// header are two different ids, as on Box (its SDKs print them joined
    /// by a dot).
    fn error(&self, err: &BoxError, core: &dyn Core) -> Response<Body> {
        let header_id = ids::request_id(core);
        let mut response = if err.status == StatusCode::UNAUTHORIZED
            && self.settings.unauthorized_body == UnauthorizedBody::Empty
        {
            // What Box's gateway sends for a bad token: no body, no type.
            let mut response = Response::new(empty());
            *response.status_mut() = err.status;
            insert_request_id(response.headers_mut(), &header_id);
            response
        } else {
            let body = err.body(&ids::error_request_id(core));
            json(err.status, &body, &header_id)
        };
        let headers = response.headers_mut();
        if err.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"Service\", error=\"invalid_token\", error_description=\"The access token provided is invalid.\"",
                ),
            );
        }
        if err.status == StatusCode::TOO_MANY_REQUESTS
            || err.status == StatusCode::SERVICE_UNAVAILABLE
        {
            // Box's SDKs wait this long before they retry.
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Box needs a valid bearer token on create and status.
fn authenticate(request: &DialectRequest, core: &dyn Core) -> Result<Arc<UserInfo>, BoxError> {
    match bearer(&request.headers) {
        Credentials::Bearer(token) => core.authenticate(token).ok_or_else(BoxError::unauthorized),
        Credentials::None | Credentials::Malformed => Err(BoxError::unauthorized()),
    }
}

impl BoxDialect {
    fn create(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
    ) -> Result<Response<Body>, BoxError> {
        let user = authenticate(request, core)?;
        let body = match &request.body {
            Ok(body) => body,
            Err(BodyError::TooLarge(limit)) => {
                return Err(BoxError::bad_request(
                    "body",
                    format!("The request body is larger than {limit} bytes."),
                ))
            }
            Err(BodyError::Io(e)) => {
                return Err(BoxError::bad_request(
                    "body",
                    format!("The request body could not be read: {e}."),
                ))
            }
        };
        let parsed = request::parse(body)?;
        let mut selection = Vec::with_capacity(parsed.items.len());
        for (kind, id) in &parsed.items {
            let prefix = if *kind == NodeKind::File { 'f' } else { 'd' };
            // A folder's id sent as a file (or the reverse) is not found
            // either: the item form names the type that was asked for.
            let node = core
                .resolve(id)
                .filter(|node| core.node(node).is_some_and(|info| info.kind == *kind))
                .ok_or_else(|| BoxError::item_not_found(prefix, id))?;
            selection.push(SelectedItem {
                id: node,
                expected_kind: Some(*kind),
                name: None,
            });
        }
        let owner = Principal::User(user.id.clone());
        let job_id = ids::zip_download_id(core);
        let created = core.create_job(CreateJob {
            id: job_id.clone(),
            name: archive_name(parsed.download_file_name.as_deref(), &self.settings),
            context: String::new(),
            owner,
            selection,
            plan: PlanOptions {
                max_files: Some(self.settings.max_files),
                max_bytes: Some(self.settings.max_bytes),
                conflicts: Box::new(ids::BoxRenamer(SplitMix64::new(core.random_u64()))),
                repeats: self.settings.repeated_items,
                fold_case: self.settings.ignore_case_in_names,
                recheck_at_download: true,
                unreadable_inside: self.settings.unreadable_inside,
                ..PlanOptions::default()
            },
            compression: self.settings.compression,
            single_file_as_is: false,
            layout: Default::default(),
            pacing: Pacing::Immediate,
            download_window: Some(self.settings.url_ttl),
            single_use: true,
            retention: self.settings.status_retention,
        });
        let created = created.map_err(|e| self.translate(&e))?;

        let origin = request.origin();
        let name_conflicts: Vec<Vec<NameConflict<'_>>> = created
            .conflicts
            .iter()
            .map(|group| {
                group
                    .iter()
                    .map(|renamed| NameConflict {
                        id: core
                            .node(&renamed.id)
                            .map(|n| self.id_of(&n))
                            .unwrap_or_default(),
                        kind: if renamed.kind == NodeKind::File {
                            "file"
                        } else {
                            "folder"
                        },
                        original_name: &renamed.original,
                        download_name: &renamed.renamed,
                    })
                    .collect()
            })
            .collect();
        let expires_at = created.job.expires_at.unwrap_or_else(|| core.now());
        let body = ZipDownload {
            download_url: [&origin, "/2.0/zip_downloads/", &job_id, "/content"].concat(),
            status_url: [&origin, "/2.0/zip_downloads/", &job_id, "/status"].concat(),
            expires_at: utc_seconds(expires_at),
            name_conflicts,
        };
        Ok(json(StatusCode::ACCEPTED, &body, &ids::request_id(core)))
    }

    /// Neutral errors from planning, in Box's terms.
    fn translate(&self, err: &Error) -> BoxError {
        match err {
            Error::NotFound(_) => BoxError::not_found(),
            Error::Forbidden(_) => BoxError::access_denied(),
            Error::LimitExceeded {
                kind: LimitKind::FileCount,
                ..
            } => BoxError::file_count_exceeded(self.settings.max_files),
            Error::LimitExceeded {
                kind: LimitKind::TotalBytes,
                ..
            } => BoxError::bytes_exceeded(),
            Error::Invalid { reason, .. } => BoxError::bad_request("items", reason.clone()),
            // The user holds too many zip downloads: Box's API rate limit answer.
            Error::TooManyJobs { .. } => BoxError::for_status(StatusCode::TOO_MANY_REQUESTS, None),
            _ => BoxError::internal(),
        }
    }

    fn content(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
    ) -> Result<Response<Body>, BoxError> {
        let id = request.param("id");
        let limit = self.settings.max_concurrent_downloads;
        // Single use and expiry: anything but a ready job is "not found", as
        // Box says; a known job whose owner is at the cap is Box's 429.
        let download = match core.start_download(id, Some(limit)) {
            Ok(download) => download,
            // Where the files live cannot be reached: Box's own 503.
            Err(Error::Unavailable(message)) => {
                let status = StatusCode::SERVICE_UNAVAILABLE;
                return Ok(self.status_response(status, Some(&message), request, core));
            }
            Err(Error::TooManyDownloads { .. }) => {
                return Err(BoxError::too_many_concurrent_downloads(limit))
            }
            Err(_) => return Err(BoxError::not_found()),
        };
        let style = DownloadStyle {
            content_type: &self.settings.content_type,
            disposition: Disposition::Rfc6266Compact,
            // Box's content URL answers a Range with the whole archive.
            ranges: Ranges::Ignored,
        };
        let mut response = style
            .respond(download, &request.headers)
            .map_err(|_| BoxError::internal())?;
        let headers = response.headers_mut();
        insert_request_id(headers, &ids::request_id(core));
        Ok(response)
    }

    fn status(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
    ) -> Result<Response<Body>, BoxError> {
        let user = authenticate(request, core)?;
        let job: JobSnapshot = core
            .job(request.param("id"), JobOp::Look)
            .map_err(|_| BoxError::not_found())?;
        if !matches!(&job.owner, Principal::User(owner) if *owner == user.id) {
            return Err(BoxError::access_denied());
        }
        let state = match job.state {
            JobState::Downloading => "in_progress",
            JobState::Done => "succeeded",
            JobState::Failed | JobState::Cancelled => "failed",
            JobState::Queued | JobState::Running | JobState::Ready
                if self.settings.status_before_download == StatusBeforeDownload::InProgress =>
            {
                "in_progress"
            }
            _ => return Err(BoxError::not_found()),
        };
        let body = json!({
            "total_file_count": job.file_count,
            "downloaded_file_count": job.files_done,
            "skipped_file_count": job.files_skipped,
            "skipped_folder_count": job.folders_skipped,
            "state": state,
        });
        Ok(json(StatusCode::OK, &body, &ids::request_id(core)))
    }
}

/// `download_file_name` plus `.zip` (Box appends it), or the configured
/// default; made safe like an archive entry's name, so a browser or client
/// saving it under that name cannot be sent into another folder (`../`).
fn archive_name(requested: Option<&str>, settings: &BoxSettings) -> String {
    let base = requested
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(&settings.default_name);
    format!("{}.zip", safe_component(base))
}

/// Box's API behind `--cors` (developer.box.com, guides/security/cors): an
/// origin on the app's allow-list gets `Access-Control-Allow-Origin: *`
/// (with `Vary: Origin`, so no credentials). The request headers are what
/// box-ui-elements (`src/utils/Xhr.js`) and the TypeScript SDK
/// (`boxNetworkClient.ts`) send; `retry-after` is what the SDK's retries
/// read, `box-request-id` what a support request asks for.
const CORS: Cors = Cors {
    star: true,
    allow_headers: Some(&[
        "accept",
        "accept-language",
        "authorization",
        "boxapi",
        "content-type",
        "x-box-client-event-info",
        "x-box-client-name",
        "x-box-client-version",
        "x-box-ua",
        "x-rep-hints",
    ]),
    expose_headers: &["box-request-id", "retry-after"],
    max_age: None,
    credentials: false,
    preflight_status: 200,
};

impl Dialect for BoxDialect {
    type Op = Op;

    fn cors(&self) -> Cors {
        CORS
    }

    fn name(&self) -> &'static str {
        DIALECT
    }

    fn routes(&self) -> Vec<Route<Op>> {
        vec![
            Route::post("/2.0/zip_downloads", Op::Create),
            Route::get("/2.0/zip_downloads/{id}/content", Op::Content),
            Route::get("/2.0/zip_downloads/{id}/status", Op::Status),
        ]
    }

    fn prefixes(&self) -> Vec<&'static str> {
        vec!["/2.0/"]
    }

    fn derive_id(&self, id: &NodeId) -> String {
        ids::derive(id)
    }

    fn principal(&self, request: &DialectRequest, core: &dyn Core) -> Option<Arc<UserInfo>> {
        authenticate(request, core).ok()
    }

    fn examples(&self) -> Vec<Example> {
        vec![Example {
            label: "json",
            method: Method::POST,
            path: "/2.0/zip_downloads",
            headers: vec![
                ("authorization", "Bearer {token}"),
                ("content-type", "application/json"),
            ],
            body: r#"{"items":[{"type":"folder","id":"{folder}"},{"type":"file","id":"{file}"}],"download_file_name":"Example"}"#,
        }]
    }

    fn handle(&self, op: Op, request: DialectRequest, core: &dyn Core) -> Response<Body> {
        let result = match op {
            Op::Create => self.create(&request, core),
            Op::Content => self.content(&request, core),
            Op::Status => self.status(&request, core),
        };
        result.unwrap_or_else(|err| self.error(&err, core))
    }

    fn not_found(&self, _request: &DialectRequest, core: &dyn Core) -> Response<Body> {
        self.error(&BoxError::not_found(), core)
    }

    fn method_not_allowed(
        &self,
        _request: &DialectRequest,
        allowed: &[Method],
        core: &dyn Core,
    ) -> Response<Body> {
        let mut response = self.error(&BoxError::method_not_allowed(), core);
        insert_allow(response.headers_mut(), allowed);
        response
    }

    fn status_response(
        &self,
        status: StatusCode,
        message: Option<&str>,
        _request: &DialectRequest,
        core: &dyn Core,
    ) -> Response<Body> {
        self.error(&BoxError::for_status(status, message), core)
    }
}

#[cfg(test)]
mod tests {
    //! Handlers over `FakeCore`: no server, no socket.
    use super::*;
    use http::HeaderMap;
    use zipgate_api::fake::{body_bytes, body_json as json_of, FakeCore, FAKE_ARCHIVE};

    fn core() -> FakeCore {
        FakeCore::new(DIALECT, ids::derive)
            .user("alice", None)
            .folder("docs", "Docs", None)
            .file("notes", "notes.txt", 5, Some("docs"))
    }

    fn request(method: Method, path: &str, token: Option<&str>, body: &str) -> DialectRequest {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("box.test"));
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
            headers.insert(header::AUTHORIZATION, value);
        }
        DialectRequest::new(
            method,
            path.parse().unwrap(),
            headers,
            body.to_owned().into(),
        )
    }

    #[test]
    fn a_create_answers_202_with_urls_on_the_request_host_and_downloads_once() {
        let dialect = BoxDialect::new(&Settings::new()).unwrap();
        let core = core();
        let folder = ids::derive(&"docs".into());
        let body = format!(r#"{{"items":[{{"type":"folder","id":"{folder}"}}]}}"#);
        let request = request(
            Method::POST,
            "/2.0/zip_downloads",
            Some("alice-token"),
            &body,
        );
        let response = dialect.handle(Op::Create, request, &core);
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let created = json_of(response);
        let url = created["download_url"].as_str().unwrap();
        assert!(
            url.starts_with("http://box.test/2.0/zip_downloads/"),
            "{url}"
        );

        let id = core.jobs()[0].id.clone();
        let mut content = request_for(&id);
        content.params.insert("id".into(), id.clone());
        let response = dialect.handle(Op::Content, content, &core);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_bytes(response), FAKE_ARCHIVE);
        // Single use: the second download is Box's 404.
        let mut again = request_for(&id);
        again.params.insert("id".into(), id);
        let response = dialect.handle(Op::Content, again, &core);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    fn request_for(id: &str) -> DialectRequest {
        request(
            Method::GET,
            &format!("/2.0/zip_downloads/{id}/content"),
            None,
            "",
        )
    }

    #[test]
    fn no_token_is_401_and_another_dialects_job_is_404() {
        let dialect = BoxDialect::new(&Settings::new()).unwrap();
        let core = core();
        let request = request(Method::POST, "/2.0/zip_downloads", None, "{}");
        let response = dialect.handle(Op::Create, request, &core);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        assert!(
            body_bytes(response).is_empty(),
            "Box's gateway sends no body"
        );

        core.foreign_job(
            "theirs",
            Principal::User(zipgate_api::UserId("alice".into())),
        );
        let mut content = request_for("theirs");
        content.params.insert("id".into(), "theirs".into());
        let response = dialect.handle(Op::Content, content, &core);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
