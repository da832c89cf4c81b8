//! The test control plane under `/_zipgate/`: replace or add to the
//! fixtures, reset, inspect jobs, read the request journal, inject faults,
//! move the clock. Off with `--no-control`; kept from web pages by the
//! Host and Origin rules and JSON-only bodies (`super::guard`); guarded by
//! `--control-token` when one is set.

use chrono::Duration;
use http::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::http::{self as h, Body};
use super::native::error_response;
use super::router::{BoxFuture, Ctx, Router};
use crate::journal::Filter;
use crate::state::ControlError;
use crate::store::FixtureError;

pub fn mount(router: &mut Router) {
    guarded(router, Method::PUT, "/_zipgate/fixtures", put_fixtures);
    guarded(router, Method::POST, "/_zipgate/fixtures/nodes", post_nodes);
    guarded(router, Method::POST, "/_zipgate/reset", reset);
    guarded(router, Method::GET, "/_zipgate/jobs", jobs);
    guarded(router, Method::GET, "/_zipgate/jobs/{id}", job);
    guarded(router, Method::GET, "/_zipgate/jobs/{id}/plan", job_plan);
    guarded(router, Method::GET, "/_zipgate/requests", requests);
    guarded(router, Method::DELETE, "/_zipgate/requests", clear_requests);
    guarded(router, Method::POST, "/_zipgate/faults", add_faults);
    guarded(router, Method::GET, "/_zipgate/faults", list_faults);
    guarded(router, Method::DELETE, "/_zipgate/faults", clear_faults);
    guarded(
        router,
        Method::DELETE,
        "/_zipgate/faults/{id}",
        remove_fault,
    );
    guarded(router, Method::GET, "/_zipgate/faults/{id}", fault);
    guarded(router, Method::GET, "/_zipgate/clock", clock);
    guarded(router, Method::GET, "/_zipgate/openapi.json", openapi);
    guarded(router, Method::GET, "/_zipgate/metrics", metrics);
    guarded(router, Method::POST, "/_zipgate/clock/advance", advance);
}

/// Header that may carry the control token instead of `Authorization: Bearer`.
pub const TOKEN_HEADER: &str = "x-zipgate-control-token";

/// Mounts `handler` behind the Host and Origin rules, JSON-only bodies for
/// routes that change state, and the control token when one is configured.
/// The Host is checked first, so a page that got in by DNS rebinding does
/// not even learn whether a token is needed.
pub(super) fn guarded<F, Fut>(router: &mut Router, method: Method, path: &str, handler: F)
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let changes_state = method != Method::GET;
    router.add(method, path, move |ctx: Ctx| -> BoxFuture {
        if let Some(response) = ctx.state.guard.check(&ctx.req) {
            return Box::pin(async move { response });
        }
        match &ctx.state.config.control_token {
            Some(token) if !presents(&ctx, token) => {
                let mut response = h::json_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    format!(
                        "the control plane needs its token: `Authorization: Bearer <token>` or `{TOKEN_HEADER}: <token>`"
                    ),
                );
                response.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer realm=\"zipgate control\""),
                );
                Box::pin(async move { response })
            }
            _ => match changes_state.then(|| super::guard::json_only(&ctx.req)) {
                Some(Some(response)) => Box::pin(async move { response }),
                _ => Box::pin(handler(ctx)),
            },
        }
    });
}

/// Whether the request carries the token, as a bearer token or in
/// [`TOKEN_HEADER`]; either will do, so a harness whose HTTP client sends a
/// vendor user's `Authorization` on every request can still use the header.
fn presents(ctx: &Ctx, token: &str) -> bool {
    let headers = ctx.req.headers();
    let bearer = match zipgate_api::http::bearer(headers) {
        zipgate_api::http::Credentials::Bearer(t) => Some(t),
        _ => None,
    };
    let header = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok());
    // Compared without an early exit, so timing does not reveal a prefix.
    let same = |given: &str| {
        given.len() == token.len()
            && given
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    };
    bearer.is_some_and(same) | header.is_some_and(same)
}

/// A path parameter, percent-decoded (a Box job id holds `=`, which a
/// client may send as `%3D`).
fn param(ctx: &Ctx, name: &str) -> String {
    zipgate_api::dialect::percent_decode(ctx.params.get(name).map_or("", String::as_str))
}

use crate::jobs::view::{job_view, time, JobView};

fn control_error(e: &ControlError) -> Response<Body> {
    match e {
        ControlError::Fixture(e) => fixture_error(e),
        ControlError::Jobs(e) => error_response(e),
    }
}

fn fixture_error(e: &FixtureError) -> Response<Body> {
    h::json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": "invalid_fixture", "message": e.to_string(), "path": e.path}),
    )
}

async fn body_json(ctx: Ctx) -> Result<(std::sync::Arc<super::AppState>, Value), Response<Body>> {
    let state = ctx.state;
    let limit = state.config.max_body_bytes.max(64 << 20);
    let bytes = h::read_body(ctx.req.into_body(), limit, state.config.body_timeout)
        .await
        .map_err(|e| match e {
            h::BodyError::TooLarge(_) => h::json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            ),
            h::BodyError::Io(_) => {
                h::json_error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string())
            }
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
    match state.put_fixture(json) {
        Ok(()) => h::json_response(StatusCode::OK, &counts(&state)),
        Err(e) => control_error(&e),
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
    let request: AddNodes = match crate::strict_json::from_value(&json) {
        Ok(request) => request,
        Err(e) => {
            return h::json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                crate::strict_json::message(&e),
            )
        }
    };
    match state.put_nodes(request.parent.as_deref(), request.nodes) {
        Ok(()) => h::json_response(StatusCode::OK, &counts(&state)),
        Err(e) => control_error(&e),
    }
}

async fn reset(ctx: Ctx) -> Response<Body> {
    match ctx.state.reset() {
        Ok(()) => h::json_response(StatusCode::OK, &counts(&ctx.state)),
        Err(e) => control_error(&e),
    }
}

async fn jobs(ctx: Ctx) -> Response<Body> {
    let list = match ctx.state.jobs.list() {
        Ok(list) => list,
        Err(e) => return error_response(&e),
    };
    #[derive(Serialize)]
    struct Listing<'a> {
        jobs: Vec<JobView<'a>>,
    }
    let jobs = Listing {
        jobs: list.iter().map(job_view).collect(),
    };
    h::json_response(StatusCode::OK, &jobs)
}

async fn job(ctx: Ctx) -> Response<Body> {
    let id = param(&ctx, "id");
    match ctx.state.jobs.get(&id) {
        Ok(Some(job)) => h::json_response(StatusCode::OK, &job_view(&job)),
        Ok(None) => h::json_error(StatusCode::NOT_FOUND, "not_found", format!("no job {id:?}")),
        Err(e) => error_response(&e),
    }
}

/// The job's archive written down as data: every entry with its method,
/// mtime and where its bytes come from, and the exact length. What a
/// replica sharing the job rebuilds the same bytes from.
async fn job_plan(ctx: Ctx) -> Response<Body> {
    let id = param(&ctx, "id");
    let archive = match ctx.state.jobs.archive(&id) {
        Ok(Some(archive)) => archive,
        Ok(None) => {
            return h::json_error(StatusCode::NOT_FOUND, "not_found", format!("no job {id:?}"))
        }
        Err(e) => return error_response(&e),
    };
    match crate::archive_plan::ArchivePlan::of(&archive) {
        Ok(plan) => h::json_response(StatusCode::OK, &plan),
        Err(error) => h::json_error(StatusCode::CONFLICT, "not_plannable", error.to_string()),
    }
}

/// The query parameters `GET /_zipgate/requests` knows.
const REQUEST_FILTERS: [&str; 7] = [
    "dialect",
    "method",
    "path_prefix",
    "status",
    "after",
    "limit",
    "reveal",
];

/// The journal, oldest first; filters `dialect`, `method`, `path_prefix`,
/// `status`, and `after` (an id) with `limit` to page; `reveal=true` shows
/// Authorization and Cookie values.
async fn requests(ctx: Ctx) -> Response<Body> {
    let query = zipgate_api::dialect::query_pairs(ctx.req.uri().query().unwrap_or(""));
    // A misspelt filter would list everything and let a test pass by accident.
    if let Some((unknown, _)) = query
        .iter()
        .find(|(k, _)| !REQUEST_FILTERS.contains(&k.as_str()))
    {
        return h::json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "unknown parameter {unknown:?}: the filters are {}",
                REQUEST_FILTERS.join(", ")
            ),
        );
    }
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    fn number<T: std::str::FromStr>(
        name: &str,
        value: Option<String>,
    ) -> Result<Option<T>, String> {
        value
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| format!("{name}: expected a number"))
            })
            .transpose()
    }
    let numbers = (
        number::<u16>("status", get("status")),
        number::<u64>("after", get("after")),
        number::<usize>("limit", get("limit")),
    );
    let (status, after, limit) = match numbers {
        (Ok(status), Ok(after), Ok(limit)) => (status, after, limit),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return h::json_error(StatusCode::BAD_REQUEST, "invalid_request", e)
        }
    };
    let filter = Filter {
        // Dialect names are lower case; methods already match in any case.
        dialect: get("dialect").map(|d| d.to_ascii_lowercase()),
        method: get("method"),
        path_prefix: get("path_prefix"),
        status,
        after,
        limit,
    };
    let reveal = get("reveal").as_deref() == Some("true");
    let upto = ctx.state.journal.last_id();
    let listing = JournalListing {
        state: ctx.state.clone(),
        first_after: filter.after.unwrap_or(0),
        filter,
        upto,
        reveal,
        started: false,
        done: false,
    };
    let mut response = Response::new(http_body_util::BodyExt::boxed(listing));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// `{"requests":[…]}` written a page of entries at a time: only one page is
/// copied out of the journal and serialised at once, so listing a full
/// journal costs a page of memory, not the journal again (twice).
struct JournalListing {
    state: std::sync::Arc<super::AppState>,
    /// `after` moves past each page; `limit` counts down.
    filter: Filter,
    /// Entries recorded after the listing began are left for the next one.
    upto: u64,
    reveal: bool,
    /// The `after` the caller asked for: past it, an entry has been written.
    first_after: u64,
    started: bool,
    done: bool,
}

/// Entries per page of a listing.
const LISTING_PAGE: usize = 64;

impl http_body::Body for JournalListing {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.done {
            return std::task::Poll::Ready(None);
        }
        let mut out = Vec::with_capacity(16 * 1024);
        if !this.started {
            out.extend_from_slice(b"{\"requests\":[");
        }
        let page = this
            .state
            .journal
            .page(&this.filter, this.upto, LISTING_PAGE);
        for entry in &page {
            if this
                .filter
                .after
                .is_some_and(|after| after > this.first_after)
            {
                out.push(b',');
            }
            // Writing to a Vec cannot fail, and every view field serialises.
            let _ = serde_json::to_writer(
                &mut out,
                &entry.view(this.reveal, this.state.journal.replica()),
            );
            this.filter.after = Some(entry.id);
        }
        this.started = true;
        if let Some(limit) = this.filter.limit.as_mut() {
            *limit -= page.len();
        }
        if page.len() < LISTING_PAGE || this.filter.limit == Some(0) {
            // The cursor for the next page: the last id listed when more
            // entries match (one more lookup), else null, so a client
            // never needs an empty request to learn it is at the end.
            let probe = Filter {
                limit: None,
                ..this.filter.clone()
            };
            let more = !this.state.journal.page(&probe, this.upto, 1).is_empty();
            let next = this.filter.after.filter(|_| more);
            out.extend_from_slice(b"],\"next_after\":");
            let _ = serde_json::to_writer(&mut out, &next);
            out.extend_from_slice(b"}\n");
            this.done = true;
        }
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(out.into()))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

async fn clear_requests(ctx: Ctx) -> Response<Body> {
    ctx.state.journal.clear();
    h::json_response(StatusCode::OK, &json!({ "requests": [] }))
}

fn fault_list(state: &super::AppState) -> Value {
    json!({ "faults": state.faults.list() })
}

/// Adds one rule (answers with it, as listed) or several (answers with the list).
async fn add_faults(ctx: Ctx) -> Response<Body> {
    let (state, json) = match body_json(ctx).await {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    let single = !json.is_array() && json.get("faults").is_none();
    let dialects: Vec<&str> = state.dialects.iter().map(|d| d.name()).collect();
    let rules = match crate::faults::parse_rules_for(&json, Some(&dialects)) {
        Ok(rules) => rules,
        Err(e) => return h::json_error(StatusCode::BAD_REQUEST, "invalid_fault", e),
    };
    let added = match state.add_faults(rules) {
        Ok(added) => added,
        Err(e @ crate::faults::AddError::Full { .. }) => {
            return h::json_error(StatusCode::BAD_REQUEST, "too_many_faults", e.to_string())
        }
        Err(crate::faults::AddError::Unavailable(why)) => {
            return error_response(&zipgate_api::Error::Unavailable(why))
        }
        Err(e) => return h::json_error(StatusCode::BAD_REQUEST, "invalid_fault", e.to_string()),
    };
    let body = match (single, added.as_slice()) {
        (true, [view]) => json!(view),
        _ => json!({ "faults": added }),
    };
    h::json_response(StatusCode::CREATED, &body)
}

async fn list_faults(ctx: Ctx) -> Response<Body> {
    h::json_response(StatusCode::OK, &fault_list(&ctx.state))
}

async fn clear_faults(ctx: Ctx) -> Response<Body> {
    match ctx.state.clear_faults() {
        Ok(()) => h::json_response(StatusCode::OK, &fault_list(&ctx.state)),
        Err(e) => control_error(&e),
    }
}

async fn fault(ctx: Ctx) -> Response<Body> {
    let id = param(&ctx, "id");
    match ctx.state.faults.get(&id) {
        Some(view) => h::json_response(StatusCode::OK, &view),
        None => h::json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no fault rule {id:?}"),
        ),
    }
}

async fn remove_fault(ctx: Ctx) -> Response<Body> {
    let id = param(&ctx, "id");
    match ctx.state.remove_fault(&id) {
        Ok(true) => h::json_response(StatusCode::OK, &fault_list(&ctx.state)),
        Ok(false) => h::json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no fault rule {id:?}"),
        ),
        Err(e) => control_error(&e),
    }
}

/// Prometheus' text format (`src/metrics.rs`), with the gauges read now.
async fn metrics(ctx: Ctx) -> Response<Body> {
    let state = &ctx.state;
    let text = state.metrics.render(&crate::metrics::Gauges {
        active_streams: state.streams.active() as u64,
        connections: state.connections.live() as u64,
        // A job store that cannot be reached leaves the job series out
        // (absent, as Prometheus reads a target's missing series), not at 0.
        jobs: state.jobs.counts().unwrap_or_default(),
    });
    let mut response = Response::new(h::full(text));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The control plane described in OpenAPI 3.1 (`docs/openapi.json`, kept
/// true by a schemathesis run in the test suite: `tests/openapi.rs`).
const OPENAPI: &str = include_str!("../../docs/openapi.json");

async fn openapi(_ctx: Ctx) -> Response<Body> {
    let mut response = Response::new(h::full(OPENAPI));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
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
    let advance = match crate::strict_json::from_value::<Advance>(&json) {
        Ok(a) if a.seconds.is_finite() && a.seconds >= 0.0 => a,
        Ok(_) => {
            return h::json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "seconds: must be a number >= 0",
            )
        }
        Err(e) => {
            return h::json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                crate::strict_json::message(&e),
            )
        }
    };
    if let Err(e) = state.advance_clock(Duration::milliseconds((advance.seconds * 1000.0) as i64)) {
        return control_error(&e);
    }
    let now = json!({"now": time(state.clock.now())});
    state.events.publish("clock", || now.to_string());
    h::json_response(StatusCode::OK, &now)
}
