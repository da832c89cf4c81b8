//! The minimum Rust version we state is the true one: no lower than what a
//! locked dependency declares it needs, and no higher. The toolchain itself
//! cannot be installed here (no access to static.rust-lang.org), so this
//! reads each package's `rust-version` from `cargo metadata`; a dependency
//! that declares none cannot be checked this way.

use std::process::Command;

fn version(text: &str) -> Vec<u32> {
    text.split('.').map(|n| n.parse().unwrap_or(0)).collect()
}

#[test]
fn the_stated_minimum_rust_version_is_what_the_dependencies_need() {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{output:?}");
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let mut ours = Vec::new();
    let mut needed: Option<(Vec<u32>, String)> = None;
    for package in metadata["packages"].as_array().unwrap() {
        let Some(rust) = package["rust_version"].as_str() else {
            continue;
        };
        let name = package["name"].as_str().unwrap();
        if members.contains(&package["id"].as_str().unwrap()) {
            ours.push((name.to_owned(), rust.to_owned()));
        } else if needed.as_ref().is_none_or(|(v, _)| version(rust) > *v) {
            needed = Some((version(rust), format!("{name} needs {rust}")));
        }
    }
    let (needed, why) = needed.expect("dependencies declare rust-version");
    assert!(!ours.is_empty());
    for (name, rust) in &ours {
        assert_eq!(version(rust), needed, "{name} says {rust}; {why}");
    }
    let stated = &ours[0].1;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&format!("Rust toolchain ({stated}+")),
        "the README states {stated}"
    );
}
