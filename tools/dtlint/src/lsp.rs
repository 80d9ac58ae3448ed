//! `dtlint lsp`: a Language Server on standard input and output.
//!
//! Each open, change or save checks the repository around the document the
//! way `dtlint check` does, reading the open documents from the editor's
//! buffers (overlays are still built from the files on disk), and publishes
//! the findings of every open document of that repository with the same
//! ranges `check` reports. A finding with a fix offers it as a quick fix
//! (safe ones preferred); hovering a finding shows its rule's
//! documentation (`dtlint explain`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use lsp_server::{Connection, Message, Notification, Request, Response};
use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams, Diagnostic,
    DiagnosticSeverity, DidChangeTextDocumentParams, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, DidSaveTextDocumentParams, Hover, HoverContents, HoverParams,
    MarkupContent, MarkupKind, NumberOrString, Position, PublishDiagnosticsParams, Range,
    ServerCapabilities, TextDocumentSyncKind, TextEdit, Uri, WorkspaceEdit,
};

use crate::config::Config;
use crate::diag::Severity;
use crate::engine::{self, RenderOptions, Selection};
use crate::workspace::Buffers;

/// One published finding, with what code actions and hovers need.
#[derive(Debug, Clone)]
struct Published {
    range: Range,
    rule: &'static str,
    diagnostic: Diagnostic,
    /// The fix: its edit's range and text, and whether it is safe.
    fix: Option<(Range, String, bool)>,
}

#[derive(Default)]
struct State {
    /// Open documents' text, by absolute path.
    docs: Buffers,
    /// What was last published, by absolute path.
    published: HashMap<PathBuf, Vec<Published>>,
}

/// The position of byte `offset` of `text`: 0-based line, UTF-16 column.
fn position(text: &str, offset: usize) -> Position {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: line as u32,
        character: text[start..offset].encode_utf16().count() as u32,
    }
}

fn range(text: &str, start: usize, end: usize) -> Range {
    Range {
        start: position(text, start),
        end: position(text, end),
    }
}

/// `file:///a%20b/c.yaml` → `/a b/c.yaml`.
fn path_of(uri: &Uri) -> Option<PathBuf> {
    let rest = uri.as_str().strip_prefix("file://")?;
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = rest.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(PathBuf::from)
}

/// `/a b/c.yaml` → `file:///a%20b/c.yaml`.
fn uri_of(path: &Path) -> Option<Uri> {
    let mut s = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s.parse().ok()
}

/// The repository around `file`: the nearest directory with `dtlint.toml`
/// or `.git`, else the file's own directory.
fn repository_of(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(file);
    crate::workspace::find_repository(dir).unwrap_or_else(|| dir.to_path_buf())
}

impl State {
    /// Check the repository around `file` and publish every open document
    /// of it.
    fn check(&mut self, conn: &Connection, file: &Path) {
        let root = repository_of(file);
        let mut config = crate::config::find(&root)
            .filter(|p| p.starts_with(&root))
            .and_then(|p| Config::load(&p).ok())
            .unwrap_or_else(Config::defaults);
        config.discover_environments(&root);
        let render = RenderOptions {
            enabled: true,
            cache_dir: Some(crate::render::cache_dir(None)),
            only_env: None,
        };
        let open: Vec<PathBuf> = self
            .docs
            .keys()
            .filter(|p| p.starts_with(&root))
            .cloned()
            .collect();
        let outcome = engine::prepare_with(
            &root,
            std::slice::from_ref(&root),
            &config,
            &render,
            &self.docs,
        )
        .map(|(ws, _)| {
            let outcome = engine::run(&ws, &config, &Selection::default());
            (outcome, ws)
        });
        let mut by_file: HashMap<PathBuf, Vec<Published>> =
            open.iter().map(|p| (p.clone(), Vec::new())).collect();
        if let Ok((outcome, ws)) = &outcome {
            for f in &outcome.findings {
                let src = ws.sources.get(f.primary.file);
                let Some(list) = by_file.get_mut(&src.abs) else {
                    continue;
                };
                let text = &src.text;
                let r = range(
                    text,
                    f.primary.span.start.offset as usize,
                    f.primary.span.end.offset as usize,
                );
                let mut message = f.message.clone();
                if let Some(h) = &f.help {
                    message = format!("{message}\n{h}");
                }
                let diagnostic = Diagnostic {
                    range: r,
                    severity: Some(match f.severity {
                        Severity::Error => DiagnosticSeverity::ERROR,
                        Severity::Warning => DiagnosticSeverity::WARNING,
                        Severity::Info => DiagnosticSeverity::INFORMATION,
                    }),
                    code: Some(NumberOrString::String(f.rule.to_string())),
                    source: Some("dtlint".into()),
                    message,
                    ..Diagnostic::default()
                };
                let fix = crate::fix::fix_of(ws, f)
                    .map(|(e, safe)| (range(text, e.start, e.end), e.text, safe));
                list.push(Published {
                    range: r,
                    rule: f.rule,
                    diagnostic,
                    fix,
                });
            }
        }
        for (path, list) in by_file {
            let Some(uri) = uri_of(&path) else { continue };
            let params = PublishDiagnosticsParams {
                uri,
                diagnostics: list.iter().map(|p| p.diagnostic.clone()).collect(),
                version: None,
            };
            let _ = conn.sender.send(Message::Notification(Notification::new(
                "textDocument/publishDiagnostics".into(),
                params,
            )));
            self.published.insert(path, list);
        }
    }

    fn notification(&mut self, conn: &Connection, n: Notification) {
        let path = match n.method.as_str() {
            "textDocument/didOpen" => serde_json::from_value::<DidOpenTextDocumentParams>(n.params)
                .ok()
                .and_then(|p| {
                    let path = path_of(&p.text_document.uri)?;
                    self.docs.insert(path.clone(), p.text_document.text);
                    Some(path)
                }),
            "textDocument/didChange" => {
                serde_json::from_value::<DidChangeTextDocumentParams>(n.params)
                    .ok()
                    .and_then(|p| {
                        let path = path_of(&p.text_document.uri)?;
                        // Full sync: the last change is the whole text.
                        let text = p.content_changes.into_iter().last()?.text;
                        self.docs.insert(path.clone(), text);
                        Some(path)
                    })
            }
            "textDocument/didSave" => serde_json::from_value::<DidSaveTextDocumentParams>(n.params)
                .ok()
                .and_then(|p| path_of(&p.text_document.uri)),
            "textDocument/didClose" => {
                if let Ok(p) = serde_json::from_value::<DidCloseTextDocumentParams>(n.params)
                    && let Some(path) = path_of(&p.text_document.uri)
                {
                    self.docs.remove(&path);
                    self.published.remove(&path);
                }
                None
            }
            _ => None,
        };
        if let Some(path) = path {
            self.check(conn, &path);
        }
    }

    fn request(&self, conn: &Connection, req: Request) {
        let result = match req.method.as_str() {
            "textDocument/codeAction" => serde_json::from_value::<CodeActionParams>(req.params)
                .ok()
                .map(|p| serde_json::to_value(self.code_actions(&p)).unwrap_or_default()),
            "textDocument/hover" => serde_json::from_value::<HoverParams>(req.params)
                .ok()
                .map(|p| serde_json::to_value(self.hover(&p)).unwrap_or_default()),
            _ => {
                let _ = conn.sender.send(Message::Response(Response::new_err(
                    req.id,
                    lsp_server::ErrorCode::MethodNotFound as i32,
                    format!("dtlint does not handle {}", req.method),
                )));
                return;
            }
        };
        let response = match result {
            Some(v) => Response::new_ok(req.id, v),
            None => Response::new_err(
                req.id,
                lsp_server::ErrorCode::InvalidParams as i32,
                "invalid parameters".into(),
            ),
        };
        let _ = conn.sender.send(Message::Response(response));
    }

    fn code_actions(&self, p: &CodeActionParams) -> Vec<CodeActionOrCommand> {
        let Some(path) = path_of(&p.text_document.uri) else {
            return Vec::new();
        };
        let overlaps = |r: &Range| r.start <= p.range.end && p.range.start <= r.end;
        self.published
            .get(&path)
            .into_iter()
            .flatten()
            .filter(|f| overlaps(&f.range))
            .filter_map(|f| {
                let (r, text, safe) = f.fix.clone()?;
                let edit = WorkspaceEdit {
                    changes: Some(
                        std::iter::once((
                            p.text_document.uri.clone(),
                            vec![TextEdit {
                                range: r,
                                new_text: text,
                            }],
                        ))
                        .collect(),
                    ),
                    ..WorkspaceEdit::default()
                };
                Some(CodeActionOrCommand::CodeAction(CodeAction {
                    title: format!(
                        "Fix {}{}",
                        f.rule,
                        if safe {
                            ""
                        } else {
                            " (unsafe: changes what the manifest says)"
                        }
                    ),
                    kind: Some(CodeActionKind::QUICKFIX),
                    diagnostics: Some(vec![f.diagnostic.clone()]),
                    edit: Some(edit),
                    is_preferred: Some(safe),
                    ..CodeAction::default()
                }))
            })
            .collect()
    }

    fn hover(&self, p: &HoverParams) -> Option<Hover> {
        let doc = &p.text_document_position_params;
        let path = path_of(&doc.text_document.uri)?;
        let at = doc.position;
        let f = self
            .published
            .get(&path)?
            .iter()
            .find(|f| f.range.start <= at && at <= f.range.end)?;
        Some(Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value: crate::docs::explain(f.rule)?,
            }),
            range: Some(f.range),
        })
    }
}

/// Serve the Language Server Protocol on standard input and output until
/// the client shuts it down.
pub fn serve() -> Result<(), String> {
    let (conn, io) = Connection::stdio();
    let capabilities = ServerCapabilities {
        text_document_sync: Some(lsp_types::TextDocumentSyncCapability::Kind(
            TextDocumentSyncKind::FULL,
        )),
        code_action_provider: Some(lsp_types::CodeActionProviderCapability::Simple(true)),
        hover_provider: Some(lsp_types::HoverProviderCapability::Simple(true)),
        ..ServerCapabilities::default()
    };
    let caps = serde_json::to_value(capabilities).map_err(|e| e.to_string())?;
    conn.initialize(caps).map_err(|e| e.to_string())?;
    let mut state = State::default();
    for msg in &conn.receiver {
        match msg {
            Message::Request(req) => {
                if conn.handle_shutdown(&req).map_err(|e| e.to_string())? {
                    break;
                }
                state.request(&conn, req);
            }
            Message::Notification(n) => state.notification(&conn, n),
            Message::Response(_) => {}
        }
    }
    drop(conn);
    io.join().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::{path_of, position, uri_of};

    #[test]
    fn positions_are_utf16_columns_on_zero_based_lines() {
        let text = "a: 1\nb: \"é😀x\"\n";
        let x = text.find('x').unwrap();
        assert_eq!(
            (position(text, x).line, position(text, x).character),
            (1, 7)
        );
        assert_eq!(position(text, 0).character, 0);
    }

    #[test]
    fn file_uris_round_trip() {
        let p = std::path::Path::new("/tmp/a b/ç.yaml");
        let uri = uri_of(p).unwrap();
        assert_eq!(uri.as_str(), "file:///tmp/a%20b/%C3%A7.yaml");
        assert_eq!(path_of(&uri).unwrap(), p);
    }
}
