//! What a build produced, as the later stages see it: each rendered stream
//! added to the files (so findings can point into it) with the provenance
//! of its objects, the builds that failed, and the source files judged
//! through a build.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use dtlint_yaml::{Limits, Node, Value};

use super::{Build, ORIGIN_ANNOTATION, TRANSFORMATIONS_ANNOTATION, Target};
use crate::kustomize::{self, RefKind};
use crate::source::{FileId, SourceFile};
use crate::workspace::{Role, Workspace};

/// Where a rendered object came from, read from kustomize's annotations.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// The file the object was read from, if any (generated objects have none).
    pub origin: Option<PathBuf>,
    /// Kustomization files whose transformers changed the object, in order.
    pub configured_in: Vec<PathBuf>,
}

/// Read and remove kustomize's build annotations from a rendered object.
pub fn take_provenance(root: &mut Node, wrapper: &Path) -> Provenance {
    let mut prov = Provenance::default();
    let Value::Mapping(top) = &mut root.value else {
        return prov;
    };
    let Some(meta) = top.iter_mut().find(|e| e.key.as_str() == Some("metadata")) else {
        return prov;
    };
    let Value::Mapping(meta_entries) = &mut meta.value.value else {
        return prov;
    };
    let Some(ann_idx) = meta_entries
        .iter()
        .position(|e| e.key.as_str() == Some("annotations"))
    else {
        return prov;
    };
    if let Value::Mapping(anns) = &mut meta_entries[ann_idx].value.value {
        for e in anns.iter() {
            let Some(text) = e.value.as_str() else {
                continue;
            };
            match e.key.as_str() {
                Some(ORIGIN_ANNOTATION) => {
                    for line in text.lines() {
                        if let Some(p) = line.trim().strip_prefix("path:") {
                            prov.origin = Some(kustomize::normalize(wrapper, p.trim()));
                        }
                    }
                }
                Some(TRANSFORMATIONS_ANNOTATION) => {
                    for line in text.lines() {
                        if let Some(p) = line
                            .trim()
                            .trim_start_matches("- ")
                            .strip_prefix("configuredIn:")
                        {
                            let path = kustomize::normalize(wrapper, p.trim());
                            if !prov.configured_in.contains(&path) {
                                prov.configured_in.push(path);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        anns.retain(|e| {
            !matches!(
                e.key.as_str(),
                Some(ORIGIN_ANNOTATION | TRANSFORMATIONS_ANNOTATION)
            )
        });
        if anns.is_empty() {
            meta_entries.remove(ann_idx);
        }
    }
    prov
}

/// One rendered overlay: its output is `file`, and `provenance[i]` tells
/// where the i-th document came from.
#[derive(Debug)]
pub struct Rendered {
    pub file: FileId,
    pub target: Target,
    pub provenance: Vec<Provenance>,
    /// See [`Build::unset_vars`].
    pub unset_vars: Vec<String>,
    /// See [`Build::breaking_vars`].
    pub breaking_vars: Vec<(String, String)>,
}

/// The output of the render stage, passed along to the index and the engine.
#[derive(Debug, Default)]
pub struct RenderOutput {
    /// Overlays built in rendered mode, one file each.
    pub rendered: Vec<Rendered>,
    /// Overlays whose build failed (or was refused), with kustomize's error.
    pub failures: Vec<Build>,
    /// Source files whose objects were judged through a rendered build
    /// (origins and patches), so they are not judged a second time alone.
    pub covered: HashSet<FileId>,
    /// Flux Kustomizations that apply each other in a circle (not built
    /// again; `flux-kustomization-cycle` reports them).
    pub cycles: Vec<super::Cycle>,
}

impl RenderOutput {
    /// The rendered overlay a file is the output of.
    pub fn rendered_of(&self, id: FileId) -> Option<&Rendered> {
        self.rendered.iter().find(|r| r.file == id)
    }
}

/// Add the builds of rendered mode: each output becomes a file of the
/// workspace whose objects carry their provenance; failed builds are kept
/// for the `kustomize-build-failed` rule.
pub fn apply(ws: &mut Workspace, builds: Vec<Build>) -> RenderOutput {
    let mut out = RenderOutput::default();
    for build in builds {
        let Ok(text) = build.output.clone() else {
            out.failures.push(build);
            continue;
        };
        // One path per build: a directory two Flux Kustomizations build
        // differently is two streams.
        let by = build
            .target
            .flux
            .as_ref()
            .filter(|_| {
                let same_dir = |t: &Target| t.dir == build.target.dir && t.env == build.target.env;
                out.rendered.iter().any(|r| same_dir(&r.target))
                    || out.failures.iter().any(|b| same_dir(&b.target))
            })
            .map(|f| f.name.replace('/', "-"));
        let abs = build.target.dir.join(match &by {
            Some(by) => format!(".dtlint-rendered-{}-{by}.yaml", build.target.env),
            None => format!(".dtlint-rendered-{}.yaml", build.target.env),
        });
        let path = match &by {
            Some(by) => format!(
                "{} (rendered for {} by {by})",
                build.target.display, build.target.env
            ),
            None => format!(
                "{} (rendered for {})",
                build.target.display, build.target.env
            ),
        };
        let file = SourceFile::new(path, abs, text);
        let mut parsed = dtlint_yaml::parse(&file.text, &file.lines, Limits::default());
        let provenance = parsed
            .documents
            .iter_mut()
            .map(|d| take_provenance(&mut d.root, &build.wrapper))
            .collect::<Vec<_>>();
        for p in &provenance {
            if let Some(o) = p.origin.as_ref().and_then(|o| ws.sources.find_abs(o)) {
                out.covered.insert(o);
            }
        }
        for k in &ws.kustomizations {
            if build.inputs.contains(&ws.sources.get(k.file).abs) {
                for r in k.refs.iter().filter(|r| r.kind == RefKind::Patch) {
                    if let Some(pid) = ws.sources.find_abs(&r.path) {
                        out.covered.insert(pid);
                    }
                }
            }
        }
        let id = ws.add_file(file, parsed, Role::Rendered);
        out.rendered.push(Rendered {
            file: id,
            target: build.target,
            provenance,
            unset_vars: build.unset_vars,
            breaking_vars: build.breaking_vars,
        });
    }
    out
}
