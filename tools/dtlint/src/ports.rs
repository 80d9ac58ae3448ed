//! NetworkPolicy port syntax and arithmetic: `8082/TCP`, `8000-8010/UDP`,
//! `*/TCP`, named ports. A leaf: used by `[network]` validation and by the
//! network graph.

use std::fmt;

pub(crate) const FIRST_PORT: u32 = 1;
pub(crate) const LAST_PORT: u32 = 65535;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    pub const ALL: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Sctp];

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
            Proto::Sctp => "SCTP",
        }
    }
}

/// A port or port range, or a port name that could not be resolved (the
/// receiving pods are not known).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Port {
    Range(u32, u32),
    Named(String),
}

/// Ports of one protocol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortSpec {
    pub proto: Proto,
    pub port: Port,
}

impl PortSpec {
    /// Every port of a protocol.
    pub fn all(proto: Proto) -> Self {
        Self {
            proto,
            port: Port::Range(FIRST_PORT, LAST_PORT),
        }
    }

    pub fn single(port: u32, proto: Proto) -> Self {
        Self {
            proto,
            port: Port::Range(port, port),
        }
    }

    /// Parse `8082/TCP`, `4433/udp`, `8000-8010/TCP`, `*/TCP` or `8082` (TCP).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (port, proto) = s.split_once('/').unwrap_or((s, "TCP"));
        let proto = Proto::parse(proto.trim())
            .ok_or_else(|| format!("`{s}`: unknown protocol `{proto}` (TCP, UDP or SCTP)"))?;
        let number = |t: &str| {
            t.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (FIRST_PORT..=LAST_PORT).contains(n))
                .ok_or_else(|| format!("`{s}`: `{t}` is not a port number (1-65535)"))
        };
        let port = port.trim();
        let port = if port == "*" {
            Port::Range(FIRST_PORT, LAST_PORT)
        } else if let Some((lo, hi)) = port.split_once('-') {
            let (lo, hi) = (number(lo)?, number(hi)?);
            if lo > hi {
                return Err(format!("`{s}`: the range is empty"));
            }
            Port::Range(lo, hi)
        } else {
            Port::Range(number(port)?, number(port)?)
        };
        Ok(Self { proto, port })
    }

    /// The part of `self` that none of `others` covers.
    pub fn minus(&self, others: &[&PortSpec]) -> Vec<PortSpec> {
        match &self.port {
            Port::Named(n) => {
                let covered = others
                    .iter()
                    .any(|o| o.proto == self.proto && o.port == Port::Named(n.clone()));
                if covered { vec![] } else { vec![self.clone()] }
            }
            Port::Range(lo, hi) => {
                let mut left = vec![(*lo, *hi)];
                for o in others.iter().filter(|o| o.proto == self.proto) {
                    let Port::Range(olo, ohi) = o.port else {
                        continue;
                    };
                    left = left
                        .into_iter()
                        .flat_map(|(a, b)| {
                            let mut out = Vec::new();
                            if olo > a {
                                out.push((a, b.min(olo - 1)));
                            }
                            if ohi < b {
                                out.push((a.max(ohi + 1), b));
                            }
                            out.into_iter().filter(|(x, y)| x <= y)
                        })
                        .collect();
                }
                left.into_iter()
                    .map(|(a, b)| PortSpec {
                        proto: self.proto,
                        port: Port::Range(a, b),
                    })
                    .collect()
            }
        }
    }

    /// The ports both allow.
    pub fn intersect(&self, other: &PortSpec) -> Option<PortSpec> {
        if self.proto != other.proto {
            return None;
        }
        let port = match (&self.port, &other.port) {
            (Port::Range(a, b), Port::Range(c, d)) => {
                let (lo, hi) = ((*a).max(*c), (*b).min(*d));
                (lo <= hi).then_some(Port::Range(lo, hi))?
            }
            (Port::Named(x), Port::Named(y)) if x == y => Port::Named(x.clone()),
            // A name and a range: only the whole range can be said to cover the name.
            (Port::Named(x), Port::Range(FIRST_PORT, LAST_PORT))
            | (Port::Range(FIRST_PORT, LAST_PORT), Port::Named(x)) => Port::Named(x.clone()),
            _ => return None,
        };
        Some(PortSpec {
            proto: self.proto,
            port,
        })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            Port::Range(FIRST_PORT, LAST_PORT) => write!(f, "*/{}", self.proto.as_str()),
            Port::Range(a, b) if a == b => write!(f, "{a}/{}", self.proto.as_str()),
            Port::Range(a, b) => write!(f, "{a}-{b}/{}", self.proto.as_str()),
            Port::Named(n) => write!(f, "{n}/{}", self.proto.as_str()),
        }
    }
}
