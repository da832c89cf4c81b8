//! `pip install zipgate`: the wheel maturin builds from `pyproject.toml`
//! carries the binary; installed into a fresh venv it runs, and the pytest
//! plugin finds it there with neither `$ZIPGATE` nor `PATH` pointing at it.
//!
//! Built with the dev profile (`--profile dev`), so it reuses what the test
//! build already compiled instead of a release build; the platform tag is
//! plain `linux` because this build links the system's ISA-L (a published,
//! manylinux wheel is built without it: see `pyproject.toml`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::TempDir;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("the command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?}:\n{text}");
    text
}

#[test]
fn the_wheel_carries_the_binary_into_a_fresh_venv() {
    let maturin = root().join(".venv/bin/maturin");
    assert!(
        maturin.exists(),
        "run tests/run: it installs maturin into .venv"
    );
    let dir = TempDir::new("wheel");
    let out = dir.path().join("dist");
    let mut build = Command::new(&maturin);
    build
        .args(["build", "--profile", "dev", "--locked", "--offline"])
        .args(["--compatibility", "linux", "--out"])
        .arg(&out)
        .current_dir(root());
    // The variables `cargo test` sets for this process (`OUT_DIR` above
    // all) would look to ring's build like a changed environment: maturin's
    // cargo would rebuild ring and all that depends on it, and the suite's
    // next build would rebuild them back. Maturin's cargo gets the
    // environment the suite's own cargo had.
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if (name_text.starts_with("CARGO_") && name_text != "CARGO_HOME") || name_text == "OUT_DIR"
        {
            build.env_remove(&name);
        }
    }
    run(&mut build);
    let wheels: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    assert_eq!(wheels.len(), 1, "{wheels:?}");
    let name = wheels[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with(&format!("zipgate-{}-", env!("CARGO_PKG_VERSION"))),
        "{name}"
    );

    // A venv of its own with nothing but the wheel, filled by the suite's
    // pip (`--python`): a venv with its own pip takes 8 s to make.
    let venv = dir.path().join("venv");
    run(Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv));
    run(Command::new(root().join(".venv/bin/pip"))
        .arg("--python")
        .arg(venv.join("bin/python"))
        .args(["install", "-q", "--disable-pip-version-check", "--no-deps"])
        .arg(&wheels[0]));
    let installed = venv.join("bin/zipgate");
    let version = run(Command::new(&installed).arg("--version"));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");

    // What a pytest session does: find the binary (neither $ZIPGATE nor
    // PATH leads to it), start it, ask it something.
    let script = "\
from pytest_zipgate import find_binary
from pytest_zipgate.server import ZipgateServer
b = find_binary(environ={'PATH': '/nonexistent'})
print(b.source, b.path)
with ZipgateServer.start(b.path) as server:
    print(server.health()['status'])
";
    // The plugin from its source (it is stdlib-only; its install is
    // tested by tests/run, which installs it into .venv).
    let found = run(Command::new(venv.join("bin/python"))
        .args(["-c", script])
        .env("PYTHONPATH", root().join("python/pytest-zipgate/src"))
        .env_remove("ZIPGATE"));
    assert_eq!(
        found.lines().collect::<Vec<_>>(),
        [format!("scripts {}", installed.display()), "ok".to_string()],
        "the plugin finds the wheel's binary and runs it"
    );
}
