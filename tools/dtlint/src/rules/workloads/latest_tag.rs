use std::path::Path;

use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::kustomize::Kustomization;
use crate::rules::{Context, Rule, RuleMeta, declare_rule};
use crate::workspace::Workspace;

declare_rule! {
    /// ## What it does
    /// Checks that every container image is pinned to a version tag or a
    /// digest: no tag at all, and the tag `latest`, are reported. Image
    /// overrides in a kustomization's `images:` (`newTag`, `digest`) are
    /// checked the same way. An untagged image in a base is accepted when
    /// every overlay that builds the base pins it with `images:`.
    /// `dtlint.toml` usually makes this a warning in development and an
    /// error in production.
    ///
    /// ## Why is this bad?
    /// `latest` moves: two pods of the same Deployment can run different code,
    /// a rollback redeploys the broken build, and nothing in git records what
    /// ran. An untagged image is `latest` under another name.
    ///
    /// ## Example
    /// ```yaml
    /// image: ghcr.io/dark-tower/dark-tower/global-controller:latest
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// image: ghcr.io/dark-tower/dark-tower/global-controller:1.4.2
    /// # or, immutable:
    /// image: ghcr.io/dark-tower/dark-tower/global-controller@sha256:3f7a…
    /// ```
    ///
    /// ## References
    /// - Image names and tags: <https://kubernetes.io/docs/concepts/containers/images/#image-names>
    pub struct LatestTag {
        id: "latest-tag",
        category: "workloads",
        severity: Error,
        summary: "an image is untagged or tagged `latest`",
    }
}

/// The tag of an image reference, if any (a registry port is not a tag).
pub fn image_tag(image: &str) -> Option<&str> {
    if image.contains('@') {
        return Some("@digest");
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map(|(_, t)| t)
}

fn problem(image: &str) -> Option<&'static str> {
    match image_tag(image) {
        None => Some("has no tag"),
        Some("latest") => Some("is tagged `latest`"),
        Some(_) => None,
    }
}

impl Rule for LatestTag {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let help = "Pin the image to a version tag (e.g. `:1.4.2`) or a digest (`@sha256:…`).";
        let ws = ctx.index.ws;
        for r in ctx.index.resources.iter().filter(|r| r.is_workload()) {
            for c in r.containers() {
                let Some(img) = c.node.get("image") else {
                    continue;
                };
                let Some(text) = img.as_str() else { continue };
                let Some(p) = problem(text) else { continue };
                if pinned_by_overlays(ws, &ws.sources.get(r.file).abs, image_name(text)) {
                    continue;
                }
                out.push(
                    Finding::new(
                        Self::META.id,
                        Label::new(r.file, img.span, "unpinned image"),
                        format!("image `{text}` of container `{}` {p}", c.name()),
                    )
                    .help(help),
                );
            }
        }
        // Kustomizations need no apiVersion/kind, so read them as kustomizations.
        for k in &ws.kustomizations {
            let Some(doc) = ws.parsed(k.file).documents.first() else {
                continue;
            };
            for entry in doc.root.get("images").into_iter().flat_map(Node::items) {
                if entry.get("digest").is_some() {
                    continue;
                }
                let name = entry.get("name").and_then(Node::as_str).unwrap_or("?");
                let (node, message) = if let Some(tag) = entry.get("newTag") {
                    if tag.as_str() != Some("latest") {
                        continue;
                    }
                    (
                        tag,
                        format!("image override for `{name}` sets the tag `latest`"),
                    )
                } else if let Some(new_name) = entry.get("newName")
                    && new_name.as_str().and_then(image_tag) == Some("latest")
                {
                    // Without a tag of its own, `newName` keeps the tag the
                    // manifest wrote; only an explicit `:latest` unpins it.
                    (
                        new_name,
                        format!("image override for `{name}` is tagged `latest`"),
                    )
                } else {
                    continue;
                };
                out.push(
                    Finding::new(
                        Self::META.id,
                        Label::new(k.file, node.span, "unpinned image"),
                        message,
                    )
                    .help(help),
                );
            }
        }
    }
}

/// An image reference without its tag and digest, as `images[].name` in a
/// kustomization matches it.
pub fn image_name(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(n, _)| n);
    let last = image.rfind('/').map_or(0, |i| i + 1);
    image[last..]
        .find(':')
        .map_or(image, |i| &image[..last + i])
}

/// Does this `images:` entry pin the image to a version or digest?
fn pins(entry: &Node) -> bool {
    let set = |k: &str| {
        entry
            .get(k)
            .and_then(Node::as_str)
            .filter(|v| !v.is_empty())
    };
    set("digest").is_some() || set("newTag").is_some_and(|t| t != "latest")
}

/// True when every kustomization build that includes `file` pins `name`
/// with an `images:` entry, so the tag the manifest writes never ships.
fn pinned_by_overlays(ws: &Workspace, file: &Path, name: &str) -> bool {
    let listing: Vec<&Kustomization> = ws.listing(file).collect();
    !listing.is_empty() && listing.iter().all(|k| pinned_from(ws, k, name, 0))
}

fn pinned_from(ws: &Workspace, k: &Kustomization, name: &str, depth: usize) -> bool {
    // Deep enough for any real overlay chain; a cycle is another problem.
    if depth > 16 {
        return false;
    }
    let here = ws
        .parsed(k.file)
        .documents
        .first()
        .into_iter()
        .flat_map(|d| d.root.get("images").into_iter().flat_map(Node::items))
        .any(|e| e.get("name").and_then(Node::as_str) == Some(name) && pins(e));
    if here {
        return true;
    }
    let parents: Vec<&Kustomization> = ws.listing(&k.dir).collect();
    !parents.is_empty() && parents.iter().all(|p| pinned_from(ws, p, name, depth + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            image_name("ghcr.io/dark-tower/gc:0.1.0"),
            "ghcr.io/dark-tower/gc"
        );
        assert_eq!(image_name("localhost:5000/gc"), "localhost:5000/gc");
        assert_eq!(
            image_name("localhost:5000/gc:1.2@sha256:abc"),
            "localhost:5000/gc"
        );
    }

    fn messages(files: &[(&str, &str)]) -> Vec<String> {
        crate::rules::testing::run(&LatestTag, files)
            .into_iter()
            .map(|f| f.message)
            .collect()
    }

    #[test]
    fn overlays_pin_base_images_and_bare_kustomizations_are_read() {
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: mc}\nspec:\n  template:\n    spec:\n      containers: [{name: mc, image: ghcr.io/dt/mc}]\n";
        let base = ("base/kustomization.yaml", "resources: [deployment.yaml]\n");
        let pinned = (
            "prod/kustomization.yaml",
            "resources: [../base]\nimages: [{name: ghcr.io/dt/mc, newTag: \"1.0\"}]\n",
        );
        let latest = (
            "dev/kustomization.yaml",
            "resources: [../base]\nimages: [{name: ghcr.io/dt/mc, newTag: latest}]\n",
        );
        assert!(messages(&[("base/deployment.yaml", deployment), base, pinned]).is_empty());
        assert_eq!(
            messages(&[("base/deployment.yaml", deployment), base, pinned, latest]),
            [
                "image `ghcr.io/dt/mc` of container `mc` has no tag",
                "image override for `ghcr.io/dt/mc` sets the tag `latest`"
            ]
        );
        let renamed = (
            "prod/kustomization.yaml",
            "resources: [../base]\nimages: [{name: ghcr.io/dt/mc, newName: mirror/mc}]\n",
        );
        let tagged = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: mc}\nspec:\n  template:\n    spec:\n      containers: [{name: mc, image: \"ghcr.io/dt/mc:1.0\"}]\n";
        assert!(messages(&[("base/deployment.yaml", tagged), base, renamed]).is_empty());
    }

    #[test]
    fn tags() {
        assert_eq!(image_tag("nginx"), None);
        assert_eq!(image_tag("nginx:1.27"), Some("1.27"));
        assert_eq!(image_tag("localhost:5000/nginx"), None);
        assert_eq!(image_tag("localhost:5000/nginx:latest"), Some("latest"));
        assert_eq!(image_tag("ghcr.io/x/y@sha256:abc"), Some("@digest"));
    }
}
