//! Links ISA-L's igzip when the machine has it (Debian: `libisal-dev`), for
//! deflate levels 1–3 about 2.5x faster per core than zlib-rs. Without it the
//! build still works and every level uses zlib-rs.
//!
//! The `isal` feature (on by default) asks for it; `--no-default-features`
//! never links it. `ZIPGATE_ISAL=1` makes a missing library an error (CI
//! sets it, so the tested build is the fast one); `ZIPGATE_ISAL=0` leaves
//! ISA-L out as the feature being off does.
//!
//! The probe runs again when the header appears or changes (installing
//! `libisal-dev` after a build), not only when the variables change.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(zipgate_isal)");
    println!("cargo::rerun-if-env-changed=ZIPGATE_ISAL");
    println!("cargo::rerun-if-env-changed=ISAL_INCLUDE_DIR");
    println!("cargo::rerun-if-changed=src/zip/isal_shim.c");
    let wanted = env::var("ZIPGATE_ISAL").ok();
    if wanted.as_deref() == Some("0") || env::var_os("CARGO_FEATURE_ISAL").is_none() {
        return;
    }
    let candidates = candidate_dirs();
    // A folder that does not exist is left unwatched: its parent (`/opt`)
    // could be a large tree to scan on every build.
    for dir in candidates.iter().filter(|dir| dir.is_dir()) {
        println!("cargo::rerun-if-changed={}", watched(dir).display());
    }
    match candidates
        .into_iter()
        .find(|dir| dir.join(HEADER).is_file())
    {
        Some(include) => {
            cc::Build::new()
                .file("src/zip/isal_shim.c")
                .include(include)
                .opt_level(2)
                .compile("zipgate_isal_shim");
            println!("cargo::rustc-link-lib=isal");
            println!("cargo::rustc-cfg=zipgate_isal");
        }
        None if wanted.as_deref() == Some("1") => {
            panic!("ZIPGATE_ISAL=1 but isa-l/igzip_lib.h was not found (apt install libisal-dev)")
        }
        None => println!(
            "cargo::warning=ISA-L not found: deflate uses zlib-rs only \
             (apt install libisal-dev for faster levels 1-3)"
        ),
    }
}

const HEADER: &str = "isa-l/igzip_lib.h";

/// What tells of the header appearing or changing below `dir` (a folder
/// that exists): the header itself once it exists, else the nearest folder
/// on its way that does (Cargo scans a folder's files for changes; a path
/// that does not exist would make it run this script, and rebuild the
/// crate, every time).
fn watched(dir: &Path) -> PathBuf {
    let header = dir.join(HEADER);
    header
        .ancestors()
        .find(|path| path.exists())
        .unwrap_or(dir)
        .to_path_buf()
}

/// Folders that may hold `isa-l/igzip_lib.h`. The system folders only
/// serve a native build: a cross build names its own with
/// `ISAL_INCLUDE_DIR`.
fn candidate_dirs() -> Vec<PathBuf> {
    let native = env::var("TARGET").ok() == env::var("HOST").ok();
    let system: &[&str] = if native {
        &[
            "/usr/include",
            "/usr/local/include",
            "/opt/homebrew/include",
        ]
    } else {
        &[]
    };
    let mut candidates: Vec<PathBuf> = env::var_os("ISAL_INCLUDE_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.extend(system.iter().map(PathBuf::from));
    candidates
}
