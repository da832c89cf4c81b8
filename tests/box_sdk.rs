//! Box's official SDKs against zipgate: Python `boxsdk` (module
//! `box_sdk_gen`) and Node `box-node-sdk`, pinned in tests/requirements.txt
//! and tests/clients/package.json and installed by tests/run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn require(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run tests/run, which installs the SDKs",
        path.display()
    );
    path
}

/// Runs a client script against a fresh server; the script exits 0 when all its checks pass.
async fn run_client(program: PathBuf, script: &str) {
    let server = common::start_default().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_creates_downloads_and_reads_status() {
    run_client(require(root().join(".venv/bin/python")), "box_python.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_sdk_creates_downloads_and_reads_status() {
    require(root().join("tests/clients/node_modules/box-node-sdk"));
    run_client(PathBuf::from("node"), "box_node.js").await;
}
