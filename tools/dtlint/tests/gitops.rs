//! Defects planted in a copy of this repository's manifests are found by the
//! GitOps-aware rules (network matrix, config contract, Flux) at the line
//! that was changed, and the unchanged copy is clean for those rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

mod support;
use support::{copy, plant};

use dtlint::config::Config;
use dtlint::engine::{self, Selection};
use dtlint::workspace::Workspace;

const RULES: [&str; 12] = [
    "missing-default-deny",
    "workload-not-isolated",
    "traffic-matrix",
    "env-contract",
    "env-unused",
    "flux-path-missing",
    "flux-ref-unresolved",
    "flux-dependency-cycle",
    "flux-decryption-missing",
    "flux-required-fields",
    "flux-interval-format",
    "helm-chart-unpinned",
];

/// (rule, path, line) of every finding of the GitOps rules, in source mode.
fn findings(root: &Path) -> Vec<(String, String, u32, String)> {
    let config = Config::load(&root.join("dtlint.toml")).unwrap();
    let ws = Workspace::load(root, &[root.to_path_buf()], &config).unwrap();
    let selection = Selection {
        only: RULES.iter().map(ToString::to_string).collect(),
        skip: vec![],
        ..Selection::default()
    };
    engine::run(&ws, &config, &selection)
        .findings
        .into_iter()
        .filter(|f| RULES.contains(&f.rule))
        .map(|f| {
            (
                f.rule.to_string(),
                ws.sources.get(f.primary.file).path.clone(),
                f.primary.span.start.line,
                f.message,
            )
        })
        .collect()
}

fn has(found: &[(String, String, u32, String)], rule: &str, path: &str, line: u32) -> bool {
    found
        .iter()
        .any(|(r, p, l, _)| r == rule && p == path && *l == line)
}

#[test]
fn the_repository_is_clean() {
    let dir = copy();
    let found = findings(dir.path());
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn a_changed_network_policy_port_is_found_at_the_port() {
    let dir = copy();
    let file = "base/global-controller/network-policy.yaml";
    // The ingress from meeting-controller (the first `port: 50051`).
    let line = plant(dir.path(), file, "port: 50051", "port: 50055", 0);
    let found = findings(dir.path());
    assert!(has(&found, "traffic-matrix", file, line), "{found:#?}");
    assert!(
        found
            .iter()
            .any(|f| f.3 == "missing edge meeting-controller → global-controller on 50051/TCP"),
        "{found:#?}"
    );
}

#[test]
fn a_flux_path_that_does_not_exist_is_found_at_the_path() {
    let dir = copy();
    let file = "clusters/production/apps.yaml";
    let line = plant(
        dir.path(),
        file,
        "path: ./overlays/production/redis",
        "path: ./overlays/production/rediss",
        0,
    );
    let found = findings(dir.path());
    assert!(has(&found, "flux-path-missing", file, line), "{found:#?}");
}

#[test]
fn removed_decryption_is_found_at_the_kustomization() {
    let dir = copy();
    let file = "clusters/staging/apps.yaml";
    let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
    let redis = text.find("path: ./overlays/staging/redis").unwrap();
    let line = text[..redis].matches('\n').count() as u32 + 1;
    // The redis Kustomization's decryption block is the first after its path.
    let block = "  decryption:\n    provider: sops\n    secretRef:\n      name: sops-age\n";
    let at = redis + text[redis..].find(block).unwrap();
    let changed = format!("{}{}", &text[..at], &text[at + block.len()..]);
    std::fs::write(dir.path().join(file), changed).unwrap();
    let found = findings(dir.path());
    assert!(
        has(&found, "flux-decryption-missing", file, line),
        "{found:#?}"
    );
}

#[test]
fn an_env_var_renamed_in_the_deployment_is_found_at_the_rename() {
    let dir = copy();
    let file = "base/global-controller/deployment.yaml";
    let line = plant(dir.path(), file, "- name: GC_REGION", "- name: GC_REGON", 0);
    let found = findings(dir.path());
    assert!(has(&found, "env-unused", file, line), "{found:#?}");
    assert!(
        found
            .iter()
            .any(|f| f.0 == "env-contract" && f.3.contains("does not set GC_REGION")),
        "{found:#?}"
    );
}

#[test]
fn a_key_renamed_in_the_configmap_is_found_at_the_rename() {
    let dir = copy();
    let file = "base/global-controller/configmap.yaml";
    let line = plant(dir.path(), file, "AC_JWKS_URL:", "AC_JWKS_URI:", 0);
    let found = findings(dir.path());
    assert!(has(&found, "env-contract", file, line), "{found:#?}");
}
