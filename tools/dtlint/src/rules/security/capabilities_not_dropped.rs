use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that every container drops all Linux capabilities
    /// (`capabilities.drop: [ALL]`) and adds back none but
    /// `NET_BIND_SERVICE`.
    ///
    /// ## Why is this bad?
    /// Container runtimes grant a default set of capabilities (`NET_RAW`,
    /// `CHOWN`, `SETUID`, …) that our services never use and attackers do:
    /// `NET_RAW` alone allows spoofing traffic to other pods on the node.
    ///
    /// ## Example
    /// ```yaml
    /// securityContext:
    ///   capabilities:
    ///     add: [NET_ADMIN]
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// securityContext:
    ///   capabilities:
    ///     drop: [ALL]
    /// ```
    ///
    /// ## References
    /// - Pod Security Standards, restricted: <https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted>
    pub struct CapabilitiesNotDropped {
        id: "capabilities-not-dropped",
        category: "security",
        severity: Error,
        summary: "a container keeps Linux capabilities it does not need",
    }
}

impl Rule for CapabilitiesNotDropped {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, _ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let help = "Set `capabilities: {drop: [ALL]}` and add back only NET_BIND_SERVICE if a port below 1024 is needed.";
        for c in r.containers() {
            let caps = c
                .node
                .get("securityContext")
                .and_then(|s| s.get("capabilities"));
            let drops_all = caps
                .and_then(|c| c.get("drop"))
                .is_some_and(|d| d.items().any(|i| i.as_str() == Some("ALL")));
            // `all` or `All`: the runtime matches capability names exactly,
            // so it drops nothing.
            let misspelled = caps
                .and_then(|c| c.get("drop"))
                .into_iter()
                .flat_map(Node::items)
                .find(|i| {
                    i.as_str()
                        .is_some_and(|s| s != "ALL" && s.eq_ignore_ascii_case("all"))
                });
            if let (false, Some(item)) = (drops_all, misspelled) {
                let written = item.as_str().unwrap_or("all");
                let mut f = Finding::new(
                    Self::META.id,
                    Label::new(r.file, item.span, "must be spelled `ALL`"),
                    format!(
                        "container `{}` of {} drops `{written}`, which is not `ALL`: no capability is dropped",
                        c.name(),
                        r.id()
                    ),
                )
                .help("Write `drop: [ALL]` in capitals: capability names are matched exactly.");
                // What was meant, in the case that works: safe.
                f.replacement = Some(crate::diag::Replacement::text("ALL", true));
                out.push(f);
            } else if !drops_all {
                // `drop:`'s value, else `capabilities:`, else `securityContext:`.
                let span = caps
                    .and_then(|cp| cp.get("drop"))
                    .map(|d| d.span)
                    .or_else(|| {
                        c.node
                            .get("securityContext")
                            .and_then(|s| s.entry("capabilities"))
                            .map(|e| e.key.span)
                    });
                let span = span.unwrap_or_else(|| super::missing_span(&c));
                let mut f = Finding::new(
                    Self::META.id,
                    Label::new(r.file, span, "no drop: [ALL]"),
                    format!(
                        "container `{}` of {} does not drop all capabilities",
                        c.name(),
                        r.id()
                    ),
                )
                .help(help);
                f.replacement = Some(crate::diag::Replacement::in_container(
                    &["securityContext", "capabilities", "drop"],
                    "[ALL]",
                    caps.and_then(|cp| cp.get("drop")).is_some(),
                ));
                out.push(f);
            }
            for add in caps
                .and_then(|c| c.get("add"))
                .into_iter()
                .flat_map(Node::items)
            {
                let name = add.as_str().unwrap_or("?");
                if name != "NET_BIND_SERVICE" {
                    out.push(
                        Finding::new(
                            Self::META.id,
                            Label::new(r.file, add.span, "added capability"),
                            format!(
                                "container `{}` of {} adds capability {name}",
                                c.name(),
                                r.id()
                            ),
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

    #[test]
    fn a_lowercase_all_is_named_as_the_reason() {
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: c\n      image: x:1\n      securityContext:\n        capabilities:\n          drop: [all]\n";
        let out = crate::rules::testing::run(&CapabilitiesNotDropped, &[("p.yaml", pod)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].message.contains("drops `all`, which is not `ALL`"),
            "{}",
            out[0].message
        );
    }
    use super::*;
    use crate::config::Config;

    #[test]
    fn capabilities_without_drop_are_reported_at_capabilities() {
        let dir = tempfile::tempdir().unwrap();
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: mc}\nspec:\n  containers:\n    - name: mc\n      securityContext:\n        capabilities:\n          add: [NET_BIND_SERVICE]\n";
        std::fs::write(dir.path().join("pod.yaml"), pod).unwrap();
        let config = Config::dark_tower();
        let out = crate::rules::testing::check_dir(&CapabilitiesNotDropped, dir.path(), &config);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (
                out[0].primary.span.start.line,
                out[0].primary.span.start.col
            ),
            (8, 9)
        );
    }
}
