//! CRD validation rules (`x-kubernetes-validations`) evaluated with the
//! `cel` crate. Kubernetes adds functions of its own (`quantity()`,
//! `url()`, `isSorted()`, …) and transition rules see the object's previous
//! version (`oldSelf`); a rule that needs either, or that the crate cannot
//! parse, is not evaluated, and the run counts it (`check --verbose` says
//! which) instead of guessing.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// What a rule says about a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Holds,
    Fails,
    /// Not evaluated, and why.
    Skipped(String),
}

/// What schema validation left unchecked in this process, by reason.
static UNCHECKED: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// Count one thing left unchecked (for `check --verbose`).
pub fn unchecked(reason: String) {
    if let Ok(mut m) = UNCHECKED.lock() {
        *m.entry(reason).or_default() += 1;
    }
}

fn skip(reason: String) -> Verdict {
    unchecked(format!("CEL validation rule not evaluated: {reason}"));
    Verdict::Skipped(reason)
}

/// What was left unchecked so far, by reason, with how many times.
pub fn skipped() -> BTreeMap<String, usize> {
    UNCHECKED.lock().map(|m| m.clone()).unwrap_or_default()
}

/// Largest rule evaluated (the API server's own cost limits keep real rules
/// far below this).
const MAX_RULE: usize = 4096;

/// Evaluate `rule` with `self` bound to `value`.
pub fn evaluate(rule: &str, value: &serde_json::Value) -> Verdict {
    if rule.contains("oldSelf") {
        return skip(
            "a transition rule (it compares with the object's previous version, `oldSelf`)".into(),
        );
    }
    if rule.len() > MAX_RULE {
        return skip(format!("a rule longer than {MAX_RULE} characters"));
    }
    let Ok(program) = cel::Program::compile(rule) else {
        return skip("a rule the CEL parser does not read".into());
    };
    let mut ctx = cel::Context::default();
    if ctx.add_variable("self", value).is_err() {
        return skip("a value CEL cannot hold".into());
    }
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(true)) => Verdict::Holds,
        Ok(cel::Value::Bool(false)) => Verdict::Fails,
        Ok(_) => skip("a rule that does not give a boolean".into()),
        Err(e) => {
            let text = e.to_string();
            // "Undeclared reference to 'quantity'": a Kubernetes function.
            let reason = match text.split_once("Undeclared reference to '") {
                Some((_, rest)) => format!(
                    "a rule using `{}`, a Kubernetes CEL function the crate does not have",
                    rest.split('\'').next().unwrap_or(rest)
                ),
                None => format!("a rule the crate cannot evaluate ({text})"),
            };
            skip(reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Verdict, evaluate};
    use serde_json::json;

    #[test]
    fn flux_rules_hold_and_fail() {
        let rule =
            "(has(self.chart) && !has(self.chartRef)) || (!has(self.chart) && has(self.chartRef))";
        assert_eq!(evaluate(rule, &json!({"chart": {}})), Verdict::Holds);
        assert_eq!(
            evaluate(rule, &json!({"chart": {}, "chartRef": {}})),
            Verdict::Fails
        );
        assert_eq!(evaluate(rule, &json!({})), Verdict::Fails);
        let rule = "self.provider == 'aws' || self.provider == 'generic' || !has(self.sts)";
        assert_eq!(
            evaluate(rule, &json!({"provider": "gcp", "sts": {}})),
            Verdict::Fails
        );
        assert_eq!(
            evaluate(rule, &json!({"provider": "aws", "sts": {}})),
            Verdict::Holds
        );
        assert_eq!(evaluate("self.size() <= 3", &json!([1, 2])), Verdict::Holds);
        assert_eq!(evaluate("self.x > 2", &json!({"x": 1})), Verdict::Fails);
    }

    #[test]
    fn what_cannot_be_evaluated_is_skipped_with_a_reason() {
        let Verdict::Skipped(why) = evaluate("self == oldSelf", &json!(1)) else {
            panic!("evaluated a transition rule");
        };
        assert!(why.contains("oldSelf"), "{why}");
        assert!(matches!(evaluate("self.(", &json!(1)), Verdict::Skipped(_)));
        assert!(matches!(
            evaluate("quantity(self).isGreaterThan(quantity('1'))", &json!("2")),
            Verdict::Skipped(_)
        ));
        assert!(matches!(evaluate("self", &json!(1)), Verdict::Skipped(_)));
    }
}
