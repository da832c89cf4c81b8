//! The neutral store: a tree of folders and files, the users who may read
//! them, and the tokens that identify those users.

pub mod backend;
pub mod content;
pub mod crc_cache;
pub mod directory;
pub mod fixture;
pub mod object;
pub mod root;
pub mod served;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use zipgate_api::{NodeId, NodeKind, Principal, UserId, UserInfo};

pub use content::{Content, FileBody, GeneratedKind, HostFile};
pub use fixture::{ContentPaths, FixtureError, FixtureSource, IdSpaces};
pub use root::ContentRoot;

/// The fixture compiled into the binary, so `zipgate serve` needs no files.
pub const DEFAULT_FIXTURE: &str = include_str!("../../fixtures/default.json");

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readers {
    Everyone,
    Only(BTreeSet<UserId>),
}

#[derive(Debug)]
pub enum NodeData {
    Folder(Vec<NodeId>),
    File(Arc<FileBody>),
}

#[derive(Debug)]
pub struct Node {
    pub id: NodeId,
    pub name: String,
    pub parent: Option<NodeId>,
    pub mtime: DateTime<Utc>,
    pub owner: Option<UserId>,
    /// Effective readers, already inherited from the parent where unset.
    pub readers: Readers,
    /// Ids pinned for particular dialects, keyed by the dialect's name.
    pub dialect_ids: BTreeMap<String, String>,
    pub data: NodeData,
}

impl Node {
    pub fn kind(&self) -> NodeKind {
        match self.data {
            NodeData::Folder(_) => NodeKind::Folder,
            NodeData::File(_) => NodeKind::File,
        }
    }

    /// Bytes of a file; 0 for a folder.
    pub fn size(&self) -> u64 {
        match &self.data {
            NodeData::File(body) => body.content.len(),
            NodeData::Folder(_) => 0,
        }
    }
}

/// A user: what dialects may see (shared, so authenticating a request does
/// not copy it) and the secrets they may not.
#[derive(Clone, Debug)]
pub struct User {
    pub info: Arc<UserInfo>,
    pub token: Option<String>,
    pub password: Option<String>,
}

impl std::ops::Deref for User {
    type Target = UserInfo;
    fn deref(&self) -> &UserInfo {
        &self.info
    }
}

#[derive(Debug, Default)]
pub struct Tree {
    nodes: HashMap<NodeId, Arc<Node>>,
    roots: Vec<NodeId>,
    users: BTreeMap<UserId, User>,
    tokens: HashMap<String, UserId>,
    /// Set once another tree replaced this one (or the server stops): the
    /// CRC warmer stops, requests already holding the tree go on.
    retired: std::sync::atomic::AtomicBool,
    /// Per dialect, its ids back to neutral ones: built on the first lookup,
    /// gone with the tree (a new tree starts empty).
    id_indexes: std::sync::Mutex<HashMap<&'static str, Arc<HashMap<String, ByKind>>>>,
}

/// The file and the folder one dialect id names (a fixture lets both be
/// set only for a dialect whose kinds are numbered apart).
#[derive(Debug, Default)]
struct ByKind {
    file: Option<NodeId>,
    folder: Option<NodeId>,
}

impl Tree {
    fn new(
        nodes: HashMap<NodeId, Arc<Node>>,
        roots: Vec<NodeId>,
        users: BTreeMap<UserId, User>,
        tokens: HashMap<String, UserId>,
    ) -> Self {
        Tree {
            nodes,
            roots,
            users,
            tokens,
            retired: std::sync::atomic::AtomicBool::new(false),
            id_indexes: Default::default(),
        }
    }

    pub fn embedded_default() -> Result<Tree, FixtureError> {
        fixture::parse(DEFAULT_FIXTURE, None)
    }

    pub fn node(&self, id: &NodeId) -> Option<&Arc<Node>> {
        self.nodes.get(id)
    }

    pub fn children<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = &'a Arc<Node>> + 'a {
        let ids: &[NodeId] = match &node.data {
            NodeData::Folder(children) => children,
            NodeData::File(_) => &[],
        };
        ids.iter().filter_map(|id| self.nodes.get(id))
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.nodes.values()
    }

    pub fn roots(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.roots.iter().filter_map(|id| self.nodes.get(id))
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub fn user(&self, id: &UserId) -> Option<&User> {
        self.users.get(id)
    }

    /// The user whose login (or id) and password these are.
    pub fn log_in(&self, login: &str, password: &str) -> Option<&User> {
        self.users.values().find(|u| {
            (u.login.eq_ignore_ascii_case(login) || u.id.0 == login)
                && u.password.as_deref() == Some(password)
        })
    }

    /// The user a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<&User> {
        self.tokens.get(token).and_then(|id| self.users.get(id))
    }

    /// The node at `path` below `start` (or below `principal`'s home, else
    /// the top of the tree), seeing only what `principal` may read.
    pub fn node_by_path(
        &self,
        principal: &Principal,
        start: Option<&NodeId>,
        path: &str,
        names: zipgate_api::NameMatch,
    ) -> Option<&Arc<Node>> {
        let home = match (start, principal) {
            (Some(start), _) => Some(start),
            (None, Principal::User(user)) => self.user(user).and_then(|u| u.home.as_ref()),
            (None, Principal::Anonymous) => None,
        };
        let mut current: Option<&Arc<Node>> = match home {
            Some(id) => Some(self.node(id).filter(|n| self.can_read(principal, n))?),
            None => None,
        };
        for name in path.split('/').filter(|n| !n.is_empty()) {
            let siblings: &[NodeId] = match current {
                Some(folder) => match &folder.data {
                    NodeData::Folder(children) => children,
                    NodeData::File(_) => return None,
                },
                None => &self.roots,
            };
            let visible = || {
                siblings
                    .iter()
                    .filter_map(|id| self.nodes.get(id))
                    .filter(|n| self.can_read(principal, n))
            };
            let found = visible().find(|n| n.name == name).or_else(|| match names {
                zipgate_api::NameMatch::Exact => None,
                zipgate_api::NameMatch::IgnoreCase => {
                    let lower = name.to_lowercase();
                    visible().find(|n| n.name.to_lowercase() == lower)
                }
            });
            current = Some(found?);
        }
        current
    }

    /// The node a dialect's id names: pinned for `dialect` in the fixture,
    /// else made by `derive` from the neutral id; of `kind` when given.
    pub fn resolve_dialect_id(
        &self,
        dialect: &'static str,
        derive: &dyn Fn(&NodeId) -> String,
        id: &str,
        kind: Option<NodeKind>,
    ) -> Option<NodeId> {
        let cached = self
            .id_indexes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(dialect)
            .cloned();
        let index = match cached {
            Some(index) => index,
            None => {
                // Built without the lock, so other dialects' lookups do not
                // wait on it; two first lookups at once build it twice, alike.
                let mut built: HashMap<String, ByKind> = HashMap::with_capacity(self.nodes.len());
                for node in self.nodes.values() {
                    let id = match node.dialect_ids.get(dialect) {
                        Some(pinned) => pinned.clone(),
                        None => derive(&node.id),
                    };
                    let slots = built.entry(id).or_default();
                    let slot = match node.kind() {
                        NodeKind::File => &mut slots.file,
                        NodeKind::Folder => &mut slots.folder,
                    };
                    *slot = Some(node.id.clone());
                }
                let built = Arc::new(built);
                self.id_indexes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(dialect)
                    .or_insert(built)
                    .clone()
            }
        };
        let slots = index.get(id)?;
        match kind {
            Some(NodeKind::File) => slots.file.clone(),
            Some(NodeKind::Folder) => slots.folder.clone(),
            None => slots.file.clone().or_else(|| slots.folder.clone()),
        }
    }

    /// Computes every file's CRC-32 ahead of its first download, so a stored
    /// archive's first byte does not wait for a read pass over its bodies.
    /// Computes every file's CRC ahead of its first download, until done
    /// or until the tree is retired.
    pub fn warm_crcs(&self) {
        use crate::zip::EntryData as _;
        for node in self.nodes.values() {
            if self.is_retired() {
                return;
            }
            if let NodeData::File(body) = &node.data {
                if !body.warm_ahead() {
                    continue;
                }
                if let Err(error) = body.crc32(&|| self.is_retired()) {
                    if !self.is_retired() {
                        tracing::warn!(id = %node.id, %error, "cannot read file content");
                    }
                }
            }
        }
    }

    /// Marks the tree as no longer in force: background work on it stops.
    pub fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn can_read(&self, principal: &Principal, node: &Node) -> bool {
        match (&node.readers, principal) {
            (Readers::Everyone, _) => true,
            (Readers::Only(_), Principal::Anonymous) => false,
            (Readers::Only(readers), Principal::User(user)) => {
                node.owner.as_ref() == Some(user) || readers.contains(user)
            }
        }
    }
}

/// A fixture tree is a store too: listed by path, every node readable (the
/// policy of whoever serves it decides), each file's version its node id,
/// as a tree's contents never change. It lets a fixture be served the way
/// a directory or a bucket is, so the three can be compared.
impl backend::Store for Tree {
    fn describe(&self) -> String {
        format!("fixture tree of {} nodes", self.nodes.len())
    }

    fn list(
        &self,
        folder: &str,
        left_out: &mut backend::LeftOut,
    ) -> std::io::Result<Vec<backend::Entry>> {
        let children: Vec<&Arc<Node>> = if folder.is_empty() {
            self.roots().collect()
        } else {
            match self.node_at(folder).map(|n| &n.data) {
                Some(NodeData::Folder(ids)) => {
                    ids.iter().filter_map(|id| self.nodes.get(id)).collect()
                }
                _ => return Err(std::io::ErrorKind::NotFound.into()),
            }
        };
        let mut out = Vec::with_capacity(children.len());
        for node in children {
            if node.name.is_empty()
                || node.name.contains('/')
                || node.name == "."
                || node.name == ".."
            {
                left_out.unsafe_names += 1;
                continue;
            }
            out.push(backend::Entry {
                name: node.name.clone(),
                kind: node.kind(),
                size: node.size(),
                mtime: node.mtime,
                version: node.id.0.clone(),
            });
        }
        Ok(out)
    }

    fn open_at(
        &self,
        file: &str,
        version: &str,
        offset: u64,
        len: u64,
    ) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        match self.node_at(file) {
            Some(node) if node.id.0 == version => match &node.data {
                NodeData::File(body) => Ok(Box::new(backend::Exactly {
                    inner: body.content.open_at(offset)?,
                    left: len,
                })),
                NodeData::Folder(_) => Err(std::io::ErrorKind::InvalidInput.into()),
            },
            _ => Err(std::io::Error::other(format!(
                "{file:?} is not in the tree as listed"
            ))),
        }
    }
}

impl Tree {
    /// The node at a `/`-joined path of names from the top, readable or not.
    fn node_at(&self, path: &str) -> Option<&Arc<Node>> {
        let mut current: Option<&Arc<Node>> = None;
        for name in path.split('/') {
            let found = match current {
                None => self.roots().find(|n| n.name == name),
                Some(folder) => self.children(folder).find(|n| n.name == name),
            };
            current = Some(found?);
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_fixture_has_what_the_dialects_need() {
        let store = Tree::embedded_default().unwrap();
        assert!(store.users().count() >= 2);
        let names: Vec<&str> = store.nodes.values().map(|n| n.name.as_str()).collect();
        assert!(names.iter().any(|n| !n.is_ascii()), "a non-ASCII name");
        let mut seen = BTreeSet::new();
        assert!(
            store
                .nodes
                .values()
                .filter(|n| n.kind() == NodeKind::File)
                .any(|n| !seen.insert(n.name.clone())),
            "two files share a name"
        );
        assert!(store
            .nodes
            .values()
            .any(|n| matches!(&n.data, NodeData::Folder(c) if c.is_empty())));
        assert!(store.nodes.values().any(|n| n.size() >= 64 << 20));
        let users: Vec<Principal> = store
            .users()
            .map(|u| Principal::User(u.id.clone()))
            .collect();
        assert!(
            store
                .nodes
                .values()
                .any(|n| users.iter().any(|u| !store.can_read(u, n))),
            "a node some user may not read"
        );
    }

    #[test]
    fn planned_bytes_past_2_pow_64_saturate_and_hit_the_limit() {
        // Loading caps a fixture at 2^62 content bytes; a store built
        // directly must still not wrap the planner's sum past a byte limit.
        let mut nodes = HashMap::new();
        let mut children = Vec::new();
        for id in ["a", "b"] {
            let id = NodeId::from(id);
            children.push(id.clone());
            let body = FileBody::new(Content::Generated {
                size: 1 << 63,
                seed: 0,
                kind: GeneratedKind::Random,
            });
            nodes.insert(
                id.clone(),
                Arc::new(Node {
                    id: id.clone(),
                    name: id.0.clone(),
                    parent: Some(NodeId::from("d")),
                    mtime: fixture::default_mtime(),
                    owner: None,
                    readers: Readers::Everyone,
                    dialect_ids: BTreeMap::new(),
                    data: NodeData::File(Arc::new(body)),
                }),
            );
        }
        let folder = NodeId::from("d");
        nodes.insert(
            folder.clone(),
            Arc::new(Node {
                id: folder.clone(),
                name: "d".into(),
                parent: None,
                mtime: fixture::default_mtime(),
                owner: None,
                readers: Readers::Everyone,
                dialect_ids: BTreeMap::new(),
                data: NodeData::Folder(children),
            }),
        );
        let store = Tree::new(nodes, vec![folder.clone()], BTreeMap::new(), HashMap::new());
        let selection = [zipgate_api::SelectedItem {
            id: folder,
            expected_kind: None,
            name: None,
        }];
        let mut options = crate::planner::PlanOptions::default();
        let plan =
            crate::planner::plan(&store, &Principal::Anonymous, &selection, &mut options).unwrap();
        assert_eq!(plan.total_bytes, u64::MAX);
        options.max_bytes = Some(32 << 30);
        let refused = crate::planner::plan(&store, &Principal::Anonymous, &selection, &mut options);
        assert!(
            matches!(refused, Err(zipgate_api::Error::LimitExceeded { actual, .. }) if actual == u64::MAX),
            "{refused:?}"
        );
    }

    #[test]
    fn read_permission_follows_owner_and_readers() {
        let store = fixture::parse(
            r#"{"users":[{"id":"alice","token":"ta"},{"id":"bob","token":"tb"}],
                "nodes":[{"id":"p","name":"private.txt","owner":"alice","readers":[],"content":{"text":"x"}},
                         {"id":"s","name":"shared.txt","owner":"alice","readers":["bob"],"content":{"text":"x"}},
                         {"id":"o","name":"open.txt","content":{"text":"x"}}]}"#,
            None,
        )
        .unwrap();
        let alice = Principal::User(UserId("alice".into()));
        let bob = Principal::User(UserId("bob".into()));
        let node = |id: &str| store.node(&NodeId::from(id)).unwrap().clone();
        assert!(store.can_read(&alice, &node("p")));
        assert!(!store.can_read(&bob, &node("p")));
        assert!(store.can_read(&bob, &node("s")));
        assert!(!store.can_read(&Principal::Anonymous, &node("s")));
        assert!(store.can_read(&Principal::Anonymous, &node("o")));
        assert_eq!(store.authenticate("tb").unwrap().id, UserId("bob".into()));
        assert!(store.authenticate("nope").is_none());
    }
}
