//! The cluster network of a local run, as a plan: pod addresses from
//! `10.244.0.0/16` (the node is `10.244.0.1`), cluster IPs from
//! `10.96.0.0/16`, and the nftables program kube-proxy's nftables mode
//! would load for the Services: a DNAT rule per Service port (prerouting for
//! pods, output for the node) that spreads connections over the ready
//! endpoints, and rejects them at once when there is none.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use anyhow::bail;

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

/// One Service port as kube-proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRule {
    pub cluster_ip: Ipv4Addr,
    pub protocol: String,
    pub port: u16,
    /// Ready endpoints: pod IP and target port.
    pub endpoints: Vec<(Ipv4Addr, u16)>,
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
