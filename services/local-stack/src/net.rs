//! The cluster network of a local run, as a plan: pod addresses from
//! `10.244.0.0/16` (the node is `10.244.0.1`), cluster IPs from
//! `10.96.0.0/16`, and the nftables program kube-proxy's nftables mode
//! would load for the Services: a DNAT rule per Service port (prerouting for
//! pods, output for the node) that spreads connections over the ready
//! endpoints, and rejects them at once when there is none.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::proc::run_checked;

/// The node's address on every pod link.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);

/// Hands out pod and cluster IPs.
#[derive(Debug)]
pub struct Allocator {
    next_pod: u32,
    next_service: u32,
}

impl Default for Allocator {
    fn default() -> Self {
        Self {
            next_pod: 2,
            next_service: 10,
        }
    }
}

impl Allocator {
    pub fn pod_ip(&mut self) -> anyhow::Result<Ipv4Addr> {
        let n = self.next_pod;
        if n >= 65_000 {
            bail!("out of pod addresses");
        }
        self.next_pod += 1;
        Ok(Ipv4Addr::new(10, 244, (n >> 8) as u8, (n & 0xff) as u8))
    }

    pub fn service_ip(&mut self) -> anyhow::Result<Ipv4Addr> {
        let n = self.next_service;
        if n >= 65_000 {
            bail!("out of service addresses");
        }
        self.next_service += 1;
        Ok(Ipv4Addr::new(10, 96, (n >> 8) as u8, (n & 0xff) as u8))
    }
}

const GATEWAY: &str = "169.254.1.1";
const SERVICE_CIDR: &str = "10.96.0.0/16";
const IP: &str = "/usr/sbin/ip";
const NFT: &str = "/usr/sbin/nft";
const TIMEOUT: Duration = Duration::from_secs(20);

/// Prepares the node namespace the runner lives in: loopback, the node's
/// own address, forwarding.
pub fn init_node() -> anyhow::Result<()> {
    run_checked(IP, &["link", "set", "lo", "up"], TIMEOUT)?;
    run_checked(
        IP,
        &["addr", "add", &format!("{NODE_IP}/32"), "dev", "lo"],
        TIMEOUT,
    )?;
    // The pods' gateway is a local address of the node, so every veth
    // answers ARP for it.
    run_checked(
        IP,
        &["addr", "add", &format!("{GATEWAY}/32"), "dev", "lo"],
        TIMEOUT,
    )?;
    // Cluster IPs need a route for the node's own connections to reach the
    // output hook, whose DNAT then re-routes them to a pod.
    run_checked(IP, &["route", "add", SERVICE_CIDR, "dev", "lo"], TIMEOUT)?;
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .context("enabling forwarding in the node namespace")?;
    Ok(())
}

/// Creates the pod namespace `netns` with `eth0` at `ip`, routed through
/// the node by the veth `host_link` (Calico's layout: a /32 route to the
/// pod, proxy ARP for the gateway address the pod routes through).
pub fn add_pod_network(netns: &str, host_link: &str, ip: Ipv4Addr) -> anyhow::Result<()> {
    let cidr = format!("{ip}/32");
    run_checked(IP, &["netns", "add", netns], TIMEOUT)?;
    let steps: [&[&str]; 8] = [
        &[
            "link", "add", host_link, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ],
        &["link", "set", host_link, "up"],
        &["route", "add", &cidr, "dev", host_link],
        &["-n", netns, "link", "set", "lo", "up"],
        &["-n", netns, "addr", "add", &cidr, "dev", "eth0"],
        &["-n", netns, "link", "set", "eth0", "up"],
        &[
            "-n", netns, "route", "add", GATEWAY, "dev", "eth0", "scope", "link",
        ],
        &[
            "-n", netns, "route", "add", "default", "via", GATEWAY, "dev", "eth0",
        ],
    ];
    for (i, args) in steps.iter().enumerate() {
        run_checked(IP, args, TIMEOUT)?;
        if i == 1 {
            std::fs::write(
                format!("/proc/sys/net/ipv4/conf/{host_link}/proxy_arp"),
                "1",
            )
            .with_context(|| format!("proxy ARP on {host_link}"))?;
        }
    }
    Ok(())
}

/// Deletes a network namespace after killing what still runs in it.
pub fn remove_netns(netns: &str) {
    if let Ok(pids) = run_checked(IP, &["netns", "pids", netns], TIMEOUT) {
        for pid in pids.split_whitespace() {
            let _ = run_checked("/bin/kill", &["-KILL", pid], TIMEOUT);
        }
    }
    let _ = run_checked(IP, &["netns", "del", netns], TIMEOUT);
}

/// Every network namespace whose name starts with `prefix`.
pub fn list_netns(prefix: &str) -> Vec<String> {
    run_checked(IP, &["netns", "list"], TIMEOUT)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Creates the node namespace from the machine's namespace.
pub fn add_netns(netns: &str) -> anyhow::Result<()> {
    run_checked(IP, &["netns", "add", netns], TIMEOUT)?;
    Ok(())
}

/// Loads `program` (see [`kube_proxy_program`]) into the node namespace.
pub fn apply_kube_proxy(program: &str, scratch: &Path) -> anyhow::Result<()> {
    apply_nft(program, &scratch.join("kube-proxy.nft"))
}

/// Loads an nftables program (kept in `file` for whoever debugs the run).
pub fn apply_nft(program: &str, file: &Path) -> anyhow::Result<()> {
    std::fs::write(file, program)?;
    run_checked(NFT, &["-f", &file.to_string_lossy()], TIMEOUT)?;
    Ok(())
}

/// Rewrites a file in place (same inode: it is bind-mounted into running
/// pods, and a rename would leave them with the old content).
pub fn write_in_place(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(content.as_bytes())
}

/// The resolv.conf of every pod: the cluster's search path and a server
/// where nothing listens, so a name outside /etc/hosts fails at once.
pub fn resolv_conf(namespace: &str) -> String {
    format!(
        "nameserver 127.0.0.53\nsearch {namespace}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:1 attempts:1\n"
    )
}

/// The names a Service answers to from a pod in `pod_namespace`.
pub fn service_names(name: &str, namespace: &str, pod_namespace: &str) -> Vec<String> {
    let mut names = Vec::with_capacity(4);
    if namespace == pod_namespace {
        names.push(name.to_owned());
    }
    names.push(format!("{name}.{namespace}"));
    names.push(format!("{name}.{namespace}.svc"));
    names.push(format!("{name}.{namespace}.svc.cluster.local"));
    names
}

/// One Service port as kube-proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRule {
    pub cluster_ip: Ipv4Addr,
    pub protocol: String,
    pub port: u16,
    /// Ready endpoints: pod IP and target port.
    pub endpoints: Vec<(Ipv4Addr, u16)>,
}

/// A pod's container ports: name (when declared) and number.
pub type PodPorts = Vec<(Option<String>, u16)>;

/// Whether a Service selects a pod of `namespace` with `labels` (an empty
/// or missing selector selects nothing: such a Service has manual endpoints).
pub fn selects(
    service: &serde_json::Value,
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    let service_ns =
        crate::manifest::Object::new(service).map_or("default", |o| o.namespace("default"));
    let Some(selector) = service
        .pointer("/spec/selector")
        .and_then(serde_json::Value::as_object)
    else {
        return false;
    };
    service_ns == namespace
        && !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
}

/// The kube-proxy rule of each port of `service` at `cluster_ip`, to every
/// endpoint: its address and its container ports (name, number); a
/// `targetPort` is a number, a container port's name, or the port itself.
pub fn service_rules(
    service: &serde_json::Value,
    cluster_ip: Ipv4Addr,
    endpoints: &[(Ipv4Addr, PodPorts)],
) -> Vec<ServiceRule> {
    use serde_json::Value;
    let mut rules = Vec::new();
    for port in service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let number = port.get("port").and_then(Value::as_u64).unwrap_or(0);
        let protocol = port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP");
        let target = port.get("targetPort").cloned().unwrap_or(Value::Null);
        let endpoints = endpoints
            .iter()
            .filter_map(|(ip, ports)| {
                let t = match &target {
                    Value::Number(n) => n.as_u64(),
                    Value::String(name) => ports
                        .iter()
                        .find(|(n, _)| n.as_deref() == Some(name.as_str()))
                        .map(|(_, p)| u64::from(*p)),
                    _ => Some(number),
                }?;
                Some((*ip, u16::try_from(t).ok()?))
            })
            .collect();
        rules.push(ServiceRule {
            cluster_ip,
            protocol: protocol.to_owned(),
            port: u16::try_from(number).unwrap_or(0),
            endpoints,
        });
    }
    rules
}

/// The nftables program for `rules` (the whole table, replaced atomically).
pub fn kube_proxy_program(rules: &[ServiceRule]) -> String {
    let mut chain = String::new();
    for r in rules {
        let proto = r.protocol.to_ascii_lowercase();
        let matcher = format!("ip daddr {} {proto} dport {}", r.cluster_ip, r.port);
        if r.endpoints.is_empty() {
            // No ready endpoint: refused at once, as kube-proxy does.
            let _ = writeln!(chain, "    {matcher} reject");
            continue;
        }
        let map = r
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, (ip, port))| format!("{i} : {ip} . {port}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            chain,
            "    {matcher} dnat ip to numgen random mod {} map {{ {map} }}",
            r.endpoints.len()
        );
    }
    format!(
        "table ip dt-kube-proxy {{}}\ndelete table ip dt-kube-proxy\ntable ip dt-kube-proxy {{\n  chain services {{\n{chain}  }}\n  chain prerouting {{\n    type nat hook prerouting priority -100; policy accept;\n    jump services\n  }}\n  chain output {{\n    type nat hook output priority -100; policy accept;\n    jump services\n  }}\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_proxy_spreads_over_ready_endpoints_and_rejects_without() {
        let program = kube_proxy_program(&[
            ServiceRule {
                cluster_ip: Ipv4Addr::new(10, 96, 0, 10),
                protocol: "TCP".into(),
                port: 8082,
                endpoints: vec![
                    (Ipv4Addr::new(10, 244, 0, 2), 8082),
                    (Ipv4Addr::new(10, 244, 0, 3), 8082),
                ],
            },
            ServiceRule {
                cluster_ip: Ipv4Addr::new(10, 96, 0, 11),
                protocol: "UDP".into(),
                port: 4433,
                endpoints: vec![],
            },
        ]);
        assert!(program.contains("ip daddr 10.96.0.10 tcp dport 8082 dnat ip to numgen random mod 2 map { 0 : 10.244.0.2 . 8082, 1 : 10.244.0.3 . 8082 }"), "{program}");
        assert!(
            program.contains("ip daddr 10.96.0.11 udp dport 4433 reject"),
            "{program}"
        );
        assert!(program.starts_with("table ip dt-kube-proxy {}\ndelete table ip dt-kube-proxy\n"));
    }

    /// The program loads into a real kernel (in a throwaway network
    /// namespace, so nothing on the machine changes), twice: a reload
    /// replaces the table.
    #[test]
    fn the_program_loads_into_nftables() {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n");
        if !root {
            manifest_tests::skip("loading nftables needs root");
            return;
        }
        let program = kube_proxy_program(&[ServiceRule {
            cluster_ip: Ipv4Addr::new(10, 96, 0, 10),
            protocol: "TCP".into(),
            port: 8082,
            endpoints: vec![(Ipv4Addr::new(10, 244, 0, 2), 8082)],
        }]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.nft");
        std::fs::write(&file, &program).unwrap();
        let file = file.to_string_lossy().into_owned();
        let script = format!(
            "/usr/sbin/nft -f {file} && /usr/sbin/nft -f {file} && /usr/sbin/nft list table ip dt-kube-proxy"
        );
        let out = crate::proc::run_checked(
            "/usr/bin/unshare",
            &["--net", "/bin/sh", "-c", &script],
            std::time::Duration::from_secs(20),
        )
        .unwrap();
        assert!(
            out.contains("dnat ip to numgen random mod 1 map { 0 : 10.244.0.2 . 8082 }"),
            "{out}"
        );
    }

    #[test]
    fn addresses() {
        let mut a = Allocator::default();
        assert_eq!(a.pod_ip().unwrap(), Ipv4Addr::new(10, 244, 0, 2));
        assert_eq!(a.service_ip().unwrap(), Ipv4Addr::new(10, 96, 0, 10));
    }
}
