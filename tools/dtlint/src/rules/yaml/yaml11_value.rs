use dtlint_yaml::{Node, Value};

use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports unquoted values that YAML 1.1 and YAML 1.2 read differently:
    /// `yes`/`no`/`on`/`off`/`y`/`n` (booleans in 1.1, strings in 1.2),
    /// numbers with a leading zero such as `0755` (octal in 1.1, decimal in
    /// 1.2) and sexagesimal numbers such as `1:30` (90 in 1.1).
    ///
    /// ## Why is this bad?
    /// Kubernetes reads manifests with a YAML 1.1 decoder, while editors,
    /// linters and many tools use YAML 1.2. `LOG_FORMAT: off` reaches your
    /// container as `false`; a label value `on` is rejected because label
    /// values must be strings; `mode: 0644` may not be the number you meant.
    ///
    /// ## Example
    /// ```yaml
    /// data:
    ///   FEATURE_ENABLED: yes
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// data:
    ///   FEATURE_ENABLED: "yes"   # or `true` if a boolean is meant
    /// ```
    ///
    /// ## References
    /// - YAML 1.1 boolean type: <https://yaml.org/type/bool.html>
    /// - sigs.k8s.io/yaml (the decoder Kubernetes uses): <https://github.com/kubernetes-sigs/yaml>
    pub struct Yaml11Value {
        id: "yaml11-value",
        category: "yaml",
        severity: Warning,
        summary: "an unquoted value that YAML 1.1 (Kubernetes) and YAML 1.2 read differently",
    }
}

const BOOLISH: [&str; 22] = [
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
    // 1.2 reads these as booleans but so does 1.1: not ambiguous, listed to
    // keep the table honest about what we skip.
    "true", "false", "True", "False", "TRUE", "FALSE",
];

/// What YAML 1.1 makes of `text`, when that differs from YAML 1.2.
fn yaml11_reading(text: &str) -> Option<String> {
    // Every ambiguous form starts with one of these; most scalars do not.
    if !text.starts_with([
        'y', 'Y', 'n', 'N', 'o', 'O', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '-', '+',
    ]) {
        return None;
    }
    if BOOLISH[..16].contains(&text) {
        let v = matches!(text, "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON");
        return Some(format!("the boolean `{v}`"));
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.len() > 1
        && digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().all(|b| b < b'8')
    {
        let v = i64::from_str_radix(digits, 8).ok()?;
        return Some(format!("the octal number {v}"));
    }
    if digits.contains(':')
        && digits
            .split(':')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && digits.split(':').skip(1).all(|p| p.len() == 2 && p < "60")
        && !digits.starts_with('0')
    {
        let v = digits
            .split(':')
            .try_fold(0i64, |acc, p| p.parse::<i64>().ok().map(|n| acc * 60 + n))?;
        return Some(format!("the number {v}"));
    }
    None
}

fn walk(node: &Node, f: &mut dyn FnMut(&Node)) {
    match &node.value {
        Value::Scalar(_) => f(node),
        Value::Sequence(items) => items.iter().for_each(|n| walk(n, f)),
        Value::Mapping(entries) => entries.iter().for_each(|e| walk(&e.value, f)),
    }
}

impl Rule for Yaml11Value {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        for r in &ctx.index.resources {
            walk(r.root, &mut |n| {
                let Some(s) = n.as_scalar() else { return };
                if !s.is_plain() {
                    return;
                }
                if let Some(reading) = yaml11_reading(&s.text) {
                    out.push(
                        Finding::new(
                            Self::META.id,
                            Label::new(r.file, n.span, format!("Kubernetes reads this as {reading}")),
                            format!("`{}` means different things in YAML 1.1 and 1.2", s.text),
                        )
                        .help(format!("Quote it (`\"{}\"`) if a string is meant, or write the value in a form both versions agree on.", s.text)),
                    );
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::yaml11_reading;

    #[test]
    fn readings() {
        assert_eq!(yaml11_reading("on").as_deref(), Some("the boolean `true`"));
        assert_eq!(yaml11_reading("NO").as_deref(), Some("the boolean `false`"));
        assert_eq!(
            yaml11_reading("0755").as_deref(),
            Some("the octal number 493")
        );
        assert_eq!(yaml11_reading("1:30").as_deref(), Some("the number 90"));
        assert_eq!(yaml11_reading("0"), None);
        assert_eq!(yaml11_reading("089"), None);
        assert_eq!(yaml11_reading("10:75"), None);
        assert_eq!(yaml11_reading("true"), None);
        assert_eq!(yaml11_reading("nope"), None);
    }
}
