//! The fixture file format (see `fixtures/README.md`) and its loading into a
//! [`Tree`]. Every error names the JSON path of the offending value.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use zipgate_api::{NodeId, NodeKind, UserId, UserInfo};

use super::content::{Content, FileBody, GeneratedKind, HostFile};
use super::root::ContentRoot;
use super::{Node, NodeData, Readers, Tree, User};

/// The most content bytes one fixture may hold (2^62, 4 EiB): far past any
/// test, and far enough below 2^64 that archive lengths (contents plus
/// headers, a file counted once per selection) cannot wrap.
pub const MAX_CONTENT_BYTES: u64 = 1 << 62;

/// Where a fixture's `content.path` values may lead.
#[derive(Clone, Debug, Default)]
pub enum ContentPaths {
    /// Nowhere: fixtures sent to the control plane without `--content-root`,
    /// the embedded fixture, in-process JSON without an explicit grant.
    #[default]
    Refused,
    /// Beneath this directory only (the fixture file's folder, or
    /// `--content-root`), checked at every open.
    Beneath(Arc<ContentRoot>),
    /// Anywhere (`--fixture-paths-anywhere`): relative to this folder when
    /// there is one, absolute paths as they are, symlinks followed.
    Anywhere(Option<PathBuf>),
    /// The files a scan of a store found (`--root`, `--store`): a path
    /// names one of them, exactly as listed, and nothing else.
    Stored(Arc<super::backend::StoredFiles>),
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FixtureError {
    /// Where in the fixture document, e.g. `nodes[0].children[2].content`.
    pub path: String,
    pub message: String,
}

impl FixtureError {
    fn at(path: &str, message: impl Into<String>) -> Self {
        FixtureError {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureDoc {
    #[serde(default)]
    pub users: Vec<UserSpec>,
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub login: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    /// For vendor log-in routes that take a user name and password.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub home: Option<String>,
    #[serde(default)]
    pub ids: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub id: String,
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: Option<NodeKind>,
    #[serde(default)]
    pub mtime: Option<DateTime<Utc>>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub readers: Option<ReadersSpec>,
    #[serde(default)]
    pub ids: BTreeMap<String, String>,
    #[serde(default)]
    pub children: Option<Vec<NodeSpec>>,
    #[serde(default)]
    pub content: Option<ContentSpec>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum ReadersSpec {
    /// `"everyone"`
    Keyword(String),
    Users(Vec<String>),
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum ContentSpec {
    Text(String),
    Base64(String),
    Path(String),
    Generate(GenerateSpec),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    pub size: u64,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub kind: GeneratedKind,
}

/// Time stamps default to this instant so fixtures without `mtime` still
/// give byte-identical archives on every run.
pub fn default_mtime() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// Parses a trusted fixture document (tests, the embedded fixture):
/// `content.path` values may name any file, relative ones resolved against
/// `base_dir`.
pub fn parse(json: &str, base_dir: Option<&Path>) -> Result<Tree, FixtureError> {
    FixtureSource::from_text(
        json,
        ContentPaths::Anywhere(base_dir.map(Path::to_path_buf)),
    )?
    .parse()
}

/// A fixture document as JSON, kept so nodes can be added to it and the
/// server can go back to it. Shared, not copied: the document in force and
/// the starting one are the same allocation until nodes are added.
#[derive(Clone, Debug)]
pub struct FixtureSource {
    pub json: Arc<serde_json::Value>,
    /// Where the document's `content.path` values may lead.
    pub paths: ContentPaths,
    /// Nodes added since (`with_nodes`), by JSON path, with where their
    /// paths may lead: nodes sent to the control plane get its rule, not
    /// the one of the fixture file they were added to.
    added: Arc<Vec<(String, ContentPaths)>>,
    /// Which dialects number files and folders from one space.
    id_spaces: IdSpaces,
}

/// The dialects whose files and folders share one id space, so a file and
/// a folder may not pin the same id for them; the server sets it from the
/// dialects it mounts. Unset (trusted parses), only two nodes of one kind
/// pinning the same id are refused.
#[derive(Clone, Debug, Default)]
pub struct IdSpaces(Option<Arc<BTreeSet<String>>>);

impl IdSpaces {
    pub fn shared_by(dialects: impl IntoIterator<Item = String>) -> Self {
        IdSpaces(Some(Arc::new(dialects.into_iter().collect())))
    }

    /// As these mounted dialects declare ([`zipgate_api::Dialect::id_space`]).
    pub fn of(dialects: &[Arc<dyn zipgate_api::Mounted>]) -> Self {
        IdSpaces::shared_by(
            dialects
                .iter()
                .filter(|d| d.id_space() == zipgate_api::IdSpace::Shared)
                .map(|d| d.name().to_owned()),
        )
    }

    fn shared(&self, dialect: &str) -> bool {
        self.0.as_ref().is_some_and(|set| set.contains(dialect))
    }
}

impl FixtureSource {
    pub fn from_text(text: &str, paths: ContentPaths) -> Result<Self, FixtureError> {
        let json = serde_json::from_str(text)
            .map_err(|e| FixtureError::at("$", format!("not valid JSON: {e}")))?;
        Ok(FixtureSource::new(json, paths))
    }

    pub fn new(json: serde_json::Value, paths: ContentPaths) -> Self {
        FixtureSource::shared(Arc::new(json), paths)
    }

    /// A source over a document held elsewhere too (a store's scan).
    pub fn shared(json: Arc<serde_json::Value>, paths: ContentPaths) -> Self {
        FixtureSource {
            json,
            paths,
            added: Arc::default(),
            id_spaces: IdSpaces::default(),
        }
    }

    /// The same document, checked against these dialects' id spaces.
    pub fn with_id_spaces(mut self, id_spaces: IdSpaces) -> Self {
        self.id_spaces = id_spaces;
        self
    }

    pub fn embedded_default() -> Self {
        FixtureSource::from_text(super::DEFAULT_FIXTURE, ContentPaths::Refused)
            .expect("the embedded fixture is valid JSON")
    }

    pub fn parse(&self) -> Result<Tree, FixtureError> {
        // A struct deserializes from an array too (`[]` would be an empty tree).
        if !self.json.is_object() {
            return Err(FixtureError::at(
                "$",
                "a fixture document is a JSON object: {\"users\": [...], \"nodes\": [...]}",
            ));
        }
        let doc: FixtureDoc = crate::strict_json::from_value(&self.json).map_err(|e| {
            let path = e.path().to_string();
            // `.` is the root; so is `` (an unknown top-level key that is empty).
            let path = if path == "." || path.is_empty() {
                "$"
            } else {
                &path
            };
            FixtureError::at(path, e.inner().to_string())
        })?;
        build_with(doc, &self.paths, &self.added, &self.id_spaces)
    }

    /// A copy with `nodes` appended to the children of `parent` (a node id),
    /// or at the top; their `content.path` values may lead where `paths` says.
    pub fn with_nodes(
        &self,
        parent: Option<&str>,
        nodes: Vec<serde_json::Value>,
        paths: ContentPaths,
    ) -> Result<Self, FixtureError> {
        let mut json = (*self.json).clone();
        let root = json
            .as_object_mut()
            .ok_or_else(|| FixtureError::at("$", "the fixture is not a JSON object"))?;
        let top = root
            .entry("nodes")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        let (target, at) = match parent {
            None => (top, "nodes".to_owned()),
            Some(id) => find_children(top, id, "nodes").ok_or_else(|| {
                FixtureError::at("parent", format!("{id:?} is not a folder in the fixture"))
            })?,
        };
        let mut added = (*self.added).clone();
        match target.as_array_mut() {
            Some(list) => {
                added.extend(
                    (list.len()..list.len() + nodes.len())
                        .map(|index| (format!("{at}[{index}]"), paths.clone())),
                );
                list.extend(nodes);
            }
            None => {
                return Err(FixtureError::at(
                    "parent",
                    "the target's children are not a list",
                ))
            }
        }
        Ok(FixtureSource {
            json: Arc::new(json),
            paths: self.paths.clone(),
            added: Arc::new(added),
            id_spaces: self.id_spaces.clone(),
        })
    }

    /// Where the `content.path` of the node at JSON path `node` may lead:
    /// the rule it was added with (the innermost added node holding it),
    /// else the document's.
    fn paths_for<'a>(
        default: &'a ContentPaths,
        added: &'a [(String, ContentPaths)],
        node: &str,
    ) -> &'a ContentPaths {
        added
            .iter()
            .filter(|(at, _)| {
                node.strip_prefix(at.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            })
            .max_by_key(|(at, _)| at.len())
            .map_or(default, |(_, paths)| paths)
    }
}

/// The `children` list of the folder with this id (created if the folder
/// has none yet) and its JSON path; `at` is the path of `nodes`.
fn find_children<'a>(
    nodes: &'a mut serde_json::Value,
    id: &str,
    at: &str,
) -> Option<(&'a mut serde_json::Value, String)> {
    for (index, node) in nodes.as_array_mut()?.iter_mut().enumerate() {
        let object = node.as_object_mut()?;
        let children_at = format!("{at}[{index}].children");
        if object.get("id").and_then(|v| v.as_str()) == Some(id) {
            // `null` is as good as absent, as the document's parser reads it.
            let content = object.get("content").is_some_and(|c| !c.is_null());
            if content || object.get("type").and_then(|t| t.as_str()) == Some("file") {
                return None;
            }
            let children = object.entry("children").or_insert(serde_json::Value::Null);
            if children.is_null() {
                *children = serde_json::Value::Array(Vec::new());
            }
            return Some((children, children_at));
        }
        if let Some(children) = object.get_mut("children") {
            if let Some(found) = find_children(children, id, &children_at) {
                return Some(found);
            }
        }
    }
    None
}

struct Inherited<'a> {
    parent: Option<&'a NodeId>,
    mtime: DateTime<Utc>,
    owner: Option<&'a UserId>,
    readers: &'a Readers,
}

struct Builder<'a> {
    paths: &'a ContentPaths,
    added: &'a [(String, ContentPaths)],
    /// Content bytes so far, kept within `MAX_CONTENT_BYTES`.
    content_bytes: u64,
    users: &'a BTreeMap<UserId, User>,
    nodes: HashMap<NodeId, Arc<Node>>,
    /// Every id met so far, a folder's before its children's: the folder
    /// joins `nodes` only once they are built, and a child reusing its id
    /// would make it contain itself.
    ids: HashSet<NodeId>,
    id_spaces: &'a IdSpaces,
    /// Pinned dialect ids so far: (dialect, id, kind) → the pinning node's path.
    pins: HashMap<(String, String, NodeKind), String>,
}

/// Builds a store; `content.path` values may lead where `paths` says.
pub fn build(doc: FixtureDoc, paths: &ContentPaths) -> Result<Tree, FixtureError> {
    build_with(doc, paths, &[], &IdSpaces::default())
}

fn build_with(
    doc: FixtureDoc,
    paths: &ContentPaths,
    added: &[(String, ContentPaths)],
    id_spaces: &IdSpaces,
) -> Result<Tree, FixtureError> {
    let mut users = BTreeMap::new();
    let mut tokens = HashMap::new();
    for (i, spec) in doc.users.into_iter().enumerate() {
        let path = format!("users[{i}]");
        let id = UserId(spec.id);
        if id.0.is_empty() {
            return Err(FixtureError::at(&format!("{path}.id"), "must not be empty"));
        }
        if users.contains_key(&id) {
            return Err(FixtureError::at(
                &format!("{path}.id"),
                format!("duplicate user id {:?}", id.0),
            ));
        }
        if let Some(token) = &spec.token {
            if tokens.insert(token.clone(), id.clone()).is_some() {
                return Err(FixtureError::at(
                    &format!("{path}.token"),
                    "token already used by another user",
                ));
            }
        }
        users.insert(
            id.clone(),
            User {
                info: Arc::new(UserInfo {
                    name: spec.name.unwrap_or_else(|| id.0.clone()),
                    login: spec.login.unwrap_or_else(|| id.0.clone()),
                    id,
                    home: spec.home.map(NodeId),
                    dialect_ids: spec.ids,
                }),
                token: spec.token,
                password: spec.password,
            },
        );
    }

    let mut builder = Builder {
        paths,
        added,
        content_bytes: 0,
        users: &users,
        nodes: HashMap::new(),
        ids: HashSet::new(),
        id_spaces,
        pins: HashMap::new(),
    };
    let everyone = Readers::Everyone;
    let top = Inherited {
        parent: None,
        mtime: default_mtime(),
        owner: None,
        readers: &everyone,
    };
    let mut roots = Vec::new();
    for (i, spec) in doc.nodes.into_iter().enumerate() {
        roots.push(builder.add(spec, &format!("nodes[{i}]"), &top)?);
    }
    for (i, user) in users.values().enumerate() {
        if let Some(home) = &user.home {
            match builder.nodes.get(home) {
                Some(node) if node.kind() == NodeKind::Folder => {}
                _ => {
                    return Err(FixtureError::at(
                        &format!("users[{i}].home"),
                        format!("{:?} is not a folder in this fixture", home.0),
                    ))
                }
            }
        }
    }
    let nodes = builder.nodes;
    Ok(Tree::new(nodes, roots, users, tokens))
}

impl Builder<'_> {
    fn add(
        &mut self,
        spec: NodeSpec,
        path: &str,
        inherited: &Inherited,
    ) -> Result<NodeId, FixtureError> {
        let id = NodeId(spec.id);
        if id.0.is_empty() {
            return Err(FixtureError::at(&format!("{path}.id"), "must not be empty"));
        }
        if !self.ids.insert(id.clone()) {
            return Err(FixtureError::at(
                &format!("{path}.id"),
                format!("duplicate node id {:?}", id.0),
            ));
        }
        if spec.name.is_empty() {
            return Err(FixtureError::at(
                &format!("{path}.name"),
                "must not be empty",
            ));
        }
        let owner = match spec.owner {
            Some(owner) => {
                let owner = UserId(owner);
                if !self.users.contains_key(&owner) {
                    return Err(FixtureError::at(
                        &format!("{path}.owner"),
                        format!("unknown user {:?}", owner.0),
                    ));
                }
                Some(owner)
            }
            None => inherited.owner.cloned(),
        };
        let readers = match spec.readers {
            None => inherited.readers.clone(),
            Some(ReadersSpec::Keyword(word)) if word == "everyone" => Readers::Everyone,
            Some(ReadersSpec::Keyword(word)) => {
                return Err(FixtureError::at(
                    &format!("{path}.readers"),
                    format!("expected \"everyone\" or a list of user ids, found {word:?}"),
                ))
            }
            Some(ReadersSpec::Users(list)) => {
                let mut set = BTreeSet::new();
                for (j, user) in list.into_iter().enumerate() {
                    let user = UserId(user);
                    if !self.users.contains_key(&user) {
                        return Err(FixtureError::at(
                            &format!("{path}.readers[{j}]"),
                            format!("unknown user {:?}", user.0),
                        ));
                    }
                    set.insert(user);
                }
                Readers::Only(set)
            }
        };
        let mtime = spec.mtime.unwrap_or(inherited.mtime);
        let kind = match (spec.kind, &spec.children, &spec.content) {
            (Some(NodeKind::File), Some(_), _)
            | (Some(NodeKind::Folder), _, Some(_))
            | (None, Some(_), Some(_)) => {
                return Err(FixtureError::at(
                    path,
                    "a node has either content (a file) or children (a folder), not both",
                ))
            }
            (Some(kind), _, _) => kind,
            (None, Some(_), None) => NodeKind::Folder,
            (None, None, Some(_)) => NodeKind::File,
            (None, None, None) => {
                return Err(FixtureError::at(
                    path,
                    "say \"type\": \"file\" or \"folder\", or give content or children",
                ))
            }
        };
        self.pin(&spec.ids, kind, path)?;
        let data = match kind {
            NodeKind::File => {
                let at = format!("{path}.content");
                let content = match spec.content {
                    None => Content::Bytes(Arc::from(&[][..])),
                    Some(content) => self.content(content, path, &at)?,
                };
                self.content_bytes = self
                    .content_bytes
                    .checked_add(content.len())
                    .filter(|total| *total <= MAX_CONTENT_BYTES)
                    .ok_or_else(|| {
                        FixtureError::at(
                            &at,
                            format!(
                                "the fixture's files would hold more than {MAX_CONTENT_BYTES} \
                                 bytes (2^62), the most one fixture may hold"
                            ),
                        )
                    })?;
                NodeData::File(Arc::new(FileBody::new(content)))
            }
            NodeKind::Folder => {
                let child_inherited = Inherited {
                    parent: Some(&id),
                    mtime,
                    owner: owner.as_ref(),
                    readers: &readers,
                };
                let mut children = Vec::new();
                for (j, child) in spec.children.unwrap_or_default().into_iter().enumerate() {
                    children.push(self.add(
                        child,
                        &format!("{path}.children[{j}]"),
                        &child_inherited,
                    )?);
                }
                NodeData::Folder(children)
            }
        };
        let node = Node {
            id: id.clone(),
            name: spec.name,
            parent: inherited.parent.cloned(),
            mtime,
            owner,
            readers,
            dialect_ids: spec.ids,
            data,
        };
        self.nodes.insert(id.clone(), Arc::new(node));
        Ok(id)
    }

    /// Records the node's pinned ids: one id names one node of a kind in a
    /// dialect, and one node at all where the dialect's files and folders
    /// share a space; otherwise a lookup would find one of them at random.
    fn pin(
        &mut self,
        ids: &BTreeMap<String, String>,
        kind: NodeKind,
        path: &str,
    ) -> Result<(), FixtureError> {
        let other = match kind {
            NodeKind::File => NodeKind::Folder,
            NodeKind::Folder => NodeKind::File,
        };
        for (dialect, id) in ids {
            let key = (dialect.clone(), id.clone(), kind);
            let clash = self.pins.get(&key).map(|at| (at, kind)).or_else(|| {
                let shared = self.id_spaces.shared(dialect);
                let other_key = (dialect.clone(), id.clone(), other);
                self.pins
                    .get(&other_key)
                    .filter(|_| shared)
                    .map(|at| (at, other))
            });
            if let Some((at, clash_kind)) = clash {
                let what = match clash_kind {
                    NodeKind::File => "file",
                    NodeKind::Folder => "folder",
                };
                return Err(FixtureError::at(
                    &format!("{path}.ids.{dialect}"),
                    format!("{id:?} is already the {dialect} id of the {what} at {at}"),
                ));
            }
            self.pins.insert(key, path.to_owned());
        }
        Ok(())
    }

    /// `node` is the node's JSON path, `path` its content's.
    fn content(&self, spec: ContentSpec, node: &str, path: &str) -> Result<Content, FixtureError> {
        Ok(match spec {
            ContentSpec::Text(text) => Content::Bytes(Arc::from(text.into_bytes())),
            ContentSpec::Base64(encoded) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|e| {
                        FixtureError::at(&format!("{path}.base64"), format!("invalid base64: {e}"))
                    })?;
                Content::Bytes(Arc::from(bytes))
            }
            ContentSpec::Path(written) => {
                let at = format!("{path}.path");
                let paths = FixtureSource::paths_for(self.paths, self.added, node);
                if let ContentPaths::Stored(files) = paths {
                    let file = files.file(&written).ok_or_else(|| {
                        FixtureError::at(
                            &at,
                            format!("{written:?}: not a file of the served store"),
                        )
                    })?;
                    return Ok(Content::Stored(Arc::new(file)));
                }
                let file = host_file(paths, written).map_err(|m| FixtureError::at(&at, m))?;
                // Opened now as at every download: the same rules, the same
                // one message whatever is wrong with the path.
                let (_, meta) = file
                    .open()
                    .map_err(|e| FixtureError::at(&at, e.to_string()))?;
                Content::File {
                    file,
                    size: meta.len(),
                    modified: meta.modified().ok(),
                }
            }
            ContentSpec::Generate(spec) => Content::Generated {
                size: spec.size,
                seed: spec.seed,
                kind: spec.kind,
            },
        })
    }
}

/// Where a `content.path` leads under `paths`, or why it may not be used.
fn host_file(paths: &ContentPaths, written: String) -> Result<HostFile, String> {
    let written: Arc<str> = Arc::from(written);
    match paths {
        ContentPaths::Stored(_) => Err("not a file of the served store".into()),
        ContentPaths::Refused => Err(
            "this fixture may not name host files: start zipgate with --content-root DIR \
             to serve files beneath DIR (fixture files may name files beside them)"
                .into(),
        ),
        ContentPaths::Beneath(root) => {
            let file = HostFile {
                root: Some(root.clone()),
                path: root.relative(&written).unwrap_or_default(),
                written,
            };
            // A path that climbs out fails like a missing file: no hint
            // about what lies outside.
            if file.path.as_os_str().is_empty() {
                return Err(file.unavailable());
            }
            Ok(file)
        }
        ContentPaths::Anywhere(base_dir) => {
            let given = Path::new(&*written);
            let path = if given.is_absolute() {
                given.to_owned()
            } else {
                base_dir
                    .as_ref()
                    .ok_or("a relative path needs a fixture file on disk to be relative to")?
                    .join(given)
            };
            Ok(HostFile {
                root: None,
                path,
                written,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_json_path() {
        let err = parse(r#"{"nodes":[{"id":"a","name":"A","children":[{"id":"b","name":"B","content":{"generate":{"size":"big"}}}]}]}"#, None)
            .unwrap_err();
        assert_eq!(err.path, "nodes[0].children[0].content.generate.size");

        let err = parse(r#"{"nodes":[{"id":"a","name":"A","type":"folder"},{"id":"a","name":"B","type":"file"}]}"#, None).unwrap_err();
        assert_eq!(err.path, "nodes[1].id");
        assert!(err.message.contains("duplicate"));

        let err = parse(r#"{"users":[{"id":"u"}],"nodes":[{"id":"a","name":"A","type":"file","readers":["nobody"]}]}"#, None).unwrap_err();
        assert_eq!(err.path, "nodes[0].readers[0]");

        let err = parse(
            r#"{"nodes":[{"id":"a","name":"A","content":{"path":"x.bin"}}]}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(err.path, "nodes[0].content.path");

        let err = parse(
            r#"{"nodes":[{"id":"a","name":"A","colour":"red","type":"file"}]}"#,
            None,
        )
        .unwrap_err();
        assert!(err.message.contains("colour"), "{err}");
    }

    #[test]
    fn a_node_may_not_reuse_an_ancestors_id() {
        // Found by the fixture fuzz target: the folder was stored after its
        // children, so a descendant with the folder's id passed the duplicate
        // check and was then overwritten, leaving a folder that contains itself.
        let err = parse(
            r#"{"nodes":[{"id":"a","name":"A","children":[{"id":"b","name":"B","children":[{"id":"a","name":"a.txt","type":"file"}]}]}]}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(err.path, "nodes[0].children[0].children[0].id");
        assert!(err.message.contains("duplicate"), "{err}");
        let err = parse(
            r#"{"nodes":[{"id":"a","name":"A","children":[{"id":"a","name":"A","type":"folder"}]}]}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(err.path, "nodes[0].children[0].id");
    }

    #[test]
    fn an_empty_unknown_key_at_the_top_is_named_as_the_root() {
        // Found by the fixture fuzz target: the error's path was empty.
        let err = parse(r#"{"":[]}"#, None).unwrap_err();
        assert_eq!(err.path, "$");
        assert!(err.message.contains("unknown field"), "{err}");
    }

    #[test]
    fn owner_readers_and_mtime_are_inherited() {
        let store = parse(
            r#"{"users":[{"id":"alice","token":"t1"},{"id":"bob","token":"t2"}],
                "nodes":[{"id":"d","name":"D","owner":"alice","readers":["alice"],"mtime":"2023-05-06T07:08:09Z",
                          "children":[{"id":"f","name":"f.txt","content":{"text":"hi"}}]}]}"#,
            None,
        )
        .unwrap();
        let f = store.node(&NodeId::from("f")).unwrap();
        assert_eq!(f.owner, Some(UserId("alice".into())));
        assert_eq!(f.mtime.to_rfc3339(), "2023-05-06T07:08:09+00:00");
        assert_eq!(f.parent, Some(NodeId::from("d")));
        assert!(matches!(&f.readers, Readers::Only(set) if set.len() == 1));
    }
}
