//! Mapping rendered objects back to sources is total: every node of every
//! rendered document maps (to the source that set it, or to the overlay
//! kustomization's entry that produced the object) to a file of the
//! repository, never to the rendered stream; and a scalar mapped to a
//! manifest (a resource or a patch, not a kustomization's transformer)
//! has there the text it has in the rendered stream.
//!
//! Generated overlays are built with the real `kubectl kustomize` (or
//! `kustomize`): few cases, each is a subprocess.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::fmt::Write as _;
use std::path::Path;

use dtlint::config::Config;
use dtlint::diag::{Finding, Label};
use dtlint::engine::{self, Prepared, RenderOptions};
use dtlint::model::Index;
use dtlint::workspace::Role;
use dtlint::yaml::{Node, Span, Value};
use proptest::prelude::*;

/// Every node of a tree, keys included.
fn nodes<'n>(n: &'n Node, out: &mut Vec<&'n Node>) {
    out.push(n);
    match &n.value {
        Value::Mapping(entries) => {
            for e in entries {
                out.push(&e.key);
                nodes(&e.value, out);
            }
        }
        Value::Sequence(items) => {
            for i in items {
                nodes(i, out);
            }
        }
        Value::Scalar(_) => {}
    }
}

/// The scalar of `root` written exactly at `span`.
fn scalar_at(root: &Node, span: Span) -> Option<&str> {
    let mut all = Vec::new();
    nodes(root, &mut all);
    all.into_iter()
        .find(|n| n.span == span && n.as_str().is_some())
        .and_then(Node::as_str)
}

fn prepare(root: &Path) -> Prepared {
    let config = Config::load(&root.join("dtlint.toml")).unwrap();
    let render = RenderOptions {
        enabled: true,
        cache_dir: None,
        only_env: None,
    };
    let (prepared, notes) = engine::prepare(root, &[root.to_path_buf()], &config, &render).unwrap();
    assert!(
        notes.render_skipped.is_none(),
        "kubectl or kustomize is needed: {:?}",
        notes.render_skipped
    );
    prepared
}

/// Map every node of every rendered document; return the problems and the
/// number of nodes mapped.
fn check_total(prepared: &Prepared, compare_scalars: bool) -> (Vec<String>, usize, usize) {
    let index = Index::build(prepared);
    let ws = &prepared.ws;
    let mut problems = Vec::new();
    let mut mapped = 0;
    let mut compared = 0;
    assert!(
        prepared.render.failures.is_empty(),
        "builds failed: {:?}",
        prepared
            .render
            .failures
            .iter()
            .map(|b| b.output.clone().err())
            .collect::<Vec<_>>()
    );
    for r in &prepared.render.rendered {
        for doc in &ws.parsed(r.file).documents {
            let mut all = Vec::new();
            nodes(&doc.root, &mut all);
            for n in all {
                let mut f = Finding::new("mapping", Label::new(r.file, n.span, ""), "");
                engine::to_source(&index, &mut f);
                mapped += 1;
                let (file, span) = (f.primary.file, f.primary.span);
                let path = &ws.sources.get(file).path;
                if prepared.rendered_of(file).is_some() || ws.role(file) == Role::Rendered {
                    problems.push(format!(
                        "{}:{}: `{}` maps to the rendered stream",
                        ws.sources.get(r.file).path,
                        n.span.start.line,
                        n.as_str().unwrap_or("(node)")
                    ));
                    continue;
                }
                if !ws.sources.get(file).abs.starts_with(&ws.root) {
                    problems.push(format!("`{path}` is outside the repository"));
                    continue;
                }
                let Some(rendered) = n.as_str() else { continue };
                if !compare_scalars || !matches!(ws.role(file), Role::Resource | Role::Patch) {
                    continue;
                }
                // The file set the value when the rendered node's whole path
                // is written there; otherwise the mapping fell back to the
                // nearest ancestor it has (a key a transformer added).
                let (steps, _) = dtlint::render::path_to(&doc.root, n.span);
                let source = ws.parsed(file).documents.iter().find_map(|d| {
                    let (_, _, matched) = dtlint::render::follow(&d.root, &steps);
                    (matched == steps.len())
                        .then(|| scalar_at(&d.root, span))
                        .flatten()
                });
                compared += usize::from(source.is_some());
                if let Some(source) = source
                    && source != rendered
                    // A name kustomize suffixed with the generator's hash,
                    // written without it where it is referenced.
                    && !rendered.starts_with(&format!("{source}-"))
                {
                    problems.push(format!(
                        "{}:{}: rendered `{rendered}` maps to `{source}` at {path}:{}",
                        ws.sources.get(r.file).path,
                        n.span.start.line,
                        span.start.line
                    ));
                }
            }
        }
    }
    (problems, mapped, compared)
}

const WORDS: &[&str] = &["alpha", "beta", "gamma", "delta"];

/// One overlay: which patches, transformers and generators it uses.
#[derive(Debug, Clone)]
struct Overlay {
    replicas: Option<u8>,
    env_value: Option<&'static str>,
    config_key: Option<&'static str>,
    cpu: Option<u8>,
    label: Option<&'static str>,
    tag: Option<&'static str>,
    literals: Vec<&'static str>,
}

fn overlay() -> impl Strategy<Value = Overlay> {
    let word = || proptest::sample::select(WORDS);
    (
        proptest::option::of(1u8..6),
        proptest::option::of(word()),
        proptest::option::of(word()),
        proptest::option::of(1u8..9),
        proptest::option::of(word()),
        proptest::option::of(proptest::sample::select(&["1.1", "2.0", "latest"][..])),
        proptest::collection::vec(word(), 0..3),
    )
        .prop_map(
            |(replicas, env_value, config_key, cpu, label, tag, literals)| Overlay {
                replicas,
                env_value,
                config_key,
                cpu,
                label,
                tag,
                literals,
            },
        )
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  labels:
    app.kubernetes.io/name: app
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: app
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app
    spec:
      containers:
        - name: app
          image: nginx:1.0
          ports:
            - name: http
              containerPort: 8080
          env:
            - name: MODE
              value: base
          envFrom:
            - configMapRef:
                name: settings
";

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  selector:
    app.kubernetes.io/name: app
  ports:
    - name: http
      port: 80
      targetPort: http
";

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  LEVEL: info
";

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn build_repo(root: &Path, o: &Overlay) {
    write(
        root,
        "dtlint.toml",
        "[environments.production]\noverlays = \"overlays/production\"\n",
    );
    write(root, "base/app/deployment.yaml", DEPLOYMENT);
    write(root, "base/app/service.yaml", SERVICE);
    write(root, "base/app/configmap.yaml", CONFIGMAP);
    write(
        root,
        "base/app/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\n  - service.yaml\n  - configmap.yaml\n",
    );
    let dir = "overlays/production/app";
    let mut k = String::from(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../../base/app\n",
    );
    let mut patches = Vec::new();
    let head = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n";
    if let Some(n) = o.replicas {
        patches.push(("replicas.yaml", format!("{head}  replicas: {n}\n")));
    }
    if let Some(v) = o.env_value {
        patches.push((
            "env.yaml",
            format!("{head}  template:\n    spec:\n      containers:\n        - name: app\n          env:\n            - name: MODE\n              value: {v}\n"),
        ));
    }
    if let Some(cpu) = o.cpu {
        patches.push((
            "resources.yaml",
            format!("{head}  template:\n    spec:\n      containers:\n        - name: app\n          resources:\n            limits:\n              cpu: {cpu}00m\n"),
        ));
    }
    if let Some(key) = o.config_key {
        patches.push((
            "settings.yaml",
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  {key}: set-in-production\n"),
        ));
    }
    if !patches.is_empty() {
        k.push_str("patches:\n");
        for (name, text) in &patches {
            write(root, &format!("{dir}/{name}"), text);
            let _ = writeln!(k, "  - path: {name}");
        }
    }
    if let Some(l) = o.label {
        let _ = write!(k, "labels:\n  - pairs:\n      tier: {l}\n");
    }
    if let Some(t) = o.tag {
        let _ = write!(k, "images:\n  - name: nginx\n    newTag: \"{t}\"\n");
    }
    if !o.literals.is_empty() {
        k.push_str("configMapGenerator:\n  - name: generated\n    literals:\n");
        for (i, w) in o.literals.iter().enumerate() {
            let _ = writeln!(k, "      - KEY_{i}={w}");
        }
    }
    write(root, &format!("{dir}/kustomization.yaml"), &k);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn every_rendered_node_of_a_generated_overlay_maps_to_a_source(o in overlay()) {
        let dir = tempfile::tempdir().unwrap();
        build_repo(dir.path(), &o);
        let prepared = prepare(dir.path());
        prop_assert_eq!(prepared.render.rendered.len(), 1);
        let (problems, mapped, compared) = check_total(&prepared, true);
        prop_assert!(mapped > 50, "{} nodes", mapped);
        prop_assert!(compared > 20, "{} scalars compared", compared);
        prop_assert!(problems.is_empty(), "{:?}\n{}", o, problems.join("\n"));
    }
}

/// The same over this repository's own overlays, every node of every one.
#[test]
fn every_rendered_node_of_this_repository_maps_to_a_source() {
    let dir = support::copy();
    let prepared = prepare(dir.path());
    assert!(prepared.render.rendered.len() >= 3);
    let (problems, mapped, _) = check_total(&prepared, false);
    assert!(mapped > 1000, "{mapped} nodes");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
