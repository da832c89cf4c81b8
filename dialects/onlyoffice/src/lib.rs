//! ONLYOFFICE's bulk download: `PUT api/2.0/files/fileops/bulkdownload`
//! starts an operation, `GET api/2.0/files/fileops` polls it, `PUT
//! …/fileops/terminate` cancels, and the finished operation's `url` serves
//! the archive from `filehandler.ashx`. Workspace (Community Server, JSON
//! and XML) by default, DocSpace by setting. Translation only.

mod auth;
mod errors;
mod ids;
mod render;
mod request;
mod settings;

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde_json::{json, Map, Value};
use zipgate_api::download::{Disposition, DownloadStyle, HandlerRanges, Ranges};
use zipgate_api::http::{empty, full, insert_allow, Body};
use zipgate_api::plan::{DirEntries, Keying, LongPaths, OnProblem, PlanOptions, Repeats};
use zipgate_api::{
    ArchiveLayout, BodyError, Core, Cors, CreateJob, Dialect, DialectRequest, Example, JobOp,
    JobSnapshot, JobState, NodeId, NodeKind, Pacing, Principal, Route, SelectedItem, Settings,
    SignedIn, UserInfo,
};

use errors::OoError;
use ids::DIALECT;
use request::Params;
pub use settings::{Flavour, OnlyofficeSettings, Style};

/// The request parser, for the fuzz targets and their corpus replay (`zipgate::fuzzing`); not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::request::{form_field, params, JsonSyntax, Params, MAX_PAIRS, MAX_PAIR_BYTES};
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Bulk,
    List,
    Terminate,
    Authenticate,
    Archive,
    ListByType,
    TerminateOne,
}

/// `FileOperationType.Download`.
const DOWNLOAD: u8 = 3;
const WORKSPACE_HANDLER: &str = "/Products/Files/HttpHandlers/filehandler.ashx";
const DOCSPACE_HANDLER: &str = "/filehandler.ashx";

#[derive(Clone)]
pub struct OnlyofficeDialect {
    settings: OnlyofficeSettings,
}

impl OnlyofficeDialect {
    pub fn new(settings: &Settings) -> Result<Self, String> {
        Ok(OnlyofficeDialect {
            settings: OnlyofficeSettings::parse(settings)?,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Xml,
}

/// XML when the path ends in `.xml` or `.tml` and the body is not JSON; the
/// `Accept` header is never consulted (Workspace). DocSpace is JSON only.
fn format_of(request: &DialectRequest, flavour: Flavour) -> Format {
    let path = request.uri.path();
    let xml_suffix = path.ends_with(".xml") || path.ends_with(".tml");
    let json_body =
        zipgate_api::http::media_type(&request.headers).as_deref() == Some("application/json");
    if flavour == Flavour::Workspace && xml_suffix && !json_body {
        Format::Xml
    } else {
        Format::Json
    }
}

/// `yyyy-MM-ddTHH:mm:ss.fffffffZ`, the vendor's `ApiDateTime`.
fn api_date(t: DateTime<Utc>) -> String {
    format!(
        "{}0Z",
        t.to_rfc3339_opts(SecondsFormat::Micros, true)
            .trim_end_matches('Z')
    )
}

impl OnlyofficeDialect {
    fn docspace(&self) -> bool {
        self.settings.flavour == Flavour::DocSpace
    }

    fn json_syntax(&self) -> request::JsonSyntax {
        if self.docspace() {
            request::JsonSyntax::Strict
        } else {
            request::JsonSyntax::JsonNet
        }
    }

    fn respond(&self, status: StatusCode, body: &Value, format: Format) -> Response<Body> {
        let (text, content_type) = match (format, self.docspace()) {
            (Format::Xml, _) => (
                render::vendor_xml(body, self.settings.style == Style::Docs),
                "text/xml; charset=UTF-8",
            ),
            (Format::Json, false) => (render::vendor_json(body), "application/json; charset=UTF-8"),
            (Format::Json, true) => (body.to_string(), "application/json; charset=utf-8"),
        };
        let mut response = Response::new(full(text));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=0"),
        );
        response
    }

    /// The success envelope around `payload`.
    fn success(
        &self,
        request: &DialectRequest,
        status: StatusCode,
        payload: Value,
        count: usize,
        format: Format,
    ) -> Response<Body> {
        let mut body = Map::new();
        if self.docspace() {
            let display_url = format!(
                "{}{}",
                request.origin(),
                request.uri.path_and_query().map_or("", |p| p.as_str())
            );
            body.insert("response".into(), payload);
            body.insert("count".into(), json!(count));
            body.insert(
                "links".into(),
                json!([{"href": display_url, "action": request.method.as_str()}]),
            );
            body.insert("status".into(), json!(0));
            body.insert("statusCode".into(), json!(status.as_u16()));
        } else {
            let source = self.settings.style == Style::Source;
            if source && count > 0 {
                body.insert("count".into(), json!(count));
            }
            body.insert("status".into(), json!(0));
            if source {
                body.insert("statusCode".into(), json!(status.as_u16()));
            }
            body.insert("response".into(), payload);
        }
        self.respond(status, &Value::Object(body), format)
    }

    fn error(&self, err: &OoError, format: Format) -> Response<Body> {
        let body = if self.docspace() {
            json!({
                "error": {"message": err.message, "type": err.exception, "stack": "", "hresult": err.hresult},
                "status": 1,
                "statusCode": err.status.as_u16(),
            })
        } else {
            let mut error = Map::new();
            error.insert("message".into(), json!(err.message));
            error.insert("hresult".into(), json!(err.hresult));
            if self.settings.error_data {
                error.insert("data".into(), json!({}));
            }
            json!({"status": 1, "statusCode": err.status.as_u16(), "error": error})
        };
        self.respond(err.status, &body, format)
    }

    /// One operation as `FileOperationWraper` (Workspace) or `FileOperationDto` (DocSpace) writes it.
    fn operation(&self, job: &JobSnapshot, origin: &str, now: DateTime<Utc>) -> Value {
        let entries = job.entries_total;
        let (finished, error, url) = match job.state {
            JobState::Queued | JobState::Running => (false, None, None),
            JobState::Ready | JobState::Downloading | JobState::Done => {
                let handler = if self.docspace() {
                    DOCSPACE_HANDLER
                } else {
                    WORKSPACE_HANDLER
                };
                let url = format!(
                    "{origin}{handler}?action=bulk&filename={}",
                    ids::archive_token(&job.name)
                );
                (true, None, Some(url))
            }
            JobState::Cancelled => (true, Some(errors::CANCELED.to_owned()), None),
            // DocSpace's failed compose operation never sets `Finish`
            // (FileOperation.cs); Community Server's does in `finally`.
            JobState::Failed | JobState::Expired => (!self.docspace(), job.error.clone(), None),
        };
        // Steps are archive entries plus one for storing the archive.
        let steps_total = entries + 1;
        let fraction = match self.settings.pacing {
            _ if finished && error.is_none() => 1.0,
            Pacing::AfterDuration(d) if d.num_milliseconds() > 0 => {
                ((now - job.created_at).num_milliseconds() as f64 / d.num_milliseconds() as f64)
                    .clamp(0.0, 1.0)
            }
            _ => f64::from(job.steps.0) / f64::from(job.steps.1.max(1)),
        };
        let steps = ((steps_total as f64) * fraction).floor() as u64;
        // A settled operation is listed once, its progress forced to 100
        // (GetOperationResults), finished or not.
        let progress = if finished || job.state.is_terminal() {
            100
        } else {
            100 * steps.min(steps_total) / steps_total
        };
        let processed = if finished && error.is_none() {
            entries
        } else {
            steps.min(entries)
        };
        let error_value = match (&error, self.settings.style) {
            (Some(message), _) => json!(message),
            (None, Style::Docs) if !self.docspace() => json!(""),
            // DocSpace's FileOperation starts `Err` as "" and never nulls it
            // (DocSpace-server FileOperations/FileOperation.cs).
            (None, _) if self.docspace() => json!(""),
            (None, _) => Value::Null,
        };
        let mut op = Map::new();
        op.insert("id".into(), json!(job.id));
        op.insert(
            if self.docspace() {
                "Operation"
            } else {
                "operation"
            }
            .into(),
            json!(DOWNLOAD),
        );
        op.insert("progress".into(), json!(progress));
        op.insert("error".into(), error_value);
        op.insert("processed".into(), json!(processed.to_string()));
        op.insert("finished".into(), json!(finished));
        op.insert("url".into(), url.map_or(Value::Null, Value::String));
        op.insert("files".into(), Value::Null);
        op.insert("folders".into(), Value::Null);
        if self.docspace() {
            // DistributedTaskStatus: Created 0, Running 1, Completed 2, Canceled 3, Failted 4.
            let status = match job.state {
                JobState::Queued => 0,
                JobState::Running => 1,
                JobState::Cancelled => 3,
                JobState::Failed | JobState::Expired => 4,
                _ => 2,
            };
            op.insert("status".into(), json!(status));
            op.retain(|_, v| !v.is_null());
        }
        Value::Object(op)
    }

    /// The caller's listed operations. A finished one is shown once, then
    /// no more. `poll` advances operations paced by polls. `fresh` is an
    /// operation this very request started, shown as first published
    /// (queued, nothing done) and left for the next poll to report.
    fn operations(
        &self,
        core: &dyn Core,
        user: &UserInfo,
        poll: bool,
        only: Option<&str>,
        fresh: Option<&str>,
    ) -> Vec<JobSnapshot> {
        let owner = Principal::User(user.id.clone());
        let mut out = Vec::new();
        // A poll of every operation is one step for the core; of one, the
        // others are left as they are.
        let all_polled = poll && only.is_none();
        let listed = if all_polled {
            core.poll_open_jobs(&owner)
        } else {
            core.open_jobs(&owner)
        };
        for job in listed {
            if only.is_some_and(|id| id != job.id) {
                continue;
            }
            let job = if poll && !all_polled && job.state.is_in_progress() {
                core.job(&job.id, JobOp::Poll).unwrap_or(job)
            } else {
                job
            };
            if fresh == Some(job.id.as_str()) {
                out.push(JobSnapshot {
                    state: JobState::Queued,
                    steps: (0, job.steps.1),
                    error: None,
                    ..job
                });
                continue;
            }
            if !matches!(job.state, JobState::Queued | JobState::Running) {
                let _ = core.job(&job.id, JobOp::Acknowledge);
            }
            out.push(job);
        }
        out
    }

    fn list_response(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
        jobs: &[JobSnapshot],
        status: StatusCode,
        format: Format,
    ) -> Response<Body> {
        let origin = request.origin();
        let now = core.now();
        let ops: Vec<Value> = jobs
            .iter()
            .map(|job| self.operation(job, &origin, now))
            .collect();
        let count = ops.len();
        self.success(request, status, Value::Array(ops), count, format)
    }

    fn body<'a>(&self, request: &'a DialectRequest) -> Result<&'a [u8], OoError> {
        match &request.body {
            Ok(body) => Ok(body),
            Err(BodyError::TooLarge(limit)) => Err(OoError::body_too_large(*limit)),
            Err(BodyError::Io(e)) => Err(OoError::malformed_json(e)),
        }
    }

    fn bulk(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
        user: &UserInfo,
        format: Format,
    ) -> Result<Response<Body>, OoError> {
        let params: Params = request::params(request, self.body(request)?, self.json_syntax())?;
        // Files to convert come first, as both servers list them: an id and
        // the extension its archive entry takes (DocSpace-server
        // OperationController.cs; Workspace DocumentsApi.cs). DocSpace also
        // takes them as objects inside `fileIds` (its web client's Download
        // dialog sends them so); Workspace reads `fileIds` as plain ids.
        let mut converted = params.keyed("fileConvertIds");
        if self.docspace() {
            converted.extend(params.keyed("fileIds"));
        }
        let mut file_ids: Vec<String> = converted.iter().map(|(id, _)| id.clone()).collect();
        file_ids.extend(params.list("fileIds"));
        let folder_ids = params.list("folderIds");
        // A file id twice: Community Server's `Dictionary.Add` throws in the
        // API (400); DocSpace's only in the background job, whose operation
        // then fails without a message (FileDownloadOperation's constructor).
        // A folder id twice is harmless on DocSpace (a set query).
        let repeated = |list: &[String]| {
            let mut seen = std::collections::HashSet::new();
            !list.iter().all(|id| seen.insert(id))
        };
        let mut fail_silently = false;
        if self.docspace() {
            fail_silently = repeated(&file_ids);
        } else if repeated(&file_ids) || repeated(&folder_ids) {
            return Err(OoError::duplicate_key());
        }
        let owner = Principal::User(user.id.clone());
        let running = core
            .open_jobs(&owner)
            .iter()
            .any(|job| matches!(job.state, JobState::Queued | JobState::Running));
        if file_ids.is_empty() && folder_ids.is_empty() {
            if !self.docspace() {
                return Err(OoError::bad_request());
            }
            if running {
                return Err(OoError::too_many_downloads());
            }
            let jobs = self.operations(core, user, false, None, None);
            return Ok(self.list_response(request, core, &jobs, StatusCode::OK, format));
        }
        if running {
            return Err(OoError::too_many_downloads());
        }

        // Unknown ids do not fail the request: the operation finishes with an error instead.
        let mut selection = Vec::new();
        for (list, kind) in [(&file_ids, NodeKind::File), (&folder_ids, NodeKind::Folder)] {
            for (i, id) in list.iter().enumerate() {
                if let Some(node) = core.resolve(id) {
                    // The converted title: `FileUtility.ReplaceFileExtension`.
                    // The bytes stay the fixture's: zipgate converts nothing.
                    let name = converted
                        .get(i)
                        .filter(|_| kind == NodeKind::File)
                        .and_then(|(_, ext)| {
                            let title = core.node(&node)?.name;
                            Some(replace_extension(&title, ext))
                        });
                    selection.push(SelectedItem {
                        id: node,
                        expected_kind: Some(kind),
                        name,
                    });
                }
            }
        }
        let requested: std::collections::HashSet<NodeId> =
            selection.iter().map(|item| item.id.clone()).collect();
        let one_folder = file_ids.is_empty() && folder_ids.len() == 1 && selection.len() == 1;
        let one_file =
            self.docspace() && folder_ids.is_empty() && file_ids.len() == 1 && selection.len() == 1;
        let name = match (one_folder || one_file)
            .then(|| core.node(&selection[0].id))
            .flatten()
        {
            Some(folder) if one_folder => format!("{}.zip", folder.name),
            Some(file) => selection[0].name.clone().unwrap_or(file.name),
            None => format!(
                "{}-download-{}.zip",
                self.settings.alias,
                core.now().format("%Y-%m-%d")
            ),
        };
        let job_id = ids::operation_id(core);
        let created = core
            .create_job(CreateJob {
                id: job_id.clone(),
                name,
                context: String::new(),
                owner,
                selection,
                plan: PlanOptions {
                    missing: OnProblem::Skip,
                    unreadable: OnProblem::Skip,
                    // DocSpace writes an entry for every folder key it
                    // walked; Community Server only for an empty folder
                    // (FileDownloadOperation.cs in each).
                    dir_entries: if self.docspace() {
                        DirEntries::All
                    } else {
                        DirEntries::EmptyOnly
                    },
                    flatten_single_folder: one_folder,
                    // Entries are keyed by their path in the archive, so a
                    // file selected with its folder (or a folder with its
                    // ancestor) is packed at both paths (FileDownloadOperation.cs
                    // in both servers).
                    repeats: Repeats::AtEachPlace,
                    // ItemNameValueCollection again: same-title folders
                    // merge, and the n-th file of a path gets " (n)" before
                    // the last '.' of the whole path. Community Server also
                    // rewrites keys over 200 characters to LONG_FOLDER_NAME/
                    // (FileDownloadOperation.ReplaceLongPath).
                    keying: Keying::Paths {
                        long_paths: (!self.docspace()).then_some(LongPaths { over: 200 }),
                    },
                    ..PlanOptions::default()
                },
                compression: Some(self.settings.compression),
                // DocSpace serves one file alone as itself.
                single_file_as_is: self.docspace(),
                // Both servers write the archive to a temporary file with
                // SharpZipLib (Core/Compress/CompressToZip.cs: a ZipEntry per
                // item with IsUnicodeText = true), store it, and serve the
                // stored file: deflated, yet with a Content-Length and Range.
                layout: ArchiveLayout {
                    exact_length: true,
                    utf8_flag_on_every_name: true,
                },
                pacing: self.settings.pacing,
                download_window: Some(self.settings.archive_ttl),
                single_use: false,
                retention: self.settings.archive_ttl,
            })
            .map_err(|e| match e {
                // Past the per-user job cap: the vendor's own "too many" answer.
                zipgate_api::Error::TooManyJobs { .. } => OoError::too_many_downloads(),
                e => OoError::malformed_json(&e.to_string()),
            })?;
        // FilterDownload drops what is missing or unreadable; with nothing
        // selected left the operation fails. What the walk left out inside a
        // selected folder (an unreadable sub-folder) does not count.
        let dropped: std::collections::HashSet<&NodeId> = created
            .skipped
            .iter()
            .filter(|s| s.reason != zipgate_api::plan::SkipReason::Duplicate)
            .filter(|s| requested.contains(&s.id))
            .map(|s| &s.id)
            .collect();
        if dropped.len() == requested.len() && self.docspace() {
            // DocSpace checks before it queues: nothing is published, and
            // the PUT is a 404 (DownloadPermissionsCheck.cs, FileOperationsManager.cs).
            let _ = core.job(&job_id, JobOp::Remove);
            return Err(OoError::nothing_to_download(!file_ids.is_empty()));
        }
        if dropped.len() == requested.len() {
            let message = if file_ids.is_empty() {
                errors::FOLDER_NOT_FOUND
            } else {
                errors::FILE_NOT_FOUND
            };
            let _ = core.job(&job_id, JobOp::Fail(message));
        }
        if fail_silently {
            let _ = core.job(&job_id, JobOp::Fail(""));
        }
        let single = self.docspace() && params.flag("returnSingleOperation");
        // Both servers publish the task and answer at once: the PUT shows
        // the new operation as first published; how it ended (an error too)
        // is for the next `GET fileops` to report, once
        // (FileOperationsManager.GetOperationResults in each).
        let fresh = Some(job_id.as_str());
        let jobs = self.operations(core, user, false, single.then_some(job_id.as_str()), fresh);
        Ok(self.list_response(request, core, &jobs, StatusCode::OK, format))
    }

    /// A `Range` the handler cannot read (a suffix or multi-range, a start
    /// past the end) throws in `ProcessRangeHeader`. Community Server's
    /// `BulkDownloadFile` rethrows it as `HttpException(400)`; DocSpace's
    /// `HttpException` is no exception its `CustomExceptionHandler` maps,
    /// so it is the middleware's 500 with the JSON envelope.
    fn bad_range(&self) -> Response<Body> {
        if self.docspace() {
            return self.error(&OoError::unmapped_http_exception(), Format::Json);
        }
        let mut response = Response::new(full("Wrong Range header"));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        response
    }

    /// DocSpace's fileops routes are `[AllowAnonymous]`
    /// (`OperationController.cs`): without a valid token the request runs
    /// as a guest, who owns no operations and may download nothing, so a
    /// PUT naming ids is the permission check's 404 and the rest list `[]`.
    fn anonymous(&self, op: Op, request: &DialectRequest, format: Format) -> Response<Body> {
        let answer = |status| self.success(request, status, Value::Array(Vec::new()), 0, format);
        match op {
            Op::Bulk => {
                let params = match self
                    .body(request)
                    .and_then(|b| request::params(request, b, self.json_syntax()))
                {
                    Ok(params) => params,
                    Err(err) => return self.error(&err, format),
                };
                let files = !params.list("fileIds").is_empty()
                    || !params.keyed("fileIds").is_empty()
                    || !params.keyed("fileConvertIds").is_empty();
                if !files && params.list("folderIds").is_empty() {
                    return answer(StatusCode::OK);
                }
                self.error(&OoError::nothing_to_download(files), format)
            }
            Op::List | Op::ListByType | Op::Terminate | Op::TerminateOne => answer(StatusCode::OK),
            Op::Authenticate | Op::Archive => unauthorized(&request.headers, true),
        }
    }

    fn terminate(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
        user: &UserInfo,
        only: Option<&str>,
        format: Format,
    ) -> Response<Body> {
        let running = |job: &JobSnapshot| matches!(job.state, JobState::Queued | JobState::Running);
        if self.docspace() {
            // Every matching operation is dequeued whatever its state, with no
            // message written; the answer lists the caller's remaining ones
            // (DocSpace-server FileOperationsManager.CancelOperations).
            for job in core.open_jobs(&Principal::User(user.id.clone())) {
                if only.is_none_or(|id| id == job.id) {
                    if running(&job) {
                        let _ = core.job(&job.id, JobOp::Cancel);
                    }
                    let _ = core.job(&job.id, JobOp::Acknowledge);
                }
            }
            let jobs = self.operations(core, user, false, None, None);
            return self.list_response(request, core, &jobs, StatusCode::OK, format);
        }
        // Workspace only asks the running tasks to stop and answers at once:
        // the list as it was; the next poll reports "The operation was
        // canceled" (CommunityServer FileOperationsManager.CancelOperations).
        let jobs = self.operations(core, user, false, None, None);
        for job in jobs.iter().filter(|job| running(job)) {
            let _ = core.job(&job.id, JobOp::Cancel);
        }
        self.list_response(request, core, &jobs, StatusCode::OK, format)
    }

    fn authenticate_route(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
        format: Format,
    ) -> Result<Response<Body>, OoError> {
        let params = request::params(request, self.body(request)?, self.json_syntax())?;
        let login = params.get("userName").unwrap_or_default();
        let password = params.get("password").unwrap_or_default();
        let Some(SignedIn { token, .. }) = core.log_in(login, password) else {
            return Err(OoError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "User authentication failed".into(),
                // AuthenticationException derives from SystemException:
                // COR_E_SYSTEM (0x80131501).
                hresult: -2146233087,
                exception: "System.Security.Authentication.AuthenticationException",
            });
        };
        // Saturating: an in-process clock may stand anywhere.
        let expires = zipgate_api::time::saturating_add(core.now(), chrono::Duration::days(365));
        let payload = json!({"token": token, "expires": api_date(expires)});
        let mut response = self.success(request, StatusCode::CREATED, payload, 1, format);
        if let Ok(cookie) =
            HeaderValue::from_str(&format!("asc_auth_key={token}; path=/; HttpOnly"))
        {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        Ok(response)
    }

    /// `filehandler.ashx?action=bulk&filename=…`: empty 403 without a user,
    /// empty 404 for an archive that is not theirs or not ready.
    fn archive(&self, request: &DialectRequest, core: &dyn Core) -> Response<Body> {
        if !request
            .query("action")
            .is_some_and(|a| a.eq_ignore_ascii_case("bulk"))
        {
            let mut response = Response::new(full("Bad request."));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return response;
        }
        let Some(user) = auth::handler_user(request, core, self.docspace()) else {
            return status_only(StatusCode::FORBIDDEN);
        };
        let owner = Principal::User(user.id.clone());
        // The handler opens `{current user}\{decrypted filename}` in storage,
        // where each finished operation stored its archive under its name,
        // replacing an earlier one of that name (FileDownloadOperation.cs):
        // so the caller's newest finished archive of the name answers, and
        // two same-day multi-item downloads (or two of same-titled folders)
        // share one URL that serves the later archive.
        let stored = |job: &JobSnapshot| {
            matches!(
                job.state,
                JobState::Ready | JobState::Downloading | JobState::Done
            )
        };
        let job = match request.query("filename") {
            Some(token) => ids::name_from_token(&token)
                .and_then(|name| core.newest_job(&owner, &|job| stored(job) && job.name == name)),
            // Without `filename` the handler looks for `download` + ext, which
            // v11 builds stored (their link is `?action=bulk&ext=.zip`) and v12
            // builds do not (FileHandler.ashx.cs `BulkDownloadFile`).
            None if self.settings.bulk_link_v11 => core.newest_job(&owner, &stored),
            None => None,
        };
        let Some(job) = job.filter(|job| job.owner == owner) else {
            return status_only(StatusCode::NOT_FOUND);
        };
        let download = match core.start_download(&job.id, None) {
            Ok(download) => download,
            // Where the files live cannot be reached: the server's 503.
            Err(zipgate_api::Error::Unavailable(message)) => {
                let status = StatusCode::SERVICE_UNAVAILABLE;
                return self.status_response(status, Some(&message), request, core);
            }
            Err(_) => return status_only(StatusCode::NOT_FOUND),
        };
        let style = DownloadStyle {
            content_type: if download.single_file {
                mime_type(&download.job.name)
            } else {
                "application/zip"
            },
            // ContentDispositionUtil.GetHeaderValue in each server:
            // DocSpace's plain `filename=` carries the encoded name too.
            disposition: Disposition::DotNet {
                encode_plain: self.docspace(),
            },
            // Both servers' FileHandler.ashx.cs `ProcessRangeHeader`:
            // Community Server adds `Accept-Ranges` and `Content-Range` to a
            // ranged answer only, even one covering the whole archive (a
            // 200); DocSpace always sends `Accept-Ranges`, and
            // `Content-Range` with a 206 only.
            ranges: Ranges::Handler(HandlerRanges {
                always_accept_ranges: self.docspace(),
                content_range_when_whole: !self.docspace(),
            }),
        };
        style
            .respond(download, &request.headers)
            .unwrap_or_else(|_| self.bad_range())
    }
}

/// `title` with its extension (from the last `.`) replaced by `ext`, which
/// carries its dot (the DocSpace client sends the target format as `.pdf`).
fn replace_extension(title: &str, ext: &str) -> String {
    let stem = title.rfind('.').map_or(title, |dot| &title[..dot]);
    [stem, ext].concat()
}

/// The handful of types a lone file is most likely to be; octet-stream otherwise.
fn mime_type(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "txt" | "log" | "md" => "text/plain",
        "pdf" => "application/pdf",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// 401 as Community Server answers it: plain `Unauthorized`, and a Basic
/// challenge only when an `Authorization` header was sent (DocSpace: empty).
fn unauthorized(headers: &HeaderMap, docspace: bool) -> Response<Body> {
    let mut response = Response::new(full(if docspace { "" } else { "Unauthorized" }));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    if !docspace {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    }
    if !docspace && headers.contains_key(header::AUTHORIZATION) {
        // `Request.GetUrlRewriter().Host`: `Uri.Host`, without the port.
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(host_without_port)
            .unwrap_or("localhost");
        if let Ok(value) = HeaderValue::from_str(&format!("Basic Realm=\"{host}\"")) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

/// ONLYOFFICE behind `--cors`. Workspace (CommunityServer
/// `ApiAccessControlRouteRegistrator.cs`, nginx `onlyoffice.conf`): 200 to
/// a preflight with a fixed header list and a 20-day max age, and
/// `Access-Control-Allow-Origin: *`. DocSpace (`BaseStartup.cs`, ASP.NET
/// Core's CORS middleware with `AllowAnyHeader`): 204, the requested
/// headers echoed, the origin echoed with credentials allowed, as its web
/// client sends cookies (`withCredentials`).
const WORKSPACE_CORS: Cors = Cors {
    star: true,
    allow_headers: Some(&["accept", "authorization", "content-type", "origin"]),
    expose_headers: &[],
    max_age: Some(1_728_000),
    credentials: false,
    preflight_status: 200,
};

const DOCSPACE_CORS: Cors = Cors {
    star: false,
    allow_headers: None,
    expose_headers: &[],
    max_age: None,
    credentials: true,
    preflight_status: 204,
};

impl Dialect for OnlyofficeDialect {
    type Op = Op;

    fn cors(&self) -> Cors {
        match self.settings.flavour {
            Flavour::Workspace => WORKSPACE_CORS,
            Flavour::DocSpace => DOCSPACE_CORS,
        }
    }

    fn name(&self) -> &'static str {
        DIALECT
    }

    fn routes(&self) -> Vec<Route<Op>> {
        let mut routes = Vec::new();
        for (method, base, op) in [
            (Method::PUT, "/api/2.0/files/fileops/bulkdownload", Op::Bulk),
            (Method::GET, "/api/2.0/files/fileops", Op::List),
            (
                Method::PUT,
                "/api/2.0/files/fileops/terminate",
                Op::Terminate,
            ),
            (Method::POST, "/api/2.0/authentication", Op::Authenticate),
        ] {
            // Every API route also answers with a .json, .xml or .tml suffix.
            for suffix in ["", ".json", ".xml", ".tml"] {
                routes.push(Route::new(method.clone(), format!("{base}{suffix}"), op));
            }
        }
        routes.push(Route::get("/api/2.0/files/fileops/{type}", Op::ListByType));
        routes.push(Route::put(
            "/api/2.0/files/fileops/terminate/{id}",
            Op::TerminateOne,
        ));
        routes.push(Route::get(WORKSPACE_HANDLER, Op::Archive));
        routes.push(Route::get(DOCSPACE_HANDLER, Op::Archive));
        routes
    }

    fn prefixes(&self) -> Vec<&'static str> {
        vec!["/api/2.0/", "/Products/Files/"]
    }

    fn derive_id(&self, id: &NodeId) -> String {
        ids::derive(id)
    }

    /// From the query, cookie or `Authorization` (a form body's
    /// `asc_auth_key` is not read: this runs before the body is).
    fn principal(&self, request: &DialectRequest, core: &dyn Core) -> Option<Arc<UserInfo>> {
        auth::user(request, core, &[], self.for_request(request).docspace())
    }

    fn examples(&self) -> Vec<Example> {
        let put = |label, path, content_type, body| Example {
            label,
            method: Method::PUT,
            path,
            headers: vec![
                ("authorization", "Bearer {token}"),
                ("content-type", content_type),
            ],
            body,
        };
        vec![
            put(
                "json",
                "/api/2.0/files/fileops/bulkdownload",
                "application/json",
                r#"{"fileIds":["{file}"],"folderIds":["{folder}"]}"#,
            ),
            put(
                "xml",
                "/api/2.0/files/fileops/bulkdownload.xml",
                // The vendor reads `text/xml` as XML; `application/xml` is read as a form.
                "text/xml",
                "<request><fileIds>{file}</fileIds><folderIds>{folder}</folderIds></request>",
            ),
            put(
                "form",
                "/api/2.0/files/fileops/bulkdownload",
                "application/x-www-form-urlencoded",
                "fileIds[]={file}&folderIds[]={folder}",
            ),
        ]
    }

    fn handle(&self, op: Op, request: DialectRequest, core: &dyn Core) -> Response<Body> {
        self.for_request(&request).serve(op, request, core)
    }

    fn not_found(&self, _request: &DialectRequest, _core: &dyn Core) -> Response<Body> {
        not_found()
    }

    fn method_not_allowed(
        &self,
        request: &DialectRequest,
        allowed: &[Method],
        _core: &dyn Core,
    ) -> Response<Body> {
        if self.for_request(request).docspace() {
            // ASP.NET Core's endpoint routing: 405, an empty body and `Allow`.
            let mut response = status_only(StatusCode::METHOD_NOT_ALLOWED);
            insert_allow(response.headers_mut(), allowed);
            return response;
        }
        self.error(
            &OoError::method_not_found(),
            format_of(request, self.settings.flavour),
        )
    }

    fn status_response(
        &self,
        status: StatusCode,
        message: Option<&str>,
        request: &DialectRequest,
        _core: &dyn Core,
    ) -> Response<Body> {
        let dialect = self.for_request(request);
        if status == StatusCode::UNAUTHORIZED {
            return unauthorized(&request.headers, dialect.docspace());
        }
        let message = message.unwrap_or(status.canonical_reason().unwrap_or("Error"));
        dialect.error(
            &OoError::for_status(status, message),
            format_of(request, dialect.settings.flavour),
        )
    }
}

/// Request header that picks the flavour for one request: `workspace` or `docspace`.
pub const FLAVOUR_HEADER: &str = "x-zipgate-onlyoffice-flavour";

fn not_found() -> Response<Body> {
    status_only(StatusCode::NOT_FOUND)
}

/// A status with an empty body, as ASP.NET answers without a handler's say.
fn status_only(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    response
}

impl OnlyofficeDialect {
    /// This dialect, or a copy in the flavour the request's header picks (a
    /// test may switch flavour for one request).
    fn for_request(&self, request: &DialectRequest) -> std::borrow::Cow<'_, OnlyofficeDialect> {
        let flavour = match request
            .headers
            .get(FLAVOUR_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            Some("docspace") => Flavour::DocSpace,
            Some("workspace") => Flavour::Workspace,
            _ => self.settings.flavour,
        };
        if flavour == self.settings.flavour {
            return std::borrow::Cow::Borrowed(self);
        }
        std::borrow::Cow::Owned(OnlyofficeDialect {
            settings: OnlyofficeSettings {
                flavour,
                ..self.settings.clone()
            },
        })
    }

    fn serve(&self, op: Op, request: DialectRequest, core: &dyn Core) -> Response<Body> {
        let format = format_of(&request, self.settings.flavour);
        if op == Op::Archive {
            return self.archive(&request, core);
        }
        let docspace_only = matches!(op, Op::ListByType | Op::TerminateOne);
        let suffixed = request
            .uri
            .path()
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains('.'));
        if (docspace_only && !self.docspace()) || (suffixed && self.docspace()) {
            return not_found();
        }
        if op == Op::Authenticate {
            return self
                .authenticate_route(&request, core, format)
                .unwrap_or_else(|err| self.error(&err, format));
        }
        // Authentication comes before anything else is looked at: the body's
        // parameters are parsed only for a caller the authorizers let in.
        let body = request.body.as_deref().unwrap_or_default();
        let Some(user) = auth::user(&request, core, body, self.docspace()) else {
            if self.docspace() {
                return self.anonymous(op, &request, format);
            }
            return unauthorized(&request.headers, false);
        };
        let result = match op {
            Op::Bulk => self.bulk(&request, core, &user, format),
            Op::List => {
                let only = if self.docspace() {
                    request.query("id")
                } else {
                    None
                };
                let jobs = self.operations(core, &user, true, only.as_deref(), None);
                Ok(self.list_response(&request, core, &jobs, StatusCode::OK, format))
            }
            Op::ListByType => {
                let kind = request.param("type");
                let jobs = if kind.eq_ignore_ascii_case("download") || kind == "3" {
                    self.operations(core, &user, true, None, None)
                } else {
                    Vec::new()
                };
                Ok(self.list_response(&request, core, &jobs, StatusCode::OK, format))
            }
            Op::Terminate => Ok(self.terminate(&request, core, &user, None, format)),
            Op::TerminateOne => {
                Ok(self.terminate(&request, core, &user, Some(request.param("id")), format))
            }
            // Answered above, before authentication.
            Op::Authenticate | Op::Archive => Err(OoError::method_not_found()),
        };
        result.unwrap_or_else(|err| self.error(&err, format))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_have_seven_fraction_digits() {
        let t = DateTime::parse_from_rfc3339("2025-03-01T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(api_date(t), "2025-03-01T10:00:00.1234560Z");
    }
}
