//! Files written by the real sops 3.11 (multi-document YAML with comments
//! and typed values, dotenv with comments and newlines, JSON with Shamir key
//! groups and `mac_only_encrypted`), decrypted with the golden test keys.
//! Our plaintext must equal `sops decrypt`'s output byte for byte.

// Helpers shared by the tests may unwrap, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use dtlint_sops::{AgeIdentities, Plain, SopsFile, decrypt, decrypt_to_plaintext};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn golden_keys(dir: &Path) -> AgeIdentities {
    let mut text = String::new();
    for k in ["age.txt", "age-global.txt"] {
        text.push_str(&std::fs::read_to_string(dir.join("keys").join(k)).unwrap());
    }
    AgeIdentities::parse(&text, "golden keys").unwrap()
}

fn same_as_sops(enc: &str, plain: &str) {
    let dir = common::golden_dir();
    let src = fixture(enc);
    let file = SopsFile::parse(Path::new(enc), &src);
    let out = decrypt_to_plaintext(&file, &golden_keys(&dir)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(String::from_utf8(out).unwrap(), fixture(plain));
}

#[test]
fn multi_document_yaml_with_comments_and_types() {
    same_as_sops(
        "sops-3.11-multidoc.enc.yaml",
        "sops-3.11-multidoc.plain.yaml",
    );
}

#[test]
fn dotenv_with_comments_quotes_and_newlines() {
    same_as_sops("sops-3.11-comments.enc.env", "sops-3.11-comments.plain.env");
}

#[test]
fn json_with_shamir_key_groups_and_mac_only_encrypted() {
    same_as_sops(
        "sops-3.11-shamir-maconly.enc.json",
        "sops-3.11-shamir-maconly.plain.json",
    );
}

#[test]
fn multi_document_trees_hold_typed_values() {
    let dir = common::golden_dir();
    let src = fixture("sops-3.11-multidoc.enc.yaml");
    let file = SopsFile::parse(Path::new("m.yaml"), &src);
    let d = decrypt(&file, &golden_keys(&dir)).unwrap();
    assert_eq!(d.documents.len(), 2);
    let data = d.documents[0].get("data").unwrap();
    assert_eq!(data.get("n").unwrap().as_plain(), Some(&Plain::Int(12)));
    assert_eq!(data.get("f").unwrap().as_plain(), Some(&Plain::Float(1.5)));
    assert_eq!(data.get("b").unwrap().as_plain(), Some(&Plain::Bool(true)));
    assert_eq!(
        data.path(&["nested", "deep"]).unwrap().as_str(),
        Some("yes")
    );
    assert_eq!(data.get("list").unwrap().items().len(), 2);
    assert_eq!(
        d.documents[1].path(&["stringData", "k2"]).unwrap().as_str(),
        Some("two")
    );
}
