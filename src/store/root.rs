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
    #[cfg(unix)]
    dir: std::os::fd::OwnedFd,
    /// No symlink anywhere on the path, even one that stays beneath
    /// (`--root`: a served directory is served as it is, never through links).
    no_symlinks: bool,
    /// Tests take the fallback path even where `openat2` exists.
    without_openat2: bool,
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
        #[cfg(unix)]
        let dir = {
            use rustix::fs::{Mode, OFlags};
            rustix::fs::open(
                &canonical,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?
        };
        Ok(ContentRoot {
            given: given.to_path_buf(),
            canonical,
            #[cfg(unix)]
            dir,
            no_symlinks: false,
            without_openat2: false,
        })
    }

    /// The same root, refusing any symlink on a path (`RESOLVE_NO_SYMLINKS`),
    /// for a directory served as the tree.
    pub fn without_symlinks(mut self) -> ContentRoot {
        self.no_symlinks = true;
        self
    }

    /// The same root, opening as a kernel without `openat2` would have it.
    #[cfg(test)]
    pub fn without_openat2(mut self) -> ContentRoot {
        self.without_openat2 = true;
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
        let file = self.open_beneath(relative, false)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(file)
    }

    /// Opens the folder `relative` (empty: the root itself) for listing,
    /// with the same confinement as [`ContentRoot::open`].
    #[cfg(unix)]
    pub fn open_dir(&self, relative: &Path) -> io::Result<std::os::fd::OwnedFd> {
        let dir = self.open_beneath(relative, true)?;
        Ok(std::os::fd::OwnedFd::from(dir))
    }

    #[cfg(target_os = "linux")]
    fn open_beneath(&self, relative: &Path, directory: bool) -> io::Result<File> {
        use rustix::fs::{Mode, ResolveFlags};
        use std::sync::atomic::{AtomicBool, Ordering};
        // Set once the kernel has said it has no openat2.
        static NO_OPENAT2: AtomicBool = AtomicBool::new(false);
        if !NO_OPENAT2.load(Ordering::Relaxed) && !self.without_openat2 {
            // Magic links (/proc/self/fd/…) would jump anywhere.
            let mut resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            if self.no_symlinks {
                resolve |= ResolveFlags::NO_SYMLINKS;
            }
            let at = if relative.as_os_str().is_empty() {
                Path::new(".")
            } else {
                relative
            };
            let flags = open_flags(directory);
            match rustix::fs::openat2(&self.dir, at, flags, Mode::empty(), resolve) {
                Ok(fd) => return Ok(File::from(fd)),
                Err(rustix::io::Errno::NOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
                Err(errno) => return Err(errno.into()),
            }
        }
        self.open_fallback(relative, directory)
    }

    #[cfg(not(target_os = "linux"))]
    fn open_beneath(&self, relative: &Path, directory: bool) -> io::Result<File> {
        self.open_fallback(relative, directory)
    }

    /// Without `openat2`: a served directory (no symlinks at all) is walked
    /// one component at a time with `O_NOFOLLOW`, which no rename can lead
    /// out of; a fixture's content root (symlinks that stay beneath are
    /// fine) compares canonical paths.
    fn open_fallback(&self, relative: &Path, directory: bool) -> io::Result<File> {
        #[cfg(unix)]
        if self.no_symlinks {
            return self.open_per_component(relative, directory);
        }
        if directory {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "folders are listed only beneath a root without symlinks",
            ));
        }
        self.open_canonical(relative)
    }

    #[cfg(unix)]
    fn open_per_component(&self, relative: &Path, directory: bool) -> io::Result<File> {
        use rustix::fs::{Mode, OFlags};
        let mut names = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(name) => names.push(name),
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "outside the content root",
                    ))
                }
            }
        }
        let through = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let Some((last, parents)) = names.split_last() else {
            let root = rustix::fs::openat(&self.dir, ".", open_flags(directory), Mode::empty())?;
            return Ok(File::from(root));
        };
        let mut dir: Option<std::os::fd::OwnedFd> = None;
        for name in parents {
            let next = match &dir {
                Some(dir) => rustix::fs::openat(dir, *name, through, Mode::empty())?,
                None => rustix::fs::openat(&self.dir, *name, through, Mode::empty())?,
            };
            dir = Some(next);
        }
        let flags = open_flags(directory) | OFlags::NOFOLLOW;
        let fd = match &dir {
            Some(dir) => rustix::fs::openat(dir, *last, flags, Mode::empty())?,
            None => rustix::fs::openat(&self.dir, *last, flags, Mode::empty())?,
        };
        Ok(File::from(fd))
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

/// Reading a file, or listing a folder. NONBLOCK: opening a FIFO must not
/// wait for a writer (it is then refused as not a regular file); it
/// changes nothing for files.
#[cfg(unix)]
fn open_flags(directory: bool) -> rustix::fs::OFlags {
    use rustix::fs::OFlags;
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY;
    if directory {
        flags | OFlags::DIRECTORY
    } else {
        flags | OFlags::NONBLOCK
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
        assert!(root.open_dir(Path::new("sub")).is_ok());
        assert!(root.open_dir(Path::new("subdir")).is_err());
        // Without openat2: one component at a time, none followed.
        let fallback = ContentRoot::new(&inside)
            .unwrap()
            .without_symlinks()
            .without_openat2();
        assert!(fallback.open(Path::new("sub/a.txt")).is_ok());
        assert!(fallback.open(Path::new("in")).is_err());
        assert!(fallback.open(Path::new("subdir/a.txt")).is_err());
        assert!(fallback.open(Path::new("sub")).is_err(), "a folder");
        assert!(fallback.open(Path::new("../secret.txt")).is_err());
        assert!(fallback.open_dir(Path::new("")).is_ok());
        assert!(fallback.open_dir(Path::new("sub")).is_ok());
        assert!(fallback.open_dir(Path::new("subdir")).is_err());
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
