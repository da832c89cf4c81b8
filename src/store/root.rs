//! Host files that fixtures name (`content.path`), opened only beneath one
//! directory: the fixture file's folder, or the server's `--content-root`.
//!
//! The check happens when a file is opened, at load and again at every
//! download, so a symlink swapped in after the fixtures were loaded cannot
//! lead out. On Linux the kernel does it (`openat2` with `RESOLVE_BENEATH`,
//! relative to the directory held open since start); elsewhere, or on a
//! kernel without `openat2` (before 5.6, or a seccomp filter that hides it),
//! the path is canonicalized and must stay under the canonical directory,
//! which a rename racing the open could still defeat.

use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};

#[derive(Debug)]
pub struct ContentRoot {
    /// The directory as it was given (absolute paths in fixtures may name it so).
    given: PathBuf,
    /// Its canonical path: what the portable fallback compares against.
    canonical: PathBuf,
    /// The directory itself, held open: renaming it or replacing it by a
    /// symlink later changes nothing about what opens beneath it.
    #[cfg(target_os = "linux")]
    dir: std::os::fd::OwnedFd,
    /// No symlink anywhere on the path, even one that stays beneath
    /// (`--root`: a served directory is served as it is, never through links).
    no_symlinks: bool,
}

impl ContentRoot {
    /// `dir` must be an existing directory; an empty path is the current one.
    pub fn new(dir: &Path) -> io::Result<ContentRoot> {
        let given = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let canonical = given.canonicalize()?;
        if !canonical.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", given.display()),
            ));
        }
        #[cfg(target_os = "linux")]
        let dir = {
            use rustix::fs::{Mode, OFlags};
            rustix::fs::open(
                &canonical,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?
        };
        Ok(ContentRoot {
            given: given.to_path_buf(),
            canonical,
            #[cfg(target_os = "linux")]
            dir,
            no_symlinks: false,
        })
    }

    /// The same root, refusing any symlink on a path (`RESOLVE_NO_SYMLINKS`),
    /// for a directory served as the tree.
    pub fn without_symlinks(mut self) -> ContentRoot {
        self.no_symlinks = true;
        self
    }

    /// The canonical directory.
    pub fn dir(&self) -> &Path {
        &self.canonical
    }

    /// `written` (a `content.path` as the fixture gives it) relative to the
    /// root: `None` when it climbs with `..`, or is absolute and not under
    /// the root as given or as canonicalized. Lexical only: `open` decides
    /// what the path leads to.
    pub fn relative(&self, written: &str) -> Option<PathBuf> {
        let path = Path::new(written);
        let rest = if path.is_absolute() {
            path.strip_prefix(&self.canonical)
                .or_else(|_| path.strip_prefix(&self.given))
                .ok()?
        } else {
            path
        };
        let mut out = PathBuf::new();
        for component in rest.components() {
            match component {
                Component::Normal(part) => out.push(part),
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
            }
        }
        (!out.as_os_str().is_empty()).then_some(out)
    }

    /// Opens `relative` (as [`ContentRoot::relative`] made it) for reading,
    /// never resolving outside the root; only a regular file opens.
    pub fn open(&self, relative: &Path) -> io::Result<File> {
        let file = self.open_beneath(relative)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(file)
    }

    #[cfg(target_os = "linux")]
    fn open_beneath(&self, relative: &Path) -> io::Result<File> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        use std::sync::atomic::{AtomicBool, Ordering};
        // Set once the kernel has said it has no openat2.
        static NO_OPENAT2: AtomicBool = AtomicBool::new(false);
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            // NONBLOCK: opening a FIFO must not wait for a writer (it is then
            // refused as not a regular file); it changes nothing for files.
            let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
            // Magic links (/proc/self/fd/…) would jump anywhere.
            let mut resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            if self.no_symlinks {
                resolve |= ResolveFlags::NO_SYMLINKS;
            }
            match rustix::fs::openat2(&self.dir, relative, flags, Mode::empty(), resolve) {
                Ok(fd) => return Ok(File::from(fd)),
                Err(rustix::io::Errno::NOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
                Err(errno) => return Err(errno.into()),
            }
        }
        self.open_canonical(relative)
    }

    #[cfg(not(target_os = "linux"))]
    fn open_beneath(&self, relative: &Path) -> io::Result<File> {
        self.open_canonical(relative)
    }

    /// The portable way: every symlink resolved first, then the prefix checked.
    fn open_canonical(&self, relative: &Path) -> io::Result<File> {
        let joined = self.canonical.join(relative);
        let full = joined.canonicalize()?;
        // Without symlinks the canonical path is the path itself.
        if !full.starts_with(&self.canonical) || (self.no_symlinks && full != joined) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "outside the content root",
            ));
        }
        // Checked before opening too: opening a FIFO would wait for a writer.
        if !std::fs::metadata(&full)?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        File::open(full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "zipgate-root-{}-{label}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("inside/sub")).unwrap();
        std::fs::write(dir.join("inside/sub/a.txt"), "a").unwrap();
        std::fs::write(dir.join("secret.txt"), "secret").unwrap();
        dir
    }

    #[test]
    fn paths_are_taken_relative_to_the_root_and_never_climb() {
        let dir = temp_dir("relative");
        let root = ContentRoot::new(&dir.join("inside")).unwrap();
        assert_eq!(root.relative("sub/a.txt"), Some(PathBuf::from("sub/a.txt")));
        assert_eq!(
            root.relative("./sub//a.txt"),
            Some(PathBuf::from("sub/a.txt"))
        );
        let absolute = dir.join("inside/sub/a.txt");
        assert_eq!(
            root.relative(absolute.to_str().unwrap()),
            Some(PathBuf::from("sub/a.txt"))
        );
        for refused in [
            "../secret.txt",
            "sub/../../secret.txt",
            "",
            ".",
            "/etc/passwd",
        ] {
            assert_eq!(root.relative(refused), None, "{refused:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_root_without_symlinks_refuses_even_links_that_stay_beneath() {
        let dir = temp_dir("nolinks");
        let inside = dir.join("inside");
        std::os::unix::fs::symlink("sub/a.txt", inside.join("in")).unwrap();
        std::os::unix::fs::symlink("sub", inside.join("subdir")).unwrap();
        let root = ContentRoot::new(&inside).unwrap().without_symlinks();
        assert!(root.open(Path::new("sub/a.txt")).is_ok());
        assert!(root.open(Path::new("in")).is_err());
        assert!(root.open(Path::new("subdir/a.txt")).is_err());
        assert!(
            root.open_canonical(Path::new("in")).is_err(),
            "the portable way too"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_may_not_lead_out_and_only_regular_files_open() {
        let dir = temp_dir("symlinks");
        let inside = dir.join("inside");
        std::os::unix::fs::symlink(dir.join("secret.txt"), inside.join("out")).unwrap();
        std::os::unix::fs::symlink("../secret.txt", inside.join("up")).unwrap();
        std::os::unix::fs::symlink("sub/a.txt", inside.join("in")).unwrap();
        let root = ContentRoot::new(&inside).unwrap();
        let read = |path: &str| {
            root.open(Path::new(path))
                .map(|mut f| {
                    let mut s = String::new();
                    io::Read::read_to_string(&mut f, &mut s).unwrap();
                    s
                })
                .ok()
        };
        assert_eq!(read("sub/a.txt").as_deref(), Some("a"));
        assert_eq!(read("in").as_deref(), Some("a"), "a link that stays inside");
        assert_eq!(read("out"), None);
        assert_eq!(read("up"), None);
        assert_eq!(read("sub"), None, "a directory");
        assert_eq!(read("missing"), None);
        // The fallback keeps to the same rules.
        assert!(root.open_canonical(Path::new("out")).is_err());
        assert!(root.open_canonical(Path::new("in")).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
