//! The Kubernetes node pools Terraform declares, with their taints and
//! labels, read from the `.tf` files of each environment
//! (`.../environments/<env>/*.tf`). `hcl-edit` keeps the byte span of every
//! item, so findings point at the taint to edit.
//!
//! Two shapes are read: a `module` block with a `taints` list of
//! `{ key, value, effect }` objects and a `node_labels` (or `labels`) map,
//! and a `google_container_node_pool` resource whose `node_config` has
//! `taint` blocks and `labels`. Values that are not literals (variables,
//! `dynamic` blocks, as inside a module's own code) are not guessed at.

use std::ops::Range;

use dtlint_yaml::Span;
use hcl_edit::Span as _;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{Block, Body};

use crate::source::{FileId, SourceFile};

/// One taint of a node pool, in Kubernetes' terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
    /// The taint's object (or block) in the file.
    pub span: Span,
}

/// A node pool of one environment.
#[derive(Debug, Clone)]
pub struct NodePool {
    pub file: FileId,
    /// The pool's `name`, else the block's last label.
    pub name: String,
    /// The environment directory the file is in.
    pub env: Option<String>,
    pub taints: Vec<Taint>,
    pub labels: Vec<(String, String)>,
    /// The block's first line.
    pub span: Span,
}

/// Is this a Terraform file dtlint reads?
pub fn is_terraform_name(name: &str) -> bool {
    std::path::Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tf"))
}

/// The environment of a file under `.../environments/<env>/`.
pub fn environment_of(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split(['/', '\\']).collect();
    parts
        .windows(3)
        .find(|w| w[0] == "environments")
        .map(|w| w[1].to_string())
}

/// Kubernetes' name for a taint effect (GKE writes `NO_SCHEDULE`).
fn effect(text: &str) -> String {
    match text {
        "NO_SCHEDULE" => "NoSchedule".into(),
        "PREFER_NO_SCHEDULE" => "PreferNoSchedule".into(),
        "NO_EXECUTE" => "NoExecute".into(),
        other => other.to_string(),
    }
}

fn literal(e: &Expression) -> Option<String> {
    e.as_str().map(str::to_string)
}

fn key_text(k: &ObjectKey) -> Option<String> {
    match k {
        ObjectKey::Ident(i) => Some(i.as_str().to_string()),
        ObjectKey::Expression(e) => literal(e),
    }
}

/// A literal map's string pairs.
fn string_map(e: &Expression) -> Vec<(String, String)> {
    e.as_object()
        .into_iter()
        .flat_map(|o| o.iter())
        .filter_map(|(k, v)| Some((key_text(k)?, literal(v.expr())?)))
        .collect()
}

struct Reader<'s> {
    file: &'s SourceFile,
}

impl Reader<'_> {
    fn span(&self, range: Option<Range<usize>>) -> Span {
        let range = range.unwrap_or(0..0);
        let text = &self.file.text;
        Span {
            start: self.file.lines.pos_of_offset(text, range.start),
            end: self.file.lines.pos_of_offset(text, range.end),
        }
    }

    /// The block's header line: from its identifier to the end of its labels.
    fn head(&self, block: &Block) -> Span {
        let start = block.span().map_or(0, |r| r.start);
        let line_end = self.file.text[start..]
            .find('\n')
            .map_or(self.file.text.len(), |n| start + n);
        self.span(Some(start..line_end))
    }

    fn taint_object(&self, e: &Expression) -> Option<Taint> {
        let pairs = string_map(e);
        let get = |k: &str| pairs.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
        Some(Taint {
            key: get("key")?,
            value: get("value").unwrap_or_default(),
            effect: effect(&get("effect")?),
            span: self.span(e.span()),
        })
    }

    fn taint_block(&self, b: &Block) -> Option<Taint> {
        let attr = |k: &str| b.body.get_attribute(k).and_then(|a| literal(&a.value));
        Some(Taint {
            key: attr("key")?,
            value: attr("value").unwrap_or_default(),
            effect: effect(&attr("effect")?),
            span: self.span(b.span()),
        })
    }

    fn pool(&self, block: &Block, id: FileId, env: Option<&String>) -> Option<NodePool> {
        let name_of = |body: &Body| {
            body.get_attribute("name")
                .and_then(|a| literal(&a.value))
                .or_else(|| block.labels.last().map(|l| l.as_str().to_string()))
                .unwrap_or_default()
        };
        let (taints, labels) = match block.ident.as_str() {
            "module" => {
                let taints = block.body.get_attribute("taints")?;
                let labels = block
                    .body
                    .get_attribute("node_labels")
                    .or_else(|| block.body.get_attribute("labels"));
                let taints: Vec<Taint> = taints
                    .value
                    .as_array()
                    .into_iter()
                    .flat_map(|a| a.iter())
                    .filter_map(|e| self.taint_object(e))
                    .collect();
                (taints, labels)
            }
            "resource"
                if block
                    .labels
                    .first()
                    .map(hcl_edit::structure::BlockLabel::as_str)
                    == Some("google_container_node_pool") =>
            {
                let config = block
                    .body
                    .blocks()
                    .find(|b| b.ident.as_str() == "node_config");
                let taints: Vec<Taint> = config
                    .into_iter()
                    .flat_map(|c| c.body.blocks())
                    .filter(|b| b.ident.as_str() == "taint")
                    .filter_map(|b| self.taint_block(b))
                    .collect();
                (taints, config.and_then(|c| c.body.get_attribute("labels")))
            }
            _ => return None,
        };
        Some(NodePool {
            file: id,
            name: name_of(&block.body),
            env: env.cloned(),
            taints,
            labels: labels.map(|a| string_map(&a.value)).unwrap_or_default(),
            span: self.head(block),
        })
    }
}

/// The node pools of one `.tf` file, or where and why it does not parse.
pub fn node_pools(id: FileId, file: &SourceFile) -> Result<Vec<NodePool>, (Span, String)> {
    let reader = Reader { file };
    let body = hcl_edit::parser::parse_body(&file.text).map_err(|e| {
        let pos = file.lines.pos_of_offset(&file.text, e.location().offset());
        (
            Span {
                start: pos,
                end: pos,
            },
            e.message().to_string(),
        )
    })?;
    let env = environment_of(&file.path);
    Ok(body
        .blocks()
        .filter_map(|b| reader.pool(b, id, env.as_ref()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile::new(path.into(), PathBuf::from(path), text.into())
    }

    #[test]
    fn a_module_pool_and_a_resource_pool_are_read_with_their_taints() {
        let f = file(
            "terraform/environments/production/main.tf",
            r#"
module "media_handler_pool" {
  source = "../../modules/node-pool"
  name   = "media-handler"
  node_labels = {
    "dark-tower.io/node-pool" = "media-handler"
  }
  taints = [{
    key    = "dark-tower.io/dedicated"
    value  = "media-handler"
    effect = "NO_SCHEDULE"
  }]
}

resource "google_container_node_pool" "gpu" {
  node_config {
    labels = { pool = "gpu" }
    taint {
      key    = "gpu"
      value  = "true"
      effect = "NO_EXECUTE"
    }
  }
}

module "system_pool" {
  source = "../node-pool"
  taints = var.system_taints
}
"#,
        );
        let pools = node_pools(FileId(0), &f).unwrap();
        assert_eq!(pools.len(), 3);
        assert_eq!(pools[0].name, "media-handler");
        assert_eq!(pools[0].env.as_deref(), Some("production"));
        assert_eq!(
            pools[0].labels,
            vec![(
                "dark-tower.io/node-pool".to_string(),
                "media-handler".to_string()
            )]
        );
        let t = &pools[0].taints[0];
        assert_eq!(
            (t.key.as_str(), t.value.as_str(), t.effect.as_str()),
            ("dark-tower.io/dedicated", "media-handler", "NoSchedule")
        );
        assert_eq!(t.span.start.line, 8, "the taint object");
        assert_eq!(pools[0].span.start.line, 2);
        assert_eq!(pools[1].name, "gpu");
        assert_eq!(pools[1].taints[0].effect, "NoExecute");
        assert_eq!(pools[1].labels, vec![("pool".into(), "gpu".into())]);
        // A variable is not a literal: no taints known.
        assert!(pools[2].taints.is_empty());
    }

    #[test]
    fn a_syntax_error_has_a_position_and_the_environment_comes_from_the_path() {
        let f = file(
            "terraform/environments/dev/main.tf",
            "module \"x\" {\n  a = \n",
        );
        let (span, message) = node_pools(FileId(0), &f).unwrap_err();
        assert!(span.start.line >= 2, "{span:?}");
        assert!(!message.is_empty());
        assert_eq!(environment_of("terraform/modules/node-pool/main.tf"), None);
        assert_eq!(
            environment_of("a/environments/staging/x.tf").as_deref(),
            Some("staging")
        );
    }
}
