//! Offline structure checks of `terraform/`: there is no terraform binary or
//! registry access in CI, so every `.tf` file is parsed with `hcl-rs` and the
//! rules a reviewer would check by hand are checked here:
//! - every file parses;
//! - every variable has a description and a type, and a validation block
//!   unless it is a bool or a free-form map; every output has a description;
//! - modules pin providers with a version constraint, environments pin them
//!   exactly, and Terraform itself has a `required_version`;
//! - each environment uses the modules (all but postgres-backups in
//!   development), passes only arguments the
//!   module declares and every argument it requires, and refers only to
//!   outputs the module has;
//! - each environment has dedicated meeting-controller and media-handler
//!   pools, tainted and labelled for their service, sized from ADR-0012;
//! - the remote state backend carries no credentials, and no file holds key
//!   material or a secret version.

// Helpers outside #[test] fns panic on purpose: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression, ObjectKey};

const ENVIRONMENTS: [&str; 3] = ["development", "staging", "production"];
const MODULES: [&str; 5] = [
    "kubernetes-cluster",
    "node-pool",
    "postgres-backups",
    "public-endpoints",
    "secrets-backend",
];
/// The services clients reach from outside at one replica's own name.
const PUBLIC: [(&str, &str); 2] = [
    ("meeting-controller", "webtransport"),
    ("media-handler", "media"),
];
/// Development's database holds nothing worth keeping: it has no backups.
const BACKED_UP: [&str; 2] = ["staging", "production"];

/// ADR-0012 "Resource Sizing", per pod: (cpu request m, cpu limit m, memory
/// request MiB, memory limit MiB).
const ADR_0012: [(&str, [i64; 4]); 2] = [
    ("meeting-controller", [2000, 4000, 6 * 1024, 8 * 1024]),
    ("media-handler", [4000, 8000, 12 * 1024, 16 * 1024]),
];

fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../terraform")
        .canonicalize()
        .unwrap()
}

fn tf_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != ".terraform") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "tf") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// All blocks of a Terraform module directory (its `.tf` files merged).
struct Module {
    dir: PathBuf,
    blocks: Vec<(PathBuf, Block)>,
}

impl Module {
    fn load(dir: &Path) -> Self {
        let mut blocks = Vec::new();
        for file in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
            if file.extension().is_some_and(|e| e == "tf") {
                let body = parse(&file);
                blocks.extend(body.into_blocks().map(|b| (file.clone(), b)));
            }
        }
        Self {
            dir: dir.to_path_buf(),
            blocks,
        }
    }

    fn blocks<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.blocks
            .iter()
            .map(|(_, b)| b)
            .filter(move |b| b.identifier() == kind)
    }

    /// The module's `resource "kind" "name"` block.
    fn resource(&self, kind: &str, name: &str) -> &Block {
        self.blocks("resource")
            .find(|b| b.labels()[0].as_str() == kind && b.labels()[1].as_str() == name)
            .unwrap_or_else(|| panic!("{}: no resource {kind}.{name}", self.dir.display()))
    }

    fn labelled<'a>(&'a self, kind: &'a str) -> BTreeMap<String, &'a Block> {
        self.blocks(kind)
            .filter_map(|b| Some((b.labels().first()?.as_str().to_owned(), b)))
            .collect()
    }
}

fn parse(file: &Path) -> Body {
    let text = std::fs::read_to_string(file).unwrap();
    hcl::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes()
        .find(|a| a.key() == key)
        .map(hcl::Attribute::expr)
}

fn string_attr<'a>(body: &'a Body, key: &str) -> Option<&'a str> {
    match attr(body, key)? {
        Expression::String(s) => Some(s.as_str()),
        _ => None,
    }
}

fn object_get<'a>(expr: &'a Expression, key: &str) -> Option<&'a Expression> {
    let Expression::Object(object) = expr else {
        return None;
    };
    object.iter().find_map(|(k, v)| {
        let name = match k {
            ObjectKey::Identifier(id) => id.as_str().to_owned(),
            ObjectKey::Expression(Expression::String(s)) => s.clone(),
            other => other.to_string(),
        };
        (name == key).then_some(v)
    })
}

fn int(expr: &Expression) -> Option<i64> {
    match expr {
        Expression::Number(n) => n.as_i64(),
        _ => None,
    }
}

#[test]
fn every_tf_file_parses() {
    let files = tf_files(&terraform_dir());
    assert!(
        files.len() >= 20,
        "expected the three modules and three environments, found {files:?}"
    );
    for file in files {
        parse(&file);
    }
}

#[test]
fn variables_are_described_typed_and_validated() {
    for file in tf_files(&terraform_dir()) {
        for block in parse(&file)
            .blocks()
            .filter(|b| b.identifier() == "variable")
        {
            let name = block.labels()[0].as_str();
            let at = format!("{}: variable {name}", file.display());
            let description = string_attr(block.body(), "description").unwrap_or_default();
            assert!(description.trim().len() >= 10, "{at} needs a description");
            assert!(
                description.trim_end().ends_with('.') || description.ends_with(')'),
                "{at}: description should be a sentence"
            );
            let ty = attr(block.body(), "type")
                .unwrap_or_else(|| panic!("{at} needs a type"))
                .to_string();
            let free_form = ty == "bool" || ty.starts_with("map(");
            let validated = block
                .body()
                .blocks()
                .any(|b| b.identifier() == "validation");
            assert!(
                free_form || validated,
                "{at} ({ty}) needs a validation block"
            );
            for validation in block
                .body()
                .blocks()
                .filter(|b| b.identifier() == "validation")
            {
                assert!(
                    attr(validation.body(), "condition").is_some(),
                    "{at}: validation without condition"
                );
                assert!(
                    string_attr(validation.body(), "error_message")
                        .is_some_and(|m| m.ends_with('.')),
                    "{at}: error_message must be a sentence"
                );
            }
        }
    }
}

#[test]
fn outputs_are_described() {
    for file in tf_files(&terraform_dir()) {
        for block in parse(&file).blocks().filter(|b| b.identifier() == "output") {
            assert!(
                string_attr(block.body(), "description").is_some_and(|d| !d.trim().is_empty()),
                "{}: output {} needs a description",
                file.display(),
                block.labels()[0].as_str()
            );
        }
    }
}

fn provider_versions(module: &Module) -> Vec<(String, String)> {
    let terraform: Vec<&Block> = module.blocks("terraform").collect();
    assert_eq!(
        terraform.len(),
        1,
        "{}: exactly one terraform block",
        module.dir.display()
    );
    let body = terraform[0].body();
    let required = string_attr(body, "required_version").unwrap_or_default();
    assert!(
        required.contains(">=") && required.contains('<'),
        "{}: required_version must be bounded: {required:?}",
        module.dir.display()
    );
    let providers = body
        .blocks()
        .find(|b| b.identifier() == "required_providers")
        .unwrap_or_else(|| panic!("{}: required_providers missing", module.dir.display()));
    providers
        .body()
        .attributes()
        .map(|a| {
            let source = object_get(a.expr(), "source")
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                source.starts_with("\"hashicorp/"),
                "{}: provider {} needs a source",
                module.dir.display(),
                a.key()
            );
            let version = match object_get(a.expr(), "version") {
                Some(Expression::String(v)) => v.clone(),
                other => panic!(
                    "{}: provider {} needs a version, got {other:?}",
                    module.dir.display(),
                    a.key()
                ),
            };
            (a.key().to_owned(), version)
        })
        .collect()
}

#[test]
fn providers_are_pinned() {
    let root = terraform_dir();
    for name in MODULES {
        for (provider, version) in
            provider_versions(&Module::load(&root.join("modules").join(name)))
        {
            assert!(
                version.starts_with("~> ") || version.starts_with(">= "),
                "module {name}: {provider} constraint {version}"
            );
        }
    }
    for env in ENVIRONMENTS {
        let versions = provider_versions(&Module::load(&root.join("environments").join(env)));
        assert!(!versions.is_empty());
        for (provider, version) in versions {
            let exact = version.split('.').count() == 3
                && version.split('.').all(|p| p.parse::<u32>().is_ok());
            assert!(
                exact,
                "environment {env}: {provider} must be pinned exactly, not {version:?}"
            );
        }
    }
}

#[test]
fn remote_state_is_configured_without_credentials() {
    for env in ENVIRONMENTS {
        let module = environment(env);
        let terraform = module.blocks("terraform").next().unwrap();
        let backend = terraform
            .body()
            .blocks()
            .find(|b| b.identifier() == "backend")
            .unwrap_or_else(|| panic!("environment {env} has no remote state backend"));
        assert_eq!(backend.labels()[0].as_str(), "gcs");
        assert!(string_attr(backend.body(), "bucket").is_some_and(|b| !b.is_empty()));
        assert_eq!(
            string_attr(backend.body(), "prefix"),
            Some(format!("environments/{env}").as_str())
        );
        for forbidden in [
            "credentials",
            "access_token",
            "encryption_key",
            "impersonate_service_account",
        ] {
            assert!(
                attr(backend.body(), forbidden).is_none(),
                "environment {env}: backend must not set {forbidden}"
            );
        }
    }
}

#[test]
fn no_secret_material_in_code() {
    for file in tf_files(&terraform_dir())
        .into_iter()
        .chain(ENVIRONMENTS.iter().map(|e| {
            terraform_dir()
                .join("environments")
                .join(e)
                .join("terraform.tfvars")
        }))
    {
        let text = std::fs::read_to_string(&file).unwrap();
        for needle in [
            "AGE-SECRET-KEY-",
            "BEGIN PRIVATE KEY",
            "BEGIN RSA PRIVATE KEY",
            "\"private_key\"",
            "secret_data",
        ] {
            assert!(
                !text.contains(needle),
                "{} contains {needle}",
                file.display()
            );
        }
        assert!(
            !text.contains("google_secret_manager_secret_version"),
            "{}: secret values are added out of band, never by Terraform",
            file.display()
        );
    }
}

/// Module arguments that are not variables: meta-arguments.
const META: [&str; 5] = ["source", "providers", "depends_on", "count", "for_each"];

#[test]
fn environments_use_the_modules_correctly() {
    let root = terraform_dir();
    let modules: BTreeMap<&str, Module> = MODULES
        .iter()
        .map(|m| (*m, Module::load(&root.join("modules").join(m))))
        .collect();
    let reference = regex::Regex::new(r"module\.([a-z_]+)\.([a-z_]+)").unwrap();
    // `moved` blocks name resource addresses, not outputs.
    let moved = regex::Regex::new(r"(?s)\nmoved \{.*?\n\}").unwrap();

    let mut callers: Vec<Module> = ENVIRONMENTS
        .iter()
        .map(|e| Module::load(&root.join("environments").join(e)))
        .collect();
    callers.push(Module::load(&root.join("modules/kubernetes-cluster")));
    for caller in &callers {
        let calls = caller.labelled("module");
        let mut used = BTreeSet::new();
        for (call, block) in &calls {
            let source = string_attr(block.body(), "source").unwrap();
            let target = caller.dir.join(source).canonicalize().unwrap_or_else(|_| {
                panic!(
                    "{}: module {call} source {source} does not exist",
                    caller.dir.display()
                )
            });
            let name = target.file_name().unwrap().to_str().unwrap().to_owned();
            let name = MODULES.into_iter().find(|m| *m == name).unwrap_or_else(|| {
                panic!(
                    "{}: module {call} uses {name}, not one of ours",
                    caller.dir.display()
                )
            });
            let module = modules.get(name).unwrap_or_else(|| {
                panic!(
                    "{}: module {call} uses {name}, not one of ours",
                    caller.dir.display()
                )
            });
            used.insert(name);
            let variables = module.labelled("variable");
            let passed: BTreeSet<&str> = block
                .body()
                .attributes()
                .map(hcl::Attribute::key)
                .filter(|k| !META.contains(k))
                .collect();
            for arg in &passed {
                assert!(
                    variables.contains_key(*arg),
                    "{}: module {call} passes {arg}, which {name} does not declare",
                    caller.dir.display()
                );
            }
            for (var, decl) in &variables {
                if attr(decl.body(), "default").is_none() {
                    assert!(
                        passed.contains(var.as_str()),
                        "{}: module {call} must pass {var} (no default in {name})",
                        caller.dir.display()
                    );
                }
            }
        }
        // Every module.X.Y reference names a call and one of its outputs.
        for (file, _) in &caller.blocks {
            let text = std::fs::read_to_string(file).unwrap();
            let text = moved.replace_all(&text, "");
            for cap in reference.captures_iter(&text) {
                let (call, output) = (&cap[1], &cap[2]);
                let block = calls
                    .get(call)
                    .unwrap_or_else(|| panic!("{}: module.{call} is not called", file.display()));
                let source = string_attr(block.body(), "source").unwrap();
                let name = caller
                    .dir
                    .join(source)
                    .canonicalize()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                assert!(
                    modules[name.as_str()]
                        .labelled("output")
                        .contains_key(output),
                    "{}: module.{call}.{output} is not an output of {name}",
                    file.display()
                );
            }
        }
        if caller.dir.starts_with(root.join("environments")) {
            let backed_up = BACKED_UP
                .iter()
                .any(|e| caller.dir.ends_with(Path::new("environments").join(e)));
            assert_eq!(
                used,
                MODULES
                    .into_iter()
                    .filter(|m| backed_up || *m != "postgres-backups")
                    .collect(),
                "{} must use every module",
                caller.dir.display()
            );
        }
    }
}

#[test]
fn heavy_services_get_dedicated_pools_sized_from_adr_0012() {
    for env in ENVIRONMENTS {
        let module = environment(env);
        let locals: Vec<&Block> = module.blocks("locals").collect();
        let sizing = locals
            .iter()
            .find_map(|l| attr(l.body(), "adr_0012_sizing"))
            .unwrap_or_else(|| panic!("environment {env}: locals.adr_0012_sizing missing"));
        let pools: Vec<&Block> = module
            .blocks("module")
            .filter(|b| string_attr(b.body(), "source") == Some("../../modules/node-pool"))
            .collect();

        for (service, [cpu_req, cpu_lim, mem_req, mem_lim]) in ADR_0012 {
            let at = format!("environment {env}, {service}");
            let size =
                object_get(sizing, service).unwrap_or_else(|| panic!("{at}: no ADR-0012 sizing"));
            let field = |k: &str| {
                object_get(size, k)
                    .and_then(int)
                    .unwrap_or_else(|| panic!("{at}: {k} missing"))
            };
            assert_eq!(
                [
                    field("cpu_request_millicores"),
                    field("cpu_limit_millicores"),
                    field("memory_request_mib"),
                    field("memory_limit_mib")
                ],
                [cpu_req, cpu_lim, mem_req, mem_lim],
                "{at}: sizing differs from ADR-0012"
            );

            let pool = pools
                .iter()
                .find(|p| string_attr(p.body(), "name") == Some(service))
                .unwrap_or_else(|| panic!("{at}: no dedicated node pool"));
            let body = pool.body();
            assert_eq!(
                attr(body, "workload").map(ToString::to_string),
                Some(format!("local.adr_0012_sizing[\"{service}\"]")),
                "{at}: the pool must be sized from local.adr_0012_sizing"
            );
            let labels =
                attr(body, "node_labels").unwrap_or_else(|| panic!("{at}: node_labels missing"));
            assert_eq!(
                object_get(labels, "dark-tower.io/node-pool").map(ToString::to_string),
                Some(format!("\"{service}\"")),
                "{at}"
            );
            let Some(Expression::Array(taints)) = attr(body, "taints") else {
                panic!("{at}: taints missing")
            };
            assert!(
                taints.iter().any(|t| {
                    object_get(t, "value").map(ToString::to_string)
                        == Some(format!("\"{service}\""))
                        && object_get(t, "effect").map(ToString::to_string).as_deref()
                            == Some("\"NO_SCHEDULE\"")
                }),
                "{at}: needs a NO_SCHEDULE taint for {service}"
            );
        }
    }
}

#[test]
fn node_pool_module_refuses_machines_too_small_for_one_pod() {
    let module = Module::load(&terraform_dir().join("modules/node-pool"));
    let pool = module.labelled("resource");
    let resource = pool
        .get("google_container_node_pool")
        .expect("node pool resource");
    let lifecycle = resource
        .body()
        .blocks()
        .find(|b| b.identifier() == "lifecycle")
        .expect("lifecycle block");
    let precondition = lifecycle
        .body()
        .blocks()
        .find(|b| b.identifier() == "precondition")
        .expect("precondition");
    let condition = attr(precondition.body(), "condition").unwrap().to_string();
    for needle in [
        "cpu_limit_millicores",
        "allocatable_cpu_m",
        "memory_limit_mib",
        "allocatable_memory_mib",
    ] {
        assert!(
            condition.contains(needle),
            "precondition must compare {needle}: {condition}"
        );
    }
}

#[test]
fn every_environment_has_its_age_key_secret() {
    let module = Module::load(&terraform_dir().join("modules/secrets-backend"));
    let resources: BTreeSet<String> = module.labelled("resource").into_keys().collect();
    for needed in [
        "google_secret_manager_secret",
        "google_kms_crypto_key",
        "google_secret_manager_secret_iam_member",
    ] {
        assert!(resources.contains(needed), "secrets-backend lacks {needed}");
    }
    let secret = module
        .blocks("resource")
        .find(|b| b.labels()[0].as_str() == "google_secret_manager_secret")
        .unwrap();
    assert_eq!(
        attr(secret.body(), "secret_id").unwrap().to_string(),
        "\"sops-age-key-${var.environment}\""
    );
    for env in ENVIRONMENTS {
        let caller = environment(env);
        let secrets = caller.labelled("module");
        let call = secrets
            .values()
            .find(|b| string_attr(b.body(), "source") == Some("../../modules/secrets-backend"))
            .unwrap();
        assert_eq!(
            attr(call.body(), "environment").unwrap().to_string(),
            "local.environment"
        );
        let locals = caller
            .blocks("locals")
            .find_map(|l| string_attr(l.body(), "environment").map(str::to_owned));
        assert_eq!(
            locals.as_deref(),
            Some(env),
            "environment {env}: local.environment"
        );
    }
}

/// `kubectl kustomize dir`, bounded in time, as YAML documents.
fn render(dir: &Path) -> Vec<serde_json::Value> {
    let out = std::process::Command::new("timeout")
        .args(["120", "kubectl", "kustomize"])
        .arg(dir)
        .output()
        .expect("timeout/kubectl must be installed");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let parsed = dtlint_yaml::parse(
        &text,
        &dtlint_yaml::LineIndex::new(&text),
        dtlint_yaml::Limits::default(),
    );
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    parsed.documents.iter().map(|d| d.root.to_json()).collect()
}

/// The root module of an environment (`terraform/environments/<env>`).
fn environment(env: &str) -> Module {
    Module::load(&terraform_dir().join("environments").join(env))
}

/// The environment's cloud project (`terraform.tfvars`).
fn project_of(env: &str) -> String {
    let tfvars = std::fs::read_to_string(
        terraform_dir()
            .join("environments")
            .join(env)
            .join("terraform.tfvars"),
    )
    .unwrap();
    let vars: Body = hcl::from_str(&tfvars).unwrap();
    string_attr(&vars, "project_id").unwrap().to_owned()
}

fn find<'a>(objects: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The backups declared in git go where Terraform makes room for them: the
/// ObjectStore's bucket, its retention and the cloud identity the instances
/// assume are the `postgres-backups` module's, for the same environment;
/// development declares none.
#[test]
fn postgres_backups_go_to_the_terraform_bucket() {
    let module = Module::load(&terraform_dir().join("modules/postgres-backups"));
    let bucket = module
        .blocks("resource")
        .find(|b| {
            b.labels()[1].as_str() == "backups" && b.labels()[0].as_str() == "google_storage_bucket"
        })
        .unwrap();
    assert_eq!(
        attr(bucket.body(), "name").unwrap().to_string(),
        "\"${var.project_id}-postgres-backups\""
    );
    let account = module
        .blocks("resource")
        .find(|b| b.labels()[0].as_str() == "google_service_account")
        .unwrap();
    assert_eq!(
        attr(account.body(), "account_id").unwrap().to_string(),
        "\"postgres-backups-${var.environment}\""
    );
    let ksa = module.labelled("variable")["kubernetes_service_account"];
    let ksa = attr(ksa.body(), "default").unwrap().to_string();
    let overlays = terraform_dir().join("../overlays");
    for env in ENVIRONMENTS {
        let objects = render(&overlays.join(env).join("postgres"));
        let stores: Vec<_> = objects
            .iter()
            .filter(|o| o["kind"] == "ObjectStore")
            .collect();
        if !BACKED_UP.contains(&env) {
            assert!(
                stores.is_empty(),
                "{env} declares backups but has no bucket"
            );
            continue;
        }
        let project = project_of(env);
        let project = project.as_str();
        let caller = environment(env);
        let call = caller.labelled("module")["postgres_backups"];
        let days = int(attr(call.body(), "retention_days").unwrap()).unwrap();

        let store = find(&objects, "ObjectStore", "postgres-backups");
        let path = store["spec"]["configuration"]["destinationPath"]
            .as_str()
            .unwrap();
        assert!(
            path.starts_with(&format!("gs://{project}-postgres-backups/")),
            "{env}: the ObjectStore writes to {path}, not the Terraform bucket of {project}"
        );
        assert_eq!(
            store["spec"]["retentionPolicy"],
            format!("{days}d"),
            "{env}"
        );
        assert_eq!(
            store["spec"]["configuration"]["googleCredentials"]["gkeEnvironment"],
            true
        );

        let cluster = find(&objects, "Cluster", "postgres");
        let ns = cluster["metadata"]["namespace"].as_str().unwrap();
        assert_eq!(
            ksa,
            format!("\"{ns}/postgres\""),
            "the instances' service account"
        );
        assert_eq!(
            cluster["spec"]["serviceAccountTemplate"]["metadata"]["annotations"]["iam.gke.io/gcp-service-account"],
            format!("postgres-backups-{env}@{project}.iam.gserviceaccount.com"),
            "{env}"
        );
        let plugin = &cluster["spec"]["plugins"][0];
        assert_eq!(plugin["name"], "barman-cloud.cloudnative-pg.io");
        assert_eq!(plugin["isWALArchiver"], true);
        assert_eq!(plugin["parameters"]["barmanObjectName"], "postgres-backups");

        let scheduled = objects
            .iter()
            .find(|o| o["kind"] == "ScheduledBackup")
            .unwrap_or_else(|| panic!("{env}: no ScheduledBackup"));
        assert_eq!(scheduled["spec"]["cluster"]["name"], "postgres");
        assert_eq!(scheduled["spec"]["method"], "plugin");
        assert_eq!(
            scheduled["spec"]["pluginConfiguration"]["name"],
            "barman-cloud.cloudnative-pg.io"
        );
    }
}

/// The database's egress is only as wide as the cloud makes it: the API
/// server rule of staging and production names the control plane range
/// Terraform gives the cluster, and the backups reach Google APIs only at
/// the private.googleapis.com range the VPC's DNS zone points them to.
#[test]
fn postgres_egress_matches_the_terraform_network() {
    let cluster_module = Module::load(&terraform_dir().join("modules/kubernetes-cluster"));
    let record = cluster_module
        .blocks("resource")
        .find(|b| {
            b.labels()[0].as_str() == "google_dns_record_set"
                && b.labels()[1].as_str() == "googleapis_private"
        })
        .expect("a private.googleapis.com record");
    let addresses = attr(record.body(), "rrdatas").unwrap().to_string();
    for host in 8..=11 {
        assert!(
            addresses.contains(&format!("\"199.36.153.{host}\"")),
            "{addresses}"
        );
    }
    let overlays = terraform_dir().join("../overlays");
    for env in ENVIRONMENTS {
        let objects = render(&overlays.join(env).join("postgres"));
        let api = find(&objects, "NetworkPolicy", "postgres-api");
        let egress = api["spec"]["egress"].as_array().unwrap();
        let caller = environment(env);
        let call = caller.labelled("module")["cluster"];
        let cidr = string_attr(call.body(), "control_plane_cidr").unwrap();
        if !BACKED_UP.contains(&env) {
            // Development also runs on kind, whose API server is a node's address: the
            // private ranges, which must hold its GKE control plane too, and never more.
            let private = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];
            for rule in egress {
                let blocks: Vec<&str> = rule["to"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{env}: egress to any address: {rule}"))
                    .iter()
                    .map(|peer| peer["ipBlock"]["cidr"].as_str().unwrap())
                    .collect();
                assert!(
                    blocks.iter().all(|b| private.contains(b)),
                    "{env}: {blocks:?}"
                );
                assert!(
                    blocks.iter().any(|b| cidr_contains(b, cidr)),
                    "{env}: {cidr} (Terraform's control plane) is outside {blocks:?}"
                );
            }
            continue;
        }
        assert_eq!(egress.len(), 1, "{env}: {egress:?}");
        assert_eq!(
            egress[0]["to"],
            serde_json::json!([{"ipBlock": {"cidr": cidr}}]),
            "{env}: the API server rule must name control_plane_cidr"
        );
        assert_eq!(
            egress[0]["ports"],
            serde_json::json!([{"protocol": "TCP", "port": 443}])
        );

        let backups = find(&objects, "NetworkPolicy", "postgres-backups");
        let cidrs: Vec<&str> = backups["spec"]["egress"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["to"].as_array().unwrap())
            .map(|p| p["ipBlock"]["cidr"].as_str().unwrap())
            .collect();
        assert_eq!(cidrs, ["199.36.153.8/30", "169.254.169.252/32"], "{env}");
    }
}

/// Every meeting-controller and media-handler replica is reachable from
/// outside at a name of its own, and git and Terraform agree on each piece:
/// the StatefulSet runs as many replicas as Terraform reserves addresses
/// for; each ordinal has a UDP LoadBalancer Service selecting exactly that
/// pod, on the address Terraform reserves by that name
/// (`dark-tower-<env>-<service>-<n>`) and declaring the name Terraform's
/// record gives it (`<service>-<n>.media.<domain>`); the replica advertises
/// `$(<pod name>).$(MEDIA_DOMAIN)` with the ConfigMap's MEDIA_DOMAIN equal
/// to `media.<domain>`; and the certificate it serves covers every name.
#[test]
fn media_replicas_are_reachable_at_the_names_terraform_makes() {
    let module = Module::load(&terraform_dir().join("modules/public-endpoints"));
    let resource = |kind: &str| module.resource(kind, "media");
    assert_eq!(
        attr(resource("google_compute_address").body(), "name")
            .unwrap()
            .to_string(),
        "\"dark-tower-${var.environment}-${each.key}\""
    );
    let record = resource("google_dns_record_set");
    assert_eq!(
        attr(record.body(), "name").unwrap().to_string(),
        "\"${each.key}.media.${var.domain}.\""
    );
    assert_eq!(string_attr(record.body(), "type"), Some("A"));
    assert_eq!(
        string_attr(resource("google_compute_address").body(), "address_type"),
        Some("EXTERNAL")
    );

    let overlays = terraform_dir().join("../overlays");
    for env in ENVIRONMENTS {
        let caller = environment(env);
        let call = caller.labelled("module")["public_endpoints"];
        let domain = string_attr(call.body(), "domain").unwrap();
        let replicas = attr(call.body(), "replicas").unwrap();
        for (service, port_name) in PUBLIC {
            let count = object_get(replicas, service)
                .and_then(int)
                .unwrap_or_else(|| panic!("{env}: public_endpoints.replicas has no {service}"));
            let objects = render(&overlays.join(env).join(service));
            let sts = find(&objects, "StatefulSet", service);
            assert_eq!(
                sts["spec"]["replicas"], count,
                "{env}: {service} runs {} replicas, Terraform reserves {count} addresses",
                sts["spec"]["replicas"]
            );
            let container = &sts["spec"]["template"]["spec"]["containers"][0];
            let env_vars = container["env"].as_array().unwrap();
            let var = |name: &str| {
                env_vars
                    .iter()
                    .position(|e| e["name"] == name)
                    .unwrap_or_else(|| panic!("{env}: {service} sets no {name}"))
            };
            let short = if service == "meeting-controller" {
                "MC"
            } else {
                "MH"
            };
            let advertise = if short == "MC" {
                "MC_WEBTRANSPORT_ADVERTISE_ADDRESS"
            } else {
                "MH_MEDIA_ADVERTISE_ADDRESS"
            };
            let port = container["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == port_name)
                .unwrap_or_else(|| panic!("{env}: {service} has no port {port_name}"));
            assert_eq!(port["protocol"], "UDP");
            let id = format!("{short}_ID");
            assert_eq!(
                env_vars[var(advertise)]["value"],
                format!("$({id}).$(MEDIA_DOMAIN):{}", port["containerPort"]),
                "{env}: {service} advertises its own name"
            );
            assert_eq!(
                env_vars[var(&id)]["valueFrom"]["fieldRef"]["fieldPath"],
                "metadata.name"
            );
            // Defined before use, or Kubernetes leaves `$(X)` as it is.
            assert!(var(&id) < var(advertise) && var("MEDIA_DOMAIN") < var(advertise));
            let config = env_vars[var("MEDIA_DOMAIN")]["valueFrom"]["configMapKeyRef"]["name"]
                .as_str()
                .unwrap();
            let config = objects
                .iter()
                .find(|o| {
                    o["kind"] == "ConfigMap"
                        && o["metadata"]["name"].as_str().is_some_and(|n| n == config)
                })
                .unwrap_or_else(|| panic!("{env}: no ConfigMap {config}"));
            assert_eq!(
                config["data"]["MEDIA_DOMAIN"],
                format!("media.{domain}"),
                "{env}: {service}"
            );

            let mut names = Vec::new();
            for n in 0..count {
                let ordinal = format!("{service}-{n}");
                let svc = find(&objects, "Service", &ordinal);
                let name = format!("{ordinal}.media.{domain}");
                assert_eq!(svc["spec"]["type"], "LoadBalancer", "{env}: {ordinal}");
                assert_eq!(svc["spec"]["externalTrafficPolicy"], "Local");
                assert_eq!(
                    svc["spec"]["selector"]["statefulset.kubernetes.io/pod-name"],
                    ordinal
                );
                let annotations = &svc["metadata"]["annotations"];
                assert_eq!(annotations["dark-tower.io/public-name"], name);
                assert_eq!(
                    annotations["networking.gke.io/load-balancer-ip-addresses"],
                    format!("dark-tower-{env}-{ordinal}")
                );
                let ports = svc["spec"]["ports"].as_array().unwrap();
                assert_eq!(ports.len(), 1, "{env}: {ordinal} exposes only its UDP port");
                assert_eq!(ports[0]["protocol"], "UDP");
                assert_eq!(ports[0]["port"], port["containerPort"]);
                assert_eq!(ports[0]["targetPort"], port_name);
                names.push(serde_json::Value::from(name));
            }
            let extra: Vec<_> = objects
                .iter()
                .filter(|o| o["kind"] == "Service" && o["spec"]["type"] == "LoadBalancer")
                .filter_map(|o| o["metadata"]["name"].as_str())
                .filter(|n| {
                    n.strip_prefix(&format!("{service}-"))
                        .and_then(|i| i.parse::<i64>().ok())
                        .is_none_or(|i| i >= count)
                })
                .collect();
            assert!(
                extra.is_empty(),
                "{env}: load balancers for no replica: {extra:?}"
            );
            let secret = container_tls_secret(sts);
            let certificate = objects
                .iter()
                .find(|o| o["kind"] == "Certificate" && o["spec"]["secretName"] == secret)
                .unwrap_or_else(|| panic!("{env}: no Certificate writes {secret}"));
            assert_eq!(
                certificate["spec"]["dnsNames"],
                serde_json::Value::from(names),
                "{env}: the certificate {service} serves"
            );
        }
    }
}

/// The Secret behind the pod's volume named `tls`.
fn container_tls_secret(workload: &serde_json::Value) -> String {
    workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .and_then(|v| v["secret"]["secretName"].as_str())
        .unwrap()
        .to_owned()
}

/// The ACME issuers of staging and production can prove their names: each
/// solves DNS-01 in the zone Terraform makes for that environment, in that
/// environment's project, as the identity Terraform allows to edit that zone
/// (cert-manager's service account carries it, and the controller may use
/// ambient credentials for a namespaced Issuer); development issues from its
/// own CA and gets no such identity.
#[test]
fn acme_issuers_use_the_zone_and_identity_terraform_makes() {
    let module = Module::load(&terraform_dir().join("modules/public-endpoints"));
    let resource = |kind: &str, name: &str| module.resource(kind, name);
    assert_eq!(
        attr(resource("google_dns_managed_zone", "public").body(), "name")
            .unwrap()
            .to_string(),
        "\"dark-tower-${var.environment}-public\""
    );
    assert_eq!(
        attr(
            resource("google_service_account", "cert_manager").body(),
            "account_id"
        )
        .unwrap()
        .to_string(),
        "\"cert-manager-${var.environment}\""
    );
    assert_eq!(
        string_attr(
            resource("google_dns_managed_zone_iam_member", "cert_manager").body(),
            "role"
        ),
        Some("roles/dns.admin")
    );
    let ksa = module.labelled("variable")["cert_manager_service_account"];
    let ksa = attr(ksa.body(), "default").unwrap().to_string();

    let overlays = terraform_dir().join("../overlays");
    for env in ENVIRONMENTS {
        let caller = environment(env);
        let call = caller.labelled("module")["public_endpoints"];
        let dns01 = !matches!(
            attr(call.body(), "cert_manager_dns01"),
            Some(Expression::Bool(false))
        );
        let namespace = render(&overlays.join(env));
        let issuer = find(&namespace, "Issuer", "dark-tower-issuer");
        let acme = &issuer["spec"]["acme"];
        assert_eq!(
            acme.is_object(),
            dns01,
            "{env}: an ACME issuer needs the DNS-01 identity, and only then"
        );
        if !dns01 {
            continue;
        }
        let project = project_of(env);
        let project = project.as_str();
        let solver = &acme["solvers"][0]["dns01"]["cloudDNS"];
        assert_eq!(solver["project"], project, "{env}");
        assert_eq!(
            solver["hostedZoneName"],
            format!("dark-tower-{env}-public"),
            "{env}"
        );

        let platform = render(&overlays.join(env).join("platform"));
        let release = find(&platform, "HelmRelease", "cert-manager");
        let values = &release["spec"]["values"];
        assert_eq!(
            values["serviceAccount"]["annotations"]["iam.gke.io/gcp-service-account"],
            format!("cert-manager-{env}@{project}.iam.gserviceaccount.com"),
            "{env}"
        );
        assert!(
            values["extraArgs"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == "--issuer-ambient-credentials")),
            "{env}: a namespaced Issuer uses ambient credentials only with --issuer-ambient-credentials"
        );
        let release_ns = release["metadata"]["namespace"].as_str().unwrap();
        let release_name = release["metadata"]["name"].as_str().unwrap();
        assert_eq!(
            ksa,
            format!("\"{release_ns}/{release_name}\""),
            "the controller's service account is the chart's, named after the release"
        );
    }
}

/// The API's name points at the Gateway: Terraform reserves
/// `dark-tower-<env>-gateway` with the record `api.<domain>`, the Gateway
/// class hands Envoy Gateway the EnvoyProxy that puts its load balancer on
/// that address, and the Gateway's listener and certificate serve that name.
#[test]
fn the_api_name_points_at_the_gateway_address() {
    let module = Module::load(&terraform_dir().join("modules/public-endpoints"));
    let resource = |kind: &str, name: &str| module.resource(kind, name);
    assert_eq!(
        attr(resource("google_compute_address", "gateway").body(), "name")
            .unwrap()
            .to_string(),
        "\"dark-tower-${var.environment}-gateway\""
    );
    assert_eq!(
        attr(resource("google_dns_record_set", "api").body(), "name")
            .unwrap()
            .to_string(),
        "\"api.${var.domain}.\""
    );
    let overlays = terraform_dir().join("../overlays");
    for env in ENVIRONMENTS {
        let caller = environment(env);
        let call = caller.labelled("module")["public_endpoints"];
        let domain = string_attr(call.body(), "domain").unwrap();
        let objects = render(&overlays.join(env));
        let class = find(&objects, "GatewayClass", "envoy");
        let params = &class["spec"]["parametersRef"];
        assert_eq!(params["kind"], "EnvoyProxy");
        let proxy = find(&objects, "EnvoyProxy", params["name"].as_str().unwrap());
        assert_eq!(proxy["metadata"]["namespace"], params["namespace"]);
        let service = &proxy["spec"]["provider"]["kubernetes"]["envoyService"];
        assert_eq!(service["type"], "LoadBalancer");
        assert_eq!(
            service["annotations"]["networking.gke.io/load-balancer-ip-addresses"],
            format!("dark-tower-{env}-gateway"),
            "{env}"
        );
        let gateway = find(&objects, "Gateway", "dark-tower");
        assert_eq!(gateway["spec"]["gatewayClassName"], "envoy");
        let api = format!("api.{domain}");
        assert_eq!(gateway["spec"]["listeners"][0]["hostname"], api, "{env}");
        assert_eq!(
            find(&objects, "Certificate", "dark-tower-gateway")["spec"]["dnsNames"],
            serde_json::json!([api]),
            "{env}"
        );
        // Only the public API goes out: /health, /ready and /metrics share
        // the port and stay inside. The route is the base's, or in
        // production the one Flagger makes from the Canary's match.
        let gc = render(&overlays.join(env).join("global-controller"));
        let prefixes: Vec<String> = match gc
            .iter()
            .find(|o| o["kind"] == "Canary" && o["metadata"]["name"] == "global-controller")
        {
            Some(canary) => canary["spec"]["service"]["match"]
                .as_array()
                .unwrap_or_else(|| panic!("{env}: the canary routes every path"))
                .iter()
                .map(|m| m["uri"]["prefix"].as_str().unwrap_or("").to_owned())
                .collect(),
            None => find(&gc, "HTTPRoute", "global-controller")["spec"]["rules"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r["matches"].as_array().unwrap().iter())
                .map(|m| m["path"]["value"].as_str().unwrap_or("").to_owned())
                .collect(),
        };
        assert!(!prefixes.is_empty(), "{env}");
        for p in &prefixes {
            assert!(
                p.starts_with("/api/"),
                "{env}: the Gateway routes {p:?} to GC"
            );
        }
    }
}

/// The node agents run on every node Terraform makes, the tainted media
/// pools included: the OpenTelemetry collector (a DaemonSet) tolerates every
/// pool taint of every environment.
#[test]
fn the_node_collector_tolerates_every_pool_taint() {
    let overlays = terraform_dir().join("../overlays");
    for env in ENVIRONMENTS {
        let caller = environment(env);
        let platform = render(&overlays.join(env).join("platform"));
        let collector = find(&platform, "HelmRelease", "opentelemetry-collector");
        let values = &collector["spec"]["values"];
        assert_eq!(values["mode"], "daemonset", "{env}");
        let tolerations = values["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut taints = 0;
        for pool in caller.labelled("module").values() {
            let Some(Expression::Array(list)) = attr(pool.body(), "taints") else {
                continue;
            };
            for taint in list {
                taints += 1;
                let key =
                    object_get(taint, "key").map(|k| k.to_string().trim_matches('"').to_owned());
                let effect = object_get(taint, "effect")
                    .map(|e| e.to_string().trim_matches('"').to_owned())
                    .unwrap_or_default();
                // Terraform spells NO_SCHEDULE, Kubernetes NoSchedule.
                let effect = effect.replace('_', "").to_lowercase();
                let tolerated = tolerations.iter().any(|t| {
                    Some(t["key"].as_str().unwrap_or_default().to_owned()) == key
                        && t["operator"] == "Exists"
                        && t["effect"]
                            .as_str()
                            .is_none_or(|e| e.to_lowercase() == effect)
                });
                assert!(
                    tolerated,
                    "{env}: the collector does not tolerate taint {key:?}"
                );
            }
        }
        assert!(taints > 0, "{env}: no tainted pool found");
    }
}

/// Does IPv4 block `outer` hold all of block `inner`?
fn cidr_contains(outer: &str, inner: &str) -> bool {
    let parse = |c: &str| -> (u32, u32) {
        let (ip, len) = c.split_once('/').unwrap();
        let ip: std::net::Ipv4Addr = ip.parse().unwrap();
        (u32::from(ip), len.parse().unwrap())
    };
    let ((o, ol), (i, il)) = (parse(outer), parse(inner));
    let mask = |len: u32| if len == 0 { 0 } else { u32::MAX << (32 - len) };
    il >= ol && (o & mask(ol)) == (i & mask(ol))
}

/// Workload Identity bindings name the pool the cluster reports, so Terraform
/// makes them after the cluster that creates the pool (a binding to
/// `<project>.svc.id.goog` before it exists fails on a new project).
#[test]
fn workload_identity_bindings_wait_for_the_cluster() {
    let root = terraform_dir();
    for module in MODULES {
        let dir = root.join("modules").join(module);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "tf") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    !text.contains(".svc.id.goog["),
                    "{}: spells the Workload Identity pool instead of taking it from the cluster",
                    path.display()
                );
            }
        }
    }
    let outputs =
        std::fs::read_to_string(root.join("modules/kubernetes-cluster/outputs.tf")).unwrap();
    assert!(
        outputs.contains("google_container_cluster.this.workload_identity_config[0].workload_pool"),
        "the cluster module's workload_identity_pool output must come from the cluster"
    );
    for env in ENVIRONMENTS {
        let caller = environment(env);
        for (name, call) in caller.labelled("module") {
            let source = string_attr(call.body(), "source").unwrap_or("");
            let takes_pool = ["postgres-backups", "public-endpoints"]
                .iter()
                .any(|m| source.ends_with(m));
            if !takes_pool {
                continue;
            }
            let pool = attr(call.body(), "workload_identity_pool")
                .unwrap_or_else(|| panic!("{env}: module {name} gets no workload_identity_pool"))
                .to_string();
            assert_eq!(
                pool.trim(),
                "module.cluster.workload_identity_pool",
                "{env}: module {name}"
            );
        }
        // Flux's binding is the environment's own (the cluster needs the
        // secrets module's etcd key first, so that module cannot wait for it).
        let flux = caller
            .blocks("resource")
            .find(|b| {
                b.labels()[0].as_str() == "google_service_account_iam_member"
                    && b.labels()[1].as_str() == "flux_workload_identity"
            })
            .unwrap_or_else(|| panic!("{env}: no Workload Identity binding for Flux"));
        let member = attr(flux.body(), "member").unwrap().to_string();
        assert!(
            member.contains("module.cluster.workload_identity_pool")
                && member.contains("[flux-system/kustomize-controller]"),
            "{env}: {member}"
        );
    }
}
