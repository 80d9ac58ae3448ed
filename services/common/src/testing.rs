//! Test support for the services' integration tests (feature `testing`).
//!
//! Tests run against a real `PostgreSQL` found through `DT_TEST_DATABASE_URL`
//! (default `postgres://postgres:postgres@127.0.0.1:5432/postgres`). Each
//! test gets a fresh database with a UUID name. When `PostgreSQL` cannot be
//! reached the test fails loudly, saying how to start it; it never passes
//! silently.
//!
//! [`TcpProxy`] sits between a service and `PostgreSQL` so a test can make
//! the database disappear (connections reset, new ones refused) and come
//! back, without stopping the shared server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use sqlx::Connection as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const TEST_DATABASE_ENV: &str = "DT_TEST_DATABASE_URL";
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/postgres";

const HOW_TO_START: &str = "start PostgreSQL on loopback, for example:\n  \
    apt-get install -y postgresql\n  \
    su postgres -c '/usr/lib/postgresql/15/bin/initdb -D /tmp/pg -U postgres --pwfile=<(echo postgres) -A scram-sha-256'\n  \
    su postgres -c \"/usr/lib/postgresql/15/bin/pg_ctl -D /tmp/pg -o '-c listen_addresses=127.0.0.1 -p 5432 -k /tmp' -l /tmp/pg.log start\"\n\
    or point DT_TEST_DATABASE_URL at a server you have.";

/// The admin URL tests connect to.
pub fn admin_url() -> String {
    std::env::var(TEST_DATABASE_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_DATABASE_URL.to_owned())
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// `url` with its host and port replaced (to route through a proxy).
pub fn with_host_port(url: &str, addr: SocketAddr) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let userinfo = authority.rfind('@').map_or("", |i| &authority[..=i]);
    format!(
        "{}{userinfo}{addr}{}",
        &url[..scheme_end],
        &rest[authority_end..]
    )
}

/// Host and port of `url`, resolved.
pub async fn socket_addr_of(url: &str) -> SocketAddr {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    tokio::net::lookup_host(&hostport)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("cannot resolve the test database host {hostport}"))
}

/// Creates a fresh, empty database and returns its URL. Its name starts
/// with `dt_test_`, so the test command can drop what earlier runs left.
pub async fn fresh_database(prefix: &str) -> String {
    let admin = admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "\n\nPostgreSQL is not reachable through {TEST_DATABASE_ENV} \
                 (or the default {DEFAULT_TEST_DATABASE_URL}): {e}\n\
                 These integration tests need a real PostgreSQL; {HOW_TO_START}\n"
            )
        });
    let name = format!("dt_test_{prefix}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("creating test database {name} failed: {e}"));
    let _ = conn.close().await;
    with_database(&admin, &name)
}

struct Running {
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP forwarder on loopback that can be cut and restored.
pub struct TcpProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    running: Arc<Mutex<Option<Running>>>,
}

impl std::fmt::Debug for TcpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("proxy bind failed: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy addr: {e}"));
        let proxy = Self {
            addr,
            upstream,
            running: Arc::new(Mutex::new(None)),
        };
        proxy.serve(listener);
        proxy
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream;
        let task = tokio::spawn(async move {
            // Connection tasks live in this set: aborting the accept task
            // drops the set, which aborts (and closes) every connection.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        });
        if let Ok(mut running) = self.running.lock() {
            *running = Some(Running { task });
        }
    }

    /// Cuts every connection and refuses new ones: "the database is down".
    pub fn stop(&self) {
        if let Ok(mut running) = self.running.lock() {
            running.take();
        }
    }

    /// Listens again on the same address: "the database is back".
    pub async fn resume(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("proxy rebind on {} failed: {e}", self.addr),
            }
        };
        self.serve(listener);
    }
}

/// Checks a service Dockerfile against what the manifests expect: the
/// cargo-chef stages, a pinned Rust version, the right binary built, stripped
/// and started, the distroless runtime as uid 65532 without a shell, and
/// exactly `ports` exposed. Returns every problem found.
pub fn check_dockerfile(text: &str, binary: &str, ports: &[u16]) -> Result<(), String> {
    let mut problems = Vec::new();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut need = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    need(
        lines.first() == Some(&"ARG RUST_VERSION=1.95"),
        "the first instruction must be ARG RUST_VERSION=1.95".into(),
    );
    for stage in ["chef", "planner", "builder", "runtime"] {
        need(
            lines
                .iter()
                .any(|l| l.starts_with("FROM ") && l.ends_with(&format!(" AS {stage}"))),
            format!("missing stage {stage}"),
        );
    }
    need(
        lines
            .iter()
            .any(|l| l.starts_with("FROM rust:${RUST_VERSION}") && l.ends_with(" AS chef")),
        "the chef stage must start FROM rust:${RUST_VERSION}...".into(),
    );
    need(
        text.contains("cargo install cargo-chef --locked --version "),
        "cargo-chef must be installed --locked at a pinned version".into(),
    );
    need(
        text.contains("cargo chef prepare"),
        "missing cargo chef prepare".into(),
    );
    need(
        text.contains(&format!(
            "cargo chef cook --release --locked --recipe-path recipe.json --package {binary}"
        )),
        format!("cargo chef cook must build the dependencies of {binary}"),
    );
    need(
        text.contains(&format!(
            "cargo build --release --locked --package {binary} --bin {binary}"
        )),
        format!("the builder must build --bin {binary}"),
    );
    need(
        text.contains("CARGO_PROFILE_RELEASE_STRIP=symbols"),
        "the binary must be stripped".into(),
    );
    let runtime_start = lines
        .iter()
        .position(|l| *l == "FROM gcr.io/distroless/cc-debian12:nonroot AS runtime");
    need(
        runtime_start.is_some(),
        "the runtime must be FROM gcr.io/distroless/cc-debian12:nonroot AS runtime".into(),
    );
    let runtime: Vec<&str> = runtime_start.map_or(Vec::new(), |i| lines[i + 1..].to_vec());
    need(
        runtime.iter().all(|l| !l.starts_with("FROM ")),
        "the runtime must be the last stage".into(),
    );
    need(
        runtime.iter().all(|l| !l.starts_with("RUN ")),
        "the runtime stage has no shell: no RUN".into(),
    );
    need(
        runtime.contains(
            &format!("COPY --from=builder /app/target/release/{binary} /usr/local/bin/{binary}")
                .as_str(),
        ),
        format!("the runtime must copy the {binary} binary"),
    );
    need(
        runtime.contains(&"USER 65532:65532"),
        "the runtime must run as USER 65532:65532".into(),
    );
    need(
        runtime.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{binary}\"]").as_str()),
        format!("ENTRYPOINT must exec /usr/local/bin/{binary} (exec form, no shell)"),
    );
    let mut exposed: Vec<u16> = runtime
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|ports| ports.split_whitespace())
        .filter_map(|p| p.split('/').next().and_then(|n| n.parse().ok()))
        .collect();
    exposed.sort_unstable();
    let mut wanted = ports.to_vec();
    wanted.sort_unstable();
    need(
        exposed == wanted,
        format!("EXPOSE lists {exposed:?}, the service listens on {wanted:?}"),
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The ports of the `*_ADDRESS` defaults in an env contract (what the
/// service binds unless told otherwise).
pub fn contract_ports(contract: &crate::config::Contract) -> Vec<u16> {
    contract
        .env
        .iter()
        .filter(|e| e.name.ends_with("BIND_ADDRESS"))
        .filter_map(|e| e.default.as_deref())
        .filter_map(|d| d.parse::<SocketAddr>().ok())
        .map(|a| a.port())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rewriting() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "t1"),
            "postgres://u:p@h:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        let addr: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        assert_eq!(
            with_host_port("postgres://u:p@h:5432/db?x=1", addr),
            "postgres://u:p@127.0.0.1:6000/db?x=1"
        );
        assert_eq!(
            with_host_port("postgres://h/db", addr),
            "postgres://127.0.0.1:6000/db"
        );
    }

    const GOOD: &str = r#"# comment
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.73
FROM chef AS planner
RUN cargo chef prepare --recipe-path recipe.json
FROM chef AS builder
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
RUN cargo chef cook --release --locked --recipe-path recipe.json --package svc
RUN cargo build --release --locked --package svc --bin svc
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=builder /app/target/release/svc /usr/local/bin/svc
USER 65532:65532
EXPOSE 8080 50051
ENTRYPOINT ["/usr/local/bin/svc"]
"#;

    #[test]
    fn dockerfile_check_accepts_the_pattern_and_names_each_problem() {
        check_dockerfile(GOOD, "svc", &[50051, 8080]).unwrap();
        let err = check_dockerfile(GOOD, "other", &[8080]).unwrap_err();
        assert!(err.contains("--bin other"), "{err}");
        assert!(err.contains("EXPOSE lists [8080, 50051]"), "{err}");
        let shell = GOOD.replace("USER 65532:65532", "USER 65532:65532\nRUN echo hi");
        assert!(
            check_dockerfile(&shell, "svc", &[8080, 50051])
                .unwrap_err()
                .contains("no RUN")
        );
        let root = GOOD.replace("USER 65532:65532", "USER root");
        assert!(
            check_dockerfile(&root, "svc", &[8080, 50051])
                .unwrap_err()
                .contains("65532")
        );
        let unpinned = GOOD.replace("ARG RUST_VERSION=1.95\n", "");
        assert!(check_dockerfile(&unpinned, "svc", &[8080, 50051]).is_err());
    }
}
