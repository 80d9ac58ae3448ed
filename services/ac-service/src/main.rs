//! `ac-service` serves the API; `ac-service register-client` registers or
//! updates a service client (secret read from stdin).

use std::io::Read as _;
use std::process::ExitCode;

use ac_service::clients::{self, Registered};
use ac_service::config::Config;
use ac_service::startup::{self, Application};
use clap::{Parser, Subcommand};
use common::shutdown;

#[derive(Debug, Parser)]
#[command(
    name = "ac-service",
    version,
    about = "Dark Tower authentication controller"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Register a client, or update its secret and scopes if it exists.
    /// The secret is read from stdin (one line; the newline is dropped).
    RegisterClient {
        #[arg(long)]
        client_id: String,
        /// Space-separated scopes, e.g. "service.write.gc service.write.mh".
        #[arg(long)]
        scopes: String,
        /// `service_type` claim of the client's tokens (default: the client id).
        #[arg(long)]
        service_type: Option<String>,
    },
    /// Print the bcrypt hash of a client secret read from stdin, for the
    /// `secret_hash` of a client declared in `AC_CLIENTS_FILE`. Needs no
    /// database or other configuration.
    HashSecret {
        /// bcrypt cost (4..=31).
        #[arg(long, default_value_t = 12)]
        cost: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::HashSecret { cost }) = cli.command {
        return common::startup::run("ac-service", async move { hash_secret(cost) });
    }
    common::startup::run("ac-service", async {
        let config = Config::from_env()?;
        common::telemetry::init(&config.log_filter)?;
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::RegisterClient {
                client_id,
                scopes,
                service_type,
            } => register_client(config, &client_id, &scopes, service_type.as_deref()).await,
            Command::HashSecret { cost } => hash_secret(cost),
        }
    })
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let drain = config.drain;
    let app = Application::build(config).await?;
    let signal = shutdown::on_os_signal(app.readiness(), drain);
    app.run(signal).await?;
    Ok(())
}

fn read_secret_from_stdin() -> anyhow::Result<String> {
    let mut secret = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut secret)
        .map_err(|e| anyhow::anyhow!("reading the client secret from stdin failed: {e}"))?;
    let secret = secret.trim_end_matches(['\r', '\n']);
    if secret.contains(['\r', '\n']) {
        anyhow::bail!("the client secret must be a single line on stdin");
    }
    if !clients::SECRET_LEN.contains(&secret.len()) {
        anyhow::bail!(clients::ClientError::SecretLength { len: secret.len() });
    }
    Ok(secret.to_owned())
}

fn hash_secret(cost: u32) -> anyhow::Result<()> {
    if !(4..=31).contains(&cost) {
        anyhow::bail!("--cost {cost} is out of range 4..=31");
    }
    let secret = read_secret_from_stdin()?;
    println!("{}", bcrypt::hash(secret, cost)?);
    Ok(())
}

async fn register_client(
    config: Config,
    client_id: &str,
    scopes: &str,
    service_type: Option<&str>,
) -> anyhow::Result<()> {
    let scopes = clients::parse_scopes(scopes)?;
    let secret = read_secret_from_stdin()?;
    let pool = startup::connect_and_migrate(&config).await?;
    let outcome = clients::register(
        &pool,
        client_id,
        &secret,
        &scopes,
        service_type.unwrap_or(client_id),
        config.bcrypt_cost,
    )
    .await?;
    let verb = match outcome {
        Registered::Created => "registered",
        Registered::Updated => "updated",
    };
    tracing::info!(client_id, scopes = scopes.join(" "), "client {verb}");
    println!(
        "client {client_id} {verb} with scopes: {}",
        scopes.join(" ")
    );
    Ok(())
}
