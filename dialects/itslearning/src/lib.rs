//! itslearning's "Your files" zip jobs on ASP.NET Web API 2:
//! `POST restapi/personal/yourfiles/files/zip/v1` starts a job,
//! `GET …/zip/{zipJobId}/v1` and `GET …/zip/v1` report it, `DELETE …/zip/v1`
//! removes it, and the completed job's `DownloadUrl` serves the zip.
//! Where itslearning is silent, Web API 2's documented defaults are the spec.
//! Translation only.

mod errors;
mod ids;
mod negotiate;
mod render;
mod request;
mod settings;

use std::sync::Arc;

use http::{Method, Response, StatusCode};
use zipgate_api::download::{Disposition, DownloadStyle, Ranges};
use zipgate_api::http::{bearer, empty, insert_allow, Body, Credentials};
use zipgate_api::plan::{OnProblem, PlanOptions, SkipReason};
use zipgate_api::{
    Core, CreateJob, Dialect, DialectRequest, Error, Example, IdSpace, JobOp, JobSnapshot, NodeId,
    NodeKind, PathRules, Principal, Route, SelectedItem, Settings, UserInfo,
};

use errors::{error_response, WebError};
use ids::DIALECT;
use negotiate::{negotiate, Format};
use render::{iis, null_model, respond};
use request::ReadError;
pub use settings::ItslearningSettings;

/// The request readers, for the fuzz targets and their corpus replay (`zipgate::fuzzing`); not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::negotiate::{negotiate, request_content_type, Charset, Format};
    pub use crate::request::{read, ModelState, ReadError, ZipRequest, ARRAYS_NS, ENTITIES_NS};
}

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Create,
    Latest,
    Delete,
    Poll,
    Download,
}

const ZIP_ROUTE: &str = "/restapi/personal/yourfiles/files/zip/v1";

pub struct ItslearningDialect {
    settings: ItslearningSettings,
}

impl ItslearningDialect {
    pub fn new(settings: &Settings) -> Result<Self, String> {
        Ok(ItslearningDialect {
            settings: ItslearningSettings::parse(settings)?,
        })
    }

    fn user(&self, request: &DialectRequest, core: &dyn Core) -> Result<Arc<UserInfo>, WebError> {
        let token = match bearer(&request.headers) {
            Credentials::Bearer(token) => Some(token.to_owned()),
            _ => request.query("access_token"),
        };
        token
            .and_then(|t| core.authenticate(&t))
            .ok_or_else(WebError::unauthorized)
    }

    fn create(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
        format: Format,
    ) -> Result<Response<Body>, WebError> {
        let user = self.user(request, core)?;
        let body: &[u8] = match &request.body {
            Ok(body) => body,
            Err(_) => {
                return Err(WebError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The request is too large.",
                ))
            }
        };
        let parsed = match request::read(request, body) {
            Ok(parsed) => parsed,
            Err(ReadError::Unsupported(message)) => {
                return Err(WebError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message))
            }
            Err(ReadError::Invalid(key)) => return Err(WebError::invalid(Some(key))),
        };
        let parsed = parsed.unwrap_or_default();
        let files = parsed.file_ids.unwrap_or_default();
        let folders = parsed.folder_ids.unwrap_or_default();
        if files.is_empty() && folders.is_empty() && !self.settings.empty_zip_for_empty_request {
            return Err(WebError::invalid(None));
        }
        let mut selection = Vec::new();
        let mut missing = false;
        for (list, kind) in [(&files, NodeKind::File), (&folders, NodeKind::Folder)] {
            for id in list {
                match core.resolve_as(&id.to_string(), kind) {
                    Some(node) => selection.push(SelectedItem {
                        id: node,
                        expected_kind: Some(kind),
                        name: None,
                    }),
                    None if self.settings.fail_missing_in_job => missing = true,
                    None => {
                        return Err(WebError::new(
                            StatusCode::NOT_FOUND,
                            format!("The file or folder with id {id} was not found."),
                        ))
                    }
                }
            }
        }
        let problem = if self.settings.fail_missing_in_job {
            OnProblem::Skip
        } else {
            OnProblem::Fail
        };
        let job_id = ids::next_job_id(core).map_err(create_error)?;
        let created = core
            .create_job(CreateJob {
                id: job_id.clone(),
                name: self.settings.zip_file_name.clone(),
                context: ids::file_repo_id(core),
                owner: Principal::User(user.id.clone()),
                selection,
                plan: PlanOptions {
                    missing: problem,
                    unreadable: problem,
                    unreadable_inside: self.settings.unreadable_inside,
                    ..PlanOptions::default()
                },
                compression: None,
                single_file_as_is: false,
                layout: Default::default(),
                pacing: self.settings.pacing,
                download_window: Some(self.settings.download_ttl),
                single_use: false,
                retention: chrono::Duration::days(1),
            })
            .map_err(create_error)?;
        let mut job = created.job;
        if missing
            || created
                .skipped
                .iter()
                .any(|s| matches!(s.reason, SkipReason::NotFound | SkipReason::Forbidden))
        {
            job = core
                .job(
                    &job_id,
                    JobOp::Fail("One or more files or folders were not found."),
                )
                .unwrap_or(job);
        }
        Ok(respond(
            StatusCode::OK,
            format,
            self.model(&job, request, format),
        ))
    }

    fn own_job(
        &self,
        core: &dyn Core,
        user: &UserInfo,
        id: &str,
        poll: bool,
    ) -> Option<JobSnapshot> {
        core.job(id, if poll { JobOp::Poll } else { JobOp::Look })
            .ok()
            .filter(|job| job.owner == Principal::User(user.id.clone()))
    }

    fn latest(&self, core: &dyn Core, user: &UserInfo) -> Option<JobSnapshot> {
        core.newest_job(&Principal::User(user.id.clone()), &|_| true)
    }

    fn poll(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
        format: Format,
    ) -> Result<Response<Body>, WebError> {
        let user = self.user(request, core)?;
        // `int zipJobId` binds as Int32 from the decoded segment: `01`, `+1`
        // and ` 1` are 1, `-1` binds (and is not found), past Int32 or not
        // a number is a 400 with no ModelState (recorded: `route_id_*`).
        let segment = zipgate_api::dialect::percent_decode(request.param("zipJobId"));
        let Ok(id) = request::parse_int32(&segment) else {
            return Err(WebError::invalid(None));
        };
        match self.own_job(core, &user, &id.to_string(), true) {
            Some(job) => Ok(respond(
                StatusCode::OK,
                format,
                self.model(&job, request, format),
            )),
            // `NotFound()` has no body.
            None if !self.settings.not_found_message => {
                let mut response = Response::new(empty());
                *response.status_mut() = StatusCode::NOT_FOUND;
                Ok(response)
            }
            None => Err(WebError::new(
                StatusCode::NOT_FOUND,
                format!("No zip job with id {id} was found."),
            )),
        }
    }

    fn get_latest(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
        format: Format,
    ) -> Result<Response<Body>, WebError> {
        let user = self.user(request, core)?;
        let job = self
            .latest(core, &user)
            .and_then(|job| self.own_job(core, &user, &job.id, true));
        let body = match job {
            Some(job) => self.model(&job, request, format),
            None => null_model(format),
        };
        Ok(respond(StatusCode::OK, format, body))
    }

    fn delete(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
    ) -> Result<Response<Body>, WebError> {
        let user = self.user(request, core)?;
        if let Some(job) = self.latest(core, &user) {
            let _ = core.job(&job.id, JobOp::Cancel);
            let _ = core.job(&job.id, JobOp::Remove);
        }
        let mut response = Response::new(empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok(response)
    }

    /// `DownloadUrl`: no bearer needed, valid for `download_ttl` after completion.
    fn download(&self, request: &DialectRequest, core: &dyn Core) -> Response<Body> {
        let not_found = || {
            let mut response = Response::new(empty());
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        };
        let id = request.param("jobId");
        let matches = core
            .job(id, JobOp::Look)
            .is_ok_and(|job| job.context == request.param("fileRepoId"));
        if !matches {
            return not_found();
        }
        let download = match core.start_download(id, None) {
            Ok(download) => download,
            // Where the files live cannot be reached: Web API's 503 message.
            Err(zipgate_api::Error::Unavailable(message)) => {
                let status = StatusCode::SERVICE_UNAVAILABLE;
                return self.status_response(status, Some(&message), request, core);
            }
            Err(_) => return not_found(),
        };
        let style = DownloadStyle {
            content_type: "application/zip",
            disposition: Disposition::Rfc6266,
            // Web API's StreamContent answers a Range with the whole body.
            ranges: Ranges::Ignored,
        };
        style
            .respond(download, &request.headers)
            .unwrap_or_else(|_| not_found())
    }
}

impl Dialect for ItslearningDialect {
    type Op = Op;

    fn name(&self) -> &'static str {
        DIALECT
    }

    fn routes(&self) -> Vec<Route<Op>> {
        vec![
            Route::post(ZIP_ROUTE, Op::Create),
            Route::get(ZIP_ROUTE, Op::Latest),
            Route::delete(ZIP_ROUTE, Op::Delete),
            Route::get(
                "/restapi/personal/yourfiles/files/zip/{zipJobId}/v1",
                Op::Poll,
            ),
            Route::get("/filerepo/zip/{jobId}/{fileRepoId}", Op::Download),
        ]
    }

    fn derive_id(&self, id: &NodeId) -> String {
        ids::derive(id)
    }

    fn principal(&self, request: &DialectRequest, core: &dyn Core) -> Option<Arc<UserInfo>> {
        self.user(request, core).ok()
    }

    fn prefixes(&self) -> Vec<&'static str> {
        vec!["/restapi/"]
    }

    // ASP.NET routing: no case, and a trailing slash is ignored (recorded:
    // tests/golden/itslearning/webapi2/slash_*.txt).
    fn path_rules(&self) -> PathRules {
        PathRules {
            ignore_case: true,
            trailing_slash: true,
            // Actions are selected by verb: HEAD on a GET-only action is a
            // 405 with Allow (recorded: `head_*`). The DownloadUrl, outside
            // `/restapi/`, keeps HEAD.
            head_only_where_declared: true,
        }
    }

    // `ZipRequest` has two typed lists, and the help page's own samples use
    // `1, 2` in both: files and folders are numbered apart.
    fn id_space(&self) -> IdSpace {
        IdSpace::PerKind
    }

    fn examples(&self) -> Vec<Example> {
        let post = |label, content_type, body| Example {
            label,
            method: Method::POST,
            path: "/restapi/personal/yourfiles/files/zip/v1?access_token={token}",
            headers: vec![("content-type", content_type)],
            body,
        };
        vec![
            post(
                "json",
                "application/json",
                r#"{"FileIds":[{file}],"FolderIds":[{folder}]}"#,
            ),
            post(
                "xml",
                "application/xml",
                r#"<ZipRequest xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/Itslearning.RestApi.Entities.YourFiles"><FileIds xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays"><d2p1:int>{file}</d2p1:int></FileIds><FolderIds xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays"><d2p1:int>{folder}</d2p1:int></FolderIds></ZipRequest>"#,
            ),
            post(
                "form",
                "application/x-www-form-urlencoded",
                "FileIds={file}&FolderIds={folder}",
            ),
        ]
    }

    fn handle(&self, op: Op, request: DialectRequest, core: &dyn Core) -> Response<Body> {
        let format = negotiate(&request.headers);
        let result = match op {
            Op::Create => self.create(&request, core, format),
            Op::Latest => self.get_latest(&request, core, format),
            Op::Delete => self.delete(&request, core),
            Op::Poll => self.poll(&request, core, format),
            Op::Download => return self.download(&request, core),
        };
        iis(result.unwrap_or_else(|err| error_response(&err, format)))
    }

    fn not_found(&self, request: &DialectRequest, _core: &dyn Core) -> Response<Body> {
        let uri = format!(
            "{}{}",
            request.origin(),
            request.uri.path_and_query().map_or("", |p| p.as_str())
        );
        let err = WebError::new(
            StatusCode::NOT_FOUND,
            format!("No HTTP resource was found that matches the request URI '{uri}'."),
        );
        iis(error_response(&err, negotiate(&request.headers)))
    }

    fn method_not_allowed(
        &self,
        request: &DialectRequest,
        allowed: &[Method],
        _core: &dyn Core,
    ) -> Response<Body> {
        let err = WebError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "The requested resource does not support http method '{}'.",
                request.method
            ),
        );
        let mut response = error_response(&err, negotiate(&request.headers));
        insert_allow(response.headers_mut(), allowed);
        iis(response)
    }

    fn status_response(
        &self,
        status: StatusCode,
        message: Option<&str>,
        request: &DialectRequest,
        _core: &dyn Core,
    ) -> Response<Body> {
        let err = match (status.as_u16(), message) {
            (401, None) => WebError::unauthorized(),
            (_, Some(message)) => WebError::new(status, message),
            // Web API's own text for an unhandled error, which is what it sends for any 5xx.
            (500..=599, None) => WebError::new(status, "An error has occurred."),
            (_, None) => WebError::new(status, status.canonical_reason().unwrap_or("Error")),
        };
        iis(error_response(&err, negotiate(&request.headers)))
    }
}

/// A create that failed, in Web API's `Message` envelope.
fn create_error(err: Error) -> WebError {
    match err {
        Error::NotFound(_) => WebError::new(
            StatusCode::NOT_FOUND,
            "One or more files or folders were not found.",
        ),
        Error::Forbidden(_) => WebError::new(
            StatusCode::FORBIDDEN,
            "You do not have access to one or more of the files or folders.",
        ),
        // Past the per-user job cap. Web API 2 has no throttling of
        // its own; a 429 in the framework's `Message` envelope is
        // what a throttling handler in front of it would send.
        Error::TooManyJobs { .. } => WebError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many zip jobs are in progress. Try again later.",
        ),
        // Where jobs or files live cannot be reached: Web API's 503, as a
        // download answers it.
        Error::Unavailable(message) => WebError::new(StatusCode::SERVICE_UNAVAILABLE, message),
        _ => WebError::new(StatusCode::INTERNAL_SERVER_ERROR, "An error has occurred."),
    }
}
