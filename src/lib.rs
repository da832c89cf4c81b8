//! zipgate: one server that speaks several vendors' "download these files as
//! one zip" APIs over one neutral, streaming zip engine.
//!
//! Start it in-process from a test:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = zipgate::Server::builder().bind("127.0.0.1:0").spawn().await?;
//! println!("serving on {}", server.url());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod clock;
mod core;
pub mod dialects;
pub mod jobs;
pub mod journal;
pub mod packing;
pub mod planner;
pub mod server;
pub mod store;
pub mod zip;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use clock::{Clock, SystemClock};
use server::{AppState, Config};
use store::{FixtureError, FixtureSource};

pub use zipgate_api as api;

/// Builds and starts a server in the current tokio runtime.
pub struct Server;

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

#[derive(Default)]
pub struct ServerBuilder {
    fixture: Option<FixtureSource>,
    clock: Option<Arc<dyn Clock>>,
    config: Config,
    bind: Option<String>,
}

impl ServerBuilder {
    /// Serve this fixture document (JSON text) instead of the embedded default.
    pub fn fixtures_json(mut self, json: &str) -> Result<Self, FixtureError> {
        let source = FixtureSource::from_text(json, None)?;
        source.parse()?;
        self.fixture = Some(source);
        Ok(self)
    }

    /// Serve a fixture file; its `content.path` values are relative to it.
    pub fn fixtures_file(mut self, path: &Path) -> Result<Self, FixtureError> {
        let text = std::fs::read_to_string(path).map_err(|e| FixtureError {
            path: "$".into(),
            message: format!("{}: {e}", path.display()),
        })?;
        let source = FixtureSource::from_text(&text, path.parent().map(Path::to_path_buf))?;
        source.parse()?;
        self.fixture = Some(source);
        Ok(self)
    }

    /// A dialect setting, as `--set DIALECT.KEY=VALUE` gives it.
    pub fn setting(mut self, dialect: &str, key: &str, value: &str) -> Self {
        self.config
            .dialect_settings
            .entry(dialect.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Address to listen on; port 0 picks a free port. Default `127.0.0.1:0`.
    pub fn bind(mut self, addr: &str) -> Self {
        self.bind = Some(addr.to_owned());
        self
    }

    pub async fn spawn(self) -> std::io::Result<ServerHandle> {
        let fixture = self.fixture.unwrap_or_else(FixtureSource::embedded_default);
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let dialects =
            dialects::build(&self.config.dialect_settings).map_err(std::io::Error::other)?;
        let state = AppState::new(fixture, clock, self.config, dialects)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let state = Arc::new(state);
        let listener = TcpListener::bind(self.bind.as_deref().unwrap_or("127.0.0.1:0")).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        Ok(ServerHandle {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running server. Dropping it stops the server.
pub struct ServerHandle {
    addr: SocketAddr,
    state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Stops accepting, lets in-flight responses finish within the grace period.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
