//! Bounded rendering, before kustomize runs: every path a kustomization
//! references is resolved (symlinks too) and must be a regular file or a
//! directory inside the repository (or `render.allow-paths`), no larger than
//! `max_file_size`. A build whose kustomizations reference anything else is
//! not run: kustomize reads `/dev/zero` until memory runs out, blocks on a
//! FIFO forever and follows `../../..` wherever it leads.
//!
//! Remote references (`https://…`, `github.com/…`) are never fetched unless
//! `render.allow-paths` lists a prefix of them: a lint run stays offline.
//!
//! This module reads only metadata, never a file's content, except
//! [`read_bounded`], which reads at most a given number of bytes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dtlint_yaml::Span;

use crate::kustomize::{self, Kustomization};

pub use crate::config::render::RenderSettings;
pub use crate::subprocess::human_size;

/// Why a referenced path is not given to kustomize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Outside the repository and the allow-list: as written, or (`via`)
    /// once symbolic links are followed.
    Outside {
        via: Option<PathBuf>,
    },
    /// A FIFO, a device or a socket.
    NotRegular {
        what: &'static str,
    },
    SymlinkLoop,
    TooLarge {
        size: u64,
        limit: u64,
    },
    Remote,
    Unreadable(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Outside { via: None } => write!(f, "is outside the repository"),
            Self::Outside { via: Some(real) } => write!(
                f,
                "resolves to `{}`, outside the repository",
                real.display()
            ),
            Self::NotRegular { what } => write!(f, "is {what}, not a regular file or directory"),
            Self::SymlinkLoop => write!(f, "is a symbolic link loop"),
            Self::TooLarge { size, limit } => write!(
                f,
                "is {}, over the {} limit (`max_file_size`)",
                human_size(*size),
                human_size(*limit)
            ),
            Self::Remote => write!(f, "is a remote reference, not fetched by dtlint"),
            Self::Unreadable(e) => write!(f, "cannot be inspected: {e}"),
        }
    }
}

/// A kustomization entry that references something kustomize must not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsafeRef {
    /// The kustomization file that has the entry (absolute).
    pub kustomization: PathBuf,
    /// The entry as written.
    pub raw: String,
    pub span: Span,
    pub problem: Problem,
}

impl UnsafeRef {
    /// What to tell the user.
    pub fn message(&self) -> String {
        let hint = match self.problem {
            Problem::Outside { .. } | Problem::Remote => {
                "; list it under `[render] allow-paths` in dtlint.toml if it is meant"
            }
            _ => "",
        };
        format!(
            "`{}` {}: overlays that use this kustomization are not built{hint}",
            self.raw, self.problem
        )
    }
}

/// What discovery already knows about a path: `Some` for the files and
/// kustomization directories it reached by walking real directories from the
/// root (so through no symbolic link) and read within the size limit.
pub type Known<'a> = dyn Fn(&Path) -> Option<Checked> + 'a;

/// What a checked path turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    File,
    Dir,
    /// Does not exist (the `kustomization-missing-file` rule's finding;
    /// kustomize fails on it quickly).
    Missing,
}

/// The limits of one run, from `dtlint.toml`.
#[derive(Debug, Clone)]
pub struct Guard {
    /// The repository root as given and resolved.
    root: PathBuf,
    root_real: PathBuf,
    /// Allowed paths, resolved.
    allow: Vec<PathBuf>,
    /// Allowed remote prefixes.
    allow_remote: Vec<String>,
    pub max_file_size: u64,
    pub timeout: Duration,
    pub max_output: u64,
}

impl Guard {
    pub fn new(root: &Path, settings: &RenderSettings, max_file_size: u64) -> Self {
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        let root_real = std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
        let mut allow = Vec::new();
        let mut allow_remote = Vec::new();
        for a in &settings.allow_paths {
            if kustomize::is_remote(a) {
                allow_remote.push(a.clone());
                continue;
            }
            let p = kustomize::normalize(&root, a);
            // An allowed path that does not exist allows nothing.
            if let Ok(real) = std::fs::canonicalize(&p) {
                allow.push(real);
            }
            allow.push(p);
        }
        Self {
            root,
            root_real,
            allow,
            allow_remote,
            max_file_size,
            timeout: Duration::from_secs(settings.timeout_seconds.max(1)),
            max_output: settings.max_output_bytes.max(1),
        }
    }

    fn inside(&self, p: &Path, real: bool) -> bool {
        let root = if real { &self.root_real } else { &self.root };
        p.starts_with(root) || self.allow.iter().any(|a| p.starts_with(a))
    }

    /// May kustomize fetch this remote reference?
    pub fn check_remote(&self, raw: &str) -> Option<Problem> {
        (!self
            .allow_remote
            .iter()
            .any(|prefix| raw.starts_with(prefix.as_str())))
        .then_some(Problem::Remote)
    }

    /// Check one referenced path (lexically resolved against its
    /// kustomization's directory). `known` answers for paths discovery
    /// already reached by walking real directories from the root (so without
    /// a symbolic link on the way) and found safe: they need no system call.
    pub fn check(&self, path: &Path, known: &Known<'_>) -> Result<Checked, Problem> {
        if let Some(c) = known(path) {
            return Ok(c);
        }
        if !self.inside(path, false) {
            return Err(Problem::Outside { via: None });
        }
        let real = match std::fs::canonicalize(path) {
            Ok(real) => real,
            Err(e) if is_loop(&e) => return Err(Problem::SymlinkLoop),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Checked::Missing),
            Err(e) => return Err(Problem::Unreadable(e.to_string())),
        };
        if !self.inside(&real, true) {
            return Err(Problem::Outside { via: Some(real) });
        }
        let meta = std::fs::metadata(&real).map_err(|e| Problem::Unreadable(e.to_string()))?;
        let t = meta.file_type();
        if t.is_dir() {
            return Ok(Checked::Dir);
        }
        if !t.is_file() {
            return Err(Problem::NotRegular {
                what: file_type_name(t),
            });
        }
        if meta.len() > self.max_file_size {
            return Err(Problem::TooLarge {
                size: meta.len(),
                limit: self.max_file_size,
            });
        }
        Ok(Checked::File)
    }

    /// Every unsafe entry of `kustomizations`, each with its file on disk.
    pub fn unsafe_refs<'k>(
        &self,
        kustomizations: impl IntoIterator<Item = (&'k Kustomization, PathBuf)>,
        known: &Known<'_>,
    ) -> Vec<UnsafeRef> {
        let mut out = Vec::new();
        for (k, file) in kustomizations {
            self.check_kustomization(k, &file, known, &mut |_, _| {}, &mut out);
        }
        out
    }

    /// Check the entries of one kustomization; `found` is told of every
    /// safe path and what it is.
    pub fn check_kustomization(
        &self,
        k: &Kustomization,
        file: &Path,
        known: &Known<'_>,
        found: &mut dyn FnMut(&kustomize::PathRef, Checked),
        out: &mut Vec<UnsafeRef>,
    ) {
        for (raw, span) in &k.remote {
            if let Some(problem) = self.check_remote(raw) {
                out.push(UnsafeRef {
                    kustomization: file.to_path_buf(),
                    raw: raw.clone(),
                    span: *span,
                    problem,
                });
            }
        }
        for r in &k.refs {
            match self.check(&r.path, known) {
                Ok(c) => found(r, c),
                Err(problem) => out.push(UnsafeRef {
                    kustomization: file.to_path_buf(),
                    raw: r.raw.clone(),
                    span: r.span,
                    problem,
                }),
            }
        }
    }
}

fn is_loop(e: &std::io::Error) -> bool {
    rustix::io::Errno::from_io_error(e) == Some(rustix::io::Errno::LOOP)
}

fn file_type_name(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Read a regular file of at most `limit` bytes (never more, even if it
/// grows meanwhile); `None` for anything else.
pub fn read_bounded(path: &Path, limit: u64) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > limit {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 <= limit).then_some(bytes)
}

/// [`read_bounded`] as text.
pub fn read_bounded_text(path: &Path, limit: u64) -> Option<String> {
    String::from_utf8(read_bounded(path, limit)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(root: &Path) -> Guard {
        Guard::new(root, &RenderSettings::default(), 1024)
    }

    #[test]
    fn paths_are_judged() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("ok.yaml"), "a: b\n").unwrap();
        std::fs::write(root.join("big.yaml"), vec![b'#'; 2048]).unwrap();
        std::fs::write(dir.path().join("outside.yaml"), "a: b\n").unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        std::os::unix::fs::symlink("../outside.yaml", root.join("link.yaml")).unwrap();
        let g = guard(&root);
        let none = |_: &Path| None;
        assert_eq!(g.check(&root.join("ok.yaml"), &none), Ok(Checked::File));
        assert_eq!(g.check(&root.join("sub"), &none), Ok(Checked::Dir));
        assert_eq!(g.check(&root.join("nope"), &none), Ok(Checked::Missing));
        assert_eq!(
            g.check(&root.join("loop"), &none),
            Err(Problem::SymlinkLoop)
        );
        assert!(matches!(
            g.check(&root.join("big.yaml"), &none),
            Err(Problem::TooLarge {
                size: 2048,
                limit: 1024
            })
        ));
        assert!(matches!(
            g.check(&root.join("link.yaml"), &none),
            Err(Problem::Outside { via: Some(_) })
        ));
        assert_eq!(
            g.check(Path::new("/dev/zero"), &none),
            Err(Problem::Outside { via: None })
        );
        let allowed = Guard::new(
            &root,
            &RenderSettings {
                allow_paths: vec!["/dev".into(), "https://example.com/".into()],
                ..RenderSettings::default()
            },
            1024,
        );
        assert_eq!(
            allowed.check(Path::new("/dev/zero"), &none),
            Err(Problem::NotRegular {
                what: "a character device"
            })
        );
        assert_eq!(allowed.check_remote("https://example.com/x"), None);
        assert_eq!(
            g.check_remote("https://example.com/x"),
            Some(Problem::Remote)
        );
    }

    #[test]
    fn bounded_reads_stop_at_the_limit() {
        assert_eq!(read_bounded(Path::new("/dev/zero"), 10), None);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "12345").unwrap();
        assert_eq!(read_bounded(&f, 5).as_deref(), Some(&b"12345"[..]));
        assert_eq!(read_bounded(&f, 4), None);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(16 * 1024 * 1024), "16 MiB");
        assert_eq!(human_size(300), "300 B");
    }
}
