//! One request from arrival to the last byte: journal it, match the fault
//! rules, route it (a dialect's handler, the owning vendor's 404/405, or
//! zipgate's own), shape the body, and write the access-log line when the
//! body ends.

use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use ::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use zipgate_api::{DialectRequest, Mounted};

use super::http::{json_error, Body};
use super::router::{Ctx, Found, Router};
use super::shaping;
use crate::core::ServerCore;
use crate::faults::{Decision, RequestFacts};
use crate::state::AppState;
use crate::stream::CutOnCancel;

pub(super) async fn dispatch(
    state: Arc<AppState>,
    router: Arc<Router>,
    req: Request<Incoming>,
    reset: Arc<AtomicBool>,
) -> Response<AccessLogged> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // Vendor routes are journaled and may carry faults; zipgate's own are not.
    let vendor = !path.starts_with("/_zipgate/");
    // The dialect that answers for this path, looked up once.
    let owner = if vendor { router.owner_of(&path) } else { None };
    let dialect = owner.as_ref().map(|d| d.name());
    let journal = if vendor {
        state.journal.record(
            state.clock.now(),
            dialect,
            &method,
            req.uri(),
            req.headers(),
        )
    } else {
        None
    };
    // CORS for a browser on an origin `--cors` names (vendor routes only).
    let cors = match (&owner, req.headers().get(header::ORIGIN)) {
        (Some(owner), Some(origin)) if !state.config.cors.is_empty() => origin
            .to_str()
            .ok()
            .filter(|origin| super::cors::allowed(&state.config.cors, origin))
            .map(|origin| (origin.to_owned(), owner.cors())),
        _ => None,
    };
    let preflight = cors.is_some()
        && method == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    // A preflight is the browser's, not the client's: no fault rule
    // counts it (a `times: 1` rule is left for the request that follows).
    let fault = if vendor && !preflight && !state.faults.is_empty() {
        decide_fault(&state, owner.as_ref(), &req)
    } else {
        None
    };
    if let (Some(id), Some(fault)) = (journal, &fault) {
        state.journal.set_faults(id, &fault.rules);
    }
    if let Some(delay) = fault.as_ref().and_then(|f| f.delay) {
        tokio::time::sleep(delay).await;
    }
    // Labels for the metrics: no id ever becomes one.
    let label: &'static str = match (vendor, dialect) {
        (false, _) => "zipgate",
        (true, Some(name)) => name,
        (true, None) => "none",
    };
    if fault.is_some() {
        state.metrics.fault_fired(label);
    }
    let found = router.find(&method, &path);
    let route = match &found {
        Found::Route(_, _, pattern) => pattern.clone(),
        _ => unmatched(),
    };
    let response = match (&fault, found) {
        // Answered before any fault or route: a preflight reaches no handler.
        (_, found) if preflight => {
            let (origin, rules) = cors.as_ref().expect("checked above");
            let methods = match found {
                Found::MethodNotAllowed(methods) => methods,
                _ => Vec::new(),
            };
            super::cors::preflight(rules, origin, req.headers(), &methods)
        }
        (
            Some(Decision {
                respond: Some(respond),
                ..
            }),
            _,
        ) => {
            let request = bodiless(req, &state);
            let status =
                StatusCode::from_u16(respond.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = respond.message.as_deref();
            let mut response = match &owner {
                Some(owner) => owner.status_response(
                    status,
                    message,
                    &request,
                    &ServerCore::new(state.clone(), owner.clone()),
                ),
                None => json_error(
                    status,
                    "injected_fault",
                    message.unwrap_or("an injected fault").to_owned(),
                ),
            };
            for (name, value) in &respond.headers {
                if let (Ok(name), Ok(value)) = (
                    header::HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        (_, Found::Route(handler, params, _)) => {
            handler(Ctx {
                req,
                params,
                state: state.clone(),
                journal,
                job_fault: fault.as_ref().and_then(|f| f.job.clone()),
            })
            .await
        }
        (_, found) => match owner {
            // Under a vendor's prefix, the vendor's own envelope answers.
            Some(dialect) => {
                let request = bodiless(req, &state);
                let core = ServerCore::new(state.clone(), dialect.clone());
                match found {
                    Found::MethodNotAllowed(allowed) => {
                        dialect.method_not_allowed(&request, &allowed, &core)
                    }
                    _ => dialect.not_found(&request, &core),
                }
            }
            None => native_fallback(found, &method, &path),
        },
    };
    let (mut parts, mut body) = response.into_parts();
    if let (Some((origin, rules)), false) = (&cors, preflight) {
        super::cors::decorate(rules, origin, &mut parts.headers);
    }
    if let Some(fault) = &fault {
        if let Some(rate) = fault.throttle_bytes_per_sec {
            body = shaping::throttled(body, rate);
        }
        if let Some(cut) = fault.cut {
            body = shaping::cut(body, cut, reset);
        }
    }
    // Outermost: a download whose job is cancelled is cut even while a
    // throttle holds its next piece.
    if let Some(CutOnCancel(stop)) = parts.extensions.remove::<CutOnCancel>() {
        body = crate::stream::cut_on_cancel(body, stop);
    }
    let status = parts.status.as_u16();
    if let Some(id) = journal {
        state.journal.set_status(id, status);
        state.announce_request(id);
    }
    Response::from_parts(
        parts,
        AccessLogged {
            inner: body,
            method,
            path,
            status,
            bytes: 0,
            started,
            first_byte: None,
            label,
            route,
            state,
            complete: false,
            journal,
        },
    )
}

/// The `route` label of a request no route matched.
fn unmatched() -> Arc<str> {
    static UNMATCHED: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    UNMATCHED.get_or_init(|| Arc::from("unmatched")).clone()
}

/// A request handed to a dialect without its body (fallbacks and faults do not read it).
fn bodiless(req: Request<Incoming>, state: &AppState) -> DialectRequest {
    let (parts, _) = req.into_parts();
    let mut request = DialectRequest::new(parts.method, parts.uri, parts.headers, Bytes::new());
    request.public_url = state.config.public_url.as_deref().map(Arc::from);
    request.scheme = state.config.scheme();
    request
}

/// Counts the request against the fault rules; what fires, if anything.
/// A rule on `user` asks the owning dialect who the request is from, the way
/// its handlers do (`Dialect::principal`), so the two cannot disagree.
fn decide_fault(
    state: &Arc<AppState>,
    owner: Option<&Arc<dyn Mounted>>,
    req: &Request<Incoming>,
) -> Option<Decision> {
    let user = match owner {
        Some(owner) if state.faults.needs_user() => {
            let mut request = DialectRequest::new(
                req.method().clone(),
                req.uri().clone(),
                req.headers().clone(),
                Bytes::new(),
            );
            request.public_url = state.config.public_url.as_deref().map(Arc::from);
            request.scheme = state.config.scheme();
            owner.principal(
                &request,
                &ServerCore::new(state.clone(), owner.clone()).look_only(true),
            )
        }
        _ => None,
    };
    state.faults.decide(&RequestFacts {
        dialect: owner.map(|d| d.name()),
        method: req.method().as_str(),
        path: req.uri().path(),
        user: user.as_ref().map(|u| (u.id.0.as_str(), u.login.as_str())),
    })
}

fn native_fallback(found: Found, method: &Method, path: &str) -> Response<Body> {
    match found {
        Found::MethodNotAllowed(allowed) => {
            let allow = allowed
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let mut response = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{path} does not accept {method}; it accepts {allow}"),
            );
            if let Ok(value) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
        _ => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {method} {path}"),
        ),
    }
}

/// Wraps every response body and writes the access-log line when the body
/// is done or dropped, so streamed downloads log their real size and time.
pub struct AccessLogged {
    inner: Body,
    method: Method,
    path: String,
    status: u16,
    bytes: u64,
    started: Instant,
    /// When the first body byte was handed on.
    first_byte: Option<std::time::Duration>,
    /// The metrics' dialect and route labels.
    label: &'static str,
    route: Arc<str>,
    /// For the metrics and the journal entry's bytes.
    state: Arc<AppState>,
    complete: bool,
    journal: Option<u64>,
}

impl http_body::Body for AccessLogged {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                    if self.first_byte.is_none() && !data.is_empty() {
                        self.first_byte = Some(self.started.elapsed());
                    }
                }
            }
            Poll::Ready(None) => self.complete = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AccessLogged {
    fn drop(&mut self) {
        if let Some(id) = self.journal {
            self.state.journal.set_bytes_sent(id, self.bytes);
            self.state.announce_request(id);
        }
        let complete = self.complete || self.inner.is_end_stream();
        let total = self.started.elapsed();
        self.state.metrics.observe(&crate::metrics::Observed {
            dialect: self.label,
            route: &self.route,
            method: &self.method,
            status: self.status,
            bytes: self.bytes,
            total,
            // A body with no bytes: its first byte is its end.
            first_byte: self.first_byte.unwrap_or(total),
        });
        tracing::info!(
            target: "zipgate::access",
            method = %self.method,
            path = %self.path,
            status = self.status,
            bytes = self.bytes,
            ms = format_args!("{:.2}", total.as_secs_f64() * 1000.0),
            complete,
        );
    }
}
