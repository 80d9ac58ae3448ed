//! Rules about workload objects and their companions (labels, selectors,
//! images, rollout strategy, disruption budgets).
pub mod canary_udp_port;
pub mod latest_tag;
pub mod missing_standard_labels;
pub mod node_pool_untolerated;
pub mod pdb_blocks_eviction;
pub mod rolling_update_capacity;
pub mod selector_mismatch;
pub mod shared_advertise_address;
pub mod unstable_selector;
