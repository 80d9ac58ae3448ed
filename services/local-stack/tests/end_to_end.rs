//! End to end: `local-stack` builds and starts the services against the real
//! PostgreSQL (`DT_TEST_DATABASE_URL`, default the local server) and Redis
//! on shifted ports, every `/ready` answers 200, AC issues a token to the
//! front-end client, and SIGTERM stops everything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Time for the (normally incremental) build plus start-up.
const READY_WITHIN: Duration = Duration::from_mins(12);

fn admin_url() -> String {
    std::env::var("DT_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_owned())
}

/// An offset whose nine service ports are all free.
fn free_offset() -> u16 {
    let seed = u16::try_from(std::process::id() % 500).unwrap();
    for i in 0..200u16 {
        let offset = 2000 + (seed + i * 37) % 13_000;
        let tcp = [8082, 8080, 50051, 8081, 50052, 8083, 50053];
        let udp = [4433, 4434];
        let tcp_free = tcp
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", p + offset)).is_ok());
        let udp_free = udp
            .iter()
            .all(|p| UdpSocket::bind(("127.0.0.1", p + offset)).is_ok());
        if tcp_free && udp_free {
            return offset;
        }
    }
    panic!("no free port offset found");
}

#[test]
fn local_stack_starts_everything_ready_and_stops_on_sigterm() {
    let workdir = tempfile::tempdir().unwrap();
    let offset = free_offset();
    let prefix = format!("dt_lstest_{}", std::process::id());
    let mut child = Command::new(env!("CARGO_BIN_EXE_local-stack"))
        .args([
            "--port-offset",
            &offset.to_string(),
            "--db-prefix",
            &prefix,
            "--log",
            "warn",
        ])
        .arg("--database-url")
        .arg(admin_url())
        .arg("--workdir")
        .arg(workdir.path())
        .arg("--pg-data")
        .arg(workdir.path().join("pg"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let stderr = child.stderr.take().unwrap();
    let err_log = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[local-stack] {line}");
            all.push_str(&line);
            all.push('\n');
        }
        all
    });

    let deadline = Instant::now() + READY_WITHIN;
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) if line == "local-stack: ready" => break,
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().unwrap();
                panic!(
                    "local-stack exited ({status}) before it was ready:\n{}",
                    err_log.join().unwrap()
                );
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("local-stack was not ready within {READY_WITHIN:?}");
        }
    }

    let summary: Value =
        serde_json::from_slice(&std::fs::read(workdir.path().join("stack.json")).unwrap()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mc_crate = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../meeting-controller/Cargo.toml")
        .exists();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let ready: Vec<String> = summary["ready"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_owned())
            .collect();
        let expected = if summary["mc"].is_null() { 3 } else { 4 };
        assert_eq!(ready.len(), expected, "{summary}");
        if mc_crate && summary["mc"].is_null() {
            eprintln!(
                "NOTE: meeting-controller exists but did not build; the stack ran without it"
            );
        }
        for (port, name) in [
            (8082, "ac-service"),
            (8080, "global-controller"),
            (8083, "media-handler"),
        ] {
            let url = format!("http://127.0.0.1:{}/ready", port + offset);
            assert!(ready.contains(&url), "{name}: {url} not in {ready:?}");
        }
        for url in &ready {
            let r = http.get(url).send().await.unwrap();
            let status = r.status();
            let body = r.text().await.unwrap();
            assert_eq!(status, 200, "{url}: {body}");
            assert!(body.contains("\"status\":\"ready\""), "{url}: {body}");
        }
        let mh: Value = http
            .get(format!("http://127.0.0.1:{}/ready", 8083 + offset))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(mh["gc_registration"], "registered");

        // A token for the front-end client, then a meeting with it.
        let fe = &summary["frontend_client"];
        let r = http
            .post(format!(
                "http://127.0.0.1:{}/api/v1/auth/service/token",
                8082 + offset
            ))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", fe["client_id"].as_str().unwrap()),
                ("client_secret", fe["client_secret"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let token: Value = r.json().await.unwrap();
        assert_eq!(token["token_type"], "Bearer");
        let access = token["access_token"].as_str().unwrap();
        let r = http
            .post(format!(
                "http://127.0.0.1:{}/api/v1/meetings",
                8080 + offset
            ))
            .bearer_auth(access)
            .json(&serde_json::json!({"name": "local"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    });

    // SIGTERM: everything stops, the process exits cleanly.
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_mins(1);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "local-stack did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    let log = err_log.join().unwrap();
    assert!(log.contains("ac-service stopped"), "{log}");
    for port in [8082, 8080, 8083] {
        let addr: SocketAddr = format!("127.0.0.1:{}", port + offset).parse().unwrap();
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err(),
            "{addr} still open"
        );
    }

    // Leave no test databases behind.
    runtime.block_on(async {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
        for db in ["ac", "gc"] {
            sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{prefix}_{db}\" WITH (FORCE)"
            ))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    });
}
