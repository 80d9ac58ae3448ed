//! `dtlint sops encrypt|decrypt|updatekeys`: make and maintain SOPS files
//! without the Go `sops` binary, with the recipients of the nearest
//! `.sops.yaml` creation rule.
//!
//! Every error names the file and, where it is known, the line and column
//! (and the sops key path of the value). Errors about the file's content
//! (tampered, not encrypted, no key for it) exit 1; usage, configuration and
//! I/O problems exit 2, like `dtlint check`.

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use dtlint_sops::{AgeIdentities, EncryptOptions, ErrorKind, Format, SopsConfig, SopsFile};

use crate::sops_index::nearest_config;

/// Why a `dtlint sops` command failed, with the exit status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The file's content is wrong: tampered, not encrypted, unreadable.
    #[error("{0}")]
    File(dtlint_sops::Error),
    /// Usage, configuration, keys or I/O.
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    /// 1 for a problem in the file, 2 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::File(_) => 1,
            CliError::Usage(_) => 2,
        }
    }
}

impl From<dtlint_sops::Error> for CliError {
    fn from(e: dtlint_sops::Error) -> Self {
        match e.kind() {
            ErrorKind::NoIdentities
            | ErrorKind::Config(_)
            | ErrorKind::Crypto(_)
            | ErrorKind::Keys(_) => CliError::Usage(e.to_string()),
            _ => CliError::File(e),
        }
    }
}

fn read_text(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
}

/// Write `text` to `path` through a temporary file in the same directory,
/// so an interrupted write never leaves half a secret behind.
fn write_atomic(path: &Path, text: &[u8]) -> Result<(), CliError> {
    let io = |e: std::io::Error| CliError::Usage(format!("cannot write {}: {e}", path.display()));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.dtlint-tmp"));
    std::fs::write(&tmp, text).map_err(io)?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(&tmp, meta.permissions()).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// The identities from `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY` or
/// `SOPS_AGE_KEY_CMD`.
pub fn identities() -> Result<AgeIdentities, CliError> {
    match AgeIdentities::from_env() {
        Ok(Some(ids)) => Ok(ids),
        Ok(None) => Err(CliError::Usage(
            "no age identity available: set SOPS_AGE_KEY_FILE, SOPS_AGE_KEY or SOPS_AGE_KEY_CMD"
                .into(),
        )),
        Err(e) => Err(CliError::Usage(e.to_string())),
    }
}

/// `path` relative to the current directory when it is below it.
fn shown(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let rel = cwd
        .as_deref()
        .and_then(|c| path.strip_prefix(c).ok())
        .unwrap_or(path);
    rel.display().to_string()
}

/// The nearest `.sops.yaml` and its rule for `file`, as options.
fn rule_options(file: &Path) -> Result<Option<(PathBuf, usize, EncryptOptions)>, CliError> {
    let Some(cfg_path) = nearest_config(file) else {
        return Ok(None);
    };
    let cfg = SopsConfig::load(&cfg_path).map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(p) = cfg.problems.first() {
        return Err(CliError::Usage(format!(
            "{}:{}: {}",
            cfg_path.display(),
            p.span.start,
            p.message
        )));
    }
    let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    Ok(cfg
        .rule_for(&abs)
        .map(|r| (cfg_path.clone(), r.index, EncryptOptions::from_rule(r))))
}

/// Split `--age` values (comma-separated or repeated) into recipients.
fn age_list(age: &[String]) -> Vec<String> {
    age.iter()
        .flat_map(|a| a.split(','))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What a command did, for the message on stderr.
#[derive(Debug)]
pub struct Done {
    /// The text to print on standard output, if any.
    pub stdout: Option<Vec<u8>>,
    /// A one-line report for standard error.
    pub note: Option<String>,
}

/// `dtlint sops encrypt FILE [--age R,...] [--in-place]`.
pub fn encrypt(file: &Path, age: &[String], in_place: bool) -> Result<Done, CliError> {
    let input =
        std::fs::read(file).map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
    let rule = rule_options(file)?;
    let recipients = age_list(age);
    let (mut opts, from) = match rule {
        Some((cfg, index, opts)) => (opts, format!("`{}` rule {}", shown(&cfg), index + 1)),
        None if !recipients.is_empty() => (EncryptOptions::default(), String::new()),
        None => {
            return Err(CliError::Usage(format!(
                "{}: no `.sops.yaml` creation rule covers this file; pass --age RECIPIENT",
                file.display()
            )));
        }
    };
    let from = if recipients.is_empty() {
        from
    } else {
        opts.key_groups = vec![recipients];
        opts.shamir_threshold = None;
        "--age".to_string()
    };
    let out = dtlint_sops::encrypt(file, &input, Format::from_path(file), &opts)?;
    let n: usize = opts.key_groups.iter().map(Vec::len).sum();
    if in_place {
        write_atomic(file, out.as_bytes())?;
        Ok(Done {
            stdout: None,
            note: Some(format!(
                "{}: encrypted to {n} age recipient(s) from {from}",
                file.display()
            )),
        })
    } else {
        Ok(Done {
            stdout: Some(out.into_bytes()),
            note: None,
        })
    }
}

/// `dtlint sops decrypt FILE [--output OUT]`. Refuses a file whose MAC does
/// not verify.
pub fn decrypt(file: &Path, output: Option<&Path>) -> Result<Done, CliError> {
    let ids = identities()?;
    let text = read_text(file)?;
    let parsed = SopsFile::parse(file, &text);
    let plain = dtlint_sops::decrypt_to_plaintext(&parsed, &ids)?;
    match output {
        Some(out) => {
            write_atomic(out, &plain)?;
            Ok(Done {
                stdout: None,
                note: Some(format!(
                    "{}: decrypted to {}",
                    file.display(),
                    out.display()
                )),
            })
        }
        None => Ok(Done {
            stdout: Some(plain),
            note: None,
        }),
    }
}

/// `dtlint sops updatekeys FILE [--age R,...] [--yes]`: re-encrypt the data
/// key to the rule's recipients (or `--age`), keeping values, MAC and
/// `lastmodified`. Without `--yes` it asks on a terminal and refuses
/// otherwise.
pub fn update_keys(file: &Path, age: &[String], yes: bool) -> Result<Done, CliError> {
    let text = read_text(file)?;
    let parsed = SopsFile::parse(file, &text);
    let recipients = age_list(age);
    let (groups, threshold, from) = if recipients.is_empty() {
        match rule_options(file)? {
            Some((cfg, index, opts)) => (
                opts.key_groups,
                opts.shamir_threshold,
                format!("`{}` rule {}", shown(&cfg), index + 1),
            ),
            None => {
                return Err(CliError::Usage(format!(
                    "{}: no `.sops.yaml` creation rule covers this file; pass --age RECIPIENT",
                    file.display()
                )));
            }
        }
    } else {
        (vec![recipients], None, "--age".to_string())
    };
    let current: Vec<String> = parsed
        .metadata()
        .map(|m| {
            m.age_recipients()
                .map(|s| s.recipient.value.clone())
                .collect()
        })
        .unwrap_or_default();
    let wanted: Vec<String> = groups.iter().flatten().cloned().collect();
    let ids = identities()?;
    let Some(out) = dtlint_sops::update_keys(&parsed, &ids, &groups, threshold)? else {
        return Ok(Done {
            stdout: None,
            note: Some(format!(
                "{}: recipients already match {from}; nothing to do",
                file.display()
            )),
        });
    };
    let removed: Vec<&String> = current.iter().filter(|r| !wanted.contains(r)).collect();
    let added: Vec<&String> = wanted.iter().filter(|r| !current.contains(r)).collect();
    let mut plan = format!("{}: recipients from {from}\n", file.display());
    for r in &added {
        let _ = writeln!(plan, "  + {r}");
    }
    for r in &removed {
        let _ = writeln!(plan, "  - {r}");
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Usage(format!(
                "{plan}refusing to rewrite {} without --yes (standard input is not a terminal)",
                file.display()
            )));
        }
        eprint!("{plan}Write these keys to {}? [y/N] ", file.display());
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| CliError::Usage(format!("cannot read the answer: {e}")))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(CliError::Usage(format!("{}: not changed", file.display())));
        }
        plan.clear();
    }
    write_atomic(file, out.as_bytes())?;
    Ok(Done {
        stdout: None,
        note: Some(format!("{plan}{}: keys updated", file.display())),
    })
}
