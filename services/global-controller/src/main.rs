//! `global-controller`: serves HTTP and gRPC until SIGTERM/ctrl-c.

use std::process::ExitCode;

use common::shutdown;
use global_controller::config::{Config, DRAIN};
use global_controller::startup::Application;

fn main() -> ExitCode {
    if std::env::args().len() > 1 {
        eprintln!("global-controller takes no arguments; configure it with environment variables");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("global-controller: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "global-controller failed");
            eprintln!("global-controller: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    common::telemetry::init(&config.log_filter)?;
    let app = Application::build(config).await?;
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(shutdown::drain_then_fire(
        shutdown::os_signal(),
        app.readiness(),
        DRAIN,
        trigger,
    ));
    app.run(signal).await
}
