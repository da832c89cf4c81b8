//! The default fixture as a migration would leave it: its tree as files in
//! a directory (with its mtimes), a policy with its users and its
//! `owner`/`readers` as rules by path, and an id map pinning its dialect
//! ids to paths. Served with `--root` or from a bucket seeded with the
//! directory, it is the same tree as the fixture, so clients see the same.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use zipgate::store::Tree;

use super::materialize;

pub struct FixtureFiles {
    /// Holds `Alice/` and `Shared with everyone/`.
    pub root: PathBuf,
    pub policy: PathBuf,
    pub id_map: PathBuf,
}

/// Writes the default fixture's files under the target's temporary folder
/// (`label` names a folder of its own, emptied first).
pub fn default_fixture_files(label: &str) -> FixtureFiles {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(label);
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("tree");
    std::fs::create_dir_all(&root).unwrap();
    let tree = Tree::embedded_default().unwrap();
    for node in tree.roots() {
        materialize(&tree, node, &root);
    }

    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/default.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut paths = Map::new(); // fixture id -> path
    let mut rules = Vec::new();
    let mut ids = Map::new();
    fn walk(
        node: &Value,
        parent: &str,
        paths: &mut Map<String, Value>,
        rules: &mut Vec<Value>,
        ids: &mut Map<String, Value>,
    ) {
        let name = node["name"].as_str().unwrap();
        let path = match parent {
            "" => name.to_owned(),
            parent => format!("{parent}/{name}"),
        };
        paths.insert(node["id"].as_str().unwrap().to_owned(), json!(path));
        if node.get("owner").is_some() || node.get("readers").is_some() {
            let mut rule = json!({"path": path});
            for key in ["owner", "readers"] {
                if let Some(value) = node.get(key) {
                    rule[key] = value.clone();
                }
            }
            rules.push(rule);
        }
        if let Some(dialect_ids) = node.get("ids") {
            ids.insert(path.clone(), dialect_ids.clone());
        }
        for child in node["children"].as_array().into_iter().flatten() {
            walk(child, &path, paths, rules, ids);
        }
    }
    for node in doc["nodes"].as_array().unwrap() {
        walk(node, "", &mut paths, &mut rules, &mut ids);
    }
    let mut users = doc["users"].as_array().unwrap().clone();
    for user in &mut users {
        if let Some(home) = user.get("home").and_then(Value::as_str) {
            user["home"] = paths[home].clone();
        }
    }
    let policy = dir.join("policy.json");
    std::fs::write(
        &policy,
        serde_json::to_vec_pretty(&json!({"users": users, "rules": rules})).unwrap(),
    )
    .unwrap();
    let id_map = dir.join("ids.json");
    std::fs::write(
        &id_map,
        serde_json::to_vec_pretty(&json!({ "ids": ids })).unwrap(),
    )
    .unwrap();
    FixtureFiles {
        root,
        policy,
        id_map,
    }
}
