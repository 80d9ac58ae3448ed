//! Structure checks that need no key: metadata present and sane, every value
//! the file's rules encrypt is encrypted (and nothing else is), Kubernetes
//! identity fields stay plain, stanzas are well formed, and recipients and
//! selectors equal the matching `.sops.yaml` rule's.

use std::collections::BTreeSet;

use dtlint_yaml::{Node, Scalar, Span};

use crate::cipher::{looks_encrypted, parse_enc};
use crate::config::CreationRule;
use crate::decrypt::canonical_lastmodified;
use crate::file::SopsFile;
use crate::finding::{Finding, FindingKind};
use crate::keys::{inspect_stanza, parse_recipient};
use crate::metadata::Selectors;
use crate::tree::{Visitor, aad, walk_root};
use crate::value::{Plain, resolve};

/// Check a file without a key. `rule` is the `.sops.yaml` creation rule that
/// matches the file, if any; `related` spans of rule comparisons point into
/// that `.sops.yaml`.
pub fn check(file: &SopsFile<'_>, rule: Option<&CreationRule>) -> Vec<Finding> {
    let mut out: Vec<Finding> = file.problems().to_vec();
    let Some(meta) = file.metadata() else {
        out.push(not_encrypted(file, rule));
        return out;
    };
    let missing = |what: &str| {
        Finding::new(
            FindingKind::MissingMetadata,
            meta.span,
            format!("sops metadata has no `{what}`"),
        )
    };
    match &meta.mac {
        None => out.push(missing("mac")),
        Some(mac) => {
            if let Err(m) = parse_enc(&mac.value) {
                out.push(
                    Finding::new(
                        FindingKind::MalformedValue,
                        mac.span,
                        format!("malformed `mac`: {m}"),
                    )
                    .with_path("sops:mac"),
                );
            }
        }
    }
    if meta.version.is_none() {
        out.push(missing("version"));
    }
    match &meta.lastmodified {
        None => out.push(missing("lastmodified")),
        Some(lm) if canonical_lastmodified(&lm.value).is_none() => out.push(Finding::new(
            FindingKind::InvalidMetadata,
            lm.span,
            format!("`lastmodified` `{}` is not an RFC 3339 time", lm.value),
        )),
        Some(_) => {}
    }
    if meta
        .key_groups
        .iter()
        .all(|g| g.age.is_empty() && g.other.is_empty())
    {
        out.push(missing("keys (age, pgp, kms, ...)"));
    }
    for stanza in meta.age_recipients() {
        let r = &stanza.recipient.value;
        if let Err(m) = parse_recipient(r)
            && !r.starts_with("age1pq1")
        {
            out.push(Finding::new(
                FindingKind::InvalidMetadata,
                stanza.recipient.span,
                format!("`{r}`: {m}"),
            ));
        }
        if let Err(m) = inspect_stanza(&stanza.enc.value) {
            out.push(Finding::new(
                FindingKind::MalformedStanza,
                stanza.enc.span,
                format!("age stanza for `{r}` is malformed: {m}"),
            ));
        }
    }
    let selectors = meta.selectors.effective();
    let mut values = Values {
        format: file.format(),
        selectors: &selectors,
        comment_mode: selectors.uses_comment_regex(),
        out: &mut out,
    };
    for doc in file.documents() {
        let _ = walk_root(&doc.root, file.source(), &mut values);
        identity_fields(&doc.root, values.out);
    }
    if let Some(rule) = rule {
        compare_with_rule(meta, rule, &mut out);
    }
    out
}

fn not_encrypted(file: &SopsFile<'_>, rule: Option<&CreationRule>) -> Finding {
    // Point at the first value the rule would encrypt: that is the line a
    // reader must not see in plaintext.
    struct First<'s> {
        format: crate::Format,
        selectors: &'s Selectors,
        found: Option<(Span, String)>,
    }
    impl<'n> Visitor<'n> for First<'_> {
        type Err = ();
        fn leaf(
            &mut self,
            path: &[&'n str],
            node: &'n Node,
            scalar: &'n Scalar,
            _: bool,
        ) -> Result<(), ()> {
            let non_empty =
                matches!(resolve(scalar, self.format), Ok(Some(v)) if !v.is_empty_str());
            if non_empty && self.selectors.should_encrypt(path) {
                self.found = Some((node.span, aad(path)));
                return Err(());
            }
            Ok(())
        }
    }
    let selectors = rule
        .map(|r| r.selectors.effective())
        .unwrap_or_default()
        .effective();
    let mut first = First {
        format: file.format(),
        selectors: &selectors,
        found: None,
    };
    for doc in file.documents() {
        if walk_root(&doc.root, file.source(), &mut first).is_err() {
            break;
        }
    }
    let rule_note = rule.map_or(String::new(), |r| {
        format!(" although `.sops.yaml` rule {} covers it", r.index + 1)
    });
    if let Some((span, path)) = first.found {
        Finding::new(
            FindingKind::NotEncrypted,
            span,
            format!("plaintext value in a file that is not encrypted with sops{rule_note}"),
        )
        .with_path(path)
    } else {
        let span = file
            .documents()
            .first()
            .map_or_else(Span::default, |d| Span::at(d.root.span.start));
        Finding::new(
            FindingKind::NotEncrypted,
            span,
            format!("no sops metadata: the file is not encrypted{rule_note}"),
        )
    }
}

struct Values<'s, 'o> {
    format: crate::Format,
    selectors: &'s Selectors,
    comment_mode: bool,
    out: &'o mut Vec<Finding>,
}

impl<'n> Visitor<'n> for Values<'_, '_> {
    type Err = ();

    fn leaf(
        &mut self,
        path: &[&'n str],
        node: &'n Node,
        scalar: &'n Scalar,
        _: bool,
    ) -> Result<(), ()> {
        let text = scalar.text.as_str();
        let typed = resolve(scalar, self.format).ok().flatten();
        let is_string = matches!(typed, Some(Plain::Str(_)));
        let enc_looking = is_string && looks_encrypted(text);
        let should = if self.comment_mode {
            enc_looking
        } else {
            self.selectors.should_encrypt(path)
        };
        let p = aad(path);
        if enc_looking && let Err(m) = parse_enc(text) {
            self.out.push(
                Finding::new(
                    FindingKind::MalformedValue,
                    node.span,
                    format!("malformed encrypted value: {m}"),
                )
                .with_path(p.clone()),
            );
        }
        if should && !enc_looking && !(is_string && text.is_empty()) {
            self.out.push(
                Finding::new(
                    FindingKind::PlaintextValue,
                    node.span,
                    "value is not encrypted although the file's sops rules encrypt it",
                )
                .with_path(p),
            );
        } else if !should && enc_looking && !is_identity_path(path) {
            self.out.push(
                Finding::new(
                    FindingKind::UnexpectedEncryptedValue,
                    node.span,
                    "value is encrypted but the file's sops rules leave it plain, so sops will not decrypt it",
                )
                .with_path(p),
            );
        }
        Ok(())
    }
}

fn is_identity_path(path: &[&str]) -> bool {
    matches!(path.first(), Some(&("apiVersion" | "kind" | "metadata")))
}

/// In a Kubernetes object, `apiVersion`, `kind` and `metadata` must stay
/// readable: kustomize and Flux find the object by them.
fn identity_fields(root: &Node, out: &mut Vec<Finding>) {
    if root.get("apiVersion").is_none() || root.get("kind").is_none() {
        return;
    }
    for key in ["apiVersion", "kind", "metadata"] {
        if let Some(n) = root.get(key) {
            let mut path = vec![key.to_owned()];
            visit(n, &mut path, out);
        }
    }
}

fn visit(n: &Node, path: &mut Vec<String>, out: &mut Vec<Finding>) {
    match &n.value {
        dtlint_yaml::Value::Scalar(s) => {
            if looks_encrypted(&s.text) {
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                out.push(
                    Finding::new(
                        FindingKind::EncryptedIdentity,
                        n.span,
                        format!(
                            "`{}` of a Kubernetes object is encrypted; it must stay plain (use `encrypted_regex: ^(data|stringData)$`)",
                            path.first().map_or("", String::as_str)
                        ),
                    )
                    .with_path(aad(&refs)),
                );
            }
        }
        dtlint_yaml::Value::Sequence(items) => items.iter().for_each(|i| visit(i, path, out)),
        dtlint_yaml::Value::Mapping(entries) => {
            for e in entries {
                path.push(e.key.as_str().unwrap_or("").to_owned());
                visit(&e.value, path, out);
                path.pop();
            }
        }
    }
}

fn compare_with_rule(meta: &crate::Metadata, rule: &CreationRule, out: &mut Vec<Finding>) {
    let rule_note = format!("`.sops.yaml` rule {}", rule.index + 1);
    let wanted: BTreeSet<&str> = rule.age_recipients().map(|s| s.value.trim()).collect();
    let have: BTreeSet<&str> = meta
        .age_recipients()
        .map(|s| s.recipient.value.trim())
        .collect();
    let anchor = meta.age_recipients().next().map_or(meta.span, |s| s.span);
    for missing in wanted.difference(&have) {
        let mut f = Finding::new(
            FindingKind::RecipientMismatch,
            anchor,
            format!(
                "recipient `{missing}` required by {rule_note} is missing; run `dtlint sops updatekeys`"
            ),
        );
        if let Some(s) = rule.age_recipients().find(|s| s.value.trim() == *missing) {
            f.related = Some((s.span, "required by this rule".into()));
        }
        out.push(f);
    }
    for stanza in meta.age_recipients() {
        let r = stanza.recipient.value.trim();
        if !wanted.contains(r) {
            let mut f = Finding::new(
                FindingKind::RecipientMismatch,
                stanza.recipient.span,
                format!("recipient `{r}` is not in {rule_note}; run `dtlint sops updatekeys`"),
            );
            f.related = Some((rule.span, "the matching rule".into()));
            out.push(f);
        }
    }
    let rule_groups = rule.key_groups.len();
    if rule_groups > 1 && meta.key_groups.len() != rule_groups {
        out.push(Finding::new(
            FindingKind::RecipientMismatch,
            meta.span,
            format!(
                "the file has {} key groups but {rule_note} has {rule_groups}",
                meta.key_groups.len()
            ),
        ));
    }
    if !meta.selectors.same_as(&rule.selectors) {
        let describe = |s: &Selectors| {
            let mut parts: Vec<String> = s
                .effective()
                .fields()
                .into_iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            if s.mac_only_encrypted {
                parts.push("mac_only_encrypted: true".into());
            }
            parts.join(", ")
        };
        let span = meta.selector_spans.first().map_or(meta.span, |s| s.1);
        let mut f = Finding::new(
            FindingKind::RuleMismatch,
            span,
            format!(
                "the file was encrypted with `{}` but {rule_note} says `{}`",
                describe(&meta.selectors),
                describe(&rule.selectors)
            ),
        );
        f.related = Some((rule.span, "the matching rule".into()));
        out.push(f);
    }
}
