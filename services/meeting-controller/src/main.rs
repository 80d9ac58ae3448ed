//! `meeting-controller`: serves until SIGTERM/ctrl-c;
//! `meeting-controller gen-dev-cert --out DIR` writes a development
//! WebTransport certificate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::shutdown;
use meeting_controller::certs;
use meeting_controller::config::Config;
use meeting_controller::startup::Application;

/// Dark Tower meeting controller. Without a subcommand it serves, configured
/// by environment variables only (see config-contract.toml).
#[derive(Debug, Parser)]
#[command(name = "meeting-controller", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a development certificate (ECDSA P-256, valid 13 days) and key
    /// as DIR/cert.pem and DIR/key.pem, and print its SHA-256 for a
    /// browser's WebTransport `serverCertificateHashes`.
    GenDevCert {
        /// Directory to write cert.pem and key.pem into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Subject alternative names (repeatable); default localhost,
        /// 127.0.0.1 and ::1.
        #[arg(long = "san")]
        sans: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::GenDevCert { out, sans }) = cli.command {
        return gen_dev_cert(&out, sans);
    }
    common::startup::run("meeting-controller", serve())
}

fn gen_dev_cert(out: &std::path::Path, sans: Vec<String>) -> ExitCode {
    let sans = if sans.is_empty() {
        certs::DEFAULT_SANS
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        sans
    };
    let result = certs::generate(&sans).and_then(|cert| {
        let paths = certs::write_to(out, &cert)?;
        Ok((cert, paths))
    });
    match result {
        Ok((cert, (cert_path, key_path))) => {
            let hash = cert.sha256();
            let bytes: Vec<String> = hash.iter().map(u8::to_string).collect();
            #[allow(clippy::print_stdout)]
            {
                println!("MC_TLS_CERT_PATH={}", cert_path.display());
                println!("MC_TLS_KEY_PATH={}", key_path.display());
                println!("sha256={}", cert.sha256_hex());
                println!(
                    "serverCertificateHashes: [{{ algorithm: \"sha-256\", value: new Uint8Array([{}]) }}]",
                    bytes.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("meeting-controller gen-dev-cert: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    common::telemetry::init(&config.log_filter)?;
    let drain = config.drain;
    let app = Application::build(config).await?;
    let signal = shutdown::on_os_signal(app.readiness(), drain);
    app.run(signal).await
}
