use crate::diag::{Finding, Label};
use crate::rules::Merged;
use crate::rules::flux::objects;
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a HelmRelease whose chart is not a pinned release of a Helm
    /// repository: `chart.spec.sourceRef` must be a `HelmRepository`, and
    /// `chart.spec.version` an exact version (`1.43.0`, `2026.6.3`), not a
    /// range (`>=1.0.0`, `^1.2`, `~1.2.0`, `1.x`) or `*`, and not missing
    /// (Flux then installs the newest). A missing version is judged where
    /// an environment applies the HelmRelease (a rendered overlay, or a
    /// file in an environment's directory), so a base whose overlays set
    /// it is not reported. A repository that is not declared is
    /// `flux-ref-unresolved`'s.
    ///
    /// ## Why is this bad?
    /// A range upgrades the platform whenever upstream publishes, without a
    /// commit: what runs is no longer what git says, and a broken upstream
    /// release reaches every cluster at once. A chart from a GitRepository
    /// follows a branch the same way.
    ///
    /// ## Example
    /// ```yaml
    /// chart:
    ///   spec:
    ///     chart: flagger
    ///     version: ">=1.40.0"
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// chart:
    ///   spec:
    ///     chart: flagger
    ///     version: "1.43.0"
    ///     sourceRef: {kind: HelmRepository, name: flagger}
    /// ```
    ///
    /// ## References
    /// - HelmRelease chart template: <https://fluxcd.io/flux/components/helm/helmreleases/#chart-template>
    /// - SPEC.md, "Flux": pinned chart versions
    pub struct HelmChartUnpinned {
        id: "helm-chart-unpinned",
        category: "flux",
        severity: Error,
        summary: "a HelmRelease chart is not an exact version from a HelmRepository",
    }
}

/// An exact SemVer 2 version, optionally with a `v` (as Helm accepts it):
/// `1.43.0`, `1.0.0-rc.1`; not a range, not `1.2`, not `01.2.3`.
pub fn is_exact_version(v: &str) -> bool {
    semver::Version::parse(v.strip_prefix('v').unwrap_or(v)).is_ok()
}

/// Why `v` is not an exact version, for the label.
fn not_exact_because(v: &str) -> &'static str {
    if semver::VersionReq::parse(v.strip_prefix('v').unwrap_or(v)).is_ok() {
        "a range, not one version"
    } else {
        "not a SemVer version"
    }
}

impl Rule for HelmChartUnpinned {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let mut merged = Merged::default();
        for r in objects(ctx.index, "helm", "HelmRelease") {
            let Some(chart) = r.spec().and_then(|s| s.path(&["chart", "spec"])) else {
                continue;
            };
            if let Some(kind) = chart.path(&["sourceRef", "kind"])
                && let Some(k) = kind.as_str()
                && k != "HelmRepository"
            {
                merged.add(
                    Finding::new(
                        Self::META.id,
                        Label::new(r.file, kind.span, "not a Helm repository"),
                        format!("chart of {} comes from a {k}, not a versioned HelmRepository", r.id()),
                    )
                    .help("Install the chart from a HelmRepository at an exact version, so every change of the platform is a commit."),
                    r.env,
                );
            }
            let Some(version) = chart.get("version") else {
                // Flux installs the newest release. A base that overlays
                // give a version is judged where an environment applies it
                // (rendered, or in its directory), not alone.
                if r.env.is_some() {
                    let at = r
                        .spec()
                        .and_then(|s| s.get("chart"))
                        .and_then(|c| c.entry("spec"))
                        .map_or(chart.span, |e| e.key.span);
                    merged.add(
                        Finding::new(
                            Self::META.id,
                            Label::new(r.file, at, "no `version` here"),
                            format!("chart of {} has no version: Flux installs the newest", r.id()),
                        )
                        .help("Pin the exact chart version (e.g. `1.43.0`) and upgrade it with a commit."),
                        r.env,
                    );
                }
                continue;
            };
            let text = version.as_scalar().map_or("", |s| s.text.as_str());
            // A `${VAR}` Flux did not substitute here (no value dtlint can
            // read) is unverifiable, not wrong.
            if is_exact_version(text) || text.contains("${") {
                continue;
            }
            merged.add(
                Finding::new(
                    Self::META.id,
                    Label::new(r.file, version.span, not_exact_because(text)),
                    format!("chart version `{text}` of {} is not pinned", r.id()),
                )
                .help("Pin the exact chart version (e.g. `1.43.0`) and upgrade it with a commit."),
                r.env,
            );
        }
        out.extend(merged.into_findings());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_versions_only() {
        for ok in [
            "1.43.0",
            "v0.27.0",
            "2026.6.3",
            "1.0.0-rc.1",
            "1.0.0+build.5",
            "v1.2.3-beta.2+sha.5114f85",
        ] {
            assert!(is_exact_version(ok), "{ok}");
        }
        for bad in [
            "*",
            ">=1.0.0",
            "^1.2.0",
            "~1.2.0",
            "1.x",
            "1.2",
            "1.2.*",
            "1.0.0 - 2.0.0",
            "",
            "latest",
            // Leading zeros are not SemVer (2.0.0, item 2), in the core or a
            // numeric pre-release identifier.
            "01.2.3",
            "1.02.3",
            "1.2.03",
            "1.2.3-01",
            "1.2.3.4",
            "1.2.3-",
            "1.2.3+",
            "vv1.2.3",
            " 1.2.3",
        ] {
            assert!(!is_exact_version(bad), "{bad}");
        }
        assert_eq!(not_exact_because("^1.2.0"), "a range, not one version");
        assert_eq!(not_exact_because("01.2.3"), "not a SemVer version");
    }
}
