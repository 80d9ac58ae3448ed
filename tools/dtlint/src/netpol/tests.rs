use std::collections::BTreeMap;

use super::*;
use crate::config::Config;
use crate::model::Index;
use crate::workspace::Workspace;

fn ws(files: &[(&str, &str)]) -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let ws = Workspace::load(
        dir.path(),
        &[dir.path().to_path_buf()],
        &Config::dark_tower(),
    )
    .unwrap();
    (dir, ws)
}

fn deploy(name: &str, ports: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n  template:\n    metadata:\n      labels: {{app.kubernetes.io/name: {name}}}\n    spec:\n      containers:\n        - name: {name}\n          ports: {ports}\n"
    )
}

fn cells(files: &[(&str, &str)]) -> BTreeMap<(String, String), Vec<String>> {
    let (_d, ws) = ws(files);
    let index = Index::build(&ws);
    let mut config = Config::dark_tower();
    config.network = Some(NetworkConfig {
        namespace: Some("ns".into()),
        ..NetworkConfig::default()
    });
    matrices(&index, &config).remove(0).cells
}

fn cell(c: &BTreeMap<(String, String), Vec<String>>, f: &str, t: &str) -> Vec<String> {
    c.get(&(f.to_string(), t.to_string()))
        .cloned()
        .unwrap_or_default()
}

const DENY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: ns}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n";

#[test]
fn no_policy_allows_everything() {
    let a = deploy("a", "[]");
    let c = cells(&[("a.yaml", &a)]);
    assert_eq!(cell(&c, "a", "a"), ["*/TCP", "*/UDP", "*/SCTP"]);
    assert_eq!(cell(&c, "outside", "a"), ["*/TCP", "*/UDP", "*/SCTP"]);
}

#[test]
fn an_edge_needs_both_egress_and_ingress() {
    let a = deploy("a", "[]");
    let b = deploy("b", "[{name: grpc, containerPort: 50051}]");
    // b admits a on its named port; a may not send yet.
    let ingress = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: b, namespace: ns}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: b}}\n  ingress:\n    - from: [{podSelector: {matchLabels: {app.kubernetes.io/name: a}}}]\n      ports: [{port: grpc}]\n";
    let c = cells(&[
        ("a.yaml", &a),
        ("b.yaml", &b),
        ("deny.yaml", DENY),
        ("pb.yaml", ingress),
    ]);
    assert!(
        cell(&c, "a", "b").is_empty(),
        "the default-deny isolates a's egress"
    );
    assert!(cell(&c, "b", "outside").is_empty());
    let egress = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: ns}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: a}}\n  egress:\n    - to: [{podSelector: {}}]\n      ports: [{port: 50000, endPort: 50100}]\n";
    let c = cells(&[
        ("a.yaml", &a),
        ("b.yaml", &b),
        ("deny.yaml", DENY),
        ("pb.yaml", ingress),
        ("pa.yaml", egress),
    ]);
    assert_eq!(cell(&c, "a", "b"), ["50051/TCP"]);
    assert!(cell(&c, "b", "a").is_empty());
}

#[test]
fn policy_types_default_from_the_rules() {
    let a = deploy("a", "[]");
    // No policyTypes, no egress: isolates ingress only, so egress stays open.
    let p = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: ns}\nspec:\n  podSelector: {}\n  ingress:\n    - ports: [{port: 8080}]\n";
    let c = cells(&[("a.yaml", &a), ("p.yaml", p)]);
    assert_eq!(cell(&c, "a", "outside"), ["*/TCP", "*/UDP", "*/SCTP"]);
    assert_eq!(cell(&c, "outside", "a"), ["8080/TCP"]);
    assert_eq!(cell(&c, "a", "a"), ["8080/TCP"]);
    // With egress rules, Egress is implied.
    let p = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: ns}\nspec:\n  podSelector: {}\n  egress:\n    - ports: [{port: 53, protocol: UDP}]\n";
    let c = cells(&[("a.yaml", &a), ("p.yaml", p)]);
    assert_eq!(cell(&c, "a", "outside"), ["53/UDP"]);
    assert!(
        cell(&c, "outside", "a").is_empty(),
        "Ingress is always implied"
    );
}

#[test]
fn namespace_selectors_match_by_metadata_name() {
    let a = deploy("a", "[]");
    let pol = |peer: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: a, namespace: ns}}\nspec:\n  podSelector: {{}}\n  policyTypes: [Ingress, Egress]\n  ingress:\n    - from: [{peer}]\n      ports: [{{port: 9090}}]\n"
        )
    };
    // Another namespace, named: an unseen peer.
    let c = cells(&[
        ("a.yaml", &a),
        (
            "p.yaml",
            &pol(
                "{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}, podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}}",
            ),
        ),
    ]);
    assert_eq!(cell(&c, "monitoring/prometheus", "a"), ["9090/TCP"]);
    assert!(cell(&c, "a", "a").is_empty());
    // Our own namespace by name: the pods of this namespace.
    let c = cells(&[
        ("a.yaml", &a),
        (
            "p.yaml",
            &pol("{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ns}}}"),
        ),
    ]);
    assert!(
        cell(&c, "a", "a").is_empty(),
        "egress is isolated with no rules"
    );
    assert_eq!(c.keys().filter(|(f, _)| f.contains('/')).count(), 0);
    // `{}`: every namespace, ours included, and every unseen one.
    let c = cells(&[("a.yaml", &a), ("p.yaml", &pol("{namespaceSelector: {}}"))]);
    assert_eq!(cell(&c, "*/*", "a"), ["9090/TCP"]);
    // ipBlock is outside.
    let c = cells(&[
        ("a.yaml", &a),
        ("p.yaml", &pol("{ipBlock: {cidr: 0.0.0.0/0}}")),
    ]);
    assert_eq!(cell(&c, "outside", "a"), ["9090/TCP"]);
}

#[test]
fn named_ports_resolve_with_their_protocol() {
    let a = deploy("a", "[]");
    let b = deploy(
        "b",
        "[{name: quic, containerPort: 4433, protocol: UDP}, {name: web, containerPort: 8080}]",
    );
    let ing = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: b, namespace: ns}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: b}}\n  ingress:\n    - ports: [{port: quic, protocol: UDP}, {port: web, protocol: UDP}, {port: web}]\n";
    let c = cells(&[("a.yaml", &a), ("b.yaml", &b), ("p.yaml", ing)]);
    assert_eq!(cell(&c, "a", "b"), ["8080/TCP", "4433/UDP"]);
}

#[test]
fn port_set_arithmetic() {
    let all = PortSpec::all(Proto::Tcp);
    let one = PortSpec::parse("8080/TCP").unwrap();
    let left = all.minus(&[&one]);
    assert_eq!(
        left.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["1-8079/TCP", "8081-65535/TCP"]
    );
    assert!(one.minus(&[&all]).is_empty());
    assert_eq!(
        one.minus(&[&PortSpec::parse("8080/UDP").unwrap()]),
        std::slice::from_ref(&one)
    );
    assert_eq!(
        PortSpec::parse("8000-8010/udp").unwrap().to_string(),
        "8000-8010/UDP"
    );
    assert_eq!(PortSpec::parse("53").unwrap().to_string(), "53/TCP");
    assert!(PortSpec::parse("70000/TCP").is_err());
    assert!(PortSpec::parse("80/HTTP").is_err());
    assert!(PortSpec::parse("90-80").is_err());
    assert_eq!(
        PortSpec::parse("8000-8010").unwrap().intersect(&one),
        None,
        "disjoint"
    );
}

#[test]
fn outer_kustomization_namespace_wins() {
    let (_d, ws) = ws(&[
        (
            "overlay/kustomization.yaml",
            "namespace: outer\nresources: [../base]\n",
        ),
        (
            "base/kustomization.yaml",
            "namespace: inner\nresources: [np.yaml]\n",
        ),
        ("base/np.yaml", DENY),
    ]);
    let map = kustomize_namespaces(&ws);
    let ns: Vec<&str> = map.values().map(|s| s.namespace.as_str()).collect();
    assert_eq!(ns, ["outer"]);
}
