//! `media-handler` serves media, gRPC and HTTP until SIGTERM/ctrl-c;
//! `media-handler gen-dev-cert --out DIR` writes a development certificate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::shutdown;
use media_handler::config::{Config, DRAIN};
use media_handler::startup::Application;
use media_handler::tls;

#[derive(Debug, Parser)]
#[command(
    name = "media-handler",
    version,
    about = "Dark Tower media handler (pass-through SFU); configured with environment variables"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve media, gRPC and HTTP (the default).
    Serve,
    /// Write a self-signed ECDSA P-256 certificate (valid 13 days) as
    /// DIR/cert.pem and DIR/key.pem, for local runs, and print its SHA-256
    /// (for a browser's `serverCertificateHashes`).
    GenDevCert {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// DNS name or IP address the certificate covers (repeatable;
        /// default: localhost, 127.0.0.1 and ::1).
        #[arg(long = "name")]
        names: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve_main(),
        Command::GenDevCert { out, names } => gen_dev_cert(&out, names),
    }
}

#[allow(clippy::print_stdout)] // the command's output is for the operator
fn gen_dev_cert(out: &std::path::Path, names: Vec<String>) -> ExitCode {
    let names = if names.is_empty() {
        tls::default_dev_names()
    } else {
        names
    };
    let written = tls::generate_dev_cert(&names).and_then(|cert| {
        let paths = tls::write_dev_cert(out, &cert)?;
        Ok((cert, paths))
    });
    match written {
        Ok((cert, (cert_path, key_path))) => {
            println!("certificate: {}", cert_path.display());
            println!("private key: {}", key_path.display());
            println!("names: {}", names.join(" "));
            println!("sha256: {}", cert.sha256_hex());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("media-handler gen-dev-cert: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve_main() -> ExitCode {
    common::startup::run("media-handler", serve())
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    common::telemetry::init(&config.log_filter)?;
    let app = Application::build(config).await?;
    let signal = shutdown::on_os_signal(app.readiness(), DRAIN);
    app.run(signal).await
}
