//! Address ranges as a Linkerd `NetworkAuthentication` admits them: each
//! `networks` item's `cidr` minus its `except` blocks, and whether what is
//! left holds public addresses (the internet) or private ones (the pods,
//! nodes and control plane of a cluster).

use dtlint_yaml::Node;
use ipnet::IpNet;

/// One contiguous range of one address family, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    v6: bool,
    start: u128,
    end: u128,
}

impl Range {
    fn of(net: &IpNet) -> Self {
        match net {
            IpNet::V4(n) => Self {
                v6: false,
                start: u128::from(u32::from(n.network())),
                end: u128::from(u32::from(n.broadcast())),
            },
            IpNet::V6(n) => Self {
                v6: true,
                start: u128::from(n.network()),
                end: u128::from(n.broadcast()),
            },
        }
    }

    /// `self` without `cut`: none, one or two ranges.
    fn minus(self, cut: Self) -> Vec<Self> {
        if cut.v6 != self.v6 || cut.end < self.start || cut.start > self.end {
            return vec![self];
        }
        let mut out = Vec::new();
        if cut.start > self.start {
            out.push(Self {
                end: cut.start - 1,
                ..self
            });
        }
        if cut.end < self.end {
            out.push(Self {
                start: cut.end + 1,
                ..self
            });
        }
        out
    }

    fn intersect(self, other: Self) -> Option<Self> {
        (self.v6 == other.v6 && self.start <= other.end && other.start <= self.end).then(|| Self {
            v6: self.v6,
            start: self.start.max(other.start),
            end: self.end.min(other.end),
        })
    }
}

/// Where a cluster's pods, nodes and control plane live: RFC 1918, shared
/// address space (RFC 6598) and IPv6 unique-local addresses.
const CLUSTER: [&str; 5] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

/// Addresses no caller from the internet has: the cluster ranges, loopback
/// and link-local.
const NOT_PUBLIC: [&str; 4] = ["127.0.0.0/8", "169.254.0.0/16", "fe80::/10", "::1/128"];

fn ranges(cidrs: &[&str]) -> Vec<Range> {
    cidrs
        .iter()
        .filter_map(|c| c.parse::<IpNet>().ok())
        .map(|n| Range::of(&n))
        .collect()
}

fn subtract_all(mut left: Vec<Range>, cuts: &[Range]) -> Vec<Range> {
    for cut in cuts {
        left = left.into_iter().flat_map(|r| r.minus(*cut)).collect();
    }
    left
}

/// What a `NetworkAuthentication`'s `networks` admit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Networks {
    ranges: Vec<Range>,
    /// A block dtlint cannot read: judged as admitting everything, so it is
    /// never the cause of a finding.
    unknown: bool,
}

impl Networks {
    /// Read `spec.networks`; a missing list admits nothing, as in Linkerd.
    pub fn read(spec: &Node) -> Self {
        let mut ranges = Vec::new();
        let mut unknown = false;
        for item in spec.get("networks").into_iter().flat_map(Node::items) {
            // Linkerd also takes a bare address, as a single-host block.
            let parse = |n: &Node| {
                let text = n.as_str()?.trim();
                text.parse::<IpNet>()
                    .ok()
                    .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
            };
            let Some(cidr) = item.get("cidr").and_then(parse) else {
                unknown = true;
                continue;
            };
            let mut excepts = Vec::new();
            for e in item.get("except").into_iter().flat_map(Node::items) {
                match parse(e) {
                    Some(n) => excepts.push(Range::of(&n)),
                    None => unknown = true,
                }
            }
            ranges.extend(subtract_all(vec![Range::of(&cidr)], &excepts));
        }
        Self { ranges, unknown }
    }

    /// Could every block be read? (An unreadable one is judged as admitting
    /// everything, so it must not cause a finding of its own.)
    pub fn readable(&self) -> bool {
        !self.unknown
    }

    /// Does it admit some public address, a caller from the internet?
    pub fn admits_public(&self) -> bool {
        let mut cuts = ranges(&CLUSTER);
        cuts.extend(ranges(&NOT_PUBLIC));
        self.unknown || !subtract_all(self.ranges.clone(), &cuts).is_empty()
    }

    /// Does it admit some private address, where a cluster's pods are?
    pub fn admits_private(&self) -> bool {
        self.unknown || {
            let cluster = ranges(&CLUSTER);
            self.ranges
                .iter()
                .any(|r| cluster.iter().any(|p| r.intersect(*p).is_some()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networks(yaml: &str) -> Networks {
        let parsed = dtlint_yaml::parse(
            yaml,
            &dtlint_yaml::LineIndex::new(yaml),
            dtlint_yaml::Limits::default(),
        );
        Networks::read(&parsed.documents[0].root)
    }

    #[test]
    fn public_and_private_addresses_are_told_apart() {
        let any = networks("networks: [{cidr: 0.0.0.0/0}, {cidr: '::/0'}]");
        assert!(any.admits_public() && any.admits_private());
        let private = networks(
            "networks: [{cidr: 10.0.0.0/8}, {cidr: 172.16.0.0/12}, {cidr: 192.168.0.0/16}]",
        );
        assert!(!private.admits_public() && private.admits_private());
        // Everything but the private ranges.
        let public = networks(
            "networks:\n  - cidr: 0.0.0.0/0\n    except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16]\n",
        );
        assert!(public.admits_public() && !public.admits_private());
        // An except that covers the whole block admits nothing.
        let none = networks("networks: [{cidr: 203.0.113.0/24, except: [203.0.0.0/16]}]");
        assert!(!none.admits_public() && !none.admits_private());
        assert!(!networks("{}").admits_public());
    }

    #[test]
    fn a_bare_address_is_a_single_host() {
        let n = networks("networks: [{cidr: 10.1.2.3}]");
        assert!(n.readable() && n.admits_private() && !n.admits_public());
        assert!(networks("networks: [{cidr: 203.0.113.7}]").admits_public());
    }

    #[test]
    fn an_unreadable_block_is_never_the_cause_of_a_finding() {
        let n = networks("networks: [{cidr: 10.0.0.0/8}, {cidr: not-an-address}]");
        assert!(!n.readable() && n.admits_public() && n.admits_private());
    }
}
