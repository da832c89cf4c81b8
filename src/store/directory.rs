//! `serve --root DIR`: a real directory served as the tree, for teams moving
//! a client off a vendor onto their own files.
//!
//! The binary walks the directory at start and again every `--rescan`
//! seconds, each time into a fixture document, and loads one that changed
//! (`POST /_zipgate/reset` goes back to the start's): a folder per directory, a file per
//! regular file, named as on disk, with `mtime` from the file; each file's
//! bytes are read at download time through [`super::ContentRoot`], beneath
//! `DIR` only (`openat2` with `RESOLVE_BENEATH`). Neutral ids are the paths
//! relative to `DIR`, so every dialect's derived ids are stable across
//! restarts and machines.
//!
//! The walk never follows a symlink (`symlink_metadata`; a link is left out
//! and counted), leaves out sockets, FIFOs and devices, and names that are
//! not UTF-8 (a JSON document cannot name them; counted). It stops with an
//! error past [`MAX_ENTRIES`] entries or [`MAX_DEPTH`] levels, so a huge or
//! looping tree cannot exhaust memory.

use std::fs;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// Entries (files and folders) one walk takes at most.
pub const MAX_ENTRIES: usize = 1_000_000;
/// Directory levels below the root one walk descends at most.
pub const MAX_DEPTH: usize = 256;

/// What the walk left out, for the start-up log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    pub symlinks: u64,
    pub special: u64,
    pub not_utf8: u64,
    pub unreadable: u64,
    /// Policy rules whose path names nothing in the directory.
    pub rules_unmatched: u64,
}

/// Who owns and reads what lies at a path (and below it, by inheritance,
/// unless a rule for a deeper path says otherwise): a policy file's
/// `rules`, `{"path": "docs/private", "owner": "carol", "readers": ["carol"]}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Relative to the served directory, `/`-separated.
    pub path: String,
    pub owner: Option<String>,
    /// `"everyone"` or a list of user ids, as in fixtures.
    pub readers: Option<Value>,
}

/// The fixture document for `dir`, with `users` as its users and `rules`
/// applied to the nodes at their paths (a rule whose path is not there is
/// counted in `rules_unmatched`).
pub fn walk(dir: &Path, users: Vec<Value>, rules: &[Rule]) -> Result<(Value, Skipped), String> {
    let mut skipped = Skipped::default();
    let mut count = 0usize;
    let mut nodes = children(dir, "", 0, &mut count, &mut skipped)?;
    for rule in rules {
        let path = rule.path.trim_matches('/');
        if !apply(&mut nodes, path, rule) {
            skipped.rules_unmatched += 1;
        }
    }
    Ok((json!({"users": users, "nodes": nodes}), skipped))
}

/// Sets the rule's owner and readers on the node at `path`; false when
/// there is none.
fn apply(nodes: &mut [Value], path: &str, rule: &Rule) -> bool {
    let (first, rest) = match path.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (path, None),
    };
    let Some(node) = nodes.iter_mut().find(|n| n["name"] == first) else {
        return false;
    };
    match rest {
        Some(rest) => match node.get_mut("children").and_then(Value::as_array_mut) {
            Some(children) => apply(children, rest, rule),
            None => false,
        },
        None => {
            if let Some(owner) = &rule.owner {
                node["owner"] = json!(owner);
            }
            if let Some(readers) = &rule.readers {
                node["readers"] = readers.clone();
            }
            true
        }
    }
}

fn mtime(metadata: &fs::Metadata) -> Option<String> {
    let modified = metadata.modified().ok()?;
    Some(DateTime::<Utc>::from(modified).to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn children(
    dir: &Path,
    relative: &str,
    depth: usize,
    count: &mut usize,
    skipped: &mut Skipped,
) -> Result<Vec<Value>, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "{relative}: deeper than {MAX_DEPTH} levels; serve a directory nearer the files"
        ));
    }
    let mut entries: Vec<(String, fs::DirEntry)> = Vec::new();
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(error) if depth > 0 => {
            tracing::warn!(path = relative, %error, "cannot list a folder; it is served empty");
            skipped.unreadable += 1;
            return Ok(Vec::new());
        }
        Err(error) => return Err(format!("{}: {error}", dir.display())),
    };
    for entry in listing {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        match entry.file_name().into_string() {
            Ok(name) => entries.push((name, entry)),
            Err(_) => skipped.not_utf8 += 1,
        }
    }
    // Sorted, so the same directory gives the same archive every time.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(entries.len());
    for (name, entry) in entries {
        let path = if relative.is_empty() {
            name.clone()
        } else {
            format!("{relative}/{name}")
        };
        // `DirEntry::metadata` does not follow symlinks.
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            Err(_) => {
                skipped.unreadable += 1;
                continue;
            }
        };
        let kind = metadata.file_type();
        if kind.is_symlink() {
            skipped.symlinks += 1;
            continue;
        }
        if !kind.is_dir() && !kind.is_file() {
            skipped.special += 1;
            continue;
        }
        *count += 1;
        if *count > MAX_ENTRIES {
            return Err(format!(
                "more than {MAX_ENTRIES} files and folders; serve a smaller directory"
            ));
        }
        let mut node = json!({"id": path, "name": name});
        if let Some(mtime) = mtime(&metadata) {
            node["mtime"] = json!(mtime);
        }
        if kind.is_dir() {
            node["children"] = json!(children(&entry.path(), &path, depth + 1, count, skipped)?);
        } else {
            node["content"] = json!({ "path": path });
        }
        out.push(node);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_becomes_a_sorted_tree_without_links_or_specials() {
        let dir = std::env::temp_dir().join(format!("zipgate-walk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("b/inner")).unwrap();
        fs::write(dir.join("b/inner/x.txt"), "x").unwrap();
        fs::write(dir.join("a.txt"), "a").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
            std::os::unix::fs::symlink("b", dir.join("dirlink")).unwrap();
            rustix::fs::mknodat(
                rustix::fs::CWD,
                dir.join("fifo"),
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
                0,
            )
            .unwrap();
        }
        let rules = [
            Rule {
                path: "b/inner".into(),
                owner: Some("carol".into()),
                readers: Some(json!(["carol"])),
            },
            Rule {
                path: "nowhere".into(),
                owner: None,
                readers: None,
            },
        ];
        let (doc, skipped) = walk(&dir, Vec::new(), &rules).unwrap();
        assert_eq!(skipped.rules_unmatched, 1);
        assert_eq!(doc["nodes"][1]["children"][0]["owner"], "carol");
        assert_eq!(doc["nodes"][1]["children"][0]["readers"], json!(["carol"]));
        let nodes = doc["nodes"].as_array().unwrap();
        let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a.txt", "b"]);
        assert_eq!(nodes[0]["content"]["path"], "a.txt");
        let inner = &nodes[1]["children"][0];
        assert_eq!(inner["id"], "b/inner");
        assert_eq!(inner["children"][0]["content"]["path"], "b/inner/x.txt");
        #[cfg(unix)]
        assert_eq!((skipped.symlinks, skipped.special), (2, 1));
        let _ = fs::remove_dir_all(&dir);
    }
}
