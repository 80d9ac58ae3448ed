use dtlint_yaml::{ProblemKind, Span};

use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};
use crate::workspace::ReadProblem;

declare_rule! {
    /// ## What it does
    /// Reports files that cannot be read as YAML: syntax errors, tabs used for
    /// indentation, text that is not UTF-8, files over the size limit, and
    /// documents whose aliases expand past a safe bound or nest too deeply.
    ///
    /// ## Why is this bad?
    /// Flux and `kubectl` stop at the first unreadable document, so one stray
    /// character blocks every change behind it. Alias bombs ("billion laughs")
    /// make tools that expand aliases without a bound exhaust their memory.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    /// 	replicas: 2   # a tab: YAML forbids tabs in indentation
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   replicas: 2
    /// ```
    ///
    /// ## References
    /// - YAML 1.2.2, section 6.1 (indentation spaces): <https://yaml.org/spec/1.2.2/#61-indentation-spaces>
    pub struct InvalidYaml {
        id: "invalid-yaml",
        category: "yaml",
        severity: Error,
        summary: "a file is not valid YAML, is not UTF-8, is too large or expands without bound",
    }
}

impl Rule for InvalidYaml {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let ws = ctx.index.ws;
        for (id, _) in ws.sources.iter() {
            for p in &ws.parsed(id).problems {
                let (msg, help) = match p.kind {
                    ProblemKind::Syntax => (
                        format!("invalid YAML: {}", p.message),
                        "Fix the syntax here; nothing after this point in the file was read.",
                    ),
                    ProblemKind::Limit => (
                        p.message.clone(),
                        "Write the structure out instead of expanding aliases, or split the document.",
                    ),
                    ProblemKind::DuplicateKey => continue,
                };
                out.push(Finding::new(Self::META.id, Label::new(id, p.span, ""), msg).help(help));
            }
        }
        for (id, problem) in &ws.unreadable {
            let span = ws.file_span(*id);
            let (msg, help, span, label) = match problem {
                ReadProblem::TooLarge { size, limit } => (
                    format!("file is {size} bytes, over the {limit}-byte limit; not read"),
                    "Split the file, or raise `max_file_size` in dtlint.toml if it is meant to be this large.".to_string(),
                    span,
                    "file not read",
                ),
                ReadProblem::NotUtf8 { pos } => (
                    "file is not valid UTF-8".to_string(),
                    "Kubernetes manifests must be UTF-8; re-save the file as UTF-8 or remove the binary content.".to_string(),
                    Span::at(*pos),
                    "first byte that is not UTF-8",
                ),
                ReadProblem::Io(e) => (format!("cannot read file: {e}"), "Check the file's permissions.".to_string(), span, ""),
            };
            out.push(Finding::new(Self::META.id, Label::new(*id, span, label), msg).help(help));
        }
    }
}
