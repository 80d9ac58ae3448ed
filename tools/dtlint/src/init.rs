//! `dtlint init`: a commented `dtlint.toml` holding what dtlint finds in the
//! repository on its own (the environments of `clusters/*`, else the
//! directories a Flux sync applies), to adjust and commit.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::Config;

/// The text of a `dtlint.toml` for the repository at `root`.
pub fn config_text(root: &Path) -> String {
    let mut config = Config::defaults();
    let envs = config.discover_environments(root);
    let mut out = String::from(
        "# dtlint configuration, written by `dtlint init` from what it found in this\n\
         # repository. Adjust it and commit it; `dtlint explain <rule>` documents each rule.\n\
         \n\
         # Conventions beyond upstream Kubernetes and Flux semantics: \"generic\" (none),\n\
         # or a house profile such as \"dark-tower\".\n\
         profile = \"generic\"\n\
         \n\
         # Files never read (gitignore-style globs, relative to this file).\n\
         # exclude = [\"vendor/**\"]\n\
         \n\
         # Severity per rule: \"error\", \"warning\", \"info\" or \"off\".\n\
         # [rules]\n\
         # latest-tag = \"warning\"\n",
    );
    if envs.is_empty() {
        // No clusters/: the directories a FluxInstance or `flux bootstrap`
        // syncs, as `dtlint check` finds them.
        let roots = crate::workspace::Workspace::load(root, &[root.to_path_buf()], &config)
            .map(|ws| crate::render::sync_roots(&ws))
            .unwrap_or_default();
        if !roots.is_empty() {
            out.push_str(
                "\n# One environment per directory a Flux sync applies: its Flux Kustomizations,\n\
                 # and those they apply in turn, are rendered the way kustomize-controller builds them.\n",
            );
            for (name, path, from) in roots {
                let _ = write!(
                    out,
                    "\n[environments.{name}]\n\
                     cluster = \"{path}\"   # synced by {from}\n\
                     # min_replicas = 2            # every workload runs at least this many replicas\n\
                     # [environments.{name}.rules]\n\
                     # latest-tag = \"error\"\n"
                );
            }
            return out;
        }
        out.push_str(
            "\n# No clusters/<name>/ directory was found. Declare an environment to have its\n\
             # overlays rendered and checked as the cluster receives them:\n\
             # [environments.production]\n\
             # overlays = \"overlays/production\"   # one kustomize overlay per directory below\n",
        );
        return out;
    }
    out.push_str(
        "\n# One environment per Flux cluster directory: the Flux Kustomizations there say\n\
         # which overlays dtlint renders, the way kustomize-controller builds them.\n",
    );
    for name in envs {
        let _ = write!(
            out,
            "\n[environments.{name}]\n\
             cluster = \"clusters/{name}\"\n\
             # overlays = \"apps/{name}\"   # render only the overlays under this directory\n\
             # min_replicas = 2            # every workload runs at least this many replicas\n\
             # [environments.{name}.rules]\n\
             # latest-tag = \"error\"\n"
        );
    }
    out
}

/// `dtlint init`: write the text to `dtlint.toml` at `root` (or print it),
/// never over an existing one unless `force`. Returns what to tell the
/// user on standard error.
pub fn run(root: &Path, force: bool, stdout: bool) -> Result<String, String> {
    let text = config_text(root);
    if stdout {
        print!("{text}");
        return Ok(String::new());
    }
    let path = root.join(crate::config::FILE_NAME);
    if path.exists() && !force {
        return Err(format!(
            "{} exists; `dtlint init --stdout` prints what it would write, `--force` replaces it",
            path.display()
        ));
    }
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(format!("dtlint: wrote {}\n", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_a_valid_config_with_the_clusters() {
        let dir = tempfile::tempdir().unwrap();
        for env in ["staging", "production"] {
            std::fs::create_dir_all(dir.path().join("clusters").join(env)).unwrap();
        }
        let text = config_text(dir.path());
        let config = Config::parse(&text, "dtlint.toml").unwrap();
        let envs: Vec<_> = config
            .environments_in_order()
            .map(|(n, e)| (n, e.cluster.clone()))
            .collect();
        assert_eq!(
            envs,
            [
                ("production", Some("clusters/production".into())),
                ("staging", Some("clusters/staging".into()))
            ]
        );
        let bare = config_text(tempfile::tempdir().unwrap().path());
        assert!(
            Config::parse(&bare, "dtlint.toml")
                .unwrap()
                .environments
                .is_empty()
        );
        assert!(bare.contains("No clusters/<name>/ directory"));
    }
}
