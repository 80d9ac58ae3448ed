//! Rules about SOPS-encrypted secrets and `.sops.yaml`.
//!
//! They read [`crate::sops_index::SopsState`]: files parsed with their
//! keyless structure problems, and (when the run had a key) decrypted,
//! MAC-verified trees. Without a key the decryption-based rules report
//! nothing; the binary says so once.
pub mod empty_secret_value;
pub mod secret_key_missing;
pub mod sops_mac_mismatch;
pub mod sops_metadata;
pub mod sops_not_encrypted;
pub mod sops_recipients;
pub mod sops_undecryptable;
pub mod sops_unexpected_encryption;

use std::collections::HashSet;
use std::path::Path;

use dtlint_sops::{FindingKind, PlainNode, PlainValue};
use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::kustomize::RefKind;
use crate::model::Resource;
use crate::rules::Context;
use crate::sops_index::SopsEntry;
use crate::source::FileId;
use crate::workspace::Role;

/// Environments whose secrets may be plaintext placeholders.
const PLAINTEXT_ENVIRONMENTS: [&str; 3] = ["development", "dev", "local"];

/// True when an environment's secrets must be encrypted: every configured
/// environment except a development one.
pub(crate) fn must_encrypt(env: &str) -> bool {
    !PLAINTEXT_ENVIRONMENTS.contains(&env)
}

/// The environment a file lives in, by `dtlint.toml`'s overlay directories.
pub(crate) fn environment_of<'c>(ctx: &'c Context<'_>, file: FileId) -> Option<&'c str> {
    ctx.config
        .environment_of(&ctx.index.ws.sources.get(file).path)
}

/// Report the structure problems of `kinds` as findings of `rule`.
pub(crate) fn structure_findings(
    rule: &'static str,
    ctx: &Context<'_>,
    kinds: &[FindingKind],
    help: impl Fn(&dtlint_sops::Finding) -> String,
    out: &mut Vec<Finding>,
) {
    let sops = &ctx.index.sops;
    let config_file = sops.config.as_ref().map(|c| c.file);
    for e in &sops.files {
        for p in e.structure.iter().filter(|p| kinds.contains(&p.kind)) {
            out.push(from_library(rule, e.id, config_file, p).help(help(p)));
        }
    }
}

/// A library finding as a dtlint finding in `file`. Related spans of rule
/// comparisons point into `.sops.yaml`.
pub(crate) fn from_library(
    rule: &'static str,
    file: FileId,
    config_file: Option<FileId>,
    p: &dtlint_sops::Finding,
) -> Finding {
    let label = match (&p.value_path, p.kind) {
        (Some(path), _) => format!("value `{path}`"),
        (None, FindingKind::MissingMetadata) => "sops metadata".into(),
        (None, FindingKind::MalformedStanza) => "damaged age stanza".into(),
        (None, FindingKind::InconsistentMetadata) => "differs".into(),
        (None, FindingKind::RuleMismatch) => "as encrypted".into(),
        (None, _) => "here".into(),
    };
    let mut f = Finding::new(rule, Label::new(file, p.span, label), p.message.clone());
    if let Some((span, msg)) = &p.related {
        let related_file = match p.kind {
            FindingKind::RuleMismatch | FindingKind::RecipientMismatch => config_file,
            _ => Some(file),
        };
        if let Some(rf) = related_file {
            f = f.with(Label::new(rf, *span, msg.clone()));
        }
    }
    f
}

/// True for a Secret that is a source file a human edits (not a rendered
/// build).
pub(crate) fn is_source_secret(r: &Resource<'_>) -> bool {
    r.kind == "Secret" && matches!(r.role, Role::Resource | Role::Patch | Role::Standalone)
}

/// Every Secret document of a source file (not a rendered build), complete
/// or patch, read from the parsed files so it does not depend on how the
/// index groups objects.
pub(crate) fn source_secrets<'i, 'a>(index: &'i crate::model::Index<'a>) -> &'i [Resource<'a>] {
    index.source_secrets.get_or_init(|| {
        let ws = index.ws;
        let mut out = Vec::new();
        for (id, _) in ws.sources.iter() {
            let role = ws.role(id);
            for doc in &ws.parsed(id).documents {
                if let Some(r) = Resource::from_node(id, doc.index, &doc.root, role)
                    && is_source_secret(&r)
                {
                    out.push(r);
                }
            }
        }
        out
    })
}

/// Every file the kustomizations of environment `env` include, following
/// `resources:` and `components:` into other directories.
pub(crate) fn reached_by_env(ctx: &Context<'_>, env: &str) -> HashSet<FileId> {
    let ws = ctx.index.ws;
    let mut seen_dirs: HashSet<&Path> = HashSet::new();
    let mut files = HashSet::new();
    let mut stack: Vec<&crate::kustomize::Kustomization> = ws
        .kustomizations
        .iter()
        .filter(|k| ctx.config.environment_of(&ws.sources.get(k.file).path) == Some(env))
        .collect();
    while let Some(k) = stack.pop() {
        if !seen_dirs.insert(k.dir.as_path()) {
            continue;
        }
        for r in &k.refs {
            if !matches!(
                r.kind,
                RefKind::Resource | RefKind::Component | RefKind::Patch
            ) {
                continue;
            }
            if let Some(id) = ws.sources.find_abs(&r.path) {
                files.insert(id);
            } else if let Some(sub) = ws.kustomization_in(&r.path) {
                stack.push(sub);
            }
        }
    }
    files
}

/// Complete Secrets named `name` that environment `env` builds from
/// outside its own overlay directories (the base Secrets its patches
/// patch).
pub(crate) fn base_secrets<'s, 'w>(
    ctx: &Context<'_>,
    secrets: &'s [Resource<'w>],
    env: &str,
    reached: &HashSet<FileId>,
    name: &str,
) -> Vec<&'s Resource<'w>> {
    secrets
        .iter()
        .filter(|r| {
            r.name == name
                && r.is_complete()
                && reached.contains(&r.file)
                && environment_of(ctx, r.file) != Some(env)
        })
        .collect()
}

/// The keys a Secret declares (`data` and `stringData`), with their nodes.
pub(crate) fn declared_keys(root: &Node) -> Vec<(&str, &Node, &Node)> {
    ["data", "stringData"]
        .iter()
        .filter_map(|k| root.get(k))
        .flat_map(Node::entries)
        .filter_map(|e| e.key.as_str().map(|k| (k, &e.key, &e.value)))
        .collect()
}

/// A decrypted Secret document of a SOPS file: its name and the entries of
/// `data` and `stringData`.
pub(crate) struct PlainSecret<'a> {
    pub name: &'a str,
    pub root: &'a PlainNode,
}

impl<'a> PlainSecret<'a> {
    /// The value of `key` under `data` or `stringData`.
    pub fn value(&self, key: &str) -> Option<&'a PlainNode> {
        ["stringData", "data"]
            .iter()
            .find_map(|m| self.root.get(m).and_then(|n| n.get(key)))
    }

    /// The `stringData:` or `data:` key, to point at when a key is missing.
    pub fn data_key_span(&self) -> Option<dtlint_yaml::Span> {
        ["stringData", "data"]
            .iter()
            .find_map(|m| match &self.root.value {
                PlainValue::Mapping(entries) => {
                    entries.iter().find(|e| e.key == *m).map(|e| e.key_span)
                }
                _ => None,
            })
    }
}

/// The decrypted Secret documents of a SOPS entry.
pub(crate) fn plain_secrets(e: &SopsEntry) -> Vec<PlainSecret<'_>> {
    let Some(d) = e.plain() else {
        return Vec::new();
    };
    d.documents
        .iter()
        .filter(|root| root.get("kind").and_then(PlainNode::as_str) == Some("Secret"))
        .filter_map(|root| {
            let name = root.path(&["metadata", "name"])?.as_str()?;
            Some(PlainSecret { name, root })
        })
        .collect()
}

/// True when a decrypted value is empty: null or the empty string.
pub(crate) fn plain_is_empty(n: &PlainNode) -> bool {
    match &n.value {
        PlainValue::Null => true,
        PlainValue::Scalar { value, .. } => value.is_empty_str(),
        _ => false,
    }
}
