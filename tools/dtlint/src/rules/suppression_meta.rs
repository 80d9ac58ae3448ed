//! Ids and metadata of the engine's own findings about suppressions: listed
//! with the rules (for `explain`, SARIF and the docs), produced by the engine.

use crate::diag::Severity;

/// Ids of the engine's own findings about suppressions.
pub const UNUSED_SUPPRESSION: &str = "unused-suppression";
pub const INVALID_SUPPRESSION: &str = "invalid-suppression";

/// Metadata of the engine's own findings, for `explain`, SARIF and the docs.
pub static ENGINE_RULES: [super::RuleMeta; 2] = [
    super::RuleMeta {
        id: UNUSED_SUPPRESSION,
        category: "suppression",
        severity: Severity::Warning,
        summary: "a dtlint.io/ignore suppression suppresses nothing",
        needs: super::Needs::File,
        docs: "## What it does\nReports a `dtlint.io/ignore: <rule>=<reason>` entry whose rule no longer fires on the object.\n\n## Why is this bad?\nA stale suppression hides the next real finding of that rule on the same object.\n\n## Example\n```yaml\nannotations:\n  dtlint.io/ignore: \"latest-tag=pinned upstream\"   # the image is pinned now\n```\n\n## Use instead\nRemove the entry.\n\n## References\n- `dtlint explain <rule>` for the suppressed rule\n",
    },
    super::RuleMeta {
        id: INVALID_SUPPRESSION,
        category: "suppression",
        severity: Severity::Error,
        summary: "a dtlint.io/ignore suppression has no reason or names an unknown rule",
        needs: super::Needs::File,
        docs: "## What it does\nReports `dtlint.io/ignore` entries without a reason (`rule=` or `rule`) or naming a rule that does not exist.\n\n## Why is this bad?\nA suppression is a decision; without its reason nobody can tell later whether it still holds. An unknown rule id suppresses nothing.\n\n## Example\n```yaml\nannotations:\n  dtlint.io/ignore: \"latest-tag\"\n```\n\n## Use instead\n```yaml\nannotations:\n  dtlint.io/ignore: \"latest-tag=image is pinned by digest in the overlay\"\n```\n\n## References\n- `dtlint rules` for the list of rule ids\n",
    },
];
