//! Which PodDisruptionBudgets cover a workload, computed once for the whole
//! index instead of pairing every budget with every other.

use super::{Index, Resource, position_in};

impl<'a> Index<'a> {
    /// The PodDisruptionBudgets whose selectors match the pods of workload
    /// `w` (one of this index's resources), in resource order.
    pub fn budgets_of(&self, w: &Resource<'_>) -> Vec<&Resource<'a>> {
        let budgets = self.budgets.get_or_init(|| {
            let mut map: std::collections::HashMap<usize, Vec<usize>> =
                std::collections::HashMap::new();
            for &b in self
                .by_kind
                .get("PodDisruptionBudget")
                .into_iter()
                .flatten()
            {
                let pdb = &self.resources[b];
                let Some(sel) = self.own_selector(pdb) else {
                    continue;
                };
                for (owner, _) in self.pods_matching(&sel, pdb) {
                    if let Some(i) = position_in(&self.resources, owner) {
                        let slot = map.entry(i).or_default();
                        if slot.last() != Some(&b) {
                            slot.push(b);
                        }
                    }
                }
            }
            map
        });
        position_in(&self.resources, w)
            .and_then(|i| budgets.get(&i))
            .into_iter()
            .flatten()
            .map(|&b| &self.resources[b])
            .collect()
    }
}
