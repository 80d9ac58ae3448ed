//! The command line as users and CI see it: exit codes, every output format,
//! configuration errors, suppressions, and hostile input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::format_push_string
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use insta_cmd::{assert_cmd_snapshot, get_cargo_bin};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/_cli")
        .join(name)
}

fn dtlint() -> Command {
    let mut c = Command::new(get_cargo_bin("dtlint"));
    c.env_remove("NO_COLOR");
    c
}

fn check_in(dir: &Path, args: &[&str]) -> Command {
    let mut c = dtlint();
    c.current_dir(dir).arg("check").args(args);
    c
}

fn run_json(mut cmd: Command) -> (i32, serde_json::Value) {
    let out = cmd.output().unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), v)
}

#[test]
fn human_output_with_suppressions() {
    assert_cmd_snapshot!(check_in(&fixture("repo"), &["--color", "never"]));
}

#[test]
fn json_output() {
    assert_cmd_snapshot!(check_in(&fixture("repo"), &["--format", "json"]));
}

#[test]
fn github_output() {
    assert_cmd_snapshot!(check_in(&fixture("repo"), &["--format", "github"]));
}

#[test]
fn sarif_output_is_valid_sarif_with_rules_and_regions() {
    let (code, v) = run_json(check_in(&fixture("repo"), &["--format", "sarif"]));
    assert_eq!(code, 1);
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(rules.len() >= dtlint::rules::ALL.len());
    for r in rules {
        assert!(r["id"].is_string() && r["shortDescription"]["text"].is_string());
    }
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for res in results {
        let idx = res["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(
            rules[idx]["id"], res["ruleId"],
            "ruleIndex points at the rule"
        );
        let region = &res["locations"][0]["physicalLocation"]["region"];
        assert!(region["startLine"].as_u64().unwrap() >= 1);
        assert!(region["startColumn"].as_u64().unwrap() >= 1);
        assert!(region["endColumn"].as_u64().unwrap() > 0);
        let uri = res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap();
        assert!(
            !uri.starts_with('/'),
            "URIs are relative to %SRCROOT%: {uri}"
        );
    }
    let latest = results
        .iter()
        .find(|r| r["ruleId"] == "latest-tag")
        .unwrap();
    let region = &latest["locations"][0]["physicalLocation"]["region"];
    assert_eq!(
        (region["startLine"].as_u64(), region["startColumn"].as_u64()),
        (Some(34), Some(18))
    );
}

#[test]
fn output_file_and_summary_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.sarif");
    let status = check_in(
        &fixture("repo"),
        &["--format", "sarif", "--output", out.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(status.status.code(), Some(1));
    assert!(status.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(stderr.contains("errors"), "{stderr}");
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
}

#[test]
fn clean_repository_exits_zero() {
    assert_cmd_snapshot!(check_in(&fixture("clean"), &[]));
}

#[test]
fn only_and_skip_select_rules() {
    let (_, v) = run_json(check_in(
        &fixture("repo"),
        &["--format", "json", "--only", "latest-tag"],
    ));
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["latest-tag"]);
    let (_, v) = run_json(check_in(
        &fixture("repo"),
        &["--format", "json", "--skip", "latest-tag,yaml11-value"],
    ));
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["rule"] != "latest-tag" && f["rule"] != "yaml11-value")
    );
}

#[test]
fn unknown_rule_is_a_usage_error() {
    assert_cmd_snapshot!(check_in(&fixture("repo"), &["--only", "latest-tags"]));
}

#[test]
fn missing_path_is_a_usage_error() {
    assert_cmd_snapshot!(check_in(&fixture("repo"), &["no/such/dir"]));
}

#[test]
fn explain_prints_the_docs() {
    assert_cmd_snapshot!(dtlint().args(["explain", "latest-tag"]));
}

#[test]
fn explain_unknown_rule() {
    assert_cmd_snapshot!(dtlint().args(["explain", "latest-tgs"]));
}

#[test]
fn rules_lists_every_rule() {
    let out = dtlint().arg("rules").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for r in dtlint::rules::ALL {
        assert!(text.contains(r.meta().id), "{} not listed", r.meta().id);
    }
    let out = dtlint().args(["rules", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), dtlint::rules::ALL.len());
}

/// A scratch repository with its own dtlint.toml.
fn scratch(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dtlint.toml"), "").unwrap();
    for (name, bytes) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    dir
}

#[test]
fn bad_config_is_positioned_and_exits_two() {
    let dir = scratch(&[("dtlint.toml", b"[rules]\nlatest-tag = \"loud\"\n")]);
    let out = check_in(dir.path(), &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dtlint.toml:2:") && err.contains("unknown severity `loud`"),
        "{err}"
    );
}

/// A scratch repository with one clean ConfigMap and this `dtlint.toml`;
/// `dtlint check` runs in it, so the config is named `dtlint.toml`.
fn check_config(toml: &str) -> (tempfile::TempDir, Command) {
    let configmap = std::fs::read(fixture("clean/configmap.yaml")).unwrap();
    let dir = scratch(&[
        ("dtlint.toml", toml.as_bytes()),
        ("base/configmap.yaml", &configmap),
    ]);
    let cmd = check_in(dir.path(), &["--color", "never"]);
    (dir, cmd)
}

#[test]
fn config_unknown_key_names_the_closest_key() {
    let (_dir, mut cmd) =
        check_config("[environments.staging]\noverlays = \"overlays/staging\"\nmin_replica = 2\n");
    assert_cmd_snapshot!(cmd);
}

#[test]
fn config_unknown_key_in_a_nested_table() {
    let (_dir, mut cmd) = check_config("[certificates]\nmin_validity_days = 7\n");
    assert_cmd_snapshot!(cmd);
}

#[test]
fn config_unknown_top_level_key_without_a_close_one_lists_the_keys() {
    let (_dir, mut cmd) = check_config("colour = \"always\"\n");
    assert_cmd_snapshot!(cmd);
}

#[test]
fn config_unknown_rule_in_rules() {
    let (_dir, mut cmd) =
        check_config("[rules]\nyaml11-value = \"warning\"\nlatset-tag = \"off\"\n");
    assert_cmd_snapshot!(cmd);
}

#[test]
fn config_unknown_rule_in_an_exemption() {
    // The case of issue 16: accepted silently with exit 0 before.
    let (_dir, mut cmd) = check_config(
        "[[exemption]]\nrule = \"latest-tagg\"\npath = \"base/**\"\nreason = \"pinned by digest in the overlay\"\n",
    );
    assert_cmd_snapshot!(cmd);
}

#[test]
fn config_unknown_rule_in_an_environment() {
    let (_dir, mut cmd) = check_config(
        "[environments.production]\noverlays = \"overlays/production\"\n\n[environments.production.rules]\nlatest-tag = \"error\"\nrun-as-rot = \"error\"\n",
    );
    assert_cmd_snapshot!(cmd);
}

#[test]
fn config_unknown_severity_names_the_closest_level() {
    let (_dir, mut cmd) = check_config("[rules]\nlatest-tag = \"eror\"\n");
    assert_cmd_snapshot!(cmd);
}

#[test]
fn config_exemption_glob_matching_nothing_is_a_warning() {
    // Reported once, at the glob, and the run still passes.
    let (_dir, mut cmd) = check_config(
        "[[exemption]]\nrule = \"latest-tag\"\npath = \"base/*.yaml\"\nreason = \"matches\"\n\n[[exemption]]\nrule = \"latest-tag\"\npath = \"overlays/**/deployment.yaml\"\nreason = \"matches nothing\"\n",
    );
    assert_cmd_snapshot!(cmd);
}

#[test]
fn config_invalid_glob_is_positioned() {
    let (_dir, mut cmd) = check_config(
        "[[exemption]]\nrule = \"latest-tag\"\npath = \"base/[abc.yaml\"\nreason = \"typo\"\n",
    );
    assert_cmd_snapshot!(cmd);
    let (_dir, mut cmd) = check_config("exclude = [\"target/**\", \"tools/{a,b\"]\n");
    assert_cmd_snapshot!("config_invalid_exclude_glob_is_positioned", cmd);
}

#[test]
fn unknown_rule_in_an_annotation_names_the_closest_rule() {
    let configmap = std::fs::read_to_string(fixture("clean/configmap.yaml")).unwrap();
    let annotated = configmap.replacen(
        "  labels:\n",
        "  annotations:\n    dtlint.io/ignore: \"latest-tagg=pinned by digest\"\n  labels:\n",
        1,
    );
    assert_ne!(annotated, configmap);
    let dir = scratch(&[("base/configmap.yaml", annotated.as_bytes())]);
    assert_cmd_snapshot!(check_in(dir.path(), &["--color", "never"]));
}

#[test]
fn hostile_input_is_diagnosed_not_fatal() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let junk: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let dir = scratch(&[
        ("bomb.yaml", bomb.as_bytes()),
        ("junk.yaml", &junk),
        (
            "tabs.yaml",
            b"apiVersion: v1\nkind: ConfigMap\ndata:\n\tkey: value\n",
        ),
        (
            "dup.yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nmetadata: {name: y}\n",
        ),
        ("deep.yaml", "[".repeat(100_000).as_bytes()),
        (
            "types.yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: [not, a, mapping]\n",
        ),
    ]);
    // Over the 16 MiB default limit.
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, "k: v\n".repeat(4 * 1024 * 1024)).unwrap();
    let (code, v) = run_json(check_in(dir.path(), &["--format", "json"]));
    assert_eq!(code, 1);
    let findings = v["findings"].as_array().unwrap();
    let has = |file: &str, rule: &str| {
        findings.iter().any(|f| {
            f["location"]["file"] == file
                && f["rule"] == rule
                && f["location"]["line"].as_u64() >= Some(1)
        })
    };
    assert!(has("bomb.yaml", "invalid-yaml"), "{findings:#?}");
    assert!(has("junk.yaml", "invalid-yaml"));
    assert!(has("tabs.yaml", "invalid-yaml"));
    assert!(has("dup.yaml", "duplicate-key"));
    assert!(has("deep.yaml", "invalid-yaml"));
    // `wrong-type` and the schema both see it; the schema's finding names the path.
    assert!(has("types.yaml", "schema-invalid"));
    assert!(has("big.yaml", "invalid-yaml"));
    let tabs = findings
        .iter()
        .find(|f| f["location"]["file"] == "tabs.yaml")
        .unwrap();
    assert_eq!(tabs["location"]["line"], 4);
}

#[test]
fn color_only_when_asked_or_on_a_terminal() {
    let out = check_in(&fixture("repo"), &[]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains('\x1b'),
        "no colour into a pipe"
    );
    let out = check_in(&fixture("repo"), &["--color", "always"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\x1b[1;31m"));
}

#[test]
fn config_unknown_profile_names_the_closest() {
    let (_dir, mut cmd) = check_config("profile = \"darktower\"\n");
    assert_cmd_snapshot!(cmd);
}

/// Rule ids of the findings of `dtlint check --format json` in `dir`.
fn rule_ids(dir: &Path) -> Vec<String> {
    rules_of(&run_json(check_in(dir, &["--format", "json"])).1)
}

/// Rule ids of the findings in a JSON report.
fn rules_of(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn house_conventions_apply_only_with_their_profile() {
    // A Namespace without any app.kubernetes.io label, and a Deployment
    // selecting on `app`: fine upstream, against Dark Tower's conventions.
    let manifests: &[u8] = b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: podinfo\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: podinfo\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27.3\n";
    let dir = scratch(&[("apps/web.yaml", manifests)]);
    std::fs::remove_file(dir.path().join("dtlint.toml")).unwrap();
    let generic = rule_ids(dir.path());
    for house in dtlint::config::DARK_TOWER_RULES {
        assert!(
            !generic.iter().any(|r| r == house),
            "{house} without a profile: {generic:?}"
        );
    }
    // The generic profile still judges what holds everywhere.
    assert!(
        generic.iter().any(|r| r == "missing-readiness-probe"),
        "{generic:?}"
    );

    std::fs::write(dir.path().join("dtlint.toml"), "profile = \"dark-tower\"\n").unwrap();
    let house = rule_ids(dir.path());
    assert!(
        house.iter().any(|r| r == "missing-standard-labels"),
        "{house:?}"
    );
    assert!(house.iter().any(|r| r == "unstable-selector"), "{house:?}");

    // One convention alone, without the profile.
    std::fs::write(
        dir.path().join("dtlint.toml"),
        "[rules]\nunstable-selector = \"warning\"\n",
    )
    .unwrap();
    let one = rule_ids(dir.path());
    assert!(one.iter().any(|r| r == "unstable-selector"), "{one:?}");
    assert!(
        !one.iter().any(|r| r == "missing-standard-labels"),
        "{one:?}"
    );

    // Naming a rule on the command line runs it.
    std::fs::remove_file(dir.path().join("dtlint.toml")).unwrap();
    let (_, v) = run_json(check_in(
        dir.path(),
        &["--format", "json", "--only", "missing-standard-labels"],
    ));
    assert!(!v["findings"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn templates_are_not_judged_and_json_manifests_are() {
    let dir = scratch(&[
        // A Helm chart's templates: not manifests until Helm renders them.
        ("chart/Chart.yaml", b"apiVersion: v2\nname: web\nversion: 1.0.0\n"),
        (
            "chart/templates/deployment.yaml",
            b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n{{- if .Values.x }}\n",
        ),
        // A generator's template: the placeholder reads as a flow mapping.
        (
            "vitess/etcd-template.yaml",
            b"apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: etcd-{{cell}}\nspec:\n  replicas: {{replicas}}\n",
        ),
        // A manifest in JSON.
        (
            "web.json",
            br#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": [{"name": "web", "image": "nginx:latest"}]}}"#,
        ),
        // Not a manifest.
        ("package.json", br#"{"name": "x", "version": "1.0.0"}"#),
    ]);
    let (_, v) = run_json(check_in(dir.path(), &["--format", "json"]));
    let files: std::collections::BTreeSet<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["location"]["file"].as_str().unwrap())
        .collect();
    assert_eq!(files.into_iter().collect::<Vec<_>>(), ["web.json"], "{v}");
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "latest-tag"),
        "{v}"
    );
    // `templates = "check"` judges them like any file.
    std::fs::write(dir.path().join("dtlint.toml"), "templates = \"check\"\n").unwrap();
    let (_, v) = run_json(check_in(dir.path(), &["--format", "json"]));
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["location"]["file"] == "chart/templates/deployment.yaml"),
        "{v}"
    );
}

#[test]
fn standard_input_is_judged_by_the_configuration_around_it() {
    use std::io::Write as _;
    let manifest = b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n";
    let rules_for = |dir: &Path| -> Vec<String> {
        let mut child = check_in(dir, &["--format", "json", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(manifest).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.stderr.is_empty() || !String::from_utf8_lossy(&out.stderr).contains("warning"),
            "{out:?}"
        );
        rules_of(&serde_json::from_slice(&out.stdout).unwrap())
    };
    let house = scratch(&[]);
    std::fs::write(
        house.path().join("dtlint.toml"),
        "profile = \"dark-tower\"\n[[exemption]]\nrule = \"latest-tag\"\npath = \"nowhere/**\"\nreason = \"a glob about the repository\"\n",
    )
    .unwrap();
    assert!(
        rules_for(house.path())
            .iter()
            .any(|r| r == "missing-standard-labels")
    );
    let plain = scratch(&[]);
    assert!(
        !rules_for(plain.path())
            .iter()
            .any(|r| r == "missing-standard-labels")
    );
}

#[test]
fn a_configured_kind_with_a_pod_template_is_a_workload() {
    let worker: &[u8] = b"apiVersion: batch.example.com/v1\nkind: Worker\nmetadata:\n  name: crawl\nspec:\n  podTemplate:\n    spec:\n      containers:\n        - name: crawl\n          image: example/crawl:1.0\n          securityContext:\n            privileged: true\n";
    let dir = scratch(&[("worker.yaml", worker)]);
    assert!(
        !rule_ids(dir.path())
            .iter()
            .any(|r| r == "privileged-container")
    );
    std::fs::write(
        dir.path().join("dtlint.toml"),
        "[[workload]]\nkind = \"Worker\"\ngroup = \"batch.example.com\"\ntemplate = \"spec.podTemplate\"\n",
    )
    .unwrap();
    let (_, v) = run_json(check_in(dir.path(), &["--format", "json"]));
    let privileged = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "privileged-container")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(privileged["location"]["line"], 12, "{v}");
    std::fs::write(
        dir.path().join("dtlint.toml"),
        "[[workload]]\nkind = \"Worker\"\ntemplate = \"spec..podTemplate\"\n",
    )
    .unwrap();
    let out = check_in(dir.path(), &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dtlint.toml:3:1: workload template"),
        "{out:?}"
    );
}
