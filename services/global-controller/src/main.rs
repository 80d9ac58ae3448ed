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
    common::startup::run("global-controller", serve())
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    common::telemetry::init(&config.log_filter)?;
    let app = Application::build(config).await?;
    let signal = shutdown::on_os_signal(app.readiness(), DRAIN);
    app.run(signal).await
}
