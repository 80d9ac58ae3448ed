//! Rules about Services, ServiceMonitors and NetworkPolicies and the pods
//! they are meant to reach.
pub mod mesh_authorization;
pub mod mesh_job_opt_out;
pub mod mesh_proxy_port;
pub mod missing_default_deny;
pub mod replica_without_service;
pub mod selector_matches_nothing;
pub mod servicemonitor_port_missing;
pub mod target_port_missing;
pub mod traffic_matrix;
pub mod udp_port_protocol;
pub mod workload_not_isolated;
