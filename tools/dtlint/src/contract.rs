//! Config contracts: the environment variables each service reads, as the
//! service publishes them in `services/<svc>/config-contract.toml`.
//!
//! ```toml
//! service = "global-controller"
//!
//! [[env]]
//! name = "DATABASE_URL"
//! required = true
//! secret = true
//! description = "PostgreSQL connection URL."
//! ```
//!
//! The files are read while the workspace is loaded (their locations are
//! globs in `dtlint.toml`, `contracts`); the `env-contract` and `env-unused`
//! rules compare them with the workloads.

use std::path::Path;

use serde::Deserialize;

/// One service's contract.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// The service's `app.kubernetes.io/name`.
    pub service: String,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Where it was read from, relative to the root.
    #[serde(skip)]
    pub path: String,
    /// The service's `migrations/` directory next to the contract, relative
    /// to the root, when it has one: the service migrates its database.
    #[serde(skip)]
    pub migrations: Option<String>,
}

/// The name of the directory, next to a contract, that holds the service's
/// database migrations.
pub const MIGRATIONS_DIR: &str = "migrations";

/// One variable the service reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub required: bool,
    /// Must come from a Secret, never from a literal or a ConfigMap.
    #[serde(default)]
    pub secret: bool,
    /// The value the service uses when the variable is unset.
    #[serde(default)]
    pub default: Option<toml::Value>,
    /// Another variable the service falls back to (e.g. `HOSTNAME`).
    #[serde(default)]
    pub default_from: Option<String>,
    #[serde(default)]
    pub description: String,
}

impl EnvVar {
    /// Must the manifests provide it?
    pub fn must_be_provided(&self) -> bool {
        self.required && self.default.is_none() && self.default_from.is_none()
    }
}

impl Contract {
    pub fn var(&self, name: &str) -> Option<&EnvVar> {
        self.env.iter().find(|v| v.name == name)
    }
}

/// A contract file that cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}:{col}: {message}")]
pub struct ContractError {
    pub path: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Parse one contract; `path` is for messages.
pub fn parse(text: &str, path: &str) -> Result<Contract, ContractError> {
    let mut c: Contract = toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map_or((1, 1), |s| {
            let before = &text[..s.start.min(text.len())];
            (
                before.matches('\n').count() + 1,
                before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
            )
        });
        ContractError {
            path: path.to_string(),
            line,
            col,
            message: e.message().to_string(),
        }
    })?;
    c.path = path.to_string();
    Ok(c)
}

/// Read every contract matching `globs` (relative to `root`), sorted by path.
pub fn load(root: &Path, globs: &[String]) -> Result<Vec<Contract>, ContractError> {
    let mut paths = Vec::new();
    for pattern in globs {
        let Ok(glob) = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
        else {
            return Err(ContractError {
                path: "dtlint.toml".into(),
                line: 1,
                col: 1,
                message: format!("invalid contracts pattern `{pattern}`"),
            });
        };
        let matcher = glob.compile_matcher();
        // Walk only below the pattern's literal prefix.
        let prefix: std::path::PathBuf = Path::new(pattern)
            .components()
            .take_while(|c| {
                !c.as_os_str()
                    .to_string_lossy()
                    .contains(['*', '?', '[', '{'])
            })
            .collect();
        let start = root.join(&prefix);
        if !start.is_dir() {
            if start.is_file() && matcher.is_match(&prefix) {
                paths.push(start);
            }
            continue;
        }
        for entry in ignore::WalkBuilder::new(&start)
            .hidden(true)
            .git_ignore(true)
            .require_git(false)
            .build()
            .flatten()
        {
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
            if entry.file_type().is_some_and(|t| t.is_file()) && matcher.is_match(rel) {
                paths.push(entry.into_path());
            }
        }
    }
    paths.sort();
    paths.dedup();
    let mut out = Vec::new();
    for p in paths {
        let shown = crate::source::display_path(root, &p);
        let text = std::fs::read_to_string(&p).map_err(|e| ContractError {
            path: shown.clone(),
            line: 1,
            col: 1,
            message: e.to_string(),
        })?;
        let mut contract = parse(&text, &shown)?;
        contract.migrations = p
            .parent()
            .map(|d| d.join(MIGRATIONS_DIR))
            .filter(|d| d.is_dir())
            .map(|d| crate::source::display_path(root, &d));
        out.push(contract);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contracts_parse_and_errors_are_positioned() {
        let c = parse(
            "service = \"gc\"\n[[env]]\nname = \"A\"\nrequired = true\n[[env]]\nname = \"B\"\nrequired = true\ndefault = 30\n[[env]]\nname = \"MC_ID\"\nrequired = true\ndefault_from = \"HOSTNAME\"\n",
            "c.toml",
        )
        .unwrap();
        assert!(c.var("A").unwrap().must_be_provided());
        assert!(!c.var("B").unwrap().must_be_provided(), "has a default");
        assert!(!c.var("MC_ID").unwrap().must_be_provided(), "falls back");
        let e = parse("service = \"gc\"\n[[env]]\nnam = \"A\"\n", "c.toml").unwrap_err();
        assert_eq!((e.line, e.path.as_str()), (3, "c.toml"), "{e}");
    }

    #[test]
    fn contracts_are_found_by_glob() {
        let d = tempfile::tempdir().unwrap();
        for svc in ["b", "a"] {
            let dir = d.path().join("services").join(svc);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("config-contract.toml"),
                format!("service = \"{svc}\"\n"),
            )
            .unwrap();
        }
        std::fs::write(
            d.path().join("services/config-contract.toml"),
            "service = \"top\"\n",
        )
        .unwrap();
        std::fs::create_dir_all(d.path().join("services/b/migrations")).unwrap();
        let all = load(d.path(), &["services/*/config-contract.toml".into()]).unwrap();
        let names: Vec<&str> = all.iter().map(|c| c.service.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(all[0].path, "services/a/config-contract.toml");
        assert_eq!(all[0].migrations, None);
        assert_eq!(all[1].migrations.as_deref(), Some("services/b/migrations"));
    }
}
