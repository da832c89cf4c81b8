//! The test control plane under `/_zipgate/` (first part): replace or add to
//! the fixtures, reset, inspect jobs, move the clock.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use http::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use zipgate_api::{JobSnapshot, Principal};

use super::http::{self as h, Body};
use super::router::{Ctx, Router};
use crate::journal::Filter;
use crate::store::{FixtureError, FixtureSource};

pub fn mount(router: &mut Router) {
    router.add(Method::PUT, "/_zipgate/fixtures", put_fixtures);
    router.add(Method::POST, "/_zipgate/fixtures/nodes", post_nodes);
    router.add(Method::POST, "/_zipgate/reset", reset);
    router.add(Method::GET, "/_zipgate/jobs", jobs);
    router.add(Method::GET, "/_zipgate/jobs/{id}", job);
    router.add(Method::GET, "/_zipgate/requests", requests);
    router.add(Method::DELETE, "/_zipgate/requests", clear_requests);
    router.add(Method::GET, "/_zipgate/clock", clock);
    router.add(Method::POST, "/_zipgate/clock/advance", advance);
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn fixture_error(e: &FixtureError) -> Response<Body> {
    h::json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": "invalid_fixture", "message": e.to_string(), "path": e.path}),
    )
}

async fn body_json(ctx: Ctx) -> Result<(std::sync::Arc<super::AppState>, Value), Response<Body>> {
    let state = ctx.state;
    let bytes = h::read_body(
        ctx.req.into_body(),
        state.config.max_body_bytes.max(64 << 20),
    )
    .await
    .map_err(|e| {
        h::json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            e.to_string(),
        )
    })?;
    let value = serde_json::from_slice(&bytes).map_err(|e| {
        h::json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("malformed JSON body: {e}"),
        )
    })?;
    Ok((state, value))
}

fn counts(state: &super::AppState) -> Value {
    let store = state.store();
    json!({"nodes": store.node_count(), "users": store.users().count()})
}

/// Replaces the whole tree; an invalid document leaves the old one in force.
async fn put_fixtures(ctx: Ctx) -> Response<Body> {
    let (state, json) = match body_json(ctx).await {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    match state.load_fixture(FixtureSource {
        json,
        base_dir: None,
    }) {
        Ok(()) => h::json_response(StatusCode::OK, &counts(&state)),
        Err(e) => fixture_error(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddNodes {
    #[serde(default)]
    parent: Option<String>,
    nodes: Vec<Value>,
}

/// Adds nodes under `parent` (a folder id) or at the top.
async fn post_nodes(ctx: Ctx) -> Response<Body> {
    let (state, json) = match body_json(ctx).await {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    let request: AddNodes = match serde_json::from_value(json) {
        Ok(request) => request,
        Err(e) => return h::json_error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    };
    match state.add_nodes(request.parent.as_deref(), request.nodes) {
        Ok(()) => h::json_response(StatusCode::OK, &counts(&state)),
        Err(e) => fixture_error(&e),
    }
}

async fn reset(ctx: Ctx) -> Response<Body> {
    match ctx.state.reset() {
        Ok(()) => h::json_response(StatusCode::OK, &counts(&ctx.state)),
        Err(e) => fixture_error(&e),
    }
}

fn job_view(job: &JobSnapshot) -> Value {
    json!({
        "id": job.id,
        "dialect": job.owner_tag,
        "owner": match &job.owner { Principal::User(u) => Value::String(u.0.clone()), Principal::Anonymous => Value::Null },
        "state": job.state,
        "name": job.name,
        "entries": job.entries_total,
        "files": job.file_count,
        "progress": {"done": job.steps.0, "of": job.steps.1},
        "archive_bytes": job.archive_len,
        "created": time(job.created_at),
        "ready": job.ready_at.map(time),
        "expires": job.expires_at.map(time),
        "downloads": job.downloads,
        "bytes_sent": job.bytes_sent,
        "error": job.error,
    })
}

async fn jobs(ctx: Ctx) -> Response<Body> {
    let list: Vec<Value> = ctx.state.jobs.list().iter().map(job_view).collect();
    h::json_response(StatusCode::OK, &json!({ "jobs": list }))
}

async fn job(ctx: Ctx) -> Response<Body> {
    let id = ctx.params.get("id").cloned().unwrap_or_default();
    match ctx.state.jobs.get(&id) {
        Some(job) => h::json_response(StatusCode::OK, &job_view(&job)),
        None => h::json_error(StatusCode::NOT_FOUND, "not_found", format!("no job {id:?}")),
    }
}

/// The journal, oldest first; filters `dialect`, `method`, `path_prefix`,
/// `status`; `reveal=true` shows Authorization and Cookie values.
async fn requests(ctx: Ctx) -> Response<Body> {
    let query = zipgate_api::dialect::query_pairs(ctx.req.uri().query().unwrap_or(""));
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let status = match get("status").map(|s| s.parse::<u16>()) {
        None => None,
        Some(Ok(status)) => Some(status),
        Some(Err(_)) => {
            return h::json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "status: expected a number",
            )
        }
    };
    let filter = Filter {
        dialect: get("dialect"),
        method: get("method"),
        path_prefix: get("path_prefix"),
        status,
    };
    let reveal = get("reveal").as_deref() == Some("true");
    let entries: Vec<Value> = ctx
        .state
        .journal
        .list(&filter)
        .iter()
        .map(|e| e.to_json(reveal))
        .collect();
    h::json_response(StatusCode::OK, &json!({ "requests": entries }))
}

async fn clear_requests(ctx: Ctx) -> Response<Body> {
    ctx.state.journal.clear();
    h::json_response(StatusCode::OK, &json!({ "requests": [] }))
}

async fn clock(ctx: Ctx) -> Response<Body> {
    h::json_response(StatusCode::OK, &json!({"now": time(ctx.state.clock.now())}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: f64,
}

/// Moves the server clock forward: expiry and time-paced jobs follow.
async fn advance(ctx: Ctx) -> Response<Body> {
    let (state, json) = match body_json(ctx).await {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    let advance = match serde_json::from_value::<Advance>(json) {
        Ok(a) if a.seconds.is_finite() && a.seconds >= 0.0 => a,
        Ok(_) => {
            return h::json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "seconds: must be a number >= 0",
            )
        }
        Err(e) => return h::json_error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    };
    state
        .control_clock
        .advance(Duration::milliseconds((advance.seconds * 1000.0) as i64));
    h::json_response(StatusCode::OK, &json!({"now": time(state.clock.now())}))
}
