//! What the repository's layout rules need to know about paths that were
//! not read as files: found here, in the discover stage, once, so rules
//! answer from memory and never touch the disk.
//!
//! Only what a rule can ask about and the files read do not answer is
//! stated (one `stat` each): every path a kustomization references that is
//! neither a file read nor a kustomization directory, and the kustomization
//! file names inside such a directory; each environment's overlay directory
//! for every kustomization directory's name, with its kustomization file
//! names; the kustomization file names beside files that no kustomization
//! directory holds; and the standard service files missing from the files
//! read in each service directory (see [`SERVICE_FILES`]).
//! A path nobody asked about here reads as absent.

use std::path::Path;

use super::Workspace;
use crate::config::{Config, SERVICE_FILES, SERVICE_WORKLOAD_FILES};
use crate::kustomize::FILE_NAMES;

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
    kinds: crate::pathmap::PathMap<PathKind>,
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

    /// State `path` (once).
    fn learn(&mut self, path: &Path) -> PathKind {
        if let Some(&kind) = self.kinds.get(path) {
            return kind;
        }
        let kind = kind_of(path);
        self.kinds.insert(path, kind);
        kind
    }
}

impl Workspace {
    /// Find the path facts the rules will ask about (see the module docs).
    pub(super) fn find_path_facts(&self, config: &Config) -> PathFacts {
        let mut facts = PathFacts::default();
        let known = |p: &Path| {
            self.sources.find_abs(p).is_some() || self.kustomization_dirs.contains_key(p)
        };
        // The kustomization file names in `dir`, when it is a directory
        // whose kustomization was not read.
        let kustomization_names = |facts: &mut PathFacts, dir: &Path| {
            if self.kustomization_dirs.contains_key(dir) || facts.learn(dir) != PathKind::Dir {
                return;
            }
            for name in FILE_NAMES {
                let file = dir.join(name);
                if !known(&file) {
                    facts.learn(&file);
                }
            }
        };
        for k in &self.kustomizations {
            for r in &k.refs {
                if !known(&r.path) && facts.learn(&r.path) == PathKind::Dir {
                    kustomization_names(&mut facts, &r.path);
                }
            }
            if let Some(service) = k.dir.file_name() {
                for e in config
                    .environments
                    .values()
                    .filter(|e| !e.overlays.is_empty())
                {
                    kustomization_names(&mut facts, &self.root.join(&e.overlays).join(service));
                }
            }
        }
        let mut dirs = crate::pathmap::PathSet::default();
        for (_, f) in self.sources.iter() {
            if let Some(dir) = f.abs.parent()
                && dirs.insert(dir)
            {
                kustomization_names(&mut facts, dir);
            }
        }
        for k in &self.kustomizations {
            if !config.is_service_dir(&crate::source::display_path(&self.root, &k.dir)) {
                continue;
            }
            // Either workload file will do: the others matter only when
            // none was read.
            let workload_read = SERVICE_WORKLOAD_FILES
                .iter()
                .any(|name| known(&k.dir.join(name)));
            let wanted = if workload_read {
                &[][..]
            } else {
                &SERVICE_WORKLOAD_FILES[..]
            };
            for name in wanted.iter().chain(SERVICE_FILES) {
                let file = k.dir.join(name);
                if !known(&file) {
                    facts.learn(&file);
                }
            }
        }
        facts
    }
}
