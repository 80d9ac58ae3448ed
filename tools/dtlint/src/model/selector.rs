//! Label selectors, in either form Kubernetes writes them.

use dtlint_yaml::Node;

/// A label selector in either form Kubernetes uses: a plain map (Service)
/// or `matchLabels` + `matchExpressions`.
#[derive(Debug, Clone, Copy)]
pub struct Selector<'a> {
    pub node: &'a Node,
    /// True for `{matchLabels, matchExpressions}`, false for a plain map.
    pub structured: bool,
}

impl<'a> Selector<'a> {
    /// `(key, value node)` pairs that must match exactly.
    pub fn match_labels(&self) -> Vec<(&'a str, &'a Node)> {
        let map = if self.structured {
            self.node.get("matchLabels")
        } else {
            Some(self.node)
        };
        map.into_iter()
            .flat_map(Node::entries)
            .filter_map(|e| Some((e.key.as_str()?, &e.value)))
            .collect()
    }

    /// True when the selector selects everything (`{}`).
    pub fn is_empty(&self) -> bool {
        self.match_labels().is_empty()
            && self
                .node
                .get("matchExpressions")
                .is_none_or(|m| m.items().len() == 0)
    }

    /// Does a label map satisfy this selector?
    pub fn matches(&self, labels: Option<&Node>) -> bool {
        self.matches_with(labels, &[])
    }

    /// Like [`Selector::matches`], where the keys in `added` are set by a
    /// kustomization (on the labels and the selector alike) and so match.
    pub fn matches_with(&self, labels: Option<&Node>, added: &[String]) -> bool {
        self.matches_implied(labels, added, &[])
    }

    /// Like [`Selector::matches_with`], where the pod also carries
    /// `implied` labels that a controller sets on it (not in any template).
    pub fn matches_implied(
        &self,
        labels: Option<&Node>,
        added: &[String],
        implied: &[(&str, String)],
    ) -> bool {
        let get = |k: &str| {
            labels
                .and_then(|l| l.get(k))
                .and_then(Node::as_str)
                .or_else(|| {
                    implied
                        .iter()
                        .find(|(key, _)| *key == k)
                        .map(|(_, v)| v.as_str())
                })
        };
        let exact = self.match_labels().iter().all(|(k, v)| {
            added.iter().any(|a| a == k) || v.as_str().is_some_and(|v| get(k) == Some(v))
        });
        if !exact {
            return false;
        }
        if !self.structured {
            return true;
        }
        self.node
            .get("matchExpressions")
            .into_iter()
            .flat_map(Node::items)
            .all(|expr| {
                let key = expr.get("key").and_then(Node::as_str).unwrap_or("");
                let values: Vec<&str> = expr
                    .get("values")
                    .into_iter()
                    .flat_map(Node::items)
                    .filter_map(Node::as_str)
                    .collect();
                let have = get(key);
                match expr.get("operator").and_then(Node::as_str) {
                    Some("In") => have.is_some_and(|h| values.contains(&h)),
                    Some("NotIn") => have.is_none_or(|h| !values.contains(&h)),
                    Some("Exists") => have.is_some(),
                    Some("DoesNotExist") => have.is_none(),
                    _ => false,
                }
            })
    }
}
