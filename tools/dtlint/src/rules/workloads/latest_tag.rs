use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that every container image is pinned to a version tag or a
    /// digest: no tag at all, and the tag `latest`, are reported. Image
    /// overrides in a kustomization's `images:` (`newTag`, `digest`) are
    /// checked the same way. `dtlint.toml` usually makes this a warning in
    /// development and an error in production.
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
        for r in ctx.index.resources.iter().filter(|r| r.is_workload()) {
            for c in r.containers() {
                let Some(img) = c.node.get("image") else {
                    continue;
                };
                let Some(text) = img.as_str() else { continue };
                if let Some(p) = problem(text) {
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
        }
        for r in ctx
            .index
            .resources
            .iter()
            .filter(|r| r.group() == "kustomize.config.k8s.io")
        {
            for entry in r.root.get("images").into_iter().flat_map(Node::items) {
                if entry.get("digest").is_some() {
                    continue;
                }
                let name = entry.get("name").and_then(Node::as_str).unwrap_or("?");
                if let Some(tag) = entry.get("newTag") {
                    if tag.as_str() == Some("latest") || tag.is_null() {
                        out.push(
                            Finding::new(
                                Self::META.id,
                                Label::new(r.file, tag.span, "unpinned image"),
                                format!("image override for `{name}` sets the tag `latest`"),
                            )
                            .help(help),
                        );
                    }
                } else if let Some(new_name) = entry.get("newName")
                    && let Some(text) = new_name.as_str()
                    && let Some(p) = problem(text)
                {
                    out.push(
                        Finding::new(
                            Self::META.id,
                            Label::new(r.file, new_name.span, "unpinned image"),
                            format!("image override for `{name}` {p}"),
                        )
                        .help(help),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::image_tag;

    #[test]
    fn tags() {
        assert_eq!(image_tag("nginx"), None);
        assert_eq!(image_tag("nginx:1.27"), Some("1.27"));
        assert_eq!(image_tag("localhost:5000/nginx"), None);
        assert_eq!(image_tag("localhost:5000/nginx:latest"), Some("latest"));
        assert_eq!(image_tag("ghcr.io/x/y@sha256:abc"), Some("@digest"));
    }
}
