//! Converting JSON Schemas into catalog nodes: the Kubernetes OpenAPI
//! definitions (`cargo xtask schemas`) and CustomResourceDefinitions (the
//! xtask, and the CRDs a repository holds itself, at run time).

use std::collections::HashMap;

use serde_json::Value as Json;

use super::{Additional, Catalog, CrdVersion, KubeRelease, Node, Ref, flags, types};

/// How a schema treats a mapping key it does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The Kubernetes OpenAPI definitions (strict variant): an absent
    /// `additionalProperties` admits anything; the strict definitions say
    /// `false` where the API server rejects unknown fields.
    Kubernetes,
    /// A CRD's structural schema: the API server prunes (and strict field
    /// validation rejects) every field an object schema does not name,
    /// unless `x-kubernetes-preserve-unknown-fields` keeps them.
    Structural,
}

/// Deeper schemas than this are refused (no real schema comes near; a
/// hostile one must not exhaust the stack).
pub const MAX_DEPTH: usize = 200;

/// A schema that cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("at {path}: nested deeper than {MAX_DEPTH} levels")]
    TooDeep { path: String },
    #[error("at {path}: {what}")]
    Invalid { path: String, what: String },
}

/// The name of the definition a Kubernetes `$ref` points at.
fn def_name(reference: &str) -> Option<&str> {
    reference
        .rsplit_once("/$defs/")
        .or_else(|| reference.rsplit_once("/definitions/"))
        .map(|(_, n)| n)
}

/// The definition of `resource.Quantity`, which is validated as a quantity.
pub const QUANTITY_DEF: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
/// The definition every object's `metadata` is validated against.
pub const OBJECT_META_DEF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Nodes being collected into an arena, each distinct node stored once.
#[derive(Debug, Default)]
pub struct Builder {
    /// A `$ref` that names no local definition (`#`, a URL) admits
    /// anything instead of failing: standalone schemas point anywhere.
    pub lenient_refs: bool,
    pub nodes: Vec<Node>,
    interned: HashMap<String, u32>,
    pub names: Vec<String>,
    name_ids: HashMap<String, u32>,
}

impl Builder {
    /// The id of a definition name, added when new.
    pub fn name_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.name_ids.insert(name.to_string(), id);
        id
    }

    fn intern(&mut self, node: Node) -> Result<u32, BuildError> {
        let key = serde_json::to_string(&node).map_err(|e| BuildError::Invalid {
            path: String::new(),
            what: e.to_string(),
        })?;
        if let Some(&i) = self.interned.get(&key) {
            return Ok(i);
        }
        let i = self.nodes.len() as u32;
        self.nodes.push(node);
        self.interned.insert(key, i);
        Ok(i)
    }

    /// Convert a schema; a Kubernetes `$ref` becomes a [`Ref::Def`].
    pub fn add(&mut self, schema: &Json, dialect: Dialect) -> Result<Ref, BuildError> {
        let mut path = String::new();
        self.convert(schema, dialect, &mut path, 0)
    }

    /// Convert a Kubernetes definition (its own node, never a bare reference).
    pub fn add_definition(&mut self, name: &str, schema: &Json) -> Result<u32, BuildError> {
        let mut path = name.to_string();
        match self.convert(schema, Dialect::Kubernetes, &mut path, 0)? {
            Ref::Node(n) if name == QUANTITY_DEF => {
                let mut q = self.clone_node(n);
                q.flags |= flags::QUANTITY;
                self.intern(q)
            }
            Ref::Node(n) => Ok(n),
            Ref::Def(d) => {
                // A definition that only points at another: wrap it.
                let node = Node {
                    all_of: vec![Ref::Def(d)],
                    ..Node::default()
                };
                self.intern(node)
            }
        }
    }

    fn clone_node(&self, n: u32) -> Node {
        let n = &self.nodes[n as usize];
        Node {
            types: n.types,
            properties: n.properties.clone(),
            additional: n.additional,
            items: n.items,
            required: n.required.clone(),
            enumeration: n.enumeration.clone(),
            pattern: n.pattern.clone(),
            format: n.format.clone(),
            flags: n.flags,
            any_of: n.any_of.clone(),
            one_of: n.one_of.clone(),
            all_of: n.all_of.clone(),
            minimum: n.minimum,
            maximum: n.maximum,
            exclusive: n.exclusive,
            min_length: n.min_length,
            max_length: n.max_length,
            min_items: n.min_items,
            max_items: n.max_items,
            cel: n.cel.clone(),
            compiled: std::sync::OnceLock::new(),
        }
    }

    fn convert(
        &mut self,
        schema: &Json,
        dialect: Dialect,
        path: &mut String,
        depth: usize,
    ) -> Result<Ref, BuildError> {
        if depth > MAX_DEPTH {
            return Err(BuildError::TooDeep { path: path.clone() });
        }
        let invalid = |path: &str, what: &str| BuildError::Invalid {
            path: path.to_string(),
            what: what.to_string(),
        };
        let obj = match schema {
            Json::Object(o) => o,
            // `true`/`{}`: anything.
            Json::Bool(true) => return Ok(Ref::Node(self.intern(Node::default())?)),
            _ => return Err(invalid(path, "a schema must be an object")),
        };
        if let Some(r) = obj.get("$ref") {
            let r = r
                .as_str()
                .ok_or_else(|| invalid(path, "`$ref` is not a string"))?;
            let local = r.starts_with('#') || !self.lenient_refs;
            return match def_name(r).filter(|_| local) {
                Some(name) => Ok(Ref::Def(self.name_id(name))),
                None if self.lenient_refs => Ok(Ref::Node(self.intern(Node::default())?)),
                None => Err(invalid(path, "`$ref` names no definition")),
            };
        }
        let mut node = Node::default();
        match obj.get("type") {
            Some(Json::String(t)) => node.types = type_bit(t),
            Some(Json::Array(ts)) => {
                for t in ts.iter().filter_map(Json::as_str) {
                    node.types |= type_bit(t);
                }
            }
            _ => {}
        }
        let truthy = |k: &str| obj.get(k).and_then(Json::as_bool) == Some(true);
        if truthy("x-kubernetes-int-or-string") {
            node.flags |= flags::INT_OR_STRING;
        }
        if truthy("x-kubernetes-preserve-unknown-fields") {
            node.flags |= flags::PRESERVE_UNKNOWN;
        }
        if truthy("x-kubernetes-embedded-resource") {
            node.flags |= flags::EMBEDDED;
        }
        if let Some(Json::Object(props)) = obj.get("properties") {
            let mut keys: Vec<&String> = props.keys().collect();
            keys.sort();
            for k in keys {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                let child = self.convert(&props[k], dialect, path, depth + 1)?;
                path.truncate(len);
                node.properties.push((k.clone(), child));
            }
        }
        node.additional = match obj.get("additionalProperties") {
            Some(Json::Bool(false)) => Additional::Deny,
            Some(Json::Bool(true)) => Additional::Open,
            Some(s @ Json::Object(_)) => {
                let len = path.len();
                path.push_str(".*");
                let child = self.convert(s, dialect, path, depth + 1)?;
                path.truncate(len);
                Additional::Schema(child)
            }
            Some(_) => return Err(invalid(path, "`additionalProperties` is not a schema")),
            None if dialect == Dialect::Structural
                && node.flags & flags::PRESERVE_UNKNOWN == 0
                && (node.types & types::OBJECT != 0 || !node.properties.is_empty()) =>
            {
                Additional::Deny
            }
            None => Additional::Open,
        };
        if let Some(items) = obj.get("items")
            && items.is_object()
        {
            let len = path.len();
            path.push_str("[]");
            node.items = Some(self.convert(items, dialect, path, depth + 1)?);
            path.truncate(len);
        }
        for (key, slot) in [
            ("anyOf", &mut node.any_of),
            ("oneOf", &mut node.one_of),
            ("allOf", &mut node.all_of),
        ] {
            if let Some(Json::Array(branches)) = obj.get(key) {
                for b in branches {
                    slot.push(self.convert(b, dialect, path, depth + 1)?);
                }
            }
        }
        if let Some(Json::Array(req)) = obj.get("required") {
            node.required = req
                .iter()
                .filter_map(Json::as_str)
                .map(str::to_string)
                .collect();
            node.required.sort();
            node.required.dedup();
        }
        if let Some(Json::Array(values)) = obj.get("enum") {
            node.enumeration.clone_from(values);
        }
        node.pattern = obj
            .get("pattern")
            .and_then(Json::as_str)
            .map(str::to_string);
        node.format = obj
            .get("format")
            .and_then(Json::as_str)
            .filter(|f| CHECKED_FORMATS.contains(f))
            .map(str::to_string);
        node.minimum = obj.get("minimum").and_then(Json::as_f64);
        node.maximum = obj.get("maximum").and_then(Json::as_f64);
        node.exclusive =
            u8::from(truthy("exclusiveMinimum")) | (u8::from(truthy("exclusiveMaximum")) << 1);
        let count = |k: &str| obj.get(k).and_then(Json::as_u64);
        node.min_length = count("minLength");
        node.max_length = count("maxLength");
        node.min_items = count("minItems");
        node.max_items = count("maxItems");
        if let Some(Json::Array(rules)) = obj.get("x-kubernetes-validations") {
            node.cel = rules
                .iter()
                .filter_map(|r| {
                    Some(super::CelRule {
                        rule: r.get("rule")?.as_str()?.to_string(),
                        message: r.get("message").and_then(Json::as_str).map(str::to_string),
                    })
                })
                .collect();
        }
        Ok(Ref::Node(self.intern(node)?))
    }

    /// Add every served and unserved version of one
    /// CustomResourceDefinition (as JSON); `source` indexes the sources.
    pub fn add_crd(&mut self, crd: &Json, source: u32) -> Result<Vec<CrdVersion>, BuildError> {
        let invalid = |what: &str| BuildError::Invalid {
            path: "spec".into(),
            what: what.into(),
        };
        let spec = crd.get("spec").ok_or_else(|| invalid("no spec"))?;
        let group = spec
            .get("group")
            .and_then(Json::as_str)
            .ok_or_else(|| invalid("no spec.group"))?;
        let kind = spec
            .pointer("/names/kind")
            .and_then(Json::as_str)
            .ok_or_else(|| invalid("no spec.names.kind"))?;
        let versions = spec
            .get("versions")
            .and_then(Json::as_array)
            .ok_or_else(|| invalid("no spec.versions"))?;
        let mut out = Vec::new();
        for v in versions {
            let name = v
                .get("name")
                .and_then(Json::as_str)
                .ok_or_else(|| invalid("a version has no name"))?;
            // A version without a schema admits anything (apiextensions/v1
            // requires one; be lenient with what a repository holds).
            let root = match v.pointer("/schema/openAPIV3Schema") {
                Some(s) => {
                    let mut path = format!("{group}/{name} {kind}");
                    match self.convert(s, Dialect::Structural, &mut path, 0)? {
                        Ref::Node(n) => n,
                        Ref::Def(_) => return Err(invalid("a CRD schema cannot use `$ref`")),
                    }
                }
                None => self.intern(Node {
                    flags: flags::PRESERVE_UNKNOWN,
                    ..Node::default()
                })?,
            };
            out.push(CrdVersion {
                group: group.to_string(),
                kind: kind.to_string(),
                version: name.to_string(),
                served: v.get("served").and_then(Json::as_bool).unwrap_or(true),
                deprecated: v.get("deprecated").and_then(Json::as_bool).unwrap_or(false),
                deprecation_warning: v
                    .get("deprecationWarning")
                    .and_then(Json::as_str)
                    .map(str::to_string),
                root,
                source,
            });
        }
        Ok(out)
    }

    /// Add one Kubernetes release from its definitions (`$defs` of the
    /// strict `_definitions.json`).
    pub fn add_release(&mut self, version: &str, defs: &Json) -> Result<KubeRelease, BuildError> {
        let defs = defs
            .get("$defs")
            .or_else(|| defs.get("definitions"))
            .and_then(Json::as_object)
            .ok_or_else(|| BuildError::Invalid {
                path: version.into(),
                what: "no `$defs`".into(),
            })?;
        let mut names: Vec<&String> = defs.keys().collect();
        names.sort();
        let mut by_name = Vec::new();
        let mut kinds = Vec::new();
        for name in names {
            let schema = &defs[name];
            let node = self.add_definition(name, schema)?;
            let id = self.name_id(name);
            by_name.push((id, node));
            for gvk in schema
                .get("x-kubernetes-group-version-kind")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                let g = gvk.get("group").and_then(Json::as_str).unwrap_or("");
                let (Some(v), Some(k)) = (
                    gvk.get("version").and_then(Json::as_str),
                    gvk.get("kind").and_then(Json::as_str),
                ) else {
                    continue;
                };
                let api = if g.is_empty() {
                    v.to_string()
                } else {
                    format!("{g}/{v}")
                };
                kinds.push((api, k.to_string(), id));
            }
        }
        kinds.sort();
        kinds.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        Ok(KubeRelease {
            version: version.to_string(),
            defs: {
                let mut d = vec![u32::MAX; self.names.len()];
                for (id, node) in by_name {
                    d[id as usize] = node;
                }
                d
            },
            kinds,
        })
    }

    /// The arena as a catalog (Kubernetes releases' definition tables are
    /// padded to every name).
    pub fn into_catalog(
        self,
        mut kubernetes: Vec<KubeRelease>,
        crds: Vec<CrdVersion>,
        sources: Vec<super::SourceInfo>,
        removed: Vec<super::RemovedApi>,
    ) -> Catalog {
        for r in &mut kubernetes {
            r.defs.resize(self.names.len(), u32::MAX);
        }
        Catalog {
            format: super::FORMAT,
            nodes: self.nodes,
            names: self.names,
            kubernetes,
            crds,
            sources,
            removed,
            object_meta: None,
            kube_groups: std::collections::HashSet::new(),
        }
    }
}

/// A standalone JSON Schema (draft 4 to 7: a Helm chart's
/// `values.schema.json`): its arena, the table its local `$ref`s
/// (`#/definitions/x`, `#/$defs/x`) resolve through, and its root. Other
/// references admit anything.
pub fn standalone(schema: &Json) -> Result<(Vec<Node>, KubeRelease, Ref), BuildError> {
    let mut b = Builder {
        lenient_refs: true,
        ..Builder::default()
    };
    let root = b.add(schema, Dialect::Kubernetes)?;
    let mut table = Vec::new();
    for key in ["definitions", "$defs"] {
        if let Some(Json::Object(defs)) = schema.get(key) {
            for (name, d) in defs {
                let node = b.add_definition(name, d)?;
                table.push((b.name_id(name), node));
            }
        }
    }
    let mut defs = vec![u32::MAX; b.names.len()];
    for (id, node) in table {
        defs[id as usize] = node;
    }
    let release = KubeRelease {
        version: "values.schema.json".into(),
        defs,
        kinds: Vec::new(),
    };
    Ok((b.nodes, release, root))
}

/// The `format`s dtlint checks; others are dropped from the catalog.
pub const CHECKED_FORMATS: &[&str] = &["date-time", "duration", "int-or-string", "int32", "int64"];

fn type_bit(t: &str) -> u8 {
    match t {
        "object" => types::OBJECT,
        "array" => types::ARRAY,
        "string" => types::STRING,
        "integer" => types::INTEGER,
        "number" => types::NUMBER,
        "boolean" => types::BOOLEAN,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_chart_values_schema_converts() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/helm-values-invalid/fail/charts/web/values.schema.json"
        ))
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let got = super::standalone(&v);
        assert!(got.is_ok(), "{:?}", got.err());
    }
}
