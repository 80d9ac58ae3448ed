//! `dtlint diff --base <rev>` on a small Flux repository with real git
//! history and real `kubectl kustomize` builds: the JSON contract, the
//! change rules at the line to edit (the base revision's for a removal),
//! the human and markdown forms, and the bad inputs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};

mod support;

fn git(root: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// The fixture, committed.
fn repo() -> tempfile::TempDir {
    let dir = support::fixture("_diff");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "base"]);
    dir
}

/// `dtlint <args>` in `root`, with a build cache inside `.git` (no file of
/// the tree, gone with the test): exit code, stdout, stderr.
fn dtlint(root: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dtlint"))
        .args(args)
        .current_dir(root)
        .env("DTLINT_CACHE_DIR", root.join(".git/dtlint-cache"))
        .env_remove("DTLINT_KUSTOMIZE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn diff(root: &Path, extra: &[&str]) -> (i32, String, String) {
    dtlint(root, &[&["diff", "--base", "HEAD"], extra].concat())
}

fn worktrees(root: &Path) -> usize {
    let out = Command::new("git")
        .args(["worktree", "list", "--porcelain"])
        .current_dir(root)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("worktree "))
        .count()
}

#[test]
fn an_unchanged_tree_has_no_changes_and_leaves_no_worktree() {
    let dir = repo();
    let (code, stdout, stderr) = diff(dir.path(), &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("no object changes"), "{stdout}");
    assert_eq!(worktrees(dir.path()), 1);
}

#[test]
fn a_change_is_reported_per_environment_with_what_it_does() {
    let dir = repo();
    let root = dir.path();
    // An immutable selector edit, the digest traded for a tag, a pruned PVC,
    // and a new object.
    let deployment = root.join("apps/base/web/deployment.yaml");
    let text = std::fs::read_to_string(&deployment).unwrap();
    let text = text
        .replace(
            "    matchLabels:\n      app: web\n",
            "    matchLabels:\n      app: web\n      tier: api\n",
        )
        .replace(
            "      labels:\n        app: web\n",
            "      labels:\n        app: web\n        tier: api\n",
        )
        .replace(
            "web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "web:1.2.0",
        );
    std::fs::write(&deployment, text).unwrap();
    std::fs::write(
        root.join("apps/base/web/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\n  - service.yaml\n  - api.yaml\n  - networkpolicy.yaml\n",
    )
    .unwrap();
    std::fs::remove_file(root.join("apps/base/web/pvc.yaml")).unwrap();
    std::fs::write(
        root.join("apps/base/web/service.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n    - port: 80\n",
    )
    .unwrap();

    let (code, stdout, stderr) = diff(root, &["--format", "json"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let prod = &v["environments"]["production"];
    assert_eq!(
        prod["added"],
        serde_json::json!([{"apiVersion": "v1", "kind": "Service", "namespace": "web", "name": "web", "source": "apps/base/web/service.yaml:1"}]),
        "{stdout}"
    );
    assert_eq!(
        prod["removed"],
        serde_json::json!([{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "web", "name": "web-data", "source": "apps/base/web/pvc.yaml:1"}])
    );
    let changed = prod["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{stdout}");
    assert_eq!(changed[0]["kind"], "Deployment");
    assert_eq!(
        changed[0]["fields"],
        serde_json::json!([
            "spec.selector.matchLabels.tier",
            "spec.template.metadata.labels.tier",
            "spec.template.spec.containers[web].image"
        ])
    );
    let findings: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        findings,
        [
            (
                "immutable-field-changed".to_string(),
                "apps/base/web/deployment.yaml:10".to_string()
            ),
            (
                "image-unpinned".to_string(),
                "apps/base/web/deployment.yaml:19".to_string()
            ),
            (
                "pruned-data".to_string(),
                "apps/base/web/pvc.yaml:1 (base)".to_string()
            ),
        ]
    );

    let (code, sarif, _) = diff(root, &["--format", "sarif"]);
    assert_eq!(code, 1);
    let sarif: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let at: Vec<(&str, &str, u64)> = results
        .iter()
        .map(|r| {
            let loc = &r["locations"][0]["physicalLocation"];
            (
                r["ruleId"].as_str().unwrap(),
                loc["artifactLocation"]["uri"].as_str().unwrap(),
                loc["region"]["startLine"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        at,
        [
            (
                "immutable-field-changed",
                "apps/base/web/deployment.yaml",
                10
            ),
            ("image-unpinned", "apps/base/web/deployment.yaml", 19),
            ("pruned-data", "apps/base/web/pvc.yaml", 1),
        ]
    );
    let (_, github, _) = diff(root, &["--format", "github"]);
    assert!(
        github.starts_with("::error file=apps/base/web/deployment.yaml,line=10,title=immutable-field-changed::`spec.selector` of Deployment web/web changed"),
        "{github}"
    );

    let (_, human, _) = diff(root, &[]);
    insta::assert_snapshot!(human);
    let (_, markdown, _) = diff(root, &["--format", "markdown"]);
    assert!(
        markdown.contains(
            "<details><summary><b>production</b>: 1 added, 1 removed, 1 changed</summary>"
        ),
        "{markdown}"
    );
    assert_eq!(worktrees(root), 1, "the base worktree is removed");
}

#[test]
fn a_base_that_does_not_exist_is_a_clear_error() {
    let dir = repo();
    let (code, _, stderr) = dtlint(dir.path(), &["diff", "--base", "no-such-rev"]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim(),
        "dtlint: base revision `no-such-rev` does not exist in this repository"
    );
}

#[test]
fn a_widened_network_policy_names_the_flows_it_opens() {
    let dir = repo();
    let root = dir.path();
    support::plant(
        root,
        "apps/base/web/networkpolicy.yaml",
        "        - port: 80\n          protocol: TCP\n",
        "        - port: 80\n          protocol: TCP\n        - port: 9090\n          protocol: TCP\n",
        0,
    );
    let (code, stdout, stderr) = diff(root, &["--format", "json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let opened: Vec<(&str, &str)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "network-flow-opened")
        .map(|f| {
            (
                f["message"].as_str().unwrap(),
                f["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        opened,
        [(
            "now allowed in namespace `web`: api → web:9090/TCP",
            "apps/base/web/networkpolicy.yaml:23"
        )],
        "{stdout}"
    );
}

fn check(root: &Path, extra: &[&str]) -> (i32, String) {
    let (code, stdout, _) = dtlint(root, &[&["check", "--format", "json"], extra].concat());
    (code, stdout)
}

/// The files of the findings of a `--format json` run.
fn files(json: &str) -> std::collections::BTreeSet<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v.as_array()
        .or_else(|| v["findings"].as_array())
        .unwrap()
        .iter()
        .map(|f| {
            f["file"]
                .as_str()
                .or_else(|| f["location"]["file"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn changed_since_reports_only_the_findings_of_the_changed_files() {
    let dir = repo();
    let root = dir.path();
    // The fixture has findings of its own; with no change, none is new.
    let (_, all) = check(root, &[]);
    assert!(files(&all).len() > 1, "{all}");
    let (code, none) = check(root, &["--changed-since", "HEAD"]);
    assert_eq!(code, 0, "{none}");
    assert!(files(&none).is_empty(), "{none}");
    // A new defect beside old ones, lines shifted above it: only the new
    // one, at its line.
    let api = root.join("apps/base/web/api.yaml");
    let text = std::fs::read_to_string(&api).unwrap();
    std::fs::write(&api, format!("# the api\n{text}")).unwrap();
    support::plant(root, "apps/base/web/api.yaml", "api:2.0.0", "api:latest", 0);
    let (code, some) = check(root, &["--changed-since", "HEAD"]);
    assert_eq!(code, 1, "{some}");
    let v: serde_json::Value = serde_json::from_str(&some).unwrap();
    let found: Vec<(&str, &str, u64)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap(),
                f["location"]["file"].as_str().unwrap(),
                f["location"]["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [("latest-tag", "apps/base/web/api.yaml", 18)],
        "{some}"
    );
    let (code, _, stderr) = dtlint(root, &["check", "--changed-since", "nope"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("base revision `nope` does not exist"),
        "{stderr}"
    );
}

#[test]
fn a_baseline_hides_old_findings_through_line_shifts_and_names_fixed_ones() {
    let dir = repo();
    let root = dir.path();
    let record = dtlint(root, &["baseline", "-o", ".git/baseline.json"]);
    assert_eq!(record.0, 0, "{record:?}");
    let baseline: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join(".git/baseline.json")).unwrap()).unwrap();
    assert_eq!(baseline["version"], 1);
    let recorded = baseline["findings"].as_array().unwrap().len();
    assert!(recorded > 5, "{baseline}");

    let with_baseline = |root: &Path| {
        dtlint(
            root,
            &[
                "check",
                "--format",
                "json",
                "--baseline",
                ".git/baseline.json",
            ],
        )
    };
    let (code, stdout, _) = with_baseline(root);
    assert_eq!(code, 0, "{stdout}");
    assert!(files(&stdout).is_empty(), "{stdout}");

    // Lines shift above every recorded finding: still recorded.
    for file in ["apps/base/web/deployment.yaml", "apps/base/web/api.yaml"] {
        let p = root.join(file);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            format!("# owned by the web team\n# see the runbook\n{text}"),
        )
        .unwrap();
    }
    let (code, stdout, _) = with_baseline(root);
    assert_eq!(code, 0, "{stdout}");

    // A new defect is reported; a fixed one is named.
    support::plant(root, "apps/base/web/api.yaml", "api:2.0.0", "api:latest", 0);
    support::plant(
        root,
        "apps/base/web/deployment.yaml",
        "        - name: web\n",
        "        - name: web\n          readinessProbe:\n            exec: {command: [\"true\"]}\n",
        0,
    );
    let (code, stdout, stderr) = with_baseline(root);
    assert_eq!(code, 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rules: Vec<&str> = v
        .as_array()
        .or_else(|| v["findings"].as_array())
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["latest-tag"], "{stdout}");
    assert!(
        stderr.contains("no longer found (remove it from the baseline): missing-readiness-probe in apps/base/web/deployment.yaml"),
        "{stderr}"
    );
}

#[test]
fn lowered_replicas_under_a_budget_and_a_removed_crd_version_are_errors() {
    let dir = repo();
    let root = dir.path();
    let web = root.join("apps/base/web");
    std::fs::write(
        web.join("pdb.yaml"),
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app: web\n",
    )
    .unwrap();
    std::fs::write(
        web.join("crd.yaml"),
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names:\n    kind: Widget\n    plural: widgets\n  scope: Namespaced\n  versions:\n    - name: v1beta1\n      served: true\n      storage: false\n      schema:\n        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n",
    )
    .unwrap();
    std::fs::write(
        web.join("widget.yaml"),
        "apiVersion: example.com/v1beta1\nkind: Widget\nmetadata:\n  name: blue\n",
    )
    .unwrap();
    std::fs::write(
        web.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\n  - pvc.yaml\n  - api.yaml\n  - networkpolicy.yaml\n  - pdb.yaml\n  - crd.yaml\n  - widget.yaml\n",
    )
    .unwrap();
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "budget and widgets"]);
    support::plant(
        root,
        "apps/base/web/deployment.yaml",
        "replicas: 2",
        "replicas: 1",
        0,
    );
    support::plant(
        root,
        "apps/base/web/crd.yaml",
        "    - name: v1beta1\n      served: true",
        "    - name: v1beta1\n      served: false",
        0,
    );
    let (code, stdout, stderr) = diff(root, &["--format", "json"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let found: Vec<(&str, &str, &str)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap(),
                f["source"].as_str().unwrap(),
                f["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "crd-version-removed",
                "apps/base/web/crd.yaml:11",
                "CustomResourceDefinition widgets.example.com no longer serves `example.com/v1beta1`, which Widget web/blue still uses"
            ),
            (
                "replicas-below-budget",
                "apps/base/web/deployment.yaml:6",
                "Deployment web/web goes from 2 to 1 replicas, but PodDisruptionBudget web keeps 1 available: no pod can be evicted, and node drains stall"
            ),
        ],
        "{stdout}"
    );
}

/// `dtlint <args>` with the test age key.
fn dtlint_with_key(root: &Path, args: &[&str]) -> (i32, String, String) {
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/_keys/test.agekey");
    let out = Command::new(env!("CARGO_BIN_EXE_dtlint"))
        .args(args)
        .current_dir(root)
        .env("DTLINT_CACHE_DIR", root.join(".git/dtlint-cache"))
        .env("SOPS_AGE_KEY_FILE", key)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn a_secret_is_compared_by_what_it_hides_when_a_key_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pubkey = "age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29";
    std::fs::write(
        root.join(".sops.yaml"),
        format!("creation_rules:\n  - path_regex: .*\\.sops\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: {pubkey}\n"),
    )
    .unwrap();
    let secret = |token: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\ntype: Opaque\nstringData:\n  token: {token}\n  user: admin\n"
        )
    };
    let write_encrypted = |token: &str| {
        std::fs::write(root.join("secret.sops.yaml"), secret(token)).unwrap();
        let (code, _, stderr) =
            dtlint_with_key(root, &["sops", "encrypt", "--in-place", "secret.sops.yaml"]);
        assert_eq!(code, 0, "{stderr}");
    };
    write_encrypted("one");
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "base"]);

    // Encrypted again, same plaintext: new ciphertext, no change.
    write_encrypted("one");
    let (_, json, stderr) = dtlint_with_key(root, &["diff", "--base", "HEAD", "--format", "json"]);
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}{stderr}"));
    let changed = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v["environments"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|e| e["changed"].as_array().unwrap().clone())
            .collect()
    };
    assert!(changed(&v).is_empty(), "{v:#}");

    // Another token: the field changed, and no plaintext in the output.
    write_encrypted("two");
    let (_, json, _) = dtlint_with_key(root, &["diff", "--base", "HEAD", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let c = changed(&v);
    assert_eq!(c.len(), 1, "{v:#}");
    assert_eq!(
        c[0]["fields"],
        serde_json::json!(["stringData.token"]),
        "{v:#}"
    );
    assert!(!json.contains("one") && !json.contains("two"), "{json}");

    // Without a key a changed secret cannot be told from a re-encrypted one:
    // both sides are masked alike and nothing shows.
    let (_, json, _) = dtlint(root, &["diff", "--base", "HEAD", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(changed(&v).is_empty(), "{v:#}");
}
