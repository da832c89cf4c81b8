//! The dashboard (`/_zipgate/ui`: one page, its script and style, embedded)
//! and the live feed it reads (`/_zipgate/events`, Server-Sent Events).
//!
//! The page's three files need no token (they hold no data; the page asks
//! for the token and sends it on every call it makes), but the Host and
//! Origin rules of the control plane apply to them as to everything under
//! `/_zipgate/`. They are served with a Content-Security-Policy that allows
//! only same-origin scripts, styles and connections, so nothing a request
//! put in the journal can run in the page even if the page slipped.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::http::Body;
use super::router::{Ctx, Router};
use crate::events::{Event, Subscription};

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");
/// Linked from the page, so a browser does not ask for `/favicon.ico`,
/// which would land in the vendor journal as a 404.
const FAVICON: &str = include_str!("ui/favicon.svg");

/// Same-origin only: no inline script or style, no plugins, no framing.
pub const CSP: &str = "default-src 'self'; base-uri 'none'; form-action 'none'; \
                       frame-ancestors 'none'; object-src 'none'";

/// A comment line this often keeps proxies and the page's liveness check
/// from taking a quiet stream for a dead one.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn mount(router: &mut Router) {
    page(
        router,
        "/_zipgate/ui",
        INDEX_HTML,
        "text/html; charset=utf-8",
    );
    page(
        router,
        "/_zipgate/ui/app.js",
        APP_JS,
        "text/javascript; charset=utf-8",
    );
    page(
        router,
        "/_zipgate/ui/app.css",
        APP_CSS,
        "text/css; charset=utf-8",
    );
    page(router, "/_zipgate/ui/favicon.svg", FAVICON, "image/svg+xml");
    super::control::guarded(router, Method::GET, "/_zipgate/events", events);
}

fn page(router: &mut Router, path: &str, text: &'static str, content_type: &'static str) {
    router.add(Method::GET, path, move |ctx: Ctx| async move {
        if let Some(refused) = ctx.state.guard.check(&ctx.req) {
            return refused;
        }
        let response = Response::new(super::http::full(Bytes::from_static(text.as_bytes())));
        with_headers(
            response,
            &[
                (http::header::CONTENT_TYPE, content_type),
                (http::header::CONTENT_SECURITY_POLICY, CSP),
                (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (http::header::REFERRER_POLICY, "no-referrer"),
                // A new binary brings a new page: never a stale script from cache.
                (http::header::CACHE_CONTROL, "no-cache"),
            ],
        )
    });
}

fn with_headers(
    mut response: Response<Body>,
    headers: &[(http::header::HeaderName, &'static str)],
) -> Response<Body> {
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name.clone(), HeaderValue::from_static(value));
    }
    response
}

/// `GET /_zipgate/events`: `hello` (the server instance and the last event
/// id), then what the client missed since its `Last-Event-ID` (or
/// `resync`: reload everything), then live events until the client leaves
/// or the server stops; a client that falls too far behind is told
/// `resync` and goes on.
async fn events(ctx: Ctx) -> Response<Body> {
    let last_event_id = ctx
        .req
        .headers()
        .get("last-event-id")
        .map(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()));
    let mut subscription = ctx.state.events.subscribe(last_event_id.flatten());
    if last_event_id == Some(None) {
        // An unreadable id is answered like one from the past: reload.
        subscription.resync = true;
        subscription.backlog.clear();
    }
    let first = opening(&subscription, last_event_id.is_some());
    let stream =
        futures_util::stream::unfold((Some(first), subscription), |(first, mut sub)| async move {
            if let Some(first) = first {
                return Some((Ok(http_body::Frame::data(first)), (None, sub)));
            }
            let next = next_frames(&mut sub).await?;
            Some((Ok(http_body::Frame::data(next)), (None, sub)))
        });
    let mut response = Response::new(BodyExt::boxed(http_body_util::StreamBody::new(stream)));
    *response.status_mut() = StatusCode::OK;
    with_headers(
        response,
        &[
            (http::header::CONTENT_TYPE, "text/event-stream"),
            (http::header::CACHE_CONTROL, "no-store"),
        ],
    )
}

/// The first chunk: the reconnect delay, `hello`, then `resync` or the
/// backlog. A client that resumes gets `hello` without an id (its own last
/// id stays until the backlog moves it); a fresh or resyncing one, which
/// loads the state now, gets the current last id with it.
fn opening(sub: &Subscription, resuming: bool) -> Bytes {
    let hello = serde_json::json!({"instance": sub.instance, "last_id": sub.last_id});
    let mut out = String::from("retry: 1000\n");
    if resuming && !sub.resync {
        out.push_str(&format!("event: hello\ndata: {hello}\n\n"));
    } else {
        out.push_str(&format!(
            "event: hello\nid: {}\ndata: {hello}\n\n",
            sub.last_id
        ));
    }
    if sub.resync {
        out.push_str(&format!(
            "event: resync\nid: {}\ndata: {{}}\n\n",
            sub.last_id
        ));
    }
    for event in &sub.backlog {
        out.push_str(&event.frame());
    }
    Bytes::from(out)
}

/// The next live events (as many as are waiting, up to 64, in one chunk),
/// or a keep-alive; `None` ends the stream.
async fn next_frames(sub: &mut Subscription) -> Option<Bytes> {
    if *sub.closed.borrow() {
        return None;
    }
    let mut received: Result<Arc<Event>, RecvError> = tokio::select! {
        received = sub.live.recv() => received,
        _ = sub.closed.changed() => return None,
        () = tokio::time::sleep(KEEP_ALIVE) => return Some(Bytes::from_static(b": keep-alive\n\n")),
    };
    let mut out = String::new();
    let mut lagged = false;
    let mut sent = 0;
    loop {
        match received {
            Ok(event) => {
                if lagged {
                    // Too slow: what it missed has left the channel (never
                    // waited for). It reloads, and goes on from here.
                    out.push_str(&format!(
                        "event: resync\nid: {}\ndata: {{}}\n\n",
                        event.id - 1
                    ));
                    lagged = false;
                }
                out.push_str(&event.frame());
                sent += 1;
            }
            Err(RecvError::Lagged(_)) => lagged = true,
            Err(RecvError::Closed) => return None,
        }
        if sent >= 64 && !lagged {
            break;
        }
        received = match sub.live.try_recv() {
            Ok(event) => Ok(event),
            Err(TryRecvError::Empty) if lagged => sub.live.recv().await,
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(TryRecvError::Closed) => return None,
        };
    }
    Some(Bytes::from(out))
}
