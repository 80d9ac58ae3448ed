use dtlint_yaml::{Node, Span};

use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};
use crate::source::FileId;
use crate::workspace::Role;

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

impl Rule for Yaml11Value {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    /// Over the files as written, objects judged through a rendered build
    /// included: the build's output no longer has the text.
    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let ws = ctx.index.ws;
        for (id, _) in ws.sources.iter() {
            let parsed = ws.parsed(id);
            if parsed.yaml11.is_empty() || ws.role(id) == Role::Rendered {
                continue;
            }
            for doc in &parsed.documents {
                let is_object = doc.root.get("apiVersion").and_then(Node::as_str).is_some()
                    && doc.root.get("kind").and_then(Node::as_str).is_some();
                if is_object {
                    report(id, &parsed.yaml11, doc.root.span, out);
                }
            }
        }
    }
}

/// The noted values inside `span` of file `id` (the parser noted every such
/// value of the file, in source order).
fn report(id: FileId, noted: &[dtlint_yaml::Yaml11Value], span: Span, out: &mut Vec<Finding>) {
    let first = noted.partition_point(|v| v.span.start.offset < span.start.offset);
    for v in noted[first..]
        .iter()
        .take_while(|v| v.span.end.offset <= span.end.offset)
    {
        let (text, reading) = (v.text.as_str(), &v.reading);
        out.push(
            Finding::new(
                Yaml11Value::META.id,
                Label::new(id, v.span, format!("Kubernetes reads this as {reading}")),
                format!("`{text}` means different things in YAML 1.1 and 1.2"),
            )
            .help(help(text)),
        );
    }
}

/// How to write `text` so both YAML versions agree. A leading-zero number
/// is most often a file mode (`defaultMode: 0644`), an integer field:
/// quoting it would make it a string the API server rejects, so the
/// decimal value comes first.
fn help(text: &str) -> String {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    let octal = digits.len() > 1
        && digits.starts_with('0')
        && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match i64::from_str_radix(digits, 8) {
        Ok(value) if octal => {
            let sign = if text.starts_with('-') { "-" } else { "" };
            format!(
                "If this is a number (a file mode such as `defaultMode`), write it in decimal, `{sign}{value}`, which both versions read alike; quote it (`\"{text}\"`) only if a string is meant."
            )
        }
        _ => format!(
            "Quote it (`\"{text}\"`) if a string is meant, or write the value in a form both versions agree on."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::help;

    #[test]
    fn octal_numbers_are_given_in_decimal_first() {
        assert!(help("0775").contains("`509`"), "{}", help("0775"));
        assert!(help("0644").starts_with("If this is a number"));
        assert!(help("-010").contains("`-8`"), "{}", help("-010"));
        // Not octal (8, 9): YAML 1.1 reads it as a decimal or a string.
        assert!(help("0789").starts_with("Quote it"));
        assert!(help("yes").starts_with("Quote it"));
    }
}
