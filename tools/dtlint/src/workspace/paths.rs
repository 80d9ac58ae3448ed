//! What the repository's layout rules need to know about paths that were
//! not read as files: found here, in the discover stage, once, so rules
//! answer from memory and never touch the disk.
//!
//! Listed: the directories that hold a kustomization or a discovered file,
//! the directories kustomizations reference, and each environment's overlay
//! directory for every kustomization directory's name; stated: every path a
//! kustomization references. A path nobody asked about here reads as absent.

use std::path::{Path, PathBuf};

use rustc_hash::{FxHashMap, FxHashSet};

use super::Workspace;
use crate::config::Config;

/// What a path turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    File,
    Dir,
    /// A device, a FIFO, a socket: it exists, but is neither.
    Other,
    Missing,
}

/// Paths and what they are (symbolic links followed).
#[derive(Debug, Default)]
pub struct PathFacts {
    kinds: FxHashMap<PathBuf, PathKind>,
}

fn kind_of(path: &Path) -> PathKind {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => PathKind::Dir,
        Ok(m) if m.is_file() => PathKind::File,
        Ok(_) => PathKind::Other,
        Err(_) => PathKind::Missing,
    }
}

impl PathFacts {
    pub fn get(&self, path: &Path) -> Option<PathKind> {
        self.kinds.get(path).copied()
    }

    /// State `path`, and list it when it is a directory.
    fn learn(&mut self, path: &Path, list: bool) {
        if self.kinds.contains_key(path) && !list {
            return;
        }
        let kind = kind_of(path);
        self.kinds.insert(path.to_path_buf(), kind);
        if list
            && kind == PathKind::Dir
            && let Ok(entries) = std::fs::read_dir(path)
        {
            for e in entries.flatten() {
                let p = e.path();
                let kind = match e.file_type() {
                    Ok(t) if t.is_symlink() => kind_of(&p),
                    Ok(t) if t.is_dir() => PathKind::Dir,
                    Ok(t) if t.is_file() => PathKind::File,
                    Ok(_) => PathKind::Other,
                    Err(_) => PathKind::Missing,
                };
                self.kinds.insert(p, kind);
            }
        }
    }
}

impl Workspace {
    /// Find the path facts the rules will ask about (see the module docs).
    pub(super) fn find_path_facts(&self, config: &Config) -> PathFacts {
        let mut facts = PathFacts::default();
        let mut listed: FxHashSet<PathBuf> = FxHashSet::default();
        let mut list = |facts: &mut PathFacts, dir: &Path| {
            if listed.insert(dir.to_path_buf()) {
                facts.learn(dir, true);
            }
        };
        for k in &self.kustomizations {
            list(&mut facts, &k.dir);
            if let Some(service) = k.dir.file_name() {
                for e in config.environments.values() {
                    list(&mut facts, &self.root.join(&e.overlays).join(service));
                }
            }
        }
        for (_, f) in self.sources.iter() {
            if let Some(dir) = f.abs.parent() {
                list(&mut facts, dir);
            }
        }
        for k in &self.kustomizations {
            for r in &k.refs {
                facts.learn(&r.path, false);
                if facts.get(&r.path) == Some(PathKind::Dir) {
                    list(&mut facts, &r.path);
                }
            }
        }
        facts
    }
}
