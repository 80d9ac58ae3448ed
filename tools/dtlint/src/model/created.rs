//! Objects that controllers create from the objects in git, so that a
//! reference to one resolves instead of being reported as missing:
//!
//! - `flux bootstrap` (a `flux-system/gotk-sync.yaml`, even the placeholder
//!   a repository commits before bootstrapping) and a flux-operator
//!   `FluxInstance` with `spec.sync` (also as the values of the
//!   `flux-instance` chart): the sync source and Kustomization, named after
//!   the namespace (`flux-system`) unless `sync.name` says otherwise;
//! - a Flux `ArtifactGenerator`: an `ExternalArtifact` per `spec.artifacts`;
//! - an `ExternalSecret` (its target Secret), a `ClusterExternalSecret` (in
//!   namespaces dtlint cannot list) and a cert-manager `Certificate`
//!   (`spec.secretName`);
//! - a CloudNativePG `Cluster`: its Secrets and Services, by the operator's
//!   naming;
//! - a `HelmRelease`: objects of any kind and name in its target namespace,
//!   which dtlint cannot see (a reference into them is unverifiable, never
//!   missing).

use dtlint_yaml::Node;

use super::{Index, Namespaces, Resource};

/// One object (or, for a chart, any object) a controller creates.
#[derive(Debug, Clone)]
pub struct Created {
    /// API group and kind; `None` for a chart's objects, of any kind.
    pub kind: Option<(String, String)>,
    /// `None`: any name.
    pub name: Option<String>,
    /// `None`: namespaces dtlint cannot know.
    pub namespace: Option<String>,
    /// The object that makes it (index into [`Index::resources`]), when
    /// one does (bootstrap has none).
    pub creator: Option<usize>,
    /// Who creates it, for messages: "FluxInstance flux-system/flux".
    pub by: String,
}

const SOURCE: &str = "source.toolkit.fluxcd.io";
const KUSTOMIZE: &str = "kustomize.toolkit.fluxcd.io";

/// The Flux source kinds a sync may create.
fn source_kind(kind: &str) -> Option<(String, String)> {
    ["GitRepository", "OCIRepository", "Bucket"]
        .into_iter()
        .find(|k| *k == kind)
        .map(|k| kind_of(SOURCE, k))
}

fn kind_of(group: &str, kind: &str) -> (String, String) {
    (group.to_string(), kind.to_string())
}

fn str_at<'n>(node: Option<&'n Node>, path: &[&str]) -> Option<&'n str> {
    node?.str_at(path)
}

/// Everything the objects of `idx` make (see the module docs).
pub fn created(idx: &Index<'_>) -> Vec<Created> {
    let namespaces = Namespaces::new(idx);
    let mut out = Vec::new();
    if let Some((_, f)) = idx.ws.sources.iter().find(|(_, f)| {
        f.path == "flux-system/gotk-sync.yaml" || f.path.ends_with("/flux-system/gotk-sync.yaml")
    }) {
        for (group, kind) in [(SOURCE, "GitRepository"), (KUSTOMIZE, "Kustomization")] {
            out.push(Created {
                kind: Some(kind_of(group, kind)),
                name: Some("flux-system".into()),
                namespace: Some("flux-system".into()),
                creator: None,
                by: format!("`flux bootstrap` ({})", f.path),
            });
        }
    }
    for (i, r) in idx.resources.iter().enumerate() {
        if !r.is_object() {
            continue;
        }
        let ns = || namespaces.of(r);
        let spec = r.spec();
        let mut add =
            |kind: Option<(String, String)>, name: Option<String>, namespace: Option<String>| {
                out.push(Created {
                    kind,
                    name,
                    namespace,
                    creator: Some(i),
                    by: format!("{} {}/{}", r.kind, namespaces.of(r), r.name),
                });
            };
        match (r.group(), r.kind) {
            ("fluxcd.controlplane.io", "FluxInstance") => {
                sync(crate::flux::instance_sync(r.root), &ns(), &mut add);
            }
            ("helm.toolkit.fluxcd.io", "HelmRelease") => {
                let target = str_at(spec, &["targetNamespace"]).map_or_else(ns, str::to_string);
                sync(crate::flux::instance_sync(r.root), &target, &mut add);
                add(None, None, Some(target));
            }
            ("source.extensions.fluxcd.io", "ArtifactGenerator") => {
                for a in spec
                    .and_then(|s| s.get("artifacts"))
                    .into_iter()
                    .flat_map(Node::items)
                {
                    if let Some(name) = str_at(Some(a), &["name"]) {
                        add(
                            Some(kind_of(SOURCE, "ExternalArtifact")),
                            Some(name.into()),
                            Some(ns()),
                        );
                    }
                }
            }
            ("external-secrets.io", "ExternalSecret") => {
                let name = str_at(spec, &["target", "name"]).unwrap_or(r.name);
                add(Some(kind_of("", "Secret")), Some(name.into()), Some(ns()));
            }
            ("external-secrets.io", "ClusterExternalSecret") => {
                let name = str_at(spec, &["externalSecretSpec", "target", "name"])
                    .or_else(|| str_at(spec, &["externalSecretName"]))
                    .unwrap_or(r.name);
                add(Some(kind_of("", "Secret")), Some(name.into()), None);
            }
            ("cert-manager.io", "Certificate") => {
                if let Some(name) = str_at(spec, &["secretName"]) {
                    add(Some(kind_of("", "Secret")), Some(name.into()), Some(ns()));
                }
            }
            ("postgresql.cnpg.io", "Cluster") => {
                let mut secrets = vec!["ca", "server", "replication"];
                if spec
                    .and_then(|s| s.path(&["bootstrap", "initdb", "secret", "name"]))
                    .is_none()
                {
                    secrets.push("app");
                }
                if spec
                    .and_then(|s| s.get("enableSuperuserAccess"))
                    .and_then(Node::as_bool)
                    == Some(true)
                {
                    secrets.push("superuser");
                }
                for s in secrets {
                    add(
                        Some(kind_of("", "Secret")),
                        Some(format!("{}-{s}", r.name)),
                        Some(ns()),
                    );
                }
                for s in ["rw", "ro", "r"] {
                    add(
                        Some(kind_of("", "Service")),
                        Some(format!("{}-{s}", r.name)),
                        Some(ns()),
                    );
                }
            }
            _ => {}
        }
        // The repository's own controllers (`[[controller]]`).
        for c in idx.config.map_or(&[][..], |c| c.controllers.as_slice()) {
            if c.kind == r.kind && c.group.as_deref().is_none_or(|g| g == r.group()) {
                for made in &c.creates {
                    let name = made.name.as_ref().map(|n| n.replace("{name}", r.name));
                    add(Some(kind_of(&made.group, &made.kind)), name, Some(ns()));
                }
            }
        }
    }
    out
}

/// The source and Kustomization a flux-operator sync creates in `ns`.
fn sync(
    sync: Option<&Node>,
    ns: &str,
    add: &mut impl FnMut(Option<(String, String)>, Option<String>, Option<String>),
) {
    let Some(sync) = sync else { return };
    let name = str_at(Some(sync), &["name"]).unwrap_or(ns).to_string();
    let kind = str_at(Some(sync), &["kind"]).and_then(source_kind);
    if let Some(kind) = kind {
        add(Some(kind), Some(name.clone()), Some(ns.to_string()));
    }
    add(
        Some(kind_of(KUSTOMIZE, "Kustomization")),
        Some(name),
        Some(ns.to_string()),
    );
}

impl Index<'_> {
    /// What made an object of `group`/`kind` named `name` in namespace `ns`
    /// that `from` refers to, when a controller does (see [`created`]).
    /// A chart's objects, of unknown kinds and names, do not answer: see
    /// [`Index::chart_objects_in`].
    pub fn made_by(
        &self,
        from: &Resource<'_>,
        (group, kind): (&str, &str),
        name: &str,
        ns: &str,
    ) -> Option<&Created> {
        self.created.get_or_init(|| created(self)).iter().find(|c| {
            c.kind
                .as_ref()
                .is_some_and(|(g, k)| g == group && k == kind)
                && c.name.as_deref().is_none_or(|n| n == name)
                && c.namespace.as_deref().is_none_or(|n| n == ns)
                && c.creator
                    .is_none_or(|i| super::same_env(&self.resources[i], from))
        })
    }

    /// Does any HelmRelease install a chart (see [`Index::chart_objects_in`])?
    pub fn any_chart(&self) -> bool {
        self.created
            .get_or_init(|| created(self))
            .iter()
            .any(|c| c.kind.is_none())
    }

    /// Is `ns` the namespace of a chart's objects (a HelmRelease's target)
    /// in `from`'s environment? Selectors there may match what the chart
    /// creates.
    pub fn chart_objects_in(&self, from: &Resource<'_>, ns: &str) -> Option<&Created> {
        self.created.get_or_init(|| created(self)).iter().find(|c| {
            c.kind.is_none()
                && c.namespace.as_deref() == Some(ns)
                && c.creator
                    .is_none_or(|i| super::same_env(&self.resources[i], from))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// (group, kind, namespace, name) of what the files make, and whether
    /// a reference from the first object resolves to each.
    fn index_of(files: &[(&str, &str)], check: impl FnOnce(&Index<'_>)) {
        let (_dir, ws) = super::super::test_workspace(files, &Config::defaults());
        let index = Index::build(&ws);
        check(&index);
    }

    const KS: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: apps, namespace: flux-system}\nspec: {interval: 1h, prune: true, sourceRef: {kind: GitRepository, name: flux-system}}\n";

    #[test]
    fn the_repositorys_own_controllers_are_configured() {
        let config = Config::parse(
            "[[controller]]\nkind = \"Database\"\ngroup = \"db.example.com\"\ncreates = [{ kind = \"Secret\", name = \"{name}-credentials\" }]\n",
            "dtlint.toml",
        )
        .unwrap();
        let (_dir, ws) = super::super::test_workspace(
            &[(
                "db.yaml",
                "apiVersion: v1\nkind: Pod\nmetadata: {name: app, namespace: apps}\n---\napiVersion: db.example.com/v1\nkind: Database\nmetadata: {name: orders, namespace: apps}\n",
            )],
            &config,
        );
        let idx = Index::build_with(&ws, Some(&config));
        let pod = &idx.resources[0];
        let secret = ("", "Secret");
        let made = idx
            .made_by(pod, secret, "orders-credentials", "apps")
            .unwrap();
        assert_eq!(made.by, "Database apps/orders");
        assert!(idx.made_by(pod, secret, "orders", "apps").is_none());
        assert!(
            idx.made_by(pod, secret, "orders-credentials", "other")
                .is_none()
        );
    }

    #[test]
    fn a_bootstrap_placeholder_makes_the_sync_objects() {
        let git = ("source.toolkit.fluxcd.io", "GitRepository");
        index_of(&[("clusters/home/apps.yaml", KS)], |idx| {
            let ks = &idx.resources[0];
            assert!(idx.made_by(ks, git, "flux-system", "flux-system").is_none());
        });
        index_of(
            &[
                ("clusters/home/apps.yaml", KS),
                (
                    "clusters/home/flux-system/gotk-sync.yaml",
                    "# generated by flux bootstrap\n",
                ),
            ],
            |idx| {
                let ks = &idx.resources[0];
                let made = idx.made_by(ks, git, "flux-system", "flux-system").unwrap();
                assert!(made.by.contains("flux bootstrap"), "{}", made.by);
                assert!(idx.made_by(ks, git, "other", "flux-system").is_none());
            },
        );
    }

    #[test]
    fn controllers_make_secrets_services_and_sources() {
        let files = [
            ("a.yaml", KS),
            (
                "secrets.yaml",
                "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: db, namespace: apps}\nspec: {target: {name: db-creds}}\n---\napiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: pg, namespace: apps}\nspec: {instances: 1}\n---\napiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata: {name: flux, namespace: flux-system}\nspec: {sync: {kind: OCIRepository, url: 'oci://x', ref: latest, path: ./}}\n",
            ),
        ];
        index_of(&files, |idx| {
            let from = &idx.resources[0];
            let secret = ("", "Secret");
            assert!(idx.made_by(from, secret, "db-creds", "apps").is_some());
            assert!(
                idx.made_by(from, secret, "db", "apps").is_none(),
                "the target's name"
            );
            assert!(idx.made_by(from, secret, "pg-app", "apps").is_some());
            assert!(idx.made_by(from, secret, "pg-superuser", "apps").is_none());
            assert!(
                idx.made_by(from, ("", "Service"), "pg-rw", "apps")
                    .is_some()
            );
            let oci = ("source.toolkit.fluxcd.io", "OCIRepository");
            assert!(
                idx.made_by(from, oci, "flux-system", "flux-system")
                    .is_some()
            );
            assert!(idx.chart_objects_in(from, "apps").is_none());
        });
    }
}
