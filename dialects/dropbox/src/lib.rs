//! Dropbox's `POST /2/files/download_zip` (content host): the folder named
//! by the `Dropbox-API-Arg` header (or `arg` URL parameter) as a zip in the
//! response body, its metadata in the `Dropbox-API-Result` header. One call
//! does it all: the job is created, admitted and streamed in the same
//! request. Translation only: the core plans and writes the zip.

mod errors;
mod ids;
mod render;
mod request;
mod settings;

use std::sync::Arc;

use http::{HeaderValue, Method, Response, StatusCode};
use serde_json::{json, Map, Value};
use zipgate_api::download::{Disposition, DownloadStyle, Ranges};
use zipgate_api::http::Body;
use zipgate_api::plan::{DirEntries, OnProblem, PlanOptions};
use zipgate_api::{
    Core, Cors, CreateJob, Dialect, DialectRequest, Error, Example, JobOp, LimitKind, NameMatch,
    NodeId, NodeInfo, NodeKind, Pacing, Principal, Route, SelectedItem, Settings, UserInfo,
};

pub use errors::{DropboxError, Lookup};
use ids::DIALECT;
use request::Target;
pub use settings::{ContentTypes, DropboxSettings};

/// The request readers, for the fuzz targets and their corpus replay; not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::errors::DropboxError;
    pub use crate::render::python_json;
    pub use crate::request::{path_arg, read_path, target, validate, Target};
}

const ROUTE: &str = "/2/files/download_zip";

#[derive(Clone, Copy, Debug)]
pub enum Op {
    DownloadZip,
}

/// How the archive goes out: no `Content-Disposition` (nothing reads one),
/// and the route "does not support HTTP range requests".
const STYLE: DownloadStyle<'static> = DownloadStyle {
    content_type: "application/octet-stream",
    disposition: Disposition::None,
    ranges: Ranges::Ignored,
};

pub struct DropboxDialect {
    settings: DropboxSettings,
}

impl DropboxDialect {
    pub fn new(settings: &Settings) -> Result<Self, String> {
        Ok(DropboxDialect {
            settings: DropboxSettings::parse(settings)?,
        })
    }

    fn download_zip(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
    ) -> Result<Response<Body>, DropboxError> {
        // Credentials first, then the (empty) body, then the argument.
        let token = request::token(request)?;
        let user = core
            .authenticate(&token)
            .ok_or(DropboxError::Auth("invalid_access_token"))?;
        request::empty_body(request, self.settings.content_types)?;
        let path = request::path_arg(request)?;
        let principal = Principal::User(user.id.clone());
        let folder = self.locate(core, &principal, &path)?;
        if folder.kind != NodeKind::Folder {
            return Err(DropboxError::Path(Lookup::NotFolder));
        }
        let job_id = ids::job_id(core);
        core.create_job(CreateJob {
            id: job_id.clone(),
            name: format!("{}.zip", folder.name),
            context: String::new(),
            owner: principal.clone(),
            selection: vec![SelectedItem {
                id: folder.id.clone(),
                expected_kind: Some(NodeKind::Folder),
                name: None,
            }],
            plan: PlanOptions {
                missing: OnProblem::Fail,
                // What the caller may not read is not in their Dropbox.
                unreadable: OnProblem::Skip,
                dir_entries: DirEntries::All,
                max_entries: Some(self.settings.max_entries),
                max_bytes: Some(self.settings.max_bytes),
                max_file_bytes: Some(self.settings.max_file_bytes),
                ..PlanOptions::default()
            },
            compression: self.settings.compression,
            single_file_as_is: false,
            layout: Default::default(),
            pacing: Pacing::Immediate,
            download_window: Some(chrono::Duration::minutes(1)),
            single_use: true,
            retention: chrono::Duration::minutes(1),
        })
        .map_err(|e| translate(&e))?;
        let download = core
            .start_download(&job_id, None)
            .map_err(|e| translate(&e))?;
        if request.method == Method::HEAD {
            // A HEAD was only looked at; the job it needed goes.
            let _ = core.job(&job_id, JobOp::Remove);
        }
        let result = json!({"metadata": self.metadata(core, &user, &folder)});
        let mut response = STYLE
            .respond(download, &request.headers)
            .map_err(|_| internal())?;
        // ASCII only (\uXXXX): the SDKs read header bytes as Latin-1.
        if let Ok(value) = HeaderValue::from_str(&render::python_json(&result)) {
            response.headers_mut().insert("dropbox-api-result", value);
        }
        Ok(response)
    }

    /// The node `path` names for `principal`.
    fn locate(
        &self,
        core: &dyn Core,
        principal: &Principal,
        path: &str,
    ) -> Result<NodeInfo, DropboxError> {
        let not_found = DropboxError::Path(Lookup::NotFound);
        let found = match request::target(path) {
            Target::Malformed => return Err(DropboxError::Path(Lookup::MalformedPath)),
            Target::Nothing => None,
            Target::Path(path) => core.node_by_path(principal, None, path, NameMatch::IgnoreCase),
            Target::Id(id, relative) => core.resolve(id).and_then(|start| {
                core.node_by_path(principal, Some(&start), relative, NameMatch::IgnoreCase)
            }),
        };
        found.and_then(|id| core.node(&id)).ok_or(not_found)
    }

    /// `FolderMetadata`: `name`, `path_lower`, `path_display`, `id`, in
    /// Stone's field order, no `.tag` (a struct, not the `Metadata` union).
    fn metadata(&self, core: &dyn Core, user: &UserInfo, node: &NodeInfo) -> Value {
        // Names from the caller's root (their home) down to the node.
        let mut names = vec![node.name.clone()];
        let mut parent = node.parent.clone();
        while let Some(id) = parent.filter(|id| Some(id) != user.home.as_ref()) {
            let Some(up) = core.node(&id) else { break };
            names.push(up.name);
            parent = up.parent;
        }
        let display: String = names.iter().rev().map(|n| format!("/{n}")).collect();
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(node.name));
        metadata.insert("path_lower".into(), json!(display.to_lowercase()));
        metadata.insert("path_display".into(), json!(display));
        metadata.insert("id".into(), json!(self.id_of(node)));
        Value::Object(metadata)
    }

    fn answer(
        &self,
        core: &dyn Core,
        result: Result<Response<Body>, DropboxError>,
    ) -> Response<Body> {
        let mut response =
            result.unwrap_or_else(|err| err.response((core.random_u64() % 4) as usize));
        if let Ok(value) = HeaderValue::from_str(&ids::request_id(core)) {
            response.headers_mut().insert("x-dropbox-request-id", value);
        }
        response
    }
}

fn internal() -> DropboxError {
    DropboxError::Plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal Server Error".into(),
    )
}

/// Neutral errors from planning, in Dropbox's terms.
fn translate(err: &Error) -> DropboxError {
    match err {
        Error::NotFound(_) | Error::Forbidden(_) => DropboxError::Path(Lookup::NotFound),
        Error::LimitExceeded {
            kind: LimitKind::Entries | LimitKind::FileCount,
            ..
        } => DropboxError::TooManyFiles,
        Error::LimitExceeded {
            kind: LimitKind::TotalBytes | LimitKind::FileBytes,
            ..
        } => DropboxError::TooLarge,
        // The caller holds as many jobs as one user may: Dropbox's rate limit.
        Error::TooManyJobs { .. } => DropboxError::RateLimit { retry_after: 1 },
        // Where the files live cannot be reached: Dropbox's plain-text 503.
        Error::Unavailable(message) => {
            DropboxError::for_status(StatusCode::SERVICE_UNAVAILABLE, Some(message))
        }
        _ => internal(),
    }
}

/// Dropbox's API behind `--cors` (HTTP docs, "Browser-based JavaScript and
/// CORS pre-flight requests"): the headers dropbox-sdk-js sends on a
/// download (`src/dropbox.js`), and `Dropbox-API-Result`, which it reads
/// for the result (`src/response.js`); without it the SDK fails.
const CORS: Cors = Cors {
    star: true,
    allow_headers: Some(&[
        "authorization",
        "content-type",
        "dropbox-api-arg",
        "dropbox-api-path-root",
        "dropbox-api-select-admin",
        "dropbox-api-select-user",
    ]),
    expose_headers: &["dropbox-api-result", "content-disposition"],
    max_age: None,
    credentials: false,
    preflight_status: 200,
};

impl Dialect for DropboxDialect {
    type Op = Op;

    fn cors(&self) -> Cors {
        CORS
    }

    fn name(&self) -> &'static str {
        DIALECT
    }

    fn routes(&self) -> Vec<Route<Op>> {
        // Content-download endpoints "also support HTTP GET".
        vec![
            Route::post(ROUTE, Op::DownloadZip),
            Route::get(ROUTE, Op::DownloadZip),
        ]
    }

    fn prefixes(&self) -> Vec<&'static str> {
        vec!["/2/"]
    }

    fn derive_id(&self, id: &NodeId) -> String {
        ids::derive(id)
    }

    fn principal(&self, request: &DialectRequest, core: &dyn Core) -> Option<Arc<UserInfo>> {
        request::token(request)
            .ok()
            .and_then(|token| core.authenticate(&token))
    }

    fn examples(&self) -> Vec<Example> {
        vec![
            Example {
                label: "header",
                method: Method::POST,
                path: ROUTE,
                headers: vec![
                    ("authorization", "Bearer {token}"),
                    ("dropbox-api-arg", r#"{"path": "{folder_path}"}"#),
                ],
                body: "",
            },
            Example {
                label: "url parameters",
                method: Method::POST,
                path: "/2/files/download_zip?authorization=Bearer%20{token}&arg=%7B%22path%22%3A%22{folder_path}%22%7D&reject_cors_preflight=true",
                headers: vec![("content-type", "text/plain; charset=dropbox-cors-hack")],
                body: "",
            },
        ]
    }

    fn handle(&self, op: Op, request: DialectRequest, core: &dyn Core) -> Response<Body> {
        let result = match op {
            Op::DownloadZip => self.download_zip(&request, core),
        };
        self.answer(core, result)
    }

    fn not_found(&self, request: &DialectRequest, core: &dyn Core) -> Response<Body> {
        let function = request.uri.path().trim_start_matches("/2/");
        let err = DropboxError::Plain(
            StatusCode::NOT_FOUND,
            format!("Unknown API function: {function:?}"),
        );
        self.answer(core, Err(err))
    }

    fn method_not_allowed(
        &self,
        request: &DialectRequest,
        allowed: &[Method],
        core: &dyn Core,
    ) -> Response<Body> {
        let err = DropboxError::Plain(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "Error in call to API function \"{}\": Unsupported HTTP method {}.",
                errors::FUNCTION,
                request.method
            ),
        );
        let mut response = self.answer(core, Err(err));
        zipgate_api::http::insert_allow(response.headers_mut(), allowed);
        response
    }

    fn status_response(
        &self,
        status: StatusCode,
        message: Option<&str>,
        _request: &DialectRequest,
        core: &dyn Core,
    ) -> Response<Body> {
        self.answer(core, Err(DropboxError::for_status(status, message)))
    }
}

#[cfg(test)]
mod tests {
    //! Handlers over `FakeCore`: no server, no socket.
    use super::*;
    use http::HeaderMap;
    use zipgate_api::fake::{body_bytes, FakeCore, FAKE_ARCHIVE};

    fn core() -> FakeCore {
        FakeCore::new(DIALECT, ids::derive)
            .user("alice", Some("home"))
            .folder("home", "Alice", None)
            .folder("docs", "Documents", Some("home"))
            .file("notes", "notes.md", 5, Some("docs"))
    }

    fn call(arg: &str, token: &str) -> DialectRequest {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        headers.insert("dropbox-api-arg", arg.parse().unwrap());
        DialectRequest::new(
            Method::POST,
            ROUTE.parse().unwrap(),
            headers,
            Default::default(),
        )
    }

    #[test]
    fn a_folder_comes_back_with_its_metadata_in_the_result_header() {
        let dialect = DropboxDialect::new(&Settings::new()).unwrap();
        let core = core();
        let response = dialect.handle(
            Op::DownloadZip,
            call(r#"{"path": "/documents"}"#, "alice-token"),
            &core,
        );
        assert_eq!(response.status(), StatusCode::OK);
        let result: Value =
            serde_json::from_str(response.headers()["dropbox-api-result"].to_str().unwrap())
                .unwrap();
        assert_eq!(result["metadata"]["name"], "Documents");
        assert_eq!(result["metadata"]["path_display"], "/Documents");
        assert_eq!(result["metadata"]["path_lower"], "/documents");
        assert_eq!(result["metadata"]["id"], ids::derive(&NodeId::from("docs")));
        assert_eq!(response.headers()["x-dropbox-request-id"].len(), 32);
        assert_eq!(body_bytes(response), FAKE_ARCHIVE);
    }

    #[test]
    fn a_file_a_miss_and_a_bad_token_in_dropboxs_terms() {
        let dialect = DropboxDialect::new(&Settings::new()).unwrap();
        let core = core();
        let answer = |arg: &str, token: &str| {
            let response = dialect.handle(Op::DownloadZip, call(arg, token), &core);
            (
                response.status(),
                String::from_utf8(body_bytes(response).to_vec()).unwrap(),
            )
        };
        let (status, body) = answer(r#"{"path": "/Documents/notes.md"}"#, "alice-token");
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(
            body.starts_with(r#"{"error_summary": "path/not_folder/"#),
            "{body}"
        );
        let (status, body) = answer(r#"{"path": "/Nope"}"#, "alice-token");
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(body.contains(r#""path": {".tag": "not_found"}"#), "{body}");
        let (status, body) = answer(r#"{"path": "/Documents"}"#, "nope");
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("invalid_access_token"), "{body}");
        // No job is left behind by any of them.
        assert!(core.jobs().is_empty());
    }
}
