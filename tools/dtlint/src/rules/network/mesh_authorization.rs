use std::collections::{BTreeMap, BTreeSet};

use dtlint_yaml::{Node, Span};

use crate::diag::{Finding, Label};
use crate::netpol::mesh::{Admits, PROXY_INBOUND_PORT, Server, account_of};
use crate::netpol::{Edges, Net, OUTSIDE, Piece, Pod, Port, PortSpec, Proto};
use crate::rules::{Context, Merged, Rule, RuleMeta, declare_rule};
use crate::source::FileId;

declare_rule! {
    /// ## What it does
    /// Compares Linkerd's per-port authorization with the traffic the
    /// NetworkPolicies allow between meshed services (the same edges as
    /// `traffic-matrix` and `dtlint graph`). For every TCP port a meshed
    /// service opens to a meshed caller:
    ///
    /// - a Linkerd `Server` (`policy.linkerd.io`) must select the callee's
    ///   pods on that port (by number or container port name), and on every
    ///   other TCP port the pods declare once a meshed caller may reach their
    ///   proxy (4143), else the finding is at the container port;
    /// - an `AuthorizationPolicy` on that Server must admit the caller's
    ///   ServiceAccount (through a `MeshTLSAuthentication`'s `identityRefs`
    ///   or `identities`, or a `ServiceAccount` reference), else the finding
    ///   is at the Server.
    ///
    /// Unmeshed callers (outside, another namespace's pods, an unmeshed pod)
    /// have no identity: a `NetworkAuthentication` of the Server must list
    /// their addresses. Its `networks` (`cidr` minus `except`) are read as
    /// Linkerd does: callers from outside need a public range, callers
    /// inside the cluster a private one (RFC 1918, RFC 6598, IPv6
    /// unique-local), else the finding is at the Server's port.
    ///
    /// And the other way round, each admission must stand for allowed
    /// traffic: an identity whose pods the NetworkPolicies do not let reach
    /// that port, `identities: ["*"]`, a `NetworkAuthentication` on a port
    /// no unmeshed caller may reach, or one admitting public addresses
    /// where only callers inside the cluster may connect is reported where
    /// it is granted.
    ///
    /// ## Why is this bad?
    /// Meshed calls arrive on the proxy port 4143, so once the policies
    /// open 4143 (`mesh-proxy-port`) their port numbers no longer keep a
    /// caller to its ports: a meeting-controller allowed on Redis' 6379
    /// could speak to the cluster bus on 16379. Linkerd's `Server` and
    /// `AuthorizationPolicy` restore per-port least privilege, and only if
    /// they say the same as the matrix; a missing admission refuses a call
    /// the design needs.
    ///
    /// ## Example
    /// ```yaml
    /// # meeting-controller may call redis on 6379 (NetworkPolicy), but
    /// apiVersion: policy.linkerd.io/v1alpha1
    /// kind: MeshTLSAuthentication
    /// metadata: {name: redis-clients}
    /// spec:
    ///   identityRefs:
    ///     - kind: ServiceAccount
    ///       name: global-controller     # not a caller of redis
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   identityRefs:
    ///     - kind: ServiceAccount
    ///       name: meeting-controller
    /// ```
    ///
    /// ## References
    /// - Linkerd authorization policy: <https://linkerd.io/2-edge/reference/authorization-policy/>
    /// - linkerd/linkerd2#15246: port rules bypassed once 4143 is open
    pub struct MeshAuthorization {
        id: "mesh-authorization",
        category: "network",
        severity: Error,
        summary: "Linkerd's Servers and AuthorizationPolicies differ from the traffic the NetworkPolicies allow between meshed services",
        needs: Repository,
    }
}

/// Concrete TCP ports of an edge's pieces toward `pod`: single ports, and
/// the pod's declared TCP ports inside ranges. The proxy port is left out.
fn ports_toward(pieces: &[Piece], pod: &Pod<'_, '_>) -> BTreeSet<u32> {
    let declared = declared_tcp(pod);
    let mut out = BTreeSet::new();
    for piece in pieces {
        if piece.port.proto != Proto::Tcp {
            continue;
        }
        if let Port::Range(lo, hi) = piece.port.port {
            if lo == hi {
                out.insert(lo);
            } else {
                out.extend(declared.iter().filter(|p| (lo..=hi).contains(*p)));
            }
        }
    }
    out.remove(&PROXY_INBOUND_PORT);
    out
}

/// Ports a meshed caller reaches through the proxy that no Server covers:
/// (file, document, port) -> (file, where the port is declared, caller, callee).
type Unserved = BTreeMap<(u32, usize, u32), (FileId, Span, String, String)>;

/// The TCP ports the pod's containers declare.
fn declared_tcp(pod: &Pod<'_, '_>) -> BTreeSet<u32> {
    pod.owner
        .containers()
        .flat_map(|c| c.ports().collect::<Vec<_>>())
        .filter(|p| {
            p.get("protocol")
                .and_then(Node::as_str)
                .is_none_or(|s| Proto::parse(s) == Some(Proto::Tcp))
        })
        .filter_map(|p| p.get("containerPort").and_then(Node::as_i64))
        .filter_map(|n| u32::try_from(n).ok())
        .collect()
}

/// The port number a Server's `port` means on `pod`.
fn server_port(server: &Server<'_, '_>, pod: &Pod<'_, '_>) -> Option<u32> {
    let port = server.port?;
    if let Some(n) = port.as_i64() {
        return u32::try_from(n).ok();
    }
    let name = port.as_str()?;
    pod.owner.containers().find_map(|c| {
        c.ports().find_map(|p| {
            (p.get("name").and_then(Node::as_str) == Some(name))
                .then(|| p.get("containerPort").and_then(Node::as_i64))
                .flatten()
                .and_then(|n| u32::try_from(n).ok())
        })
    })
}

/// The container port item declaring `port`, or the workload's anchor.
fn port_declaration(pod: &Pod<'_, '_>, port: u32) -> Span {
    pod.owner
        .containers()
        .find_map(|c| {
            c.ports().find(|p| {
                p.get("containerPort")
                    .and_then(Node::as_i64)
                    .is_some_and(|n| n == i64::from(port))
            })
        })
        .map_or_else(|| pod.owner.anchor_span(), |p| p.span)
}

/// Servers selecting `pod` on `port`.
fn servers_of<'n, 'i, 'a>(
    net: &'n Net<'i, 'a>,
    pod: &Pod<'_, '_>,
    port: u32,
) -> Vec<&'n Server<'i, 'a>> {
    net.authz
        .servers
        .iter()
        .filter(|s| {
            s.namespace == pod.namespace
                && s.selects(pod.labels, pod.added)
                && server_port(s, pod) == Some(port)
        })
        .collect()
}

/// May some caller of `to` reach `port` on it by the NetworkPolicies?
fn reaches(edges: &Edges, from: &str, to: &str, port: u32) -> bool {
    let want = PortSpec::single(port, Proto::Tcp);
    edges
        .get(&(from.to_string(), to.to_string()))
        .is_some_and(|pieces| pieces.iter().any(|p| p.port.intersect(&want).is_some()))
}

impl Rule for MeshAuthorization {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    #[allow(clippy::too_many_lines)]
    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let mut collected = Merged::default();
        for net in ctx.nets().iter().filter(|n| n.has_meshed_pods()) {
            let edges = net.edges();
            let nodes = net.nodes();
            // Ports a meshed caller reaches through the proxy that no Server
            // covers, once each: (file, doc, port) -> where, caller, callee.
            let mut unserved: Unserved = BTreeMap::new();
            // Required: every meshed edge's ports are served and admitted.
            for ((f, t), pieces) in edges {
                if !net.meshed_node(f) || !net.meshed_node(t) {
                    continue;
                }
                let callers: BTreeSet<String> = net
                    .pods_of(f)
                    .map(|a| account_of(a.owner, &a.namespace))
                    .collect();
                let mut seen_owner = BTreeSet::new();
                for b in net.pods_of(t) {
                    if !seen_owner.insert((b.owner.file.0, b.owner.doc)) {
                        continue;
                    }
                    // Through the proxy, a caller that may reach 4143 may
                    // reach every port the pod serves: each needs a Server.
                    if reaches(edges, f, t, PROXY_INBOUND_PORT) {
                        for port in declared_tcp(b) {
                            if servers_of(net, b, port).is_empty() {
                                unserved
                                    .entry((b.owner.file.0, b.owner.doc, port))
                                    .or_insert((
                                        b.owner.file,
                                        port_declaration(b, port),
                                        f.clone(),
                                        t.clone(),
                                    ));
                            }
                        }
                    }
                    for port in ports_toward(pieces, b) {
                        let servers = servers_of(net, b, port);
                        if servers.is_empty() {
                            unserved.insert(
                                (b.owner.file.0, b.owner.doc, port),
                                (
                                    b.owner.file,
                                    port_declaration(b, port),
                                    f.clone(),
                                    t.clone(),
                                ),
                            );
                            continue;
                        }
                        for server in servers {
                            let grants = net.authz.grants(server);
                            for account in &callers {
                                let admitted = grants.iter().any(|g| match &g.admits {
                                    Admits::Accounts(a) => a.contains(account),
                                    Admits::AnyMeshed => true,
                                    // A meshed caller's address is a pod's: private.
                                    Admits::Network(n) => n.admits_private(),
                                });
                                if admitted {
                                    continue;
                                }
                                let at = server
                                    .r
                                    .spec()
                                    .and_then(|s| s.get("port"))
                                    .map_or_else(|| server.r.anchor_span(), |p| p.span);
                                let (sa_ns, sa) = account.split_once('/').unwrap_or(("", account));
                                let mut finding = Finding::new(
                                    Self::META.id,
                                    Label::new(
                                        server.r.file,
                                        at,
                                        format!("no AuthorizationPolicy of {} admits {f}", server.r.id()),
                                    ),
                                    format!(
                                        "{f} → {t} on {port}/TCP is allowed by the NetworkPolicies, but Linkerd refuses it: nothing admits ServiceAccount {sa} (namespace {sa_ns}) to {}",
                                        server.r.id()
                                    ),
                                )
                                .help("Name the caller's ServiceAccount in the MeshTLSAuthentication this Server's AuthorizationPolicy requires (identityRefs), or take the edge out of the NetworkPolicies.");
                                if let Some(g) = grants
                                    .iter()
                                    .find(|g| matches!(g.admits, Admits::Accounts(_)))
                                {
                                    finding = finding.with(Label::new(
                                        g.file,
                                        g.at.span,
                                        "the callers it admits",
                                    ));
                                }
                                collected.add(finding, net.env);
                            }
                        }
                    }
                }
            }

            for ((_, _, port), (file, span, f, t)) in unserved {
                let finding = Finding::new(
                    Self::META.id,
                    Label::new(
                        file,
                        span,
                        format!("no Linkerd Server selects this port ({port}/TCP)"),
                    ),
                    format!(
                        "{f} reaches {t} through the Linkerd proxy, and no Server covers {t}'s {port}/TCP: whoever may reach the proxy (4143) may use that port"
                    ),
                )
                .help("Add a Server (policy.linkerd.io/v1beta3) for this port with an AuthorizationPolicy admitting exactly its callers' ServiceAccounts, next to the service's NetworkPolicy.");
                collected.add(finding, net.env);
            }

            // Granted: every admission stands for allowed traffic.
            let mut judged = BTreeSet::new();
            for server in &net.authz.servers {
                let Some(b) = net.pods.iter().find(|p| {
                    p.meshed && p.namespace == server.namespace && server.selects(p.labels, p.added)
                }) else {
                    continue;
                };
                let Some(port) = server_port(server, b) else {
                    continue;
                };
                let t = b.node.as_str();
                let grants = net.authz.grants(server);
                // Required for unmeshed callers: an address range of theirs.
                for (caller, public) in unmeshed_refused(net, edges, server, &grants, t, port) {
                    let at = server
                        .r
                        .spec()
                        .and_then(|s| s.get("port"))
                        .map_or_else(|| server.r.anchor_span(), |p| p.span);
                    let whose = if public {
                        "public addresses"
                    } else {
                        "addresses inside the cluster"
                    };
                    collected.add(
                        Finding::new(
                            Self::META.id,
                            Label::new(server.r.file, at, format!("no NetworkAuthentication admits {whose}")),
                            format!(
                                "{caller} → {t} on {port}/TCP is allowed by the NetworkPolicies, but Linkerd refuses it: no NetworkAuthentication of {} admits {whose}, and {} no mesh identity",
                                server.r.id(),
                                if public { "callers from outside have".to_string() } else { format!("{caller} has") }
                            ),
                        )
                        .help(if public {
                            "Require a NetworkAuthentication whose networks hold the callers' public addresses (0.0.0.0/0 when the NetworkPolicies decide who), or take the edge from outside out of the NetworkPolicies."
                        } else {
                            "Require a NetworkAuthentication whose networks hold the cluster's private ranges (its pod CIDR), or mesh the caller."
                        }),
                        net.env,
                    );
                }
                for g in grants {
                    if !judged.insert((g.file.0, g.at.span.start.offset, server.r.name)) {
                        continue;
                    }
                    let (file, span) = (g.file, g.at.span);
                    let problem = match &g.admits {
                        Admits::Accounts(accounts) => {
                            let holders: Vec<&Pod<'_, '_>> = net
                                .pods
                                .iter()
                                .filter(|p| {
                                    p.meshed
                                        && accounts.contains(&account_of(p.owner, &p.namespace))
                                })
                                .collect();
                            match holders.first() {
                                // Not a pod of this environment, or a caller
                                // the policies allow: nothing to report.
                                Some(holder)
                                    if !holders
                                        .iter()
                                        .any(|h| reaches(edges, &h.node, t, port)) =>
                                {
                                    Some((
                                        format!("admits {}", holder.node),
                                        format!(
                                            "{} admits {} to {t} on {port}/TCP, which the NetworkPolicies do not allow",
                                            server.r.id(),
                                            holder.node
                                        ),
                                    ))
                                }
                                _ => None,
                            }
                        }
                        Admits::AnyMeshed => {
                            let stray: Vec<&String> = nodes
                                .iter()
                                .filter(|n| net.meshed_node(n) && !reaches(edges, n, t, port))
                                .filter(|n| reaches_proxy(edges, n, t))
                                .collect();
                            stray.first().map(|n| {
                                (
                                    "admits every meshed identity".to_string(),
                                    format!(
                                        "{} admits every meshed caller, {n} among them, to {t} on {port}/TCP, which the NetworkPolicies do not allow it",
                                        server.r.id()
                                    ),
                                )
                            })
                        }
                        Admits::Network(networks) => {
                            let outside = reaches(edges, OUTSIDE, t, port);
                            let inside = first_unmeshed_inside(net, edges, t, port).is_some();
                            if !outside && !inside {
                                Some((
                                    "admits callers by address".to_string(),
                                    format!(
                                        "{} admits callers by address on {t}'s {port}/TCP, where the NetworkPolicies let no unmeshed caller in: every meshed caller that may reach the proxy may use it",
                                        server.r.id()
                                    ),
                                ))
                            } else if !outside && networks.readable() && networks.admits_public() {
                                Some((
                                    PUBLIC_LABEL.to_string(),
                                    format!(
                                        "{} admits callers from public addresses on {t}'s {port}/TCP, where the NetworkPolicies let in only callers inside the cluster",
                                        server.r.id()
                                    ),
                                ))
                            } else {
                                None
                            }
                        }
                    };
                    if let Some((label, message)) = problem {
                        let help = if label == PUBLIC_LABEL {
                            "List only the cluster's private ranges in the NetworkAuthentication's `networks` (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, or the pod CIDR), or open the port to outside callers in the NetworkPolicies first."
                        } else {
                            "Admit only the callers the NetworkPolicies (and the matrix in dtlint.toml) allow on this port, or open the edge there first."
                        };
                        let finding =
                            Finding::new(Self::META.id, Label::new(file, span, label), message)
                                .help(help);
                        collected.add(finding, net.env);
                    }
                }
            }
        }
        out.extend(collected.into_findings());
    }
}

/// An unmeshed caller inside the cluster (another namespace's pods, an
/// unmeshed pod here) that may reach `to` on `port`.
fn first_unmeshed_inside(net: &Net<'_, '_>, edges: &Edges, to: &str, port: u32) -> Option<String> {
    net.nodes().into_iter().find(|n| {
        n != OUTSIDE && (n.contains('/') || !net.meshed_node(n)) && reaches(edges, n, to, port)
    })
}

/// Unmeshed callers the NetworkPolicies let reach `to` on `port` that no
/// grant of `server` admits by address: (caller, from public addresses).
/// A Server whose `accessPolicy` admits unauthenticated traffic by default
/// refuses nobody.
fn unmeshed_refused(
    net: &Net<'_, '_>,
    edges: &Edges,
    server: &Server<'_, '_>,
    grants: &[crate::netpol::mesh::Grant<'_>],
    to: &str,
    port: u32,
) -> Vec<(String, bool)> {
    let policy = server
        .r
        .spec()
        .and_then(|s| s.get("accessPolicy"))
        .and_then(Node::as_str)
        .unwrap_or("deny");
    if policy != "deny" {
        return Vec::new();
    }
    let networks: Vec<&crate::netpol::addresses::Networks> = grants
        .iter()
        .filter_map(|g| match &g.admits {
            Admits::Network(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    // From any address: a rule without peers. (An `ipBlock` peer may be a
    // private range, the nodes' for instance: not judged here.)
    let want = PortSpec::single(port, Proto::Tcp);
    let from_anywhere = edges
        .get(&(OUTSIDE.to_string(), to.to_string()))
        .into_iter()
        .flatten()
        .filter(|p| p.port.intersect(&want).is_some())
        .any(|p| p.ingress.as_ref().is_none_or(|via| via.peer.is_none()));
    if from_anywhere && !networks.iter().any(|n| n.admits_public()) {
        out.push((OUTSIDE.to_string(), true));
    }
    if let Some(n) = first_unmeshed_inside(net, edges, to, port)
        && !networks.iter().any(|n| n.admits_private())
    {
        out.push((n, false));
    }
    out
}

/// The label of a grant of public addresses where only the cluster may connect.
const PUBLIC_LABEL: &str = "admits public addresses";

/// May `from` reach `to`'s proxy port?
fn reaches_proxy(edges: &Edges, from: &str, to: &str) -> bool {
    reaches(edges, from, to, PROXY_INBOUND_PORT)
}

#[cfg(test)]
mod tests;
