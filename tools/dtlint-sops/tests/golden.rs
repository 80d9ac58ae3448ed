//! Real Go sops output (3.9, 3.10 and 3.12) decrypts and MAC-verifies, its
//! structure passes the keyless checks, and `.sops.yaml` rules match.

// Helpers shared by the tests may unwrap, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use dtlint_sops::{
    AgeIdentities, FindingKind, Format, Plain, SopsConfig, SopsFile, check, decrypt,
    decrypt_to_plaintext,
};

fn key(dir: &Path, name: &str) -> AgeIdentities {
    AgeIdentities::from_file(&dir.join("keys").join(name)).unwrap()
}

/// Every file of the golden directory except keys, kustomizations and its README.
fn golden_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "keys") {
                    stack.push(p);
                }
            } else if p
                .file_name()
                .is_some_and(|n| n != "kustomization.yaml" && n != ".sops.yaml" && n != "README.md")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_age_encrypted_golden_file_decrypts_and_verifies() {
    let dir = common::golden_dir();
    let keys = ["age.txt", "age-global.txt"].map(|k| key(&dir, k));
    let expected: &[(&str, &str)] = &[
        (
            "algorithms/age.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: age\nstringData:\n  key: value\n",
        ),
        (
            "patches/merge1.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret\nstringData:\n  key: merge1\n",
        ),
        (
            "patches/merge2.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret\nstringData:\n  merge2: merge2\n",
        ),
        (
            "global/secret.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: global-age-secret\n  namespace: default\ntype: Opaque\nstringData:\n  key: global-value\n",
        ),
        ("component/env.env", "key=value\n"),
        ("envs/env.env", "key=value\n"),
        ("remote/env.env", "key=value\n"),
        ("files/file.txt", "value"),
    ];
    let mut decrypted = Vec::new();
    let mut skipped = Vec::new();
    for path in golden_files(&dir) {
        let rel = path
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let src = std::fs::read_to_string(&path).unwrap();
        let file = SopsFile::parse(&path, &src);
        let Some(meta) = file.metadata() else {
            skipped.push(format!("{rel} (not a sops file)"));
            continue;
        };
        let recipients: Vec<&str> = meta
            .age_recipients()
            .map(|a| a.recipient.value.as_str())
            .collect();
        if recipients.is_empty() {
            skipped.push(format!("{rel} (PGP only)"));
            continue;
        }
        if recipients.iter().all(|r| r.starts_with("age1pq1")) {
            skipped.push(format!(
                "{rel} (post-quantum age, unsupported by the age crate)"
            ));
            continue;
        }
        let ids = keys
            .iter()
            .find(|k| {
                k.recipients()
                    .iter()
                    .any(|r| recipients.contains(&r.as_str()))
            })
            .unwrap_or_else(|| panic!("{rel}: no golden key for {recipients:?}"));
        let plain = decrypt_to_plaintext(&file, ids).unwrap_or_else(|e| panic!("{e}"));
        let want = expected
            .iter()
            .find(|(p, _)| *p == rel)
            .unwrap_or_else(|| panic!("{rel}: add its expected plaintext"))
            .1;
        assert_eq!(String::from_utf8(plain).unwrap(), want, "{rel}");
        decrypted.push(rel);
    }
    println!("decrypted and verified: {decrypted:?}");
    println!("not decrypted (no age key of ours can): {skipped:?}");
    assert_eq!(decrypted.len(), expected.len(), "{decrypted:?}");
    assert!(skipped.iter().any(|s| s.starts_with("algorithms/pgp.yaml")));
    assert!(
        skipped
            .iter()
            .any(|s| s.starts_with("algorithms/age-pq.yaml"))
    );
}

#[test]
fn decrypted_trees_keep_types_and_spans() {
    let dir = common::golden_dir();
    let path = dir.join("global/secret.yaml");
    let src = std::fs::read_to_string(&path).unwrap();
    let file = SopsFile::parse(&path, &src);
    let d = decrypt(&file, &key(&dir, "age-global.txt")).unwrap();
    let value = d.documents[0].path(&["stringData", "key"]).unwrap();
    assert_eq!(value.as_plain(), Some(&Plain::Str("global-value".into())));
    assert_eq!((value.span.start.line, value.span.start.col), (8, 8));
    assert_eq!(
        d.documents[0].path(&["metadata", "name"]).unwrap().as_str(),
        Some("global-age-secret")
    );
}

#[test]
fn the_secret_inside_a_secret_decrypts_as_a_binary_file() {
    let dir = common::golden_dir();
    let src = std::fs::read_to_string(dir.join("inside/secret.yaml")).unwrap();
    let outer = SopsFile::parse(Path::new("inside/secret.yaml"), &src);
    let b64 = outer.documents()[0]
        .root
        .path(&["data", "key"])
        .unwrap()
        .as_str()
        .unwrap();
    let inner = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let inner = String::from_utf8(inner).unwrap();
    let file = SopsFile::parse_as(Path::new("inside.bin"), &inner, Format::Binary);
    let plain = decrypt_to_plaintext(&file, &key(&dir, "age.txt")).unwrap();
    assert_eq!(plain, b"value");
}

#[test]
fn golden_files_pass_the_keyless_checks_against_their_rules() {
    let dir = common::golden_dir();
    let cfg = SopsConfig::load(&dir.join(".sops.yaml")).unwrap();
    assert!(cfg.problems.is_empty(), "{:?}", cfg.problems);
    for rel in [
        "algorithms/age.yaml",
        "algorithms/pgp.yaml",
        "patches/merge1.yaml",
        "component/env.env",
        "envs/env.env",
        "files/file.txt",
    ] {
        let path = dir.join(rel);
        let src = std::fs::read_to_string(&path).unwrap();
        let file = SopsFile::parse(&path, &src);
        let rule = cfg.rule_for(&path);
        let findings = check(&file, rule);
        // pgp.yaml's rule names only a PGP key, which we do not compare.
        assert!(findings.is_empty(), "{rel}: {findings:#?}");
    }
    // The PQ file: well-formed stanzas, but its recipient is not the rule's.
    let path = dir.join("algorithms/age-pq.yaml");
    let src = std::fs::read_to_string(&path).unwrap();
    let findings = check(&SopsFile::parse(&path, &src), cfg.rule_for(&path));
    assert!(
        findings
            .iter()
            .all(|f| f.kind == FindingKind::RecipientMismatch),
        "{findings:#?}"
    );
    assert_eq!(findings.len(), 2);
    // global/secret.yaml was encrypted to another key than `.sops.yaml` says.
    let path = dir.join("global/secret.yaml");
    let src = std::fs::read_to_string(&path).unwrap();
    let findings = check(&SopsFile::parse(&path, &src), cfg.rule_for(&path));
    let kinds: Vec<_> = findings.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        vec![FindingKind::RecipientMismatch; 2],
        "{findings:#?}"
    );
    let extra = findings
        .iter()
        .find(|f| f.message.contains("is not in"))
        .unwrap();
    assert_eq!((extra.span.start.line, extra.span.start.col), (11, 18));
    // vault.yaml is a plain Secret under a rule: error at its first value.
    let path = dir.join("algorithms/vault.yaml");
    let src = std::fs::read_to_string(&path).unwrap();
    let findings = check(&SopsFile::parse(&path, &src), cfg.rule_for(&path));
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].kind, FindingKind::NotEncrypted);
    assert_eq!(findings[0].value_path.as_deref(), Some("stringData:key:"));
    assert_eq!(
        (findings[0].span.start.line, findings[0].span.start.col),
        (6, 10)
    );
}
