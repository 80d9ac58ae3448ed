//! Maps and sets keyed by paths, hashed and compared by their bytes.
//!
//! std's `Path` hashes and compares component by component, which is
//! several times slower than hashing the bytes, and dtlint looks paths up
//! hundreds of thousands of times on a large repository (every
//! kustomization entry, every file). Keys are kept in canonical form (what
//! `Path::components` makes of them: no `//`, no `/./`, no trailing `/`),
//! and a lookup canonicalises its path only when its bytes show it is not
//! canonical already, so these answer exactly as a `HashMap<PathBuf, V>`
//! does.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

/// `p` as `Path::components` would rebuild it, borrowed when it already is.
pub fn canonical(p: &Path) -> Cow<'_, OsStr> {
    let b = p.as_os_str().as_encoded_bytes();
    let clean = !cfg!(windows)
        && memchr::memmem::find(b, b"//").is_none()
        && memchr::memmem::find(b, b"/./").is_none()
        && (b.len() <= 1 || !b.ends_with(b"/"))
        && !b.ends_with(b"/.")
        && !b.starts_with(b"./")
        && b != b".";
    if clean {
        Cow::Borrowed(p.as_os_str())
    } else {
        Cow::Owned(p.components().collect::<PathBuf>().into_os_string())
    }
}

/// A `HashMap<PathBuf, V>` with byte hashing (see the module docs).
#[derive(Debug, Clone)]
pub struct PathMap<V> {
    map: FxHashMap<OsString, V>,
}

impl<V> Default for PathMap<V> {
    fn default() -> Self {
        Self {
            map: FxHashMap::default(),
        }
    }
}

impl<V> PathMap<V> {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            map: FxHashMap::with_capacity_and_hasher(n, rustc_hash::FxBuildHasher),
        }
    }

    pub fn reserve(&mut self, n: usize) {
        self.map.reserve(n);
    }

    pub fn insert(&mut self, path: &Path, value: V) -> Option<V> {
        self.map.insert(canonical(path).into_owned(), value)
    }

    pub fn get(&self, path: &Path) -> Option<&V> {
        let key: &OsStr = &canonical(path);
        self.map.get(key)
    }

    pub fn contains_key(&self, path: &Path) -> bool {
        self.get(path).is_some()
    }

    /// The value at `path`, inserted with `make` when there is none.
    pub fn get_or_insert_with(&mut self, path: &Path, make: impl FnOnce() -> V) -> &mut V {
        self.map
            .entry(canonical(path).into_owned())
            .or_insert_with(make)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<'p, V> FromIterator<(&'p Path, V)> for PathMap<V> {
    fn from_iter<I: IntoIterator<Item = (&'p Path, V)>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut m = Self::with_capacity(iter.size_hint().0);
        for (p, v) in iter {
            m.insert(p, v);
        }
        m
    }
}

/// A `HashSet<PathBuf>` with byte hashing (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct PathSet {
    map: PathMap<()>,
}

impl PathSet {
    /// True when `path` was not in the set.
    pub fn insert(&mut self, path: &Path) -> bool {
        self.map.insert(path, ()).is_none()
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.map.contains_key(path)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<'p> FromIterator<&'p Path> for PathSet {
    fn from_iter<I: IntoIterator<Item = &'p Path>>(iter: I) -> Self {
        Self {
            map: iter.into_iter().map(|p| (p, ())).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree_with_std_path_equality() {
        let mut m = PathMap::default();
        m.insert(Path::new("/r/a/b.yaml"), 1);
        m.insert(Path::new("/r/dir/"), 2);
        for (q, want) in [
            ("/r/a/b.yaml", Some(1)),
            ("/r//a/b.yaml", Some(1)),
            ("/r/./a/b.yaml", Some(1)),
            ("/r/dir", Some(2)),
            ("/r/dir/", Some(2)),
            ("/r/dir/.", Some(2)),
            ("/r/a/../a/b.yaml", None), // `..` is kept, as by `Path`
            ("/r/a/b.yml", None),
        ] {
            assert_eq!(m.get(Path::new(q)).copied(), want, "{q}");
            // The same answer as std's map.
            let std: std::collections::HashMap<PathBuf, i32> = [
                (PathBuf::from("/r/a/b.yaml"), 1),
                (PathBuf::from("/r/dir/"), 2),
            ]
            .into_iter()
            .collect();
            assert_eq!(std.get(Path::new(q)).copied(), want, "std {q}");
        }
        let mut s = PathSet::default();
        assert!(s.insert(Path::new("a/b")));
        assert!(!s.insert(Path::new("a//b/")));
        assert!(s.contains(Path::new("a/b/.")));
        assert_eq!(s.len(), 1);
    }
}
