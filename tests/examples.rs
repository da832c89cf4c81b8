//! The examples a newcomer copies: `examples/in_process.rs` (Rust) and
//! `examples/pytest/test_box_client.py` run and pass, and the README shows
//! both exactly as they are here.

use std::path::{Path, PathBuf};
use std::process::Command;

const RUST_EXAMPLE: &str = "examples/in_process.rs";
const PYTEST_EXAMPLE: &str = "examples/pytest/test_box_client.py";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `cargo test` builds the examples beside the test binaries.
fn example_binary(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let target = deps.parent().unwrap().parent().unwrap();
    let path = target.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: cargo test builds it",
        path.display()
    );
    path
}

#[test]
fn the_rust_example_runs() {
    let output = Command::new(example_binary("in_process"))
        .output()
        .expect("the example runs");
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("a 429, then a zip with 2 entries"), "{text}");
}

/// `.venv`'s pytest on `path` with the debug zipgate; the count passed.
fn pytest(path: &str) -> usize {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/run, which installs pytest, the Box SDK and \
         ./python/pytest-zipgate",
        python.display()
    );
    let output = Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", path])
        .current_dir(root())
        .env("ZIPGATE", env!("CARGO_BIN_EXE_zipgate"))
        .output()
        .expect("pytest runs");
    let text = output_text(&output);
    // pytest fails on any failed or erroring test, and when it collects none.
    assert!(output.status.success(), "{text}");
    text.split(" passed")
        .next()
        .and_then(|before| before.rsplit([' ', '\n']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of passed tests: {text}"))
}

#[test]
fn the_pytest_example_passes() {
    let source = std::fs::read_to_string(root().join(PYTEST_EXAMPLE)).unwrap();
    let tests = source.matches("\ndef test_").count();
    assert_eq!(
        pytest(PYTEST_EXAMPLE),
        tests,
        "every test in the example ran"
    );
}

/// The plugin's own tests: a session server, resets, seeding, faults, the
/// journal, the clock, finding the binary, the token (inner sessions run
/// with pytester).
#[test]
fn the_pytest_plugins_own_tests_pass() {
    assert!(pytest("python/pytest-zipgate/tests") > 20);
}

#[test]
fn the_readme_shows_both_examples_verbatim() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for (path, fence) in [(RUST_EXAMPLE, "```rust\n"), (PYTEST_EXAMPLE, "```python\n")] {
        let code = std::fs::read_to_string(root().join(path)).unwrap();
        let block = format!("{fence}{code}```");
        assert!(
            readme.contains(&block),
            "README.md must show {path} verbatim in a {} block",
            fence.trim()
        );
    }
}
