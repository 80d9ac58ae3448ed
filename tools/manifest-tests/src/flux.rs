//! Flux CRD schemas: the `openAPIV3Schema` of every served version, made strict.
//!
//! The API server prunes unknown fields from custom resources instead of rejecting them, so a
//! typo such as `spec.dependOn` would silently do nothing. The checks here close every object
//! schema that declares `properties` (unless it preserves unknown fields), so such typos fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Error, Node};

/// Schemas by `(apiVersion, kind)`, e.g. `("kustomize.toolkit.fluxcd.io/v1", "Kustomization")`.
#[derive(Debug, Default)]
pub struct Schemas {
    pub by_type: BTreeMap<(String, String), Value>,
}

/// Where the CRD schemas are, relative to the repository root: vendored from the upstream
/// Flux controllers (see the README there), so every clone runs the schema checks.
pub const SCHEMA_DIR: &str = "tools/dtlint/schemas/crds/flux";

/// The CRD schema directory of the repository at `root` ([`SCHEMA_DIR`]).
pub fn schema_dir(root: &Path) -> PathBuf {
    root.join(SCHEMA_DIR)
}

/// Loads every CRD in `dir`.
pub fn load(dir: &Path) -> Result<Schemas, Error> {
    let mut schemas = Schemas::default();
    for file in crate::yaml_files(dir)? {
        for doc in crate::load_yaml(&file)? {
            if doc.str_at(&["kind"]) != Some("CustomResourceDefinition") {
                continue;
            }
            let (Some(group), Some(kind)) = (
                doc.str_at(&["spec", "group"]),
                doc.str_at(&["spec", "names", "kind"]),
            ) else {
                continue;
            };
            for version in doc
                .path(&["spec", "versions"])
                .into_iter()
                .flat_map(Node::items)
            {
                let (Some(name), Some(schema)) = (
                    version.str_at(&["name"]),
                    version.path(&["schema", "openAPIV3Schema"]),
                ) else {
                    continue;
                };
                let mut schema = schema.to_json();
                close_objects(&mut schema);
                schemas
                    .by_type
                    .insert((format!("{group}/{name}"), kind.to_owned()), schema);
            }
        }
    }
    Ok(schemas)
}

/// Sets `additionalProperties: false` on every object schema that lists `properties`, has no
/// `additionalProperties` of its own and does not preserve unknown fields.
pub fn close_objects(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    let preserves = map
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if map.contains_key("properties") && !map.contains_key("additionalProperties") && !preserves {
        map.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
    for (key, value) in map.iter_mut() {
        match key.as_str() {
            "properties" | "patternProperties" | "definitions" => {
                if let Value::Object(children) = value {
                    children.values_mut().for_each(close_objects);
                }
            }
            "items" | "additionalProperties" | "not" => close_objects(value),
            "allOf" | "anyOf" | "oneOf" => {
                if let Value::Array(list) = value {
                    list.iter_mut().for_each(close_objects);
                }
            }
            _ => {}
        }
    }
}

/// Whether an `apiVersion` belongs to Flux.
pub fn is_flux(api_version: &str) -> bool {
    api_version
        .split('/')
        .next()
        .is_some_and(|group| group.ends_with(".toolkit.fluxcd.io"))
}
