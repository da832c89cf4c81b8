//! Links ISA-L's igzip when the machine has it (Debian: `libisal-dev`), for
//! deflate levels 1–3 about 2.5x faster per core than zlib-rs. Without it the
//! build still works and every level uses zlib-rs.
//!
//! `ZIPGATE_ISAL=1` makes a missing library an error (CI sets it, so the
//! tested build is the fast one); `ZIPGATE_ISAL=0` leaves ISA-L out.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(zipgate_isal)");
    println!("cargo::rerun-if-env-changed=ZIPGATE_ISAL");
    println!("cargo::rerun-if-env-changed=ISAL_INCLUDE_DIR");
    println!("cargo::rerun-if-changed=src/zip/isal_shim.c");
    let wanted = env::var("ZIPGATE_ISAL").ok();
    if wanted.as_deref() == Some("0") {
        return;
    }
    match isal_include_dir() {
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

/// The folder holding `isa-l/igzip_lib.h`, if the library is installed.
/// The system folders only serve a native build: a cross build names its
/// own with `ISAL_INCLUDE_DIR`.
fn isal_include_dir() -> Option<PathBuf> {
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
        .into_iter()
        .find(|dir| Path::new(dir).join("isa-l/igzip_lib.h").is_file())
}
