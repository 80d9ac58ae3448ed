//! SOPS in the workspace: `.sops.yaml`, every SOPS-relevant file parsed with
//! its keyless structure problems, and, once [`SopsState::decrypt`] has run,
//! each file's decrypted and MAC-verified trees.
//!
//! The stages stay in order: discovery asks [`Discovery::wants`] which
//! non-YAML files to read (dotenv, JSON and binary files a creation rule
//! covers, or that carry sops metadata); [`SopsState::read`] parses them at
//! the end of the parse stage; the binary loads the age identities from the
//! environment and calls [`SopsState::decrypt`] before the check stage. Rules
//! only read what is stored here: they never read files, keys or the
//! environment.

use std::path::{Path, PathBuf};

use dtlint_sops::{AgeIdentities, CreationRule, Decrypted, SopsConfig, SopsFile};
use rayon::prelude::*;

use crate::source::FileId;
use crate::workspace::Workspace;
pub use crate::workspace::discover::{CONFIG_NAME, Discovery, is_data_file};

/// `.sops.yaml` as read from the workspace.
#[derive(Debug)]
pub struct ConfigFile {
    pub file: FileId,
    /// The creation rules, or why the file is not YAML.
    pub config: Result<SopsConfig, dtlint_sops::Error>,
}

/// One SOPS-relevant file: covered by a creation rule, or carrying sops
/// metadata.
#[derive(Debug)]
pub struct SopsEntry {
    pub id: FileId,
    pub file: SopsFile<'static>,
    /// The creation rule covering the file (first match), by index.
    pub rule: Option<usize>,
    /// Problems found without a key (`dtlint_sops::check`); recipient
    /// comparisons are left to the rule that words them.
    pub structure: Vec<dtlint_sops::Finding>,
    /// The decryption outcome; `None` when no key was given or the file is
    /// not encrypted.
    pub decrypted: Option<Result<Decrypted, dtlint_sops::Error>>,
}

impl SopsEntry {
    pub fn is_encrypted(&self) -> bool {
        self.file.is_encrypted()
    }

    /// The decrypted documents, when the file decrypted and its MAC verified.
    pub fn plain(&self) -> Option<&Decrypted> {
        self.decrypted.as_ref().and_then(|d| d.as_ref().ok())
    }

    /// The decryption error, when decryption ran and failed.
    pub fn error(&self) -> Option<&dtlint_sops::Error> {
        self.decrypted.as_ref().and_then(|d| d.as_ref().err())
    }
}

/// Everything SOPS-related the rules read.
#[derive(Debug, Default)]
pub struct SopsState {
    pub config: Option<ConfigFile>,
    pub files: Vec<SopsEntry>,
    /// How many age identities decryption had; `None` when no key was given.
    pub identities: Option<usize>,
}

impl SopsState {
    /// Parse `.sops.yaml` and every SOPS-relevant file of the workspace.
    pub fn read(ws: &Workspace) -> Self {
        let config_id = ws.sources.find_abs(&ws.root.join(CONFIG_NAME)).or_else(|| {
            std::path::absolute(ws.root.join(CONFIG_NAME))
                .ok()
                .and_then(|p| ws.sources.find_abs(&p))
        });
        let config = config_id.map(|id| {
            let f = ws.sources.get(id);
            ConfigFile {
                file: id,
                config: SopsConfig::parse(&f.abs, &f.text),
            }
        });
        let cfg = config.as_ref().and_then(|c| c.config.as_ref().ok());
        let candidates: Vec<FileId> = ws
            .sources
            .iter()
            .filter(|(id, f)| {
                Some(*id) != config_id
                    && ws.role(*id) != crate::workspace::Role::Kustomization
                    && (is_data_file(&f.abs)
                        || cfg.is_some_and(|c| c.rule_for(&f.abs).is_some())
                        || has_sops_key(ws, *id))
            })
            .map(|(id, _)| id)
            .collect();
        let files = candidates
            .into_par_iter()
            .map(|id| {
                let f = ws.sources.get(id);
                let file = SopsFile::parse(&f.abs, &f.text).into_owned();
                let rule = cfg.and_then(|c| c.rule_for(&f.abs));
                let structure = dtlint_sops::check(&file, rule)
                    .into_iter()
                    .filter(|x| x.kind != dtlint_sops::FindingKind::RecipientMismatch)
                    .collect();
                SopsEntry {
                    id,
                    file,
                    rule: rule.map(|r| r.index),
                    structure,
                    decrypted: None,
                }
            })
            .collect();
        Self {
            config,
            files,
            identities: None,
        }
    }

    /// Decrypt and verify every encrypted file with `ids`.
    pub fn decrypt(&mut self, ids: &AgeIdentities) {
        self.identities = Some(ids.len());
        self.files.par_iter_mut().for_each(|e| {
            if e.file.is_encrypted() {
                e.decrypted = Some(dtlint_sops::decrypt(&e.file, ids));
            }
        });
    }

    /// True when a key was given, so decryption ran.
    pub fn has_key(&self) -> bool {
        self.identities.is_some()
    }

    /// True when any file carries sops metadata.
    pub fn any_encrypted(&self) -> bool {
        self.files.iter().any(SopsEntry::is_encrypted)
    }

    /// The parsed `.sops.yaml`, when it is readable.
    pub fn sops_config(&self) -> Option<&SopsConfig> {
        self.config.as_ref().and_then(|c| c.config.as_ref().ok())
    }

    /// The creation rule of an entry.
    pub fn rule_of(&self, e: &SopsEntry) -> Option<&CreationRule> {
        self.sops_config()?.rules.get(e.rule?)
    }

    pub fn entry(&self, id: FileId) -> Option<&SopsEntry> {
        self.files.iter().find(|e| e.id == id)
    }
}

fn has_sops_key(ws: &Workspace, id: FileId) -> bool {
    ws.parsed(id)
        .documents
        .iter()
        .any(|d| d.root.entry("sops").is_some())
}

/// The identities sops would use, from `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`
/// and `SOPS_AGE_KEY_CMD`; `Ok(None)` when none is set.
pub fn identities_from_env() -> Result<Option<AgeIdentities>, dtlint_sops::KeysError> {
    AgeIdentities::from_env()
}

/// The note printed once when no key is available.
pub const NO_KEY_NOTE: &str = "SOPS_AGE_KEY_FILE not set: decryption and MAC checks skipped";

/// `.sops.yaml` nearest to `file`: in its directory or an ancestor.
pub fn nearest_config(file: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(file).ok()?;
    abs.parent()?
        .ancestors()
        .map(|d| d.join(CONFIG_NAME))
        .find(|p| p.is_file())
}
