//! PostgreSQL and Redis on loopback: use them when they answer, start them
//! when they are installed but not running, and stop only what we started.
//!
//! PostgreSQL refuses to run as root, so as root `initdb` and `pg_ctl` run
//! as the `postgres` user (`runuser`), with the data directory under /tmp.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// True when something accepts TCP connections at `addr`.
pub fn reachable(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// `host:port` of a `scheme://[user[:pass]@]host[:port][/...]` URL.
pub fn url_host_port(url: &str, default_port: u16) -> Option<SocketAddr> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let with_port = if host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    with_port.to_socket_addrs().ok()?.next()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs `program args` as the `postgres` user when we are root.
fn pg_command(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

fn run(mut command: Command, what: &str) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The PostgreSQL binaries: version 15 (what the services are tested with)
/// or else the newest installed.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let preferred = PathBuf::from("/usr/lib/postgresql/15/bin");
    if preferred.join("pg_ctl").exists() {
        return Some(preferred);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A PostgreSQL server this program started (stopped on drop of the stack).
#[derive(Debug)]
pub struct StartedPostgres {
    bin: PathBuf,
    data: PathBuf,
}

impl StartedPostgres {
    pub fn stop(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.data.to_string_lossy().into_owned();
        match run(
            pg_command(&pg_ctl, &["-D", &data, "stop", "-m", "fast", "-w"]),
            "pg_ctl stop",
        ) {
            Ok(()) => eprintln!("local-stack: stopped PostgreSQL ({data})"),
            Err(e) => eprintln!("local-stack: {e:#}"),
        }
    }
}

/// Makes sure PostgreSQL answers at `addr` (only 127.0.0.1/localhost can be
/// started here). The password of the `postgres` role is `password`.
pub fn ensure_postgres(
    addr: SocketAddr,
    data: &Path,
    password: &str,
) -> anyhow::Result<Option<StartedPostgres>> {
    if reachable(addr) {
        eprintln!("local-stack: PostgreSQL already running at {addr}");
        return Ok(None);
    }
    if !addr.ip().is_loopback() {
        bail!(
            "PostgreSQL does not answer at {addr}, and only a loopback server can be started here"
        );
    }
    let Some(bin) = postgres_bin_dir() else {
        bail!(
            "PostgreSQL does not answer at {addr} and is not installed \
             (no /usr/lib/postgresql/*/bin/pg_ctl): apt-get install -y postgresql"
        );
    };
    let data_str = data.to_string_lossy().into_owned();
    if !data.join("PG_VERSION").exists() {
        eprintln!("local-stack: initialising a PostgreSQL cluster in {data_str}");
        // The password file must be readable by the postgres user.
        let pwfile = std::env::temp_dir().join(format!("dark-tower-pgpass-{}", std::process::id()));
        std::fs::write(&pwfile, format!("{password}\n"))
            .with_context(|| format!("cannot write {}", pwfile.display()))?;
        let pwfile_str = pwfile.to_string_lossy().into_owned();
        let initdb = run(
            pg_command(
                &bin.join("initdb"),
                &[
                    "-D",
                    &data_str,
                    "-U",
                    "postgres",
                    "--pwfile",
                    &pwfile_str,
                    "-A",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                ],
            ),
            "initdb",
        );
        let _ = std::fs::remove_file(&pwfile);
        initdb?;
    }
    let log = format!("{data_str}.log");
    if is_root() {
        // pg_ctl -l needs a log file the postgres user may write.
        run(
            {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--", "touch", &log]);
                c
            },
            "creating the PostgreSQL log file",
        )?;
    }
    let options = format!(
        "-c listen_addresses={} -p {} -k /tmp",
        addr.ip(),
        addr.port()
    );
    eprintln!("local-stack: starting PostgreSQL at {addr} (log {log})");
    run(
        pg_command(
            &bin.join("pg_ctl"),
            &[
                "-D", &data_str, "-o", &options, "-l", &log, "-w", "-t", "60", "start",
            ],
        ),
        "pg_ctl start",
    )?;
    let started = StartedPostgres {
        bin,
        data: data.to_owned(),
    };
    wait_reachable(addr, Duration::from_secs(30), "PostgreSQL")?;
    Ok(Some(started))
}

/// Creates `name` unless it exists.
pub async fn ensure_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .context("cannot connect to PostgreSQL with the admin URL")?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await?;
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        eprintln!("local-stack: created database {name}");
    }
    let _ = conn.close().await;
    Ok(())
}

/// A Redis server this program started.
#[derive(Debug)]
pub struct StartedRedis {
    pub child: Child,
}

/// Makes sure Redis answers at `addr`, starting `redis-server` if needed.
pub fn ensure_redis(addr: SocketAddr, log: &Path) -> anyhow::Result<Option<StartedRedis>> {
    if reachable(addr) {
        eprintln!("local-stack: Redis already running at {addr}");
        return Ok(None);
    }
    if !addr.ip().is_loopback() {
        bail!("Redis does not answer at {addr}, and only a loopback server can be started here");
    }
    let log_file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    eprintln!(
        "local-stack: starting Redis at {addr} (log {})",
        log.display()
    );
    let child = Command::new("redis-server")
        .args([
            "--bind",
            &addr.ip().to_string(),
            "--port",
            &addr.port().to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "Redis does not answer at {addr} and redis-server cannot be started ({e}): \
                 apt-get install -y redis-server"
            )
        })?;
    let mut started = StartedRedis { child };
    if let Err(e) = wait_reachable(addr, Duration::from_secs(15), "Redis") {
        let _ = started.child.kill();
        return Err(e);
    }
    Ok(Some(started))
}

fn wait_reachable(addr: SocketAddr, within: Duration, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while !reachable(addr) {
        if Instant::now() > deadline {
            bail!("{what} did not come up at {addr} within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_of_urls() {
        assert_eq!(
            url_host_port("postgres://postgres:pw@127.0.0.1:5433/postgres", 5432),
            Some("127.0.0.1:5433".parse().unwrap())
        );
        assert_eq!(
            url_host_port("redis://127.0.0.1", 6379),
            Some("127.0.0.1:6379".parse().unwrap())
        );
        assert_eq!(
            url_host_port("postgres://u@127.0.0.1/db?sslmode=disable", 5432),
            Some("127.0.0.1:5432".parse().unwrap())
        );
    }
}
