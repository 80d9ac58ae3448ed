//! `.sops.yaml`: creation rules, first match wins.
//!
//! sops matches each rule's `path_regex` against the file's path relative to
//! the directory holding `.sops.yaml` (forward slashes); a rule without
//! `path_regex` matches every file. Recipients come from the rule's flat
//! `age` (a comma-separated string or a list) or from `key_groups`.

use std::path::{Path, PathBuf};

use dtlint_yaml::{Limits, LineIndex, Node, Span, Value};
use regex::Regex;

use crate::error::{Error, ErrorKind};
use crate::finding::{Finding, FindingKind};
use crate::keys::parse_recipient;
use crate::metadata::{Selectors, set_selector};

/// A string from `.sops.yaml` and where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub value: String,
    pub span: Span,
}

/// The keys of one key group of a rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyGroupSpec {
    /// age recipients (`age1…`).
    pub age: Vec<Spanned>,
    /// Keys of other kinds (`pgp`, `kms`, ...), which this crate cannot use.
    pub other: Vec<Spanned>,
}

/// One `creation_rules` entry.
#[derive(Debug, Clone)]
pub struct CreationRule {
    /// Position in `creation_rules`, from 0.
    pub index: usize,
    /// The rule's item in `.sops.yaml`.
    pub span: Span,
    /// The `path_regex` text and its span; `None` matches every file.
    pub path_regex: Option<Spanned>,
    regex: Option<Regex>,
    /// A rule whose `path_regex` does not compile never matches (sops would
    /// refuse to run); the problem is in [`SopsConfig::problems`].
    pub valid: bool,
    pub key_groups: Vec<KeyGroupSpec>,
    pub shamir_threshold: Option<usize>,
    pub selectors: Selectors,
}

impl CreationRule {
    /// Every age recipient of the rule, across key groups.
    pub fn age_recipients(&self) -> impl Iterator<Item = &Spanned> {
        self.key_groups.iter().flat_map(|g| g.age.iter())
    }

    /// Whether the rule matches a path relative to the config's directory.
    pub fn matches(&self, relative: &str) -> bool {
        self.valid && self.regex.as_ref().is_none_or(|r| r.is_match(relative))
    }
}

/// A parsed `.sops.yaml`.
#[derive(Debug, Clone)]
pub struct SopsConfig {
    /// The `.sops.yaml` file.
    pub path: PathBuf,
    pub rules: Vec<CreationRule>,
    /// Positioned problems (bad regexes, bad recipients, wrong shapes).
    pub problems: Vec<Finding>,
}

impl SopsConfig {
    /// Parse `.sops.yaml` text. Fails only when the text is not YAML.
    pub fn parse(path: &Path, src: &str) -> Result<Self, Error> {
        let lines = LineIndex::new(src);
        let parsed = dtlint_yaml::parse(src, &lines, Limits::default());
        if let Some(p) = parsed
            .problems
            .iter()
            .find(|p| p.kind != dtlint_yaml::ProblemKind::DuplicateKey)
        {
            return Err(Error::new(
                path,
                ErrorKind::Syntax {
                    format: "yaml",
                    message: p.message.clone(),
                },
            )
            .at(p.span));
        }
        let mut cfg = SopsConfig {
            path: path.to_path_buf(),
            rules: Vec::new(),
            problems: Vec::new(),
        };
        let Some(doc) = parsed.documents.first() else {
            return Ok(cfg);
        };
        let Some(rules) = doc.root.get("creation_rules") else {
            return Ok(cfg);
        };
        if rules.as_sequence().is_none() && !rules.is_null() {
            cfg.problems.push(Finding::new(
                FindingKind::Config,
                rules.span,
                format!(
                    "`creation_rules` must be a list, found {}",
                    rules.type_name()
                ),
            ));
        }
        for (index, item) in rules.items().enumerate() {
            let rule = read_rule(index, item, &mut cfg.problems);
            cfg.rules.push(rule);
        }
        Ok(cfg)
    }

    /// Read and parse a `.sops.yaml` file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let src = std::fs::read_to_string(path)
            .map_err(|e| Error::new(path, ErrorKind::Config(format!("cannot read: {e}"))))?;
        Self::parse(path, &src)
    }

    /// The directory rule paths are relative to.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }

    /// `file` as sops matches it: relative to the config's directory when it
    /// lies below it, with forward slashes.
    pub fn relative_path(&self, file: &Path) -> String {
        let rel = file.strip_prefix(self.dir()).unwrap_or(file);
        let rel = rel.strip_prefix("./").unwrap_or(rel);
        rel.to_string_lossy().replace('\\', "/")
    }

    /// The first rule matching `file` (relative to the config's directory,
    /// or a path below it).
    pub fn rule_for(&self, file: &Path) -> Option<&CreationRule> {
        let rel = self.relative_path(file);
        self.rules.iter().find(|r| r.matches(&rel))
    }
}

fn spanned(n: &Node) -> Option<Spanned> {
    n.as_str().map(|s| Spanned {
        value: s.to_owned(),
        span: n.span,
    })
}

/// A comma-separated string or a list of strings.
fn string_list(n: &Node) -> Vec<Spanned> {
    match &n.value {
        Value::Sequence(items) => items.iter().filter_map(spanned).collect(),
        Value::Scalar(s) if !s.is_null() => s
            .text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Spanned {
                value: p.to_owned(),
                span: n.span,
            })
            .collect(),
        _ => Vec::new(),
    }
}

const OTHER_KEY_FIELDS: [&str; 6] = [
    "pgp",
    "kms",
    "gcp_kms",
    "azure_keyvault",
    "hc_vault_transit_uri",
    "hckms",
];

fn read_group(node: &Node, problems: &mut Vec<Finding>) -> KeyGroupSpec {
    let mut g = KeyGroupSpec::default();
    for e in node.entries() {
        match e.key.as_str() {
            Some("age") => {
                for r in string_list(&e.value) {
                    if let Err(msg) = parse_recipient(&r.value) {
                        problems.push(Finding::new(
                            FindingKind::Config,
                            r.span,
                            format!("`{}` is not a usable age recipient: {msg}", r.value),
                        ));
                    }
                    g.age.push(r);
                }
            }
            Some(k) if OTHER_KEY_FIELDS.contains(&k) => {
                g.other
                    .extend(string_list(&e.value).into_iter().map(|mut s| {
                        s.value = format!("{k}:{}", s.value);
                        s
                    }));
            }
            _ => {}
        }
    }
    g
}

fn read_rule(index: usize, item: &Node, problems: &mut Vec<Finding>) -> CreationRule {
    let mut rule = CreationRule {
        index,
        span: item.span,
        path_regex: None,
        regex: None,
        valid: true,
        key_groups: Vec::new(),
        shamir_threshold: None,
        selectors: Selectors::default(),
    };
    if item.as_mapping().is_none() {
        problems.push(Finding::new(
            FindingKind::Config,
            item.span,
            format!(
                "a creation rule must be a mapping, found {}",
                item.type_name()
            ),
        ));
        rule.valid = false;
        return rule;
    }
    if let Some(p) = item.get("path_regex").and_then(spanned)
        && !p.value.is_empty()
    {
        {
            match Regex::new(&p.value) {
                Ok(re) => rule.regex = Some(re),
                Err(e) => {
                    // The regex crate's message spans lines; its last line says what is wrong.
                    let text = e.to_string();
                    let reason = text
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim_start_matches("error: ")
                        .to_owned();
                    problems.push(Finding::new(
                        FindingKind::Config,
                        p.span,
                        format!("`path_regex` is not a valid regular expression: {reason}"),
                    ));
                    rule.valid = false;
                }
            }
            rule.path_regex = Some(p);
        }
    }
    if let Some(groups) = item.get("key_groups") {
        for g in groups.items() {
            rule.key_groups.push(read_group(g, problems));
        }
    } else {
        let flat = read_group(item, problems);
        if !flat.age.is_empty() || !flat.other.is_empty() {
            rule.key_groups.push(flat);
        }
    }
    if let Some(t) = item.get("shamir_threshold") {
        rule.shamir_threshold = t
            .as_i64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0);
        if rule.shamir_threshold.is_none() && !t.is_null() {
            problems.push(Finding::new(
                FindingKind::Config,
                t.span,
                "`shamir_threshold` must be a positive integer",
            ));
        }
    }
    for field in [
        "unencrypted_suffix",
        "encrypted_suffix",
        "unencrypted_regex",
        "encrypted_regex",
        "unencrypted_comment_regex",
        "encrypted_comment_regex",
    ] {
        if let Some(v) = item
            .get(field)
            .and_then(spanned)
            .filter(|v| !v.value.is_empty())
            && let Err(msg) = set_selector(&mut rule.selectors, field, &v.value)
        {
            problems.push(Finding::new(FindingKind::Config, v.span, msg));
        }
    }
    if rule.selectors.count() > 1 {
        problems.push(Finding::new(
            FindingKind::Config,
            item.span,
            "a rule may set only one of encrypted_suffix, unencrypted_suffix, encrypted_regex, unencrypted_regex and the comment regexes",
        ));
    }
    rule.selectors.mac_only_encrypted =
        item.get("mac_only_encrypted").and_then(Node::as_bool) == Some(true);
    rule
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
creation_rules:
  - path_regex: (inside|pgp)\.yaml$
    encrypted_regex: &re ^(data|stringData)$
    pgp: 35C1A64CD7FC0AB6EB66756B2445463C3234ECE1
  - path_regex: overlays/staging/.*\.sops\.yaml$
    encrypted_regex: *re
    age: >-
      age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29,
      age1henwn645drkd3fa34t27t2w2x0nsgw3w4h62gmg5x5xflyjpy38s5cncph
  - path_regex: \.env$
    mac_only_encrypted: true
    age:
      - age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29
  - path_regex: "["
  - key_groups:
      - age:
          - age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29
      - pgp:
          - 35C1A64CD7FC0AB6EB66756B2445463C3234ECE1
"#;

    #[test]
    fn first_matching_rule_wins_relative_to_the_config_dir() {
        let cfg = SopsConfig::parse(Path::new("/repo/.sops.yaml"), CFG).unwrap();
        assert_eq!(cfg.rules.len(), 5);
        let r = cfg
            .rule_for(Path::new("/repo/overlays/staging/ac/secret.sops.yaml"))
            .unwrap();
        assert_eq!(r.index, 1);
        let ages: Vec<&str> = r.age_recipients().map(|s| s.value.as_str()).collect();
        assert_eq!(ages.len(), 2);
        assert!(ages[1].starts_with("age1henwn"));
        assert_eq!(
            r.selectors.encrypted_regex.as_ref().map(Regex::as_str),
            Some("^(data|stringData)$")
        );
        let r = cfg.rule_for(Path::new("app/.env")).unwrap();
        assert_eq!(r.index, 2);
        assert!(r.selectors.mac_only_encrypted);
        assert_eq!(cfg.rule_for(Path::new("inside.yaml")).unwrap().index, 0);
        // The invalid rule never matches; the fallback (no path_regex) does.
        let r = cfg.rule_for(Path::new("whatever.bin")).unwrap();
        assert_eq!(r.index, 4);
        assert_eq!(r.key_groups.len(), 2);
        assert_eq!(
            r.key_groups[1].other[0].value,
            "pgp:35C1A64CD7FC0AB6EB66756B2445463C3234ECE1"
        );
        assert_eq!(cfg.problems.len(), 1);
        assert_eq!(cfg.problems[0].span.start.line, 15);
    }

    #[test]
    fn bad_recipients_and_bad_yaml_are_positioned() {
        let cfg = SopsConfig::parse(
            Path::new(".sops.yaml"),
            "creation_rules:\n  - age: age1nope\n",
        )
        .unwrap();
        assert_eq!(cfg.problems[0].span.start.line, 2);
        let err = SopsConfig::parse(Path::new(".sops.yaml"), "creation_rules: [\n").unwrap_err();
        assert!(err.span().is_some());
    }
}
