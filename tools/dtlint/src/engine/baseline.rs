//! Baselines: `dtlint baseline -o dtlint-baseline.json` records today's
//! findings; `dtlint check --baseline dtlint-baseline.json` reports only the
//! ones that are not in it, and names the recorded ones that no longer
//! occur (fixed, so the baseline can shrink).
//!
//! A finding is recorded by a fingerprint of its rule, its file, the text
//! it points at (trimmed) and its message: lines added or removed
//! elsewhere in the file do not change it, an edit of the flagged text
//! does. Two findings with one fingerprint are counted.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::diag::Finding;
use crate::source::Sources;

/// The file format, version 1.
#[derive(Debug, Serialize, Deserialize)]
pub struct Baseline {
    pub version: u32,
    pub findings: Vec<Entry>,
}

/// One recorded finding.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub fingerprint: String,
    pub rule: String,
    pub file: String,
    pub message: String,
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in {}: {}", self.rule, self.file, self.message)
    }
}

/// The fingerprint of `f` (see the module docs).
pub fn fingerprint(f: &Finding, sources: &Sources) -> String {
    let file = sources.get(f.primary.file);
    let text = file.text.as_str();
    let span = f.primary.span;
    let range = span.start.offset as usize..span.end.offset as usize;
    let pointed = text
        .get(range)
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| {
            // An empty span: the line it is on.
            let start = text[..(span.start.offset as usize).min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
            &text[start..end]
        });
    let mut h = Sha256::new();
    for part in [
        f.rule,
        file.path.as_str(),
        pointed.trim(),
        f.message.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    hex::encode(&h.finalize()[..16])
}

/// Write the baseline of `findings` to `path`.
pub fn record(path: &Path, findings: &[Finding], sources: &Sources) -> Result<usize, String> {
    let mut entries: Vec<Entry> = findings
        .iter()
        .map(|f| Entry {
            fingerprint: fingerprint(f, sources),
            rule: f.rule.to_string(),
            file: sources.get(f.primary.file).path.clone(),
            message: f.message.clone(),
        })
        .collect();
    entries.sort_by(|a, b| {
        (&a.file, &a.rule, &a.fingerprint).cmp(&(&b.file, &b.rule, &b.fingerprint))
    });
    let n = entries.len();
    let text = serde_json::to_string_pretty(&Baseline {
        version: 1,
        findings: entries,
    })
    .map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(n)
}

/// Read a baseline, bounded like any input.
pub fn read(path: &Path) -> Result<Baseline, String> {
    const LIMIT: u64 = 64 * 1024 * 1024;
    let text = crate::render_guard::read_bounded_text(path, LIMIT).ok_or_else(|| {
        format!(
            "cannot read the baseline {} (missing, unreadable or over 64 MiB)",
            path.display()
        )
    })?;
    let b: Baseline = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}:{}:{}: not a dtlint baseline: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    if b.version != 1 {
        return Err(format!(
            "{}: baseline version {} is not one this dtlint reads (1)",
            path.display(),
            b.version
        ));
    }
    Ok(b)
}

/// Drop the findings the baseline records; return the recorded entries
/// that no longer occur.
pub fn apply(baseline: &Baseline, findings: &mut Vec<Finding>, sources: &Sources) -> Vec<Entry> {
    let mut left: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in &baseline.findings {
        left.entry(e.fingerprint.as_str()).or_default().push(e);
    }
    findings.retain(|f| {
        let fp = fingerprint(f, sources);
        match left.get_mut(fp.as_str()) {
            Some(entries) if !entries.is_empty() => {
                entries.pop();
                false
            }
            _ => true,
        }
    });
    left.into_values().flatten().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::read;

    #[test]
    fn a_file_that_is_no_baseline_is_a_positioned_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.json");
        std::fs::write(&p, "{\n  \"version\": 1,\n  \"findings\": [1]\n}\n").unwrap();
        let e = read(&p).unwrap_err();
        assert!(e.contains("b.json:3:"), "{e}");
        std::fs::write(&p, "{\"version\": 2, \"findings\": []}").unwrap();
        assert!(read(&p).unwrap_err().contains("version 2"));
        assert!(read(&dir.path().join("none.json")).is_err());
    }
}
