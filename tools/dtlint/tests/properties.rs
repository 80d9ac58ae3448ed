//! Properties of dtlint's small pure pieces, over generated input: the
//! "did you mean" helper, `dtlint.toml` reading, and Kubernetes quantities.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use dtlint::config::Config;
use dtlint::suggest::{closest, max_distance};
use proptest::prelude::*;

/// Every id `dtlint.toml` may name.
fn known_ids() -> Vec<&'static str> {
    dtlint::rules::known_ids().collect()
}

fn rule_id() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(known_ids())
}

/// `id` with one character inserted, removed or replaced.
fn one_edit(id: &'static str) -> impl Strategy<Value = String> {
    let len = id.chars().count();
    (0..=len, 0..3u8, proptest::char::range('a', 'z')).prop_map(move |(at, op, c)| {
        let mut chars: Vec<char> = id.chars().collect();
        match op {
            0 => chars.insert(at, c),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ if at < chars.len() => chars[at] = c,
            _ => chars.push(c),
        }
        chars.into_iter().collect()
    })
}

const LEVELS: [&str; 4] = ["error", "warning", "info", "off"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A suggestion is always one of the options, within the distance bound,
    /// and no option is strictly closer.
    #[test]
    fn a_suggestion_is_a_close_option(
        candidate in "[a-z-]{0,16}",
        options in proptest::collection::vec("[a-z-]{0,16}", 0..8),
    ) {
        let got = closest(&candidate, options.iter().map(String::as_str));
        let distance = |o: &str| strsim::levenshtein(&candidate, o);
        let best = options.iter().map(|o| distance(o)).min();
        match got {
            Some(s) => {
                prop_assert!(options.iter().any(|o| o == s));
                prop_assert!(distance(s) <= max_distance(&candidate));
                prop_assert_eq!(Some(distance(s)), best);
            }
            None => prop_assert!(best.is_none_or(|d| d > max_distance(&candidate))),
        }
    }

    /// A rule id with one typo is an error at its line in every place a
    /// rule id is written, and what it suggests is a known id.
    #[test]
    fn a_misspelt_rule_id_is_an_error_at_its_line(
        typo in rule_id().prop_flat_map(one_edit),
        place in 0..3usize,
    ) {
        prop_assume!(!known_ids().contains(&typo.as_str()));
        let (text, line) = match place {
            0 => (format!("[rules]\n\"{typo}\" = \"off\"\n"), 2),
            1 => (
                format!("[environments.qa]\noverlays = \"o/qa\"\n\n[environments.qa.rules]\n\"{typo}\" = \"off\"\n"),
                5,
            ),
            _ => (format!("[[exemption]]\nreason = \"r\"\nrule = \"{typo}\"\n"), 3),
        };
        let config = Config::parse(&text, "dtlint.toml").unwrap();
        let err = config.check_rule_ids(&known_ids()).unwrap_err().to_string();
        let expected_prefix = format!("dtlint.toml:{line}:");
        prop_assert!(err.starts_with(&expected_prefix), "{}", err);
        prop_assert!(err.contains(&format!("unknown rule `{typo}`")), "{}", err);
        if let Some((_, rest)) = err.split_once("did you mean `") {
            let suggested = rest.trim_end_matches("`?");
            prop_assert!(known_ids().contains(&suggested), "{}", err);
        }
    }

    /// Any valid configuration written out as TOML reads back as itself.
    #[test]
    fn a_valid_config_written_out_reads_back(
        rules in proptest::collection::btree_map(rule_id(), proptest::sample::select(LEVELS.to_vec()), 0..6),
        exemptions in proptest::collection::vec(
            (rule_id(), proptest::option::of("[a-z]{1,8}(/[a-z*]{1,8}){0,3}"), "\\PC{1,40}")
                .prop_filter("reasons are not blank", |(_, _, r)| !r.trim().is_empty()),
            0..4,
        ),
        min_replicas in proptest::option::of(1..10i64),
        udp_ports in proptest::collection::vec(1..65535i64, 0..4),
    ) {
        let mut table = toml::Table::new();
        table.insert("udp_ports".into(), toml::Value::try_from(&udp_ports).unwrap());
        table.insert(
            "rules".into(),
            toml::Value::try_from(&rules).unwrap(),
        );
        let mut env = toml::Table::new();
        env.insert("overlays".into(), "overlays/qa".into());
        if let Some(n) = min_replicas {
            env.insert("min_replicas".into(), n.into());
        }
        env.insert("rules".into(), toml::Value::try_from(&rules).unwrap());
        table.insert(
            "environments".into(),
            toml::Value::try_from(BTreeMap::from([("qa", env)])).unwrap(),
        );
        let exemption: Vec<toml::Table> = exemptions
            .iter()
            .map(|(rule, path, reason)| {
                let mut t = toml::Table::new();
                t.insert("rule".into(), (*rule).into());
                if let Some(p) = path {
                    t.insert("path".into(), p.as_str().into());
                }
                t.insert("reason".into(), reason.as_str().into());
                t
            })
            .collect();
        table.insert("exemption".into(), toml::Value::try_from(exemption).unwrap());
        let text = toml::to_string(&table).unwrap();

        let config = Config::parse(&text, "dtlint.toml")
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        config.check_rule_ids(&known_ids()).unwrap();
        prop_assert_eq!(config.udp_ports(), &udp_ports[..]);
        let levels = |m: &BTreeMap<String, dtlint::config::Level>| -> BTreeMap<String, Option<dtlint::diag::Severity>> {
            m.iter().map(|(k, v)| (k.clone(), v.0)).collect()
        };
        let want: BTreeMap<String, Option<dtlint::diag::Severity>> = rules
            .iter()
            .map(|(k, v)| ((*k).to_string(), dtlint::diag::Severity::parse_setting(v).unwrap()))
            .collect();
        prop_assert_eq!(levels(&config.rules), want.clone());
        let qa = &config.environments["qa"];
        prop_assert_eq!(qa.min_replicas, min_replicas);
        prop_assert_eq!(levels(&qa.rules), want);
        prop_assert_eq!(config.exemptions.len(), exemptions.len());
        for (got, (rule, path, reason)) in config.exemptions.iter().zip(&exemptions) {
            prop_assert_eq!(&got.rule, rule);
            prop_assert_eq!(&got.path, path);
            prop_assert_eq!(&got.reason, reason);
        }
    }

    /// A quantity with a suffix is its number times the suffix's factor, and
    /// `same` agrees across units.
    #[test]
    fn quantities_scale_by_their_suffix(n in 0u32..1_000_000) {
        let n64 = f64::from(n);
        for (suffix, factor) in [
            ("", 1.0),
            ("m", 1e-3),
            ("k", 1e3),
            ("M", 1e6),
            ("G", 1e9),
            ("Ki", 1024.0),
            ("Mi", 1024.0 * 1024.0),
            ("Gi", 1024.0 * 1024.0 * 1024.0),
        ] {
            let q = format!("{n}{suffix}");
            prop_assert_eq!(dtlint::quantity::parse(&q), Some(n64 * factor), "{}", q);
        }
        let (kibi, milli, mebi) = (u64::from(n) * 1024, u64::from(n) * 1000, u64::from(n) * 1024);
        let pairs = [
            (format!("{n}Ki"), kibi.to_string(), true),
            (format!("{milli}m"), n.to_string(), true),
            (format!("{n}Mi"), format!("{mebi}Ki"), true),
            (format!("{n}G"), format!("{n}Gi"), n == 0),
        ];
        for (a, b, equal) in pairs {
            prop_assert_eq!(dtlint::quantity::same(&a, &b), equal, "{} vs {}", a, b);
        }
    }

    /// Text that is not a quantity is never read as one.
    #[test]
    fn non_quantities_are_rejected(s in "[0-9]{1,4}[a-zA-Z]{1,3}") {
        let suffix = s.trim_start_matches(|c: char| c.is_ascii_digit());
        let known = ["m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"];
        prop_assume!(!known.contains(&suffix) && !suffix.starts_with(['e', 'E']));
        prop_assert_eq!(dtlint::quantity::parse(&s), None);
    }
}
