//! Where a setting of a rendered object is written in the repository: the
//! `file:line` a human edits (the base or overlay file, a patch, a
//! generator literal), not the rendered stream.
//!
//! The render keeps kustomize's build metadata for every object
//! ([`render::Provenance`]: the file it was read from and the
//! kustomizations that transformed it). A setting is looked up, by its path
//! in the object (keys, and list items by `name`), in the patches those
//! kustomizations applied (the last applied first), then in their
//! generators (`literals`, `envs` files), then in the origin file. Files
//! are read as YAML with positions (`dtlint-yaml`); an encrypted SOPS file
//! keeps its keys in the clear, so a Secret's key is found in the file a
//! human edits with `sops`.
//!
//! Used by failure reports: each variable a container got, with the line
//! that set it and, for `valueFrom`/`envFrom`, the line of the ConfigMap or
//! Secret key it read.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use dtlint_yaml::{Limits, LineIndex, Node};
use serde_json::Value;

use crate::manifest::Object;
use crate::render::Provenance;

/// Files larger than this are not read for positions (manifests are small).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// A line of a repository file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Line {
    /// Relative to the repository, `/`-separated.
    pub file: String,
    /// 1-based.
    pub line: u32,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One step of a path into an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    /// The item of a list whose `name` is this.
    Named(&'a str),
    /// The n-th item of a list (for lists without names, like `envFrom`).
    Index(usize),
}

/// Where one environment variable of a container came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSource {
    pub name: String,
    /// The `env` item or `envFrom` entry that gave it.
    pub at: Option<Line>,
    /// What it read, for `valueFrom` and `envFrom`: `Secret postgres-ac key
    /// password`, with the line of that key.
    pub via: Option<(String, Option<Line>)>,
    /// Set by the runtime (`HOSTNAME`, the image's ENV), not the manifest.
    pub runtime: bool,
}

impl fmt::Display for EnvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.runtime {
            return write!(f, "{}: set by the container runtime", self.name);
        }
        write!(f, "{}", self.name)?;
        match &self.at {
            Some(at) => write!(f, " at {at}")?,
            None => write!(f, " (no file in git)")?,
        }
        if let Some((what, line)) = &self.via {
            write!(f, ", from {what}")?;
            match line {
                Some(l) => write!(f, " at {l}")?,
                None => write!(f, " (no file in git)")?,
            }
        }
        Ok(())
    }
}

/// The provenance of every rendered object of a run, by [`Object::id`].
#[derive(Debug, Default)]
pub struct Origins {
    repo: PathBuf,
    objects: BTreeMap<String, Provenance>,
}

/// A repository file's text, or `None` when it cannot be read or is larger
/// than [`MAX_FILE_BYTES`] (no more than that is ever read).
fn read_small(path: &Path) -> Option<String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).ok()?;
    if file.metadata().ok()?.len() > MAX_FILE_BYTES {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .ok()?;
    (text.len() as u64 <= MAX_FILE_BYTES).then_some(text)
}

/// The documents of a file, parsed with positions.
fn documents(path: &Path) -> Vec<Node> {
    let Some(src) = read_small(path) else {
        return Vec::new();
    };
    let lines = LineIndex::new(&src);
    dtlint_yaml::parse(&src, &lines, Limits::default())
        .documents
        .into_iter()
        .map(|d| d.root)
        .collect()
}

/// Follows `steps` from `root`: the line of the last step's key or item,
/// and how many steps matched.
fn follow(root: &Node, steps: &[Step<'_>]) -> (Option<u32>, usize) {
    let mut node = root;
    let mut line = None;
    for (n, step) in steps.iter().enumerate() {
        let next = match step {
            Step::Key(k) => node.entry(k).map(|e| (e.key.span.start.line, &e.value)),
            Step::Named(name) => node
                .items()
                .find(|item| item.get("name").and_then(Node::as_str) == Some(name))
                .map(|item| (item.span.start.line, item)),
            Step::Index(i) => node
                .items()
                .nth(*i)
                .map(|item| (item.span.start.line, item)),
        };
        match next {
            Some((l, child)) => {
                line = Some(l);
                node = child;
            }
            None => return (line, n),
        }
    }
    (line, steps.len())
}

/// Whether a source document can be (a patch of) the rendered object:
/// same kind, and a name the rendered one contains (a `namePrefix`,
/// `nameSuffix` or generator hash may have been added).
fn same_object(doc: &Node, kind: &str, name: &str) -> bool {
    let dn = doc
        .path(&["metadata", "name"])
        .and_then(Node::as_str)
        .unwrap_or("");
    doc.get("kind").and_then(Node::as_str) == Some(kind)
        && !dn.is_empty()
        && (dn == name || name.contains(dn))
}

/// The patch files a kustomization lists (`patches[].path`,
/// `patchesStrategicMerge`), in order.
fn patch_files(kustomization: &Node) -> Vec<String> {
    let mut out = Vec::new();
    for item in kustomization
        .get("patches")
        .into_iter()
        .flat_map(Node::items)
    {
        if let Some(p) = item.get("path").and_then(Node::as_str) {
            out.push(p.to_owned());
        }
    }
    for item in kustomization
        .get("patchesStrategicMerge")
        .into_iter()
        .flat_map(Node::items)
    {
        if let Some(p) = item.as_str() {
            out.push(p.to_owned());
        }
    }
    out
}

impl Origins {
    pub fn new(repo: &Path) -> Self {
        Self {
            repo: repo.to_owned(),
            objects: BTreeMap::new(),
        }
    }

    /// Records where `object` came from.
    pub fn insert(&mut self, object: &Value, provenance: Provenance, default_ns: &str) {
        if let Some(o) = Object::new(object) {
            self.objects.insert(o.id(default_ns), provenance);
        }
    }

    fn line(&self, file: &Path, line: u32) -> Line {
        let rel = file.strip_prefix(&self.repo).unwrap_or(file);
        Line {
            file: rel.to_string_lossy().replace('\\', "/"),
            line,
        }
    }

    /// The line that sets `steps` in `object`, or (when no file sets the
    /// whole path) the deepest enclosing line of its origin file.
    pub fn locate(&self, object: &Value, steps: &[Step<'_>], default_ns: &str) -> Option<Line> {
        let o = Object::new(object)?;
        let prov = self.objects.get(&o.id(default_ns))?;
        let (kind, name) = (o.kind(), o.name());
        // 1. Patches, the last applied first.
        for kpath in prov.configured_in.iter().rev() {
            let kfile = self.repo.join(kpath);
            let Some(k) = documents(&kfile).into_iter().next() else {
                continue;
            };
            let dir = kfile.parent().unwrap_or(&self.repo);
            for patch in patch_files(&k).iter().rev() {
                let file = dir.join(patch);
                for doc in documents(&file) {
                    if !same_object(&doc, kind, name) {
                        continue;
                    }
                    if let (Some(line), matched) = follow(&doc, steps)
                        && matched == steps.len()
                    {
                        return Some(self.line(&file, line));
                    }
                }
            }
            // 2. Generators: a ConfigMap's or Secret's key.
            if let Some(found) = self.generator_line(&k, &kfile, kind, name, steps) {
                return Some(found);
            }
        }
        // 3. The origin file.
        let origin = self.repo.join(prov.origin.as_ref()?);
        let docs = documents(&origin);
        let doc = docs
            .iter()
            .find(|d| same_object(d, kind, name))
            .or_else(|| {
                let same_kind: Vec<&Node> = docs
                    .iter()
                    .filter(|d| d.get("kind").and_then(Node::as_str) == Some(kind))
                    .collect();
                (same_kind.len() == 1).then(|| same_kind[0])
            })?;
        match follow(doc, steps) {
            (Some(line), _) => Some(self.line(&origin, line)),
            (None, _) => Some(self.line(&origin, doc.span.start.line)),
        }
    }

    fn generator_line(
        &self,
        k: &Node,
        kfile: &Path,
        kind: &str,
        name: &str,
        steps: &[Step<'_>],
    ) -> Option<Line> {
        let generators = match kind {
            "ConfigMap" => "configMapGenerator",
            "Secret" => "secretGenerator",
            _ => return None,
        };
        let [
            Step::Key("data" | "stringData" | "binaryData"),
            Step::Key(key),
        ] = steps
        else {
            return None;
        };
        let dir = kfile.parent().unwrap_or(&self.repo);
        for g in dtlint::kustomize::generators_for(k, generators, name) {
            if let Some(lit) = dtlint::kustomize::generator_literal(g, key) {
                return Some(self.line(kfile, lit.span.start.line));
            }
            for env in g.get("envs").into_iter().flat_map(Node::items) {
                let Some(file) = env.as_str().map(|f| dir.join(f)) else {
                    continue;
                };
                let text = read_small(&file).unwrap_or_default();
                for (i, l) in text.lines().enumerate() {
                    if l.split_once('=').is_some_and(|(lk, _)| lk.trim() == *key) {
                        return Some(self.line(&file, u32::try_from(i + 1).unwrap_or(u32::MAX)));
                    }
                }
            }
            for f in g.get("files").into_iter().flat_map(Node::items) {
                let Some(spec) = f.as_str() else { continue };
                let file_key = spec.split_once('=').map_or_else(
                    || {
                        Path::new(spec)
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                    },
                    |(k, _)| Some(k.to_owned()),
                );
                if file_key.as_deref() == Some(*key) {
                    return Some(self.line(kfile, f.span.start.line));
                }
            }
        }
        None
    }

    /// The line of a field of `object` named as errors name them
    /// (`spec.template.spec.containers[0].env[3].valueFrom`); list items
    /// with a `name` in the rendered object are looked up by that name
    /// (patches and bases may order them differently).
    pub fn field_line(&self, object: &Value, field: &str, default_ns: &str) -> Option<Line> {
        let mut names: Vec<String> = Vec::new();
        let mut raw: Vec<(String, Option<usize>)> = Vec::new();
        for part in field.split('.') {
            match part.split_once('[') {
                Some((key, index)) => {
                    let i = index.trim_end_matches(']').parse().ok()?;
                    raw.push((key.to_owned(), Some(i)));
                }
                None => raw.push((part.to_owned(), None)),
            }
        }
        // Names first (the steps borrow them).
        let mut node = object;
        for (key, index) in &raw {
            node = node.get(key)?;
            if let Some(i) = index {
                node = node.get(i)?;
                names.push(
                    node.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                );
            }
        }
        let mut steps = Vec::new();
        let mut item_names = names.iter();
        for (key, index) in &raw {
            steps.push(Step::Key(key));
            if let Some(i) = index {
                match item_names.next().map(String::as_str) {
                    Some(n) if !n.is_empty() => steps.push(Step::Named(n)),
                    _ => steps.push(Step::Index(*i)),
                }
            }
        }
        self.locate(object, &steps, default_ns)
    }

    /// Where the line declaring `object` itself is (its `metadata.name`).
    pub fn declared(&self, object: &Value, default_ns: &str) -> Option<Line> {
        self.locate(
            object,
            &[Step::Key("metadata"), Step::Key("name")],
            default_ns,
        )
    }

    /// The line of key `key` of ConfigMap or Secret `name` in `namespace`;
    /// for a Secret no file declares (one a stand-in made), the custom
    /// resource that asked for it.
    fn key_line(
        &self,
        objects: &[Value],
        kind: &str,
        name: &str,
        namespace: &str,
        key: Option<&str>,
        default_ns: &str,
    ) -> Option<Line> {
        let object = objects.iter().rev().find(|v| {
            Object::new(v).is_some_and(|o| {
                o.kind() == kind && o.name() == name && o.namespace(default_ns) == namespace
            })
        })?;
        let id = Object::new(object)?.id(default_ns);
        if !self.objects.contains_key(&id) {
            return self.made_for(objects, name, namespace, default_ns);
        }
        match key {
            Some(key) => ["stringData", "data", "binaryData"]
                .iter()
                .find_map(|field| {
                    let steps = [Step::Key(field), Step::Key(key)];
                    let line = self.locate(object, &steps, default_ns)?;
                    // `locate` falls back to an enclosing line; only take
                    // it when the field holds the key.
                    object.get(*field)?.get(key).map(|_| line)
                })
                .or_else(|| self.declared(object, default_ns)),
            None => self.declared(object, default_ns),
        }
    }

    /// The custom resource a stand-in made Secret `name` for: a
    /// cert-manager `Certificate` with that `secretName`, or the
    /// CloudNativePG `Cluster` whose `<cluster>-app`/`-ca`/... it is.
    fn made_for(
        &self,
        objects: &[Value],
        name: &str,
        namespace: &str,
        default_ns: &str,
    ) -> Option<Line> {
        objects.iter().find_map(|v| {
            let o = Object::new(v)?;
            if o.namespace(default_ns) != namespace {
                return None;
            }
            match o.kind() {
                "Certificate"
                    if v.pointer("/spec/secretName").and_then(Value::as_str) == Some(name) =>
                {
                    self.locate(v, &[Step::Key("spec"), Step::Key("secretName")], default_ns)
                }
                "Cluster"
                    if o.api_version().starts_with("postgresql.cnpg.io/")
                        && name
                            .strip_prefix(o.name())
                            .is_some_and(|s| s.starts_with('-')) =>
                {
                    self.declared(v, default_ns)
                }
                _ => None,
            }
        })
    }

    /// Where every variable of container `container` of `workload` came
    /// from, for the `names` the container got (in that order). `objects`
    /// are the run's objects, for the ConfigMaps and Secrets read.
    pub fn env_sources(
        &self,
        workload: &Value,
        container: &str,
        names: &[String],
        objects: &[Value],
        default_ns: &str,
    ) -> Vec<EnvSource> {
        let namespace = Object::new(workload).map_or(default_ns, |o| o.namespace(default_ns));
        let (list, spec) = ["containers", "initContainers"]
            .iter()
            .find_map(|list| {
                workload
                    .pointer(&format!("/spec/template/spec/{list}"))?
                    .as_array()?
                    .iter()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some(container))
                    .map(|c| (*list, c))
            })
            .unwrap_or(("containers", &Value::Null));
        let base = [
            Step::Key("spec"),
            Step::Key("template"),
            Step::Key("spec"),
            Step::Key(list),
            Step::Named(container),
        ];
        let env = spec.get("env").and_then(Value::as_array);
        let env_from = spec.get("envFrom").and_then(Value::as_array);
        // The ConfigMap or Secret key a variable is read from, and its line.
        let via = |kind: &str, rname: &str, key: &str| {
            (
                format!("{kind} {rname} key {key}"),
                self.key_line(objects, kind, rname, namespace, Some(key), default_ns),
            )
        };
        names
            .iter()
            .map(|name| {
                let mut source = EnvSource {
                    name: name.clone(),
                    at: None,
                    via: None,
                    runtime: false,
                };
                // `env` wins over `envFrom`.
                if let Some(item) = env
                    .into_iter()
                    .flatten()
                    .rev()
                    .find(|e| e.get("name").and_then(Value::as_str) == Some(name.as_str()))
                {
                    let steps = [&base[..], &[Step::Key("env"), Step::Named(name)]].concat();
                    source.at = self.locate(workload, &steps, default_ns);
                    for (field, kind) in
                        [("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")]
                    {
                        if let Some(r) = item.pointer(&format!("/valueFrom/{field}")) {
                            let rname = r.get("name").and_then(Value::as_str).unwrap_or("");
                            let key = r.get("key").and_then(Value::as_str).unwrap_or("");
                            source.via = Some(via(kind, rname, key));
                        }
                    }
                    return source;
                }
                for (i, from) in env_from
                    .map_or(&[][..], Vec::as_slice)
                    .iter()
                    .enumerate()
                    .rev()
                {
                    let prefix = from.get("prefix").and_then(Value::as_str).unwrap_or("");
                    let Some(key) = name.strip_prefix(prefix) else {
                        continue;
                    };
                    for (field, kind) in [("secretRef", "Secret"), ("configMapRef", "ConfigMap")] {
                        let Some(rname) = from
                            .pointer(&format!("/{field}/name"))
                            .and_then(Value::as_str)
                        else {
                            continue;
                        };
                        let holds = objects.iter().any(|v| {
                            Object::new(v).is_some_and(|o| {
                                o.kind() == kind
                                    && o.name() == rname
                                    && o.namespace(default_ns) == namespace
                                    && ["data", "stringData", "binaryData"]
                                        .iter()
                                        .any(|f| v.get(*f).and_then(|d| d.get(key)).is_some())
                            })
                        });
                        if holds {
                            let mut steps = base.to_vec();
                            steps.extend([Step::Key("envFrom"), Step::Index(i)]);
                            source.at = self.locate(workload, &steps, default_ns);
                            source.via = Some(via(kind, rname, key));
                            return source;
                        }
                    }
                }
                source.runtime = true;
                source
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .unwrap()
    }

    /// The development environment rendered, with its origins.
    fn development() -> (Vec<Value>, Origins) {
        let mut origins = Origins::new(&repo());
        let mut objects = Vec::new();
        for a in render::apply_all(&repo(), "development", None).unwrap() {
            for (v, p) in a.objects.into_iter().zip(a.provenance) {
                origins.insert(&v, p, "default");
                objects.push(v);
            }
        }
        (objects, origins)
    }

    /// The 1-based line of the first line of `file` containing `needle`
    /// at or after line `from`.
    fn line_of(file: &str, needle: &str, from: usize) -> u32 {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let i = text
            .lines()
            .enumerate()
            .skip(from.saturating_sub(1))
            .find(|(_, l)| l.contains(needle))
            .unwrap_or_else(|| panic!("{file}: no {needle}"))
            .0;
        u32::try_from(i + 1).unwrap()
    }

    #[allow(clippy::unnecessary_wraps, reason = "compared with Option<Line>")]
    fn at(file: &str, line: u32) -> Option<Line> {
        Some(Line {
            file: file.into(),
            line,
        })
    }

    #[test]
    fn each_variable_of_a_rendered_container_names_the_line_that_sets_it() {
        let (objects, origins) = development();
        let ac = objects
            .iter()
            .find(|v| {
                Object::new(v)
                    .is_some_and(|o| o.kind() == "StatefulSet" && o.name() == "ac-service")
            })
            .unwrap();
        let names: Vec<String> = ["DATABASE_URL", "DB_PASSWORD", "CLUSTER_NAME", "HOSTNAME"]
            .map(String::from)
            .to_vec();
        let sources = origins.env_sources(ac, "ac-service", &names, &objects, "default");
        let by_name = |n: &str| sources.iter().find(|s| s.name == n).unwrap();
        let sts = "base/ac-service/statefulset.yaml";

        // A literal value: the `- name:` line of its env item in the base.
        let url = by_name("DATABASE_URL");
        assert_eq!(url.at, at(sts, line_of(sts, "- name: DATABASE_URL", 1)));
        assert_eq!(url.via, None);

        // secretKeyRef: the env item, and the key in the overlay's patch of
        // the Secret (the last file that sets it), not the empty base.
        let password = by_name("DB_PASSWORD");
        assert_eq!(password.at, at(sts, line_of(sts, "- name: DB_PASSWORD", 1)));
        let patch = "overlays/development/postgres/patch-secret.yaml";
        let secret_at = line_of(patch, "name: postgres-ac", 1);
        let (what, line) = password.via.clone().unwrap();
        assert_eq!(what, "Secret postgres-ac key password");
        assert_eq!(
            line,
            at(patch, line_of(patch, "password", secret_at as usize))
        );

        // configMapKeyRef to a generator literal of the overlay.
        let cluster = by_name("CLUSTER_NAME");
        let kust = "overlays/development/ac-service/kustomization.yaml";
        assert_eq!(
            cluster.via.clone().unwrap().1,
            at(kust, line_of(kust, "- CLUSTER_NAME=", 1))
        );
        assert!(by_name("HOSTNAME").runtime);
        assert_eq!(
            cluster.to_string(),
            format!(
                "CLUSTER_NAME at {sts}:{}, from ConfigMap ac-service-config key CLUSTER_NAME at {kust}:{}",
                line_of(sts, "- name: CLUSTER_NAME", 1),
                line_of(kust, "- CLUSTER_NAME=", 1)
            )
        );
    }

    #[test]
    fn a_field_named_as_errors_name_it_is_found_by_the_names_of_its_items() {
        let (objects, origins) = development();
        let ac = objects
            .iter()
            .find(|v| {
                Object::new(v)
                    .is_some_and(|o| o.kind() == "StatefulSet" && o.name() == "ac-service")
            })
            .unwrap();
        let env = ac
            .pointer("/spec/template/spec/containers/0/env")
            .and_then(Value::as_array)
            .unwrap();
        let i = env.iter().position(|e| e["name"] == "DB_PASSWORD").unwrap();
        let sts = "base/ac-service/statefulset.yaml";
        let secret_ref = line_of(
            sts,
            "secretKeyRef:",
            line_of(sts, "- name: DB_PASSWORD", 1) as usize,
        );
        assert_eq!(
            origins.field_line(
                ac,
                &format!("spec.template.spec.containers[0].env[{i}].valueFrom.secretKeyRef"),
                "default"
            ),
            at(sts, secret_ref)
        );
    }

    #[test]
    fn a_secret_a_stand_in_makes_points_at_the_resource_that_asks_for_it() {
        let (mut objects, origins) = development();
        // What the cert-manager stand-in writes for a Certificate.
        let cert = objects
            .iter()
            .find(|v| Object::new(v).is_some_and(|o| o.kind() == "Certificate"))
            .unwrap()
            .clone();
        let secret = cert["spec"]["secretName"].as_str().unwrap().to_owned();
        let ns = cert["metadata"]["namespace"].as_str().unwrap().to_owned();
        objects.push(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret, "namespace": ns},
            "data": {"tls.crt": ""},
        }));
        let line = origins
            .key_line(&objects, "Secret", &secret, &ns, Some("tls.crt"), "default")
            .unwrap();
        let text = std::fs::read_to_string(repo().join(&line.file)).unwrap();
        let l = text.lines().nth(line.line as usize - 1).unwrap();
        assert!(l.contains("secretName:"), "{line}: {l}");
    }
}
