use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::rules::Merged;
use crate::rules::flux::all;
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks the durations of Flux objects (`interval`, `retryInterval`,
    /// `timeout` anywhere in `spec`, except inside Helm `values`) against
    /// the format the CRDs accept: a Go duration of hours, minutes, seconds
    /// and milliseconds, such as `10m`, `1h30m` or `90s`
    /// (`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`).
    ///
    /// ## Why is this bad?
    /// The API server rejects the object (`10 minutes`, `10`, `1d` do not
    /// match), so the cluster keeps running the previous revision while git
    /// says otherwise.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   interval: 10 minutes
    ///   timeout: 1d
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   interval: 10m
    ///   timeout: 24h
    /// ```
    ///
    /// ## References
    /// - Go `time.ParseDuration`: <https://pkg.go.dev/time#ParseDuration>
    /// - Flux Kustomization interval: <https://fluxcd.io/flux/components/kustomize/kustomizations/#interval>
    pub struct FluxIntervalFormat {
        id: "flux-interval-format",
        category: "flux",
        severity: Error,
        summary: "a Flux interval, retryInterval or timeout is not a Go duration",
    }
}

const DURATION_KEYS: [&str; 3] = ["interval", "retryInterval", "timeout"];

/// Keys whose contents belong to the chart, not to Flux.
const OPAQUE: [&str; 4] = ["values", "valuesFrom", "postRenderers", "patches"];

/// `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`, the pattern of the Flux CRDs.
pub fn is_duration(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.is_empty() {
        return false;
    }
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let frac = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == frac {
                return false;
            }
        }
        if b[i..].starts_with(b"ms") {
            i += 2;
        } else if i < b.len() && matches!(b[i], b's' | b'm' | b'h') {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn walk<'n>(node: &'n Node, out: &mut Vec<(&'n Node, &'n str)>) {
    for e in node.entries() {
        let Some(key) = e.key.as_str() else { continue };
        if OPAQUE.contains(&key) {
            continue;
        }
        if DURATION_KEYS.contains(&key)
            && e.value.as_mapping().is_none()
            && e.value.as_sequence().is_none()
        {
            out.push((&e.value, key));
        } else {
            walk(&e.value, out);
        }
    }
    for item in node.items() {
        walk(item, out);
    }
}

impl Rule for FluxIntervalFormat {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let mut merged = Merged::default();
        for r in all(ctx.index) {
            let Some(spec) = r.spec() else { continue };
            let mut found = Vec::new();
            walk(spec, &mut found);
            for (value, key) in found {
                let text = value.as_scalar().map_or("", |s| s.text.as_str());
                // A number is a number even when it looks right: `10` has no unit.
                if value.as_str().is_some() && value.as_i64().is_none() && is_duration(text) {
                    continue;
                }
                merged.add(
                    Finding::new(
                        Self::META.id,
                        Label::new(r.file, value.span, "not a Go duration"),
                        format!("`{key}: {text}` of {} is not a duration like `10m` or `1h30m`", r.id()),
                    )
                    .help("Write the duration with units h, m, s or ms and no spaces, e.g. `10m`, `1h30m`, `90s` (days are `24h`)."),
                    r.env,
                );
            }
        }
        out.extend(merged.into_findings());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;

    #[test]
    fn go_durations() {
        for ok in ["10m", "1h30m", "10m0s", "1.5h", "500ms", "0s"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in [
            "",
            "10",
            "10 minutes",
            "1d",
            "m",
            "1.h",
            "10M",
            "-1m",
            "1h 30m",
        ] {
            assert!(!is_duration(bad), "{bad}");
        }
    }

    #[test]
    fn values_are_the_chart_s_business() {
        let hr = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: x}\nspec:\n  interval: 1h\n  timeout: 10\n  chart: {spec: {interval: 12 hours}}\n  values: {timeout: 30}\n";
        let out = run(&FluxIntervalFormat, &[("hr.yaml", hr)]);
        let msgs: Vec<&str> = out.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "`timeout: 10` of HelmRelease/x is not a duration like `10m` or `1h30m`",
                "`interval: 12 hours` of HelmRelease/x is not a duration like `10m` or `1h30m`",
            ]
        );
    }
}
