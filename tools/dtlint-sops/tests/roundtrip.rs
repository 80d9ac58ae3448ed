//! What we encrypt decrypts to what went in; tampering and bad input give
//! clear errors naming the file, the value and its position, never a panic.

// Helpers shared by the tests may unwrap, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use dtlint_sops::{
    AgeIdentities, EncryptOptions, ErrorKind, FindingKind, Format, SopsConfig, SopsFile, check,
    decrypt, decrypt_to_plaintext, encrypt, update_keys,
};

const SECRET: &str = "\
# Staging secret for the AC service.
apiVersion: v1
kind: Secret
metadata:
  name: ac-service # the Deployment refers to this name
  namespace: dark-tower
type: Opaque
stringData:
  # rotate quarterly
  DATABASE_URL: postgres://ac:pw@db:5432/ac
  AC_MASTER_KEY: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
  BCRYPT_COST: \"12\"
  EMPTY: \"\"
  MULTI: |
    line one
    line two
  FLOW: [a, \"b, c\"]
  COUNT: 3
  RATIO: 0.5
  ON: true
";

fn opts(recipient: &str) -> EncryptOptions {
    let mut o = EncryptOptions::with_age([recipient]);
    let cfg = SopsConfig::parse(
        Path::new(".sops.yaml"),
        "creation_rules:\n  - encrypted_regex: ^(data|stringData)$\n    age: x\n",
    )
    .unwrap();
    o.selectors = cfg.rules[0].selectors.clone();
    o
}

fn enc(name: &str, input: &str, format: Format, o: &EncryptOptions) -> String {
    encrypt(Path::new(name), input.as_bytes(), format, o).unwrap_or_else(|e| panic!("{e}"))
}

fn without_lines(text: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines().filter(|l| !l.starts_with(prefix)) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn plain(name: &str, src: &str, ids: &AgeIdentities) -> String {
    let file = SopsFile::parse(Path::new(name), src);
    String::from_utf8(decrypt_to_plaintext(&file, ids).unwrap_or_else(|e| panic!("{e}"))).unwrap()
}

#[test]
fn yaml_secret_round_trips_with_order_and_comments() {
    let (ids, r) = AgeIdentities::generate();
    let out = enc("secret.sops.yaml", SECRET, Format::Yaml, &opts(&r));
    // Identity fields, comments outside encrypted keys and order stay put.
    assert!(out.starts_with("# Staging secret for the AC service.\napiVersion: v1\nkind: Secret\nmetadata:\n  name: ac-service # the Deployment"));
    assert!(
        !out.contains("  # rotate"),
        "comments under stringData are encrypted:\n{out}"
    );
    assert!(out.contains("  #ENC[AES256_GCM,"));
    assert!(out.contains("  EMPTY: \"\"\n"));
    assert!(out.contains("  COUNT: ENC[AES256_GCM,") && out.contains("type:int]"));
    assert!(out.contains("type:float]") && out.contains("type:bool]"));
    assert!(out.contains("  FLOW: [\"ENC[AES256_GCM,"));
    assert!(!out.contains("line one") && !out.contains("postgres://"));
    assert!(out.contains("\nsops:\n  age:\n    - recipient: "));
    assert!(out.contains("  encrypted_regex: ^(data|stringData)$\n  version: 3.9.0\n"));
    let file = SopsFile::parse(Path::new("secret.sops.yaml"), &out);
    assert!(check(&file, None).is_empty(), "{:#?}", check(&file, None));
    let back = plain("secret.sops.yaml", &out, &ids);
    assert_eq!(back, SECRET);
    // The decrypted tree has the values, at their positions in our file.
    let d = decrypt(&file, &ids).unwrap();
    let url = d.documents[0]
        .path(&["stringData", "DATABASE_URL"])
        .unwrap();
    assert_eq!(url.as_str(), Some("postgres://ac:pw@db:5432/ac"));
    assert_eq!(url.span.start.line, 10);
    assert_eq!(
        d.documents[0]
            .path(&["stringData", "MULTI"])
            .unwrap()
            .as_str(),
        Some("line one\nline two\n")
    );
}

#[test]
fn multi_document_yaml_gets_one_block_per_document() {
    let (ids, r) = AgeIdentities::generate();
    let input = "a: 1\nb:\n    c: x # note\n---\n# second\nd: [1, 2]\n";
    let out = enc(
        "m.yaml",
        input,
        Format::Yaml,
        &EncryptOptions::with_age([r.as_str()]),
    );
    assert_eq!(out.matches("\nsops:\n").count(), 2, "{out}");
    assert!(out.contains("\n---\n#ENC["), "{out}");
    // The indentation of the file (4 here) is kept for the sops block.
    assert!(
        out.contains("\nsops:\n    age:\n        - recipient: "),
        "{out}"
    );
    assert_eq!(plain("m.yaml", &out, &ids), input);
}

#[test]
fn dotenv_json_and_binary_round_trip() {
    let (ids, r) = AgeIdentities::generate();
    let o = EncryptOptions::with_age([r.as_str()]);
    let env = "# comment\nA=1\nB=multi\\nline\nC=\nD_unencrypted=plain\n";
    let out = enc("x.env", env, Format::Dotenv, &o);
    assert!(out.contains("D_unencrypted=plain\n") && out.contains("\nC=\n"));
    assert!(out.contains("sops_unencrypted_suffix=_unencrypted\n"));
    assert_eq!(plain("x.env", &out, &ids), env);

    let json = "{\n  \"a\": 1,\n  \"b\": [true, \"x\"],\n  \"c\": {\"d\": null, \"e\": \"\"}\n}\n";
    let out = enc("x.json", json, Format::Json, &o);
    assert!(out.contains("\"a\": \"ENC[AES256_GCM,") && out.contains("type:float]"));
    assert!(out.contains(",\n  \"sops\": {\n    \"age\": ["), "{out}");
    assert_eq!(plain("x.json", &out, &ids), json);

    let bytes: Vec<u8> = (0..=255u8).collect();
    let out = encrypt(Path::new("blob.bin"), &bytes, Format::Binary, &o).unwrap();
    let file = SopsFile::parse(Path::new("blob.bin"), &out);
    assert_eq!(decrypt_to_plaintext(&file, &ids).unwrap(), bytes);
}

#[test]
fn several_key_groups_split_the_data_key() {
    let (a, ra) = AgeIdentities::generate();
    let (b, rb) = AgeIdentities::generate();
    let o = EncryptOptions {
        key_groups: vec![vec![ra], vec![rb]],
        ..EncryptOptions::default()
    };
    let out = enc("g.yaml", "k: v\n", Format::Yaml, &o);
    assert!(
        out.contains("  shamir_threshold: 2\n  key_groups:\n"),
        "{out}"
    );
    let both = AgeIdentities::parse(
        &format!("{}{}", a.to_key_file_text(), b.to_key_file_text()),
        "both",
    )
    .unwrap();
    assert_eq!(plain("g.yaml", &out, &both), "k: v\n");
    let file = SopsFile::parse(Path::new("g.yaml"), &out);
    let err = decrypt(&file, &a).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::NoMatchingIdentity { .. }),
        "{err}"
    );
}

#[test]
fn tampering_is_caught_and_located() {
    let (ids, r) = AgeIdentities::generate();
    let out = enc("s.yaml", SECRET, Format::Yaml, &opts(&r));
    // Flip one byte of one value's ciphertext.
    let at = out.find("DATABASE_URL: ENC[AES256_GCM,data:").unwrap() + 34;
    let mut bytes = out.clone().into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let file = SopsFile::parse(Path::new("s.yaml"), &tampered);
    let err = decrypt(&file, &ids).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::ValueAuthentication),
        "{err}"
    );
    assert_eq!(err.value_path(), Some("stringData:DATABASE_URL:"));
    assert_eq!(err.span().unwrap().start.line, 10);
    assert!(err.to_string().starts_with("s.yaml:10:17: "), "{err}");

    // Moving a ciphertext to another key fails its associated data.
    let count =
        out.lines().find(|l| l.starts_with("  COUNT: ")).unwrap()["  COUNT: ".len()..].to_owned();
    let ratio =
        out.lines().find(|l| l.starts_with("  RATIO: ")).unwrap()["  RATIO: ".len()..].to_owned();
    let swapped = out
        .replace(&count, "@@")
        .replace(&ratio, &count)
        .replace("@@", &ratio);
    let err = decrypt(&SopsFile::parse(Path::new("s.yaml"), &swapped), &ids).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::ValueAuthentication),
        "{err}"
    );

    // A plain value edited, or a value removed: the MAC catches it.
    let edited = out.replace("name: ac-service", "name: evil");
    let err = decrypt(&SopsFile::parse(Path::new("s.yaml"), &edited), &ids).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::MacMismatch), "{err}");
    let removed = without_lines(&out, "  COUNT:");
    let err = decrypt(&SopsFile::parse(Path::new("s.yaml"), &removed), &ids).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::MacMismatch), "{err}");

    // lastmodified edited: the MAC no longer decrypts.
    let lm_line = out
        .lines()
        .find(|l| l.starts_with("  lastmodified: "))
        .unwrap();
    let edited = out.replace(lm_line, "  lastmodified: \"2001-01-01T00:00:00Z\"");
    let err = decrypt(&SopsFile::parse(Path::new("s.yaml"), &edited), &ids).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::MacUnreadable), "{err}");

    // A plaintext value where the rules require ciphertext.
    let plaintext = out.replace(&count, "3");
    let file = SopsFile::parse(Path::new("s.yaml"), &plaintext);
    let err = decrypt(&file, &ids).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::PlaintextValue), "{err}");
    let findings = check(&file, None);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].kind, FindingKind::PlaintextValue);
    assert_eq!(findings[0].value_path.as_deref(), Some("stringData:COUNT:"));
}

#[test]
fn bad_input_gives_clear_errors() {
    let (ids, r) = AgeIdentities::generate();
    let out = enc("s.yaml", SECRET, Format::Yaml, &opts(&r));
    // Wrong key.
    let (other, _) = AgeIdentities::generate();
    let file = SopsFile::parse(Path::new("s.yaml"), &out);
    let err = decrypt(&file, &other).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::NoMatchingIdentity { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&r));
    // Truncated stanza.
    let start = out.find("        -----BEGIN AGE").unwrap();
    let body = out[start..].find('\n').unwrap() + start + 1;
    let next = out[body..].find('\n').unwrap() + body + 1;
    let truncated = format!("{}{}", &out[..body], &out[next..]);
    let file = SopsFile::parse(Path::new("s.yaml"), &truncated);
    let err = decrypt(&file, &ids).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::MalformedStanza { .. }),
        "{err}"
    );
    assert!(
        check(&file, None)
            .iter()
            .any(|f| f.kind == FindingKind::MalformedStanza)
    );
    // Missing MAC.
    let no_mac = without_lines(&out, "  mac: ");
    let file = SopsFile::parse(Path::new("s.yaml"), &no_mac);
    let err = decrypt(&file, &ids).unwrap_err();
    assert!(err.to_string().contains("no `mac`"), "{err}");
    assert!(
        check(&file, None)
            .iter()
            .any(|f| f.kind == FindingKind::MissingMetadata)
    );
    // Not a sops file at all.
    let file = SopsFile::parse(Path::new("s.yaml"), SECRET);
    let err = decrypt(&file, &ids).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::NotEncrypted), "{err}");
    // Encrypting twice.
    let err = encrypt(Path::new("s.yaml"), out.as_bytes(), Format::Yaml, &opts(&r)).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::AlreadyEncrypted));
    // Aliases cannot be encrypted in place.
    let err = encrypt(
        Path::new("a.yaml"),
        b"a: &x v\nb: *x\n",
        Format::Yaml,
        &opts(&r),
    )
    .unwrap_err();
    assert!(err.to_string().contains("a.yaml:"), "{err}");
    // Junk never panics.
    let junk: String = (0u8..=255).cycle().take(2048).map(char::from).collect();
    for format in [Format::Yaml, Format::Json, Format::Dotenv, Format::Binary] {
        let f = SopsFile::parse_as(Path::new("junk"), &junk, format);
        let _ = check(&f, None);
        let _ = decrypt(&f, &ids);
        let _ = encrypt(Path::new("junk"), junk.as_bytes(), format, &opts(&r));
    }
    let err = encrypt(Path::new("x.yaml"), &[0xff, 0xfe], Format::Yaml, &opts(&r)).unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");
}

#[test]
fn update_keys_rewraps_the_data_key_only() {
    let (a, ra) = AgeIdentities::generate();
    let (b, rb) = AgeIdentities::generate();
    let out = enc("s.yaml", SECRET, Format::Yaml, &opts(&ra));
    let file = SopsFile::parse(Path::new("s.yaml"), &out);
    assert!(
        update_keys(&file, &a, &[vec![ra.clone()]], None)
            .unwrap()
            .is_none()
    );
    let updated = update_keys(&file, &a, &[vec![ra.clone(), rb.clone()]], None)
        .unwrap()
        .unwrap();
    let before_body = out.split("\nsops:").next().unwrap();
    assert!(updated.starts_with(before_body), "values must not change");
    let lm = out.lines().find(|l| l.contains("lastmodified")).unwrap();
    assert!(updated.contains(lm));
    let f2 = SopsFile::parse(Path::new("s.yaml"), &updated);
    assert_eq!(
        decrypt_to_plaintext(&f2, &b).unwrap(),
        decrypt_to_plaintext(&file, &a).unwrap()
    );
    // Dropping a recipient locks it out.
    let only_b = update_keys(&f2, &b, &[vec![rb]], None).unwrap().unwrap();
    let f3 = SopsFile::parse(Path::new("s.yaml"), &only_b);
    assert!(decrypt(&f3, &a).is_err());
    assert!(decrypt(&f3, &b).is_ok());
}

#[test]
fn encrypt_options_come_from_the_matching_rule() {
    let (ids, r) = AgeIdentities::generate();
    let cfg = SopsConfig::parse(
        Path::new("/repo/.sops.yaml"),
        &format!(
            "creation_rules:\n  - path_regex: overlays/(staging|production)/.*\\.sops\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: {r}\n"
        ),
    )
    .unwrap();
    let path = Path::new("/repo/overlays/staging/ac-service/secret.sops.yaml");
    let rule = cfg.rule_for(path).unwrap();
    let out = encrypt(
        path,
        SECRET.as_bytes(),
        Format::Yaml,
        &EncryptOptions::from_rule(rule),
    )
    .unwrap();
    let file = SopsFile::parse(path, &out);
    assert!(check(&file, Some(rule)).is_empty());
    assert!(decrypt(&file, &ids).is_ok());
    // A file encrypted without the regex breaks the rule and the Secret.
    let loose = encrypt(
        path,
        SECRET.as_bytes(),
        Format::Yaml,
        &EncryptOptions::with_age([r.as_str()]),
    )
    .unwrap();
    let findings = check(&SopsFile::parse(path, &loose), Some(rule));
    assert!(findings.iter().any(|f| f.kind == FindingKind::RuleMismatch));
    let identity: Vec<_> = findings
        .iter()
        .filter(|f| f.kind == FindingKind::EncryptedIdentity)
        .collect();
    assert!(
        identity
            .iter()
            .any(|f| f.value_path.as_deref() == Some("kind:")),
        "{findings:#?}"
    );
    // A plaintext Secret under the rule is reported at its first secret value.
    let findings = check(&SopsFile::parse(path, SECRET), Some(rule));
    assert_eq!(findings[0].kind, FindingKind::NotEncrypted);
    assert_eq!(findings[0].span.start.line, 10);
}

/// The CI key comes from the environment as sops reads it (`SOPS_AGE_KEY_FILE`,
/// `SOPS_AGE_KEY` or `SOPS_AGE_KEY_CMD`; CI sets `SOPS_AGE_KEY_FILE`).
#[test]
fn identities_from_sops_environment() {
    const CI_RECIPIENT: &str = "age1anzfw6a82gsvm3zmst0vzwtr46hkh9w9tc8vpeut3da53j0v2y9qsx2d00";
    let ids = match AgeIdentities::from_env() {
        Ok(Some(ids)) => ids,
        Ok(None) => {
            common::skip(
                "no age key: set SOPS_AGE_KEY_FILE (or SOPS_AGE_KEY / SOPS_AGE_KEY_CMD) to the CI key",
            );
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let recipient = ids.recipients().into_iter().next().unwrap();
    if !ids.recipients().iter().any(|r| r == CI_RECIPIENT) {
        println!("note: the identity in the environment is not the CI key");
    }
    let out = enc("ci.yaml", SECRET, Format::Yaml, &opts(&recipient));
    assert_eq!(plain("ci.yaml", &out, &ids), SECRET);
}
