//! Which PodDisruptionBudgets cover a workload, computed once for the whole
//! index instead of pairing every budget with every other.

use super::{Index, Resource};

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
                    if let Some(i) = self.position(owner) {
                        let slot = map.entry(i).or_default();
                        if slot.last() != Some(&b) {
                            slot.push(b);
                        }
                    }
                }
            }
            map
        });
        self.position(w)
            .and_then(|i| budgets.get(&i))
            .into_iter()
            .flatten()
            .map(|&b| &self.resources[b])
            .collect()
    }

    /// The position of `r` in `resources`, when it is one of them.
    pub(crate) fn position(&self, r: &Resource<'_>) -> Option<usize> {
        let size = std::mem::size_of::<Resource<'_>>();
        let base = self.resources.as_ptr() as usize;
        let at = std::ptr::from_ref(r) as usize;
        (size > 0 && at >= base && (at - base).is_multiple_of(size))
            .then(|| (at - base) / size)
            .filter(|&i| i < self.resources.len())
    }
}
