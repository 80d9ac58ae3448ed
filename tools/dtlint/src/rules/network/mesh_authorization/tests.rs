use super::*;
use crate::rules::testing::run;

const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n  annotations: {linkerd.io/inject: enabled}\n";
const DENY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n";

fn workload(name: &str, ports: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  template:\n    metadata:\n      labels: {{app.kubernetes.io/name: {name}}}\n    spec:\n      serviceAccountName: {name}\n      containers: [{{name: c, ports: [{ports}]}}]\n"
    )
}

fn policy(name: &str, dir: &str, peer: &str, ports: &str) -> String {
    let key = if dir == "ingress" { "from" } else { "to" };
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}-{dir}}}\nspec:\n  podSelector: {{matchLabels: {{app.kubernetes.io/name: {name}}}}}\n  policyTypes: [Ingress, Egress]\n  {dir}:\n    - {key}: [{{podSelector: {{matchLabels: {{app.kubernetes.io/name: {peer}}}}}}}]\n      ports: [{ports}]\n"
    )
}

const SERVER: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: redis}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: redis}}\n  port: redis\n  proxyProtocol: opaque\n";

fn authz(authn: &str) -> String {
    format!(
        "{authn}---\napiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {{name: redis}}\nspec:\n  targetRef: {{group: policy.linkerd.io, kind: Server, name: redis}}\n  requiredAuthenticationRefs:\n    - {{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: redis}}\n"
    )
}

fn mtls(identities: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {{name: redis}}\nspec:\n{identities}"
    )
}

fn check(extra: &[(&str, &str)]) -> Vec<Finding> {
    let redis = workload("redis", "{name: redis, containerPort: 6379}");
    let mc = workload("mc", "{name: http, containerPort: 8081}");
    let gc = workload("gc", "{name: http, containerPort: 8080}");
    let redis_in = policy("redis", "ingress", "mc", "{port: 6379}, {port: 4143}");
    let mc_out = policy("mc", "egress", "redis", "{port: 6379}, {port: 4143}");
    let gc_out = policy("gc", "egress", "redis", "{port: 4143}");
    let mut files: Vec<(&str, &str)> = vec![
        ("ns.yaml", NS),
        ("deny.yaml", DENY),
        ("redis.yaml", &redis),
        ("mc.yaml", &mc),
        ("gc.yaml", &gc),
        ("redis-in.yaml", &redis_in),
        ("mc-out.yaml", &mc_out),
        ("gc-out.yaml", &gc_out),
    ];
    files.extend_from_slice(extra);
    run(&MeshAuthorization, &files)
}

#[test]
fn a_server_admitting_exactly_the_callers_is_clean() {
    let a = authz(&mtls(
        "  identityRefs: [{kind: ServiceAccount, name: mc}]\n",
    ));
    let out = check(&[("server.yaml", SERVER), ("authz.yaml", &a)]);
    assert!(out.is_empty(), "{out:?}");
    // The identity string form names the same account.
    let a = authz(&mtls(
        "  identities: [mc.default.serviceaccount.identity.linkerd.cluster.local]\n",
    ));
    assert!(check(&[("server.yaml", SERVER), ("authz.yaml", &a)]).is_empty());
}

#[test]
fn a_port_without_a_server_is_reported_at_the_container_port() {
    let out = check(&[]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        out[0].message,
        "mc reaches redis through the Linkerd proxy, and no Server covers redis's 6379/TCP: whoever may reach the proxy (4143) may use that port"
    );
    assert_eq!(out[0].primary.span.start.line, 10, "the containerPort item");
}

#[test]
fn a_missing_caller_and_a_stray_one_are_both_reported() {
    // gc may reach redis' proxy but not 6379; mc may, but is not admitted.
    let a = authz(&mtls(
        "  identityRefs: [{kind: ServiceAccount, name: gc}]\n",
    ));
    let out = check(&[("server.yaml", SERVER), ("authz.yaml", &a)]);
    let messages: Vec<&str> = out.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(out.len(), 2, "{messages:?}");
    assert!(messages.contains(
        &"mc → redis on 6379/TCP is allowed by the NetworkPolicies, but Linkerd refuses it: nothing admits ServiceAccount mc (namespace default) to Server/redis"
    ));
    assert!(messages.contains(
        &"Server/redis admits gc to redis on 6379/TCP, which the NetworkPolicies do not allow"
    ));
}

/// mc admitted by identity, and unmeshed callers by `networks`.
fn by_address(networks: &str) -> String {
    format!(
        "{}---\napiVersion: policy.linkerd.io/v1alpha1\nkind: NetworkAuthentication\nmetadata: {{name: unmeshed}}\nspec:\n  networks: {networks}\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {{name: redis-unmeshed}}\nspec:\n  targetRef: {{group: policy.linkerd.io, kind: Server, name: redis}}\n  requiredAuthenticationRefs:\n    - {{group: policy.linkerd.io, kind: NetworkAuthentication, name: unmeshed}}\n",
        authz(&mtls(
            "  identityRefs: [{kind: ServiceAccount, name: mc}]\n"
        ))
    )
}

#[test]
fn address_grants_are_judged_by_the_ranges_they_list() {
    // Prometheus in another namespace scrapes 6379; nothing from outside.
    let scrape = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: redis-scrape}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: redis}}\n  policyTypes: [Ingress]\n  ingress:\n    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]\n      ports: [{port: 6379}]\n";
    let private = by_address("[{cidr: 10.0.0.0/8}, {cidr: 172.16.0.0/12}]");
    let out = check(&[
        ("server.yaml", SERVER),
        ("authz.yaml", &private),
        ("scrape.yaml", scrape),
    ]);
    assert!(out.is_empty(), "{out:?}");
    // The internet admitted where only the cluster may connect.
    let any = by_address("[{cidr: 0.0.0.0/0}]");
    let out = check(&[
        ("server.yaml", SERVER),
        ("authz.yaml", &any),
        ("scrape.yaml", scrape),
    ]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        out[0].message,
        "Server/redis admits callers from public addresses on redis's 6379/TCP, where the NetworkPolicies let in only callers inside the cluster"
    );
    // No address range of the cluster's: the scrape is refused.
    let public = by_address(
        "[{cidr: 0.0.0.0/0, except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10]}]",
    );
    let out = check(&[
        ("server.yaml", SERVER),
        ("authz.yaml", &public),
        ("scrape.yaml", scrape),
    ]);
    let messages: Vec<&str> = out.iter().map(|f| f.message.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("Linkerd refuses it: no NetworkAuthentication of Server/redis admits addresses inside the cluster")),
        "{messages:?}"
    );
    // Callers from a private block (the nodes'): not judged as the internet.
    let nodes = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: redis-nodes}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: redis}}\n  policyTypes: [Ingress]\n  ingress:\n    - from: [{ipBlock: {cidr: 10.30.0.0/20}}]\n      ports: [{port: 6379}]\n";
    let out = check(&[
        ("server.yaml", SERVER),
        ("authz.yaml", &private),
        ("nodes.yaml", nodes),
    ]);
    assert!(
        out.iter().all(|f| !f.message.contains("Linkerd refuses")),
        "{out:?}"
    );
    // Callers from outside and only private ranges admitted.
    let open = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: redis-open}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: redis}}\n  policyTypes: [Ingress]\n  ingress:\n    - ports: [{port: 6379}]\n";
    let out = check(&[
        ("server.yaml", SERVER),
        ("authz.yaml", &private),
        ("open.yaml", open),
    ]);
    let messages: Vec<&str> = out.iter().map(|f| f.message.as_str()).collect();
    assert!(
        messages.contains(&"outside → redis on 6379/TCP is allowed by the NetworkPolicies, but Linkerd refuses it: no NetworkAuthentication of Server/redis admits public addresses, and callers from outside have no mesh identity"),
        "{messages:?}"
    );
}

#[test]
fn wildcards_and_network_grants_must_stand_for_allowed_traffic() {
    let a = authz(&mtls("  identities: [\"*\"]\n"));
    // Only callers that may reach the proxy at all matter.
    assert!(check(&[("server.yaml", SERVER), ("authz.yaml", &a)]).is_empty());
    let gc_in = policy("redis", "ingress", "gc", "{port: 4143}");
    let out = check(&[
        ("server.yaml", SERVER),
        ("authz.yaml", &a),
        ("gc-in.yaml", &gc_in),
    ]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0]
            .message
            .contains("admits every meshed caller, gc among them")
    );

    // A NetworkAuthentication alone on a port no unmeshed caller may reach.
    let network = "apiVersion: policy.linkerd.io/v1alpha1\nkind: NetworkAuthentication\nmetadata: {name: anywhere}\nspec:\n  networks: [{cidr: 0.0.0.0/0}]\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: redis}\nspec:\n  targetRef: {group: policy.linkerd.io, kind: Server, name: redis}\n  requiredAuthenticationRefs:\n    - {group: policy.linkerd.io, kind: NetworkAuthentication, name: anywhere}\n";
    let out = check(&[("server.yaml", SERVER), ("authz.yaml", network)]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0].message.contains("admits callers by address"),
        "{out:?}"
    );
}

#[test]
fn every_port_behind_a_reachable_proxy_needs_a_server() {
    // redis also serves metrics on 9121: mc reaches the proxy, so it could reach 9121.
    let a = authz(&mtls(
        "  identityRefs: [{kind: ServiceAccount, name: mc}]\n",
    ));
    let redis = workload(
        "redis",
        "{name: redis, containerPort: 6379}, {name: metrics, containerPort: 9121}",
    );
    let out = check(&[
        ("server.yaml", SERVER),
        ("authz.yaml", &a),
        ("redis.yaml", &redis),
    ]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0].message.contains("no Server covers redis's 9121/TCP"),
        "{out:?}"
    );
}

#[test]
fn required_references_narrow_each_other() {
    // Two identity references: only an account both admit gets in.
    let both = "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: redis}\nspec:\n  identityRefs: [{kind: ServiceAccount, name: mc}]\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: other}\nspec:\n  identityRefs: [{kind: ServiceAccount, name: gc}]\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: redis}\nspec:\n  targetRef: {group: policy.linkerd.io, kind: Server, name: redis}\n  requiredAuthenticationRefs:\n    - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: redis}\n    - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: other}\n";
    let out = check(&[("server.yaml", SERVER), ("authz.yaml", both)]);
    assert!(
        out.iter().any(|f| f.message.contains("Linkerd refuses it")),
        "mc is not admitted by both: {out:?}"
    );
}
