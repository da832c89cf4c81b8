//! The same tree served from the fixture, from a fixture read as a store,
//! and from a directory gives byte-identical archives over real HTTP: the
//! store behind a tree changes nothing a client sees.

mod common;

use std::sync::Arc;

use zipgate::store::directory::DirectoryStore;
use zipgate::store::Tree;
use zipgate::ServerHandle;

use common::*;

#[tokio::test]
async fn a_fixture_a_fixture_as_a_store_and_a_directory_give_the_same_archives() {
    let fixture = start_default().await;
    let as_store = serve_store(Arc::new(Tree::embedded_default().unwrap())).await;

    let dir = alice_home_on_disk("stores");
    let on_disk = serve_store(Arc::new(DirectoryStore::new(dir.path()).unwrap())).await;

    // Neutral ids of a store are paths from its top.
    for (fixture_id, path) in [
        ("folder-reports", "Alice/Documents/Reports"),
        ("file-overview", "Alice/Documents/Überblick – 日本語.txt"),
        ("folder-empty", "Alice/Documents/Empty"),
        ("file-photo", "Alice/Media/photo.jpg"),
    ] {
        let expected = stored_zip(&fixture, fixture_id).await;
        assert_eq!(
            stored_zip(&as_store, path).await,
            expected,
            "{path} from the fixture read as a store"
        );
        assert_eq!(
            stored_zip(&on_disk, path).await,
            expected,
            "{path} from a directory"
        );
    }
    // Both stores list the same tree.
    let names = |server: &ServerHandle| {
        let store = server.state().store();
        let mut paths: Vec<String> = store.nodes().map(|n| n.id.0.clone()).collect();
        paths.sort();
        paths
    };
    let on_disk_paths = names(&on_disk);
    let under_home: Vec<String> = names(&as_store)
        .into_iter()
        .filter(|p| p == "Alice" || p.starts_with("Alice/"))
        .collect();
    assert_eq!(on_disk_paths, under_home);
}
