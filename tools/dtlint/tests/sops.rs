//! `dtlint sops encrypt|decrypt|updatekeys` and SOPS checks as users and CI
//! see them: round trips, refusal of tampered files, re-keying after a rule
//! change, the Go `sops` reading our output, and `dtlint check` on a copy of
//! this repository's secrets with the CI key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::format_collect,
    clippy::case_sensitive_file_extension_comparisons
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use insta_cmd::{assert_cmd_snapshot, get_cargo_bin};

/// The public sops test key and its recipient.
const TEST_RECIPIENT: &str = "age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29";
/// The staging cluster's recipient (its private key is not ours).
const STAGING_RECIPIENT: &str = "age1l3mw3qzu2yyagckpkl5n2uq2nkzderq4583cy2rflgp4rkvrxycqv4wcld";

const PLAIN: &str = "# Staging credentials for the app.\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app-secrets\nstringData:\n  DATABASE_URL: postgres://app:s3cret@db:5432/app\n  API_TOKEN: tok-123\n";

/// The key as the commands get it: `test.agekey`, copied into each work
/// directory so snapshots show no machine's paths.
fn test_key() -> PathBuf {
    PathBuf::from("test.agekey")
}

fn sops_config(recipients: &[&str]) -> String {
    let list: String = recipients
        .iter()
        .map(|r| format!("          - {r}\n"))
        .collect();
    format!(
        "creation_rules:\n  - path_regex: ^secrets/.+\\.sops\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    mac_only_encrypted: true\n    key_groups:\n      - age:\n{list}"
    )
}

/// A directory with `.sops.yaml` and a plaintext `secrets/app.sops.yaml`.
fn workdir(recipients: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".sops.yaml"), sops_config(recipients)).unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/app.sops.yaml"), PLAIN).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/_keys/test.agekey"),
        dir.path().join("test.agekey"),
    )
    .unwrap();
    dir
}

/// `dtlint` in `dir`, with no key unless `key` is given.
fn dtlint(dir: &Path, key: Option<&Path>) -> Command {
    let mut c = Command::new(get_cargo_bin("dtlint"));
    c.current_dir(dir)
        .stdin(std::process::Stdio::null())
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY_CMD")
        .env_remove("NO_COLOR");
    if let Some(k) = key {
        c.env("SOPS_AGE_KEY_FILE", k);
    }
    c
}

fn encrypt_in_place(dir: &Path) {
    let out = dtlint(dir, None)
        .args(["sops", "encrypt", "--in-place", "secrets/app.sops.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap()
}

#[test]
fn encrypt_then_decrypt_round_trips() {
    let dir = workdir(&[TEST_RECIPIENT]);
    assert_cmd_snapshot!(dtlint(dir.path(), None).args([
        "sops",
        "encrypt",
        "--in-place",
        "secrets/app.sops.yaml"
    ]));
    let enc = read(dir.path(), "secrets/app.sops.yaml");
    assert!(!enc.contains("s3cret") && !enc.contains("tok-123"), "{enc}");
    assert!(enc.contains("kind: Secret\n") && enc.contains("name: app-secrets\n"));
    assert!(enc.contains("# Staging credentials for the app.\n"));
    assert!(enc.contains(&format!("recipient: {TEST_RECIPIENT}")));
    // Decrypting prints the original text, comments included.
    assert_cmd_snapshot!(dtlint(dir.path(), Some(&test_key())).args([
        "sops",
        "decrypt",
        "secrets/app.sops.yaml"
    ]));
    let out = dtlint(dir.path(), Some(&test_key()))
        .args([
            "sops",
            "decrypt",
            "secrets/app.sops.yaml",
            "--output",
            "plain.yaml",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(read(dir.path(), "plain.yaml"), PLAIN);
    // Encrypting an encrypted file is refused, naming the file.
    assert_cmd_snapshot!(dtlint(dir.path(), None).args([
        "sops",
        "encrypt",
        "secrets/app.sops.yaml"
    ]));
}

#[test]
fn decrypt_refuses_a_tampered_file_at_the_value() {
    let dir = workdir(&[TEST_RECIPIENT]);
    encrypt_in_place(dir.path());
    let path = dir.path().join("secrets/app.sops.yaml");
    let text = read(dir.path(), "secrets/app.sops.yaml");
    let at = text.find("API_TOKEN: ENC[AES256_GCM,data:").unwrap() + 31;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&path, bytes).unwrap();
    assert_cmd_snapshot!(dtlint(dir.path(), Some(&test_key())).args([
        "sops",
        "decrypt",
        "secrets/app.sops.yaml"
    ]));
    // Without a key there is nothing to decrypt with: a usage error.
    assert_cmd_snapshot!(dtlint(dir.path(), None).args([
        "sops",
        "decrypt",
        "secrets/app.sops.yaml"
    ]));
}

#[test]
fn updatekeys_follows_a_rule_change() {
    let dir = workdir(&[TEST_RECIPIENT]);
    encrypt_in_place(dir.path());
    let before = read(dir.path(), "secrets/app.sops.yaml");
    std::fs::write(
        dir.path().join(".sops.yaml"),
        sops_config(&[TEST_RECIPIENT, STAGING_RECIPIENT]),
    )
    .unwrap();
    // The check sees the stale recipients...
    let out = dtlint(dir.path(), Some(&test_key()))
        .args(["check", "--only", "sops-recipients", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // ...updatekeys will not write without --yes when nobody can answer...
    assert_cmd_snapshot!(dtlint(dir.path(), Some(&test_key())).args([
        "sops",
        "updatekeys",
        "secrets/app.sops.yaml"
    ]));
    assert_eq!(read(dir.path(), "secrets/app.sops.yaml"), before);
    // ...and with --yes re-keys the file, values and MAC unchanged.
    assert_cmd_snapshot!(dtlint(dir.path(), Some(&test_key())).args([
        "sops",
        "updatekeys",
        "--yes",
        "secrets/app.sops.yaml"
    ]));
    let after = read(dir.path(), "secrets/app.sops.yaml");
    assert!(after.contains(&format!("recipient: {STAGING_RECIPIENT}")));
    let value = |t: &str| {
        t.lines()
            .find(|l| l.contains("API_TOKEN"))
            .unwrap()
            .to_owned()
    };
    assert_eq!(value(&before), value(&after));
    assert_cmd_snapshot!(dtlint(dir.path(), Some(&test_key())).args([
        "check",
        "--only",
        "sops-recipients,sops-mac-mismatch"
    ]));
    assert_cmd_snapshot!(dtlint(dir.path(), Some(&test_key())).args([
        "sops",
        "updatekeys",
        "--yes",
        "secrets/app.sops.yaml"
    ]));
}

#[test]
fn check_without_a_key_says_once_that_decryption_was_skipped() {
    let dir = workdir(&[TEST_RECIPIENT]);
    encrypt_in_place(dir.path());
    std::fs::copy(
        dir.path().join("secrets/app.sops.yaml"),
        dir.path().join("secrets/copy.sops.yaml"),
    )
    .unwrap();
    assert_cmd_snapshot!(dtlint(dir.path(), None).args([
        "check",
        "--color",
        "never",
        "--only",
        "sops-mac-mismatch,sops-metadata"
    ]));
}

#[test]
fn go_sops_decrypts_what_dtlint_encrypts() {
    let probe = Command::new("sops").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        println!("skipped: the Go `sops` binary is not on PATH");
        return;
    }
    let dir = workdir(&[TEST_RECIPIENT]);
    std::fs::write(
        dir.path().join("secrets/app.sops.env"),
        "# app\nTOKEN=tok-123\nURL=postgres://x\n",
    )
    .unwrap();
    encrypt_in_place(dir.path());
    for (file, plain) in [
        ("secrets/app.sops.yaml", PLAIN.to_owned()),
        (
            "secrets/app.sops.env",
            "# app\nTOKEN=tok-123\nURL=postgres://x\n".to_owned(),
        ),
    ] {
        if file.ends_with(".env") {
            let out = dtlint(dir.path(), None)
                .args([
                    "sops",
                    "encrypt",
                    "--in-place",
                    "--age",
                    TEST_RECIPIENT,
                    file,
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = Command::new("sops")
            .current_dir(dir.path())
            .env("SOPS_AGE_KEY_FILE", dir.path().join(test_key()))
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .args(["--decrypt", file])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = String::from_utf8(out.stdout).unwrap();
        if file.ends_with(".yaml") {
            // sops re-renders YAML; the values are what matters.
            for needle in [
                "postgres://app:s3cret@db:5432/app",
                "tok-123",
                "name: app-secrets",
            ] {
                assert!(got.contains(needle), "{file}: {got}");
            }
        } else {
            assert_eq!(got, plain, "{file}");
        }
    }
}

/// The repository around this crate.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

const SOPS_RULES: &str = "sops-not-encrypted,sops-unexpected-encryption,sops-metadata,sops-recipients,sops-mac-mismatch,sops-undecryptable,secret-key-missing,empty-secret-value";

/// `(rule, path, line)` of every finding of the SOPS rules in `dir`.
fn sops_findings(dir: &Path, key: &Path) -> (i32, Vec<(String, String, u64)>) {
    let out = dtlint(dir, Some(key))
        .args(["check", "--only", SOPS_RULES, "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    let findings = v["findings"].as_array().cloned().unwrap_or_default();
    let list = findings
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or("").to_owned(),
                f["location"]["file"].as_str().unwrap_or("").to_owned(),
                f["location"]["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    (out.status.code().unwrap(), list)
}

/// This repository's secrets are intact with the CI key, and a planted
/// tampered byte, removed recipient or emptied value fails at its line.
#[test]
fn repository_secrets_verify_with_the_ci_key_and_planted_damage_is_caught() {
    let Some(key) = std::env::var_os("SOPS_AGE_KEY_FILE").map(|k| std::path::absolute(k).unwrap())
    else {
        println!("skipped: SOPS_AGE_KEY_FILE not set (CI sets it to the CI age key)");
        return;
    };
    let root = repo_root();
    let copy = tempfile::tempdir().unwrap();
    for d in ["base", "overlays", "clusters"] {
        copy_dir(&root.join(d), &copy.path().join(d));
    }
    for f in [".sops.yaml", "dtlint.toml"] {
        std::fs::copy(root.join(f), copy.path().join(f)).unwrap();
    }
    let (code, found) = sops_findings(copy.path(), &key);
    assert_eq!(
        (code, found.clone()),
        (0, vec![]),
        "the repository's secrets: {found:?}"
    );

    let edit = |rel: &str, f: &dyn Fn(&str) -> String| {
        let p = copy.path().join(rel);
        let text = std::fs::read_to_string(&p).unwrap();
        let new = f(&text);
        assert_ne!(text, new, "{rel} unchanged");
        std::fs::write(&p, new).unwrap();
    };
    let line_of = |rel: &str, needle: &str| -> u64 {
        let text = std::fs::read_to_string(copy.path().join(rel)).unwrap();
        text.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1
    };

    // A tampered byte in a value: at that value's line.
    let tampered = "overlays/staging/ac-service/secret.sops.yaml";
    edit(tampered, &|t| {
        let at = t.find("AC_MASTER_KEY: ENC[AES256_GCM,data:").unwrap() + 35;
        let mut b = t.as_bytes().to_vec();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    });
    // A removed recipient: the CI stanza of a production file.
    let rekeyed = "overlays/production/redis/secret.sops.yaml";
    edit(rekeyed, &|t| {
        let mut out = Vec::new();
        let mut skipping = false;
        for l in t.lines() {
            if l.contains(
                "recipient: age1anzfw6a82gsvm3zmst0vzwtr46hkh9w9tc8vpeut3da53j0v2y9qsx2d00",
            ) {
                skipping = true;
                continue;
            }
            if skipping && l.starts_with("      ") {
                continue;
            }
            skipping = false;
            out.push(l);
        }
        out.join("\n") + "\n"
    });
    // An emptied value.
    let emptied = "overlays/production/global-controller/secret.sops.yaml";
    edit(emptied, &|t| {
        let line = t
            .lines()
            .find(|l| l.starts_with("  GC_CLIENT_SECRET: ENC["))
            .unwrap();
        t.replace(line, "  GC_CLIENT_SECRET: \"\"")
    });

    let (code, found) = sops_findings(copy.path(), &key);
    assert_eq!(code, 1);
    let has = |rule: &str, path: &str, line: u64| {
        found
            .iter()
            .any(|(r, p, l)| r == rule && p == path && *l == line)
    };
    assert!(
        has(
            "sops-mac-mismatch",
            tampered,
            line_of(tampered, "AC_MASTER_KEY:")
        ),
        "{found:?}"
    );
    let first_stanza = line_of(rekeyed, "recipient: age1");
    assert!(has("sops-recipients", rekeyed, first_stanza), "{found:?}");
    let empty_line = line_of(emptied, "GC_CLIENT_SECRET: \"\"");
    assert!(has("empty-secret-value", emptied, empty_line), "{found:?}");
    assert!(
        has(
            "sops-mac-mismatch",
            emptied,
            line_of(emptied, "  mac: ENC[")
        ),
        "{found:?}"
    );
}
