//! `dtlint fix`: each fix leaves the file clean for its rule and every
//! other byte as it was; `--diff` writes nothing; unsafe fixes wait for
//! `--unsafe-fixes`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web # the web tier
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: nginx:1.27
          imagePullPolicy: always
          resources:
            limits:
              memory: 64Mi
        - name: side
          image: busybox:1.36
          securityContext:
            runAsNonRoot: true
            readOnlyRootFilesystem: false
          # a comment that stays
";

const FIXED_RULES: &str =
    "writable-root-fs,privilege-escalation,capabilities-not-dropped,missing-seccomp,schema-invalid";

fn dtlint(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dtlint"))
        .current_dir(dir)
        .env("DTLINT_CACHE_DIR", dir.join(".cache"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

/// Every line of `before` is in `after`, in order: the fix only added lines.
fn only_added(before: &str, after: &str) -> bool {
    let mut rest = after.lines();
    before.lines().all(|l| rest.any(|m| m == l))
}

#[test]
fn safe_fixes_leave_the_file_clean_for_their_rules_and_keep_every_other_byte() {
    let dir = repo(&[("apps/web.yaml", WEB)]);
    let (code, _, stderr) = dtlint(dir.path(), &["fix", "--only", FIXED_RULES]);
    // One fix is unsafe (readOnlyRootFilesystem: false → true): left, exit 1.
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("fixed 8 finding(s) in 1 file(s); 1 more with an unsafe fix"),
        "{stderr}"
    );
    let after = std::fs::read_to_string(dir.path().join("apps/web.yaml")).unwrap();
    insta::assert_snapshot!(after);
    // The only changed line is the enum's; everything else was added.
    assert!(only_added(
        &WEB.replace("imagePullPolicy: always", "imagePullPolicy: Always"),
        &after
    ));
    let (_, stdout, stderr) = dtlint(dir.path(), &["check", "--only", FIXED_RULES]);
    assert!(
        stderr.contains("1 error") && stdout.contains("readOnlyRootFilesystem: false"),
        "{stdout}{stderr}"
    );
    // Unsafe fixes on request: then clean.
    let (code, _, stderr) = dtlint(
        dir.path(),
        &["fix", "--unsafe-fixes", "--only", FIXED_RULES],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = dtlint(dir.path(), &["check", "--only", FIXED_RULES]);
    assert_eq!(code, 0, "{stderr}");
    // A fixed file has nothing left to fix.
    let before = std::fs::read_to_string(dir.path().join("apps/web.yaml")).unwrap();
    dtlint(dir.path(), &["fix", "--unsafe-fixes"]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("apps/web.yaml")).unwrap(),
        before
    );
}

#[test]
fn diff_prints_the_patch_and_writes_nothing() {
    let dir = repo(&[("apps/web.yaml", WEB)]);
    let (_, stdout, stderr) = dtlint(dir.path(), &["fix", "--diff", "--only", FIXED_RULES]);
    assert!(stderr.contains("would fix 8 finding(s)"), "{stderr}");
    insta::assert_snapshot!(stdout);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("apps/web.yaml")).unwrap(),
        WEB
    );
}

#[test]
fn an_unknown_field_is_renamed_only_with_unsafe_fixes() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n    - port: 80\n      targetPrt: 8080\n";
    let dir = repo(&[("svc.yaml", text)]);
    let (_, _, stderr) = dtlint(dir.path(), &["fix", "--only", "schema-invalid"]);
    assert!(
        stderr.contains("fixed 0 finding(s) in 0 file(s); 1 more with an unsafe fix"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("svc.yaml")).unwrap(),
        text
    );
    dtlint(
        dir.path(),
        &["fix", "--unsafe-fixes", "--only", "schema-invalid"],
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("svc.yaml")).unwrap(),
        text.replace("targetPrt", "targetPort")
    );
}

#[test]
fn a_base_defect_of_a_rendered_repository_is_fixed_in_the_base() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join(".git")).unwrap();
    for (name, text) in [
        (
            "base/web/kustomization.yaml",
            "resources:\n  - deployment.yaml\n",
        ),
        ("base/web/deployment.yaml", WEB),
        (
            "overlays/production/web/kustomization.yaml",
            "resources:\n  - ../../../base/web\n",
        ),
        (
            "dtlint.toml",
            "[environments.production]\noverlays = \"overlays/production\"\n",
        ),
    ] {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let (_, _, stderr) = dtlint(root, &["fix", "--only", "writable-root-fs"]);
    assert!(
        stderr.contains("fixed 1 finding(s) in 1 file(s)"),
        "{stderr}"
    );
    let after = std::fs::read_to_string(root.join("base/web/deployment.yaml")).unwrap();
    assert!(only_added(WEB, &after), "{after}");
    assert!(after.contains("          securityContext:\n            readOnlyRootFilesystem: true\n        - name: side"), "{after}");
}

#[test]
fn a_sizing_table_value_is_fixed_safely_only_in_its_environments_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join(".git")).unwrap();
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: registry.example/web:1.0\n";
    let patch = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          resources:\n            requests:\n              cpu: 300m\n";
    for (name, text) in [
        (
            "base/web/kustomization.yaml",
            "resources:\n  - deployment.yaml\n",
        ),
        ("base/web/deployment.yaml", deployment),
        (
            "overlays/production/web/kustomization.yaml",
            "resources:\n  - ../../../base/web\npatches:\n  - path: patch.yaml\n",
        ),
        ("overlays/production/web/patch.yaml", patch),
        (
            "dtlint.toml",
            "own_images = [\"registry.example/\"]\n\n[environments.production]\noverlays = \"overlays/production\"\n\n[environments.production.resources.web]\nrequests = { cpu = \"500m\", memory = \"256Mi\" }\n",
        ),
    ] {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let (_, _, stderr) = dtlint(root, &["fix", "--only", "resources-per-environment"]);
    // The production patch's cpu is production's own: replaced; the memory
    // it lacks goes beside it, in the same patch. The base is untouched.
    assert!(
        stderr.contains("fixed 2 finding(s) in 1 file(s)"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("overlays/production/web/patch.yaml")).unwrap(),
        patch.replace("cpu: 300m\n", "cpu: 500m\n              memory: 256Mi\n")
    );
    assert_eq!(
        std::fs::read_to_string(root.join("base/web/deployment.yaml")).unwrap(),
        deployment
    );
    let (code, _, stderr) = dtlint(root, &["check", "--only", "resources-per-environment"]);
    assert_eq!(code, 0, "{stderr}");

    // Without the patch the base holds the container: writing production's
    // sizing there would change every environment, so it is unsafe.
    std::fs::write(
        root.join("overlays/production/web/kustomization.yaml"),
        "resources:\n  - ../../../base/web\n",
    )
    .unwrap();
    let (_, _, stderr) = dtlint(root, &["fix", "--only", "resources-per-environment"]);
    assert!(
        stderr.contains("fixed 0 finding(s) in 0 file(s); 2 more with an unsafe fix"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("base/web/deployment.yaml")).unwrap(),
        deployment
    );
}

#[test]
fn a_lowercase_all_is_capitalised() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: c\n      image: busybox:1.36\n      securityContext:\n        capabilities:\n          drop: [all]\n";
    let dir = repo(&[("pod.yaml", text)]);
    let (_, _, stderr) = dtlint(dir.path(), &["fix", "--only", "capabilities-not-dropped"]);
    assert!(
        stderr.contains("fixed 1 finding(s) in 1 file(s)"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("pod.yaml")).unwrap(),
        text.replace("[all]", "[ALL]")
    );
    let (code, _, _) = dtlint(dir.path(), &["check", "--only", "capabilities-not-dropped"]);
    assert_eq!(code, 0);
}
