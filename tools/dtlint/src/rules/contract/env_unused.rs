use std::collections::HashSet;

use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Container;
use crate::rules::Merged;
use crate::rules::contract::{Source, provided, targets};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports environment variables that a service's container sets but
    /// its config contract (`services/<svc>/config-contract.toml`) does not
    /// list: an `env` entry, or a key brought in by `envFrom`.
    ///
    /// ## Why is this bad?
    /// Nothing reads the variable. Usually it is a renamed or misspelt one
    /// (`GC_REGON`), so the value someone meant to set is not set, or a
    /// leftover that makes readers believe a setting exists.
    ///
    /// ## Example
    /// ```yaml
    /// env:
    ///   - name: MC_STALENESS_SECONDS     # the contract says MC_STALENESS_THRESHOLD_SECONDS
    ///     value: "30"
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// env:
    ///   - name: MC_STALENESS_THRESHOLD_SECONDS
    ///     value: "30"
    /// ```
    ///
    /// ## References
    /// - SPEC.md, "Services": env vars are the contract the manifests must satisfy
    /// - `dtlint explain env-contract` for the contract format
    pub struct EnvUnused {
        id: "env-unused",
        category: "contract",
        severity: Warning,
        summary: "a workload sets an env var its service's config contract does not list",
        needs: Repository,
    }
}

/// Variables used as `$(NAME)` in other env values, `command` or `args`:
/// Kubernetes expands them, so they are read even if the service is not.
fn dependent_references(c: &Container<'_>) -> HashSet<String> {
    let mut texts: Vec<&str> = c
        .node
        .get("env")
        .into_iter()
        .flat_map(Node::items)
        .filter_map(|e| e.get("value").and_then(Node::as_str))
        .collect();
    for key in ["command", "args"] {
        texts.extend(
            c.node
                .get(key)
                .into_iter()
                .flat_map(Node::items)
                .filter_map(Node::as_str),
        );
    }
    let mut out = HashSet::new();
    for t in texts {
        let mut rest = t;
        while let Some(at) = rest.find("$(") {
            // `$$(X)` is an escaped literal.
            let escaped = at > 0 && rest.as_bytes()[at - 1] == b'$';
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(')') {
                if !escaped {
                    out.insert(rest[..end].to_string());
                }
                rest = &rest[end..];
            }
        }
    }
    out
}

impl Rule for EnvUnused {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let idx = ctx.index;
        let mut merged = Merged::default();
        for contract in &idx.ws.contracts {
            for (w, c) in targets(idx, contract) {
                let referenced = dependent_references(&c);
                for p in provided(idx, w, &c) {
                    if contract.var(&p.name).is_some() || referenced.contains(&p.name) {
                        continue;
                    }
                    let label = match p.source {
                        Source::EnvFrom { kind } => {
                            format!("brings in {} from a {}", p.name, kind.as_str())
                        }
                        _ => "not in the contract".to_string(),
                    };
                    merged.add(
                        Finding::new(
                            Self::META.id,
                            Label::new(w.file, p.span, label),
                            format!("{} sets {}, which {} does not read", w.id(), p.name, contract.service),
                        )
                        .help(format!("Remove the variable, fix its name, or add it to {} if the service reads it.", contract.path)),
                        w.env,
                    );
                }
            }
        }
        out.extend(merged.into_findings());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn run(env: &str) -> Vec<Finding> {
        let dir = tempfile::tempdir().unwrap();
        let d = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: mc}}\nspec:\n  template:\n    metadata:\n      labels: {{app.kubernetes.io/name: mc}}\n    spec:\n      containers:\n        - name: mc\n          envFrom: [{{configMapRef: {{name: mc}}}}]\n          env:\n{env}"
        );
        std::fs::create_dir_all(dir.path().join("services/mc")).unwrap();
        std::fs::write(dir.path().join("services/mc/config-contract.toml"), "service = \"mc\"\n[[env]]\nname = \"ADDR\"\nrequired = true\n[[env]]\nname = \"REGION\"\n").unwrap();
        std::fs::write(dir.path().join("d.yaml"), d).unwrap();
        std::fs::write(dir.path().join("cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mc}\ndata: {REGION: eu, REGON: eu}\n").unwrap();
        crate::rules::testing::check_dir(&EnvUnused, dir.path(), &Config::dark_tower())
    }

    #[test]
    fn unread_variables_are_reported_and_expansions_count_as_reads() {
        let out = run(
            "            - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n            - {name: ADDR, value: '$(POD_IP):50052'}\n            - {name: ADRR, value: x}\n",
        );
        let msgs: Vec<&str> = out.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "Deployment/mc sets REGON, which mc does not read",
                "Deployment/mc sets ADRR, which mc does not read"
            ]
        );
        assert_eq!(out[0].primary.message, "brings in REGON from a ConfigMap");
        assert_eq!(out[1].primary.span.start.line, 15);
        let escaped = run(
            "            - {name: POD_IP, value: x}\n            - {name: ADDR, value: '$$(POD_IP)'}\n",
        );
        assert_eq!(
            escaped.len(),
            2,
            "an escaped reference reads nothing: {escaped:?}"
        );
    }
}
