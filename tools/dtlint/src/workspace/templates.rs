//! Template files: YAML with `{{ }}` placeholders that a tool fills in
//! before anything reaches a cluster (a Helm chart's `templates/`, a
//! generator's `*-template.yaml`). They are not manifests: linting them
//! reports the placeholders, never a defect. Skipped unless `templates =
//! "check"` in `dtlint.toml`.

use std::path::Path;

use dtlint_yaml::{Node, Parsed, ProblemKind, Value};

/// Is the file at `abs`, with `text` parsed as `parsed`, a template?
///
/// - it lies in a Helm chart's `templates/` directory (the directory above
///   holds a `Chart.yaml`);
/// - or it holds `{{` and either does not parse as YAML, or parses with a
///   `{{ … }}` in a value position read as a nested flow mapping (YAML reads
///   `replicas: {{replicas}}` so). A quoted `"{{ .Release.Name }}"` or a
///   block scalar with template text (an Alertmanager template in a
///   ConfigMap) is a string, and its file a manifest.
pub fn is_template(abs: &Path, text: &str, parsed: &Parsed) -> bool {
    if in_chart_templates(abs) {
        return true;
    }
    if !text.contains("{{") {
        return false;
    }
    parsed
        .problems
        .iter()
        .any(|p| matches!(p.kind, ProblemKind::Syntax))
        || parsed
            .documents
            .iter()
            .any(|d| has_placeholder_mapping(&d.root, text))
}

fn in_chart_templates(abs: &Path) -> bool {
    // Most paths have no `templates` directory: a byte search says so
    // without taking the path apart.
    if memchr::memmem::find(abs.as_os_str().as_encoded_bytes(), b"/templates/").is_none() {
        return false;
    }
    abs.ancestors()
        .skip(1)
        .filter(|d| d.file_name().is_some_and(|n| n == "templates"))
        .any(|d| {
            d.parent()
                .is_some_and(|chart| chart.join("Chart.yaml").is_file())
        })
}

/// A mapping written as `{{`: a placeholder YAML read as flow mappings.
fn has_placeholder_mapping(node: &Node, text: &str) -> bool {
    match &node.value {
        Value::Mapping(entries) => {
            let start = node.span.start.offset as usize;
            text.get(start..start + 2) == Some("{{")
                || entries.iter().any(|e| {
                    has_placeholder_mapping(&e.key, text) || has_placeholder_mapping(&e.value, text)
                })
        }
        Value::Sequence(items) => items.iter().any(|n| has_placeholder_mapping(n, text)),
        Value::Scalar(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> bool {
        let lines = dtlint_yaml::LineIndex::new(text);
        let parsed = dtlint_yaml::parse(text, &lines, dtlint_yaml::Limits::default());
        is_template(Path::new("/nowhere/x.yaml"), text, &parsed)
    }

    #[test]
    fn placeholders_make_a_template_and_strings_do_not() {
        assert!(template(
            "kind: ReplicationController\nspec:\n  replicas: {{replicas}}\n"
        ));
        assert!(template(
            "metadata:\n  name: {{ .Release.Name }}-web\n{{- if .Values.x }}\n"
        ));
        assert!(!template("metadata:\n  name: \"{{ .Release.Name }}\"\n"));
        assert!(!template(
            "kind: ConfigMap\ndata:\n  slack.tmpl: |\n    {{ range .Alerts }}{{ .Labels.alertname }}\n    {{ end }}\n"
        ));
        assert!(!template("kind: ConfigMap\ndata:\n  a: b\n"));
    }

    #[test]
    fn a_charts_templates_directory_is_templates() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("chart/templates/sub");
        std::fs::create_dir_all(&t).unwrap();
        let file = t.join("deployment.yaml");
        assert!(!in_chart_templates(&file));
        std::fs::write(dir.path().join("chart/Chart.yaml"), "name: x\n").unwrap();
        assert!(in_chart_templates(&file));
    }
}
