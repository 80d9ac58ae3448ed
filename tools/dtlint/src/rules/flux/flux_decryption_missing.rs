use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::flux::path_key;
use crate::rules::Merged;
use crate::rules::flux::objects;
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a Flux Kustomization whose build reads SOPS-encrypted files
    /// but that has no `spec.decryption` with `provider: sops`. The files
    /// are found by following the path's kustomization.yaml recursively:
    /// `resources`, `components`, patches and generator inputs. A SOPS file
    /// is YAML with a top-level `sops:` mapping holding a `mac`, or a
    /// dotenv file with a `sops_mac=` line.
    ///
    /// ## Why is this bad?
    /// Without decryption kustomize-controller applies the ciphertext: the
    /// Secret holds `ENC[AES256_GCM,...]` strings (or the apply fails on the
    /// `sops` key), and the service starts with garbage credentials.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Kustomization
    /// spec:
    ///   path: ./overlays/production/global-controller   # patches secret.sops.yaml
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// kind: Kustomization
    /// spec:
    ///   path: ./overlays/production/global-controller
    ///   decryption:
    ///     provider: sops
    ///     secretRef:
    ///       name: sops-age
    /// ```
    ///
    /// ## References
    /// - Flux decryption: <https://fluxcd.io/flux/components/kustomize/kustomizations/#decryption>
    /// - SPEC.md, "Flux": `decryption` wherever the path holds SOPS files
    pub struct FluxDecryptionMissing {
        id: "flux-decryption-missing",
        category: "flux",
        severity: Error,
        summary: "a Flux Kustomization applies SOPS files without sops decryption",
        needs: Repository,
    }
}

impl Rule for FluxDecryptionMissing {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let idx = ctx.index;
        let mut merged = Merged::default();
        for r in objects(idx, "kustomize", "Kustomization") {
            let Some(spec) = r.spec() else { continue };
            let Some(path) = spec.get("path") else {
                continue;
            };
            let Some(raw) = path.as_str() else { continue };
            let Some(info) = idx.flux_paths.get(&path_key(raw)) else {
                continue;
            };
            let Some(first) = info.sops_files.first() else {
                continue;
            };
            let provider = spec.path(&["decryption", "provider"]);
            if provider.and_then(Node::as_str) == Some("sops") {
                continue;
            }
            let shown = crate::source::display_path(&idx.ws.root, first);
            let more = match info.sops_files.len() {
                1 => String::new(),
                n => format!(" and {} more", n - 1),
            };
            let (span, label) = match (provider, spec.entry("decryption")) {
                (Some(p), _) => (p.span, "not the sops provider"),
                (None, Some(e)) => (e.key.span, "no `provider: sops`"),
                (None, None) => (path.span, "this path's build reads SOPS files"),
            };
            let mut f = Finding::new(
                Self::META.id,
                Label::new(r.file, span, label),
                format!("{} applies {shown}{more} without SOPS decryption", r.id()),
            )
            .help("Add `decryption: {provider: sops, secretRef: {name: sops-age}}` to the Kustomization's spec so kustomize-controller decrypts the files before the build.");
            if let Some(id) = idx.ws.sources.find_abs(first)
                && let Some(at) = idx
                    .ws
                    .parsed(id)
                    .documents
                    .iter()
                    .find_map(|d| d.root.entry("sops"))
            {
                f = f.with(Label::new(id, at.key.span, "encrypted with SOPS"));
            }
            merged.add(f, r.env);
        }
        out.extend(merged.into_findings());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;

    const SOPS: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  A: ENC[x]\nsops:\n  mac: ENC[y]\n";

    fn ks(decryption: &str) -> String {
        format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: a, namespace: flux-system}}\nspec:\n  interval: 10m\n  path: ./app\n  prune: true\n  sourceRef: {{kind: GitRepository, name: flux-system}}\n{decryption}"
        )
    }

    fn files(k: &str) -> [(&str, &str); 4] {
        [
            (
                "app/kustomization.yaml",
                "resources: [../base]\npatches:\n  - path: secret.sops.yaml\n",
            ),
            ("app/secret.sops.yaml", SOPS),
            ("base/kustomization.yaml", "resources: []\n"),
            ("clusters/k.yaml", k),
        ]
    }

    #[test]
    fn sops_patches_need_decryption() {
        let bad = ks("");
        let out = run(&FluxDecryptionMissing, &files(&bad));
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].message,
            "Kustomization/a applies app/secret.sops.yaml without SOPS decryption"
        );
        assert_eq!(out[0].secondary[0].message, "encrypted with SOPS");
        let good = ks("  decryption:\n    provider: sops\n    secretRef: {name: sops-age}\n");
        assert!(run(&FluxDecryptionMissing, &files(&good)).is_empty());
        let wrong = ks("  decryption:\n    provider: vault\n");
        let out = run(&FluxDecryptionMissing, &files(&wrong));
        assert_eq!(out[0].primary.message, "not the sops provider");
    }
}
