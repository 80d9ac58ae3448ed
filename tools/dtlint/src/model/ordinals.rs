//! StatefulSet replicas one by one: the ordinal a selector picks by the
//! labels the StatefulSet controller gives each pod, how many ordinals a
//! StatefulSet may run, and the labels its pod of that ordinal carries.

use super::{Floor, Index, Resource, STATEFULSET_POD_LABELS, Selector, floor_of};

/// The ordinal of StatefulSet `sts` that `sel` picks by
/// `statefulset.kubernetes.io/pod-name` (`<sts>-<n>`), else by
/// `apps.kubernetes.io/pod-index`. Label values compare as text, so only
/// the number as the controller writes it counts (not `+1`, not `01`).
pub fn statefulset_ordinal(sel: &Selector<'_>, sts: &str) -> Option<i64> {
    let [by_name, by_index] = STATEFULSET_POD_LABELS;
    let labels = sel.match_labels();
    let value = |key: &str| {
        labels
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.as_str())
    };
    let number = match (value(by_name), value(by_index)) {
        (Some(name), _) => name.strip_prefix(sts)?.strip_prefix('-')?,
        (None, Some(index)) => index,
        (None, None) => return None,
    };
    number
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0 && n.to_string() == number)
}

/// The position of `item` in `slice`, when it is one of its elements (by
/// address: the index's lookups hand out references into its vectors).
pub(crate) fn position_in<T>(slice: &[T], item: &T) -> Option<usize> {
    let size = std::mem::size_of::<T>();
    let base = slice.as_ptr() as usize;
    let at = std::ptr::from_ref(item) as usize;
    (size > 0 && at >= base && (at - base).is_multiple_of(size))
        .then(|| (at - base) / size)
        .filter(|&i| i < slice.len())
}

impl Index<'_> {
    /// How many ordinals workload `r` may run: its autoscaler's
    /// `maxReplicas` when one scales it (the flag says so), else
    /// `spec.replicas` (1 when unset), with the place that says so.
    pub fn replicas_ceiling(&self, r: &Resource<'_>) -> (Floor, bool) {
        match self.autoscaler_of(r) {
            Some(h) => (floor_of(h, "maxReplicas"), true),
            None => (floor_of(r, "replicas"), false),
        }
    }

    /// The labels the StatefulSet controller puts on the one pod of `r`
    /// that `sel` asks for by name or index ([`STATEFULSET_POD_LABELS`]),
    /// when `r` is a StatefulSet that may run that ordinal.
    pub(super) fn ordinal_labels(
        &self,
        sel: &Selector<'_>,
        r: &Resource<'_>,
    ) -> Vec<(&'static str, String)> {
        if r.kind != "StatefulSet" {
            return Vec::new();
        }
        let Some(n) = statefulset_ordinal(sel, r.name) else {
            return Vec::new();
        };
        if n >= self.replicas_ceiling(r).0.count {
            return Vec::new();
        }
        let [by_name, by_index] = STATEFULSET_POD_LABELS;
        vec![
            (by_name, format!("{}-{n}", r.name)),
            (by_index, n.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordinal_of(yaml: &str) -> Option<i64> {
        let parsed = dtlint_yaml::parse(
            yaml,
            &dtlint_yaml::LineIndex::new(yaml),
            dtlint_yaml::Limits::default(),
        );
        let sel = Selector {
            node: &parsed.documents[0].root,
            structured: false,
        };
        statefulset_ordinal(&sel, "mh")
    }

    #[test]
    fn ordinals_are_read_from_either_label_as_the_controller_writes_them() {
        assert_eq!(
            ordinal_of("{statefulset.kubernetes.io/pod-name: mh-12}"),
            Some(12)
        );
        assert_eq!(ordinal_of("{apps.kubernetes.io/pod-index: \"4\"}"), Some(4));
        for bad in [
            "{statefulset.kubernetes.io/pod-name: mh-+1}",
            "{statefulset.kubernetes.io/pod-name: mh-01}",
            "{statefulset.kubernetes.io/pod-name: mhx-1}",
            "{statefulset.kubernetes.io/pod-name: mh-}",
            "{apps.kubernetes.io/pod-index: \"-1\"}",
            "{apps.kubernetes.io/pod-index: \"+1\"}",
            "{app.kubernetes.io/name: mh}",
        ] {
            assert_eq!(ordinal_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_position_is_found_by_address_only() {
        let v = vec![10, 20, 30];
        assert_eq!(position_in(&v, &v[2]), Some(2));
        let other = 20;
        assert_eq!(position_in(&v, &other), None);
    }
}
