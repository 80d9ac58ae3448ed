//! `dtlint lsp` as an editor talks to it: initialize, open a document, get
//! its diagnostics at the right range, ask for the quick fix and a hover,
//! change the buffer (unsaved) and see the diagnostics follow, shut down.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::needless_pass_by_value
)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::{Value, json};

struct Client {
    child: Child,
    stdin: ChildStdin,
    from_server: Receiver<Value>,
    next_id: i64,
}

impl Client {
    fn start(dir: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dtlint"))
            .arg("lsp")
            .current_dir(dir)
            .env("DTLINT_CACHE_DIR", dir.join(".cache"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        len = n.parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                if tx.send(serde_json::from_slice(&body).unwrap()).is_err() {
                    return;
                }
            }
        });
        Client {
            child,
            stdin,
            from_server: rx,
            next_id: 1,
        }
    }

    fn send(&mut self, v: &Value) {
        let body = v.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Send a request and wait for its response (notifications on the way
    /// are skipped).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let m = self
                .from_server
                .recv_timeout(Duration::from_mins(1))
                .expect("no response");
            if m["id"] == id {
                return m;
            }
        }
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        loop {
            let m = self
                .from_server
                .recv_timeout(Duration::from_mins(1))
                .expect("no diagnostics");
            if m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri {
                return m["params"]["diagnostics"].as_array().unwrap().clone();
            }
        }
    }
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: clusterip\n  selector:\n    app: web\n  ports:\n    - port: 80\n";

#[test]
fn an_editor_gets_diagnostics_quick_fixes_and_hovers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    let file = dir.path().join("svc.yaml");
    std::fs::write(&file, SERVICE).unwrap();
    let uri = format!("file://{}", file.display());
    let mut c = Client::start(dir.path());

    let init = c.request(
        "initialize",
        json!({"processId": null, "rootUri": null, "capabilities": {}}),
    );
    assert_eq!(
        init["result"]["capabilities"]["textDocumentSync"], 1,
        "{init}"
    );
    assert_eq!(init["result"]["capabilities"]["codeActionProvider"], true);
    c.notify("initialized", json!({}));

    c.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": SERVICE}}),
    );
    let diags = c.diagnostics(&uri);
    let bad = diags
        .iter()
        .find(|d| d["code"] == "schema-invalid")
        .unwrap_or_else(|| panic!("{diags:#?}"));
    // `clusterip` on line 6 (0-based 5), from column 8 to 17.
    assert_eq!(
        bad["range"],
        json!({"start": {"line": 5, "character": 8}, "end": {"line": 5, "character": 17}})
    );
    assert_eq!(bad["severity"], 1);

    let actions = c.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri}, "range": bad["range"], "context": {"diagnostics": [bad]}}),
    );
    let action = &actions["result"][0];
    assert_eq!(action["kind"], "quickfix", "{actions}");
    assert_eq!(action["isPreferred"], true);
    let edit = &action["edit"]["changes"][&uri][0];
    assert_eq!(edit["newText"], "ClusterIP");
    assert_eq!(edit["range"], bad["range"]);

    let hover = c.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": uri}, "position": {"line": 5, "character": 10}}),
    );
    let text = hover["result"]["contents"]["value"].as_str().unwrap();
    assert!(
        text.starts_with("# schema-invalid") && text.contains("## What it does"),
        "{text}"
    );

    // An unsaved change: the buffer is what is checked, not the disk.
    let fixed = SERVICE.replace("clusterip", "ClusterIP");
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": fixed}]}),
    );
    let diags = c.diagnostics(&uri);
    assert!(
        !diags.iter().any(|d| d["code"] == "schema-invalid"),
        "{diags:#?}"
    );

    let shutdown = c.request("shutdown", Value::Null);
    assert!(shutdown.get("error").is_none(), "{shutdown}");
    c.notify("exit", Value::Null);
    let status = c.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // The file on disk was never touched.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), SERVICE);
}
