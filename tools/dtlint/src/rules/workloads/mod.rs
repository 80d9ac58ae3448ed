//! Rules about workload objects and their companions (labels, selectors,
//! images, rollout strategy, disruption budgets).
pub mod canary_copies_managed_secret;
pub mod canary_udp_port;
pub mod latest_tag;
pub mod missing_standard_labels;
pub mod node_pool_untolerated;
pub mod pdb_blocks_eviction;
pub mod rolling_update_capacity;
pub mod selector_mismatch;
pub mod shared_advertise_address;
pub mod unstable_selector;

use dtlint_yaml::Node;

use crate::model::Resource;
use crate::rules::Context;

/// A Flagger `Canary`'s `spec.targetRef` and the workload it names, in the
/// Canary's namespace and environment.
pub(crate) fn canary_target<'i, 'a>(
    ctx: &Context<'i>,
    r: &Resource<'a>,
) -> Option<(&'a Node, &'i Resource<'i>)> {
    if r.kind != "Canary" || r.group() != "flagger.app" {
        return None;
    }
    let target = r.spec()?.get("targetRef")?;
    let field = |k: &str| target.get(k).and_then(Node::as_str);
    let (kind, name) = (field("kind")?, field("name")?);
    let workload = ctx
        .index
        .objects()
        .find(|w| w.kind == kind && w.name == name && ctx.index.same_namespace(w, r))?;
    Some((target, workload))
}
