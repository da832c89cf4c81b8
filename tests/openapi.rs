//! `docs/openapi.json` describes the control plane as it is: the server
//! serves it at `/_zipgate/openapi.json`, and schemathesis (PyPI) sends
//! generated requests from it to a live server, checking every answer's
//! status, content type and schema, that nothing answers 5xx, that invalid
//! input is refused, and (with a token) that requests without one are.

mod common;

use std::path::Path;
use std::process::Command;

use common::serve_binary_env;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_served_description_is_the_file_and_schemathesis_finds_nothing() {
    let token = "openapi-test-token";
    let running = serve_binary_env(&[], &[("ZIPGATE_CONTROL_TOKEN", token)]);
    let file = std::fs::read_to_string(root().join("docs/openapi.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&file).expect("valid JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/run, which installs schemathesis",
        python.display()
    );
    let served = Command::new(&python)
        .args([
            "-c",
            "import sys, urllib.request as u; r = u.Request(sys.argv[1], headers={'Authorization': 'Bearer ' + sys.argv[2]}); sys.stdout.write(u.urlopen(r).read().decode())",
            &format!("http://{}/_zipgate/openapi.json", running.addr),
            token,
        ])
        .output()
        .unwrap();
    assert!(served.status.success(), "{served:?}");
    assert_eq!(String::from_utf8(served.stdout).unwrap(), file);

    let output = Command::new(&python)
        .args([
            "tests/clients/control_schemathesis.py",
            &format!("http://{}", running.addr),
            "--from-url",
        ])
        .current_dir(root())
        .env("ZIPGATE_CONTROL_TOKEN", token)
        .output()
        .expect("the schemathesis script runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("control_schemathesis: passed"), "{text}");
}
