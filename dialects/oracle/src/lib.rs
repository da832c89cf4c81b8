//! Oracle Content Management, Documents REST API 1.2, bulk download:
//! `POST …/folders/{folderId}/_download` starts a job, `GET …/_download/{jobId}`
//! reports it, `GET …/{jobId}/package` serves the zip (with `Range`) and
//! `DELETE …/{jobId}` aborts it. Translation only.

mod errors;
mod ids;
mod render;
mod request;
mod settings;

use chrono::{DateTime, Utc};
use http::{header, HeaderValue, Method, Response, StatusCode};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use zipgate_api::download::{Disposition, DownloadStyle, Ranges, Unsatisfiable};
use zipgate_api::http::{basic, bearer, insert_allow, Basic, Body, Credentials};
use zipgate_api::plan::PlanOptions;
use zipgate_api::{
    Core, Cors, CreateJob, Dialect, DialectRequest, Error, Example, JobOp, JobSnapshot, JobState,
    NodeId, NodeKind, PathRules, Principal, Route, SelectedItem, Settings, UserInfo,
};

use errors::OracleError;
use ids::DIALECT;
use render::add_ecid;
pub use settings::{Expired, OracleSettings, Types};

/// The create body parser, for the fuzz targets and their corpus replay (`zipgate::fuzzing`); not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::request::parse_create_body;
}

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Create,
    Status,
    Package,
    Abort,
}

const BASE: &str = "/documents/api/1.2/folders";

pub struct OracleDialect {
    settings: OracleSettings,
}

impl OracleDialect {
    pub fn new(settings: &Settings) -> Result<Self, String> {
        Ok(OracleDialect {
            settings: OracleSettings::parse(settings)?,
        })
    }
}

/// `OCE-YYYYMMDD.zip` from the job's creation date.
fn package_name(created: DateTime<Utc>) -> String {
    format!("OCE-{}.zip", created.format("%Y%m%d"))
}

impl OracleDialect {
    fn user(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
    ) -> Result<Arc<UserInfo>, OracleError> {
        match basic(&request.headers) {
            Basic::Absent => {}
            Basic::Pair { .. } | Basic::Invalid if !self.settings.basic_auth => {
                return Err(OracleError::unauthorized())
            }
            Basic::Invalid => return Err(OracleError::unauthorized()),
            Basic::Pair { login, password } => {
                return core
                    .log_in(&login, &password)
                    .map(|signed_in| signed_in.user)
                    .ok_or_else(OracleError::unauthorized)
            }
        }
        match bearer(&request.headers) {
            Credentials::Bearer(token) => core
                .authenticate(token)
                .ok_or_else(OracleError::unauthorized),
            _ => Err(OracleError::unauthorized()),
        }
    }

    /// The folder the path names: a GUID, or `self` for the caller's home.
    fn folder(
        &self,
        core: &dyn Core,
        user: &UserInfo,
        folder_id: &str,
    ) -> Result<(String, zipgate_api::NodeInfo), OracleError> {
        let node = if folder_id == "self" {
            user.home.as_ref().and_then(|id| core.node(id))
        } else {
            ids::resolve(core, folder_id).and_then(|id| core.node(&id))
        };
        match node {
            Some(node) if node.kind == NodeKind::Folder => Ok((ids::item_id(&node), node)),
            _ => Err(OracleError::new(StatusCode::NOT_FOUND,
                "-16",
                "!csUnableToGetFolderInfo!csFldDoesNotExist",
                format!(
                    "Security validation failed. '{folder_id}' does not exist. The error was caused by an internally generated issue. The error has been logged."
                ),
            )),
        }
    }

    fn create(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
    ) -> Result<Response<Body>, OracleError> {
        let user = self.user(request, core)?;
        let folder_param = request.param("folderId");
        let (folder_guid, folder) = self.folder(core, &user, folder_param)?;
        let guids = request::create_guids(request)?;
        let echo_list = guids
            .iter()
            .map(|g| ids::reference(g))
            .collect::<Vec<_>>()
            .join(",");
        let echo = (format!("fFolderGUID:{folder_guid}"), echo_list);
        let with_echo = |mut err: OracleError| {
            err.echo = Some(Box::new(echo.clone()));
            err.parent = Some(folder_guid.clone());
            err
        };

        // Every id must be a direct child of the folder (`self` never is).
        let mut selection = Vec::with_capacity(guids.len());
        for guid in &guids {
            let child = ids::resolve(core, guid)
                .and_then(|id| core.node(&id))
                .filter(|node| node.parent.as_ref() == Some(&folder.id));
            let Some(child) = child else {
                return Err(with_echo(OracleError::new(StatusCode::BAD_REQUEST,
                    "-96",
                    "!csBulkdownloadUnableToInitJob!csCloudBulkDownloadRequestItemsNotInParentFolder",
                    "Unable to start bulk download of files. One or more of the Ids are not located in the parent folder.",
                )));
            };
            selection.push(SelectedItem {
                id: child.id,
                expected_kind: None,
                name: None,
            });
        }

        let now = core.now();
        let job_id = ids::job_id(core, now);
        let created = core.create_job(CreateJob {
            id: job_id.clone(),
            name: package_name(now),
            context: folder_guid.clone(),
            owner: Principal::User(user.id.clone()),
            selection,
            plan: PlanOptions {
                unreadable_inside: self.settings.unreadable_inside,
                ..PlanOptions::default()
            },
            compression: Some(zipgate_api::Compression::Store),
            single_file_as_is: false,
            layout: Default::default(),
            pacing: self.settings.pacing,
            download_window: Some(self.settings.package_ttl),
            single_use: false,
            retention: self.settings.package_ttl,
        });
        if let Err(err) = created {
            // The privilege failure echoes the references of the refused
            // item's kind only: the page's Example 4 refuses a file and
            // lists its three files, leaving out the folder it asked for
            // (one example; the same rule is kept for a refused folder).
            let files_only = match &err {
                Error::Forbidden(id) => {
                    let prefix = match core.node(&zipgate_api::NodeId(id.clone())) {
                        Some(node) if node.kind == NodeKind::Folder => "fFolderGUID:",
                        _ => "fFileGUID:",
                    };
                    let same: Vec<&str> = echo
                        .1
                        .split(',')
                        .filter(|item| item.starts_with(prefix))
                        .collect();
                    Some(same.join(","))
                }
                _ => None,
            };
            let mut error = with_echo(match err {
                Error::Forbidden(id) => {
                    let item = core
                        .node(&zipgate_api::NodeId(id))
                        .map(|n| ids::reference(&ids::item_id(&n)))
                        .unwrap_or_default();
                    let user_name = user.login.clone();
                    OracleError::new(StatusCode::FORBIDDEN,
                        "-20",
                        format!(
                            "!csBulkdownloadUnableToInitJob!csCloudItemInsufficientPrivileges,{user_name},{item},DOCS_BULK_BUILD_ZIP"
                        ),
                        format!(
                            "Unable to start bulk download of files. User '{user_name}' has insufficient privilege to access {item} with service DOCS_BULK_BUILD_ZIP."
                        ),
                    )
                }
                // Past the per-user job cap: OCM's throttling answer.
                Error::TooManyJobs { .. } => {
                    OracleError::for_status(StatusCode::TOO_MANY_REQUESTS, None)
                }
                other => {
                    OracleError::general(format!("Unable to start bulk download of files. {other}"))
                }
            });
            if let (Some(files), Some(echo)) = (files_only, error.echo.as_mut()) {
                echo.1 = files;
            }
            return Err(error);
        }

        let location = format!(
            "{}{BASE}/{folder_guid}/_download/{job_id}",
            request.origin()
        );
        let mut body = Map::new();
        body.insert("Location".into(), json!(location));
        body.insert("errorCode".into(), self.scalar(json!(0)));
        body.insert("id".into(), json!(echo.0));
        body.insert("idList".into(), json!(echo.1));
        body.insert("parentID".into(), json!(folder_guid));
        body.insert("type".into(), json!("folder"));
        let mut response = self.respond(request, core, StatusCode::OK, &Value::Object(body));
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Ok(response)
    }

    /// The caller's job, made from the folder in the path; anything else is the vague 404.
    fn job(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
        user: &UserInfo,
        poll: bool,
        not_found: OracleError,
    ) -> Result<JobSnapshot, OracleError> {
        let id = request.param("jobId");
        let job = core
            .job(id, if poll { JobOp::Poll } else { JobOp::Look })
            .ok();
        let folder_ok = |job: &JobSnapshot| {
            let folder = request.param("folderId");
            folder == job.context
                || (folder == "self"
                    && user
                        .home
                        .as_ref()
                        .and_then(|h| core.node(h))
                        .is_some_and(|n| ids::item_id(&n) == job.context))
        };
        job.filter(|job| job.owner == Principal::User(user.id.clone()) && folder_ok(job))
            .ok_or(not_found)
    }

    fn status(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
    ) -> Result<Response<Body>, OracleError> {
        let user = self.user(request, core)?;
        let job = self.job(
            request,
            core,
            &user,
            true,
            OracleError::job_not_found(
                "!csBulkdownloadUnableToGetJobStatus",
                "Unable to get status of bulkdownload job.",
            ),
        )?;
        // A package past its time was built: by default the job still reads
        // as succeeded (a client polling late is not told its build failed)
        // and only the package is gone; `expired=failed` reports FAILED.
        // Either way the percentage stays at 100.
        let expired_ok = self.settings.expired == Expired::Succeeded;
        let (progress, completed) = match job.state {
            JobState::Queued => ("PENDING", false),
            JobState::Running => ("PROCESSING", false),
            JobState::Ready | JobState::Downloading | JobState::Done => ("SUCCEEDED", true),
            JobState::Expired if expired_ok => ("SUCCEEDED", true),
            JobState::Cancelled => ("ABORTED", true),
            JobState::Failed | JobState::Expired => ("FAILED", true),
        };
        let percentage = match job.state {
            JobState::Ready | JobState::Downloading | JobState::Done | JobState::Expired => 100,
            _ => (100 * u64::from(job.steps.0) / u64::from(job.steps.1.max(1))).min(99),
        };
        let mut body = Map::new();
        body.insert("completed".into(), self.scalar(json!(completed)));
        body.insert("completedPercentage".into(), self.scalar(json!(percentage)));
        if progress == "SUCCEEDED" {
            let mut details = Map::new();
            details.insert("filename".into(), json!(job.name));
            details.insert(
                "filesize".into(),
                self.scalar(json!(job.archive_len.unwrap_or(0))),
            );
            body.insert("details".into(), Value::Object(details));
        }
        body.insert("errorCode".into(), self.scalar(json!(0)));
        if progress == "SUCCEEDED" {
            let href = format!(
                "{}{BASE}/{}/_download/{}/package",
                request.origin(),
                request.param("folderId"),
                job.id
            );
            let link = json!({"href": href, "rel": "enclosure", "method": "GET", "mediaType": "application/zip"});
            let links = match self.settings.types {
                Types::Captured => json!([link]),
                Types::Schema => link,
            };
            body.insert("links".into(), links);
        }
        body.insert("progress".into(), json!(progress));
        body.insert("type".into(), json!("folder"));
        Ok(self.respond(request, core, StatusCode::OK, &Value::Object(body)))
    }

    fn package(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
    ) -> Result<Response<Body>, OracleError> {
        let user = self.user(request, core)?;
        let job = self.job(
            request,
            core,
            &user,
            false,
            OracleError::job_not_found(
                "!csBulkdownloadUnableToDownloadJob",
                "Unable to download bulkdownload job.",
            ),
        )?;
        if job.state == JobState::Expired {
            // The package is gone: the job's own not-found answer.
            return Err(OracleError::job_not_found(
                "!csBulkdownloadUnableToDownloadJob",
                "Unable to download bulkdownload job.",
            ));
        }
        if !matches!(
            job.state,
            JobState::Ready | JobState::Downloading | JobState::Done
        ) {
            let state = match job.state {
                JobState::Cancelled => "was aborted",
                JobState::Failed | JobState::Expired => "failed",
                _ => "has not finished yet",
            };
            return Err(OracleError::new(
                StatusCode::BAD_REQUEST,
                "-1",
                "!csBulkdownloadUnableToDownloadJob",
                format!("Unable to download bulkdownload job. The job {state}."),
            ));
        }
        let download = match core.start_download(&job.id, None) {
            Ok(download) => download,
            // Where the files live cannot be reached: the vendor's 503 envelope.
            Err(Error::Unavailable(message)) => {
                let status = StatusCode::SERVICE_UNAVAILABLE;
                return Ok(self.status_response(status, Some(&message), request, core));
            }
            Err(_) => {
                return Err(OracleError::job_not_found(
                    "!csBulkdownloadUnableToDownloadJob",
                    "Unable to download bulkdownload job.",
                ))
            }
        };
        let style = DownloadStyle {
            content_type: "application/zip",
            disposition: Disposition::Rfc6266,
            ranges: Ranges::Bytes,
        };
        let mut response = match style.respond(download, &request.headers) {
            Ok(response) => response,
            // The documented 416, in the API's error envelope like its other errors.
            Err(Unsatisfiable { total }) => {
                let err = OracleError::for_status(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    Some("Requested range cannot be satisfied."),
                );
                let mut response = self.error(request, core, &err);
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{total}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                return Ok(response);
            }
        };
        let headers = response.headers_mut();
        add_ecid(headers, core);
        Ok(response)
    }

    fn abort(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
    ) -> Result<Response<Body>, OracleError> {
        let user = self.user(request, core)?;
        let mut not_found = OracleError::job_not_found(
            "!csBulkdownloadUnableToAbortJob",
            "Unable to abort bulkdownload job.",
        );
        not_found.parent = Some(request.param("folderId").to_owned());
        let job = self.job(request, core, &user, false, not_found)?;
        let _ = core.job(&job.id, JobOp::Cancel);
        let body = json!({"errorCode": self.scalar(json!(0)), "type": "folder"});
        Ok(self.respond(request, core, StatusCode::OK, &body))
    }
}

/// Oracle Content Management behind `--cors`: its docs describe the
/// front-channel CORS origins list but not the headers; those the cec
/// toolkit sends are allowed, and `Location` and `X-ORACLE-DMS-ECID`, which
/// it reads, exposed. The origin is echoed (the docs discourage `*`).
const CORS: Cors = Cors {
    star: false,
    allow_headers: Some(&[
        "accept",
        "authorization",
        "content-type",
        "prefer",
        "x-oracle-ocm-app-key",
        "x-requested-with",
    ]),
    expose_headers: &["location", "x-oracle-dms-ecid", "content-disposition"],
    max_age: None,
    credentials: false,
    preflight_status: 200,
};

impl Dialect for OracleDialect {
    type Op = Op;

    fn cors(&self) -> Cors {
        CORS
    }

    fn name(&self) -> &'static str {
        DIALECT
    }

    fn routes(&self) -> Vec<Route<Op>> {
        let route = |method, pattern: &str, op| Route::new(method, format!("{BASE}{pattern}"), op);
        vec![
            route(Method::POST, "/{folderId}/_download", Op::Create),
            route(Method::GET, "/{folderId}/_download/{jobId}", Op::Status),
            route(Method::DELETE, "/{folderId}/_download/{jobId}", Op::Abort),
            route(
                Method::GET,
                "/{folderId}/_download/{jobId}/package",
                Op::Package,
            ),
        ]
    }

    fn prefixes(&self) -> Vec<&'static str> {
        vec!["/documents/api/"]
    }

    // Oracle's own `cec` toolkit builds Documents API URLs with a trailing
    // slash, and the server routes them as without it.
    fn path_rules(&self) -> PathRules {
        PathRules {
            trailing_slash: true,
            ..PathRules::default()
        }
    }

    fn derive_id(&self, id: &NodeId) -> String {
        ids::derive(id)
    }

    fn principal(&self, request: &DialectRequest, core: &dyn Core) -> Option<Arc<UserInfo>> {
        self.user(request, core).ok()
    }

    fn examples(&self) -> Vec<Example> {
        vec![Example {
            label: "json",
            method: Method::POST,
            path: "/documents/api/1.2/folders/{folder}/_download",
            headers: vec![
                ("authorization", "Bearer {token}"),
                ("content-type", "application/json"),
            ],
            body: r#"{"idList":"{file}"}"#,
        }]
    }

    fn handle(&self, op: Op, request: DialectRequest, core: &dyn Core) -> Response<Body> {
        let result = match op {
            Op::Create => self.create(&request, core),
            Op::Status => self.status(&request, core),
            Op::Package => self.package(&request, core),
            Op::Abort => self.abort(&request, core),
        };
        result.unwrap_or_else(|err| self.error(&request, core, &err))
    }

    fn not_found(&self, request: &DialectRequest, core: &dyn Core) -> Response<Body> {
        let err = OracleError::new(
            StatusCode::NOT_FOUND,
            "-16",
            "!csResourceNotFound",
            format!("The resource '{}' does not exist.", request.uri.path()),
        );
        self.error(request, core, &err)
    }

    fn method_not_allowed(
        &self,
        request: &DialectRequest,
        allowed: &[Method],
        core: &dyn Core,
    ) -> Response<Body> {
        let err = OracleError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "-1",
            "!csMethodNotAllowed",
            format!(
                "The method {} is not allowed on this resource.",
                request.method
            ),
        );
        let mut response = self.error(request, core, &err);
        insert_allow(response.headers_mut(), allowed);
        response
    }

    fn status_response(
        &self,
        status: StatusCode,
        message: Option<&str>,
        request: &DialectRequest,
        core: &dyn Core,
    ) -> Response<Body> {
        self.error(request, core, &OracleError::for_status(status, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn package_names_use_the_creation_date() {
        assert_eq!(
            package_name(Utc.with_ymd_and_hms(2021, 3, 3, 19, 12, 16).unwrap()),
            "OCE-20210303.zip"
        );
    }
}
