//! Real clients against zipgate, each a script under tests/clients/ that
//! exits 0 when all its checks pass: Box's official SDKs (Python `boxsdk`
//! 10.x and the legacy 3.x, Node `box-node-sdk` and `box-typescript-sdk-gen`),
//! ONLYOFFICE's DocSpace SDK (`docspace-api-sdk`), and clients written the way
//! ONLYOFFICE's Android app and DocSpace web client, an XML consumer and
//! Oracle's cec toolkit talk.
//! Pinned in tests/requirements.txt, tests/requirements-boxsdk3.txt (a venv of
//! its own, .venv-boxsdk3: both boxsdk lines are the distribution `boxsdk`),
//! tests/requirements-onlyoffice-pypi.txt (.venv-onlyoffice-pypi: PyPI's
//! Workspace clients `onlyoffice` and `pyonlyoffice`, whose requests<2.29
//! cannot join .venv) and tests/clients/package.json, installed by tests/run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use zipgate::{Server, ServerHandle};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn require(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run tests/run, which installs the clients",
        path.display()
    );
    path
}

fn python() -> PathBuf {
    require(root().join(".venv/bin/python"))
}

/// The venv with the legacy `boxsdk==3.14.0`.
fn legacy_python() -> PathBuf {
    require(root().join(".venv-boxsdk3/bin/python"))
}

/// The venv with PyPI's Workspace clients `onlyoffice==0.1.0` and
/// `pyonlyoffice==0.0.4`.
fn onlyoffice_pypi_python() -> PathBuf {
    require(root().join(".venv-onlyoffice-pypi/bin/python"))
}

fn node() -> PathBuf {
    require(root().join("tests/clients/node_modules/box-node-sdk"));
    PathBuf::from("node")
}

/// Node with `box-typescript-sdk-gen` installed next to the scripts.
fn typescript_node() -> PathBuf {
    require(root().join("tests/clients/node_modules/box-typescript-sdk-gen"));
    PathBuf::from("node")
}

async fn run_client(server: ServerHandle, program: PathBuf, script: &str) {
    run_client_args(server, program, script, &[]).await;
}

/// `run_client` with arguments after BASE_URL.
async fn run_client_args(server: ServerHandle, program: PathBuf, script: &str, args: &[&str]) {
    let url = server.url();
    let script = root().join("tests/clients").join(script);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .arg(&script)
            .arg(&url)
            .args(&args)
            .output()
    })
    .await
    .unwrap()
    .expect("the client runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "client failed:\n{text}");
    println!("{text}");
}

async fn onlyoffice(flavour: &str) -> ServerHandle {
    Server::builder()
        .setting("onlyoffice", "flavour", flavour)
        .spawn()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn box_python_sdk() {
    run_client(common::start_default().await, python(), "box_python.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn box_node_sdk() {
    run_client(common::start_default().await, node(), "box_node.js").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn box_legacy_python_sdk() {
    run_client(
        common::start_default().await,
        legacy_python(),
        "box_legacy_python.py",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn box_typescript_sdk() {
    run_client(
        common::start_default().await,
        typescript_node(),
        "box_typescript.js",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onlyoffice_workspace_as_the_android_app_talks() {
    run_client(
        onlyoffice("workspace").await,
        python(),
        "onlyoffice_android.py",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onlyoffice_workspace_in_xml() {
    run_client(onlyoffice("workspace").await, python(), "onlyoffice_xml.py").await;
}

/// PyPI's Workspace clients `onlyoffice` and `pyonlyoffice` fetch the archive
/// at their own `filehandler.ashx?action=bulk&ext=.zip`, never the operation's
/// url. A v12 portal (the default) answers that link with an empty 404, which
/// both write out as an empty file while `download` returns True.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onlyoffice_workspace_pypi_clients_get_the_v12_404() {
    run_client(
        onlyoffice("workspace").await,
        onlyoffice_pypi_python(),
        "onlyoffice_pypi.py",
    )
    .await;
}

/// The same clients against `bulk_link_v11=true`: a v11 portal serves the
/// newest archive at the legacy link, and both get the zip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onlyoffice_workspace_pypi_clients_on_a_v11_portal() {
    let server = Server::builder()
        .setting("onlyoffice", "flavour", "workspace")
        .setting("onlyoffice", "bulk_link_v11", "true")
        .spawn()
        .await
        .unwrap();
    run_client_args(
        server,
        onlyoffice_pypi_python(),
        "onlyoffice_pypi.py",
        &["v11"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onlyoffice_docspace_python_sdk() {
    run_client(
        onlyoffice("docspace").await,
        python(),
        "onlyoffice_docspace.py",
    )
    .await;
}

/// DocSpace's own web client (DocSpace-client's axios `api/2.0` client, the
/// `asc_auth_key` cookie): the Download dialog's and multi-select's
/// bulkdownload, the fileops poll, the archive url; a stale cookie is a guest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onlyoffice_docspace_web_client_sequence() {
    require(root().join("tests/clients/node_modules/axios"));
    run_client(
        onlyoffice("docspace").await,
        PathBuf::from("node"),
        "onlyoffice_docspace_web.js",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_as_the_cec_toolkit_talks() {
    run_client(common::start_default().await, python(), "oracle_cec.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn itslearning_as_the_typescript_sdk_talks() {
    require(root().join("tests/clients/node_modules/axios-itslearning-sdk"));
    run_client(
        common::start_default().await,
        PathBuf::from("node"),
        "itslearning_axios.js",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn itslearning_in_xml() {
    run_client(
        common::start_default().await,
        python(),
        "itslearning_xml.py",
    )
    .await;
}

#[tokio::test]
async fn dropbox_python_sdk() {
    run_client(common::start_default().await, python(), "dropbox_python.py").await;
}

/// The cec toolkit's own request layer: its `exeo`/`exeg`/`exed` requests
/// through node-fetch 2.7.0, the version the toolkit pins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_as_the_cec_toolkit_talks_through_node_fetch() {
    require(root().join("tests/clients/node_modules/node-fetch"));
    run_client(
        common::start_default().await,
        PathBuf::from("node"),
        "oracle_cec.js",
    )
    .await;
}
