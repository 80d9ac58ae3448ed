//! Flux Kustomizations built the way kustomize-controller builds them, and
//! the tree they make walked from each cluster's entry points:
//!
//! - a path without a `kustomization.yaml` gets the one the controller
//!   generates: every `.yaml`/`.yml` file under it, and each subdirectory
//!   that has its own kustomization as a whole
//!   ([`crate::kustomize::generated_resources`]);
//! - `spec.targetNamespace`, `namePrefix`, `nameSuffix`, `patches`,
//!   `images`, `components` (relative to the path) and `commonMetadata` are
//!   applied on top of the path's build;
//! - `spec.postBuild` substitutes variables into the output
//!   (see [`super::substitute`]);
//! - the Flux Kustomizations a build outputs are built in turn, with what
//!   their parent changed in them (a parent's `spec.patches` that sets its
//!   children's `decryption:` or `postBuild:` included), until no new one
//!   appears ([`walk`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use dtlint_yaml::{Limits, Node, Span};
use serde_json::{Map, Value as Json};

use super::substitute::{self, ConfigSources, SubstituteFrom, Vars};
use super::{Build, Builder, NotBuilt, Target, build_all};
use crate::config::Config;
use crate::kustomize;
use crate::source::{FileId, display_path};
use crate::workspace::Workspace;

/// What a Flux Kustomization adds to the build of its path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FluxBuild {
    /// `namespace/name` of the Flux Kustomization.
    pub name: String,
    /// The wrapper kustomization's fields for `targetNamespace`,
    /// `namePrefix`, `nameSuffix`, `patches`, `images`, `components` and
    /// `commonMetadata` (components as absolute paths, made relative when
    /// the wrapper is written).
    pub fields: Map<String, Json>,
    pub components: Vec<PathBuf>,
    /// `spec.postBuild`, when there is one: nothing is substituted without.
    pub post_build: Option<PostBuild>,
    /// The Flux Kustomizations (`namespace/name`) whose builds led here,
    /// outermost first: a Kustomization met again on its own chain is a
    /// cycle.
    pub chain: Vec<String>,
}

/// Flux Kustomizations that apply each other in a circle.
#[derive(Debug, Clone)]
pub struct Cycle {
    pub env: String,
    /// The `spec.path` of the Kustomization that closes the circle.
    pub at: Option<(FileId, Span)>,
    /// `namespace/name` of each, from the first back to itself.
    pub chain: Vec<String>,
}

/// `spec.postBuild` of a Flux Kustomization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostBuild {
    pub substitute: BTreeMap<String, String>,
    pub from: Vec<SubstituteFrom>,
}

impl FluxBuild {
    /// Read from a Flux Kustomization whose path is `dir`.
    pub fn from_node(ks: &Node, dir: &Path) -> Self {
        let name = format!(
            "{}/{}",
            ks.str_at(&["metadata", "namespace"])
                .unwrap_or("flux-system"),
            ks.str_at(&["metadata", "name"]).unwrap_or("?")
        );
        let mut fields = Map::new();
        let Some(spec) = ks.get("spec") else {
            return Self {
                name,
                ..Self::default()
            };
        };
        let mut copy = |from: &str, to: &str| {
            if let Some(v) = spec.get(from).filter(|v| !v.is_null()) {
                fields.insert(to.to_string(), v.to_json());
            }
        };
        copy("targetNamespace", "namespace");
        copy("namePrefix", "namePrefix");
        copy("nameSuffix", "nameSuffix");
        copy("patches", "patches");
        copy("images", "images");
        if let Some(meta) = spec.get("commonMetadata") {
            if let Some(labels) = meta.get("labels").filter(|l| l.as_mapping().is_some()) {
                fields.insert(
                    "labels".into(),
                    serde_json::json!([{ "pairs": labels.to_json(), "includeSelectors": false }]),
                );
            }
            if let Some(a) = meta.get("annotations").filter(|a| a.as_mapping().is_some()) {
                fields.insert("commonAnnotations".into(), a.to_json());
            }
        }
        let components = spec
            .get("components")
            .into_iter()
            .flat_map(Node::items)
            .filter_map(Node::as_str)
            .map(|c| kustomize::normalize(dir, c))
            .collect();
        let post_build = spec.get("postBuild").map(|p| PostBuild {
            substitute: p
                .get("substitute")
                .into_iter()
                .flat_map(Node::entries)
                .filter_map(|e| {
                    Some((
                        e.key.as_str()?.to_string(),
                        e.value.as_scalar()?.text.to_string(),
                    ))
                })
                .collect(),
            from: p
                .get("substituteFrom")
                .into_iter()
                .flat_map(Node::items)
                .filter_map(|f| {
                    Some(SubstituteFrom {
                        kind: f.str_at(&["kind"])?.to_string(),
                        name: f.str_at(&["name"])?.to_string(),
                        optional: f.get("optional").and_then(Node::as_bool) == Some(true),
                    })
                })
                .collect(),
        });
        Self {
            name,
            fields,
            components,
            post_build,
            chain: Vec::new(),
        }
    }

    /// The Kustomization's own namespace (where `substituteFrom` looks).
    fn namespace(&self) -> &str {
        self.name
            .split_once('/')
            .map_or("flux-system", |(ns, _)| ns)
    }
}

/// Most Flux Kustomizations one run builds, and how deep one tree goes.
const MAX_TARGETS: usize = 5_000;
const MAX_DEPTH: usize = 16;

/// Build `first` and every Flux Kustomization their outputs hold, level by
/// level (see the module docs). Builds are returned with the post-build
/// substitution applied to their output.
pub fn walk(
    ws: &Workspace,
    config: &Config,
    builder: &Builder,
    first: Vec<Target>,
    root: &Path,
    cache_dir: Option<&Path>,
) -> (Vec<Build>, Vec<NotBuilt>, Vec<Cycle>) {
    let generators = super::artifact_generators(ws);
    let mut cycles = Vec::new();
    // Read when the first build with a `postBuild` needs it.
    let config_sources = std::cell::OnceCell::new();
    let mut seen: BTreeSet<String> = first.iter().map(key).collect();
    let mut level = first;
    let mut all = Vec::new();
    let mut skipped = Vec::new();
    for depth in 0.. {
        if level.is_empty() {
            break;
        }
        if depth == MAX_DEPTH {
            for t in &level {
                skipped.push(NotBuilt {
                    env: t.env.clone(),
                    what: describe(t),
                    why: format!("Flux Kustomizations nest deeper than {MAX_DEPTH} levels here"),
                });
            }
            break;
        }
        let mut builds = build_all(ws, builder, &level, root, cache_dir);
        let mut next = Vec::new();
        for b in &mut builds {
            post_build(ws, &config_sources, b);
            let Ok(text) = &b.output else { continue };
            for child in children(ws, config, &generators, b, text) {
                match child {
                    Ok(t) => {
                        let closes = t.flux.as_ref().and_then(|f| {
                            let at = f.chain.iter().position(|c| *c == f.name)?;
                            let mut chain = f.chain[at..].to_vec();
                            chain.push(f.name.clone());
                            Some(chain)
                        });
                        if let Some(chain) = closes {
                            if !cycles
                                .iter()
                                .any(|c: &Cycle| c.env == t.env && c.chain == chain)
                            {
                                cycles.push(Cycle {
                                    env: t.env.clone(),
                                    at: b.target.requested_by,
                                    chain,
                                });
                            }
                        } else if seen.len() >= MAX_TARGETS {
                            skipped.push(NotBuilt {
                                env: t.env.clone(),
                                what: describe(&t),
                                why: format!("more than {MAX_TARGETS} Flux Kustomizations"),
                            });
                        } else if seen.insert(key(&t)) {
                            next.push(t);
                        }
                    }
                    Err(nb) => skipped.push(nb),
                }
            }
        }
        all.extend(builds);
        level = next;
    }
    (all, skipped, cycles)
}

/// Two Flux Kustomizations that build one path the same way build once.
fn key(t: &Target) -> String {
    let flux = t.flux.as_ref().map(|f| {
        let pb = f.post_build.as_ref().map(|p| {
            let from: Vec<String> = p
                .from
                .iter()
                .map(|s| format!("{}/{}/{}", s.kind, s.name, s.optional))
                .collect();
            format!("{:?}{from:?}", p.substitute)
        });
        format!("{}{:?}{pb:?}", Json::Object(f.fields.clone()), f.components)
    });
    format!("{}\0{}\0{flux:?}", t.env, t.dir.display())
}

fn describe(t: &Target) -> String {
    match &t.flux {
        Some(f) => format!("Kustomization {} ({})", f.name, t.display),
        None => t.display.clone(),
    }
}

/// Apply the target's `postBuild` to its output.
fn post_build<'w>(
    ws: &'w Workspace,
    sources: &std::cell::OnceCell<ConfigSources<'w>>,
    b: &mut Build,
) {
    let Some(flux) = &b.target.flux else { return };
    let Some(pb) = &flux.post_build else { return };
    let Ok(text) = &b.output else { return };
    let sources = sources.get_or_init(|| ConfigSources::new(ws));
    let vars: Vars = substitute::resolve(sources, flux.namespace(), &pb.substitute, &pb.from);
    let done = substitute::substitute(text, &vars);
    b.output = Ok(done.text);
    b.unset_vars = done.unset.into_iter().collect();
    b.breaking_vars = done.breaking;
}

/// The Flux Kustomizations in a build's output, as targets of the same
/// environment, or why one is not built.
fn children(
    ws: &Workspace,
    config: &Config,
    generators: &HashMap<String, Vec<super::ArtifactCopy>>,
    b: &Build,
    text: &str,
) -> Vec<Result<Target, NotBuilt>> {
    if !text.contains("kustomize.toolkit.fluxcd.io/") {
        return Vec::new();
    }
    let lines = dtlint_yaml::LineIndex::new(text);
    let parsed = dtlint_yaml::parse(text, &lines, Limits::default());
    let overlay_root = config
        .environments
        .get(&b.target.env)
        .map_or_else(|| ws.root.clone(), |e| ws.root.join(&e.overlays));
    let mut out = Vec::new();
    for doc in parsed.documents {
        let mut r = doc.root;
        if !crate::flux::is_flux_kind(&r, "kustomize", "Kustomization") {
            continue;
        }
        let prov = super::take_provenance(&mut r, &b.wrapper);
        let name = r.str_at(&["metadata", "name"]).unwrap_or("?").to_string();
        let origin = prov
            .origin
            .as_deref()
            .and_then(|o| ws.sources.find_abs(o))
            .map(|id| (id, source_span(ws, id, &name)));
        let origin_path = origin.map_or_else(
            || b.target.display.clone(),
            |(id, _)| ws.sources.get(id).path.clone(),
        );
        let what = format!(
            "Kustomization {}/{name} ({origin_path})",
            r.str_at(&["metadata", "namespace"])
                .unwrap_or("flux-system")
        );
        let path = r.str_at(&["spec", "path"]).unwrap_or("./");
        let dir = match super::local_dir(ws, generators, &r, path) {
            Ok(dir) => dir,
            Err(why) => {
                out.push(Err(NotBuilt {
                    env: b.target.env.clone(),
                    what,
                    why,
                }));
                continue;
            }
        };
        if !dir.starts_with(&overlay_root) || !dir.is_dir() {
            continue;
        }
        let mut flux = FluxBuild::from_node(&r, &dir);
        if let Some(parent) = &b.target.flux {
            flux.chain.clone_from(&parent.chain);
            flux.chain.push(parent.name.clone());
        }
        out.push(Ok(Target {
            env: b.target.env.clone(),
            display: display_path(&ws.root, &dir),
            flux: Some(Box::new(flux)),
            dir,
            requested_by: origin,
        }));
    }
    out
}

/// Where a Flux Kustomization named `name` says its path in file `id`: the
/// `spec.path` value, else the document, else the file's start.
fn source_span(ws: &Workspace, id: FileId, name: &str) -> Span {
    let doc = ws
        .document_named(id, None, name)
        .or_else(|| ws.parsed(id).documents.first());
    doc.map_or_else(Span::default, |d| {
        d.root
            .path(&["spec", "path"])
            .map_or(d.root.span, |n| n.span)
    })
}

/// Directories that a Flux sync applies in a repository with no `clusters/`
/// directory: the `spec.sync.path` of a FluxInstance (or of the
/// `flux-instance` chart's values) that syncs a Git repository, and the
/// path of a `flux bootstrap` `gotk-sync.yaml` Kustomization. Each becomes
/// an environment named after its last directory (its whole path when two
/// share a name), with where it was found, for the run's notes.
pub fn sync_roots(ws: &Workspace) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    for (id, f) in ws.sources.iter() {
        // Most files say none of it: one byte search (`FluxInstance` and
        // `flux-instance` both hold `nstance`) rejects them unparsed.
        let gotk = f.path.ends_with("flux-system/gotk-sync.yaml");
        if !gotk && memchr::memmem::find(f.text.as_bytes(), b"nstance").is_none() {
            continue;
        }
        for doc in &ws.parsed(id).documents {
            let r = &doc.root;
            let sync = if gotk && crate::flux::is_flux_kind(r, "kustomize", "Kustomization") {
                r.get("spec")
            } else {
                crate::flux::instance_sync(r)
            };
            let Some(sync) = sync else { continue };
            let git = sync.str_at(&["kind"]).is_none_or(|k| k == "GitRepository")
                && sync
                    .str_at(&["sourceRef", "kind"])
                    .is_none_or(|k| k == "GitRepository");
            let Some(path) = sync.str_at(&["path"]) else {
                continue;
            };
            let path = path.trim_start_matches("./").trim_matches('/').to_string();
            if git && !path.is_empty() && ws.root.join(&path).is_dir() {
                found.push((path, f.path.clone()));
            }
        }
    }
    found.sort();
    found.dedup_by(|a, b| a.0 == b.0);
    let last = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    let names: Vec<String> = found.iter().map(|(p, _)| last(p)).collect();
    found
        .iter()
        .zip(&names)
        .map(|((path, from), name)| {
            let unique = names.iter().filter(|n| *n == name).count() == 1;
            let env = if unique {
                name.clone()
            } else {
                path.replace('/', "-")
            };
            (env, path.clone(), from.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flux_fields_become_kustomize_fields() {
        let src = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: atuin\n  namespace: default\nspec:\n  path: ./app\n  targetNamespace: media\n  components: [../c]\n  commonMetadata:\n    labels: {team: a}\n  postBuild:\n    substitute: {APP: atuin}\n    substituteFrom:\n      - {kind: ConfigMap, name: settings, optional: true}\n";
        let lines = dtlint_yaml::LineIndex::new(src);
        let doc = dtlint_yaml::parse(src, &lines, Limits::default());
        let f = FluxBuild::from_node(&doc.documents[0].root, Path::new("/r/app"));
        assert_eq!(f.name, "default/atuin");
        assert_eq!(f.fields["namespace"], "media");
        assert_eq!(
            f.fields["labels"],
            serde_json::json!([{"pairs": {"team": "a"}, "includeSelectors": false}])
        );
        assert_eq!(f.components, [PathBuf::from("/r/c")]);
        let pb = f.post_build.unwrap();
        assert_eq!(pb.substitute["APP"], "atuin");
        assert_eq!(
            pb.from,
            [SubstituteFrom {
                kind: "ConfigMap".into(),
                name: "settings".into(),
                optional: true
            }]
        );
    }
}
