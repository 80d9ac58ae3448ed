//! The traffic matrix of each environment, for `dtlint graph`.

use std::collections::BTreeMap;

use super::{Namespaces, Net, OUTSIDE, port_list, scopes};
use crate::model::Index;

/// One graph per environment, rendered for `dtlint graph`.
pub struct Matrix {
    pub env: Option<String>,
    pub namespace: String,
    pub nodes: Vec<String>,
    /// (from, to) → ports.
    pub cells: BTreeMap<(String, String), Vec<String>>,
}

/// The pods and policies of every environment (see [`scopes`]), with the
/// `[network]` namespace as the primary one.
pub fn nets<'a>(index: &'a Index<'a>, config: &crate::config::Config) -> Vec<Net<'a, 'a>> {
    let namespaces = Namespaces::new(index);
    let primary = config.network.as_ref().and_then(|n| n.namespace.as_deref());
    scopes(index)
        .into_iter()
        .map(|env| Net::build(index, &namespaces, primary, env))
        .collect()
}

/// The matrices of an index: one per environment.
pub fn matrices<'a>(index: &'a Index<'a>, config: &'a crate::config::Config) -> Vec<Matrix> {
    nets(index, config)
        .iter()
        .map(|net| {
            let cells = net
                .edges()
                .iter()
                .map(|(k, pieces)| {
                    (
                        k.clone(),
                        port_list(pieces).iter().map(ToString::to_string).collect(),
                    )
                })
                .collect();
            Matrix {
                env: net.env.map(str::to_string),
                namespace: net.primary.clone(),
                nodes: net.nodes(),
                cells,
            }
        })
        .collect()
}

impl Matrix {
    /// A table: rows are sources, columns destinations, cells ports.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let env = self.env.as_deref().unwrap_or("all environments");
        let _ = writeln!(out, "# namespace {} ({env})", self.namespace);
        let froms: Vec<&String> = self
            .nodes
            .iter()
            .filter(|n| self.cells.keys().any(|(f, _)| f == *n))
            .collect();
        let tos: Vec<&String> = self
            .nodes
            .iter()
            .filter(|n| self.cells.keys().any(|(_, t)| t == *n))
            .collect();
        let cell = |f: &str, t: &str| {
            self.cells
                .get(&(f.to_string(), t.to_string()))
                .map_or_else(|| "-".to_string(), |p| p.join(" "))
        };
        let first = froms.iter().map(|f| f.len()).max().unwrap_or(4).max(11);
        let widths: Vec<usize> = tos
            .iter()
            .map(|t| {
                froms
                    .iter()
                    .map(|f| cell(f, t).len())
                    .max()
                    .unwrap_or(1)
                    .max(t.len())
            })
            .collect();
        let _ = write!(out, "{:<first$}", "from \\ to");
        for (t, w) in tos.iter().zip(&widths) {
            let _ = write!(out, " | {t:<w$}");
        }
        out.push('\n');
        for f in &froms {
            let _ = write!(out, "{f:<first$}");
            for (t, w) in tos.iter().zip(&widths) {
                let _ = write!(out, " | {:<w$}", cell(f, t));
            }
            out.push('\n');
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "environment": self.env,
            "namespace": self.namespace,
            "nodes": self.nodes,
            "edges": self.cells.iter().map(|((f, t), p)| serde_json::json!({"from": f, "to": t, "ports": p})).collect::<Vec<_>>(),
        })
    }

    pub fn to_dot(&self) -> String {
        use std::fmt::Write;
        let name = self.env.as_deref().unwrap_or("all");
        let mut out = format!("digraph \"{}-{name}\" {{\n  rankdir=LR;\n", self.namespace);
        for n in &self.nodes {
            let shape = if n.contains('/') || n == OUTSIDE {
                "ellipse"
            } else {
                "box"
            };
            let _ = writeln!(out, "  \"{n}\" [shape={shape}];");
        }
        for ((f, t), p) in &self.cells {
            let _ = writeln!(out, "  \"{f}\" -> \"{t}\" [label=\"{}\"];", p.join("\\n"));
        }
        out.push_str("}\n");
        out
    }
}
