//! Pieces every service's start-up uses: [`run`] for `main` (runtime, exit
//! code), listeners bound with an error that names the variable at fault,
//! and the background tasks that live exactly as long as the application.

use std::fmt::Display;
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Runs `main` on a multi-threaded runtime: success exits 0; an error is
/// logged and printed as `<service>: <error and its causes>` and exits 1.
pub fn run<E: Display>(service: &str, main: impl Future<Output = Result<(), E>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{service}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{service} failed");
            eprintln!("{service}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Binds `addr`; the error names the variable it came from
/// (`cannot bind GC_GRPC_BIND_ADDRESS 0.0.0.0:50051: Address in use`).
pub async fn bind_tcp(variable: &str, addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot bind {variable} {addr}: {e}")))
}

/// Tasks that live as long as the application; aborted when it goes away.
#[derive(Debug, Default)]
pub struct BackgroundTasks(Vec<JoinHandle<()>>);

impl BackgroundTasks {
    pub fn push(&mut self, task: JoinHandle<()>) {
        self.0.push(task);
    }
}

impl From<Vec<JoinHandle<()>>> for BackgroundTasks {
    fn from(tasks: Vec<JoinHandle<()>>) -> Self {
        Self(tasks)
    }
}

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
