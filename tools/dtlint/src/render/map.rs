//! Mapping a rendered node back to the source a human edits.

use std::path::Path;

use dtlint_yaml::{Node, Span, Value};

use super::{Provenance, RenderOutput};
use crate::kustomize::RefKind;
use crate::source::FileId;
use crate::workspace::Workspace;

/// A step from a node to one of its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    /// A list item: its index, and its identity (`name`, `containerPort`, …)
    /// when it has one, which survives patches that reorder lists.
    Item(usize, Option<(String, String)>),
}

/// Keys that identify list items, in kustomize's merge-key spirit.
const IDENTITY_KEYS: [&str; 6] = ["name", "containerPort", "mountPath", "port", "key", "ip"];

fn identity(item: &Node) -> Option<(String, String)> {
    IDENTITY_KEYS.iter().find_map(|k| {
        item.get(k)
            .and_then(|v| v.as_scalar())
            .map(|s| ((*k).to_string(), s.text.to_string()))
    })
}

/// The path to the deepest node of `root` that contains `span`, and whether
/// the span is on a mapping key (rather than on a value).
pub fn path_to(root: &Node, span: Span) -> (Vec<Step>, bool) {
    let mut steps = Vec::new();
    let mut node = root;
    let inside = |outer: Span| {
        outer.start.offset <= span.start.offset
            && span.start.offset < outer.end.offset.max(outer.start.offset + 1)
    };
    loop {
        match &node.value {
            Value::Mapping(entries) => {
                if let Some(e) = entries
                    .iter()
                    .find(|e| inside(e.key.span) && e.key.span.start == span.start)
                {
                    steps.push(Step::Key(e.key.as_str().unwrap_or("").to_string()));
                    return (steps, true);
                }
                let Some(e) = entries
                    .iter()
                    .find(|e| inside(e.value.span) || e.value.span.start == span.start)
                else {
                    return (steps, false);
                };
                steps.push(Step::Key(e.key.as_str().unwrap_or("").to_string()));
                node = &e.value;
            }
            Value::Sequence(items) => {
                let Some((i, item)) = items
                    .iter()
                    .enumerate()
                    .find(|(_, n)| inside(n.span) || n.span.start == span.start)
                else {
                    return (steps, false);
                };
                steps.push(Step::Item(i, identity(item)));
                node = item;
            }
            Value::Scalar(_) => return (steps, false),
        }
    }
}

/// Follow `steps` in a source document. Returns the deepest node reached and
/// how many steps matched.
pub fn follow<'n>(
    root: &'n Node,
    steps: &[Step],
) -> (&'n Node, Option<&'n dtlint_yaml::Entry>, usize) {
    let mut node = root;
    let mut entry = None;
    for (n, step) in steps.iter().enumerate() {
        let next = match step {
            Step::Key(k) => node.entry(k).map(|e| {
                entry = Some(e);
                &e.value
            }),
            Step::Item(i, id) => {
                entry = None;
                let items = node.as_sequence().unwrap_or(&[]);
                match id {
                    Some((k, v)) => items.iter().find(|it| {
                        it.get(k)
                            .and_then(|x| x.as_scalar())
                            .is_some_and(|s| s.text == *v)
                    }),
                    None => items.get(*i),
                }
            }
        };
        match next {
            Some(n2) => node = n2,
            None => return (node, entry, n),
        }
    }
    (node, entry, steps.len())
}

/// The kind and name a source document must have to be the origin (or a
/// patch) of a rendered object. Rendered names may carry a `namePrefix`,
/// `nameSuffix` or a generator's hash.
fn same_object(doc: &Node, kind: &str, name: &str) -> bool {
    let dk = doc.get("kind").and_then(Node::as_str);
    let dn = doc
        .path(&["metadata", "name"])
        .and_then(Node::as_str)
        .unwrap_or("");
    dk == Some(kind) && !dn.is_empty() && (dn == name || name.contains(dn))
}

fn docs_of(ws: &Workspace, file: FileId) -> impl Iterator<Item = &Node> {
    ws.parsed(file).documents.iter().map(|d| &d.root)
}

/// The span to report for a node reached by `follow`: the key when the
/// finding was on a key, else the value.
fn spot(node: &Node, entry: Option<&dtlint_yaml::Entry>, on_key: bool) -> Span {
    match (on_key, entry) {
        (true, Some(e)) => e.key.span,
        _ => node.span,
    }
}

fn scalar_text(n: &Node) -> Option<&str> {
    n.as_scalar().map(|s| s.text.as_str())
}

/// The kustomization parsed from `path`, if it is one we read.
fn kustomization_doc<'w>(ws: &'w Workspace, path: &Path) -> Option<(FileId, &'w Node)> {
    let id = ws.sources.find_abs(path)?;
    Some((id, &ws.parsed(id).documents.first()?.root))
}

/// Transformer settings in kustomizations that explain a rendered value:
/// `images:` for an image, generator literals for ConfigMap data, `labels:`
/// and `commonLabels:` for labels, `namespace:` for the namespace.
fn from_transformers(
    ws: &Workspace,
    prov: &Provenance,
    steps: &[Step],
    rendered_leaf: Option<&str>,
    kind: &str,
    name: &str,
) -> Option<(FileId, Span)> {
    let last = match steps.last() {
        Some(Step::Key(k)) => k.as_str(),
        _ => return None,
    };
    for kpath in prov.configured_in.iter().rev() {
        let Some((kust_file, k)) = kustomization_doc(ws, kpath) else {
            continue;
        };
        if last == "image" {
            let image = rendered_leaf.unwrap_or("");
            let repo = image.split('@').next().unwrap_or(image);
            let repo = match repo.rsplit_once(':') {
                Some((r, t)) if !t.contains('/') => r,
                _ => repo,
            };
            for entry in k.get("images").into_iter().flat_map(Node::items) {
                let names = [entry.get("newName"), entry.get("name")];
                if names.iter().flatten().any(|n| n.as_str() == Some(repo)) {
                    let node = entry
                        .get("digest")
                        .or_else(|| entry.get("newTag"))
                        .or_else(|| entry.get("newName"));
                    if let Some(n) = node {
                        return Some((kust_file, n.span));
                    }
                }
            }
        }
        if steps.len() >= 2 && steps.iter().any(|s| *s == Step::Key("labels".into())) {
            for pairs in k
                .get("labels")
                .into_iter()
                .flat_map(Node::items)
                .filter_map(|l| l.get("pairs"))
                .chain(k.get("commonLabels"))
            {
                if let Some(e) = pairs.entry(last) {
                    return Some((kust_file, e.value.span));
                }
            }
        }
        if steps == [Step::Key("metadata".into()), Step::Key("namespace".into())]
            && let Some(ns) = k.get("namespace")
        {
            return Some((kust_file, ns.span));
        }
        if matches!(kind, "ConfigMap" | "Secret")
            && steps.len() == 2
            && matches!(&steps[0], Step::Key(d) if d == "data" || d == "stringData")
        {
            let key = if kind == "ConfigMap" {
                "configMapGenerator"
            } else {
                "secretGenerator"
            };
            for g in crate::kustomize::generators_for(k, key, name) {
                if let Some(lit) = crate::kustomize::generator_literal(g, last) {
                    return Some((kust_file, lit.span));
                }
            }
        }
    }
    None
}

/// Does `steps` end at the value that identifies its object or list item
/// (`metadata.name`, `kind`, or the merge key of a list item such as a
/// container's `name`)?
fn names_its_item(steps: &[Step]) -> bool {
    match steps {
        [Step::Key(k)] => k == "kind" || k == "apiVersion",
        [Step::Key(m), Step::Key(n)] if m == "metadata" && n == "name" => true,
        [.., Step::Item(_, Some((id, _))), Step::Key(k)] => id == k,
        _ => false,
    }
}

/// Map a span in a rendered overlay to the source a human edits: the patch
/// that set the value, a kustomization transformer, or the origin file.
pub fn map_to_source(
    ws: &Workspace,
    render: &RenderOutput,
    file: FileId,
    span: Span,
) -> Option<(FileId, Span)> {
    let rendered = render.rendered_of(file)?;
    let parsed = ws.parsed(file);
    let (doc_i, doc) = parsed.documents.iter().enumerate().find(|(_, d)| {
        d.root.span.start.offset <= span.start.offset && span.start.offset <= d.root.span.end.offset
    })?;
    let prov = rendered.provenance.get(doc_i)?;
    let kind = doc.root.get("kind").and_then(Node::as_str).unwrap_or("");
    let name = doc
        .root
        .path(&["metadata", "name"])
        .and_then(Node::as_str)
        .unwrap_or("");
    let (steps, on_key) = path_to(&doc.root, span);
    let (rendered_node, _, _) = follow(&doc.root, &steps);
    let leaf = scalar_text(rendered_node);

    // Patches listed by the kustomizations that transformed the object, the
    // last applied first; then the origin document.
    let mut candidates: Vec<(FileId, &Node)> = Vec::new();
    for kpath in prov.configured_in.iter().rev() {
        let Some(k) = ws
            .kustomizations
            .iter()
            .find(|k| ws.sources.get(k.file).abs == *kpath)
        else {
            continue;
        };
        for r in k.refs.iter().rev().filter(|r| r.kind == RefKind::Patch) {
            let Some(pid) = ws.sources.find_abs(&r.path) else {
                continue;
            };
            candidates.extend(
                docs_of(ws, pid)
                    .filter(|d| same_object(d, kind, name))
                    .map(|d| (pid, d)),
            );
        }
    }
    let origin = prov
        .origin
        .as_ref()
        .and_then(|o| ws.sources.find_abs(o))
        .and_then(|oid| {
            let docs: Vec<&Node> = docs_of(ws, oid).collect();
            let same_kind: Vec<&Node> = docs
                .iter()
                .copied()
                .filter(|d| d.get("kind").and_then(Node::as_str) == Some(kind))
                .collect();
            docs.iter()
                .copied()
                .find(|d| same_object(d, kind, name))
                .or_else(|| (same_kind.len() == 1).then(|| same_kind[0]))
                .map(|d| (oid, d))
        });

    // 1. A source that writes this very value at this very path. A value
    //    that only names its object or list item (`metadata.name`, a
    //    container's `name`) or a whole mapping is written by every patch
    //    that merges into it, so the origin, where it is declared, goes
    //    first: a finding about what the object lacks belongs where the
    //    object is declared, once for every environment.
    let declares = leaf.is_none() || names_its_item(&steps);
    let ordered: Vec<(FileId, &Node)> = if declares {
        origin.iter().chain(candidates.iter()).copied().collect()
    } else {
        candidates.iter().chain(origin.iter()).copied().collect()
    };
    for &(fid, d) in &ordered {
        let (node, entry, matched) = follow(d, &steps);
        if matched == steps.len() && (on_key || leaf.is_none() || scalar_text(node) == leaf) {
            return Some((fid, spot(node, entry, on_key)));
        }
    }
    // 2. A kustomization transformer that sets it.
    if let Some(found) = from_transformers(ws, prov, &steps, leaf, kind, name) {
        return Some(found);
    }
    // 3. The path exists in the origin (the value came from elsewhere), or the
    //    nearest enclosing node that does.
    let mut best: Option<(FileId, Span, usize)> = None;
    for &(fid, d) in origin.iter().chain(candidates.iter()) {
        let (node, entry, matched) = follow(d, &steps);
        if matched == steps.len() {
            return Some((fid, spot(node, entry, on_key)));
        }
        let span = entry.map_or(node.span, |e| e.key.span);
        if best.is_none_or(|(_, _, m)| matched > m) {
            best = Some((fid, span, matched));
        }
    }
    if let Some((fid, span, _)) = best {
        return Some((fid, span));
    }
    // 4. A generated object: the generator that made it.
    for kpath in prov.configured_in.iter().rev() {
        let Some((kust_file, k)) = kustomization_doc(ws, kpath) else {
            continue;
        };
        for key in ["configMapGenerator", "secretGenerator"] {
            for g in k.get(key).into_iter().flat_map(Node::items) {
                if let Some(n) = g
                    .get("name")
                    .filter(|n| n.as_str().is_some_and(|gn| name.starts_with(gn)))
                {
                    return Some((kust_file, n.span));
                }
            }
        }
    }
    None
}
