use crate::diag::{Finding, Label};
use crate::rules::certificates::{Deployed, certificate_values, describe, is_ca_key};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a self-signed certificate served from a Secret in an
    /// environment where self-signed certificates are not allowed: the
    /// first certificate (the leaf) of any Secret value holding PEM
    /// certificates, whose issuer is its own subject (and, when the
    /// algorithm allows checking, whose signature verifies with its own
    /// key). CA bundles (`ca.crt`, `*-ca.pem`, `ca-bundle.crt`) are trust
    /// anchors, self-signed by nature, and are not judged. SOPS-encrypted
    /// values are read after decryption when the run has an age key
    /// (`SOPS_AGE_KEY_FILE`). The environments come from `dtlint.toml`:
    /// a file in an environment's overlay directory belongs to it, a base
    /// file to every environment that builds it. Self-signed certificates
    /// are allowed in `development` unless configured otherwise:
    ///
    /// ```toml
    /// [certificates]
    /// self-signed-environments = ["development"]
    /// ```
    ///
    /// ## Why is this bad?
    /// No client can verify a self-signed certificate without pinning it:
    /// clients either fail the handshake or are configured to skip
    /// verification, which also accepts an attacker's certificate. A
    /// certificate kept in git is also renewed by nobody.
    ///
    /// ## Example
    /// ```yaml
    /// # overlays/production/meeting-controller/secret.sops.yaml, decrypted
    /// stringData:
    ///   tls.crt: |
    ///     -----BEGIN CERTIFICATE-----   # issuer = subject = CN=mc.example
    /// ```
    ///
    /// ## Use instead
    /// Certificates belong to cert-manager, not to git: a `Certificate`
    /// issued by the environment's `Issuer` writes and renews the Secret.
    /// ```yaml
    /// apiVersion: cert-manager.io/v1
    /// kind: Certificate
    /// metadata:
    ///   name: meeting-controller-tls
    /// spec:
    ///   secretName: meeting-controller-tls
    ///   dnsNames: [mc.example]
    ///   issuerRef: {kind: Issuer, name: dark-tower-issuer}
    /// ```
    ///
    /// ## References
    /// - cert-manager Certificate resources: <https://cert-manager.io/docs/usage/certificate/>
    /// - Self-signed certificates (RFC 5280, 6.1): <https://www.rfc-editor.org/rfc/rfc5280#section-6.1>
    pub struct CertificateSelfSigned {
        id: "certificate-self-signed",
        category: "certificates",
        severity: Error,
        summary: "a Secret serves a self-signed certificate outside the environments that allow it",
    }
}

impl Rule for CertificateSelfSigned {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let values = certificate_values(ctx);
        if values.is_empty() {
            return;
        }
        let allowed = &ctx.config.certificates;
        let deployed = Deployed::new(ctx);
        let configured = !ctx.config.environments.is_empty();
        for cv in &values {
            let v = cv.value;
            if is_ca_key(v.key) {
                continue;
            }
            // The leaf: the first certificate of the value.
            let Some((0, cert)) = cv.certificates().into_iter().next() else {
                continue;
            };
            if cert.subject().as_raw() != cert.issuer().as_raw() {
                continue;
            }
            let envs: Vec<&str> = deployed
                .envs(v)
                .into_iter()
                .filter(|e| !allowed.allows_self_signed(e))
                .collect();
            // With environments configured, a file no environment deploys
            // (or only allowed ones) is not judged; without any, every
            // certificate is.
            if configured && envs.is_empty() {
                continue;
            }
            let label = if cert.verify_signature(None).is_ok() {
                "issuer = subject, signed with its own key"
            } else {
                "issuer = subject"
            };
            let mut f = Finding::new(
                Self::META.id,
                Label::new(v.file, v.span, label),
                format!(
                    "self-signed certificate `{}` in `{}` of {}",
                    describe(&cert),
                    v.path(),
                    v.owner()
                ),
            )
            .help(format!(
                "Clients cannot verify a self-signed certificate. Certificates belong to cert-manager, not to git: issue this one from a cert-manager `Certificate` (with the environment's `Issuer`) that writes and renews {}. Only `[certificates] self-signed-environments` in dtlint.toml (default: development) may self-sign.",
                v.owner()
            ));
            f.envs = envs.into_iter().map(str::to_string).collect();
            out.push(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::rules::certificates::testdata::{CA, LEAF, SELF_SIGNED_EXPIRED, indented};

    fn secret(name: &str, key: &str, pem: &str) -> String {
        let body = indented(pem);
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData:\n  {key}: |\n{body}"
        )
    }

    fn run(files: &[(&str, String)], toml: &str) -> Vec<Finding> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let config = Config::parse(toml, "dtlint.toml").unwrap();
        crate::rules::testing::check_dir(&CertificateSelfSigned, dir.path(), &config)
    }

    const ENVS: &str = "[environments.development]\noverlays = \"o/development\"\n[environments.staging]\noverlays = \"o/staging\"\n";

    #[test]
    fn self_signed_leaves_are_found_outside_development() {
        let files = [
            (
                "o/staging/a.yaml",
                secret("a", "tls.crt", SELF_SIGNED_EXPIRED),
            ),
            (
                "o/development/b.yaml",
                secret("b", "tls.crt", SELF_SIGNED_EXPIRED),
            ),
            ("o/staging/c.yaml", secret("c", "ca.crt", CA)),
            (
                "o/staging/d.yaml",
                secret("d", "tls.crt", &format!("{LEAF}{CA}")),
            ),
        ];
        let out = run(&files, ENVS);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "self-signed certificate `CN=self.example` in `stringData.tls.crt` of Secret `a`"
        );
        assert_eq!(
            out[0].primary.message,
            "issuer = subject, signed with its own key"
        );
        assert_eq!(out[0].envs, ["staging"]);
    }

    #[test]
    fn the_allowed_environments_are_configurable() {
        let files = [
            (
                "o/staging/a.yaml",
                secret("a", "tls.crt", SELF_SIGNED_EXPIRED),
            ),
            (
                "o/development/b.yaml",
                secret("b", "tls.crt", SELF_SIGNED_EXPIRED),
            ),
        ];
        let toml = format!("{ENVS}[certificates]\nself-signed-environments = [\"staging\"]\n");
        let out = run(&files, &toml);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].envs, ["development"]);
        // Without environments every self-signed leaf is reported.
        assert_eq!(run(&files, "").len(), 2);
    }
}
