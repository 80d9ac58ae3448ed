//! Profiles: which conventions apply beyond upstream Kubernetes and Flux
//! semantics.
//!
//! Without a profile (`generic`), dtlint judges what holds for any
//! repository: what the API server, kustomize and Flux will do with the
//! manifests, and the hazards established linters agree on. A profile adds a
//! house's conventions: `dark-tower` is this platform's (the six
//! `app.kubernetes.io` labels with `part-of: dark-tower`, selectors on the
//! stable labels only, the seven-file service layout, an overlay per
//! environment, config contracts, QUIC ports, `/health` probes of our own
//! images, every workload selected by an allow NetworkPolicy, rollouts that
//! keep full capacity, every probed or targeted port declared). A rule a
//! profile turns on can also be turned on alone in
//! `[rules]`.

use serde::Deserialize;

/// The rules that only the `dark-tower` profile turns on.
pub const DARK_TOWER_RULES: &[&str] = &[
    "missing-standard-labels",
    "unstable-selector",
    "seven-file-pattern",
    "missing-environment-overlay",
    "env-contract",
    "env-unused",
    "shared-migrated-database",
    "workload-not-isolated",
    "rolling-update-capacity",
];

/// A set of conventions (`profile` in `dtlint.toml`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Profile {
    /// Upstream semantics only.
    #[default]
    Generic,
    /// Dark Tower's conventions on top.
    DarkTower,
}

/// The values a profile gives the settings `dtlint.toml` leaves out.
pub struct ProfileDefaults {
    pub udp_ports: &'static [i64],
    pub own_images: &'static [&'static str],
    pub contracts: &'static [&'static str],
    pub service_dirs: &'static [&'static str],
    pub service_dirs_skip: &'static [&'static str],
}

const GENERIC: ProfileDefaults = ProfileDefaults {
    udp_ports: &[],
    own_images: &[],
    contracts: &[],
    service_dirs: &[],
    service_dirs_skip: &[],
};

const DARK_TOWER: ProfileDefaults = ProfileDefaults {
    // QUIC: the meeting controller's WebTransport and the media handler.
    udp_ports: &[4433, 4434],
    own_images: &["ghcr.io/dark-tower/"],
    contracts: &["services/*/config-contract.toml"],
    service_dirs: &["base/*"],
    service_dirs_skip: &["base/platform", "base/platform/**"],
};

impl Profile {
    /// Every profile, as written in `dtlint.toml`.
    pub const ALL: [(&'static str, Profile); 2] = [
        ("generic", Profile::Generic),
        ("dark-tower", Profile::DarkTower),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Generic => "generic",
            Profile::DarkTower => "dark-tower",
        }
    }

    pub fn defaults(self) -> &'static ProfileDefaults {
        match self {
            Profile::Generic => &GENERIC,
            Profile::DarkTower => &DARK_TOWER,
        }
    }

    /// Does this profile run `rule` at its default severity?
    pub fn enables(self, rule: &str) -> bool {
        self == Profile::DarkTower || !DARK_TOWER_RULES.contains(&rule)
    }

    /// The profile that turns `rule` on, when the generic one does not.
    pub fn of_rule(rule: &str) -> Option<Profile> {
        DARK_TOWER_RULES
            .contains(&rule)
            .then_some(Profile::DarkTower)
    }
}

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Some((_, p)) = Profile::ALL.iter().find(|(n, _)| *n == s) {
            return Ok(*p);
        }
        let names = Profile::ALL.map(|(n, _)| n);
        Err(serde::de::Error::custom(
            match crate::suggest::closest(&s, names) {
                Some(name) => format!("unknown profile `{s}`; did you mean `{name}`?"),
                None => format!("unknown profile `{s}`; expected {}", names.join(" or ")),
            },
        ))
    }
}
