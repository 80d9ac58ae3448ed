//! The pipeline flows one way: discover → read/parse → render → index →
//! rules → diagnostics → output. This test reads `src/` and fails when
//!
//! - the module graph (`crate::X` uses outside `#[cfg(test)]`, one node per
//!   top-level module) has a cycle;
//! - a rule touches the disk or runs a process (`src/rules` may not name
//!   `std::fs`, `std::process`, `File::`, `.exists()`, `is_file()`,
//!   `is_dir()` outside its tests): rules are pure functions of the index
//!   and the configuration;
//! - a source file is longer than [`MAX_LINES`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The longest a source file may be.
const MAX_LINES: usize = 700;

/// Files allowed to be longer, each with the reason. Empty on purpose.
const LONG_FILES: &[(&str, &str)] = &[];

/// What rules may not name.
const DISK: &[&str] = &[
    "std::fs",
    "std::process",
    "File::",
    ".exists()",
    "is_file()",
    "is_dir()",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text with comments blanked and string and char literals emptied, so
/// braces and words are only code.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == b'\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == b'r'
            && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            // Raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c as char);
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                if b[j] == b'\n' {
                    out.push('\n');
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j + close.len();
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if i < b.len() && b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            out.push_str("\"\"");
            i += 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}', '{') or a lifetime ('a).
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&x| x == b'\'')
                    .map(|p| i + 2 + p)
            } else {
                let ch_len = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch_len) == Some(&b'\'')).then_some(i + 1 + ch_len)
            };
            if let Some(e) = end {
                out.push_str("' '");
                i = e + 1;
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The code outside `#[cfg(test)]` items, and the names of the modules
/// declared as `#[cfg(test)] mod name;` (test-only files).
fn outside_tests(code: &str) -> (String, Vec<String>) {
    const ATTR: &str = "#[cfg(test)]";
    let mut out = String::new();
    let mut test_mods = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(ATTR) {
        out.push_str(&rest[..at]);
        let after = &rest[at + ATTR.len()..];
        let stop = after.find(['{', ';']).unwrap();
        let head = after[..stop].trim();
        if after.as_bytes()[stop] == b';' {
            if let Some(name) = head.strip_prefix("mod ") {
                test_mods.push(name.trim().to_string());
            }
            rest = &after[stop + 1..];
            continue;
        }
        let mut depth = 0;
        let mut end = stop;
        for (k, ch) in after[stop..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = stop + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    (out, test_mods)
}

/// The top-level modules `code` names through `crate::`, grouped uses
/// (`crate::{a, b::c}`) included; `$crate` (macros) is not a use.
fn crate_uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = code.as_bytes();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && (b[at - 1] == b'$' || b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = true;
            for (k, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start => {
                        start = false;
                        let name = ident(&group[k..]);
                        if !name.is_empty() {
                            out.insert(name);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

struct Source {
    rel: String,
    /// The top-level module the file belongs to (`rules` for
    /// `src/rules/pods/mod.rs`); `None` for `lib.rs` and `main.rs`.
    module: Option<String>,
    /// Code outside `#[cfg(test)]`; empty for test-only files.
    code: String,
    lines: usize,
}

fn sources() -> Vec<Source> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut test_only: BTreeSet<PathBuf> = BTreeSet::new();
    let mut parsed = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let (code, test_mods) = outside_tests(&code_only(&text));
        let dir = if f
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
        {
            f.parent().unwrap().to_path_buf()
        } else {
            f.with_extension("")
        };
        for m in test_mods {
            test_only.insert(dir.join(format!("{m}.rs")));
            test_only.insert(dir.join(&m).join("mod.rs"));
        }
        parsed.push((f.clone(), text.lines().count(), code));
    }
    parsed
        .into_iter()
        .map(|(f, lines, code)| {
            let rel = f
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let first = rel.split('/').next().unwrap().trim_end_matches(".rs");
            let module = (!matches!(first, "lib" | "main")).then(|| first.to_string());
            let code = if test_only.contains(&f) {
                String::new()
            } else {
                code
            };
            Source {
                rel,
                module,
                code,
                lines,
            }
        })
        .collect()
}

/// Module → (module it uses → files that use it).
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn module_graph(sources: &[Source]) -> Graph {
    let mut g: Graph = BTreeMap::new();
    for s in sources {
        let Some(m) = &s.module else { continue };
        let node = g.entry(m.clone()).or_default();
        for used in crate_uses(&s.code) {
            if &used != m {
                node.entry(used).or_default().insert(s.rel.clone());
            }
        }
    }
    g
}

/// Layers of an acyclic graph (each module after everything it uses), or
/// the modules left in cycles.
fn layers(g: &Graph) -> Result<Vec<Vec<String>>, BTreeSet<String>> {
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut nodes: BTreeSet<String> = g.keys().cloned().collect();
    nodes.extend(g.values().flat_map(|d| d.keys().cloned()));
    let mut out = Vec::new();
    while placed.len() < nodes.len() {
        let layer: Vec<String> = nodes
            .iter()
            .filter(|n| !placed.contains(*n))
            .filter(|n| {
                g.get(*n)
                    .is_none_or(|deps| deps.keys().all(|d| placed.contains(d)))
            })
            .cloned()
            .collect();
        if layer.is_empty() {
            return Err(nodes.difference(&placed).cloned().collect());
        }
        placed.extend(layer.iter().cloned());
        out.push(layer);
    }
    Ok(out)
}

#[test]
fn the_module_graph_has_no_cycle() {
    let sources = sources();
    let g = module_graph(&sources);
    assert!(g.contains_key("engine") && g.contains_key("rules"));
    match layers(&g) {
        Ok(layers) => {
            // Written out for whoever reads the test output.
            for (i, l) in layers.iter().enumerate() {
                println!("layer {i}: {}", l.join(", "));
            }
            let at = |m: &str| layers.iter().position(|l| l.iter().any(|x| x == m));
            // The stages in their order.
            let order = [
                "workspace",
                "render",
                "model",
                "netpol",
                "rules",
                "engine",
                "report",
            ];
            for w in order.windows(2) {
                assert!(at(w[0]) < at(w[1]), "{} must come before {}", w[0], w[1]);
            }
        }
        Err(stuck) => {
            let mut msg = String::from("the module graph has a cycle among:\n");
            for m in &stuck {
                for (d, files) in g.get(m).into_iter().flatten() {
                    if stuck.contains(d) {
                        let files: Vec<&str> = files.iter().map(String::as_str).collect();
                        let _ = writeln!(msg, "  {m} -> {d}  ({})", files.join(", "));
                    }
                }
            }
            panic!("{msg}");
        }
    }
}

#[test]
fn rules_read_no_disk_and_run_no_process() {
    let mut found = Vec::new();
    for s in sources().iter().filter(|s| s.rel.starts_with("rules/")) {
        for (n, line) in s.code.lines().enumerate() {
            for bad in DISK {
                if line.contains(bad) {
                    found.push(format!("src/{}:{}: {bad}", s.rel, n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "rules must be pure functions of the index and the configuration; move the fact-finding into the discover/read stage:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_is_too_long() {
    let long: Vec<String> = sources()
        .iter()
        .filter(|s| s.lines > MAX_LINES && !LONG_FILES.iter().any(|(p, _)| *p == s.rel))
        .map(|s| format!("src/{}: {} lines", s.rel, s.lines))
        .collect();
    assert!(
        long.is_empty(),
        "split these files (at most {MAX_LINES} lines):\n{}",
        long.join("\n")
    );
}

/// The checks above see what they are meant to see.
#[test]
fn the_reader_finds_uses_and_skips_tests_comments_and_strings() {
    let text = r##"
use crate::a::X;
use crate::{b::Y, c};
// crate::commented
let s = "crate::in_a_string {";
let r = r#"crate::raw"#;
let c = '{';
fn f<'a>(x: &'a str) {}
$crate::macro_path
#[cfg(test)]
mod tests {
    use crate::tested;
    let brace = "}";
}
#[cfg(test)]
mod more;
use crate::d;
"##;
    let (code, test_mods) = outside_tests(&code_only(text));
    let uses: Vec<String> = crate_uses(&code).into_iter().collect();
    assert_eq!(uses, ["a", "b", "c", "d"]);
    assert_eq!(test_mods, ["more"]);
}
