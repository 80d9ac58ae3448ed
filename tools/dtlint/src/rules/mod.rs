//! The rules and their registry.
//!
//! One rule, one file: `rules/<category>/<rule_id>.rs` holds the rule's docs
//! (its doc comment, with fixed headings), its metadata and its check. Adding
//! a rule touches that file, one line of [`ALL`] and a fixture directory.

use crate::config::Config;
use crate::diag::{Finding, Severity};
use crate::model::{Index, Resource};

pub mod certificates;
pub mod contract;
pub mod database;
pub mod flux;
pub mod gitops;
pub mod layout;
pub mod network;
pub mod pods;
pub mod refs;
pub mod schema;
pub mod security;
pub mod sops;
pub mod suppression_meta;
pub(crate) mod values;
pub mod workloads;
pub mod yaml;

/// What a rule is, for `dtlint rules`, `explain`, SARIF and the docs.
#[derive(Debug, Clone, Copy)]
pub struct RuleMeta {
    /// Kebab-case id naming the hazard; also the suppression key.
    pub id: &'static str,
    pub category: &'static str,
    /// Severity unless `dtlint.toml` says otherwise.
    pub severity: Severity,
    /// One line, for listings.
    pub summary: &'static str,
    /// Markdown with the headings `## What it does`, `## Why is this bad?`,
    /// `## Example`, `## Use instead`, `## References`.
    pub docs: &'static str,
    /// What the rule must see to judge: one object, or the whole repository.
    pub needs: Needs,
}

/// What a rule must see before it can judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Needs {
    /// The object (or file) alone: the rule works on a lone file or stdin.
    File,
    /// Other files of the repository: the objects a selector or reference
    /// points at, the kustomizations that list a file, `.sops.yaml`, the
    /// environments' overlays. Without a repository the rule cannot know and
    /// stays silent.
    Repository,
}

impl RuleMeta {
    /// The docs with the one space rustdoc leaves after `///` removed.
    pub fn docs_markdown(&self) -> String {
        let mut out = String::new();
        for line in self.docs.lines() {
            out.push_str(line.strip_prefix(' ').unwrap_or(line));
            out.push('\n');
        }
        out.trim().to_string() + "\n"
    }
}

/// Everything a rule may read. Rules never read files or run processes.
pub struct Context<'a> {
    pub index: &'a Index<'a>,
    pub config: &'a Config,
    /// The NetworkPolicy graph of each environment, built on first use and
    /// shared by the network rules.
    nets: std::sync::OnceLock<Vec<crate::netpol::Net<'a, 'a>>>,
    /// Every ConfigMap and Secret value, decoded and decrypted, collected
    /// on first use and shared by the rules that judge values.
    values: std::sync::OnceLock<Vec<values::ConfigValue<'a>>>,
    /// The repository's own CRDs as schemas, converted on first use.
    local_schemas: std::sync::OnceLock<schema::LocalSchemas>,
}

impl<'a> Context<'a> {
    pub fn new(index: &'a Index<'a>, config: &'a Config) -> Self {
        Self {
            index,
            config,
            nets: std::sync::OnceLock::new(),
            values: std::sync::OnceLock::new(),
            local_schemas: std::sync::OnceLock::new(),
        }
    }

    /// Every non-empty ConfigMap and Secret value (see [`values::collect`]).
    pub(crate) fn values(&self) -> &[values::ConfigValue<'a>] {
        self.values
            .get_or_init(|| values::collect(self.index, self.config))
    }

    /// The pods and policies of every environment (see
    /// [`crate::netpol::scopes`]), with the `[network]` namespace as the
    /// primary one.
    pub fn nets(&self) -> &[crate::netpol::Net<'a, 'a>] {
        self.nets
            .get_or_init(|| crate::netpol::nets(self.index, self.config))
    }
}

/// Findings keyed by place and message; one object seen in several
/// environments is reported once, naming them.
#[derive(Default)]
pub(crate) struct Merged {
    map: std::collections::BTreeMap<(u32, u32, String), Finding>,
}

impl Merged {
    pub fn add(&mut self, f: Finding, env: Option<&str>) {
        let key = (
            f.primary.file.0,
            f.primary.span.start.offset,
            f.message.clone(),
        );
        let slot = self.map.entry(key).or_insert(f);
        if let Some(e) = env
            && !slot.envs.iter().any(|x| x == e)
        {
            slot.envs.push(e.to_string());
        }
    }

    pub fn into_findings(self) -> impl Iterator<Item = Finding> {
        self.map.into_values()
    }
}

/// The objects a per-object rule judges, one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every document with `apiVersion` and `kind`: objects, patches,
    /// kustomizations.
    Documents,
    /// Documents of a workload kind, patches included.
    WorkloadDocuments,
    /// Complete Kubernetes objects ([`Index::objects`]).
    Objects,
    /// Complete workloads ([`Index::workloads`]).
    Workloads,
    /// Complete objects of one kind ([`Index::of_kind`]).
    Kind(&'static str),
}

impl Scope {
    /// Does this scope include `r`? `object` is [`Resource::is_object`],
    /// computed once per object by the caller for all the rules it runs.
    pub fn includes(self, r: &Resource<'_>, object: bool) -> bool {
        match self {
            Scope::Documents => true,
            Scope::WorkloadDocuments => r.is_workload(),
            Scope::Objects => object,
            Scope::Workloads => object && r.is_workload(),
            Scope::Kind(kind) => object && r.kind == kind,
        }
    }
}

/// A check. Most rules judge one object at a time: they name their objects
/// in [`Rule::scope`] and implement [`Rule::check_object`], and the engine
/// runs all of them on an object before moving to the next, while its nodes
/// are still in the CPU's cache. Rules that need the whole repository at
/// once (layout, traffic, SOPS) implement [`Rule::check`] instead.
pub trait Rule: Sync {
    fn meta(&self) -> &'static RuleMeta;

    /// The objects a per-object rule judges; `None` for a whole-index rule.
    fn scope(&self) -> Option<Scope> {
        None
    }

    /// Judge one object of [`Rule::scope`].
    fn check_object(&self, _ctx: &Context<'_>, _r: &Resource<'_>, _out: &mut Vec<Finding>) {}

    /// Judge the whole index. For a per-object rule: every object in scope.
    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        if let Some(scope) = self.scope() {
            for r in &ctx.index.resources {
                let object = r.is_object();
                if scope.includes(r, object) {
                    self.check_object(ctx, r, out);
                }
            }
        }
    }
}

/// Declare a rule type whose doc comment becomes its docs. A rule that
/// needs other files than the one it reports on says `needs: Repository`.
macro_rules! declare_rule {
    (
        $(#[doc = $doc:literal])*
        $vis:vis struct $name:ident {
            id: $id:literal,
            category: $cat:literal,
            severity: $sev:ident,
            summary: $sum:literal,
            needs: $needs:ident $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        $vis struct $name;

        impl $name {
            pub const META: $crate::rules::RuleMeta = $crate::rules::RuleMeta {
                id: $id,
                category: $cat,
                severity: $crate::diag::Severity::$sev,
                summary: $sum,
                docs: concat!($($doc, "\n"),*),
                needs: $crate::rules::Needs::$needs,
            };
        }
    };
    (
        $(#[doc = $doc:literal])*
        $vis:vis struct $name:ident {
            id: $id:literal,
            category: $cat:literal,
            severity: $sev:ident,
            summary: $sum:literal $(,)?
        }
    ) => {
        $crate::rules::declare_rule! {
            $(#[doc = $doc])*
            $vis struct $name {
                id: $id,
                category: $cat,
                severity: $sev,
                summary: $sum,
                needs: File,
            }
        }
    };
}
pub(crate) use declare_rule;

/// One requirement of a label selector (a `matchLabels` entry or a
/// `matchExpressions` item) as a selector of its own, so a rule can say which
/// requirement fails instead of pointing at the whole selector.
pub(crate) struct SelectorPart<'a> {
    /// The label key the requirement is about.
    pub key: &'a str,
    /// Where to point: the `matchLabels` value, or the expression's `key`.
    pub span: dtlint_yaml::Span,
    /// True for a `matchExpressions` item.
    pub expression: bool,
    node: dtlint_yaml::Node,
    structured: bool,
}

impl SelectorPart<'_> {
    pub fn selector(&self) -> crate::model::Selector<'_> {
        crate::model::Selector {
            node: &self.node,
            structured: self.structured,
        }
    }
}

/// The requirements of `sel`, `matchLabels` first.
pub(crate) fn selector_parts<'a>(sel: &crate::model::Selector<'a>) -> Vec<SelectorPart<'a>> {
    use dtlint_yaml::{Entry, Node, Scalar, Style, Value};
    let scalar = |span, text: &str| Node {
        span,
        value: Value::Scalar(Scalar {
            text: text.to_string().into(),
            style: Style::Plain,
            tag: None,
        }),
    };
    let mut parts: Vec<SelectorPart<'a>> = sel
        .match_labels()
        .into_iter()
        .map(|(key, value)| SelectorPart {
            key,
            span: value.span,
            expression: false,
            node: Node {
                span: value.span,
                value: Value::Mapping(vec![Entry {
                    key: scalar(value.span, key),
                    value: value.clone(),
                }]),
            },
            structured: false,
        })
        .collect();
    if sel.structured {
        for expr in sel
            .node
            .get("matchExpressions")
            .into_iter()
            .flat_map(Node::items)
        {
            let Some(k) = expr.get("key") else { continue };
            let Some(key) = k.as_str() else { continue };
            parts.push(SelectorPart {
                key,
                span: k.span,
                expression: true,
                node: Node {
                    span: expr.span,
                    value: Value::Mapping(vec![Entry {
                        key: scalar(expr.span, "matchExpressions"),
                        value: Node {
                            span: expr.span,
                            value: Value::Sequence(vec![expr.clone()]),
                        },
                    }]),
                },
                structured: true,
            });
        }
    }
    parts
}

/// The scalar node among `nodes` whose text is closest to `name` (see
/// [`crate::suggest::closest`]): the defined name an undefined one was meant
/// to be, with its place.
pub(crate) fn closest_node<'n>(
    name: &str,
    nodes: impl IntoIterator<Item = &'n dtlint_yaml::Node>,
) -> Option<&'n dtlint_yaml::Node> {
    let nodes: Vec<&dtlint_yaml::Node> = nodes.into_iter().collect();
    let near = crate::suggest::closest(name, nodes.iter().filter_map(|n| n.as_str()))?;
    nodes.into_iter().find(|n| n.as_str() == Some(near))
}

/// Every rule, in the order `dtlint rules` lists them.
pub static ALL: &[&dyn Rule] = &[
    // yaml
    &yaml::invalid_yaml::InvalidYaml,
    &yaml::duplicate_key::DuplicateKey,
    &yaml::yaml11_value::Yaml11Value,
    &yaml::wrong_type::WrongType,
    // schema
    &schema::schema_invalid::SchemaInvalid,
    &schema::schema_kind_missing::SchemaKindMissing,
    &schema::api_removed::ApiRemoved,
    &schema::api_removed::ApiDeprecated,
    &schema::schema_unknown_kind::SchemaUnknownKind,
    &schema::helm_values_invalid::HelmValuesInvalid,
    // gitops
    &gitops::kustomize_build_failed::KustomizeBuildFailed,
    &gitops::unsafe_kustomize_path::UnsafeKustomizePath,
    &gitops::missing_environment_overlay::MissingEnvironmentOverlay,
    &gitops::replicas_per_environment::ReplicasPerEnvironment,
    &gitops::replicas_with_hpa::ReplicasWithHpa,
    &gitops::resources_per_environment::ResourcesPerEnvironment,
    // layout
    &layout::seven_file_pattern::SevenFilePattern,
    &layout::kustomization_missing_file::KustomizationMissingFile,
    &layout::orphan_yaml::OrphanYaml,
    // workloads
    &workloads::missing_standard_labels::MissingStandardLabels,
    &workloads::unstable_selector::UnstableSelector,
    &workloads::selector_mismatch::SelectorMismatch,
    &workloads::node_pool_untolerated::NodePoolUntolerated,
    &workloads::canary_udp_port::CanaryUdpPort,
    &workloads::canary_copies_managed_secret::CanaryCopiesManagedSecret,
    &workloads::shared_advertise_address::SharedAdvertiseAddress,
    &workloads::latest_tag::LatestTag,
    &workloads::rolling_update_capacity::RollingUpdateCapacity,
    &workloads::pdb_blocks_eviction::PdbBlocksEviction,
    // pods
    &pods::missing_resources::MissingResources,
    &pods::missing_liveness_probe::MissingLivenessProbe,
    &pods::missing_readiness_probe::MissingReadinessProbe,
    &pods::probe_port_undeclared::ProbePortUndeclared,
    &pods::secret_in_env_literal::SecretInEnvLiteral,
    // security
    &security::run_as_root::RunAsRoot,
    &security::writable_root_fs::WritableRootFs,
    &security::privilege_escalation::PrivilegeEscalation,
    &security::capabilities_not_dropped::CapabilitiesNotDropped,
    &security::privileged_container::PrivilegedContainer,
    &security::missing_seccomp::MissingSeccomp,
    &security::host_namespace::HostNamespace,
    &security::host_path_volume::HostPathVolume,
    // network
    &network::udp_port_protocol::UdpPortProtocol,
    &network::selector_matches_nothing::SelectorMatchesNothing,
    &network::replica_without_service::ReplicaWithoutService,
    &network::target_port_missing::TargetPortMissing,
    &network::servicemonitor_port_missing::ServiceMonitorPortMissing,
    &network::missing_default_deny::MissingDefaultDeny,
    &network::workload_not_isolated::WorkloadNotIsolated,
    &network::traffic_matrix::TrafficMatrix,
    &network::mesh_proxy_port::MeshProxyPort,
    &network::mesh_authorization::MeshAuthorization,
    &network::mesh_job_opt_out::MeshJobOptOut,
    // references
    &refs::dangling_config_ref::DanglingConfigRef,
    // config contract
    &contract::env_contract::EnvContract,
    &contract::env_unused::EnvUnused,
    // flux
    &flux::flux_path_missing::FluxPathMissing,
    &flux::flux_ref_unresolved::FluxRefUnresolved,
    &flux::flux_dependency_cycle::FluxDependencyCycle,
    &flux::flux_kustomization_cycle::FluxKustomizationCycle,
    &flux::flux_namespace_missing::FluxNamespaceMissing,
    &flux::flux_address_unchecked::FluxAddressUnchecked,
    &flux::flux_health_unchecked::FluxHealthUnchecked,
    &flux::flux_decryption_missing::FluxDecryptionMissing,
    &flux::flux_required_fields::FluxRequiredFields,
    &flux::flux_interval_format::FluxIntervalFormat,
    &flux::flux_substitute::FluxSubstituteUnset,
    &flux::flux_applied_twice::FluxAppliedTwice,
    &flux::flux_substitute::FluxSubstituteInvalid,
    &flux::helm_chart_unpinned::HelmChartUnpinned,
    // sops
    &sops::sops_not_encrypted::SopsNotEncrypted,
    &sops::sops_unexpected_encryption::SopsUnexpectedEncryption,
    &sops::sops_metadata::SopsMetadata,
    &sops::sops_recipients::SopsRecipients,
    &sops::sops_mac_mismatch::SopsMacMismatch,
    &sops::sops_undecryptable::SopsUndecryptable,
    &sops::secret_key_missing::SecretKeyMissing,
    &sops::empty_secret_value::EmptySecretValue,
    // certificates
    &certificates::tls_secret_not_pem::TlsSecretNotPem,
    &certificates::certificate_self_signed::CertificateSelfSigned,
    &certificates::certificate_expiring::CertificateExpiring,
    // database
    &database::postgres_tls_not_verified::PostgresTlsNotVerified,
    &database::postgres_server_certificate::PostgresServerCertificate,
    &database::shared_migrated_database::SharedMigratedDatabase,
];

/// Look a rule up by id.
pub fn find(id: &str) -> Option<&'static dyn Rule> {
    ALL.iter().copied().find(|r| r.meta().id == id)
}

/// The metadata of a rule or of one of the engine's own diagnostics.
pub fn find_meta(id: &str) -> Option<&'static RuleMeta> {
    find(id)
        .map(Rule::meta)
        .or_else(|| suppression_meta::ENGINE_RULES.iter().find(|m| m.id == id))
}

/// Ids of every rule, for "did you mean" and validation.
pub fn ids() -> impl Iterator<Item = &'static str> {
    ALL.iter().map(|r| r.meta().id)
}

/// Every id [`find_meta`] knows: the rules' and the engine's own
/// (`invalid-suppression`, `unused-suppression`). These are the ids
/// `dtlint.toml`, `--only`/`--skip` and `dtlint.io/ignore` may name.
pub fn known_ids() -> impl Iterator<Item = &'static str> {
    ids().chain(suppression_meta::ENGINE_RULES.iter().map(|m| m.id))
}

#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    use crate::config::Config;
    use crate::diag::Finding;
    use crate::model::Index;
    use crate::rules::{Context, Rule};
    use crate::workspace::Workspace;

    /// Run `rule` over the files in `dir` with `config`.
    pub fn check_dir(rule: &dyn Rule, dir: &Path, config: &Config) -> Vec<Finding> {
        let ws = Workspace::load(dir, &[dir.to_path_buf()], config).unwrap();
        let index = Index::build(&ws);
        let mut out = Vec::new();
        rule.check(&Context::new(&index, config), &mut out);
        out
    }

    /// Run `rule` over files written to a temporary directory.
    pub fn run(rule: &dyn Rule, files: &[(&str, &str)]) -> Vec<Finding> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        check_dir(rule, dir.path(), &Config::dark_tower())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_profiles_name_rules_that_exist() {
        for id in crate::config::DARK_TOWER_RULES {
            assert!(super::find(id).is_some(), "{id} is not a rule");
        }
    }
}
