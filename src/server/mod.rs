//! The HTTP server: accept loop, graceful shutdown, one access-log line per
//! request, dispatch through the router.

mod control;
pub mod cors;
mod dispatch;
pub mod guard;
pub mod http;
pub mod limit;
pub(crate) mod native;
pub mod router;
mod shaping;
pub mod tls;
mod ui;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::http::{Method, StatusCode};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use zipgate_api::{DialectRequest, Mounted};

use self::dispatch::dispatch;
use self::limit::{AcceptLog, Admission, ConnectionSlot};
use self::router::{Ctx, Router};
use self::shaping::ConnectionIo;
use crate::core::ServerCore;

pub use crate::config::{timeout_secs, Config, MAX_BODY_BYTES, MAX_TIMEOUT};
pub use crate::state::AppState;

pub fn routes(dialects: &[Arc<dyn Mounted>], config: &Config) -> Router {
    let mut router = Router::new();
    native::mount(&mut router);
    if config.control {
        control::mount(&mut router);
        ui::mount(&mut router);
    }
    let public_url: Option<Arc<str>> = config.public_url.as_deref().map(Arc::from);
    for dialect in dialects {
        for (method, pattern, handler) in dialect.routes() {
            let owner = dialect.clone();
            let public_url = public_url.clone();
            router.add(method, &pattern, move |ctx: Ctx| {
                let dialect = owner.clone();
                let handler = handler.clone();
                let public_url = public_url.clone();
                async move {
                    let config = &ctx.state.config;
                    let (limit, timeout) = (config.max_body_bytes, config.body_timeout);
                    let (parts, body) = ctx.req.into_parts();
                    let head = parts.method == Method::HEAD;
                    let body =
                        self::http::read_request_body(&parts.headers, body, limit, timeout).await;
                    if let (Some(id), Ok(bytes)) = (ctx.journal, &body) {
                        ctx.state.journal.set_body(id, bytes);
                    }
                    let request = DialectRequest {
                        method: parts.method,
                        uri: parts.uri,
                        headers: parts.headers,
                        body,
                        params: ctx.params,
                        public_url,
                        scheme: config.scheme(),
                    };
                    // What the vendor's 503 is written for, should a shared
                    // job store fail this request (kept only when one can).
                    let shared = config.jobs.is_remote();
                    let asked = shared.then(|| {
                        let mut asked = DialectRequest::new(
                            request.method.clone(),
                            request.uri.clone(),
                            request.headers.clone(),
                            bytes::Bytes::new(),
                        );
                        asked.params = request.params.clone();
                        asked.public_url = request.public_url.clone();
                        asked.scheme = request.scheme;
                        asked
                    });
                    let core = ServerCore::new(ctx.state, dialect.clone())
                        .with_job_fault(ctx.job_fault)
                        .look_only(head);
                    let response = handler(request, &core);
                    // In the vendor's own words for a 503: the cause is in
                    // the log (`zipgate::jobs`), not for the client.
                    match (core.outage(), asked) {
                        (Some(_), Some(asked)) => dialect.status_response(
                            StatusCode::SERVICE_UNAVAILABLE,
                            None,
                            &asked,
                            &core,
                        ),
                        _ => response,
                    }
                }
            });
            router.tag(&pattern, dialect.clone());
        }
        for prefix in dialect.prefixes() {
            router.fallback(prefix, dialect.clone());
            router.path_rules(prefix, dialect.path_rules());
        }
    }
    router
}

/// Serves until `shutdown` resolves, then lets in-flight responses run for
/// the configured grace period and cuts whatever is left. Connections run
/// as tasks of the runtime this is called on (any kind). Past
/// `max_connections` a connection is answered 503 and closed (`limit`).
pub async fn run(listener: TcpListener, state: Arc<AppState>, shutdown: impl Future<Output = ()>) {
    let connections = Connections::new(&state);
    let mut accept_log = AcceptLog::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => match state.connections.admit() {
                    Admission::Serve(slot) => connections.serve(socket, slot),
                    Admission::Full(refusal) => {
                        accept_log.turn_away(socket, refusal, &state.connections)
                    }
                },
                Err(error) => accept_log.failed(error).await,
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down; letting in-flight responses finish");
    state.stop_background();
    if connections.finish().await {
        tracing::info!("all connections closed");
    }
}

/// Serves on `workers` threads, each with a single-threaded runtime: this
/// task accepts and hands connections round-robin to the workers, and a
/// connection stays on its worker. No request crosses threads, so no worker
/// wakes the other, steals its tasks or frees into its malloc arena: Box
/// creates went from 64-71k to 79-84k req/s against the multi-threaded
/// runtime (wrk -t2 -c50 on 2 cores). Returns when every worker has finished
/// its connections after `shutdown`. The cap on connections is checked here,
/// before a connection is handed on, and a refusal is written by a task of
/// this runtime, so a full server costs the workers nothing.
pub async fn run_on_workers(
    listener: TcpListener,
    state: Arc<AppState>,
    workers: usize,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut queues = Vec::new();
    let mut threads = Vec::new();
    for n in 0..workers.max(1) {
        // A connection travels with its slot, so one dropped in the queue
        // (its worker gone) gives the slot back too.
        let (queue, mut sockets) =
            tokio::sync::mpsc::unbounded_channel::<(std::net::TcpStream, ConnectionSlot)>();
        let state = state.clone();
        let mut stopped = stopped.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        threads.push(
            std::thread::Builder::new()
                .name(format!("zipgate-worker-{n}"))
                .spawn(move || {
                    let closed = runtime.block_on(async move {
                        let connections = Connections::new(&state);
                        loop {
                            tokio::select! {
                                socket = sockets.recv() => match socket {
                                    Some((socket, slot)) => match tokio::net::TcpStream::from_std(socket) {
                                        Ok(socket) => connections.serve(socket, slot),
                                        Err(error) => tracing::warn!(%error, "cannot take a connection"),
                                    },
                                    None => break,
                                },
                                _ = stopped.wait_for(|stop| *stop) => break,
                            }
                        }
                        connections.finish().await
                    });
                    // Shutting the runtime down drops the responses still in
                    // flight after the grace, so their engine threads stop at
                    // their next block (a CRC pass included); one stuck in a
                    // slow read must not keep the process alive.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                    closed
                })?,
        );
        queues.push(queue);
    }
    tokio::pin!(shutdown);
    let mut next = 0;
    let mut accept_log = AcceptLog::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => match state.connections.admit() {
                    Admission::Serve(slot) => match socket.into_std() {
                        Ok(socket) => {
                            let _ = queues[next].send((socket, slot));
                            next = (next + 1) % queues.len();
                        }
                        Err(error) => tracing::warn!(%error, "cannot hand a connection on"),
                    },
                    Admission::Full(refusal) => {
                        accept_log.turn_away(socket, refusal, &state.connections)
                    }
                },
                Err(error) => accept_log.failed(error).await,
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down; letting in-flight responses finish");
    state.stop_background();
    let _ = stop.send(true);
    drop(queues);
    let all_closed = tokio::task::spawn_blocking(move || {
        // Every worker is joined, whatever the first ones answer.
        let closed: Vec<bool> = threads
            .into_iter()
            .map(|thread| thread.join().unwrap_or(false))
            .collect();
        closed.into_iter().all(|closed| closed)
    })
    .await
    .map_err(std::io::Error::other)?;
    if all_closed {
        tracing::info!("all connections closed");
    }
    Ok(())
}

/// The connections one runtime serves: each a task on that runtime, all
/// watched so they can be finished gracefully.
struct Connections {
    state: Arc<AppState>,
    router: Arc<Router>,
    builder: http1::Builder,
    graceful: GracefulShutdown,
}

impl Connections {
    fn new(state: &Arc<AppState>) -> Self {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(state.config.header_timeout);
        Connections {
            state: state.clone(),
            router: Arc::new(routes(&state.dialects, &state.config)),
            builder,
            graceful: GracefulShutdown::new(),
        }
    }

    /// Serves one connection on a task that holds its slot, so the slot
    /// comes back however the connection ends, a task dropped at shutdown
    /// included.
    fn serve(&self, socket: tokio::net::TcpStream, slot: ConnectionSlot) {
        let _ = socket.set_nodelay(true);
        let send_timeout = self.state.config.send_timeout;
        let state = self.state.clone();
        let router = self.router.clone();
        let service = move |reset: Arc<std::sync::atomic::AtomicBool>| {
            service_fn(move |req| {
                let state = state.clone();
                let router = router.clone();
                let reset = reset.clone();
                async move { Ok::<_, Infallible>(dispatch(state, router, req, reset).await) }
            })
        };
        let Some(tls) = self.state.config.tls.clone() else {
            let (io, reset) = ConnectionIo::new(socket, send_timeout);
            let connection = self.graceful.watch(
                self.builder
                    .serve_connection(TokioIo::new(io), service(reset)),
            );
            tokio::spawn(async move {
                let _slot = slot;
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "connection ended with an error");
                }
            });
            return;
        };
        // The handshake runs on the connection's task, within the header
        // timeout; the connection is watched for shutdown once it is HTTP.
        let watcher = self.graceful.watcher();
        let builder = self.builder.clone();
        let handshake_timeout = self.state.config.header_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let mut reset = None;
            let opened = |socket| {
                let (io, handle) = ConnectionIo::new(socket, send_timeout);
                reset = Some(handle);
                io
            };
            let tls::Accepted::Tls(stream) = tls.accept(socket, opened, handshake_timeout).await
            else {
                return;
            };
            let Some(reset) = reset else { return };
            let connection = builder.serve_connection(TokioIo::new(*stream), service(reset));
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }

    /// Lets in-flight responses run for the grace period, then cuts the
    /// rest; true when none had to be cut.
    async fn finish(self) -> bool {
        tokio::select! {
            () = self.graceful.shutdown() => true,
            () = tokio::time::sleep(self.state.config.shutdown_grace) => {
                tracing::warn!(grace = ?self.state.config.shutdown_grace, "cutting responses still in flight");
                false
            }
        }
    }
}
