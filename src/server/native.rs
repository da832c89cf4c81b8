//! zipgate's own routes under `/_zipgate/` (no vendor uses that prefix):
//! health, and the neutral zip route that is the reference for every dialect.

use std::sync::Arc;

use http::{header, HeaderValue, Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use zipgate_api::{Compression, Error, NodeId, Principal, SelectedItem};

use super::http::{self as h, Body, Credentials, RangeRequest};
use super::router::{Ctx, Router};
use super::AppState;
use crate::packing::{build_archive, CompressionPolicy};
use crate::planner::{self, PlanOptions};
use crate::stream::archive_body;
use crate::zip::NoProgress;

pub fn mount(router: &mut Router) {
    router.add(Method::GET, "/_zipgate/health", health);
    router.add(Method::POST, "/_zipgate/zip", zip);
}

async fn health(ctx: Ctx) -> Response<Body> {
    let state = &ctx.state;
    let store = state.store();
    h::json_response(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "replica": state.config.replica,
            "job_backend": state.jobs.describe(),
            // A job planned with ISA-L deflate rebuilds only on a replica
            // that has it: a mixed deployment shows here.
            "isal": crate::zip::DeflateEngine::ISAL_BUILT_IN,
            "dialects": state.dialects.iter().map(|d| d.name()).collect::<Vec<_>>(),
            "nodes": store.node_count(),
            "users": store.users().count(),
            // `null` while a shared job store cannot be reached.
            "jobs": state.jobs.len().ok(),
            "active_streams": state.streams.active(),
            "crc_warmers": state.crc_warmers(),
            "connections": state.connections.live(),
            "max_connections": state.connections.max(),
        }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZipRequest {
    items: Vec<ZipItem>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    compression: Option<Compression>,
    /// Extensions to store uncompressed in a deflate archive; the server's list when absent.
    #[serde(default)]
    store_extensions: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZipItem {
    id: String,
}

/// Maps a neutral error to this route's JSON error.
pub(super) fn error_response(error: &Error) -> Response<Body> {
    let (status, kind) = match error {
        Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        Error::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
        Error::LimitExceeded { .. } => (StatusCode::BAD_REQUEST, "limit_exceeded"),
        Error::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Error::Gone(_) => (StatusCode::GONE, "gone"),
        Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        Error::TooManyJobs { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_jobs"),
        Error::TooManyDownloads { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_downloads"),
        Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    h::json_error(status, kind, error.to_string())
}

/// `file.zip` for `file`; the name must be a plain file name.
fn archive_name(requested: Option<&str>) -> String {
    let base = requested
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("download");
    let base = planner::safe_component(base);
    if base.to_ascii_lowercase().ends_with(".zip") {
        base
    } else {
        format!("{base}.zip")
    }
}

fn principal(state: &AppState, headers: &http::HeaderMap) -> Result<Principal, Error> {
    match h::bearer(headers) {
        Credentials::None => Ok(Principal::Anonymous),
        Credentials::Malformed => Err(Error::Unauthenticated),
        Credentials::Bearer(token) => state
            .store()
            .authenticate(token)
            .map(|user| Principal::User(user.id.clone()))
            .ok_or(Error::Unauthenticated),
    }
}

/// Syntax errors and shape errors get different messages; shape errors name
/// the JSON path (`items[0].id: invalid type …`).
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("malformed JSON body: {e}"))?;
    crate::strict_json::from_value(&value).map_err(|e| crate::strict_json::message(&e))
}

/// The body parse and archive name of `POST /_zipgate/zip`: the item ids
/// and the file name, or the 400's message. For the fuzz targets (`crate::fuzzing`).
pub(crate) fn parse_request(bytes: &[u8]) -> Result<(Vec<String>, String), String> {
    let request: ZipRequest = parse_json(bytes)?;
    let ids = request.items.into_iter().map(|item| item.id).collect();
    Ok((ids, archive_name(request.name.as_deref())))
}

async fn zip(ctx: Ctx) -> Response<Body> {
    // It serves the tree's files: a web page may not reach it either.
    if let Some(response) = ctx.state.guard.check(&ctx.req) {
        return response;
    }
    let state = ctx.state;
    let (parts, body) = ctx.req.into_parts();
    match h::media_type(&parts.headers).as_deref() {
        Some("application/json") => {}
        other => {
            return h::json_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "send the request as application/json (got {})",
                    other.unwrap_or("no Content-Type")
                ),
            )
        }
    }
    let principal = match principal(&state, &parts.headers) {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let (limit, timeout) = (state.config.max_body_bytes, state.config.body_timeout);
    let bytes = match h::read_request_body(&parts.headers, body, limit, timeout).await {
        Ok(bytes) => bytes,
        Err(e @ h::BodyError::TooLarge(_)) => {
            return h::json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            )
        }
        Err(e) => return h::json_error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    };
    let request: ZipRequest = match parse_json(&bytes) {
        Ok(request) => request,
        Err(message) => return h::json_error(StatusCode::BAD_REQUEST, "invalid_request", message),
    };
    if request.items.is_empty() {
        return error_response(&Error::invalid("items", "must list at least one item"));
    }

    let selection: Vec<SelectedItem> = request
        .items
        .into_iter()
        .map(|item| SelectedItem {
            id: NodeId(item.id),
            expected_kind: None,
            name: None,
        })
        .collect();
    let store = state.store();
    let mut options = PlanOptions {
        portable_names: state.config.portable_names,
        ..PlanOptions::default()
    };
    let plan = match planner::plan(&store, &principal, &selection, &mut options) {
        Ok(plan) => plan,
        Err(e) => return error_response(&e),
    };
    let own_policy;
    let policy = match request.store_extensions {
        Some(extensions) => {
            own_policy = CompressionPolicy {
                stored_extensions: extensions
                    .into_iter()
                    .map(|e| e.trim_start_matches('.').to_owned())
                    .collect(),
                ..state.config.compression.clone()
            };
            &own_policy
        }
        None => &state.config.compression,
    };
    let archive = Arc::new(build_archive(&plan, policy, request.compression));
    if let Err(error) = archive.preflight() {
        return error_response(&Error::Unavailable(error.to_string()));
    }
    let name = archive_name(request.name.as_deref());

    let (status, offset, length) = match archive.len() {
        Some(len) => match h::parse_range(&parts.headers, len) {
            RangeRequest::Full => (StatusCode::OK, 0, Some(len)),
            RangeRequest::Partial { start, end } => {
                (StatusCode::PARTIAL_CONTENT, start, Some(end - start + 1))
            }
            RangeRequest::Unsatisfiable => {
                let mut response = h::json_error(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    format!("the archive is {len} bytes"),
                );
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                return response;
            }
        },
        None => (StatusCode::OK, 0, None),
    };
    let full_len = archive.len();
    let body = if length == Some(0) {
        h::empty()
    } else {
        archive_body(
            archive,
            offset,
            length,
            state.streams.clone(),
            Arc::new(NoProgress),
            // No job behind it, so nothing cancels it.
            tokio_util::sync::CancellationToken::new(),
        )
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    headers.insert(header::CONTENT_DISPOSITION, h::content_disposition(&name));
    if let Some(len) = full_len {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(length) = length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            if status == StatusCode::PARTIAL_CONTENT {
                let range = format!("bytes {offset}-{}/{len}", offset + length - 1);
                if let Ok(value) = HeaderValue::from_str(&range) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
            }
        }
    }
    response
}
