//! Replays every checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the
//! code its cargo-fuzz target runs (`zipgate::fuzzing`), on stable Rust and
//! without libFuzzer, so every test run re-checks each seed and each past
//! crash. Also checks that the targets, their corpus directories, their
//! `fuzz/fuzz_targets/` files and `fuzz/Cargo.toml` name the same set.

use std::collections::BTreeSet;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn replay(name: &str, target: fn(&[u8])) {
    let dir = fuzz_dir().join("corpus").join(name);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no seeds", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|file| {
            let data = fs::read(file).unwrap();
            panic::catch_unwind(AssertUnwindSafe(|| target(&data))).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} {name} inputs failed (reproduce with `cargo fuzz run {name} <file>` in fuzz/):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

/// Every target in `zipgate::fuzzing::TARGETS`, each over its whole corpus;
/// a failure names the target and the failing seeds. A new target is
/// replayed by being listed there.
#[test]
fn every_corpus_replays_through_its_target() {
    let failures: Vec<String> = zipgate::fuzzing::TARGETS
        .iter()
        .filter_map(|(name, target)| {
            panic::catch_unwind(AssertUnwindSafe(|| replay(name, *target)))
                .err()
                .map(|e| {
                    e.downcast_ref::<String>()
                        .cloned()
                        .unwrap_or_else(|| format!("{name}: failed"))
                })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn names_in(dir: &Path, keep: impl Fn(&Path) -> Option<String>) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| keep(&entry.unwrap().path()))
        .collect()
}

#[test]
fn targets_corpora_and_fuzz_crate_agree() {
    let targets: BTreeSet<String> = zipgate::fuzzing::TARGETS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(
        targets.len(),
        zipgate::fuzzing::TARGETS.len(),
        "a name twice"
    );

    let corpora = names_in(&fuzz_dir().join("corpus"), |path| {
        path.is_dir()
            .then(|| path.file_name()?.to_str().map(str::to_owned))
            .flatten()
    });
    assert_eq!(corpora, targets, "fuzz/corpus/ directories");

    let sources = names_in(&fuzz_dir().join("fuzz_targets"), |path| {
        (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
    });
    assert_eq!(sources, targets, "fuzz/fuzz_targets/ files");

    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for name in &targets {
        let source =
            fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"))).unwrap();
        assert!(
            source.contains(&format!("zipgate::fuzzing::{name}(data)")),
            "fuzz_targets/{name}.rs must call zipgate::fuzzing::{name}"
        );
        assert!(
            manifest.contains(&format!(
                "name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\""
            )),
            "fuzz/Cargo.toml has no [[bin]] for {name}"
        );
    }
}
