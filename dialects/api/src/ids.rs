//! Dialect id schemes over neutral node ids: an id pinned in the fixture
//! (`"ids": {"<dialect>": "…"}`), else one derived from the neutral id, and
//! the reverse lookup, rebuilt whenever the store changes.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::rng::fnv1a;
use crate::{Core, NodeId, NodeInfo};

pub struct DialectIds {
    dialect: &'static str,
    derive: fn(&NodeId) -> String,
    index: Mutex<Option<(u64, HashMap<String, NodeId>)>>,
}

impl DialectIds {
    pub fn new(dialect: &'static str, derive: fn(&NodeId) -> String) -> Self {
        DialectIds {
            dialect,
            derive,
            index: Mutex::new(None),
        }
    }

    /// The node's id in this dialect's scheme.
    pub fn id_of(&self, node: &NodeInfo) -> String {
        match node.dialect_ids.get(self.dialect) {
            Some(pinned) => pinned.clone(),
            None => (self.derive)(&node.id),
        }
    }

    /// The neutral id behind a dialect id.
    pub fn resolve(&self, core: &dyn Core, id: &str) -> Option<NodeId> {
        let generation = core.store_generation();
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        if index.as_ref().is_none_or(|(g, _)| *g != generation) {
            let map = core
                .nodes()
                .iter()
                .map(|node| (self.id_of(node), node.id.clone()))
                .collect();
            *index = Some((generation, map));
        }
        index.as_ref().and_then(|(_, map)| map.get(id).cloned())
    }
}

/// A decimal id of `digits` digits (no leading zero) derived from `salt` and the neutral id.
pub fn derived_number(salt: &str, id: &NodeId, digits: u32) -> String {
    let low = 10u64.pow(digits - 1);
    let span = 9 * low;
    (low + fnv1a(format!("{salt}:{}", id.as_str()).as_bytes()) % span).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_numbers_have_the_asked_width() {
        for digits in [7, 12] {
            let id = derived_number("x", &NodeId::from("file-notes"), digits);
            assert_eq!(id.len() as u32, digits);
            assert!(id.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
