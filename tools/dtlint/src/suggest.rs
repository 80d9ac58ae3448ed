//! "Did you mean": the closest of a set of known names, by Levenshtein
//! distance (the `strsim` crate). One helper for `dtlint explain`, `--only`
//! and `--skip`, `dtlint.toml` validation, `dtlint.io/ignore` annotations and
//! the rules that spot a renamed key.

/// The largest distance [`closest`] accepts for `candidate`: a third of its
/// length, at least 1 and at most 3 — enough for a typo or two, never so
/// much that a short word "matches" an unrelated one.
pub fn max_distance(candidate: &str) -> usize {
    (candidate.chars().count() / 3).clamp(1, 3)
}

/// The option closest to `candidate` within [`max_distance`], or `None`.
/// Ties go to the option listed first.
pub fn closest<'a, I>(candidate: &str, options: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    closest_within(candidate, options, max_distance(candidate))
}

/// The option closest to `candidate` at distance `max` or less, or `None`.
/// Ties go to the option listed first.
pub fn closest_within<'a, I>(candidate: &str, options: I, max: usize) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    options
        .into_iter()
        .map(|o| (strsim::levenshtein(candidate, o), o))
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

/// `"; did you mean `x`?"` when there is a close option, else `""`.
pub fn did_you_mean<'a, I>(candidate: &str, options: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    closest(candidate, options).map_or_else(String::new, |o| format!("; did you mean `{o}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_the_intended_name() {
        let ids = ["latest-tag", "missing-resources", "run-as-root"];
        assert_eq!(closest("latest-tagg", ids), Some("latest-tag"));
        assert_eq!(closest("lateest-tg", ids), Some("latest-tag"));
        assert_eq!(closest("run-as-rot", ids), Some("run-as-root"));
        assert_eq!(closest("completely-different", ids), None);
        assert_eq!(closest("x", ["y", "xy"]), Some("y"));
        assert_eq!(closest("ab", ["cd"]), None);
        assert_eq!(
            did_you_mean("min_replica", ["overlays", "min_replicas"]),
            "; did you mean `min_replicas`?"
        );
        assert_eq!(did_you_mean("zzz", ["overlays"]), "");
    }
}
