//! Real clients against zipgate, each a script under tests/clients/ that
//! exits 0 when all its checks pass: Box's official SDKs (Python `boxsdk`
//! 10.x and the legacy 3.x, Node `box-node-sdk` and `box-typescript-sdk-gen`),
//! ONLYOFFICE's DocSpace SDK (`docspace-api-sdk`), and clients written the way
//! ONLYOFFICE's Android app, an XML consumer and Oracle's cec toolkit talk.
//! Pinned in tests/requirements.txt, tests/requirements-boxsdk3.txt (a venv of
//! its own, .venv-boxsdk3: both boxsdk lines are the distribution `boxsdk`) and
//! tests/clients/package.json, installed by tests/run.

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
    let url = server.url();
    let script = root().join("tests/clients").join(script);
    let output =
        tokio::task::spawn_blocking(move || Command::new(&program).arg(&script).arg(&url).output())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onlyoffice_docspace_python_sdk() {
    run_client(
        onlyoffice("docspace").await,
        python(),
        "onlyoffice_docspace.py",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_as_the_cec_toolkit_talks() {
    run_client(common::start_default().await, python(), "oracle_cec.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn itslearning_as_the_typescript_sdk_talks() {
    require(root().join("tests/clients/node_modules/axios"));
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
