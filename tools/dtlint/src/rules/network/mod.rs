//! Rules about Services, ServiceMonitors and NetworkPolicies and the pods
//! they are meant to reach.
pub mod selector_matches_nothing;
pub mod servicemonitor_port_missing;
pub mod target_port_missing;
pub mod udp_port_protocol;
