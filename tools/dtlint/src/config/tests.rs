use super::*;

#[test]
fn bad_severity_is_positioned() {
    let err = Config::parse("[rules]\nlatest-tag = \"loud\"\n", "dtlint.toml").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("dtlint.toml:2:"), "{msg}");
    assert!(msg.contains("unknown severity `loud`"), "{msg}");
}

#[test]
fn exemptions_need_a_reason() {
    let err = Config::parse(
        "[[exemption]]\nrule = \"latest-tag\"\nreason = \" \"\n",
        "dtlint.toml",
    )
    .unwrap_err();
    assert!(err.to_string().contains("needs a non-empty reason"));
    let err = Config::parse("[[exemption]]\nrule = \"latest-tag\"\n", "d.toml").unwrap_err();
    assert!(err.to_string().contains("reason"), "{err}");
}

#[test]
fn certificates_have_defaults_and_name_known_environments() {
    let c = Config::parse("[environments.staging]\noverlays = \"o/s\"\n", "d.toml").unwrap();
    assert_eq!(c.certificates.min_validity_days, 30);
    assert!(c.certificates.allows_self_signed("development"));
    assert!(!c.certificates.allows_self_signed("staging"));
    let c = Config::parse(
        "[environments.qa]\noverlays = \"o/q\"\n[certificates]\nmin-validity-days = 7\nself-signed-environments = [\"qa\"]\n",
        "d.toml",
    )
    .unwrap();
    assert_eq!(c.certificates.min_validity_days, 7);
    assert!(c.certificates.allows_self_signed("qa"));
    assert!(!c.certificates.allows_self_signed("development"));
    let err = Config::parse(
        "[environments.qa]\noverlays = \"o/q\"\n[certificates]\nself-signed-environments = [\"dev\"]\n",
        "d.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("d.toml:4:"), "{err}");
    assert!(err.contains("`dev`"), "{err}");
    let err = Config::parse("[certificates]\nmin_validity_days = 7\n", "d.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("min_validity_days"), "{err}");
}

#[test]
fn rule_ids_are_checked_against_the_known_ones_at_their_position() {
    let known = ["latest-tag", "run-as-root"];
    let c = Config::parse(
        "[rules]\nlatest-tag = \"off\"\n[environments.p]\noverlays = \"o/p\"\n[environments.p.rules]\nrun-as-root = \"error\"\n[[exemption]]\nrule = \"latest-tag\"\nreason = \"r\"\n",
        "d.toml",
    )
    .unwrap();
    c.check_rule_ids(&known).unwrap();
    let err = |text: &str| {
        Config::parse(text, "d.toml")
            .unwrap()
            .check_rule_ids(&known)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err("[rules]\nlatest-tagg = \"off\"\n"),
        "d.toml:2:1: unknown rule `latest-tagg` in [rules]; did you mean `latest-tag`?"
    );
    assert_eq!(
        err("[[exemption]]\nrule = \"nothing-like-it\"\nreason = \"r\"\n"),
        "d.toml:2:8: unknown rule `nothing-like-it` in an exemption"
    );
    // The first in the file, whatever table it is in.
    assert!(
        err("[environments.p]\noverlays = \"o\"\n[environments.p.rules]\nrun-as-rot = \"off\"\n[rules]\nlatest-tagg = \"off\"\n")
            .starts_with("d.toml:4:1: unknown rule `run-as-rot` in [environments.p.rules]")
    );
}

#[test]
fn unknown_keys_name_the_closest_key() {
    let err = Config::parse("[[exemption]]\nrul = \"x\"\nreason = \"r\"\n", "d.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "d.toml:2:1: unknown key `rul`; did you mean `rule`?");
    let err = Config::parse("[network]\nnamespce = \"x\"\n", "d.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "d.toml:2:1: unknown key `namespce`; did you mean `namespace`?"
    );
}

#[test]
fn exemption_globs_that_match_nothing_are_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("base/gc")).unwrap();
    std::fs::write(dir.join("base/gc/deployment.yaml"), "").unwrap();
    let c = Config::parse(
        "[[exemption]]\nrule = \"a\"\npath = \"base/**/deployment.yaml\"\nreason = \"r\"\n[[exemption]]\nrule = \"b\"\nreason = \"r\"\n[[exemption]]\nrule = \"c\"\npath = \"overlays/**\"\nreason = \"r\"\n",
        "d.toml",
    )
    .unwrap();
    let warnings: Vec<String> = c.warnings(dir).iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "d.toml:10:8: warning: exemption path `overlays/**` (rule `c`) matches no file in the repository"
        ]
    );
}

#[test]
fn environments_keep_their_declaration_order() {
    let c = Config::parse(
        "[environments.development]\noverlays = \"o/d\"\n[environments.staging]\noverlays = \"o/s\"\n[environments.production]\noverlays = \"o/p\"\n[environments.staging.resources]\n",
        "d.toml",
    )
    .unwrap();
    let names: Vec<&str> = c.environments_in_order().map(|(n, _)| n).collect();
    assert_eq!(names, ["development", "staging", "production"]);
    assert!(c.environment_rank("staging") < c.environment_rank("production"));
    assert_eq!(c.environment_rank("qa"), usize::MAX);
}

#[test]
fn environments_match_by_directory() {
    let c = Config::parse(
        "[environments.production]\noverlays = \"overlays/production\"\ncluster = \"clusters/production\"\n",
        "d.toml",
    )
    .unwrap();
    assert_eq!(
        c.environment_of("overlays/production/gc/k.yaml"),
        Some("production")
    );
    assert_eq!(
        c.environment_of("clusters/production/apps.yaml"),
        Some("production")
    );
    assert_eq!(c.environment_of("overlays/production-old/x.yaml"), None);
}
