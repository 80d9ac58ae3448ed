//! Alerts, Alertmanager routes and dashboards (`base/platform/monitoring`, the
//! kube-prometheus-stack values), checked with the real tools on what each environment renders:
//!
//! - every PrometheusRule passes `promtool check rules` and the unit tests in `tests/alerts/`
//!   (`promtool test rules`: series in, alerts out), and every ADR-0012 threshold row has its
//!   alert;
//! - every dashboard is a ConfigMap the Grafana sidecar loads, and every PromQL expression in
//!   it parses (`promtool check rules` on them as recording rules);
//! - the Alertmanager configuration passes `amtool check-config` and routes by severity.
//!
//! A failure names the source file and line a human edits (the rule's `expr`, the dashboard's
//! query). `promtool` is Debian's `prometheus` package, `amtool` its `prometheus-alertmanager`;
//! without them a test goes through [`skip`] (a failure under `DT_REQUIRE_ALL`).

// The helpers below run only inside tests: a failed expectation is a test failure.
#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use manifest_tests::{
    ENVIRONMENTS, Node, NodeExt, kustomize_build, load_yaml, read, rel, repo_root,
    run_with_timeout, skip, which, yaml,
};
use serde_json::{Value, json};

/// promtool and amtool finish in well under a second; a hung one fails the test.
const TOOL_TIMEOUT: Duration = Duration::from_mins(1);

/// The overlay of an environment's alerts and dashboards.
fn monitoring_overlay(env: &str) -> PathBuf {
    repo_root().join(format!("overlays/{env}/platform/monitoring"))
}

fn render(dir: &Path) -> Vec<Node> {
    let root = repo_root();
    let out = kustomize_build(dir).unwrap_or_else(|e| panic!("{}: {e}", rel(&root, dir)));
    yaml::parse(&out).unwrap_or_else(|e| panic!("{}: rendered output: {e}", rel(&root, dir)))
}

fn of_kind<'a>(docs: &'a [Node], kind: &str) -> impl Iterator<Item = &'a Node> {
    docs.iter()
        .filter(move |d| d.str_at(&["kind"]) == Some(kind))
}

/// A tool on PATH, or `None` after [`skip`].
fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = which(name);
    if found.is_none() {
        skip(&format!(
            "{name} is not on PATH (apt-get install {package}; tools/ci/test-all.sh does)"
        ));
    }
    found
}

/// Runs a tool with [`TOOL_TIMEOUT`]: `(success, stdout and stderr)`.
fn run_tool(command: &mut Command) -> (bool, String) {
    let shown = format!("{command:?}");
    let done = run_with_timeout(command, TOOL_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let mut output = done.stdout;
    output.push_str(&done.stderr);
    if output.trim().is_empty() {
        output = format!("{shown}: no output");
    }
    (done.success, output)
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("dt-monitoring-")
        .tempdir()
        .expect("temporary directory")
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

// ------------------------------------------------------------ where a rule is written

/// Every PrometheusRule as written in the repository (base and overlays), by name, with its
/// file: the place a failure is reported at.
fn rule_sources() -> BTreeMap<String, (PathBuf, Node)> {
    let root = repo_root();
    let mut found = BTreeMap::new();
    for top in ["base", "overlays"] {
        for file in manifest_tests::yaml_files(&root.join(top)).expect("listing YAML files") {
            let Ok(docs) = load_yaml(&file) else { continue };
            for doc in docs {
                if doc.str_at(&["kind"]) == Some("PrometheusRule")
                    && let Some(name) = doc.str_at(&["metadata", "name"])
                {
                    found
                        .entry(name.to_owned())
                        .or_insert_with(|| (file.clone(), doc.clone()));
                }
            }
        }
    }
    found
}

/// One rule of a rendered PrometheusRule, and where to point at it.
#[derive(Clone)]
struct RuleAt {
    object: String,
    group: String,
    /// `alert` or `record` name.
    name: String,
    /// `file:line:column` of its `expr` in the source, when the source is known.
    source: String,
}

/// The rendered PrometheusRules' groups as one rule file, one rule per line (JSON is YAML),
/// so that every line promtool names maps back to one rule: `(text, rule at each line)`.
/// `keep_annotations: false` leaves annotations out (the unit tests do not compare them).
fn rule_file(docs: &[Node], keep_annotations: bool) -> (String, Vec<Option<RuleAt>>) {
    let root = repo_root();
    let sources = rule_sources();
    let mut text = String::from("{\"groups\": [\n");
    let mut lines: Vec<Option<RuleAt>> = vec![None];
    let mut first_group = true;
    for doc in of_kind(docs, "PrometheusRule") {
        let object = doc.str_at(&["metadata", "name"]).unwrap_or("<no name>");
        let spec = doc.to_json();
        let groups = spec["spec"]["groups"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (g, group) in groups.iter().enumerate() {
            let mut header = group.clone();
            let rules = header
                .as_object_mut()
                .and_then(|o| o.remove("rules"))
                .and_then(|r| r.as_array().cloned())
                .unwrap_or_default();
            let header = serde_json::to_string(&header).expect("JSON");
            if !first_group {
                text.push_str(",\n");
                lines.push(None);
            }
            first_group = false;
            let _ = writeln!(
                text,
                "{}, \"rules\": [",
                header.strip_suffix('}').unwrap_or(&header)
            );
            lines.push(None);
            let group_name = group["name"].as_str().unwrap_or("<no name>").to_owned();
            for (r, rule) in rules.iter().enumerate() {
                let mut rule = rule.clone();
                if !keep_annotations && let Some(o) = rule.as_object_mut() {
                    o.remove("annotations");
                }
                let source = sources.get(object).map_or_else(
                    || format!("PrometheusRule {object}"),
                    |(file, node)| {
                        let at = node
                            .locate(&format!("/spec/groups/{g}/rules/{r}/expr"))
                            .pos();
                        format!("{}:{at}", rel(&root, file))
                    },
                );
                let name = rule["alert"]
                    .as_str()
                    .or_else(|| rule["record"].as_str())
                    .unwrap_or("<unnamed>")
                    .to_owned();
                let comma = if r + 1 < rules.len() { "," } else { "" };
                let _ = writeln!(
                    text,
                    "{}{comma}",
                    serde_json::to_string(&rule).expect("JSON")
                );
                lines.push(Some(RuleAt {
                    object: object.to_owned(),
                    group: group_name.clone(),
                    name,
                    source,
                }));
            }
            text.push_str("]}");
        }
    }
    text.push_str("\n]}\n");
    (text, lines)
}

/// promtool's complaint, each line that names a line of the rule file prefixed with the rule's
/// source place (`file:line:column: alert X (group G, PrometheusRule O): ...`).
fn explain(output: &str, file_name: &str, lines: &[Option<RuleAt>]) -> String {
    let at_line = regex::Regex::new(&format!(r"(?:{}: |line )(\d+)", regex::escape(file_name)))
        .expect("regex");
    let mut out = String::new();
    for line in output.lines() {
        let rule = at_line
            .captures(line)
            .and_then(|c| c[1].parse::<usize>().ok())
            .and_then(|n| lines.get(n.saturating_sub(1)).cloned().flatten());
        match rule {
            Some(rule) => {
                let _ = writeln!(
                    out,
                    "{}: {} (group {}, PrometheusRule {}): {}",
                    rule.source,
                    rule.name,
                    rule.group,
                    rule.object,
                    line.trim()
                );
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}

// ------------------------------------------------------------ alerts

#[test]
fn prometheus_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = tool("promtool", "prometheus") else {
        return;
    };
    let root = repo_root();
    let unit_tests = root.join("tools/manifest-tests/tests/alerts");
    let mut failures = Vec::new();
    for env in ENVIRONMENTS {
        let docs = render(&monitoring_overlay(env));
        assert!(
            of_kind(&docs, "PrometheusRule").count() >= 3,
            "{env}: expected the PrometheusRules of base/platform/monitoring"
        );
        let dir = scratch();

        // Everything as written, annotations (their templates) included.
        let (text, lines) = rule_file(&docs, true);
        write(&dir.path().join("check.yaml"), &text);
        let (ok, output) = run_tool(Command::new(&promtool).current_dir(dir.path()).args([
            "check",
            "rules",
            "check.yaml",
        ]));
        if !ok {
            failures.push(format!(
                "{env}: promtool check rules:\n{}",
                explain(&output, "check.yaml", &lines)
            ));
            continue;
        }

        // Series in, alerts out: the unit tests beside a copy of the rendered rules.
        let (text, lines) = rule_file(&docs, false);
        write(&dir.path().join("rules.yaml"), &text);
        let mut files = Vec::new();
        for file in manifest_tests::yaml_files(&unit_tests).expect("listing unit tests") {
            let name = file.file_name().expect("file name").to_owned();
            std::fs::copy(&file, dir.path().join(&name)).expect("copying a unit test");
            files.push(name);
        }
        write(&dir.path().join("cardinality.yaml"), &cardinality_test());
        files.push("cardinality.yaml".into());
        assert!(
            files.len() >= 3,
            "no unit tests in {}",
            rel(&root, &unit_tests)
        );
        let (ok, output) = run_tool(
            Command::new(&promtool)
                .current_dir(dir.path())
                .args(["test", "rules"])
                .args(&files),
        );
        if !ok {
            failures.push(format!(
                "{env}: promtool test rules (tests in {}):\n{}",
                rel(&root, &unit_tests),
                explain(&output, "rules.yaml", &lines)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The per-metric cardinality alert needs more than 1,000 series of one metric: 1,001 series
/// fire it, 1,000 of another do not.
fn cardinality_test() -> String {
    let mut series = Vec::new();
    for i in 0..1001 {
        series.push(json!({
            "series": format!("mc_http_requests_total{{namespace=\"dark-tower\", route=\"/r/{i}\"}}"),
            "values": "1x30",
        }));
    }
    for i in 0..1000 {
        series.push(json!({
            "series": format!("gc_http_requests_total{{namespace=\"dark-tower\", route=\"/r/{i}\"}}"),
            "values": "1x30",
        }));
    }
    let test = json!({
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [{
                "eval_time": "20m",
                "alertname": "DarkTowerMetricCardinalityHigh",
                "exp_alerts": [{"exp_labels": {
                    "severity": "warning",
                    "threshold": "metric-cardinality",
                    "metric": "mc_http_requests_total",
                }}],
            }],
        }],
    });
    serde_json::to_string_pretty(&test).expect("JSON")
}

/// ADR-0012's "Operational Thresholds" rows, by the `threshold` label of the alert that
/// watches each (docs/operations/alerts.md has the table).
const THRESHOLD_ROWS: [(&str, &str); 11] = [
    ("CPU sustained >80% for 5min", "cpu-sustained"),
    ("Memory utilization >85%", "memory-utilization"),
    ("iowait >20% sustained", "iowait"),
    ("CPU steal >10%", "cpu-steal"),
    ("MH bandwidth warning 70%", "mh-bandwidth-warning"),
    ("MH bandwidth hard limit 80%", "mh-bandwidth-hard-limit"),
    ("Canary error threshold 150% of baseline", "canary-error"),
    ("Connection pool scale-up 80%", "pool-scale-up"),
    ("Connection pool scale-down 30%", "pool-scale-down"),
    ("WAL archive lag warning 300s", "wal-archive-lag-warning"),
    ("WAL archive lag critical 600s", "wal-archive-lag-critical"),
];

#[test]
fn every_adr_threshold_row_has_one_alert_with_a_severity_and_a_runbook() {
    let mut failures = Vec::new();
    for env in ENVIRONMENTS {
        let docs = render(&monitoring_overlay(env));
        let mut thresholds: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut slos = BTreeSet::new();
        for doc in of_kind(&docs, "PrometheusRule") {
            let spec = doc.to_json();
            for group in spec["spec"]["groups"].as_array().into_iter().flatten() {
                for rule in group["rules"].as_array().into_iter().flatten() {
                    let Some(alert) = rule["alert"].as_str() else {
                        continue;
                    };
                    let severity = rule["labels"]["severity"].as_str().unwrap_or("");
                    if !matches!(severity, "warning" | "critical") {
                        failures.push(format!("{env}: {alert}: severity {severity:?}"));
                    }
                    for key in ["summary", "description", "runbook_url"] {
                        if rule["annotations"][key].as_str().is_none_or(str::is_empty) {
                            failures.push(format!("{env}: {alert}: no {key} annotation"));
                        }
                    }
                    if let Some(t) = rule["labels"]["threshold"].as_str() {
                        thresholds
                            .entry(t.to_owned())
                            .or_default()
                            .push(alert.to_owned());
                    }
                    if let Some(s) = rule["labels"]["slo"].as_str() {
                        slos.insert(s.to_owned());
                    }
                }
            }
        }
        for (row, label) in THRESHOLD_ROWS {
            match thresholds.get(label).map(Vec::len) {
                Some(1) => {}
                Some(n) => failures.push(format!("{env}: {n} alerts for '{row}' ({label})")),
                None => failures.push(format!("{env}: no alert for '{row}' (threshold: {label})")),
            }
        }
        for slo in ["availability", "latency"] {
            if !slos.contains(slo) {
                failures.push(format!("{env}: no {slo} SLO alert"));
            }
        }
        if !thresholds.contains_key("metric-cardinality") {
            failures.push(format!("{env}: no cardinality alert"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The pool alerts and the overview's pool panel divide by PgBouncer's `default_pool_size`:
/// the number must be the Pooler's in every environment.
#[test]
fn pool_utilization_divides_by_the_poolers_default_pool_size() {
    let root = repo_root();
    let divisor =
        regex::Regex::new(r"cnpg_pgbouncer_pools_sv_active\{[^}]*\}\)\s*/\s*(\d+)").expect("regex");
    let mut failures = Vec::new();
    for env in ENVIRONMENTS {
        let postgres = render(&root.join(format!("overlays/{env}/postgres")));
        let sizes: BTreeSet<String> = of_kind(&postgres, "Pooler")
            .filter_map(|p| {
                p.str_at(&["spec", "pgbouncer", "parameters", "default_pool_size"])
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(
            sizes.len(),
            1,
            "{env}: the Poolers' default_pool_size: {sizes:?}"
        );
        let size = sizes.first().cloned().unwrap_or_default();
        let monitoring = render(&monitoring_overlay(env));
        let text = serde_json::to_string(&monitoring.iter().map(Node::to_json).collect::<Vec<_>>())
            .expect("JSON")
            .replace("\\n", " ")
            .replace("\\\"", "\"");
        let uses: Vec<String> = divisor
            .captures_iter(&text)
            .map(|c| c[1].to_owned())
            .collect();
        assert!(
            uses.len() >= 3,
            "{env}: expected the pool alerts and panel, found {uses:?}"
        );
        for used in uses {
            if used != size {
                failures.push(format!(
                    "{env}: pool utilization divides by {used}, the Pooler's default_pool_size is {size}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ------------------------------------------------------------ dashboards

/// Every `expr` in a Grafana dashboard, with the title of the panel it is in.
fn dashboard_queries(value: &Value, panel: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            let title = map
                .get("title")
                .and_then(Value::as_str)
                .filter(|_| map.contains_key("targets") || map.contains_key("type"))
                .unwrap_or(panel);
            for (key, inner) in map {
                if key == "expr"
                    && let Some(expr) = inner.as_str()
                {
                    out.push((title.to_owned(), expr.to_owned()));
                } else {
                    dashboard_queries(inner, title, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, panel, out)),
        _ => {}
    }
}

/// A Grafana query as PromQL: its interval variables become `5m`, any other `$var` or
/// `${var}` a plain word (they stand inside label matchers).
fn as_promql(expr: &str) -> String {
    let mut out = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "5m")
        .replace("$__range", "5m");
    let variable = regex::Regex::new(r"\$\{?\w+\}?").expect("regex");
    out = variable.replace_all(&out, "var").into_owned();
    out
}

/// The source line of a query in a dashboard file (its JSON-escaped text).
fn line_of(file: &Path, expr: &str) -> String {
    let root = repo_root();
    let text = read(file).unwrap_or_default();
    let needle = serde_json::to_string(expr).expect("JSON");
    let line = text
        .find(&needle)
        .map_or(0, |at| text[..at].lines().count().max(1));
    format!("{}:{line}", rel(&root, file))
}

#[test]
fn dashboards_are_sidecar_configmaps_and_every_query_parses() {
    let Some(promtool) = tool("promtool", "prometheus") else {
        return;
    };
    let root = repo_root();
    let dashboards_dir = root.join("base/platform/monitoring/dashboards");
    let at = regex::Regex::new(r"dashboards\.yaml: (\d+)").expect("regex");
    let mut failures = Vec::new();
    for env in ENVIRONMENTS {
        // The sidecar must be on and look for what the ConfigMaps carry.
        let stack = render(&root.join(format!("overlays/{env}/platform/kube-prometheus-stack")));
        let values = of_kind(&stack, "HelmRelease")
            .map(Node::to_json)
            .find(|h| h["metadata"]["name"] == "kube-prometheus-stack")
            .expect("the kube-prometheus-stack HelmRelease")["spec"]["values"]
            .clone();
        let sidecar = &values["grafana"]["sidecar"]["dashboards"];
        if values["grafana"]["enabled"] != true || sidecar["enabled"] != true {
            failures.push(format!(
                "{env}: Grafana or its dashboard sidecar is not enabled"
            ));
        }
        let (label, label_value) = (
            sidecar["label"].as_str().unwrap_or("grafana_dashboard"),
            sidecar["labelValue"].as_str().unwrap_or("1"),
        );

        let docs = render(&monitoring_overlay(env));
        let mut titles = BTreeSet::new();
        let mut rules = String::from("{\"groups\": [{\"name\": \"dashboards\", \"rules\": [\n");
        let mut at_line: Vec<Option<String>> = vec![None];
        let mut count = 0;
        for cm in of_kind(&docs, "ConfigMap") {
            let cm = cm.to_json();
            if cm["metadata"]["labels"][label] != label_value {
                continue;
            }
            if cm["metadata"]["namespace"] != "monitoring" {
                failures.push(format!(
                    "{env}: ConfigMap {} is not in Grafana's namespace (monitoring)",
                    cm["metadata"]["name"]
                ));
            }
            for (file, body) in cm["data"].as_object().into_iter().flatten() {
                let source = dashboards_dir.join(file);
                let dashboard: Value = serde_json::from_str(body.as_str().unwrap_or(""))
                    .unwrap_or_else(|e| panic!("{}: not JSON: {e}", rel(&root, &source)));
                let title = dashboard["title"].as_str().unwrap_or("").to_owned();
                if title.is_empty() || dashboard["uid"].as_str().is_none() {
                    failures.push(format!(
                        "{}: a dashboard needs a title and a uid",
                        rel(&root, &source)
                    ));
                }
                titles.insert(title);
                let mut queries = Vec::new();
                dashboard_queries(&dashboard["panels"], "", &mut queries);
                if queries.is_empty() {
                    failures.push(format!("{}: no queries", rel(&root, &source)));
                }
                for (panel, expr) in queries {
                    count += 1;
                    let rule = json!({"record": format!("dashboard_query_{count}"), "expr": as_promql(&expr)});
                    let _ = writeln!(
                        rules,
                        "{}{}",
                        if count > 1 { "," } else { "" },
                        serde_json::to_string(&rule).expect("JSON")
                    );
                    at_line.push(Some(format!(
                        "{}: panel {panel:?}",
                        line_of(&source, &expr)
                    )));
                }
            }
        }
        rules.push_str("]}]}\n");
        for wanted in [
            "ac-service",
            "global-controller",
            "meeting-controller",
            "media-handler",
            "overview",
        ] {
            if !titles.iter().any(|t| t.contains(wanted)) {
                failures.push(format!("{env}: no {wanted} dashboard (found {titles:?})"));
            }
        }
        let dir = scratch();
        write(&dir.path().join("dashboards.yaml"), &rules);
        let (ok, output) = run_tool(Command::new(&promtool).current_dir(dir.path()).args([
            "check",
            "rules",
            "dashboards.yaml",
        ]));
        if !ok {
            let mut explained = String::new();
            for line in output.lines() {
                let place = at
                    .captures(line)
                    .and_then(|c| c[1].parse::<usize>().ok())
                    .and_then(|n| at_line.get(n.saturating_sub(1)).cloned().flatten());
                let _ = writeln!(
                    explained,
                    "{}{}",
                    place.map(|p| format!("{p}: ")).unwrap_or_default(),
                    line.trim()
                );
            }
            failures.push(format!(
                "{env}: a dashboard query does not parse:\n{explained}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ------------------------------------------------------------ Alertmanager

#[test]
fn alertmanager_routes_by_severity_inhibits_warnings_and_passes_amtool() {
    let Some(amtool) = tool("amtool", "prometheus-alertmanager") else {
        return;
    };
    let root = repo_root();
    let mut failures = Vec::new();
    for env in ENVIRONMENTS {
        let stack = render(&root.join(format!("overlays/{env}/platform/kube-prometheus-stack")));
        let config =
            of_kind(&stack, "HelmRelease")
                .map(Node::to_json)
                .find(|h| h["metadata"]["name"] == "kube-prometheus-stack")
                .expect("the kube-prometheus-stack HelmRelease")["spec"]["values"]["alertmanager"]
                ["config"]
                .clone();
        if config.is_null() {
            failures.push(format!(
                "{env}: no alertmanager.config in the kube-prometheus-stack values"
            ));
            continue;
        }
        let dir = scratch();
        let file = dir.path().join("alertmanager.yaml");
        write(&file, &serde_json::to_string_pretty(&config).expect("JSON"));
        let (ok, output) = run_tool(Command::new(&amtool).arg("check-config").arg(&file));
        if !ok {
            failures.push(format!("{env}: amtool check-config:\n{output}"));
            continue;
        }
        for (labels, receiver) in [
            (
                &["severity=critical", "alertname=PostgresWALArchiveLag"][..],
                "pager",
            ),
            (
                &["severity=warning", "alertname=NodeCPUStealHigh"][..],
                "ticket",
            ),
            (&["alertname=Watchdog", "severity=none"][..], "null"),
        ] {
            let (ok, output) = run_tool(
                Command::new(&amtool)
                    .args(["config", "routes", "test", "--config.file"])
                    .arg(&file)
                    .args(labels),
            );
            let got: Vec<&str> = output
                .lines()
                .filter(|l| !l.starts_with("Warning:"))
                .map(str::trim)
                .collect();
            if !ok || got != [receiver] {
                failures.push(format!(
                    "{env}: {labels:?} routes to {got:?}, not {receiver}"
                ));
            }
        }
        let inhibits = config["inhibit_rules"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| {
                let has = |key: &str, want: &str| {
                    r[key].as_array().is_some_and(|m| {
                        m.iter()
                            .any(|v| v.as_str().is_some_and(|s| s.replace(' ', "") == want))
                    })
                };
                has("source_matchers", "severity=\"critical\"")
                    && has("target_matchers", "severity=\"warning\"")
                    && has("equal", "alertname")
                    && has("equal", "namespace")
            });
        if !inhibits {
            failures.push(format!(
                "{env}: no inhibit rule where a critical silences the warning of the same alertname and namespace"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
